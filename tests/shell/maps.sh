#!/usr/bin/env bash
# TAP: Google Maps through the installed extension against the emulator's Geocoding and
# Routes APIs (tests/emulator/maps.py): every Geocoding status, the cache and its key,
# coalesced background geocoding and the daily budget, server-owned coordinates, travel times
# (field mask, 625-element split, cache, straight-line fallback), technicians' positions and
# their validation and isolation, ETA, dispatch suggestions and a planned day.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_MAPS:-18053}"
cleanup() { kill $emu_pid 2>/dev/null; }
trap cleanup EXIT
echo "1..44"

ACC=0000000f-0000-0000-0000-00000000a0a1
OTHER=0000000f-0000-0000-0000-00000000a0a2
TINA=0000000f-0000-0000-0000-0000000a0001   # near, free
BEA=0000000f-0000-0000-0000-0000000a0002    # nearest, but busy (a job)
CAL=0000000f-0000-0000-0000-0000000a0003    # near, busy in Google Calendar
TOM=0000000f-0000-0000-0000-0000000a0004    # far, free
STRANGER=0000000f-0000-0000-0000-0000000a0009
KEY=AIzaMapsTestKey123
MAPS="-c crm.google_maps_base_url=$EMU -c crm.google_routes_base_url=$EMU -c crm.google_maps_api_key=$KEY -c crm.task_retry_base=5s"
export PGOPTIONS="$MAPS"
# as SUB SQL: as Supabase's authenticated role with that user's JWT
as() { PGOPTIONS="$MAPS -c role=authenticated -c request.jwt.claims={\"sub\":\"$1\"}" psql -X -q -At -d "$DB" -c "$2" 2>&1; }
# code SQL...: the SQLSTATE of the error (or ok)
code() { psql -X -q -At -d "$DB" -v VERBOSITY=verbose "$@" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1; }
geo_requests() { requests | jq_ "len([r for r in d if r['path'] == '/maps/api/geocode/json'])"; }
matrix_requests() { requests | jq_ "len([r for r in d if r['path'] == '/distanceMatrix/v2:computeRouteMatrix'])"; }

q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id IN ('$ACC', '$OTHER');
TRUNCATE crm.geocode_cache, crm.travel_time_cache;
DELETE FROM crm.maps_usage;
DELETE FROM crm.integration_tasks WHERE kind = 'maps.geocode';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Maps'), ('$OTHER', 'Elsewhere');
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('$TINA', '$ACC', 'tina@maps.test', 'Tina Near', 'tech'),
  ('$BEA', '$ACC', 'bea@maps.test', 'Bea Busy', 'tech'),
  ('$CAL', '$ACC', 'cal@maps.test', 'Cal Calendar', 'tech'),
  ('$TOM', '$ACC', 'tom@maps.test', 'Tom Far', 'tech'),
  ('$STRANGER', '$OTHER', 'x@else.test', 'Stranger', 'tech');
SQL

# --- interactive geocoding: statuses, cache, key -------------------------------------------
check "$(q -c "SELECT status || ' ' || round(latitude::numeric, 4) || ' ' || location_type || ' ' || formatted_address FROM crm.geocode('100 Congress Ave, Austin, TX')")" \
  "ok 30.2653 ROOFTOP 100 Congress Ave, Austin, TX 78701, USA" "geocode: OK is a row (coordinates, type, formatted address)"
check "$(requests | jq_ "[(r['query']['address'], r['query']['key']) for r in d if r['path'] == '/maps/api/geocode/json'][0]")" \
  "('100 Congress Ave, Austin, TX', '$KEY')" "... one GET /maps/api/geocode/json with the address and the key"
q -c "SELECT * FROM crm.geocode('100 congress   AVE austin tx.')" >/dev/null
check "$(geo_requests)" "1" "the same address in another case, spacing and punctuation is a cache hit: no request"
check "$(q -c "SELECT status || ' ' || (latitude IS NULL) FROM crm.geocode('1 Nowhere Lane')")/$(q -c "SELECT status FROM crm.geocode('1 NOWHERE lane')")/$(geo_requests)" \
  "not_found true/not_found/2" "ZERO_RESULTS: a not_found row, cached too (the second lookup sends nothing)"
