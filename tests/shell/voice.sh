#!/usr/bin/env bash
# TAP: the voice agent end to end through a PostgREST stand-in (tests/gateway/postgrest.py:
# HS256 JWT -> role and claims, request.headers, the body as the single unnamed parameter,
# response.status, SQLSTATE -> HTTP): the official MCP Python SDK initializes, lists the tools
# and calls create_job, search_contacts and send_email_template (the effects checked in the
# database and at the email emulator); JSON-RPC edge cases over raw HTTP; the tools as
# ElevenLabs server tools (one RPC each) and their configuration; ElevenLabs' post-call
# webhook with vectors signed by Python's hmac, every rejection, duplicates.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
VENV=${CRM_VENV:-/opt/crm_integrations/venv}
start_emulator "${CRM_EMULATOR_PORT_VOICE:-18061}"
GW_PORT=${CRM_GATEWAY_PORT_VOICE:-18063}
GW=http://127.0.0.1:$GW_PORT
SECRET=voice-test-jwt-secret-of-at-least-32-chars
WSEC=wsec_voice_test_secret
ANON_KEY=anon-key-for-tests
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_voice -c crm.resend_rate_limit=0 -c crm.stripe_base_url=$EMU -c crm.stripe_secret_key=sk_test_voice -c crm.app_base_url=https://app.317plumber.test -c crm.elevenlabs_webhook_secret=$WSEC"
gw_log=$(mktemp)
"$VENV/bin/python" tests/gateway/postgrest.py serve "$GW_PORT" --dsn "dbname=$DB" --jwt-secret "$SECRET" > "$gw_log" 2>&1 &
gw_pid=$!
for _ in $(seq 50); do grep -q ready "$gw_log" 2>/dev/null && break; sleep 0.1; done
cleanup() { kill $emu_pid $gw_pid 2>/dev/null; }
trap cleanup EXIT
echo "1..35"
# mail an earlier test left queued is not this test's to send
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null

ACC=00000017-0000-0000-0000-0000000000a1
OTHER=00000017-0000-0000-0000-0000000000a2
DANA=00000017-0000-0000-0000-0000000000d1
OLGA=00000017-0000-0000-0000-0000000000f1
INV=00000017-0000-0000-0000-0000000000e1
q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id IN ('$ACC', '$OTHER');
DELETE FROM crm.webhook_events WHERE provider = 'elevenlabs';
INSERT INTO crm.accounts (id, name, time_zone, default_from_email) VALUES
  ('$ACC', '317 Plumber', 'America/Indiana/Indianapolis', 'office@317plumber.test'), ('$OTHER', 'Elsewhere', NULL, NULL);
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('$DANA', '$ACC', 'dana@317plumber.test', 'Dana Owner', 'owner'), ('$OLGA', '$OTHER', 'olga@else.test', 'Olga', 'owner');
INSERT INTO crm.contacts (account_id, first_name, last_name, email, phone) VALUES
  ('$ACC', 'John', 'Smith', 'john@smith.test', '(317) 555-0101'), ('$ACC', 'John', 'Wu', 'john@wu.test', NULL),
  ('$OTHER', 'John', 'Other', 'john@other.test', NULL);
INSERT INTO crm.invoices (id, account_id, invoice_number, amount, currency, status)
VALUES ('$INV', '$ACC', 'V-1', 24900, 'usd', 'sent');
SQL
jwt() { "$VENV/bin/python" tests/gateway/postgrest.py mint "$SECRET" "$1"; }
DANA_JWT=$(jwt "{\"sub\": \"$DANA\", \"role\": \"authenticated\", \"account_id\": \"$ACC\", \"exp\": $(( $(date +%s) + 3600 ))}")
OLGA_JWT=$(jwt "{\"sub\": \"$OLGA\", \"role\": \"authenticated\", \"account_id\": \"$OTHER\"}")
# rpc FN BODY [JWT] [CONTENT-TYPE]: "<status> <body>"
rpc() { curl -s -m 30 -o /tmp/voice_rpc_body -w '%{http_code}' -X POST "$GW/rest/v1/rpc/$1" -H "apikey: $ANON_KEY" \
          ${3:+-H "Authorization: Bearer $3"} -H "Content-Type: ${4:-application/json}" -H 'X-Conversation-Id: conv_test_1' --data-binary "$2";
        echo " $(cat /tmp/voice_rpc_body)"; }
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1].split(' ',1)[1]); print($2)" "$1"; }

