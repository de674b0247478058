#!/usr/bin/env bash
# TAP: crm.process_email_queue against the Resend emulator — the wire format the emulator
# recorded, outcomes (sent / retry with backoff / Retry-After / permanent failure / gave up /
# network error), idempotent re-send after a rolled-back call, priority, scheduling, and
# templates rendered at send time. Runs against the SQL test cluster (database crm_test).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT:-18025}"
trap 'kill $emu_pid 2>/dev/null' EXIT

export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_test_key -c crm.resend_rate_limit=0 -c crm.email_retry_base=300 -c crm.email_http_timeout=2000"
enqueue() { q -c "SELECT crm.enqueue_email('$1'::jsonb || '{\"account_id\": \"0000000d-0000-0000-0000-00000000dddd\"}')"; }
echo "1..29"

q <<'SQL'
DELETE FROM crm.accounts WHERE id = '0000000d-0000-0000-0000-00000000dddd';
INSERT INTO crm.accounts (id, name, default_from_email) VALUES ('0000000d-0000-0000-0000-00000000dddd', 'Delivery', 'CRM <noreply@317plumber.com>');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
SQL
emu POST /_emulator/reset >/dev/null

# 1. A plain email: the request as Resend documents it.
id=$(enqueue '{"to": "John <john@example.com>", "cc": "office@example.com", "subject": "Your invoice", "html": "<p>Hi John</p>", "text": "Hi John", "reply_to": "help@317plumber.com", "headers": {"X-Entity-Ref-ID": "inv-1042"}}')
check "$(process)" '{"sent": 1, "failed": 0, "claimed": 1, "retried": 0}' "process_email_queue sends a due email"
r=$(requests)
check "$(echo "$r" | jq_ 'd[0]["path"]')" "/emails" "POST /emails"
check "$(echo "$r" | jq_ 'd[0]["headers"]["authorization"]')" "Bearer re_test_key" "Authorization: Bearer crm.resend_api_key"
check "$(echo "$r" | jq_ 'd[0]["headers"]["idempotency-key"]')" "$id" "Idempotency-Key is the queue row's id"
check "$(echo "$r" | jq_ 'json.dumps(d[0]["body"], sort_keys=True)')" \
  '{"cc": ["office@example.com"], "from": "CRM <noreply@317plumber.com>", "headers": {"X-Entity-Ref-ID": "inv-1042"}, "html": "<p>Hi John</p>", "reply_to": "help@317plumber.com", "subject": "Your invoice", "text": "Hi John", "to": ["john@example.com"]}' \
  "the JSON body carries from, to, cc, reply_to, subject, html, text, headers"
check "$(row "$id" "status || ',' || (sent_at IS NOT NULL) || ',' || attempts")" "sent,true,1" "the row is sent, with sent_at"
check "$(row "$id" "metadata->>'provider_message_id'")" "$(echo "$r" | jq_ 'd[0]["response"]["id"]')" "the id Resend answered is stored in metadata (webhooks match on it)"
check "$(process)" '{"sent": 0, "failed": 0, "claimed": 0, "retried": 0}' "nothing is sent twice"

# 2. A template email is rendered when it is sent, with the template as it is then.
q -c "INSERT INTO crm.email_templates (account_id, name, subject, html_content, text_content) VALUES ('0000000d-0000-0000-0000-00000000dddd', 'Promo', 'Old {{x}}', '<p>old</p>', NULL)"
id=$(enqueue '{"to": "ana@example.com", "template": "Promo", "variables": {"x": "<b>&</b>", "name": "Ana"}}')
q -c "UPDATE crm.email_templates SET subject = 'Hello {{name}} {{x}}', html_content = '<p>Hi {{name}}, {{x}}</p>' WHERE name = 'Promo'"
emu POST /_emulator/reset >/dev/null
process >/dev/null
r=$(requests)
check "$(echo "$r" | jq_ 'd[0]["body"]["subject"]')" "Hello Ana <b>&</b>" "the subject is rendered as text, from the fixed template"
check "$(echo "$r" | jq_ 'd[0]["body"]["html"]')" "<p>Hi Ana, &lt;b&gt;&amp;&lt;/b&gt;</p>" "the HTML is rendered with escaping"
check "$(echo "$r" | jq_ 'd[0]["body"]["text"]')" "Hi Ana, <b>&</b>" "a text part is made from the HTML"
check "$(row "$id" "subject")" "Hello Ana <b>&</b>" "the row keeps the subject as sent"

