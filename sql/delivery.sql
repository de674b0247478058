-- Email delivery, the SQL half: enqueue (validation is crm._validate_email_message, in Rust),
-- batch, cancel, list. Sending is crm.process_email_queue (Rust: src/delivery/).

-- The sender when a message names none: the account's default sender, else a mailbox of the
-- account's connected provider, else CRM <noreply@DOMAIN> from crm.resend_verified_domain —
-- where a value with an @ (the reference's 'noreply@resend.dev' case) is the address itself,
-- and no setting means Resend's shared test sender.
CREATE FUNCTION crm._default_sender(account uuid, provider_email text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT a.default_from_email FROM crm.accounts a WHERE a.id = $1),
        $2,
        CASE WHEN d IS NULL THEN 'CRM <onboarding@resend.dev>'
             WHEN position('@' IN d) > 0 THEN 'CRM <' || d || '>'
             ELSE 'CRM <noreply@' || d || '>' END)
    FROM (SELECT nullif(trim(current_setting('crm.resend_verified_domain', true)), '') AS d) s
$$;

-- Whether whoever called into a SECURITY DEFINER function may act for any account: a
-- superuser, a role with BYPASSRLS, or a member of service_role. Inside a definer function
-- current_user is the owner, so the caller is read from SET ROLE (PostgREST switches to
-- anon/authenticated/service_role with SET LOCAL ROLE), else the session's login role.
CREATE FUNCTION crm._caller_is_privileged() RETURNS boolean
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
CREATE FUNCTION crm._sender_allowed(account uuid, provider text, from_address text) RETURNS boolean
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

