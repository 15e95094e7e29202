-- Alert delivery: webhooks per account, and the queue of their deliveries (an outbox).
--
-- A trigger on alerts enqueues, in the transaction that opens or clears an alert, one
-- delivery per enabled webhook of the account that asked for the event (and the alert's
-- type), whatever code path opened or cleared it. The daemon's worker claims due
-- deliveries (FOR UPDATE SKIP LOCKED), POSTs them and records each attempt.

CREATE TABLE webhooks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What the API names it by (and what its secret's encryption is bound to).
    public_id uuid NOT NULL UNIQUE,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url text NOT NULL,
    -- The signing secret, encrypted with the server's token key (nonce || ciphertext).
    secret bytea NOT NULL,
    events text[] NOT NULL,
    -- Alert types (message_type) delivered; empty: every type.
    alert_types text[] NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The trigger's probe: an account without an enabled webhook costs one index lookup.
CREATE INDEX webhooks_account_enabled ON webhooks (account_id) WHERE enabled;
CREATE INDEX webhooks_account ON webhooks (account_id, id);

CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event text NOT NULL,
    -- The exact body POSTed (and signed): built once, when the event happened.
    payload text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- When a node may next try it; a node that claims it moves this past its lease, so a
    -- node killed mid-attempt leaves it to the others once the lease is over.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    finished_at timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);
-- What the worker forgets after webhooks.log_days.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    node text NOT NULL,
    -- The receiver's HTTP status, or why there was none.
    status_code integer,
    error text,
    duration_ms integer NOT NULL,
    -- The start of the receiver's answer, for the log (never more).
    response_excerpt text NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE FUNCTION webhook_utc(at timestamptz) RETURNS text
    LANGUAGE sql STABLE AS
$$ SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE FUNCTION webhooks_enqueue_alert() RETURNS trigger
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
            'raisedAt', webhook_utc(NEW.created_at),
            'clearedAt', webhook_utc(NEW.cleared_at)
        )::text
    FROM webhooks w
    WHERE w.account_id = NEW.account_id AND w.enabled AND happened = ANY (w.events)
        AND (cardinality(w.alert_types) = 0 OR NEW.message_type = ANY (w.alert_types));
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_webhooks AFTER INSERT OR UPDATE OF cleared_at ON alerts
    FOR EACH ROW EXECUTE FUNCTION webhooks_enqueue_alert();
