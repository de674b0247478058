-- Google Calendar, out: jobs become events (the task kind is calendar.sync_job,
-- src/integrations/google/calendar.rs). A trigger on crm.jobs queues one coalesced task per
-- job when its schedule, title, address, notes, customer, technician or status changes, or
-- it is deleted; the Calendar request happens after the commit, never in the user's
-- transaction.

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
