-- Hardening (issue 9), each finding tried as the role that would send it, with the exact
-- SQLSTATE and proof that nothing was written. Crashes, cancels and the worker are in
-- tests/shell/hardening.sh (they need several sessions).
BEGIN;
SELECT plan(56);

INSERT INTO crm.accounts (id, name, default_from_email) VALUES
  ('0000000a-0000-0000-0000-0000000000a9', 'Attacker', 'Attacker <office@attacker.example>'),
  ('0000000b-0000-0000-0000-0000000000b9', 'Victim', 'Victim <office@victim.example>');
INSERT INTO crm.contacts (id, account_id, first_name, email) VALUES
  ('c000000a-0000-0000-0000-0000000000a9', '0000000a-0000-0000-0000-0000000000a9', 'Own', 'own@attacker.example'),
  ('c000000b-0000-0000-0000-0000000000b9', '0000000b-0000-0000-0000-0000000000b9', 'Theirs', 'pat@victim.example');
INSERT INTO crm.jobs (id, account_id, title) VALUES
  ('d000000a-0000-0000-0000-0000000000a9', '0000000a-0000-0000-0000-0000000000a9', 'Own job'),
  ('d000000b-0000-0000-0000-0000000000b9', '0000000b-0000-0000-0000-0000000000b9', 'Victim job');
INSERT INTO crm.invoices (id, account_id, invoice_number, amount, currency, status) VALUES
  ('e000000a-0000-0000-0000-0000000000a9', '0000000a-0000-0000-0000-0000000000a9', 'A-1', 50000, 'usd', 'sent');
INSERT INTO crm.email_templates (id, account_id, name, subject, html_content) VALUES
  ('f000000b-0000-0000-0000-0000000000b9', '0000000b-0000-0000-0000-0000000000b9', 'Victim secret', 'S', 'secret {{x}}');
SELECT tests.share_tap();
CREATE TEMP TABLE seen (k text, v text);
GRANT ALL ON seen TO PUBLIC;

------------------------------------------------------------------------------------------------
-- §3 One bad row must not stop the queue: tenants write queue rows only through the functions
------------------------------------------------------------------------------------------------
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a9"}');
SELECT throws_ok($$INSERT INTO crm.email_queue (account_id, recipient_email, subject, status, locked_until)
                   VALUES ('0000000a-0000-0000-0000-0000000000a9', 'x@y.example', 's', 'processing', now() - interval '1 hour')$$,
                 '42501', NULL, 'a tenant cannot insert queue rows directly (42501)');
SELECT throws_ok($$UPDATE crm.email_queue SET metadata = '{"provider_message_id": "theirs"}'$$,
                 '42501', NULL, 'a tenant cannot update queue rows (so not metadata.provider_message_id)');
SELECT throws_ok($$DELETE FROM crm.email_queue$$, '42501', NULL, 'a tenant cannot delete queue rows');
SELECT throws_ok($$SELECT crm._enqueue('{"to": ["x@y.example"], "subject": "s", "text": "t"}', NULL)$$,
                 '42501', NULL, 'crm._enqueue is not executable by a tenant');
SELECT throws_ok($$SELECT crm._claim_emails(10, 60)$$, '42501', NULL, 'crm._claim_emails is not executable by a tenant');
SELECT lives_ok($$INSERT INTO seen SELECT 'own', crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t"}')::text$$,
                'enqueue_email still works for a tenant');
SELECT ok(crm.cancel_email((SELECT v::uuid FROM seen WHERE k = 'own')), 'cancel_email cancels its own row');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "account_id": "0000000b-0000-0000-0000-0000000000b9"}')$$,
                 '42501', 'message.account_id: a message can only be queued for the caller''s own account',
                 'a tenant cannot queue for another account');
SELECT throws_ok($$SELECT crm.enqueue_email(jsonb_build_object('to', 'x@y.example', 'template', 'Victim secret'))$$,
                 '22023', 'message.template: unknown template "Victim secret"', 'another account''s template is unknown to a tenant');
-- Oversized and deeply nested arguments.
SELECT throws_ok($$SELECT crm.enqueue_email(jsonb_build_object('to', 'x@y.example', 'template', 'Welcome Email',
                                             'variables', jsonb_build_object('v', repeat('x', 2000000))))$$,
                 '22023', NULL, 'variables over crm.max_json_argument_bytes are refused');
