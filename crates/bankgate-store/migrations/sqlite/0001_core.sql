-- The authorization system: instances, customers and their key digests, authorize tokens,
-- LoginIds and RequestId sessions. Times are microseconds since the Unix epoch (UTC);
-- credentials appear only as SHA-256 digests.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE instances (
    name                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('sandbox', 'production')),
    token_lifetime_secs INTEGER NOT NULL CHECK (token_lifetime_secs > 0),
    created_at          INTEGER NOT NULL
);

CREATE TABLE customers (
    id                       TEXT PRIMARY KEY,
    instance                 TEXT NOT NULL REFERENCES instances (name),
    label                    TEXT NOT NULL,
    authorize_token_required INTEGER NOT NULL,
    api_key_required         INTEGER NOT NULL,
    created_at               INTEGER NOT NULL
);
CREATE INDEX customers_by_instance ON customers (instance);

-- Secret keys and x-api-keys. A rotated-out key keeps working until not_after.
CREATE TABLE customer_keys (
    digest      BLOB PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'api')),
    created_at  INTEGER NOT NULL,
    not_after   INTEGER
);
CREATE INDEX customer_keys_by_customer ON customer_keys (customer_id, kind);

CREATE TABLE authorize_tokens (
    digest      BLOB PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    -- the RequestId the token opened, so an MFA exchange may present it again
    request_id  TEXT
);
-- Purging walks this index from the oldest expiry: work proportional to what expired.
CREATE INDEX authorize_tokens_by_expiry ON authorize_tokens (expires_at);

CREATE TABLE logins (
    id                   TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    institution          TEXT NOT NULL,
    username             TEXT NOT NULL,
    login_type           TEXT NOT NULL,
    is_scheduled_refresh INTEGER NOT NULL,
    last_refresh         INTEGER NOT NULL,
    created_at           INTEGER NOT NULL
);
CREATE INDEX logins_by_customer ON logins (customer_id);

CREATE TABLE sessions (
    request_id  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    login_id    TEXT REFERENCES logins (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_login ON sessions (login_id);
