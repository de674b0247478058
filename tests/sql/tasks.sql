-- The integration task queue: kinds registered in Rust, enqueue's checks (exact SQLSTATEs,
-- nothing written), coalescing by dedupe_key, the run → record cycle and its outcomes
-- (done, failed, release, superseded), lease exhaustion, the dead-letter queue (retry,
-- cancel, purge), bad rows failing alone, and who may do what.
BEGIN;
SELECT plan(52);
SELECT tests.share_tap();

INSERT INTO crm.accounts (id, name) VALUES
  ('0000000a-0000-0000-0000-0000000007a1', 'Tasks A'),
  ('0000000a-0000-0000-0000-0000000007b1', 'Tasks B');
CREATE FUNCTION pg_temp.n(status text DEFAULT NULL) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM crm.integration_tasks
    WHERE account_id IN ('0000000a-0000-0000-0000-0000000007a1', '0000000a-0000-0000-0000-0000000007b1')
      AND ($1 IS NULL OR status = $1) $$;
GRANT EXECUTE ON FUNCTION pg_temp.n(text) TO PUBLIC;

-- Kinds
SELECT ok((SELECT array_agg(kind ORDER BY kind) FROM crm.integration_task_kinds()) @> ARRAY['noop', 'oauth.refresh'],
          'the registered kinds are listed, noop and oauth.refresh among them');

