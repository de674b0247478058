-- crm.enqueue_email / enqueue_batch / cancel_email / list_email_queue: validation with the
-- offending field and nothing written, idempotency, sender and provider choice, templates,
-- suppression, scheduling, batches, RLS.
BEGIN;
SELECT plan(64);

INSERT INTO crm.accounts (id, name, default_from_email) VALUES
  ('0000000a-0000-0000-0000-0000000000e9', 'Queue A', NULL),
  ('0000000b-0000-0000-0000-0000000000e9', 'Queue B', '317 Plumber <help@317plumber.com>');
SELECT tests.share_tap();
CREATE FUNCTION pg_temp.rows() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM crm.email_queue $$;
CREATE TEMP TABLE before AS SELECT pg_temp.rows() AS n;
GRANT SELECT ON before TO PUBLIC;
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000000e9"}');

-- Validation: 22023, the field named, nothing written.
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "not-an-address", "subject": "s", "html": "h"}')$$, '22023',
    'message.to: "not-an-address" is not an email address', 'bad address');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": ["a@x.io", "b@"], "subject": "s", "html": "h"}')$$, '22023',
    'message.to[1]: "b@" is not an email address', 'bad address in a list names its index');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "subject": "s"}')$$, '22023',
    'message.html: no content: give html, text, or a template', 'missing content');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "template": "No Such Template"}')$$, '22023',
    'message.template: unknown template "No Such Template"', 'unknown template');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "subject": "s", "html": "h", "scheduled_at": "next tuesday"}')$$, '22023',
    NULL, 'bad timestamp');
SELECT throws_ok($$SELECT crm.enqueue_email(jsonb_build_object('to', 'a@x.io', 'subject', 's', 'text', 't',
    'attachments', jsonb_build_array(jsonb_build_object('filename', 'big.bin', 'content_base64', encode(convert_to(repeat('x', 11 * 1024 * 1024), 'UTF8'), 'base64')))))$$,
    '22023', 'message.attachments[0].content_base64: attachments exceed 10485760 bytes', 'attachment too large');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "subject": "s", "html": "h", "provider": "pigeon"}')$$, '22023',
    'message.provider: unknown provider (resend, gmail, microsoft or smtp)', 'unknown provider');
SELECT throws_ok($$SELECT crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "a@x.io", "subject": "s", "html": "h", "provider": "gmail"}')$$, '22023',
    'message.provider: the account has no active gmail connection', 'gmail without a connected mailbox');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "subject": "Hi\r\nBcc: all@x.io", "html": "h"}')$$, '22023',
    'message.subject: must not contain line breaks', 'header injection through the subject');
SELECT throws_ok($$SELECT crm.enqueue_email('{"to": "a@x.io", "subject": "s", "html": "h", "tempalte": "x"}')$$, '22023',
    'message.tempalte: unknown key', 'a misspelt key is an error, not ignored');
SELECT throws_ok($$SELECT crm.enqueue_email('[1]')$$, '22023', 'message: the message must be a JSON object', 'not an object');
SELECT throws_ok($$SELECT crm.enqueue_batch((SELECT jsonb_agg('{"to": "a@x.io", "subject": "s", "text": "t"}'::jsonb) FROM generate_series(1, 101)))$$,
    '22023', NULL, 'a batch of 101');
SELECT throws_ok($$SELECT crm.enqueue_batch('[{"to": "a@x.io", "subject": "s", "text": "t"}, {"to": "bad"}]')$$,
    '22023', 'message.[1].to: "bad" is not an email address', 'a batch error names the message');
SELECT is(pg_temp.rows(), (SELECT n FROM before), 'no refused message (nor half a batch) was written');

