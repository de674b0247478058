#!/usr/bin/env bash
# TAP: the OAuth connect flow through the installed extension and the emulator, called as
# PostgREST calls it (role authenticated, the user's JWT claims), with curl playing the
# browser: a full connect for Google and Microsoft; CSRF and replay (unknown, reused, expired,
# another user's state: 28000, nothing stored); PKCE verifier mismatch; redirect_uri
# mismatch; access_denied; partial scopes; reconnect; a wrong tenant; an unreachable
# provider; disconnect (revoked, tokens gone); refresh ahead of expiry; invalid_grant ->
# needs_reconnect and no further attempts; no secret in any answer or the server log.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_CONNECT:-18047}"
SECRET_G="gsec-$(head -c 8 /dev/urandom | xxd -p)"
SECRET_M="msec-$(head -c 8 /dev/urandom | xxd -p)"
cleanup() {
  for s in google_accounts_base_url google_oauth_base_url google_userinfo_base_url google_client_id google_client_secret \
           microsoft_login_base_url microsoft_graph_base_url microsoft_client_id microsoft_client_secret microsoft_tenant; do
    q -c "ALTER SYSTEM RESET crm.$s" >/dev/null 2>&1
  done
  q -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
echo "1..36"

ACC=0000000c-0000-0000-0000-00000000c011
DANA=0000000c-0000-0000-0000-0000000da1a0
OTTO=0000000c-0000-0000-0000-00000000077a
# The test's own ALTER SYSTEM lines would put the secrets in the log (log_statement = all):
# they are the one place a superuser's statement carries them, so they are not logged.
q >/dev/null <<SQL
SET log_statement = 'none';
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Connect');
INSERT INTO crm.users (id, account_id, email, full_name) VALUES
  ('$DANA', '$ACC', 'dana@317plumber.com', 'Dana'), ('$OTTO', '$ACC', 'otto@317plumber.com', 'Otto');
ALTER SYSTEM SET crm.google_accounts_base_url = '$EMU';
ALTER SYSTEM SET crm.google_oauth_base_url = '$EMU';
ALTER SYSTEM SET crm.google_userinfo_base_url = '$EMU';
ALTER SYSTEM SET crm.google_client_id = '1234-connect.apps.googleusercontent.com';
ALTER SYSTEM SET crm.google_client_secret = '$SECRET_G';
ALTER SYSTEM SET crm.microsoft_login_base_url = '$EMU';
ALTER SYSTEM SET crm.microsoft_graph_base_url = '$EMU';
ALTER SYSTEM SET crm.microsoft_client_id = 'ms-connect-client';
ALTER SYSTEM SET crm.microsoft_client_secret = '$SECRET_M';
ALTER SYSTEM SET crm.microsoft_tenant = 'common';
SELECT pg_reload_conf();
SQL
sleep 0.3
# as USER_ID SQL...: one call as PostgREST makes it (role authenticated, the JWT's claims).
as() { local sub=$1; shift; PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"$sub\",\"account_id\":\"$ACC\"}" q "$@"; }
as_err() { local sub=$1; shift; PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"$sub\",\"account_id\":\"$ACC\"} -c client_min_messages=error" \
  psql -X -q -At -d "$DB" -v VERBOSITY=verbose "$@" 2>&1 | grep -oE "ERROR:  [0-9A-Z]{5}: .*|HINT:  .*" | tr '\n' ' '; }
app() { emu POST /_emulator/oauth "{\"app\": $1}" >/dev/null; }
# browse URL: follow the authorization URL as the browser would; prints the redirect's query
# as JSON ({code, state} or {error, ...}), or the error page's JSON.
browse() { curl -s -D /tmp/crm_connect_headers -o /tmp/crm_connect_body "$1"; python3 - <<'PY'
import json, re, urllib.parse as u
h = open("/tmp/crm_connect_headers").read()
m = re.search(r"(?im)^location: (.*)$", h)
if m:
    print(json.dumps({k: v[0] for k, v in u.parse_qs(u.urlparse(m.group(1).strip()).query).items()}))
else:
    print(open("/tmp/crm_connect_body").read())
PY
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d.get('$1', ''))"; }
connections() { q -c "SELECT count(*) FROM crm.connections WHERE account_id = '$ACC' AND has_access_token"; }
start() { as "$1" -c "SELECT crm.oauth_start('$2', '$3', '${4:-https://app.example/integrations/callback}')"; }
complete() { as "$1" -c "SELECT crm.oauth_complete('$2', '$3')"; }

# 1. Google, a mailbox.
app '{"users": {"google": "dana@317plumber.com", "microsoft": "office@northside.example"}}'
started=$(start $DANA google email)
url=$(echo "$started" | field authorization_url)
state=$(echo "$started" | field state)
check "$(python3 -c "
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); q = {k: v[0] for k, v in u.parse_qs(p.query).items()}
print(p.path, q['code_challenge_method'], q['access_type'], q['prompt'], q['include_granted_scopes'], len(q['code_challenge']), q['state'] == sys.argv[2], 'gmail.send' in q['scope'])" "$url" "$state")" \
  "/o/oauth2/v2/auth S256 offline consent true 43 True True" "oauth_start: Google's authorization URL with PKCE S256, offline access, consent, granted scopes kept"
