-- Contacts (issue 14, first part): where a contact came from (crm.contact_sources, for the
-- Gmail and Microsoft sync), duplicate candidates, and a merge that never loses data:
-- crm.merge_contacts records both rows and every reference it moved in crm.contact_merges,
-- so crm.unmerge_contacts restores them exactly. The matching keys are Rust
-- (src/contacts.rs, core/src/contacts/keys.rs).

-- Each external person (a Google People resource, a Graph contact) maps to one CRM contact.
CREATE TABLE crm.contact_sources (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id    uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    contact_id    uuid NOT NULL,
    connection_id uuid NOT NULL REFERENCES crm.contact_providers (id) ON DELETE CASCADE,
    provider      text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    external_id   text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 1024),
    etag          text,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contact_sources_external_key UNIQUE (connection_id, external_id),
    CONSTRAINT contact_sources_contact_fk FOREIGN KEY (account_id, contact_id)
        REFERENCES crm.contacts (account_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_sources_contact_idx ON crm.contact_sources (contact_id);
ALTER TABLE crm.contact_sources ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.contact_sources FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.contact_sources FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.contact_sources', '');

-- Every merge: both rows as they were, the kept row as the merge left it, the fields filled
-- from the merged row, the conflicting values (kept's value stayed), the references moved.
CREATE TABLE crm.contact_merges (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id        uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    kept_contact_id   uuid NOT NULL,
    merged_contact_id uuid NOT NULL,
    kept_before       jsonb NOT NULL,
    kept_after        jsonb NOT NULL,
    merged_row        jsonb NOT NULL,
    filled            jsonb NOT NULL DEFAULT '{}',
    conflicts         jsonb NOT NULL DEFAULT '{}',
    moved             jsonb NOT NULL DEFAULT '{}',
    merged_by         text,
    merged_at         timestamptz NOT NULL DEFAULT now(),
    unmerged_by       text,
    unmerged_at       timestamptz
);
CREATE INDEX contact_merges_account_idx ON crm.contact_merges (account_id, merged_at);
ALTER TABLE crm.contact_merges ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.contact_merges FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.contact_merges FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.contact_merges', '');

-- The fields a merge compares (the rest are ids, times, or follow the address).
CREATE FUNCTION crm._contact_merge_fields() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['first_name', 'last_name', 'email', 'phone', 'address'] $$;

-- Who did it: the JWT's sub, else the role.
CREATE FUNCTION crm._actor() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(crm._jwt_sub(), CASE WHEN current_setting('role') = 'none' THEN session_user::text
                                          ELSE current_setting('role') END) $$;

-- Candidate duplicates in an account (the caller's; any for the server): pairs with the same
-- email key (Gmail's dots and +suffix ignored), the same phone in E.164
-- (crm.default_phone_region for numbers without a country code), or a similar name
-- (Jaro-Winkler >= 0.9) at the same normalised address. `auto` is true when email or phone
-- matched: what the sync merges by itself; a name match is only ever a suggestion.
-- At most 1,000 pairs, strongest first; keys shared by more than 20 contacts are ignored.
CREATE FUNCTION crm.find_duplicate_contacts(account_id uuid DEFAULT crm.current_account_id())
RETURNS TABLE (contact_id uuid, duplicate_id uuid, reason text, score double precision, auto boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    region text := coalesce(nullif(current_setting('crm.default_phone_region', true), ''), 'US');
BEGIN
    IF $1 IS NULL OR NOT ($1 = crm.current_account_id() OR crm._caller_is_privileged()) THEN
        RAISE EXCEPTION 'find_duplicate_contacts: no account %', coalesce($1::text, '(none)')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    -- A key shared by more than 20 contacts (an office switchboard, info@, one building) says
    -- nothing about who is whom, and would make pairs by the hundred thousand: such keys are
    -- left out.
    WITH raw AS (
        SELECT c.id, crm._email_key(left(c.email, 320)) AS ek, crm._phone_key(left(c.phone, 64), region) AS pk,
               nullif(crm._address_key(left(c.address, 500)), '') AS ak,
               nullif(btrim(concat_ws(' ', left(c.first_name, 100), left(c.last_name, 100))), '') AS name
        FROM crm.contacts c WHERE c.account_id = $1
    ), keyed AS (
        SELECT r.id, r.name,
               CASE WHEN count(*) OVER (PARTITION BY r.ek) <= 20 THEN r.ek END AS ek,
               CASE WHEN count(*) OVER (PARTITION BY r.pk) <= 20 THEN r.pk END AS pk,
               CASE WHEN count(*) OVER (PARTITION BY r.ak) <= 20 THEN r.ak END AS ak
        FROM raw r
    ), pairs AS (
        SELECT a.id AS x, b.id AS y, 'same email' AS why, 1.0::float8 AS s, true AS auto
        FROM keyed a JOIN keyed b ON a.ek = b.ek AND a.id < b.id
        UNION ALL
        SELECT a.id, b.id, 'same phone', 1.0, true
        FROM keyed a JOIN keyed b ON a.pk = b.pk AND a.id < b.id
        UNION ALL
        SELECT a.id, b.id, 'similar name, same address', crm._name_similarity(a.name, b.name), false
        FROM keyed a JOIN keyed b ON a.ak = b.ak AND a.id < b.id
        WHERE crm._name_similarity(a.name, b.name) >= 0.9
    )
    SELECT p.x, p.y, string_agg(p.why, ', ' ORDER BY p.why), max(p.s), bool_or(p.auto)
    FROM pairs p
    GROUP BY p.x, p.y
    ORDER BY bool_or(p.auto) DESC, max(p.s) DESC, p.x, p.y
    LIMIT 1000;
END
$$;

-- Merge `merge` into `keep` (same account; the caller's, or any for the server): jobs,
-- invoices and sources move to keep; a field empty on keep takes merge's value; where both
-- have different values keep's stays and both are recorded; merge is deleted. Returns the
-- crm.contact_merges id, for crm.unmerge_contacts.
CREATE FUNCTION crm.merge_contacts(keep uuid, merge uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k crm.contacts;
    m crm.contacts;
    kj jsonb;
    mj jsonb;
    f text;
    filled jsonb := '{}';
    conflicts jsonb := '{}';
    moved jsonb;
    merge_id uuid;
    region text := coalesce(nullif(current_setting('crm.default_phone_region', true), ''), 'US');
BEGIN
    IF keep IS NULL OR merge IS NULL OR keep = merge THEN
        RAISE EXCEPTION 'merge_contacts needs two different contacts' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- both locked, in id order (two opposite merges cannot deadlock)
    PERFORM 1 FROM crm.contacts c
    WHERE c.id IN (keep, merge) AND (c.account_id = crm.current_account_id() OR crm._caller_is_privileged())
    ORDER BY c.id FOR UPDATE;
    SELECT * INTO k FROM crm.contacts c WHERE c.id = keep AND (c.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    SELECT * INTO m FROM crm.contacts c WHERE c.id = merge AND (c.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF k.id IS NULL OR m.id IS NULL THEN
        RAISE EXCEPTION 'no contact %', CASE WHEN k.id IS NULL THEN keep ELSE merge END USING ERRCODE = 'no_data_found';
    END IF;
    IF k.account_id <> m.account_id THEN
        RAISE EXCEPTION 'contacts % and % belong to different accounts', keep, merge USING ERRCODE = 'invalid_parameter_value';
    END IF;
    kj := to_jsonb(k);
    mj := to_jsonb(m);
    FOREACH f IN ARRAY crm._contact_merge_fields() LOOP
        IF coalesce(btrim(kj ->> f), '') = '' AND coalesce(btrim(mj ->> f), '') <> '' THEN
            filled := filled || jsonb_build_object(f, mj -> f);
        ELSIF coalesce(btrim(mj ->> f), '') <> '' AND (kj ->> f) IS DISTINCT FROM (mj ->> f)
              -- the same number or address written differently is not a conflict
              AND NOT (f = 'phone' AND crm._phone_key(kj ->> f, region) IS NOT DISTINCT FROM crm._phone_key(mj ->> f, region)
                       AND crm._phone_key(kj ->> f, region) IS NOT NULL)
              AND NOT (f = 'email' AND crm._email_key(kj ->> f) IS NOT DISTINCT FROM crm._email_key(mj ->> f)
                       AND crm._email_key(kj ->> f) IS NOT NULL) THEN
            conflicts := conflicts || jsonb_build_object(f, jsonb_build_array(kj -> f, mj -> f));
        END IF;
    END LOOP;
    WITH j AS (UPDATE crm.jobs x SET contact_id = keep WHERE x.account_id = k.account_id AND x.contact_id = merge RETURNING x.id),
         i AS (UPDATE crm.invoices x SET contact_id = keep WHERE x.account_id = k.account_id AND x.contact_id = merge RETURNING x.id),
         s AS (UPDATE crm.contact_sources x SET contact_id = keep WHERE x.account_id = k.account_id AND x.contact_id = merge RETURNING x.id)
    SELECT jsonb_build_object('jobs', coalesce((SELECT jsonb_agg(id ORDER BY id) FROM j), '[]'),
                              'invoices', coalesce((SELECT jsonb_agg(id ORDER BY id) FROM i), '[]'),
                              'sources', coalesce((SELECT jsonb_agg(id ORDER BY id) FROM s), '[]'))
    INTO moved;
    IF filled <> '{}' THEN
        UPDATE crm.contacts c
        SET first_name = CASE WHEN filled ? 'first_name' THEN filled ->> 'first_name' ELSE c.first_name END,
            last_name = CASE WHEN filled ? 'last_name' THEN filled ->> 'last_name' ELSE c.last_name END,
            email = CASE WHEN filled ? 'email' THEN filled ->> 'email' ELSE c.email END,
            phone = CASE WHEN filled ? 'phone' THEN filled ->> 'phone' ELSE c.phone END,
            address = CASE WHEN filled ? 'address' THEN filled ->> 'address' ELSE c.address END
        WHERE c.id = keep;
    END IF;
    DELETE FROM crm.contacts c WHERE c.id = merge;
    INSERT INTO crm.contact_merges (account_id, kept_contact_id, merged_contact_id, kept_before, kept_after, merged_row,
                                    filled, conflicts, moved, merged_by)
    VALUES (k.account_id, keep, merge, kj, (SELECT to_jsonb(c) FROM crm.contacts c WHERE c.id = keep), mj,
            filled, conflicts, moved, crm._actor())
    RETURNING id INTO merge_id;
    RETURN merge_id;
END
$$;

-- Undo a merge exactly: the merged contact comes back as it was (same id, every column), the
-- kept one returns to its state before the merge, and every reference the merge moved goes
-- back. Refused (55000) when one of the kept contact's merged fields changed after the merge
-- (undoing would lose that change) or the merge was already undone.
CREATE FUNCTION crm.unmerge_contacts(merge_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r crm.contact_merges;
    now_kept jsonb;
BEGIN
    SELECT * INTO r FROM crm.contact_merges x
    WHERE x.id = $1 AND (x.account_id = crm.current_account_id() OR crm._caller_is_privileged())
    FOR UPDATE;
    IF r.id IS NULL THEN
        RAISE EXCEPTION 'no contact merge %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    IF r.unmerged_at IS NOT NULL THEN
        RAISE EXCEPTION 'contact merge % was already undone', $1 USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Changed since the merge means one of the merged fields (or the account): coordinates and
    -- updated_at written by background geocoding do not count (the restore puts them back too)
    SELECT to_jsonb(c) INTO now_kept FROM crm.contacts c WHERE c.id = r.kept_contact_id FOR UPDATE;
    IF now_kept IS NULL OR EXISTS (
        SELECT 1 FROM unnest(crm._contact_merge_fields() || 'account_id'::text) f
        WHERE now_kept -> f IS DISTINCT FROM r.kept_after -> f) THEN
        RAISE EXCEPTION 'contact % changed (or was deleted) after the merge: undoing it would lose that', r.kept_contact_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- rows as they were, updated_at and coordinates included: the triggers that would stamp
    -- or reset them let the restoring definer through
    PERFORM set_config('crm.restoring_rows', 'on', true);
    PERFORM set_config('crm.applying_geocode', 'on', true);
    INSERT INTO crm.contacts SELECT * FROM jsonb_populate_record(NULL::crm.contacts, r.merged_row);
    UPDATE crm.contacts c SET (first_name, last_name, email, phone, address, latitude, longitude, geocoded_at,
                               geocode_status, created_at, updated_at)
        = (SELECT b.first_name, b.last_name, b.email, b.phone, b.address, b.latitude, b.longitude, b.geocoded_at,
                  b.geocode_status, b.created_at, b.updated_at
           FROM jsonb_populate_record(NULL::crm.contacts, r.kept_before) b)
    WHERE c.id = r.kept_contact_id;
    UPDATE crm.jobs x SET contact_id = r.merged_contact_id
    WHERE x.account_id = r.account_id AND x.contact_id = r.kept_contact_id
      AND x.id IN (SELECT (jsonb_array_elements_text(r.moved -> 'jobs'))::uuid);
    UPDATE crm.invoices x SET contact_id = r.merged_contact_id
    WHERE x.account_id = r.account_id AND x.contact_id = r.kept_contact_id
      AND x.id IN (SELECT (jsonb_array_elements_text(r.moved -> 'invoices'))::uuid);
    UPDATE crm.contact_sources x SET contact_id = r.merged_contact_id
    WHERE x.account_id = r.account_id AND x.contact_id = r.kept_contact_id
      AND x.id IN (SELECT (jsonb_array_elements_text(r.moved -> 'sources'))::uuid);
    PERFORM set_config('crm.restoring_rows', 'off', true);
    PERFORM set_config('crm.applying_geocode', 'off', true);
    UPDATE crm.contact_merges x SET unmerged_at = now(), unmerged_by = crm._actor() WHERE x.id = r.id;
END
$$;

-- Privileges: sql/security.sql.
