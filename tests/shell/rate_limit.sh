#!/usr/bin/env bash
# TAP: rate limits. The emulator enforces Resend's behaviour (429 beyond N requests per
# second). With crm.resend_rate_limit set to the provider's limit, a burst is paced and draws
# no 429 (one email per request, and a 10,000-email burst in batch mode); and one 429 with
# Retry-After holds back every following request to the provider.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_RATE:-18034}"
trap 'kill $emu_pid 2>/dev/null' EXIT
echo "1..9"

q <<SQL
DELETE FROM crm.accounts WHERE id = '00000002-0000-0000-0000-000000000a7e';
INSERT INTO crm.accounts (id, name) VALUES ('00000002-0000-0000-0000-000000000a7e', 'Rate');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
SQL
queue() { # how many (batches of at most 100), subject
  q -c "SELECT count(*) FROM generate_series(0, ($1 - 1) / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
          'account_id', '00000002-0000-0000-0000-000000000a7e', 'to', 'r' || b || '-' || i || '@example.com', 'subject', '$2', 'text', 't'))
          FROM generate_series(1, least(100, $1 - b * 100)) i))" >/dev/null; }
count429() { emu GET /_emulator/requests | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if (r.get('response') or {}).get('statusCode') == 429))"; }

# A burst of 300 at the provider's limit of 100/s, with the setting at 100.
emu POST /_emulator/rate_limit '{"per_second": 100}' >/dev/null
queue 300 burst
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_rate -c crm.resend_rate_limit=100 -c crm.resend_batch=off"
start=$(date +%s.%N)
q -c "SELECT crm.process_email_queue(300)" >/dev/null
secs=$(echo "$(date +%s.%N) - $start" | bc -l)
check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'burst' AND status = 'sent'")" "300" "a burst of 300 is sent"
check "$(count429)" "0" "... without a single 429 from a provider limited to 100/s"
check "$(echo "$secs >= 2.5" | bc -l)" "1" "... because it was paced to 100/s ($(printf '%.2f' "$secs") s for 300)"

# Unpaced (setting 0) against the same provider: it does answer 429 — the test above is not vacuous.
emu POST /_emulator/reset >/dev/null
emu POST /_emulator/rate_limit '{"per_second": 100}' >/dev/null
queue 300 unpaced
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_rate -c crm.resend_rate_limit=0 -c crm.email_retry_base=0 -c crm.resend_batch=off"
q -c "SELECT crm.process_email_queue(300)" >/dev/null
check "$([ "$(count429)" -gt 0 ] && echo throttled)" "throttled" "unpaced, the same burst draws 429s"

# Batch mode: 10,000 queued emails to a provider limited to 10 requests/s, the setting at 9
# (at exactly 10, one request delayed by a loaded machine lets the pacer catch up into an
# 11th request within a second: a 429 seen once in a full `make test` run).
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null
emu POST /_emulator/rate_limit '{"per_second": 10}' >/dev/null
queue 10000 big
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_rate -c crm.resend_rate_limit=9 -c crm.resend_batch=on"
start=$(date +%s.%N)
q -c "SELECT crm.process_email_queue(10000)" >/dev/null
secs=$(echo "$(date +%s.%N) - $start" | bc -l)
check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'big' AND status = 'sent'")" "10000" "batch mode: a burst of 10,000 is sent"
check "$(count429)" "0" "... without a single 429 from a provider limited to 10 requests/s"
check "$(emu GET /_emulator/requests | python3 -c "import json,sys; d=json.load(sys.stdin); print(len(d), {r['path'] for r in d}, sum(len(r['body']) for r in d))")" \
  "100 {'/emails/batch'} 10000" "... in 100 requests to /emails/batch of 100 emails each"
check "$(echo "$secs >= 9.0" | bc -l)" "1" "... paced to 9 requests/s ($(printf '%.1f' "$secs") s)"
unset PGOPTIONS

# One 429 with Retry-After: 2 holds back the requests after it, not just its own message.
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null
emu POST /_emulator/faults '{"path": "/emails", "status": 429, "retry_after": "2"}' >/dev/null
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_rate -c crm.resend_rate_limit=0 -c crm.email_retry_base=0 -c crm.resend_batch=off"
queue 3 after429
q -c "SELECT crm.process_email_queue(3)" >/dev/null
gap=$(emu GET /_emulator/requests | python3 -c "import json,sys; d=json.load(sys.stdin); print('%.1f' % (d[1]['at'] - d[0]['at']))")
check "$(echo "$gap >= 1.9" | bc -l)" "1" "after a 429 with Retry-After: 2 the next message waits ${gap} s"
exit $failed
