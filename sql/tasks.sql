-- The integration task queue: every outbound call that is not an email (a calendar sync, a
-- geocode, a token refresh, a Stripe request) is a row here, run by the same runtime as the
-- email queue (src/runtime): claimed with a lease, run with no transaction open, recorded in
-- a new transaction, retried with the shared backoff, paced by the shared limiter.
--
-- Kinds are registered in Rust (src/integrations/*, one handler per kind); crm._check_task
-- refuses an unknown kind or a payload its handler cannot run (22023) before anything is
-- written. Failed tasks stay, visible and retriable: they are the dead-letter queue.

CREATE TABLE crm.integration_tasks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    payload         jsonb NOT NULL DEFAULT '{}',
    -- Coalescing: while a pending task has this key (per account and kind), enqueueing with it
    -- replaces that task's payload instead of adding a task.
    dedupe_key      text CHECK (length(dedupe_key) BETWEEN 1 AND 256),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    result          jsonb,
    -- how many enqueues this task absorbed besides its own
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

-- Queue a task; returns its id (the pending task's id when it coalesced into one). For the
-- server side: service_role, and the extension's own triggers (SECURITY DEFINER, so a
-- tenant's write can queue its integration's work without the tenant being able to queue
-- anything else).
CREATE FUNCTION crm.enqueue_task(kind text, payload jsonb DEFAULT '{}', dedupe_key text DEFAULT NULL,
                                 run_at timestamptz DEFAULT now(), account_id uuid DEFAULT crm.current_account_id())
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    task_id uuid;
    kind_attempts integer;
BEGIN
    IF $5 IS NULL THEN
        RAISE EXCEPTION 'enqueue_task needs an account: pass account_id, or call it with an account in the JWT'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $4 IS NULL THEN
        RAISE EXCEPTION 'run_at must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- kind registered, payload readable by its handler and within crm.max_json_argument_bytes
    kind_attempts := crm._check_task($1, coalesce($2, '{}'::jsonb));
    IF $3 IS NOT NULL THEN
        -- one enqueue per key at a time, so coalescing and the sender's "back to pending"
        -- (crm._record_task_outcomes) never race into the unique index
        PERFORM pg_advisory_xact_lock(7462, hashtext($5::text || '/' || $1 || '/' || $3));
    END IF;
    INSERT INTO crm.integration_tasks AS t (account_id, kind, payload, dedupe_key, next_attempt_at, max_attempts)
    VALUES ($5, $1, coalesce($2, '{}'::jsonb), $3, $4, kind_attempts)
    ON CONFLICT (account_id, kind, dedupe_key) WHERE status = 'pending' AND dedupe_key IS NOT NULL
    DO UPDATE SET payload = EXCLUDED.payload, next_attempt_at = EXCLUDED.next_attempt_at,
                  coalesced = t.coalesced + 1, last_error = NULL
    RETURNING t.id INTO task_id;
    PERFORM crm._wake_workers_for_tasks_on_commit();
    RETURN task_id;
END
$$;

-- The caller's tasks (row-level security applies), newest first.
CREATE FUNCTION crm.list_integration_tasks(status text DEFAULT NULL, kind text DEFAULT NULL, "limit" integer DEFAULT 50)
RETURNS SETOF crm.integration_tasks
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF $1 IS NOT NULL AND $1 NOT IN ('pending', 'processing', 'done', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'status must be one of pending, processing, done, failed, cancelled'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NULL OR $3 NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT t.* FROM crm.integration_tasks t
    WHERE ($1 IS NULL OR t.status = $1) AND ($2 IS NULL OR t.kind = $2)
    ORDER BY t.created_at DESC
    LIMIT $3;
END
$$;

-- A failed task goes back to pending, with a fresh set of attempts (the dead-letter queue's
-- "try again"). False when the task is not failed, not the caller's, or another pending task
-- with the same dedupe_key already carries newer state (that one will run instead).
CREATE FUNCTION crm.retry_integration_task(id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t crm.integration_tasks;
BEGIN
    SELECT * INTO t FROM crm.integration_tasks x
    WHERE x.id = $1 AND x.status = 'failed'
      AND (x.account_id = crm.current_account_id() OR crm._caller_is_privileged())
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF t.dedupe_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(7462, hashtext(t.account_id::text || '/' || t.kind || '/' || t.dedupe_key));
        IF EXISTS (SELECT 1 FROM crm.integration_tasks p
                   WHERE p.account_id = t.account_id AND p.kind = t.kind AND p.dedupe_key = t.dedupe_key
                     AND p.status = 'pending') THEN
            RETURN false;
        END IF;
    END IF;
    UPDATE crm.integration_tasks x
    SET status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL, completed_at = NULL
    WHERE x.id = t.id;
    PERFORM crm._wake_workers_for_tasks_on_commit();
    RETURN true;
END
$$;

-- Cancel a task that has not started. True if it was cancelled.
CREATE FUNCTION crm.cancel_integration_task(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (UPDATE crm.integration_tasks t
               SET status = 'cancelled', completed_at = now(), locked_until = NULL
               WHERE t.id = $1 AND t.status = 'pending'
                 AND (t.account_id = crm.current_account_id() OR crm._caller_is_privileged())
               RETURNING 1)
    SELECT count(*) = 1 FROM c
$$;

-- Retention: delete finished tasks (done, failed, cancelled) older than older_than, at most
-- batch_size per call. Returns how many were deleted.
CREATE FUNCTION crm.purge_integration_tasks(older_than interval DEFAULT '30 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    IF $1 IS NULL OR $1 < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval, not %', $1 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 IS NULL OR $2 NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 1000000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (
        DELETE FROM crm.integration_tasks t
        WHERE t.id IN (SELECT f.id FROM crm.integration_tasks f
                       WHERE f.status IN ('done', 'failed', 'cancelled') AND f.completed_at < now() - $1
                       LIMIT $2)
        RETURNING 1)
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;

-- Claim up to max_items due tasks for one runner (the same rules as crm._claim_emails): a
-- task whose lease expired is claimed again while attempts < max_attempts and failed
-- otherwise (a task that kills its runner cannot loop); SKIP LOCKED lets runners claim at
-- once without taking the same task. Returns a json array of what the runner needs.
-- PL/pgSQL for its cached plan: a SQL function's statement is planned again at every call.
CREATE FUNCTION crm._claim_tasks(max_items integer, lease_seconds double precision)
RETURNS json
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claimed_tasks json;
BEGIN
    WITH exhausted AS (
        UPDATE crm.integration_tasks t
        SET status = 'failed', locked_until = NULL, completed_at = now(),
            last_error = left(format('its runner stopped while running it %s times (lease expired); last error: %s',
                                     t.attempts, coalesce(t.last_error, 'none')), 2000)
        WHERE t.id IN (SELECT x.id FROM crm.integration_tasks x
                       WHERE x.status = 'processing' AND x.locked_until < now() AND x.attempts >= x.max_attempts
                       LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING 1
    ), expired AS (
        SELECT id, locked_until AS due FROM crm.integration_tasks
        WHERE status = 'processing' AND locked_until < now() AND attempts < max_attempts
        ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED
    ), ready AS (
        SELECT id, next_attempt_at AS due FROM crm.integration_tasks
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
    ), pick AS (
        SELECT id FROM (SELECT 0 AS o, * FROM expired UNION ALL SELECT 1, * FROM ready) x ORDER BY o, due LIMIT $1
    ), claimed AS (
        UPDATE crm.integration_tasks t
        SET status = 'processing', attempts = t.attempts + 1, locked_until = now() + make_interval(secs => $2)
        WHERE t.id = ANY (ARRAY(SELECT id FROM pick))
        RETURNING t.id, t.account_id, t.kind, t.payload, t.dedupe_key, t.attempts, t.max_attempts, t.next_attempt_at
    )
    SELECT coalesce(json_agg(json_build_object(
               'id', c.id, 'account_id', c.account_id, 'kind', c.kind, 'payload', c.payload,
               'dedupe_key', c.dedupe_key, 'attempts', c.attempts, 'max_attempts', c.max_attempts)
           ORDER BY c.next_attempt_at), '[]'::json)
    INTO claimed_tasks
    FROM claimed c;
    RETURN claimed_tasks;
END
$$;

-- Record what the runners did: [{id, outcome: done|retry|failed|release, result, error,
-- after_seconds}]. Only tasks still 'processing' change. 'release' gives a task back unrun
-- (its runner was stopping, or its turn ended): due at once, the attempt not counted; with
-- after_seconds it is deferred (a daily budget spent: due when the budget renews), its error
-- saying why.
-- A task going back to pending while a newer pending task has its dedupe_key is superseded
-- by it (cancelled): the newer one carries the latest state.
CREATE FUNCTION crm._record_task_outcomes(outcomes json) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record;
BEGIN
    -- Tasks going back to pending with a dedupe_key, one at a time under the key's lock.
    FOR o IN SELECT t.id, t.account_id, t.kind, t.dedupe_key
             FROM json_to_recordset($1) AS r(id uuid, outcome text)
             JOIN crm.integration_tasks t ON t.id = r.id
             WHERE r.outcome IN ('retry', 'release') AND t.status = 'processing' AND t.dedupe_key IS NOT NULL
             ORDER BY t.id
    LOOP
        PERFORM pg_advisory_xact_lock(7462, hashtext(o.account_id::text || '/' || o.kind || '/' || o.dedupe_key));
        UPDATE crm.integration_tasks t
        SET status = 'cancelled', locked_until = NULL, completed_at = now(),
            last_error = 'superseded by a newer task with the same dedupe_key'
        WHERE t.id = o.id AND EXISTS (
            SELECT 1 FROM crm.integration_tasks p
            WHERE p.account_id = o.account_id AND p.kind = o.kind AND p.dedupe_key = o.dedupe_key
              AND p.status = 'pending');
    END LOOP;

    UPDATE crm.integration_tasks t
    SET status = CASE r.outcome WHEN 'done' THEN 'done' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
        attempts = CASE WHEN r.outcome = 'release' THEN greatest(t.attempts - 1, 0) ELSE t.attempts END,
        result = CASE WHEN r.outcome = 'done' THEN r.result ELSE t.result END,
        last_error = CASE WHEN r.outcome IN ('retry', 'failed') THEN left(r.error, 2000)
                          WHEN r.outcome = 'release' AND r.error IS NOT NULL THEN left(r.error, 2000)
                          WHEN r.outcome = 'done' THEN NULL ELSE t.last_error END,
        next_attempt_at = CASE WHEN r.outcome = 'retry' THEN now() + make_interval(secs => r.after_seconds)
                               WHEN r.outcome = 'release'
                                   THEN now() + make_interval(secs => coalesce(r.after_seconds, 0))
                               ELSE t.next_attempt_at END,
        completed_at = CASE WHEN r.outcome IN ('done', 'failed') THEN now() END,
        locked_until = NULL
    FROM json_to_recordset($1) AS r(id uuid, outcome text, result jsonb, error text, after_seconds double precision)
    WHERE t.id = r.id AND t.status = 'processing';
END
$$;

-- When the next task is due (a pending task, or an expired lease): the worker's idle sleep.
CREATE FUNCTION crm._next_task_due() RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT least((SELECT min(next_attempt_at) FROM crm.integration_tasks WHERE status = 'pending'),
                 (SELECT min(locked_until) FROM crm.integration_tasks WHERE status = 'processing'))
$$;

-- Privileges: sql/security.sql.