check "$(q -c "SELECT state_hash <> '$state' AND verifier_encrypted NOT LIKE '%' || '$state' || '%' AND user_sub = '$DANA' AND expires_at BETWEEN now() + interval '9 min' AND now() + interval '10 min'
               FROM crm.oauth_states WHERE state_hash = crm._oauth_state_hash('$state')")" "t" \
  "... the state is stored hashed, bound to the user, for 10 minutes, with the verifier encrypted"
redirect=$(browse "$url")
code=$(echo "$redirect" | field code)
check "$(echo "$redirect" | field state)" "$state" "the consent screen redirects back with a code and the same state"
done_=$(complete $DANA "$state" "$code")
conn=$(echo "$done_" | field connection_id)
check "$(echo "$done_" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['provider'], d['purpose'], d['email'], d['is_default'], 'https://www.googleapis.com/auth/gmail.send' in d['scopes'], 'token' not in json.dumps(d))")" \
  "google email dana@317plumber.com True True True" "oauth_complete: connected dana@317plumber.com as the default mailbox, no token in the answer"
token_req=$(requests | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'] == '/token'][-1]; b=r['body']; print(b['grant_type'][0], len(b['code_verifier'][0]), b['redirect_uri'][0])")
check "$token_req" "authorization_code 43 https://app.example/integrations/callback" "... the code was exchanged with the PKCE verifier and the same redirect_uri"
issued=$(requests | python3 -c "import json,sys; print([r['response']['access_token'] for r in json.load(sys.stdin) if r['path'] == '/token'][-1])")
check "$(q -c "SELECT provider || ' ' || crm.decrypt_token(access_token_encrypted, 'email_providers:' || id || ':access_token') || ' ' || (refresh_token_encrypted IS NOT NULL AND needs_reconnect = false)
               FROM crm.email_providers WHERE id = '$conn'")" "gmail $issued true" "... the issued tokens are stored encrypted, bound to their row, in email_providers"

# 2. CSRF and replay: 28000, nothing stored.
before=$(connections)
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$state', '$code')")" \
  "ERROR:  28000: this OAuth state was already used HINT:  each connect can be completed once: start it again " "a used state is refused (28000)"
check "$(as_err $DANA -c "SELECT crm.oauth_complete('forged-state', 'x')")" \
  "ERROR:  28000: unknown OAuth state HINT:  start the connection again (crm.oauth_start) as the signed-in user who completes it " "an unknown state is refused (28000)"
started=$(start $DANA google email); state2=$(echo "$started" | field state); code2=$(browse "$(echo "$started" | field authorization_url)" | field code)
check "$(as_err $OTTO -c "SELECT crm.oauth_complete('$state2', '$code2')" | grep -o 'ERROR:  28000: unknown OAuth state')" "ERROR:  28000: unknown OAuth state" \
  "another user cannot complete Dana's connect (28000, as if unknown)"
q -c "UPDATE crm.oauth_states SET expires_at = now() - interval '1 second' WHERE state_hash = crm._oauth_state_hash('$state2')" >/dev/null
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$state2', '$code2')" | grep -o 'ERROR:  28000: this OAuth state expired at')" "ERROR:  28000: this OAuth state expired at" "an expired state is refused (28000)"
check "$(connections)" "$before" "... and none of these stored anything"
check "$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"00000000-0000-0000-0000-000000000000\"}" psql -X -q -At -d "$DB" -v VERBOSITY=verbose \
          -c "SELECT crm.oauth_start('google', 'email', 'https://app.example/cb')" 2>&1 | grep -o 'ERROR:  42501: oauth_start needs a signed-in user')" \
  "ERROR:  42501: oauth_start needs a signed-in user" "a JWT whose user has no account cannot start a connect (42501)"
