-- The authorization system: instances, customers and their key digests, authorize tokens,
-- LoginIds and RequestId sessions. The same schema as migrations/sqlite/0001_core.sql: times are
-- microseconds since the Unix epoch (UTC) in BIGINT; credentials appear only as SHA-256 digests
-- (BYTEA). Names and ids compare byte-wise (COLLATE "C"), as in SQLite, so listings sort the same.

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE instances (
    name                TEXT COLLATE "C" PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('sandbox', 'production')),
    token_lifetime_secs BIGINT NOT NULL CHECK (token_lifetime_secs > 0),
    created_at          BIGINT NOT NULL
);

CREATE TABLE customers (
    id                       TEXT COLLATE "C" PRIMARY KEY,
    instance                 TEXT COLLATE "C" NOT NULL REFERENCES instances (name),
    label                    TEXT NOT NULL,
    authorize_token_required BOOLEAN NOT NULL,
    api_key_required         BOOLEAN NOT NULL,
    created_at               BIGINT NOT NULL
);
CREATE INDEX customers_by_instance ON customers (instance);

-- Secret keys and x-api-keys. A rotated-out key keeps working until not_after.
CREATE TABLE customer_keys (
    digest      BYTEA PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'api')),
    created_at  BIGINT NOT NULL,
    not_after   BIGINT
);
CREATE INDEX customer_keys_by_customer ON customer_keys (customer_id, kind);

CREATE TABLE authorize_tokens (
    digest      BYTEA PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT,
    -- the RequestId the token opened, so an MFA exchange may present it again
    request_id  TEXT COLLATE "C"
);
-- Purging walks this index from the oldest expiry: work proportional to what expired.
CREATE INDEX authorize_tokens_by_expiry ON authorize_tokens (expires_at);
-- reset_instance deletes by customer
CREATE INDEX authorize_tokens_by_customer ON authorize_tokens (customer_id);

CREATE TABLE logins (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    customer_id          TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    institution          TEXT NOT NULL,
    username             TEXT NOT NULL,
    login_type           TEXT NOT NULL,
    is_scheduled_refresh BOOLEAN NOT NULL,
    last_refresh         BIGINT NOT NULL,
    created_at           BIGINT NOT NULL
);
CREATE INDEX logins_by_customer ON logins (customer_id);

CREATE TABLE sessions (
    request_id  TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    login_id    TEXT COLLATE "C" REFERENCES logins (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_login ON sessions (login_id);
