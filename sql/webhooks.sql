-- Inbound webhooks (Stripe, Resend): verified, stored once, applied once; and the email
-- analytics built on them.

------------------------------------------------------------------------------------------------
-- Storage
------------------------------------------------------------------------------------------------

-- Every accepted event, once per (provider, event_id), stored with its outcome in the same
-- transaction as its effect. Concurrent copies of one event are serialized by an advisory
-- lock in crm.ingest_webhook; the unique index backs that up. Purge with
-- crm.purge_webhook_events(); the retention is the deduplication window.
CREATE TABLE crm.webhook_events (
    provider     text NOT NULL CHECK (provider IN ('stripe', 'resend')),
    event_id     text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 256),
    type         text NOT NULL CHECK (length(type) <= 200),
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    outcome      text CHECK (outcome IN ('processed', 'ignored')),
    -- the natural key is the only b-tree: each extra index is WAL on every delivery
    PRIMARY KEY (provider, event_id)
);
-- Only purging reads by age, and rows arrive in time order: BRIN is tiny and nearly free to
-- maintain.
CREATE INDEX webhook_events_received_idx ON crm.webhook_events USING brin (received_at);
-- Service-side only: payloads carry customers' addresses.
ALTER TABLE crm.webhook_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON crm.webhook_events FOR ALL
    USING ((SELECT crm.is_service_role())) WITH CHECK ((SELECT crm.is_service_role()));

-- Addresses an account must not mail again: hard bounces and spam complaints.
CREATE TABLE crm.email_suppressions (
    account_id uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    email      text NOT NULL CHECK (email = lower(email)),
    reason     text NOT NULL CHECK (reason IN ('bounced', 'complained', 'manual')),
    event_id   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, email)
);
ALTER TABLE crm.email_suppressions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.email_suppressions FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.email_suppressions FOR ALL
    USING ((SELECT crm.is_service_role())) WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.webhook_events', '');
SELECT pg_catalog.pg_extension_config_dump('crm.email_suppressions', '');

------------------------------------------------------------------------------------------------
-- Effects. Each returns 'processed' or 'ignored'; each runs in the ingesting transaction, so
-- an event and its effect commit together or not at all.
------------------------------------------------------------------------------------------------