# 3. 503: retried after the backoff (5 minutes), with what the provider said.
emu POST /_emulator/faults '{"path": "/emails", "status": 503}' >/dev/null
id=$(enqueue '{"to": "retry@example.com", "subject": "s", "text": "t"}')
check "$(process)" '{"sent": 0, "failed": 0, "claimed": 1, "retried": 1}' "a 503 is retried"
check "$(row "$id" "status || ',' || attempts || ',' || round(extract(epoch FROM next_attempt_at - now()) / 60)")" "pending,1,5" "... in 5 minutes"
check "$(row "$id" "last_error")" 'HTTP 503: {"statusCode": 503, "name": "internal_server_error", "message": "Injected fault."}' "last_error says what the provider answered"
q -c "UPDATE crm.email_queue SET next_attempt_at = now() WHERE id = '$id'"
emu POST /_emulator/faults '{"path": "/emails", "status": 502}' >/dev/null
process >/dev/null
check "$(row "$id" "attempts || ',' || round(extract(epoch FROM next_attempt_at - now()) / 60)")" "2,10" "the second retry waits 10 minutes"
q -c "UPDATE crm.email_queue SET next_attempt_at = now() WHERE id = '$id'"
process >/dev/null
check "$(row "$id" "status || ',' || attempts || ',' || coalesce(last_error, '-')")" "sent,3,-" "the third attempt succeeds"

# 4. 429 with Retry-After beyond the backoff: the provider's time wins.
emu POST /_emulator/faults '{"path": "/emails", "status": 429, "retry_after": "900"}' >/dev/null
id=$(enqueue '{"to": "slow@example.com", "subject": "s", "text": "t"}')
process >/dev/null
check "$(row "$id" "status || ',' || round(extract(epoch FROM next_attempt_at - now()) / 60)")" "pending,15" "Retry-After: 900 is honoured"

# 5. Permanent failures.
emu POST /_emulator/faults '{"path": "/emails", "status": 422}' >/dev/null
id=$(enqueue '{"to": "reject@example.com", "subject": "s", "text": "t"}')
check "$(process 1)" '{"sent": 0, "failed": 1, "claimed": 1, "retried": 0}' "a 422 fails at once"
check "$(row "$id" "status || ',' || attempts")" "failed,1" "... after one attempt"
emu POST /_emulator/faults '{"path": "/emails", "status": 500}' >/dev/null
id=$(enqueue '{"to": "once@example.com", "subject": "s", "text": "t", "max_attempts": 1}')
process 1 >/dev/null
check "$(row "$id" "status || ',' || (last_error LIKE '%gave up after 1 attempts%')")" "failed,true" "max_attempts used up: failed"

# 6. No answer at all (dropped connection): retried.
emu POST /_emulator/faults '{"path": "/emails", "drop": true}' >/dev/null
id=$(enqueue '{"to": "net@example.com", "subject": "s", "text": "t"}')
process 1 >/dev/null
check "$(row "$id" "status || ',' || (last_error LIKE 'no answer:%')")" "pending,true" "a dropped connection is retried"
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status = 'pending'"

# 7. A call that sent and then rolled back: the row is sent again under the same key, and the
#    provider drops the copy.
emu POST /_emulator/reset >/dev/null
id=$(enqueue '{"to": "crash@example.com", "subject": "s", "text": "t"}')
q -c "BEGIN" -c "SELECT crm.process_email_queue()" -c "ROLLBACK" >/dev/null
check "$(row "$id" "status")" "pending" "after the rollback the row is pending again"
process >/dev/null
r=$(requests)
check "$(echo "$r" | jq_ 'len(d)'),$(echo "$r" | jq_ 'len(set(x["headers"]["idempotency-key"] for x in d))')" "2,1" "two requests, one idempotency key"
check "$(echo "$r" | jq_ '[x["replayed"] for x in d]')" "[False, True]" "the emulator answered the second from its idempotency store"
check "$(row "$id" "status")" "sent" "the row is sent"

# 8. Priority first; scheduled mail waits for its time.
emu POST /_emulator/reset >/dev/null
low=$(enqueue '{"to": "low@example.com", "subject": "low", "text": "t", "priority": -5}')
high=$(enqueue '{"to": "high@example.com", "subject": "high", "text": "t", "priority": 10}')
later=$(q -c "SELECT crm.enqueue_email(jsonb_build_object('account_id', '0000000d-0000-0000-0000-00000000dddd', 'to', 'later@example.com', 'subject', 's', 'text', 't', 'scheduled_at', to_char((now() + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))")
process 1 >/dev/null
check "$(requests | jq_ 'd[0]["body"]["subject"]')" "high" "the higher priority goes first"
process >/dev/null
check "$(row "$later" "status")" "scheduled" "a scheduled email is not sent before its time"
q -c "UPDATE crm.email_queue SET next_attempt_at = now() - interval '1 s' WHERE id = '$later'"
process >/dev/null
check "$(row "$later" "status")" "sent" "... and is sent once due"

exit $failed
