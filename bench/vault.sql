-- Token vault benchmark (issue: foundation). One run, one session, the same 100,000 tokens of
-- 40-200 bytes for every contender:
--   crm.encrypt_token / decrypt_token         AES-256-GCM, random nonce, authenticated
--   pgcrypto encrypt(..,'aes') / decrypt      AES-CBC, no nonce, no integrity (the reference's choice)
--   pgp_sym_encrypt / pgp_sym_decrypt         OpenPGP symmetric, S2K key derivation per call
\set ON_ERROR_STOP on
\pset footer off
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\i bench/_harness.sql
DELETE FROM bench.runs WHERE suite = 'vault';

DROP TABLE IF EXISTS bench.tokens;
CREATE TABLE bench.tokens AS
SELECT i, left(repeat(md5(i::text), 7), 40 + (i * 7919) % 161) AS t
FROM generate_series(1, 100000) i;
\echo 'tokens:'
SELECT min(octet_length(t)) AS min_bytes, max(octet_length(t)) AS max_bytes, count(*) AS tokens FROM bench.tokens;

-- A 32-byte key for pgcrypto, as text (the reference passes current_setting(..)::bytea).
SELECT 'k3y-for-pgcrypto-benchmark-32byt' AS pgkey \gset

DROP TABLE IF EXISTS bench.ct_crm, bench.ct_aes, bench.ct_pgp;
CREATE TABLE bench.ct_crm AS SELECT crm.encrypt_token(t) AS c FROM bench.tokens;
CREATE TABLE bench.ct_aes AS SELECT encrypt(t::bytea, :'pgkey'::bytea, 'aes') AS c FROM bench.tokens;
CREATE TABLE bench.ct_pgp AS SELECT pgp_sym_encrypt(t, :'pgkey') AS c FROM bench.tokens;
\echo 'sanity: every contender decrypts what it encrypted'
SELECT (SELECT count(*) FROM bench.ct_crm WHERE crm.decrypt_token(c) IS NULL) = 0 AS crm_ok,
       (SELECT bool_and(a.t = convert_from(decrypt(b.c, :'pgkey'::bytea, 'aes'), 'UTF8'))
          FROM (SELECT t, row_number() OVER () n FROM bench.tokens) a
          JOIN (SELECT c, row_number() OVER () n FROM bench.ct_aes) b USING (n)) AS aes_ok;

\o /dev/null
SELECT bench.time_it('vault', 'encrypt: crm.encrypt_token', 'SELECT count(crm.encrypt_token(t)) FROM bench.tokens', 5, 100000);
SELECT bench.time_it('vault', 'encrypt: crm.encrypt_token (context)', $q$SELECT count(crm.encrypt_token(t, 'email_providers:' || i || ':access_token')) FROM bench.tokens$q$, 5, 100000);
SELECT bench.time_it('vault', 'encrypt: pgcrypto encrypt aes', format('SELECT count(encrypt(t::bytea, %L::bytea, %L)) FROM bench.tokens', :'pgkey', 'aes'), 5, 100000);
SELECT bench.time_it('vault', 'encrypt: pgcrypto pgp_sym_encrypt', format('SELECT count(pgp_sym_encrypt(t, %L)) FROM bench.tokens', :'pgkey'), 1, 100000);
SELECT bench.time_it('vault', 'decrypt: crm.decrypt_token', 'SELECT count(crm.decrypt_token(c)) FROM bench.ct_crm', 5, 100000);
SELECT bench.time_it('vault', 'decrypt: pgcrypto decrypt aes', format('SELECT count(decrypt(c, %L::bytea, %L)) FROM bench.ct_aes', :'pgkey', 'aes'), 5, 100000);
SELECT bench.time_it('vault', 'decrypt: pgcrypto pgp_sym_decrypt', format('SELECT count(pgp_sym_decrypt(c, %L)) FROM bench.ct_pgp', :'pgkey'), 1, 100000);

\o
\echo
\echo '## Token vault: 100,000 tokens of 40-200 bytes, median of runs'
SELECT label, runs, median_ms, per_second FROM bench.summary WHERE suite = 'vault' ORDER BY label;

WITH m AS (SELECT label, median_ms FROM bench.summary WHERE suite = 'vault')
SELECT 'encrypt' AS op,
       round((SELECT median_ms FROM m WHERE label = 'encrypt: pgcrypto encrypt aes')
           / (SELECT median_ms FROM m WHERE label = 'encrypt: crm.encrypt_token'), 2) AS "x vs raw aes (target >= 1)",
       round((SELECT median_ms FROM m WHERE label = 'encrypt: pgcrypto pgp_sym_encrypt')
           / (SELECT median_ms FROM m WHERE label = 'encrypt: crm.encrypt_token'), 1) AS "x vs pgp_sym (target >= 50)"
UNION ALL
SELECT 'decrypt',
       round((SELECT median_ms FROM m WHERE label = 'decrypt: pgcrypto decrypt aes')
           / (SELECT median_ms FROM m WHERE label = 'decrypt: crm.decrypt_token'), 2),
       round((SELECT median_ms FROM m WHERE label = 'decrypt: pgcrypto pgp_sym_decrypt')
           / (SELECT median_ms FROM m WHERE label = 'decrypt: crm.decrypt_token'), 1);
