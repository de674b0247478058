#!/usr/bin/env bash
# TAP: sending as a connected mailbox. Gmail (users.messages.send, an RFC 5322 message in
# base64url raw, threadId and In-Reply-To/References for a reply) and Microsoft Graph
# (/me/sendMail, 202), with the access token decrypted from email_providers; an expired token
# refreshed at Google's or Microsoft's token endpoint first (the new tokens stored encrypted,
# bound to their row); a 401 answered by one refresh and retry; invalid_grant → the connection
# goes inactive and the message fails with that reason; a token endpoint outage → retry.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_MAILBOX:-18031}"
trap 'kill $emu_pid 2>/dev/null' EXIT

export PGOPTIONS="-c crm.gmail_base_url=$EMU -c crm.microsoft_graph_base_url=$EMU -c crm.google_oauth_base_url=$EMU
  -c crm.microsoft_login_base_url=$EMU -c crm.google_client_id=cid-google -c crm.google_client_secret=sec-google
  -c crm.microsoft_client_id=cid-ms -c crm.microsoft_client_secret=sec-ms -c crm.gmail_rate_limit=0 -c crm.microsoft_rate_limit=0
  -c crm.resend_base_url=$EMU -c crm.resend_api_key=re_mailbox -c crm.resend_rate_limit=0 -c crm.email_retry_base=300"
ACCT=0000000c-0000-0000-0000-0000000000ca
GMAIL=0000000c-0000-0000-0000-00000000a001
MS=0000000c-0000-0000-0000-00000000a002
enqueue() { q -c "SELECT crm.enqueue_email('$1'::jsonb || '{\"account_id\": \"$ACCT\"}')"; }
conn() { q -c "SELECT $2 FROM crm.email_providers WHERE id = '$1'"; }
echo "1..42"

# A Gmail connection with a valid token (the emulator knows it), the account's default; a
# Microsoft one whose token expired a minute ago. Tokens encrypted bound to their row, as a
# connect flow would store them.
q <<SQL
DELETE FROM crm.accounts WHERE id = '$ACCT';
INSERT INTO crm.accounts (id, name) VALUES ('$ACCT', 'Mailboxes');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted,
                                 token_expires_at, is_default)
VALUES ('$GMAIL', '$ACCT', 'gmail', 'dana@317plumber.com',
        crm.encrypt_token('ya29.seed-valid', 'email_providers:$GMAIL:access_token'),
        crm.encrypt_token('1//rt-google', 'email_providers:$GMAIL:refresh_token'), now() + interval '1 hour', true),
       ('$MS', '$ACCT', 'microsoft', 'office@northside.example',
        crm.encrypt_token('EwB.expired', 'email_providers:$MS:access_token'),
        crm.encrypt_token('M.R3_rt-ms', 'email_providers:$MS:refresh_token'), now() - interval '1 minute', false);
SQL
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"access_tokens": {"ya29.seed-valid": "google"}, "refresh_tokens": {"1//rt-google": "google", "M.R3_rt-ms": "microsoft"}}' >/dev/null

# 1. Gmail, as the account's default provider: a reply with cc, bcc, both bodies, an attachment.
id=$(enqueue '{"to": "john@example.com", "to_name": "John Doe", "cc": "office@example.com", "bcc": "audit@317plumber.com",
  "subject": "Re: Rechnung für Juni ✓", "html": "<p>Hi John</p>", "text": "Hi John", "reply_to": "help@317plumber.com",
  "headers": {"In-Reply-To": "<CAF1@mail.gmail.com>", "References": "<CAF0@mail.gmail.com> <CAF1@mail.gmail.com>"},
  "attachments": [{"filename": "invoice.pdf", "content_base64": "JVBERi0xLjQK", "content_type": "application/pdf"}],
  "metadata": {"thread_id": "18c2f0a1b2c3d4e5"}}')
