#!/usr/bin/env bash
# Install everything crm_integrations needs on a Debian 12 machine, idempotently: a second run
# checks and returns in about a second. Run as root (apt) — the machines here are root.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PGRX_VERSION=0.18.0
APT_PACKAGES=(
  postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-contrib
  postgresql-$PG_MAJOR-cron postgresql-$PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl
  libclang-dev sudo bc xxd openssl wrk pkg-config libssl-dev python3 python3-aiosmtpd curl
  poppler-utils python3-venv lintian
)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a system cluster on 5432; our clusters are throwaway ones on their
# own ports, so that one is left alone.

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  say "cargo-pgrx $PGRX_VERSION: installing (about 7 minutes)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
fi

# Point pgrx at Debian's Postgres; never let it download one (there is no network for that).
if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  say "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
  cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG" >/dev/null
fi
# The voice tests' real clients, pinned: the official MCP Python SDK, and psycopg for the test
# PostgREST gateway (tests/gateway/postgrest.py), in a virtualenv of Debian's Python.
VENV=${CRM_VENV:-/opt/crm_integrations/venv}
if ! "$VENV/bin/python" -c "import mcp, psycopg, jsonschema" 2>/dev/null; then
  say "python: the MCP SDK and psycopg into $VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "mcp==2.3.0" "psycopg[binary]==3.3.9" "jsonschema==4.26.0"
fi
say "toolchain ready: $(cargo pgrx --version), $($PG_CONFIG --version)"
