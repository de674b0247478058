#!/usr/bin/env bash
# TAP: the rate limiter is cluster-wide. Two workers and two process_email_queue loops send to
# an emulator that enforces Resend's 10 requests/s (429 beyond), with crm.resend_rate_limit =
# 10, for 20 s: no 429, at most 10 arrivals in any 1 s window, and about 10/s in all (four
# senders pacing themselves would send 40/s). A 429 closes the lane for every process.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_LIMIT:-18045}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
    -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.resend_batch" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..5"

ACC=0000000f-0000-0000-0000-0000000011a1
q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Limiter');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_limit';
ALTER SYSTEM SET crm.resend_rate_limit = 10;
ALTER SYSTEM SET crm.resend_batch = off;
SELECT pg_reload_conf();
SQL
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_limit -c crm.resend_rate_limit=10 -c crm.resend_batch=off -c crm.email_retry_base=0"
check "$(q -c "SELECT crm.rate_limiter_is_shared()")" "t" "the limiter is in shared memory (the library is preloaded)"
emu POST /_emulator/rate_limit '{"per_second": 10}' >/dev/null
q -c "SELECT count(*) FROM generate_series(1, 5) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
        'account_id', '$ACC', 'to', 'l' || b || '-' || i || '@example.com', 'subject', 'limited', 'text', 't'))
        FROM generate_series(1, 100) i))" >/dev/null

q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
loops=()
for _ in 1 2; do
  timeout 20 bash -c 'while true; do psql -X -q -At -d "$0" -c "SELECT crm.process_email_queue(3)" >/dev/null 2>&1; done' "$DB" &
  loops+=($!)
done
wait "${loops[@]}"
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
read -r total limited window rate <<< "$(requests | python3 -c "
import json, sys
reqs = [r for r in json.load(sys.stdin) if r['path'] == '/emails']
at = sorted(r['at'] for r in reqs)
limited = sum(1 for r in reqs if (r.get('response') or {}).get('statusCode') == 429)
# the most arrivals within any 1 s (a sliding window, as the provider counts)
j, worst = 0, 0
for i, t in enumerate(at):
    while at[j] <= t - 1.0:
        j += 1
    worst = max(worst, i - j + 1)
span = at[-1] - at[0] if len(at) > 1 else 1
print(len(at), limited, worst, '%.2f' % ((len(at) - 1) / span))")"
check "$limited" "0" "no 429 from the provider in 20 s of four senders ($total requests)"
check "$([ "$window" -le 10 ] && echo ok)" "ok" "at most 10 requests arrived in any 1 s window (worst: $window)"
check "$(echo "$rate <= 10.5 && $rate >= 8.5" | bc -l)" "1" "about 10 requests/s in all ($rate/s): one limit for the server, not one per process"

# One 429 (Retry-After: 3) closes the lane for every process: nothing is sent for 3 s.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/faults '[{"path": "/emails", "status": 429, "retry_after": "3"}]' >/dev/null
q -c "SELECT crm.process_email_queue(1)" >/dev/null
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 4.5
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
gap=$(requests | jq_ "'%.1f' % (sorted(r['at'] for r in d if r['path'] == '/emails')[1] - sorted(r['at'] for r in d if r['path'] == '/emails')[0])")
check "$(echo "$gap >= 2.9" | bc -l)" "1" "after a 429 in one session, the workers (other processes) waited for its Retry-After (${gap} s)"
exit $failed
