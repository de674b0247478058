#!/usr/bin/env bash
# Throwaway Postgres clusters for the demo, the tests and the benchmarks.
# Postgres refuses to run as root, so each cluster belongs to the postgres user and lives
# under $CRM_CLUSTER_BASE (default /tmp/crm_integrations/<name>), with its socket there too.
#
#   scripts/cluster.sh start NAME PORT [postgresql.conf line ...]   fresh cluster, started
#   scripts/cluster.sh stop NAME                                    stop and remove it
#   scripts/cluster.sh env NAME PORT                                print PGHOST/PGPORT/PGUSER exports
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
BASE=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}
as_pg() { runuser -u postgres -- "$@"; }

cmd=${1:?usage: cluster.sh start|stop|env NAME [PORT] [conf...]}
name=${2:?cluster name}
dir=$BASE/$name

case "$cmd" in
start)
  port=${3:?port}
  shift 3
  if [ -f "$dir/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 755 "$BASE"
  chown postgres:postgres "$dir"
  as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
  # A random vault key per cluster: nothing secret is ever committed.
  key=$(head -c 32 /dev/urandom | base64)
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    # Throwaway clusters skip fsync (durability is not what tests check); benchmarks of
    # writes set CRM_DURABLE=1 to measure with the server's real commit path.
    [ "${CRM_DURABLE:-0}" = 1 ] || echo "fsync = off"
    echo "max_connections = 100"
    echo "crm.encryption_key = '$key'"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
  as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
  ;;
stop)
  # A fast shutdown must finish: a background worker that ignores SIGTERM would hold it up
  # forever. Then say so (exit 1), kill what is left, and clean up anyway.
  status=0
  if [ -f "$dir/data/postmaster.pid" ]; then
    if ! as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null; then
      echo "cluster $name did not shut down within 30 s (fast shutdown)" >&2
      status=1
      as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$dir"
  exit $status
  ;;
env)
  port=${3:?port}
  echo "export PGHOST=$dir PGPORT=$port PGUSER=postgres"
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