emu POST /_emulator/maps '{"statuses": ["OVER_QUERY_LIMIT", "REQUEST_DENIED", "INVALID_REQUEST", "OVER_DAILY_LIMIT", "UNKNOWN_ERROR"]}' >/dev/null
check "$(code -c "SELECT * FROM crm.geocode('2 Busy St')")" "53400" "OVER_QUERY_LIMIT interactively: 53400 (retry later)"
check "$(psql -X -q -At -d "$DB" -c "SELECT * FROM crm.geocode('2 Busy St')" 2>&1 | grep -o 'refused the request: REQUEST_DENIED: This API project is not authorized to use this API.')" \
  "refused the request: REQUEST_DENIED: This API project is not authorized to use this API." "REQUEST_DENIED: Google's error_message in the error"
check "$(code -c "SELECT * FROM crm.geocode('2 Busy St')")/$(code -c "SELECT * FROM crm.geocode('2 Busy St')")/$(code -c "SELECT * FROM crm.geocode('2 Busy St')")" \
  "22023/55000/53400" "INVALID_REQUEST 22023, OVER_DAILY_LIMIT 55000, UNKNOWN_ERROR 53400"
check "$(q -c "SELECT count(*) FROM crm.geocode_cache WHERE key = crm._address_key('2 Busy St')")" "0" "... and none of them was cached"
check "$(PGOPTIONS="$MAPS -c crm.google_maps_api_key=" code -c "SELECT * FROM crm.geocode('3 Keyless Rd')")/$(PGOPTIONS="$MAPS -c crm.google_maps_api_key=wrong-key" psql -X -q -At -d "$DB" -c "SELECT * FROM crm.geocode('3 Keyless Rd')" 2>&1 | grep -c 'The provided API key is invalid')" \
  "55000/1" "no key: 55000 before any request; a bad key: Google's REQUEST_DENIED message"
check "$(code -c "SELECT * FROM crm.geocode('...')")/$(code -c "SELECT * FROM crm.geocode(repeat('a', 501))")/$(code -c "SELECT * FROM crm.reverse_geocode(95, 0)")" \
  "22023/22023/22023" "an address with no letters or digits, one over 500 characters, a latitude of 95: 22023"
check "$(q -c "SELECT status || ' ' || formatted_address FROM crm.reverse_geocode(30.3, -97.7)")" "ok 2100 Reverse Rd, Austin, TX, USA" "reverse_geocode: the address at a point"
check "$(as "$TINA" "SHOW crm.google_maps_api_key" | grep -o 'must be superuser' | head -1)/$(as "$TINA" "SELECT count(*) FROM pg_settings WHERE name = 'crm.google_maps_api_key'")" \
  "must be superuser/0" "the API key is hidden from tenants (SHOW refused, not in pg_settings)"
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/faults '[{"path": "/maps/api/geocode/json", "delay_ms": 5000}]' >/dev/null
t0=$(date +%s.%N)
check "$(PGOPTIONS="$MAPS -c statement_timeout=500" code -c "SELECT * FROM crm.geocode('4 Slow St')")" "57014" "a slow Geocoding API: statement_timeout cancels the call (57014)"
check "$(echo "$(date +%s.%N) - $t0 < 2" | bc -l)" "1" "... within 2 s, not after the 5 s answer"

# --- background geocoding ------------------------------------------------------------------
emu POST /_emulator/reset >/dev/null
q -c "INSERT INTO crm.jobs (account_id, title, address) SELECT '$ACC', 'same ' || i, CASE WHEN i % 2 = 0 THEN '12 Elm St.' ELSE ' 12 elm  ST' END FROM generate_series(1, 100) i" >/dev/null
check "$(q -c "SELECT count(*) || ' ' || sum(coalesced) FROM crm.integration_tasks WHERE kind = 'maps.geocode' AND status = 'pending' AND account_id = '$ACC'")" "1 99" \
  "100 jobs at one address (written two ways): one maps.geocode task, coalesced 99 times"
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(geo_requests)/$(q -c "SELECT count(*) || ' ' || count(DISTINCT (latitude, longitude)) || ' ' || min(geocode_status) FROM crm.jobs WHERE account_id = '$ACC' AND title LIKE 'same %'")" \
  "1/100 1 ok" "... one request; all 100 jobs got the same coordinates"
