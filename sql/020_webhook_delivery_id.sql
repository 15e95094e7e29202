-- Every delivery's body names the delivery ("deliveryId"), inside what is signed: a
-- receiver drops a delivery it has already had by this id, and the id cannot be changed
-- on the way without breaking the signature (the Satellite-Delivery header is not signed).
--
-- The body is still built once, when the delivery is queued (by the alerts trigger of
-- 016, or by a test request), and stays the same on every retry; this trigger adds the
-- id there, where it is known, whatever queued the delivery.

CREATE FUNCTION webhook_delivery_id_in_body() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    NEW.payload := (NEW.payload::jsonb || jsonb_build_object('deliveryId', NEW.id))::text;
    RETURN NEW;
END
$$;

CREATE TRIGGER webhook_deliveries_id_in_body BEFORE INSERT ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION webhook_delivery_id_in_body();
