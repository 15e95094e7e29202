-- Rate-limit counters, shared by every daemon on the database (satellite.services.limits).
-- One row per limit kind and key (a credential name, a token, a virtual account or a
-- source address, as its SHA-256: a mistyped password in a user name field is not kept).
-- A window starts with the first attempt after the previous one ended, and ends at
-- window_ends; attempts are counted by one UPSERT each, on the database's clock, so that
-- daemons whose clocks differ still count in the same window.
--
-- UNLOGGED: counters are worth no WAL (a crash of PostgreSQL empties the table, which
-- only starts every window afresh), and they change on every attempt. No index on window_ends, so that counting stays a HOT update;
-- the scheduled job that forgets ended windows reads the whole table once a run.
CREATE UNLOGGED TABLE rate_limit_counters (
    kind text NOT NULL,
    key bytea NOT NULL,
    window_ends timestamptz NOT NULL,
    hits integer NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (kind, key)
) WITH (fillfactor = 70);
