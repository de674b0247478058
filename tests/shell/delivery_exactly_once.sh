#!/usr/bin/env bash
# TAP: nothing lost, nothing sent twice, in single mode (one email per request) and in batch
# mode (POST /emails/batch, up to 100 per request).
#  (1) 5,000 queued emails, drained by the two workers (crm.worker_count = 2 in the test
#      cluster) and three concurrent process_email_queue loops at once: every email reaches
#      the provider exactly once, under one idempotency key.
#  (2) kill -9 of a worker in the middle of 1,000 emails (Postgres then resets every backend):
#      after recovery every email is sent, and any request the provider saw twice came again
#      under the same idempotency key with the same emails, so the provider dropped the copy.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_ONCE:-18028}"
cleanup() {
  q -c "ALTER SYSTEM RESET crm.worker_enabled" -c "ALTER SYSTEM RESET crm.resend_base_url" -c "ALTER SYSTEM RESET crm.resend_api_key" \
    -c "ALTER SYSTEM RESET crm.resend_rate_limit" -c "ALTER SYSTEM RESET crm.email_lease" -c "ALTER SYSTEM RESET crm.resend_batch" \
    -c "SELECT pg_reload_conf()" >/dev/null 2>&1
  kill $emu_pid 2>/dev/null
}
trap cleanup EXIT
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_once -c crm.resend_rate_limit=0"
# What the provider did with what it received: emails accepted (2xx, not a replay), distinct
# recipients among them, recipients seen under more than one key, repeated requests (same key
# and emails as an earlier one) that were accepted again (a duplicate delivery), replays, and
# refusals while the first request with the key was still in progress (409, retried later).
stats() { curl -s -m 120 "$EMU/_emulator/requests" | python3 -c "
import json, sys, collections
d = [r for r in json.load(sys.stdin) if r['path'] in ('/emails', '/emails/batch')]
ok = lambda r: not r['replayed'] and isinstance(r.get('response'), dict) and 'statusCode' not in r['response']
accepted, keys_of, seen, dup = [], collections.defaultdict(set), set(), 0
for r in d:
    # a request the kill -9 cut off mid-body reached the emulator without one: it carried no email
    if not isinstance(r['body'], (list, dict)):
        continue
    key = r['headers'].get('idempotency-key')
    emails = r['body'] if isinstance(r['body'], list) else [r['body']]
    for e in emails:
        keys_of[e['to'][0]].add(key)
        if ok(r):
            accepted.append(e['to'][0])
    sig = (key, json.dumps(r['body'], sort_keys=True))
    if sig in seen and ok(r):
        dup += 1
    seen.add(sig)
conflicts = sum(1 for r in d if (r.get('response') or {}).get('name') == 'concurrent_idempotent_requests')
print(len(accepted), len(set(accepted)), sum(1 for k in keys_of.values() if len(k) > 1), dup, sum(1 for r in d if r['replayed']), conflicts)"; }
queue() { # how many emails, marker
  q -c "SELECT count(*) FROM generate_series(1, $1 / 100) b, LATERAL crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
          'account_id', '0000000f-0000-0000-0000-00000000ffff', 'to', 'r' || b || '-' || i || '@example.com',
          'subject', '$2', 'text', 'message ' || i)) FROM generate_series(1, 100) i))" >/dev/null; }
echo "1..14"

q <<SQL
DELETE FROM crm.accounts WHERE id = '0000000f-0000-0000-0000-00000000ffff';
INSERT INTO crm.accounts (id, name) VALUES ('0000000f-0000-0000-0000-00000000ffff', 'Exactly once');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
ALTER SYSTEM SET crm.resend_base_url = '$EMU';
ALTER SYSTEM SET crm.resend_api_key = 're_once';
ALTER SYSTEM SET crm.resend_rate_limit = 0;
ALTER SYSTEM SET crm.email_lease = '5s';
SELECT pg_reload_conf();
SQL
left() { q -c "SELECT count(*) FROM crm.email_queue WHERE subject = '$1' AND status <> 'sent'" 2>/dev/null; }

for mode in off on; do
  label=$([ $mode = on ] && echo "batch mode" || echo "single mode")
  q -c "ALTER SYSTEM SET crm.resend_batch = $mode" -c "SELECT pg_reload_conf()" >/dev/null
  export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_once -c crm.resend_rate_limit=0 -c crm.resend_batch=$mode"
  curl -s -X POST "$EMU/_emulator/reset" >/dev/null

  # (1) Two workers + three process_email_queue loops, together.
  queue 5000 "once-$mode"
  q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
  loops=()
  for _ in 1 2 3; do
    ( for _ in $(seq 400); do
        [ "$(left "once-$mode")" = 0 ] && break
        q -c "SELECT crm.process_email_queue(50)" >/dev/null
      done ) &
    loops+=($!)
  done
  wait "${loops[@]}"   # not a bare wait: the emulator is a child too
  for _ in $(seq 300); do [ "$(left "once-$mode")" = 0 ] && break; sleep 0.1; done
  check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once-$mode' AND status = 'sent'")" "5000" "$label: all 5,000 emails are sent"
  read -r accepted distinct multikey dup replays conflicts <<< "$(stats)"
  check "$accepted/$distinct/$multikey" "5000/5000/0" "$label: the provider accepted 5,000 emails for 5,000 recipients, none twice, each under one key"
  check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'once-$mode' AND attempts <> 1")" "0" "$label: each row was claimed once"

  # (2) kill -9 a worker mid-batch.
  q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
  curl -s -X POST "$EMU/_emulator/reset" >/dev/null
  # A slower provider, so that the kill lands mid-way: 5 ms per email, 500 ms per batch.
  curl -s -X POST "$EMU/_emulator/faults" -H 'Content-Type: application/json' \
    -d "[{\"path\": \"/emails\", \"delay_ms\": 5, \"count\": 100000}, {\"path\": \"/emails/batch\", \"delay_ms\": 500, \"count\": 1000}]" >/dev/null
  queue 1000 "crash-$mode"
  q -c "ALTER SYSTEM SET crm.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  pid=$(q -c "SELECT crm.email_worker_pid()")
  sent_before=$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'crash-$mode' AND status = 'sent'")
  kill -9 "$pid"
  # Postgres answers a crashed backend by resetting every session; wait until it accepts again.
  for _ in $(seq 200); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
  check "$([ "$sent_before" -gt 0 ] && [ "$sent_before" -lt 1000 ] && echo mid-batch)" "mid-batch" "$label: a worker was killed mid-way ($sent_before of 1,000 sent)"
  for _ in $(seq 600); do [ "$(left "crash-$mode")" = 0 ] && break; sleep 0.1; done
  check "$(q -c "SELECT count(*) FROM crm.email_queue WHERE subject = 'crash-$mode' AND status = 'sent'")" "1000" "$label: after recovery all 1,000 are sent: nothing lost"
  read -r accepted distinct multikey dup replays conflicts <<< "$(stats)"
  check "$accepted/$distinct/$multikey" "1000/1000/0" "$label: the provider accepted each of the 1,000 once, each under one key"
  check "$dup" "0" "$label: no repeated request was accepted again ($replays replayed, $conflicts refused while the first was in progress)"
  q -c "ALTER SYSTEM SET crm.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
done

q -c "ALTER SYSTEM RESET crm.resend_batch" -c "SELECT pg_reload_conf()" >/dev/null
exit $failed
