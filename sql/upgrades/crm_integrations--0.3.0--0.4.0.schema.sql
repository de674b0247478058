-- crm_integrations 0.3.0 -> 0.4.0: the integration platform (issue 10). The reviewed schema
-- changes; scripts/gen_update.py appends every function and the privileges to make the
-- update script (installed by scripts/install.sh).

-- The integration task queue (sql/tasks.sql).
CREATE TABLE crm.integration_tasks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    payload         jsonb NOT NULL DEFAULT '{}',
    dedupe_key      text CHECK (length(dedupe_key) BETWEEN 1 AND 256),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    result          jsonb,
    coalesced       integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE UNIQUE INDEX integration_tasks_dedupe_idx
    ON crm.integration_tasks (account_id, kind, dedupe_key) WHERE status = 'pending' AND dedupe_key IS NOT NULL;
CREATE INDEX integration_tasks_due_idx ON crm.integration_tasks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX integration_tasks_lease_idx ON crm.integration_tasks (locked_until) WHERE status = 'processing';
CREATE INDEX integration_tasks_account_idx ON crm.integration_tasks (account_id, created_at DESC);
CREATE INDEX integration_tasks_finished_idx ON crm.integration_tasks (completed_at)
    WHERE status IN ('done', 'failed', 'cancelled');
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON crm.integration_tasks
    FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at();
ALTER TABLE crm.integration_tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.integration_tasks FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.integration_tasks FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.integration_tasks', '');

-- Connections (sql/connections.sql): what the connect flow and the refresh record on each
-- connection; tokens may be deleted (crm.disconnect).
ALTER TABLE crm.email_providers ALTER COLUMN access_token_encrypted DROP NOT NULL,
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{}', ADD COLUMN connected_at timestamptz,
    ADD COLUMN last_refresh_at timestamptz, ADD COLUMN last_error text,
    ADD COLUMN needs_reconnect boolean NOT NULL DEFAULT false;
ALTER TABLE crm.calendar_providers ALTER COLUMN access_token_encrypted DROP NOT NULL,
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{}', ADD COLUMN connected_at timestamptz,
    ADD COLUMN last_refresh_at timestamptz, ADD COLUMN last_error text,
    ADD COLUMN needs_reconnect boolean NOT NULL DEFAULT false;
-- Those columns are the server's: tenants keep column-level INSERT/UPDATE on the others
-- (granted again by sql/security.sql's crm.apply_role_grants()).
DO $$
BEGIN
    IF to_regrole('authenticated') IS NOT NULL THEN
        REVOKE INSERT, UPDATE ON crm.email_providers, crm.calendar_providers FROM authenticated;
    END IF;
END
$$;

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

-- Google Calendar, out (sql/calendar.sql).
ALTER TABLE crm.calendar_providers ADD COLUMN calendar_id text NOT NULL DEFAULT 'primary'
    CHECK (length(calendar_id) BETWEEN 1 AND 1024);

CREATE TABLE crm.calendar_events (
    job_id          uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    connection_id   uuid REFERENCES crm.calendar_providers (id) ON DELETE SET NULL,
    calendar_id     text NOT NULL,
    event_id        text NOT NULL,
    etag            text,
    generation      integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
    last_synced_at  timestamptz NOT NULL DEFAULT now(),
    sync_state      text NOT NULL DEFAULT 'synced' CHECK (sync_state IN ('synced', 'failed')),
    last_error      text
);
CREATE INDEX calendar_events_account_idx ON crm.calendar_events (account_id);
CREATE INDEX calendar_events_connection_idx ON crm.calendar_events (connection_id);
ALTER TABLE crm.calendar_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.calendar_events FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.calendar_events FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.calendar_events', '');


-- Google Calendar, in (sql/calendar.sql).
ALTER TABLE crm.jobs ADD COLUMN calendar_sync_state text
    CHECK (calendar_sync_state IN ('synced', 'deleted_in_calendar'));

-- Each calendar connection's incremental sync: the syncToken of its last complete listing, and
-- the page a bounded run stopped at.
CREATE TABLE crm.calendar_sync (
    connection_id uuid PRIMARY KEY REFERENCES crm.calendar_providers (id) ON DELETE CASCADE,
    account_id    uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    sync_token    text,
    page_token    text,
    synced_at     timestamptz,
    -- the push channel (events/watch): its id, the hash of its token, Google's resource id
    channel_id          text UNIQUE,
    channel_token_hash  text,
    channel_resource_id text,
    channel_expires_at  timestamptz
);
ALTER TABLE crm.calendar_sync ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.calendar_sync FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.calendar_sync FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.calendar_sync', '');

-- A technician's busy time from events that are not ours: times only (titles and attendees
-- are private and are not stored).
CREATE TABLE crm.calendar_busy (
    connection_id uuid NOT NULL REFERENCES crm.calendar_providers (id) ON DELETE CASCADE,
    event_id      text NOT NULL,
    account_id    uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id       uuid,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    PRIMARY KEY (connection_id, event_id)
);
CREATE INDEX calendar_busy_user_idx ON crm.calendar_busy (account_id, user_id, starts_at);
ALTER TABLE crm.calendar_busy ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.calendar_busy FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.calendar_busy FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.calendar_busy', '');


-- @after-functions
ALTER TABLE crm.accounts ADD COLUMN time_zone text CHECK (time_zone IS NULL OR crm._is_time_zone(time_zone));
CREATE TRIGGER calendar_sync AFTER INSERT OR UPDATE OR DELETE ON crm.jobs
    FOR EACH ROW EXECUTE FUNCTION crm._job_calendar_sync();

