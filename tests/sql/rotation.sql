-- crm.rotate_encryption_key(): re-encrypts every stored token in batches, keeps bindings, and
-- afterwards the old key is no longer needed.
BEGIN;
SELECT plan(16);

SET LOCAL crm.encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SET LOCAL crm.encryption_key_previous = '';
INSERT INTO crm.accounts (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'Rotation Co');

-- 5 email providers (one without a refresh token, one stored without context) and
-- 2 calendar providers: 5 + 4 + 2 + 2 = 13 tokens... counted below.
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted)
SELECT id, '00000000-0000-0000-0000-0000000000a1', 'gmail', 'u' || n || '@example.com',
       crm.encrypt_token('access-' || n, 'email_providers:' || id || ':access_token'),
       CASE WHEN n = 3 THEN NULL ELSE crm.encrypt_token('refresh-' || n, 'email_providers:' || id || ':refresh_token') END
FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, 5) n) s;
UPDATE crm.email_providers SET access_token_encrypted = crm.encrypt_token('legacy-unbound')
 WHERE provider_email = 'u5@example.com';
INSERT INTO crm.calendar_providers (id, account_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted)
SELECT id, '00000000-0000-0000-0000-0000000000a1', 'google', 'c' || n || '@example.com',
       crm.encrypt_token('cal-access-' || n, 'calendar_providers:' || id || ':access_token'),
       crm.encrypt_token('cal-refresh-' || n, 'calendar_providers:' || id || ':refresh_token')
FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, 2) n) s;

CREATE TEMP TABLE before AS
SELECT 'email_providers' AS t, id, crm.decrypt_token(access_token_encrypted, 'email_providers:' || id || ':access_token') AS a,
       crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token') AS r
  FROM crm.email_providers WHERE provider_email <> 'u5@example.com'
UNION ALL
SELECT 'calendar_providers', id, crm.decrypt_token(access_token_encrypted, 'calendar_providers:' || id || ':access_token'),
       crm.decrypt_token(refresh_token_encrypted, 'calendar_providers:' || id || ':refresh_token')
  FROM crm.calendar_providers;
SELECT is((SELECT count(*) FROM before), 6::bigint, 'fixture: 6 bound rows');

-- A bound token moved to another row no longer decrypts.
SELECT throws_ok($$SELECT crm.decrypt_token(a.access_token_encrypted, 'email_providers:' || b.id || ':access_token')
                   FROM crm.email_providers a, crm.email_providers b
                   WHERE a.provider_email = 'u1@example.com' AND b.provider_email = 'u2@example.com'$$,
                 'XX001', NULL, 'a token copied to another row fails to decrypt');

-- Nothing to do while the key has not changed.
SELECT is(crm.rotate_encryption_key(), 0::bigint, 'no rotation needed under the same key');

-- Rotate to K2, K1 kept as previous; batch size 2 forces several batches per table.
SET LOCAL crm.encryption_key = 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=';
SET LOCAL crm.encryption_key_previous = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SELECT is((SELECT count(*) FROM crm.email_providers WHERE crm.token_needs_rotation(access_token_encrypted)), 5::bigint,
          'before: every access token is under the old key');
SELECT is(crm.rotate_encryption_key(2), 13::bigint, 'rotation re-encrypts 5+4 email and 2+2 calendar tokens');
SELECT is((SELECT count(*) FROM crm.email_providers
            WHERE crm.token_key_fingerprint(access_token_encrypted) <> crm.current_key_fingerprint()
               OR crm.token_key_fingerprint(refresh_token_encrypted) <> crm.current_key_fingerprint()), 0::bigint,
          'after: every email token is under the new key');
SELECT is((SELECT count(*) FROM crm.calendar_providers
            WHERE crm.token_key_fingerprint(access_token_encrypted) <> crm.current_key_fingerprint()), 0::bigint,
          'after: every calendar token is under the new key');
SELECT is((SELECT count(*) FROM crm.email_providers WHERE provider_email = 'u3@example.com' AND refresh_token_encrypted IS NULL),
          1::bigint, 'a NULL refresh token stays NULL');
SELECT is(crm.rotate_encryption_key(), 0::bigint, 'a second rotation has nothing to do');

-- Drop the old key: everything still decrypts, bindings intact.
SET LOCAL crm.encryption_key_previous = '';
SELECT results_eq(
    $$SELECT t, id, a, r FROM before ORDER BY id$$,
    $$SELECT 'email_providers'::text, id, crm.decrypt_token(access_token_encrypted, 'email_providers:' || id || ':access_token'),
             crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token')
        FROM crm.email_providers WHERE provider_email <> 'u5@example.com'
      UNION ALL
      SELECT 'calendar_providers', id, crm.decrypt_token(access_token_encrypted, 'calendar_providers:' || id || ':access_token'),
             crm.decrypt_token(refresh_token_encrypted, 'calendar_providers:' || id || ':refresh_token')
        FROM crm.calendar_providers ORDER BY id$$,
    'with the old key gone, every bound token decrypts to the same plaintext');
SELECT is((SELECT crm.decrypt_token(access_token_encrypted) FROM crm.email_providers WHERE provider_email = 'u5@example.com'),
          'legacy-unbound', 'an unbound token stays unbound');

-- A token under a key that is no longer configured stops rotation, and nothing is changed.
SET LOCAL crm.encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
UPDATE crm.email_providers SET access_token_encrypted = crm.encrypt_token('orphan', 'email_providers:' || id || ':access_token')
 WHERE provider_email = 'u1@example.com';
SET LOCAL crm.encryption_key = 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=';
CREATE TEMP TABLE snapshot AS SELECT id, access_token_encrypted, refresh_token_encrypted FROM crm.email_providers;
SET LOCAL crm.encryption_key = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
SELECT throws_ok('SELECT crm.rotate_encryption_key()', '42704', NULL, 'a token under an unconfigured key stops rotation: 42704');
SELECT is((SELECT count(*) FROM crm.email_providers p JOIN snapshot s USING (id)
            WHERE p.access_token_encrypted IS DISTINCT FROM s.access_token_encrypted
               OR p.refresh_token_encrypted IS DISTINCT FROM s.refresh_token_encrypted), 0::bigint,
          '... and no token was rewritten');

SET LOCAL crm.encryption_key = '';
SELECT throws_ok('SELECT crm.rotate_encryption_key()', '55000', NULL, 'rotation without a key: 55000');
RESET crm.encryption_key;
SELECT throws_ok('SELECT crm.rotate_encryption_key(0)', '22023', NULL, 'batch_size 0: 22023');

DELETE FROM crm.accounts WHERE id = '00000000-0000-0000-0000-0000000000a1';
SELECT tests.share_tap();
SELECT tests.login('service_role', NULL);
SELECT lives_ok('SELECT crm.rotate_encryption_key()', 'service_role may rotate');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
