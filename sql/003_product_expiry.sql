-- What the scheduled jobs record as time passes.
--
-- A registration whose ID certificate expired ends: the product instance becomes
-- 'registration_expired' (ended_at = when the certificate expired), its usage no longer
-- counts and its next request is refused until it registers again with a token.
--
-- authorization_lapse_recorded is the authorization expiry the job last recorded as
-- lapsed, so each lapse is recorded once; a renewal moves authorization_expires_at on,
-- and its next lapse differs from the recorded one.

ALTER TABLE product_instances DROP CONSTRAINT product_instances_status_check;
ALTER TABLE product_instances ADD CONSTRAINT product_instances_status_check
    CHECK (status IN ('registered', 'registration_expired', 'deregistered', 'removed'));

ALTER TABLE product_instances ADD COLUMN authorization_lapse_recorded timestamptz;

-- The jobs look for live registrations by their expiry dates.
CREATE INDEX product_instances_authorization_expiry
    ON product_instances (authorization_expires_at) WHERE status = 'registered';
CREATE INDEX product_instances_certificate_expiry
    ON product_instances (certificate_expires_at) WHERE status = 'registered';
