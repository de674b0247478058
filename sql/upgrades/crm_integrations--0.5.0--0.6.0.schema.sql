-- crm_integrations 0.5.0 -> 0.6.0: contact sync and mail drafts (issue 14, second part). The
-- reviewed schema changes; every function (new and changed) and the privileges are appended
-- by scripts/gen_update.py from the install script. Copies of sql/contacts_sync.sql's and
-- sql/drafts.sql's tables: a change to one is made in both (tests/shell/upgrade.sh's
-- fingerprint checks it).

ALTER TABLE crm.contact_sources
    ADD COLUMN feed text NOT NULL DEFAULT 'contacts'
        CHECK (feed IN ('contacts', 'connections', 'other_contacts')),
    ADD COLUMN data jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN created_contact_id uuid;

CREATE INDEX contacts_email_key_idx ON crm.contacts (account_id, crm._email_key(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone_tail_idx ON crm.contacts (account_id, right(regexp_replace(phone, '\D', '', 'g'), 7))
    WHERE phone IS NOT NULL;

CREATE TABLE crm.contact_sync (
    connection_id  uuid PRIMARY KEY REFERENCES crm.contact_providers (id) ON DELETE CASCADE,
    account_id     uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    cursors        jsonb NOT NULL DEFAULT '{}',
    synced_at      timestamptz,
    full_synced_at timestamptz,
    last_result    jsonb
);
ALTER TABLE crm.contact_sync ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.contact_sync FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.contact_sync FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.contact_sync', '');

CREATE TABLE crm.email_drafts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id          uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    connection_id       uuid REFERENCES crm.email_providers (id) ON DELETE SET NULL,
    provider            text NOT NULL CHECK (provider IN ('gmail', 'microsoft')),
    provider_draft_id   text NOT NULL,
    provider_message_id text,
    thread_id           text,
    link                text,
    subject             text,
    recipients          text[] NOT NULL DEFAULT '{}',
    idempotency_key     text CHECK (length(idempotency_key) <= 255),
    created_by          text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX email_drafts_idempotency_idx ON crm.email_drafts (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX email_drafts_created_idx ON crm.email_drafts (created_at);
ALTER TABLE crm.email_drafts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.email_drafts FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.email_drafts FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.email_drafts', '');

-- Voice (issue 16): copies of sql/voice.sql's schema changes.
ALTER TABLE crm.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE crm.jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('lead', 'scheduled', 'en_route', 'in_progress', 'completed', 'invoiced', 'paid', 'cancelled'));
ALTER TABLE crm.jobs ADD COLUMN notes text CHECK (length(notes) <= 20000);
ALTER TABLE crm.contacts ADD COLUMN notes text CHECK (length(notes) <= 20000);
ALTER TABLE crm.webhook_events DROP CONSTRAINT webhook_events_provider_check;
ALTER TABLE crm.webhook_events ADD CONSTRAINT webhook_events_provider_check
    CHECK (provider IN ('stripe', 'resend', 'elevenlabs'));
CREATE INDEX contacts_first_name_prefix_idx ON crm.contacts (account_id, lower(first_name) text_pattern_ops);
CREATE INDEX contacts_last_name_prefix_idx ON crm.contacts (account_id, lower(last_name) text_pattern_ops);
CREATE INDEX contacts_email_prefix_idx ON crm.contacts (account_id, lower(email) text_pattern_ops);

CREATE TABLE crm.tool_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_sub        text,
    tool            text NOT NULL,
    arguments       jsonb,
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'error', 'invalid')),
    error           text,
    duration_ms     double precision NOT NULL,
    conversation_id text,
    called_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tool_calls_account_idx ON crm.tool_calls (account_id, called_at);
CREATE INDEX tool_calls_called_at_idx ON crm.tool_calls (called_at);
ALTER TABLE crm.tool_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.tool_calls FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.tool_calls FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));

CREATE TABLE crm.voice_calls (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id         uuid,
    conversation_id text NOT NULL CHECK (length(conversation_id) <= 200),
    event_type      text NOT NULL CHECK (event_type IN ('post_call_transcription', 'call_initiation_failure', 'post_call_audio')),
    agent_id        text,
    status          text,
    caller_number   text,
    contact_id      uuid,
    started_at      timestamptz,
    duration_secs   integer,
    transcript      jsonb,
    summary         text,
    call_successful text,
    failure_reason  text,
    audio           bytea,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, event_type),
    CONSTRAINT voice_calls_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE SET NULL (contact_id),
    CONSTRAINT voice_calls_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE SET NULL (user_id)
);
CREATE INDEX voice_calls_account_idx ON crm.voice_calls (account_id, received_at);
ALTER TABLE crm.voice_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.voice_calls FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.voice_calls FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.voice_calls', '');

CREATE TABLE crm.voice_conversations (
    conversation_id text PRIMARY KEY CHECK (length(conversation_id) BETWEEN 1 AND 200),
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT voice_conversations_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX voice_conversations_started_idx ON crm.voice_conversations (started_at);
ALTER TABLE crm.voice_conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.voice_conversations FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.voice_conversations FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));

-- Queue performance (issue 17). Enqueue is one set-based statement per call (crm._enqueue),
-- replacing the per-message crm._enqueue_one.
DROP FUNCTION crm._enqueue_one(jsonb, text);
-- Every row was indexed under its provider message id, NULL until sent: only sent rows are now
-- (the webhook's lookup, an equality, implies the predicate).
DROP INDEX crm.email_queue_provider_message_idx;
CREATE INDEX email_queue_provider_message_idx ON crm.email_queue ((metadata ->> 'provider_message_id'))
    WHERE (metadata ->> 'provider_message_id') IS NOT NULL;
-- No query reads the queue by batch_id; its index cost every batch row an entry at enqueue and
-- at each status change.
DROP INDEX crm.email_queue_batch_idx;
-- The queue's statements set updated_at themselves (a per-row trigger cost every claim and
-- every recorded outcome a plpgsql call).
DROP TRIGGER touch_updated_at ON crm.email_queue;
-- A batch group's 'processing' rows are found through the lease index (only expired ones are
-- looked for): the send_key index keeps the rows waiting for a retry, one entry less a claim.
DROP INDEX crm.email_queue_send_key_idx;
CREATE INDEX email_queue_send_key_idx ON crm.email_queue (send_key)
    WHERE send_key IS NOT NULL AND status IN ('pending', 'scheduled');
-- The claim and the worker's next-due time read the claim index; the index on next_attempt_at
-- alone cost every queued row an entry.
DROP INDEX crm.email_queue_due_idx;

-- @after-functions
-- The references of queued rows (account, template) are checked once per statement
-- (crm._email_queue_references_exist; sql/schema.sql says why); the foreign keys' per-row
-- insert checks are disabled. As in sql/schema.sql.
CREATE TRIGGER email_queue_references_exist AFTER INSERT ON crm.email_queue
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm._email_queue_references_exist();
SELECT crm._disable_queue_reference_row_checks();
