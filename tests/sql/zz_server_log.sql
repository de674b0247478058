-- Runs last (files run in name order): after every other test has exercised the vault's error
-- paths with log_statement = 'all' and verbose error logging, the server log must not contain
-- the cluster's key anywhere.
BEGIN;
SELECT plan(2);
SELECT ok(length(pg_read_file(current_setting('crm_test.log_file'))) > 1000, 'the server log was written');
SELECT ok(position(current_setting('crm.encryption_key') IN pg_read_file(current_setting('crm_test.log_file'))) = 0,
          'the server log does not contain the vault key');
SELECT * FROM finish();
ROLLBACK;
