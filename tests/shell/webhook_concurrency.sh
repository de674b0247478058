#!/usr/bin/env bash
# TAP: the same webhook delivered by 8 concurrent sessions has exactly one effect.
# Runs against the SQL test cluster (PGHOST/PGPORT/PGUSER set, database crm_test), with real
# concurrent connections: (1) all 8 released at the same instant; (2) one session holds its
# first delivery open while 7 copies arrive, then commits; (3) the same, but the first rolls
# back: one of the waiting copies must then apply it, once.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
export PGOPTIONS="-c crm.stripe_webhook_secret=whsec_concurrency"
echo "1..9"

q <<'SQL'
DELETE FROM crm.accounts WHERE id = '0000000c-0000-0000-0000-00000000cccc';
INSERT INTO crm.accounts (id, name) VALUES ('0000000c-0000-0000-0000-00000000cccc', 'Concurrency');
INSERT INTO crm.invoices (id, account_id, invoice_number, amount, status)
SELECT ('0000000c-0000-0000-0000-00000000000' || n)::uuid, '0000000c-0000-0000-0000-00000000cccc', 'CC-' || n, 1000, 'sent'
FROM generate_series(1, 3) n;
DELETE FROM crm.webhook_events WHERE event_id LIKE 'evt_cc_%';
SQL

body() { q -c "SELECT tests.stripe_event('evt_cc_$1', 'payment_intent.succeeded', 'pi_cc_$1', '0000000c-0000-0000-0000-00000000000$1', 1000)"; }
headers() { q -c "SELECT tests.stripe_headers(\$\$$1\$\$, 'whsec_concurrency')"; }

# (1) 8 sessions released together.
b1=$(body 1); h1=$(headers "$b1")
start=$(q -c "SELECT (clock_timestamp() + interval '1.5 s')::text")
out=$(mktemp)
for i in $(seq 8); do
  q -c "SELECT pg_sleep_until('$start')" -c "SELECT crm.ingest_webhook('stripe', \$\$$h1\$\$, \$\$$b1\$\$) ->> 'status'" >> "$out" &
done
wait
check "$(grep -c processed "$out")" 1 "8 simultaneous deliveries: exactly one processed"
check "$(grep -c duplicate "$out")" 7 "... and 7 duplicates"
check "$(q -c "SELECT count(*) FROM crm.payments WHERE stripe_payment_intent_id = 'pi_cc_1'")" 1 "... one payment"

# (2) the first delivery's transaction stays open while 7 copies arrive.
b2=$(body 2); h2=$(headers "$b2")
: > "$out"
q -c "BEGIN" -c "SELECT crm.ingest_webhook('stripe', \$\$$h2\$\$, \$\$$b2\$\$) ->> 'status'" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >> "$out" &
sleep 0.5
for i in $(seq 7); do q -c "SELECT crm.ingest_webhook('stripe', \$\$$h2\$\$, \$\$$b2\$\$) ->> 'status'" >> "$out" & done
wait
check "$(grep -c processed "$out")/$(grep -c duplicate "$out")" "1/7" "copies arriving during the first's transaction wait, then are duplicates"
check "$(q -c "SELECT count(*) FROM crm.payments WHERE stripe_payment_intent_id = 'pi_cc_2'")" 1 "... one payment"

# (3) the first delivery rolls back: exactly one of the waiting copies applies it.
b3=$(body 3); h3=$(headers "$b3")
: > "$out"
q -c "BEGIN" -c "SELECT crm.ingest_webhook('stripe', \$\$$h3\$\$, \$\$$b3\$\$) ->> 'status'" -c "SELECT pg_sleep(1.5)" -c "ROLLBACK" > /dev/null &
sleep 0.5
for i in $(seq 7); do q -c "SELECT crm.ingest_webhook('stripe', \$\$$h3\$\$, \$\$$b3\$\$) ->> 'status'" >> "$out" & done
wait
check "$(grep -c processed "$out")/$(grep -c duplicate "$out")" "1/6" "after a rollback, one waiting copy processes the event"
check "$(q -c "SELECT count(*) FROM crm.payments WHERE stripe_payment_intent_id = 'pi_cc_3'")" 1 "... one payment"
check "$(q -c "SELECT string_agg(status, ',' ORDER BY invoice_number) FROM crm.invoices WHERE account_id = '0000000c-0000-0000-0000-00000000cccc'")" \
      "paid,paid,paid" "all three invoices paid"
check "$(q -c "SELECT count(*) FROM crm.webhook_events WHERE event_id LIKE 'evt_cc_%'")" 3 "three events stored, once each"
rm -f "$out"
exit $failed