# --- MCP with the official SDK --------------------------------------------------------------
CALLS='[["create_job", {"description": "Leaking faucet", "contactName": "John Smith", "scheduledStart": "2026-12-03T09:00"}],
        ["search_contacts", {"search": "john"}],
        ["send_email_template", {"templateName": "Appointment Reminder", "to": "john@smith.test", "variables": {"customerName": "John", "serviceName": "Leaking faucet", "scheduledAt": "2026-12-03T14:00:00Z"}}],
        ["create_job", {"description": "Another", "contactName": "John"}],
        ["get_job", {"jobId": "not-an-id"}]]'
out=$("$VENV/bin/python" tests/voice/mcp_session.py "$GW/rest/v1/rpc/mcp" "$ANON_KEY" "$DANA_JWT" "$CALLS" 2>&1)
step() { echo "$out" | python3 -c "import json,sys; l=[json.loads(x) for x in sys.stdin if x.startswith('{')]; d=l[$1]; print($2)"; }
check "$(step 0 "(d['protocolVersion'], d['server'], d['tools'])")" "('2025-11-25', 'crm_integrations', True)" \
  "MCP SDK: initialize over streamable HTTP through /rest/v1/rpc/mcp (protocol 2025-11-25, tools capability)"
check "$(step 1 "(d['count'], d['schema_errors'], 'navigate' in d['names'])")" "(23, [], False)" \
  "... tools/list: the 23 server tools, each inputSchema a valid draft 2020-12 schema (client tools left to the browser)"
check "$(step 2 "(d['isError'], d['result']['contact']['name'], d['result']['scheduledStart'])")" "(False, 'John Smith', '2026-12-03T14:00:00+00:00')" \
  "... tools/call create_job: John Smith's job at 9:00 Indianapolis time"
check "$(q -c "SELECT count(*) FROM crm.jobs WHERE account_id = '$ACC' AND title = 'Leaking faucet' AND status = 'scheduled'")" "1" "... the job is in the database, in Dana's account"
check "$(step 3 "sorted(c['name'] for c in d['result']['contacts'])")" "['John Smith', 'John Wu']" "... search_contacts: Dana's Johns (not the other account's)"
check "$(step 4 "(d['isError'], d['result']['status'])")" "(False, 'queued')" "... send_email_template: queued"
q -c "SELECT crm.process_email_queue()" >/dev/null
check "$(requests | jq_ "[(r['body']['to'], r['body']['subject'][:20]) for r in d if r['path'] == '/emails']")" "[(['john@smith.test'], 'Reminder: your appoi')]" \
  "... and sent: the emulator received the reminder"
check "$(step 5 "(d['isError'], d['result']['error'])")" "(True, 'several contacts match John: John Smith, John Wu. Which one?')" \
  "... an ambiguous name is a tool error (isError) the agent can say"
check "$(step 6 "(d['isError'], d['result']['error'])")" "(True, 'jobId: not an id')" "... a bad argument likewise"
check "$(q -c "SELECT count(*) FROM crm.tool_calls WHERE account_id = '$ACC' AND user_sub = '$DANA'")" "5" "every call is in crm.tool_calls, with the user"