check "$(PGOPTIONS="-c role=anon" psql -X -q -At -d "$DB" -c "SELECT crm.oauth_start('google', 'email', 'https://app.example/cb')" 2>&1 | grep -o 'permission denied for function oauth_start')" \
  "permission denied for function oauth_start" "anon cannot call oauth_start"
check "$(as_err $DANA -c "SELECT crm.oauth_start('google', 'email', 'http://evil.example/cb')")" \
  "ERROR:  22023: redirect_uri must be https (http only to localhost) " "a non-https redirect_uri is refused (22023)"

# 3. PKCE: a wrong verifier is refused by the provider.
started=$(start $DANA google email); s3=$(echo "$started" | field state); c3=$(browse "$(echo "$started" | field authorization_url)" | field code)
q -c "UPDATE crm.oauth_states SET verifier_encrypted = crm.encrypt_token('wrong-verifier-wrong-verifier-wrong-verifier', 'oauth_states:' || id || ':verifier')
      WHERE state_hash = crm._oauth_state_hash('$s3')" >/dev/null
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$s3', '$c3')")" \
  "ERROR:  28000: google refused the authorization code: invalid_grant: Invalid code verifier. HINT:  the authorization code expired, was already used, or was issued for another redirect URI or PKCE verifier: start the connection again " \
  "a PKCE verifier that does not match the challenge: invalid_grant (28000) with the troubleshooting hint"

# 4. redirect_uri not registered: Google shows its error page, nothing comes back.
app '{"users": {"google": "dana@317plumber.com"}, "redirect_uris": ["https://app.example/integrations/callback"]}'
page=$(browse "$(start $DANA google email https://app.example/elsewhere | field authorization_url)")
check "$(echo "$page" | field error)" "redirect_uri_mismatch" "an unregistered redirect_uri: the provider answers redirect_uri_mismatch"
check "$(q -c "SELECT crm._oauth_hint('redirect_uri_mismatch', NULL)" | grep -o 'add the exact URI')" "add the exact URI" "... and its hint says what to fix"

# 5. The user declines.
app '{"users": {"google": "dana@317plumber.com"}, "consent": "deny"}'
started=$(start $DANA google email); s5=$(echo "$started" | field state)
back=$(browse "$(echo "$started" | field authorization_url)")
err=$(echo "$back" | field error)
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$s5', NULL, '$err', 'The user denied access')")" \
  "ERROR:  28000: google declined the authorization: access_denied The user denied access HINT:  the user declined (or cancelled) the consent screen: ask them to connect again and accept the permissions " \
  "access_denied comes back as 28000 with 'ask again'"

# 6. Partial consent: the user unticks Gmail.
app '{"users": {"google": "dana@317plumber.com"}, "drop_scopes": ["https://www.googleapis.com/auth/gmail.send"]}'
started=$(start $DANA google email); s6=$(echo "$started" | field state); c6=$(browse "$(echo "$started" | field authorization_url)" | field code)
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$s6', '$c6')" | grep -o 'ERROR:  28000: the user did not grant what email needs: https://www.googleapis.com/auth/gmail.send')" \
  "ERROR:  28000: the user did not grant what email needs: https://www.googleapis.com/auth/gmail.send" "a consent without gmail.send is refused, naming the missing scope"
check "$(connections)" "$before" "... nothing stored by the PKCE, declined and partial attempts"

