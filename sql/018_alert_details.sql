-- The values an alert's message is made of (a small flat JSON object: tag, counts, dates,
-- names), so the console can say it in the reader's language. NULL: raised before this
-- migration (the console shows the stored message). satellite/domain/alerts.py bounds
-- what the services write far below this check, which keeps a runaway value out.
ALTER TABLE alerts ADD COLUMN details jsonb
    CONSTRAINT alerts_details_small CHECK (
        details IS NULL
        OR (jsonb_typeof(details) = 'object' AND octet_length(details::text) <= 65536)
    );

-- A delivery's payload carries the details too (016's function, with one more field).
CREATE OR REPLACE FUNCTION webhooks_enqueue_alert() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    happened text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        happened := CASE WHEN NEW.cleared_at IS NULL THEN 'alert.raised' ELSE NULL END;
    ELSIF OLD.cleared_at IS NULL AND NEW.cleared_at IS NOT NULL THEN
        happened := 'alert.cleared';
    END IF;
    IF happened IS NULL THEN
        RETURN NULL;
    END IF;
    -- (The body's values are read only for a webhook that matches.)
    INSERT INTO webhook_deliveries (webhook_id, event, payload)
    SELECT w.id, happened, jsonb_build_object(
            'event', happened,
            'alertId', NEW.id,
            'account', (SELECT a.name FROM accounts a WHERE a.id = NEW.account_id),
            'virtualAccount',
            (SELECT va.name FROM virtual_accounts va WHERE va.id = NEW.virtual_account_id),
            'type', NEW.message_type,
            'severity', NEW.severity,
            'source', NEW.source,
            'message', NEW.message,
            'details', NEW.details,
            'raisedAt', webhook_utc(NEW.created_at),
            'clearedAt', webhook_utc(NEW.cleared_at)
        )::text
    FROM webhooks w
    WHERE w.account_id = NEW.account_id AND w.enabled AND happened = ANY (w.events)
        AND (cardinality(w.alert_types) = 0 OR NEW.message_type = ANY (w.alert_types));
    RETURN NULL;
END
$$;