# --- JSON-RPC over raw HTTP -----------------------------------------------------------------
r=$(rpc mcp '{"jsonrpc": "2.0", "method": "notifications/initialized"}' "$DANA_JWT")
check "${r%% *}" "202" "a notification: HTTP 202 (response.status)"
r=$(rpc mcp '[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]' "$DANA_JWT")
check "${r%% *}/$(field "$r" "d['error']['code']")" "400/-32600" "a batch: 400 with JSON-RPC -32600"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 1, "method": "ping"' "$DANA_JWT")
check "${r%% *}/$(field "$r" "d['code']")" "400/22P02" "malformed JSON never reaches crm.mcp: PostgREST refuses it (400, 22P02)"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": "a", "method": "resources/list"}' "$DANA_JWT")
check "$(field "$r" "(d['id'], d['error']['code'])")" "('a', -32601)" "an unknown method: -32601 with the request's id"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "navigate", "arguments": {}}}' "$DANA_JWT")
check "$(field "$r" "d['error']['code']")" "-32602" "tools/call of a tool the server does not run: -32602"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 8, "method": "initialize", "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}' "$DANA_JWT")
check "$(field "$r" "d['result']['protocolVersion']")/$(rpc mcp '{"jsonrpc": "2.0", "id": 9, "method": "ping"}' "$DANA_JWT")" "2025-11-25/200 {\"jsonrpc\": \"2.0\", \"id\": 9, \"result\": {}}" \
  "an unknown protocol version gets the newest; ping answers {}"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}')
check "${r%% *}/$(field "$r" "d['code']")" "401/42501" "no JWT: the anon role may not call mcp (401, 42501)"
# A different first character of the signature (the last one carries only 4 bits: replacing it
# can leave the decoded signature as it was, as base64 decoders ignore the spare bits)
sig=${DANA_JWT##*.}
BAD_JWT="${DANA_JWT%.*}.$([ "${sig:0:1}" = A ] && echo B || echo A)${sig:1}"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}' "$BAD_JWT")
check "${r%% *}/$(field "$r" "d['code']")" "401/PGRST301" "a JWT with a bad signature: 401 PGRST301"
r=$(rpc mcp '{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search_contacts", "arguments": {"search": "john"}}}' "$OLGA_JWT")
check "$(field "$r" "[c['name'] for c in d['result']['structuredContent']['contacts']]")" "['John Other']" "the JWT decides whose data: Olga's John only"

# --- the tools as ElevenLabs server tools ------------------------------------------------------
r=$(rpc tool_search_contacts '{"search": "smith"}' "$DANA_JWT")
check "${r%% *}/$(field "$r" "[c['name'] for c in d['contacts']]")" "200/['John Smith']" "POST /rest/v1/rpc/tool_search_contacts: the body is the arguments"
r=$(rpc tool_create_invoice_checkout "{\"invoiceId\": \"$INV\"}" "$DANA_JWT")
check "$(field "$r" "(d['ok'], d['url'].startswith('https://checkout.stripe.com/'))")" "(True, True)" "create_invoice_checkout: a Stripe Checkout link (emulator)"
check "$(q -c "SELECT conversation_id FROM crm.tool_calls WHERE tool = 'create_invoice_checkout' ORDER BY id DESC LIMIT 1")" "conv_test_1" \
  "... logged with its conversation (X-Conversation-Id)"
cfg=$(q -c "SELECT crm.elevenlabs_tools('https://proj.supabase.co')")
check "$(echo "$cfg" | jq_ "(len([t for t in d['tools'] if t['type'] == 'webhook']), sorted(t['name'] for t in d['tools'] if t['type'] == 'client'), [t for t in d['tools'] if t['name'] == 'send_email'][0]['api_schema']['url'])")" \
  "(23, ['get_current_page', 'navigate'], 'https://proj.supabase.co/rest/v1/rpc/tool_send_email')" "elevenlabs_tools: 23 server tools calling their RPC, 2 client tools"
check "$(q -c "SELECT jsonb_array_length(crm.tool_manifest() -> 'tools')")" "25" "tool_manifest: all 25 in tools/list shape"

