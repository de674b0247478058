#!/usr/bin/env bash
# Payments benchmark: crm.invoice_pdf of a 10-line invoice (target p50 < 20 ms), its size, and
# crm.create_invoice_checkout against the emulator's Stripe API (a request each, and the
# no-request answer for a click on an open session).
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
EMU_PORT=${CRM_BENCH_EMULATOR_PORT_PAY:-18037}
EMU=http://127.0.0.1:$EMU_PORT
python3 tests/emulator/emulator.py "$EMU_PORT" > /tmp/crm_bench_pay_emulator.out 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q ready /tmp/crm_bench_pay_emulator.out 2>/dev/null && break; sleep 0.1; done
export PGOPTIONS="-c crm.stripe_base_url=$EMU -c crm.stripe_secret_key=sk_test_bench -c crm.app_base_url=https://app.example.com -c crm.stripe_rate_limit=0"
ACC=0000000b-0000-0000-0000-0000000000b5
psql -X -q -At <<SQL
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Payments bench') ON CONFLICT DO NOTHING;
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, address)
VALUES ('0000000b-0000-0000-0000-0000000000c5', '$ACC', 'Zoë', 'Дмитриева', 'zoe@example.com', '12 Elm St, Indianapolis')
ON CONFLICT DO NOTHING;
INSERT INTO crm.invoices (id, account_id, contact_id, invoice_number, amount, currency, status, due_date)
SELECT ('0000000b-0000-0000-0000-0000000d' || lpad(i::text, 4, '0'))::uuid, '$ACC', '0000000b-0000-0000-0000-0000000000c5',
       'BENCH-' || i, 100000 + i, 'usd', 'sent', current_date + 14
FROM generate_series(1, 200) i ON CONFLICT DO NOTHING;
INSERT INTO crm.invoice_items (account_id, invoice_id, position, description, quantity, unit_amount)
SELECT '$ACC', '0000000b-0000-0000-0000-0000000d0001', k, 'Line item number ' || k, 1 + k % 3, 1000 * k
FROM generate_series(1, 10) k WHERE NOT EXISTS (SELECT 1 FROM crm.invoice_items WHERE invoice_id = '0000000b-0000-0000-0000-0000000d0001');
CREATE TEMP TABLE t (ms float8, bytes int);
DO \$\$
DECLARE s timestamptz; b bytea;
BEGIN
    FOR i IN 1..200 LOOP
        s := clock_timestamp();
        b := crm.invoice_pdf('0000000b-0000-0000-0000-0000000d0001');
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000, length(b));
    END LOOP;
END \$\$;
SELECT format('invoice_pdf, 10-line invoice, 200 calls: p50 %s ms, p95 %s ms (target p50 < 20 ms); %s bytes (target < 100 KB)',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2), max(bytes))
FROM t;
TRUNCATE t;
DO \$\$
DECLARE s timestamptz;
BEGIN
    FOR i IN 1..200 LOOP
        s := clock_timestamp();
        PERFORM crm.create_invoice_checkout(('0000000b-0000-0000-0000-0000000d' || lpad(i::text, 4, '0'))::uuid);
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000, 0);
    END LOOP;
END \$\$;
SELECT format('create_invoice_checkout, 200 invoices, a Stripe request each (emulator): p50 %s ms, p95 %s ms',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2))
FROM t;
TRUNCATE t;
DO \$\$
DECLARE s timestamptz;
BEGIN
    FOR i IN 1..200 LOOP
        s := clock_timestamp();
        PERFORM crm.create_invoice_checkout(('0000000b-0000-0000-0000-0000000d' || lpad(i::text, 4, '0'))::uuid);
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000, 0);
    END LOOP;
END \$\$;
SELECT format('create_invoice_checkout again (open sessions: no request): p50 %s ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3))
FROM t;
SQL
