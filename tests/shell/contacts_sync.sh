#!/usr/bin/env bash
# TAP: contact sync and mail drafts through the installed extension against the emulator's
# People API, Graph contact delta and drafts endpoints (tests/emulator/contacts.py): a first
# sync of 2,500 people over pages; Gmail's other contacts; incremental add/change/delete (a
# contact with a job survives its removal upstream); local edits kept; an expired sync token
# -> a full sync without duplicates; Graph delta (Prefer page size, nextLink, deltaLink,
# @removed, 410); one person in Gmail and Microsoft -> one contact with two sources; phone and
# email normalisation; a foreign nextLink not followed; 401 -> refresh; 429 -> retried;
# tenants apart; drafts in Gmail (threaded) and Microsoft, idempotent, refused properly.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_CONTACTS:-18059}"
cleanup() { kill $emu_pid 2>/dev/null; }
trap cleanup EXIT
echo "1..44"

ACC=00000011-0000-0000-0000-0000000acc01
OTHER=00000011-0000-0000-0000-0000000acc02
DANA=00000011-0000-0000-0000-00000000da1a
OLLIE=00000011-0000-0000-0000-0000000011e0
G=e0000011-0000-0000-0000-00000000000a     # Dana's Google contacts
M=e0000011-0000-0000-0000-00000000000b     # Dana's Microsoft contacts
X=e0000011-0000-0000-0000-00000000000c     # the other account's Google contacts
MB_G=f0000011-0000-0000-0000-00000000000a  # Dana's Gmail mailbox
MB_M=f0000011-0000-0000-0000-00000000000b  # Dana's Microsoft mailbox
SET="-c crm.google_people_base_url=$EMU -c crm.microsoft_graph_base_url=$EMU -c crm.gmail_base_url=$EMU \
 -c crm.google_oauth_base_url=$EMU -c crm.google_client_id=cid -c crm.google_client_secret=cs \
 -c crm.google_people_rate_limit=0 -c crm.microsoft_contacts_rate_limit=0 -c crm.task_retry_base=1s"
export PGOPTIONS="$SET"
as() { PGOPTIONS="$SET -c role=authenticated -c request.jwt.claims={\"sub\":\"$1\",\"account_id\":\"$2\"}" psql -X -q -At -d "$DB" -c "$3" 2>&1; }
code() { psql -X -q -At -d "$DB" -v VERBOSITY=verbose "$@" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1; }
as_code() { PGOPTIONS="$SET -c role=authenticated -c request.jwt.claims={\"sub\":\"$1\",\"account_id\":\"$2\"}" code -c "$3"; }
sync() { q -c "SELECT count(*) FROM crm.sync_contacts('$1')" -c "SELECT crm.process_integration_tasks()" >/dev/null; }
book() { emu POST /_emulator/contacts "$1" >/dev/null; }
n_contacts() { q -c "SELECT count(*) FROM crm.contacts WHERE account_id = '$ACC'"; }
# mark: remember how many requests the emulator has seen; fresh EXPR: EXPR over the ones since
mark() { MARK=$(requests | jq_ "len(d)"); }
fresh() { requests | python3 -c "import json,sys; d=json.load(sys.stdin)[$MARK:]; print($1)"; }
MARK=0
last_result() { q -c "SELECT last_result - 'more' FROM crm.contact_sync WHERE connection_id = '$1'"; }
GS='"https://www.googleapis.com/auth/contacts", "https://www.googleapis.com/auth/contacts.other.readonly"'

q >/dev/null <<SQL
SET log_statement = 'none';
DELETE FROM crm.accounts WHERE id IN ('$ACC', '$OTHER');
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Contacts'), ('$OTHER', 'Elsewhere');
INSERT INTO crm.users (id, account_id, email, full_name) VALUES
  ('$DANA', '$ACC', 'dana@317plumber.com', 'Dana'), ('$OLLIE', '$OTHER', 'ollie@else.example', 'Ollie');