# --- ElevenLabs post-call webhook ----------------------------------------------------------------
sign() { python3 -c "
import hashlib, hmac, sys, time
t = int(time.time()) + int(sys.argv[2])
print('t=%d,v0=%s' % (t, hmac.new(sys.argv[3].encode(), ('%d.' % t).encode() + sys.argv[1].encode(), hashlib.sha256).hexdigest()))" "$1" "${2:-0}" "${3:-$WSEC}"; }
# ElevenLabs posts application/json, with the project's anon key in the URL (it sends no custom headers)
hook() { curl -s -m 30 -o /tmp/voice_hook_body -w '%{http_code}' -X POST "$GW/rest/v1/rpc/elevenlabs_webhook?apikey=$ANON_KEY" \
           -H 'Content-Type: application/json' ${2:+-H "ElevenLabs-Signature: $2"} --data-binary "$1"; echo " $(cat /tmp/voice_hook_body)"; }
# the app registers each conversation with the user's JWT when ElevenLabs opens it
r=$(rpc voice_conversation_start '{"conversation_id": "conv_abc"}' "$DANA_JWT"); rpc voice_conversation_start '{"conversation_id": "conv_fail"}' "$DANA_JWT" >/dev/null
rpc voice_conversation_start '{"conversation_id": "conv_def"}' "$DANA_JWT" >/dev/null
check "${r%% *}/$(rpc voice_conversation_start '{"conversation_id": "conv_abc"}' "$OLGA_JWT" | cut -d' ' -f1)" "200/403" \
  "voice_conversation_start: Dana registers her conversation; Olga cannot take it over (403)"
BODY=$(python3 -c "import json; print(json.dumps({'type': 'post_call_transcription', 'event_timestamp': 1764300000, 'data': {
  'agent_id': 'agent_1', 'conversation_id': 'conv_abc', 'status': 'done',
  'transcript': [{'role': 'user', 'message': 'Create a job for John tomorrow at 9', 'time_in_call_secs': 1},
                 {'role': 'agent', 'message': 'Done: Leaking faucet, tomorrow 9 AM.', 'time_in_call_secs': 4}],
  'metadata': {'start_time_unix_secs': 1764299900, 'call_duration_secs': 42, 'phone_call': {'external_number': '+13175550101'}},
  'analysis': {'call_successful': 'success', 'transcript_summary': 'Booked a faucet repair for John Smith.'},
  'conversation_initiation_client_data': {'dynamic_variables': {'account_id': '$ACC', 'user_id': '$DANA'}}}}))")
r=$(hook "$BODY" "$(sign "$BODY")")
check "${r%% *}/$(field "$r" "d['status']")" "200/processed" "post_call_transcription signed with Python's hmac: recorded, linked to the caller's contact by phone"
check "$(q -c "SELECT duration_secs || ' ' || call_successful || ' ' || jsonb_array_length(transcript) || ' ' || (contact_id IS NOT NULL) FROM crm.voice_calls WHERE conversation_id = 'conv_abc'")" \
  "42 success 2 true" "... duration, outcome, transcript in crm.voice_calls"
r=$(hook "$BODY" "$(sign "$BODY")")
check "$(field "$r" "d['status']")/$(q -c "SELECT count(*) FROM crm.voice_calls WHERE conversation_id = 'conv_abc'")" "duplicate/1" "the same conversation and type again: a duplicate, nothing written"
before=$(q -c "SELECT count(*) FROM crm.webhook_events WHERE provider = 'elevenlabs'")
B2=${BODY/conv_abc/conv_def}
codes="$(field "$(hook "$B2" "$(sign "$B2" 0 wsec_wrong)")" "d['code']") $(field "$(hook "$B2" "$(sign "$B2" -4000)")" "d['code']") $(field "$(hook "$B2" "$(sign "$B2" 4000)")" "d['code']") $(field "$(hook "$B2")" "d['code']") $(field "$(hook "$B2" "t=1,v0=zz")" "d['code']") $(field "$(hook "${B2/42/43}" "$(sign "$B2")")" "d['code']")"
check "$codes/$(q -c "SELECT count(*) FROM crm.webhook_events WHERE provider = 'elevenlabs'")" "28000 28000 28000 28000 28000 28000/$before" \
  "refused (28000, nothing written): a wrong secret, 67 minutes old, 67 minutes ahead, no header, a malformed one, a body changed after signing"
