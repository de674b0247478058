-- Token vault through SQL: round trip, random nonces, every failure with its SQLSTATE.
BEGIN;
SELECT plan(27);

SELECT is(crm.decrypt_token(crm.encrypt_token('ya29.a0-access')), 'ya29.a0-access', 'round trip without context');
SELECT is(crm.decrypt_token(crm.encrypt_token('1//refresh', 'email_providers:1:refresh_token'),
                            'email_providers:1:refresh_token'), '1//refresh', 'round trip with context');
SELECT is(crm.decrypt_token(crm.encrypt_token('')), '', 'empty token round trips');
SELECT is(crm.decrypt_token(crm.encrypt_token(repeat('é', 30000))), repeat('é', 30000), 'multibyte 60 KB token round trips');
SELECT is(crm.encrypt_token(NULL), NULL, 'encrypt: NULL in, NULL out');
SELECT is(crm.decrypt_token(NULL), NULL, 'decrypt: NULL in, NULL out');
SELECT is(crm.encrypt_token('x', NULL), NULL, 'NULL context gives NULL');

-- Fresh nonce per call: 1000 encryptions of one plaintext, 1000 distinct ciphertexts and nonces.
SELECT is(count(DISTINCT c), 1000::bigint, 'equal plaintexts never give equal ciphertexts')
  FROM (SELECT crm.encrypt_token('same') AS c FROM generate_series(1, 1000)) s;
SELECT is(count(DISTINCT substr(decode(c, 'base64'), 10, 12)), 1000::bigint, '96-bit nonces are distinct')
  FROM (SELECT crm.encrypt_token('same') AS c FROM generate_series(1, 1000)) s;

-- Format: version 1, then the current key's fingerprint.
SELECT is(get_byte(decode(crm.encrypt_token('x'), 'base64'), 0), 1, 'format version byte is 1');
SELECT is(crm.token_key_fingerprint(crm.encrypt_token('x')), crm.current_key_fingerprint(), 'fingerprint of the current key');
SELECT is(length(decode(crm.encrypt_token('abcde'), 'base64')), 1 + 8 + 12 + 5 + 16, 'layout: version, fingerprint, nonce, body, tag');

-- Failures, each with its SQLSTATE.
CREATE TEMP TABLE ct AS SELECT crm.encrypt_token('secret-token', 'ctx') AS c;
SELECT throws_ok($$SELECT crm.decrypt_token(
        encode(set_byte(decode(c, 'base64'), 29, get_byte(decode(c, 'base64'), 29) # 1), 'base64'), 'ctx') FROM ct$$,
    'XX001', 'ciphertext failed authentication (tampered, wrong key or wrong context)', 'tampered body: XX001');
SELECT throws_ok($$SELECT crm.decrypt_token(
        encode(overlay(decode(c, 'base64') placing '\xffffffffffffffff'::bytea from 2 for 8), 'base64'), 'ctx') FROM ct$$,
    '42704', NULL, 'tampered fingerprint: unknown key 42704');
SELECT throws_ok($$SELECT crm.decrypt_token(substr(c, 1, 28), 'ctx') FROM ct$$,
    '22P02', 'malformed ciphertext: truncated: shorter than header, nonce and tag', 'truncated: 22P02');
SELECT throws_ok($$SELECT crm.decrypt_token(substr(c, 1, length(c) - 1), 'ctx') FROM ct$$,
    '22P02', 'malformed ciphertext: not base64', 'cut mid-quantum: 22P02');
SELECT throws_ok($$SELECT crm.decrypt_token(encode(substr(decode(c, 'base64'), 1, 40), 'base64'), 'ctx') FROM ct$$,
    'XX001', NULL, 'cut on a whole byte boundary: the tag fails, XX001');
SELECT throws_ok($$SELECT crm.decrypt_token(c, 'other-ctx') FROM ct$$, 'XX001', NULL, 'wrong context: XX001');
SELECT throws_ok($$SELECT crm.decrypt_token(c) FROM ct$$, 'XX001', NULL, 'context missing: XX001');
SELECT throws_ok($$SELECT crm.decrypt_token('not base64 at all!')$$, '22P02', NULL, 'garbage: 22P02');
SELECT throws_ok($$SELECT crm.decrypt_token(encode('\x02'::bytea || substr(decode(c, 'base64'), 2), 'base64'), 'ctx') FROM ct$$,
    '22P02', 'malformed ciphertext: unknown format version', 'unknown version: 22P02');
SELECT throws_ok($$SELECT crm.decrypt_token(repeat('QUFB', 100000))$$, '22P02', NULL, 'oversized ciphertext refused before decoding');
SELECT throws_ok($$SELECT crm.encrypt_token(repeat('x', 65537))$$, '54000', NULL, 'plaintext over 64 KiB: 54000');

-- Wrong key: a token from another key is an unknown fingerprint, with a hint, not garbage out.
SET LOCAL crm.encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SELECT throws_ok($$SELECT crm.decrypt_token(c, 'ctx') FROM ct$$, '42704', NULL, 'wrong key: 42704');

-- Key settings.
SET LOCAL crm.encryption_key = '';
SELECT throws_ok($$SELECT crm.encrypt_token('x')$$, '55000', 'crm.encryption_key is not set', 'missing key: 55000');
SET LOCAL crm.encryption_key = 'c2hvcnQ=';
SELECT throws_ok($$SELECT crm.encrypt_token('x')$$, '22023',
    'crm.encryption_key entry 1 is not a usable key: does not decode to 32 bytes', 'malformed key: 22023');
RESET crm.encryption_key;
SET LOCAL crm.encryption_key_previous = 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=,zzz';
SELECT throws_ok($$SELECT crm.encrypt_token('x')$$, '22023',
    'crm.encryption_key_previous entry 2 is not a usable key: neither 64 hex digits nor base64', 'malformed previous key: 22023');

SELECT * FROM finish();
ROLLBACK;