-- Queueing.
SELECT isnt(crm.enqueue_email('{"to": "John <john@example.com>", "subject": "Hi", "html": "<p>Hi</p>", "priority": 5,
                                "metadata": {"job": "j-1"}}'), NULL, 'a simple email is queued');
SELECT results_eq($$SELECT recipient_email, to_addresses, status, provider, priority, max_attempts, from_email, metadata
                    FROM crm.email_queue WHERE recipient_email = 'john@example.com'$$,
    $$VALUES ('john@example.com'::text, ARRAY['john@example.com'], 'pending'::text, 'resend'::text, 5, 3, 'CRM <onboarding@resend.dev>'::text, '{"job": "j-1"}'::jsonb)$$,
    'stored with defaults: resend, 3 attempts, the shared test sender when no domain is set');
SELECT is(crm.enqueue_email('{"to": "k@x.io", "subject": "s", "text": "t", "idempotency_key": "welcome-42"}'),
          crm.enqueue_email('{"to": "k@x.io", "subject": "s", "text": "t", "idempotency_key": "welcome-42"}'),
          'the same idempotency key returns the existing row');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE idempotency_key = 'welcome-42'), 1::bigint, '... which is queued once');
SELECT isnt(crm.enqueue_email('{"to": "jo@x.io", "template": "Welcome Email", "variables": {"firstName": "Jo", "loginUrl": "https://x.io"}}'),
            NULL, 'a template email');
SELECT results_eq($$SELECT t.name, q.template_variables ->> 'firstName' FROM crm.email_queue q JOIN crm.email_templates t ON t.id = q.template_id
                    WHERE q.recipient_email = 'jo@x.io'$$,
    $$VALUES ('Welcome Email'::text, 'Jo'::text)$$, 'it keeps the template and variables (rendered at send time)');