FAIL=$(python3 -c "import json; print(json.dumps({'type': 'call_initiation_failure', 'data': {'agent_id': 'agent_1', 'conversation_id': 'conv_fail', 'failure_reason': 'busy',
  'conversation_initiation_client_data': {'dynamic_variables': {'account_id': '$ACC', 'user_id': '$DANA'}}}}))")
AUDIO=$(python3 -c "import json, base64; print(json.dumps({'type': 'post_call_audio', 'data': {'agent_id': 'agent_1', 'conversation_id': 'conv_abc', 'full_audio': base64.b64encode(b'ID3 fake mp3').decode(),
  'conversation_initiation_client_data': {'dynamic_variables': {'account_id': '$ACC', 'user_id': '$DANA'}}}}))")
SPOOF=$(python3 -c "import json; print(json.dumps({'type': 'post_call_transcription', 'data': {'agent_id': 'a', 'conversation_id': 'conv_spoof', 'status': 'done',
  'conversation_initiation_client_data': {'dynamic_variables': {'account_id': '$ACC', 'user_id': '$DANA'}}}}))")
check "$(field "$(hook "$FAIL" "$(sign "$FAIL")")" "d['status']")/$(field "$(hook "$AUDIO" "$(sign "$AUDIO")")" "d['status']")/$(field "$(hook "$SPOOF" "$(sign "$SPOOF")")" "d['status']")/$(q -c "SELECT count(*) FROM crm.voice_calls WHERE event_type = 'post_call_audio'")" \
  "processed/ignored/ignored/0" \
  "call_initiation_failure recorded; post_call_audio ignored by default; a conversation the app never registered (its variables naming Dana's account): ignored"
check "$(q -c "SELECT failure_reason FROM crm.voice_calls WHERE conversation_id = 'conv_fail'")/$(q -c "SELECT count(*) FROM crm.voice_calls WHERE conversation_id = 'conv_spoof'")" \
  "busy/0" "... the failure's reason kept; nothing for the spoofed account"
nosecret=$(PGOPTIONS="$PGOPTIONS -c crm.elevenlabs_webhook_secret=" psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT crm.ingest_webhook('elevenlabs', '{}', '{}')" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')
olga=$(PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$OLGA\",\"account_id\":\"$OTHER\"}" psql -X -q -At -d "$DB" -c "SELECT count(*) FROM crm.voice_calls" 2>&1)
check "$nosecret/$olga" "55000/0" "no secret set: 55000; another account sees none of the calls"
r=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X POST "$GW/rest/v1/rpc/elevenlabs_webhook?apikey=$ANON_KEY" -H 'Content-Type: text/plain' --data-binary "$BODY")
check "$r/$(q -c "SELECT count(*) FROM crm.webhook_events WHERE provider = 'elevenlabs' AND payload::text LIKE '%dynamic_variables%'")" "404/0" \
  "the webhook takes application/json as ElevenLabs sends it (text/plain finds no function); stored events keep no conversation variables"
emu POST /_emulator/faults '[{"path": "/v1/checkout/sessions", "delay_ms": 5000}]' >/dev/null
q -c "UPDATE crm.invoices SET stripe_checkout_session_id = NULL, stripe_checkout_url = NULL, stripe_checkout_expires_at = NULL WHERE id = '$INV'" >/dev/null 2>&1
t0=$(date +%s%N)
st=$(PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$DANA\",\"account_id\":\"$ACC\"} -c statement_timeout=500" \
     psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT crm.mcp('{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/call\", \"params\": {\"name\": \"create_invoice_checkout\", \"arguments\": {\"invoiceId\": \"$INV\", \"x\": 1}}}')" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')
st2=$(PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$DANA\",\"account_id\":\"$ACC\"} -c statement_timeout=500" \
     psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "SELECT crm.call_tool('create_invoice_checkout', '{\"invoiceId\": \"$INV\"}')" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')
check "${st:-none}/$st2/$(( ($(date +%s%N) - t0) / 1000000 < 4000 ))" "none/57014/1" \
  "a tool whose provider hangs: statement_timeout cancels it (57014, not swallowed into a tool error) within the timeout"
check "$(q -c "SELECT 1")" "1" "the server is still up"
exit $failed
