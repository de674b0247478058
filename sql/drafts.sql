-- Mail drafts (issue 14): crm.create_draft puts a message in a connected Gmail or Microsoft
-- mailbox's Drafts folder, for the user to finish and send from there. The message has
-- enqueue_email's shape and is built as sending builds it (src/email/drafts.rs). Every draft
-- made is recorded in crm.email_drafts; an idempotency_key makes a repeated call return the
-- first draft instead of making another.

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

-- Create a draft: {draft_id, message_id, thread_id, link, provider, mailbox, id (the
-- crm.email_drafts row)}. The message is enqueue_email's (to, cc, bcc, subject, html, text or
-- template + variables, from, reply_to, headers, attachments, provider, metadata.thread_id,
-- idempotency_key), validated as strictly (22023). The mailbox: the message's provider (gmail
-- or microsoft), else any; among the account's active connections the caller may use (their
-- own, or the account's shared ones; the server: any — though, as for enqueue_email, a user
-- of the account may reassign the account's connections), the one whose address is `from`,
-- then the caller's, then the default. Errors: 55000 no mailbox or a revoked one, 42501 the
-- consent lacks the drafts scope, 22023 a sender that is not the mailbox, the provider's
-- refusal as 22023/28000/42501/53400/08000.
CREATE FUNCTION crm.create_draft(message jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m jsonb;
    acct uuid := crm.current_account_id();
    privileged boolean := crm._caller_is_privileged();
    sub text := crm._jwt_sub();
    me uuid;
    p crm.email_providers;
    tpl_id uuid;
    sender text;
    draft_key uuid := gen_random_uuid();
    answer jsonb;
    d jsonb;
    row_id uuid;
    existing crm.email_drafts;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'create_draft needs a message' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    m := crm._validate_email_message($1);
    IF m ? 'account_id' THEN
        IF privileged THEN
            acct := (m ->> 'account_id')::uuid;
        ELSIF (m ->> 'account_id')::uuid IS DISTINCT FROM acct THEN
            RAISE EXCEPTION 'message.account_id: a draft can only be made for the caller''s own account'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF acct IS NULL THEN
        RAISE EXCEPTION 'create_draft: no account (call it with JWT claims naming one)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF m ->> 'idempotency_key' IS NOT NULL THEN
        -- one call per key at a time: a second one waits for the first, then finds its draft
        PERFORM pg_advisory_xact_lock(7464, hashtext(acct::text || '/' || (m ->> 'idempotency_key')));
        SELECT * INTO existing FROM crm.email_drafts x
        WHERE x.account_id = acct AND x.idempotency_key = m ->> 'idempotency_key';
        IF FOUND THEN
            RETURN jsonb_build_object('id', existing.id, 'draft_id', existing.provider_draft_id,
                                      'message_id', existing.provider_message_id, 'thread_id', existing.thread_id,
                                      'link', existing.link, 'provider', existing.provider, 'replayed', true);
        END IF;
    END IF;
    IF m ->> 'provider' IS NOT NULL AND m ->> 'provider' NOT IN ('gmail', 'microsoft') THEN
        RAISE EXCEPTION 'message.provider: drafts are kept by gmail or microsoft mailboxes, not %', m ->> 'provider'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF sub ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN
        me := sub::uuid;
    END IF;
    SELECT * INTO p FROM crm.email_providers x
    WHERE x.account_id = acct AND x.is_active AND NOT x.needs_reconnect AND x.provider IN ('gmail', 'microsoft')
      AND (m ->> 'provider' IS NULL OR x.provider = m ->> 'provider')
      AND (privileged OR x.user_id IS NULL OR x.user_id = me)
    ORDER BY lower(x.provider_email) = lower(coalesce(substring(m ->> 'from' FROM '<([^<>]*)>\s*$'), m ->> 'from')) DESC NULLS LAST,
             x.user_id = me DESC NULLS LAST, x.is_default DESC, x.created_at
    LIMIT 1;
    IF p.id IS NULL THEN
        RAISE EXCEPTION 'create_draft: the account has no active % mailbox you may use', coalesce(m ->> 'provider', 'Gmail or Microsoft')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect one with crm.oauth_start(''google'' or ''microsoft'', ''email'', ...).';
    END IF;
    sender := coalesce(m ->> 'from', p.provider_email);
    IF lower(trim(coalesce(substring(sender FROM '<([^<>]*)>\s*$'), sender))) <> lower(p.provider_email) THEN
        RAISE EXCEPTION 'message.from: a draft in % is from that mailbox, not %', p.provider_email, sender
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF m ? 'template' THEN
        SELECT t.id INTO tpl_id FROM crm._template_named(m ->> 'template', acct) t;
        IF tpl_id IS NULL THEN
            RAISE EXCEPTION 'message.template: unknown template "%"', m ->> 'template'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    answer := crm._create_draft(jsonb_build_object(
        'id', draft_key, 'provider', p.provider, 'from', sender,
        'to', coalesce(m -> 'to', '[]'), 'to_name', m ->> 'to_name',
        'cc', coalesce(m -> 'cc', '[]'), 'bcc', coalesce(m -> 'bcc', '[]'), 'reply_to', m ->> 'reply_to',
        'subject', m ->> 'subject', 'html', m ->> 'html', 'text', m ->> 'text',
        'headers', coalesce(m -> 'headers', '{}'), 'attachments', coalesce(m -> 'attachments', '[]'),
        'template', (SELECT jsonb_build_object('subject', t.subject, 'html', t.html_content, 'text', t.text_content)
                     FROM crm.email_templates t WHERE t.id = tpl_id),
        'variables', coalesce(m -> 'variables', '{}'),
        'thread_id', m -> 'metadata' ->> 'thread_id',
        'connection', jsonb_build_object('id', p.id, 'provider', p.provider, 'scopes', p.scopes,
                                         'access_token', p.access_token_encrypted,
                                         'refresh_token', p.refresh_token_encrypted,
                                         'expires_at', extract(epoch FROM p.token_expires_at)),
        'attempts', 1, 'max_attempts', 1));
    IF jsonb_array_length(answer -> 'connections') > 0 THEN
        PERFORM crm._record_connection_updates((answer -> 'connections')::json);
    END IF;
    d := answer -> 'draft';
    INSERT INTO crm.email_drafts (account_id, connection_id, provider, provider_draft_id, provider_message_id, thread_id,
                                  link, subject, recipients, idempotency_key, created_by)
    VALUES (acct, p.id, p.provider, left(d ->> 'draft_id', 1024), left(d ->> 'message_id', 1024),
            left(d ->> 'thread_id', 1024), left(d ->> 'link', 2048),
            left(coalesce(m ->> 'subject', (SELECT t.subject FROM crm.email_templates t WHERE t.id = tpl_id)), 998),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(m -> 'to', '[]'))), m ->> 'idempotency_key', crm._actor())
    ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO row_id;
    RETURN d || jsonb_build_object('id', row_id, 'provider', p.provider, 'mailbox', p.provider_email);
END
$$;

-- Drafts older than crm.email_drafts_retention (default 90 days) are forgotten here (the
-- mailbox keeps them); run by the workers' upkeep, 10,000 at a time. Returns how many.
CREATE FUNCTION crm._drafts_upkeep() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM crm.email_drafts d
        WHERE d.id IN (SELECT x.id FROM crm.email_drafts x
                       WHERE x.created_at < now() - crm._setting_interval('crm.email_drafts_retention', '90 days')
                       LIMIT 10000)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- Privileges: sql/security.sql.
