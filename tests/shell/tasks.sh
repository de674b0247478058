#!/usr/bin/env bash
# TAP: the integration task runtime against the emulator, with real sessions and workers.
#  (1) oauth.refresh through the shared outcome rules: success stores the new token
#      (encrypted), 429 + Retry-After and 503 are retried when they say, attempts run out into
#      the dead-letter queue, retry_integration_task brings a task back, invalid_grant fails
#      it and deactivates the connection.
#  (2) kill -9 of a worker in the middle of a task: after recovery the task runs again and its
#      effect (the stored token) is the last run's, applied once.
#  (3) 5,000 noop tasks, two workers and two process_integration_tasks loops at once: each task
#      runs exactly once.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_TASKS:-18041}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.google_oauth_base_url" \
    -c "ALTER SYSTEM RESET crm.google_client_id" -c "ALTER SYSTEM RESET crm.google_client_secret" \
    -c "ALTER SYSTEM RESET crm.task_lease" -c "ALTER SYSTEM RESET crm.task_retry_base" \
    -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..18"

ACC=00000007-0000-0000-0000-00000000a5c5
CONN=e0000007-0000-0000-0000-00000000a5c5
(q <<SQL
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Tasks');
UPDATE crm.integration_tasks SET status = 'cancelled' WHERE status IN ('pending', 'processing');
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted,
                                 refresh_token_encrypted, token_expires_at, is_active)
VALUES ('$CONN', '$ACC', 'gmail', 'tasks@example.com',
        crm.encrypt_token('ya29.seed', 'email_providers:$CONN:access_token'),
        crm.encrypt_token('1//rt-tasks', 'email_providers:$CONN:refresh_token'), now() + interval '1 hour', true);
ALTER SYSTEM SET crm.google_oauth_base_url = '$EMU';
ALTER SYSTEM SET crm.google_client_id = 'cid-tasks';
ALTER SYSTEM SET crm.google_client_secret = 'sec-tasks';
ALTER SYSTEM SET crm.task_retry_base = '7s';
SELECT pg_reload_conf();
SQL
) >/dev/null
emu POST /_emulator/oauth '{"refresh_tokens": {"1//rt-tasks": "google"}}' >/dev/null
export PGOPTIONS="-c crm.google_oauth_base_url=$EMU -c crm.google_client_id=cid-tasks -c crm.google_client_secret=sec-tasks -c crm.task_retry_base=7s"
refresh() { q -c "SELECT crm.enqueue_task('oauth.refresh', '{\"connection_id\": \"$CONN\"}', 'refresh-$CONN', now(), '$ACC')"; }
task() { q -c "SELECT $2 FROM crm.integration_tasks WHERE id = '$1'"; }
token_requests() { requests | jq_ "sum(1 for r in d if r['path'] == '/token')"; }
stored_token() { q -c "SELECT crm.decrypt_token(access_token_encrypted, 'email_providers:$CONN:access_token') FROM crm.email_providers WHERE id = '$CONN'"; }
last_issued() { requests | jq_ "[r['response']['access_token'] for r in d if r['path'] == '/token' and isinstance(r.get('response'), dict) and 'access_token' in r['response']][-1]"; }

# (1) Outcomes through the shared rules.
id=$(refresh)
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(task "$id" "status || ' ' || attempts || ' ' || (result ->> 'refreshed')")/$(token_requests)" "done 1 true/1" \
  "oauth.refresh: one request to the token endpoint, the task done"
check "$(stored_token)" "$(last_issued)" "... the access token the endpoint issued is stored (encrypted) on the connection"

emu POST /_emulator/faults '[{"path": "/token", "status": 429, "retry_after": "40"}]' >/dev/null
id=$(refresh)
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(task "$id" "status || ' ' || attempts || ' ' || (extract(epoch FROM next_attempt_at - now()) BETWEEN 38 AND 41) || ' ' || (last_error LIKE 'token refresh: HTTP 429%')")" \
  "pending 1 true true" "a 429 with Retry-After: 40 is retried 40 s later, not at the 7 s backoff"

emu POST /_emulator/faults '[{"path": "/token", "status": 503}]' >/dev/null
q -c "UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE id = '$id'" >/dev/null
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(task "$id" "status || ' ' || attempts || ' ' || (extract(epoch FROM next_attempt_at - now()) BETWEEN 12 AND 15)")" \
  "pending 2 true" "a 503 at the second attempt is retried after the backoff (crm.task_retry_base 7 s x 2)"

emu POST /_emulator/faults '[{"path": "/token", "status": 503, "count": 3}]' >/dev/null
for _ in 1 2 3; do
  q -c "UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE id = '$id'" -c "SELECT crm.process_integration_tasks()" >/dev/null
done
check "$(task "$id" "status || ' ' || attempts || ' ' || (last_error LIKE '%gave up after 5 attempts%')")" "failed 5 true" \
  "five 503s use up its attempts: failed, kept in the dead-letter queue with the reason"
check "$(q -c "SELECT crm.retry_integration_task('$id')")/$(task "$id" "status || ' ' || attempts")" "t/pending 0" \
  "retry_integration_task gives it back to the queue with fresh attempts"
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(task "$id" "status || ' ' || attempts")/$(stored_token)" "done 1/$(last_issued)" "... and it succeeds once the endpoint is back"

