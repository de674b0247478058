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

# The delivery tests' vocabulary.
# requests: every request the emulator received, as JSON.
requests() { emu GET /_emulator/requests; }
# jq_ EXPR: print a Python expression over the JSON on stdin (bound to d).
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# process [N]: one crm.process_email_queue(N) call; its jsonb answer.
process() { q -c "SELECT crm.process_email_queue(${1:-100})"; }
# row ID EXPR: EXPR over the queue row ID.
row() { q -c "SELECT $2 FROM crm.email_queue WHERE id = '$1'"; }
