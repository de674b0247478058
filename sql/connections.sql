-- Connections: the OAuth connect flow for Google and Microsoft (crm.oauth_start /
-- crm.oauth_complete, the reference's /api/integrations/*/authorize and /callback), keeping
-- them alive (oauth.refresh tasks scheduled ahead of expiry), disconnecting, and their health
-- (crm.integration_status). The protocol itself is Rust (src/runtime/connect.rs,
-- core/src/runtime/connect.rs); this file holds the tables and the checks a caller meets.
--
-- A mailbox lands in email_providers (provider gmail | microsoft), a calendar in
-- calendar_providers (google | outlook: the reference's names), an address book in
-- contact_providers (google | microsoft).

CREATE TABLE crm.contact_providers (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id              uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id                 uuid,
    provider                text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    provider_email          text NOT NULL,
    access_token_encrypted  text,
    refresh_token_encrypted text,
    token_expires_at        timestamptz,
    is_active               boolean NOT NULL DEFAULT true,
    is_default              boolean NOT NULL DEFAULT false,
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    scopes                  text[] NOT NULL DEFAULT '{}',
    connected_at            timestamptz,
    last_refresh_at         timestamptz,
    last_error              text,
    needs_reconnect         boolean NOT NULL DEFAULT false
);
ALTER TABLE crm.contact_providers ADD CONSTRAINT contact_providers_user_fk FOREIGN KEY (account_id, user_id)
    REFERENCES crm.users (account_id, id) ON DELETE CASCADE;
CREATE INDEX idx_contact_providers_account_user ON crm.contact_providers (account_id, user_id);
CREATE UNIQUE INDEX contact_providers_one_default
    ON crm.contact_providers (account_id, user_id) NULLS NOT DISTINCT WHERE is_default;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON crm.contact_providers
    FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at();
ALTER TABLE crm.contact_providers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.contact_providers FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.contact_providers FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.contact_providers', '');

-- Every connection, whatever it is for: what status, refresh scheduling and disconnect read.
-- security_invoker: a tenant sees its own connections through it (row-level security of the
-- three tables applies).
CREATE VIEW crm.connections WITH (security_invoker = true) AS
    SELECT id, account_id, user_id, 'email'::text AS purpose, 'email_providers'::text AS table_name,
           CASE provider WHEN 'gmail' THEN 'google' ELSE provider END AS provider, provider_email,
           access_token_encrypted IS NOT NULL AS has_access_token, refresh_token_encrypted IS NOT NULL AS has_refresh_token,
           token_expires_at, is_active, is_default, scopes, connected_at, last_refresh_at, last_error, needs_reconnect, created_at
    FROM crm.email_providers WHERE provider IN ('gmail', 'microsoft')
    UNION ALL
    SELECT id, account_id, user_id, 'calendar', 'calendar_providers',
           CASE provider WHEN 'outlook' THEN 'microsoft' ELSE provider END, provider_email,
           access_token_encrypted IS NOT NULL, refresh_token_encrypted IS NOT NULL,
           token_expires_at, is_active, is_default, scopes, connected_at, last_refresh_at, last_error, needs_reconnect, created_at
    FROM crm.calendar_providers
    UNION ALL
    SELECT id, account_id, user_id, 'contacts', 'contact_providers', provider, provider_email,
           access_token_encrypted IS NOT NULL, refresh_token_encrypted IS NOT NULL,
           token_expires_at, is_active, is_default, scopes, connected_at, last_refresh_at, last_error, needs_reconnect, created_at
    FROM crm.contact_providers;

-- A connect in progress: one row per crm.oauth_start, used once by crm.oauth_complete. The
-- state is stored as its SHA-256 (a leaked row cannot be replayed), the PKCE verifier
-- encrypted and bound to the row. No tenant reads this table; rows are deleted a day after
-- they expire.
CREATE TABLE crm.oauth_states (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_hash         text NOT NULL UNIQUE,
    account_id         uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    -- the JWT's sub: only the user who started a connect may complete it
    user_sub           text NOT NULL,
    provider           text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    purpose            text NOT NULL CHECK (purpose IN ('email', 'calendar', 'contacts')),
    redirect_uri       text NOT NULL,
    verifier_encrypted text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    used_at            timestamptz
);
CREATE INDEX oauth_states_user_idx ON crm.oauth_states (account_id, user_sub) WHERE used_at IS NULL;
CREATE INDEX oauth_states_expiry_idx ON crm.oauth_states (expires_at);
ALTER TABLE crm.oauth_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON crm.oauth_states FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));

-- The JWT's sub claim (the signed-in user), NULL without one.
CREATE FUNCTION crm._jwt_sub() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(c) = 'object' THEN nullif(c ->> 'sub', '') END
    FROM (SELECT CASE WHEN coalesce(current_setting('request.jwt.claims', true), '') = '' THEN NULL
                      ELSE current_setting('request.jwt.claims', true)::jsonb END AS c) x