SELECT throws_ok($$SELECT crm.enqueue_email(jsonb_build_object('to', 'x@y.example', 'subject', 's', 'text', repeat('x', 40000000)))$$,
                 '54000', NULL, 'a message argument over its size limit: 54000');
SELECT throws_ok($$SELECT crm.enqueue_email(('{"to": "x@y.example", "subject": "s", "text": "t", "headers": {"X-A": ' || repeat('[', 200) || repeat(']', 200) || '}}')::jsonb)$$,
                 '22023', 'message: JSON nested deeper than 128 levels', 'headers nested 200 deep: 22023, not XX000');
SELECT throws_ok($$SELECT crm.render_template('x', ('{"a": ' || repeat('[', 300) || repeat(']', 300) || '}')::jsonb)$$,
                 '22023', 'variables: JSON nested deeper than 128 levels', 'render_template: variables nested 300 deep is 22023');
SELECT is(tests.error_text($$SELECT crm.render_template('x', ('{"a": ' || repeat('[', 300) || repeat(']', 300) || '}')::jsonb)$$) ~* 'backtrace|rust_begin_unwind|\.rs:[0-9]',
          false, 'no Rust backtrace or source position in the error');
SELECT tests.logout();
INSERT INTO seen SELECT 'victim', crm.enqueue_email('{"account_id": "0000000b-0000-0000-0000-0000000000b9", "to": "v@victim.example", "subject": "s", "text": "t"}')::text;
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a9"}');
SELECT is(crm.cancel_email((SELECT v::uuid FROM seen WHERE k = 'victim')), false, 'a tenant cannot cancel another account''s email');
SELECT tests.logout();
SELECT tests.login('anon', NULL);
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t"}')$$,
                 '22023', NULL, 'anon has no account to queue for');
SELECT tests.logout();
SELECT is((SELECT status FROM crm.email_queue WHERE id = (SELECT v::uuid FROM seen WHERE k = 'victim')), 'pending', 'the victim''s email is still pending');
DELETE FROM crm.email_queue WHERE id = (SELECT v::uuid FROM seen WHERE k = 'victim');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE account_id = '0000000b-0000-0000-0000-0000000000b9'), 0::bigint,
          'nothing was queued for the victim');

------------------------------------------------------------------------------------------------
-- §4 Tenant boundaries through references
------------------------------------------------------------------------------------------------
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a9"}');
SELECT throws_ok($$INSERT INTO crm.jobs (account_id, title, contact_id)
                   VALUES ('0000000a-0000-0000-0000-0000000000a9', 'j', 'c000000b-0000-0000-0000-0000000000b9')$$,
                 '23503', NULL, 'a job cannot reference another account''s contact');
SELECT throws_ok($$INSERT INTO crm.invoices (account_id, invoice_number, amount, job_id)
                   VALUES ('0000000a-0000-0000-0000-0000000000a9', 'A-2', 1, 'd000000b-0000-0000-0000-0000000000b9')$$,
                 '23503', NULL, 'an invoice cannot be on another account''s job');
SELECT throws_ok($$UPDATE crm.invoices SET job_id = 'd000000b-0000-0000-0000-0000000000b9' WHERE invoice_number = 'A-1'$$,
                 '23503', NULL, '... nor be moved onto it');
SELECT lives_ok($$INSERT INTO crm.jobs (account_id, title, contact_id)
                  VALUES ('0000000a-0000-0000-0000-0000000000a9', 'ok', 'c000000a-0000-0000-0000-0000000000a9')$$,
                'a job can reference its own account''s contact');
SELECT throws_ok($$UPDATE crm.invoices SET stripe_payment_intent_id = 'pi_victim' WHERE invoice_number = 'A-1'$$,
                 '42501', NULL, 'invoices.stripe_payment_intent_id is not writable by tenants');
SELECT throws_ok($$INSERT INTO crm.invoices (account_id, invoice_number, amount, stripe_payment_intent_id)
                   VALUES ('0000000a-0000-0000-0000-0000000000a9', 'A-3', 1, 'pi_victim')$$,
                 '42501', NULL, '... not even at insert');
SELECT throws_ok($$UPDATE crm.invoices SET paid_at = now()$$, '42501', NULL, 'invoices.paid_at is not writable by tenants');
SELECT throws_ok($$UPDATE crm.payments SET stripe_payment_intent_id = 'pi_x'$$, '42501', NULL, 'payments.stripe_payment_intent_id is not writable');
SELECT throws_ok($$UPDATE crm.accounts SET verified_senders = '{victim.example}'$$, '42501', NULL,
                 'a tenant cannot verify senders for itself');
