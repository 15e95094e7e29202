-- Export-controlled features: export authorization keys granted to registered products.
--
-- A grant takes one license of the feature's export authorization-key tag out of the
-- virtual account's pool for as long as it is 'granted'. It ends when the product gives
-- the key back ('returned') or when the server takes the license back because the
-- product left: deregistered, removed, registered again without export-controlled
-- features or into another virtual account ('released'). Ended rows are kept (with
-- their product) as the history of the product's keys; every change also writes an
-- audit event. updated_at changes with every change of a row.

CREATE TABLE export_keys (
    id uuid PRIMARY KEY,               -- the key id the signed export authorization key carries
    product_id uuid NOT NULL REFERENCES product_instances (id) ON DELETE CASCADE,
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    feature text NOT NULL,
    tag text NOT NULL,
    status text NOT NULL CHECK (status IN ('granted', 'returned', 'released')),
    granted_at timestamptz NOT NULL,
    ended_at timestamptz,
    end_reason text,
    updated_at timestamptz NOT NULL,
    CHECK ((status = 'granted') = (ended_at IS NULL)),
    CHECK ((status = 'granted') = (end_reason IS NULL))
);
-- One live key per product and feature.
CREATE UNIQUE INDEX export_keys_live ON export_keys (product_id, feature) WHERE status = 'granted';
-- What a virtual account's pool has granted, per tag (read with every license position).
CREATE INDEX export_keys_va_live ON export_keys (virtual_account_id, tag) WHERE status = 'granted';
CREATE INDEX export_keys_va ON export_keys (virtual_account_id, granted_at);
CREATE INDEX export_keys_product ON export_keys (product_id, granted_at);
