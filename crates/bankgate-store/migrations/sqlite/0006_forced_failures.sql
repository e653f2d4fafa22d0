-- Forced failures of sandbox instances: the next calls of a LoginId, a sandbox user or an
-- endpoint fail on purpose. Kept here so every node and every restart sees them.
CREATE TABLE forced_rules (
    id           TEXT PRIMARY KEY,
    instance     TEXT NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    -- failure rules (of /Authorize): the customer, and a LoginId or a lowercase username
    customer_id  TEXT REFERENCES customers (id) ON DELETE CASCADE,
    login_id     TEXT,
    username     TEXT,
    -- fault rules: the endpoint's name
    endpoint     TEXT,
    -- what the call answers (ForcedAction::stored): a name and a number (milliseconds, status)
    action       TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    remaining    INTEGER NOT NULL,
    -- the end of a forced 202 period in progress, on the instance's clock
    active_until INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX forced_rules_by_instance ON forced_rules (instance, endpoint);
CREATE INDEX forced_rules_by_customer ON forced_rules (customer_id, login_id);
