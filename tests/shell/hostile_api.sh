#!/usr/bin/env bash
# TAP: every entry point added in 0.5.0 (Maps, payments, contacts) and 0.6.0 (contact sync,
# drafts) called the way a hostile
# PostgREST caller would: as anon, as another account's user, with NULLs, malformed,
# oversized and deeply nested arguments; each refusal has its SQLSTATE, nothing is written,
# a slow provider call stays cancellable, and the server stays up.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_HOSTILE:-18057}"
trap 'kill $emu_pid 2>/dev/null' EXIT
echo "1..12"
A=0000000f-0000-0000-0000-0000000000f1
B=0000000f-0000-0000-0000-0000000000f2
UA=0000000f-0000-0000-0000-0000000000a1
UB=0000000f-0000-0000-0000-0000000000b1
export PGOPTIONS="-c crm.google_maps_base_url=$EMU -c crm.google_routes_base_url=$EMU -c crm.google_maps_api_key=AIzaHostile -c crm.stripe_base_url=$EMU -c crm.stripe_secret_key=sk_test_hostile -c crm.app_base_url=https://app.example.com"
q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id IN ('$A', '$B');
INSERT INTO crm.accounts (id, name) VALUES ('$A', 'Hostile A'), ('$B', 'Hostile B');
INSERT INTO crm.users (id, account_id, email, role) VALUES ('$UA', '$A', 'a@h.example', 'tech'), ('$UB', '$B', 'b@h.example', 'tech');
INSERT INTO crm.contacts (id, account_id, first_name) VALUES ('0000000f-0000-0000-0000-0000000000c1', '$A', 'Mine'), ('0000000f-0000-0000-0000-0000000000c2', '$A', 'Also mine');
INSERT INTO crm.jobs (id, account_id, title, address, assigned_to) VALUES ('0000000f-0000-0000-0000-0000000000d1', '$A', 'Job', '1 Main St', '$UA');
INSERT INTO crm.invoices (id, account_id, invoice_number, amount, status) VALUES ('0000000f-0000-0000-0000-0000000000e1', '$A', 'H-1', 5000, 'sent');
SELECT crm.merge_contacts('0000000f-0000-0000-0000-0000000000c1', '0000000f-0000-0000-0000-0000000000c2');
SQL
MERGE=$(q -c "SELECT id FROM crm.contact_merges WHERE account_id = '$A'")
J=0000000f-0000-0000-0000-0000000000d1; I=0000000f-0000-0000-0000-0000000000e1; C=0000000f-0000-0000-0000-0000000000c1
CALLS=(
  "SELECT * FROM crm.geocode('1 Main St')"
  "SELECT * FROM crm.reverse_geocode(30, -97)"
  "SELECT * FROM crm.travel_times('[[30,-97]]', '[[30.1,-97.1]]')"
  "SELECT crm.geocode_missing()"
  "SELECT crm.report_location(30, -97)"
  "SELECT * FROM crm.job_eta('$J')"
  "SELECT * FROM crm.suggest_technicians('$J')"
  "SELECT * FROM crm.plan_route('$UA', current_date)"
  "SELECT crm.create_invoice_checkout('$I')"
  "SELECT crm.create_payment_intent('$I')"
  "SELECT crm.invoice_pdf('$I')"
  "SELECT crm.send_invoice_email('$I', 'x@example.com')"
  "SELECT * FROM crm.find_duplicate_contacts('$A')"
  "SELECT crm.merge_contacts('$C', '0000000f-0000-0000-0000-0000000000c9')"
  "SELECT crm.unmerge_contacts('$MERGE')"
)
# state CALL ROLE CLAIMS: the SQLSTATE (or ok)
state() {
  local out
  out=$(PGOPTIONS="$PGOPTIONS -c role=$2 ${3:+-c request.jwt.claims=$3}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "$1" 2>&1)
  echo "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1 | grep . || echo ok
}
snapshot() { q -c "SELECT (SELECT count(*) FROM crm.maps_usage) || '/' || (SELECT count(*) FROM crm.technician_locations) || '/' || (SELECT count(*) FROM crm.email_queue) || '/' || (SELECT count(*) FROM crm.contact_merges WHERE unmerged_at IS NULL) || '/' || (SELECT coalesce(stripe_checkout_session_id, '-') || coalesce(stripe_payment_intent_id, '-') FROM crm.invoices WHERE id = '$I')"; }
before=$(snapshot)
anon=""; for c in "${CALLS[@]}"; do anon+="$(state "$c" anon)"$'\n'; done
check "$(echo "$anon" | grep . | sort | uniq -c | awk '{print $1, $2}' | tr '\n' ' ')" "15 42501 " "anon: every new entry point is refused with 42501 (no EXECUTE)"
other=""; for c in "${CALLS[@]}"; do other+="$(state "$c" authenticated "{\"sub\":\"$UB\"}") "; done
check "$other" "ok ok ok ok ok P0002 P0002 P0002 P0002 P0002 P0002 P0002 42501 P0002 P0002 " \
  "another account's user: A's job, technician, invoice, contacts and merge are 'not found' (P0002), A's duplicates 42501; what it may do alone (geocode, travel times, its own location) works"
check "$(snapshot | cut -d/ -f3-)" "$(echo "$before" | cut -d/ -f3-)" "... and none of the refusals wrote anything (queue, merges, the invoice's Stripe ids)"
as_a() { state "$1" authenticated "{\"sub\":\"$UA\"}"; }
check "$(as_a "SELECT * FROM crm.geocode(NULL)")/$(as_a "SELECT * FROM crm.reverse_geocode(NULL, 1)")/$(as_a "SELECT crm.report_location(NULL, NULL)")/$(as_a "SELECT * FROM crm.travel_times(NULL, NULL)")/$(as_a "SELECT * FROM crm.job_eta(NULL)")/$(as_a "SELECT * FROM crm.plan_route(NULL, NULL)")/$(as_a "SELECT crm.create_invoice_checkout(NULL)")/$(as_a "SELECT crm.invoice_pdf(NULL)")/$(as_a "SELECT crm.merge_contacts(NULL, NULL)")/$(as_a "SELECT crm.unmerge_contacts(NULL)")" \
  "22023/22023/22023/22023/P0002/P0002/P0002/P0002/22023/P0002" "NULL arguments: 22023 or 'not found', never a crash"
check "$(as_a "SELECT * FROM crm.travel_times('{\"x\": 1}', '[[0,0]]')")/$(as_a "SELECT * FROM crm.travel_times('[[\"a\", \"b\"]]', '[[0,0]]')")/$(as_a "SELECT * FROM crm.travel_times('[[1,2,3]]', '[[0,0]]')")/$(as_a "SELECT * FROM crm.travel_times('[[1e400,0]]', '[[0,0]]')")/$(as_a "SELECT * FROM crm.suggest_technicians('$J', -1)")/$(as_a "SELECT crm.geocode_missing(0)")" \
  "22023/22023/22023/22023/22023/22023" "malformed points, a number out of range, negative limits: 22023"
deep=$(python3 -c "print('[' * 5000 + ']' * 5000)")
big=$(python3 -c "print('[' + ','.join(['[30.0,-97.0]'] * 60000) + ']')")
check "$(as_a "SELECT * FROM crm.travel_times('$deep', '[[0,0]]')")/$(echo "SELECT * FROM crm.travel_times('$big', '[[0,0]]')" > /tmp/hostile_big.sql; PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$UA\"}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -f /tmp/hostile_big.sql 2>&1 | sed -n 's/^.*ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)/$(as_a "SELECT * FROM crm.geocode(repeat('x', 1000000))")/$(as_a "SELECT crm.report_location(30, -97, 'Infinity')")" \
  "22023/54000/22023/22023" "JSON nested 5,000 deep: 22023; 60,000 points (over 1 MB): 54000; a 1 MB address: 22023; an infinite accuracy: 22023"
emu POST /_emulator/faults '[{"path": "/distanceMatrix/v2:computeRouteMatrix", "delay_ms": 5000}]' >/dev/null
t0=$(date +%s.%N)
check "$(PGOPTIONS="$PGOPTIONS -c statement_timeout=500 -c role=authenticated -c request.jwt.claims={\"sub\":\"$UA\"}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT * FROM crm.travel_times('[[30.5,-97.5]]', '[[30.6,-97.6]]')" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')/$(echo "$(date +%s.%N) - $t0 < 2" | bc -l)" \
  "57014/1" "a Routes API that hangs: statement_timeout cancels travel_times within 2 s"
emu POST /_emulator/faults '[{"path": "/v1/payment_intents", "delay_ms": 5000}]' >/dev/null
t0=$(date +%s.%N)
check "$(PGOPTIONS="$PGOPTIONS -c statement_timeout=500" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT crm.create_payment_intent('$I')" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')/$(echo "$(date +%s.%N) - $t0 < 2" | bc -l)/$(q -c "SELECT coalesce(stripe_payment_intent_id, 'none') FROM crm.invoices WHERE id = '$I'")" \
  "57014/1/none" "a Stripe that hangs: statement_timeout cancels create_payment_intent within 2 s, nothing stored"
bigmsg=$(python3 -c "import json; print(json.dumps({'to': 'a@b.example', 'subject': 'x', 'text': 'x' * 3000000}))")
echo "SELECT crm.create_draft('$bigmsg')" > /tmp/hostile_draft.sql
check "$(state "SELECT crm.sync_contacts()" anon)/$(state "SELECT crm.create_draft('{}')" anon)/$(as_a "SELECT crm.create_draft(NULL)")/$(as_a "SELECT crm.create_draft('$deep')")/$(PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$UA\"}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -f /tmp/hostile_draft.sql 2>&1 | sed -n 's/^.*ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)/$(as_a "SELECT count(*) FROM crm.sync_contacts(NULL)")/$(as_a "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\"}')")" \
  "42501/42501/22023/22023/22023/ok/55000" "0.6.0: sync_contacts and create_draft refuse anon (42501); a NULL, 5,000-deep or 3 MB-text message 22023 (before any mailbox is looked at); an account with no mailbox 55000"
# jsonb arguments are read from jsonb's binary form (0.6.0). A string of 50 MB of control
# characters prints as 300 MB: refused with its exact size, counted without printing it.
check "$(psql -X -q -At -d "$DB" -c "SELECT crm.render_template('x', jsonb_build_object('a', repeat(chr(1), 50000000)))" 2>&1 | sed -n 's/^.*ERROR:  //p')" \
  "variables: 300000009 bytes of JSON exceed the limit of 1048576 (crm.max_json_argument_bytes)" "a 50 MB string of control characters: 54000 with its exact printed size, not an allocation error"
# In a database whose encoding is not UTF-8 the bytes of a string are read as before (lossily),
# and counted as before.
psql -X -q -d "$DB" -c "DROP DATABASE IF EXISTS crm_test_sql_ascii" -c "CREATE DATABASE crm_test_sql_ascii ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
check "$(psql -X -q -At -d crm_test_sql_ascii -c "CREATE EXTENSION crm_integrations" -c "SELECT crm.render_template('[{{a}}]', convert_from('\\x7b2261223a2022e9227d'::bytea, 'SQL_ASCII')::jsonb)" -c "SET crm.max_json_argument_bytes = 1024" -c "SELECT crm.render_template('x', jsonb_build_object('a', convert_from('\\xe9'::bytea, 'SQL_ASCII') || repeat('x', 2000)))" 2>&1 | sed 's/^.*ERROR:  //' | tr '\n' '|')" \
  "[�]|variables: 2012 bytes of JSON exceed the limit of 1024 (crm.max_json_argument_bytes)|" "a SQL_ASCII database: a byte that is not UTF-8 reads as U+FFFD, and the limit counts it so, as before"
psql -X -q -d "$DB" -c "DROP DATABASE crm_test_sql_ascii" >/dev/null
check "$(q -c "SELECT 1")" "1" "the server is still up"
exit $failed
