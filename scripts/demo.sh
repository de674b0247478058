#!/usr/bin/env bash
# The walk-through: a throwaway cluster with the extension preloaded (as production would have
# it), then the extension used the way a Supabase project uses it. Every step is real SQL
# against the installed extension; the output is what Postgres answered.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=demo
PORT=${CRM_DEMO_PORT:-55435}
DB=crm_demo

# Demo webhook secrets: the ones Stripe's and Resend's dashboards would show you.
STRIPE_SECRET=whsec_demo_stripe_signing_secret
RESEND_SECRET=whsec_$(printf 'demo-resend-svix-signing-key-32b' | base64)
# The provider emulator stands in for Resend, Gmail, Microsoft Graph and the two OAuth token
# endpoints (there is no internet here, and a demo should not send real mail): the worker
# talks to it exactly as it would to api.resend.com, gmail.googleapis.com, graph.microsoft.com.
EMU_PORT=${CRM_DEMO_EMULATOR_PORT:-18030}
EMU=http://127.0.0.1:$EMU_PORT
BASE=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}
mkdir -p "$BASE" && chmod 755 "$BASE"
[ -f "$BASE/demo-emulator.pid" ] && kill "$(cat "$BASE/demo-emulator.pid")" 2>/dev/null || true
python3 tests/emulator/emulator.py "$EMU_PORT" > "$BASE/demo-emulator.log" 2>&1 &
echo $! > "$BASE/demo-emulator.pid"
bash scripts/cluster.sh start $NAME "$PORT" \
  "shared_preload_libraries = 'crm_integrations, pg_cron'" "cron.database_name = '$DB'" \
  "crm.stripe_webhook_secret = '$STRIPE_SECRET'" "crm.resend_webhook_secret = '$RESEND_SECRET'" \
  "crm.worker_database = '$DB'" "crm.resend_base_url = '$EMU'" "crm.resend_api_key = 're_demo_key'" \
  "crm.resend_verified_domain = '317plumber.com'" "crm.resend_rate_limit = 0" "crm.email_retry_base = 2" "crm.task_retry_base = 2" \
  "crm.google_calendar_base_url = '$EMU'" "crm.calendar_time_zone = 'America/Indiana/Indianapolis'" \
  "crm.gmail_base_url = '$EMU'" "crm.google_oauth_base_url = '$EMU'" "crm.google_client_id = 'demo-google-client.apps.googleusercontent.com'" \
  "crm.google_accounts_base_url = '$EMU'" "crm.google_userinfo_base_url = '$EMU'" \
  "crm.google_client_secret = 'demo-google-secret'" "crm.microsoft_graph_base_url = '$EMU'" "crm.microsoft_login_base_url = '$EMU'" \
  "crm.microsoft_client_id = 'demo-ms-client'" "crm.microsoft_client_secret = 'demo-ms-secret'" \
  "crm.gmail_rate_limit = 0" "crm.microsoft_rate_limit = 0" \
  "crm.google_maps_base_url = '$EMU'" "crm.google_routes_base_url = '$EMU'" "crm.google_maps_api_key = 'AIzaDemoKey'" \
  "crm.stripe_base_url = '$EMU'" "crm.stripe_secret_key = 'sk_test_demo'" "crm.app_base_url = 'https://app.317plumber.com'" \
  "crm.google_people_base_url = '$EMU'"
eval "$(bash scripts/cluster.sh env $NAME "$PORT")"
export PGDATABASE=$DB
DATA=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}/$NAME/data

say()  { printf '\n\033[1;34m▶ %s\033[0m\n' "$*"; }
sql()  { psql -X -v ON_ERROR_STOP=1 -P footer=off "$@"; }
# Run as an API caller: the role PostgREST switches to, with the JWT claims it sets.
# (claims must not contain spaces: PGOPTIONS splits on them)
as_api() { local role=$1 claims=$2; shift 2
  PGOPTIONS="-c role=$role -c request.jwt.claims=$claims" sql "$@"; }

say "Cluster on port $PORT, shared_preload_libraries = 'crm_integrations, pg_cron'; a random vault key in postgresql.conf"
psql -X -d postgres -q -c "CREATE DATABASE $DB"
sql -q <<'SQL'
-- Supabase has these roles; on plain Postgres we create them (README, "Roles").
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
CREATE EXTENSION pg_cron;
CREATE EXTENSION crm_integrations;
SQL
sql -c "SELECT extname, extversion FROM pg_extension WHERE extname IN ('crm_integrations', 'pg_cron') ORDER BY 1"

say "Two field-service companies share the database"
sql -q <<'SQL'
INSERT INTO crm.accounts (id, name, slug) VALUES
  ('a0000000-0000-0000-0000-000000000001', '317 Plumber', '317-plumber'),
  ('b0000000-0000-0000-0000-000000000002', 'Northside HVAC', 'northside-hvac');
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('a1000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001', 'dana@317plumber.com', 'Dana Owner', 'owner'),
  ('b1000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000002', 'lee@northside.example', 'Lee Owner', 'owner');
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, address) VALUES
  ('a2000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001', 'John', 'Smith', 'john@example.com', '12 Elm St, Indianapolis'),
  ('b2000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000002', 'Ana', 'Lopez', 'ana@example.com', '9 Oak Ave, Carmel');
INSERT INTO crm.jobs (account_id, contact_id, title, status, scheduled_start, scheduled_end, address) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'a2000000-0000-0000-0000-000000000001', 'Water heater replacement', 'scheduled',
   '2026-12-01 09:00-05', '2026-12-01 12:00-05', '12 Elm St, Indianapolis'),
  ('b0000000-0000-0000-0000-000000000002', 'b2000000-0000-0000-0000-000000000002', 'Furnace tune-up', 'scheduled',
   '2026-12-02 13:00-05', '2026-12-02 14:00-05', '9 Oak Ave, Carmel');
SQL
sql -c "SELECT a.name AS account, count(j.*) AS jobs FROM crm.accounts a LEFT JOIN crm.jobs j ON j.account_id = a.id GROUP BY 1 ORDER BY 1"

