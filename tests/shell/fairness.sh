#!/usr/bin/env bash
# TAP: the workers serve the email queue and the task queue fairly, in turns of
# crm.worker_turn (1 s): a task queued behind a 30,000-email backlog starts within 5 s, and an
# email queued behind a flood of 50,000 tasks is sent within 5 s, each while the other queue
# is still deep.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_FAIR:-18043}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
    -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.resend_batch" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" \
    -c "UPDATE crm.integration_tasks SET status = 'cancelled' WHERE status IN ('pending', 'processing')" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..4"

ACC=0000000f-0000-0000-0000-00000000fa1e
q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Fairness');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
UPDATE crm.integration_tasks SET status = 'cancelled' WHERE status IN ('pending', 'processing');
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_fair';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.resend_batch = off;
SELECT pg_reload_conf();
SQL
pending_emails() { q -c "SELECT count(*) FROM crm.email_queue WHERE account_id = '$ACC' AND status IN ('pending', 'processing')"; }
pending_tasks() { q -c "SELECT count(*) FROM crm.integration_tasks WHERE account_id = '$ACC' AND status IN ('pending', 'processing')"; }

# A task behind 30,000 emails.
q -c "SELECT count(*) FROM generate_series(1, 300) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
        'account_id', '$ACC', 'to', 'f' || b || '-' || i || '@example.com', 'subject', 'backlog', 'text', 't'))
        FROM generate_series(1, 100) i))" >/dev/null
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do [ "$(q -c "SELECT count(*) >= 200 FROM crm.email_queue WHERE account_id = '$ACC' AND status = 'sent'")" = t ] && break; sleep 0.1; done
task=$(q -c "SELECT crm.enqueue_task('noop', '{}', NULL, now(), '$ACC')")
for _ in $(seq 100); do [ "$(q -c "SELECT status FROM crm.integration_tasks WHERE id = '$task'")" = done ] && break; sleep 0.1; done
waited=$(q -c "SELECT round(extract(epoch FROM completed_at - created_at)::numeric, 2) FROM crm.integration_tasks WHERE id = '$task'")
behind=$(pending_emails)
check "$([ -n "$waited" ] && [ "$(echo "$waited < 5" | bc -l)" = 1 ] && echo within)" "within" "a task queued behind the email backlog ran within 5 s (${waited:-never} s)"
check "$([ "$behind" -gt 10000 ] && echo deep)" "deep" "... while the backlog was still deep ($behind emails left)"

# An email behind 50,000 tasks.
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" \
  -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE account_id = '$ACC' AND status IN ('pending', 'processing')" >/dev/null
sleep 1
q -c "SELECT count(crm.enqueue_task('noop', '{}', NULL, now(), '$ACC')) FROM generate_series(1, 50000)" >/dev/null
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do [ "$(q -c "SELECT count(*) >= 500 FROM crm.integration_tasks WHERE account_id = '$ACC' AND status = 'done'")" = t ] && break; sleep 0.1; done
email=$(q -c "SELECT crm.enqueue_email('{\"account_id\": \"$ACC\", \"to\": \"urgent@example.com\", \"subject\": \"behind the tasks\", \"text\": \"t\"}')")
for _ in $(seq 100); do [ "$(q -c "SELECT status FROM crm.email_queue WHERE id = '$email'")" = sent ] && break; sleep 0.1; done
waited=$(q -c "SELECT round(extract(epoch FROM sent_at - created_at)::numeric, 2) FROM crm.email_queue WHERE id = '$email' AND status = 'sent'")
behind=$(pending_tasks)
check "$([ -n "$waited" ] && [ "$(echo "$waited < 5" | bc -l)" = 1 ] && echo within)" "within" "an email queued behind the task flood was sent within 5 s (${waited:-never} s)"
check "$([ "$behind" -gt 10000 ] && echo deep)" "deep" "... while the flood was still deep ($behind tasks left)"
exit $failed
