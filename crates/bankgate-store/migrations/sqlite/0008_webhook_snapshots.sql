-- A callback is queued as a small row written with the authorization (the LoginId as it was
-- then, the session's tag) and its body is built when it is sent, by the code that answers
-- GetAccountsDetail: the request that completes an authorization no longer builds and writes
-- both bodies. `body` stays for rows queued before this change (sent as stored), so it becomes
-- nullable: SQLite cannot drop a NOT NULL, so the table is rebuilt. A callback whose turn has
-- not come (GetAccountsDetail before its KYC is done) is 'waiting'. The lease is now on the
-- instance's clock, like every other time of this table (see 0007 for the columns kept).
CREATE TABLE webhook_deliveries_new (
    id                      TEXT PRIMARY KEY,
    instance                TEXT NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    request_id              TEXT NOT NULL,
    login_id                TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    position                INTEGER NOT NULL,
    -- the exact bytes, for rows queued before 0008; NULL: built from the snapshot below
    body                    TEXT,
    -- 'waiting': a later callback of its RequestId, claimable once the one before it is
    -- delivered or given up (kept out of the claim's scan meanwhile)
    status                  TEXT NOT NULL
                            CHECK (status IN ('pending', 'waiting', 'delivered', 'failed')),
    attempts                INTEGER NOT NULL,
    created_at              INTEGER NOT NULL,
    next_attempt_at         INTEGER NOT NULL,
    lease_until             INTEGER,
    last_status             INTEGER,
    last_error              TEXT,
    finished_at             INTEGER,
    -- the LoginId as the authorization left it, and the session's tag (the body repeats them;
    -- the LoginId may be refreshed or deleted, the session purged, before the last retry)
    customer_id             TEXT,
    login_institution       TEXT,
    login_username          TEXT,
    login_type              TEXT,
    login_scheduled_refresh INTEGER,
    login_last_refresh      INTEGER,
    login_created_at        INTEGER,
    login_language          TEXT,
    login_saved             INTEGER,
    tag                     TEXT,
    CHECK (body IS NOT NULL OR login_created_at IS NOT NULL)
);
INSERT INTO webhook_deliveries_new (id, instance, request_id, login_id, kind, position, body,
    status, attempts, created_at, next_attempt_at, lease_until, last_status, last_error,
    finished_at)
SELECT id, instance, request_id, login_id, kind, position, body, status, attempts, created_at,
    next_attempt_at, lease_until, last_status, last_error, finished_at
FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_request ON webhook_deliveries (request_id, position);
CREATE INDEX webhook_deliveries_by_instance ON webhook_deliveries (instance, created_at);
-- Leases taken before were on real time: released (at worst a callback is sent again, with
-- its delivery id, which at-least-once delivery allows).
UPDATE webhook_deliveries SET lease_until = NULL;
