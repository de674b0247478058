-- crm_integrations schema: a minimal CRM core and the integration tables of CRM-AI-PRO.
--
-- Table and column names of the integration tables follow the reference document (they are the
-- compatibility contract). Additions are marked "added:" with the reason.
-- Every table holding account_id gets row-level security in rls.sql.

-- Who is calling, the way PostgREST/Supabase pass identity: the JWT claims in
-- request.jwt.claims. account_id, else app_metadata.account_id, else the crm.users row whose id
-- is the token's sub. SECURITY DEFINER so the users lookup is not itself subject to RLS (the
-- users policy calls this function). A claim that is not a UUID identifies nobody.
CREATE FUNCTION crm.current_account_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw    text := current_setting('request.jwt.claims', true);
    claims jsonb;
    v      text;
    uuid_re constant text := '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$';
BEGIN
    IF raw IS NULL OR raw = '' THEN
        RETURN NULL;
    END IF;
    claims := raw::jsonb;
    IF jsonb_typeof(claims) <> 'object' THEN
        RETURN NULL;
    END IF;
    v := coalesce(claims ->> 'account_id', claims -> 'app_metadata' ->> 'account_id');
    IF v IS NOT NULL THEN
        RETURN CASE WHEN v ~ uuid_re THEN v::uuid END;
    END IF;
    v := claims ->> 'sub';
    IF v ~ uuid_re THEN
        RETURN (SELECT u.account_id FROM crm.users u WHERE u.id = v::uuid);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm.current_account_id() IS
    'The caller''s account from request.jwt.claims (account_id, app_metadata.account_id, or the users row of sub); NULL when none.';

-- Whether the current role acts as Supabase's service_role (is it, or a member of it).
-- Supabase's service_role has BYPASSRLS; this keeps the "service_role sees all" rule true on a
-- plain Postgres where the role was created without it.
CREATE FUNCTION crm.is_service_role() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE r.rolname = 'service_role'
                     AND pg_has_role(current_user, r.oid, 'USAGE'))
$$;

-- updated_at is maintained here, not by callers. The one exception is a row being restored
-- exactly as it was (crm.unmerge_contacts): crm.restoring_rows, set by a superuser or
-- BYPASSRLS role (the definer) — a tenant can set the setting, not become that role.
CREATE FUNCTION crm.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('crm.restoring_rows', true) = 'on' THEN
        IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = current_user AND (r.rolsuper OR r.rolbypassrls)) THEN
            RETURN NEW;
        END IF;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

------------------------------------------------------------------------------------------------
-- CRM core
------------------------------------------------------------------------------------------------

CREATE TABLE crm.accounts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug       text UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    -- added: the sender used when a message names none (delivery issue). Set by the platform
    -- (service_role), not by tenants: it counts as one of the account's verified senders.
    default_from_email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- added (hardening): the addresses ('billing@acme.com') and domains ('acme.com') this
    -- account may send from through the shared Resend/SMTP configuration, besides
    -- default_from_email and the platform's crm.resend_verified_domain. Set by service_role.
    verified_senders   text[] NOT NULL DEFAULT '{}'
                       CHECK (cardinality(verified_senders) <= 100)
);

CREATE TABLE crm.users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- = auth.users.id on Supabase (the JWT sub)
    account_id uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    email      text NOT NULL CHECK (length(email) <= 320 AND email ~ '^[^@\s]+@[^@\s]+$'),
    full_name  text,
    role       text NOT NULL DEFAULT 'member'
               CHECK (role IN ('owner', 'admin', 'dispatcher', 'tech', 'sales', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, email),
    -- added (hardening): the target of composite foreign keys, so a reference between tenant
    -- rows stays within one account (foreign keys ignore row-level security)
    CONSTRAINT users_account_id_id_key UNIQUE (account_id, id)
);
CREATE INDEX users_account_id_idx ON crm.users (account_id);

