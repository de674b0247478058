#!/usr/bin/env bash
# TAP: Stripe outbound through the installed extension against the emulator's Stripe API
# (tests/emulator/stripe_api.py): Checkout Sessions and PaymentIntents for invoices (the form
# body on the wire, idempotency on clicks, concurrency, retries after a rollback and amount
# changes, every error class, nothing stored on failure), the checkout webhooks (paid once),
# the invoice PDF (read back with poppler's pdftotext/pdfinfo) and the invoice email with the
# PDF attached (checked at the emulator).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_PAYMENTS:-18055}"
cleanup() { kill $emu_pid 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
TMP=$(mktemp -d)
chmod 755 "$TMP"
echo "1..34"
RUN=$(date +%s%N)  # webhook event ids are unique per run (crm.webhook_events outlives the accounts)

ACC=0000000f-0000-0000-0000-00000000b0b1
OTHER=0000000f-0000-0000-0000-00000000b0b2
DANA=0000000f-0000-0000-0000-0000000b0001
OTTO=0000000f-0000-0000-0000-0000000b0009
INV=0000000f-0000-0000-0000-00000000c001
INV2=0000000f-0000-0000-0000-00000000c002
PAID=0000000f-0000-0000-0000-00000000c003
VOID=0000000f-0000-0000-0000-00000000c004
THEIRS=0000000f-0000-0000-0000-00000000c009
STRIPE="-c crm.stripe_base_url=$EMU -c crm.stripe_secret_key=sk_test_payments -c crm.app_base_url=https://app.example.com -c crm.stripe_webhook_secret=whsec_payments"
export PGOPTIONS="$STRIPE -c crm.resend_base_url=$EMU -c crm.resend_api_key=re_payments -c crm.resend_batch=off -c crm.resend_rate_limit=0"
as() { PGOPTIONS="$PGOPTIONS -c role=authenticated -c request.jwt.claims={\"sub\":\"$1\"}" psql -X -q -At -d "$DB" -c "$2" 2>&1; }
code() { psql -X -q -At -d "$DB" -v VERBOSITY=verbose "$@" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1; }
stripe_requests() { requests | jq_ "len([r for r in d if r['path'].startswith('/v1/')])"; }
webhook() { # event json → status
  q -c "SELECT crm.ingest_webhook('stripe', tests.stripe_headers(\$b\$$1\$b\$, 'whsec_payments'), \$b\$$1\$b\$) ->> 'status'"; }

q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id IN ('$ACC', '$OTHER');
INSERT INTO crm.accounts (id, name, default_from_email) VALUES ('$ACC', 'Zürich Plumbing', 'billing@zurich.example'), ('$OTHER', 'Other', NULL);
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES
  ('$DANA', '$ACC', 'dana@zurich.example', 'Dana', 'owner'), ('$OTTO', '$OTHER', 'otto@other.example', 'Otto', 'owner');
INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, address) VALUES
  ('0000000f-0000-0000-0000-00000000d001', '$ACC', 'Zoë', 'Дмитриева', 'zoe@example.com', '12 Elm St, Indianapolis');
INSERT INTO crm.jobs (id, account_id, contact_id, title) VALUES
  ('0000000f-0000-0000-0000-00000000e001', '$ACC', '0000000f-0000-0000-0000-00000000d001', 'Water heater replacement');
INSERT INTO crm.invoices (id, account_id, job_id, contact_id, invoice_number, amount, currency, status, due_date) VALUES
  ('$INV', '$ACC', '0000000f-0000-0000-0000-00000000e001', '0000000f-0000-0000-0000-00000000d001', 'INV-2001', 123456, 'usd', 'sent', '2026-12-15'),
  ('$INV2', '$ACC', NULL, '0000000f-0000-0000-0000-00000000d001', 'INV-2002', 5000, 'eur', 'sent', NULL),
  ('$PAID', '$ACC', NULL, NULL, 'INV-2003', 9900, 'usd', 'paid', NULL),
  ('$VOID', '$ACC', NULL, NULL, 'INV-2004', 9900, 'usd', 'void', NULL),
  ('$THEIRS', '$OTHER', NULL, NULL, 'INV-9', 9900, 'usd', 'sent', NULL);
