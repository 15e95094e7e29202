-- Issue 14: the console's sign-in sessions. The cookie carries a random session id; only
-- its digest is stored, so a copy of the database does not sign anyone in. The CSRF
-- secret is the token the console's forms carry (it is not a credential on its own).
CREATE TABLE console_sessions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_digest bytea NOT NULL UNIQUE,
    principal_id bigint NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    csrf_secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX console_sessions_principal ON console_sessions (principal_id);
