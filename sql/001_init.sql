-- Foundation schema: accounts, virtual accounts, license pools, registration tokens,
-- API principals and their access tokens, the audit log and alerts.

CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    export_controlled_allowed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE virtual_accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

CREATE TABLE license_lines (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE RESTRICT,
    tag text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    license_type text NOT NULL CHECK (license_type IN ('PERPETUAL', 'TERM', 'SUBSCRIPTION')),
    start_date date,
    end_date date,
    subscription_id text,
    export_restricted boolean NOT NULL DEFAULT false,
    source text NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'upstream')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (license_type = 'PERPETUAL' OR end_date IS NOT NULL),
    CHECK (start_date IS NULL OR end_date IS NULL OR start_date <= end_date)
);
CREATE INDEX license_lines_va_tag ON license_lines (virtual_account_id, tag);

CREATE TABLE registration_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    virtual_account_id bigint NOT NULL REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    token_digest bytea NOT NULL UNIQUE,
    token_ciphertext bytea NOT NULL,
    description text NOT NULL DEFAULT '',
    export_controlled boolean NOT NULL,
    max_uses integer CHECK (max_uses IS NULL OR max_uses > 0),
    uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX registration_tokens_va ON registration_tokens (virtual_account_id, id);

CREATE TABLE principals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('client', 'user')),
    login text NOT NULL UNIQUE,
    secret_digest bytea,
    password_hash text,
    role text NOT NULL CHECK (role IN ('system-admin', 'account-admin', 'account-viewer')),
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CHECK ((kind = 'client') = (secret_digest IS NOT NULL)),
    CHECK ((kind = 'user') = (password_hash IS NOT NULL))
);

CREATE TABLE principal_accounts (
    principal_id bigint NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (principal_id, account_id)
);

CREATE TABLE access_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id bigint NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    token_digest bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX access_tokens_principal ON access_tokens (principal_id);

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    request_id text
);
CREATE INDEX events_account ON events (account_id, id DESC);

CREATE TABLE alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    virtual_account_id bigint REFERENCES virtual_accounts (id) ON DELETE CASCADE,
    dedupe_key text NOT NULL,
    message_type text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('Info', 'Minor', 'Major', 'Critical')),
    source text NOT NULL,
    message text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    cleared_at timestamptz
);
CREATE UNIQUE INDEX alerts_open ON alerts (account_id, dedupe_key) WHERE cleared_at IS NULL;
CREATE INDEX alerts_account ON alerts (account_id, id DESC);
