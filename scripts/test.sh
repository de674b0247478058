#!/usr/bin/env bash
# Every test: plain Rust unit tests of the pure core, #[pg_test]s inside Postgres, and the
# SQL-level integration tests against the installed extension in a fresh cluster.
# Installs whatever is missing first (scripts/setup.sh), so it runs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
BASE=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}

bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features pg15 --quiet -- -D warnings

step "unit tests (crm_core: no Postgres)"
cargo test -p crm_core --quiet

step "#[pg_test]s (cargo pgrx test, cluster run as postgres)"
mkdir -p "$BASE" && chmod 755 "$BASE"
rm -rf "$BASE/pgrx-test" && install -d -o postgres -g postgres "$BASE/pgrx-test"
cargo pgrx test pg15 --runas postgres --pgdata "$BASE/pgrx-test/data"

step "install the extension (without the pg_test functions)"
bash scripts/install.sh >/dev/null

step "SQL integration tests (pgTAP)"
bash scripts/sql-tests.sh

step "the Debian package: build, install without cargo, upgrade, smoke test, remove (make package-test)"
prove --verbose tests/package/test.sh
