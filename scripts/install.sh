#!/usr/bin/env bash
# Build and install the extension into the system Postgres 15, with its update scripts
# (sql/upgrades/*.sql, which cargo pgrx does not install). Pass --release for an optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
cargo pgrx install "$@" --pg-config "$PG_CONFIG"
install -m 644 sql/upgrades/*.sql "$($PG_CONFIG --sharedir)/extension/"
