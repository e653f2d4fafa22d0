-- The live /Authorize flow: connections in the middle of MFA, unsaved LoginIds, and what a
-- session carries for the data endpoints.

-- A connection being authorized (MFA pending). Becomes a session once the answers are right.
CREATE TABLE pending_authorizations (
    request_id  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    institution TEXT NOT NULL,
    username    TEXT NOT NULL,
    language    TEXT NOT NULL,
    save        INTEGER NOT NULL,
    tag         TEXT,
    -- set when a saved LoginId is refreshed live
    login_id    TEXT REFERENCES logins (id) ON DELETE CASCADE,
    -- indices of the institution's questions asked at this step, comma separated
    questions   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- idle expiry: pushed back on every call
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pending_authorizations_by_expiry ON pending_authorizations (expires_at);

ALTER TABLE logins ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
-- 0 for connections made with Save: false; they live only as long as their sessions
ALTER TABLE logins ADD COLUMN saved INTEGER NOT NULL DEFAULT 1;

ALTER TABLE sessions ADD COLUMN tag TEXT;
-- when a long data operation (the 202 flow) started for this RequestId
ALTER TABLE sessions ADD COLUMN operation_started_at INTEGER;