SELECT throws_ok($$UPDATE crm.accounts SET default_from_email = 'ceo@victim.example'$$, '42501', NULL,
                 '... nor change its default sender');
SELECT lives_ok($$UPDATE crm.accounts SET name = 'Renamed'$$, 'a tenant still renames its account');
SELECT lives_ok($$UPDATE crm.accounts SET time_zone = 'America/Chicago'$$, '... and sets its time zone (the CHECK runs as the tenant)');
SELECT throws_ok($$UPDATE crm.accounts SET time_zone = 'Nowhere/Land'$$, '23514', NULL, '... a real IANA zone only');
-- Senders.
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "CEO <ceo@victim.example>"}')$$,
                 '22023', 'message.from: CEO <ceo@victim.example> is not a verified sender of this account',
                 'a tenant cannot send from another tenant''s domain');
SELECT lives_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "Office <OFFICE@attacker.example>"}')$$,
                'its own default sender is allowed (case-insensitively)');
SELECT tests.logout();
UPDATE crm.accounts SET verified_senders = '{attacker.example, billing@other.example}' WHERE id = '0000000a-0000-0000-0000-0000000000a9';
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a9"}');
SELECT lives_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "sales@attacker.example"}')$$,
                'a verified domain allows any address in it');
SELECT lives_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "billing@other.example"}')$$,
                'a verified address allows that address');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "ceo@other.example"}')$$,
                 '22023', NULL, '... and not the rest of its domain');
SELECT tests.logout();
SET LOCAL crm.resend_verified_domain = 'platform.example';
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000a9"}');
SELECT lives_ok($$SELECT crm.enqueue_email('{"to": "x@y.example", "subject": "s", "text": "t", "from": "noreply@platform.example"}')$$,
                'the platform''s verified domain is allowed to every account');
SELECT tests.logout();
RESET crm.resend_verified_domain;

-- Stripe: a payment that does not match its invoice is recorded and flagged, not paid.
SELECT is(crm._apply_stripe_event('{"type": "payment_intent.succeeded", "created": 1767225600,
            "data": {"object": {"id": "pi_cheap", "amount": 1, "amount_received": 1, "currency": "jpy",
                                "metadata": {"invoice_id": "e000000a-0000-0000-0000-0000000000a9"}}}}'), 'processed',
          'a 1 JPY payment for a $500 invoice is processed');
SELECT is((SELECT status FROM crm.invoices WHERE id = 'e000000a-0000-0000-0000-0000000000a9'), 'sent', '... and does not mark the invoice paid');
SELECT is((SELECT mismatch FROM crm.payments WHERE stripe_payment_intent_id = 'pi_cheap'),
          'paid 1 JPY, the invoice is for 50000 USD: the invoice was not marked paid', '... it is recorded and flagged');
SELECT is(crm._apply_stripe_event('{"type": "payment_intent.succeeded", "created": 1767225600,
            "data": {"object": {"id": "pi_full", "amount": 50000, "amount_received": 50000, "currency": "usd",
                                "metadata": {"invoice_id": "e000000a-0000-0000-0000-0000000000a9"}}}}'), 'processed',
          'then the full payment is processed');
SELECT is((SELECT status FROM crm.invoices WHERE id = 'e000000a-0000-0000-0000-0000000000a9'), 'paid', '... and marks the invoice paid');

-- Least privilege.
SELECT tests.login('anon', NULL);
SELECT throws_ok($$SELECT crm.encrypt_token('x')$$, '42501', NULL, 'anon cannot call encrypt_token');
SELECT throws_ok($$SELECT crm.current_key_fingerprint()$$, '42501', NULL, 'anon cannot call current_key_fingerprint');
SELECT throws_ok($$SELECT * FROM crm.geocode('1 Main St')$$, '42501', NULL, 'anon cannot spend Maps requests (geocode)');
SELECT throws_ok($$SELECT * FROM crm.travel_times('[[0,0]]', '[[0,1]]')$$, '42501', NULL, 'anon cannot call travel_times');
SELECT throws_ok($$SELECT crm.report_location(0, 0)$$, '42501', NULL, 'anon cannot report a location');
SELECT tests.logout();
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'crm'::regnamespace AND p.proname LIKE '\_%'
             AND has_function_privilege('anon', p.oid, 'EXECUTE')
             AND p.proname NOT IN ('_render_email_parts', '_template_named', '_try_uuid', '_try_inet', '_try_timestamptz',
                                   '_is_time_zone', '_address_key', '_email_key')),
          0::bigint, 'no other internal helper is executable by anon');

