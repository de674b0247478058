-- Google Maps (issue 13): coordinates of jobs and contacts (geocoded in the background, one
-- request per distinct address and account, cached 30 days), interactive geocoding, travel
-- times through the Routes API with a cache, technicians' positions, a job's ETA, dispatch
-- suggestions and a technician's planned day. Every paid request is counted per account, API
-- and day (crm.maps_usage); background work stops at crm.maps_daily_budget.
-- The Rust half is src/integrations/google/maps/.

------------------------------------------------------------------------------------------------
-- Coordinates on jobs and contacts. Server-owned: a tenant's write cannot set them (the guard
-- trigger), the maps.geocode task does.
------------------------------------------------------------------------------------------------
ALTER TABLE crm.jobs
    ADD COLUMN latitude double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD COLUMN geocoded_at timestamptz,
    ADD COLUMN geocode_status text CHECK (geocode_status IN ('pending', 'ok', 'not_found', 'failed'));
ALTER TABLE crm.contacts
    ADD COLUMN latitude double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD COLUMN geocoded_at timestamptz,
    ADD COLUMN geocode_status text CHECK (geocode_status IN ('pending', 'ok', 'not_found', 'failed'));
-- The rows a geocode answer lands on: pending ones of one account at one normalised address.
CREATE INDEX jobs_geocode_pending_idx ON crm.jobs (account_id, crm._address_key(address))
    WHERE geocode_status = 'pending';
CREATE INDEX contacts_geocode_pending_idx ON crm.contacts (account_id, crm._address_key(address))
    WHERE geocode_status = 'pending';

------------------------------------------------------------------------------------------------
-- Caches (not tenant data: no account, no tenant access; read through the functions below).
-- Sharing them across accounts is what makes the second lookup of an address free.
------------------------------------------------------------------------------------------------
CREATE TABLE crm.geocode_cache (
    key               text PRIMARY KEY,     -- crm._address_key(address), or '@lat,lng' for reverse
    query             text NOT NULL,
    status            text NOT NULL CHECK (status IN ('ok', 'not_found')),
    latitude          double precision,
    longitude         double precision,
    formatted_address text,
    place_id          text,
    location_type     text,
    partial_match     boolean NOT NULL DEFAULT false,
    fetched_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX geocode_cache_expires_idx ON crm.geocode_cache (expires_at);

-- Travel times by rounded points (4 decimals) and bucket (UTC hour, +24 on weekends).
CREATE TABLE crm.travel_time_cache (
    origin_lat      double precision NOT NULL,
    origin_lng      double precision NOT NULL,
    destination_lat double precision NOT NULL,
    destination_lng double precision NOT NULL,
    bucket          smallint NOT NULL CHECK (bucket BETWEEN 0 AND 47),
    distance_m      double precision,
    duration_s      double precision,
    condition       text NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (origin_lat, origin_lng, destination_lat, destination_lng, bucket)
);
CREATE INDEX travel_time_cache_expires_idx ON crm.travel_time_cache (expires_at);

-- Not tenant data: no tenant policy (and no grant); service_role sees them, the definer
-- functions and the workers use them.
ALTER TABLE crm.geocode_cache ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.travel_time_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON crm.geocode_cache FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
CREATE POLICY service_role_all ON crm.travel_time_cache FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));

-- Every paid request, per account, API and UTC day, at list price (USD). account_id NULL:
-- a server-side call made without an account.
CREATE TABLE crm.maps_usage (
    account_id uuid REFERENCES crm.accounts (id) ON DELETE CASCADE,
    day        date NOT NULL,
    api        text NOT NULL CHECK (api IN ('geocode', 'reverse_geocode', 'route_matrix')),
    requests   bigint NOT NULL DEFAULT 0,
    elements   bigint NOT NULL DEFAULT 0,
    cost_usd   numeric(14, 4) NOT NULL DEFAULT 0,
    CONSTRAINT maps_usage_key UNIQUE NULLS NOT DISTINCT (account_id, day, api)
);
ALTER TABLE crm.maps_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.maps_usage FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.maps_usage FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.maps_usage', '');

------------------------------------------------------------------------------------------------
-- Technicians' positions: the latest per user, and a history thinned to one point per
-- crm.location_history_interval and kept for crm.location_retention. Written only through
-- crm.report_location, by the technician themselves.
------------------------------------------------------------------------------------------------
CREATE TABLE crm.technician_positions (
    user_id     uuid PRIMARY KEY,
    account_id  uuid NOT NULL,
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    accuracy_m  real,
    recorded_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT technician_positions_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX technician_positions_account_idx ON crm.technician_positions (account_id);
CREATE TABLE crm.technician_locations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid NOT NULL,
    account_id  uuid NOT NULL,
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    accuracy_m  real,
    recorded_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT technician_locations_user_fk FOREIGN KEY (account_id, user_id)
        REFERENCES crm.users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX technician_locations_user_idx ON crm.technician_locations (user_id, recorded_at DESC);
CREATE INDEX technician_locations_recorded_idx ON crm.technician_locations (recorded_at);
ALTER TABLE crm.technician_positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.technician_locations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.technician_positions FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.technician_positions FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
CREATE POLICY tenant_isolation ON crm.technician_locations FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.technician_locations FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.technician_positions', '');
SELECT pg_catalog.pg_extension_config_dump('crm.technician_locations', '');

------------------------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------------------------

-- List prices (USD) per request (geocoding) or element (route matrix, traffic-aware:
-- "Advanced" pricing), as published when this was written; the usage table keeps the cost
-- as it was counted.
CREATE FUNCTION crm._maps_price(api text) RETURNS numeric
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE $1 WHEN 'geocode' THEN 0.005 WHEN 'reverse_geocode' THEN 0.005 WHEN 'route_matrix' THEN 0.010 END
$$;

CREATE FUNCTION crm._maps_count(account uuid, api text, requests bigint, elements bigint) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO crm.maps_usage AS u (account_id, day, api, requests, elements, cost_usd)
    VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2, $3, $4,
            crm._maps_price($2) * CASE WHEN $2 = 'route_matrix' THEN $4 ELSE $3 END)
    ON CONFLICT ON CONSTRAINT maps_usage_key DO UPDATE
    SET requests = u.requests + EXCLUDED.requests, elements = u.elements + EXCLUDED.elements,
        cost_usd = u.cost_usd + EXCLUDED.cost_usd
