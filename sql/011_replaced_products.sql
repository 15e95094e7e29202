-- A registration forced in the product's own virtual account replaces the live product
-- instance of the same UDI (services/devices.py): the old instance ends as 'replaced'
-- (ended_at = when), its usage and export keys released; its product, still holding the
-- old key, is told so on its next request instead of failing a signature check.

ALTER TABLE product_instances DROP CONSTRAINT product_instances_status_check;
ALTER TABLE product_instances ADD CONSTRAINT product_instances_status_check
    CHECK (status IN ('registered', 'registration_expired', 'deregistered', 'removed',
                      'replaced'));