INSERT INTO crm.contact_providers (id, account_id, user_id, provider, provider_email, access_token_encrypted,
                                   refresh_token_encrypted, token_expires_at, scopes) VALUES
  ('$G', '$ACC', '$DANA', 'google', 'dana@gmail.com', crm.encrypt_token('ya29.dana', 'contact_providers:$G:access_token'),
   crm.encrypt_token('1//rt-dana', 'contact_providers:$G:refresh_token'), now() + interval '1 hour', ARRAY[$(echo "$GS" | tr '"' "'")]),
  ('$M', '$ACC', '$DANA', 'microsoft', 'dana@317plumber.com', crm.encrypt_token('EwB.dana', 'contact_providers:$M:access_token'),
   NULL, now() + interval '1 hour', ARRAY['Contacts.ReadWrite']),
  ('$X', '$OTHER', '$OLLIE', 'google', 'ollie@gmail.com', crm.encrypt_token('ya29.ollie', 'contact_providers:$X:access_token'),
   NULL, now() + interval '1 hour', ARRAY['https://www.googleapis.com/auth/contacts']);
INSERT INTO crm.email_providers (id, account_id, user_id, provider, provider_email, access_token_encrypted,
                                 token_expires_at, is_active, scopes) VALUES
  ('$MB_G', '$ACC', '$DANA', 'gmail', 'dana@gmail.com', crm.encrypt_token('ya29.dana', 'email_providers:$MB_G:access_token'),
   now() + interval '1 hour', true, ARRAY['https://www.googleapis.com/auth/gmail.send', 'https://www.googleapis.com/auth/gmail.compose']),
  ('$MB_M', '$ACC', '$DANA', 'microsoft', 'dana@317plumber.com', crm.encrypt_token('EwB.dana', 'email_providers:$MB_M:access_token'),
   now() + interval '1 hour', true, ARRAY['Mail.Send']);
SQL
emu POST /_emulator/oauth '{"access_tokens": {"ya29.dana": "google", "EwB.dana": "microsoft", "ya29.ollie": "google"},
  "refresh_tokens": {"1//rt-dana": "google"},
  "owners": {"ya29.dana": "dana@gmail.com", "1//rt-dana": "dana@gmail.com", "EwB.dana": "dana@317plumber.com", "ya29.ollie": "ollie@gmail.com"}}' >/dev/null

# --- Google: a first sync of 2,500 people over pages ---------------------------------------
book '{"provider": "google", "owner": "dana@gmail.com", "seed": {"count": 2500, "prefix": "g"}}'
book '{"provider": "google", "owner": "dana@gmail.com", "feed": "other", "upsert": [
  {"resourceName": "otherContacts/c1", "names": [{"displayName": "Person7"}], "emailAddresses": [{"value": "G000007@BOOK.example"}]},
  {"resourceName": "otherContacts/c2", "names": [{"displayName": "Rita Replied"}], "emailAddresses": [{"value": "rita@customer.example"}]}]}'
PGOPTIONS="$SET -c crm.contacts_page_size=1000" sync $G
check "$(n_contacts)/$(q -c "SELECT count(*) FILTER (WHERE feed = 'connections') || '+' || count(*) FILTER (WHERE feed = 'other_contacts') FROM crm.contact_sources WHERE connection_id = '$G'")" \
  "2501/2500+2" "first sync: 2,500 people and one new other contact are 2,501 contacts (an other contact with a known email links to it)"
check "$(requests | jq_ "[(r['path'], r['query'].get('pageSize'), 'syncToken' in r['query'], 'pageToken' in r['query']) for r in d if r['path'].startswith('/v1/')]")" \
  "[('/v1/people/me/connections', '1000', False, False), ('/v1/people/me/connections', '1000', False, True), ('/v1/people/me/connections', '1000', False, True), ('/v1/otherContacts', '1000', False, False)]" \
  "... three pages of 1,000 (page tokens), then otherContacts (its scope was granted)"
check "$(requests | jq_ "sorted(set((r['query']['personFields'], r['query']['requestSyncToken']) for r in d if r['path'] == '/v1/people/me/connections'))")" \
  "[('names,emailAddresses,phoneNumbers,addresses,organizations,metadata', 'true')]" "... personFields as the issue names them, requestSyncToken=true"
check "$(last_result $G)" '{"linked": 1, "listed": 2502, "created": 2501, "removed": 0, "updated": 0, "unchanged": 0, "deleted_contacts": 0}' \
  "... the run's result is recorded on crm.contact_sync"
check "$(q -c "SELECT first_name || ' ' || last_name || ' ' || email || ' ' || phone FROM crm.contacts c JOIN crm.contact_sources s ON s.contact_id = c.id WHERE s.external_id = 'people/g000042'")" \
  "Person42 Gv1 g000042@book.example +1 317 200 0042" "... a contact carries the person's name, email and phone"

