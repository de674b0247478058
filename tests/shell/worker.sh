#!/usr/bin/env bash
# TAP: the background email worker — running, woken by the commit of an enqueue (not by
# polling), not woken by a rollback, sending scheduled mail when due, riding out a provider
# outage without a busy loop, and stopping promptly on SIGTERM and coming back.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_WORKER:-18027}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
    -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.worker_idle_sleep" -c "ALTER SYSTEM RESET crm.email_retry_base" \
    -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
nreq() { emu GET /_emulator/requests | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }
enqueue() { q -c "SELECT crm.enqueue_email('$1'::jsonb || '{\"account_id\": \"0000000e-0000-0000-0000-00000000eeee\"}')"; }
status_of() { q -c "SELECT status FROM crm.email_queue WHERE id = '$1'"; }
wait_status() { # id status timeout_s
  for _ in $(seq $(( $3 * 20 ))); do [ "$(status_of "$1")" = "$2" ] && return 0; sleep 0.05; done; return 1; }
echo "1..11"

q <<SQL
DELETE FROM crm.accounts WHERE id = '0000000e-0000-0000-0000-00000000eeee';
INSERT INTO crm.accounts (id, name) VALUES ('0000000e-0000-0000-0000-00000000eeee', 'Worker');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_worker_test';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.email_retry_base = 1;
-- A long idle sleep: anything sent quickly below was sent because a commit woke the worker.
ALTER SYSTEM SET crm.worker_idle_sleep = '60s';
ALTER SYSTEM SET crm.worker_enabled = on;
SELECT pg_reload_conf();
SQL
for _ in $(seq 100); do [ -n "$(q -c "SELECT crm.email_worker_pid()")" ] && break; sleep 0.1; done
pid=$(q -c "SELECT crm.email_worker_pid()")
check "$(q -c "SELECT backend_type || '/' || datname FROM pg_stat_activity WHERE pid = '$pid'")" "crm_integrations email worker/crm_test" "the worker runs in crm.worker_database"
sleep 1  # let it reach its idle sleep

id=$(enqueue '{"to": "wake@example.com", "subject": "s", "text": "t"}')
wait_status "$id" sent 3
ms=$(q -c "SELECT round(extract(epoch FROM sent_at - created_at) * 1000) FROM crm.email_queue WHERE id = '$id'")
check "$(status_of "$id"),$([ "${ms:-99999}" -lt 1000 ] && echo fast)" "sent,fast" "an enqueue wakes the idle worker at commit (sent ${ms} ms after enqueue; idle sleep is 60 s)"

emu POST /_emulator/reset >/dev/null
q -c "BEGIN" -c "SELECT crm.enqueue_email('{\"account_id\": \"0000000e-0000-0000-0000-00000000eeee\", \"to\": \"gone@example.com\", \"subject\": \"s\", \"text\": \"t\"}')" -c "ROLLBACK" >/dev/null
sleep 1
check "$(nreq)" "0" "a rolled-back enqueue sends nothing"

id=$(q -c "SELECT crm.enqueue_email(jsonb_build_object('account_id', '0000000e-0000-0000-0000-00000000eeee', 'to', 'soon@example.com', 'subject', 's', 'text', 't', 'scheduled_at', to_char((clock_timestamp() + interval '2 s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')))")
sleep 1
check "$(status_of "$id")" "scheduled" "a scheduled email waits"
wait_status "$id" sent 4
check "$(status_of "$id"),$(q -c "SELECT sent_at >= scheduled_at FROM crm.email_queue WHERE id = '$id'")" "sent,t" "... and the worker sends it when due, not before (no enqueue woke it)"

# Provider down for a while (4 answers of 503), then up: sent, with no busy loop meanwhile.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/faults '{"path": "/emails", "status": 503, "count": 3}' >/dev/null
id=$(enqueue '{"to": "outage@example.com", "subject": "s", "text": "t", "max_attempts": 5}')
wait_status "$id" sent 20
check "$(status_of "$id")" "sent" "an outage is ridden out: sent once the provider is back"
check "$(nreq),$(q -c "SELECT attempts FROM crm.email_queue WHERE id = '$id'")" "4,4" "four requests in all, spaced by the backoff (1, 2, 4 s here), not a busy loop"

# SIGTERM: the worker stops at once, and the postmaster starts it again.
q -c "SELECT pg_terminate_backend($pid)" >/dev/null
sleep 0.5
check "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid")" "0" "SIGTERM stops the worker promptly"
for _ in $(seq 100); do new=$(q -c "SELECT crm.email_worker_pid()"); [ -n "$new" ] && [ "$new" != "$pid" ] && break; sleep 0.1; done
check "$([ -n "$new" ] && [ "$new" != "$pid" ] && echo restarted)" "restarted" "... and it is running again"
sleep 0.5
id=$(enqueue '{"to": "after@example.com", "subject": "s", "text": "t"}')
wait_status "$id" sent 3
check "$(status_of "$id")" "sent" "the new worker sends"

q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
id=$(enqueue '{"to": "off@example.com", "subject": "s", "text": "t"}')
sleep 1
check "$(status_of "$id")" "pending" "crm.worker_enabled = off: the worker leaves the queue alone"
q -c "SELECT crm.cancel_email('$id')" >/dev/null
exit $failed
