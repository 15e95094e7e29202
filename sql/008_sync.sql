-- Sync with an upstream (sync/): both sides of it.
--
-- Satellite side. A local account is linked to one smart account at an upstream
-- (sync_links); its virtual accounts map to the upstream's by name. Each request bundle
-- carries what changed since the upstream last acknowledged:
--
--   * products: change capture by transaction id. A trigger stamps a product row with
--     the id of the transaction that last changed something the upstream mirrors
--     (sync_xid). An export runs in one snapshot, takes every row stamped at or after the
--     acknowledged watermark, and proposes as the next watermark the snapshot's xmin: a
--     transaction that was still running then has an id at or above it, so its changes
--     are in the next export whatever order transactions commit in. (A row may be sent
--     twice; the upstream's apply is an upsert, so that is harmless.)
--   * usage per virtual account and tag, and the list of virtual accounts: in full, they
--     are small.
--
-- Upstream side. Satellites register with a satellite token of a smart account; the
-- upstream mirrors each satellite's products and usage, and counts that usage in its
-- virtual accounts' totals (shard 16 of virtual_account_usage).

ALTER TABLE product_instances ADD COLUMN sync_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX product_instances_sync_xid ON product_instances (sync_xid);

CREATE FUNCTION sync_stamp_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sync_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

-- Only the columns the upstream mirrors: a usage report (last contact, authorization
-- expiry) does not fire it.
CREATE TRIGGER product_instances_sync_stamp BEFORE UPDATE ON product_instances
    FOR EACH ROW WHEN (
        (OLD.status, OLD.virtual_account_id, OLD.udi_uuid, OLD.product_type,
         OLD.product_version, OLD.hostname, OLD.ip_address, OLD.export_controlled,
         OLD.registered_at, OLD.ended_at)
        IS DISTINCT FROM
        (NEW.status, NEW.virtual_account_id, NEW.udi_uuid, NEW.product_type,
         NEW.product_version, NEW.hostname, NEW.ip_address, NEW.export_controlled,
         NEW.registered_at, NEW.ended_at))
    EXECUTE FUNCTION sync_stamp_product();

-- A reservation's changes (confirmation, return, its licenses) and its export keys' (sql/
-- 007: granted, returned, released) are its product's.
CREATE FUNCTION sync_stamp_owning_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE product_instances SET sync_xid = pg_current_xact_id()
        WHERE id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END);
    RETURN NULL;
END $$;
CREATE TRIGGER reservations_sync_stamp AFTER INSERT OR UPDATE ON reservations
    FOR EACH ROW EXECUTE FUNCTION sync_stamp_owning_product();
CREATE TRIGGER reservation_licenses_sync_stamp AFTER INSERT OR UPDATE OR DELETE
    ON reservation_licenses FOR EACH ROW EXECUTE FUNCTION sync_stamp_owning_product();
CREATE TRIGGER export_keys_sync_stamp AFTER INSERT OR UPDATE ON export_keys
    FOR EACH ROW EXECUTE FUNCTION sync_stamp_owning_product();

-- A reserved license as an export reads it (satellite/storage/sync.py, changed_products).
CREATE TYPE sync_reserved_license AS (tag text, quantity integer, "licenseType" text,
    "endDate" text, stage text);

CREATE TABLE sync_links (
    account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    satellite_id uuid NOT NULL UNIQUE,          -- given by the upstream at registration
    upstream_url text,                          -- NULL: registered offline, files only
    upstream_account text NOT NULL,             -- the smart account at the upstream
    upstream_key text NOT NULL,                 -- PEM: pinned at registration
    private_key bytea NOT NULL,                 -- encrypted with the token key
    certificate text NOT NULL,                  -- ours, issued by the upstream
    registered_at timestamptz NOT NULL,
    request_sequence bigint NOT NULL DEFAULT 0,  -- of the last request exported
    applied_sequence bigint NOT NULL DEFAULT 0,  -- of the request whose answer was applied
    applied_digest bytea,                        -- of that answer (a second import: no-op)
    acknowledged_xid xid8 NOT NULL DEFAULT '0',  -- changes below it reached the upstream
    last_success_at timestamptz,
    last_attempt_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    next_run_at timestamptz
);

-- A registration asked for and not answered yet: the key it asked a certificate for.
CREATE TABLE sync_pending_registrations (
    account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    private_key bytea NOT NULL,                 -- encrypted with the token key
    request bytea NOT NULL,                     -- the request, encrypted (it holds the token):
    token_digest bytea NOT NULL,                -- sent again when an answer was lost
    request_digest bytea NOT NULL,
    upstream_url text,
    created_at timestamptz NOT NULL
);

-- What each request exported, so that the answer to it knows which watermark it acknowledges.
CREATE TABLE sync_requests (
    account_id bigint NOT NULL REFERENCES sync_links (account_id) ON DELETE CASCADE,
    sequence bigint NOT NULL,
    digest bytea NOT NULL,
    through_xid xid8 NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, sequence)
);