# --- incremental ----------------------------------------------------------------------------
CJOB=$(q -c "SELECT contact_id FROM crm.contact_sources WHERE external_id = 'people/g000002'")
q -c "INSERT INTO crm.jobs (account_id, contact_id, title) VALUES ('$ACC', '$CJOB', 'Keep me')" >/dev/null
C3=$(q -c "SELECT contact_id FROM crm.contact_sources WHERE external_id = 'people/g000003'")
q -c "UPDATE crm.contacts SET phone = '317-555-9999' WHERE id = '$C3'" >/dev/null
book '{"provider": "google", "owner": "dana@gmail.com", "delete": ["people/g000001", "people/g000002"], "upsert": [
  {"resourceName": "people/g000003", "etag": "%E2", "names": [{"givenName": "Third", "familyName": "Person"}],
   "emailAddresses": [{"value": "g000003@book.example"}], "phoneNumbers": [{"value": "+1 317 200 0003"}]},
  {"resourceName": "people/new1", "etag": "%E1", "names": [{"givenName": "Nina", "familyName": "New"}],
   "emailAddresses": [{"value": "nina@new.example"}]}]}'
mark
sync $G
check "$(fresh "[(r['path'], r['query'].get('syncToken') is not None) for r in d]")" \
  "[('/v1/people/me/connections', True), ('/v1/otherContacts', True)]" "incremental: one request per feed, each with its syncToken"
check "$(last_result $G)" '{"linked": 0, "listed": 4, "created": 1, "removed": 2, "updated": 1, "unchanged": 0, "deleted_contacts": 1}' \
  "... only the 4 changes are applied: one new, one changed, two removed"
check "$(q -c "SELECT count(*) FROM crm.contacts WHERE id = '$CJOB'")/$(q -c "SELECT count(*) FROM crm.contact_sources WHERE contact_id = '$CJOB'")/$(q -c "SELECT count(*) FROM crm.contacts WHERE account_id = '$ACC' AND email = 'g000001@book.example'")" \
  "1/0/0" "a person removed upstream is unlinked; its contact is deleted unless it has a job (kept, with no source)"
check "$(q -c "SELECT first_name || ' ' || last_name || ' ' || phone FROM crm.contacts WHERE id = '$C3'")" \
  "Third Person 317-555-9999" "a change upstream overwrites what changed there (the name); the phone edited in the CRM stays"
book '{"provider": "google", "owner": "dana@gmail.com", "upsert": [
  {"resourceName": "people/g000003", "etag": "%E3", "names": [{"givenName": "Third", "familyName": "Person"}],
   "emailAddresses": [{"value": "g000003@book.example"}], "phoneNumbers": [{"value": "+1 317 200 3333"}]}]}'
sync $G
check "$(q -c "SELECT phone FROM crm.contacts WHERE id = '$C3'")" "+1 317 200 3333" "... until the phone changes upstream too: the later upstream change wins"
mark
sync $G
check "$(fresh "len(d)")/$(last_result $G)" '2/{"linked": 0, "listed": 0, "created": 0, "removed": 0, "updated": 0, "unchanged": 0, "deleted_contacts": 0}' \
  "nothing changed: two requests, no work"

# --- an expired sync token: a full sync, no duplicates ----------------------------------------
book '{"provider": "google", "owner": "dana@gmail.com", "expire_tokens": true}'
book '{"provider": "google", "owner": "dana@gmail.com", "delete": ["people/g000004"]}'
before=$(n_contacts)
mark
PGOPTIONS="$SET -c crm.contacts_page_size=1000" sync $G
check "$(fresh "[(r['path'], r['query'].get('syncToken') is not None, r['response'].get('error', {}).get('details', [{}])[0].get('reason') if isinstance(r['response'], dict) else None) for r in d if r['path'] == '/v1/people/me/connections']")" \
  "[('/v1/people/me/connections', True, 'EXPIRED_SYNC_TOKEN'), ('/v1/people/me/connections', False, None), ('/v1/people/me/connections', False, None), ('/v1/people/me/connections', False, None)]" \
  "EXPIRED_SYNC_TOKEN: the same run lists everything again"
check "$(n_contacts)/$(last_result $G)" "$((before - 1))/"'{"linked": 0, "listed": 2498, "created": 0, "removed": 1, "updated": 0, "unchanged": 2498, "deleted_contacts": 1}' \
  "... every known person unchanged (no duplicate); the one deleted meanwhile is found missing and removed"

