#!/usr/bin/env bash
# Delivery benchmark, all in one run against the provider emulator on this machine:
#  (a) sustained worker throughput to the emulator (emails/s), single mode (POST /emails, one
#      email per request) and batch mode (POST /emails/batch, 100 per request), each as a
#      fraction of what the emulator accepts on the same endpoint from a plain HTTP load
#      generator (wrk, 8 keep-alive connections);
#  (b) enqueue -> sent latency at low load (one email every 20 ms), p50 and p99;
#  (c) enqueue throughput, rows/s: single enqueue_email and enqueue_batch of 100 (pgbench, 8 clients).
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres,
# which is the worker's default crm.worker_database).
set -euo pipefail
cd "$(dirname "$0")/.."
EMU_PORT=${CRM_BENCH_EMULATOR_PORT:-18031}
EMU=http://127.0.0.1:$EMU_PORT
python3 tests/emulator/emulator.py "$EMU_PORT" > /tmp/crm_bench_emulator.out 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready /tmp/crm_bench_emulator.out 2>/dev/null && break; sleep 0.1; done
q() { psql -X -q -At "$@"; }
# Waiting for the workers to finish: a cheap check every 0.2 s (through the partial indexes on
# unfinished rows) from one session, committing between checks (so it holds no snapshot that
# would keep dead rows from being pruned), so the benchmark's own polling does not take CPU
# from the workers (a psql started every 0.2 s took 5 % of it); the end time is the last row's
# sent_at, not when the poll noticed.
wait_sent() {
  q <<'SQL'
DO $$ BEGIN
  LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM crm.email_queue WHERE status IN ('pending', 'scheduled', 'processing'));
    COMMIT;
    PERFORM pg_sleep(0.2);
  END LOOP;
END $$;
SQL
}
db_now() { q -c "SELECT extract(epoch FROM clock_timestamp())"; }
last_sent() { q -c "SELECT extract(epoch FROM max(sent_at)) FROM crm.email_queue WHERE subject = '$1'"; }
N=${DELIVERY_BENCH_EMAILS:-5000}
NB=${DELIVERY_BENCH_BATCH_EMAILS:-30000}
WB=${DELIVERY_BENCH_WORKER_BATCH:-500}   # rows a worker claims per round in batch mode
# DELIVERY_BENCH_PARTS: which of single, batch, latency, enqueue to run (bench/queue.sh: batch)
PARTS=" ${DELIVERY_BENCH_PARTS:-single batch latency enqueue} "
part() { [[ "$PARTS" == *" $1 "* ]]; }

q <<SQL
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_bench';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.worker_enabled = off;
ALTER SYSTEM SET crm.resend_batch = off;
SELECT pg_reload_conf();
INSERT INTO crm.accounts (id, name) VALUES ('0000000b-0000-0000-0000-00000000d1d1', 'Delivery bench') ON CONFLICT DO NOTHING;
SQL

# Raw capacity of the emulator, from a plain HTTP load generator: wrk, 8 keep-alive
# connections (the worker keeps its connection open too), 5 s.
lua=$(mktemp --suffix=.lua)
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"from": "CRM <noreply@example.com>", "to": ["a@example.com"], "subject": "Bench", "text": "Hello"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer re_bench"
LUA
raw=$(wrk -t2 -c8 -d5s -s "$lua" "$EMU/emails" 2>/dev/null | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
# The same for the batch endpoint, 100 emails per request (each with its own recipient, as the
# worker sends them).
python3 - "$lua" <<'PY'
import json, sys
body = json.dumps([{"from": "CRM <noreply@example.com>", "to": ["a%d@example.com" % i], "subject": "Bench", "text": "message %d" % i}
                   for i in range(100)])
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
                             'wrk.headers["Authorization"] = "Bearer re_bench"\n' % json.dumps(body))
PY
raw_batch_req=$(wrk -t2 -c8 -d5s -s "$lua" "$EMU/emails/batch" 2>/dev/null | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
raw_batch=$(echo "$raw_batch_req * 100" | bc -l)
rm -f "$lua"
curl -s -X POST "$EMU/_emulator/reset" >/dev/null

# (a) N emails queued while the worker is off; then on, and time until all are sent.
if part single; then
q -c "SELECT count(*) FROM generate_series(1, $N / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
        'account_id', '0000000b-0000-0000-0000-00000000d1d1', 'to', 'r' || b || '-' || i || '@example.com',
        'subject', 'Throughput', 'text', 'message ' || i)) FROM generate_series(1, 100) i))" >/dev/null
start=$(db_now)
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_sent
secs=$(echo "$(last_sent Throughput) - $start" | bc -l)
single=$(echo "$N / $secs" | bc -l)
fi

