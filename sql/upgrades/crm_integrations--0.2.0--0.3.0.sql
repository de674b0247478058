-- crm_integrations 0.2.0 -> 0.3.0: hardening against hostile callers (issue 9).
-- Applied by ALTER EXTENSION crm_integrations UPDATE TO '0.3.0'. tests/shell/upgrade.sh checks
-- that a database updated with this script has exactly the objects, definitions and
-- privileges of a fresh 0.3.0 install, and keeps its rows.

-- Senders an account may use, and the flag on a payment that did not match its invoice.
ALTER TABLE crm.accounts ADD COLUMN verified_senders text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(verified_senders) <= 100);
ALTER TABLE crm.payments ADD COLUMN mismatch text;

-- References between tenant rows stay within one account: composite foreign keys on
-- (account_id, id). A reference that crossed accounts before the update (possible in 0.2.0,
-- since foreign keys ignore row-level security) is cleared, and counted in a NOTICE.
ALTER TABLE crm.users ADD CONSTRAINT users_account_id_id_key UNIQUE (account_id, id);
ALTER TABLE crm.contacts ADD CONSTRAINT contacts_account_id_id_key UNIQUE (account_id, id);
ALTER TABLE crm.jobs ADD CONSTRAINT jobs_account_id_id_key UNIQUE (account_id, id);
ALTER TABLE crm.invoices ADD CONSTRAINT invoices_account_id_id_key UNIQUE (account_id, id);

DO $$
DECLARE n bigint; total bigint := 0;
BEGIN
    UPDATE crm.jobs j SET contact_id = NULL WHERE contact_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.contacts c WHERE c.id = j.contact_id AND c.account_id = j.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    UPDATE crm.jobs j SET assigned_to = NULL WHERE assigned_to IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.users u WHERE u.id = j.assigned_to AND u.account_id = j.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    UPDATE crm.invoices i SET job_id = NULL WHERE job_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.jobs j WHERE j.id = i.job_id AND j.account_id = i.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    UPDATE crm.invoices i SET contact_id = NULL WHERE contact_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.contacts c WHERE c.id = i.contact_id AND c.account_id = i.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    UPDATE crm.payments p SET invoice_id = NULL WHERE invoice_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.invoices i WHERE i.id = p.invoice_id AND i.account_id = p.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    -- A connection of another account's user belongs to no user of its own account.
    UPDATE crm.email_providers e SET user_id = NULL WHERE user_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.users u WHERE u.id = e.user_id AND u.account_id = e.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    UPDATE crm.calendar_providers e SET user_id = NULL WHERE user_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM crm.users u WHERE u.id = e.user_id AND u.account_id = e.account_id);
    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
    IF total > 0 THEN
        RAISE NOTICE 'crm_integrations 0.3.0: cleared % reference(s) that pointed into another account', total;
    END IF;
END
$$;

ALTER TABLE crm.jobs DROP CONSTRAINT jobs_contact_id_fkey, DROP CONSTRAINT jobs_assigned_to_fkey,
    ADD CONSTRAINT jobs_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE SET NULL (contact_id),
    ADD CONSTRAINT jobs_assigned_to_fk FOREIGN KEY (account_id, assigned_to)
        REFERENCES crm.users (account_id, id) ON DELETE SET NULL (assigned_to);
ALTER TABLE crm.invoices DROP CONSTRAINT invoices_job_id_fkey, DROP CONSTRAINT invoices_contact_id_fkey,
    ADD CONSTRAINT invoices_job_fk FOREIGN KEY (account_id, job_id)
        REFERENCES crm.jobs (account_id, id) ON DELETE SET NULL (job_id),
    ADD CONSTRAINT invoices_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE SET NULL (contact_id);
ALTER TABLE crm.payments DROP CONSTRAINT payments_invoice_id_fkey,
    ADD CONSTRAINT payments_invoice_fk FOREIGN KEY (account_id, invoice_id)
        REFERENCES crm.invoices (account_id, id) ON DELETE SET NULL (invoice_id);
ALTER TABLE crm.email_providers DROP CONSTRAINT email_providers_user_id_fkey,
    ADD CONSTRAINT email_providers_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE CASCADE;