say "Dana (317 Plumber) clicks \"Connect Gmail\": the OAuth flow with PKCE, as her browser and the app's frontend run it"
# The emulator plays Google's consent screen: Dana is signed in there and accepts.
curl -s -X POST "$EMU/_emulator/oauth" -H 'Content-Type: application/json' -d '{"app": {"users": {"google": "dana@317plumber.com"}}}' >/dev/null
DANA_JWT='{"sub":"a1000000-0000-0000-0000-000000000001","account_id":"a0000000-0000-0000-0000-000000000001"}'
STARTED=$(as_api authenticated "$DANA_JWT" -XAt -c "SELECT crm.oauth_start('google', 'email', 'https://app.317plumber.com/integrations/callback')")
AUTH_URL=$(echo "$STARTED" | python3 -c "import json,sys; print(json.load(sys.stdin)['authorization_url'])")
echo "1. supabase.rpc('oauth_start', {provider: 'google', purpose: 'email', redirect_uri}) returns the consent URL:"
echo "   ${AUTH_URL:0:150}…"
REDIRECT=$(curl -s -o /dev/null -w '%{redirect_url}' "$AUTH_URL")
echo "2. Dana accepts; Google sends her browser back to:"
echo "   ${REDIRECT:0:150}…"
read -r CODE STATE <<< "$(python3 -c "import sys, urllib.parse as u; q = u.parse_qs(u.urlparse(sys.argv[1]).query); print(q['code'][0], q['state'][0])" "$REDIRECT")"
echo "3. The callback page calls supabase.rpc('oauth_complete', {state, code}): the code is exchanged (with the PKCE verifier), the address read, the tokens sealed:"
as_api authenticated "$DANA_JWT" -c "SELECT jsonb_pretty(crm.oauth_complete('$STATE', '$CODE')) AS connected"
echo "   The same state a second time (a replayed callback) is refused:"
as_api authenticated "$DANA_JWT" -c "SELECT crm.oauth_complete('$STATE', '$CODE')" 2>&1 | grep -E "ERROR|HINT" || true
# Dana's Gmail is for her own replies; the company keeps sending through Resend.
as_api authenticated "$DANA_JWT" -q -c "UPDATE crm.email_providers SET is_default = false WHERE provider_email = 'dana@317plumber.com'"
echo "Northside stored its Microsoft 365 token itself (the pre-0.4.0 way, still allowed):"
sql -q <<'SQL'
WITH p AS (SELECT 'e0000000-0000-0000-0000-000000000002'::uuid AS id)
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, is_default)
SELECT p.id, 'b0000000-0000-0000-0000-000000000002', 'microsoft', 'office@northside.example',
       crm.encrypt_token('EwB-demo-graph-token', 'email_providers:' || p.id || ':access_token'), true
FROM p;
SQL
echo "Connection health (crm.integration_status) as Dana sees it:"
as_api authenticated "$DANA_JWT" -c "SELECT kind, provider, purpose, email, state, array_length(scopes, 1) AS scopes FROM crm.integration_status()"
# Her token is aged by an hour, so that the workers' keep-alive has something to refresh.
sql -q -c "UPDATE crm.email_providers SET token_expires_at = now() - interval '1 hour' WHERE provider_email = 'dana@317plumber.com'"
sql -c "SELECT provider, provider_email, left(access_token_encrypted, 32) || '…' AS stored_ciphertext,
               crm.token_key_fingerprint(access_token_encrypted) AS key_fingerprint
        FROM crm.email_providers ORDER BY provider_email"
echo "Encrypting the same token twice gives two different ciphertexts (fresh 96-bit nonce each time):"
sql -c "SELECT crm.encrypt_token('same') = crm.encrypt_token('same') AS equal_ciphertexts"

say "Dana calls through Supabase (role authenticated, her JWT claims): she sees only 317 Plumber's rows"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001","role":"authenticated"}' \
  -c "SELECT crm.current_account_id()" \
  -c "SELECT provider, provider_email FROM crm.email_providers" \
  -c "SELECT title, status FROM crm.jobs"
echo "Writing into the other company's account is refused by row-level security:"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "INSERT INTO crm.jobs (account_id, title) VALUES ('b0000000-0000-0000-0000-000000000002', 'sneaky')" 2>&1 | grep -E "ERROR" || true
echo "She can neither read the vault key nor decrypt tokens:"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -c "SHOW crm.encryption_key" 2>&1 | grep ERROR || true
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT crm.decrypt_token(access_token_encrypted) FROM crm.email_providers" 2>&1 | grep ERROR || true
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT count(*) AS visible_key_settings FROM pg_settings WHERE name LIKE 'crm.encryption%'"

say "The server side (service_role) decrypts — and a token moved to another row does not decrypt"
as_api service_role '{}' -c "SELECT provider_email, crm.decrypt_token(access_token_encrypted, 'email_providers:' || id || ':access_token') AS access_token
                              FROM crm.email_providers ORDER BY provider_email"
sql -c "SELECT crm.decrypt_token(a.access_token_encrypted, 'email_providers:' || b.id || ':access_token')
        FROM crm.email_providers a, crm.email_providers b
        WHERE a.provider = 'gmail' AND b.provider = 'microsoft'" 2>&1 | grep ERROR || true

say "Key rotation: new key in, old key kept as previous, reload, re-encrypt, old key out"
OLD_FP=$(sql -XAtc "SELECT crm.current_key_fingerprint()")
OLD_KEY=$(runuser -u postgres -- grep -E "^crm.encryption_key = " "$DATA/postgresql.conf" | tail -1 | sed -E "s/.*= '(.*)'/\1/")
NEW_KEY=$(head -c 32 /dev/urandom | base64)
sql -q -c "ALTER SYSTEM SET crm.encryption_key = '$NEW_KEY'" -c "ALTER SYSTEM SET crm.encryption_key_previous = '$OLD_KEY'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
sql -c "SELECT '$OLD_FP' AS old_key, crm.current_key_fingerprint() AS new_key"
sql -c "SELECT crm.rotate_encryption_key() AS tokens_reencrypted"
sql -c "SELECT crm.rotate_encryption_key() AS second_run_reencrypts"
sql -q -c "ALTER SYSTEM RESET crm.encryption_key_previous" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
echo "With the old key gone from the configuration, every token still decrypts:"
sql -c "SELECT provider_email, crm.token_key_fingerprint(access_token_encrypted) AS key_fingerprint,
               crm.decrypt_token(access_token_encrypted, 'email_providers:' || id || ':access_token') AS access_token,
               crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token') AS refresh_token
        FROM crm.email_providers ORDER BY provider_email"

say "Templates: the four default templates, rendered with realistic variables"
sql -q -f bench/template_cases.sql 2>/dev/null || { sql -q -c "CREATE SCHEMA bench"; sql -q -f bench/template_cases.sql; }
OUT=${CRM_CLUSTER_BASE:-/tmp/crm_integrations}/$NAME/emails
mkdir -p "$OUT"
for name in "Welcome Email" "Job Status Update" "Invoice Notification" "Appointment Reminder"; do
  file="$OUT/$(echo "$name" | tr ' A-Z' '-a-z').html"
  sql -XAt -c "SELECT html FROM bench.template_cases c, crm.render_email_template(c.name, c.vars, NULL) WHERE c.name = '$name'" > "$file"
  printf '\n\033[1m%s\033[0m  (variables: %s)\n' "$name" "$(sql -XAt -c "SELECT array_to_string(variables, ', ') FROM crm.email_templates WHERE account_id IS NULL AND name = '$name'")"
  sql -XAt -c "SELECT 'Subject: ' || subject || E'\n' || E'\n' || text FROM bench.template_cases c, crm.render_email_template(c.name, c.vars, NULL) WHERE c.name = '$name'"
  echo "  → HTML ($(wc -c < "$file") bytes) saved to $file"