SELECT isnt(crm.enqueue_email(jsonb_build_object('to', 'later@x.io', 'subject', 's', 'text', 't',
            'scheduled_at', to_char((now() + interval '2 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))), NULL, 'a scheduled email');
SELECT results_eq($$SELECT status, next_attempt_at = scheduled_at FROM crm.email_queue WHERE recipient_email = 'later@x.io'$$,
    $$VALUES ('scheduled'::text, true)$$, 'is scheduled, due at its time');
SELECT is((SELECT count(*) FROM crm.enqueue_batch('[{"to": "b1@x.io", "subject": "s", "text": "t"}, {"to": "b2@x.io", "subject": "s", "text": "t"}]')),
          2::bigint, 'a batch of two');
SELECT is((SELECT count(DISTINCT batch_id) FROM crm.email_queue WHERE recipient_email IN ('b1@x.io', 'b2@x.io') AND batch_id IS NOT NULL), 1::bigint,
          '... sharing one batch_id');

-- Cancel.
SELECT is(crm.cancel_email((SELECT id FROM crm.email_queue WHERE recipient_email = 'later@x.io')), true, 'a scheduled email can be cancelled');
SELECT is(crm.cancel_email((SELECT id FROM crm.email_queue WHERE recipient_email = 'later@x.io')), false, '... once');
SELECT is((SELECT status FROM crm.email_queue WHERE recipient_email = 'later@x.io'), 'cancelled', '... and is cancelled');
SELECT is((SELECT count(*) FROM crm.list_email_queue('cancelled')), 1::bigint, 'list_email_queue filters by status');
SELECT throws_ok($$SELECT * FROM crm.list_email_queue('lost')$$, '22023', NULL, 'an unknown status: 22023');
SELECT throws_ok($$SELECT * FROM crm.list_email_queue(NULL, 5000)$$, '22023', NULL, 'limit over 1000: 22023');
SELECT throws_ok($$SELECT crm.process_email_queue()$$, '42501', NULL, 'an account cannot run the sender (it sends every account''s mail)');
SELECT tests.logout();

-- Sender resolution: account default; verified domain; the resend.dev case.
SELECT isnt(crm.enqueue_email('{"account_id": "0000000b-0000-0000-0000-0000000000e9", "to": "x@x.io", "subject": "s", "text": "t"}'), NULL,
    'service side: account_id in the message');
SELECT results_eq($$SELECT from_email FROM crm.email_queue WHERE recipient_email = 'x@x.io'$$,
    $$VALUES ('317 Plumber <help@317plumber.com>'::text)$$, 'the account''s default sender');
SET LOCAL crm.resend_verified_domain = '317plumber.com';
SELECT is(crm._default_sender('0000000a-0000-0000-0000-0000000000e9', NULL), 'CRM <noreply@317plumber.com>', 'CRM <noreply@DOMAIN>');
SET LOCAL crm.resend_verified_domain = 'noreply@resend.dev';
SELECT is(crm._default_sender('0000000a-0000-0000-0000-0000000000e9', NULL), 'CRM <noreply@resend.dev>', 'the resend.dev case');
SELECT is(crm._default_sender('0000000a-0000-0000-0000-0000000000e9', 'dana@gmail.com'), 'dana@gmail.com', 'the connected mailbox before the domain');

-- Suppressed addresses are refused.
INSERT INTO crm.email_suppressions (account_id, email, reason) VALUES ('0000000a-0000-0000-0000-0000000000e9', 'bounced@x.io', 'bounced');
SELECT throws_ok($$SELECT crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "a@x.io", "cc": "Bounced@X.io", "subject": "s", "text": "t"}')$$,
    '22023', 'message.to: bounced@x.io is on the suppression list (it bounced or complained)', 'a suppressed address is refused');
SELECT lives_ok($$SELECT crm.enqueue_email('{"account_id": "0000000b-0000-0000-0000-0000000000e9", "to": "bounced@x.io", "subject": "s", "text": "t"}')$$,
    'suppression is per account');

-- RLS: B's caller cannot queue for A, nor see or cancel A's mail.
SELECT tests.login('authenticated', '{"account_id": "0000000b-0000-0000-0000-0000000000e9"}');
SELECT throws_ok($$SELECT crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "a@x.io", "subject": "s", "text": "t"}')$$,
    '42501', NULL, 'B cannot queue into A''s account');
SELECT is((SELECT count(*) FROM crm.list_email_queue() WHERE recipient_email = 'john@example.com'), 0::bigint, 'B does not see A''s queue');
SELECT is(crm.cancel_email((SELECT id FROM crm.email_queue WHERE recipient_email = 'john@example.com')), false, 'B cannot cancel A''s email');
SELECT tests.logout();

-- The account's default active connection decides the provider and the sender; an inactive
-- one is skipped (then Resend).
INSERT INTO crm.email_providers (account_id, provider, provider_email, access_token_encrypted, is_default)
VALUES ('0000000a-0000-0000-0000-0000000000e9', 'gmail', 'dana@gmail.com', crm.encrypt_token('t'), true);
SELECT isnt(crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "dflt@x.io", "subject": "s", "text": "t"}'),
            NULL, 'an account whose default connection is Gmail queues');
SELECT is((SELECT provider || ' ' || from_email FROM crm.email_queue WHERE recipient_email = 'dflt@x.io'), 'gmail dana@gmail.com',
          'through the default Gmail mailbox, as that mailbox');
UPDATE crm.email_providers SET is_active = false WHERE provider_email = 'dana@gmail.com';
SELECT crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "dflt2@x.io", "subject": "s", "text": "t"}');
SELECT is((SELECT provider FROM crm.email_queue WHERE recipient_email = 'dflt2@x.io'), 'resend', 'an inactive default falls back to resend');

-- A batch is one statement (crm._enqueue): per message, the same answers as one by one.
INSERT INTO crm.email_suppressions (account_id, email, reason) VALUES ('0000000a-0000-0000-0000-0000000000e9', 'gone@x.io', 'complained');
SELECT throws_ok($$SELECT crm.enqueue_batch('[{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok1@x.io", "subject": "s", "text": "t"},
                                             {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok2@x.io", "cc": "Gone@X.io", "subject": "s", "text": "t"},
                                             {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok3@x.io", "template": "No Such Template"}]')$$,
    '22023', 'message.to: gone@x.io is on the suppression list (it bounced or complained)',
    'of two refused messages in a batch, the first (a suppressed cc) is the error');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE recipient_email IN ('ok1@x.io', 'ok2@x.io', 'ok3@x.io')), 0::bigint,
          '... and none of the batch was written');
SELECT throws_ok($$SELECT crm.enqueue_batch('[{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok1@x.io", "template": "No Such Template"},
                                             {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "gone@x.io", "subject": "s", "text": "t"}]')$$,
    '22023', 'message.template: unknown template "No Such Template"', '... in the caller''s order, whatever the check');
SELECT throws_ok($$SELECT crm.enqueue_batch('[{"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok1@x.io", "subject": "s", "text": "t"},
                                             {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "ok2@x.io", "subject": "s", "text": "t", "from": "CRM <ceo@elsewhere.example>"}]')$$,
    '22023', 'message.from: CRM <ceo@elsewhere.example> is not a verified sender of this account', 'a sender check per message in a batch');
CREATE TEMP TABLE keyed AS
SELECT row_number() OVER () AS n, id FROM crm.enqueue_batch('[
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "k1@x.io", "subject": "s", "text": "t", "idempotency_key": "batch-k"},
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "u1@x.io", "subject": "s", "text": "t"},
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "k2@x.io", "subject": "s", "text": "t", "idempotency_key": "batch-k"},
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "k3@x.io", "subject": "s", "text": "t", "idempotency_key": "welcome-42"}]') id;
SELECT is((SELECT array_agg(q.recipient_email ORDER BY k.n) FROM keyed k JOIN crm.email_queue q USING (id)),
          ARRAY['k1@x.io', 'u1@x.io', 'k1@x.io', 'k@x.io'],
          'ids in the messages'' order: a key repeated in the batch, and a key queued before, answer with the first row');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE recipient_email IN ('k1@x.io', 'k2@x.io', 'k3@x.io', 'u1@x.io')), 2::bigint,
          '... and write nothing for them');
