-- The values an alert's message is made of (a small flat JSON object: tag, counts, dates,
-- names), so the console can say it in the reader's language. NULL: raised before this
-- migration (the console shows the stored message). satellite/domain/alerts.py bounds
-- what the services write far below this check, which keeps a runaway value out.
ALTER TABLE alerts ADD COLUMN details jsonb
    CONSTRAINT alerts_details_small CHECK (
        details IS NULL
        OR (jsonb_typeof(details) = 'object' AND octet_length(details::text) <= 65536)
    );
