-- Tenant isolation: an authenticated caller with account A's claims cannot read, insert into,
-- update or delete account B's rows in any tenant table; service_role sees all; anon nothing.
BEGIN;
SELECT plan(27);

-- Fixture: one row per table for each of two accounts (as the owner, bypassing RLS).
CREATE TEMP TABLE acct (k text PRIMARY KEY, id uuid);
INSERT INTO acct VALUES ('A', '0000000a-0000-0000-0000-000000000000'), ('B', '0000000b-0000-0000-0000-000000000000');
GRANT SELECT ON acct TO PUBLIC;
INSERT INTO crm.accounts (id, name) SELECT id, 'Account ' || k FROM acct;
INSERT INTO crm.users (id, account_id, email, role)
    SELECT ('1000000' || lower(k) || '-0000-0000-0000-000000000000')::uuid, id, 'owner@' || k || '.example', 'owner' FROM acct;
INSERT INTO crm.contacts (account_id, first_name, email) SELECT id, 'Pat', 'pat@' || k || '.example' FROM acct;
INSERT INTO crm.jobs (account_id, title, status) SELECT id, 'Fix sink ' || k, 'scheduled' FROM acct;
INSERT INTO crm.invoices (account_id, invoice_number, amount) SELECT id, 'INV-' || k, 12345 FROM acct;
INSERT INTO crm.payments (account_id, amount, status) SELECT id, 12345, 'succeeded' FROM acct;
INSERT INTO crm.email_providers (account_id, provider, provider_email, access_token_encrypted)
    SELECT id, 'gmail', 'mail@' || k || '.example', crm.encrypt_token('tok-' || k) FROM acct;
INSERT INTO crm.calendar_providers (account_id, provider, provider_email, access_token_encrypted)
    SELECT id, 'google', 'cal@' || k || '.example', crm.encrypt_token('cal-' || k) FROM acct;
INSERT INTO crm.email_templates (account_id, name, subject, html_content) SELECT id, 'T ' || k, 'S', '<p>x</p>' FROM acct;
INSERT INTO crm.email_templates (account_id, name, subject, html_content) VALUES (NULL, 'Global probe', 'S', 'x');
INSERT INTO crm.email_queue (account_id, recipient_email, subject, html_content) SELECT id, 'to@' || k || '.example', 'Hi', 'x' FROM acct;
INSERT INTO crm.email_analytics (account_id, message_id, recipient_email, event) SELECT id, 'msg-' || k, 'to@x', 'delivered' FROM acct;

SELECT tests.share_tap();
CREATE TEMP TABLE probe (tbl text, r jsonb);
GRANT ALL ON probe TO PUBLIC;

-- As authenticated with A's claims, probe every tenant table.
SELECT tests.login('authenticated', jsonb_build_object('account_id', (SELECT id FROM acct WHERE k = 'A')));
INSERT INTO probe SELECT t, tests.rls_probe(t, (SELECT id FROM acct WHERE k = 'A'), (SELECT id FROM acct WHERE k = 'B'))
FROM unnest(ARRAY['accounts', 'users', 'contacts', 'jobs', 'invoices', 'payments', 'email_providers',
                  'calendar_providers', 'email_templates', 'email_queue', 'email_analytics']) t;
SELECT tests.logout();

-- Per table: A reads its own rows and none of B's; writing B's rows is refused (42501) or
-- touches nothing; moving its own rows to B is refused by WITH CHECK.
SELECT ok((r ->> 'see_own')::int >= 1 AND r ->> 'see_other' = '0'
          AND r ->> 'insert_other' = '42501'
          AND r ->> 'update_other' IN ('0', '42501')
          AND r ->> 'move_to_other' = '42501'
          AND r ->> 'delete_other' IN ('0', '42501'),
          format('%s: A reads only its own rows and cannot write B''s %s', tbl, r))
