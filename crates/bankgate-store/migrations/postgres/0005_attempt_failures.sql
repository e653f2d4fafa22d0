-- Failed credential attempts (secret keys, bank passwords) and the lockouts they lead to, kept
-- in the database so that every node sharing it enforces one limit (not one per node) and a
-- lockout survives a restart. One row per (customer, target, client): `client` is an address
-- (IPv6 per /64) or '*' for the row that counts a target's failures from every client. The
-- target is `secret_key` or `bank_login:` and a short digest of institution and username (never
-- the username itself).
CREATE TABLE attempt_failures (
    -- customer_id, target and client joined by '|': one key the purge can walk
    key           TEXT COLLATE "C" PRIMARY KEY,
    customer_id   TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    target        TEXT COLLATE "C" NOT NULL,
    client        TEXT COLLATE "C" NOT NULL,
    -- failures in the window that began at window_start (0 once a lockout started over)
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    -- every failure recorded on this row since it was created, for operators
    total         BIGINT NOT NULL,
    last_failure  BIGINT NOT NULL,
    -- the limit the last failure counted against (for operators)
    max_failures  BIGINT NOT NULL,
    locked_until  BIGINT,
    -- when the row stops mattering (its window and its lockout are over): the purge's index
    expires_at    BIGINT NOT NULL
);
CREATE INDEX attempt_failures_by_expiry ON attempt_failures (expires_at);
CREATE INDEX attempt_failures_by_customer ON attempt_failures (customer_id);
