-- The voice agent (issue 16): the reference's CRM and email tools as SQL functions run under
-- the caller's JWT (row-level security applies: every tool is SECURITY INVOKER), one
-- dispatcher that checks arguments against each tool's JSON Schema and logs every call, an
-- MCP endpoint for PostgREST (crm.mcp), and ElevenLabs' post-call webhook. The manifest and
-- the argument checks are Rust (crm_core::voice, src/voice.rs).

-- The reference agent's job statuses include en_route and invoiced.
ALTER TABLE crm.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE crm.jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('lead', 'scheduled', 'en_route', 'in_progress', 'completed', 'invoiced', 'paid', 'cancelled'));
-- Notes the agent takes (update_job, create_contact).
ALTER TABLE crm.jobs ADD COLUMN notes text CHECK (length(notes) <= 20000);
ALTER TABLE crm.contacts ADD COLUMN notes text CHECK (length(notes) <= 20000);
-- ElevenLabs' post-call events are stored with the others.
ALTER TABLE crm.webhook_events DROP CONSTRAINT webhook_events_provider_check;
ALTER TABLE crm.webhook_events ADD CONSTRAINT webhook_events_provider_check
    CHECK (provider IN ('stripe', 'resend', 'elevenlabs'));
-- search_contacts: name and email prefixes, per account (a voice user says the start of a name).
CREATE INDEX contacts_first_name_prefix_idx ON crm.contacts (account_id, lower(first_name) text_pattern_ops);
CREATE INDEX contacts_last_name_prefix_idx ON crm.contacts (account_id, lower(last_name) text_pattern_ops);
CREATE INDEX contacts_email_prefix_idx ON crm.contacts (account_id, lower(email) text_pattern_ops);

-- Every tool call: who, which tool, its arguments (at most 8 kB kept), what came of it, how
-- long it took, and the conversation it belongs to. Kept crm.tool_calls_retention (30 days).
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

-- ElevenLabs calls: one row per conversation and event type (post_call_transcription,
-- call_initiation_failure, post_call_audio), linked to the contact whose phone called.
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

-- Which account and user a voice conversation belongs to, as the app registered it with the
-- user's JWT (crm.voice_conversation_start) when ElevenLabs opened it: the post-call webhook
-- trusts this, not the conversation's dynamic variables (which the browser sets).
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

-- ---------------------------------------------------------------------------------------------
-- Helpers.

-- An account's IANA time zone (crm.calendar_time_zone, else UTC, when it has none).
CREATE FUNCTION crm._account_time_zone(account uuid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT a.time_zone FROM crm.accounts a WHERE a.id = $1),
                    nullif(current_setting('crm.calendar_time_zone', true), ''), 'UTC')
$$;

-- A tool's date and time (checked by the schema: ISO 8601, the offset optional): with an
-- offset as written, without one on the account's wall clock.
CREATE FUNCTION crm._tool_when(v text, account uuid) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 IS NULL THEN NULL
                WHEN $1 ~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN $1::timestamptz
                ELSE $1::timestamp AT TIME ZONE crm._account_time_zone($2) END
$$;

-- The signed-in user's crm.users id (the JWT's sub), NULL without one.
CREATE FUNCTION crm._tool_user() RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id FROM crm.users u
    WHERE u.id = crm._try_uuid(crm._jwt_sub()) AND u.account_id = crm.current_account_id()
$$;