# --- Microsoft: delta pages, one person in both books ------------------------------------------
book '{"provider": "microsoft", "owner": "dana@317plumber.com", "upsert": [
  {"id": "AAMk-john", "changeKey": "1", "givenName": "John", "surname": "Smith",
   "emailAddresses": [{"address": "G000042@Book.Example"}], "businessPhones": []},
  {"id": "AAMk-phone", "changeKey": "1", "givenName": "Phil", "surname": "Phone",
   "emailAddresses": [], "mobilePhone": "(317) 200-0043"},
  {"id": "AAMk-gmail", "changeKey": "1", "givenName": "Gus", "emailAddresses": [{"address": "gus.gmail+crm@gmail.com"}]},
  {"id": "AAMk-new", "changeKey": "1", "givenName": "Mia", "surname": "Microsoft", "emailAddresses": [{"address": "mia@ms.example"}],
   "homeAddress": {"street": "5 Elm St", "city": "Carmel", "state": "IN"}}]}'
q -c "INSERT INTO crm.contacts (account_id, first_name, email) VALUES ('$ACC', 'Gus', 'GusGmail@googlemail.com')" >/dev/null
mark
PGOPTIONS="$SET -c crm.contacts_page_size=3" sync $M
check "$(fresh "[(r['path'], r['headers'].get('prefer'), sorted(r['query'])) for r in d]")" \
  "[('/v1.0/me/contacts/delta', 'odata.maxpagesize=3', []), ('/v1.0/me/contacts/delta', 'odata.maxpagesize=3', ['\$skiptoken'])]" \
  "Graph: the delta query with Prefer: odata.maxpagesize, then its @odata.nextLink"
check "$(q -c "SELECT cursors -> 'contacts' ->> 'sync' LIKE '$EMU/v1.0/me/contacts/delta?\$deltatoken=%' FROM crm.contact_sync WHERE connection_id = '$M'")" "t" "... the @odata.deltaLink is stored whole"
J=$(q -c "SELECT contact_id FROM crm.contact_sources WHERE external_id = 'people/g000042'")
check "$(q -c "SELECT count(*) || ' ' || string_agg(provider, ',' ORDER BY provider) FROM crm.contact_sources WHERE contact_id = '$J'")/$(q -c "SELECT first_name FROM crm.contacts WHERE id = '$J'")" \
  "2 google,microsoft/Person42" "a person in Gmail and in Microsoft (email in another case) is one contact with two sources"
check "$(q -c "SELECT count(*) FROM crm.contact_sources s JOIN crm.contact_sources t ON t.contact_id = s.contact_id WHERE s.external_id = 'AAMk-phone' AND t.external_id = 'people/g000043'")" \
  "1" "... a phone in national format matches the same number in international format"
check "$(q -c "SELECT c.email FROM crm.contacts c JOIN crm.contact_sources s ON s.contact_id = c.id WHERE s.external_id = 'AAMk-gmail'")" \
  "GusGmail@googlemail.com" "... Gmail's dots, +suffix and googlemail.com match an existing contact"
check "$(q -c "SELECT first_name || ' ' || address FROM crm.contacts c JOIN crm.contact_sources s ON s.contact_id = c.id WHERE s.external_id = 'AAMk-new'")" \
  "Mia 5 Elm St, Carmel, IN" "... a new person becomes a contact with its address"
book '{"provider": "microsoft", "owner": "dana@317plumber.com", "delete": ["AAMk-new"]}'
mark
sync $M
check "$(fresh "[sorted(r['query']) for r in d]")/$(q -c "SELECT count(*) FROM crm.contact_sources WHERE external_id = 'AAMk-new'")/$(q -c "SELECT count(*) FROM crm.contacts WHERE email = 'mia@ms.example'")" \
  "[['\$deltatoken']]/0/0" "the delta link brings @removed: unlinked, and the contact the sync made is deleted"
book '{"provider": "microsoft", "owner": "dana@317plumber.com", "expire_tokens": true}'
mark
sync $M
check "$(fresh "[r['response'].get('error', {}).get('code') if isinstance(r['response'], dict) and 'error' in r['response'] else sorted(r['query']) for r in d]")/$(last_result $M)" \
  "['SyncStateNotFound', []]/"'{"linked": 0, "listed": 3, "created": 0, "removed": 0, "updated": 0, "unchanged": 3, "deleted_contacts": 0}' \
  "410 on the delta link: a full listing in the same run, nothing duplicated"
