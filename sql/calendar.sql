-- Google Calendar, out: jobs become events (the task kind is calendar.sync_job,
-- src/integrations/google/calendar.rs). A trigger on crm.jobs queues one coalesced task per
-- job when its schedule, title, address, notes, customer, technician or status changes, or
-- it is deleted; the Calendar request happens after the commit, never in the user's
-- transaction.

-- An account's IANA time zone: its jobs' events are written in it (else crm.calendar_time_zone).
ALTER TABLE crm.accounts ADD COLUMN time_zone text CHECK (time_zone IS NULL OR crm._is_time_zone(time_zone));

-- Which calendar a connection writes jobs to (Google's calendar id; 'primary' is the user's own).
ALTER TABLE crm.calendar_providers ADD COLUMN calendar_id text NOT NULL DEFAULT 'primary'
    CHECK (length(calendar_id) BETWEEN 1 AND 1024);

-- A job's event. No foreign key to the job on purpose: when a job is deleted, its mapping
-- must outlive it until the sync task has deleted the event.
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

-- The trigger: one calendar.sync_job per job (coalesced on 'job:<id>'), when the job has an
-- event or could get one (scheduled, and the account has an active Google calendar).
-- SECURITY DEFINER: a tenant's job write queues the task without the tenant being able to
-- queue anything else.
CREATE FUNCTION crm._job_calendar_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j crm.jobs := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    -- a change that came from Google (crm._apply_calendar_changes) is not sent back to it
    IF current_setting('crm.applying_calendar_changes', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE'
       AND (NEW.scheduled_start, NEW.scheduled_end, NEW.title, NEW.address, NEW.description, NEW.assigned_to,
            NEW.status, NEW.contact_id)
           IS NOT DISTINCT FROM
           (OLD.scheduled_start, OLD.scheduled_end, OLD.title, OLD.address, OLD.description, OLD.assigned_to,
            OLD.status, OLD.contact_id) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM crm.calendar_events e WHERE e.job_id = j.id)
       OR (TG_OP <> 'DELETE' AND j.scheduled_start IS NOT NULL AND j.status <> 'cancelled'
           AND EXISTS (SELECT 1 FROM crm.calendar_providers p
                       WHERE p.account_id = j.account_id AND p.provider = 'google' AND p.is_active)) THEN
        PERFORM crm.enqueue_task('calendar.sync_job', jsonb_build_object('job_id', j.id), 'job:' || j.id, now(), j.account_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER calendar_sync AFTER INSERT OR UPDATE OR DELETE ON crm.jobs
    FOR EACH ROW EXECUTE FUNCTION crm._job_calendar_sync();

-- What a calendar.sync_job run did: {mapping: {connection_id, calendar_id, event_id,
-- generation, etag}} or {delete_mapping: true}, plus the connections' token changes and a
-- connection's error (a calendar that does not exist).
CREATE FUNCTION crm._apply_calendar_sync(account uuid, payload jsonb, result jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job uuid := (payload ->> 'job_id')::uuid;
    m jsonb := result -> 'mapping';
BEGIN
    IF result ? 'connections' THEN
        PERFORM crm._record_connection_updates((result -> 'connections')::json);
    END IF;
    IF result ? 'connection_error' THEN
        UPDATE crm.calendar_providers p SET last_error = left(result -> 'connection_error' ->> 'error', 2000)
        WHERE p.id = (result -> 'connection_error' ->> 'id')::uuid AND p.account_id = account;
    END IF;
    IF coalesce((result ->> 'delete_mapping')::boolean, false) THEN
        DELETE FROM crm.calendar_events e WHERE e.job_id = job AND e.account_id = account;
    END IF;
    IF m IS NOT NULL THEN
        INSERT INTO crm.calendar_events AS e (job_id, account_id, connection_id, calendar_id, event_id, etag, generation,
                                              last_synced_at, sync_state, last_error)
        VALUES (job, account, (m ->> 'connection_id')::uuid, m ->> 'calendar_id', m ->> 'event_id', m ->> 'etag',
                (m ->> 'generation')::integer, now(), 'synced', NULL)
        ON CONFLICT (job_id) DO UPDATE SET connection_id = EXCLUDED.connection_id, calendar_id = EXCLUDED.calendar_id,
            event_id = EXCLUDED.event_id, etag = EXCLUDED.etag, generation = EXCLUDED.generation,
            last_synced_at = now(), sync_state = 'synced', last_error = NULL
        WHERE e.account_id = account;
    END IF;
END
$$;

-- Privileges: sql/security.sql.

-- Google Calendar, in: changes made in Google come back (the task kind is
-- calendar.sync_connection, src/integrations/google/calendar_sync.rs).

-- Where a job's event stands with Google: 'deleted_in_calendar' when someone deleted it there
-- (the job is flagged, not cancelled).
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

-- Apply one listing: [{id, cancelled, updated, start, end, job_id, free}], whether it was a
-- full one, the next syncToken (or the page a bounded run stopped at), token changes.
--  * our events (mapped to a job of this account on this connection) moved or resized in
--    Google: the job follows — unless the job changed after Google's change (the later change
--    wins; the losing change is recorded on the mapping);
--  * our events deleted in Google: the job is flagged 'deleted_in_calendar', not cancelled;
--  * everyone else's events: busy intervals (free, cancelled or all-day ones are not busy).
-- The job updates here set crm.applying_calendar_changes for the rest of the transaction, so
-- the job trigger does not send them back to Google (no echo).
CREATE FUNCTION crm._apply_calendar_changes(account uuid, payload jsonb, result jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conn uuid := (payload ->> 'connection_id')::uuid;
    owner uuid;
    complete boolean := result ->> 'page_token' IS NULL AND result ->> 'sync_token' IS NOT NULL;
BEGIN
    IF result ? 'connections' AND jsonb_array_length(result -> 'connections') > 0 THEN
        PERFORM crm._record_connection_updates((result -> 'connections')::json);
    END IF;
    SELECT p.user_id INTO owner FROM crm.calendar_providers p WHERE p.id = conn AND p.account_id = account;
    IF NOT FOUND OR NOT (result ? 'events') THEN
        RETURN;
    END IF;
    PERFORM set_config('crm.applying_calendar_changes', 'on', true);

    CREATE TEMP TABLE IF NOT EXISTS calendar_listing (id text, cancelled boolean, updated timestamptz, start timestamptz,
                                                      "end" timestamptz, job_id text, free boolean) ON COMMIT DROP;
    TRUNCATE calendar_listing;
    INSERT INTO calendar_listing
    SELECT * FROM jsonb_to_recordset(result -> 'events')
        AS e(id text, cancelled boolean, updated timestamptz, start timestamptz, "end" timestamptz, job_id text, free boolean);

    -- Ours, moved in Google after the job last changed: the job follows.
    UPDATE crm.jobs j
    SET scheduled_start = l.start, scheduled_end = l."end", calendar_sync_state = 'synced'
    FROM calendar_listing l JOIN crm.calendar_events m ON m.event_id = l.id AND m.connection_id = conn AND m.account_id = account
    WHERE j.id = m.job_id AND j.account_id = account AND NOT l.cancelled AND l.start IS NOT NULL
      AND (j.scheduled_start, j.scheduled_end) IS DISTINCT FROM (l.start, l."end")
      AND (l.updated IS NULL OR l.updated >= j.updated_at);
    -- Ours, but the job changed later: the job wins; Google's change is recorded as lost.
    UPDATE crm.calendar_events m
    SET last_error = left(format('conflict: the change made in Google at %s (%s – %s) lost to the job''s later change at %s',
                                 l.updated, l.start, l."end", j.updated_at), 2000)
    FROM calendar_listing l, crm.jobs j
    WHERE m.event_id = l.id AND m.connection_id = conn AND m.account_id = account AND j.id = m.job_id
      AND NOT l.cancelled AND l.start IS NOT NULL
      AND (j.scheduled_start, j.scheduled_end) IS DISTINCT FROM (l.start, l."end")
      AND l.updated < j.updated_at;
    -- Ours, deleted in Google.
    UPDATE crm.jobs j SET calendar_sync_state = 'deleted_in_calendar'
    FROM calendar_listing l JOIN crm.calendar_events m ON m.event_id = l.id AND m.connection_id = conn AND m.account_id = account
    WHERE j.id = m.job_id AND j.account_id = account AND l.cancelled AND j.status <> 'cancelled';
    UPDATE crm.calendar_events m SET last_synced_at = now()
    FROM calendar_listing l WHERE m.event_id = l.id AND m.connection_id = conn AND m.account_id = account;

    -- Everyone else's: busy intervals.
    DELETE FROM crm.calendar_busy b USING calendar_listing l
    WHERE b.connection_id = conn AND b.event_id = l.id
      AND (l.cancelled OR l.free OR l.start IS NULL OR l."end" IS NULL);
    INSERT INTO crm.calendar_busy (connection_id, event_id, account_id, user_id, starts_at, ends_at)
    SELECT conn, l.id, account, owner, l.start, l."end" FROM calendar_listing l
    WHERE NOT l.cancelled AND NOT l.free AND l.start IS NOT NULL AND l."end" IS NOT NULL AND l."end" >= l.start
      AND l.job_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM crm.calendar_events m WHERE m.event_id = l.id AND m.connection_id = conn)
    ON CONFLICT (connection_id, event_id) DO UPDATE SET starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at;
    IF coalesce((result ->> 'full')::boolean, false) AND complete THEN
        DELETE FROM crm.calendar_busy b
        WHERE b.connection_id = conn AND NOT EXISTS (SELECT 1 FROM calendar_listing l WHERE l.id = b.event_id);
    END IF;

    INSERT INTO crm.calendar_sync AS s (connection_id, account_id, sync_token, page_token, synced_at)
    VALUES (conn, account, result ->> 'sync_token', result ->> 'page_token', now())
    ON CONFLICT (connection_id) DO UPDATE SET sync_token = EXCLUDED.sync_token, page_token = EXCLUDED.page_token,
                                              synced_at = now();
    PERFORM set_config('crm.applying_calendar_changes', 'off', true);
END
$$;

-- Sync now: a calendar.sync_connection task per active Google calendar connection of the
-- caller's account (one, when connection_id is given), coalesced per connection. Returns the
-- task ids.
CREATE FUNCTION crm.sync_calendar(connection_id uuid DEFAULT NULL) RETURNS SETOF uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm.enqueue_task('calendar.sync_connection', jsonb_build_object('connection_id', p.id), 'sync:' || p.id,
                            now(), p.account_id)
    FROM crm.calendar_providers p
    WHERE p.provider = 'google' AND p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL
      AND ($1 IS NULL OR p.id = $1)
      AND (p.account_id = crm.current_account_id() OR crm._caller_is_privileged())
$$;

-- The workers' schedule: connections not synced within crm.calendar_sync_interval (and with
-- no sync queued) get one, and push channels expiring within a day are renewed. Returns how
-- many tasks were queued.
CREATE FUNCTION crm._schedule_calendar_syncs() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT p.id, p.account_id FROM crm.calendar_providers p LEFT JOIN crm.calendar_sync s ON s.connection_id = p.id
        WHERE p.provider = 'google' AND p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL
          AND (s.synced_at IS NULL OR s.synced_at < now()
               - coalesce(nullif(current_setting('crm.calendar_sync_interval', true), ''), '5min')::interval)
          AND NOT EXISTS (SELECT 1 FROM crm.integration_tasks t
                          WHERE t.kind = 'calendar.sync_connection' AND t.dedupe_key = 'sync:' || p.id
                            AND t.status IN ('pending', 'processing'))
        LIMIT 1000
    ), renew AS (
        -- push channels expiring within a day (Google's last up to a week)
        SELECT p.id, p.account_id FROM crm.calendar_providers p JOIN crm.calendar_sync s ON s.connection_id = p.id
        WHERE p.provider = 'google' AND p.is_active AND NOT p.needs_reconnect AND s.channel_id IS NOT NULL
          AND s.channel_expires_at < now() + interval '1 day'
          AND NOT EXISTS (SELECT 1 FROM crm.integration_tasks t
                          WHERE t.kind = 'calendar.watch' AND t.dedupe_key = 'watch:' || p.id
                            AND t.status IN ('pending', 'processing'))
        LIMIT 1000
    )
    SELECT ((SELECT count(crm.enqueue_task('calendar.sync_connection', jsonb_build_object('connection_id', id),
                                           'sync:' || id, now(), account_id)) FROM due)
          + (SELECT count(crm.enqueue_task('calendar.watch', jsonb_build_object('connection_id', id),
                                           'watch:' || id, now(), account_id)) FROM renew))::integer
$$;

-- Push: crm.calendar_watch(connection) queues a calendar.watch task, which opens a channel on
-- the calendar's events (type web_hook, address crm.calendar_webhook_url); Google then calls
-- the webhook below on every change. The workers renew channels a day before they expire,
-- and crm.disconnect stops them.
CREATE FUNCTION crm.calendar_watch(connection_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acct uuid;
BEGIN
    IF coalesce(current_setting('crm.calendar_webhook_url', true), '') !~ '^https://' THEN
        RAISE EXCEPTION 'crm.calendar_webhook_url must be set to the https URL of crm.google_calendar_webhook'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'e.g. https://<project>.supabase.co/rest/v1/rpc/google_calendar_webhook';
    END IF;
    SELECT p.account_id INTO acct FROM crm.calendar_providers p
    WHERE p.id = $1 AND p.provider = 'google' AND p.is_active
      AND (p.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN crm.enqueue_task('calendar.watch', jsonb_build_object('connection_id', $1), 'watch:' || $1, now(), acct);
END
$$;

-- What calendar.watch did: the channel (its token's hash only), or just token changes.
CREATE FUNCTION crm._apply_calendar_watch(account uuid, payload jsonb, result jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conn uuid := (payload ->> 'connection_id')::uuid;
BEGIN
    IF result ? 'connections' AND jsonb_array_length(result -> 'connections') > 0 THEN
        PERFORM crm._record_connection_updates((result -> 'connections')::json);
    END IF;
    IF result ->> 'channel_id' IS NULL
       OR NOT EXISTS (SELECT 1 FROM crm.calendar_providers p WHERE p.id = conn AND p.account_id = account) THEN
        RETURN;
    END IF;
    INSERT INTO crm.calendar_sync AS s (connection_id, account_id, channel_id, channel_token_hash, channel_resource_id,
                                        channel_expires_at)
    VALUES (conn, account, result ->> 'channel_id', result ->> 'token_hash', result ->> 'resource_id',
            to_timestamp((result ->> 'expires_ms')::double precision / 1000))
    ON CONFLICT (connection_id) DO UPDATE SET channel_id = EXCLUDED.channel_id,
        channel_token_hash = EXCLUDED.channel_token_hash, channel_resource_id = EXCLUDED.channel_resource_id,
        channel_expires_at = EXCLUDED.channel_expires_at;
END
$$;

-- Google's push notification, as PostgREST hands it over: POST /rest/v1/rpc/google_calendar_webhook
-- with the X-Goog-* headers in request.headers (no body: notifications carry no data). An
-- unknown channel or a wrong token is 28000; a 'sync' message (the channel opened) is
-- acknowledged; any other schedules an incremental sync of that calendar (coalesced).
CREATE FUNCTION crm.google_calendar_webhook() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h jsonb := coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}');
    s crm.calendar_sync;
BEGIN
    SELECT * INTO s FROM crm.calendar_sync x WHERE x.channel_id = left(h ->> 'x-goog-channel-id', 200);
    IF NOT FOUND OR s.channel_token_hash IS DISTINCT FROM crm._oauth_state_hash(coalesce(left(h ->> 'x-goog-channel-token', 300), '')) THEN
        RAISE EXCEPTION 'unknown calendar channel or wrong channel token'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    IF h ->> 'x-goog-resource-state' = 'sync' THEN
        RETURN jsonb_build_object('status', 'ignored', 'reason', 'sync message');
    END IF;
    PERFORM crm.enqueue_task('calendar.sync_connection', jsonb_build_object('connection_id', s.connection_id),
                             'sync:' || s.connection_id, now(), s.account_id);
    RETURN jsonb_build_object('status', 'scheduled', 'message_number', h ->> 'x-goog-message-number');
END
$$;