$$;

-- A duration setting (an int GUC with a unit: SHOW gives '30d', '7d', '30s') as an interval;
-- `fallback` while the library is not loaded in this session (the setting is then unknown).
CREATE FUNCTION crm._setting_interval(name text, fallback interval) RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(nullif(current_setting($1, true), '')::interval, $2)
$$;

-- A fresh cache entry for `key`, as the json a geocode answer applies (NULL when none).
CREATE FUNCTION crm._geocode_cached(key text) RETURNS json
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT json_build_object('status', c.status, 'latitude', c.latitude, 'longitude', c.longitude,
                             'formatted_address', c.formatted_address, 'place_id', c.place_id,
                             'location_type', c.location_type, 'partial_match', c.partial_match,
                             'fetched_at', c.fetched_at)
    FROM crm.geocode_cache c WHERE c.key = $1 AND c.expires_at > now()
$$;

-- Store an answer (status ok or not_found); an older answer never replaces a newer one.
CREATE FUNCTION crm._geocode_store(key text, query text, answer jsonb) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO crm.geocode_cache AS c (key, query, status, latitude, longitude, formatted_address, place_id,
                                        location_type, partial_match, fetched_at, expires_at)
    SELECT $1, left($2, 500), $3 ->> 'status', ($3 ->> 'latitude')::float8, ($3 ->> 'longitude')::float8,
           $3 ->> 'formatted_address', $3 ->> 'place_id', $3 ->> 'location_type',
           coalesce(($3 ->> 'partial_match')::boolean, false), f.at,
           f.at + CASE WHEN $3 ->> 'status' = 'ok'
                       THEN crm._setting_interval('crm.geocode_cache_ttl', '30 days')
                       ELSE crm._setting_interval('crm.geocode_not_found_ttl', '1 day') END
    FROM (SELECT coalesce(($3 ->> 'fetched_at')::timestamptz, now()) AS at) f
    WHERE $3 ->> 'status' IN ('ok', 'not_found')
    ON CONFLICT (key) DO UPDATE
    SET query = EXCLUDED.query, status = EXCLUDED.status, latitude = EXCLUDED.latitude,
        longitude = EXCLUDED.longitude, formatted_address = EXCLUDED.formatted_address,
        place_id = EXCLUDED.place_id, location_type = EXCLUDED.location_type,
        partial_match = EXCLUDED.partial_match, fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at
    WHERE c.fetched_at < EXCLUDED.fetched_at
$$;

------------------------------------------------------------------------------------------------
-- Triggers: an address written queues its geocoding (or takes the cached answer at once).
------------------------------------------------------------------------------------------------

-- 1. The coordinates are the server's: on an insert, or when the address changes, they are
-- cleared and the row is pending; any other update keeps them as they were. The server's own
-- writes (crm._apply_geocode, crm.geocode_missing) set crm.applying_geocode and run as a
-- superuser or BYPASSRLS role (the definer, or the worker): only those pass. Invoker, so
-- that current_user is the writer (a tenant can set the setting, not become that role).
CREATE FUNCTION crm._geocode_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text;
BEGIN
    IF current_setting('crm.applying_geocode', true) = 'on'
       AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = current_user AND (r.rolsuper OR r.rolbypassrls)) THEN
        RETURN NEW;
    END IF;
    -- an update that leaves the address as it was costs no key at all
    IF TG_OP = 'UPDATE' AND NEW.address IS NOT DISTINCT FROM OLD.address THEN
        NEW.latitude := OLD.latitude;
        NEW.longitude := OLD.longitude;
        NEW.geocoded_at := OLD.geocoded_at;
        NEW.geocode_status := OLD.geocode_status;
        RETURN NEW;
    END IF;
    key := crm._address_key(NEW.address);
    IF TG_OP = 'INSERT' OR key IS DISTINCT FROM crm._address_key(OLD.address) THEN
        NEW.latitude := NULL;
        NEW.longitude := NULL;
        NEW.geocoded_at := NULL;
        NEW.geocode_status := CASE WHEN coalesce(key, '') <> '' AND length(NEW.address) <= 500 THEN 'pending' END;
    ELSE
        NEW.latitude := OLD.latitude;
        NEW.longitude := OLD.longitude;
        NEW.geocoded_at := OLD.geocoded_at;
        NEW.geocode_status := OLD.geocode_status;
    END IF;
    RETURN NEW;
END
$$;

-- 2. A pending row whose address is cached takes the answer now; otherwise one maps.geocode
-- task per account and normalised address is queued (coalesced: 100 jobs at one address are
-- one request). Definer: the cache and the task queue are not the tenant's.
CREATE FUNCTION crm._geocode_lookup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text := crm._address_key(NEW.address);
    hit json;