-- What a worker learnt about a connection lands only in that connection's table: a tenant may
-- choose its rows' ids, so it could give its calendar connection the id of another account's
-- mailbox; an update for its own connection must not revoke (or re-token) that mailbox.
INSERT INTO crm.accounts (id, name) VALUES ('0000000a-0000-0000-0000-0000000000c7', 'Chooses ids'),
                                           ('0000000b-0000-0000-0000-0000000000c7', 'Victim of a chosen id');
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, is_default)
VALUES ('c7c7c7c7-0000-0000-0000-000000000001', '0000000b-0000-0000-0000-0000000000c7', 'gmail', 'victim@gmail.com', crm.encrypt_token('v'), true);
INSERT INTO crm.calendar_providers (id, account_id, provider, provider_email, access_token_encrypted)
VALUES ('c7c7c7c7-0000-0000-0000-000000000001', '0000000a-0000-0000-0000-0000000000c7', 'google', 'chooser@gmail.com', crm.encrypt_token('c'));
SELECT crm._record_connection_updates('[{"id": "c7c7c7c7-0000-0000-0000-000000000001", "table": "calendar_providers", "revoked": "invalid_grant"}]');
SELECT is((SELECT is_active FROM crm.calendar_providers WHERE id = 'c7c7c7c7-0000-0000-0000-000000000001'), false,
          'a revoked refresh token makes its own connection inactive');
SELECT is((SELECT is_active::text || ' ' || coalesce(last_error, '-') FROM crm.email_providers WHERE id = 'c7c7c7c7-0000-0000-0000-000000000001'), 'true -',
          '... and not another account''s connection of the same id in another table');
SELECT crm._record_connection_updates('[{"id": "c7c7c7c7-0000-0000-0000-000000000001", "revoked": "invalid_grant"}]');
SELECT is((SELECT is_active FROM crm.email_providers WHERE id = 'c7c7c7c7-0000-0000-0000-000000000001'), true,
          'an update that names no table changes nothing');

-- jsonb arguments are read in their binary form; the size limit still counts the bytes of the
-- text jsonb_out prints for them, exactly (escapes, separators, numbers, multi-byte letters).
SET crm.max_json_argument_bytes = 1024;
CREATE TEMP TABLE jsonb_probe AS
SELECT b || jsonb_build_object('p', repeat('x', 1024 - octet_length((b || '{"p": ""}')::text))) AS exact,
       b || jsonb_build_object('p', repeat('x', 1025 - octet_length((b || '{"p": ""}')::text))) AS over
FROM (SELECT jsonb_build_object('v', E'tab\there "quoted" \\ \u0001 \u00e9', 'n', 1.50e30,
                                'a', jsonb_build_array(true, false, null, '{}'::jsonb, '[]'::jsonb)) AS b) s;
SELECT is((SELECT octet_length(exact::text) || ' ' || octet_length(over::text) FROM jsonb_probe), '1024 1025',
          'the probes print as 1,024 and 1,025 bytes');
SELECT is((SELECT crm.render_template('{{{v}}}|{{a.[0]}}|{{a.[1]}}', exact) FROM jsonb_probe),
          E'tab\there "quoted" \\ \u0001 \u00e9|true|false', 'variables of exactly crm.max_json_argument_bytes are read, escapes and all');
SELECT throws_ok($$SELECT crm.render_template('x', over) FROM jsonb_probe$$, '54000',
                 'variables: 1025 bytes of JSON exceed the limit of 1024 (crm.max_json_argument_bytes)',
                 'one byte over the limit: 54000, counting the bytes jsonb_out prints');
SELECT throws_ok($$SELECT crm.enqueue_email(jsonb_build_object('to', 'x@y.example', 'subject', 's', 'text', 't', 'metadata',
                                            jsonb_build_object('n', ('1' || repeat('0', 400))::numeric)))$$,
                 '22023', NULL, 'a number serde_json cannot hold (10^400) is 22023');
SELECT throws_like($$SELECT crm.enqueue_email(jsonb_build_object('to', 'x@y.example', 'subject', 's', 'text', 't', 'metadata',
                                              jsonb_build_object('n', ('1' || repeat('0', 400))::numeric)))$$,
                   'message: invalid JSON: number out of range%', '... with the text path''s words');
RESET crm.max_json_argument_bytes;

SELECT * FROM finish();
ROLLBACK;
