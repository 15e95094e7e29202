-- Product instances registered with a token, their current usage and its history, and the
-- server nonces already used (device requests carry one each; a nonce is good once).

CREATE TABLE product_instances (
    id uuid PRIMARY KEY,
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE RESTRICT,
    udi_pid text NOT NULL,
    udi_serial text NOT NULL,
    udi_uuid text NOT NULL,
    product_type text NOT NULL,
    product_version text NOT NULL,
    hostname text,
    ip_address text,
    public_jwk jsonb NOT NULL,
    export_controlled boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('registered', 'deregistered', 'removed')),
    registered_at timestamptz NOT NULL,
    last_contact_at timestamptz NOT NULL,
    certificate_expires_at timestamptz NOT NULL,
    authorization_expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    CHECK ((status = 'registered') = (ended_at IS NULL))
);
-- One live registration per product identity (PID + serial number).
CREATE UNIQUE INDEX product_instances_live_udi ON product_instances (udi_pid, udi_serial)
    WHERE status = 'registered';
CREATE INDEX product_instances_va ON product_instances (virtual_account_id)
    WHERE status = 'registered';

CREATE TABLE product_usage (
    product_id uuid NOT NULL REFERENCES product_instances (id) ON DELETE CASCADE,
    tag text NOT NULL,
    count integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (product_id, tag)
);

CREATE TABLE usage_reports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id uuid NOT NULL REFERENCES product_instances (id) ON DELETE CASCADE,
    reported_at timestamptz NOT NULL DEFAULT now(),
    usage jsonb NOT NULL
);
CREATE INDEX usage_reports_product ON usage_reports (product_id, id DESC);

CREATE TABLE used_nonces (
    nonce text PRIMARY KEY,
    used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX used_nonces_age ON used_nonces (used_at);