done
echo
echo "317 Plumber overrides the global Welcome Email with its own; Northside still gets the default:"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -q \
  -c "SELECT crm.create_email_template('Welcome Email', 'Welcome to 317 Plumber, {{firstName}}!', '<p>Hi {{firstName}}, your plumber is one call away: {{phone}}</p>') IS NOT NULL AS created"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -c "SELECT subject, text FROM crm.render_email_template('Welcome Email', '{\"firstName\":\"John\",\"phone\":\"317-555-0100\"}')"
as_api authenticated '{"sub":"b1000000-0000-0000-0000-000000000002"}' -c "SELECT subject FROM crm.render_email_template('Welcome Email', '{\"firstName\":\"Ana\"}')"
echo "A broken template is refused with its position, and escaping keeps markup out of HTML:"
sql -c "SELECT crm.create_email_template('Broken', 'Hi', '<p>{{#if paid}}Paid</p>')" 2>&1 | grep ERROR || true
sql -c "SELECT crm.render_template('<p>{{name}}</p>', '{\"name\": \"<script>alert(1)</script>\"}') AS escaped"

say "Email delivery: the background worker sends what is queued, at commit"
# The worker started with the server, before this database existed; the postmaster restarts
# it every 5 s until it can connect.
for _ in $(seq 150); do [ -n "$(sql -XAt -c "SELECT crm.email_worker_pid()")" ] && break; sleep 0.1; done
echo "The worker (crm.worker_database = $DB) is running: pid $(sql -XAt -c "SELECT crm.email_worker_pid()"); Resend is the emulator at $EMU."
emu_requests() { curl -s "$EMU/_emulator/requests" | python3 -c "
import json, sys
for r in json.load(sys.stdin)[${1:-0}:]:
    b = r['body'] if isinstance(r['body'], dict) else {}
    what = (f\"{len(r['body'])} emails to {[e['to'][0] for e in r['body']]}\" if isinstance(r['body'], list)
            else f\"to={b.get('to')}  subject={b.get('subject')!r}\")
    print(f\"  {r['path']:8} Idempotency-Key {r['headers'].get('idempotency-key', '-')[:8]}…  {what}\"
          + ('  (replayed)' if r.get('replayed') else '') + (f\"  -> {r['response'].get('statusCode', 200)}\" if r.get('response') else ''))"; }
echo "Queue a welcome email (template), a reminder scheduled 3 s from now, and a batch of three:"
sql -XAt -c "SELECT 'welcome   ' || crm.enqueue_email(jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001',
  'to', 'John Smith <john@example.com>', 'template', 'Welcome Email',
  'variables', jsonb_build_object('firstName', 'John', 'loginUrl', 'https://app.crm-ai-pro.com/login', 'companyName', '317 Plumber')))"
sql -XAt -c "SELECT 'reminder  ' || crm.enqueue_email(jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001',
  'to', 'john@example.com', 'template', 'Appointment Reminder',
  'scheduled_at', to_char((clock_timestamp() + interval '3 s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
  'variables', jsonb_build_object('scheduledAt', '2026-12-01T14:00:00Z', 'address', '12 Elm St, Indianapolis',
                                  'rescheduleUrl', 'https://app.crm-ai-pro.com/reschedule/apt-456', '_timezone', 'America/Indiana/Indianapolis')))"
sql -XAt -c "SELECT 'batch     ' || id FROM crm.enqueue_batch(jsonb_build_array(
  jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001', 'to', 'office@317plumber.com', 'template', 'Job Status Update',
    'variables', jsonb_build_object('job', jsonb_build_object('title', 'Water heater replacement'), 'status', 'scheduled', 'eta', '2026-12-01T14:00:00Z')),
  jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001', 'to', 'ana@example.com', 'subject', 'Your furnace tune-up', 'text', 'See you Tuesday.'),
  jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001', 'to', 'no-such-user@example.com', 'subject', 'Hello', 'text', 'Hi.'))) AS id"
sql -q -c "SELECT pg_sleep(0.5)"
echo "Half a second later, the emulator has received (the reminder is not due yet):"
emu_requests 0
sql -c "SELECT recipient_email, subject, status, round(extract(epoch FROM sent_at - created_at) * 1000) AS ms_to_send FROM crm.email_queue ORDER BY created_at"
echo
echo "Resend goes down (two 503s). An invoice email is retried with backoff (crm.email_retry_base = 2 s here; 5 min by default):"
curl -s -X POST "$EMU/_emulator/faults" -H 'Content-Type: application/json' -d '{"path": "/emails", "status": 503, "count": 2}' >/dev/null
INV_MAIL=$(sql -XAt -c "SELECT crm.enqueue_email(jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001', 'to', 'john@example.com',
  'template', 'Invoice Notification', 'idempotency_key', 'invoice-INV-1042',
  'variables', jsonb_build_object('invoiceNumber', 'INV-1042', 'amount', 123456, 'currency', 'usd', 'dueDate', '2026-12-15', 'payUrl', 'https://pay.example/i/1042')))")
sql -q -c "SELECT pg_sleep(0.3)"
sql -c "SELECT status, attempts, last_error, round(extract(epoch FROM next_attempt_at - now())) AS retry_in_s FROM crm.email_queue WHERE id = '$INV_MAIL'"
sql -q -c "SELECT pg_sleep(7)"
sql -c "SELECT status, attempts, last_error FROM crm.email_queue WHERE id = '$INV_MAIL'"
echo "Queueing it again with the same idempotency key returns the same row: $(sql -XAt -c "SELECT crm.enqueue_email(jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001', 'to', 'john@example.com', 'template', 'Invoice Notification', 'idempotency_key', 'invoice-INV-1042')) = '$INV_MAIL'")"
echo "Everything the emulator received, in order:"
emu_requests 0
echo
echo "Dana replies to John from her own Gmail (provider gmail, a thread). Her access token was aged to have expired an"
echo "hour ago; the workers' keep-alive (crm.schedule_token_refreshes, every 30 s) has already refreshed it:"
sql -c "SELECT kind, status, attempts, result FROM crm.integration_tasks WHERE kind = 'oauth.refresh' ORDER BY created_at"
echo "so the send goes straight to users.messages.send:"
curl -s -X POST "$EMU/_emulator/oauth" -H 'Content-Type: application/json' \
  -d '{"refresh_tokens": {"1//0demo-refresh-token": "google"}, "access_tokens": {"EwB-demo-graph-token": "microsoft"}}' >/dev/null
SEEN=$(curl -s "$EMU/_emulator/requests" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
sql -XAt -c "SELECT 'gmail     ' || crm.enqueue_email(jsonb_build_object('account_id', 'a0000000-0000-0000-0000-000000000001',
  'provider', 'gmail', 'to', 'john@example.com', 'to_name', 'John Smith', 'subject', 'Re: Water heater – see you Tuesday ✓',
  'text', 'Hi John, the new heater is in the van. Dana', 'headers', jsonb_build_object('In-Reply-To', '<CAJohn1@mail.gmail.com>',
  'References', '<CAJohn1@mail.gmail.com>'), 'metadata', jsonb_build_object('thread_id', '18c2f0a1b2c3d4e5')))"
