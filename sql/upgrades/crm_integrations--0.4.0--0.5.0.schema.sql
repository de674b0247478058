-- crm_integrations 0.4.0 -> 0.5.0: Google Maps (issue 13), Stripe outbound (issue 15), contact merge (issue 14, first part). The reviewed schema changes; every
-- function (new and changed: crm._record_task_outcomes' deferral) and the privileges are
-- appended by scripts/gen_update.py from the install script. Copies of sql/maps.sql's tables:
-- a change to one is made in both (tests/shell/upgrade.sh's fingerprint checks it).

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

-- Stripe outbound (issue 15): copies of sql/payments.sql's schema.
ALTER TABLE crm.invoices
    ADD COLUMN stripe_checkout_session_id text,
    ADD COLUMN stripe_checkout_url text,
    ADD COLUMN stripe_checkout_expires_at timestamptz,
    ADD COLUMN stripe_checkout_amount bigint,
    ADD COLUMN stripe_checkout_currency text;
CREATE UNIQUE INDEX invoices_checkout_session_idx ON crm.invoices (stripe_checkout_session_id)
    WHERE stripe_checkout_session_id IS NOT NULL;

CREATE TABLE crm.invoice_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES crm.accounts (id) ON DELETE CASCADE,
    invoice_id  uuid NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    quantity    numeric(12, 3) NOT NULL DEFAULT 1 CHECK (quantity > 0 AND quantity < 1000000),
    unit_amount bigint NOT NULL CHECK (unit_amount >= 0 AND unit_amount < 100000000000),  -- cents
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoice_items_invoice_fk FOREIGN KEY (account_id, invoice_id)
        REFERENCES crm.invoices (account_id, id) ON DELETE CASCADE
);
CREATE INDEX invoice_items_invoice_idx ON crm.invoice_items (invoice_id, position);
ALTER TABLE crm.invoice_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crm.invoice_items FOR ALL
    USING (account_id = (SELECT crm.current_account_id()))
    WITH CHECK (account_id = (SELECT crm.current_account_id()));
CREATE POLICY service_role_all ON crm.invoice_items FOR ALL
    USING ((SELECT crm.is_service_role()))
    WITH CHECK ((SELECT crm.is_service_role()));
SELECT pg_catalog.pg_extension_config_dump('crm.invoice_items', '');

-- Contacts (issue 14, first part): copies of sql/contacts.sql's schema.
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

-- @after-functions
CREATE INDEX jobs_geocode_pending_idx ON crm.jobs (account_id, crm._address_key(address))
    WHERE geocode_status = 'pending';

CREATE INDEX contacts_geocode_pending_idx ON crm.contacts (account_id, crm._address_key(address))
    WHERE geocode_status = 'pending';

CREATE TRIGGER geocode_1_guard BEFORE INSERT OR UPDATE ON crm.jobs
    FOR EACH ROW EXECUTE FUNCTION crm._geocode_guard();

CREATE TRIGGER geocode_2_lookup BEFORE INSERT OR UPDATE ON crm.jobs
    FOR EACH ROW WHEN (NEW.geocode_status = 'pending') EXECUTE FUNCTION crm._geocode_lookup();

CREATE TRIGGER geocode_1_guard BEFORE INSERT OR UPDATE ON crm.contacts
    FOR EACH ROW EXECUTE FUNCTION crm._geocode_guard();

CREATE TRIGGER geocode_2_lookup BEFORE INSERT OR UPDATE ON crm.contacts
    FOR EACH ROW WHEN (NEW.geocode_status = 'pending') EXECUTE FUNCTION crm._geocode_lookup();
