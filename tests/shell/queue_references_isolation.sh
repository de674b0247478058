#!/usr/bin/env bash
# TAP: the queue's reference checks (crm._email_queue_references_exist, once per statement, in
# place of the foreign keys' per-row insert checks) against a concurrent deletion of the account
# or the template, as deterministic interleavings (pg_isolation_regress,
# tests/isolation/specs/queue_references.spec): (1) the installed extension gives the expected
# steps and results; (2) the same spec, in a database where the foreign keys' own per-row checks
# are switched back on and ours off, gives the very same output: the replacement waits, fails,
# cascades and clears exactly as the built-in checks.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
echo "1..2"
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
rm -rf "$out"
exit $failed