q -c "INSERT INTO crm.contacts (account_id, first_name, address) VALUES ('$ACC', 'Cached', '12 ELM st'), ('$ACC', 'Fresh', '500 E Cesar Chavez St, Austin, TX')" >/dev/null
check "$(q -c "SELECT first_name || ':' || coalesce(geocode_status, '') FROM crm.contacts WHERE account_id = '$ACC' ORDER BY first_name" | tr '\n' ' ')" \
  "Cached:ok Fresh:pending " "a contact at a cached address has coordinates at once; a new address waits for its task"
emu POST /_emulator/maps '{"statuses": ["OVER_QUERY_LIMIT"]}' >/dev/null
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(q -c "SELECT status || ' ' || attempts || ' ' || (last_error LIKE '%OVER_QUERY_LIMIT%') FROM crm.integration_tasks WHERE kind = 'maps.geocode' AND payload ->> 'address' LIKE '500 E%'")/$(q -c "SELECT geocode_status FROM crm.contacts WHERE first_name = 'Fresh'")" \
  "pending 1 true/pending" "OVER_QUERY_LIMIT in the background: the task is retried with backoff, the contact stays pending"
q -c "UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE kind = 'maps.geocode' AND status = 'pending'" >/dev/null
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(q -c "SELECT geocode_status || ' ' || round(latitude::numeric, 3) FROM crm.contacts WHERE first_name = 'Fresh'")" "ok 30.261" "... and the retry geocodes it"
emu POST /_emulator/maps '{"statuses": ["REQUEST_DENIED"]}' >/dev/null
q -c "INSERT INTO crm.jobs (account_id, title, address) VALUES ('$ACC', 'denied', '9 Denied Way')" >/dev/null
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(q -c "SELECT t.status || ' ' || j.geocode_status FROM crm.integration_tasks t, crm.jobs j WHERE t.payload ->> 'address' = '9 Denied Way' AND j.title = 'denied'")/$(PGOPTIONS="$MAPS -c role=authenticated -c request.jwt.claims={\"account_id\":\"$ACC\"}" q -c "SELECT crm.geocode_missing()")/$(q -c "SELECT geocode_status FROM crm.jobs WHERE title = 'denied'")" \
  "failed failed/1/pending" "REQUEST_DENIED in the background: task and job failed; crm.geocode_missing() (as the tenant) queues it again"
q -c "SELECT crm.process_integration_tasks()" >/dev/null
# the daily budget: 2 requests a day for this account
emu POST /_emulator/reset >/dev/null
q -c "DELETE FROM crm.maps_usage WHERE account_id = '$ACC'" -c "INSERT INTO crm.jobs (account_id, title, address) SELECT '$ACC', 'budget ' || i, i || ' Budget Blvd' FROM generate_series(1, 5) i" >/dev/null
PGOPTIONS="$MAPS -c crm.maps_daily_budget=2" q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(geo_requests)/$(q -c "SELECT count(*) FILTER (WHERE geocode_status = 'ok') || ' ' || count(*) FILTER (WHERE geocode_status = 'pending') FROM crm.jobs WHERE title LIKE 'budget %'")/$(q -c "SELECT requests FROM crm.maps_usage WHERE account_id = '$ACC' AND api = 'geocode'")" \
  "2/2 3/2" "crm.maps_daily_budget = 2: two requests, the other three jobs wait"
check "$(q -c "SELECT count(*) || ' ' || max(attempts) || ' ' || bool_and(next_attempt_at > now() + interval '1 minute') || ' ' || bool_and(last_error LIKE '%maps_daily_budget%') FROM crm.integration_tasks WHERE kind = 'maps.geocode' AND status = 'pending'")" \
  "3 0 true true" "... deferred to the budget's renewal, no attempt counted, the reason in last_error"
PGOPTIONS="$MAPS -c crm.maps_daily_budget=2" q -c "SELECT crm.geocode('77 Interactive Ave')" >/dev/null
check "$(geo_requests)" "3" "interactive calls are not stopped by the budget (counted all the same)"
q -c "UPDATE crm.integration_tasks SET next_attempt_at = now() WHERE kind = 'maps.geocode' AND status = 'pending'" -c "SELECT crm.process_integration_tasks()" >/dev/null