echo "Northside's default connection is Microsoft 365, so its email goes through Graph /me/sendMail:"
sql -XAt -c "SELECT 'microsoft ' || crm.enqueue_email(jsonb_build_object('account_id', 'b0000000-0000-0000-0000-000000000002',
  'to', 'ana@example.com', 'subject', 'Your furnace tune-up estimate', 'html', '<p>Hi Ana, the estimate is attached.</p>',
  'attachments', jsonb_build_array(jsonb_build_object('filename', 'estimate.pdf', 'content_base64', 'JVBERi0xLjQK', 'content_type', 'application/pdf'))))"
sql -q -c "SELECT pg_sleep(0.5)" >/dev/null
curl -s "$EMU/_emulator/requests" > "$OUT/requests.json"
python3 - "$OUT/requests.json" "$SEEN" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))[int(sys.argv[2]):]:
    if r['path'].endswith('/token'):
        print(f"  POST {r['path']}  grant_type={r['body']['grant_type'][0]}  -> access_token {r['response']['access_token'][:14]}…, expires_in {r['response']['expires_in']}")
    elif 'gmail' in r['path']:
        h = dict(r['mime']['headers'])
        print(f"  POST {r['path']}  threadId={r['body'].get('threadId')}  -> id {r['response']['id']}")
        for k in ('From', 'To', 'Subject', 'Message-ID', 'In-Reply-To'):
            print(f"      {k}: {h.get(k)}")
    else:
        m = r['body']['message']
        print(f"  POST {r['path']}  to={[x['emailAddress']['address'] for x in m['toRecipients']]}  subject={m['subject']!r}"
              f"  attachments={[a['name'] for a in m.get('attachments', [])]}  -> 202")
PY
echo "The refreshed Gmail token is stored encrypted, with its new expiry:"
sql -c "SELECT provider_email, is_active, round(extract(epoch FROM token_expires_at - now()) / 60) AS expires_in_min,
               left(access_token_encrypted, 24) || '…' AS stored_ciphertext FROM crm.email_providers ORDER BY provider_email"
echo "Final queue state (crm.list_email_queue):"
sql -c "SELECT recipient_email, left(subject, 50) AS subject, provider, status, attempts, scheduled_at IS NOT NULL AS scheduled, sent_at IS NOT NULL AS sent FROM crm.list_email_queue() ORDER BY created_at"

say "The integration runtime: a task queue the same workers serve, in turns with the email queue"
echo "Registered task kinds (each implemented next to its integration, in Rust):"
sql -c "SELECT kind, description, max_attempts FROM crm.integration_task_kinds()"
echo "A calendar-style reschedule, five times before the worker runs: enqueue_task coalesces on dedupe_key (latest payload wins):"
sql -XAt -c "SELECT crm.enqueue_task('noop', jsonb_build_object('reschedule', v), 'job-1042', now() + interval '2 s',
                                     'a0000000-0000-0000-0000-000000000001') FROM generate_series(1, 5) v" | sort | uniq -c
sql -c "SELECT kind, dedupe_key, payload, coalesced, status FROM crm.integration_tasks WHERE dedupe_key = 'job-1042'"
sql -q -c "SELECT pg_sleep(2.5)" >/dev/null
sql -c "SELECT kind, status, attempts, result, round(extract(epoch FROM completed_at - next_attempt_at) * 1000) AS ms_late FROM crm.integration_tasks WHERE dedupe_key = 'job-1042'"
echo "Keep Dana's Gmail connection alive: an oauth.refresh task. Google's token endpoint answers 429 (Retry-After: 3) once:"
curl -s -X POST "$EMU/_emulator/faults" -H 'Content-Type: application/json' -d '{"path": "/token", "status": 429, "retry_after": "3"}' >/dev/null
DANA_CONN=$(sql -XAt -c "SELECT id FROM crm.email_providers WHERE provider_email = 'dana@317plumber.com'")
TASK=$(sql -XAt -c "SELECT crm.enqueue_task('oauth.refresh', jsonb_build_object('connection_id', '$DANA_CONN'), NULL, now(), 'a0000000-0000-0000-0000-000000000001')")
sql -q -c "SELECT pg_sleep(0.5)" >/dev/null
sql -c "SELECT kind, status, attempts, left(last_error, 60) AS last_error, round(extract(epoch FROM next_attempt_at - now())) AS retry_in_s FROM crm.integration_tasks WHERE id = '$TASK'"
sql -q -c "SELECT pg_sleep(3.5)" >/dev/null
sql -c "SELECT kind, status, attempts, result FROM crm.integration_tasks WHERE id = '$TASK'"
echo "Pacing is one limiter for the whole server, in shared memory: $(sql -XAt -c "SELECT crm.rate_limiter_is_shared()")"
echo "A tenant sees its own tasks, and cannot queue any (the server side does):"
as_api authenticated '{"account_id":"b0000000-0000-0000-0000-000000000002"}' -c "SELECT count(*) AS northside_sees FROM crm.list_integration_tasks()"
as_api authenticated '{"account_id":"a0000000-0000-0000-0000-000000000001"}' -c "SELECT crm.enqueue_task('noop')" 2>&1 | grep ERROR || true

say "Google Calendar: a scheduled job becomes an event on the technician's calendar, after the commit"
# Dana connected her Google Calendar too (stored directly here, the way the connect flow stores it).
curl -s -X POST "$EMU/_emulator/oauth" -H 'Content-Type: application/json' -d '{"access_tokens": {"ya29.demo-calendar": "google"}}' >/dev/null
sql -q <<'SQL'
WITH p AS (SELECT 'c0000000-0000-0000-0000-0000000ca1e0'::uuid AS id)
INSERT INTO crm.calendar_providers (id, account_id, user_id, provider, provider_email, access_token_encrypted, token_expires_at, is_default)
SELECT p.id, 'a0000000-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-000000000001', 'google', 'dana@317plumber.com',
       crm.encrypt_token('ya29.demo-calendar', 'calendar_providers:' || p.id || ':access_token'), now() + interval '1 hour', true
