-- The product instance list (the console's page, the API's and the CLI's device list) is in
-- order of registration within a virtual account: with the first index a page is read in
-- that order and stops at its end, instead of sorting every product of the virtual
-- account. The second finds a product by its serial number alone (the list's search; the
-- live-UDI index needs the PID too).
CREATE INDEX product_instances_va_registered_at
    ON product_instances (virtual_account_id, registered_at, id);
CREATE INDEX product_instances_udi_serial ON product_instances (udi_serial);