check "$(row "$id" "provider || ' ' || from_email")" "gmail dana@317plumber.com" "the account's default Gmail mailbox is the provider and the sender"
check "$(process)" '{"sent": 1, "failed": 0, "claimed": 1, "retried": 0}' "it is sent"
r=$(requests)
check "$(echo "$r" | jq_ 'd[0]["path"]')" "/gmail/v1/users/me/messages/send" "POST /gmail/v1/users/me/messages/send"
check "$(echo "$r" | jq_ 'd[0]["headers"]["authorization"]')" "Bearer ya29.seed-valid" "with the mailbox's decrypted access token"
check "$(echo "$r" | jq_ 'd[0]["body"]["threadId"]')" "18c2f0a1b2c3d4e5" "threadId from metadata.thread_id"
check "$(echo "$r" | jq_ '"+" not in d[0]["body"]["raw"] and "/" not in d[0]["body"]["raw"]')" "True" "raw is base64url"
h() { echo "$r" | jq_ "[v for k, v in d[0]['mime']['headers'] if k == '$1']"; }
check "$(h From)" "['dana@317plumber.com']" "From: the mailbox"
check "$(h To),$(h Cc),$(h Bcc)" "['John Doe <john@example.com>'],['office@example.com'],['audit@317plumber.com']" "To (with to_name), Cc and Bcc (Gmail reads Bcc from the message)"
check "$(h Subject)" "['Re: Rechnung für Juni ✓']" "a non-ASCII subject survives (RFC 2047)"
check "$(h In-Reply-To),$(h References)" "['<CAF1@mail.gmail.com>'],['<CAF0@mail.gmail.com> <CAF1@mail.gmail.com>']" "In-Reply-To and References for the thread"
check "$(h Message-ID)" "['<$id@317plumber.com>']" "Message-ID: the queue row's id at the sender's domain"
check "$(echo "$r" | jq_ 'd[0]["mime"]["structure"], [(p["content_type"], p["filename"]) for p in d[0]["mime"]["parts"]]')" \
  "multipart/mixed [('text/plain', None), ('text/html', None), ('application/pdf', 'invoice.pdf')]" "multipart/mixed: text and HTML alternatives, then the attachment"
check "$(echo "$r" | jq_ '[p.get("text", p.get("base64")) for p in d[0]["mime"]["parts"]]')" "['Hi John', '<p>Hi John</p>', 'JVBERi0xLjQK']" \
  "the parts decode to the bodies and the attachment's bytes"
check "$(row "$id" "metadata->>'provider_message_id'")" "$(echo "$r" | jq_ 'd[0]["response"]["id"]')" "Gmail's message id is stored"

# The vault key missing (a configuration slip): the message waits for a retry, nothing fails.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"access_tokens": {"ya29.seed-valid": "google"}}' >/dev/null
id=$(enqueue '{"to": "nokey@example.com", "subject": "s", "text": "t"}')
PGOPTIONS="$PGOPTIONS -c crm.encryption_key=" q -c "SELECT crm.process_email_queue()" >/dev/null
check "$(row "$id" "status || ' | ' || last_error")" "pending | mailbox token: no answer: crm.encryption_key is not set" \
  "no vault key: retried later, with the reason"
check "$(requests | jq_ 'len(d)')/$(conn $GMAIL "is_active")" "0/t" "... nothing was sent and the connection stays active"
q -c "UPDATE crm.email_queue SET next_attempt_at = now() WHERE id = '$id'" >/dev/null
process >/dev/null
check "$(row "$id" "status")" "sent" "... and with the key back it is sent"