CREATE TABLE sync_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    mode text NOT NULL CHECK (mode IN ('connected', 'disconnected')),
    operation text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
    sequence bigint,
    counts jsonb NOT NULL DEFAULT '{}',
    error text
);
CREATE INDEX sync_history_account ON sync_history (account_id, id DESC);

-- The lines a satellite got from its upstream keep the upstream's id: an update changes
-- them in place.
ALTER TABLE license_lines ADD COLUMN upstream_line_id bigint;
CREATE UNIQUE INDEX license_lines_upstream ON license_lines (virtual_account_id, upstream_line_id)
    WHERE upstream_line_id IS NOT NULL;
ALTER TABLE license_lines ADD CONSTRAINT license_lines_upstream_source
    CHECK (upstream_line_id IS NULL OR source = 'upstream');

-- Upstream side.

CREATE TABLE satellite_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_digest bytea NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE satellites (
    id uuid PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name text NOT NULL,
    public_key text NOT NULL,                   -- PEM
    registration_digest bytea NOT NULL UNIQUE,  -- a registration request answered twice: same answer
    registration_answer bytea NOT NULL,
    registered_at timestamptz NOT NULL,
    last_sequence bigint NOT NULL DEFAULT 0,
    last_digest bytea,                          -- of the last request applied
    last_answer bytea,                          -- the signed answer to it, sent again for it
    last_sync_at timestamptz,
    revoked_at timestamptz                      -- no longer heard: its mirror is gone
);
CREATE INDEX satellites_account ON satellites (account_id);

CREATE TABLE satellite_products (
    satellite_id uuid NOT NULL,                 -- satellites (id): no REFERENCES, see below
    product_id uuid NOT NULL,
    virtual_account_id bigint NOT NULL,         -- virtual_accounts (id): no REFERENCES
    udi_pid text NOT NULL,
    udi_serial text NOT NULL,
    udi_uuid text NOT NULL,
    product_type text NOT NULL,
    product_version text NOT NULL,
    hostname text,
    ip_address text,
    export_controlled boolean NOT NULL,
    status text NOT NULL,
    registered_at timestamptz NOT NULL,
    ended_at timestamptz,
    export_keys text[] NOT NULL DEFAULT '{}',  -- the features it holds export keys for
    reservation jsonb,
    PRIMARY KEY (satellite_id, product_id)
);
CREATE INDEX satellite_products_va ON satellite_products (virtual_account_id);

-- The mirror has no foreign keys: a foreign key checks each row inserted with a query of
-- its own, and a request of a million products spent half its apply time on them
-- (bench/sync). The mirror is written only by merge_products
-- (satellite/storage/upstream.py), which holds the satellite's row locked and locks the
-- virtual accounts its rows name (FOR KEY SHARE, as the keys would) once per request,
-- refusing a request that names one that does not exist. These triggers keep the other
-- side of the keys: a satellite's mirror goes with it (ON DELETE CASCADE), and a virtual
-- account with mirrored products is not deleted (ON DELETE RESTRICT, the same error).
CREATE FUNCTION satellite_products_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM satellite_products WHERE satellite_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER satellites_products_cascade AFTER DELETE ON satellites
    FOR EACH ROW EXECUTE FUNCTION satellite_products_cascade();

CREATE FUNCTION satellite_products_restrict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM satellite_products WHERE virtual_account_id = OLD.id) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'update or delete on table "virtual_accounts" violates foreign key '
                || 'constraint "satellite_products_virtual_account_id_fkey" on table '
                || '"satellite_products"',
            DETAIL = format('Key (id)=(%s) is still referenced from table "satellite_products".',
                OLD.id),
            CONSTRAINT = 'satellite_products_virtual_account_id_fkey',
            TABLE = 'satellite_products';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER virtual_accounts_satellite_products AFTER DELETE ON virtual_accounts
    FOR EACH ROW EXECUTE FUNCTION satellite_products_restrict();

CREATE TABLE satellite_usage (
    satellite_id uuid NOT NULL REFERENCES satellites (id) ON DELETE CASCADE,
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    tag text NOT NULL,
    in_use bigint NOT NULL CHECK (in_use >= 0),
    reserved bigint NOT NULL CHECK (reserved >= 0),
    exported bigint NOT NULL CHECK (exported >= 0),
    PRIMARY KEY (satellite_id, virtual_account_id, tag)
);

-- Shard 16 of the totals holds what satellites take of the pool: the sum over them of
-- what their products use, reserve and hold as export keys (at the upstream it all counts
-- as in use).
ALTER TABLE virtual_account_usage DROP CONSTRAINT virtual_account_usage_shard_check;
ALTER TABLE virtual_account_usage ADD CONSTRAINT virtual_account_usage_shard_check
    CHECK (shard BETWEEN 0 AND 16);
