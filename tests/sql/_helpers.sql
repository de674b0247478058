-- Loaded once per test database (after CREATE EXTENSION pgtap, crm_integrations).
CREATE SCHEMA tests;
GRANT USAGE ON SCHEMA tests TO PUBLIC;

-- pgTAP keeps its state in temp tables owned by the session's first role; a test that switches
-- to authenticated/service_role must be allowed to write them.
CREATE FUNCTION tests.share_tap() RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S')
    LOOP
        EXECUTE format('GRANT ALL ON %s pg_temp.%I TO PUBLIC',
                       CASE r.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname);
    END LOOP;
END $$;

-- Act as an API caller: the role PostgREST would switch to, with these JWT claims.
CREATE FUNCTION tests.login(as_role text, claims jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', coalesce(claims::text, ''), true);
    EXECUTE format('SET LOCAL ROLE %I', as_role);
END $$;

CREATE FUNCTION tests.logout() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RESET ROLE;
    PERFORM set_config('request.jwt.claims', '', true);
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tests TO PUBLIC;

-- Two fixed keys for tests that need to know them (the cluster's own key is random).
CREATE FUNCTION tests.k1() RETURNS text IMMUTABLE LANGUAGE sql
    AS $$ SELECT '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' $$;
CREATE FUNCTION tests.k2() RETURNS text IMMUTABLE LANGUAGE sql
    AS $$ SELECT 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=' $$;

-- Every text an error carries (message, detail, hint, context), for "no secret in it" checks.
CREATE FUNCTION tests.error_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text; c text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN concat_ws(' | ', m, d, h, c);
END $$;

CREATE FUNCTION tests.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE q LOOP RETURN NEXT line; END LOOP;
END $$;

-- What the current caller can do to one tenant table: rows visible of its own account and of
-- another, and the outcome (SQLSTATE or row count) of writing the other account's rows.
CREATE FUNCTION tests.rls_probe(tbl text, own uuid, other uuid) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    col text := CASE tbl WHEN 'accounts' THEN 'id' ELSE 'account_id' END;
    out jsonb := '{}';
    n bigint;
BEGIN
    BEGIN
        EXECUTE format('SELECT count(*) FROM crm.%I WHERE %I = $1', tbl, col) INTO n USING own;
        out := out || jsonb_build_object('see_own', n);
        EXECUTE format('SELECT count(*) FROM crm.%I WHERE %I = $1', tbl, col) INTO n USING other;
        out := out || jsonb_build_object('see_other', n);
    EXCEPTION WHEN OTHERS THEN out := out || jsonb_build_object('select', SQLSTATE);
    END;
    BEGIN  -- copy one of our own rows into the other account
        EXECUTE format('INSERT INTO crm.%1$I SELECT (jsonb_populate_record(NULL::crm.%1$I,
                            to_jsonb(r) || jsonb_build_object(''id'', gen_random_uuid(), %2$L, $2::text))).*
                        FROM crm.%1$I r WHERE %2$I = $1 LIMIT 1', tbl, col) USING own, other;
        GET DIAGNOSTICS n = ROW_COUNT;
        out := out || jsonb_build_object('insert_other', n);
    EXCEPTION WHEN OTHERS THEN out := out || jsonb_build_object('insert_other', SQLSTATE);
    END;
    BEGIN
        EXECUTE format('UPDATE crm.%1$I SET %2$I = %2$I WHERE %2$I = $1', tbl, col) USING other;
        GET DIAGNOSTICS n = ROW_COUNT;
        out := out || jsonb_build_object('update_other', n);
    EXCEPTION WHEN OTHERS THEN out := out || jsonb_build_object('update_other', SQLSTATE);
    END;
    BEGIN  -- move our own rows to the other account
        EXECUTE format('UPDATE crm.%1$I SET %2$I = $2 WHERE %2$I = $1', tbl, col) USING own, other;
        GET DIAGNOSTICS n = ROW_COUNT;
        out := out || jsonb_build_object('move_to_other', n);
    EXCEPTION WHEN OTHERS THEN out := out || jsonb_build_object('move_to_other', SQLSTATE);
    END;
    BEGIN
        EXECUTE format('DELETE FROM crm.%I WHERE %I = $1', tbl, col) USING other;
        GET DIAGNOSTICS n = ROW_COUNT;
        out := out || jsonb_build_object('delete_other', n);
    EXCEPTION WHEN OTHERS THEN out := out || jsonb_build_object('delete_other', SQLSTATE);
    END;
    RETURN out;
END $$;
GRANT EXECUTE ON FUNCTION tests.rls_probe(text, uuid, uuid) TO PUBLIC;

-- Webhook signatures made the way the providers make them, with pgcrypto's HMAC (an
-- implementation independent of the extension's).
CREATE FUNCTION tests.stripe_headers(body text, secret text, ts bigint DEFAULT floor(extract(epoch FROM clock_timestamp()))::bigint)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('Stripe-Signature',
        't=' || ts || ',v1=' || encode(hmac(convert_to(ts || '.' || body, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex'))
$$;
CREATE FUNCTION tests.svix_headers(id text, body text, secret text, ts bigint DEFAULT floor(extract(epoch FROM clock_timestamp()))::bigint)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('svix-id', id, 'svix-timestamp', ts::text, 'svix-signature',
        'v1,' || encode(hmac(convert_to(id || '.' || ts || '.' || body, 'UTF8'),
                             decode(regexp_replace(secret, '^whsec_', ''), 'base64'), 'sha256'), 'base64'))
$$;
-- A Stripe payment_intent event body.
CREATE FUNCTION tests.stripe_event(event_id text, type text, intent text, invoice uuid, amount bigint DEFAULT 12345,
                                   failure text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', event_id, 'object', 'event', 'type', type, 'created', 1764000000,
        'data', jsonb_build_object('object', jsonb_build_object('id', intent, 'object', 'payment_intent',
            'amount', amount, 'amount_received', CASE WHEN type = 'payment_intent.succeeded' THEN amount ELSE 0 END,
            'currency', 'usd', 'metadata', CASE WHEN invoice IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('invoice_id', invoice) END,
            'last_payment_error', CASE WHEN failure IS NULL THEN NULL ELSE jsonb_build_object('message', failure) END)))::text
$$;
-- A Resend event body.
CREATE FUNCTION tests.resend_event(type text, email_id text, recipient text, created_at text DEFAULT '2026-11-20T10:00:00.000Z',
                                   extra jsonb DEFAULT '{}')
RETURNS text LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', type, 'created_at', created_at,
        'data', jsonb_build_object('created_at', created_at, 'email_id', email_id, 'from', 'CRM <noreply@example.com>',
                                   'to', jsonb_build_array(recipient), 'subject', 'Hello') || extra)::text
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tests TO PUBLIC;