FROM p;
SQL
CAL_SEEN=$(curl -s "$EMU/_emulator/requests" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
echo "Dana schedules a furnace tune-up for herself and moves it twice, in one transaction (the worker only sees the commit):"
CAL_JOB=$(as_api authenticated '{"account_id":"a0000000-0000-0000-0000-000000000001"}' -XAt <<'SQL' | grep -E '^[0-9a-f-]{36}$'
BEGIN;
INSERT INTO crm.jobs (id, account_id, assigned_to, title, status, scheduled_start, scheduled_end, address)
VALUES ('f0000000-0000-0000-0000-0000000f0001', 'a0000000-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-000000000001',
        'Furnace tune-up', 'scheduled', '2026-12-08 15:00+00', '2026-12-08 16:00+00', '88 Oak Ave, Carmel') RETURNING id;
UPDATE crm.jobs SET scheduled_start = '2026-12-08 16:00+00', scheduled_end = '2026-12-08 17:00+00' WHERE id = 'f0000000-0000-0000-0000-0000000f0001';
UPDATE crm.jobs SET scheduled_start = '2026-12-08 17:00+00', scheduled_end = '2026-12-08 18:00+00' WHERE id = 'f0000000-0000-0000-0000-0000000f0001';
COMMIT;
SQL
)
sql -q -c "SELECT pg_sleep(0.5)" >/dev/null
echo "One task (two reschedules coalesced into it), one Calendar request with the final time:"
sql -c "SELECT kind, status, coalesced, result ->> 'action' AS action FROM crm.integration_tasks WHERE kind = 'calendar.sync_job'"
curl -s "$EMU/_emulator/requests" | python3 -c "
import json, sys
for r in json.load(sys.stdin)[$CAL_SEEN:]:
    if r['path'].startswith('/calendar/'):
        b = r['body']
        print(f\"  {r['method']} {r['path']}\")
        print(f\"      id={b.get('id', r['path'].rsplit('/', 1)[-1])}  summary={b['summary']!r}  location={b.get('location')!r}\")
        print(f\"      start={b['start']['dateTime']} ({b['start']['timeZone']})  end={b['end']['dateTime']}\")"
sql -c "SELECT event_id, generation, calendar_id FROM crm.calendar_events WHERE job_id = '$CAL_JOB'"
echo "Dana drags the event to 10:00 in Google Calendar; the next sync (crm.sync_calendar(), or the workers every 5 min) brings it back:"
EVENT_ID=$(sql -XAt -c "SELECT event_id FROM crm.calendar_events WHERE job_id = '$CAL_JOB'")
curl -s -X PATCH -H 'Authorization: Bearer ya29.demo-calendar' -H 'Content-Type: application/json' \
  "$EMU/calendar/v3/calendars/primary/events/$EVENT_ID" \
  -d '{"start": {"dateTime": "2026-12-08T10:00:00-05:00"}, "end": {"dateTime": "2026-12-08T11:00:00-05:00"}}' >/dev/null
as_api authenticated '{"account_id":"a0000000-0000-0000-0000-000000000001"}' -q -XAt -c "SELECT crm.sync_calendar()" >/dev/null
sql -q -c "SELECT pg_sleep(0.5)" >/dev/null
sql -c "SELECT title, scheduled_start AT TIME ZONE 'America/Indiana/Indianapolis' AS starts_local, calendar_sync_state FROM crm.jobs WHERE id = '$CAL_JOB'"
echo "(and nothing was sent back to Google for it: $(sql -XAt -c "SELECT count(*) FROM crm.integration_tasks WHERE kind = 'calendar.sync_job' AND payload ->> 'job_id' = '$CAL_JOB'") sync_job task in all)"

say "Webhooks: Stripe pays an invoice, Resend reports what happened to the emails"
sql -q -c "CREATE EXTENSION pgcrypto"   # only to sign the demo's webhooks the way Stripe and Svix do
sql -q <<'SQL'
INSERT INTO crm.invoices (id, account_id, job_id, contact_id, invoice_number, amount, currency, status, due_date)
SELECT 'a3000000-0000-0000-0000-000000000001', account_id, id, contact_id, 'INV-1042', 123456, 'usd', 'sent', '2026-12-15'
FROM crm.jobs WHERE title = 'Water heater replacement';
UPDATE crm.jobs SET status = 'completed' WHERE title = 'Water heater replacement';
SQL
sql -q <<'SQL'
INSERT INTO crm.invoice_items (account_id, invoice_id, position, description, quantity, unit_amount) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'a3000000-0000-0000-0000-000000000001', 1, 'Water heater, 50 gal, gas', 1, 89900),
  ('a0000000-0000-0000-0000-000000000001', 'a3000000-0000-0000-0000-000000000001', 2, 'Labour (hours)', 2.5, 9500),
  ('a0000000-0000-0000-0000-000000000001', 'a3000000-0000-0000-0000-000000000001', 3, 'Expansion tank', 1, 6500),
  ('a0000000-0000-0000-0000-000000000001', 'a3000000-0000-0000-0000-000000000001', 4, 'Disposal of the old heater', 1, 3306);
SQL
sql -c "SELECT i.invoice_number, i.status AS invoice, j.status AS job FROM crm.invoices i JOIN crm.jobs j ON j.id = i.job_id"
echo "Dana asks for a pay link (crm.create_invoice_checkout, as herself): a Stripe Checkout Session, idempotent per invoice and amount:"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -c "SELECT crm.create_invoice_checkout('a3000000-0000-0000-0000-000000000001') AS checkout"
echo "Clicking again returns the same session (no second request): $(as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -XAt -c "SELECT crm.create_invoice_checkout('a3000000-0000-0000-0000-000000000001') ->> 'session_id'")"
echo "The invoice PDF (crm.invoice_pdf), saved as $OUT/INV-1042.pdf:"
sql -XAt -c "SELECT encode(crm.invoice_pdf('a3000000-0000-0000-0000-000000000001'), 'base64')" | base64 -d > "$OUT/INV-1042.pdf"
if command -v pdftotext >/dev/null; then
  pdfinfo "$OUT/INV-1042.pdf" | grep -E '^(Pages|Page size)'; echo "  $(stat -c %s "$OUT/INV-1042.pdf") bytes; its text:"
  pdftotext -layout "$OUT/INV-1042.pdf" - | sed '/^\s*$/d; s/^/    /' | head -30
  pdftoppm -png -r 60 -singlefile "$OUT/INV-1042.pdf" "$OUT/INV-1042" && echo "  (as a picture: $OUT/INV-1042.png)"
fi
SESSION=$(sql -XAt -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE invoice_number = 'INV-1042'")
STRIPE_BODY='{"id":"evt_demo_1","object":"event","type":"checkout.session.completed","created":1764000000,"data":{"object":{"id":"'$SESSION'","object":"checkout.session","payment_status":"paid","payment_intent":"pi_demo_1","amount_total":123456,"currency":"usd","metadata":{"invoice_id":"a3000000-0000-0000-0000-000000000001"}}}}'
TS=$(date +%s)
SIG=$(printf '%s' "$TS.$STRIPE_BODY" | openssl dgst -sha256 -hmac "$STRIPE_SECRET" -r | cut -d' ' -f1)
echo "John pays on the Checkout page; Stripe POSTs checkout.session.completed to /rest/v1/rpc/stripe_webhook (Stripe-Signature: t=$TS,v1=${SIG:0:16}…)."
echo "PostgREST, as anon, calls crm.stripe_webhook(raw body) with the headers in request.headers:"
cat > "$OUT/stripe.sql" <<SQL
SET ROLE anon;
SELECT set_config('request.headers', json_build_object('stripe-signature', 't=$TS,v1=$SIG')::text, false) IS NOT NULL AS headers_set \\gset
SELECT crm.stripe_webhook(\$body\$$STRIPE_BODY\$body\$) AS response;
SQL
sql -f "$OUT/stripe.sql"
echo "Stripe retries (the same event): nothing happens twice."
sql -f "$OUT/stripe.sql"
STRIPE_BODY='{"id":"evt_demo_2","object":"event","type":"payment_intent.succeeded","created":1764000001,"data":{"object":{"id":"pi_demo_1","object":"payment_intent","amount":123456,"amount_received":123456,"currency":"usd","metadata":{"invoice_id":"a3000000-0000-0000-0000-000000000001"}}}}'
TS=$(date +%s)
SIG=$(printf '%s' "$TS.$STRIPE_BODY" | openssl dgst -sha256 -hmac "$STRIPE_SECRET" -r | cut -d' ' -f1)
echo "Stripe also sends payment_intent.succeeded for the same payment: applied to the same payment row, not counted twice."
cat > "$OUT/stripe2.sql" <<SQL
SET ROLE anon;
SELECT set_config('request.headers', json_build_object('stripe-signature', 't=$TS,v1=$SIG')::text, false) IS NOT NULL AS headers_set \\gset
SELECT crm.stripe_webhook(\$body\$$STRIPE_BODY\$body\$) AS response;
SQL
sql -f "$OUT/stripe2.sql"
sql -c "SELECT i.invoice_number, i.status AS invoice, i.paid_at IS NOT NULL AS paid_at_set, j.status AS job, p.amount, p.currency, p.status AS payment
        FROM crm.invoices i JOIN crm.jobs j ON j.id = i.job_id JOIN crm.payments p ON p.invoice_id = i.id"
echo "A forged request (signed with another secret) is refused, and nothing is written:"
sql -c "SELECT crm.ingest_webhook('stripe', jsonb_build_object('Stripe-Signature', 't=$TS,v1=' || encode(hmac('$TS.{}', 'whsec_guess', 'sha256'), 'hex')), '{}')" 2>&1 | grep ERROR || true

echo
echo "Resend's events for the emails the worker sent (matched on the provider message ids it recorded):"
MSG_JOHN=$(sql -XAt -c "SELECT metadata->>'provider_message_id' FROM crm.email_queue WHERE recipient_email = 'john@example.com' AND status = 'sent' ORDER BY created_at LIMIT 1")
MSG_ANA=$(sql -XAt -c "SELECT metadata->>'provider_message_id' FROM crm.email_queue WHERE recipient_email = 'ana@example.com' AND status = 'sent' LIMIT 1")
MSG_BAD=$(sql -XAt -c "SELECT metadata->>'provider_message_id' FROM crm.email_queue WHERE recipient_email = 'no-such-user@example.com' AND status = 'sent' LIMIT 1")
send_resend() { # id type email_id recipient extra-json
  local body="{\"type\":\"$2\",\"created_at\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\",\"data\":{\"email_id\":\"$3\",\"to\":[\"$4\"],\"subject\":\"Invoice INV-1042\"$5}}"
  local ts; ts=$(date +%s)
  local key; key=$(printf '%s' "${RESEND_SECRET#whsec_}" | base64 -d | xxd -p -c 256)
  local sig; sig=$(printf '%s' "$1.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)
  sql -XAt -c "SELECT '$2 → ' || (crm.ingest_webhook('resend', '{\"svix-id\":\"$1\",\"svix-timestamp\":\"$ts\",\"svix-signature\":\"v1,$sig\"}', \$b\$$body\$b\$) ->> 'status')"
}
send_resend msg_d1 email.sent "$MSG_JOHN" john@example.com ""
send_resend msg_d2 email.sent "$MSG_ANA" ana@example.com ""
send_resend msg_d3 email.sent "$MSG_BAD" no-such-user@example.com ""
send_resend msg_d4 email.delivered "$MSG_JOHN" john@example.com ""
send_resend msg_d5 email.delivered "$MSG_ANA" ana@example.com ""
send_resend msg_d6 email.bounced "$MSG_BAD" no-such-user@example.com ',"bounce":{"type":"Permanent","message":"550 no such user"}'
send_resend msg_d7 email.opened "$MSG_JOHN" john@example.com ""
send_resend msg_d8 email.clicked "$MSG_JOHN" john@example.com ',"click":{"link":"https://app.crm-ai-pro.com/login","ipAddress":"203.0.113.7","userAgent":"Mozilla/5.0"}'
send_resend msg_d8 email.clicked "$MSG_JOHN" john@example.com ',"click":{"link":"https://app.crm-ai-pro.com/login","ipAddress":"203.0.113.7","userAgent":"Mozilla/5.0"}'
echo "A new email to the bounced address is now refused:"
sql -c "SELECT crm.enqueue_email('{\"account_id\": \"a0000000-0000-0000-0000-000000000001\", \"to\": \"no-such-user@example.com\", \"subject\": \"Hello again\", \"text\": \"…\"}')" 2>&1 | grep ERROR || true
echo
echo "317 Plumber's email report for today, and per template (as Dana, through RLS):"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT period_start::date AS day, sent, delivered, opened, clicked, bounced, delivery_rate, open_rate, click_rate, bounce_rate
      FROM crm.get_email_analytics(date_trunc('day', now()), date_trunc('day', now()) + interval '1 day')" \
  -c "SELECT template_name, sent, delivery_rate, open_rate, click_rate FROM crm.get_template_performance(now() - interval '1 day', now() + interval '1 day')" \
  -c "SELECT sent_7d, delivered_7d, delivery_rate_7d, below_target FROM crm.email_delivery_health" \
  -c "SELECT email, reason FROM crm.email_suppressions"

say "Google Maps: jobs geocoded in the background, technicians' positions, a dispatch suggestion, a planned day"
sql -q <<'SQL'
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('a1000000-0000-0000-0000-0000000000c1', 'a0000000-0000-0000-0000-000000000001', 'marco@317plumber.com', 'Marco Tech', 'tech'),
  ('a1000000-0000-0000-0000-0000000000c2', 'a0000000-0000-0000-0000-000000000001', 'priya@317plumber.com', 'Priya Tech', 'tech');
INSERT INTO crm.jobs (account_id, title, status, scheduled_start, scheduled_end, address, assigned_to) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'Leak under sink', 'scheduled', now() + interval '2 hours', now() + interval '3 hours',
   '200 W Washington St, Indianapolis', NULL),
  ('a0000000-0000-0000-0000-000000000001', 'Drain cleaning', 'scheduled', (current_date + 1) + time '13:00', (current_date + 1) + time '17:00',
   '8702 Keystone Crossing, Indianapolis', 'a1000000-0000-0000-0000-0000000000c1'),
  ('a0000000-0000-0000-0000-000000000001', 'Sump pump install', 'scheduled', (current_date + 1) + time '13:00', (current_date + 1) + time '17:00',
   '1 Lucas Oil Stadium Dr, Indianapolis', 'a1000000-0000-0000-0000-0000000000c1'),
  ('a0000000-0000-0000-0000-000000000001', 'Faucet repair', 'scheduled', (current_date + 1) + time '13:30', (current_date + 1) + time '17:00',
   '6101 N Keystone Ave, Indianapolis', 'a1000000-0000-0000-0000-0000000000c1'),
  ('a0000000-0000-0000-0000-000000000001', 'Toilet replacement', 'scheduled', (current_date + 1) + time '14:00', (current_date + 1) + time '17:30',
   '200 w. Washington St., Indianapolis', 'a1000000-0000-0000-0000-0000000000c1');
SQL
sql -q -c "SELECT pg_sleep(1)" >/dev/null
echo "Inserting jobs queued one maps.geocode task per distinct address (\"200 w. Washington St.\" shares one); the workers geocoded them:"
sql -c "SELECT title, address, round(latitude::numeric, 4) AS lat, round(longitude::numeric, 4) AS lng, geocode_status FROM crm.jobs
        WHERE account_id = 'a0000000-0000-0000-0000-000000000001' ORDER BY scheduled_start"
echo "Geocoding requests the emulator received: $(curl -s "$EMU/_emulator/requests" | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if r['path'] == '/maps/api/geocode/json'))")"
echo "Marco and Priya's phones report where they are (crm.report_location, as themselves):"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-0000000000c1"}' -q -XAt -c "SELECT crm.report_location(39.8119, -86.1567, 12)" >/dev/null
as_api authenticated '{"sub":"a1000000-0000-0000-0000-0000000000c2"}' -q -XAt -c "SELECT crm.report_location(39.7690, -86.1580, 8)" >/dev/null
sql -c "SELECT u.full_name, round(p.latitude::numeric, 4) AS lat, round(p.longitude::numeric, 4) AS lng, p.accuracy_m FROM crm.technician_positions p JOIN crm.users u ON u.id = p.user_id ORDER BY 1"
echo "Dana asks who should take \"Leak under sink\" (crm.suggest_technicians: free first, then by driving time via the Routes API):"
LEAK=$(sql -XAt -c "SELECT id FROM crm.jobs WHERE title = 'Leak under sink'")
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT rank, full_name, available, round(duration_s / 60) AS minutes, source, reason FROM crm.suggest_technicians('$LEAK')"
echo "Marco's day tomorrow, ordered for the least driving within each job's arrival window (crm.plan_route):"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT stop, title, to_char(arrive_at AT TIME ZONE 'UTC', 'HH24:MI') AS arrive, round(travel_seconds / 60) AS drive_min,
             to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI') || '-' || to_char(window_end AT TIME ZONE 'UTC', 'HH24:MI') AS window_utc, late, exact
      FROM crm.plan_route('a1000000-0000-0000-0000-0000000000c1', current_date + 1)"
echo "What it cost (crm.maps_usage, at list price):"
sql -c "SELECT a.name AS account, u.api, u.requests, u.elements, u.cost_usd FROM crm.maps_usage u LEFT JOIN crm.accounts a ON a.id = u.account_id ORDER BY 1, 2"

say "Contacts: Dana's Google address book comes in; a person already in the CRM is linked, not copied"
# Dana connected her Google contacts (stored directly here, the way the connect flow stores it).
curl -s -X POST "$EMU/_emulator/oauth" -H 'Content-Type: application/json' \
  -d '{"access_tokens": {"ya29.demo-contacts": "google"}, "owners": {"ya29.demo-contacts": "dana@317plumber.com"}}' >/dev/null
curl -s -X POST "$EMU/_emulator/contacts" -H 'Content-Type: application/json' -d '{"provider": "google", "owner": "dana@317plumber.com", "upsert": [
  {"resourceName": "people/c101", "etag": "%E1", "names": [{"givenName": "John", "familyName": "Smith"}],
   "emailAddresses": [{"value": "JOHN@example.com"}], "phoneNumbers": [{"value": "(317) 232-4567", "canonicalForm": "+13172324567"}]},
  {"resourceName": "people/c102", "etag": "%E1", "names": [{"givenName": "Maria", "familyName": "Garcia"}],
   "emailAddresses": [{"value": "maria.garcia@gmail.com"}], "addresses": [{"formattedValue": "40 Pine St\nFishers, IN 46038"}]},
  {"resourceName": "people/c103", "etag": "%E1", "names": [{"givenName": "Ken", "familyName": "Lee"}],
   "phoneNumbers": [{"value": "+1 317-555-0142"}], "organizations": [{"name": "Lee Properties"}]}]}' >/dev/null
sql -q <<'SQL'
WITH p AS (SELECT 'c0000000-0000-0000-0000-00000000c0c0'::uuid AS id)
INSERT INTO crm.contact_providers (id, account_id, user_id, provider, provider_email, access_token_encrypted, token_expires_at, scopes)
SELECT p.id, 'a0000000-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-000000000001', 'google', 'dana@317plumber.com',
       crm.encrypt_token('ya29.demo-contacts', 'contact_providers:' || p.id || ':access_token'), now() + interval '1 hour',
       ARRAY['https://www.googleapis.com/auth/contacts']
FROM p;
SQL
SYNC_TASK=$(as_api authenticated "$DANA_JWT" -XAt -c "SELECT crm.sync_contacts()")
echo "supabase.rpc('sync_contacts') queued task $SYNC_TASK; the worker reads people/me/connections (with a sync token for next time):"
for _ in $(seq 100); do [ "$(sql -XAt -c "SELECT status FROM crm.integration_tasks WHERE id = '$SYNC_TASK'")" = done ] && break; sleep 0.1; done
sql -c "SELECT s.external_id, c.first_name || ' ' || coalesce(c.last_name, '') AS contact, c.email, c.phone,
               CASE WHEN s.created_contact_id IS NULL THEN 'linked to an existing contact' ELSE 'created' END AS how
        FROM crm.contact_sources s JOIN crm.contacts c ON c.id = s.contact_id ORDER BY s.external_id" \
    -c "SELECT last_result FROM crm.contact_sync"

say "Drafts: Dana drafts a reply in her own Gmail (crm.create_draft), to finish and send from there"
as_api authenticated "$DANA_JWT" -c "SELECT jsonb_pretty(crm.create_draft('{\"to\": \"maria.garcia@gmail.com\", \"subject\": \"Re: leaking faucet\", \"text\": \"Hi Maria, we can come Tuesday morning.\", \"metadata\": {\"thread_id\": \"18c2f0a1b2c3d4e5\"}}')) AS draft"
curl -s "$EMU/_emulator/requests" | python3 -c "
import json, sys
r = [r for r in json.load(sys.stdin) if r['path'] == '/gmail/v1/users/me/drafts'][-1]
print('  the emulator received POST', r['path'], 'threadId', r['body']['message']['threadId'], 'with', dict(r['mime']['headers']).get('Subject'))"

say "Contacts: a duplicate found, merged, and the merge undone exactly"
sql -q <<'SQL'
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, phone) VALUES
  ('a2000000-0000-0000-0000-0000000000d1', 'a0000000-0000-0000-0000-000000000001', 'Johnny', NULL, 'John.Smith+home@example.com', '(317) 232-4567'),
  ('a2000000-0000-0000-0000-0000000000d2', 'a0000000-0000-0000-0000-000000000001', 'J.', 'Smith', 'johnsmith@gmail.com', '+1 317.232.4567');
