-- Running totals of what is in use per virtual account and tag, so that a usage report
-- costs the same in a virtual account of ten products as in one of a hundred thousand
-- (summing every product's usage on each report grew with the account).
--
-- product_instances.counted_in is the virtual account whose totals hold the product's
-- usage, or NULL when its usage does not count (ended, or its authorization or ID
-- certificate expired). Every change that can move a product in or out of the totals
-- recounts it in the same transaction, with the product's row locked.
--
-- The totals are split in 16 shards by product (a fixed byte of its id): concurrent
-- reports in one virtual account then rarely wait for the same row. What is in use is
-- the sum over the shards.

ALTER TABLE product_instances ADD COLUMN counted_in bigint;

CREATE TABLE virtual_account_usage (
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    tag text NOT NULL,
    shard smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
    -- (No CHECK (in_use >= 0): INSERT ... ON CONFLICT checks the proposed row, and a
    -- change is added as a negative proposed row.)
    in_use bigint NOT NULL,
    PRIMARY KEY (virtual_account_id, tag, shard)
);

UPDATE product_instances SET counted_in = virtual_account_id
    WHERE status = 'registered' AND authorization_expires_at > now()
    AND certificate_expires_at > now();

INSERT INTO virtual_account_usage (virtual_account_id, tag, shard, in_use)
    SELECT p.counted_in, u.tag, get_byte(uuid_send(p.id), 15) % 16, sum(u.count)
    FROM product_usage u JOIN product_instances p ON p.id = u.product_id
    WHERE p.counted_in IS NOT NULL
    GROUP BY 1, 2, 3;

-- Every report updates its product's row (last contact), its usage rows and a totals row,
-- none of them in an indexed column: with room left on each page PostgreSQL updates them
-- in place (HOT), without a new entry in every index of the table.
ALTER TABLE product_instances SET (fillfactor = 80);
ALTER TABLE product_usage SET (fillfactor = 80);
ALTER TABLE virtual_account_usage SET (fillfactor = 50);
