-- Specific license reservation (SLR).
--
-- A reservation belongs to a product instance that never talks to the server: it is
-- created from the product's request code (its id is the code's request nonce) and lives
-- as a 'registered' product instance of the virtual account, holding licenses out of the
-- pool until a return code (or a forced removal) ends it.
--
-- Each authorization code issued for it has its licenses in reservation_licenses:
-- 'current' is the code the product confirmed (or the first one before any confirmation:
-- none), 'pending' the latest code issued and not yet confirmed. While a code is pending
-- the reservation is in transition and holds, per tag, the larger of the two.

CREATE TABLE reservations (
    product_id uuid PRIMARY KEY REFERENCES product_instances (id) ON DELETE CASCADE,
    public_key text NOT NULL,          -- the product's reservation key (compressed P-256)
    request_code text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'returned', 'removed')),
    current_timestamp_ms bigint,       -- the confirmed authorization code
    current_code text,
    pending_timestamp_ms bigint,       -- the authorization code awaiting confirmation
    pending_code text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    ended_at timestamptz,
    CHECK ((status = 'active') = (ended_at IS NULL)),
    CHECK ((current_code IS NULL) = (current_timestamp_ms IS NULL)),
    CHECK ((pending_code IS NULL) = (pending_timestamp_ms IS NULL))
);

CREATE TABLE reservation_licenses (
    product_id uuid NOT NULL REFERENCES reservations (product_id) ON DELETE CASCADE,
    stage text NOT NULL CHECK (stage IN ('current', 'pending')),
    line_id bigint NOT NULL,           -- the pool line it was taken from (no FK: lines change)
    tag text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    license_type text NOT NULL CHECK (license_type IN ('PERPETUAL', 'TERM', 'SUBSCRIPTION')),
    start_date date,
    end_date date,
    subscription_id text,
    PRIMARY KEY (product_id, stage, line_id)
);
CREATE INDEX reservation_licenses_tag ON reservation_licenses (tag);