-- Enqueue's checks: the exact SQLSTATE, and nothing written
SELECT throws_ok($$SELECT crm.enqueue_task('calendar.nope', '{}', NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '22023', 'unknown task kind "calendar.nope"', 'an unknown kind is refused (22023)');
SELECT throws_ok($$SELECT crm.enqueue_task('noop', '[1, 2]', NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '22023', 'noop: the payload must be a JSON object', 'a payload the handler cannot run is refused');
SELECT throws_ok($$SELECT crm.enqueue_task('oauth.refresh', '{}', NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '22023', 'oauth.refresh: the payload needs connection_id (an email_providers id)', 'a missing payload field is named');
SELECT throws_ok($$SELECT crm.enqueue_task('oauth.refresh', '{"connection_id": "x''; DROP TABLE crm.jobs; --"}', NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '22023', 'oauth.refresh: connection_id must be a uuid', 'a malformed id is refused before any SQL sees it');
SELECT throws_ok($$SELECT crm.enqueue_task('noop', '{}', NULL, now(), NULL)$$,
                 '22023', NULL, 'no account: refused');
SELECT throws_ok($$SELECT crm.enqueue_task('noop', '{}', repeat('k', 300), now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '23514', NULL, 'a dedupe_key over 256 characters is refused');
SET LOCAL crm.max_json_argument_bytes = 1024;
SELECT throws_ok($$SELECT crm.enqueue_task('noop', jsonb_build_object('x', repeat('a', 2000)), NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '54000', NULL, 'a payload over crm.max_json_argument_bytes is refused (54000)');
RESET crm.max_json_argument_bytes;
SELECT throws_ok($$SELECT crm.enqueue_task('noop', (repeat('{"a":', 300) || '1' || repeat('}', 300))::jsonb, NULL, now(), '0000000a-0000-0000-0000-0000000007a1')$$,
                 '22023', NULL, 'a payload nested deeper than the parser takes is refused (22023), not an internal error');
SELECT is(pg_temp.n(), 0::bigint, '... and none of these wrote a task');

-- Coalescing: five enqueues with one key while pending = one task with the last payload
SELECT crm.enqueue_task('noop', jsonb_build_object('version', v), 'job-42', now() + interval '1 hour', '0000000a-0000-0000-0000-0000000007a1')
FROM generate_series(1, 5) v;
SELECT is(pg_temp.n(), 1::bigint, 'five enqueues with one dedupe_key make one task');
SELECT is((SELECT payload ->> 'version' FROM crm.integration_tasks WHERE dedupe_key = 'job-42'), '5', '... carrying the last payload');
SELECT is((SELECT coalesced FROM crm.integration_tasks WHERE dedupe_key = 'job-42'), 4, '... and counting the four it absorbed');
SELECT crm.enqueue_task('noop', '{}', 'job-42', now() + interval '1 hour', '0000000a-0000-0000-0000-0000000007b1');
SELECT crm.enqueue_task('noop', '{}', 'job-43', now() + interval '1 hour', '0000000a-0000-0000-0000-0000000007a1');
SELECT is(pg_temp.n(), 3::bigint, 'the same key in another account, or another key, is another task');
SELECT is((SELECT crm.enqueue_task('noop', '{"version": 6}', 'job-42', now(), '0000000a-0000-0000-0000-0000000007a1')),
          (SELECT id FROM crm.integration_tasks WHERE dedupe_key = 'job-42' AND account_id = '0000000a-0000-0000-0000-0000000007a1'),
          'enqueue returns the id of the task it coalesced into (and its run_at moves to the latest)');

-- Run: the due task (job-42 in account A) is done, with the handler's result
SELECT is(crm.process_integration_tasks() - 'claimed', '{"done": 1, "failed": 0, "retried": 0}'::jsonb, 'process_integration_tasks runs the due task');
SELECT is((SELECT status || ' ' || attempts || ' ' || (result ->> 'ok') || ' ' || (completed_at IS NOT NULL)
           FROM crm.integration_tasks WHERE dedupe_key = 'job-42' AND account_id = '0000000a-0000-0000-0000-0000000007a1'),
          'done 1 true true', '... done at its first attempt, result stored, completed_at set');

-- A task being processed is not changed by an enqueue with its key: a new pending task is
UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE dedupe_key = 'job-43';
SELECT is(json_array_length(crm._claim_tasks(10, 60)), 1, 'a runner claims job-43');
SELECT crm.enqueue_task('noop', '{"newer": true}', 'job-43', now() + interval '1 hour', '0000000a-0000-0000-0000-0000000007a1');
SELECT is((SELECT string_agg(status, ',' ORDER BY status) FROM crm.integration_tasks WHERE dedupe_key = 'job-43'), 'pending,processing',
          'an enqueue while its key is processing adds a pending task (the latest state runs after)');
SELECT crm._record_task_outcomes(json_build_array(json_build_object('id', id, 'outcome', 'retry', 'error', 'HTTP 503', 'after_seconds', 30)))
FROM crm.integration_tasks WHERE dedupe_key = 'job-43' AND status = 'processing';
SELECT is((SELECT string_agg(status || ':' || coalesce(last_error, '-'), ',' ORDER BY status) FROM crm.integration_tasks WHERE dedupe_key = 'job-43'),
          'cancelled:superseded by a newer task with the same dedupe_key,pending:-',
          'the running one, sent back to pending, is superseded by the newer task instead of colliding with it');

-- Release: given back unrun, the attempt not counted
SELECT crm.enqueue_task('noop', '{}', NULL, now(), '0000000a-0000-0000-0000-0000000007b1');
SELECT is(json_array_length(crm._claim_tasks(10, 60)), 1, 'a runner claims the new task');
SELECT crm._record_task_outcomes(json_build_array(json_build_object('id', id, 'outcome', 'release')))
FROM crm.integration_tasks WHERE status = 'processing';
SELECT is((SELECT status || ' ' || attempts || ' ' || (next_attempt_at <= now()) FROM crm.integration_tasks
           WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL),
          'pending 0 true', 'a released task is due again at once, its attempt not counted');

-- Lease exhaustion: a task whose runner died with it max_attempts times fails, with the reason
UPDATE crm.integration_tasks SET status = 'processing', attempts = 3, max_attempts = 3, locked_until = now() - interval '1 second',
       last_error = 'HTTP 500'
WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL;
SELECT is(json_array_length(crm._claim_tasks(10, 60)), 0, 'an expired lease with no attempts left is not claimed again');
SELECT is((SELECT status || ': ' || last_error FROM crm.integration_tasks WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL),
          'failed: its runner stopped while running it 3 times (lease expired); last error: HTTP 500',
          '... it fails, saying why');

-- The dead-letter queue: a failed task is retried with fresh attempts
SELECT is(crm.retry_integration_task(id), true, 'retry_integration_task puts a failed task back')
FROM crm.integration_tasks WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL;
SELECT is((SELECT status || ' ' || attempts || ' ' || (completed_at IS NULL) FROM crm.integration_tasks
           WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL),
          'pending 0 true', '... pending, attempts from zero');
SELECT is(crm.retry_integration_task(id), false, 'a task that is not failed is not retried')
FROM crm.integration_tasks WHERE account_id = '0000000a-0000-0000-0000-0000000007b1' AND dedupe_key IS NULL;
UPDATE crm.integration_tasks SET status = 'failed' WHERE dedupe_key = 'job-43' AND status = 'cancelled';
SELECT is(crm.retry_integration_task(id), false, 'a failed task whose key has a newer pending task is not retried (the newer one runs)')
FROM crm.integration_tasks WHERE dedupe_key = 'job-43' AND status = 'failed';
SELECT is(crm.cancel_integration_task(id), true, 'cancel_integration_task cancels a pending task')
FROM crm.integration_tasks WHERE dedupe_key = 'job-43' AND status = 'pending';
SELECT is(crm.cancel_integration_task(id), false, 'a done task cannot be cancelled')
FROM crm.integration_tasks WHERE dedupe_key = 'job-42' AND status = 'done' AND account_id = '0000000a-0000-0000-0000-0000000007a1';

-- Bad rows fail alone (rows a privileged role wrote directly, past enqueue's checks)
DELETE FROM crm.integration_tasks WHERE status = 'pending';
INSERT INTO crm.integration_tasks (account_id, kind, payload) VALUES
  ('0000000a-0000-0000-0000-0000000007a1', 'gone.kind', '{}'),
  ('0000000a-0000-0000-0000-0000000007a1', 'noop', (repeat('{"a":', 200) || '1' || repeat('}', 200))::jsonb),
  ('0000000a-0000-0000-0000-0000000007a1', 'oauth.refresh', '{"connection_id": "not-a-uuid"}'),
  ('0000000a-0000-0000-0000-0000000007a1', 'noop', '{"fine": true}');
SELECT is(crm.process_integration_tasks() - 'claimed', '{"done": 1, "failed": 3, "retried": 0}'::jsonb,
          'three unrunnable tasks fail and the good one beside them is done');
SELECT is((SELECT last_error FROM crm.integration_tasks WHERE kind = 'gone.kind'), 'unknown task kind gone.kind', 'a kind no longer registered fails with its name');
SELECT matches((SELECT last_error FROM crm.integration_tasks WHERE kind = 'noop' AND status = 'failed' AND payload ? 'a'), '^the task cannot be run: .*nested',
               'a payload too deep to read fails with the reason');
SELECT matches((SELECT last_error FROM crm.integration_tasks WHERE kind = 'oauth.refresh'), '^loading the task''s context: invalid input syntax for type uuid',
               'a kind''s context query that raises fails its task alone (subtransaction), the claim survives');

-- oauth.refresh is scoped to the task's account: another account's connection is not found
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted, is_active)
VALUES ('e0000000-0000-0000-0000-0000000007b1', '0000000a-0000-0000-0000-0000000007b1', 'gmail', 'b@x.io', 'x', 'y', true);
SELECT crm.enqueue_task('oauth.refresh', '{"connection_id": "e0000000-0000-0000-0000-0000000007b1"}', NULL, now(), '0000000a-0000-0000-0000-0000000007a1');
SELECT is(crm.process_integration_tasks() ->> 'failed', '1', 'a refresh of another account''s connection fails');
SELECT is((SELECT last_error FROM crm.integration_tasks WHERE kind = 'oauth.refresh' AND payload ->> 'connection_id' LIKE 'e0%'),
          'the connection does not exist (any more)', '... as if it did not exist, and nothing was requested for it');

-- Purge: bounded, finished tasks past the retention only
UPDATE crm.integration_tasks SET completed_at = now() - interval '40 days' WHERE status IN ('done', 'failed', 'cancelled');
SELECT crm.enqueue_task('noop', '{}', NULL, now() + interval '1 day', '0000000a-0000-0000-0000-0000000007a1');
SELECT throws_ok($$SELECT crm.purge_integration_tasks(interval '-1 day')$$, '22023', NULL, 'purge refuses a negative interval');
SELECT throws_ok($$SELECT crm.purge_integration_tasks(interval '1 day', 0)$$, '22023', NULL, 'purge refuses batch_size 0');
SELECT is(crm.purge_integration_tasks(interval '30 days', 2), 2::bigint, 'purge deletes at most batch_size per call');
SELECT cmp_ok(crm.purge_integration_tasks(interval '30 days'), '>', 0::bigint, 'the next call takes the rest');
SELECT is(pg_temp.n(), 1::bigint, 'only the pending task is left');

-- list_integration_tasks validates its arguments
SELECT throws_ok($$SELECT * FROM crm.list_integration_tasks('running')$$, '22023', NULL, 'an unknown status is refused');
SELECT throws_ok($$SELECT * FROM crm.list_integration_tasks(NULL, NULL, 0)$$, '22023', NULL, 'limit 0 is refused');

-- Who may do what
CREATE TEMP TABLE a_task AS SELECT id FROM crm.integration_tasks WHERE account_id = '0000000a-0000-0000-0000-0000000007a1' AND status = 'pending';
GRANT SELECT ON a_task TO PUBLIC;
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000007a1"}');
SELECT throws_ok($$SELECT crm.enqueue_task('noop', '{}')$$, '42501', NULL, 'a tenant cannot queue tasks (the server side does)');
SELECT throws_ok($$SELECT crm.process_integration_tasks()$$, '42501', NULL, 'a tenant cannot run the queue');
SELECT throws_ok($$UPDATE crm.integration_tasks SET status = 'done'$$, '42501', NULL, 'a tenant cannot write task rows (server-set columns)');
SELECT throws_ok($$SELECT crm._claim_tasks(10, 60)$$, '42501', NULL, 'nor call the internal claim');
SELECT is((SELECT count(*) FROM crm.list_integration_tasks()), 1::bigint, 'a tenant lists its own tasks only');
SELECT tests.logout();
SELECT tests.login('authenticated', '{"account_id": "0000000a-0000-0000-0000-0000000007b1"}');
SELECT is(crm.cancel_integration_task((SELECT id FROM a_task)), false, 'another account cannot cancel a tenant''s task');
SELECT is(crm.retry_integration_task((SELECT id FROM a_task)), false, '... nor retry it');
SELECT tests.logout();
SELECT is((SELECT status FROM crm.integration_tasks WHERE id = (SELECT id FROM a_task)), 'pending', '... it is still pending');
SELECT tests.login('service_role', '{"role": "service_role"}');
SELECT isnt(crm.enqueue_task('noop', '{}', NULL, now(), '0000000a-0000-0000-0000-0000000007b1'), NULL, 'service_role queues tasks for any account');
SELECT tests.logout();

SELECT * FROM finish();
ROLLBACK;
