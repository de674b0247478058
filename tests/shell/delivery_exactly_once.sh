#!/usr/bin/env bash
# TAP: nothing lost, nothing sent twice.
#  (1) 5,000 queued emails, drained by the worker and three concurrent process_email_queue
#      loops at once: every email sent exactly once (one request per idempotency key).
#  (2) kill -9 of the worker in the middle of 1,000 emails (Postgres then resets every
#      backend): after recovery every email is sent, and any email the provider saw twice was
#      seen under one idempotency key, so the provider dropped the copy.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_ONCE:-18028}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
    -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.email_lease" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_once -c crm.resend_rate_limit=0"
stats() { curl -s -m 30 "$EMU/_emulator/requests" | python3 -c "
import json, sys, collections
d = [r for r in json.load(sys.stdin) if r['path'] == '/emails']
keys = collections.Counter(r['headers'].get('idempotency-key') for r in d)
print(len(d), len(keys), sum(1 for r in d if r['replayed']), sum(c - 1 for c in keys.values()))"; }
queue() { # how many emails, marker
  q -c "SELECT count(*) FROM generate_series(1, $1 / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
          'account_id', '0000000f-0000-0000-0000-00000000ffff', 'to', 'r' || b || '-' || i || '@example.com',
          'subject', '$2', 'text', 'message ' || i)) FROM generate_series(1, 100) i))" >/dev/null; }
echo "1..7"

q <<SQL
DELETE FROM crm.accounts WHERE id = '0000000f-0000-0000-0000-00000000ffff';
INSERT INTO crm.accounts (id, name) VALUES ('0000000f-0000-0000-0000-00000000ffff', 'Exactly once');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_once';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.email_lease = '5s';
SELECT pg_reload_conf();
SQL

# (1) Worker + three process_email_queue loops, together.
queue 5000 once
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
loops=()
for _ in 1 2 3; do
  ( for _ in $(seq 400); do
      left=$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once' AND status <> 'sent'")
      [ "$left" = 0 ] && break
      q -c "SELECT crm.process_email_queue(50)" >/dev/null
    done ) &
  loops+=($!)
done
wait "${loops[@]}"   # not a bare wait: the emulator is a child too
for _ in $(seq 300); do [ "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once' AND status <> 'sent'")" = 0 ] && break; sleep 0.1; done
check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once' AND status = 'sent'")" "5000" "all 5,000 emails are sent"
read -r reqs keys replays dups <<< "$(stats)"
check "$reqs/$keys" "5000/5000" "5,000 requests, 5,000 distinct idempotency keys: none sent twice"
check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once' AND attempts <> 1")" "0" "each row was claimed once"

# (2) kill -9 the worker mid-batch.
curl -s -X POST "$EMU/_emulator/reset" >/dev/null
curl -s -X POST "$EMU/_emulator/faults" -H 'Content-Type: application/json' \
  -d '{"path": "/emails", "delay_ms": 5, "count": 100000}' >/dev/null   # a slower provider: the kill lands mid-batch
queue 1000 crash
sleep 1
pid=$(q -c "SELECT crm.email_worker_pid()")
sent_before=$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'crash' AND status = 'sent'")
kill -9 "$pid"
# Postgres answers a crashed backend by resetting every session; wait until it accepts again.
for _ in $(seq 200); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
check "$([ "$sent_before" -gt 0 ] && [ "$sent_before" -lt 1000 ] && echo mid-batch)" "mid-batch" "the worker was killed mid-way ($sent_before of 1,000 sent)"
for _ in $(seq 600); do
  [ "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'crash' AND status <> 'sent'" 2>/dev/null)" = 0 ] && break; sleep 0.1
done
check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'crash' AND status = 'sent'")" "1000" "after recovery all 1,000 are sent: nothing lost"
read -r reqs keys replays dups <<< "$(stats)"
check "$keys" "1000" "one idempotency key per email"
check "$([ "$dups" = "$replays" ] && echo "$dups=$replays")" "$dups=$dups" "every repeated request ($dups) reused its email's key and was dropped by the provider ($replays replays)"
exit $failed