# --- coordinates are the server's ---------------------------------------------------------
J=$(q -c "SELECT id FROM crm.jobs WHERE title = 'same 1'")
as "$TINA" "UPDATE crm.jobs SET latitude = 1, longitude = 1, geocode_status = 'ok', title = 'same 1 renamed' WHERE id = '$J'" >/dev/null
check "$(q -c "SELECT title || ' ' || round(latitude::numeric, 2) FROM crm.jobs WHERE id = '$J'")" "same 1 renamed 30.25" "a tenant's write to the coordinates is ignored (the rest of the update lands)"
as "$TINA" "UPDATE crm.jobs SET address = '2100 Barton Springs Rd, Austin, TX' WHERE id = '$J'" >/dev/null
check "$(q -c "SELECT coalesce(latitude::text, 'null') || ' ' || geocode_status FROM crm.jobs WHERE id = '$J'")" "null pending" "a new address clears the coordinates and queues its geocoding"
q -c "SELECT crm.process_integration_tasks()" >/dev/null

# --- travel times ---------------------------------------------------------------------------
emu POST /_emulator/reset >/dev/null
check "$(q -c "SELECT string_agg(origin_index || '>' || destination_index || ' ' || round(distance_m) || ' ' || source, ', ' ORDER BY 1) FROM crm.travel_times('[[30.2653, -97.7448], {\"latitude\": 30.4021, \"longitude\": -97.7253}]', '[[30.2450, -97.7803]]')")" \
  "0>0 5316 routes, 1>0 23724 routes" "travel_times: each origin to each destination through the Routes API"
check "$(requests | jq_ "[(r['headers'].get('x-goog-api-key'), 'status' in r['headers'].get('x-goog-fieldmask', '') and 'condition' in r['headers']['x-goog-fieldmask'], r['body']['travelMode'], len(r['body']['origins'])) for r in d if r['path'].startswith('/distanceMatrix')]")" \
  "[('$KEY', True, 'DRIVE', 2)]" "... POST computeRouteMatrix with X-Goog-Api-Key and a field mask naming status and condition"
check "$(q -c "SELECT string_agg(source, ',') FROM crm.travel_times('[[30.26531, -97.74482]]', '[[30.2450, -97.7803]]')")/$(matrix_requests)" "cache/1" \
  "a point a metre away, same hour: from the cache, no request"
check "$(q -c "SELECT source FROM crm.travel_times('[[30.11, -97.11]]', '[[30.12, -97.12]]', now() - interval '10 hours')")/$(q -c "SELECT source FROM crm.travel_times('[[30.11, -97.11]]', '[[30.12, -97.12]]')")" \
  "routes/cache" "a past departure is answered for now (no departureTime sent) and cached under now's hour, not the past one's"
q -c "SELECT count(*) FROM crm.travel_times((SELECT jsonb_agg(jsonb_build_array(30.2 + i * 0.001, -97.7)) FROM generate_series(1, 30) i), (SELECT jsonb_agg(jsonb_build_array(30.3, -97.6 - i * 0.001)) FROM generate_series(1, 30) i))" >/dev/null
check "$(requests | jq_ "sorted(n for n in (len(r['body']['origins']) * len(r['body']['destinations']) for r in d if r['path'].startswith('/distanceMatrix')) if n >= 100)")" \
  "[300, 600]" "30 x 30 = 900 elements: split into requests of at most 625 (the emulator refuses more)"
check "$(code -c "SELECT * FROM crm.travel_times((SELECT jsonb_agg(jsonb_build_array(30, -97)) FROM generate_series(1, 40)), (SELECT jsonb_agg(jsonb_build_array(31, -97)) FROM generate_series(1, 40)))")/$(code -c "SELECT * FROM crm.travel_times('[[91, 0]]', '[[0, 0]]')")/$(code -c "SELECT * FROM crm.travel_times('{\"a\": 1}', '[[0, 0]]')")" \
  "54000/22023/22023" "1,600 pairs > crm.maps_max_elements (1,000): 54000; a latitude of 91 or a non-array: 22023"
check "$(PGOPTIONS="$MAPS -c crm.google_maps_api_key=" q -c "SELECT source || ' ' || condition || ' ' || (duration_s > 0) FROM crm.travel_times('[[30.0, -97.0]]', '[[30.1, -97.1]]')")" \
  "straight_line ESTIMATED true" "without an API key: a straight-line estimate, marked as such"

