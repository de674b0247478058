#!/usr/bin/env bash
# Benchmarks: each suite prints its figures and its ratio against the named peer, measured in
# the same run on this machine. Expects the release build installed (make bench does that).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=bench
PORT=${CRM_BENCH_PORT:-55434}
bash scripts/cluster.sh start $NAME "$PORT" \
  "shared_preload_libraries = 'crm_integrations, pg_cron'" "cron.database_name = 'postgres'" \
  "shared_buffers = '512MB'" "work_mem = '64MB'" "crm.worker_count = ${CRM_BENCH_WORKERS:-2}"
trap 'bash scripts/cluster.sh stop $NAME' EXIT
eval "$(bash scripts/cluster.sh env $NAME "$PORT")"
psql -X -q -c "CREATE EXTENSION crm_integrations" -c "CREATE SCHEMA bench"
export PGHOST PGPORT PGUSER

mkdir -p .bench-out
suites=${BENCH_SUITES:-vault templates webhooks delivery tasks calendar maps payments contacts voice queue}
for s in $suites; do
  { echo "### suite: $s  ($(nproc) cores, $(date -u +%F), $(psql -XAtc 'select version()' | cut -d' ' -f1-2))"
    if [ -x "bench/$s.sh" ]; then "bench/$s.sh"; else psql -X -q -f "bench/$s.sql"; fi; } 2>&1 | tee ".bench-out/$s.txt"
done
echo "figures saved under .bench-out/"
