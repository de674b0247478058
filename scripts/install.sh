#!/usr/bin/env bash
# Build and install the extension into the system Postgres 15, with its update scripts
# (sql/upgrades/*.sql, which cargo pgrx does not install; the newest one is generated).
# Pass --release for an optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
cargo pgrx install "$@" --pg-config "$PG_CONFIG"
EXT="$($PG_CONFIG --sharedir)/extension"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# Released updates are complete scripts; the update to this version is generated from its
# reviewed schema changes plus the install script just written (scripts/gen_update.py).
for f in sql/upgrades/crm_integrations--*--*.sql; do
  case "$f" in
    *.schema.sql)
      out=$(basename "$f" .schema.sql).sql
      case "$out" in *--"$VERSION".sql) ;; *) echo "$f: only the update to $VERSION can be generated (freeze older ones)" >&2; exit 1 ;; esac
      python3 scripts/gen_update.py "$EXT/crm_integrations--$VERSION.sql" "$f" sql/security.sql "$EXT/$out" ;;
    *) install -m 644 "$f" "$EXT/" ;;
  esac
done