q -c "UPDATE crm.contact_sync SET cursors = jsonb_build_object('contacts', jsonb_build_object('sync', 'https://evil.example/v1.0/me/contacts/delta?\$deltatoken=x')) WHERE connection_id = '$M'" >/dev/null
mark
sync $M
check "$(fresh "[(r['path'], sorted(r['query'])) for r in d]")" "[('/v1.0/me/contacts/delta', [])]" \
  "a stored link to another host is not followed (the token would go there): a full listing from the base URL"

# --- tokens and limits ------------------------------------------------------------------------
q -c "UPDATE crm.contact_providers SET access_token_encrypted = crm.encrypt_token('ya29.stale', 'contact_providers:$G:access_token') WHERE id = '$G'" >/dev/null
mark
sync $G
check "$(fresh "[r['path'] for r in d]")/$(q -c "SELECT last_refresh_at IS NOT NULL FROM crm.contact_providers WHERE id = '$G'")" \
  "['/v1/people/me/connections', '/token', '/v1/people/me/connections', '/v1/otherContacts']/t" "401: the token is refreshed once and the listing goes on"
emu POST /_emulator/faults '[{"path": "/v1.0/me/contacts/delta", "status": 429, "retry_after": "1"}]' >/dev/null
sync $M
check "$(q -c "SELECT status || ' ' || attempts || ' ' || (last_error LIKE '%429%') FROM crm.integration_tasks WHERE kind = 'contacts.sync' AND payload ->> 'connection_id' = '$M' ORDER BY created_at DESC LIMIT 1")" \
  "pending 1 true" "429: the task is retried later (Retry-After), not failed"
sleep 1.2
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(q -c "SELECT status FROM crm.integration_tasks WHERE kind = 'contacts.sync' AND payload ->> 'connection_id' = '$M' ORDER BY created_at DESC LIMIT 1")" "done" "... and done on its retry"
q -c "UPDATE crm.contact_sync SET synced_at = now() - interval '2 hours' WHERE connection_id = '$G'" >/dev/null
check "$(q -c "SELECT crm._schedule_contact_syncs()")/$(q -c "SELECT crm._schedule_contact_syncs()")" "2/0" \
  "the workers' schedule queues connections not synced within crm.contacts_sync_interval (and never one already queued)"
q -c "SELECT crm.process_integration_tasks()" >/dev/null

# --- removals keep what the CRM holds -----------------------------------------------------------
Y=$(q -c "SELECT contact_id FROM crm.contact_sources WHERE external_id = 'people/g000010'")
MAN=$(q -c "INSERT INTO crm.contacts (account_id, first_name, address) VALUES ('$ACC', 'Manual', '1 Side St') RETURNING id")
q -c "SELECT crm.merge_contacts('$Y', '$MAN')" >/dev/null
E=$(q -c "SELECT contact_id FROM crm.contact_sources WHERE external_id = 'people/g000011'")
q -c "UPDATE crm.contacts SET address = '9 Local Edit Rd' WHERE id = '$E'" >/dev/null
book '{"provider": "google", "owner": "dana@gmail.com", "delete": ["people/g000010", "people/g000011", "people/g000012"]}'
sync $G
check "$(q -c "SELECT count(*) FROM crm.contacts WHERE id IN ('$Y', '$E')")/$(q -c "SELECT count(*) FROM crm.contact_sources WHERE external_id IN ('people/g000010', 'people/g000011')")/$(q -c "SELECT count(*) FROM crm.contacts WHERE account_id = '$ACC' AND email = 'g000012@book.example'")" \
  "2/0/0" "removed upstream: a contact another was merged into, and one edited in the CRM, are kept (unlinked); an untouched one goes"
q -c "UPDATE crm.contact_sync SET cursors = jsonb_set(cursors, '{connections}', '{\"page\": \"stale-page\", \"full_started_at\": 1}') WHERE connection_id = '$G'" >/dev/null
mark
sync $G
check "$(fresh "[(r['query'].get('pageToken'), r['response'].get('error', {}).get('status') if isinstance(r['response'], dict) else None) for r in d if r['path'] == '/v1/people/me/connections'][:2]")/$(q -c "SELECT last_result ->> 'created' FROM crm.contact_sync WHERE connection_id = '$G'")" \
  "[('stale-page', 'INVALID_ARGUMENT'), (None, None)]/0" "a page kept from an earlier run that is no longer served: the listing starts over, nothing duplicated"