INSERT INTO crm.invoice_items (account_id, invoice_id, position, description, quantity, unit_amount)
SELECT '$ACC', '$INV', i, CASE i WHEN 1 THEN 'Water heater, 50 gal' WHEN 2 THEN 'Labour' ELSE 'Fitting ' || i END,
       CASE WHEN i = 2 THEN 3.5 ELSE 1 END, CASE i WHEN 1 THEN 89900 WHEN 2 THEN 9500 ELSE 1000 END
FROM generate_series(1, 10) i;
SQL

# --- Checkout -------------------------------------------------------------------------------
out=$(as "$DANA" "SELECT crm.create_invoice_checkout('$INV')")
SID=$(echo "$out" | jq_ "d['session_id']")
check "$(echo "$out" | jq_ "(d['url'].startswith('https://checkout.stripe.com/c/pay/cs_test_'), d['session_id'] == d['url'].rsplit('/', 1)[1], bool(d['expires_at']))")" \
  "(True, True, True)" "create_invoice_checkout (as the tenant): {url, session_id, expires_at}"
check "$(requests | jq_ "[(r['body']['mode'], r['body']['line_items[0][price_data][unit_amount]'], r['body']['line_items[0][price_data][currency]'], r['body']['line_items[0][quantity]'], r['body']['line_items[0][price_data][product_data][name]'], r['body']['metadata[invoice_id]'], r['body']['payment_intent_data[metadata][invoice_id]'], r['body']['customer_email'], r['body']['success_url']) for r in d if r['path'] == '/v1/checkout/sessions'][0]")" \
  "(['payment'], ['123456'], ['usd'], ['1'], ['Invoice INV-2001'], ['$INV'], ['$INV'], ['zoe@example.com'], ['https://app.example.com/invoices/$INV?paid=1'])" \
  "... one form-encoded POST /v1/checkout/sessions in bracket notation: amount, currency, metadata for the webhook, customer email, return pages"
check "$(requests | jq_ "[(r['headers']['authorization'], r['headers']['idempotency-key'].startswith('crm-checkout-')) for r in d if r['path'] == '/v1/checkout/sessions'][0]")" \
  "('Bearer sk_test_payments', True)" "... with the secret key and an Idempotency-Key derived from the invoice"
check "$(q -c "SELECT stripe_checkout_session_id = '$SID' AND stripe_checkout_amount = 123456 AND stripe_checkout_expires_at > now() FROM crm.invoices WHERE id = '$INV'")" "t" "the session is stored on the invoice"
check "$(as "$DANA" "SELECT crm.create_invoice_checkout('$INV') ->> 'session_id'")/$(stripe_requests)" "$SID/1" "a second click: the same session, no request"
# concurrency: two sessions click at once on a fresh invoice
emu POST /_emulator/reset >/dev/null
pids=()
for i in 1 2; do as "$DANA" "SELECT crm.create_invoice_checkout('$INV2') ->> 'session_id'" > "$TMP/c$i" & pids+=($!); done
wait "${pids[@]}"
check "$(cat "$TMP/c1")/$(stripe_requests)" "$(cat "$TMP/c2")/1" "two concurrent calls: one session, one request (the invoice row is locked)"
# a rollback after Stripe answered: the retry's key is the same, Stripe replays the session
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.invoices SET amount = 130000 WHERE id = '$INV'" >/dev/null
rolled=$(q -c "BEGIN" -c "SELECT crm.create_invoice_checkout('$INV') ->> 'session_id'" -c "ROLLBACK")
again=$(q -c "SELECT crm.create_invoice_checkout('$INV') ->> 'session_id'")
check "$([ "$rolled" = "$again" ] && [ "$again" != "$SID" ] && echo same)/$(requests | jq_ "[r['replayed'] or r['response'].get('id') == '$again' for r in d if r['path'] == '/v1/checkout/sessions']")" \
  "same/[True, True]" "a changed amount makes a new session; a retry after a rollback gets the same one back (the key is replayed)"
