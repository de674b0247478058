#!/usr/bin/env bash
# Contact sync benchmark against the emulator's People API and Graph contact delta (one
# Google and one Microsoft contacts connection of one account):
#  (a) a full sync of a 10,000-person Google address book: people read (10 pages of 1,000)
#      and applied per second (target >= 2,000/s);
#  (b) an incremental run after 1 % of them changed: what the apply touched (target: the 100
#      changed, nothing for the other 99 %) and its time against (a);
#  (c) the same 10,000 people in Microsoft (delta pages of 1,000, emails in another case):
#      each linked to the existing contact (no new contact), per second.
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
EMU_PORT=${CRM_BENCH_EMULATOR_PORT_CONTACTS:-18039}
EMU=http://127.0.0.1:$EMU_PORT
python3 tests/emulator/emulator.py "$EMU_PORT" > /tmp/crm_bench_contacts_emulator.out 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready /tmp/crm_bench_contacts_emulator.out 2>/dev/null && break; sleep 0.1; done
q() { psql -X -q -At "$@"; }
emu() { curl -s -X POST "$EMU$1" -H 'Content-Type: application/json' -d "$2" >/dev/null; }
ACC=0000000b-0000-0000-0000-0000000c0a7c
G=e000000b-0000-0000-0000-0000000c0a7a
M=e000000b-0000-0000-0000-0000000c0a7b
P=${CONTACTS_BENCH_PEOPLE:-10000}
CHANGED=$((P / 100))
emu /_emulator/oauth '{"access_tokens": {"ya29.cbench": "google", "EwB.cbench": "microsoft"},
                      "owners": {"ya29.cbench": "bench@gmail.com", "EwB.cbench": "bench@outlook.example"}}'
q >/dev/null <<SQL
ALTER SYSTEM SET crm.worker_enabled = off;
ALTER SYSTEM SET crm.google_people_base_url = '$EMU';
ALTER SYSTEM SET crm.microsoft_graph_base_url = '$EMU';
ALTER SYSTEM SET crm.google_people_rate_limit = 0;
ALTER SYSTEM SET crm.microsoft_contacts_rate_limit = 0;
SELECT pg_reload_conf();
TRUNCATE crm.integration_tasks;
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Contacts bench');
INSERT INTO crm.contact_providers (id, account_id, provider, provider_email, access_token_encrypted, token_expires_at, scopes)
VALUES ('$G', '$ACC', 'google', 'bench@gmail.com', crm.encrypt_token('ya29.cbench', 'contact_providers:$G:access_token'),
        now() + interval '1 day', ARRAY['https://www.googleapis.com/auth/contacts']),
       ('$M', '$ACC', 'microsoft', 'bench@outlook.example', crm.encrypt_token('EwB.cbench', 'contact_providers:$M:access_token'),
        now() + interval '1 day', ARRAY['Contacts.Read']);
SQL
sleep 0.5
run() {  # run CONNECTION: one contacts.sync run; prints its seconds
  q -c "SELECT count(*) FROM crm.sync_contacts('$1')" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  q -c "SELECT crm.process_integration_tasks(1)" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
result() { q -c "SELECT last_result ->> '$2' FROM crm.contact_sync WHERE connection_id = '$1'"; }

# (a) full sync
emu /_emulator/contacts "{\"provider\": \"google\", \"owner\": \"bench@gmail.com\", \"seed\": {\"count\": $P, \"prefix\": \"b\"}}"
full=$(run $G)
created=$(result $G created)
# (b) 1 % changed
emu /_emulator/contacts "{\"provider\": \"google\", \"owner\": \"bench@gmail.com\", \"touch\": {\"count\": $CHANGED, \"start\": 500, \"prefix\": \"b\"}}"
incr=$(run $G)
listed=$(result $G listed); updated=$(result $G updated); unchanged=$(result $G unchanged); created2=$(result $G created)
# (c) the same people in Microsoft
emu /_emulator/contacts "{\"provider\": \"microsoft\", \"owner\": \"bench@outlook.example\", \"seed\": {\"count\": $P, \"prefix\": \"B\"}}"
ms=$(run $M)
linked=$(result $M linked); created3=$(result $M created)
contacts=$(q -c "SELECT count(*) FROM crm.contacts WHERE account_id = '$ACC'")
two=$(q -c "SELECT count(*) FROM (SELECT contact_id FROM crm.contact_sources WHERE account_id = '$ACC' GROUP BY contact_id HAVING count(*) = 2) x")

printf '\n## Contact sync (task runner -> emulator People API / Graph delta on 127.0.0.1, 2 cores)\n'
printf '(a) full sync of %d Google people (10 pages of 1,000): %d contacts created in %.2f s = %.0f contacts/s (target >= 2,000/s)\n' \
  "$P" "$created" "$full" "$(echo "$created / $full" | bc -l)"
printf '(b) incremental after %d changed (1 %%): listed %d, updated %d, created %d, unchanged %d (the other 99 %%: not listed, not touched); %.3f s = %.1f %% of the full sync\n' \
  "$CHANGED" "$listed" "$updated" "$created2" "$unchanged" "$incr" "$(echo "100 * $incr / $full" | bc -l)"
printf '(c) the same %d people in Microsoft (delta pages of 1,000): %d linked to their contact, %d created, in %.2f s = %.0f people/s; %d contacts, %d with two sources\n' \
  "$P" "$linked" "$created3" "$ms" "$(echo "$P / $ms" | bc -l)" "$contacts" "$two"
q >/dev/null <<SQL
ALTER SYSTEM RESET crm.google_people_base_url;
ALTER SYSTEM RESET crm.google_people_rate_limit;
ALTER SYSTEM RESET crm.microsoft_contacts_rate_limit;
SELECT pg_reload_conf();
SQL