CREATE FUNCTION crm._try_uuid(v text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN v ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN v::uuid END
$$;

CREATE FUNCTION crm._try_inet(v text) RETURNS inet
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN CASE WHEN v ~ '^[0-9a-fA-F:.]{2,45}$' THEN v::inet END;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION crm._try_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN v::timestamptz;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Stripe payment intents. The invoice row is locked first, so two events of one invoice
-- (success and a late failure, or the same success twice under two event ids) serialize.
-- One payments row per intent (unique index): a failure never downgrades a success, and a
-- success after failures turns the row into a success.
CREATE FUNCTION crm._apply_stripe_event(event jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    obj     jsonb := event -> 'data' -> 'object';
    intent  text := obj ->> 'id';
    inv     crm.invoices;
    at      timestamptz := to_timestamp(nullif(event ->> 'created', '')::double precision);
    amount  bigint;
    currency text;
BEGIN
    -- Checkout (crm.create_invoice_checkout): an expired session is forgotten (the next call
    -- makes a new one); a paid one is its payment intent's success — the same payments row as
    -- the payment_intent.succeeded event Stripe also sends, so the invoice is paid once.
    -- The session's id stays stored (it is part of the next session's idempotency key, so a
    -- new session is never Stripe's replay of the ended one); its expiry is set to now, so the
    -- link is neither reused nor printed.
    IF event ->> 'type' = 'checkout.session.expired' THEN
        UPDATE crm.invoices i SET stripe_checkout_expires_at = least(i.stripe_checkout_expires_at, now())
        WHERE i.stripe_checkout_session_id = intent;
        RETURN CASE WHEN FOUND THEN 'processed' ELSE 'ignored' END;
    END IF;
    IF event ->> 'type' = 'checkout.session.completed' THEN
        IF obj ->> 'payment_status' IS DISTINCT FROM 'paid' OR jsonb_typeof(obj -> 'payment_intent') IS DISTINCT FROM 'string' THEN
            RETURN 'ignored';
        END IF;
        UPDATE crm.invoices i SET stripe_checkout_expires_at = least(i.stripe_checkout_expires_at, now())
        WHERE i.stripe_checkout_session_id = intent;
        RETURN crm._apply_stripe_event(jsonb_build_object(
            'type', 'payment_intent.succeeded', 'created', event -> 'created',
            'data', jsonb_build_object('object', jsonb_build_object(
                'id', obj -> 'payment_intent', 'amount_received', obj -> 'amount_total', 'currency', obj -> 'currency',
                'metadata', obj -> 'metadata'))));
    END IF;
    IF event ->> 'type' NOT IN ('payment_intent.succeeded', 'payment_intent.payment_failed') OR intent IS NULL THEN
        RETURN 'ignored';
    END IF;
    SELECT * INTO inv FROM crm.invoices WHERE id = crm._try_uuid(obj -> 'metadata' ->> 'invoice_id') FOR UPDATE;
    IF NOT FOUND THEN
        SELECT * INTO inv FROM crm.invoices WHERE stripe_payment_intent_id = intent FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RETURN 'ignored';
    END IF;
    -- Our own requests name the account too: a payment for an invoice id now in another
    -- account (deleted and re-created there) does not land on it.
    IF obj -> 'metadata' ->> 'account_id' IS NOT NULL AND obj -> 'metadata' ->> 'account_id' IS DISTINCT FROM inv.account_id::text THEN
        RETURN 'ignored';
    END IF;
    amount := coalesce(nullif(obj ->> 'amount_received', '0')::bigint, (obj ->> 'amount')::bigint);
    currency := lower(obj ->> 'currency');

    -- A payment that does not match its invoice (a 1 JPY payment for a $500 invoice) is
    -- recorded and flagged, and marks nothing paid.
    IF event ->> 'type' = 'payment_intent.succeeded'
       AND (amount IS DISTINCT FROM inv.amount OR currency IS DISTINCT FROM inv.currency) THEN
        INSERT INTO crm.payments (account_id, invoice_id, amount, currency, status, stripe_payment_intent_id, mismatch)
        VALUES (inv.account_id, inv.id, coalesce(amount, 0), coalesce(currency, inv.currency), 'succeeded', intent,
                format('paid %s %s, the invoice is for %s %s: the invoice was not marked paid',
                       coalesce(amount::text, '(no amount)'), coalesce(upper(currency), '(no currency)'),
                       inv.amount, upper(inv.currency)))
        ON CONFLICT (stripe_payment_intent_id) WHERE stripe_payment_intent_id IS NOT NULL
        DO UPDATE SET status = 'succeeded', amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                      failure_message = NULL, mismatch = EXCLUDED.mismatch
           WHERE payments.status <> 'succeeded';
        RETURN 'processed';
    END IF;

    -- A second payment for an invoice already paid by another intent (an old link paid after a
    -- new one, or a void invoice's link): recorded and flagged for a refund, never silent.
    IF event ->> 'type' = 'payment_intent.succeeded' AND inv.status IN ('paid', 'void')
       AND inv.stripe_payment_intent_id IS DISTINCT FROM intent THEN
        INSERT INTO crm.payments (account_id, invoice_id, amount, currency, status, stripe_payment_intent_id, mismatch)
        VALUES (inv.account_id, inv.id, amount, currency, 'succeeded', intent,
                format('the invoice was already %s when this payment arrived: refund it', inv.status))
        ON CONFLICT (stripe_payment_intent_id) WHERE stripe_payment_intent_id IS NOT NULL
        DO UPDATE SET status = 'succeeded', amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                      failure_message = NULL, mismatch = EXCLUDED.mismatch
           WHERE payments.status <> 'succeeded';
        RETURN 'processed';
    END IF;

    IF event ->> 'type' = 'payment_intent.succeeded' THEN
        -- One statement for the payment, the invoice and its job (each statement costs an
        -- executor start, and this is the path every paid invoice takes).
        WITH payment AS (
            INSERT INTO crm.payments (account_id, invoice_id, amount, currency, status, stripe_payment_intent_id)
            VALUES (inv.account_id, inv.id, amount, currency, 'succeeded', intent)
            ON CONFLICT (stripe_payment_intent_id) WHERE stripe_payment_intent_id IS NOT NULL
            DO UPDATE SET status = 'succeeded', amount = EXCLUDED.amount, currency = EXCLUDED.currency, failure_message = NULL
               WHERE payments.status <> 'succeeded'
            RETURNING 1
        ), invoice AS (
            UPDATE crm.invoices
               SET status = 'paid', paid_at = coalesce(paid_at, at, now()),
                   -- the intent that paid (not an unpaid one created earlier): the one to refund
                   stripe_payment_intent_id = intent
             WHERE id = inv.id AND status IN ('draft', 'sent')
            RETURNING 1
        )
        UPDATE crm.jobs SET status = 'paid'
         WHERE inv.job_id IS NOT NULL AND id = inv.job_id AND account_id = inv.account_id AND status NOT IN ('paid', 'cancelled');
    ELSE
        INSERT INTO crm.payments (account_id, invoice_id, amount, currency, status, stripe_payment_intent_id, failure_message)
        VALUES (inv.account_id, inv.id, coalesce(amount, inv.amount), coalesce(currency, inv.currency), 'failed', intent,
                left(obj -> 'last_payment_error' ->> 'message', 1000))
        ON CONFLICT (stripe_payment_intent_id) WHERE stripe_payment_intent_id IS NOT NULL
        DO UPDATE SET failure_message = EXCLUDED.failure_message
           WHERE payments.status = 'failed';
        UPDATE crm.invoices SET stripe_payment_intent_id = intent
         WHERE id = inv.id AND stripe_payment_intent_id IS NULL;
    END IF;
    RETURN 'processed';
END
$$;

-- Resend email events → email_analytics, one row per recipient, linked to the queue row whose
-- provider message id matches (and so to its account). Hard bounces and complaints put the
-- address on that account's suppression list.
CREATE FUNCTION crm._apply_resend_event(event jsonb, event_id text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    kind   text := CASE event ->> 'type'
                       WHEN 'email.sent' THEN 'sent'
                       WHEN 'email.delivered' THEN 'delivered'
                       WHEN 'email.delivery_delayed' THEN 'delivery_delayed'
                       WHEN 'email.opened' THEN 'opened'
                       WHEN 'email.clicked' THEN 'clicked'
                       WHEN 'email.bounced' THEN 'bounced'
                       WHEN 'email.complained' THEN 'complained'
                   END;
    d      jsonb := event -> 'data';
    msg    text := d ->> 'email_id';
    q      record;
    at     timestamptz;
    detail jsonb;
    rcpt   text[];
BEGIN
    IF kind IS NULL OR msg IS NULL THEN
        RETURN 'ignored';
    END IF;
    at := coalesce(crm._try_timestamptz(event ->> 'created_at'), crm._try_timestamptz(d ->> 'created_at'), now());
    detail := coalesce(d -> 'click', d -> 'open');
    -- The provider's id is written only by the sender (_record_email_outcomes; tenants cannot
    -- write the queue), on the row it sent, and only a sent row has one: no condition on the
    -- status, which offered the planner the (account, status) index — without fresh statistics
    -- a scan of every sent row.
    SELECT id, account_id INTO q FROM crm.email_queue
    WHERE metadata ->> 'provider_message_id' = msg LIMIT 1;

    -- (at most 50, as written: lower-cased here, the same lower() as the suppression list's;
    -- an address repeated in another case is then a conflict, skipped)
    rcpt := crm._event_recipients(d -> 'to');
    INSERT INTO crm.email_analytics (message_id, recipient_email, event, "timestamp", data,
                                     ip_address, user_agent, queue_item_id, account_id)
    SELECT msg, lower(r.email), kind, at, d - 'to',
           crm._try_inet(detail ->> 'ipAddress'), left(detail ->> 'userAgent', 1000), q.id, q.account_id
    FROM unnest(rcpt) r(email)
    ON CONFLICT (message_id, recipient_email, event, "timestamp") DO NOTHING;

    IF q.account_id IS NOT NULL
       AND (kind = 'complained' OR (kind = 'bounced' AND coalesce(d -> 'bounce' ->> 'type', 'Permanent') <> 'Transient')) THEN
        INSERT INTO crm.email_suppressions (account_id, email, reason, event_id)
        SELECT q.account_id, lower(r.email), kind, event_id FROM unnest(rcpt) r(email)
        ON CONFLICT (account_id, email) DO NOTHING;
    END IF;
    RETURN 'processed';
END
$$;

------------------------------------------------------------------------------------------------
-- Ingest
------------------------------------------------------------------------------------------------

-- Verify, deduplicate, store, apply. Returns {status: processed|duplicate|ignored, event_id,
-- type}. Rejections write nothing. SECURITY DEFINER: the caller (often anon, through
-- PostgREST) has no rights on the tables; the signature is what authorizes the write.
CREATE FUNCTION crm.ingest_webhook(provider text, headers jsonb, body text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p          text := lower(trim(provider));
    delivery   text;
    payload    jsonb;
    ev_id      text;
    ev_type    text;
    result     text;
BEGIN
    IF p IS NULL OR headers IS NULL OR body IS NULL THEN
        RAISE EXCEPTION 'provider, headers and body are required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    delivery := crm._verify_webhook(p, headers, body);   -- 22023 / 55000 / 54000 / 28000
    payload := body::jsonb;                              -- 22P02 when not JSON
    IF jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION '% webhook body is not a JSON object', p USING ERRCODE = 'invalid_parameter_value';
    END IF;
    ev_id := CASE p WHEN 'stripe' THEN payload ->> 'id'
                    -- ElevenLabs: one event per conversation and type (its retries repeat both)
                    WHEN 'elevenlabs' THEN coalesce(payload -> 'data' ->> 'conversation_id', md5(body)) || ':' || (payload ->> 'type')
                    ELSE delivery END;
    ev_type := payload ->> 'type';
    IF ev_id IS NULL OR ev_id = '' OR ev_type IS NULL OR ev_type = '' THEN
        RAISE EXCEPTION '% webhook body lacks an event id or type', p USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- (webhook_events keeps ids of up to 256 characters, types of up to 200)
    IF length(ev_id) > 256 OR length(ev_type) > 200 THEN
        RAISE EXCEPTION '% webhook event id over 256 characters or type over 200', p USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- One delivery of an event at a time: copies arriving together queue on this lock (held
    -- to commit), and each then sees whether an earlier copy committed. This way an event is
    -- written once, with its outcome, instead of inserted and then updated; and a duplicate
    -- writes nothing at all. The unique index remains the backstop (e.g. for a caller in
    -- REPEATABLE READ, whose snapshot predates the lock: it gets a unique violation, and the
    -- provider's retry is then reported a duplicate).
    PERFORM pg_advisory_xact_lock(hashtextextended(p || ':' || ev_id, 7460));
    IF EXISTS (SELECT 1 FROM crm.webhook_events WHERE provider = p AND event_id = ev_id) THEN
        RETURN jsonb_build_object('status', 'duplicate', 'event_id', ev_id, 'type', ev_type);
    END IF;

    result := CASE p WHEN 'stripe' THEN crm._apply_stripe_event(payload)
                     WHEN 'elevenlabs' THEN crm._apply_elevenlabs_event(payload)
                     ELSE crm._apply_resend_event(payload, ev_id) END;
    INSERT INTO crm.webhook_events (provider, event_id, type, payload, processed_at, outcome)
    -- (an ElevenLabs recording and the conversation's variables are not kept here)
    VALUES (p, ev_id, ev_type,
            CASE WHEN p = 'elevenlabs' THEN payload #- '{data,full_audio}' #- '{data,conversation_initiation_client_data}'
                 ELSE payload END,
            now(), result);
    RETURN jsonb_build_object('status', result, 'event_id', ev_id, 'type', ev_type);
END
$$;

-- PostgREST entry points: a single unnamed text parameter receives the raw request body
-- (byte for byte, which the signature needs); the headers come from request.headers.
CREATE FUNCTION crm.stripe_webhook(text) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm.ingest_webhook('stripe', coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}'), $1)
$$;

CREATE FUNCTION crm.resend_webhook(text) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm.ingest_webhook('resend', coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}'), $1)
$$;

-- Delete stored events older than the retention (also the deduplication window: a provider
-- retries for about 3 days, so keep at least that). Returns the number deleted.
CREATE FUNCTION crm.purge_webhook_events(older_than interval DEFAULT '30 days') RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM crm.webhook_events WHERE received_at < now() - older_than RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION crm.purge_webhook_events(interval) FROM PUBLIC;

------------------------------------------------------------------------------------------------
-- Suppression list
------------------------------------------------------------------------------------------------

CREATE FUNCTION crm.is_email_suppressed(email text, account_id uuid DEFAULT crm.current_account_id())
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM crm.email_suppressions s WHERE s.account_id = $2 AND s.email = lower(trim($1)))
$$;

-- Lift a suppression (after the customer fixed their mailbox). Returns whether one was lifted.
CREATE FUNCTION crm.unsuppress_email(email text, account_id uuid DEFAULT crm.current_account_id())
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM crm.email_suppressions s WHERE s.account_id = $2 AND s.email = lower(trim($1)) RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;

------------------------------------------------------------------------------------------------
-- Analytics (row-level security applies: an account sees its own figures)
------------------------------------------------------------------------------------------------

-- One row per day/week/month of [from, to) in time_zone (default: the session's), including
-- periods with no mail. Counts are unique messages per event kind; rates are percentages:
-- delivery and bounce of sent, open, click and complaint of delivered.
CREATE FUNCTION crm.get_email_analytics(
    "from"      timestamptz,
    "to"        timestamptz,
    granularity text DEFAULT 'day',
    account_id  uuid DEFAULT crm.current_account_id(),
    time_zone   text DEFAULT current_setting('TimeZone')
) RETURNS TABLE (period_start timestamptz, sent bigint, delivered bigint, opened bigint, clicked bigint,
                 bounced bigint, complained bigint, delivery_rate numeric, open_rate numeric,
                 click_rate numeric, bounce_rate numeric, complaint_rate numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    step interval;
BEGIN
    step := CASE lower(granularity) WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '1 week'
                                    WHEN 'month' THEN interval '1 month' END;
    IF step IS NULL THEN
        RAISE EXCEPTION 'granularity must be day, week or month' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $1 IS NULL OR $2 IS NULL OR $2 <= $1 THEN
        RAISE EXCEPTION '"to" must be after "from"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 - $1 > interval '3660 days' THEN
        RAISE EXCEPTION 'a report covers at most 10 years' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM now() AT TIME ZONE time_zone;   -- 22023 for an unknown zone, before any work
    RETURN QUERY
    WITH periods AS (
        SELECT g AS local_start
        FROM generate_series(date_trunc(lower(granularity), $1 AT TIME ZONE time_zone),
                             $2 AT TIME ZONE time_zone - interval '1 microsecond', step) g
    ),
    agg AS (
        SELECT date_trunc(lower(granularity), a."timestamp" AT TIME ZONE time_zone) AS local_start,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'sent')       AS sent,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'delivered')  AS delivered,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'opened')     AS opened,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'clicked')    AS clicked,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'bounced')    AS bounced,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'complained') AS complained
        FROM crm.email_analytics a
        WHERE a.account_id = $4 AND a."timestamp" >= $1 AND a."timestamp" < $2
        GROUP BY 1
    )
    SELECT p.local_start AT TIME ZONE time_zone,
           coalesce(g.sent, 0), coalesce(g.delivered, 0), coalesce(g.opened, 0), coalesce(g.clicked, 0),
           coalesce(g.bounced, 0), coalesce(g.complained, 0),
           round(100.0 * g.delivered / nullif(g.sent, 0), 2),
           round(100.0 * g.opened / nullif(g.delivered, 0), 2),
           round(100.0 * g.clicked / nullif(g.delivered, 0), 2),
           round(100.0 * g.bounced / nullif(g.sent, 0), 2),
           round(100.0 * g.complained / nullif(g.delivered, 0), 2)
    FROM periods p LEFT JOIN agg g USING (local_start)
    ORDER BY p.local_start;
END
$$;

-- Per template: unique messages sent, and delivery/open/click rates, over [from, to).
CREATE FUNCTION crm.get_template_performance(
    "from"     timestamptz,
    "to"       timestamptz,
    account_id uuid DEFAULT crm.current_account_id()
) RETURNS TABLE (template_id uuid, template_name text, sent bigint, delivered bigint, opened bigint,
                 clicked bigint, delivery_rate numeric, open_rate numeric, click_rate numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.name, s.sent, s.delivered, s.opened, s.clicked,
           round(100.0 * s.delivered / nullif(s.sent, 0), 2),
           round(100.0 * s.opened / nullif(s.delivered, 0), 2),
           round(100.0 * s.clicked / nullif(s.delivered, 0), 2)
    FROM (
        SELECT q.template_id,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'sent')      AS sent,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'delivered') AS delivered,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'opened')    AS opened,
               count(DISTINCT a.message_id) FILTER (WHERE a.event = 'clicked')   AS clicked
        FROM crm.email_analytics a
        JOIN crm.email_queue q ON q.id = a.queue_item_id
        WHERE a.account_id = $3 AND a."timestamp" >= $1 AND a."timestamp" < $2 AND q.template_id IS NOT NULL
        GROUP BY q.template_id
    ) s
    JOIN crm.email_templates t ON t.id = s.template_id
    ORDER BY t.name
$$;

-- Accounts' delivery over the last 7 days against the reference's 95 % target.
-- security_invoker: each account sees its own row, service_role all.
CREATE VIEW crm.email_delivery_health WITH (security_invoker = true) AS
SELECT a.account_id,
       count(DISTINCT a.message_id) FILTER (WHERE a.event = 'sent')      AS sent_7d,
       count(DISTINCT a.message_id) FILTER (WHERE a.event = 'delivered') AS delivered_7d,
       round(100.0 * count(DISTINCT a.message_id) FILTER (WHERE a.event = 'delivered')
             / nullif(count(DISTINCT a.message_id) FILTER (WHERE a.event = 'sent'), 0), 2) AS delivery_rate_7d,
       coalesce(100.0 * count(DISTINCT a.message_id) FILTER (WHERE a.event = 'delivered')
             / nullif(count(DISTINCT a.message_id) FILTER (WHERE a.event = 'sent'), 0) < 95, false) AS below_target
FROM crm.email_analytics a
WHERE a."timestamp" >= now() - interval '7 days' AND a.account_id IS NOT NULL
GROUP BY a.account_id;