UPDATE crm.contacts SET phone = '317-232-4567' WHERE id = 'a2000000-0000-0000-0000-000000000001';
INSERT INTO crm.jobs (account_id, contact_id, title, status) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'a2000000-0000-0000-0000-0000000000d2', 'Garbage disposal', 'lead');
SQL
echo "Dana asks for duplicates (crm.find_duplicate_contacts): the same phone written three ways is one E.164 number:"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' \
  -c "SELECT c1.first_name || ' ' || coalesce(c1.last_name, '') AS contact, c2.first_name || ' ' || coalesce(c2.last_name, '') AS duplicate, d.reason, d.auto
      FROM crm.find_duplicate_contacts() d JOIN crm.contacts c1 ON c1.id = d.contact_id JOIN crm.contacts c2 ON c2.id = d.duplicate_id"
MERGE_ID=$(as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -XAt -c "SELECT crm.merge_contacts('a2000000-0000-0000-0000-000000000001', 'a2000000-0000-0000-0000-0000000000d2')")
echo "She merges \"J. Smith\" into John Smith (crm.merge_contacts): his job moves over, the differing email and name are kept aside (the phone is the same number):"
sql -c "SELECT first_name, last_name, email, phone FROM crm.contacts WHERE id = 'a2000000-0000-0000-0000-000000000001'" \
    -c "SELECT title, contact_id = 'a2000000-0000-0000-0000-000000000001' AS on_john FROM crm.jobs WHERE title = 'Garbage disposal'" \
    -c "SELECT filled, conflicts, moved FROM crm.contact_merges WHERE id = '$MERGE_ID'"
