-- Webhooks (KYC and GetAccountsDetail callbacks), configured per instance and delivered from a
-- durable outbox, so a restart loses no callback and several nodes share the sending.

-- One webhook per instance. The secret signs callbacks (HMAC), so it is kept as is, not as a
-- digest; it is shown once, when it is made.
CREATE TABLE instance_webhooks (
    instance   TEXT COLLATE "C" PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One callback to send. `id` is the X-Bankgate-Delivery header; `position` orders the callbacks
-- of one RequestId (KYC before GetAccountsDetail). `next_attempt_at` is on the instance's clock
-- (real time plus its offset); `lease_until` on real time: while it is in the future, a node is
-- sending this row and no other takes it.
CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    instance        TEXT COLLATE "C" NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    request_id      TEXT COLLATE "C" NOT NULL,
    login_id        TEXT COLLATE "C" NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    position        BIGINT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_request ON webhook_deliveries (request_id, position);
CREATE INDEX webhook_deliveries_by_instance ON webhook_deliveries (instance, created_at);