INSERT INTO crm.email_templates (account_id, name, subject, html_content)
VALUES ('0000000a-0000-0000-0000-0000000000e9', 'Batch Tpl', 'Tpl subject', '<p>{{n}}</p>');
SELECT is((SELECT count(*) FROM crm.enqueue_batch('[
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "t1@x.io", "template": "Batch Tpl", "variables": {"n": 1}},
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "t2@x.io", "subject": "plain", "text": "t"},
    {"account_id": "0000000b-0000-0000-0000-0000000000e9", "to": "t3@x.io", "subject": "other account", "text": "t"}]')), 3::bigint,
          'a privileged batch over two accounts, with and without a template');
SELECT is((SELECT array_agg(concat_ws(' ', recipient_email, account_id, subject, template_id IS NOT NULL, from_email, template_variables) ORDER BY recipient_email)
           FROM crm.email_queue WHERE recipient_email IN ('t1@x.io', 't2@x.io', 't3@x.io')),
          ARRAY['t1@x.io 0000000a-0000-0000-0000-0000000000e9 Tpl subject t CRM <noreply@resend.dev> {"n": 1}',
                't2@x.io 0000000a-0000-0000-0000-0000000000e9 plain f CRM <noreply@resend.dev> {}',
                't3@x.io 0000000b-0000-0000-0000-0000000000e9 other account f 317 Plumber <help@317plumber.com> {}'],
          '... each message with its own account''s template and sender');

-- The queue's account and template are checked once per statement
-- (crm._email_queue_references_exist) instead of by the foreign keys' per-row triggers, with the
-- same errors; the keys themselves still cascade and check updates.
-- (tests/shell/queue_references_isolation.sh: the concurrent interleavings.)
CREATE TEMP TABLE before_fk AS SELECT pg_temp.rows() AS n;
SELECT throws_ok($$SELECT crm.enqueue_batch('[
    {"account_id": "0000000a-0000-0000-0000-0000000000e9", "to": "fk1@x.io", "subject": "s", "text": "t"},
    {"account_id": "0000000f-0000-0000-0000-0000000000e9", "to": "fk2@x.io", "subject": "s", "text": "t"}]')$$,
    '23503', 'insert or update on table "email_queue" violates foreign key constraint "email_queue_account_id_fkey"',
    'a privileged batch naming an account that does not exist: 23503, the foreign key named');
SELECT throws_ok($$INSERT INTO crm.email_queue (account_id, recipient_email, subject)
                  VALUES ('0000000a-0000-0000-0000-0000000000e9', 'fk3@x.io', 's'), ('0000000f-0000-0000-0000-0000000000e9', 'fk4@x.io', 's')$$,
    '23503', 'insert or update on table "email_queue" violates foreign key constraint "email_queue_account_id_fkey"',
    'a direct insert of an unknown account too, one good row beside it');
