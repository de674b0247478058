#!/usr/bin/env bash
# TAP: Google Calendar, out — jobs become events on the technician's calendar, through the
# task runtime and the emulator's Calendar API v3: create (the event's shape), five
# reschedules before the worker runs -> one request, a lost 200 on insert -> still one event
# (409 -> update), reassign -> moved, deleted in Google -> re-created as the next generation,
# cancel and delete -> the event is deleted, the account's calendar for an unassigned job, a
# 401 -> refresh and repeat, a quota 403 -> retried, tenants read their mappings only.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_CALENDAR:-18051}"
cleanup() {
  for s in google_calendar_base_url calendar_time_zone app_base_url google_calendar_rate_limit google_oauth_base_url \
           google_client_id google_client_secret calendar_webhook_url task_lease worker_enabled; do q -c "ALTER SYSTEM RESET crm.$s" >/dev/null 2>&1; done
  q -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..35"

ACC=0000000d-0000-0000-0000-0000000ca1e0
TINA=0000000d-0000-0000-0000-00000000714a
BOB=0000000d-0000-0000-0000-000000000b0b
CT=0000000d-0000-0000-0000-0000000c0c0c
C_TINA=e000000d-0000-0000-0000-00000000714a
C_BOB=e000000d-0000-0000-0000-000000000b0b
C_OFFICE=e000000d-0000-0000-0000-000000000ff1
q >/dev/null <<SQL
SET log_statement = 'none';
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Calendar');
INSERT INTO crm.users (id, account_id, email, full_name) VALUES
  ('$TINA', '$ACC', 'tina@317plumber.com', 'Tina'), ('$BOB', '$ACC', 'bob@317plumber.com', 'Bob');
INSERT INTO crm.contacts (id, account_id, first_name, last_name) VALUES ('$CT', '$ACC', 'John', 'Smith');
INSERT INTO crm.calendar_providers (id, account_id, user_id, provider, provider_email, access_token_encrypted,
                                    refresh_token_encrypted, token_expires_at, is_default, calendar_id) VALUES
  ('$C_TINA', '$ACC', '$TINA', 'google', 'tina@317plumber.com', crm.encrypt_token('ya29.tina', 'calendar_providers:$C_TINA:access_token'),
   crm.encrypt_token('1//rt-tina', 'calendar_providers:$C_TINA:refresh_token'), now() + interval '1 hour', true, 'primary'),
  ('$C_BOB', '$ACC', '$BOB', 'google', 'bob@317plumber.com', crm.encrypt_token('ya29.bob', 'calendar_providers:$C_BOB:access_token'),
   NULL, now() + interval '1 hour', true, 'bob@317plumber.com'),
  ('$C_OFFICE', '$ACC', NULL, 'google', 'office@317plumber.com', crm.encrypt_token('ya29.office', 'calendar_providers:$C_OFFICE:access_token'),
   NULL, now() + interval '1 hour', true, 'office@group.calendar.google.com');
ALTER SYSTEM SET crm.google_calendar_base_url = '$EMU';
ALTER SYSTEM SET crm.calendar_time_zone = 'America/Indiana/Indianapolis';
ALTER SYSTEM SET crm.app_base_url = 'https://app.317plumber.com';
ALTER SYSTEM SET crm.google_calendar_rate_limit = 0;
ALTER SYSTEM SET crm.google_oauth_base_url = '$EMU';
ALTER SYSTEM SET crm.google_client_id = 'cal.apps.googleusercontent.com';
ALTER SYSTEM SET crm.google_client_secret = 'cal-secret';
SELECT pg_reload_conf();
SQL
sleep 0.3
emu POST /_emulator/oauth '{"access_tokens": {"ya29.tina": "google", "ya29.bob": "google", "ya29.office": "google"}, "refresh_tokens": {"1//rt-tina": "google"}}' >/dev/null
process() { q -c "SELECT crm.process_integration_tasks()" >/dev/null; }
# The emulator keeps its calendars across steps; each step looks at the requests after its mark.
MARK=0
mark() { MARK=$(requests | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"); }
since() { requests | python3 -c "import json,sys; json.dump(json.load(sys.stdin)[$MARK:], sys.stdout)"; }
cal_requests() { since | python3 -c "
import json, sys
print(' '.join(r['method'] + ':' + r['path'].split('/calendars/')[1] for r in json.load(sys.stdin) if r['path'].startswith('/calendar/')))"; }
mapping() { q -c "SELECT connection_id || ' ' || calendar_id || ' ' || event_id || ' ' || generation FROM crm.calendar_events WHERE job_id = '$1'"; }
hex() { echo "$1" | tr -d '-'; }

# 1. A scheduled job assigned to Tina: an event on her calendar.
J1=$(q -c "INSERT INTO crm.jobs (account_id, contact_id, assigned_to, title, description, status, scheduled_start, scheduled_end, address)
           VALUES ('$ACC', '$CT', '$TINA', 'Water heater replacement', 'Bring the 50-gallon unit.', 'scheduled',
                   '2026-12-01 14:00+00', '2026-12-01 16:00+00', '12 Elm St, Indianapolis') RETURNING id")
check "$(q -c "SELECT count(*) || ' ' || min(dedupe_key) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND payload ->> 'job_id' = '$J1'")" \
  "1 job:$J1" "inserting a scheduled job queues one calendar.sync_job task (nothing called in the user's transaction)"
check "$(cal_requests)" "" "... no Calendar request before a runner picks it up"
mark
process
check "$(cal_requests)" "POST:primary/events" "the runner inserts the event on Tina's calendar"
check "$(since | python3 -c "
import json, sys
r = [r for r in json.load(sys.stdin) if r['path'].startswith('/calendar/')][-1]; b = r['body']
print(b['id'], '|', b['summary'], '|', b['start']['dateTime'], b['start']['timeZone'], '|', b['end']['dateTime'], '|', b['location'], '|',
      b['description'].split(chr(10))[-1], '|', b['extendedProperties']['private']['crm_job_id'] == '$J1', r['query'].get('sendUpdates'),
      r['headers']['authorization'])")" \
  "$(hex $J1)g0 | Water heater replacement — John Smith | 2026-12-01T09:00:00-05:00 America/Indiana/Indianapolis | 2026-12-01T11:00:00-05:00 | 12 Elm St, Indianapolis | https://app.317plumber.com/jobs/$J1 | True none Bearer ya29.tina" \
  "... with the id derived from the job, title and customer, local times in the zone, address, a link back, the job id, sendUpdates=none"
check "$(mapping $J1)" "$C_TINA primary $(hex $J1)g0 0" "... and the mapping is recorded"

# 2. Five reschedules before the runner: one update with the last schedule.
mark
for h in 15 16 17 18 19; do q -c "UPDATE crm.jobs SET scheduled_start = '2026-12-02 $h:00+00', scheduled_end = '2026-12-02 $h:30+00' WHERE id = '$J1'" >/dev/null; done
check "$(q -c "SELECT count(*) || ' ' || max(coalesced) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND payload ->> 'job_id' = '$J1' AND status = 'pending'")" \
  "1 4" "five reschedules before the runner: one pending task (four coalesced into it)"
process
check "$(cal_requests)/$(since | python3 -c "import json,sys; print([r['body']['start']['dateTime'] for r in json.load(sys.stdin) if r['method'] == 'PUT'][-1])")" \
  "PUT:primary/events/$(hex $J1)g0/2026-12-02T14:00:00-05:00" "... one Calendar request, carrying the last schedule"

# 3. An insert whose 200 is lost: the retry finds it (409) and updates it — one event.
J2=$(q -c "INSERT INTO crm.jobs (account_id, assigned_to, title, status, scheduled_start, scheduled_end)
           VALUES ('$ACC', '$TINA', 'Drain cleaning', 'scheduled', '2026-12-03 15:00+00', '2026-12-03 16:00+00') RETURNING id")
mark
emu POST /_emulator/faults '[{"path": "/calendar/v3/calendars/primary/events", "drop_after": true}]' >/dev/null
process
q -c "UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE kind = 'calendar.sync_job' AND status = 'pending'" >/dev/null
process
check "$(cal_requests)/$(mapping $J2 | cut -d' ' -f3-)" "POST:primary/events POST:primary/events PUT:primary/events/$(hex $J2)g0/$(hex $J2)g0 0" \
  "a lost 200 on insert: the retry's insert answers 409 and becomes an update of that event — one event, not two"

# 4. Reassigned to Bob: off Tina's calendar, onto Bob's.
mark
q -c "UPDATE crm.jobs SET assigned_to = '$BOB' WHERE id = '$J1'" >/dev/null
process
check "$(cal_requests)/$(mapping $J1)" "DELETE:primary/events/$(hex $J1)g0 POST:bob%40317plumber.com/events/$C_BOB bob@317plumber.com $(hex $J1)g1 1" \
  "reassigning the job moves its event: deleted on Tina's calendar, inserted on Bob's (next generation)"

# 5. Deleted in Google, then changed: re-created as the next generation.
curl -s -X DELETE -H 'Authorization: Bearer ya29.bob' "$EMU/calendar/v3/calendars/bob%40317plumber.com/events/$(hex $J1)g1" >/dev/null
mark
q -c "UPDATE crm.jobs SET scheduled_end = '2026-12-02 20:00+00' WHERE id = '$J1'" >/dev/null
process
check "$(cal_requests)/$(mapping $J1 | cut -d' ' -f3-)" "PUT:bob%40317plumber.com/events/$(hex $J1)g1 POST:bob%40317plumber.com/events/$(hex $J1)g2 2" \
  "an event deleted in Google (410 on update) is re-created under the next generation's id"

# 6. Cancelled, and deleted: the event goes.
mark
q -c "UPDATE crm.jobs SET status = 'cancelled' WHERE id = '$J1'" -c "DELETE FROM crm.jobs WHERE id = '$J2'" >/dev/null
process
check "$(cal_requests)" "DELETE:bob%40317plumber.com/events/$(hex $J1)g2 DELETE:primary/events/$(hex $J2)g0" \
  "a cancelled job's event and a deleted job's event are deleted"
check "$(q -c "SELECT count(*) FROM crm.calendar_events WHERE job_id IN ('$J1', '$J2')")" "0" "... and their mappings are gone"

# 7. Unassigned: the account's calendar. Unscheduled, in an account without calendars: nothing.
mark
J3=$(q -c "INSERT INTO crm.jobs (account_id, title, status, scheduled_start, scheduled_end) VALUES ('$ACC', 'Estimate', 'scheduled', '2026-12-04 15:00+00', '2026-12-04 15:30+00') RETURNING id")
process
check "$(cal_requests)" "POST:office%40group.calendar.google.com/events" "an unassigned job goes on the account's default calendar"
before=$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job'")
q -c "INSERT INTO crm.jobs (account_id, title) VALUES ('$ACC', 'Lead without a date')" >/dev/null
check "$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job'")" "$before" "an unscheduled job queues nothing"

# An account's own time zone wins over crm.calendar_time_zone; an unknown zone is refused.
q -c "UPDATE crm.accounts SET time_zone = 'America/Los_Angeles' WHERE id = '$ACC'" >/dev/null
mark
q -c "UPDATE crm.jobs SET title = 'Estimate (kitchen)' WHERE id = '$J3'" -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(since | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'].startswith('/calendar/')][-1]; print(r['body']['start']['dateTime'], r['body']['start']['timeZone'])")/$(q -c "UPDATE crm.accounts SET time_zone = 'Mars/Olympus' WHERE id = '$ACC'" 2>&1 | grep -o 'violates check constraint')" \
  "2026-12-04T07:00:00-08:00 America/Los_Angeles/violates check constraint" "the account's time zone is the event's (and must be a real IANA zone)"
q -c "UPDATE crm.accounts SET time_zone = NULL WHERE id = '$ACC'" >/dev/null

# 8. A token Google no longer takes: refresh, then the request again.
q -c "UPDATE crm.calendar_providers SET access_token_encrypted = crm.encrypt_token('ya29.stale', 'calendar_providers:$C_TINA:access_token') WHERE id = '$C_TINA'" >/dev/null
mark
J4=$(q -c "INSERT INTO crm.jobs (account_id, assigned_to, title, status, scheduled_start, scheduled_end) VALUES ('$ACC', '$TINA', 'Faucet', 'scheduled', '2026-12-05 15:00+00', '2026-12-05 16:00+00') RETURNING id")
process
check "$(since | python3 -c "import json,sys; print(' '.join(r['method'] + ' ' + r['path'][-14:] + ' ' + str((r.get('response') or {}).get('error', {}).get('code', 200) if isinstance(r.get('response'), dict) and isinstance((r.get('response') or {}).get('error'), dict) else 200) for r in json.load(sys.stdin)))")" \
  "POST primary/events 401 POST /token 200 POST primary/events 200" "a 401: the token is refreshed at Google and the insert repeated"
check "$(q -c "SELECT last_refresh_at IS NOT NULL FROM crm.calendar_providers WHERE id = '$C_TINA'")" "t" "... and the new token is stored on the connection"

# 9. Quota: 403 userRateLimitExceeded is retried, not failed.
emu POST /_emulator/faults "[{\"path\": \"/calendar/v3/calendars/primary/events/$(hex $J4)g0\", \"status\": 403, \"reason\": \"userRateLimitExceeded\"}]" >/dev/null
q -c "UPDATE crm.jobs SET title = 'Kitchen faucet' WHERE id = '$J4'" >/dev/null
process
check "$(q -c "SELECT status || ' ' || (last_error LIKE 'calendar update: HTTP 429%userRateLimitExceeded%') FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND payload ->> 'job_id' = '$J4' ORDER BY created_at DESC LIMIT 1")" \
  "pending true" "a quota 403 (userRateLimitExceeded) is retried with backoff"

# 10. Tenants read their own mappings, and cannot write them.
check "$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"$ACC\"}" q -c "SELECT count(*) FROM crm.calendar_events")/$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"00000001-0000-0000-0000-000000000001\"}" q -c "SELECT count(*) FROM crm.calendar_events")/$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"$ACC\"}" psql -X -q -At -d "$DB" -c "DELETE FROM crm.calendar_events" 2>&1 | grep -o 'permission denied')" \
  "2/0/permission denied" "an account sees its own event mappings only (the estimate and the faucet), and cannot change them"

# --- In: changes made in Google come back. ---------------------------------------------------
q -c "UPDATE crm.integration_tasks SET status = 'cancelled' WHERE kind LIKE 'calendar.%' AND status = 'pending'" >/dev/null
TOKEN=$(q -c "SELECT crm.decrypt_token(access_token_encrypted, 'calendar_providers:' || id || ':access_token') FROM crm.calendar_providers WHERE id = '$C_TINA'")
gcal() { curl -s -X "$1" -H "Authorization: Bearer ${3:-$TOKEN}" -H 'Content-Type: application/json' "$EMU/calendar/v3/calendars/${4:-primary}/events$2" ${5:+-d "$5"}; }
gcal POST "" "" "" '{"id": "dentist0001", "summary": "Dentist", "start": {"dateTime": "2026-12-05T08:00:00-05:00"}, "end": {"dateTime": "2026-12-05T09:00:00-05:00"}}' >/dev/null
gcal POST "" "" "" '{"id": "holiday0001", "summary": "Day off?", "transparency": "transparent", "start": {"date": "2026-12-06"}, "end": {"date": "2026-12-07"}}' >/dev/null
sync() { q -c "SELECT count(*) FROM crm.sync_calendar('$1')" >/dev/null; q -c "SELECT crm.process_integration_tasks()" >/dev/null; }
last_sync() { q -c "SELECT status || ' ' || coalesce(result ->> 'full', '-') FROM crm.integration_tasks WHERE kind = 'calendar.sync_connection' AND payload ->> 'connection_id' = '$1' ORDER BY created_at DESC LIMIT 1"; }
mark
sync $C_TINA
check "$(last_sync $C_TINA)/$(q -c "SELECT string_agg(event_id || ' ' || to_char(starts_at AT TIME ZONE 'UTC', 'HH24:MI') || '-' || to_char(ends_at AT TIME ZONE 'UTC', 'HH24:MI') || ' ' || (user_id = '$TINA'), ',') FROM crm.calendar_busy WHERE connection_id = '$C_TINA'")/$(q -c "SELECT sync_token IS NOT NULL FROM crm.calendar_sync WHERE connection_id = '$C_TINA'")" \
  "done true/dentist0001 13:00-14:00 true/t" "a first (full) sync: someone else's event becomes Tina's busy time (times only), a free all-day one does not; the syncToken is kept"

# Our event moved in Google: the job follows, and nothing goes back to Google.
gcal PATCH "/$(hex $J4)g0" "" "" '{"start": {"dateTime": "2026-12-06T10:00:00-05:00"}, "end": {"dateTime": "2026-12-06T11:30:00-05:00"}}' >/dev/null
mark
sync $C_TINA
check "$(q -c "SELECT to_char(scheduled_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' ' || to_char(scheduled_end AT TIME ZONE 'UTC', 'HH24:MI') || ' ' || calendar_sync_state FROM crm.jobs WHERE id = '$J4'")" \
  "2026-12-06 15:00 16:30 synced" "an event of ours moved in Google (incremental sync): the job's schedule follows"
check "$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND payload ->> 'job_id' = '$J4' AND status IN ('pending', 'processing')")/$(cal_requests | tr ' ' '\n' | grep -vc '^GET' )" \
  "0/0" "... and the change does not echo: no sync_job queued, no write to Google"

# Both sides changed: the later change wins, the loser is recorded.
gcal PATCH "/$(hex $J4)g0" "" "" '{"start": {"dateTime": "2026-12-07T10:00:00-05:00"}, "end": {"dateTime": "2026-12-07T11:00:00-05:00"}}' >/dev/null
sleep 1.2
q -c "UPDATE crm.jobs SET scheduled_start = '2026-12-08 15:00+00', scheduled_end = '2026-12-08 16:00+00' WHERE id = '$J4'" \
  -c "UPDATE crm.integration_tasks SET status = 'cancelled' WHERE kind = 'calendar.sync_job' AND status = 'pending'" >/dev/null
sync $C_TINA
check "$(q -c "SELECT to_char(j.scheduled_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' ' || (e.last_error LIKE 'conflict: the change made in Google at %lost to the job''s later change%') FROM crm.jobs j JOIN crm.calendar_events e ON e.job_id = j.id WHERE j.id = '$J4'")" \
  "2026-12-08 15:00 true" "moved in Google, then changed in the CRM later: the CRM's change wins and Google's is recorded as lost"

# Deleted in Google: the job is flagged, not cancelled.
sync $C_OFFICE
curl -s -X DELETE -H 'Authorization: Bearer ya29.office' "$EMU/calendar/v3/calendars/office%40group.calendar.google.com/events/$(hex $J3)g0" >/dev/null
sync $C_OFFICE
check "$(q -c "SELECT status || ' ' || calendar_sync_state FROM crm.jobs WHERE id = '$J3'")" "scheduled deleted_in_calendar" \
  "an event of ours deleted in Google: the job is flagged deleted_in_calendar, not cancelled"

# An expired syncToken (410): a full resync, over pages.
emu POST /_emulator/oauth '{"app": {"calendar_expire_sync_tokens": true, "calendar_page_size": 1}}' >/dev/null
mark
sync $C_TINA
emu POST /_emulator/oauth '{"app": {}}' >/dev/null
check "$(last_sync $C_TINA)/$(since | python3 -c "
import json, sys
r = [r for r in json.load(sys.stdin) if r['method'] == 'GET' and r['path'].startswith('/calendar/')]
print('syncToken' in r[0]['query'], (r[0].get('response') or {}).get('error', {}).get('code'), 'syncToken' in r[1]['query'],
      any('pageToken' in x['query'] for x in r), len(r) >= 3)")" \
  "done true/True 410 False True True" \
  "an expired syncToken (410): the same run lists everything again, page by page"
check "$(q -c "SELECT string_agg(event_id, ',') FROM crm.calendar_busy WHERE connection_id = '$C_TINA'")" "dentist0001" "... and the busy intervals are the same after the resync"

# Scheduling, and who may sync.
q -c "UPDATE crm.calendar_sync SET synced_at = now() - interval '1 hour'" >/dev/null
check "$(q -c "SELECT crm._schedule_calendar_syncs() >= 2")/$(q -c "SELECT crm._schedule_calendar_syncs()")" "t/0" \
  "the workers' schedule queues a sync for each calendar not read within crm.calendar_sync_interval, once"
check "$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"$ACC\"}" q -c "SELECT count(*) FROM crm.sync_calendar()")/$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"00000001-0000-0000-0000-000000000001\"}" q -c "SELECT count(*) FROM crm.sync_calendar('$C_TINA')")/$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"account_id\":\"00000001-0000-0000-0000-000000000001\"}" q -c "SELECT count(*) FROM crm.calendar_busy")" \
  "3/0/0" "a tenant may sync its own calendars (three), not another account's, and sees no one else's busy time"
# Push: a channel, notifications through PostgREST's request.headers, renewal, stop on disconnect.
check "$(q -c "SELECT crm.calendar_watch('$C_TINA')" 2>&1 | grep -o 'crm.calendar_webhook_url must be set')" "crm.calendar_webhook_url must be set" \
  "calendar_watch needs crm.calendar_webhook_url (55000)"
HOOK=https://crm.example.com/rest/v1/rpc/google_calendar_webhook
export PGOPTIONS="-c crm.calendar_webhook_url=$HOOK"
q -c "ALTER SYSTEM SET crm.calendar_webhook_url = '$HOOK'" -c "SELECT pg_reload_conf()" >/dev/null
mark
q -c "SELECT crm.calendar_watch('$C_TINA')" -c "SELECT crm.process_integration_tasks()" >/dev/null
CH_TOKEN=$(since | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'].endswith('/events/watch')][-1]; print(r['body']['token'])")
CH_ID=$(since | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'].endswith('/events/watch')][-1]; b=r['body']; print(b['id'])")
check "$(since | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'].endswith('/events/watch')][-1]; b=r['body']; print(r['path'], b['type'], b['address'], len(b['token']) >= 40)")/$(q -c "SELECT channel_id = '$CH_ID' AND channel_token_hash = crm._oauth_state_hash('$CH_TOKEN') AND channel_token_hash <> '$CH_TOKEN' AND channel_expires_at > now() + interval '6 days' FROM crm.calendar_sync WHERE connection_id = '$C_TINA'")" \
  "/calendar/v3/calendars/primary/events/watch web_hook $HOOK True/t" "calendar.watch opens a web_hook channel with a random token, of which only the hash is kept"
hook() { PGOPTIONS="-c role=anon -c request.headers={\"x-goog-channel-id\":\"$1\",\"x-goog-channel-token\":\"$2\",\"x-goog-resource-state\":\"$3\",\"x-goog-message-number\":\"7\"}" \
  psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT crm.google_calendar_webhook()" 2>&1 | grep -oE '"status": "[a-z]+"|ERROR:  [0-9A-Z]{5}' | head -1; }
q -c "UPDATE crm.integration_tasks SET status = 'cancelled' WHERE kind = 'calendar.sync_connection' AND status = 'pending'" >/dev/null
check "$(hook "$CH_ID" "$CH_TOKEN" sync)/$(hook "$CH_ID" "$CH_TOKEN" exists)/$(q -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_connection' AND status = 'pending' AND payload ->> 'connection_id' = '$C_TINA'")" \
  '"status": "ignored"/"status": "scheduled"/1' "a notification (as anon, X-Goog-* headers) schedules one incremental sync; the channel's first 'sync' message is acknowledged"
check "$(hook "$CH_ID" wrong-token exists)/$(hook 00000000-0000-4000-8000-000000000000 "$CH_TOKEN" exists)" "ERROR:  28000/ERROR:  28000" \
  "a wrong channel token or an unknown channel is refused (28000)"
q -c "UPDATE crm.calendar_sync SET channel_expires_at = now() + interval '2 hours' WHERE connection_id = '$C_TINA'" >/dev/null
mark
q -c "SELECT crm._schedule_calendar_syncs()" -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(since | python3 -c "import json,sys; print(' '.join(r['path'].rsplit('/', 2)[-2] + '/' + r['path'].rsplit('/', 1)[-1] for r in json.load(sys.stdin) if 'watch' in r['path'] or 'channels' in r['path']))")/$(q -c "SELECT channel_id <> '$CH_ID' FROM crm.calendar_sync WHERE connection_id = '$C_TINA'")" \
  "channels/stop events/watch/t" "a channel expiring within a day is renewed by the workers' schedule: the old one stopped, a new one opened"
mark
q -c "SELECT crm.disconnect('$C_TINA')" >/dev/null
check "$(since | python3 -c "import json,sys; print(' '.join(r['path'] for r in json.load(sys.stdin)))")/$(q -c "SELECT count(*) FROM crm.calendar_sync WHERE connection_id = '$C_TINA'")" \
  "/calendar/v3/channels/stop /revoke/0" "disconnecting the calendar stops its channel (and revokes the grant)"
# kill -9 of the worker in the middle of a sync: nothing lost, nothing doubled.
emu POST /_emulator/calendar '{"calendar": "office@group.calendar.google.com", "count": 300}' >/dev/null
emu POST /_emulator/faults '[{"path": "/calendar/v3/calendars/office%40group.calendar.google.com/events", "delay_ms": 4000}]' >/dev/null
q -c "UPDATE crm.integration_tasks SET status = 'cancelled' WHERE status = 'pending'" \
  -c "ALTER SYSTEM SET crm.task_lease = '5s'" -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
task=$(q -c "SELECT * FROM crm.sync_calendar('$C_OFFICE')")
for _ in $(seq 100); do [ "$(q -c "SELECT status FROM crm.integration_tasks WHERE id = '$task'")" = processing ] && break; sleep 0.1; done
sleep 0.5
mid=$(q -c "SELECT status FROM crm.integration_tasks WHERE id = '$task'")
kill -9 "$(q -c "SELECT crm.email_worker_pid()")"
for _ in $(seq 200); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 300); do [ "$(q -c "SELECT status FROM crm.integration_tasks WHERE id = '$task'" 2>/dev/null)" = done ] && break; sleep 0.1; done
check "$mid/$(q -c "SELECT status || ' ' || attempts FROM crm.integration_tasks WHERE id = '$task'")/$(q -c "SELECT count(*) FROM crm.calendar_busy WHERE connection_id = '$C_OFFICE' AND event_id LIKE 'seed%'")" \
  "processing/done 2/300" "a worker killed mid-sync: after recovery the sync runs again, all 300 busy intervals, none twice"
q -c "ALTER SYSTEM RESET crm.task_lease" -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
exit $failed