# --- technicians' positions ----------------------------------------------------------------
check "$(as "$TINA" "SELECT crm.report_location(30.2660, -97.7450, 8)")/$(as "$TINA" "SELECT crm.report_location(30.2661, -97.7451, 8)")/$(q -c "SELECT count(*) FROM crm.technician_locations WHERE user_id = '$TINA'")/$(q -c "SELECT round(latitude::numeric, 4) FROM crm.technician_positions WHERE user_id = '$TINA'")" \
  "t/f/1/30.2661" "report_location: the latest position moves; a report 30 s after the last is not kept in the history"
as "$BEA" "SELECT crm.report_location(30.2655, -97.7449)" >/dev/null
as "$CAL" "SELECT crm.report_location(30.2654, -97.7449)" >/dev/null
as "$TOM" "SELECT crm.report_location(30.4000, -97.7200)" >/dev/null
as "$STRANGER" "SELECT crm.report_location(30.2653, -97.7448)" >/dev/null
before=$(q -c "SELECT count(*) FROM crm.technician_locations")
check "$(as "$TINA" "SELECT crm.report_location(91, 0)" | grep -o 'between -90 and 90' | head -1)/$(code -c "SET role authenticated" -c "SET request.jwt.claims = '{\"sub\": \"$TINA\"}'" -c "SELECT crm.report_location(30, 'NaN')")/$(code -c "SET role authenticated" -c "SET request.jwt.claims = '{\"sub\": \"$TINA\"}'" -c "SELECT crm.report_location(30, -97, NULL, now() + interval '1 hour')")/$(code -c "SET role authenticated" -c "SET request.jwt.claims = '{\"sub\": \"$TINA\"}'" -c "SELECT crm.report_location(30, -97, NULL, now() - interval '8 days')")/$(code -c "SET role authenticated" -c "SET request.jwt.claims = '{\"sub\": \"$TINA\"}'" -c "SELECT crm.report_location(30, -97, -5)")" \
  "between -90 and 90/22023/22023/22023/22023" "out of range, NaN, future, older than retention, negative accuracy: 22023"
check "$(code -c "SET role authenticated" -c "SET request.jwt.claims = '{\"account_id\": \"$ACC\"}'" -c "SELECT crm.report_location(30, -97)")/$(code -c "SET role anon" -c "SELECT crm.report_location(30, -97)")/$(q -c "SELECT count(*) FROM crm.technician_locations")" \
  "42501/42501/$before" "no user in the JWT (an account only) or anon: 42501; nothing written by any refusal"
check "$(as "$TINA" "SELECT count(*) FROM crm.technician_positions")/$(as "$STRANGER" "SELECT count(*) FROM crm.technician_positions")/$(as "$TINA" "INSERT INTO crm.technician_positions (user_id, account_id, latitude, longitude, recorded_at) VALUES ('$TINA', '$ACC', 0, 0, now())" | grep -o 'permission denied' | head -1)" \
  "4/1/permission denied" "an account sees only its technicians' positions; tenants cannot write them directly"

# --- ETA, suggestions, a planned day --------------------------------------------------------
q >/dev/null <<SQL
INSERT INTO crm.jobs (id, account_id, title, address, scheduled_start, scheduled_end) VALUES
  ('0000000f-0000-0000-0000-00000000b001', '$ACC', 'Dispatch me', '100 Congress Ave, Austin, TX', now() + interval '2 hours', now() + interval '3 hours');
INSERT INTO crm.jobs (account_id, title, address, scheduled_start, scheduled_end, assigned_to) VALUES
  ('$ACC', 'Bea is here', '500 E Cesar Chavez St, Austin, TX', now() + interval '90 minutes', now() + interval '150 minutes', '$BEA');
INSERT INTO crm.calendar_providers (id, account_id, user_id, provider, provider_email) VALUES
  ('0000000f-0000-0000-0000-00000000c001', '$ACC', '$CAL', 'google', 'cal@maps.test');
INSERT INTO crm.calendar_busy (connection_id, event_id, account_id, user_id, starts_at, ends_at) VALUES
  ('0000000f-0000-0000-0000-00000000c001', 'dentist', '$ACC', '$CAL', now() + interval '150 minutes', now() + interval '4 hours');
SQL
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(as "$TINA" "SELECT string_agg(rank || ':' || full_name || ':' || available, ' ' ORDER BY rank) FROM crm.suggest_technicians('0000000f-0000-0000-0000-00000000b001')")" \
  "1:Tina Near:true 2:Tom Far:true 3:Cal Calendar:false 4:Bea Busy:false" "suggest_technicians: free first by driving time; the two nearest are busy (Cal in Google Calendar, Bea with a job)"