BEGIN
    IF TG_OP = 'UPDATE' AND key IS NOT DISTINCT FROM crm._address_key(OLD.address)
       AND OLD.geocode_status = 'pending' THEN
        RETURN NEW;  -- already queued
    END IF;
    hit := crm._geocode_cached(key);
    IF hit IS NOT NULL THEN
        NEW.latitude := (hit ->> 'latitude')::float8;
        NEW.longitude := (hit ->> 'longitude')::float8;
        -- now, not the cache entry's time: that would tell this tenant when another account
        -- looked the address up
        NEW.geocoded_at := now();
        NEW.geocode_status := hit ->> 'status';
    ELSE
        PERFORM crm.enqueue_task('maps.geocode', jsonb_build_object('address', NEW.address),
                                 'geocode:' || md5(key), now(), NEW.account_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER geocode_1_guard BEFORE INSERT OR UPDATE ON crm.jobs
    FOR EACH ROW EXECUTE FUNCTION crm._geocode_guard();
CREATE TRIGGER geocode_2_lookup BEFORE INSERT OR UPDATE ON crm.jobs
    FOR EACH ROW WHEN (NEW.geocode_status = 'pending') EXECUTE FUNCTION crm._geocode_lookup();
CREATE TRIGGER geocode_1_guard BEFORE INSERT OR UPDATE ON crm.contacts
    FOR EACH ROW EXECUTE FUNCTION crm._geocode_guard();
CREATE TRIGGER geocode_2_lookup BEFORE INSERT OR UPDATE ON crm.contacts
    FOR EACH ROW WHEN (NEW.geocode_status = 'pending') EXECUTE FUNCTION crm._geocode_lookup();

-- maps.geocode's context (in the claim's transaction): a fresh cache entry, else the day's
-- budget — a request reserved here is counted, so two workers cannot both take the last one.
CREATE FUNCTION crm._geocode_task_context(account uuid, payload jsonb) RETURNS json
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hit json := crm._geocode_cached(crm._address_key(payload ->> 'address'));
    budget bigint := coalesce(nullif(current_setting('crm.maps_daily_budget', true), '')::bigint, 0);
    ok boolean;