$$;

-- Start connecting: {authorization_url, state, expires_at}. The frontend sends the browser to
-- authorization_url; the provider sends it back to redirect_uri with ?code=&state= (or
-- ?error=), which the frontend hands to crm.oauth_complete. Called as the signed-in user.
CREATE FUNCTION crm.oauth_start(provider text, purpose text, redirect_uri text, login_hint text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    account uuid := crm.current_account_id();
    sub text := crm._jwt_sub();
    begun jsonb;
    state_id uuid := gen_random_uuid();
    expires timestamptz := now() + interval '10 minutes';
BEGIN
    IF account IS NULL OR sub IS NULL THEN
        RAISE EXCEPTION 'oauth_start needs a signed-in user (a JWT with sub and an account)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Bounded: unfinished connects per user (each holds a row for 10 minutes).
    DELETE FROM crm.oauth_states s WHERE s.expires_at < now() - interval '1 day';
    IF (SELECT count(*) FROM crm.oauth_states s
        WHERE s.account_id = account AND s.user_sub = sub AND s.used_at IS NULL AND s.expires_at > now()) >= 20 THEN
        RAISE EXCEPTION 'too many unfinished connects for this user (20 in 10 minutes)'
            USING ERRCODE = 'program_limit_exceeded', HINT = 'finish or abandon the ones started; they expire after 10 minutes';
    END IF;
    -- Validates provider, purpose, redirect_uri, login_hint and the app's settings (22023,
    -- 55000); returns the state, its hash, the PKCE verifier and the URL.
    begun := crm._oauth_begin($1, $2, $3, $4);
    INSERT INTO crm.oauth_states (id, state_hash, account_id, user_sub, provider, purpose, redirect_uri,
                                  verifier_encrypted, expires_at)
    VALUES (state_id, begun ->> 'state_hash', account, sub, $1, $2, $3,
            crm.encrypt_token(begun ->> 'verifier', 'oauth_states:' || state_id || ':verifier'), expires);
    RETURN jsonb_build_object('authorization_url', begun ->> 'authorization_url', 'state', begun ->> 'state',
                              'expires_at', expires);
END
$$;