# 7. Reconnect: the same row, and Google's missing refresh token keeps the stored one.
app '{"users": {"google": "dana@317plumber.com"}, "no_refresh_token": true}'
old_rt=$(q -c "SELECT crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token') FROM crm.email_providers WHERE id = '$conn'")
started=$(start $DANA google email); s7=$(echo "$started" | field state); c7=$(browse "$(echo "$started" | field authorization_url)" | field code)
again=$(complete $DANA "$s7" "$c7")
check "$(echo "$again" | field connection_id)/$(echo "$again" | field reconnected)/$(q -c "SELECT crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token') FROM crm.email_providers WHERE id = '$conn'")" \
  "$conn/True/$old_rt" "reconnecting the same mailbox updates its row and keeps the stored refresh token when Google sends none"

# 8. Microsoft, a calendar.
app '{"users": {"microsoft": "office@northside.example"}}'
started=$(start $DANA microsoft calendar); url=$(echo "$started" | field authorization_url); s8=$(echo "$started" | field state)
check "$(python3 -c "
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); q = {k: v[0] for k, v in u.parse_qs(p.query).items()}
print(p.path, q['code_challenge_method'], 'offline_access' in q['scope'].split(), 'Calendars.ReadWrite' in q['scope'].split())" "$url")" \
  "/common/oauth2/v2.0/authorize S256 True True" "Microsoft: the tenant's authorize URL, offline_access and Calendars.ReadWrite, PKCE S256"
c8=$(browse "$url" | field code)
mconn=$(complete $DANA "$s8" "$c8" | field connection_id)
check "$(q -c "SELECT provider || ' ' || provider_email || ' ' || is_default FROM crm.calendar_providers WHERE id = '$mconn'")" \
  "outlook office@northside.example true" "... the calendar lands in calendar_providers (provider outlook, the reference's name), as the default"

# 9. A wrong tenant, and an unreachable provider.
app '{"users": {"microsoft": "office@northside.example"}, "tenant": "contoso-tenant-id"}'
q -c "ALTER SYSTEM SET crm.microsoft_tenant = 'fabrikam.example'" -c "SELECT pg_reload_conf()" >/dev/null; sleep 0.2
started=$(start $DANA microsoft email); s9=$(echo "$started" | field state); c9=$(browse "$(echo "$started" | field authorization_url)" | field code)
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$s9', '$c9')" | grep -o "HINT:  the application was not found in the tenant: for an app that serves any Microsoft account, set crm.microsoft_tenant = 'common'")" \
  "HINT:  the application was not found in the tenant: for an app that serves any Microsoft account, set crm.microsoft_tenant = 'common'" "AADSTS700016 (wrong tenant): the hint says to use common"
q -c "ALTER SYSTEM SET crm.microsoft_tenant = 'common'" -c "ALTER SYSTEM SET crm.google_oauth_base_url = 'http://127.0.0.1:9'" -c "SELECT pg_reload_conf()" >/dev/null; sleep 0.2
app '{"users": {"google": "dana@317plumber.com"}}'
started=$(start $DANA google email); s10=$(echo "$started" | field state); c10=$(browse "$(echo "$started" | field authorization_url)" | field code)
check "$(as_err $DANA -c "SELECT crm.oauth_complete('$s10', '$c10')" | cut -c1-60)" "ERROR:  08001: google could not be reached for the authoriza" \
  "an unreachable token endpoint: 08001, nothing retried"
check "$(connections)" "2" "... and nothing stored (two connections: Dana's mailbox and calendar)"
q -c "ALTER SYSTEM SET crm.google_oauth_base_url = '$EMU'" -c "SELECT pg_reload_conf()" >/dev/null; sleep 0.2

# A slow provider does not hold the caller past its statement_timeout (the request runs on a
# helper thread while the backend checks for interrupts).
emu POST /_emulator/faults '[{"path": "/token", "delay_ms": 6000}]' >/dev/null
started=$(start $DANA google email); s11=$(echo "$started" | field state); c11=$(browse "$(echo "$started" | field authorization_url)" | field code)
t0=$(date +%s.%N)
got=$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"$DANA\",\"account_id\":\"$ACC\"} -c statement_timeout=1000" \
      psql -X -q -At -d "$DB" -c "SELECT crm.oauth_complete('$s11', '$c11')" 2>&1 | grep -o 'canceling statement due to statement timeout')
