#!/usr/bin/env bash
# TAP: Resend batch mode (crm.resend_batch = on, the default). Due emails share POST
# /emails/batch requests of at most 100, keyed by a send_key stored at claim time; a retried
# group goes out again whole, in the same order, under the same key (the provider replays
# it); rows with attachments and lone rows go out alone; a row whose group is in doubt cannot
# be cancelled alone.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_BATCH:-18032}"
trap 'kill $emu_pid 2>/dev/null' EXIT

export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_batch -c crm.resend_rate_limit=0 -c crm.resend_batch=on -c crm.email_retry_base=300"
ACCT=0000000e-0000-0000-0000-0000000000ba
queue() { # how many, subject, extra jsonb
  q -c "SELECT count(*) FROM crm.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('account_id', '$ACCT',
          'to', 'b' || i || '@example.com', 'subject', '$2', 'text', 'message ' || i) || '${3:-{\}}'::jsonb)
          FROM generate_series(1, $1) i))" >/dev/null; }
echo "1..18"

q <<SQL
DELETE FROM crm.accounts WHERE id = '$ACCT';
INSERT INTO crm.accounts (id, name, default_from_email) VALUES ('$ACCT', 'Batch', 'CRM <noreply@317plumber.com>');
UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing');
SQL
emu POST /_emulator/reset >/dev/null

# 1. 250 due emails: three requests of 100, 100 and 50, each under its own key.
queue 100 g1; queue 100 g2; queue 50 g3
check "$(process 250)" '{"sent": 250, "failed": 0, "claimed": 250, "retried": 0}' "250 due emails are sent"
r=$(requests)
check "$(echo "$r" | jq_ '[(x["path"], len(x["body"])) for x in d]')" "[('/emails/batch', 100), ('/emails/batch', 100), ('/emails/batch', 50)]" \
  "in three POST /emails/batch requests of 100, 100 and 50"
check "$(echo "$r" | jq_ 'len({x["headers"]["idempotency-key"] for x in d})')" "3" "each request under its own Idempotency-Key"
check "$(q -c "SELECT count(DISTINCT send_key) || ',' || count(*) FILTER (WHERE send_key IS NULL) FROM crm.email_queue WHERE account_id = '$ACCT'")" "3,0" \
  "each row keeps the key of the request it went out in (its send_key)"
check "$(q -c "SELECT count(*) FROM crm.email_queue q WHERE account_id = '$ACCT' AND metadata->>'provider_message_id' IS NOT NULL")" "250" \
  "every row has its own provider message id from the batch answer"
check "$(echo "$r" | jq_ 'json.dumps([e for e in d[0]["body"] if e["to"] == ["b1@example.com"]][0], sort_keys=True)')" \
  '{"from": "CRM <noreply@317plumber.com>", "subject": "g1", "text": "message 1", "to": ["b1@example.com"]}' "each email in the batch has the single-send shape"
ids_match=$(q -c "SELECT string_agg(metadata->>'provider_message_id', ',' ORDER BY id) FROM crm.email_queue WHERE account_id = '$ACCT' AND subject = 'g3'")
check "$ids_match" "$(echo "$r" | jq_ '",".join(e["id"] for e in d[2]["response"]["data"])')" "ids are matched to rows in request order (rows ordered by id)"

# 2. A 503 on a batch: the group is retried whole, same key, same emails in the same order.
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled')" >/dev/null
emu POST /_emulator/faults '{"path": "/emails/batch", "status": 503}' >/dev/null
queue 40 retry
check "$(process)" '{"sent": 0, "failed": 0, "claimed": 40, "retried": 40}' "a 503 on a batch retries all 40"
victim=$(q -c "SELECT id FROM crm.email_queue WHERE subject = 'retry' LIMIT 1")
check "$(q -c "SELECT crm.cancel_email('$victim')")" "f" "a row of a group in doubt cannot be cancelled alone"
queue 5 newcomers
q -c "UPDATE crm.email_queue SET next_attempt_at = now() WHERE subject = 'retry'" >/dev/null
process 10 >/dev/null
r=$(requests)
check "$(echo "$r" | jq_ 'sorted(len(x["body"]) for x in d)')" "[5, 40, 40]" "the retry sends the whole group (40, although max_items was 10), newcomers in a new request"
check "$(echo "$r" | jq_ 'len({(x["headers"]["idempotency-key"], json.dumps(x["body"])) for x in d if len(x["body"]) == 40})')" "1" \
  "... under the first request's key, with the same emails in the same order"
check "$(q -c "SELECT string_agg(DISTINCT status, ',') FROM crm.email_queue WHERE subject IN ('retry', 'newcomers')")" "sent" "all are sent"

# 3. Attachments (the batch endpoint takes none) and lone rows go out alone, keyed by row id.
emu POST /_emulator/reset >/dev/null
queue 3 attached '{"attachments": [{"filename": "a.txt", "content_base64": "aGk="}]}'
queue 2 plain
process >/dev/null
r=$(requests)
check "$(echo "$r" | jq_ 'sorted(x["path"] for x in d)')" "['/emails', '/emails', '/emails', '/emails/batch']" "3 emails with attachments alone, 2 plain ones in a batch"
single_keys=$(echo "$r" | jq_ '",".join(sorted(x["headers"]["idempotency-key"] for x in d if x["path"] == "/emails"))')
check "$single_keys" "$(q -c "SELECT string_agg(id::text, ',' ORDER BY id::text) FROM crm.email_queue WHERE subject = 'attached'")" "... each keyed by its row id"
emu POST /_emulator/reset >/dev/null
queue 1 lone
process >/dev/null
check "$(requests | jq_ '[x["path"] for x in d]')" "['/emails']" "a lone due email goes to POST /emails"

# 4. A group is claimed whole by one claimer: while another claimer holds the group's lock,
#    none of it is claimed; afterwards all of it at once.
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null
queue 10 grouped
q -c "SELECT json_array_length(crm._claim_emails(10, 0.001, true))" >/dev/null   # claimed, then its sender "died"
key=$(q -c "SELECT DISTINCT send_key FROM crm.email_queue WHERE subject = 'grouped'")
q -c "BEGIN" -c "SELECT pg_advisory_xact_lock(7461, hashtext('$key'))" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null &
holder=$!
sleep 0.5
check "$(q -c "SELECT json_array_length(crm._claim_emails(3, 60, true))")" "0" "while another claimer holds a group, no row of it is claimed"
wait $holder
check "$(q -c "SELECT json_array_length(crm._claim_emails(3, 60, true))")" "10" "... then the whole group at once (10 rows for max_items 3)"
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE subject = 'grouped'" >/dev/null

# 5. Batch mode off: one request per email.
emu POST /_emulator/reset >/dev/null
queue 3 unbatched
PGOPTIONS="$PGOPTIONS -c crm.resend_batch=off" q -c "SELECT crm.process_email_queue()" >/dev/null
check "$(requests | jq_ '[x["path"] for x in d]')" "['/emails', '/emails', '/emails']" "crm.resend_batch = off: one request per email"
exit $failed
