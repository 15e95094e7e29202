-- Usage per virtual account and tag per UTC day, for reports over time (a quarter, a
-- year). The usage-rollup job samples the positions of every virtual account (purchased,
-- in use, reserved, available, as the licenses view counts them) and folds each sample
-- into the row of its day: the highest in use of the day's samples (peak_in_use), and the
-- last sample's values. A peak between two samples is not seen: `samples` says how many
-- the day's values rest on. Rows are kept for timers.usage_history_days; a usage report
-- writes nothing here (the job reads the running totals instead).

CREATE TABLE usage_daily (
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    tag text NOT NULL,
    day date NOT NULL,
    peak_in_use bigint NOT NULL,
    last_in_use bigint NOT NULL,
    purchased bigint NOT NULL,
    reserved bigint NOT NULL,
    available bigint NOT NULL,
    samples integer NOT NULL CHECK (samples >= 1),
    first_sampled_at timestamptz NOT NULL,
    last_sampled_at timestamptz NOT NULL,
    PRIMARY KEY (virtual_account_id, tag, day)
);

-- The job that forgets rows older than the history finds them by day.
CREATE INDEX usage_daily_day ON usage_daily (day);
