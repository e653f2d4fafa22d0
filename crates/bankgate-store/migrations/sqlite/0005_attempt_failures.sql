-- Failed credential attempts (secret keys, bank passwords) and the lockouts they lead to, kept
-- in the database so that every node sharing it enforces one limit (not one per node) and a
-- lockout survives a restart. One row per (customer, target, client): `client` is an address
-- (IPv6 per /64) or '*' for the row that counts a target's failures from every client. The
-- target is `secret_key` or `bank_login:` and a short digest of institution and username (never
-- the username itself).
CREATE TABLE attempt_failures (
    -- customer_id, target and client joined by '|': one key the purge can walk
    key           TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    target        TEXT NOT NULL,
    client        TEXT NOT NULL,
    -- failures in the window that began at window_start (0 once a lockout started over)
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    -- every failure recorded on this row since it was created, for operators
    total         INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL,
    -- the limit the last failure counted against (for operators)
    max_failures  INTEGER NOT NULL,
    locked_until  INTEGER,
    -- when the row stops mattering (its window and its lockout are over): the purge's index
    expires_at    INTEGER NOT NULL
);
CREATE INDEX attempt_failures_by_expiry ON attempt_failures (expires_at);
CREATE INDEX attempt_failures_by_customer ON attempt_failures (customer_id);
