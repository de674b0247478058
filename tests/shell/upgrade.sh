#!/usr/bin/env bash
# TAP: ALTER EXTENSION crm_integrations UPDATE from 0.1.0 (as it shipped) through 0.2.0 to
# this version.
# A database made with 0.1.0 and updated must end up with exactly what a fresh install makes
# (tests/upgrade/fingerprint.sql: functions and their privileges, columns, constraints,
# indexes, triggers, views, policies, table privileges, extension members, pg_dump
# configuration), and its data must survive and keep working.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
EXT=$(/usr/lib/postgresql/15/bin/pg_config --sharedir)/extension
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
echo "1..9"

# The shipped 0.1.0 install script is a test fixture (the update script itself is installed
# with the extension: scripts/install.sh).
install -m 644 tests/upgrade/crm_integrations--0.1.0.sql "$EXT/"
check "$([ -f "$EXT/crm_integrations--0.1.0--0.2.0.sql" ] && [ -f "$EXT/crm_integrations--0.2.0--$VERSION.sql" ] && echo present)" "present" "the update scripts 0.1.0 -> 0.2.0 -> $VERSION are installed"

for db in crm_upgrade_old crm_upgrade_new; do psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"; done
DB=crm_upgrade_old q <<'SQL'
CREATE EXTENSION crm_integrations VERSION '0.1.0';
INSERT INTO crm.accounts (id, name) VALUES ('0000000a-0000-0000-0000-00000000a9a9', 'Before the update');
SELECT crm.enqueue_email('{"account_id": "0000000a-0000-0000-0000-00000000a9a9", "to": "kept@example.com", "subject": "s", "text": "t"}');
SQL
check "$(DB=crm_upgrade_old q -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_integrations'")" "0.1.0" "a database on 0.1.0"
# On 0.2.0, foreign keys let a tenant point its rows at another account's: the update to 0.3.0
# clears such references (and only those) before it adds the composite keys.
DB=crm_upgrade_old q -c "ALTER EXTENSION crm_integrations UPDATE TO '0.2.0'" 2>&1
DB=crm_upgrade_old q <<'SQL'
INSERT INTO crm.accounts (id, name) VALUES ('0000000b-0000-0000-0000-00000000b9b9', 'Victim');
INSERT INTO crm.contacts (id, account_id, first_name) VALUES
  ('c0000000-0000-0000-0000-0000000000a1', '0000000a-0000-0000-0000-00000000a9a9', 'Own'),
  ('c0000000-0000-0000-0000-0000000000b1', '0000000b-0000-0000-0000-00000000b9b9', 'Theirs');
INSERT INTO crm.jobs (id, account_id, title, contact_id) VALUES
  ('d0000000-0000-0000-0000-0000000000a1', '0000000a-0000-0000-0000-00000000a9a9', 'own contact', 'c0000000-0000-0000-0000-0000000000a1'),
  ('d0000000-0000-0000-0000-0000000000a2', '0000000a-0000-0000-0000-00000000a9a9', 'their contact', 'c0000000-0000-0000-0000-0000000000b1'),
  ('d0000000-0000-0000-0000-0000000000b1', '0000000b-0000-0000-0000-00000000b9b9', 'victim job', NULL);
INSERT INTO crm.invoices (account_id, invoice_number, amount, job_id) VALUES
  ('0000000a-0000-0000-0000-00000000a9a9', 'INV-X', 100, 'd0000000-0000-0000-0000-0000000000b1');
SQL
DB=crm_upgrade_old q -c "ALTER EXTENSION crm_integrations UPDATE TO '$VERSION'" 2>&1
check "$(DB=crm_upgrade_old q -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_integrations'")" "$VERSION" "ALTER EXTENSION ... UPDATE brings it to $VERSION"
DB=crm_upgrade_new q -c "CREATE EXTENSION crm_integrations"
old=$(DB=crm_upgrade_old q -f tests/upgrade/fingerprint.sql)
new=$(DB=crm_upgrade_new q -f tests/upgrade/fingerprint.sql)
check "$(diff <(echo "$old") <(echo "$new") >/dev/null && echo same || diff <(echo "$old") <(echo "$new") | head -20)" "same" \
  "the updated database has exactly what a fresh install has ($(echo "$new" | wc -l) facts compared)"
check "$(DB=crm_upgrade_old q -c "SELECT recipient_email || ' ' || status || ' ' || (send_key IS NULL) FROM crm.email_queue")" \
  "kept@example.com pending true" "the queued email survived, with the new column empty"
check "$(DB=crm_upgrade_old q -c "SELECT crm.cancel_email(id) FROM crm.email_queue")" "t" "... and the updated functions work on it"
check "$(DB=crm_upgrade_old q -c "SELECT string_agg(title || '=' || coalesce(contact_id::text, 'null'), ' ' ORDER BY title) FROM crm.jobs WHERE account_id = '0000000a-0000-0000-0000-00000000a9a9'")" \
  "own contact=c0000000-0000-0000-0000-0000000000a1 their contact=null" "a job's reference into another account was cleared, its own kept"
check "$(DB=crm_upgrade_old q -c "SELECT coalesce(job_id::text, 'null') FROM crm.invoices WHERE invoice_number = 'INV-X'")" "null" \
  "an invoice on another account's job lost that job"
check "$(DB=crm_upgrade_old q -c "UPDATE crm.jobs SET contact_id = 'c0000000-0000-0000-0000-0000000000b1' WHERE title = 'own contact'" 2>&1 | grep -o 'violates foreign key constraint "jobs_contact_fk"')" \
  'violates foreign key constraint "jobs_contact_fk"' "after the update a cross-account reference is refused by the composite key"
for db in crm_upgrade_old crm_upgrade_new; do psql -X -q -d postgres -c "DROP DATABASE $db"; done
exit $failed