ALTER TABLE crm.calendar_providers DROP CONSTRAINT calendar_providers_user_id_fkey,
    ADD CONSTRAINT calendar_providers_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE CASCADE;

-- Queue functions: validated entry points only, the caller's own account, verified senders,
-- expired leases counted as attempts (sql/delivery.sql).
-- Whether whoever called into a SECURITY DEFINER function may act for any account: a
-- superuser, a role with BYPASSRLS, or a member of service_role. Inside a definer function
-- current_user is the owner, so the caller is read from SET ROLE (PostgREST switches to
-- anon/authenticated/service_role with SET LOCAL ROLE), else the session's login role.
CREATE OR REPLACE FUNCTION crm._caller_is_privileged() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((
        SELECT r.rolsuper OR r.rolbypassrls
               OR (to_regrole('service_role') IS NOT NULL AND pg_has_role(r.oid, 'service_role', 'USAGE'))
        FROM pg_roles r
        WHERE r.rolname = CASE WHEN current_setting('role') = 'none' THEN session_user::text
                               ELSE current_setting('role') END), false)
$$;
-- Whether an account may send from this address through the shared Resend/SMTP
-- configuration: its default_from_email, an address or domain in its verified_senders, or
-- the platform's crm.resend_verified_domain (a domain, or an address), or with none set
-- Resend's shared test sender. Gmail and Microsoft send as the connected mailbox, which the
-- claim picks by this address among the account's own connections.
CREATE OR REPLACE FUNCTION crm._sender_allowed(account uuid, provider text, from_address text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH f AS (
        SELECT lower(trim(coalesce(substring($3 FROM '<([^<>]*)>\s*$'), $3))) AS addr),
    d AS (
        SELECT addr, split_part(addr, '@', 2) AS dom FROM f),
    platform AS (
        SELECT lower(nullif(trim(current_setting('crm.resend_verified_domain', true)), '')) AS p)
    SELECT EXISTS (SELECT 1 FROM crm.accounts a, d
                   WHERE a.id = $1
                     AND (d.addr = lower(trim(coalesce(substring(a.default_from_email FROM '<([^<>]*)>\s*$'), a.default_from_email)))
                          OR EXISTS (SELECT 1 FROM unnest(a.verified_senders) v
                                     WHERE lower(v) = CASE WHEN position('@' IN v) > 0 THEN d.addr ELSE d.dom END)))
        OR EXISTS (SELECT 1 FROM d, platform
                   WHERE (p IS NULL AND d.addr = 'onboarding@resend.dev')
                      OR (p IS NOT NULL AND position('@' IN p) > 0 AND d.addr = p)
                      OR (p IS NOT NULL AND position('@' IN p) = 0 AND d.dom = p))
        OR ($2 IN ('gmail', 'microsoft') AND EXISTS (
                SELECT 1 FROM crm.email_providers e, d
                WHERE e.account_id = $1 AND e.provider = $2 AND e.is_active AND lower(e.provider_email) = d.addr))
$$;
-- Queue one validated, normalized message (from crm._validate_email_message). Internal: runs
-- inside the SECURITY DEFINER enqueue functions (tenants cannot write the queue directly), so
-- every lookup here names the account. A tenant's message is for its own account: an
-- account_id naming another is refused (42501); only privileged callers name any account.
CREATE OR REPLACE FUNCTION crm._enqueue_one(m jsonb, batch text) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acct       uuid := crm.current_account_id();
    sender     text;
    tpl_id     uuid;
    tpl_subj   text;
    prov       text := m ->> 'provider';
    prov_email text;
    rcpts      text[];
    blocked    text;
    due        timestamptz := coalesce((m ->> 'scheduled_at')::timestamptz, now());
    new_id     uuid;
BEGIN
    IF m ? 'account_id' THEN
        IF crm._caller_is_privileged() THEN
            acct := (m ->> 'account_id')::uuid;
        ELSIF (m ->> 'account_id')::uuid IS DISTINCT FROM acct THEN
            RAISE EXCEPTION 'message.account_id: a message can only be queued for the caller''s own account'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF acct IS NULL THEN
        RAISE EXCEPTION 'message.account_id: no account (pass account_id, or call with JWT claims naming one)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF m ? 'template' THEN
        SELECT t.id, t.subject INTO tpl_id, tpl_subj FROM crm._template_named(m ->> 'template', acct) t;
        IF tpl_id IS NULL THEN
            RAISE EXCEPTION 'message.template: unknown template "%"', m ->> 'template'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    rcpts := ARRAY(SELECT lower(jsonb_array_elements_text(m -> 'to'))
                   UNION ALL SELECT lower(jsonb_array_elements_text(m -> 'cc'))
                   UNION ALL SELECT lower(jsonb_array_elements_text(m -> 'bcc')));
    SELECT s.email INTO blocked FROM crm.email_suppressions s
    WHERE s.account_id = acct AND s.email = ANY (rcpts) LIMIT 1;
    IF blocked IS NOT NULL THEN
        RAISE EXCEPTION 'message.to: % is on the suppression list (it bounced or complained)', blocked
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'crm.unsuppress_email() lifts it once the address is fixed.';
    END IF;
    -- Provider: the message's, else the account's default active connection, else Resend.
    IF prov IS NULL THEN
        SELECT p.provider, p.provider_email INTO prov, prov_email FROM crm.email_providers p
        WHERE p.account_id = acct AND p.is_active AND p.is_default AND crm.email_provider_available(p.provider)
        ORDER BY p.user_id NULLS FIRST LIMIT 1;
        prov := coalesce(prov, 'resend');
    ELSIF NOT crm.email_provider_available(prov) THEN
        RAISE EXCEPTION 'message.provider: sending through % is switched off', prov
            USING ERRCODE = 'feature_not_supported';
    ELSIF prov IN ('gmail', 'microsoft') THEN
        SELECT p.provider_email INTO prov_email FROM crm.email_providers p
        WHERE p.account_id = acct AND p.is_active AND p.provider = prov
        ORDER BY p.is_default DESC, p.user_id NULLS FIRST LIMIT 1;
        IF prov_email IS NULL THEN
            RAISE EXCEPTION 'message.provider: the account has no active % connection', prov
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    sender := coalesce(m ->> 'from', crm._default_sender(acct, prov_email));
    IF NOT crm._sender_allowed(acct, prov, sender) THEN
        RAISE EXCEPTION 'message.from: % is not a verified sender of this account', sender
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Send from the account''s default_from_email, one of its verified_senders (set by the platform), or the platform''s verified domain.';
    END IF;

    INSERT INTO crm.email_queue (
        account_id, recipient_email, recipient_name, to_addresses, cc, bcc, subject, html_content, text_content,
        template_id, template_variables, from_email, reply_to, headers, attachments, status, scheduled_at,
        next_attempt_at, priority, provider, metadata, idempotency_key, max_attempts, batch_id)
    VALUES (
        acct, m -> 'to' ->> 0, m ->> 'to_name',
        ARRAY(SELECT jsonb_array_elements_text(m -> 'to')),
        ARRAY(SELECT jsonb_array_elements_text(m -> 'cc')),
        ARRAY(SELECT jsonb_array_elements_text(m -> 'bcc')),
        coalesce(m ->> 'subject', tpl_subj), m ->> 'html', m ->> 'text',
        tpl_id, m -> 'variables',
        sender, m ->> 'reply_to',
        m -> 'headers', m -> 'attachments',
        CASE WHEN due > now() THEN 'scheduled' ELSE 'pending' END,
        (m ->> 'scheduled_at')::timestamptz, due,
        (m ->> 'priority')::int, prov, m -> 'metadata', m ->> 'idempotency_key', (m ->> 'max_attempts')::int, batch)
    ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN   -- the same idempotency key was queued before: that row is the answer
        SELECT q.id INTO new_id FROM crm.email_queue q
        WHERE q.account_id = acct AND q.idempotency_key = m ->> 'idempotency_key';
    ELSE
        PERFORM crm._wake_email_worker_on_commit();
    END IF;
    RETURN new_id;
END
$$;
-- Queue one email. Keys: account_id, to (address or array), to_name, cc, bcc, subject, html,
-- text, or template + variables, from, reply_to, headers, attachments
-- ([{filename, content_base64, content_type}]), scheduled_at (ISO 8601), priority (higher
-- first), provider, metadata, idempotency_key, max_attempts. Errors: 22023 naming the field.
-- SECURITY DEFINER: tenants have no INSERT on the queue, so this validation is the only way
-- in (see crm._enqueue_one for the account rule).
CREATE OR REPLACE FUNCTION crm.enqueue_email(message jsonb) RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm._enqueue_one(crm._validate_email_message($1), NULL)
$$;
-- Up to 100 messages, all or none, sharing one batch_id.
CREATE OR REPLACE FUNCTION crm.enqueue_batch(messages jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    batch text := gen_random_uuid()::text;
    m     jsonb;
BEGIN
    FOR m IN SELECT jsonb_array_elements(crm._validate_email_batch($1)) LOOP
        RETURN NEXT crm._enqueue_one(m, batch);
    END LOOP;
END
$$;
-- Cancel a queued email that has not started sending. True if it was cancelled. A row whose
-- Resend batch request failed in a way that may still have delivered it (send_key set) is
-- not cancelled: it must go out again with its batch, under the batch's key, or not at all.
-- SECURITY DEFINER (tenants cannot update the queue): a tenant cancels its own rows only.
CREATE OR REPLACE FUNCTION crm.cancel_email(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (UPDATE crm.email_queue q SET status = 'cancelled', locked_until = NULL
               WHERE q.id = $1 AND q.status IN ('pending', 'scheduled') AND q.send_key IS NULL
                 AND (q.account_id = crm.current_account_id() OR crm._caller_is_privileged())
               RETURNING 1)
    SELECT count(*) = 1 FROM c
$$;
-- Claim up to max_items due rows (and rows whose lease expired: their sender died) for
-- sending: FOR UPDATE SKIP LOCKED, so any number of workers and pg_cron calls can claim at
-- once without taking the same row; each claimed row becomes 'processing' with a lease.
-- Returns what the sender needs (as json, not jsonb: built and parsed once, 2-3 times cheaper
-- per row), templates included (the template as it is now, so a
-- template fixed before sending is the one used), and for Gmail and Microsoft rows the
-- mailbox connection (tokens still encrypted: the sender decrypts them in Rust).
--
-- Resend batch mode (batch_mode true): Resend rows on their first attempt, without
-- attachments (the batch endpoint takes none), are grouped by up to 100 and each group gets
-- a send_key, stored here in the claim's transaction before anything is sent. A row that
-- already has a send_key brings the rest of its group along (max_items is then exceeded by
-- at most 99), so a repeat goes out exactly as the first request did. A group is claimed
-- whole by one claimer: each takes a transaction-level advisory lock per send_key (class 7461)
-- before it may lock a member row, and skips groups another claimer holds; without that, two
-- claimers reclaiming at once could split a group and send two different payloads under its key.
--
-- A lease that expires counts as the attempt it was: a row whose sender died with it is
-- reclaimed only while attempts < max_attempts, and failed otherwise (so a row that kills
-- its sender cannot loop forever).
CREATE OR REPLACE FUNCTION crm._claim_emails(max_items integer, lease_seconds double precision, batch_mode boolean DEFAULT false)
RETURNS json
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH exhausted AS (
        UPDATE crm.email_queue q
        SET status = 'failed', locked_until = NULL,
            last_error = left(format('its sender stopped while sending it %s times (lease expired); last error: %s',
                                     q.attempts, coalesce(q.last_error, 'none')), 2000)
        WHERE q.id IN (SELECT x.id FROM crm.email_queue x
                       WHERE x.status = 'processing' AND x.locked_until < now() AND x.attempts >= x.max_attempts
                       LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING 1
    ), expired AS (
        SELECT id, send_key, provider, attempts, max_attempts, attachments, priority, next_attempt_at
        FROM crm.email_queue
        WHERE status = 'processing' AND locked_until < now() AND attempts < max_attempts
          AND (send_key IS NULL OR pg_try_advisory_xact_lock(7461, hashtext(send_key)))
        ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED
    ), due AS (
        SELECT id, send_key, provider, attempts, max_attempts, attachments, priority, next_attempt_at
        FROM crm.email_queue
        WHERE status IN ('pending', 'scheduled') AND next_attempt_at <= now()
          AND (send_key IS NULL OR pg_try_advisory_xact_lock(7461, hashtext(send_key)))
        ORDER BY priority DESC, next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
    ), pick AS (
        SELECT * FROM (SELECT 0 AS o, * FROM expired UNION ALL SELECT 1, * FROM due) x
        ORDER BY o, CASE WHEN o = 1 THEN priority END DESC, CASE WHEN o = 1 THEN next_attempt_at END LIMIT $1
    ), mates AS (
        -- the rest of the batch groups of picked rows
        SELECT m.id FROM crm.email_queue m
        WHERE m.send_key IN (SELECT send_key FROM pick WHERE send_key IS NOT NULL)
          AND m.status IN ('pending', 'scheduled', 'processing')   -- (the send_key index's predicate)
          AND (m.status <> 'processing' OR (m.locked_until < now() AND m.attempts < m.max_attempts))
          AND m.id NOT IN (SELECT id FROM pick)
          AND pg_try_advisory_xact_lock(7461, hashtext(m.send_key))   -- ours already: re-entrant
        FOR UPDATE SKIP LOCKED
    ), fresh AS (
        -- first attempts that can share a batch request: numbered per (max_attempts), 100 a group
        SELECT id, max_attempts,
               (row_number() OVER (PARTITION BY max_attempts ORDER BY priority DESC, next_attempt_at, id) - 1) / 100 AS grp
        FROM pick
        WHERE $3 AND provider = 'resend' AND send_key IS NULL AND attempts = 0
          AND jsonb_array_length(attachments) = 0
    ), sized AS (
        SELECT id, max_attempts, grp, count(*) OVER (PARTITION BY max_attempts, grp) AS n FROM fresh
    ), keys AS (
        -- one new key per group of two or more (a group of one is sent alone, keyed by its id)
        SELECT max_attempts, grp, gen_random_uuid()::text AS k FROM sized WHERE n > 1 GROUP BY max_attempts, grp
    ), claimed AS (
        -- by primary key (= ANY of an array: an index scan however deep the queue is)
        UPDATE crm.email_queue q
        SET status = 'processing', attempts = q.attempts + 1,
            locked_until = now() + make_interval(secs => $2),
            send_key = coalesce(q.send_key,
                (SELECT jsonb_object_agg(s.id, k.k) FROM sized s JOIN keys k USING (max_attempts, grp)) ->> q.id::text)
        WHERE q.id = ANY (ARRAY(SELECT id FROM pick UNION ALL SELECT id FROM mates))
        RETURNING q.*
    )
    SELECT coalesce(json_agg(json_build_object(
               'id', c.id, 'account_id', c.account_id, 'provider', c.provider, 'from', c.from_email,
               'to', CASE WHEN cardinality(c.to_addresses) > 0 THEN c.to_addresses ELSE ARRAY[c.recipient_email] END,
               'to_name', c.recipient_name,
               'cc', c.cc, 'bcc', c.bcc, 'reply_to', c.reply_to,
               'subject', c.subject, 'html', c.html_content, 'text', c.text_content,
               'headers', c.headers, 'attachments', c.attachments,
               'template', CASE WHEN t.id IS NOT NULL THEN json_build_object(
                   'subject', t.subject, 'html', t.html_content, 'text', t.text_content) END,
               'variables', c.template_variables,
               'thread_id', c.metadata ->> 'thread_id',
               'send_key', c.send_key,
               'connection', CASE WHEN p.id IS NOT NULL THEN json_build_object(
                   'id', p.id, 'provider', p.provider, 'access_token', p.access_token_encrypted,
                   'refresh_token', p.refresh_token_encrypted,
                   'expires_at', extract(epoch FROM p.token_expires_at)) END,
               'attempts', c.attempts, 'max_attempts', c.max_attempts)
           ORDER BY c.priority DESC, c.next_attempt_at), '[]'::json)
    FROM claimed c
    LEFT JOIN crm.email_templates t ON t.id = c.template_id
    -- the sending mailbox: the connection whose address is the sender's, else the default
    LEFT JOIN LATERAL (
        SELECT p.* FROM crm.email_providers p
        WHERE c.provider IN ('gmail', 'microsoft') AND p.account_id = c.account_id
          AND p.provider = c.provider AND p.is_active
        ORDER BY lower(p.provider_email) = lower(coalesce(substring(c.from_email FROM '<([^<>]*)>\s*$'), c.from_email)) DESC,
                 p.is_default DESC, p.user_id NULLS FIRST, p.created_at
        LIMIT 1
    ) p ON true
$$;

-- Stripe payments checked against their invoice; Resend events matched to the row that sent (sql/webhooks.sql).
-- Stripe payment intents. The invoice row is locked first, so two events of one invoice
-- (success and a late failure, or the same success twice under two event ids) serialize.
-- One payments row per intent (unique index): a failure never downgrades a success, and a
-- success after failures turns the row into a success.
CREATE OR REPLACE FUNCTION crm._apply_stripe_event(event jsonb) RETURNS text
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

    IF event ->> 'type' = 'payment_intent.succeeded' THEN
        INSERT INTO crm.payments (account_id, invoice_id, amount, currency, status, stripe_payment_intent_id)
        VALUES (inv.account_id, inv.id, amount, currency, 'succeeded', intent)
        ON CONFLICT (stripe_payment_intent_id) WHERE stripe_payment_intent_id IS NOT NULL
        DO UPDATE SET status = 'succeeded', amount = EXCLUDED.amount, currency = EXCLUDED.currency, failure_message = NULL
           WHERE payments.status <> 'succeeded';
        UPDATE crm.invoices
           SET status = 'paid', paid_at = coalesce(paid_at, at, now()),
               stripe_payment_intent_id = coalesce(stripe_payment_intent_id, intent)
         WHERE id = inv.id AND status IN ('draft', 'sent');
        UPDATE crm.jobs SET status = 'paid'
         WHERE id = inv.job_id AND account_id = inv.account_id AND status NOT IN ('paid', 'cancelled');
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
CREATE OR REPLACE FUNCTION crm._apply_resend_event(event jsonb, event_id text) RETURNS text
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
    rcpt   text[];
    q      record;
    at     timestamptz;
    detail jsonb;
BEGIN
    IF kind IS NULL OR msg IS NULL THEN
        RETURN 'ignored';
    END IF;
    at := coalesce(crm._try_timestamptz(event ->> 'created_at'), crm._try_timestamptz(d ->> 'created_at'), now());
    detail := coalesce(d -> 'click', d -> 'open');
    -- The provider's id is written only by the sender (_record_email_outcomes; tenants cannot
    -- write the queue), on the row it sent.
    SELECT id, account_id INTO q FROM crm.email_queue
    WHERE metadata ->> 'provider_message_id' = msg AND status = 'sent' LIMIT 1;

    rcpt := ARRAY(
        SELECT DISTINCT lower(coalesce(substring(r FROM '<([^>]+)>'), trim(r)))
        FROM jsonb_array_elements_text(CASE jsonb_typeof(d -> 'to')
                                           WHEN 'array' THEN d -> 'to'
                                           WHEN 'string' THEN jsonb_build_array(d -> 'to')
                                           ELSE '[]'::jsonb END) r
        LIMIT 50);

    INSERT INTO crm.email_analytics (message_id, recipient_email, event, "timestamp", data,
                                     ip_address, user_agent, queue_item_id, account_id)
    SELECT msg, r.email, kind, at, d - 'to',
           crm._try_inet(detail ->> 'ipAddress'), left(detail ->> 'userAgent', 1000), q.id, q.account_id
    FROM unnest(rcpt) r(email)
    ON CONFLICT (message_id, recipient_email, event, "timestamp") DO NOTHING;

    IF q.account_id IS NOT NULL
       AND (kind = 'complained' OR (kind = 'bounced' AND coalesce(d -> 'bounce' ->> 'type', 'Permanent') <> 'Transient')) THEN
        INSERT INTO crm.email_suppressions (account_id, email, reason, event_id)
        SELECT q.account_id, r.email, kind, event_id FROM unnest(rcpt) r(email)
        ON CONFLICT (account_id, email) DO NOTHING;
    END IF;
    RETURN 'processed';
END
$$;

-- Privileges (sql/security.sql): tenants lose direct writes to the queue and to server-set
-- columns; anon loses the vault's sealing side; internal helpers leave PUBLIC.
REVOKE INSERT, UPDATE, DELETE ON crm.email_queue FROM PUBLIC;
DO $$
BEGIN
    IF to_regrole('authenticated') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE ON crm.email_queue FROM authenticated;
        REVOKE UPDATE ON crm.accounts FROM authenticated;
        REVOKE INSERT, UPDATE ON crm.invoices, crm.payments FROM authenticated;
    END IF;
END
$$;
-- Sealing tokens: authenticated and service_role (apply_role_grants), not anon.
REVOKE ALL ON FUNCTION crm.encrypt_token(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.encrypt_token(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.current_key_fingerprint() FROM PUBLIC;

-- Internal helpers (names starting with '_') are not callable by PUBLIC: they run inside the
-- SECURITY DEFINER entry points, the worker, or triggers. The exceptions are the bodies of
-- invoker functions every caller may use (rendering, the template lookup, which row-level
-- security filters) and pure parsing helpers.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'crm'::regnamespace AND p.proname LIKE '\_%'
               AND p.proname NOT IN ('_render_email_parts', '_template_named', '_try_uuid', '_try_inet', '_try_timestamptz')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

-- Grant Supabase's API roles what they need, for those that exist. Runs at CREATE EXTENSION;
-- on a plain Postgres where the roles are created later, a superuser calls it again.
-- Returns the roles it granted to.
CREATE OR REPLACE FUNCTION crm.apply_role_grants() RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done text[] := '{}';
BEGIN
    IF to_regrole('authenticated') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA crm TO authenticated;
        -- Columns only the server sets are not writable by tenants: an account's senders
        -- (default_from_email, verified_senders), Stripe's ids and the paid state it drives,
        -- and the whole email queue (written only through crm.enqueue_email/enqueue_batch/
        -- cancel_email, which validate every row, and by the sender).
        GRANT SELECT ON crm.accounts TO authenticated;
        GRANT UPDATE (name, slug) ON crm.accounts TO authenticated;
        GRANT SELECT, INSERT, UPDATE, DELETE ON
            crm.users, crm.contacts, crm.jobs,
            crm.email_providers, crm.calendar_providers, crm.email_templates
            TO authenticated;
        GRANT SELECT, DELETE ON crm.invoices, crm.payments TO authenticated;
        GRANT INSERT (id, account_id, job_id, contact_id, invoice_number, amount, currency, status, due_date),
              UPDATE (job_id, contact_id, invoice_number, amount, currency, status, due_date)
            ON crm.invoices TO authenticated;
        GRANT INSERT (id, account_id, invoice_id, amount, currency, status, failure_message),
              UPDATE (invoice_id, amount, currency, status, failure_message)
            ON crm.payments TO authenticated;
        GRANT SELECT ON crm.email_queue, crm.email_analytics, crm.email_delivery_health TO authenticated;
        GRANT SELECT, DELETE ON crm.email_suppressions TO authenticated;
        -- The vault's sealing side is for signed-in users and the server, not anon.
        GRANT EXECUTE ON FUNCTION crm.encrypt_token(text), crm.encrypt_token(text, text),
            crm.current_key_fingerprint() TO authenticated;
        done := done || 'authenticated'::text;
    END IF;
    IF to_regrole('service_role') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA crm TO service_role;
        GRANT ALL ON ALL TABLES IN SCHEMA crm TO service_role;
        GRANT ALL ON ALL SEQUENCES IN SCHEMA crm TO service_role;
        GRANT EXECUTE ON FUNCTION crm.purge_webhook_events(interval), crm.purge_email_queue(interval, integer),
            crm.process_email_queue(integer),
            crm._claim_emails(integer, double precision, boolean), crm._record_email_outcomes(json, json) TO service_role;
        GRANT EXECUTE ON FUNCTION crm.decrypt_token(text), crm.decrypt_token(text, text),
            crm.rotate_encryption_key(integer) TO service_role;
        GRANT EXECUTE ON FUNCTION crm.encrypt_token(text), crm.encrypt_token(text, text),
            crm.current_key_fingerprint() TO service_role;
        done := done || 'service_role'::text;
    END IF;
    -- anon reaches only functions: USAGE on the schema is what lets PostgREST call the webhook
    -- entry points (crm.stripe_webhook, crm.resend_webhook) for an unauthenticated sender. No
    -- table privilege, and no policy matches a caller without an account.
    IF to_regrole('anon') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA crm TO anon;
        done := done || 'anon'::text;
    END IF;
    RETURN done;
END
$$;

SELECT crm.apply_role_grants();
