-- Usage still in the totals although it stopped counting (004): products whose
-- authorization or ID certificate ran out since they were last recounted. Every usage
-- report, and every pool state, subtracts it; found through this index, that reads the
-- lapsed products of one virtual account and no other, at ten thousand products as at a
-- million. (The expiry indexes of 003 hold every live registration: a plan made without
-- the time, as a statement prepared once is, read all of them or the whole table.)
CREATE INDEX product_instances_lapse
    ON product_instances (counted_in, least(authorization_expires_at, certificate_expires_at))
    WHERE counted_in IS NOT NULL;
