-- What left a linked account since the upstream last acknowledged (sql/008_sync.sql): a
-- product that moved to another account, a product deleted (with its virtual account),
-- and a virtual account deleted. A request carries these as departures, in the same
-- snapshot and by the same transaction-id watermark as the products; rows the upstream
-- has acknowledged are forgotten when its answer is applied. Only linked accounts record
-- them.

CREATE TABLE sync_departures (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('product', 'virtualAccount')),
    key text NOT NULL,                           -- the product's id, the virtual account's name
    sync_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    departed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_departures_account ON sync_departures (account_id, sync_xid);

CREATE FUNCTION sync_record_departure(p_account bigint, p_kind text, p_key text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sync_departures (account_id, kind, key)
    SELECT p_account, p_kind, p_key
    WHERE EXISTS (SELECT FROM sync_links WHERE account_id = p_account)
$$;

CREATE FUNCTION sync_product_departed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_account bigint :=
        (SELECT account_id FROM virtual_accounts WHERE id = OLD.virtual_account_id);
BEGIN
    IF TG_OP = 'DELETE' OR old_account IS DISTINCT FROM
            (SELECT account_id FROM virtual_accounts WHERE id = NEW.virtual_account_id) THEN
        PERFORM sync_record_departure(old_account, 'product', OLD.id::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER product_instances_departed AFTER DELETE ON product_instances
    FOR EACH ROW EXECUTE FUNCTION sync_product_departed();
CREATE TRIGGER product_instances_moved AFTER UPDATE OF virtual_account_id ON product_instances
    FOR EACH ROW WHEN (OLD.virtual_account_id IS DISTINCT FROM NEW.virtual_account_id)
    EXECUTE FUNCTION sync_product_departed();

CREATE FUNCTION sync_virtual_account_departed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sync_record_departure(OLD.account_id, 'virtualAccount', OLD.name);
    RETURN NULL;
END $$;
CREATE TRIGGER virtual_accounts_departed AFTER DELETE ON virtual_accounts
    FOR EACH ROW EXECUTE FUNCTION sync_virtual_account_departed();
