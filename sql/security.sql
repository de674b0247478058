-- Runs after every generated function exists: key rotation, function privileges and the grants
-- to Supabase's API roles.

-- Re-encrypt every stored OAuth token under the current key, batch_size rows at a time (keyset
-- pagination by id, rows locked FOR UPDATE), and return how many tokens were rewritten.
-- Tokens already under the current key are left alone, so running it twice is cheap and the
-- second run returns 0. A token keeps its binding: one bound to '<table>:<id>:<column>' is
-- re-bound to the same context, one stored without context stays without.
-- After it returns, the old key can be dropped from crm.encryption_key_previous.
CREATE FUNCTION crm.rotate_encryption_key(batch_size integer DEFAULT 500) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl      text;
    last_id  uuid;
    n_rows   bigint;
    n_tokens bigint;
    total    bigint := 0;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 100000, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Fail before taking any lock when the key is missing or malformed.
    PERFORM crm.current_key_fingerprint();
    FOREACH tbl IN ARRAY ARRAY['email_providers', 'calendar_providers'] LOOP
        last_id := NULL;
        LOOP
            EXECUTE format($q$
                WITH batch AS (
                    SELECT id,
                           coalesce(crm.token_needs_rotation(access_token_encrypted), false) AS a,
                           coalesce(crm.token_needs_rotation(refresh_token_encrypted), false) AS r
                    FROM crm.%1$I
                    WHERE $1::uuid IS NULL OR id > $1
                    ORDER BY id
                    LIMIT $2
                    FOR UPDATE),
                rewritten AS (
                    UPDATE crm.%1$I t
                    SET access_token_encrypted = CASE WHEN b.a
                            THEN crm._rotate_token(t.access_token_encrypted, %2$L || t.id || ':access_token')
                            ELSE t.access_token_encrypted END,
                        refresh_token_encrypted = CASE WHEN b.r
                            THEN crm._rotate_token(t.refresh_token_encrypted, %2$L || t.id || ':refresh_token')
                            ELSE t.refresh_token_encrypted END
                    FROM batch b
                    WHERE t.id = b.id AND (b.a OR b.r)
                    RETURNING 1)
                SELECT (SELECT id FROM batch ORDER BY id DESC LIMIT 1),
                       (SELECT count(*) FROM batch),
                       (SELECT count(*) FILTER (WHERE a) + count(*) FILTER (WHERE r) FROM batch)
                $q$, tbl, tbl || ':')
            INTO last_id, n_rows, n_tokens
            USING last_id, batch_size;
            total := total + n_tokens;
            EXIT WHEN n_rows < batch_size;
        END LOOP;
    END LOOP;
    RETURN total;
END
$$;