emu POST /_emulator/oauth '{"revoke": ["1//rt-tasks"]}' >/dev/null
id=$(refresh)
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(task "$id" "status || ' ' || attempts")/$(q -c "SELECT is_active || ' ' || needs_reconnect FROM crm.email_providers WHERE id = '$CONN'")" "failed 1/false true" \
  "invalid_grant fails the task at once and marks the connection inactive, needing a reconnect (the apply step)"

# crm.http_timeout bounds every provider request; crm.email_http_timeout (0.3.0's name) is
# still honoured as its alias.
emu POST /_emulator/oauth '{"refresh_tokens": {"1//rt-tasks": "google"}}' >/dev/null
q -c "UPDATE crm.email_providers SET is_active = true, needs_reconnect = false WHERE id = '$CONN'" >/dev/null
for setting in "crm.http_timeout=1000" "crm.http_timeout=20000 -c crm.email_http_timeout=1000"; do
  emu POST /_emulator/faults '[{"path": "/token", "delay_ms": 3000}]' >/dev/null
  id=$(refresh)
  t0=$(date +%s.%N)
  PGOPTIONS="$PGOPTIONS -c $setting" q -c "SELECT crm.process_integration_tasks()" >/dev/null
  secs=$(echo "$(date +%s.%N) - $t0" | bc -l)
  check "$(task "$id" "status || ' ' || (last_error LIKE 'token refresh: no answer:%')")/$(echo "$secs < 2.5" | bc -l)" "pending true/1" \
    "a token endpoint slower than $setting: no answer after ~1 s, retried ($(printf '%.1f' "$secs") s)"
  q -c "SELECT crm.cancel_integration_task('$id')" >/dev/null
  sleep 2.5   # let the emulator finish the slow answer
done

# (2) kill -9 of the worker while it waits on the token endpoint.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"refresh_tokens": {"1//rt-tasks": "google"}}' >/dev/null
emu POST /_emulator/faults '[{"path": "/token", "delay_ms": 4000}]' >/dev/null
q -c "UPDATE crm.email_providers SET is_active = true, needs_reconnect = false WHERE id = '$CONN'" \
  -c "ALTER SYSTEM SET crm.task_lease = '5s'" -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
id=$(refresh)
for _ in $(seq 100); do [ "$(task "$id" status)" = processing ] && break; sleep 0.1; done
sleep 0.5
running=$(task "$id" status)/$(token_requests)
# Postgres answers a crashed backend by resetting every session (the other worker included).
kill -9 "$(q -c "SELECT crm.email_worker_pid()")"
for _ in $(seq 200); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
check "$running" "processing/1" "a worker was killed while the task's request was in flight"
for _ in $(seq 300); do [ "$(task "$id" status 2>/dev/null)" = done ] && break; sleep 0.1; done
check "$(task "$id" "status || ' ' || attempts")/$(token_requests)" "done 2/2" \
  "after recovery and the lease (5 s) the task ran again and is done: nothing lost"
check "$(stored_token)" "$(last_issued)" "... its effect applied once, from the run that was recorded (the killed run's token was never stored)"
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null

# (3) 5,000 noop tasks, four processors at once.
q -c "SELECT count(crm.enqueue_task('noop', jsonb_build_object('i', i), NULL, now(), '$ACC')) FROM generate_series(1, 5000) i" >/dev/null
left() { q -c "SELECT count(*) FROM crm.integration_tasks WHERE account_id = '$ACC' AND kind = 'noop' AND status <> 'done'" 2>/dev/null; }
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
loops=()
for _ in 1 2; do
  ( for _ in $(seq 500); do
      [ "$(left)" = 0 ] && break
      q -c "SELECT crm.process_integration_tasks(50)" >/dev/null
    done ) &
  loops+=($!)
done
wait "${loops[@]}"
for _ in $(seq 300); do [ "$(left)" = 0 ] && break; sleep 0.1; done
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
check "$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE account_id = '$ACC' AND kind = 'noop' AND status = 'done'")" "5000" "all 5,000 noop tasks are done"
check "$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE account_id = '$ACC' AND kind = 'noop' AND (attempts <> 1 OR (result ->> 'attempt')::int <> 1)")" "0" \
  "each was claimed and run exactly once (attempts 1, run at attempt 1)"
workers=$(q -c "SELECT string_agg(p::text, ',') FROM unnest(crm.email_worker_pids()) p")
by=$(q -c "SELECT count(*) FILTER (WHERE (result ->> 'runner_pid')::int = ANY('{$workers}'::int[])) > 0,
                 count(*) FILTER (WHERE NOT (result ->> 'runner_pid')::int = ANY('{$workers}'::int[])) > 0
          FROM crm.integration_tasks WHERE account_id = '$ACC' AND kind = 'noop'")
check "$by" "t|t" "... shared between the workers and the process_integration_tasks loops"
check "$(q -c "SELECT count(DISTINCT result ->> 'runner_pid') >= 3 FROM crm.integration_tasks WHERE account_id = '$ACC' AND kind = 'noop'")" "t" \
  "... by at least three processes"
check "$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE account_id = '$ACC' AND status = 'processing'")" "0" "no task is left processing"
exit $failed
