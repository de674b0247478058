#!/usr/bin/env bash
# Webhook ingest benchmark: verified (HMAC), deduplicated ingest with effects, 8 concurrent
# clients (pgbench), for Stripe and Resend deliveries, with no duplicates and with 50 %
# duplicates (every event delivered twice). Target: >= 5,000 events/s on this 2-core machine.
# Expects PGHOST/PGPORT/PGUSER of a running bench cluster. WEBHOOK_BENCH_FSYNC ("off on") and
# WEBHOOK_BENCH_DUPLICATES ("0 50") choose the runs (bench/queue.sh: fsync on, no duplicates).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${WEBHOOK_BENCH_SECONDS:-15}
EVENTS=${WEBHOOK_BENCH_EVENTS:-150000}
export PGOPTIONS="-c crm.stripe_webhook_secret=whsec_bench -c crm.resend_webhook_secret=whsec_YmVuY2gtc2VjcmV0LWtleS0zMi1ieXRlcy1sb25nISE="
script=$(mktemp)
results=$(mktemp)
run=${WEBHOOK_BENCH_RUN_OFFSET:-0}   # run numbers name the events: a second run in one database starts past the first
# fsync off: the cost of our code (CPU-bound). fsync on: what this machine's disk allows, next
# to its ceiling for the lightest durable transaction (a one-row insert, same 8 clients).
for mode in ${WEBHOOK_BENCH_FSYNC:-off on}; do
  psql -X -q -c "ALTER SYSTEM SET fsync = $mode" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  if [ "$mode" = on ]; then
    psql -X -q -c "DROP TABLE IF EXISTS bench.floor; CREATE TABLE bench.floor (id bigint)"
    echo "INSERT INTO bench.floor VALUES (1);" > "$script"
    floor=$(pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$script" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
  fi
  for provider in stripe resend; do
  for dup in ${WEBHOOK_BENCH_DUPLICATES:-0 50}; do
    run=$((run + 1))
    psql -X -q -v run=$run -v events=$EVENTS -v provider=$provider -f bench/webhooks_setup.sql
    if [ "$dup" = 0 ]; then pick="nextval('bench.hook_seq')"; else pick="(nextval('bench.hook_seq') + 1) / 2"; fi
    echo "SELECT crm.ingest_webhook(h.provider, h.headers, h.body) FROM (SELECT $pick AS n) k JOIN bench.hooks h USING (n);" > "$script"
    tps=$(pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$script" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
    check=$(psql -X -At -c "SELECT count(*) FILTER (WHERE provider = '$provider' AND event_id LIKE '%\_${run}\_%'),
                                   (SELECT count(*) FROM crm.payments WHERE stripe_payment_intent_id LIKE 'pi\_${run}\_%'),
                                   (SELECT count(*) FROM crm.email_analytics WHERE message_id LIKE 're\_${run}\_%')
                            FROM crm.webhook_events")
    printf '%s|%s|%s|%s|%s\n' "fsync=$mode" "$provider" "$dup" "$tps" "$check" >> "$results"
  done
  done
done
echo
echo "## Webhook ingest: 8 clients (pgbench -c 8 -j 2 -T $SECONDS_PER_RUN), verified + deduplicated + applied"
printf '%-10s %-8s %-11s %14s %14s %s\n' mode provider duplicates deliveries/s "vs target" "stored events | payments | analytics rows"
while IFS='|' read -r m p d t c; do
  printf '%-10s %-8s %-11s %14.0f %13.2fx %s\n' "$m" "$p" "$d %" "$t" "$(echo "$t / 5000" | bc -l)" "$c"
done < "$results"
[ -z "${floor:-}" ] || printf 'durable ceiling of this disk (one-row INSERT per transaction, 8 clients): %.0f tx/s\n' "$floor"
rm -f "$script" "$results"