secs=$(echo "$(date +%s.%N) - $t0" | bc -l)
check "$got/$(echo "$secs < 2" | bc -l)/$(connections)" "canceling statement due to statement timeout/1/2" \
  "a token endpoint answering after 6 s: statement_timeout (1 s) ends the call in $(printf '%.1f' "$secs") s, nothing stored"
sleep 5   # let the emulator's slow answer go

# 10. Kept alive: a refresh ahead of expiry, by the task queue.
q -c "UPDATE crm.calendar_providers SET token_expires_at = now() + interval '2 minutes' WHERE id = '$mconn'" >/dev/null
check "$(q -c "SELECT crm.schedule_token_refreshes()")/$(q -c "SELECT crm.schedule_token_refreshes()")" "1/0" \
  "a connection expiring within crm.oauth_refresh_ahead gets one oauth.refresh task (coalesced: a second call adds none)"
q -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(q -c "SELECT token_expires_at > now() + interval '50 minutes' AND last_refresh_at > now() - interval '1 minute' FROM crm.calendar_providers WHERE id = '$mconn'")/$(requests | python3 -c "
import json,sys; r=[r for r in json.load(sys.stdin) if r['path'] == '/common/oauth2/v2.0/token'][-1]['body']; print(r['grant_type'][0], 'Calendars.ReadWrite' in r['scope'][0], 'Mail.Send' in r['scope'][0])")" \
  "t/refresh_token True False" "... refreshed: a new expiry, asking Microsoft for the calendar's own scopes (not Mail.Send)"

# 11. invalid_grant: needs_reconnect, never retried.
rt=$(q -c "SELECT crm.decrypt_token(refresh_token_encrypted, 'calendar_providers:' || id || ':refresh_token') FROM crm.calendar_providers WHERE id = '$mconn'")
emu POST /_emulator/oauth "{\"revoke\": [\"$rt\"]}" >/dev/null
q -c "UPDATE crm.calendar_providers SET token_expires_at = now() + interval '1 minute' WHERE id = '$mconn'" -c "SELECT crm.schedule_token_refreshes()" -c "SELECT crm.process_integration_tasks()" >/dev/null
check "$(as $DANA -c "SELECT state || ' ' || (last_error LIKE '%invalid_grant%') FROM crm.integration_status() WHERE kind = 'connection' AND purpose = 'calendar'")" \
  "needs_reconnect true" "invalid_grant: the connection needs reconnecting, with the reason (integration_status)"
check "$(q -c "SELECT crm.schedule_token_refreshes()")" "0" "... and no further refresh is scheduled for it"

# 12. Disconnect: revoked at Google, tokens gone.
rt=$(q -c "SELECT crm.decrypt_token(refresh_token_encrypted, 'email_providers:' || id || ':refresh_token') FROM crm.email_providers WHERE id = '$conn'")
check "$(as $DANA -c "SELECT crm.disconnect('$conn')")" "t" "disconnect: true"
check "$(requests | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'] == '/revoke']; print(len(r), r[-1]['body']['token'][0] == '$rt')")" "1 True" \
  "... Google's /revoke received the refresh token"
check "$(q -c "SELECT (access_token_encrypted IS NULL AND refresh_token_encrypted IS NULL)::text || ' ' || is_active || ' ' || is_default FROM crm.email_providers WHERE id = '$conn'")/$(as $DANA -c "SELECT state FROM crm.integration_status() WHERE kind = 'connection' AND purpose = 'email'")" \
  "true false false/disconnected" "... the tokens are deleted, the row inactive and no longer the default"
check "$(as $OTTO -c "SELECT crm.disconnect('$mconn')")/$(PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"x\",\"account_id\":\"00000001-0000-0000-0000-000000000001\"}" q -c "SELECT crm.disconnect('$mconn')")" \
  "t/f" "a colleague of the same account may disconnect it; another account may not"

# 13. No secret in any answer or in the server log.
log=$(q -c "SHOW crm_test.log_file" 2>/dev/null)
leaks=$( { [ -n "$log" ] && [ -f "$log" ] && cat "$log"; as $DANA -c "SELECT * FROM crm.integration_status()"; } | grep -c -e "$SECRET_G" -e "$SECRET_M" -e "$issued")
check "$leaks" "0" "the client secrets and issued tokens appear nowhere in the answers or the server log (log_statement = all)"
exit $failed