check "$(as "$TINA" "SELECT reason FROM crm.suggest_technicians('0000000f-0000-0000-0000-00000000b001') WHERE full_name = 'Bea Busy'" | grep -o 'busy: job "Bea is here" overlaps')/$(as "$TINA" "SELECT count(*) FROM crm.suggest_technicians('0000000f-0000-0000-0000-00000000b001', 2)")/$(as "$STRANGER" "SELECT count(*) FROM crm.suggest_technicians('0000000f-0000-0000-0000-00000000b001')" | grep -o 'no job')" \
  'busy: job "Bea is here" overlaps/2/no job' "... with the reason; limit honoured; another account's caller gets 'no job'"
q -c "UPDATE crm.jobs SET assigned_to = '$TINA' WHERE id = '0000000f-0000-0000-0000-00000000b001'" >/dev/null
check "$(as "$TINA" "SELECT round(distance_m) || ' ' || (eta > now()) || ' ' || source FROM crm.job_eta('0000000f-0000-0000-0000-00000000b001')")/$(PGOPTIONS="$MAPS -c crm.google_maps_api_key=" q -c "SELECT source FROM crm.job_eta('0000000f-0000-0000-0000-00000000b001')")" \
  "122 true routes/straight_line" "job_eta from the technician's position (Routes), a straight-line estimate without Maps"
# A day where the scheduled order is not the shortest drive: A (north), B (south), C (north,
# nearer the south), wide windows; the plan visits the two northern jobs together, C last.
q >/dev/null <<SQL
INSERT INTO crm.jobs (account_id, title, address, scheduled_start, scheduled_end, assigned_to, status) VALUES
  ('$ACC', 'A north', '11200 Domain Dr, Austin, TX', (current_date + 1) + time '08:00', (current_date + 1) + time '16:00', '$TOM', 'scheduled'),
  ('$ACC', 'B south', '3000 S Lamar Blvd, Austin, TX', (current_date + 1) + time '08:30', (current_date + 1) + time '16:00', '$TOM', 'scheduled'),
  ('$ACC', 'C north', '10000 Research Blvd, Austin, TX', (current_date + 1) + time '09:00', (current_date + 1) + time '16:00', '$TOM', 'scheduled'),
  ('$ACC', 'D late', '2100 Barton Springs Rd, Austin, TX', (current_date + 1) + time '15:00', (current_date + 1) + time '15:30', '$TOM', 'scheduled');
SQL
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(as "$TINA" "SELECT string_agg(title, ', ' ORDER BY stop) || ' | ' || bool_and(NOT late) || ' ' || bool_and(exact) FROM crm.plan_route('$TOM', current_date + 1)")" \
  "A north, C north, B south, D late | true true" "plan_route: the northern jobs together, the 15:00 window kept, proven optimal"
check "$(q -c "UPDATE crm.jobs SET status = 'completed' WHERE title = 'B south'" -c "SELECT string_agg(title, ', ' ORDER BY stop) FROM crm.plan_route('$TOM', current_date + 1)")" \
  "A north, C north, D late" "a completed job is not planned"
check "$(as "$STRANGER" "SELECT count(*) FROM crm.plan_route('$TOM', current_date + 1)" | grep -o 'no user')/$(code -c "SET crm.route_max_jobs = 2" -c "SELECT count(*) FROM crm.plan_route('$TOM', current_date + 1)")" \
  "no user/54000" "another account's technician: 'no user'; more jobs than crm.route_max_jobs: 54000"
check "$(as "$TINA" "SELECT string_agg(api || ':' || (requests > 0) || ':' || (cost_usd = requests * CASE api WHEN 'geocode' THEN 0.005 END OR (api = 'route_matrix' AND cost_usd = elements * 0.010)), ' ' ORDER BY api) FROM crm.maps_usage")/$(as "$STRANGER" "SELECT count(*) FROM crm.maps_usage")" \
  "geocode:true:true route_matrix:true:true/0" "usage per account and API at list price (\$5 per 1,000 geocodes, \$10 per 1,000 elements); another account sees none of it"
check "$(q -c "SELECT 1")" "1" "the server is still up"
exit $failed