-- The providers this version can send through (all four; kept as a function so a provider
-- can be switched off in one place).
CREATE FUNCTION crm.email_provider_available(provider text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT $1 IN ('resend', 'gmail', 'microsoft', 'smtp') $$;

-- Queue one validated, normalized message (from crm._validate_email_message). Internal: runs
-- inside the SECURITY DEFINER enqueue functions (tenants cannot write the queue directly), so
-- every lookup here names the account. A tenant's message is for its own account: an
-- account_id naming another is refused (42501); only privileged callers name any account.
CREATE FUNCTION crm._enqueue_one(m jsonb, batch text) RETURNS uuid
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
CREATE FUNCTION crm.enqueue_email(message jsonb) RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm._enqueue_one(crm._validate_email_message($1), NULL)
$$;

-- Up to 100 messages, all or none, sharing one batch_id.
CREATE FUNCTION crm.enqueue_batch(messages jsonb) RETURNS SETOF uuid
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
CREATE FUNCTION crm.cancel_email(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (UPDATE crm.email_queue q SET status = 'cancelled', locked_until = NULL
               WHERE q.id = $1 AND q.status IN ('pending', 'scheduled') AND q.send_key IS NULL
                 AND (q.account_id = crm.current_account_id() OR crm._caller_is_privileged())
               RETURNING 1)
    SELECT count(*) = 1 FROM c
$$;

-- The caller's queue (row-level security applies), newest first.
CREATE FUNCTION crm.list_email_queue(status text DEFAULT NULL, "limit" integer DEFAULT 50)
RETURNS SETOF crm.email_queue
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF $1 IS NOT NULL AND $1 NOT IN ('pending', 'scheduled', 'processing', 'sent', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'status must be one of pending, scheduled, processing, sent, failed, cancelled'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 IS NULL OR $2 NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT q.* FROM crm.email_queue q
    WHERE $1 IS NULL OR q.status = $1
    ORDER BY q.created_at DESC
    LIMIT $2;
END
$$;

-- Retention: delete finished rows (sent, failed, cancelled) that finished more than older_than
-- ago, at most batch_size per call so one call never holds a long transaction (pg_cron can run
-- it every few minutes). Analytics rows keep their data (queue_item_id becomes NULL). An
-- idempotency_key is remembered only as long as its row: the retention is the window in which
-- the same key queues once. Returns how many rows were deleted.
CREATE FUNCTION crm.purge_email_queue(older_than interval DEFAULT '90 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval, not %', older_than USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (
        DELETE FROM crm.email_queue q
        WHERE q.id IN (SELECT f.id FROM crm.email_queue f
                       WHERE f.status IN ('sent', 'failed', 'cancelled')
                         AND coalesce(f.sent_at, f.updated_at) < now() - older_than
                       LIMIT batch_size FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION crm.purge_email_queue(interval, integer) FROM PUBLIC;

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
CREATE FUNCTION crm._claim_emails(max_items integer, lease_seconds double precision, batch_mode boolean DEFAULT false)
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

-- What a sender or the oauth.refresh task learnt about connections: [{id, access_token, refresh_token, expires_in}] (sealed
-- by the runner, bound to the row) or [{id, revoked}] (invalid_grant: the user must connect
-- again; never retried). For every kind of connection.
CREATE FUNCTION crm._record_connection_updates(updates json) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['email_providers', 'calendar_providers', 'contact_providers'] LOOP
        EXECUTE format($f$
            UPDATE crm.%I p
            SET access_token_encrypted = coalesce(c.access_token, p.access_token_encrypted),
                refresh_token_encrypted = coalesce(c.refresh_token, p.refresh_token_encrypted),
                token_expires_at = CASE WHEN c.access_token IS NOT NULL
                                        THEN now() + make_interval(secs => c.expires_in) ELSE p.token_expires_at END,
                last_refresh_at = CASE WHEN c.access_token IS NOT NULL THEN now() ELSE p.last_refresh_at END,
                last_error = CASE WHEN c.revoked IS NOT NULL THEN left(c.revoked, 2000)
                                  WHEN c.access_token IS NOT NULL THEN NULL ELSE p.last_error END,
                needs_reconnect = p.needs_reconnect OR c.revoked IS NOT NULL,
                is_active = p.is_active AND c.revoked IS NULL
            FROM json_to_recordset($1) AS c(id uuid, access_token text, refresh_token text,
                                            expires_in double precision, revoked text)
            WHERE p.id = c.id$f$, t) USING $1;
    END LOOP;
END
$$;

-- Record what the providers answered: [{id, outcome: sent|retry|failed|release,
-- provider_message_id, subject (as sent), error, after_seconds}]. Only rows still 'processing'
-- change. 'release': given back unsent (the sender stopped, or its turn ended): due at once,
-- the attempt not counted.
-- connections: what the sender learnt about mailbox connections: [{id, access_token,
-- refresh_token, expires_in}] after a token refresh (tokens encrypted by the sender, bound
-- to the row), or [{id, revoked: "invalid_grant: ..."}] when the refresh token was refused.
CREATE FUNCTION crm._record_email_outcomes(outcomes json, connections json DEFAULT '[]') RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a revoked connection becomes inactive (enqueue's default-provider choice skips it) and
    -- needs_reconnect until the user connects again
    SELECT crm._record_connection_updates($2);

    UPDATE crm.email_queue q
    SET status = CASE o.outcome WHEN 'sent' THEN 'sent' WHEN 'retry' THEN 'pending' WHEN 'release' THEN 'pending' ELSE 'failed' END,
        sent_at = CASE WHEN o.outcome = 'sent' THEN now() END,
        subject = CASE WHEN o.outcome = 'sent' AND o.subject IS NOT NULL THEN left(o.subject, 998) ELSE q.subject END,
        last_error = CASE WHEN o.outcome = 'sent' THEN NULL WHEN o.outcome = 'release' THEN q.last_error ELSE left(o.error, 2000) END,
        attempts = CASE WHEN o.outcome = 'release' THEN greatest(q.attempts - 1, 0) ELSE q.attempts END,
        next_attempt_at = CASE WHEN o.outcome = 'retry' THEN now() + make_interval(secs => o.after_seconds)
                               WHEN o.outcome = 'release' THEN now() ELSE q.next_attempt_at END,
        locked_until = NULL,
        metadata = CASE WHEN o.provider_message_id IS NOT NULL
                        THEN q.metadata || jsonb_build_object('provider_message_id', o.provider_message_id)
                        ELSE q.metadata END
    FROM json_to_recordset($1) AS o(id uuid, outcome text, provider_message_id text, subject text, error text,
                                     after_seconds double precision)
    WHERE q.id = o.id AND q.status = 'processing'
$$;
REVOKE ALL ON FUNCTION crm._claim_emails(integer, double precision, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._enqueue_one(jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._record_email_outcomes(json, json) FROM PUBLIC;