BEGIN
    IF hit IS NULL THEN
        INSERT INTO crm.maps_usage AS u (account_id, day, api, requests, cost_usd)
        VALUES (account, (now() AT TIME ZONE 'UTC')::date, 'geocode', 1, crm._maps_price('geocode'))
        ON CONFLICT ON CONSTRAINT maps_usage_key DO UPDATE
        SET requests = u.requests + 1, cost_usd = u.cost_usd + crm._maps_price('geocode')
        WHERE budget = 0 OR u.requests < budget
        RETURNING true INTO ok;
        ok := coalesce(ok, false) AND (budget = 0 OR budget >= 1);
    END IF;
    RETURN json_build_object('cached', hit, 'budget_ok', coalesce(ok, true),
        'renews_in', extract(epoch FROM (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day')
                                         - (now() AT TIME ZONE 'UTC')) + 1);
END
$$;

-- maps.geocode's answer: cached, and written to the account's pending jobs and contacts at
-- that address (failed: marked so, and left for crm.geocode_missing to queue again).
CREATE FUNCTION crm._apply_geocode(account uuid, payload jsonb, answer jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text := crm._address_key(payload ->> 'address');
    st text := answer ->> 'status';
    at timestamptz := coalesce((answer ->> 'fetched_at')::timestamptz, now());
BEGIN
    PERFORM crm._geocode_store(key, payload ->> 'address', answer);
    PERFORM set_config('crm.applying_geocode', 'on', true);
    UPDATE crm.jobs SET latitude = (answer ->> 'latitude')::float8, longitude = (answer ->> 'longitude')::float8,
                        geocoded_at = at, geocode_status = st
    WHERE account_id = account AND geocode_status = 'pending' AND crm._address_key(address) = key;
    UPDATE crm.contacts SET latitude = (answer ->> 'latitude')::float8, longitude = (answer ->> 'longitude')::float8,
                            geocoded_at = at, geocode_status = st
    WHERE account_id = account AND geocode_status = 'pending' AND crm._address_key(address) = key;
    PERFORM set_config('crm.applying_geocode', 'off', true);
END
$$;

-- Queue geocoding for rows with an address but no coordinates (made before 0.5.0, failed, or
-- whose task gave up): up to `limit` rows of the caller's account (every account for the
-- server), one task per distinct address. Returns how many rows are now pending.
CREATE FUNCTION crm.geocode_missing("limit" integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acc uuid := crm.current_account_id();
    privileged boolean := crm._caller_is_privileged();
    n integer := 0;
    m integer;
BEGIN
    IF $1 IS NULL OR $1 NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 100000, not %', $1 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF acc IS NULL AND NOT privileged THEN
        RAISE EXCEPTION 'geocode_missing needs an account in the JWT' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('crm.applying_geocode', 'on', true);
    WITH picked AS (
        SELECT id FROM crm.jobs
        WHERE (account_id = acc OR (acc IS NULL AND privileged)) AND latitude IS NULL
          AND coalesce(geocode_status, 'failed') IN ('pending', 'failed')
          AND coalesce(crm._address_key(address), '') <> '' AND length(address) <= 500
        LIMIT $1)
    UPDATE crm.jobs j SET geocode_status = 'pending' FROM picked WHERE j.id = picked.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    WITH picked AS (
        SELECT id FROM crm.contacts
        WHERE (account_id = acc OR (acc IS NULL AND privileged)) AND latitude IS NULL
          AND coalesce(geocode_status, 'failed') IN ('pending', 'failed')
          AND coalesce(crm._address_key(address), '') <> '' AND length(address) <= 500
        LIMIT greatest($1 - n, 0))
    UPDATE crm.contacts c SET geocode_status = 'pending' FROM picked WHERE c.id = picked.id;
    GET DIAGNOSTICS m = ROW_COUNT;
    PERFORM set_config('crm.applying_geocode', 'off', true);
    PERFORM crm.enqueue_task('maps.geocode', jsonb_build_object('address', min(a.address)),
                             'geocode:' || md5(a.key), now(), a.account_id)
    FROM (SELECT account_id, address, crm._address_key(address) AS key FROM crm.jobs
          WHERE geocode_status = 'pending' AND (account_id = acc OR (acc IS NULL AND privileged))
          UNION ALL
          SELECT account_id, address, crm._address_key(address) FROM crm.contacts
          WHERE geocode_status = 'pending' AND (account_id = acc OR (acc IS NULL AND privileged))) a
    GROUP BY a.account_id, a.key;
    RETURN n + m;
END
$$;

------------------------------------------------------------------------------------------------
-- Interactive geocoding
------------------------------------------------------------------------------------------------

-- Geocode one address now: from the cache (no request), else one Geocoding request (counted
-- for the caller's account). status 'ok' or 'not_found'; Google's errors raise: 53400 busy
-- (retry later), 55000 the key or billing (Google's error_message), 22023 the query.
CREATE FUNCTION crm.geocode(address text)
RETURNS TABLE (latitude double precision, longitude double precision, formatted_address text, place_id text,
               location_type text, partial_match boolean, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    key text := crm._address_key($1);
    hit json;
BEGIN
    IF coalesce(key, '') = '' THEN
        RAISE EXCEPTION 'geocode needs an address with letters or digits' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length($1) > 500 THEN
        RAISE EXCEPTION 'the address is longer than 500 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF crm.current_account_id() IS NULL AND NOT crm._caller_is_privileged() THEN
        RAISE EXCEPTION 'geocode needs an account in the JWT' USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- one request per address at a time: a concurrent caller waits, then finds it cached
    PERFORM pg_advisory_xact_lock(7463, hashtext(key));
    hit := crm._geocode_cached(key);
    IF hit IS NULL THEN
        hit := crm._geocode_request($1, NULL, NULL)::json;
        PERFORM crm._maps_count(crm.current_account_id(), 'geocode', 1, 0);
        PERFORM crm._geocode_store(key, $1, hit::jsonb);
    END IF;
    RETURN QUERY SELECT (hit ->> 'latitude')::float8, (hit ->> 'longitude')::float8, hit ->> 'formatted_address',
                        hit ->> 'place_id', hit ->> 'location_type',
                        coalesce((hit ->> 'partial_match')::boolean, false), hit ->> 'status';
END
$$;

-- The address at a point (cached by the point rounded to about 1 m). The arguments are lat
-- and lng: an argument cannot share its name with a result column.
CREATE FUNCTION crm.reverse_geocode(lat double precision, lng double precision)
RETURNS TABLE (latitude double precision, longitude double precision, formatted_address text, place_id text,
               location_type text, partial_match boolean, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    key text;
    hit json;
BEGIN
    IF $1 IS NULL OR $2 IS NULL OR NOT ($1 BETWEEN -90 AND 90) OR NOT ($2 BETWEEN -180 AND 180) THEN
        RAISE EXCEPTION 'latitude must be between -90 and 90 and longitude between -180 and 180 (got %, %)', $1, $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF crm.current_account_id() IS NULL AND NOT crm._caller_is_privileged() THEN
        RAISE EXCEPTION 'reverse_geocode needs an account in the JWT' USING ERRCODE = 'insufficient_privilege';
    END IF;
    key := format('@%s,%s', round($1::numeric, 5), round($2::numeric, 5));
    PERFORM pg_advisory_xact_lock(7463, hashtext(key));
    hit := crm._geocode_cached(key);
    IF hit IS NULL THEN
        hit := crm._geocode_request(NULL, $1, $2)::json;
        PERFORM crm._maps_count(crm.current_account_id(), 'reverse_geocode', 1, 0);
        PERFORM crm._geocode_store(key, key, hit::jsonb);
    END IF;
    RETURN QUERY SELECT (hit ->> 'latitude')::float8, (hit ->> 'longitude')::float8, hit ->> 'formatted_address',
                        hit ->> 'place_id', hit ->> 'location_type',
                        coalesce((hit ->> 'partial_match')::boolean, false), hit ->> 'status';
END
$$;

------------------------------------------------------------------------------------------------
-- Travel times
------------------------------------------------------------------------------------------------

-- [[olat, olng, dlat, dlng], ...] → the fresh cached legs [[olat, olng, dlat, dlng, m, s, condition], ...]
CREATE FUNCTION crm._travel_cache_get(pairs jsonb, bucket integer) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_array(c.origin_lat, c.origin_lng, c.destination_lat, c.destination_lng,
                                                c.distance_m, c.duration_s, c.condition)), '[]')
    FROM jsonb_array_elements($1) p
    JOIN crm.travel_time_cache c
      ON c.origin_lat = (p ->> 0)::float8 AND c.origin_lng = (p ->> 1)::float8
     AND c.destination_lat = (p ->> 2)::float8 AND c.destination_lng = (p ->> 3)::float8
     AND c.bucket = $2 AND c.expires_at > now()
$$;

CREATE FUNCTION crm._travel_cache_put(legs jsonb, bucket integer, account uuid, requests bigint, elements bigint)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO crm.travel_time_cache AS c (origin_lat, origin_lng, destination_lat, destination_lng, bucket,
                                            distance_m, duration_s, condition, fetched_at, expires_at)
    SELECT (l ->> 0)::float8, (l ->> 1)::float8, (l ->> 2)::float8, (l ->> 3)::float8, $2,
           (l ->> 4)::float8, (l ->> 5)::float8, l ->> 6, now(),
           now() + crm._setting_interval('crm.travel_time_cache_ttl', '7 days')
    FROM jsonb_array_elements($1) l
    ON CONFLICT (origin_lat, origin_lng, destination_lat, destination_lng, bucket) DO UPDATE
    SET distance_m = EXCLUDED.distance_m, duration_s = EXCLUDED.duration_s, condition = EXCLUDED.condition,
        fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at;
    SELECT crm._maps_count($3, 'route_matrix', $4, $5);
$$;

-- Driving distance and time from each origin to each destination (points as
-- {"latitude", "longitude"} or [latitude, longitude]): cached pairs cost nothing, the rest go
-- to the Routes API (requests of at most 625 elements); without an API key, straight-line
-- estimates (source 'straight_line'). At most crm.maps_max_elements pairs (54000).
CREATE FUNCTION crm.travel_times(origins jsonb, destinations jsonb, departure_time timestamptz DEFAULT now())
RETURNS TABLE (origin_index integer, destination_index integer, distance_m double precision,
               duration_s double precision, condition text, source text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF crm.current_account_id() IS NULL AND NOT crm._caller_is_privileged() THEN
        RAISE EXCEPTION 'travel_times needs an account in the JWT' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    SELECT (e ->> 'origin_index')::int, (e ->> 'destination_index')::int, (e ->> 'distance_m')::float8,
           (e ->> 'duration_s')::float8, e ->> 'condition', e ->> 'source'
    FROM jsonb_array_elements(crm._travel_times($1, $2, $3, crm.current_account_id())) e;
END
$$;

------------------------------------------------------------------------------------------------
-- Technicians' positions
------------------------------------------------------------------------------------------------

-- The signed-in user (the JWT's sub, a crm.users row) reports where they are. Out-of-range
-- coordinates, a time in the future (beyond 2 minutes of clock skew) or older than
-- crm.location_retention → 22023. Returns whether the point was kept in the history (one per
-- crm.location_history_interval); the latest position is updated whenever it is newer.
CREATE FUNCTION crm.report_location(latitude double precision, longitude double precision,
                                    accuracy_m real DEFAULT NULL, recorded_at timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    me crm.users;
    sub text := crm._jwt_sub();
    kept boolean := false;
BEGIN
    IF sub IS NOT NULL AND sub ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN
        SELECT * INTO me FROM crm.users u WHERE u.id = sub::uuid;
    END IF;
    IF me.id IS NULL THEN
        RAISE EXCEPTION 'report_location is called by a signed-in user of the CRM (the JWT''s sub is not a crm.users row)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF $1 IS NULL OR $2 IS NULL OR NOT ($1 BETWEEN -90 AND 90) OR NOT ($2 BETWEEN -180 AND 180) THEN
        RAISE EXCEPTION 'latitude must be between -90 and 90 and longitude between -180 and 180 (got %, %)', $1, $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NOT NULL AND NOT ($3 BETWEEN 0 AND 100000) THEN
        RAISE EXCEPTION 'accuracy_m must be between 0 and 100000 metres, not %', $3 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $4 IS NULL OR $4 > now() + interval '2 minutes' THEN
        RAISE EXCEPTION 'recorded_at % is in the future', $4 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $4 < now() - crm._setting_interval('crm.location_retention', '7 days') THEN
        RAISE EXCEPTION 'recorded_at % is older than crm.location_retention', $4 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO crm.technician_positions AS p (user_id, account_id, latitude, longitude, accuracy_m, recorded_at)
    VALUES (me.id, me.account_id, $1, $2, $3, $4)
    ON CONFLICT (user_id) DO UPDATE
    SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, accuracy_m = EXCLUDED.accuracy_m,
        recorded_at = EXCLUDED.recorded_at, received_at = now(), account_id = EXCLUDED.account_id
    WHERE p.recorded_at < EXCLUDED.recorded_at;
    -- the history keeps one point per interval around this one (reports may arrive out of order)
    IF NOT EXISTS (SELECT 1 FROM crm.technician_locations l
                   WHERE l.user_id = me.id
                     AND l.recorded_at > $4 - crm._setting_interval('crm.location_history_interval', '30 seconds')
                     AND l.recorded_at < $4 + crm._setting_interval('crm.location_history_interval', '30 seconds')) THEN
        INSERT INTO crm.technician_locations (user_id, account_id, latitude, longitude, accuracy_m, recorded_at)
        VALUES (me.id, me.account_id, $1, $2, $3, $4);
        kept := true;
    END IF;
    RETURN kept;
END
$$;

-- The workers' upkeep (every 30 s): expired cache entries and history past retention, a
-- bounded batch each. Returns how many rows went.
CREATE FUNCTION crm._maps_upkeep() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a bigint; b bigint; c bigint;
BEGIN
    DELETE FROM crm.geocode_cache WHERE key IN (
        SELECT key FROM crm.geocode_cache WHERE expires_at < now() LIMIT 10000);
    GET DIAGNOSTICS a = ROW_COUNT;
    DELETE FROM crm.travel_time_cache t USING (
        SELECT origin_lat, origin_lng, destination_lat, destination_lng, bucket FROM crm.travel_time_cache
        WHERE expires_at < now() LIMIT 10000) x
    WHERE (t.origin_lat, t.origin_lng, t.destination_lat, t.destination_lng, t.bucket)
        = (x.origin_lat, x.origin_lng, x.destination_lat, x.destination_lng, x.bucket);
    GET DIAGNOSTICS b = ROW_COUNT;
    DELETE FROM crm.technician_locations WHERE id IN (
        SELECT id FROM crm.technician_locations
        WHERE recorded_at < now() - crm._setting_interval('crm.location_retention', '7 days') LIMIT 10000);
    GET DIAGNOSTICS c = ROW_COUNT;
    RETURN a + b + c;
END
$$;

------------------------------------------------------------------------------------------------
-- Dispatch: ETA, suggestions, a planned day
------------------------------------------------------------------------------------------------

-- The job if the caller may see it (its account, or the server); otherwise "no such job"
-- (P0002), the same answer whether it exists in another account or not at all.
CREATE FUNCTION crm._job_for_caller(job_id uuid) RETURNS crm.jobs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j crm.jobs;
BEGIN
    SELECT * INTO j FROM crm.jobs x
    WHERE x.id = $1 AND (x.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF j.id IS NULL THEN
        RAISE EXCEPTION 'no job %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN j;
END
$$;

-- Distance and ETA of the job's technician from their latest position: by the Routes API
-- (source 'routes' or 'cache'), or a straight-line estimate when Maps is not configured
-- (source 'straight_line'). 55000 when the job has no coordinates yet, no technician, or the
-- technician has reported no position.
CREATE FUNCTION crm.job_eta(job_id uuid)
RETURNS TABLE (technician_id uuid, distance_m double precision, duration_s double precision,
               eta timestamptz, source text, position_recorded_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    j crm.jobs := crm._job_for_caller($1);
    p crm.technician_positions;
    t record;
BEGIN
    IF j.latitude IS NULL THEN
        RAISE EXCEPTION 'job % has no coordinates yet (geocode_status %)', j.id, coalesce(j.geocode_status, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF j.assigned_to IS NULL THEN
        RAISE EXCEPTION 'job % has no technician assigned', j.id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO p FROM crm.technician_positions x WHERE x.user_id = j.assigned_to AND x.account_id = j.account_id;
    IF p.user_id IS NULL THEN
        RAISE EXCEPTION 'the technician of job % has reported no position', j.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO t FROM crm.travel_times(jsonb_build_array(jsonb_build_array(p.latitude, p.longitude)),
                                          jsonb_build_array(jsonb_build_array(j.latitude, j.longitude)), now());
    RETURN QUERY SELECT j.assigned_to, t.distance_m, t.duration_s,
                        now() + make_interval(secs => t.duration_s), t.source, p.recorded_at;
END
$$;

-- Technicians (users with role 'tech') ranked for a job: free at the job's time first (no
-- overlapping job of theirs, no busy interval in their Google Calendar), then by driving time
-- from where they will be — their latest position (reported today), else the job of theirs
-- that ends last before this one that day. A straight-line short list, then one travel-time
-- request for it. `reason` says why each is where it is.
CREATE FUNCTION crm.suggest_technicians(job_id uuid, "limit" integer DEFAULT 5)
RETURNS TABLE (rank integer, user_id uuid, full_name text, available boolean, origin text,
               distance_m double precision, duration_s double precision, source text, reason text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    j crm.jobs := crm._job_for_caller($1);
    starts timestamptz;
    ends timestamptz;
    shortlist jsonb;
    times jsonb;
BEGIN
    IF $2 IS NULL OR $2 NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'limit must be between 1 and 100, not %', $2 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF j.latitude IS NULL THEN
        RAISE EXCEPTION 'job % has no coordinates yet (geocode_status %)', j.id, coalesce(j.geocode_status, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    starts := coalesce(j.scheduled_start, now());
    ends := greatest(coalesce(j.scheduled_end, starts + interval '1 hour'), starts);
    WITH techs AS (
        SELECT u.id, u.full_name, u.email FROM crm.users u
        WHERE u.account_id = j.account_id AND u.role = 'tech'
        LIMIT 1000
    ), judged AS (
        SELECT t.id, t.full_name, t.email,
               (SELECT o.title FROM crm.jobs o
                WHERE o.account_id = j.account_id AND o.assigned_to = t.id AND o.id <> j.id
                  AND o.status NOT IN ('cancelled', 'completed', 'invoiced', 'paid') AND o.scheduled_start IS NOT NULL
                  AND tstzrange(o.scheduled_start, greatest(coalesce(o.scheduled_end, o.scheduled_start + interval '1 hour'), o.scheduled_start))
                      && tstzrange(starts, ends)
                LIMIT 1) AS clash_job,
               EXISTS (SELECT 1 FROM crm.calendar_busy b
                       WHERE b.account_id = j.account_id AND b.user_id = t.id
                         AND tstzrange(b.starts_at, greatest(b.ends_at, b.starts_at)) && tstzrange(starts, ends)) AS calendar_busy,
               pos.latitude AS p_lat, pos.longitude AS p_lng, pos.recorded_at AS p_at,
               prev.latitude AS j_lat, prev.longitude AS j_lng, prev.title AS j_title
        FROM techs t
        LEFT JOIN crm.technician_positions pos
               ON pos.user_id = t.id AND pos.account_id = j.account_id
              AND pos.recorded_at > starts - interval '12 hours'
        LEFT JOIN LATERAL (
            SELECT o.latitude, o.longitude, o.title FROM crm.jobs o
            WHERE o.account_id = j.account_id AND o.assigned_to = t.id AND o.id <> j.id AND o.latitude IS NOT NULL
              AND o.status NOT IN ('cancelled') AND o.scheduled_start IS NOT NULL
              AND o.scheduled_start < starts AND o.scheduled_start > starts - interval '16 hours'
            ORDER BY coalesce(o.scheduled_end, o.scheduled_start) DESC LIMIT 1) prev ON true
    ), placed AS (
        SELECT *, clash_job IS NULL AND NOT calendar_busy AS free,
               CASE WHEN p_lat IS NOT NULL THEN 'position' WHEN j_lat IS NOT NULL THEN 'previous_job' END AS origin,
               coalesce(p_lat, j_lat) AS o_lat, coalesce(p_lng, j_lng) AS o_lng
        FROM judged
    )
    SELECT jsonb_agg(to_jsonb(s) ORDER BY s.free DESC, s.straight NULLS LAST, s.id) INTO shortlist
    FROM (SELECT p.*,
                 CASE WHEN p.o_lat IS NOT NULL THEN
                     -- haversine metres: the short list's order only
                     12742018 * asin(sqrt(power(sin(radians(j.latitude - p.o_lat) / 2), 2)
                         + cos(radians(p.o_lat)) * cos(radians(j.latitude)) * power(sin(radians(j.longitude - p.o_lng) / 2), 2)))
                 END AS straight,
                 row_number() OVER (ORDER BY (p.clash_job IS NULL AND NOT p.calendar_busy) DESC,
                     CASE WHEN p.o_lat IS NOT NULL THEN
                         power(j.latitude - p.o_lat, 2) + power((j.longitude - p.o_lng) * cos(radians(j.latitude)), 2) END
                     NULLS LAST, p.id) AS pre
          FROM placed p) s
    WHERE s.pre <= greatest($2 * 2, 10);
    IF shortlist IS NULL THEN
        RETURN;
    END IF;
    -- one travel-time request for the short list (those with an origin)
    SELECT jsonb_agg(x.t ORDER BY x.i) INTO times
    FROM (SELECT e.origin_index AS i, to_jsonb(e) AS t
          FROM crm.travel_times(
              (SELECT coalesce(jsonb_agg(jsonb_build_array(s -> 'o_lat', s -> 'o_lng') ORDER BY n), '[]')
               FROM jsonb_array_elements(shortlist) WITH ORDINALITY AS a(s, n) WHERE s ->> 'o_lat' IS NOT NULL),
              jsonb_build_array(jsonb_build_array(j.latitude, j.longitude)), starts) e) x;
    RETURN QUERY
    WITH listed AS (
        SELECT s, (count(*) FILTER (WHERE s ->> 'o_lat' IS NOT NULL) OVER (ORDER BY n)) - 1 AS ti, n
        FROM jsonb_array_elements(shortlist) WITH ORDINALITY AS a(s, n)
    ), ranked AS (
        SELECT l.s, CASE WHEN l.s ->> 'o_lat' IS NOT NULL THEN times -> l.ti::int END AS t
        FROM listed l
    ), ordered AS (
        SELECT r.*, row_number() OVER (ORDER BY (r.s ->> 'free')::boolean DESC,
                                        (r.t ->> 'duration_s')::float8 NULLS LAST, r.s ->> 'id') AS rk
        FROM ranked r
    )
    SELECT o.rk::int, (o.s ->> 'id')::uuid, o.s ->> 'full_name', (o.s ->> 'free')::boolean, o.s ->> 'origin',
           (o.t ->> 'distance_m')::float8, (o.t ->> 'duration_s')::float8, o.t ->> 'source',
           concat_ws('; ',
               CASE WHEN o.s ->> 'clash_job' IS NOT NULL THEN format('busy: job "%s" overlaps', o.s ->> 'clash_job')
                    WHEN (o.s ->> 'calendar_busy')::boolean THEN 'busy in their Google Calendar'
                    ELSE format('free %s–%s', to_char(starts, 'HH24:MI'), to_char(ends, 'HH24:MI')) END,
               CASE o.s ->> 'origin'
                   WHEN 'position' THEN format('%s min from their position (reported %s)',
                        round((o.t ->> 'duration_s')::numeric / 60), to_char((o.s ->> 'p_at')::timestamptz, 'HH24:MI'))
                   WHEN 'previous_job' THEN format('%s min from their previous job "%s"',
                        round((o.t ->> 'duration_s')::numeric / 60), o.s ->> 'j_title')
                   ELSE 'no known position' END,
               CASE WHEN o.t ->> 'source' = 'straight_line' THEN 'straight-line estimate (Maps not configured)' END)
    FROM ordered o
    WHERE o.rk <= $2
    ORDER BY o.rk;
END
$$;

-- A technician's open jobs (not completed, paid or cancelled) on `day` (in the account's time zone) in the order that drives the
-- least while arriving inside each job's window — [scheduled_start, scheduled_end] is the
-- arrival window, crm.route_service_minutes is spent at each job — with arrival times. Today,
-- the day starts from the technician's latest position (if reported today); otherwise at the
-- first job. Exact (proven optimal) up to 12 jobs; `late` marks arrivals after the window
-- when no order keeps them all. Jobs without coordinates are listed last with no stop number.
CREATE FUNCTION crm.plan_route(user_id uuid, day date)
RETURNS TABLE (stop integer, job_id uuid, title text, address text, arrive_at timestamptz,
               depart_at timestamptz, travel_seconds double precision, window_start timestamptz,
               window_end timestamptz, late boolean, exact boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    tech crm.users;
    tz text;
    jobs jsonb;
    pts jsonb;
    n integer;
    start_pos crm.technician_positions;
    m jsonb;
    travel jsonb;
    windows jsonb;
    plan jsonb;
    service double precision := 60 * coalesce(nullif(current_setting('crm.route_service_minutes', true), '')::int, 60);
BEGIN
    SELECT * INTO tech FROM crm.users u
    WHERE u.id = $1 AND (u.account_id = crm.current_account_id() OR crm._caller_is_privileged());
    IF tech.id IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION 'no user %', $1 USING ERRCODE = 'no_data_found';
    END IF;
    SELECT coalesce(a.time_zone, nullif(current_setting('crm.calendar_time_zone', true), ''), 'UTC') INTO tz
    FROM crm.accounts a WHERE a.id = tech.account_id;
    SELECT jsonb_agg(to_jsonb(x) ORDER BY x.scheduled_start, x.id) INTO jobs
    FROM (SELECT o.id, o.title, o.address, o.latitude, o.longitude, o.scheduled_start,
                 greatest(coalesce(o.scheduled_end, o.scheduled_start), o.scheduled_start) AS scheduled_end
          FROM crm.jobs o
          WHERE o.account_id = tech.account_id AND o.assigned_to = tech.id
            AND o.status NOT IN ('cancelled', 'completed', 'invoiced', 'paid')
            AND o.scheduled_start >= ($2::timestamp AT TIME ZONE tz)
            AND o.scheduled_start < (($2 + 1)::timestamp AT TIME ZONE tz)
          LIMIT 1000) x;
    IF jobs IS NULL THEN
        RETURN;
    END IF;
    SELECT jsonb_agg(e ORDER BY i) INTO pts
    FROM jsonb_array_elements(jobs) WITH ORDINALITY AS a(e, i) WHERE e ->> 'latitude' IS NOT NULL;
    n := coalesce(jsonb_array_length(pts), 0);
    IF n > coalesce(nullif(current_setting('crm.route_max_jobs', true), '')::int, 30) THEN
        RAISE EXCEPTION '% jobs on % for one technician, more than crm.route_max_jobs', n, $2
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF n > 0 THEN
        IF $2 = (now() AT TIME ZONE tz)::date THEN
            SELECT * INTO start_pos FROM crm.technician_positions p
            WHERE p.user_id = tech.id AND p.account_id = tech.account_id
              AND p.recorded_at >= ($2::timestamp AT TIME ZONE tz);
        END IF;
        -- nodes: 0 = the start (the position, or the first job as a stand-in with a zero row)
        m := jsonb_build_array(CASE WHEN start_pos.user_id IS NOT NULL
                                    THEN jsonb_build_array(start_pos.latitude, start_pos.longitude)
                                    ELSE jsonb_build_array((pts -> 0 ->> 'latitude')::float8, (pts -> 0 ->> 'longitude')::float8) END)
             || (SELECT jsonb_agg(jsonb_build_array((e ->> 'latitude')::float8, (e ->> 'longitude')::float8) ORDER BY i)
                 FROM jsonb_array_elements(pts) WITH ORDINALITY AS a(e, i));
        SELECT jsonb_agg(r ORDER BY oi) INTO travel
        FROM (SELECT t.origin_index AS oi,
                     jsonb_agg(CASE WHEN t.origin_index = 0 AND start_pos.user_id IS NULL THEN 0
                                    ELSE coalesce(t.duration_s, 86400) END ORDER BY t.destination_index) AS r
              FROM crm.travel_times(m, m, (pts -> 0 ->> 'scheduled_start')::timestamptz) t
              GROUP BY t.origin_index) x;
        SELECT jsonb_agg(jsonb_build_object(
                   'earliest', extract(epoch FROM (e ->> 'scheduled_start')::timestamptz),
                   'latest', extract(epoch FROM (e ->> 'scheduled_end')::timestamptz),
                   'service', service) ORDER BY i) INTO windows
        FROM jsonb_array_elements(pts) WITH ORDINALITY AS a(e, i);
        plan := crm._plan_order(jsonb_build_object('travel', travel, 'windows', windows,
                    'start_time', CASE WHEN start_pos.user_id IS NOT NULL THEN extract(epoch FROM now()) END));
        RETURN QUERY
        SELECT k::int, (e ->> 'id')::uuid, e ->> 'title', e ->> 'address',
               to_timestamp((plan -> 'arrivals' ->> (k - 1)::int)::float8),
               to_timestamp((plan -> 'arrivals' ->> (k - 1)::int)::float8 + service),
               (plan -> 'legs' ->> (k - 1)::int)::float8,
               (e ->> 'scheduled_start')::timestamptz, (e ->> 'scheduled_end')::timestamptz,
               (plan -> 'arrivals' ->> (k - 1)::int)::float8 > extract(epoch FROM (e ->> 'scheduled_end')::timestamptz),
               (plan ->> 'exact')::boolean
        FROM jsonb_array_elements(plan -> 'order') WITH ORDINALITY AS o(idx, k)
        CROSS JOIN LATERAL (SELECT pts -> (o.idx)::int AS e) x
        ORDER BY k;
    END IF;
    RETURN QUERY
    SELECT NULL::int, (e ->> 'id')::uuid, e ->> 'title', e ->> 'address', NULL::timestamptz, NULL::timestamptz,
           NULL::float8, (e ->> 'scheduled_start')::timestamptz, (e ->> 'scheduled_end')::timestamptz, NULL::boolean,
           NULL::boolean
    FROM jsonb_array_elements(jobs) e WHERE e ->> 'latitude' IS NULL;
END
$$;

-- Privileges: sql/security.sql.