# 2. Microsoft with an expired token: refreshed first, then sendMail; three emails, one refresh.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"refresh_tokens": {"M.R3_rt-ms": "microsoft"}}' >/dev/null
ids=()
for i in 1 2 3; do
  ids+=("$(enqueue "{\"provider\": \"microsoft\", \"to\": \"jo$i@example.com\", \"to_name\": \"Jo Smith\", \"bcc\": \"audit@northside.example\", \"subject\": \"Estimate $i\", \"html\": \"<p>Hi</p>\", \"headers\": {\"X-Job\": \"J-$i\"}}")")
done
check "$(process)" '{"sent": 3, "failed": 0, "claimed": 3, "retried": 0}' "three Microsoft emails are sent"
r=$(requests)
check "$(echo "$r" | jq_ '[x["path"] for x in d]')" "['/common/oauth2/v2.0/token', '/v1.0/me/sendMail', '/v1.0/me/sendMail', '/v1.0/me/sendMail']" \
  "one token refresh (tenant common), then three sendMail calls"
check "$(echo "$r" | jq_ '{k: v[0] for k, v in d[0]["body"].items()}')" \
  "{'grant_type': 'refresh_token', 'refresh_token': 'M.R3_rt-ms', 'client_id': 'cid-ms', 'client_secret': 'sec-ms', 'scope': 'offline_access https://graph.microsoft.com/Mail.Send'}" \
  "the refresh-token grant, form-encoded, with the decrypted refresh token"
check "$(echo "$r" | jq_ 'd[1]["headers"]["authorization"] == "Bearer " + d[0]["response"]["access_token"]')" "True" "sendMail uses the new access token"
check "$(echo "$r" | jq_ 'json.dumps(d[1]["body"], sort_keys=True)')" \
  "{\"message\": {\"bccRecipients\": [{\"emailAddress\": {\"address\": \"audit@northside.example\"}}], \"body\": {\"content\": \"<p>Hi</p>\", \"contentType\": \"HTML\"}, \"internetMessageHeaders\": [{\"name\": \"X-CRM-Queue-Id\", \"value\": \"${ids[0]}\"}, {\"name\": \"X-Job\", \"value\": \"J-1\"}], \"subject\": \"Estimate 1\", \"toRecipients\": [{\"emailAddress\": {\"address\": \"jo1@example.com\", \"name\": \"Jo Smith\"}}]}, \"saveToSentItems\": true}" \
  "the Graph message as documented (recipients, body, X- headers only)"
check "$(echo "$r" | jq_ '[x["response"] for x in d[1:]]')" "[None, None, None]" "Graph answered 202 with no body"
check "$(conn $MS "crm.decrypt_token(access_token_encrypted, 'email_providers:$MS:access_token')")" "$(echo "$r" | jq_ 'd[0]["response"]["access_token"]')" \
  "the new access token is stored, encrypted and bound to the row"
check "$(conn $MS "crm.decrypt_token(refresh_token_encrypted, 'email_providers:$MS:refresh_token')")" "$(echo "$r" | jq_ 'd[0]["response"]["refresh_token"]')" \
  "... and the rotated refresh token Microsoft returned"
check "$(conn $MS "round(extract(epoch FROM token_expires_at - now()) / 60)")" "60" "token_expires_at follows expires_in (3599 s)"
check "$(conn $MS "access_token_encrypted LIKE '%EwB%' OR refresh_token_encrypted LIKE '%M.R3%'")" "f" "no token is stored in the clear"

# A hostile crm.microsoft_tenant (it goes into the token URL's path) is refused, not requested.
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.email_providers SET token_expires_at = now() - interval '1 s' WHERE id = '$MS'" >/dev/null
id=$(enqueue '{"provider": "microsoft", "to": "t@example.com", "subject": "s", "text": "t"}')
PGOPTIONS="$PGOPTIONS -c crm.microsoft_tenant=../../evil?x=" q -c "SELECT crm.process_email_queue()" >/dev/null
check "$(row "$id" "status || ' | ' || last_error")" \
  "pending | token refresh: no answer: crm.microsoft_tenant must be common, organizations, consumers, a tenant id or a domain" \
  "a crm.microsoft_tenant that is not a tenant name: retried later, with the reason"
check "$(requests | jq_ 'len(d)')" "0" "... and no request was made"
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE id = '$id'" >/dev/null

# 3. A token Gmail refuses (401) although its recorded expiry is later: one refresh, one retry.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"refresh_tokens": {"1//rt-google": "google"}}' >/dev/null   # ya29.seed-valid is forgotten
id=$(enqueue '{"to": "late@example.com", "subject": "s", "text": "t"}')
process >/dev/null
r=$(requests)
check "$(echo "$r" | jq_ '[(x["path"], (x.get("response") or {}).get("error", {}).get("code") if isinstance((x.get("response") or {}).get("error"), dict) else None) for x in d]')" \
  "[('/gmail/v1/users/me/messages/send', 401), ('/token', None), ('/gmail/v1/users/me/messages/send', None)]" "401 → refresh at Google's /token → the send again"
check "$(row "$id" "status")" "sent" "... and it is sent"

# Gmail's quota is per mailbox, so is the pacing: at 2 requests/s, two emails from each of two
# mailboxes (sent in claim order: dana, dana, sam, sam) wait 0.5 s within each mailbox, about
# 1 s in all, where one limit for all of Gmail would need 1.5 s.
SAM=0000000c-0000-0000-0000-00000000a003
q <<SQL >/dev/null
UPDATE crm.email_providers SET access_token_encrypted = crm.encrypt_token('ya29.seed-valid', 'email_providers:$GMAIL:access_token'),
                               token_expires_at = now() + interval '1 hour' WHERE id = '$GMAIL';
INSERT INTO crm.email_providers (id, account_id, provider, provider_email, access_token_encrypted, token_expires_at)
VALUES ('$SAM', '$ACCT', 'gmail', 'sam@317plumber.com', crm.encrypt_token('ya29.sam', 'email_providers:$SAM:access_token'), now() + interval '1 hour');
SQL
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"access_tokens": {"ya29.seed-valid": "google", "ya29.sam": "google"}, "refresh_tokens": {"1//rt-google": "google"}}' >/dev/null
for who in dana dana sam sam; do enqueue "{\"provider\": \"gmail\", \"from\": \"$who@317plumber.com\", \"to\": \"p@example.com\", \"subject\": \"s\", \"text\": \"t\"}" >/dev/null; done
start=$(date +%s.%N)
PGOPTIONS="$PGOPTIONS -c crm.gmail_rate_limit=2" q -c "SELECT crm.process_email_queue()" >/dev/null
secs=$(echo "$(date +%s.%N) - $start" | bc -l)
r=$(requests)
check "$(echo "$r" | jq_ 'sorted(x["headers"]["authorization"][7:] for x in d)')" "['ya29.sam', 'ya29.sam', 'ya29.seed-valid', 'ya29.seed-valid']" \
  "each email goes out as its sender's mailbox (the connection whose address is the sender)"
