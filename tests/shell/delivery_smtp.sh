#!/usr/bin/env bash
# TAP: the SMTP provider against a real SMTP server (aiosmtpd, tests/emulator/smtp_server.py):
# AUTH with crm.smtp_username/crm.smtp_password, the envelope (Bcc in the envelope, not in the
# message), the RFC 5322 message the server received, and the server's refusals: 550 → failed
# at once, 451 → retried, no server → retried.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
PORT=${CRM_SMTP_PORT:-18026}
OUT=$(mktemp)
log=$(mktemp)
/usr/bin/python3 tests/emulator/smtp_server.py "$PORT" "$OUT" crm-relay s3cret > "$log" 2>&1 &
smtp_pid=$!
for _ in $(seq 50); do grep -q ready "$log" 2>/dev/null && break; sleep 0.1; done
trap 'kill $smtp_pid 2>/dev/null; rm -f "$OUT" "$log"' EXIT

export PGOPTIONS="-c crm.smtp_host=127.0.0.1 -c crm.smtp_port=$PORT -c crm.smtp_tls=none -c crm.smtp_username=crm-relay
  -c crm.smtp_password=s3cret -c crm.smtp_rate_limit=0 -c crm.email_retry_base=300 -c crm.email_http_timeout=3000"
ACCT=00000005-0000-0000-0000-0000000005e7
enqueue() { q -c "SELECT crm.enqueue_email('$1'::jsonb || '{\"account_id\": \"$ACCT\", \"provider\": \"smtp\"}')"; }
received() { /usr/bin/python3 -c "
import json, sys, email, email.policy
d = [json.loads(l) for l in open('$OUT')]
m = email.message_from_string(d[-1]['data'], policy=email.policy.default)
e = d[-1]
print($1)"; }
echo "1..12"

q <<SQL
DELETE FROM crm.accounts WHERE id = '$ACCT';
INSERT INTO crm.accounts (id, name, default_from_email) VALUES ('$ACCT', 'SMTP', '317 Plumber <office@317plumber.com>');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
SQL

id=$(enqueue '{"to": "john@example.com", "to_name": "John Doe", "cc": "ops@example.com", "bcc": "audit@317plumber.com",
  "subject": "Ihre Rechnung Nr. 7 – Grüße", "html": "<p>Hallo John</p>", "text": "Hallo John\n.\nEnde",
  "attachments": [{"filename": "rechnung.pdf", "content_base64": "JVBERi0xLjQK", "content_type": "application/pdf"}]}')
check "$(process)" '{"sent": 1, "failed": 0, "claimed": 1, "retried": 0}' "an email goes out through the SMTP server"
check "$(received 'e["login"]')" "crm-relay" "after AUTH with crm.smtp_username / crm.smtp_password"
check "$(received 'e["mail_from"], sorted(e["rcpt_tos"])')" "office@317plumber.com ['audit@317plumber.com', 'john@example.com', 'ops@example.com']" \
  "envelope: MAIL FROM the sender, RCPT TO every recipient including Bcc"
check "$(received 'm["Bcc"]')" "None" "Bcc is not in the message"
check "$(received 'm["From"], "|", m["To"], "|", m["Cc"], "|", m["Subject"]')" "317 Plumber <office@317plumber.com> | John Doe <john@example.com> | ops@example.com | Ihre Rechnung Nr. 7 – Grüße" \
  "From, To (with to_name), Cc and a non-ASCII Subject as sent"
check "$(received 'm["Message-ID"]')" "<$id@317plumber.com>" "Message-ID: the queue row's id"
check "$(received '[p.get_content_type() for p in m.walk() if not p.is_multipart()], m.get_body(("plain",)).get_content()')" \
  "['text/plain', 'text/html', 'application/pdf'] Hallo John
.
Ende" "text, HTML and the attachment; a line with a lone dot survives (no early end of DATA)"
check "$(received '[p.get_filename() for p in m.iter_attachments()], [p.get_content() for p in m.iter_attachments()]')" \
  "['rechnung.pdf'] [b'%PDF-1.4\n']" "the attachment arrives byte for byte"
check "$(row "$id" "status")" "sent" "the row is sent"

# The server's refusals.
id=$(enqueue '{"to": "unknown-user@example.com", "subject": "s", "text": "t"}')
process >/dev/null
check "$(row "$id" "status || ' | ' || last_error")" \
  "failed | SMTP 550: permanent error (550): 5.1.1 <unknown-user@example.com>: Recipient address rejected: User unknown in local recipient table" \
  "550 from the server: failed at once, with its words"
id=$(enqueue '{"to": "greylist-me@example.com", "subject": "s", "text": "t"}')
process >/dev/null
check "$(row "$id" "status || ' | ' || (last_error LIKE 'SMTP 451:%4.7.1%')")" "pending | true" "451 from the server: retried"
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE id = '$id'" >/dev/null
kill $smtp_pid; wait $smtp_pid 2>/dev/null
id=$(enqueue '{"to": "later@example.com", "subject": "s", "text": "t"}')
process >/dev/null
check "$(row "$id" "status || ' | ' || (last_error LIKE 'no answer:%')")" "pending | true" "no server listening: retried"
exit $failed
