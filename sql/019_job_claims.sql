-- Which node took each scheduled job's run last, and when. A node claims a run in one
-- statement before doing it, and the claim is refused while another node's claim is
-- recent: so two nodes whose runs fall at the same moment do not both do the job (a look
-- at job_runs first could not see a run still in progress, nor one that ended between the
-- look and the run). A failed run gives its claim back (claimed_at NULL). One row per job,
-- never deleted, so a claim can be taken under the row's lock.
CREATE TABLE job_claims (
    job        text        PRIMARY KEY CHECK (length(job) BETWEEN 1 AND 100),
    node       text        NOT NULL CHECK (length(node) BETWEEN 1 AND 200),
    claimed_at timestamptz
);