-- Finish connecting, after the provider's redirect: {connection_id, provider, purpose, email,
-- scopes, is_default}. The same signed-in user only; a state is good once, for 10 minutes.
CREATE FUNCTION crm.oauth_complete(state text, code text DEFAULT NULL, error text DEFAULT NULL,
                                   error_description text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s crm.oauth_states;
BEGIN
    IF $1 IS NULL OR length($1) > 200 THEN
        RAISE EXCEPTION 'unknown OAuth state' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    SELECT * INTO s FROM crm.oauth_states x WHERE x.state_hash = crm._oauth_state_hash($1) FOR UPDATE;
    IF NOT FOUND OR s.account_id IS DISTINCT FROM crm.current_account_id() OR s.user_sub IS DISTINCT FROM crm._jwt_sub() THEN
        -- the same answer for "no such state" and "someone else's": nothing to probe
        RAISE EXCEPTION 'unknown OAuth state' USING ERRCODE = 'invalid_authorization_specification',
            HINT = 'start the connection again (crm.oauth_start) as the signed-in user who completes it';
    END IF;
    IF s.used_at IS NOT NULL THEN
        RAISE EXCEPTION 'this OAuth state was already used' USING ERRCODE = 'invalid_authorization_specification',
            HINT = 'each connect can be completed once: start it again';
    END IF;
    IF s.expires_at <= now() THEN
        RAISE EXCEPTION 'this OAuth state expired at %', s.expires_at USING ERRCODE = 'invalid_authorization_specification',
            HINT = 'a connect must be completed within 10 minutes: start it again';
    END IF;
    UPDATE crm.oauth_states x SET used_at = now() WHERE x.id = s.id;
    IF $3 IS NOT NULL THEN
        RAISE EXCEPTION '% declined the authorization: % %', s.provider, left($3, 100), coalesce(left($4, 300), '')
            USING ERRCODE = 'invalid_authorization_specification', HINT = coalesce(crm._oauth_hint($3, $4), '');
    END IF;
    IF $2 IS NULL OR $2 = '' OR length($2) > 4096 THEN
        RAISE EXCEPTION 'the redirect carried no authorization code' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Exchanges the code, reads the address, checks the scopes, stores the connection (Rust:
    -- tokens never pass through SQL text). Errors carry the troubleshooting hint.
    RETURN crm._oauth_connect(s.id, $2);
END
$$;

-- Disconnect: revoke at the provider (Google's /revoke; Microsoft has no token revocation
-- endpoint, its tokens are dropped), delete the stored tokens, mark the row inactive, and
-- make another active connection of the same kind the default. True if it was connected.
CREATE FUNCTION crm.disconnect(connection_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    c record;
BEGIN
    SELECT x.* INTO c FROM crm.connections x
    WHERE x.id = $1 AND (x.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Best effort: a revocation the provider does not answer does not keep the tokens here.
    IF c.table_name = 'calendar_providers' THEN
        PERFORM crm._calendar_stop_watch(c.id);
        DELETE FROM crm.calendar_sync x WHERE x.connection_id = c.id;
    END IF;
    PERFORM crm._oauth_revoke(c.id, c.table_name);
    EXECUTE format('UPDATE crm.%I SET access_token_encrypted = NULL, refresh_token_encrypted = NULL, token_expires_at = NULL,
                                      is_active = false, is_default = false, needs_reconnect = false,
                                      last_error = ''disconnected'' WHERE id = $1', c.table_name) USING c.id;
    IF c.is_default THEN
        EXECUTE format('UPDATE crm.%I SET is_default = true WHERE id = (
                            SELECT id FROM crm.%I WHERE account_id = $1 AND user_id IS NOT DISTINCT FROM $2
                              AND is_active AND id <> $3 %s ORDER BY connected_at DESC NULLS LAST, created_at DESC LIMIT 1)',
                       c.table_name, c.table_name,
                       CASE c.table_name WHEN 'email_providers' THEN 'AND provider IN (''gmail'', ''microsoft'')' ELSE '' END)
            USING c.account_id, c.user_id, c.id;
    END IF;
    RETURN true;
END
$$;

-- Keep connections alive: an oauth.refresh task for each active connection whose token
-- expires within crm.oauth_refresh_ahead (coalesced per connection, so calling this often is
-- cheap). The workers call it every 30 s; pg_cron may too. Returns how many were queued.
CREATE FUNCTION crm.schedule_token_refreshes() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ahead interval := coalesce(nullif(current_setting('crm.oauth_refresh_ahead', true), ''), '10min')::interval;
    n integer := 0;
    c record;
BEGIN
    FOR c IN SELECT x.id, x.account_id FROM crm.connections x
             WHERE x.is_active AND NOT x.needs_reconnect AND x.has_refresh_token
               AND x.token_expires_at < now() + ahead
               AND NOT EXISTS (SELECT 1 FROM crm.integration_tasks t
                               WHERE t.kind = 'oauth.refresh' AND t.dedupe_key = 'connection:' || x.id
                                 AND t.status IN ('pending', 'processing'))
             ORDER BY x.token_expires_at
             LIMIT 1000
    LOOP
        PERFORM crm.enqueue_task('oauth.refresh', jsonb_build_object('connection_id', c.id),
                                 'connection:' || c.id, now(), c.account_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- One row per connection of the account, and one per server-side integration (configured or
-- not, never a value). SECURITY DEFINER: it decides itself that the caller asks about its own
-- account (or is privileged); it says nothing otherwise.
CREATE FUNCTION crm.integration_status(account_id uuid DEFAULT crm.current_account_id())
RETURNS TABLE (kind text, provider text, purpose text, email text, connected_at timestamptz, scopes text[],
               token_expires_at timestamptz, last_refresh_at timestamptz, last_error text, state text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'connection', c.provider, c.purpose, c.provider_email, c.connected_at, c.scopes, c.token_expires_at,
           c.last_refresh_at, c.last_error,
           CASE WHEN c.needs_reconnect THEN 'needs_reconnect'
                WHEN NOT c.is_active OR NOT c.has_access_token THEN 'disconnected'
                WHEN c.token_expires_at < now() + interval '10 minutes' AND NOT c.has_refresh_token THEN 'expiring'
                WHEN c.token_expires_at < now() AND c.has_refresh_token THEN 'expiring'
                ELSE 'healthy' END
    FROM crm.connections c
    WHERE c.account_id = $1 AND ($1 = crm.current_account_id() OR crm._caller_is_privileged())
    UNION ALL
    SELECT 'service', s.name, s.purpose, NULL, NULL, NULL, NULL, NULL, NULL,
           CASE WHEN s.configured THEN 'configured' ELSE 'not_configured' END
    FROM (VALUES
        ('resend', 'email', coalesce(current_setting('crm.resend_base_url', true), '') <> ''
                            AND crm._setting_is_set('crm.resend_api_key')),
        ('stripe', 'webhooks', crm._setting_is_set('crm.stripe_webhook_secret')),
        ('google', 'oauth', coalesce(current_setting('crm.google_client_id', true), '') <> ''
                            AND crm._setting_is_set('crm.google_client_secret')),
        ('microsoft', 'oauth', coalesce(current_setting('crm.microsoft_client_id', true), '') <> ''
                               AND crm._setting_is_set('crm.microsoft_client_secret'))
    ) AS s(name, purpose, configured)
    WHERE $1 IS NOT NULL AND ($1 = crm.current_account_id() OR crm._caller_is_privileged())
$$;

-- Privileges: sql/security.sql.
