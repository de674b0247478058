-- Row-level security: tenant isolation for every table that holds account_id.
--
-- Policies are written TO PUBLIC on purpose: they must not depend on Supabase's roles existing
-- when the extension is created (a plain Postgres may create them later). Which roles reach the
-- tables at all is decided by the grants in security.sql; the policies decide which rows.
--   * a caller sees and changes only rows of crm.current_account_id() (NULL matches nothing,
--     so anon, or a token without an account, sees nothing);
--   * service_role (or a member of it) sees all; superusers and the owner bypass RLS anyway.
-- The function calls are wrapped in (SELECT ...) so Postgres evaluates them once per statement
-- (an InitPlan), not once per row.

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'contacts', 'jobs', 'invoices', 'payments',
                             'email_providers', 'calendar_providers', 'email_templates',
                             'email_queue', 'email_analytics']
    LOOP
        EXECUTE format('ALTER TABLE crm.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON crm.%I FOR ALL
                        USING (account_id = (SELECT crm.current_account_id()))
                        WITH CHECK (account_id = (SELECT crm.current_account_id()))', t);
        EXECUTE format('CREATE POLICY service_role_all ON crm.%I FOR ALL
                        USING ((SELECT crm.is_service_role()))
                        WITH CHECK ((SELECT crm.is_service_role()))', t);
    END LOOP;
END
$$;

-- accounts: the account row itself is keyed by id.
ALTER TABLE crm.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.accounts FOR ALL
    USING (id = (SELECT crm.current_account_id()))
    WITH CHECK (id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.accounts FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));

-- email_templates: global templates (account_id NULL) are readable by every account; only
-- service_role writes them (tenant_isolation's WITH CHECK never matches NULL).
CREATE POLICY global_templates_readable ON crm.email_templates FOR SELECT
    USING (account_id IS NULL AND (SELECT crm.current_account_id()) IS NOT NULL);

-- pg_dump skips the contents of extension tables unless told otherwise: these hold user data.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'users', 'contacts', 'jobs', 'invoices', 'payments',
                             'email_providers', 'calendar_providers', 'email_queue', 'email_analytics']
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(format('crm.%I', t)::regclass, '');
    END LOOP;
    -- Only account templates are user data; the global defaults come with the extension.
    PERFORM pg_catalog.pg_extension_config_dump('crm.email_templates', 'WHERE account_id IS NOT NULL');
END
$$;