CREATE FUNCTION crm._tool_fail(message text, extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_build_object('ok', false, 'error', $1) || $2 $$;

-- A LIKE prefix pattern of what the user said (its % and _ taken literally).
CREATE FUNCTION crm._like_prefix(v text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT replace(replace(replace(lower(btrim($1)), '\', '\\'), '%', '\%'), '_', '\_') || '%' $$;

-- The account's contacts a spoken name may mean, best first: every word of the name is the
-- start of the first or last name ("John", "john smith", "Smith"); at most 6.
CREATE FUNCTION crm._contacts_named(name text) RETURNS TABLE (id uuid, name text, email text, phone text, exact boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (SELECT array_agg(x) AS words FROM regexp_split_to_table(lower(btrim($1)), '\s+') x WHERE x <> '')
    SELECT c.id, btrim(concat_ws(' ', c.first_name, c.last_name)), c.email, c.phone,
           lower(btrim(concat_ws(' ', c.first_name, c.last_name))) = lower(btrim($1))
    FROM crm.contacts c, w
    WHERE c.account_id = crm.current_account_id() AND cardinality(w.words) BETWEEN 1 AND 6
      AND (lower(c.first_name) LIKE crm._like_prefix(w.words[1]) OR lower(c.last_name) LIKE crm._like_prefix(w.words[1]))
      AND NOT EXISTS (SELECT 1 FROM unnest(w.words) x
                      WHERE NOT (lower(coalesce(c.first_name, '')) LIKE crm._like_prefix(x)
                                 OR lower(coalesce(c.last_name, '')) LIKE crm._like_prefix(x)))
    ORDER BY 5 DESC, 2, c.created_at
    LIMIT 6
$$;

-- The same for the account's users (technicians, staff).
CREATE FUNCTION crm._users_named(name text) RETURNS TABLE (id uuid, name text, email text, role text, exact boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (SELECT array_agg(x) AS words FROM regexp_split_to_table(lower(btrim($1)), '\s+') x WHERE x <> '')
    SELECT u.id, coalesce(u.full_name, u.email), u.email, u.role, lower(coalesce(u.full_name, '')) = lower(btrim($1))
    FROM crm.users u, w
    WHERE u.account_id = crm.current_account_id() AND cardinality(w.words) BETWEEN 1 AND 6
      AND NOT EXISTS (SELECT 1 FROM unnest(w.words) x
                      WHERE NOT (EXISTS (SELECT 1 FROM regexp_split_to_table(lower(coalesce(u.full_name, '')), '\s+') n
                                         WHERE n LIKE crm._like_prefix(x))
                                 OR lower(u.email) LIKE crm._like_prefix(x)))
    ORDER BY 5 DESC, 2
    LIMIT 6
$$;

-- One of the named: {id} when one matches (or one matches exactly), else a result the agent
-- can say: none, or which ones ("several contacts match John: John Smith, John Wu").
CREATE FUNCTION crm._pick_named(what text, spoken text, found jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN jsonb_array_length($3) = 0 THEN crm._tool_fail(format('no %s named %s', $1, $2))
        WHEN jsonb_array_length($3) = 1 THEN jsonb_build_object('id', $3 -> 0 -> 'id')
        WHEN ($3 -> 0 ->> 'exact')::boolean AND NOT coalesce(($3 -> 1 ->> 'exact')::boolean, false)
            THEN jsonb_build_object('id', $3 -> 0 -> 'id')
        ELSE crm._tool_fail(format('several %ss match %s: %s. Which one?', $1, $2,
                                   (SELECT string_agg(e ->> 'name', ', ') FROM jsonb_array_elements($3) e)),
                            jsonb_build_object('candidates', (SELECT jsonb_agg(e - 'exact') FROM jsonb_array_elements($3) e)))
    END
$$;

CREATE FUNCTION crm._job_json(j crm.jobs) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'jobId', j.id, 'title', j.title, 'description', j.description, 'status', j.status,
        'scheduledStart', j.scheduled_start, 'scheduledEnd', j.scheduled_end,
        -- the account's wall clock, what the agent says ("Thursday at 9")
        'localStart', to_char(j.scheduled_start AT TIME ZONE crm._account_time_zone(j.account_id), 'FMDay YYYY-MM-DD HH24:MI'),
        'address', j.address, 'notes', j.notes,
        'contact', (SELECT jsonb_strip_nulls(jsonb_build_object('id', c.id, 'name', btrim(concat_ws(' ', c.first_name, c.last_name)),
                                                                'email', c.email, 'phone', c.phone))
                    FROM crm.contacts c WHERE c.id = j.contact_id),
        'technician', (SELECT jsonb_build_object('id', u.id, 'name', coalesce(u.full_name, u.email))
                       FROM crm.users u WHERE u.id = j.assigned_to)))
$$;

-- ---------------------------------------------------------------------------------------------
-- The tools (crm._tool_<name>: SECURITY INVOKER, what the caller's role and row-level
-- security allow; called through crm.call_tool, which has checked the arguments).

CREATE FUNCTION crm._tool_send_email_template(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'status', 'queued', 'emailId', crm.enqueue_email(jsonb_strip_nulls(jsonb_build_object(
        'template', a ->> 'templateName', 'to', a ->> 'to', 'variables', a -> 'variables',
        'scheduled_at', crm._tool_when(a ->> 'scheduledAt', crm.current_account_id())))))
$$;

CREATE FUNCTION crm._tool_send_custom_email(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'status', 'queued', 'emailId', crm.enqueue_email(jsonb_strip_nulls(jsonb_build_object(
        'to', a ->> 'to', 'subject', a ->> 'subject', 'html', a ->> 'html', 'text', a ->> 'text', 'attachments', a -> 'attachments',
        'scheduled_at', crm._tool_when(a ->> 'scheduledAt', crm.current_account_id())))))
$$;

CREATE FUNCTION crm._tool_send_job_status_email(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j crm.jobs;
    c crm.contacts;
BEGIN
    SELECT * INTO j FROM crm.jobs x WHERE x.id = (a ->> 'jobId')::uuid;
    IF j.id IS NULL THEN
        RETURN crm._tool_fail('no job ' || (a ->> 'jobId'));
    END IF;
    SELECT * INTO c FROM crm.contacts x WHERE x.id = j.contact_id;
    IF c.email IS NULL THEN
        RETURN crm._tool_fail('the job''s customer has no email address');
    END IF;
    RETURN jsonb_build_object('ok', true, 'status', 'queued', 'to', c.email, 'emailId', crm.enqueue_email(jsonb_build_object(
        'template', 'Job Status Update', 'to', c.email, 'metadata', jsonb_build_object('job_id', j.id),
        'variables', jsonb_strip_nulls(jsonb_build_object(
            'customerName', c.first_name, 'status', a ->> 'status', 'notes', a ->> 'notes',
            'eta', crm._tool_when(a ->> 'eta', j.account_id),
            'job', jsonb_strip_nulls(jsonb_build_object('title', j.title, 'address', j.address)))))));
END
$$;

CREATE FUNCTION crm._tool_send_invoice_email(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'status', 'queued',
        'emailId', crm.send_invoice_email((a ->> 'invoiceId')::uuid, a ->> 'recipientEmail', coalesce((a ->> 'attachPDF')::boolean, true)))
$$;

CREATE FUNCTION crm._tool_send_appointment_reminder(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j crm.jobs;
BEGIN
    SELECT * INTO j FROM crm.jobs x WHERE x.id = (a ->> 'appointmentId')::uuid;
    IF j.id IS NULL THEN
        RETURN crm._tool_fail('no appointment ' || (a ->> 'appointmentId'));
    END IF;
    RETURN jsonb_build_object('ok', true, 'status', 'queued', 'emailId', crm.enqueue_email(jsonb_build_object(
        'template', 'Appointment Reminder', 'to', a ->> 'customerEmail', 'metadata', jsonb_build_object('job_id', j.id),
        'variables', jsonb_strip_nulls(jsonb_build_object(
            'customerName', (SELECT c.first_name FROM crm.contacts c WHERE c.id = j.contact_id),
            'serviceName', j.title, 'address', j.address,
            'scheduledAt', crm._tool_when(a ->> 'scheduledAt', j.account_id),
            'technicianName', (SELECT u.full_name FROM crm.users u WHERE u.id = j.assigned_to),
            'rescheduleUrl', a ->> 'rescheduleUrl')))));
END
$$;

CREATE FUNCTION crm._tool_get_email_templates(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'templates', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'id', t.id, 'name', t.name, 'subject', t.subject, 'description', t.description, 'shared', t.account_id IS NULL))
        ORDER BY t.name), '[]'))
    FROM (SELECT * FROM crm.email_templates ORDER BY name LIMIT 200) t
$$;

CREATE FUNCTION crm._tool_get_email_analytics(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT coalesce(crm._tool_when(a ->> 'startDate', crm.current_account_id()), now() - interval '30 days') AS f,
               coalesce(crm._tool_when(a ->> 'endDate', crm.current_account_id()), now()) AS t
    ), e AS (
        SELECT x.event, count(*) AS n
        FROM crm.email_analytics x, r
        WHERE x."timestamp" >= r.f AND x."timestamp" < r.t
          AND (a ->> 'templateId' IS NULL OR x.queue_item_id IN (
                   SELECT q.id FROM crm.email_queue q WHERE q.template_id = (a ->> 'templateId')::uuid))
        GROUP BY x.event
    )
    SELECT jsonb_build_object('ok', true, 'from', r.f, 'to', r.t,
                              'counts', coalesce((SELECT jsonb_object_agg(e.event, e.n) FROM e), '{}'))
    FROM r
$$;

CREATE FUNCTION crm._tool_list_email_queue(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'emails', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'emailId', q.id, 'to', q.recipient_email, 'subject', q.subject, 'status', q.status,
        'scheduledAt', q.scheduled_at, 'sentAt', q.sent_at, 'error', q.last_error))), '[]'))
    FROM crm.list_email_queue(a ->> 'status', coalesce((a ->> 'limit')::integer, 20)) q