check "$(echo "$r" | jq_ 'min(b["at"] - a["at"] for t in {x["headers"]["authorization"] for x in d} for a, b in [[x for x in d if x["headers"]["authorization"] == t]]) >= 0.45')" "True" \
  "within a mailbox, requests are 0.5 s apart (2/s)"
check "$(echo "$secs < 1.4" | bc -l)" "1" "across mailboxes they are not: four emails in $(printf '%.2f' "$secs") s, not 1.5 s"
q -c "DELETE FROM crm.email_providers WHERE id = '$SAM'" >/dev/null

# 4. The token endpoint is down: the message is retried later, the connection stays active.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/faults '{"path": "/token", "status": 503}' >/dev/null
q -c "UPDATE crm.email_providers SET token_expires_at = now() - interval '1 s' WHERE id = '$GMAIL'" >/dev/null
id=$(enqueue '{"to": "outage@example.com", "subject": "s", "text": "t"}')
check "$(process)" '{"sent": 0, "failed": 0, "claimed": 1, "retried": 1}' "a token endpoint outage retries the message"
check "$(row "$id" "last_error LIKE 'token refresh: HTTP 503%'")" "t" "... saying so in last_error"
check "$(conn $GMAIL "is_active")" "t" "... and the connection stays active"

# 5. invalid_grant: the connection goes inactive and the message fails with the reason.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/oauth '{"revoke": ["1//rt-google"]}' >/dev/null
q -c "UPDATE crm.email_queue SET next_attempt_at = now() WHERE id = '$id'" >/dev/null
id2=$(enqueue '{"to": "revoked@example.com", "subject": "s", "text": "t"}')
check "$(process)" '{"sent": 0, "failed": 2, "claimed": 2, "retried": 0}' "a revoked refresh token fails both messages"
check "$(row "$id2" "status || ': ' || last_error")" \
  "failed: gmail refused the refresh token (invalid_grant: Token has been expired or revoked.); the connection is now inactive until it is connected again" \
  "last_error gives the reason"
check "$(requests | jq_ '[x["path"] for x in d]')" "['/token']" "one refresh attempt for the mailbox, no send"
check "$(conn $GMAIL "is_active")" "f" "the connection is marked inactive"
id3=$(enqueue '{"to": "after@example.com", "subject": "s", "text": "t"}')
check "$(row "$id3" "provider")" "resend" "the next email falls back to Resend"
exit $failed