FROM probe ORDER BY tbl;
-- ... and B's data is intact, checked as the owner.
SELECT is((SELECT count(*) FROM crm.users WHERE account_id = (SELECT id FROM acct WHERE k = 'B')), 1::bigint, 'B''s user still there');
SELECT is((SELECT count(*) FROM crm.email_queue WHERE account_id = (SELECT id FROM acct WHERE k = 'B')), 1::bigint, 'B''s queue row still there');
SELECT is((SELECT count(*) FROM crm.email_providers WHERE account_id = (SELECT id FROM acct WHERE k = 'B')), 1::bigint, 'B''s provider still there');
SELECT is((SELECT count(*) FROM crm.email_templates WHERE account_id IS NOT NULL), 2::bigint, 'no template was copied across accounts');
SELECT is((SELECT count(*) FROM crm.invoices), 2::bigint, 'no invoice was copied across accounts');


-- Global templates: readable by every account, writable by none.
SELECT tests.login('authenticated', jsonb_build_object('account_id', (SELECT id FROM acct WHERE k = 'A')));
SELECT is((SELECT count(*) FROM crm.email_templates WHERE account_id IS NULL AND name = 'Global probe'), 1::bigint, 'A reads the global template');
SELECT is(tests.error_text($$INSERT INTO crm.email_templates (account_id, name, subject, html_content) VALUES (NULL, 'Sneaky', 's', 'x')$$) IS NOT NULL,
          true, 'A cannot create a global template');
UPDATE crm.email_templates SET subject = 'hacked' WHERE account_id IS NULL;
SELECT tests.logout();
SELECT is((SELECT subject FROM crm.email_templates WHERE name = 'Global probe'), 'S', 'A cannot edit the global template');

-- Identity resolution: app_metadata.account_id, and sub -> users row.
SELECT tests.login('authenticated', jsonb_build_object('app_metadata', jsonb_build_object('account_id', (SELECT id FROM acct WHERE k = 'B'))));
SELECT is((SELECT array_agg(name) FROM crm.accounts), ARRAY['Account B'], 'app_metadata.account_id resolves the account');
SELECT tests.logout();
SELECT tests.login('authenticated', '{"sub": "1000000a-0000-0000-0000-000000000000", "role": "authenticated"}');
SELECT is((SELECT array_agg(name) FROM crm.accounts), ARRAY['Account A'], 'sub resolves through the users row');
SELECT tests.logout();
SELECT tests.login('authenticated', '{"account_id": "not-a-uuid"}');
SELECT is((SELECT count(*) FROM crm.jobs), 0::bigint, 'a malformed account claim sees nothing');
SELECT tests.logout();
SELECT tests.login('authenticated', '{"sub": "99999999-0000-0000-0000-000000000000"}');
SELECT is((SELECT count(*) FROM crm.jobs), 0::bigint, 'an unknown sub sees nothing');
SELECT tests.logout();

-- anon: nothing at all, even with claims naming an account.
SELECT tests.login('anon', jsonb_build_object('account_id', (SELECT id FROM acct WHERE k = 'A')));
SELECT throws_ok('SELECT count(*) FROM crm.jobs', '42501', NULL, 'anon cannot read tenant tables');
SELECT tests.logout();

-- service_role: everything.
SELECT tests.login('service_role', NULL);
SELECT is((SELECT count(*) FROM crm.jobs), 2::bigint, 'service_role sees every account''s jobs');
SELECT is((SELECT count(*) FROM crm.email_providers), 2::bigint, 'service_role sees every provider');
SELECT tests.logout();
-- A member of service_role without BYPASSRLS is let through by the policy, not the attribute.
CREATE ROLE crm_test_backend NOLOGIN NOBYPASSRLS IN ROLE service_role;
SELECT tests.login('crm_test_backend', NULL);
SELECT is((SELECT count(*) FROM crm.invoices), 2::bigint, 'a service_role member without BYPASSRLS sees every invoice');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
