-- Everything about schema crm that an install or an update decides, one sorted line per fact:
-- functions (definition and privileges), columns, constraints, indexes, triggers (a foreign
-- key's own ones too: enabled or not), views,
-- policies, table privileges, the extension's members and its pg_dump configuration.
\pset tuples_only on
\pset format unaligned
WITH facts AS (
    SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' acl='
           || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a), 'default') AS f
    FROM pg_proc p WHERE p.pronamespace = 'crm'::regnamespace
    UNION ALL
    SELECT 'column ' || c.relname || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'v', 'p')
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'crm'::regnamespace
    UNION ALL
    SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'crm'
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'crm'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    -- a foreign key's own triggers, by constraint (their names hold OIDs), enabled or not
    SELECT 'constraint trigger ' || c.relname || ' ' || k.conname || ' ' || t.tgfoid::regproc || ' ' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_constraint k ON k.oid = t.tgconstraint
    WHERE c.relnamespace = 'crm'::regnamespace AND t.tgisinternal
    UNION ALL
    SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid)) FROM pg_class c
    WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v'
    UNION ALL
    SELECT 'policy ' || tablename || ' ' || policyname || ' ' || permissive || ' ' || roles::text || ' ' || cmd
           || ' using=' || coalesce(qual, '') || ' check=' || coalesce(with_check, '')
    FROM pg_policies WHERE schemaname = 'crm'
    UNION ALL
    SELECT 'table ' || c.relname || ' rls=' || c.relrowsecurity || ' acl='
           || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a), 'default')
    FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'v', 'S')
    UNION ALL
    SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
    WHERE e.extname = 'crm_integrations' AND d.deptype = 'e'
    UNION ALL
    SELECT 'dump ' || c::regclass || ' ' || coalesce(w, '')
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, w) WHERE e.extname = 'crm_integrations'
    UNION ALL
    SELECT 'schema acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(n.nspacl) a), 'default')
    FROM pg_namespace n WHERE n.nspname = 'crm'
)
SELECT f FROM facts ORDER BY f;
