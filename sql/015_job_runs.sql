-- The runs of the scheduled jobs, by every node on the database (the scheduler's and
-- `satellite job run`'s), so that any node can say when each job last ran, where, and how
-- it went. Bounded: each run that is recorded forgets the oldest runs of its job beyond a
-- number, in the same transaction (satellite/storage/job_runs.py).
CREATE TABLE job_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text        NOT NULL CHECK (length(job) BETWEEN 1 AND 100),
    node        text        NOT NULL CHECK (length(node) BETWEEN 1 AND 200),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL CHECK (finished_at >= started_at),
    outcome     text        NOT NULL CHECK (outcome IN ('done', 'skipped', 'failed')),
    counts      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reason      text        CHECK (length(reason) <= 500)
);
CREATE INDEX job_runs_job_started ON job_runs (job, started_at DESC, id DESC);
