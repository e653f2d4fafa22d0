-- The Connect page: one row per browser going through the flow, and the per-instance switch
-- that says whether the page needs an authorize token.

-- The browser holds a random secret (cookie and form field); only its digest is stored.
CREATE TABLE connect_sessions (
    secret_digest BYTEA PRIMARY KEY,
    customer_id   TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- the authorize token the page consumed when it first loaded: a reload may present it again
    token_digest  BYTEA,
    -- the page's own state (step, parameters), JSON written by the server; opaque here
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- idle expiry: pushed back on every step
    expires_at    BIGINT NOT NULL
);
CREATE INDEX connect_sessions_by_expiry ON connect_sessions (expires_at);
CREATE INDEX connect_sessions_by_customer ON connect_sessions (customer_id);

-- No row: the page requires a token (the default).
CREATE TABLE connect_settings (
    instance                 TEXT COLLATE "C" PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    authorize_token_required BOOLEAN NOT NULL
);
