-- crm.config_check(): each setting missing, malformed and good, judged by form without ever
-- repeating a secret; superuser and service_role only.
BEGIN;
SELECT plan(24);
SELECT tests.share_tap();

CREATE FUNCTION pg_temp.judged(name text) RETURNS text LANGUAGE sql AS $$
    SELECT status || ': ' || detail FROM crm.config_check() WHERE setting = name $$;
GRANT EXECUTE ON FUNCTION pg_temp.judged(text) TO PUBLIC;

-- Resend's API key: missing, malformed, good; the detail never shows the value.
SET LOCAL crm.resend_api_key = '';
SELECT is(pg_temp.judged('crm.resend_api_key'), 'missing: not set', 'resend_api_key missing');
SET LOCAL crm.resend_api_key = 'sk_live_notresend12345';
SELECT is(pg_temp.judged('crm.resend_api_key'), 'invalid: must start with re_ (as the provider''s dashboard shows it)', 'resend_api_key malformed (not re_)');
SET LOCAL crm.resend_api_key = 're_Secret123456789';
SELECT is(pg_temp.judged('crm.resend_api_key'), 'ok: re_… (18 characters)', 'resend_api_key good, shown only as its public prefix and length');
SELECT is((SELECT count(*) FROM crm.config_check() WHERE detail LIKE '%Secret123%' OR detail LIKE '%notresend%'), 0::bigint,
          'no detail repeats a secret');

-- Webhook secrets
SET LOCAL crm.stripe_webhook_secret = '';
SELECT is(pg_temp.judged('crm.stripe_webhook_secret'), 'missing: not set', 'stripe_webhook_secret missing');
SET LOCAL crm.stripe_webhook_secret = 'sk_test_wrongthing';
SELECT matches(pg_temp.judged('crm.stripe_webhook_secret'), '^invalid: must start with whsec_', 'stripe_webhook_secret malformed');
SET LOCAL crm.stripe_webhook_secret = 'whsec_abcdefghijklmnop';
SELECT matches(pg_temp.judged('crm.stripe_webhook_secret'), '^ok: whsec_… ', 'stripe_webhook_secret good');

-- The vault key
SET LOCAL crm.encryption_key = '';
SELECT is(pg_temp.judged('crm.encryption_key'), 'missing: not set', 'encryption_key missing');
SET LOCAL crm.encryption_key = 'c2hvcnQ=';
SELECT matches(pg_temp.judged('crm.encryption_key'), '^invalid: ', 'encryption_key malformed (not 32 bytes)');
SELECT unalike(pg_temp.judged('crm.encryption_key'), '%c2hvcnQ%', '... and the detail does not quote it');
SET LOCAL crm.encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SELECT is(pg_temp.judged('crm.encryption_key'), 'ok: 32 bytes', 'encryption_key good');

-- Google and Microsoft apps
SET LOCAL crm.google_client_id = '';
SELECT is(pg_temp.judged('crm.google_client_id'), 'missing: not set', 'google_client_id missing');
SET LOCAL crm.google_client_id = '1234-abc';
SELECT matches(pg_temp.judged('crm.google_client_id'), '^invalid: a Google OAuth client id ends with', 'google_client_id malformed');
SET LOCAL crm.google_client_id = '1234-abc.apps.googleusercontent.com';
SELECT is(pg_temp.judged('crm.google_client_id'), 'ok: 1234-abc.apps.googleusercontent.com', 'google_client_id good (not a secret: shown)');
SET LOCAL crm.microsoft_client_id = 'my-app';
SELECT matches(pg_temp.judged('crm.microsoft_client_id'), '^invalid: an application \(client\) id is a GUID', 'microsoft_client_id malformed');
SET LOCAL crm.microsoft_client_id = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
SELECT matches(pg_temp.judged('crm.microsoft_client_id'), '^ok: ', 'microsoft_client_id good');
SET LOCAL crm.microsoft_client_secret = '';
SELECT is(pg_temp.judged('crm.microsoft_client_secret'), 'missing: not set', 'microsoft_client_secret missing');
SET LOCAL crm.microsoft_client_secret = 'abc~verysecretvalue';
SELECT is(pg_temp.judged('crm.microsoft_client_secret'), 'ok: 19 characters', 'microsoft_client_secret good, shown only as its length');

-- URLs and the verified domain
SET LOCAL crm.resend_base_url = 'api.resend.com';
SELECT matches(pg_temp.judged('crm.resend_base_url'), '^invalid: must be an http\(s\) URL', 'resend_base_url malformed');
SET LOCAL crm.resend_verified_domain = '@317plumber.com';
SELECT matches(pg_temp.judged('crm.resend_verified_domain'), '^invalid: ', 'resend_verified_domain malformed');
SET LOCAL crm.resend_verified_domain = '317plumber.com';
SELECT is(pg_temp.judged('crm.resend_verified_domain'), 'ok: 317plumber.com', 'resend_verified_domain good');

-- Who may call it
SELECT tests.login('authenticated', '{"account_id": "00000000-0000-0000-0000-0000000000aa"}');
SELECT throws_ok($$SELECT * FROM crm.config_check()$$, '42501', NULL, 'authenticated cannot run the configuration check');
SELECT tests.logout();
SELECT tests.login('anon', NULL);
SELECT throws_ok($$SELECT * FROM crm.config_check()$$, '42501', NULL, 'anon cannot either');
SELECT tests.logout();
SELECT tests.login('service_role', '{"role": "service_role"}');
SELECT cmp_ok((SELECT count(*) FROM crm.config_check()), '>=', 19::bigint, 'service_role can: one row per setting');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
