-- advancia:amends 5c4a3ade6db0b8eaa641b686d360729a6a29a391fa26482a4e3a4beeba1d69bc
-- (staff.user_id no longer references auth.users; 0003 drops it where it was created.)
-- Facilities service. Geo points are doubles (geo is not money); distance is haversine in
-- SQL with a bounding-box prefilter on (lat, lon). Double booking is impossible at the
-- database level: exclusion constraints on tstzrange per staff member and per resource.

CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE TABLE facilities (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    facility_type   text NOT NULL,
    services        text[] NOT NULL DEFAULT '{}',
    street          text NOT NULL DEFAULT '',
    city            text NOT NULL DEFAULT '',
    region          text NOT NULL DEFAULT '',
    postal_code     text NOT NULL DEFAULT '',
    country         text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    contacts        jsonb NOT NULL DEFAULT '[]',
    -- "chain:asset" pairs the facility accepts, e.g. "solana:USDC".
    accepted_assets text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN ('active', 'suspended', 'deactivated')),
    -- Optimistic concurrency: the ETag is this number; every update increments it.
    version         bigint NOT NULL DEFAULT 1,
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Maintained by the trigger below (array_to_string is not immutable, so no generated column).
    search          tsvector NOT NULL DEFAULT ''
);
CREATE INDEX facilities_search ON facilities USING gin (search);
CREATE INDEX facilities_geo ON facilities (lat, lon);
CREATE INDEX facilities_type ON facilities (facility_type);
CREATE INDEX facilities_assets ON facilities USING gin (accepted_assets);

CREATE FUNCTION facilities_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search :=
        setweight(to_tsvector('english', NEW.name), 'A')
        || setweight(to_tsvector('english', array_to_string(NEW.services, ' ')), 'B')
        || setweight(to_tsvector('english', concat_ws(' ', NEW.street, NEW.city, NEW.region,
                                                      NEW.postal_code, NEW.country)), 'C');
    RETURN NEW;
END $$;
CREATE TRIGGER facilities_search BEFORE INSERT OR UPDATE ON facilities
    FOR EACH ROW EXECUTE FUNCTION facilities_search_vector();

-- One payout wallet per chain and facility (mirrored to the on-chain registry for Solana).
CREATE TABLE payout_wallets (
    facility_id uuid NOT NULL REFERENCES facilities (id) ON DELETE CASCADE,
    chain       text NOT NULL,
    address     text NOT NULL,
    PRIMARY KEY (facility_id, chain)
);

CREATE TABLE certifications (
    id          uuid PRIMARY KEY,
    facility_id uuid NOT NULL REFERENCES facilities (id) ON DELETE CASCADE,
    name        text NOT NULL,
    issuer      text NOT NULL,
    number      text NOT NULL DEFAULT '',
    issued_on   date,
    expires_on  date NOT NULL
);
CREATE INDEX certifications_facility ON certifications (facility_id);
CREATE INDEX certifications_expiry ON certifications (expires_on);
CREATE INDEX certifications_name ON certifications (lower(name));

-- Staff link to auth users by id; the service checks the id through its user directory
-- (no foreign key into another service's schema: ADR 0023).
CREATE TABLE staff (
    id           uuid PRIMARY KEY,
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    user_id      uuid,
    display_name text NOT NULL,
    roles        text[] NOT NULL DEFAULT '{}',
    -- [{kind, number, issuer, expires_on}]
    licences     jsonb NOT NULL DEFAULT '[]',
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility_id, user_id)
);
CREATE INDEX staff_facility ON staff (facility_id);

CREATE TABLE resources (
    id                  uuid PRIMARY KEY,
    facility_id         uuid NOT NULL REFERENCES facilities (id),
    name                text NOT NULL,
    kind                text NOT NULL,
    maintenance_state   text NOT NULL CHECK (maintenance_state IN
                            ('operational', 'maintenance_due', 'under_maintenance', 'out_of_service')),
    last_maintained_on  date,
    next_maintenance_on date,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resources_facility ON resources (facility_id);

CREATE TABLE appointments (
    id          uuid PRIMARY KEY,
    facility_id uuid NOT NULL REFERENCES facilities (id),
    staff_id    uuid REFERENCES staff (id),
    resource_id uuid REFERENCES resources (id),
    during      tstzrange NOT NULL CHECK (NOT isempty(during) AND lower_inf(during) = false
                                          AND upper_inf(during) = false),
    booked_for  uuid,
    note        text NOT NULL DEFAULT '',
    status      text NOT NULL CHECK (status IN ('booked', 'cancelled')),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (staff_id IS NOT NULL OR resource_id IS NOT NULL),
    CONSTRAINT appointments_staff_no_overlap EXCLUDE USING gist
        (staff_id WITH =, during WITH &&) WHERE (status = 'booked' AND staff_id IS NOT NULL),
    CONSTRAINT appointments_resource_no_overlap EXCLUDE USING gist
        (resource_id WITH =, during WITH &&) WHERE (status = 'booked' AND resource_id IS NOT NULL)
);
CREATE INDEX appointments_facility ON appointments (facility_id, lower(during));

-- Outbox for other services (notifications): append-only rows, consumers track the
-- highest `id` they processed. Shape documented in README.md.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    facility_id uuid NOT NULL,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    -- Makes producers idempotent (e.g. one expiry warning per certification and expiry date).
    dedupe_key  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