check "$(q -c "SELECT stripe_checkout_amount FROM crm.invoices WHERE id = '$INV'")/$(requests | jq_ "sorted(set(r['path'] for r in d if r['path'].endswith('/expire')))")" \
  "130000/['/v1/checkout/sessions/$SID/expire']" "... stored with its amount; the replaced session was expired at Stripe first (its link cannot be paid)"

# --- errors: each class, nothing stored, nothing sent for what cannot be paid ------------------
emu POST /_emulator/reset >/dev/null
# (the stored session has expired: no expire request comes before each creation)
q -c "UPDATE crm.invoices SET amount = 140000, stripe_checkout_expires_at = now() - interval '1 minute' WHERE id = '$INV'" >/dev/null
before=$(q -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE id = '$INV'")
emu POST /_emulator/stripe '{"errors": [{"status": 402, "type": "card_error", "code": "card_declined", "message": "Your card was declined."},
  {"status": 400, "type": "invalid_request_error", "code": "parameter_invalid", "param": "customer_email", "message": "Invalid email address: x"},
  {"status": 401, "type": "authentication_error", "message": "Invalid API Key provided: sk_test_****"},
  {"status": 429, "type": "rate_limit_error", "message": "Too many requests hit the API too quickly."},
  {"status": 500, "type": "api_error", "message": "Something went wrong on Stripe'"'"'s end."}]}' >/dev/null
check "$(code -c "SELECT crm.create_invoice_checkout('$INV')")/$(psql -X -q -At -d "$DB" -c "SELECT crm.create_invoice_checkout('$INV')" 2>&1 | grep -o 'param customer_email')/$(psql -X -q -At -d "$DB" -c "SELECT crm.create_invoice_checkout('$INV')" 2>&1 | grep -o 'check crm.stripe_secret_key')/$(code -c "SELECT crm.create_invoice_checkout('$INV')")/$(code -c "SELECT crm.create_invoice_checkout('$INV')")" \
  "22023/param customer_email/check crm.stripe_secret_key/53400/08000" "card_error 22023; invalid_request_error names its param; authentication_error says check crm.stripe_secret_key; rate limit 53400; api_error 08000"
check "$(q -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE id = '$INV'")" "$before" "... and after each failure the invoice is as it was"
check "$(PGOPTIONS="$PGOPTIONS -c crm.stripe_secret_key=sk_live_wrong" psql -X -q -At -d "$DB" -c "SELECT crm.create_invoice_checkout('$INV')" 2>&1 | grep -o 'authentication_error: the API key was refused')/$(PGOPTIONS="$PGOPTIONS -c crm.stripe_secret_key=" code -c "SELECT crm.create_invoice_checkout('$INV')")" \
  "authentication_error: the API key was refused/55000" "a key Stripe refuses: said without Stripe's text (it quotes the key's last digits); no key at all: 55000 before any request"
q -c "UPDATE crm.invoices SET amount = 30 WHERE id = '$INV2'" >/dev/null
check "$(psql -X -q -At -d "$DB" -c "SELECT crm.create_invoice_checkout('$INV2')" 2>&1 | grep -o 'Amount must be at least.*(amount_too_small, param line_items\[0\]\[price_data\]\[unit_amount\])')" \
  "Amount must be at least \$0.50 usd (amount_too_small, param line_items[0][price_data][unit_amount])" "Stripe's own validation comes back with its code and param"
before_requests=$(stripe_requests)
check "$(code -c "SELECT crm.create_invoice_checkout('$PAID')")/$(code -c "SELECT crm.create_invoice_checkout('$VOID')")/$(code -c "SELECT crm.create_payment_intent('$PAID')")/$(stripe_requests)" \
  "55000/55000/55000/$before_requests" "a paid or void invoice is refused (55000) without a request"
check "$(as "$DANA" "SELECT crm.create_invoice_checkout('$THEIRS')" | grep -o 'no invoice')/$(code -c "SET role anon" -c "SELECT crm.create_invoice_checkout('$INV')")/$(as "$DANA" "UPDATE crm.invoices SET stripe_checkout_url = 'https://evil.example' WHERE id = '$INV'" | grep -o 'permission denied')" \
  "no invoice/42501/permission denied" "another account's invoice: 'no invoice'; anon: 42501; tenants cannot write the checkout columns"

# --- PaymentIntent --------------------------------------------------------------------------
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.invoices SET amount = 5000 WHERE id = '$INV2'" >/dev/null
pi=$(as "$DANA" "SELECT crm.create_payment_intent('$INV2')")
PI=$(echo "$pi" | jq_ "d['payment_intent_id']")
check "$(echo "$pi" | jq_ "d['client_secret'].startswith(d['payment_intent_id'] + '_secret_')")/$(q -c "SELECT stripe_payment_intent_id FROM crm.invoices WHERE id = '$INV2'")" "True/$PI" \
  "create_payment_intent: {client_secret, payment_intent_id}, the id stored on the invoice"
check "$(as "$DANA" "SELECT crm.create_payment_intent('$INV2') ->> 'payment_intent_id'")/$(requests | jq_ "[(r['body']['amount'], r['body']['currency'], r['body']['metadata[invoice_id]'], r['body']['automatic_payment_methods[enabled]'], r['replayed'] or 'idempotent-replayed' in str(r['response'])) for r in d if r['path'] == '/v1/payment_intents'][0][:4]")" \
  "$PI/(['5000'], ['eur'], ['$INV2'], ['true'])" "asked again: the same intent (Idempotency-Key replayed by Stripe); amount, currency, metadata on the wire"
q -c "UPDATE crm.invoices SET amount = 6000 WHERE id = '$INV2'" >/dev/null
PI2=$(as "$DANA" "SELECT crm.create_payment_intent('$INV2') ->> 'payment_intent_id'")
check "$([ "$PI2" != "$PI" ] && echo new)/$(requests | jq_ "[r['path'] for r in d if r['path'].endswith('/cancel')]")/$(q -c "SELECT stripe_payment_intent_id FROM crm.invoices WHERE id = '$INV2'")" \
  "new/['/v1/payment_intents/$PI/cancel']/$PI2" "a changed amount: a new intent, and the one it replaces is cancelled at Stripe"
q -c "UPDATE crm.invoices SET amount = 5000 WHERE id = '$INV2'" >/dev/null

# --- the webhooks: paid once -----------------------------------------------------------------
SID=$(q -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE id = '$INV'")
AMOUNT=$(q -c "SELECT amount FROM crm.invoices WHERE id = '$INV'")
completed="{\"id\":\"evt_cs_1_$RUN\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":1764000000,\"data\":{\"object\":{\"id\":\"$SID\",\"object\":\"checkout.session\",\"payment_status\":\"paid\",\"payment_intent\":\"pi_from_checkout\",\"amount_total\":$AMOUNT,\"currency\":\"usd\",\"metadata\":{\"invoice_id\":\"$INV\"}}}}"
check "$(webhook "$completed")/$(q -c "SELECT status || ' ' || (paid_at IS NOT NULL) || ' ' || stripe_payment_intent_id FROM crm.invoices WHERE id = '$INV'")" \
  "processed/paid true pi_from_checkout" "checkout.session.completed (paid): the invoice is paid, its intent recorded"
intent_event=$(q -c "SELECT tests.stripe_event('evt_pi_1_$RUN', 'payment_intent.succeeded', 'pi_from_checkout', '$INV', $AMOUNT)")
webhook "$intent_event" >/dev/null
check "$(q -c "SELECT count(*) || ' ' || sum(amount) FROM crm.payments WHERE invoice_id = '$INV'")/$(q -c "SELECT status FROM crm.jobs WHERE id = '0000000f-0000-0000-0000-00000000e001'")" \
  "1 $AMOUNT/paid" "... and the payment_intent.succeeded Stripe sends too: still one payment (not counted twice); the job is paid"
second=$(q -c "SELECT tests.stripe_event('evt_pi_2_$RUN', 'payment_intent.succeeded', 'pi_old_link', '$INV', $AMOUNT)")
webhook "$second" >/dev/null
check "$(q -c "SELECT count(*) || ' ' || (max(mismatch) LIKE 'the invoice was already paid when this payment arrived: refund it') FROM crm.payments WHERE invoice_id = '$INV' AND stripe_payment_intent_id = 'pi_old_link'")/$(q -c "SELECT stripe_payment_intent_id FROM crm.invoices WHERE id = '$INV'")" \
  "1 true/pi_from_checkout" "a second payment for the paid invoice (an old link) is recorded and flagged for a refund; the invoice keeps the intent that paid it"
foreign="{\"id\":\"evt_pi_3_$RUN\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\"created\":1764000000,\"data\":{\"object\":{\"id\":\"pi_foreign\",\"object\":\"payment_intent\",\"amount\":5000,\"amount_received\":5000,\"currency\":\"eur\",\"metadata\":{\"invoice_id\":\"$INV2\",\"account_id\":\"$OTHER\"}}}}"
check "$(webhook "$foreign")/$(q -c "SELECT status FROM crm.invoices WHERE id = '$INV2'")" "ignored/sent" "a payment whose metadata names another account does not land on the invoice"
expired="{\"id\":\"evt_cs_2_$RUN\",\"object\":\"event\",\"type\":\"checkout.session.expired\",\"created\":1764000001,\"data\":{\"object\":{\"id\":\"$(q -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE id = '$INV2'")\",\"object\":\"checkout.session\",\"payment_status\":\"unpaid\",\"status\":\"expired\"}}}"
S2=$(q -c "SELECT stripe_checkout_session_id FROM crm.invoices WHERE id = '$INV2'")
check "$(webhook "$expired")/$(q -c "SELECT stripe_checkout_expires_at <= now() FROM crm.invoices WHERE id = '$INV2'")/$(as "$DANA" "SELECT crm.create_invoice_checkout('$INV2') ->> 'session_id' <> '$S2'")" "processed/t/t" \
  "checkout.session.expired ends the stored session: the next call makes a new one (not Stripe's replay of the expired one)"
unpaid="{\"id\":\"evt_cs_3_$RUN\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":1764000002,\"data\":{\"object\":{\"id\":\"cs_x\",\"object\":\"checkout.session\",\"payment_status\":\"unpaid\",\"payment_intent\":null,\"metadata\":{\"invoice_id\":\"$INV2\"}}}}"
check "$(webhook "$unpaid")/$(q -c "SELECT status FROM crm.invoices WHERE id = '$INV2'")" "ignored/sent" "a completed session not yet paid (delayed methods) marks nothing"

# --- the PDF ---------------------------------------------------------------------------------
q -c "UPDATE crm.invoices SET status = 'sent', paid_at = NULL WHERE id = '$INV'" >/dev/null
q -c "SELECT encode(crm.invoice_pdf('$INV'), 'base64')" | base64 -d > "$TMP/inv.pdf"
pdftotext -layout "$TMP/inv.pdf" "$TMP/inv.txt" 2>/dev/null
check "$(head -c 5 "$TMP/inv.pdf")/$(pdfinfo "$TMP/inv.pdf" 2>/dev/null | sed -n 's/^Pages: *//p')/$([ "$(stat -c %s "$TMP/inv.pdf")" -lt 102400 ] && echo small)" \
  "%PDF-/1/small" "invoice_pdf: a PDF, one page, under 100 KB ($(stat -c %s "$TMP/inv.pdf") bytes)"
found() { local f=$1; shift; for p in "$@"; do grep -qF -- "$p" "$f" && printf '%s;' "$p"; done; }
check "$(found "$TMP/inv.txt" 'INV-2001' 'Zoë Дмитриева' 'Zürich Plumbing' '$1,400.00' 'Water heater, 50 gal' 'Dec 15, 2026')" \
  'INV-2001;Zoë Дмитриева;Zürich Plumbing;$1,400.00;Water heater, 50 gal;Dec 15, 2026;' \
  "... its text (pdftotext): number, the customer's non-Latin name, company, amount due, a line item, due date"
check "$(found "$TMP/inv.txt" '$899.00' '$332.50' 'Adjustments')" '$899.00;$332.50;Adjustments;' "... line totals (3.5 x \$95.00), and the difference to the amount due as an adjustment"
check "$(as "$OTTO" "SELECT length(crm.invoice_pdf('$INV'))" | grep -o 'no invoice')/$(code -c "SET role anon" -c "SELECT crm.invoice_pdf('$INV')")" "no invoice/42501" "another account's invoice: 'no invoice'; anon: 42501"
q -c "SELECT encode(crm.invoice_pdf('$PAID'), 'base64')" | base64 -d > "$TMP/paid.pdf"
check "$(pdftotext "$TMP/paid.pdf" - 2>/dev/null | grep -c PAID)" "1" "a paid invoice's PDF says PAID"

# --- the invoice email ------------------------------------------------------------------------
emu POST /_emulator/reset >/dev/null
q -c "UPDATE crm.invoices SET status = 'sent', stripe_checkout_session_id = NULL, stripe_checkout_expires_at = NULL WHERE id = '$INV'" >/dev/null
MAIL=$(as "$DANA" "SELECT crm.send_invoice_email('$INV')")
check "$(as "$DANA" "SELECT crm.send_invoice_email('$INV')")" "$MAIL" "send_invoice_email: a second click the same day is the same email"
q -c "SELECT crm.process_email_queue(10)" >/dev/null
requests > "$TMP/reqs.json"
python3 - "$TMP" <<'EOF' > "$TMP/mail.txt"
import base64, json, sys
d = json.load(open(sys.argv[1] + "/reqs.json"))
mail = [r["body"] for r in d if r["path"] == "/emails"][0]
att = mail["attachments"][0]
open(sys.argv[1] + "/att.pdf", "wb").write(base64.b64decode(att["content"]))
print(mail["to"], mail["subject"], att["filename"], "checkout.stripe.com/c/pay/cs_test_" in mail["html"])
EOF
check "$(cat "$TMP/mail.txt")" "['zoe@example.com'] Invoice INV-2001: \$1,400.00 due Dec 15, 2026 Invoice-INV-2001.pdf True" \
  "... delivered through Resend: to the contact, the Invoice Notification subject, a pay link to a new Checkout Session, the PDF attached"
check "$(pdftotext "$TMP/att.pdf" - 2>/dev/null | grep -c -e 'INV-2001' -e 'Pay online')/$(cmp -s <(pdftotext "$TMP/att.pdf" - 2>/dev/null) <(q -c "SELECT encode(crm.invoice_pdf('$INV'), 'base64')" | base64 -d | pdftotext - - 2>/dev/null) && echo same)" \
  "2/same" "... the attachment is the invoice's PDF (same text as crm.invoice_pdf), with the pay link on it"
emu POST /_emulator/stripe '{"errors": [{"status": 500, "type": "api_error", "message": "Stripe is down."}]}' >/dev/null
q -c "UPDATE crm.invoices SET stripe_checkout_expires_at = now() WHERE id = '$INV2'" >/dev/null
check "$(psql -X -q -At -d "$DB" -c "SELECT crm.send_invoice_email('$INV2', 'ops@example.com') IS NOT NULL" 2>&1 | tr '\n' ' ')" \
  "WARNING:  invoice INV-2002 goes without a Checkout link: Stripe api_error: Stripe is down.; try again later t " "Stripe down: the invoice email is still queued (with the app's invoice page as its link), a WARNING says why"
check "$(code -c "SELECT crm.send_invoice_email('$VOID')")/$(q -c "UPDATE crm.contacts SET email = NULL WHERE id = '0000000f-0000-0000-0000-00000000d001'" -c "SELECT 1" >/dev/null; code -c "SELECT crm.send_invoice_email('$INV2', NULL, false)")" \
  "55000/22023" "a void invoice: 55000; no recipient at all: 22023"
check "$(q -c "SELECT 1")" "1" "the server is still up"
exit $failed