# --- tenants ----------------------------------------------------------------------------------
check "$(as $DANA $ACC "SELECT count(*) FROM crm.sync_contacts()")/$(as $OLLIE $OTHER "SELECT count(*) FROM crm.sync_contacts('$G')")" \
  "2/0" "sync_contacts: a user queues their account's connections; another account's connection queues nothing"
check "$(as $OLLIE $OTHER "SELECT count(*) FROM crm.contact_sources WHERE account_id <> '$OTHER'")/$(as $OLLIE $OTHER "SELECT count(*) FROM crm.contact_sync WHERE account_id <> '$OTHER'")/$(as $DANA $ACC "SELECT count(*) > 2400 FROM crm.contact_sources")" \
  "0/0/t" "sources and sync state are readable by their own account only"
check "$(PGOPTIONS="$SET -c role=anon" code -c "SELECT crm.sync_contacts()")/$(as_code $DANA $ACC "UPDATE crm.contact_sync SET cursors = '{}'")/$(as_code $DANA $ACC "SELECT crm._apply_contact_sync('$ACC', '{}', '{}')")" \
  "42501/42501/42501" "anon cannot sync; tenants cannot write sync state or call the apply step"
book '{"provider": "google", "owner": "ollie@gmail.com", "upsert": [{"resourceName": "people/o1", "names": [{"givenName": "John"}], "emailAddresses": [{"value": "g000042@book.example"}]}]}'
sync $X
check "$(q -c "SELECT c.account_id FROM crm.contacts c JOIN crm.contact_sources s ON s.contact_id = c.id WHERE s.external_id = 'people/o1'")" \
  "$OTHER" "the same email in another account's book is that account's own contact (matching stays within an account)"

# --- drafts -----------------------------------------------------------------------------------
mark
d1=$(as $DANA $ACC "SELECT crm.create_draft('{\"to\": \"john@customer.example\", \"subject\": \"Re: leak\", \"text\": \"On my way\",
  \"headers\": {\"In-Reply-To\": \"<m1@customer.example>\", \"References\": \"<m1@customer.example>\"},
  \"metadata\": {\"thread_id\": \"18c0thread\"}, \"idempotency_key\": \"draft-1\"}')")
check "$(echo "$d1" | jq_ "(d['provider'], d['mailbox'], d['draft_id'].startswith('r-'), d['thread_id'], d['link'].startswith('https://mail.google.com/mail/#drafts?compose='))")" \
  "('gmail', 'dana@gmail.com', True, '18c0thread', True)" "create_draft: a Gmail draft, with its id, thread and link"
check "$(fresh "[(r['path'], r['body']['message']['threadId'], dict(r['mime']['headers']).get('Subject'), dict(r['mime']['headers']).get('In-Reply-To'), dict(r['mime']['headers']).get('From'), r['mime']['parts'][0]['text'].strip()) for r in d]")" \
  "[('/gmail/v1/users/me/drafts', '18c0thread', 'Re: leak', '<m1@customer.example>', 'dana@gmail.com', 'On my way')]" \
  "... users.drafts.create with the RFC 5322 message sending builds (threadId, In-Reply-To)"
d2=$(as $DANA $ACC "SELECT crm.create_draft('{\"to\": \"john@customer.example\", \"subject\": \"Re: leak\", \"text\": \"On my way\", \"idempotency_key\": \"draft-1\"}')")
check "$(echo "$d2" | jq_ "(d['draft_id'] == $(echo "$d1" | jq_ "repr(d['draft_id'])"), d.get('replayed'))")/$(fresh "len(d)")/$(q -c "SELECT count(*) FROM crm.email_drafts WHERE account_id = '$ACC'")" \
  "(True, True)/1/1" "... the same idempotency key returns the first draft: no second request, one row"
check "$(as_code $DANA $ACC "SELECT crm.create_draft('{\"to\": \"john@customer.example\", \"subject\": \"x\", \"text\": \"x\", \"provider\": \"microsoft\"}')")" \
  "42501" "a Microsoft mailbox connected without Mail.ReadWrite: 42501 (reconnect for drafts)"