as_api authenticated '{"sub":"a1000000-0000-0000-0000-000000000001"}' -q -XAt -c "SELECT crm.unmerge_contacts('$MERGE_ID')" >/dev/null
echo "Then thinks better of it (crm.unmerge_contacts): both contacts and the job are back as they were:"
sql -c "SELECT first_name, last_name, email, phone FROM crm.contacts WHERE id IN ('a2000000-0000-0000-0000-000000000001', 'a2000000-0000-0000-0000-0000000000d2') ORDER BY id" \
    -c "SELECT title, contact_id = 'a2000000-0000-0000-0000-0000000000d2' AS on_j_smith FROM crm.jobs WHERE title = 'Garbage disposal'"

say "Voice agent: an ElevenLabs agent talks to the CRM over MCP (PostgREST's /rest/v1/rpc/mcp), as Dana"
# PostgREST is not installable here: tests/gateway/postgrest.py stands in for it (JWT -> role and
# claims, the body as the function's argument), with the official MCP Python SDK as the client.
VENV=${CRM_VENV:-/opt/crm_integrations/venv}
GW_PORT=${CRM_DEMO_GATEWAY_PORT:-18031}
JWT_SECRET=demo-jwt-secret-of-at-least-32-characters
"$VENV/bin/python" tests/gateway/postgrest.py serve "$GW_PORT" --dsn "dbname=$DB" --jwt-secret "$JWT_SECRET" > "$BASE/demo-gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 50); do grep -q ready "$BASE/demo-gateway.log" 2>/dev/null && break; sleep 0.1; done
DANA_TOKEN=$("$VENV/bin/python" tests/gateway/postgrest.py mint "$JWT_SECRET" \
  '{"sub": "a1000000-0000-0000-0000-000000000001", "role": "authenticated", "account_id": "a0000000-0000-0000-0000-000000000001"}')
