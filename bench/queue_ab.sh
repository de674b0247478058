#!/usr/bin/env bash
# bench/queue.sh for a released version and for this tree, one after the other in one run (this
# machine's speed drifts by 10-30 % over minutes: figures from different runs do not compare).
#   bash bench/queue_ab.sh [TARBALL]
# TARBALL: a release's package tarball (scripts/package.sh; default: the previous release's,
# which `make package-test` leaves under target/package/). Each side gets a fresh cluster with
# the bench settings of scripts/bench.sh. Leaves this tree's release build installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TARBALL=${1:-$(ls target/package/crm_integrations-*-pg15-amd64.tar.gz 2>/dev/null | grep -v -- "-$VERSION-" | sort -V | tail -1)}
[ -f "$TARBALL" ] || { echo "no release tarball (run make package-test, or pass one)" >&2; exit 2; }
OLD=$(basename "$TARBALL" | sed 's/^crm_integrations-\(.*\)-pg15-amd64.tar.gz$/\1/')
LIB=/usr/lib/postgresql/15/lib
EXT=/usr/share/postgresql/15/extension
PORT=${CRM_BENCH_PORT:-55434}

side() { # LABEL
  bash scripts/cluster.sh start queue_ab "$PORT" \
    "shared_preload_libraries = 'crm_integrations'" "shared_buffers = '512MB'" "work_mem = '64MB'" "crm.worker_count = 2" >/dev/null
  eval "$(bash scripts/cluster.sh env queue_ab "$PORT")"
  export PGHOST PGPORT PGUSER
  psql -X -q -c "CREATE EXTENSION crm_integrations" -c "CREATE SCHEMA bench"
  echo "### $1 ($(psql -XAt -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_integrations'"))"
  bench/queue.sh 2>/dev/null | sed -n '/^## Queue performance/,$p'
  bash scripts/cluster.sh stop queue_ab >/dev/null
}

# the release: its library and scripts in place of this tree's
tar -xzf "$TARBALL" -C / usr/lib/postgresql/15/lib/crm_integrations.so "usr/share/postgresql/15/extension/crm_integrations--$OLD.sql" \
  usr/share/postgresql/15/extension/crm_integrations.control
side "release $OLD"
# this tree (the release's install script is not part of it)
rm -f "$EXT/crm_integrations--$OLD.sql"
bash scripts/install.sh --release >/dev/null 2>&1
test -f "$LIB/crm_integrations.so"
side "this tree ($VERSION)"
