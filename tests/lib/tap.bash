# Shared by tests/shell/*.sh (sourced, not run): TAP output, psql against the test database,
# and the provider emulator. Scripts run from the repository root.

DB=${DB:-crm_test}
n=0
failed=0

# psql, quiet, unaligned, stop on the first error.
q() { psql -X -q -At -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

# check GOT WANT DESCRIPTION: one TAP line, with got/want as diagnostics on failure.
check() {
  n=$((n + 1))
  if [ "$1" = "$2" ]; then
    echo "ok $n - $3"
  else
    echo "not ok $n - $3"
    echo "#   got:  '$1'"
    echo "#   want: '$2'"
    failed=1
  fi
}

# start_emulator PORT: the provider emulator on 127.0.0.1:PORT; sets EMU and emu_pid.
start_emulator() {
  local log
  log=$(mktemp)
  python3 tests/emulator/emulator.py "$1" > "$log" 2>&1 &
  emu_pid=$!
  for _ in $(seq 50); do grep -q ready "$log" 2>/dev/null && break; sleep 0.1; done
  EMU=http://127.0.0.1:$1
}

# emu METHOD PATH [JSON]: talk to the emulator's control API.
emu() { curl -s -m 30 -X "$1" "$EMU$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }
