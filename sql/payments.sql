-- Stripe outbound (issue 15): a Checkout Session or a PaymentIntent for an invoice, with
-- idempotency keys derived from the invoice, so two clicks give one session and nothing is
-- charged twice; the invoice's line items; the invoice PDF and the invoice email. Paying is
-- recorded by the webhook (sql/webhooks.sql: payment_intent.*, checkout.session.*).
-- The Rust half is src/integrations/stripe/ and src/integrations/stripe/invoice_pdf.rs.

-- The open Checkout Session of an invoice (server-owned: tenants may not write them; the
-- column grants in security.sql leave them out).
ALTER TABLE crm.invoices
    ADD COLUMN stripe_checkout_session_id text,
    ADD COLUMN stripe_checkout_url text,
    ADD COLUMN stripe_checkout_expires_at timestamptz,
    ADD COLUMN stripe_checkout_amount bigint,
    ADD COLUMN stripe_checkout_currency text;
CREATE UNIQUE INDEX invoices_checkout_session_idx ON crm.invoices (stripe_checkout_session_id)
    WHERE stripe_checkout_session_id IS NOT NULL;

-- What an invoice is for, line by line (the PDF's table). The invoice's amount stays the
-- amount due (the reference's column); the PDF shows a difference between the two.
CREATE TABLE crm.invoice_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    invoice_id  uuid NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    quantity    numeric(12, 3) NOT NULL DEFAULT 1 CHECK (quantity > 0 AND quantity < 1000000),
    unit_amount bigint NOT NULL CHECK (unit_amount >= 0 AND unit_amount < 100000000000),  -- cents
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoice_items_invoice_fk FOREIGN KEY (account_id, invoice_id)
        REFERENCES crm.invoices (account_id, id) ON DELETE CASCADE
);
CREATE INDEX invoice_items_invoice_idx ON crm.invoice_items (invoice_id, position);
ALTER TABLE crm.invoice_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.invoice_items FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.invoice_items FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.invoice_items', '');

-- The invoice if the caller may act on it (its account, or the server), locked; otherwise
-- "no invoice" (P0002), the same whether it is another account's or does not exist.
CREATE FUNCTION crm._invoice_for_caller(invoice_id uuid) RETURNS crm.invoices
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv crm.invoices;
BEGIN
    SELECT * INTO inv FROM crm.invoices i
    WHERE i.id = $1 AND (i.account_id = crm.current_account_id() OR crm._caller_is_privileged())
    FOR UPDATE;
    IF inv.id IS NULL THEN
        RAISE EXCEPTION 'no invoice %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN inv;
END
$$;

-- Refuse what cannot be paid: 55000 for a paid or void invoice, 22023 for a zero amount.
CREATE FUNCTION crm._invoice_payable(inv crm.invoices) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF inv.status IN ('paid', 'void') THEN
        RAISE EXCEPTION 'invoice % is %: there is nothing to pay', coalesce(inv.invoice_number, inv.id::text), inv.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF inv.amount <= 0 THEN
        RAISE EXCEPTION 'invoice % is for 0: there is nothing to pay by card', coalesce(inv.invoice_number, inv.id::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- A Stripe Checkout link for an invoice: {url, session_id, expires_at}. An open session for
-- the same amount and currency is returned as it is (no request); otherwise one request, with
-- an Idempotency-Key derived from the invoice, its amount and currency and the session it
-- replaces — two clicks, a retry or a concurrent call get the same session (the invoice row is
-- locked, and Stripe replays the key). Stored on the invoice only when Stripe answered.
CREATE FUNCTION crm.create_invoice_checkout(invoice_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv crm.invoices := crm._invoice_for_caller($1);
    base text := rtrim(coalesce(current_setting('crm.app_base_url', true), ''), '/');
    email text;
    s jsonb;
BEGIN
    PERFORM crm._invoice_payable(inv);
    IF inv.stripe_checkout_session_id IS NOT NULL AND inv.stripe_checkout_amount = inv.amount
       AND inv.stripe_checkout_currency = inv.currency AND inv.stripe_checkout_expires_at > now() + interval '5 minutes' THEN
        RETURN jsonb_build_object('url', inv.stripe_checkout_url, 'session_id', inv.stripe_checkout_session_id,
                                  'expires_at', inv.stripe_checkout_expires_at);
    END IF;
    IF base = '' THEN
        RAISE EXCEPTION 'crm.app_base_url is not set: Checkout needs the pages it returns the customer to'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT c.email INTO email FROM crm.contacts c WHERE c.id = inv.contact_id AND c.account_id = inv.account_id;
    -- The session being replaced (another amount, or about to expire) is expired at Stripe
    -- first, so an old link cannot be paid after the new one. "Not open" (it expired, or was
    -- just paid: the webhook records that) does not stop the new one.
    IF inv.stripe_checkout_session_id IS NOT NULL AND inv.stripe_checkout_expires_at > now() THEN
        BEGIN
            PERFORM crm._stripe_post('/v1/checkout/sessions/' || inv.stripe_checkout_session_id || '/expire', '{}',
                                     crm._stripe_idempotency_key('expire', ARRAY[inv.stripe_checkout_session_id]));
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END IF;
    s := crm._stripe_post('/v1/checkout/sessions', jsonb_build_object(
            'mode', 'payment',
            'line_items', jsonb_build_array(jsonb_build_object(
                'quantity', 1,
                'price_data', jsonb_build_object(
                    'currency', inv.currency, 'unit_amount', inv.amount,
                    'product_data', jsonb_build_object('name', 'Invoice ' || coalesce(inv.invoice_number, inv.id::text))))),
            'metadata', jsonb_build_object('invoice_id', inv.id, 'account_id', inv.account_id),
            'payment_intent_data', jsonb_build_object('metadata', jsonb_build_object('invoice_id', inv.id, 'account_id', inv.account_id)),
            'client_reference_id', inv.id,
            'customer_email', email,
            'success_url', base || '/invoices/' || inv.id || '?paid=1',
            'cancel_url', base || '/invoices/' || inv.id),
         crm._stripe_idempotency_key('checkout', ARRAY[inv.id::text, inv.amount::text, inv.currency,
                                                        coalesce(inv.stripe_checkout_session_id, '')]));
    IF s ->> 'id' IS NULL OR s ->> 'url' IS NULL THEN
        RAISE EXCEPTION 'Stripe answered a Checkout Session without id or url' USING ERRCODE = 'connection_exception';
    END IF;
    UPDATE crm.invoices i
    SET stripe_checkout_session_id = s ->> 'id', stripe_checkout_url = s ->> 'url',
        stripe_checkout_expires_at = to_timestamp((s ->> 'expires_at')::float8),
        stripe_checkout_amount = inv.amount, stripe_checkout_currency = inv.currency
    WHERE i.id = inv.id;
    RETURN jsonb_build_object('url', s ->> 'url', 'session_id', s ->> 'id',
                              'expires_at', to_timestamp((s ->> 'expires_at')::float8));
END
$$;

-- A PaymentIntent for Stripe Elements: {client_secret, payment_intent_id}. The same
-- idempotency as checkout (invoice, amount, currency): asking again within Stripe's 24 hours
-- returns the same intent; the intent it replaces (another amount) is cancelled. Its id is
-- stored as the invoice's stripe_payment_intent_id.
CREATE FUNCTION crm.create_payment_intent(invoice_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv crm.invoices := crm._invoice_for_caller($1);
    email text;
    pi jsonb;
BEGIN
    PERFORM crm._invoice_payable(inv);
    SELECT c.email INTO email FROM crm.contacts c WHERE c.id = inv.contact_id AND c.account_id = inv.account_id;
    pi := crm._stripe_post('/v1/payment_intents', jsonb_build_object(
            'amount', inv.amount, 'currency', inv.currency,
            'automatic_payment_methods', jsonb_build_object('enabled', true),
            'description', 'Invoice ' || coalesce(inv.invoice_number, inv.id::text),
            'receipt_email', email,
            'metadata', jsonb_build_object('invoice_id', inv.id, 'account_id', inv.account_id)),
          crm._stripe_idempotency_key('payment_intent', ARRAY[inv.id::text, inv.amount::text, inv.currency]));
    IF pi ->> 'id' IS NULL OR pi ->> 'client_secret' IS NULL THEN
        RAISE EXCEPTION 'Stripe answered a PaymentIntent without id or client_secret' USING ERRCODE = 'connection_exception';
    END IF;
    -- The intent this one replaces (made for another amount or currency) is cancelled, so it
    -- cannot be paid after it; one Stripe will not cancel (being paid, or paid: the webhook
    -- records that) is left to the webhook.
    IF inv.stripe_payment_intent_id IS NOT NULL AND inv.stripe_payment_intent_id <> pi ->> 'id' THEN
        BEGIN
            PERFORM crm._stripe_post('/v1/payment_intents/' || inv.stripe_payment_intent_id || '/cancel',
                                     '{"cancellation_reason": "abandoned"}',
                                     crm._stripe_idempotency_key('cancel', ARRAY[inv.stripe_payment_intent_id]));
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END IF;
    UPDATE crm.invoices i SET stripe_payment_intent_id = pi ->> 'id' WHERE i.id = inv.id;
    RETURN jsonb_build_object('client_secret', pi ->> 'client_secret', 'payment_intent_id', pi ->> 'id');
END
$$;

------------------------------------------------------------------------------------------------
-- The invoice PDF and the invoice email
------------------------------------------------------------------------------------------------

-- What the PDF shows, as crm._invoice_pdf reads it.
CREATE FUNCTION crm._invoice_document(inv crm.invoices) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- every text cut to what a page can show: the renderer never holds a tenant's 100 MB field
    SELECT jsonb_build_object(
        'company', left(a.name, 200),
        'number', left(coalesce(inv.invoice_number, left(inv.id::text, 8)), 100),
        'issued', to_char(inv.created_at AT TIME ZONE tz.zone, 'Mon FMDD, YYYY'),
        'due', to_char(inv.due_date, 'Mon FMDD, YYYY'),
        'status', inv.status, 'currency', inv.currency, 'amount', inv.amount,
        'customer_name', nullif(btrim(concat_ws(' ', left(c.first_name, 200), left(c.last_name, 200))), ''),
        'customer_email', c.email, 'customer_address', left(c.address, 500),
        'job_title', left(j.title, 300),
        'pay_url', CASE WHEN inv.stripe_checkout_expires_at > now() THEN inv.stripe_checkout_url END,
        'lines', coalesce((SELECT jsonb_agg(jsonb_build_object('description', it.description, 'quantity', it.quantity,
                                                               'unit_amount', it.unit_amount) ORDER BY it.position, it.created_at, it.id)
                           FROM (SELECT * FROM crm.invoice_items x WHERE x.invoice_id = inv.id AND x.account_id = inv.account_id
                                 ORDER BY x.position, x.created_at, x.id LIMIT 1000) it), '[]'))
    FROM crm.accounts a
    CROSS JOIN LATERAL (SELECT coalesce(a.time_zone, nullif(current_setting('crm.calendar_time_zone', true), ''), 'UTC') AS zone) tz
    LEFT JOIN crm.contacts c ON c.id = inv.contact_id AND c.account_id = inv.account_id
    LEFT JOIN crm.jobs j ON j.id = inv.job_id AND j.account_id = inv.account_id
    WHERE a.id = inv.account_id
$$;

-- The invoice as a one-page PDF (bytea): company, customer, number and dates, line items (the
-- first 18; the rest summed on one line), totals in the invoice's currency, the pay link of
-- an open Checkout Session, PAID once paid.
CREATE FUNCTION crm.invoice_pdf(invoice_id uuid) RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv crm.invoices;
BEGIN
    SELECT * INTO inv FROM crm.invoices i
    WHERE i.id = $1 AND (i.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF inv.id IS NULL THEN
        RAISE EXCEPTION 'no invoice %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN crm._invoice_pdf(crm._invoice_document(inv));
END
$$;

-- Email an invoice: the "Invoice Notification" template with the invoice's variables and its
-- pay link (a Checkout Session, made or reused, when Stripe is configured and the invoice is
-- payable), the PDF attached. To `recipient_email`, else the invoice's contact. One email per
-- invoice, amount, currency, recipient and day (the queue's idempotency key): a second click
-- the same day returns the first email's id. Returns the email_queue id.
CREATE FUNCTION crm.send_invoice_email(invoice_id uuid, recipient_email text DEFAULT NULL, attach_pdf boolean DEFAULT true)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inv crm.invoices := crm._invoice_for_caller($1);
    doc jsonb;
    pay_url text;
    recipient text;
    message jsonb;
BEGIN
    IF inv.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void', coalesce(inv.invoice_number, inv.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF inv.status IN ('draft', 'sent') AND inv.amount > 0 AND crm._setting_is_set('crm.stripe_secret_key') THEN
        -- Stripe down or refusing is no reason not to send the invoice: it goes with the app's
        -- invoice page as its link, and a WARNING says why
        BEGIN
            pay_url := crm.create_invoice_checkout(inv.id) ->> 'url';
        EXCEPTION WHEN connection_exception OR configuration_limit_exceeded OR invalid_parameter_value
                       OR object_not_in_prerequisite_state THEN
            RAISE WARNING 'invoice % goes without a Checkout link: %', coalesce(inv.invoice_number, inv.id::text), SQLERRM;
        END;
        SELECT * INTO inv FROM crm.invoices i WHERE i.id = inv.id;
    END IF;
    doc := crm._invoice_document(inv);
    recipient := coalesce(nullif(btrim($2), ''), doc ->> 'customer_email');
    IF recipient IS NULL THEN
        RAISE EXCEPTION 'invoice % has no contact email: pass recipient_email', coalesce(inv.invoice_number, inv.id::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    message := jsonb_build_object(
        'account_id', inv.account_id, 'to', recipient, 'template', 'Invoice Notification',
        'variables', jsonb_build_object(
            'invoiceNumber', doc ->> 'number', 'amount', inv.amount, 'currency', inv.currency,
            'dueDate', inv.due_date, 'customerName', doc ->> 'customer_name', 'companyName', doc ->> 'company',
            'jobTitle', doc ->> 'job_title',
            'payUrl', coalesce(pay_url, doc ->> 'pay_url',
                               nullif(rtrim(coalesce(current_setting('crm.app_base_url', true), ''), '/'), '') || '/invoices/' || inv.id)),
        'idempotency_key', 'invoice-email:' || inv.id || ':' || inv.amount || inv.currency || ':' || md5(lower(recipient))
                           || ':' || current_date);
    IF attach_pdf THEN
        message := message || jsonb_build_object('attachments', jsonb_build_array(jsonb_build_object(
            'filename', 'Invoice-' || regexp_replace(doc ->> 'number', '[^A-Za-z0-9._-]', '_', 'g') || '.pdf',
            'content_type', 'application/pdf',
            'content_base64', translate(encode(crm._invoice_pdf(doc), 'base64'), E'\n', ''))));
    END IF;
    UPDATE crm.invoices i SET status = 'sent' WHERE i.id = inv.id AND i.status = 'draft';
    RETURN crm.enqueue_email(message);
END
$$;

-- Privileges: sql/security.sql.