# (a') Batch mode: NB emails, each worker claiming WB per round (500: five batch requests).
if part batch; then
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "ALTER SYSTEM SET crm.resend_batch = on" \
  -c "ALTER SYSTEM SET crm.worker_batch_size = $WB" -c "SELECT pg_reload_conf()" >/dev/null
curl -s -X POST "$EMU/_emulator/reset" >/dev/null
q -c "SELECT count(*) FROM generate_series(1, $NB / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
        'account_id', '0000000b-0000-0000-0000-00000000d1d1', 'to', 'r' || b || '-' || i || '@example.com',
        'subject', 'Batch throughput', 'text', 'message ' || i)) FROM generate_series(1, 100) i))" >/dev/null
q -c "VACUUM ANALYZE crm.email_queue" >/dev/null
start=$(db_now)
q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_sent
secs=$(echo "$(last_sent 'Batch throughput') - $start" | bc -l)
batched=$(echo "$NB / $secs" | bc -l)
batch_requests=$(curl -s "$EMU/_emulator/requests" | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(1 for r in d if r['path'] == '/emails/batch'))")
curl -s -X POST "$EMU/_emulator/reset" >/dev/null
q -c "ALTER SYSTEM RESET crm.worker_batch_size" -c "ALTER SYSTEM SET crm.resend_batch = off" -c "SELECT pg_reload_conf()" >/dev/null
fi

# (b) Low load: one email every 20 ms, each committed on its own; latency = sent_at - created_at.
if part latency; then
sleep 1
script=$(mktemp)
for i in $(seq 300); do
  echo "SELECT crm.enqueue_email('{\"account_id\": \"0000000b-0000-0000-0000-00000000d1d1\", \"to\": \"lat$i@example.com\", \"subject\": \"Latency\", \"text\": \"t\"}');"
  echo "SELECT pg_sleep(0.02);"
done > "$script"
q -f "$script" >/dev/null
rm -f "$script"
until [ "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'Latency' AND status <> 'sent'")" = 0 ]; do sleep 0.05; done
read -r p50 p99 max <<< "$(q -F ' ' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1)
    FROM (SELECT extract(epoch FROM sent_at - created_at) * 1000 AS ms FROM crm.email_queue WHERE subject = 'Latency') s")"
fi

# (c) Enqueue throughput (worker off, so only enqueueing is measured).
if part enqueue; then
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
one=$(mktemp); batch=$(mktemp)
echo "SELECT crm.enqueue_email('{\"account_id\": \"0000000b-0000-0000-0000-00000000d1d1\", \"to\": \"e@example.com\", \"subject\": \"Enqueue\", \"text\": \"t\"}');" > "$one"
echo "SELECT count(*) FROM crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('account_id', '0000000b-0000-0000-0000-00000000d1d1', 'to', 'e' || i || '@example.com', 'subject', 'Enqueue', 'text', 't')) FROM generate_series(1, 100) i));" > "$batch"
tps() { pgbench -n -c 8 -j 2 -T 10 -f "$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'; }
e_single=$(tps "$one"); e_batch=$(echo "$(tps "$batch") * 100" | bc -l)
rm -f "$one" "$batch"
fi
q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
  -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.resend_batch" -c "SELECT pg_reload_conf()" >/dev/null

echo
echo "## Delivery (worker -> emulator on 127.0.0.1, $(nproc) cores)"
printf '(a) raw emulator capacity, wrk -c 8, POST /emails:        %8.0f emails/s (one per request)\n' "$raw"
printf '    raw emulator capacity, wrk -c 8, POST /emails/batch:  %8.0f emails/s (%.0f requests/s of 100)\n' "$raw_batch" "$raw_batch_req"
part single && printf '    worker, single mode (%d emails, one per request):   %8.0f emails/s = %.2f of raw /emails capacity\n' "$N" "$single" "$(echo "$single / $raw" | bc -l)"
part batch && printf '    worker, batch mode (%d emails, %d batch requests): %8.0f emails/s = %.2f of raw /emails/batch capacity (target: >= 2,000/s and >= 0.50)\n' \
  "$NB" "$batch_requests" "$batched" "$(echo "$batched / $raw_batch" | bc -l)"
part latency && printf '(b) enqueue -> sent at low load (300 emails, 20 ms apart): p50 %s ms, p99 %s ms, max %s ms (targets: p50 < 50, p99 < 250)\n' "$p50" "$p99" "$max"
part enqueue && printf '(c) enqueue throughput, 8 clients: enqueue_email %8.0f rows/s; enqueue_batch (100 per call) %8.0f rows/s\n' "$e_single" "$e_batch"
true
