-- The vault key never reaches a non-superuser: not by SHOW, current_setting, pg_settings,
-- pg_file_settings, error texts, EXPLAIN or the server log; and only superusers and
-- service_role may decrypt.
BEGIN;
SELECT plan(21);
SELECT tests.share_tap();

CREATE TEMP TABLE k AS SELECT current_setting('crm.encryption_key') AS key;
GRANT SELECT ON k TO PUBLIC;  -- the comparisons below run as other roles; the table is ours
CREATE TEMP TABLE tok AS SELECT crm.encrypt_token('refresh-me') AS c;
GRANT SELECT ON tok TO PUBLIC;
SELECT ok(length((SELECT key FROM k)) >= 43, 'the cluster has a key (superuser can read it)');

SELECT tests.login('authenticated', '{"account_id": "00000000-0000-0000-0000-00000000000a"}');
SELECT throws_ok('SHOW crm.encryption_key', '42501', NULL, 'authenticated: SHOW refused');
SELECT throws_ok('SHOW crm.encryption_key_previous', '42501', NULL, 'authenticated: SHOW previous refused');
SELECT throws_ok($$SELECT current_setting('crm.encryption_key')$$, '42501', NULL, 'authenticated: current_setting refused');
SELECT ok(tests.error_text($$SELECT current_setting('crm.encryption_key', true)$$) IS NOT NULL
          OR current_setting('crm.encryption_key', true) IS NULL,
          'authenticated: current_setting(missing_ok) does not return it');
SELECT is((SELECT count(*) FROM pg_settings WHERE name LIKE 'crm.encryption%'), 0::bigint,
          'authenticated: pg_settings hides both key settings');
SELECT is((SELECT count(*) FROM pg_settings WHERE setting = (SELECT key FROM k)), 0::bigint,
          'authenticated: no pg_settings row carries the key');
SELECT throws_ok('SELECT * FROM pg_file_settings', '42501', NULL, 'authenticated: pg_file_settings refused');
SELECT throws_ok($$SET crm.encryption_key = 'AAAA'$$, '42501', NULL, 'authenticated: cannot set the key');
SELECT throws_ok($$SELECT crm.decrypt_token(c) FROM tok$$, '42501', NULL, 'authenticated: decrypt_token refused');
SELECT throws_ok($$SELECT crm.decrypt_token(c, 'x') FROM tok$$, '42501', NULL, 'authenticated: decrypt_token(ctx) refused');
SELECT throws_ok($$SELECT crm.rotate_encryption_key()$$, '42501', NULL, 'authenticated: rotate refused');
SELECT ok(length(crm.encrypt_token('mine')) > 0, 'authenticated may encrypt (it never sees the key)');
-- The providers' secrets are settings of the same kind.
SELECT is((SELECT count(*) FROM unnest(ARRAY['crm.resend_api_key', 'crm.stripe_webhook_secret', 'crm.resend_webhook_secret',
              'crm.google_client_secret', 'crm.microsoft_client_secret', 'crm.smtp_password',
              'crm.google_maps_api_key']) s
           WHERE tests.error_text('SHOW ' || s) IS NULL), 0::bigint,
          'authenticated: SHOW refused for every provider secret');
SELECT is((SELECT count(*) FROM pg_settings WHERE name IN ('crm.resend_api_key', 'crm.stripe_webhook_secret', 'crm.resend_webhook_secret',
              'crm.google_client_secret', 'crm.microsoft_client_secret', 'crm.smtp_password',
              'crm.google_maps_api_key')), 0::bigint,
          'authenticated: pg_settings hides every provider secret');
SELECT ok(position((SELECT key FROM k) IN
            (SELECT string_agg(x, ' ') FROM (SELECT tests.error_text(q) AS x FROM unnest(ARRAY[
                'SHOW crm.encryption_key',
                'SELECT crm.decrypt_token(''AAAA'')',
                'SELECT crm.encrypt_token(repeat(''x'', 70000))']) q) e)) = 0,
          'authenticated: no error text carries the key');
SELECT tests.logout();

SELECT tests.login('anon', NULL);
SELECT throws_ok($$SELECT crm.decrypt_token(c) FROM tok$$, '42501', NULL, 'anon: decrypt_token refused');
SELECT tests.logout();

SELECT tests.login('service_role', NULL);
SELECT is((SELECT crm.decrypt_token(c) FROM tok), 'refresh-me', 'service_role may decrypt');
SELECT throws_ok('SHOW crm.encryption_key', '42501', NULL, 'service_role still cannot read the key');
SELECT tests.logout();

-- Errors from a malformed or foreign key never quote key material.
SET LOCAL crm.encryption_key = 'dGhpcy1pcy1hLXNlY3JldC1idXQtbm90LTMyLWJ5dGVz';
SELECT ok(position('dGhpcy1pcy1hLXNlY3JldC1idXQtbm90LTMyLWJ5dGVz' IN tests.error_text($$SELECT crm.encrypt_token('x')$$)) = 0,
          'malformed-key error does not quote the key');
RESET crm.encryption_key;

SELECT ok(position((SELECT key FROM k) IN
            (SELECT string_agg(line, E'\n') FROM (SELECT * FROM tests.explain_lines(
                'EXPLAIN (VERBOSE, COSTS OFF) SELECT crm.encrypt_token(''x''), crm.decrypt_token(c) FROM tok')) e(line))) = 0,
          'EXPLAIN VERBOSE does not show the key');

SELECT * FROM finish();
ROLLBACK;
