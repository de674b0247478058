-- crm_integrations 0.1.0 -> 0.2.0: email delivery through Gmail, Microsoft 365 and SMTP,
-- OAuth token refresh, Resend batch mode, several workers, queue retention.
-- Applied by ALTER EXTENSION crm_integrations UPDATE TO '0.2.0'. tests/shell/upgrade.sh checks
-- that a 0.1.0 database updated with this script has exactly the objects, definitions and
-- privileges of a fresh 0.2.0 install.

-- The Idempotency-Key of the Resend batch request a row went out in (sql/schema.sql).
ALTER TABLE crm.email_queue ADD COLUMN send_key text;
CREATE INDEX email_queue_claim_idx ON crm.email_queue (priority DESC, next_attempt_at)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX email_queue_send_key_idx ON crm.email_queue (send_key)
    WHERE send_key IS NOT NULL AND status IN ('pending', 'scheduled', 'processing');

-- pids of every running email worker (Rust: src/delivery/worker.rs).
CREATE FUNCTION crm."email_worker_pids"() RETURNS INT[]
STRICT VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'email_worker_pids_wrapper';

-- One template lookup behind crm.find_email_template and enqueue.
CREATE FUNCTION crm._template_named(name text, account_id uuid) RETURNS crm.email_templates
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.* FROM crm.email_templates e
    WHERE e.name = $1 AND e.is_active AND (e.account_id = $2 OR e.account_id IS NULL)
    ORDER BY e.account_id NULLS LAST
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION crm.find_email_template(name text, account_id uuid DEFAULT crm.current_account_id())
RETURNS crm.email_templates
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t crm.email_templates := crm._template_named($1, $2);
BEGIN
    IF t.id IS NULL THEN
        RAISE EXCEPTION 'email template "%" not found', $1 USING ERRCODE = 'undefined_object';
    END IF;
    RETURN t;
END
$$;

-- crm.render_email_template renders its three parts in one call (Rust: src/templates.rs).
CREATE FUNCTION crm."_render_email_parts"(
	"subject_template" TEXT,
	"html_template" TEXT,
	"text_template" TEXT,
	"variables" jsonb DEFAULT '{}',
	"strict" bool DEFAULT false
) RETURNS TABLE (
	"subject" TEXT,
	"html" TEXT,
	"text" TEXT
)
STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_render_email_parts_wrapper';

CREATE OR REPLACE FUNCTION crm.render_email_template(
    name       text,
    variables  jsonb DEFAULT '{}',
    account_id uuid DEFAULT crm.current_account_id(),
    strict     boolean DEFAULT false
) RETURNS TABLE (subject text, html text, text text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.subject, p.html, p.text
    FROM crm.find_email_template($1, $3) t,
         LATERAL crm._render_email_parts(t.subject, t.html_content, t.text_content, $2, $4) p
$$;

-- All four providers can send now.
CREATE OR REPLACE FUNCTION crm.email_provider_available(provider text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT $1 IN ('resend', 'gmail', 'microsoft', 'smtp') $$;

CREATE OR REPLACE FUNCTION crm._enqueue_one(m jsonb, batch text) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acct       uuid := coalesce((m ->> 'account_id')::uuid, crm.current_account_id());
    tpl_id     uuid;
    tpl_subj   text;
    prov       text := m ->> 'provider';
    prov_email text;
    rcpts      text[];
    blocked    text;
    due        timestamptz := coalesce((m ->> 'scheduled_at')::timestamptz, now());
    new_id     uuid;
BEGIN
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
        coalesce(m ->> 'from', crm._default_sender(acct, prov_email)), m ->> 'reply_to',
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

CREATE OR REPLACE FUNCTION crm.cancel_email(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (UPDATE crm.email_queue q SET status = 'cancelled', locked_until = NULL
               WHERE q.id = $1 AND q.status IN ('pending', 'scheduled') AND q.send_key IS NULL RETURNING 1)
    SELECT count(*) = 1 FROM c
$$;

-- Retention of finished queue rows.
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

-- New signatures: batch mode in the claim, connection updates in the record.
DROP FUNCTION crm._claim_emails(integer, double precision);
CREATE FUNCTION crm._claim_emails(max_items integer, lease_seconds double precision, batch_mode boolean DEFAULT false)
RETURNS json
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH expired AS (
        SELECT id, send_key, provider, attempts, max_attempts, attachments, priority, next_attempt_at
        FROM crm.email_queue
        WHERE status = 'processing' AND locked_until < now()
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
          AND (m.status <> 'processing' OR m.locked_until < now())
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

DROP FUNCTION crm._record_email_outcomes(jsonb);
CREATE FUNCTION crm._record_email_outcomes(outcomes json, connections json DEFAULT '[]') RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE crm.email_providers p
    SET access_token_encrypted = coalesce(c.access_token, p.access_token_encrypted),
        refresh_token_encrypted = coalesce(c.refresh_token, p.refresh_token_encrypted),
        token_expires_at = CASE WHEN c.access_token IS NOT NULL
                                THEN now() + make_interval(secs => c.expires_in) ELSE p.token_expires_at END,
        -- inactive: enqueue's default-provider choice skips it until the user connects again
        is_active = p.is_active AND c.revoked IS NULL
    FROM json_to_recordset($2) AS c(id uuid, access_token text, refresh_token text, expires_in double precision, revoked text)
    WHERE p.id = c.id;

    UPDATE crm.email_queue q
    SET status = CASE o.outcome WHEN 'sent' THEN 'sent' WHEN 'retry' THEN 'pending' ELSE 'failed' END,
        sent_at = CASE WHEN o.outcome = 'sent' THEN now() END,
        subject = CASE WHEN o.outcome = 'sent' AND o.subject IS NOT NULL THEN left(o.subject, 998) ELSE q.subject END,
        last_error = CASE WHEN o.outcome = 'sent' THEN NULL ELSE left(o.error, 2000) END,
        next_attempt_at = CASE WHEN o.outcome = 'retry' THEN now() + make_interval(secs => o.after_seconds) ELSE q.next_attempt_at END,
        locked_until = NULL,
        metadata = CASE WHEN o.provider_message_id IS NOT NULL
                        THEN q.metadata || jsonb_build_object('provider_message_id', o.provider_message_id)
                        ELSE q.metadata END
    FROM json_to_recordset($1) AS o(id uuid, outcome text, provider_message_id text, subject text, error text,
                                     after_seconds double precision)
    WHERE q.id = o.id AND q.status = 'processing'
$$;
REVOKE ALL ON FUNCTION crm._claim_emails(integer, double precision, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._record_email_outcomes(json, json) FROM PUBLIC;

-- service_role may run the claim and the record (crm.process_email_queue calls them).
CREATE OR REPLACE FUNCTION crm.apply_role_grants() RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done text[] := '{}';
BEGIN
    IF to_regrole('authenticated') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA crm TO authenticated;
        GRANT SELECT, UPDATE ON crm.accounts TO authenticated;
        GRANT SELECT, INSERT, UPDATE, DELETE ON
            crm.users, crm.contacts, crm.jobs, crm.invoices, crm.payments,
            crm.email_providers, crm.calendar_providers, crm.email_templates, crm.email_queue
            TO authenticated;
        GRANT SELECT ON crm.email_analytics, crm.email_delivery_health TO authenticated;
        GRANT SELECT, DELETE ON crm.email_suppressions TO authenticated;
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
