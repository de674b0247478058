-- Contact sync (issue 14): Google People and Microsoft Graph address books come into
-- crm.contacts. The task kind is contacts.sync (src/contacts/sync.rs, one run per connection:
-- a full listing, then incremental ones with the provider's sync token or delta link); this
-- file holds its state and the apply step. Every listed person maps to one CRM contact through
-- crm.contact_sources; a new person whose email or phone matches an existing contact of the
-- account is linked to it instead of becoming a second one.

-- What the sync last read of each person (so a value changed upstream is told apart from one
-- the CRM user edited since: only the former overwrites), which listing it came from, and
-- the contact the sync created for it, if it did (a removal upstream may delete that contact
-- only while the source still points at it: a merge moves the source, an unmerge moves it back).
ALTER TABLE crm.contact_sources
    ADD COLUMN feed text NOT NULL DEFAULT 'contacts'
        CHECK (feed IN ('contacts', 'connections', 'other_contacts')),
    ADD COLUMN data jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN created_contact_id uuid;

-- Matching: a contact is found by its email key (Gmail's dots and +suffix ignored) and by the
-- last 7 digits of its phone (then compared in E.164), within its account.
CREATE INDEX contacts_email_key_idx ON crm.contacts (account_id, crm._email_key(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone_tail_idx ON crm.contacts (account_id, right(regexp_replace(phone, '\D', '', 'g'), 7))
    WHERE phone IS NOT NULL;

-- Each contacts connection's sync: per listing (feed) where it goes on — {sync, page,
-- full_started_at} — and what the last run did.
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

-- Remove sources (the person was deleted upstream, or is missing from a complete full
-- listing) and the contacts the sync created for them — only while such a contact is exactly
-- what the sync last wrote (no edit in the CRM, nothing filled from elsewhere) and nothing else
-- holds it: no job, no invoice, no other source, no merge into it that is not undone. Returns
-- how many contacts were deleted.
CREATE FUNCTION crm._drop_contact_sources(account uuid, source_ids uuid[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    candidates uuid[];
    n integer;
BEGIN
    WITH gone AS (
        DELETE FROM crm.contact_sources s WHERE s.account_id = $1 AND s.id = ANY ($2)
        RETURNING s.contact_id, s.created_contact_id, s.data
    )
    SELECT array_agg(c.id) INTO candidates
    FROM gone g JOIN crm.contacts c ON c.id = g.contact_id AND c.account_id = $1
    WHERE g.created_contact_id = g.contact_id
      AND (c.first_name, c.last_name, c.email, c.phone, c.address)
          IS NOT DISTINCT FROM (g.data ->> 'first_name', g.data ->> 'last_name', g.data ->> 'email', g.data ->> 'phone',
                                g.data ->> 'address');
    IF candidates IS NULL THEN
        RETURN 0;
    END IF;
    -- Locked first, checked after: a job being inserted for one of them holds a key-share lock
    -- on it, so the lock waits for that insert, and the checks below (a new statement, a new
    -- snapshot) see its job.
    PERFORM 1 FROM crm.contacts c WHERE c.id = ANY (candidates) ORDER BY c.id FOR UPDATE;
    WITH deleted AS (
        DELETE FROM crm.contacts c
        WHERE c.account_id = $1 AND c.id = ANY (candidates)
          AND NOT EXISTS (SELECT 1 FROM crm.jobs j WHERE j.account_id = $1 AND j.contact_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM crm.invoices i WHERE i.account_id = $1 AND i.contact_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM crm.contact_sources o WHERE o.account_id = $1 AND o.contact_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM crm.contact_merges m
                          WHERE m.account_id = $1 AND m.kept_contact_id = c.id AND m.unmerged_at IS NULL)
        RETURNING 1
    )
    SELECT count(*) INTO n FROM deleted;
    RETURN n;
END
$$;

-- Apply one contacts.sync run: {people: [{feed, external_id, etag, deleted, first_name,
-- last_name, email, phone, address, company, email_keys, phone_keys}], cursors: {feed: cursor},
-- completed_full: [{feed, since}] (full listings read whole in this run), region, complete
-- (every listing read to its end: synced_at moves), more (stopped at a page: the rest follows
-- at once), connections}.
--  * removed upstream: the source goes; the contact too if the sync created it, it is as the
--    sync left it, and nothing else holds it (jobs, invoices, another source, a merge);
--  * known (linked) and changed: each field changed upstream since the last read overwrites
--    the contact's; a field empty on the contact is filled; other local edits stay;
--  * new: linked to the account's contact with the same email or phone key, else a new
--    contact; fields empty on a matched contact are filled;
--  * a complete full listing: sources of that listing it no longer has count as removed.
-- One apply per account at a time (two connections' runs must not both create a person).
CREATE FUNCTION crm._apply_contact_sync(account uuid, payload jsonb, result jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    conn uuid := (payload ->> 'connection_id')::uuid;
    prov text;
    region text := coalesce(nullif(result ->> 'region', ''), 'US');
    stats jsonb := '{}';
    n_created integer := 0;
    n_linked integer := 0;
    n_updated integer := 0;
    n_unchanged integer := 0;
    n_removed integer := 0;
    n_deleted integer := 0;
    gone uuid[];
    f record;
BEGIN
    IF result ? 'connections' AND jsonb_array_length(result -> 'connections') > 0 THEN
        PERFORM crm._record_connection_updates((result -> 'connections')::json);
    END IF;
    SELECT p.provider INTO prov FROM crm.contact_providers p WHERE p.id = conn AND p.account_id = account;
    IF NOT FOUND OR NOT (result ? 'cursors') THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7463, hashtext(account::text));

    -- scratch tables of this transaction (several runs may apply in one: made once)
    IF to_regclass('pg_temp.contact_listing') IS NULL THEN
    CREATE TEMP TABLE contact_listing (
        n bigint, feed text, external_id text, etag text, deleted boolean, first_name text, last_name text,
        email text, phone text, address text, company text, email_keys text[], phone_keys text[],
        source_id uuid, contact_id uuid, known_etag text, known jsonb, created boolean) ON COMMIT DROP;
    CREATE TEMP TABLE contact_listing_keys (n bigint, kind char, key text, tail text) ON COMMIT DROP;
    CREATE TEMP TABLE contact_listing_new (n bigint, leader bigint, id uuid) ON COMMIT DROP;
    END IF;
    TRUNCATE contact_listing;
    INSERT INTO contact_listing (n, feed, external_id, etag, deleted, first_name, last_name, email, phone, address,
                                 company, email_keys, phone_keys)
    SELECT x.n, p.feed, p.external_id, p.etag, coalesce(p.deleted, false), p.first_name, p.last_name, p.email, p.phone,
           p.address, p.company, coalesce(p.email_keys, '{}'), coalesce(p.phone_keys, '{}')
    FROM jsonb_array_elements(result -> 'people') WITH ORDINALITY AS x(j, n),
         jsonb_to_record(x.j) AS p(feed text, external_id text, etag text, deleted boolean, first_name text,
                                   last_name text, email text, phone text, address text, company text,
                                   email_keys text[], phone_keys text[]);
    -- a person listed twice in one run (changed between two pages): the later listing wins
    DELETE FROM contact_listing a USING contact_listing b WHERE a.external_id = b.external_id AND a.n < b.n;
    UPDATE contact_listing l SET source_id = s.id, contact_id = s.contact_id, known_etag = s.etag, known = s.data
    FROM crm.contact_sources s WHERE s.connection_id = conn AND s.external_id = l.external_id;

    -- Removed upstream.
    gone := ARRAY(SELECT source_id FROM contact_listing WHERE deleted AND source_id IS NOT NULL);
    n_removed := cardinality(gone);
    IF n_removed > 0 THEN
        n_deleted := crm._drop_contact_sources(account, gone);
    END IF;

    -- Known and unchanged (a full listing lists everyone again): only seen.
    UPDATE crm.contact_sources s SET last_seen_at = clock_timestamp()
    FROM contact_listing l
    WHERE s.id = l.source_id AND NOT l.deleted AND l.etag IS NOT NULL AND l.etag = l.known_etag;
    GET DIAGNOSTICS n_unchanged = ROW_COUNT;

    -- Known and changed: what changed upstream overwrites; empty fields are filled.
    UPDATE crm.contacts c
    SET first_name = CASE WHEN l.first_name IS NOT NULL AND (c.first_name IS NULL OR l.first_name IS DISTINCT FROM l.known ->> 'first_name')
                          THEN l.first_name ELSE c.first_name END,
        last_name = CASE WHEN l.last_name IS NOT NULL AND (c.last_name IS NULL OR l.last_name IS DISTINCT FROM l.known ->> 'last_name')
                         THEN l.last_name ELSE c.last_name END,
        email = CASE WHEN l.email IS NOT NULL AND (c.email IS NULL OR l.email IS DISTINCT FROM l.known ->> 'email')
                     THEN l.email ELSE c.email END,
        phone = CASE WHEN l.phone IS NOT NULL AND (c.phone IS NULL OR l.phone IS DISTINCT FROM l.known ->> 'phone')
                     THEN l.phone ELSE c.phone END,
        address = CASE WHEN l.address IS NOT NULL AND (c.address IS NULL OR l.address IS DISTINCT FROM l.known ->> 'address')
                       THEN l.address ELSE c.address END
    FROM contact_listing l
    WHERE c.id = l.contact_id AND c.account_id = account AND l.source_id IS NOT NULL AND NOT l.deleted
      AND (l.etag IS NULL OR l.etag IS DISTINCT FROM l.known_etag);
    UPDATE crm.contact_sources s
    SET etag = l.etag, last_seen_at = clock_timestamp(),
        data = jsonb_strip_nulls(jsonb_build_object('first_name', l.first_name, 'last_name', l.last_name, 'email', l.email,
                                                    'phone', l.phone, 'address', l.address, 'company', l.company))
    FROM contact_listing l
    WHERE s.id = l.source_id AND NOT l.deleted AND (l.etag IS NULL OR l.etag IS DISTINCT FROM l.known_etag);
    GET DIAGNOSTICS n_updated = ROW_COUNT;

    -- New to this connection, set-based (a first sync brings thousands): each is linked to
    -- the account's contact with one of its email keys (the oldest), else with one of its
    -- phone keys unless that contact has another email (an office number shared by
    -- colleagues is not one person); the rest become contacts, those sharing their first key
    -- within the listing becoming one.
    TRUNCATE contact_listing_keys;
    INSERT INTO contact_listing_keys
    SELECT l.n, 'e', k, NULL FROM contact_listing l, unnest(l.email_keys) k
    WHERE l.source_id IS NULL AND NOT l.deleted
    UNION ALL
    SELECT l.n, 'p', k, right(k, 7) FROM contact_listing l, unnest(l.phone_keys) k
    WHERE l.source_id IS NULL AND NOT l.deleted;
    ANALYZE contact_listing, contact_listing_keys;
    WITH by_email AS (
        SELECT DISTINCT ON (k.n) k.n, c.id
        FROM contact_listing_keys k JOIN crm.contacts c
          ON c.account_id = account AND c.email IS NOT NULL AND crm._email_key(c.email) = k.key
        WHERE k.kind = 'e'
        ORDER BY k.n, c.created_at, c.id
    ), by_phone AS (
        SELECT DISTINCT ON (k.n) k.n, c.id
        FROM contact_listing_keys k JOIN crm.contacts c
          ON c.account_id = account AND c.phone IS NOT NULL AND right(regexp_replace(c.phone, '\D', '', 'g'), 7) = k.tail
        JOIN contact_listing l ON l.n = k.n
        WHERE k.kind = 'p' AND crm._phone_key(c.phone, region) = k.key
          AND (c.email IS NULL OR cardinality(l.email_keys) = 0 OR crm._email_key(c.email) = ANY (l.email_keys))
        ORDER BY k.n, c.created_at, c.id
    )
    UPDATE contact_listing l SET contact_id = coalesce(e.id, p.id)
    FROM contact_listing x LEFT JOIN by_email e ON e.n = x.n LEFT JOIN by_phone p ON p.n = x.n
    WHERE l.n = x.n AND l.source_id IS NULL AND NOT l.deleted AND coalesce(e.id, p.id) IS NOT NULL;
    GET DIAGNOSTICS n_linked = ROW_COUNT;
    -- the rest: one new contact per first key (a person with no key is its own)
    TRUNCATE contact_listing_new;
    INSERT INTO contact_listing_new
    SELECT l.n, min(l.n) OVER (PARTITION BY coalesce('e:' || l.email_keys[1], 'p:' || l.phone_keys[1], 'n:' || l.n)), NULL
    FROM contact_listing l
    WHERE l.source_id IS NULL AND l.contact_id IS NULL AND NOT l.deleted
      AND coalesce(l.first_name, l.last_name, l.email, l.phone, l.company) IS NOT NULL;
    UPDATE contact_listing_new SET id = gen_random_uuid() WHERE n = leader;
    UPDATE contact_listing_new m SET id = x.id FROM contact_listing_new x WHERE x.n = m.leader AND m.n <> m.leader;
    INSERT INTO crm.contacts (id, account_id, first_name, last_name, email, phone, address)
    SELECT w.id, account, coalesce(l.first_name, CASE WHEN l.last_name IS NULL THEN l.company END), l.last_name,
           l.email, l.phone, l.address
    FROM contact_listing_new w JOIN contact_listing l ON l.n = w.n
    WHERE w.n = w.leader
    ORDER BY w.n;
    GET DIAGNOSTICS n_created = ROW_COUNT;
    UPDATE contact_listing l SET contact_id = w.id, created = (w.n = w.leader)
    FROM contact_listing_new w WHERE w.n = l.n;
    n_linked := n_linked + (SELECT count(*) FROM contact_listing_new w WHERE w.n <> w.leader);
    -- a linked contact's empty fields take the person's values (the first person's, when several)
    UPDATE crm.contacts c
    SET first_name = coalesce(c.first_name, l.first_name), last_name = coalesce(c.last_name, l.last_name),
        email = coalesce(c.email, l.email), phone = coalesce(c.phone, l.phone), address = coalesce(c.address, l.address)
    FROM (SELECT DISTINCT ON (x.contact_id) x.* FROM contact_listing x
          WHERE x.source_id IS NULL AND NOT x.deleted AND x.contact_id IS NOT NULL AND NOT coalesce(x.created, false)
          ORDER BY x.contact_id, x.n) l
    WHERE c.id = l.contact_id AND c.account_id = account
      AND (c.first_name IS NULL AND l.first_name IS NOT NULL OR c.last_name IS NULL AND l.last_name IS NOT NULL
           OR c.email IS NULL AND l.email IS NOT NULL OR c.phone IS NULL AND l.phone IS NOT NULL
           OR c.address IS NULL AND l.address IS NOT NULL);
    INSERT INTO crm.contact_sources (account_id, contact_id, connection_id, provider, external_id, etag, feed, data,
                                     created_contact_id, last_seen_at)
    SELECT account, l.contact_id, conn, prov, l.external_id, l.etag, l.feed,
           jsonb_strip_nulls(jsonb_build_object('first_name', l.first_name, 'last_name', l.last_name, 'email', l.email,
                                                'phone', l.phone, 'address', l.address, 'company', l.company)),
           CASE WHEN l.created THEN l.contact_id END, clock_timestamp()
    FROM contact_listing l
    WHERE l.source_id IS NULL AND NOT l.deleted AND l.contact_id IS NOT NULL
    ON CONFLICT (connection_id, external_id) DO NOTHING;

    -- Complete full listings: whoever they no longer list was removed while the sync token was
    -- not looking (or before it expired). Seen times are the clock's, not the transaction's:
    -- a listing's start is taken by the runner, after a caller's transaction began.
    FOR f IN SELECT x ->> 'feed' AS feed, to_timestamp((x ->> 'since')::double precision) AS since
             FROM jsonb_array_elements(coalesce(result -> 'completed_full', '[]')) x LOOP
        gone := ARRAY(SELECT s.id FROM crm.contact_sources s
                      WHERE s.connection_id = conn AND s.account_id = account AND s.feed = f.feed
                        AND s.last_seen_at < f.since);
        IF cardinality(gone) > 0 THEN
            n_removed := n_removed + cardinality(gone);
            n_deleted := n_deleted + crm._drop_contact_sources(account, gone);
        END IF;
    END LOOP;

    stats := jsonb_build_object('listed', (SELECT count(*) FROM contact_listing), 'created', n_created,
                                'linked', n_linked, 'updated', n_updated, 'unchanged', n_unchanged,
                                'removed', n_removed, 'deleted_contacts', n_deleted,
                                'more', coalesce((result ->> 'more')::boolean, false));
    INSERT INTO crm.contact_sync AS s (connection_id, account_id, cursors, synced_at, full_synced_at, last_result)
    VALUES (conn, account, result -> 'cursors', CASE WHEN coalesce((result ->> 'complete')::boolean, false) THEN now() END,
            CASE WHEN jsonb_array_length(coalesce(result -> 'completed_full', '[]')) > 0 THEN now() END, stats)
    ON CONFLICT (connection_id) DO UPDATE
    SET cursors = EXCLUDED.cursors, synced_at = coalesce(EXCLUDED.synced_at, s.synced_at),
        full_synced_at = coalesce(EXCLUDED.full_synced_at, s.full_synced_at), last_result = stats;
    UPDATE crm.contact_providers p SET last_synced_at = now() WHERE p.id = conn;
    -- a bounded run stopped at a page: the rest follows at once
    IF coalesce((result ->> 'more')::boolean, false) THEN
        PERFORM crm.enqueue_task('contacts.sync', jsonb_build_object('connection_id', conn), 'sync:' || conn, now(), account);
    END IF;
END
$$;

-- Sync now: a contacts.sync task for each active contacts connection of the caller's account
-- (the one named, when connection_id is given), coalesced per connection. Returns the task ids
-- (one per connection).
CREATE FUNCTION crm.sync_contacts(connection_id uuid DEFAULT NULL) RETURNS SETOF uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT crm.enqueue_task('contacts.sync', jsonb_build_object('connection_id', p.id), 'sync:' || p.id, now(), p.account_id)
    FROM crm.contact_providers p
    WHERE p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL
      AND ($1 IS NULL OR p.id = $1)
      AND (p.account_id = crm.current_account_id() OR crm._caller_is_privileged())
$$;

-- The workers' schedule: contacts connections not synced within crm.contacts_sync_interval
-- (default 1 hour) and with no sync queued get one. Returns how many were queued.
CREATE FUNCTION crm._schedule_contact_syncs() RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT p.id, p.account_id FROM crm.contact_providers p LEFT JOIN crm.contact_sync s ON s.connection_id = p.id
        WHERE p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL
          AND (s.synced_at IS NULL OR s.synced_at < now() - crm._setting_interval('crm.contacts_sync_interval', '1 hour'))
          AND NOT EXISTS (SELECT 1 FROM crm.integration_tasks t
                          WHERE t.kind = 'contacts.sync' AND t.dedupe_key = 'sync:' || p.id
                            AND t.account_id = p.account_id AND t.status IN ('pending', 'processing'))
        LIMIT 1000
    )
    SELECT count(crm.enqueue_task('contacts.sync', jsonb_build_object('connection_id', id), 'sync:' || id, now(),
                                  account_id))::integer
    FROM due
$$;

-- Privileges: sql/security.sql.
