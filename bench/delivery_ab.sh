#!/usr/bin/env bash
# A/B of the workers' delivery throughput: this tree against a released version (a git tag),
# alternating, on the same machine in the same run (this machine's speed drifts by 10-30 %
# over minutes, so figures from different runs do not compare). Each measure: a fresh
# cluster, 2 workers, the emulator; single mode (5,000 emails, one request each) and batch
# mode (20,000 emails, 500 claimed per round, 100 per request).
#   bash bench/delivery_ab.sh v0.3.0 [ROUNDS]
# The tag is built (release) in a worktree under /tmp with its own target directory (several
# minutes the first time). Leaves this tree's release build installed.
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${1:?usage: delivery_ab.sh TAG [ROUNDS]}
ROUNDS=${2:-2}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
WT=/tmp/crm_ab_$REF
[ -d "$WT" ] || git worktree add -f "$WT" "$REF" >/dev/null
A() { (cd "$WT" && CARGO_TARGET_DIR="$PWD/../crm_ab_target_$REF" cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null 2>&1); }
B() { bash scripts/install.sh --release >/dev/null 2>&1; }

measure() { # MODE EMAILS
  local mode=$1 n=$2 port=5497 emu=18996
  bash scripts/cluster.sh start ab $port "shared_preload_libraries = 'crm_integrations'" "crm.worker_enabled = off" "crm.worker_count = 2" >/dev/null
  eval "$(bash scripts/cluster.sh env ab $port)"
  psql -X -q -c "CREATE EXTENSION crm_integrations"
  python3 tests/emulator/emulator.py $emu > /dev/null 2>&1 & local e=$!
  sleep 0.5
  psql -X -q >/dev/null <<SQL
ALTER SYSTEM SET crm.resend_base_url = 'http://127.0.0.1:$emu';
ALTER SYSTEM SET crm.resend_api_key = 're_ab';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.resend_batch = $([ "$mode" = batch ] && echo on || echo off);
ALTER SYSTEM SET crm.worker_batch_size = $([ "$mode" = batch ] && echo 500 || echo 100);
SELECT pg_reload_conf();
INSERT INTO crm.accounts (id, name) VALUES ('0000000b-0000-0000-0000-00000000d1d1', 'ab');
SELECT count(*) FROM generate_series(1, $n / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
        'account_id', '0000000b-0000-0000-0000-00000000d1d1', 'to', 'r' || b || '-' || i || '@example.com',
        'subject', 'T', 'text', 'message ' || i)) FROM generate_series(1, 100) i));
VACUUM ANALYZE crm.email_queue;
SQL
  local start end
  start=$(psql -XAt -c "SELECT extract(epoch FROM clock_timestamp())")
  psql -X -q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
  until [ "$(psql -XAt -c "SELECT EXISTS (SELECT 1 FROM crm.email_queue WHERE status IN ('pending', 'processing'))")" = f ]; do sleep 0.2; done
  end=$(psql -XAt -c "SELECT extract(epoch FROM max(sent_at)) FROM crm.email_queue")
  kill $e
  bash scripts/cluster.sh stop ab >/dev/null
  printf '%.0f' "$(echo "$n / ($end - $start)" | bc -l)"
}

declare -A sum=()
for r in $(seq "$ROUNDS"); do
  for side in A B; do
    $side
    s=$(measure single 5000); b=$(measure batch 20000)
    label=$([ $side = A ] && echo "$REF" || echo "this tree")
    printf 'round %d  %-10s single %6s emails/s   batch %6s emails/s\n' "$r" "$label" "$s" "$b"
    sum[$side.s]=$(( ${sum[$side.s]:-0} + s )); sum[$side.b]=$(( ${sum[$side.b]:-0} + b ))
  done
done
printf 'mean      %-10s single %6d   batch %6d\n' "$REF" $(( sum[A.s] / ROUNDS )) $(( sum[A.b] / ROUNDS ))
printf 'mean      %-10s single %6d   batch %6d\n' "this tree" $(( sum[B.s] / ROUNDS )) $(( sum[B.b] / ROUNDS ))
printf 'ratio this tree / %s: single %.3f, batch %.3f\n' "$REF" "$(echo "${sum[B.s]} / ${sum[A.s]}" | bc -l)" "$(echo "${sum[B.b]} / ${sum[A.b]}" | bc -l)"
