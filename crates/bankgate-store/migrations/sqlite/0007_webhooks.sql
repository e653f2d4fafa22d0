-- Webhooks (KYC and GetAccountsDetail callbacks), configured per instance and delivered from a
-- durable outbox, so a restart loses no callback and several nodes share the sending.

-- One webhook per instance. The secret signs callbacks (HMAC), so it is kept as is, not as a
-- digest; it is shown once, when it is made.
CREATE TABLE instance_webhooks (
    instance   TEXT PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One callback to send. `id` is the X-Bankgate-Delivery header; `position` orders the callbacks
-- of one RequestId (KYC before GetAccountsDetail). `next_attempt_at` is on the instance's clock
-- (real time plus its offset); `lease_until` on real time: while it is in the future, a node is
-- sending this row and no other takes it.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    instance        TEXT NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    request_id      TEXT NOT NULL,
    login_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    position        INTEGER NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_request ON webhook_deliveries (request_id, position);
CREATE INDEX webhook_deliveries_by_instance ON webhook_deliveries (instance, created_at);