CREATE TABLE crm.contacts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    first_name text,
    last_name  text,
    email      text CHECK (email IS NULL OR (length(email) <= 320 AND email ~ '^[^@\s]+@[^@\s]+$')),
    phone      text,
    address    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_account_id_id_key UNIQUE (account_id, id)
);
CREATE INDEX contacts_account_id_idx ON crm.contacts (account_id);

CREATE TABLE crm.jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    contact_id      uuid,
    assigned_to     uuid,
    title           text NOT NULL,
    description     text,
    status          text NOT NULL DEFAULT 'lead'
                    CHECK (status IN ('lead', 'scheduled', 'in_progress', 'completed', 'paid', 'cancelled')),
    scheduled_start timestamptz,
    scheduled_end   timestamptz,
    address         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (scheduled_end IS NULL OR scheduled_start IS NULL OR scheduled_end >= scheduled_start),
    CONSTRAINT jobs_account_id_id_key UNIQUE (account_id, id),
    CONSTRAINT jobs_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE SET NULL (contact_id),
    CONSTRAINT jobs_assigned_to_fk FOREIGN KEY (account_id, assigned_to)
        REFERENCES crm.users (account_id, id) ON DELETE SET NULL (assigned_to)
);
CREATE INDEX jobs_account_id_status_idx ON crm.jobs (account_id, status);
CREATE INDEX jobs_account_id_start_idx ON crm.jobs (account_id, scheduled_start);

CREATE TABLE crm.invoices (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id               uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    job_id                   uuid,
    contact_id               uuid,
    invoice_number           text,
    amount                   bigint NOT NULL CHECK (amount >= 0),          -- cents
    currency                 text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    status                   text NOT NULL DEFAULT 'draft'
                             CHECK (status IN ('draft', 'sent', 'paid', 'void')),
    stripe_payment_intent_id text UNIQUE,
    due_date                 date,
    paid_at                  timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, invoice_number),
    CONSTRAINT invoices_account_id_id_key UNIQUE (account_id, id),
    CONSTRAINT invoices_job_fk FOREIGN KEY (account_id, job_id)
        REFERENCES crm.jobs (account_id, id) ON DELETE SET NULL (job_id),
    CONSTRAINT invoices_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE SET NULL (contact_id)
);
CREATE INDEX invoices_account_id_status_idx ON crm.invoices (account_id, status);
CREATE INDEX invoices_job_id_idx ON crm.invoices (job_id);

