#!/usr/bin/env bash
# Google Maps benchmark against the emulator's Geocoding and Routes APIs:
#  (a) 10,000 job addresses with 30 % repeats (7,000 distinct), geocoded by the workers:
#      upstream requests (target <= 7,000: one per distinct address, none for the repeats),
#      the most requests that arrived in any 1 s (target <= crm.maps_rate_limit), and the rate;
#  (b) crm.suggest_technicians among 50 technicians, warm cache: p50 / p95 (target p50 < 20 ms);
#  (c) crm.plan_route of a 12-job day (exact: 2^12 x 12 states), warm cache: p50 (target
#      < 100 ms), and the cold call that fetches the 13 x 13 matrix.
# Peers: the repeats' share of requests saved is measured against the no-cache count (one
# request per job, what the reference's per-job geocoding call did).
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
EMU_PORT=${CRM_BENCH_EMULATOR_PORT_MAPS:-18035}
EMU=http://127.0.0.1:$EMU_PORT
python3 tests/emulator/emulator.py "$EMU_PORT" > /tmp/crm_bench_maps_emulator.out 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready /tmp/crm_bench_maps_emulator.out 2>/dev/null && break; sleep 0.1; done
q() { psql -X -q -At "$@"; }
ACC=0000000b-0000-0000-0000-0000000000a9
N=${MAPS_BENCH_JOBS:-10000}
RATE=${MAPS_BENCH_RATE:-200}
q >/dev/null <<SQL
ALTER SYSTEM SET crm.worker_enabled = off;
ALTER SYSTEM SET crm.google_maps_base_url = '$EMU';
ALTER SYSTEM SET crm.google_routes_base_url = '$EMU';
ALTER SYSTEM SET crm.google_maps_api_key = 'AIzaBench';
ALTER SYSTEM SET crm.maps_rate_limit = $RATE;
SELECT pg_reload_conf();
TRUNCATE crm.integration_tasks, crm.geocode_cache, crm.travel_time_cache;
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Maps bench') ON CONFLICT DO NOTHING;
SQL

# (a) 10,000 jobs: address i mod 7,000 (30 % repeat an earlier one), written two ways.
start=$(q -c "SELECT extract(epoch FROM clock_timestamp())")
q -c "INSERT INTO crm.jobs (account_id, title, address)
      SELECT '$ACC', 'Job ' || i, CASE WHEN i % 2 = 0 THEN (i % $((N * 7 / 10))) || ' Bench St.' ELSE (i % $((N * 7 / 10))) || ' bench  st' END
      FROM generate_series(1, $N) i" >/dev/null
insert_end=$(q -c "SELECT extract(epoch FROM clock_timestamp())")
tasks=$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'maps.geocode'")
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
until [ "$(q -c "SELECT EXISTS (SELECT 1 FROM crm.integration_tasks WHERE kind = 'maps.geocode' AND status IN ('pending', 'processing'))")" = f ]; do sleep 1; done
end=$(q -c "SELECT extract(epoch FROM max(completed_at)) FROM crm.integration_tasks WHERE kind = 'maps.geocode'")
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
read -r requests worst <<< "$(curl -s "$EMU/_emulator/requests" | python3 -c "
import json, sys
at = sorted(r['at'] for r in json.load(sys.stdin) if r['path'] == '/maps/api/geocode/json')
j, worst = 0, 0
for i, t in enumerate(at):
    while at[j] <= t - 1.0:
        j += 1
    worst = max(worst, i - j + 1)
print(len(at), worst)")"
geocoded=$(q -c "SELECT count(*) FROM crm.jobs WHERE account_id = '$ACC' AND geocode_status = 'ok'")
python3 - "$N" "$tasks" "$requests" "$worst" "$RATE" "$geocoded" "$start" "$insert_end" "$end" <<'EOF'
import sys
n, tasks, requests, worst, rate, geocoded = map(int, sys.argv[1:7])
start, insert_end, end = map(float, sys.argv[7:10])
print(f"(a) geocode {n:,} job addresses, {n * 7 // 10:,} distinct (30 % repeats), crm.maps_rate_limit = {rate}")
print(f"    insert with the triggers: {insert_end - start:.2f} s ({n / (insert_end - start):,.0f} rows/s); maps.geocode tasks queued: {tasks:,}")
print(f"    upstream requests: {requests:,} (target <= {n * 7 // 10:,}); a request per job would be {n:,}: {requests / n:.2f} of that")
print(f"    most requests in any 1 s: {worst} (limit {rate}); jobs geocoded: {geocoded:,} of {n:,}")
print(f"    {requests / (end - insert_end):,.0f} requests/s, {geocoded / (end - insert_end):,.0f} jobs/s")
EOF

