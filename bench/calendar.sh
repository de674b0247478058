#!/usr/bin/env bash
# Google Calendar benchmark against the emulator's Calendar API v3 (one calendar connection):
#  (a) 1,000 jobs rescheduled 3 times each in one burst, the emulator enforcing 10 requests/s:
#      Calendar requests made (target <= 1,000: coalescing), 429s (target 0: the shared limiter
#      at crm.google_calendar_rate_limit = 10), and the time it took;
#  (b) a full sync of a 10,000-event calendar: events read and applied per second
#      (target >= 2,000/s), and the cost per event.
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
EMU_PORT=${CRM_BENCH_EMULATOR_PORT_CAL:-18033}
EMU=http://127.0.0.1:$EMU_PORT
python3 tests/emulator/emulator.py "$EMU_PORT" > /tmp/crm_bench_cal_emulator.out 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready /tmp/crm_bench_cal_emulator.out 2>/dev/null && break; sleep 0.1; done
q() { psql -X -q -At "$@"; }
ACC=0000000b-0000-0000-0000-0000000ca1be
CONN=e000000b-0000-0000-0000-0000000ca1be
N=${CAL_BENCH_JOBS:-1000}
E=${CAL_BENCH_EVENTS:-10000}
curl -s -X POST "$EMU/_emulator/oauth" -H 'Content-Type: application/json' -d '{"access_tokens": {"ya29.bench": "google"}}' >/dev/null
q >/dev/null <<SQL
ALTER SYSTEM SET crm.worker_enabled = off;
ALTER SYSTEM SET crm.google_calendar_base_url = '$EMU';
ALTER SYSTEM SET crm.google_calendar_rate_limit = 10;
ALTER SYSTEM RESET crm.worker_batch_size;
SELECT pg_reload_conf();
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
TRUNCATE crm.integration_tasks;
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Calendar bench') ON CONFLICT DO NOTHING;
INSERT INTO crm.calendar_providers (id, account_id, provider, provider_email, access_token_encrypted, token_expires_at, is_default)
VALUES ('$CONN', '$ACC', 'google', 'bench@example.com', crm.encrypt_token('ya29.bench', 'calendar_providers:$CONN:access_token'),
        now() + interval '1 day', true) ON CONFLICT DO NOTHING;
SQL

# (a) the burst: 1,000 jobs, each created and rescheduled three times, before the workers run.
curl -s -X POST "$EMU/_emulator/rate_limit" -H 'Content-Type: application/json' -d '{"per_second": 10}' >/dev/null
q -c "INSERT INTO crm.jobs (account_id, title, status, scheduled_start, scheduled_end)
      SELECT '$ACC', 'Job ' || i, 'scheduled', '2027-02-01 09:00+00'::timestamptz + i * interval '1 hour',
             '2027-02-01 10:00+00'::timestamptz + i * interval '1 hour' FROM generate_series(1, $N) i" >/dev/null
for k in 1 2 3; do
  q -c "UPDATE crm.jobs SET scheduled_start = scheduled_start + interval '15 minutes', scheduled_end = scheduled_end + interval '15 minutes' WHERE account_id = '$ACC'" >/dev/null
done
tasks=$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job'")
start=$(q -c "SELECT extract(epoch FROM clock_timestamp())")
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
until [ "$(q -c "SELECT EXISTS (SELECT 1 FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND status IN ('pending', 'processing'))")" = f ]; do sleep 1; done
end=$(q -c "SELECT extract(epoch FROM max(completed_at)) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job'")
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
# Writes (insert/update) are the burst's; a GET is the workers' periodic calendar sync.
read -r requests reads limited <<< "$(curl -s "$EMU/_emulator/requests" | python3 -c "
import json, sys
r = [r for r in json.load(sys.stdin) if r['path'].startswith('/calendar/')]
print(sum(1 for x in r if x['method'] != 'GET'), sum(1 for x in r if x['method'] == 'GET'),
      sum(1 for x in r if isinstance(x.get('response'), dict) and x['response'].get('statusCode') == 429))")"
done_=$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND status = 'done'")
curl -s -X POST "$EMU/_emulator/rate_limit" -H 'Content-Type: application/json' -d '{"per_second": 0}' >/dev/null

# (b) a full sync of a calendar of E events (someone else's: they become busy intervals).
q -c "ALTER SYSTEM SET crm.google_calendar_rate_limit = 0" -c "SELECT pg_reload_conf()" >/dev/null
curl -s -X POST "$EMU/_emulator/calendar" -H 'Content-Type: application/json' -d "{\"calendar\": \"primary\", \"count\": $E}" >/dev/null
sleep 0.5
q -c "SELECT count(*) FROM crm.sync_calendar('$CONN')" >/dev/null
t0=$(date +%s.%N)
q -c "SELECT crm.process_integration_tasks(1)" >/dev/null
t1=$(date +%s.%N)
busy=$(q -c "SELECT count(*) FROM crm.calendar_busy WHERE connection_id = '$CONN'")
secs=$(echo "$t1 - $t0" | bc -l)

printf '\n## Google Calendar (worker -> emulator Calendar API v3 on 127.0.0.1, 2 cores)\n'
printf '(a) %d jobs x (create + 3 reschedules) in one burst, emulator limited to 10 req/s, crm.google_calendar_rate_limit = 10:\n' "$N"
printf '    tasks queued %d (coalesced), Calendar writes %d (target <= %d; plus %d read by the periodic sync), 429s %d (target 0), %d done in %.1f s (%.2f req/s)\n' \
  "$tasks" "$requests" "$N" "$reads" "$limited" "$done_" "$(echo "$end - $start" | bc -l)" "$(echo "$requests / ($end - $start)" | bc -l)"
printf '(b) full sync of a %d-event calendar (4 pages of 2,500): %d busy intervals in %.2f s = %.0f events/s (target >= 2,000/s), %.0f us per event\n' \
  "$E" "$busy" "$secs" "$(echo "$busy / $secs" | bc -l)" "$(echo "$secs * 1000000 / $busy" | bc -l)"
