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
