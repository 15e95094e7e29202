-- The uses of a registration token without a use limit, counted in stripes: a site's
-- products share one token, and one counter on the token's row made every registration
-- with it wait for the one before to commit. A registration adds its use to the stripe
-- of its database connection (pg_backend_pid() % 16), so registrations on different
-- connections lock different rows. A token's uses are its row's `uses` plus its stripes.
--
-- A token with a limit still counts on its row (`uses < max_uses` checked under the
-- row's lock): of registrations racing for its last uses, exactly as many win as are
-- left. max_uses never changes, so each token is counted in one place only.

CREATE TABLE registration_token_uses (
    token_id bigint NOT NULL REFERENCES registration_tokens (id) ON DELETE CASCADE,
    stripe smallint NOT NULL CHECK (stripe BETWEEN 0 AND 15),
    uses integer NOT NULL CHECK (uses > 0),
    PRIMARY KEY (token_id, stripe)
);