CREATE TABLE crm.payments (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id               uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    invoice_id               uuid,
    amount                   bigint NOT NULL CHECK (amount >= 0),          -- cents
    currency                 text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    status                   text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    stripe_payment_intent_id text,
    failure_message          text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- added (hardening): why a Stripe payment did not mark its invoice paid (amount or
    -- currency differ from the invoice's); NULL when it matched
    mismatch                 text,
    CONSTRAINT payments_invoice_fk FOREIGN KEY (account_id, invoice_id)
        REFERENCES crm.invoices (account_id, id) ON DELETE SET NULL (invoice_id)
);
CREATE INDEX payments_account_id_idx ON crm.payments (account_id);
CREATE INDEX payments_invoice_id_idx ON crm.payments (invoice_id);
-- One payment per Stripe payment intent, whatever order its events arrive in (webhooks.sql).
CREATE UNIQUE INDEX payments_intent_idx ON crm.payments (stripe_payment_intent_id)
    WHERE stripe_payment_intent_id IS NOT NULL;

------------------------------------------------------------------------------------------------
-- Integration tables (reference document)
------------------------------------------------------------------------------------------------

-- OAuth credentials for email services. Tokens are crm.encrypt_token() output, bound to the
-- context '<table>:<id>:access_token' / ':refresh_token' (see README, Token vault).
CREATE TABLE crm.email_providers (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id              uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id                 uuid,
    provider                text NOT NULL CHECK (provider IN ('gmail', 'microsoft', 'resend', 'smtp')),
    provider_email          text NOT NULL,
    -- NULL after crm.disconnect (the tokens are deleted)
    access_token_encrypted  text,
    refresh_token_encrypted text,
    token_expires_at        timestamptz,
    is_active               boolean NOT NULL DEFAULT true,
    is_default              boolean NOT NULL DEFAULT false,
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- added (connections): what the connect flow and the token refresh record
    scopes                  text[] NOT NULL DEFAULT '{}',
    connected_at            timestamptz,
    last_refresh_at         timestamptz,
    last_error              text,
    needs_reconnect         boolean NOT NULL DEFAULT false
);
ALTER TABLE crm.email_providers ADD CONSTRAINT email_providers_user_fk FOREIGN KEY (account_id, user_id)
    REFERENCES crm.users (account_id, id) ON DELETE CASCADE;
CREATE INDEX idx_email_providers_account_user ON crm.email_providers (account_id, user_id);
CREATE INDEX idx_email_providers_provider ON crm.email_providers (provider);
CREATE INDEX idx_email_providers_active ON crm.email_providers (is_active, is_default);
-- added: at most one default email provider per account and user (user_id NULL = account-wide)
CREATE UNIQUE INDEX email_providers_one_default
    ON crm.email_providers (account_id, user_id) NULLS NOT DISTINCT WHERE is_default;

CREATE TABLE crm.calendar_providers (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id              uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    user_id                 uuid,
    provider                text NOT NULL CHECK (provider IN ('google', 'outlook')),
    provider_email          text NOT NULL,
    -- NULL after crm.disconnect (the tokens are deleted)
    access_token_encrypted  text,
    refresh_token_encrypted text,
    token_expires_at        timestamptz,
    is_active               boolean NOT NULL DEFAULT true,
    is_default              boolean NOT NULL DEFAULT false,
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- added (connections): what the connect flow and the token refresh record
    scopes                  text[] NOT NULL DEFAULT '{}',
    connected_at            timestamptz,
    last_refresh_at         timestamptz,
    last_error              text,
    needs_reconnect         boolean NOT NULL DEFAULT false
);
ALTER TABLE crm.calendar_providers ADD CONSTRAINT calendar_providers_user_fk FOREIGN KEY (account_id, user_id)
    REFERENCES crm.users (account_id, id) ON DELETE CASCADE;
CREATE INDEX idx_calendar_providers_account_user ON crm.calendar_providers (account_id, user_id);
CREATE INDEX idx_calendar_providers_provider ON crm.calendar_providers (provider);
CREATE INDEX idx_calendar_providers_active ON crm.calendar_providers (is_active, is_default);
-- added: at most one default calendar provider per account and user
CREATE UNIQUE INDEX calendar_providers_one_default
    ON crm.calendar_providers (account_id, user_id) NULLS NOT DISTINCT WHERE is_default;

-- account_id NULL = a global template every account sees; an account's template of the same
-- name overrides it.
CREATE TABLE crm.email_templates (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   uuid REFERENCES crm.accounts (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text,
    subject      text NOT NULL,
    html_content text NOT NULL,
    text_content text,
    variables    text[] NOT NULL DEFAULT '{}',
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX email_templates_account_name
    ON crm.email_templates (account_id, name) NULLS NOT DISTINCT;

CREATE TABLE crm.email_queue (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id         uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    recipient_email    text NOT NULL,
    recipient_name     text,
    subject            text NOT NULL,
    html_content       text,
    text_content       text,
    -- An account's own template or a global one (account_id NULL), so no composite key:
    -- rows are written only by the enqueue functions, which look the template up within the
    -- account (tenants have no INSERT or UPDATE on this table).
    template_id        uuid REFERENCES crm.email_templates (id) ON DELETE SET NULL,
    template_variables jsonb NOT NULL DEFAULT '{}',
    from_email         text,
    reply_to           text,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'scheduled', 'processing', 'sent', 'failed', 'cancelled')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    last_error         text,
    scheduled_at       timestamptz,
    sent_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    metadata           jsonb NOT NULL DEFAULT '{}',
    provider           text NOT NULL DEFAULT 'resend'
                       CHECK (provider IN ('resend', 'gmail', 'microsoft', 'smtp')),
    batch_id           text,
    -- added: higher first (reference: "priority queue support")
    priority           integer NOT NULL DEFAULT 0,
    -- added: the same key for the same account queues once
    idempotency_key    text CHECK (length(idempotency_key) <= 256),
    -- added (delivery): every recipient (recipient_email is the first of to_addresses)
    to_addresses       text[] NOT NULL DEFAULT '{}',
    cc                 text[] NOT NULL DEFAULT '{}',
    bcc                text[] NOT NULL DEFAULT '{}',
    headers            jsonb NOT NULL DEFAULT '{}',
    attachments        jsonb NOT NULL DEFAULT '[]',
    -- added (delivery): when the row is next due (scheduled_at, then the retry backoff)
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    -- added (delivery): the claim lease; a 'processing' row past it is claimed again
    locked_until       timestamptz,
    -- added (delivery): the Idempotency-Key of the Resend batch request the row went out in.
    -- A retried or reclaimed row goes out again with the same rows under the same key, so
    -- the provider can recognise the repeat (NULL: sent alone, keyed by the row's id).
    send_key           text
);
CREATE UNIQUE INDEX email_queue_idempotency
    ON crm.email_queue (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The claim takes due rows highest priority first; the worker's next-due time reads it per
-- priority (crm._next_email_due). (No index on next_attempt_at alone: it cost every queued
-- row an entry, 4 % of an enqueue.)
CREATE INDEX email_queue_claim_idx ON crm.email_queue (priority DESC, next_attempt_at)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX email_queue_lease_idx ON crm.email_queue (locked_until) WHERE status = 'processing';
CREATE INDEX email_queue_account_status_idx ON crm.email_queue (account_id, status, created_at);
-- Webhook events find their queue row by the provider's message id (webhooks.sql). Partial:
-- a row has one only once sent (the lookup's equality implies the predicate), so enqueue and
-- the claim add no entry. (batch_id has no index: no query reads the queue by it.)
CREATE INDEX email_queue_provider_message_idx ON crm.email_queue ((metadata ->> 'provider_message_id'))
    WHERE (metadata ->> 'provider_message_id') IS NOT NULL;
-- A batch group's rows waiting for their retry (the claim finds an expired group's
-- 'processing' rows through the lease index: leaving them out saves every claimed row an entry).
CREATE INDEX email_queue_send_key_idx ON crm.email_queue (send_key)
    WHERE send_key IS NOT NULL AND status IN ('pending', 'scheduled');
-- The references of queued rows (account, template), checked once per statement instead of
-- once per row. The foreign keys above stay (they cascade or clear on deletion, check an
-- UPDATE, and are the relationships PostgREST embeds), but their per-row insert checks are
-- disabled: each ran a query with its own executor start for every queued row (the account's
-- was 23 % of an enqueue, issue 17). This trigger does the same with one query per key and
-- statement: it takes the same FOR KEY SHARE lock on each distinct account and template (FROM
-- ONLY, as the built-in check), so a concurrent DELETE of one waits for the inserting
-- transaction and then cascades to (or clears) its rows, or fails under REPEATABLE READ; one
-- deleted first makes the insert fail with the same SQLSTATE, message and constraint (23503).
-- tests/shell/queue_references_isolation.sh runs the interleavings against this trigger and
-- against the built-in checks: the same output. Where it differs is in README.md ("The queue's
-- references are checked once per statement"). SECURITY DEFINER: like the built-in check, it
-- reads the referenced rows whatever the inserter's rights and row-level security.
CREATE FUNCTION crm._email_queue_references_exist() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.account_id INTO missing
    FROM (SELECT DISTINCT account_id FROM new_rows) n
    LEFT JOIN LATERAL (SELECT true AS found FROM ONLY crm.accounts a WHERE a.id = n.account_id FOR KEY SHARE) a ON true
    WHERE a.found IS NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "email_queue" violates foreign key constraint "email_queue_account_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'crm', TABLE = 'email_queue',
                  CONSTRAINT = 'email_queue_account_id_fkey',
                  DETAIL = format('Key (account_id)=(%s) is not present in table "accounts".', missing);
    END IF;
    SELECT n.template_id INTO missing
    FROM (SELECT DISTINCT template_id FROM new_rows WHERE template_id IS NOT NULL) n
    LEFT JOIN LATERAL (SELECT true AS found FROM ONLY crm.email_templates t WHERE t.id = n.template_id FOR KEY SHARE) t ON true
    WHERE t.found IS NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "email_queue" violates foreign key constraint "email_queue_template_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'crm', TABLE = 'email_queue',
                  CONSTRAINT = 'email_queue_template_id_fkey',
                  DETAIL = format('Key (template_id)=(%s) is not present in table "email_templates".', missing);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER email_queue_references_exist AFTER INSERT ON crm.email_queue
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm._email_queue_references_exist();
-- Turns the foreign keys' per-row insert checks off (idempotent; returns how many). The install
-- and the update call it; after a pg_upgrade, or a restore that enabled every trigger, a
-- superuser may call it again (both checks running is correct, only slower).
CREATE FUNCTION crm._disable_queue_reference_row_checks() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    per_row_check name;
    disabled integer := 0;
BEGIN
    FOR per_row_check IN
        SELECT t.tgname
        FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_constraint c ON c.oid = t.tgconstraint
        WHERE t.tgrelid = 'crm.email_queue'::regclass
          AND c.conname IN ('email_queue_account_id_fkey', 'email_queue_template_id_fkey')
          AND t.tgfoid = 'pg_catalog."RI_FKey_check_ins"'::regproc
    LOOP
        EXECUTE format('ALTER TABLE crm.email_queue DISABLE TRIGGER %I', per_row_check);
        disabled := disabled + 1;
    END LOOP;
    IF disabled <> 2 THEN
        RAISE EXCEPTION 'expected the per-row insert checks of the queue''s two foreign keys, found %', disabled;
    END IF;
    RETURN disabled;
END
$$;
SELECT crm._disable_queue_reference_row_checks();

CREATE TABLE crm.email_analytics (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id      text NOT NULL,
    recipient_email text NOT NULL,
    event           text NOT NULL
                    CHECK (event IN ('sent', 'delivered', 'delivery_delayed', 'opened', 'clicked', 'bounced', 'complained')),
    "timestamp"     timestamptz NOT NULL DEFAULT now(),
    data            jsonb NOT NULL DEFAULT '{}',
    ip_address      inet,
    user_agent      text,
    queue_item_id   uuid REFERENCES crm.email_queue (id) ON DELETE SET NULL,
    -- added: the owning account, for row-level security (NULL: not matched to a queued email)
    account_id      uuid REFERENCES crm.accounts (id) ON DELETE CASCADE,
    UNIQUE (message_id, recipient_email, event, "timestamp")
);
CREATE INDEX email_analytics_account_time_idx ON crm.email_analytics (account_id, "timestamp");
CREATE INDEX email_analytics_queue_item_idx ON crm.email_analytics (queue_item_id);

DO $$
DECLARE t text;
BEGIN
    -- (not email_queue: only the extension's own statements update it, and each sets
    -- updated_at itself; a per-row trigger cost every claim and every recorded outcome a
    -- plpgsql call)
    FOREACH t IN ARRAY ARRAY['accounts', 'users', 'contacts', 'jobs', 'invoices', 'payments',
                             'email_providers', 'calendar_providers', 'email_templates']
    LOOP
        EXECUTE format('CREATE TRIGGER touch_updated_at BEFORE UPDATE ON crm.%I
                        FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at()', t);
    END LOOP;
END
$$;