q -c "UPDATE crm.email_providers SET scopes = scopes || 'https://graph.microsoft.com/Mail.ReadWrite'::text WHERE id = '$MB_M'" >/dev/null
mark
d3=$(as $DANA $ACC "SELECT crm.create_draft('{\"to\": \"jo@customer.example\", \"to_name\": \"Jo\", \"subject\": \"Estimate\", \"html\": \"<p>Hi</p>\", \"provider\": \"microsoft\"}')")
check "$(echo "$d3" | jq_ "(d['provider'], d['draft_id'].startswith('AAMk'), d['link'].startswith('https://outlook.office365.com/'))")/$(fresh "[(r['path'], r['body']['subject'], r['body']['toRecipients'], 'saveToSentItems' in r['body']) for r in d]")" \
  "('microsoft', True, True)/[('/v1.0/me/messages', 'Estimate', [{'emailAddress': {'address': 'jo@customer.example', 'name': 'Jo'}}], False)]" \
  "... with it: Graph POST /me/messages (the draft), its id and webLink"
mark
check "$(as_code $DANA $ACC "SELECT crm.create_draft('{\"to\": \"not an address\", \"subject\": \"x\", \"text\": \"x\"}')")/$(as_code $DANA $ACC "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\", \"from\": \"boss@317plumber.com\", \"provider\": \"gmail\"}')")/$(as_code $DANA $ACC "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\", \"provider\": \"resend\"}')")/$(fresh "len(d)")" \
  "22023/22023/22023/0" "a bad message, a sender that is not the mailbox, a provider without drafts: 22023, nothing sent"
check "$(as_code $OLLIE $OTHER "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\", \"account_id\": \"$ACC\"}')")/$(as_code $OLLIE $OTHER "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\"}')")/$(PGOPTIONS="$SET -c role=anon" code -c "SELECT crm.create_draft('{}')")" \
  "42501/55000/42501" "another account's mailbox: 42501; an account with no mailbox: 55000; anon: 42501"
emu POST /_emulator/faults '[{"path": "/gmail/v1/users/me/drafts", "delay_ms": 700}]' >/dev/null
mark
as $DANA $ACC "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"twice\", \"text\": \"x\", \"idempotency_key\": \"draft-race\"}') ->> 'draft_id'" > /tmp/draft_race_1 &
p1=$!
sleep 0.2
as $DANA $ACC "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"twice\", \"text\": \"x\", \"idempotency_key\": \"draft-race\"}') ->> 'draft_id'" > /tmp/draft_race_2 &
p2=$!
wait $p1 $p2
check "$(fresh "len([r for r in d if r['path'] == '/gmail/v1/users/me/drafts'])")/$([ "$(cat /tmp/draft_race_1)" = "$(cat /tmp/draft_race_2)" ] && grep -c '^r-' /tmp/draft_race_1)" \
  "1/1" "two calls at once with one idempotency key: one draft at Gmail, both get its id"
emu POST /_emulator/faults '[{"path": "/gmail/v1/users/me/drafts", "status": 503}]' >/dev/null
check "$(as_code $DANA $ACC "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\", \"idempotency_key\": \"draft-503\"}')")/$(q -c "SELECT count(*) FROM crm.email_drafts WHERE idempotency_key = 'draft-503'")" \
  "08000/0" "Gmail answering 503: 08000 and nothing recorded"
emu POST /_emulator/faults '[{"path": "/gmail/v1/users/me/drafts", "delay_ms": 5000}]' >/dev/null
t0=$(date +%s%N)
check "$(PGOPTIONS="$SET -c role=authenticated -c request.jwt.claims={\"sub\":\"$DANA\",\"account_id\":\"$ACC\"} -c statement_timeout=500" code -c "SELECT crm.create_draft('{\"to\": \"a@b.example\", \"subject\": \"x\", \"text\": \"x\"}')")/$(( ($(date +%s%N) - t0) / 1000000 < 2000 ))" \
  "57014/1" "a mailbox that hangs: statement_timeout ends the call (57014) within 2 s"
q -c "UPDATE crm.email_drafts SET created_at = now() - interval '91 days' WHERE idempotency_key = 'draft-1'" >/dev/null
check "$(q -c "SELECT crm._drafts_upkeep()")/$(q -c "SELECT count(*) FROM crm.email_drafts WHERE account_id = '$ACC'")" "1/2" \
  "drafts older than crm.email_drafts_retention (90 days) are forgotten by the workers' upkeep"
check "$(q -c "SELECT 1")" "1" "the server is still up"
exit $failed