TOMORROW=$(sql -XAt -c "SELECT (now() AT TIME ZONE crm._account_time_zone('a0000000-0000-0000-0000-000000000001'))::date + 1")
"$VENV/bin/python" scripts/demo_voice.py "http://127.0.0.1:$GW_PORT/rest/v1/rpc/mcp" demo-anon-key "$DANA_TOKEN" "$TOMORROW" a1000000-0000-0000-0000-000000000001
kill "$GW_PID" 2>/dev/null || true
for _ in $(seq 50); do [ "$(sql -XAt -c "SELECT count(*) FROM crm.email_queue WHERE status IN ('pending', 'processing') AND subject LIKE 'Reminder%'")" = 0 ] && break; sleep 0.1; done
echo "Every call is logged (crm.tool_calls); the worker sent the reminder:"
sql -c "SELECT tool, outcome, left(coalesce(error, ''), 60) AS error, round(duration_ms::numeric, 2) AS ms FROM crm.tool_calls ORDER BY id" \
    -c "SELECT recipient_email, left(subject, 50) AS subject, status FROM crm.email_queue WHERE subject LIKE 'Reminder%' ORDER BY created_at DESC LIMIT 1"
echo "The same tools as an ElevenLabs agent's configuration (crm.elevenlabs_tools), one of the 25:"
sql -XAt -c "SELECT jsonb_pretty(crm.elevenlabs_tools('https://<project>.supabase.co') -> 'tools' -> 9)" | head -24

say "Done. The demo cluster and the emulator are still running for you to explore:"
echo "  $(bash scripts/cluster.sh env $NAME "$PORT"); psql $DB"
echo "  curl $EMU/_emulator/requests"
echo "  stop them with: bash scripts/cluster.sh stop $NAME; kill \$(cat $BASE/demo-emulator.pid)"