$$;

CREATE FUNCTION crm._tool_create_email_template(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH t AS (
        INSERT INTO crm.email_templates (account_id, name, subject, html_content, text_content)
        VALUES (crm.current_account_id(), a ->> 'name', a ->> 'subject', a ->> 'html', a ->> 'text')
        RETURNING id)
    SELECT jsonb_build_object('ok', true, 'templateId', t.id) FROM t
$$;

CREATE FUNCTION crm._tool_create_job(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acct uuid := crm.current_account_id();
    contact uuid;
    pick jsonb;
    starts timestamptz := crm._tool_when(a ->> 'scheduledStart', acct);
    ends timestamptz := crm._tool_when(a ->> 'scheduledEnd', acct);
    j crm.jobs;
BEGIN
    IF acct IS NULL THEN
        RETURN crm._tool_fail('no account: call with a signed-in user''s JWT');
    END IF;
    IF a ? 'contactId' THEN
        SELECT c.id INTO contact FROM crm.contacts c WHERE c.id = (a ->> 'contactId')::uuid;
        IF contact IS NULL THEN
            RETURN crm._tool_fail('no contact ' || (a ->> 'contactId'));
        END IF;
    ELSE
        pick := crm._pick_named('contact', a ->> 'contactName',
                                (SELECT coalesce(jsonb_agg(to_jsonb(n)), '[]') FROM crm._contacts_named(a ->> 'contactName') n));
        IF pick ? 'error' THEN
            RETURN pick;
        END IF;
        contact := (pick ->> 'id')::uuid;
    END IF;
    IF starts IS NOT NULL AND ends IS NULL THEN
        ends := starts + interval '1 hour';
    END IF;
    IF ends < starts THEN
        RETURN crm._tool_fail('scheduledEnd is before scheduledStart');
    END IF;
    INSERT INTO crm.jobs (account_id, contact_id, title, description, status, scheduled_start, scheduled_end, assigned_to, address)
    VALUES (acct, contact, left(btrim(split_part(btrim(a ->> 'description', E' \t\r\n'), E'\n', 1), E' \t\r'), 120), a ->> 'description',
            CASE WHEN starts IS NULL THEN 'lead' ELSE 'scheduled' END, starts, ends, (a ->> 'techAssignedId')::uuid,
            (SELECT c.address FROM crm.contacts c WHERE c.id = contact))
    RETURNING * INTO j;
    RETURN jsonb_build_object('ok', true) || crm._job_json(j);
END
$$;

-- PL/pgSQL with the patterns and the account as literals: a LIKE prefix uses the name and
-- email indexes only when the planner sees the prefix and the account, which parameters hide. Names and emails, and phones, are
-- two index lookups (one OR over both defeats the bitmap plan); sequential scans are off for
-- this lookup, which the planner would otherwise pick for a common prefix under LIMIT (and JIT,
-- whose compile time the resulting costs would trigger). SECURITY DEFINER with the caller's
-- account as an explicit condition: under row-level security a LIKE (not leakproof) may not
-- become an index condition, and every search would read the whole account.
CREATE FUNCTION crm._tool_search_contacts(a jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    q text := lower(btrim(a ->> 'search'));
    w text[] := regexp_split_to_array(lower(btrim(a ->> 'search')), '\s+');
    digits text := regexp_replace(a ->> 'search', '\D', '', 'g');
    found jsonb;
BEGIN
    IF crm.current_account_id() IS NULL THEN
        RETURN crm._tool_fail('no account: call with a signed-in user''s JWT');
    END IF;
    IF q = '' THEN
        RETURN crm._tool_fail('search: empty');
    END IF;
    EXECUTE format($q$
        WITH hit AS (
            (SELECT c.* FROM crm.contacts c
             WHERE c.account_id = %6$L::uuid
               AND (lower(c.first_name) LIKE %1$L OR lower(c.last_name) LIKE %1$L OR lower(c.email) LIKE %2$L)
               %7$s
             LIMIT 500)
            UNION
            (SELECT c.* FROM crm.contacts c
             WHERE %3$L AND c.account_id = %6$L::uuid AND c.phone IS NOT NULL
               AND right(regexp_replace(c.phone, %4$L, '', 'g'), 7) = %5$L
             LIMIT 50))
        SELECT coalesce(jsonb_agg(x.j ORDER BY x.rank, x.name), '[]') FROM (
            SELECT jsonb_strip_nulls(jsonb_build_object('id', h.id, 'name', btrim(concat_ws(' ', h.first_name, h.last_name)),
                                                        'email', h.email, 'phone', h.phone, 'address', h.address)) AS j,
                   btrim(concat_ws(' ', h.first_name, h.last_name)) AS name,
                   CASE WHEN lower(btrim(concat_ws(' ', h.first_name, h.last_name))) = $3 THEN 0
                        WHEN lower(coalesce(h.first_name, '')) = $2[1] OR lower(coalesce(h.last_name, '')) = $2[1] THEN 1
                        ELSE 2 END AS rank
            FROM hit h
            ORDER BY 3, 2
            LIMIT 10) x$q$,
        crm._like_prefix(w[1]), crm._like_prefix(q), length(digits) >= 7, '\D', right(digits, 7), crm.current_account_id(),
        -- every further word (up to 6) is the start of the first or the last name
        (SELECT coalesce(string_agg(format('AND (lower(coalesce(c.first_name, %L)) LIKE %L OR lower(coalesce(c.last_name, %L)) LIKE %L)',
                                           '', crm._like_prefix(x), '', crm._like_prefix(x)), ' '), '')
         FROM unnest(w[2:6]) x))
    INTO found USING NULL::uuid, w, q;
    RETURN jsonb_build_object('ok', true, 'contacts', found);
END
$$;

CREATE FUNCTION crm._tool_get_job(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT jsonb_build_object('ok', true) || crm._job_json(j) FROM crm.jobs j WHERE j.id = (a ->> 'jobId')::uuid),
                    crm._tool_fail('no job ' || (a ->> 'jobId')))
$$;

CREATE FUNCTION crm._tool_update_job_status(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before text;
    j crm.jobs;
BEGIN
    SELECT x.status INTO before FROM crm.jobs x WHERE x.id = (a ->> 'jobId')::uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN crm._tool_fail('no job ' || (a ->> 'jobId'));
    END IF;
    UPDATE crm.jobs x SET status = a ->> 'status' WHERE x.id = (a ->> 'jobId')::uuid RETURNING * INTO j;
    RETURN jsonb_build_object('ok', true, 'previousStatus', before) || crm._job_json(j);
END
$$;

CREATE FUNCTION crm._tool_assign_tech(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tech uuid;
    pick jsonb;
    j crm.jobs;
BEGIN
    PERFORM 1 FROM crm.jobs x WHERE x.id = (a ->> 'jobId')::uuid;
    IF NOT FOUND THEN
        RETURN crm._tool_fail('no job ' || (a ->> 'jobId'));
    END IF;
    IF a ? 'techId' THEN
        SELECT u.id INTO tech FROM crm.users u WHERE u.id = (a ->> 'techId')::uuid AND u.account_id = crm.current_account_id();
        IF tech IS NULL THEN
            RETURN crm._tool_fail('no technician ' || (a ->> 'techId'));
        END IF;
    ELSE
        pick := crm._pick_named('technician', a ->> 'techName',
                                (SELECT coalesce(jsonb_agg(to_jsonb(n)), '[]') FROM crm._users_named(a ->> 'techName') n));
        IF pick ? 'error' THEN
            RETURN pick;
        END IF;
        tech := (pick ->> 'id')::uuid;
    END IF;
    UPDATE crm.jobs x SET assigned_to = tech WHERE x.id = (a ->> 'jobId')::uuid RETURNING * INTO j;
    RETURN jsonb_build_object('ok', true) || crm._job_json(j);
END
$$;

CREATE FUNCTION crm._tool_create_contact(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acct uuid := crm.current_account_id();
    new_id uuid;
    region text := coalesce(nullif(current_setting('crm.default_phone_region', true), ''), 'US');
    dupes jsonb;
BEGIN
    IF acct IS NULL THEN
        RETURN crm._tool_fail('no account: call with a signed-in user''s JWT');
    END IF;
    -- the same email or phone already known: said, not refused (two people may share a phone)
    SELECT jsonb_agg(jsonb_build_object('id', c.id, 'name', btrim(concat_ws(' ', c.first_name, c.last_name))))
    INTO dupes
    FROM (SELECT c.* FROM crm.contacts c
          WHERE c.account_id = acct
            AND ((a ? 'email' AND c.email IS NOT NULL AND crm._email_key(c.email) = crm._email_key(a ->> 'email'))
                 OR (a ? 'phone' AND c.phone IS NOT NULL
                     AND right(regexp_replace(c.phone, '\D', '', 'g'), 7) = right(regexp_replace(a ->> 'phone', '\D', '', 'g'), 7)
                     AND crm._phone_key(c.phone, region) = crm._phone_key(a ->> 'phone', region)))
          LIMIT 5) c;
    INSERT INTO crm.contacts (account_id, first_name, last_name, email, phone, address, notes)
    VALUES (acct, a ->> 'firstName', a ->> 'lastName', a ->> 'email', a ->> 'phone', a ->> 'address', a ->> 'notes')
    RETURNING id INTO new_id;
    RETURN jsonb_strip_nulls(jsonb_build_object('ok', true, 'contactId', new_id, 'possibleDuplicates', dupes));
END
$$;

CREATE FUNCTION crm._tool_update_job(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j crm.jobs;
    starts timestamptz;
    ends timestamptz;
BEGIN
    SELECT * INTO j FROM crm.jobs x WHERE x.id = (a ->> 'jobId')::uuid FOR UPDATE;
    IF j.id IS NULL THEN
        RETURN crm._tool_fail('no job ' || (a ->> 'jobId'));
    END IF;
    starts := coalesce(crm._tool_when(a ->> 'scheduledStart', j.account_id), j.scheduled_start);
    ends := coalesce(crm._tool_when(a ->> 'scheduledEnd', j.account_id),
                     CASE WHEN a ? 'scheduledStart' AND j.scheduled_end IS NOT NULL AND j.scheduled_start IS NOT NULL
                          THEN starts + (j.scheduled_end - j.scheduled_start)
                          WHEN a ? 'scheduledStart' THEN starts + interval '1 hour'
                          ELSE j.scheduled_end END);
    IF ends < starts THEN
        RETURN crm._tool_fail('scheduledEnd is before scheduledStart');
    END IF;
    UPDATE crm.jobs x
    SET description = coalesce(a ->> 'description', x.description),
        notes = CASE WHEN a ? 'notes' THEN left(concat_ws(E'\n', x.notes, a ->> 'notes'), 20000) ELSE x.notes END,
        scheduled_start = starts, scheduled_end = ends,
        status = CASE WHEN x.status = 'lead' AND starts IS NOT NULL THEN 'scheduled' ELSE x.status END
    WHERE x.id = j.id
    RETURNING * INTO j;
    RETURN jsonb_build_object('ok', true) || crm._job_json(j);
END
$$;

CREATE FUNCTION crm._tool_search_users(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'users', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'id', n.id, 'name', n.name, 'email', n.email, 'role', n.role))), '[]'))
    FROM crm._users_named(a ->> 'search') n
$$;

CREATE FUNCTION crm._tool_send_email(a jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF a ? 'jobId' AND NOT EXISTS (SELECT 1 FROM crm.jobs j WHERE j.id = (a ->> 'jobId')::uuid) THEN
        RETURN crm._tool_fail('no job ' || (a ->> 'jobId'));
    END IF;
    RETURN jsonb_build_object('ok', true, 'status', 'queued', 'emailId', crm.enqueue_email(jsonb_strip_nulls(jsonb_build_object(
        'to', a ->> 'to', 'subject', a ->> 'subject', 'text', a ->> 'body',
        'metadata', CASE WHEN a ? 'jobId' THEN jsonb_build_object('job_id', a ->> 'jobId') END))));
END
$$;

CREATE FUNCTION crm._tool_get_user_email(a jsonb) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT jsonb_build_object('ok', true, 'email', u.email, 'name', u.full_name)
                     FROM crm.users u WHERE u.id = crm._tool_user()),
                    crm._tool_fail('no signed-in user of this account'))
$$;

CREATE FUNCTION crm._tool_get_schedule(a jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acct uuid := crm.current_account_id();
    tz text := crm._account_time_zone(crm.current_account_id());
    tech uuid := coalesce((a ->> 'techId')::uuid, crm._tool_user());
    day date := coalesce((a ->> 'date')::date, (now() AT TIME ZONE crm._account_time_zone(crm.current_account_id()))::date);
BEGIN
    IF acct IS NULL THEN
        RETURN crm._tool_fail('no account: call with a signed-in user''s JWT');
    END IF;
    IF tech IS NULL THEN
        RETURN crm._tool_fail('whose schedule? name a technician (techId)');
    END IF;
    RETURN jsonb_build_object('ok', true, 'date', day, 'timeZone', tz, 'techId', tech, 'jobs', coalesce((
        SELECT jsonb_agg(crm._job_json(j) ORDER BY j.scheduled_start)
        FROM crm.jobs j
        WHERE j.account_id = acct AND j.assigned_to = tech AND j.status <> 'cancelled'
          AND j.scheduled_start >= (day::timestamp AT TIME ZONE tz)
          AND j.scheduled_start < ((day + 1)::timestamp AT TIME ZONE tz)), '[]'));
END
$$;

CREATE FUNCTION crm._tool_suggest_technicians(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true, 'technicians', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'rank', s.rank, 'id', s.user_id, 'name', s.full_name, 'available', s.available,
        'driveMinutes', round((s.duration_s / 60)::numeric), 'reason', s.reason)) ORDER BY s.rank), '[]'))
    FROM crm.suggest_technicians((a ->> 'jobId')::uuid) s