# (b) 50 technicians around a job, each with a position; warm the travel-time cache, then time.
q >/dev/null <<SQL
INSERT INTO crm.users (id, account_id, email, full_name, role)
SELECT ('0000000b-0000-0000-0000-0000000b' || lpad(i::text, 4, '0'))::uuid, '$ACC', 'tech' || i || '@bench.test', 'Tech ' || i, 'tech'
FROM generate_series(1, 50) i ON CONFLICT DO NOTHING;
INSERT INTO crm.technician_positions (user_id, account_id, latitude, longitude, recorded_at)
SELECT ('0000000b-0000-0000-0000-0000000b' || lpad(i::text, 4, '0'))::uuid, '$ACC', 30.2 + (i % 10) * 0.02, -97.8 + (i / 10) * 0.03, now()
FROM generate_series(1, 50) i ON CONFLICT (user_id) DO UPDATE SET recorded_at = now();
INSERT INTO crm.jobs (id, account_id, title, address, scheduled_start, scheduled_end, assigned_to)
SELECT ('0000000b-0000-0000-0000-0000000c' || lpad(i::text, 4, '0'))::uuid, '$ACC', 'Busy ' || i, 'busy ' || i || ' Bench St.',
       now() + interval '1 hour', now() + interval '3 hours', ('0000000b-0000-0000-0000-0000000b' || lpad(i::text, 4, '0'))::uuid
FROM generate_series(1, 15) i ON CONFLICT DO NOTHING;
INSERT INTO crm.jobs (id, account_id, title, address, scheduled_start, scheduled_end)
VALUES ('0000000b-0000-0000-0000-0000000d0001', '$ACC', 'Dispatch', '100 Congress Ave, Austin, TX', now() + interval '2 hours', now() + interval '3 hours')
ON CONFLICT DO NOTHING;
SQL
q -c "SELECT crm.process_integration_tasks(1000)" >/dev/null
q -c "SELECT count(*) FROM crm.suggest_technicians('0000000b-0000-0000-0000-0000000d0001', 5)" >/dev/null
q <<'SQL'
CREATE TEMP TABLE t (ms float8);
DO $$
DECLARE s timestamptz;
BEGIN
    FOR i IN 1..200 LOOP
        s := clock_timestamp();
        PERFORM count(*) FROM crm.suggest_technicians('0000000b-0000-0000-0000-0000000d0001', 5);
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000);
    END LOOP;
END $$;
SELECT format('(b) suggest_technicians among 50 technicians (15 busy), warm cache, 200 calls: p50 %s ms, p95 %s ms (target p50 < 20 ms)',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2))
FROM t;
SQL

# (c) a 12-job day for one technician: arrival windows of 5 hours starting 07:00-12:00, 30
# minutes at each job.
TECH=0000000b-0000-0000-0000-0000000b0050
export PGOPTIONS="-c crm.route_service_minutes=30"
q >/dev/null <<SQL
DELETE FROM crm.jobs WHERE title LIKE 'Route %';
INSERT INTO crm.jobs (account_id, title, address, scheduled_start, scheduled_end, assigned_to)
SELECT '$ACC', 'Route ' || i, i || ' Route Rd', (current_date + 2) + time '07:00' + (i % 6) * interval '1 hour',
       (current_date + 2) + time '12:00' + (i % 6) * interval '1 hour', '$TECH'
FROM generate_series(1, 12) i;
SQL
q -c "SELECT crm.process_integration_tasks(1000)" >/dev/null
cold=$(q -c "SELECT extract(epoch FROM clock_timestamp()) * 1000" -c "SELECT count(*) FROM crm.plan_route('$TECH', current_date + 2)" -c "SELECT extract(epoch FROM clock_timestamp()) * 1000" | python3 -c "import sys; a=sys.stdin.read().split(); print('%.1f' % (float(a[2]) - float(a[0])))")
q <<SQL
CREATE TEMP TABLE t (ms float8);
DO \$\$
DECLARE s timestamptz;
BEGIN
    FOR i IN 1..50 LOOP
        s := clock_timestamp();
        PERFORM count(*) FROM crm.plan_route('$TECH', current_date + 2);
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000);
    END LOOP;
END \$\$;
SELECT format('(c) plan_route of a 12-job day, warm cache, 50 calls: p50 %s ms, p95 %s ms (target < 100 ms); cold (13 x 13 matrix fetched): $cold ms; exact: %s',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              (SELECT bool_and(exact) FROM crm.plan_route('$TECH', current_date + 2)))
FROM t;
SQL
q >/dev/null <<SQL
ALTER SYSTEM RESET crm.google_maps_base_url;
ALTER SYSTEM RESET crm.google_routes_base_url;
ALTER SYSTEM RESET crm.google_maps_api_key;
ALTER SYSTEM RESET crm.maps_rate_limit;
SELECT pg_reload_conf();
SQL
