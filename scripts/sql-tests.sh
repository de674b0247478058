#!/usr/bin/env bash
# SQL-level integration tests: the installed extension in a real, freshly made cluster, driven
# by pgTAP files under tests/sql/ (run with pg_prove, in name order).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=sqltest
PORT=${CRM_SQLTEST_PORT:-55433}
LOG=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}/$NAME/server.log

# The two email workers serve crm_test but start disabled: most tests drive
# crm.process_email_queue themselves; tests/shell/worker.sh switches them on.
# log_statement = 'all' and verbose errors make zz_server_log.sql's "the key is not in the
# log" check meaningful.
bash scripts/cluster.sh start $NAME "$PORT" \
  "shared_preload_libraries = 'crm_integrations, pg_cron'" \
  "cron.database_name = 'crm_test'" "cron.use_background_workers = on" "max_worker_processes = 16" \
  "log_statement = 'all'" "log_min_error_statement = error" "log_error_verbosity = verbose" \
  "crm_test.log_file = '$LOG'" \
  "crm.worker_database = 'crm_test'" "crm.worker_enabled = off" "crm.worker_count = 2"
stopped=0
stop_cluster() { [ "$stopped" = 1 ] || [ "${CRM_KEEP_CLUSTER:-0}" = 1 ] || bash scripts/cluster.sh stop $NAME; stopped=1; }
trap stop_cluster EXIT  # CRM_KEEP_CLUSTER=1: keep it to debug
eval "$(bash scripts/cluster.sh env $NAME "$PORT")"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE crm_test"
psql -X -q -v ON_ERROR_STOP=1 -d crm_test <<'SQL'
-- The three roles a plain Postgres needs to stand in for Supabase (same lines as the README).
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
CREATE EXTENSION pgtap;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION crm_integrations;
\i tests/sql/_helpers.sql
SQL

# CRM_SQL_TESTS / CRM_SHELL_TESTS: a subset while developing (both run in full by default).
pg_prove --dbname crm_test --failures ${CRM_SQL_TESTS:-tests/sql/[a-z]*.sql}

# Tests that need several real sessions at once (TAP from shell scripts), same cluster.
export PGHOST PGPORT PGUSER
prove --verbose ${CRM_SHELL_TESTS:-tests/shell/*.sh}
# Last check: the server (workers included) shuts down when asked.
stop_cluster