-- Decryption is for the server side only: superusers and service_role.
REVOKE ALL ON FUNCTION crm.decrypt_token(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.decrypt_token(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm._rotate_token(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.rotate_encryption_key(integer) FROM PUBLIC;
-- Sending is the server side's job (pg_cron, psql, the worker): it sends every account's mail.
REVOKE ALL ON FUNCTION crm.process_email_queue(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.process_integration_tasks(integer) FROM PUBLIC;
-- Keeping connections alive is the server side's (the workers, pg_cron).
REVOKE ALL ON FUNCTION crm.schedule_token_refreshes() FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.sync_calendar(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.calendar_watch(uuid) FROM PUBLIC;
-- Which secrets are set is the server's business, even without their values.
REVOKE ALL ON FUNCTION crm.config_check(boolean) FROM PUBLIC;
-- Connecting is for signed-in users (authenticated) and the server, not anon.
REVOKE ALL ON FUNCTION crm.oauth_start(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.oauth_complete(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.disconnect(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.integration_status(uuid) FROM PUBLIC;
-- Queueing tasks and purging them: the server side (service_role, the extension's triggers).
REVOKE ALL ON FUNCTION crm.enqueue_task(text, jsonb, text, timestamptz, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.purge_integration_tasks(interval, integer) FROM PUBLIC;
-- Maps: paid requests, for signed-in users and the server, not anon.
REVOKE ALL ON FUNCTION crm.geocode(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.reverse_geocode(double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.travel_times(jsonb, jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.geocode_missing(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.report_location(double precision, double precision, real, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.job_eta(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.suggest_technicians(uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.plan_route(uuid, date) FROM PUBLIC;
-- Stripe: payment links for signed-in users and the server, not anon.
REVOKE ALL ON FUNCTION crm.create_invoice_checkout(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.create_payment_intent(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.invoice_pdf(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.send_invoice_email(uuid, text, boolean) FROM PUBLIC;
-- Contacts: duplicates and merges for signed-in users and the server.
REVOKE ALL ON FUNCTION crm.find_duplicate_contacts(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.merge_contacts(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.unmerge_contacts(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.sync_contacts(uuid) FROM PUBLIC;
-- Drafts in a connected mailbox: signed-in users and the server.
REVOKE ALL ON FUNCTION crm.create_draft(jsonb) FROM PUBLIC;
-- The voice agent's tools and MCP endpoint: signed-in users (their JWT) and the server.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'crm'::regnamespace AND p.proname LIKE 'tool\_%'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION crm.call_tool(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.voice_conversation_start(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.mcp(json) FROM PUBLIC;
-- Sealing tokens: authenticated and service_role (apply_role_grants), not anon.
REVOKE ALL ON FUNCTION crm.encrypt_token(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.encrypt_token(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.current_key_fingerprint() FROM PUBLIC;

-- Internal helpers (names starting with '_') are not callable by PUBLIC: they run inside the
-- SECURITY DEFINER entry points, the worker, or triggers. The exceptions are the bodies of
-- invoker functions every caller may use (rendering, the template lookup, which row-level
-- security filters), pure parsing helpers, the time-zone check that a tenant's update of
-- its account runs (accounts.time_zone's CHECK), and the email key of contacts' matching
-- index (a tenant's contact write computes it).
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'crm'::regnamespace AND p.proname LIKE '\_%'
               AND p.proname NOT IN ('_render_email_parts', '_template_named', '_try_uuid', '_try_inet', '_try_timestamptz',
                                   '_is_time_zone', '_address_key', '_email_key')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

-- (0.5.0 revoked it; an updated database gets it back like a fresh one has it)
GRANT EXECUTE ON FUNCTION crm._email_key(text) TO PUBLIC;

-- EXECUTE on every voice tool, its implementation, the dispatcher, the MCP endpoint and the
-- helpers they call, for one API role.
CREATE FUNCTION crm._grant_voice_tools(role_name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'crm'::regnamespace
               AND (p.proname LIKE 'tool\_%' OR p.proname LIKE '\_tool\_%'
                    OR p.proname IN ('call_tool', 'mcp', '_mcp_tools', '_mcp_error', '_account_time_zone', '_like_prefix',
                                     '_contacts_named', '_users_named', '_pick_named', '_job_json', '_log_tool_call',
                                     '_phone_key', '_jwt_sub'))
               AND p.proname <> '_tool_calls_upkeep'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, role_name);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION crm._grant_voice_tools(text) FROM PUBLIC;

-- Grant Supabase's API roles what they need, for those that exist. Runs at CREATE EXTENSION;
-- on a plain Postgres where the roles are created later, a superuser calls it again.
-- Returns the roles it granted to.
CREATE FUNCTION crm.apply_role_grants() RETURNS text[]
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
        GRANT UPDATE (name, slug, time_zone) ON crm.accounts TO authenticated;
        GRANT SELECT, INSERT, UPDATE, DELETE ON
            crm.users, crm.contacts, crm.jobs, crm.email_templates
            TO authenticated;
        -- Connections: a tenant may still store its own tokens (the pre-0.4.0 way) and manage
        -- its rows; what the connect flow and the refresh record (scopes, connected_at,
        -- last_refresh_at, last_error, needs_reconnect) is the server's.
        GRANT SELECT, DELETE ON crm.email_providers, crm.calendar_providers, crm.contact_providers TO authenticated;
        GRANT INSERT (id, account_id, user_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted,
                      token_expires_at, is_active, is_default, last_synced_at),
              UPDATE (user_id, provider, provider_email, access_token_encrypted, refresh_token_encrypted,
                      token_expires_at, is_active, is_default, last_synced_at)
            ON crm.email_providers, crm.calendar_providers, crm.contact_providers TO authenticated;
        -- which of its calendars a calendar connection writes jobs to
        GRANT INSERT (calendar_id), UPDATE (calendar_id) ON crm.calendar_providers TO authenticated;
        GRANT SELECT ON crm.connections TO authenticated;
        GRANT SELECT ON crm.calendar_events, crm.calendar_sync, crm.calendar_busy TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.sync_calendar(uuid), crm.calendar_watch(uuid) TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.oauth_start(text, text, text, text), crm.oauth_complete(text, text, text, text),
            crm.disconnect(uuid), crm.integration_status(uuid) TO authenticated;
        GRANT SELECT, DELETE ON crm.invoices, crm.payments TO authenticated;
        GRANT INSERT (id, account_id, job_id, contact_id, invoice_number, amount, currency, status, due_date),
              UPDATE (job_id, contact_id, invoice_number, amount, currency, status, due_date)
            ON crm.invoices TO authenticated;
        GRANT INSERT (id, account_id, invoice_id, amount, currency, status, failure_message),
              UPDATE (invoice_id, amount, currency, status, failure_message)
            ON crm.payments TO authenticated;
        GRANT SELECT ON crm.email_queue, crm.email_analytics, crm.email_delivery_health TO authenticated;
        -- Maps: coordinates are server-owned columns of jobs and contacts (a trigger keeps them);
        -- positions are written only through crm.report_location, by the technician.
        GRANT SELECT ON crm.maps_usage, crm.technician_positions, crm.technician_locations TO authenticated;
        -- Stripe: the checkout columns of invoices are the server's (not in the grant above);
        -- line items are the tenant's.
        GRANT SELECT, INSERT, UPDATE, DELETE ON crm.invoice_items TO authenticated;
        -- Contacts: sources are written by the sync, merges by crm.merge_contacts.
        GRANT SELECT ON crm.contact_sources, crm.contact_merges, crm.contact_sync TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.find_duplicate_contacts(uuid), crm.merge_contacts(uuid, uuid),
            crm.unmerge_contacts(uuid), crm.sync_contacts(uuid) TO authenticated;
        GRANT SELECT ON crm.email_drafts TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.create_draft(jsonb) TO authenticated;
        -- Voice: the tools run with the caller's rights (its implementations crm._tool_* too:
        -- crm.call_tool, an invoker function, calls them), calls are logged for the account.
        PERFORM crm._grant_voice_tools('authenticated');
        GRANT SELECT ON crm.tool_calls, crm.voice_calls, crm.voice_conversations TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.voice_conversation_start(text) TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.create_invoice_checkout(uuid), crm.create_payment_intent(uuid),
            crm.invoice_pdf(uuid), crm.send_invoice_email(uuid, text, boolean) TO authenticated;
        GRANT EXECUTE ON FUNCTION crm.geocode(text), crm.reverse_geocode(double precision, double precision),
            crm.travel_times(jsonb, jsonb, timestamptz), crm.geocode_missing(integer),
            crm.report_location(double precision, double precision, real, timestamptz), crm.job_eta(uuid),
            crm.suggest_technicians(uuid, integer), crm.plan_route(uuid, date) TO authenticated;
        -- Tasks are queued by the server (service_role, the extension's triggers); a tenant
        -- sees its own, and may retry or cancel them (crm.retry_/cancel_integration_task).
        GRANT SELECT ON crm.integration_tasks TO authenticated;
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
        GRANT EXECUTE ON FUNCTION crm.oauth_start(text, text, text, text), crm.oauth_complete(text, text, text, text),
            crm.disconnect(uuid), crm.integration_status(uuid), crm.schedule_token_refreshes(),
            crm.config_check(boolean), crm.sync_calendar(uuid), crm.calendar_watch(uuid) TO service_role;
        GRANT EXECUTE ON FUNCTION crm.geocode(text), crm.reverse_geocode(double precision, double precision),
            crm.travel_times(jsonb, jsonb, timestamptz), crm.geocode_missing(integer),
            crm.job_eta(uuid), crm.suggest_technicians(uuid, integer), crm.plan_route(uuid, date) TO service_role;
        GRANT EXECUTE ON FUNCTION crm.create_invoice_checkout(uuid), crm.create_payment_intent(uuid),
            crm.invoice_pdf(uuid), crm.send_invoice_email(uuid, text, boolean) TO service_role;
        GRANT EXECUTE ON FUNCTION crm.find_duplicate_contacts(uuid), crm.merge_contacts(uuid, uuid),
            crm.unmerge_contacts(uuid), crm.sync_contacts(uuid), crm.create_draft(jsonb) TO service_role;
        PERFORM crm._grant_voice_tools('service_role');
        GRANT EXECUTE ON FUNCTION crm.enqueue_task(text, jsonb, text, timestamptz, uuid),
            crm.process_integration_tasks(integer), crm.purge_integration_tasks(interval, integer),
            crm._claim_tasks(integer, double precision), crm._record_task_outcomes(json) TO service_role;
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
REVOKE ALL ON FUNCTION crm.apply_role_grants() FROM PUBLIC;

SELECT crm.apply_role_grants();
