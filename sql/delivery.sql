-- Email delivery, the SQL half: enqueue (validation is crm._validate_email_rows, in Rust),
-- batch, cancel, list. Sending is crm.process_email_queue (Rust: src/delivery/).

-- (The helpers enqueue calls are plpgsql, not sql: a sql function with SET is planned again at
-- every call; plpgsql keeps its plans for the session.)

-- The sender when a message names none: the account's default sender, else a mailbox of the
-- account's connected provider, else CRM <noreply@DOMAIN> from crm.resend_verified_domain —
-- where a value with an @ (the reference's 'noreply@resend.dev' case) is the address itself,
-- and no setting means Resend's shared test sender.
CREATE FUNCTION crm._default_sender(account uuid, provider_email text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(
        (SELECT a.default_from_email FROM crm.accounts a WHERE a.id = $1),
        $2,
        (SELECT CASE WHEN d IS NULL THEN 'CRM <onboarding@resend.dev>'
                     WHEN position('@' IN d) > 0 THEN 'CRM <' || d || '>'
                     ELSE 'CRM <noreply@' || d || '>' END
         FROM (SELECT nullif(trim(current_setting('crm.resend_verified_domain', true)), '') AS d) s));
END
$$;

-- Whether whoever called into a SECURITY DEFINER function may act for any account: a
-- superuser, a role with BYPASSRLS, or a member of service_role. Inside a definer function
-- current_user is the owner, so the caller is read from SET ROLE (PostgREST switches to
-- anon/authenticated/service_role with SET LOCAL ROLE), else the session's login role.
CREATE FUNCTION crm._caller_is_privileged() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((
        SELECT r.rolsuper OR r.rolbypassrls
               OR (to_regrole('service_role') IS NOT NULL AND pg_has_role(r.oid, 'service_role', 'USAGE'))
        FROM pg_roles r
        WHERE r.rolname = CASE WHEN current_setting('role') = 'none' THEN session_user::text
                               ELSE current_setting('role') END), false);
END
$$;

-- Whether an account may send from this address through the shared Resend/SMTP
-- configuration: its default_from_email, an address or domain in its verified_senders, or
-- the platform's crm.resend_verified_domain (a domain, or an address), or with none set
-- Resend's shared test sender. Gmail and Microsoft send as the connected mailbox, which the
-- claim picks by this address among the account's own connections.
CREATE FUNCTION crm._sender_allowed(account uuid, provider text, from_address text) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (WITH f AS (
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
                WHERE e.account_id = $1 AND e.provider = $2 AND e.is_active AND lower(e.provider_email) = d.addr)));
END
$$;

-- The providers this version can send through (all four; kept as a function so a provider
-- can be switched off in one place).
CREATE FUNCTION crm.email_provider_available(provider text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT $1 IN ('resend', 'gmail', 'microsoft', 'smtp') $$;

-- Raise the refusal crm._enqueue found for a message (its problem number there), with the
-- SQLSTATE, message and hint a caller of enqueue_email gets. Called from a query: returns
-- nothing, raises.
CREATE FUNCTION crm._enqueue_refuse(problem integer, template_name text, blocked text, provider text, sender text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CASE problem
    WHEN 1 THEN
        RAISE EXCEPTION 'message.account_id: a message can only be queued for the caller''s own account'
            USING ERRCODE = 'insufficient_privilege';
    WHEN 2 THEN
        RAISE EXCEPTION 'message.account_id: no account (pass account_id, or call with JWT claims naming one)'
            USING ERRCODE = 'invalid_parameter_value';
    WHEN 3 THEN
        RAISE EXCEPTION 'message.template: unknown template "%"', template_name
            USING ERRCODE = 'invalid_parameter_value';
    WHEN 4 THEN
        RAISE EXCEPTION 'message.to: % is on the suppression list (it bounced or complained)', blocked
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'crm.unsuppress_email() lifts it once the address is fixed.';
    WHEN 5 THEN
        RAISE EXCEPTION 'message.provider: sending through % is switched off', provider
            USING ERRCODE = 'feature_not_supported';
    WHEN 6 THEN
        RAISE EXCEPTION 'message.provider: the account has no active % connection', provider
            USING ERRCODE = 'invalid_parameter_value';
    ELSE
        RAISE EXCEPTION 'message.from: % is not a verified sender of this account', sender
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Send from the account''s default_from_email, one of its verified_senders (set by the platform), or the platform''s verified domain.';
    END CASE;
END
$$;

-- Queue messages: one (batch NULL) or a batch (a JSON array, all rows sharing batch as their
-- batch_id), all or none. Internal: runs inside the SECURITY DEFINER enqueue functions
-- (tenants cannot write the queue directly), so every lookup here names the account. A
-- tenant's message is for its own account: an account_id naming another is refused (42501);
-- only privileged callers name any account.
--
-- One statement per call, because enqueue runs in the caller's transaction (an RPC, a trigger,
-- a pg_cron job queueing a day's reminders) and its cost is the one users wait on:
--  * validation is Rust's (crm._validate_email_rows: typed rows, no JSON text round trip);
--  * what depends only on (account, template, provider, from) — the template, the provider
--    and mailbox, the default sender, whether the sender is allowed — is looked up once per
--    distinct combination (a batch usually has one), not once per message;
--  * suppressions are one join over every recipient;
--  * messages without an idempotency key are a plain INSERT; only keyed ones go through
--    ON CONFLICT (whose speculative insertion costs every row it handles).
-- Each message's checks keep their order (account, template, suppression, provider, sender),
-- and of several refused messages the first in the caller's order is the error, as when they
-- were queued one by one.
--
-- Its statements' plans depend on no argument's value (the messages reach the planner only as
-- a function's argument), so the generic plan is used from the first call: otherwise PL/pgSQL
-- plans the big statement again at every call (1.4 % of an enqueue's instructions).
CREATE FUNCTION crm._enqueue(messages jsonb, batch text) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    caller   uuid := crm.current_account_id();
    ids      uuid[];
    inserted bigint;
    -- keyed messages not inserted (their key was queued before): positions, accounts, keys
    old_ords int[];
    old_accts uuid[];
    old_keys text[];
BEGIN
    IF messages IS NULL THEN
        RAISE EXCEPTION '%: required', CASE WHEN batch IS NULL THEN 'message' ELSE 'messages' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH v AS MATERIALIZED (
        -- (what the checks read first: a scan reading only these does not walk past the
        -- messages' contents to find them)
        SELECT v.ord,
               CASE WHEN v.account_id IS NULL THEN caller
                    WHEN v.account_id = caller THEN caller
                    -- evaluated once, and only when a message names another account
                    WHEN (SELECT crm._caller_is_privileged()) THEN v.account_id
               END AS acct,
               v.id AS new_id, v.idempotency_key, v.account_id, v.template_name, v.provider, v.from_email,
               v.to_addresses, v.cc, v.bcc, v.recipient_name, v.subject, v.html_content, v.text_content,
               v.template_variables, v.reply_to, v.headers, v.attachments, v.scheduled_at, v.priority,
               v.max_attempts, v.metadata
        FROM crm._validate_email_rows(messages, batch IS NOT NULL) v
    ), combo AS (
        -- per distinct (account, template, provider, from): template; provider (the message's,
        -- else the account's default active connection, else Resend) and its mailbox; sender
        -- (the message's, else the account's default); whether the account may send as it
        SELECT c.acct, c.template_name, c.provider, c.from_email, t.id AS tpl_id, t.subject AS tpl_subject,
               coalesce(c.provider, d.provider, 'resend') AS prov,
               CASE WHEN c.provider IS NULL THEN d.provider_email ELSE m.provider_email END AS prov_email
        FROM (SELECT DISTINCT acct, template_name, provider, from_email FROM v WHERE acct IS NOT NULL) c
        LEFT JOIN LATERAL (SELECT * FROM crm._template_named(c.template_name, c.acct)
                           WHERE c.template_name IS NOT NULL) t ON true   -- (not called without one)
        LEFT JOIN LATERAL (
            SELECT p.provider, p.provider_email FROM crm.email_providers p
            WHERE c.provider IS NULL AND p.account_id = c.acct AND p.is_active AND p.is_default
              AND crm.email_provider_available(p.provider)
            ORDER BY p.user_id NULLS FIRST LIMIT 1) d ON true
        LEFT JOIN LATERAL (
            SELECT p.provider_email FROM crm.email_providers p
            WHERE c.provider IN ('gmail', 'microsoft') AND p.account_id = c.acct AND p.is_active AND p.provider = c.provider
            ORDER BY p.is_default DESC, p.user_id NULLS FIRST LIMIT 1) m ON true
    ), sender AS (
        SELECT c.*, s.sender, crm._sender_allowed(c.acct, c.prov, s.sender) AS allowed
        FROM combo c, LATERAL (SELECT coalesce(c.from_email, crm._default_sender(c.acct, c.prov_email)) AS sender) s
    ), blocked AS (
        -- a message's suppressed recipient, if any
        SELECT r.ord, min(s.email) AS email
        FROM (SELECT v.ord, v.acct, lower(unnest(v.to_addresses || v.cc || v.bcc)) AS addr FROM v WHERE v.acct IS NOT NULL) r
        JOIN crm.email_suppressions s ON s.account_id = r.acct AND s.email = r.addr
        GROUP BY r.ord
    ), checked AS (
        -- what the checks found for each message. Narrow: the messages themselves stay in v
        -- (each copy of a row between plan nodes costs a tuple per column).
        SELECT v.ord, v.idempotency_key IS NOT NULL AS has_key,
               c.tpl_id, c.tpl_subject, c.prov, c.sender, b.email AS blocked, p.problem
        FROM v
        LEFT JOIN sender c ON c.acct = v.acct AND c.template_name IS NOT DISTINCT FROM v.template_name
                          AND c.provider IS NOT DISTINCT FROM v.provider AND c.from_email IS NOT DISTINCT FROM v.from_email
        LEFT JOIN blocked b ON b.ord = v.ord
        -- the first check the message fails: 1 account not the caller's, 2 no account,
        -- 3 unknown template, 4 suppressed recipient, 5 provider switched off, 6 no mailbox,
        -- 7 sender not verified
        CROSS JOIN LATERAL (SELECT CASE WHEN v.account_id IS NOT NULL AND v.acct IS NULL THEN 1
                                        WHEN v.acct IS NULL THEN 2
                                        WHEN v.template_name IS NOT NULL AND c.tpl_id IS NULL THEN 3
                                        WHEN b.email IS NOT NULL THEN 4
                                        WHEN v.provider IS NOT NULL AND NOT crm.email_provider_available(v.provider) THEN 5
                                        WHEN v.provider IN ('gmail', 'microsoft') AND c.prov_email IS NULL THEN 6
                                        WHEN NOT c.allowed THEN 7 END AS problem) p
    ), refused AS (
        -- the first refused message in the caller's order. Both inserts read it (an InitPlan,
        -- run before their first row), so it is known before anything is inserted; that
        -- message's row then raises its refusal (crm._enqueue_refuse), and no other is queued.
        SELECT min(ord) AS ord FROM checked WHERE problem IS NOT NULL
    ), plain AS (
        INSERT INTO crm.email_queue (
            id, account_id, recipient_email, recipient_name, to_addresses, cc, bcc, subject, html_content, text_content,
            template_id, template_variables, from_email, reply_to, headers, attachments, status, scheduled_at,
            next_attempt_at, priority, provider, metadata, idempotency_key, max_attempts, batch_id)
        SELECT o.new_id, o.acct, o.to_addresses[1], o.recipient_name, o.to_addresses, coalesce(o.cc, '{}'), coalesce(o.bcc, '{}'),
               coalesce(o.subject, chk.tpl_subject), o.html_content, o.text_content,
               chk.tpl_id, coalesce(o.template_variables, '{}'), chk.sender, o.reply_to,
               coalesce(o.headers, '{}'), coalesce(o.attachments, '[]'),
               CASE WHEN o.scheduled_at::timestamptz > now() THEN 'scheduled' ELSE 'pending' END,
               o.scheduled_at::timestamptz, coalesce(o.scheduled_at::timestamptz, now()),
               o.priority, chk.prov, coalesce(o.metadata, '{}'), NULL, o.max_attempts, batch
        FROM v o JOIN checked chk ON chk.ord = o.ord
        WHERE NOT chk.has_key   -- (a condition on this narrow side: the planner then hashes it, not v)
          AND CASE WHEN (SELECT ord FROM refused) IS NULL THEN true
                   WHEN o.ord = (SELECT ord FROM refused)
                   THEN crm._enqueue_refuse(chk.problem, o.template_name, chk.blocked, o.provider, chk.sender)
                   ELSE false END
    ), keyed AS (
        INSERT INTO crm.email_queue (
            id, account_id, recipient_email, recipient_name, to_addresses, cc, bcc, subject, html_content, text_content,
            template_id, template_variables, from_email, reply_to, headers, attachments, status, scheduled_at,
            next_attempt_at, priority, provider, metadata, idempotency_key, max_attempts, batch_id)
        SELECT o.new_id, o.acct, o.to_addresses[1], o.recipient_name, o.to_addresses, coalesce(o.cc, '{}'), coalesce(o.bcc, '{}'),
               coalesce(o.subject, chk.tpl_subject), o.html_content, o.text_content,
               chk.tpl_id, coalesce(o.template_variables, '{}'), chk.sender, o.reply_to,
               coalesce(o.headers, '{}'), coalesce(o.attachments, '[]'),
               CASE WHEN o.scheduled_at::timestamptz > now() THEN 'scheduled' ELSE 'pending' END,
               o.scheduled_at::timestamptz, coalesce(o.scheduled_at::timestamptz, now()),
               o.priority, chk.prov, coalesce(o.metadata, '{}'), o.idempotency_key, o.max_attempts, batch
        FROM v o JOIN checked chk ON chk.ord = o.ord
        WHERE chk.has_key
          AND CASE WHEN (SELECT ord FROM refused) IS NULL THEN true
                   WHEN o.ord = (SELECT ord FROM refused)
                   THEN crm._enqueue_refuse(chk.problem, o.template_name, chk.blocked, o.provider, chk.sender)
                   ELSE false END
        -- of messages repeating a key, the first in the caller's order is the one queued
        ORDER BY o.ord
        ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id
    )
    -- an unkeyed message is its new row; a keyed one is, unless the key was queued before
    -- (those are looked up below; without ORDER BY, aggregates of one query see its rows in
    -- the same order, so the three arrays stay aligned)
    SELECT array_agg(CASE WHEN o.idempotency_key IS NULL THEN o.new_id ELSE k.id END ORDER BY o.ord),
           count(*) FILTER (WHERE o.idempotency_key IS NULL OR k.id IS NOT NULL),
           array_agg(o.ord) FILTER (WHERE o.idempotency_key IS NOT NULL AND k.id IS NULL),
           array_agg(o.acct) FILTER (WHERE o.idempotency_key IS NOT NULL AND k.id IS NULL),
           array_agg(o.idempotency_key) FILTER (WHERE o.idempotency_key IS NOT NULL AND k.id IS NULL)
    INTO ids, inserted, old_ords, old_accts, old_keys
    FROM v o LEFT JOIN keyed k ON k.id = o.new_id;

    IF inserted > 0 THEN
        PERFORM crm._wake_email_worker_on_commit();
    END IF;
    -- A message whose idempotency key was queued before (or earlier in this batch) is answered
    -- with that row. A new statement, so a row committed by a concurrent enqueue of the same
    -- key (which ON CONFLICT waited for) is seen.
    IF old_ords IS NOT NULL THEN
        SELECT array_agg(coalesce(q.id, x.id) ORDER BY x.n) INTO ids
        FROM unnest(ids) WITH ORDINALITY x(id, n)
        LEFT JOIN unnest(old_ords, old_accts, old_keys) o(n, acct, key) ON o.n = x.n
        LEFT JOIN crm.email_queue q ON q.account_id = o.acct AND q.idempotency_key = o.key;
    END IF;
    RETURN QUERY SELECT x.id FROM unnest(ids) WITH ORDINALITY x(id, n) ORDER BY x.n;
END
$$;

-- Queue one email. Keys: account_id, to (address or array), to_name, cc, bcc, subject, html,
-- text, or template + variables, from, reply_to, headers, attachments
-- ([{filename, content_base64, content_type}]), scheduled_at (ISO 8601), priority (higher
-- first), provider, metadata, idempotency_key, max_attempts. Errors: 22023 naming the field.
-- SECURITY DEFINER: tenants have no INSERT on the queue, so this validation is the only way
-- in (see crm._enqueue for the account rule).
CREATE FUNCTION crm.enqueue_email(message jsonb) RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm._enqueue($1, NULL)
$$;

-- Up to 100 messages, all or none, sharing one batch_id; their ids in the messages' order.
CREATE FUNCTION crm.enqueue_batch(messages jsonb) RETURNS SETOF uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm._enqueue($1, gen_random_uuid()::text)
$$;

-- Cancel a queued email that has not started sending. True if it was cancelled. A row whose
-- Resend batch request failed in a way that may still have delivered it (send_key set) is
-- not cancelled: it must go out again with its batch, under the batch's key, or not at all.
-- SECURITY DEFINER (tenants cannot update the queue): a tenant cancels its own rows only.
CREATE FUNCTION crm.cancel_email(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (UPDATE crm.email_queue q SET status = 'cancelled', locked_until = NULL, updated_at = now()
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
--
-- PL/pgSQL, not SQL: a SQL function's statement is parsed and planned again at every call,
-- and without its arguments' values (its LIMIT $1 then estimated at a tenth of the queue: on
-- a backlog of 1,000,000 rows a 500-row claim took 110-130 ms); PL/pgSQL plans it with them.
CREATE FUNCTION crm._claim_emails(max_items integer, lease_seconds double precision, batch_mode boolean DEFAULT false)
RETURNS json
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claimed_rows json;
BEGIN
    WITH exhausted AS (
        UPDATE crm.email_queue q
        SET status = 'failed', locked_until = NULL, updated_at = now(),
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
    ), waiting_mates AS (
        -- the rest of the batch groups of picked rows: those waiting for a retry (through the
        -- send_key index, whose predicate this repeats) ...
        SELECT m.id FROM crm.email_queue m
        WHERE m.send_key IN (SELECT send_key FROM pick WHERE send_key IS NOT NULL)
          AND m.status IN ('pending', 'scheduled')
          AND m.id NOT IN (SELECT id FROM pick)
          AND pg_try_advisory_xact_lock(7461, hashtext(m.send_key))   -- ours already: re-entrant
        FOR UPDATE SKIP LOCKED
    ), expired_mates AS (
        -- ... and those whose sender died with them (through the lease index: only rows whose
        -- lease expired, a claim's worth after a crash, none otherwise). The send_key index
        -- leaves 'processing' rows out, so a claim adds one index entry less per row.
        SELECT m.id FROM crm.email_queue m
        WHERE m.status = 'processing' AND m.locked_until < now() AND m.attempts < m.max_attempts
          AND m.id NOT IN (SELECT id FROM pick)
          -- (CASE: only a picked group's key is locked, not every expired row's)
          AND CASE WHEN m.send_key IN (SELECT send_key FROM pick WHERE send_key IS NOT NULL)
                   THEN pg_try_advisory_xact_lock(7461, hashtext(m.send_key)) ELSE false END
        FOR UPDATE SKIP LOCKED
    ), mates AS (
        SELECT id FROM waiting_mates UNION ALL SELECT id FROM expired_mates
    ), numbered AS (
        -- first attempts that can share a batch request: numbered per (max_attempts), 100 a
        -- group; n is the partition's size (one sort, one window pass for both)
        SELECT id, max_attempts, eligible,
               (row_number() OVER w - 1) / 100 AS grp, count(*) OVER w AS n
        FROM (SELECT p.*, $3 AND provider = 'resend' AND send_key IS NULL AND attempts = 0
                          AND jsonb_array_length(attachments) = 0 AS eligible
              FROM pick p) p
        WINDOW w AS (PARTITION BY eligible, max_attempts ORDER BY priority DESC, next_attempt_at, id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ), claiming AS (
        -- every claimed row and its new group key: one per group of two or more (group grp has
        -- n - 100 * grp members, at most 100), this claim's own (a random nonce) plus the
        -- group's place; NULL for a row sent alone (keyed by its id) or already in a group
        -- (its key kept). No join: the rows carry their key.
        SELECT id, CASE WHEN eligible AND n - 100 * grp > 1
                        THEN (SELECT gen_random_uuid()::text) || ':' || max_attempts || ':' || grp END AS k
        FROM numbered
        UNION ALL
        SELECT id, NULL FROM mates
    ), claimed AS (
        -- by primary key (a nested loop over the few claimed ids, each an index probe, however
        -- deep the queue is)
        UPDATE crm.email_queue q
        SET status = 'processing', attempts = q.attempts + 1, updated_at = now(),
            locked_until = now() + make_interval(secs => $2),
            send_key = coalesce(q.send_key, c.k)
        FROM claiming c
        WHERE q.id = c.id
        RETURNING q.*
    )
    -- each row's object is row_to_json of a row whose columns are its keys: a third cheaper
    -- than json_build_object, which works out every argument's type again for every row
    SELECT coalesce(json_agg(r.j ORDER BY r.priority DESC, r.next_attempt_at), '[]'::json)
    INTO claimed_rows
    FROM (SELECT c.priority, c.next_attempt_at, row_to_json(x) AS j
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
          CROSS JOIN LATERAL (
              SELECT c.id, c.account_id, c.provider, c.from_email AS "from",
                     CASE WHEN cardinality(c.to_addresses) > 0 THEN c.to_addresses ELSE ARRAY[c.recipient_email] END AS "to",
                     c.recipient_name AS to_name, c.cc, c.bcc, c.reply_to,
                     c.subject, c.html_content AS html, c.text_content AS text,
                     c.headers, c.attachments,
                     CASE WHEN t.id IS NOT NULL THEN json_build_object(
                         'subject', t.subject, 'html', t.html_content, 'text', t.text_content) END AS template,
                     c.template_variables AS variables,
                     c.metadata ->> 'thread_id' AS thread_id,
                     c.send_key,
                     CASE WHEN p.id IS NOT NULL THEN json_build_object(
                         'id', p.id, 'provider', p.provider, 'access_token', p.access_token_encrypted,
                         'refresh_token', p.refresh_token_encrypted,
                         'expires_at', extract(epoch FROM p.token_expires_at)) END AS connection,
                     c.attempts, c.max_attempts
          ) x
    ) r;
    RETURN claimed_rows;
END
$$;

-- What a sender or the oauth.refresh task learnt about connections: [{id, table, access_token,
-- refresh_token, expires_in}] (sealed by the runner, bound to the row) or [{id, table, revoked}]
-- (invalid_grant: the user must connect again; never retried). For every kind of connection;
-- each update lands only in its own table: ids are unique within a table, not across the three
-- (a tenant may choose its rows' ids, so another account's id in another table must not be hit).
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
            FROM json_to_recordset($1) AS c(id uuid, "table" text, access_token text, refresh_token text,
                                            expires_in double precision, revoked text)
            WHERE p.id = c.id AND c."table" = %L$f$, t, t) USING $1;
    END LOOP;
END
$$;

-- When the next email is due (a pending or scheduled row, or an expired lease): the worker's
-- idle sleep. The earliest due time per priority, each one probe of the claim index (priority
-- DESC, next_attempt_at), the priorities walked one by one (at most 2,001: -1000..1000).
CREATE FUNCTION crm._next_email_due() RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE priorities AS (
        (SELECT q.priority FROM crm.email_queue q
         WHERE q.status IN ('pending', 'scheduled') ORDER BY q.priority DESC LIMIT 1)
        UNION ALL
        SELECT (SELECT q.priority FROM crm.email_queue q
                WHERE q.status IN ('pending', 'scheduled') AND q.priority < p.priority
                ORDER BY q.priority DESC LIMIT 1)
        FROM priorities p WHERE p.priority IS NOT NULL
    )
    SELECT least((SELECT min((SELECT q.next_attempt_at FROM crm.email_queue q
                              WHERE q.status IN ('pending', 'scheduled') AND q.priority = p.priority
                              ORDER BY q.next_attempt_at LIMIT 1))
                  FROM priorities p WHERE p.priority IS NOT NULL),
                 (SELECT min(locked_until) FROM crm.email_queue WHERE status = 'processing'))
$$;

-- Record what the providers answered: [{id, outcome: sent|retry|failed|release,
-- provider_message_id, subject (as sent), error, after_seconds}]. Only rows still 'processing'
-- change. 'release': given back unsent (the sender stopped, or its turn ended): due at once,
-- the attempt not counted.
-- connections: what the sender learnt about mailbox connections: [{id, access_token,
-- refresh_token, expires_in}] after a token refresh (tokens encrypted by the sender, bound
-- to the row), or [{id, revoked: "invalid_grant: ..."}] when the refresh token was refused.
-- PL/pgSQL for its cached plan (see crm._claim_emails).
CREATE FUNCTION crm._record_email_outcomes(outcomes json, connections json DEFAULT '[]') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- a revoked connection becomes inactive (enqueue's default-provider choice skips it) and
    -- needs_reconnect until the user connects again (most rounds learn nothing: no statements)
    IF json_array_length($2) > 0 THEN
        PERFORM crm._record_connection_updates($2);
    END IF;

    UPDATE crm.email_queue q
    SET status = CASE o.outcome WHEN 'sent' THEN 'sent' WHEN 'retry' THEN 'pending' WHEN 'release' THEN 'pending' ELSE 'failed' END,
        updated_at = now(),
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
    WHERE q.id = o.id AND q.status = 'processing';
END
$$;
REVOKE ALL ON FUNCTION crm._claim_emails(integer, double precision, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._enqueue(jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._enqueue_refuse(integer, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._record_email_outcomes(json, json) FROM PUBLIC;
