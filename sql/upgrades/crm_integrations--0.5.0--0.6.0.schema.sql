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
