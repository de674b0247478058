#!/usr/bin/env bash
# TAP: the queue's reference checks (crm._email_queue_references_exist, once per statement, in
# place of the foreign keys' per-row insert checks) against a concurrent deletion of the account
# or the template, as deterministic interleavings (pg_isolation_regress,
# tests/isolation/specs/queue_references.spec): (1) the installed extension gives the expected
# steps and results; (2) the same spec, in a database where the foreign keys' own per-row checks
# are switched back on and ours off, gives the very same output: the replacement waits, fails,
# cascades and clears exactly as the built-in checks.
# (3-5) As a hostile caller meets it: anon and a tenant cannot call it or bypass the enqueue
# functions; refused batches write nothing; waiting on a locked account it stays cancellable.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
echo "1..5"
ISOLATION=$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress
out=$(mktemp -d)
chmod 777 "$out"   # (the tests may run as root; the results are written by this script only)

# run_spec DB: 0 when the spec's output equals tests/isolation/expected/queue_references.out.
run_spec() {
  "$ISOLATION" --use-existing --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname="$1" \
    --inputdir=tests/isolation --outputdir="$out/$1" queue_references > "$out/$1.log" 2>&1
  local rc=$?
  [ $rc = 0 ] || { sed 's/^/# /' "$out/$1.log"; [ -f "$out/$1/regression.diffs" ] && sed 's/^/# /' "$out/$1/regression.diffs"; }
  return $rc
}

for db in crm_iso_ours crm_iso_builtin; do
  DB=postgres q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  DB=$db q -c "CREATE EXTENSION crm_integrations"
done
DB=crm_iso_builtin q <<'SQL'
ALTER TABLE crm.email_queue DISABLE TRIGGER email_queue_references_exist;
DO $$
DECLARE per_row_check name;
BEGIN
    FOR per_row_check IN
        SELECT t.tgname FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint
        WHERE t.tgrelid = 'crm.email_queue'::regclass AND t.tgfoid = 'pg_catalog."RI_FKey_check_ins"'::regproc
    LOOP
        EXECUTE format('ALTER TABLE crm.email_queue ENABLE TRIGGER %I', per_row_check);
    END LOOP;
END $$;
SQL

run_spec crm_iso_ours; check $? 0 "seven interleavings of an enqueue and a deletion of its account or template: waits, 23503, rollback, 40001 under REPEATABLE READ, SET NULL, a batch over two accounts; nothing left pointing at nothing"
run_spec crm_iso_builtin; check $? 0 "... the same steps and results as with the foreign key's own per-row check"

for db in crm_iso_ours crm_iso_builtin; do DB=postgres q -c "DROP DATABASE $db"; done

# The check as a hostile caller meets it (in the test database): it takes no argument and runs
# only as a trigger, so what a caller controls is the rows enqueued and when.
A=00000151-0000-0000-0000-0000000000a1
B=00000151-0000-0000-0000-0000000000b1
q -c "DELETE FROM crm.accounts WHERE id IN ('$A', '$B')" -c "INSERT INTO crm.accounts (id, name) VALUES ('$A', 'Refs A'), ('$B', 'Refs B')"
# state SQL ROLE [CLAIMS]: the SQLSTATE, or ok
state() {
  local out
  out=$(PGOPTIONS="${PGOPTIONS:-} -c role=$2 ${3:+-c request.jwt.claims=$3}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "$1" 2>&1)
  echo "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1 | grep . || echo ok
}
claims_a="{\"account_id\":\"$A\"}"
queued() { q -c "SELECT count(*) FROM crm.email_queue WHERE account_id IN ('$A', '$B')"; }
deep=$(python3 -c "print('[' * 5000 + ']' * 5000)")
check "$(state "SELECT crm._email_queue_references_exist()" anon)/$(state "SELECT crm._email_queue_references_exist()" authenticated "$claims_a")/$(state "SELECT crm._disable_queue_reference_row_checks()" authenticated "$claims_a")/$(state "INSERT INTO crm.email_queue (account_id, recipient_email, subject) VALUES ('$B', 'x@x.io', 's')" authenticated "$claims_a")" \
  "42501/42501/42501/42501" "anon and a tenant cannot call the check (or switch checks off), nor insert queue rows past the enqueue functions (42501)"
check "$(state "SELECT crm.enqueue_batch(jsonb_build_array(jsonb_build_object('account_id', '$B', 'to', 'x@x.io', 'subject', 's', 'text', 't')))" authenticated "$claims_a")/$(state "SELECT crm.enqueue_batch('[{\"account_id\": \"0000000f-not-a-uuid\", \"to\": \"x@x.io\", \"subject\": \"s\", \"text\": \"t\"}]')" authenticated "$claims_a")/$(state "SELECT crm.enqueue_batch('[{\"account_id\": \"00000151-0000-0000-0000-0000000000ff\", \"to\": \"x@x.io\", \"subject\": \"s\", \"text\": \"t\"}]')" authenticated "$claims_a")/$(state "SELECT crm.enqueue_batch('$deep')" authenticated "$claims_a")/$(state "SELECT crm.enqueue_batch(jsonb_build_array(jsonb_build_object('to', 'x@x.io', 'subject', 's', 'text', repeat('x', 3000000))))" authenticated "$claims_a")/$(queued)" \
  "42501/22023/42501/22023/22023/0" "a tenant's batch naming another account, a malformed or unknown account id, 5,000-deep or a 3 MB text: refused before any row, nothing queued"
# A deletion in progress holds the account: the check waits in its FOR KEY SHARE, and
# statement_timeout still ends it (57014) within a second of the limit, writing nothing.
q -c "BEGIN" -c "SELECT 1 FROM crm.accounts WHERE id = '$A' FOR UPDATE" -c "SELECT pg_sleep(4)" -c "ROLLBACK" >/dev/null &
holder=$!
sleep 0.5
t0=$(date +%s%N)
out=$(PGOPTIONS="-c statement_timeout=500" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT count(*) FROM crm.enqueue_batch(jsonb_build_array(jsonb_build_object('account_id', '$A', 'to', 'x@x.io', 'subject', 's', 'text', 't')))" 2>&1)
got=$(echo "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')
# (where it waited: the CONTEXT names the check)
echo "$out" | grep -q 'function crm._email_queue_references_exist()' && got="$got in the check"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait $holder
check "$got/$([ "$ms" -lt 1500 ] && echo prompt || echo "${ms}ms")/$(queued)/$(q -c "SELECT 1")" "57014 in the check/prompt/0/1" \
  "waiting on a locked account, the check is ended by statement_timeout (57014) within a second; nothing queued; the server is up"
rm -rf "$out"
exit $failed