$$;

CREATE FUNCTION crm._tool_job_eta(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT jsonb_strip_nulls(jsonb_build_object('ok', true, 'technicianId', e.technician_id, 'eta', e.eta,
                                                                  'driveMinutes', round((e.duration_s / 60)::numeric), 'source', e.source))
                     FROM crm.job_eta((a ->> 'jobId')::uuid) e LIMIT 1),
                    crm._tool_fail('no estimate: the job has no technician or no known position'))
$$;

CREATE FUNCTION crm._tool_create_invoice_checkout(a jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('ok', true) || crm.create_invoice_checkout((a ->> 'invoiceId')::uuid)
$$;

-- ---------------------------------------------------------------------------------------------
-- Dispatch and log.

-- What an error means to the agent (no stack, no internals).
CREATE FUNCTION crm._tool_error_text(state text, message text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN $1 = '42501' THEN 'not allowed for this user'
        WHEN $1 = '23505' THEN 'that already exists'
        WHEN $1 LIKE '23%' THEN 'that does not fit the data (' || left($2, 200) || ')'
        ELSE left($2, 500) END
$$;

-- A call's log row (the caller cannot write crm.tool_calls).
-- Calls without an account (they could run nothing of a tenant's) are not logged.
CREATE FUNCTION crm._log_tool_call(tool text, args jsonb, outcome text, error text, took interval) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO crm.tool_calls (account_id, user_sub, tool, arguments, outcome, error, duration_ms, conversation_id)
    SELECT crm.current_account_id(), left(crm._jwt_sub(), 200), left($1, 64),
            CASE WHEN octet_length($2::text) <= 8192 THEN $2
                 ELSE jsonb_build_object('truncated_bytes', octet_length($2::text)) END,
            $3, left($4, 1000), extract(epoch FROM $5) * 1000,
            left(coalesce(nullif(current_setting('crm.conversation_id', true), ''),
                          nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-conversation-id'), 200)
    WHERE crm.current_account_id() IS NOT NULL
$$;

-- Run tool `name` with `args`: checked against its JSON Schema first (a bad argument is a
-- result the agent can say: {"ok": false, "error": "scheduledStart: not a date"}), then run
-- with the caller's rights in a subtransaction (a failing tool writes nothing), and logged.
-- Returns the tool's result ({"ok": true, ...} or {"ok": false, "error": ...}). Only limits
-- (54000) and cancellation raise.
CREATE FUNCTION crm.call_tool(name text, args jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    a jsonb := coalesce(args, '{}');
    problem text;
    result jsonb;
    outcome text;
BEGIN
    IF name IS NULL OR name !~ '^[a-z_]{1,64}$' THEN
        problem := format('unknown tool %s', left(coalesce(name, '(none)'), 64));
    ELSE
        BEGIN
            problem := crm._tool_check(name, a);
        EXCEPTION WHEN invalid_parameter_value THEN
            problem := SQLERRM;
        END;
    END IF;
    IF problem IS NOT NULL THEN
        result := crm._tool_fail(problem);
        outcome := 'invalid';
    ELSE
        BEGIN
            EXECUTE format('SELECT crm.%I($1)', '_tool_' || name) INTO result USING a;
            outcome := CASE WHEN (result ->> 'ok')::boolean IS FALSE THEN 'error' ELSE 'ok' END;
        EXCEPTION
            WHEN program_limit_exceeded THEN RAISE;
            WHEN OTHERS THEN
                result := crm._tool_fail(crm._tool_error_text(SQLSTATE, SQLERRM));
                outcome := 'error';
        END;
    END IF;
    PERFORM crm._log_tool_call(name, a, outcome, result ->> 'error', clock_timestamp() - t0);
    RETURN result;
END
$$;

-- Old calls go (crm.tool_calls_retention, default 30 days), 10,000 at a time: the workers'
-- upkeep.
CREATE FUNCTION crm._tool_calls_upkeep() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM crm.tool_calls t
        WHERE t.id IN (SELECT x.id FROM crm.tool_calls x
                       WHERE x.called_at < now() - crm._setting_interval('crm.tool_calls_retention', '30 days')
                       ORDER BY x.called_at LIMIT 10000)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- The server tools as PostgREST RPCs: POST /rest/v1/rpc/tool_<name> with the arguments as the
-- JSON body (one unnamed jsonb parameter: PostgREST hands it the body as is).
CREATE FUNCTION crm.tool_send_email_template(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_email_template', $1) $$;
CREATE FUNCTION crm.tool_send_custom_email(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_custom_email', $1) $$;
CREATE FUNCTION crm.tool_send_job_status_email(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_job_status_email', $1) $$;
CREATE FUNCTION crm.tool_send_invoice_email(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_invoice_email', $1) $$;
CREATE FUNCTION crm.tool_send_appointment_reminder(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_appointment_reminder', $1) $$;
CREATE FUNCTION crm.tool_get_email_templates(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('get_email_templates', $1) $$;
CREATE FUNCTION crm.tool_get_email_analytics(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('get_email_analytics', $1) $$;
CREATE FUNCTION crm.tool_list_email_queue(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('list_email_queue', $1) $$;
CREATE FUNCTION crm.tool_create_email_template(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('create_email_template', $1) $$;
CREATE FUNCTION crm.tool_create_job(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('create_job', $1) $$;
CREATE FUNCTION crm.tool_search_contacts(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('search_contacts', $1) $$;
CREATE FUNCTION crm.tool_get_job(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('get_job', $1) $$;
CREATE FUNCTION crm.tool_update_job_status(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('update_job_status', $1) $$;
CREATE FUNCTION crm.tool_assign_tech(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('assign_tech', $1) $$;
CREATE FUNCTION crm.tool_create_contact(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('create_contact', $1) $$;
CREATE FUNCTION crm.tool_update_job(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('update_job', $1) $$;
CREATE FUNCTION crm.tool_search_users(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('search_users', $1) $$;
CREATE FUNCTION crm.tool_send_email(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('send_email', $1) $$;
CREATE FUNCTION crm.tool_get_user_email(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('get_user_email', $1) $$;
CREATE FUNCTION crm.tool_get_schedule(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('get_schedule', $1) $$;
CREATE FUNCTION crm.tool_suggest_technicians(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('suggest_technicians', $1) $$;
CREATE FUNCTION crm.tool_job_eta(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('job_eta', $1) $$;
CREATE FUNCTION crm.tool_create_invoice_checkout(jsonb) RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT crm.call_tool('create_invoice_checkout', $1) $$;

-- ---------------------------------------------------------------------------------------------
-- MCP over Supabase RPC: POST /rest/v1/rpc/mcp with a JSON-RPC 2.0 message as the body (one
-- unnamed json parameter). The streamable HTTP transport, as far as a stateless server needs
-- it: initialize (version negotiation), notifications (HTTP 202, no body: response.status),
-- tools/list, tools/call (a tool's failure is a result with isError), ping. The caller's JWT
-- (the agent's secret token) decides whose data the tools see.

CREATE FUNCTION crm._mcp_error(id jsonb, code integer, message text) RETURNS json
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT json_build_object('jsonrpc', '2.0', 'id', $1, 'error', json_build_object('code', $2, 'message', $3)) $$;

CREATE FUNCTION crm.mcp(json) RETURNS json
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m jsonb;
    id jsonb;
    method text;
    params jsonb;
    asked text;
    result jsonb;
    -- the revisions reached through initialize, newest first
    versions text[] := ARRAY['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
BEGIN
    BEGIN
        m := $1::jsonb;
    EXCEPTION WHEN OTHERS THEN
        PERFORM set_config('response.status', '400', true);
        RETURN crm._mcp_error('null', -32700, 'Parse error');
    END;
    IF m IS NULL THEN
        PERFORM set_config('response.status', '400', true);
        RETURN crm._mcp_error('null', -32600, 'Invalid Request: empty body');
    END IF;
    -- any answer below that is not an error is HTTP 200; invalid messages are 400
    PERFORM set_config('response.status', '400', true);
    IF jsonb_typeof(m) = 'array' THEN
        -- batches were removed from the protocol (2025-06-18); refused as a whole
        RETURN crm._mcp_error('null', -32600, 'Invalid Request: JSON-RPC batches are not supported');
    END IF;
    IF jsonb_typeof(m) <> 'object' OR m ->> 'jsonrpc' IS DISTINCT FROM '2.0' OR jsonb_typeof(m -> 'method') IS DISTINCT FROM 'string'
       OR (m ? 'id' AND jsonb_typeof(m -> 'id') NOT IN ('string', 'number'))
       OR (m ? 'params' AND jsonb_typeof(m -> 'params') <> 'object') THEN
        RETURN crm._mcp_error(CASE WHEN jsonb_typeof(m -> 'id') IN ('string', 'number') THEN m -> 'id' ELSE 'null' END,
                              -32600, 'Invalid Request');
    END IF;
    PERFORM set_config('response.status', '200', true);
    id := m -> 'id';
    method := m ->> 'method';
    params := coalesce(m -> 'params', '{}');
    IF id IS NULL THEN
        -- a notification (notifications/initialized, notifications/cancelled, ...): accepted,
        -- HTTP 202 with no body
        PERFORM set_config('response.status', '202', true);
        RETURN NULL;
    END IF;
    CASE method
    WHEN 'initialize' THEN
        asked := params ->> 'protocolVersion';
        result := jsonb_build_object(
            'protocolVersion', CASE WHEN asked = ANY (versions) THEN asked ELSE versions[1] END,
            'capabilities', jsonb_build_object('tools', jsonb_build_object('listChanged', false)),
            'serverInfo', jsonb_build_object('name', 'crm_integrations', 'title', 'Field-service CRM',
                                             'version', (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'crm_integrations')),
            'instructions', 'CRM tools of one field-service company (the signed-in user''s account). Tools whose description says Needs confirmation change or send something: confirm with the user first.');
    WHEN 'ping' THEN
        result := '{}';
    WHEN 'tools/list' THEN
        result := crm._mcp_tools()::jsonb;
    WHEN 'tools/call' THEN
        IF jsonb_typeof(params -> 'name') IS DISTINCT FROM 'string'
           OR (params ? 'arguments' AND jsonb_typeof(params -> 'arguments') <> 'object') THEN
            RETURN crm._mcp_error(id, -32602, 'Invalid params: tools/call needs a name and an arguments object');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(crm._mcp_tools()::jsonb -> 'tools') t WHERE t ->> 'name' = params ->> 'name') THEN
            RETURN crm._mcp_error(id, -32602, format('Unknown tool: %s', left(params ->> 'name', 64)));
        END IF;
        IF params -> '_meta' ->> 'conversationId' IS NOT NULL THEN
            PERFORM set_config('crm.conversation_id', left(params -> '_meta' ->> 'conversationId', 200), true);
        END IF;
        BEGIN
            result := crm.call_tool(params ->> 'name', coalesce(params -> 'arguments', '{}'));
        EXCEPTION WHEN program_limit_exceeded THEN
            RETURN crm._mcp_error(id, -32602, 'Invalid params: ' || SQLERRM);
        END;
        result := jsonb_build_object(
            'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', result::text)),
            'structuredContent', result,
            'isError', (result ->> 'ok')::boolean IS FALSE);
    ELSE
        RETURN crm._mcp_error(id, -32601, format('Method not found: %s', left(method, 100)));
    END CASE;
    RETURN json_build_object('jsonrpc', '2.0', 'id', id, 'result', result);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- ElevenLabs' post-call webhook (the signature is checked by crm._verify_webhook). The
-- account is the one the app registered the conversation to (crm.voice_conversation_start).

-- The app registers a conversation as soon as ElevenLabs gives it an id (the SDK's
-- onConnect): the signed-in user and their account. A conversation id is registered once; the
-- same user registering it again is a no-op, anyone else is refused (42501).
CREATE FUNCTION crm.voice_conversation_start(conversation_id text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me uuid := crm._tool_user();
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'voice_conversation_start is called by a signed-in user of the CRM' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF $1 IS NULL OR $1 !~ '^[A-Za-z0-9_-]{1,200}$' THEN
        RAISE EXCEPTION 'conversation_id must be ElevenLabs'' conversation id (letters, digits, _ and -)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO crm.voice_conversations AS v (conversation_id, account_id, user_id)
    VALUES ($1, crm.current_account_id(), me)
    ON CONFLICT ON CONSTRAINT voice_conversations_pkey DO NOTHING;
    IF NOT EXISTS (SELECT 1 FROM crm.voice_conversations v WHERE v.conversation_id = $1 AND v.user_id = me) THEN
        RAISE EXCEPTION 'conversation % is registered to someone else', $1 USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION crm._apply_elevenlabs_event(event jsonb) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d jsonb := event -> 'data';
    kind text := event ->> 'type';
    vars jsonb := coalesce(d -> 'conversation_initiation_client_data' -> 'dynamic_variables', '{}');
    acct uuid;
    usr uuid;
    caller text := left(coalesce(d -> 'metadata' -> 'phone_call' ->> 'external_number', vars ->> 'system__caller_id'), 64);
    region text := coalesce(nullif(current_setting('crm.default_phone_region', true), ''), 'US');
    contact uuid;
    audio bytea;
BEGIN
    IF kind NOT IN ('post_call_transcription', 'call_initiation_failure', 'post_call_audio') THEN
        RETURN 'ignored';
    END IF;
    IF d ->> 'conversation_id' IS NULL THEN
        RAISE EXCEPTION 'elevenlabs % event without data.conversation_id', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT v.account_id, v.user_id INTO acct, usr FROM crm.voice_conversations v WHERE v.conversation_id = d ->> 'conversation_id';
    IF acct IS NULL THEN
        -- not registered by the app (crm.voice_conversation_start): no account to put it in
        RETURN 'ignored';
    END IF;
    IF kind = 'post_call_audio' THEN
        IF NOT coalesce(current_setting('crm.elevenlabs_store_audio', true), 'off')::boolean THEN
            RETURN 'ignored';  -- crm.elevenlabs_store_audio is off
        END IF;
        -- (pg_settings' value is in bytes; current_setting's has a unit)
        IF length(d ->> 'full_audio') * 3 / 4 > coalesce((SELECT s.setting::bigint FROM pg_settings s WHERE s.name = 'crm.elevenlabs_max_audio_bytes'), 10485760) THEN
            RETURN 'ignored';  -- larger than crm.elevenlabs_max_audio_bytes
        END IF;
        audio := decode(d ->> 'full_audio', 'base64');
    END IF;
    IF caller IS NOT NULL AND crm._phone_key(caller, region) IS NOT NULL THEN
        SELECT c.id INTO contact FROM crm.contacts c
        WHERE c.account_id = acct AND c.phone IS NOT NULL
          AND right(regexp_replace(c.phone, '\D', '', 'g'), 7) = right(regexp_replace(caller, '\D', '', 'g'), 7)
          AND crm._phone_key(c.phone, region) = crm._phone_key(caller, region)
        ORDER BY c.created_at LIMIT 1;
    END IF;
    INSERT INTO crm.voice_calls (account_id, user_id, conversation_id, event_type, agent_id, status, caller_number, contact_id,
                                 started_at, duration_secs, transcript, summary, call_successful, failure_reason, audio)
    VALUES (acct, usr, left(d ->> 'conversation_id', 200), kind, left(d ->> 'agent_id', 200), left(d ->> 'status', 60), caller, contact,
            to_timestamp(crm._try_float(d -> 'metadata' ->> 'start_time_unix_secs')),
            crm._try_float(d -> 'metadata' ->> 'call_duration_secs')::integer,
            CASE WHEN jsonb_typeof(d -> 'transcript') = 'array' THEN d -> 'transcript' END,
            left(d -> 'analysis' ->> 'transcript_summary', 20000), left(d -> 'analysis' ->> 'call_successful', 40),
            left(coalesce(d ->> 'failure_reason', d -> 'metadata' ->> 'failure_reason'), 500), audio)
    ON CONFLICT (conversation_id, event_type) DO NOTHING;
    RETURN 'processed';
END
$$;

CREATE FUNCTION crm._try_float(v text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE WHEN v ~ '^\s*-?[0-9]{1,15}(\.[0-9]{1,9})?\s*$' THEN v::double precision END;
END
$$;

-- PostgREST's entry point: POST /rest/v1/rpc/elevenlabs_webhook. ElevenLabs posts
-- application/json, which PostgREST hands to a single unnamed json parameter; json (unlike
-- jsonb) keeps the text byte for byte, which the signature needs. Headers from request.headers.
CREATE FUNCTION crm.elevenlabs_webhook(json) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm.ingest_webhook('elevenlabs', coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}'), $1::text)
$$;

-- Privileges: sql/security.sql.