SELECT is(pg_temp.rows(), (SELECT n FROM before_fk), '... and neither wrote a row');
DO $$
BEGIN
    INSERT INTO crm.email_queue (account_id, recipient_email, subject) VALUES ('0000000f-0000-0000-0000-0000000000e9', 'fk5@x.io', 's');
EXCEPTION WHEN foreign_key_violation THEN
    DECLARE c text; t text; d text;
    BEGIN
        GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME, t = TABLE_NAME, d = PG_EXCEPTION_DETAIL;
        PERFORM set_config('tests.fk_error', concat_ws(' | ', c, t, d), true);
    END;
END $$;
SELECT is(current_setting('tests.fk_error'),
          'email_queue_account_id_fkey | email_queue | Key (account_id)=(0000000f-0000-0000-0000-0000000000e9) is not present in table "accounts".',
          '... with the constraint, the table and the key in the error fields, as the built-in check gives them');
SELECT throws_ok($$UPDATE crm.email_queue SET account_id = '0000000f-0000-0000-0000-0000000000e9' WHERE recipient_email = 't1@x.io'$$,
    '23503', NULL, 'moving a queued row to an unknown account is still refused by the foreign key');
SELECT throws_ok($$INSERT INTO crm.email_queue (account_id, recipient_email, subject, template_id)
                  VALUES ('0000000a-0000-0000-0000-0000000000e9', 'fk6@x.io', 's', '0000000f-0000-0000-0000-0000000000e9')$$,
    '23503', 'insert or update on table "email_queue" violates foreign key constraint "email_queue_template_id_fkey"',
    'a template that does not exist: 23503, the template''s key named');
SELECT is((SELECT string_agg(c.conname || ' ' || p.proname || '=' || t.tgenabled::text, ', ' ORDER BY c.conname, p.proname)
           FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint JOIN pg_proc p ON p.oid = t.tgfoid
           WHERE c.conname IN ('email_queue_account_id_fkey', 'email_queue_template_id_fkey')),
          'email_queue_account_id_fkey RI_FKey_cascade_del=O, email_queue_account_id_fkey RI_FKey_check_ins=D, '
          'email_queue_account_id_fkey RI_FKey_check_upd=O, email_queue_account_id_fkey RI_FKey_noaction_upd=O, '
          'email_queue_template_id_fkey RI_FKey_check_ins=D, email_queue_template_id_fkey RI_FKey_check_upd=O, '
          'email_queue_template_id_fkey RI_FKey_noaction_upd=O, email_queue_template_id_fkey RI_FKey_setnull_del=O',
          'the foreign keys'' cascades and update checks are on; only their per-row insert checks are off');
SELECT is(crm._disable_queue_reference_row_checks(), 2, 'turning the per-row insert checks off again is idempotent (after a pg_upgrade)');
INSERT INTO crm.accounts (id, name) VALUES ('0000000c-0000-0000-0000-0000000000e9', 'Queue C');
SELECT is((SELECT count(*) FROM crm.enqueue_batch('[
    {"account_id": "0000000c-0000-0000-0000-0000000000e9", "to": "c1@x.io", "subject": "s", "text": "t"},
    {"account_id": "0000000c-0000-0000-0000-0000000000e9", "to": "c2@x.io", "subject": "s", "text": "t"}]')), 2::bigint,
          'a new account''s mail is queued');
DELETE FROM crm.accounts WHERE id = '0000000c-0000-0000-0000-0000000000e9';
SELECT is((SELECT count(*) FROM crm.email_queue WHERE account_id = '0000000c-0000-0000-0000-0000000000e9'), 0::bigint,
          'deleting the account deletes its queued mail (the foreign key''s cascade)');

SELECT throws_ok($$SELECT crm.enqueue_email(NULL)$$, '22023', 'message: required', 'a NULL message is refused, not a silent NULL');
SELECT throws_ok($$SELECT crm.enqueue_batch(NULL)$$, '22023', 'messages: required', 'a NULL batch too');

SELECT * FROM finish();
ROLLBACK;
