#!/usr/bin/env bash
# TAP: the real pg_cron (Debian's 1.4: minute granularity) runs crm.process_email_queue()
# on a schedule and the email is delivered. Takes up to a minute and a bit.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_CRON:-18029}"
cleanup() {
  q -c "SELECT cron.unschedule('crm-email-queue')" >/dev/null 2>&1
  q -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..3"

q <<SQL
CREATE EXTENSION IF NOT EXISTS pg_cron;
DELETE FROM crm.accounts WHERE id = '00000001-0000-0000-0000-00000000c0c0';
INSERT INTO crm.accounts (id, name) VALUES ('00000001-0000-0000-0000-00000000c0c0', 'Cron');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
-- Jobs run in their own sessions: the settings go where every session sees them.
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_cron';
SELECT pg_reload_conf();
SQL
id=$(q -c "SELECT crm.enqueue_email('{\"account_id\": \"00000001-0000-0000-0000-00000000c0c0\", \"to\": \"cron@example.com\", \"subject\": \"From pg_cron\", \"text\": \"t\"}')")
q -c "SELECT cron.schedule('crm-email-queue', '* * * * *', 'SELECT crm.process_email_queue()')" >/dev/null
for _ in $(seq 150); do [ "$(q -c "SELECT status FROM crm.email_queue WHERE id = '$id'")" = sent ] && break; sleep 0.5; done
check "$(q -c "SELECT status FROM crm.email_queue WHERE id = '$id'")" "sent" "pg_cron's scheduled crm.process_email_queue() delivered the email"
check "$(q -c "SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'crm-email-queue' AND d.status = 'succeeded'")" "t" "cron.job_run_details records a succeeded run"
check "$(curl -s "$EMU/_emulator/requests" | python3 -c "import json,sys; print([r['body']['subject'] for r in json.load(sys.stdin)])")" "['From pg_cron']" "the emulator received it"
exit $failed
