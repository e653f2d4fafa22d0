-- The live /Authorize flow: connections in the middle of MFA, unsaved LoginIds, and what a
-- session carries for the data endpoints. Mirrors migrations/sqlite/0002_live_authorize.sql.

-- A connection being authorized (MFA pending). Becomes a session once the answers are right.
CREATE TABLE pending_authorizations (
    request_id  TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    institution TEXT NOT NULL,
    username    TEXT NOT NULL,
    language    TEXT NOT NULL,
    save        BOOLEAN NOT NULL,
    tag         TEXT,
    -- set when a saved LoginId is refreshed live
    login_id    TEXT COLLATE "C" REFERENCES logins (id) ON DELETE CASCADE,
    -- indices of the institution's questions asked at this step, comma separated
    questions   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- idle expiry: pushed back on every call
    expires_at  BIGINT NOT NULL
);
CREATE INDEX pending_authorizations_by_expiry ON pending_authorizations (expires_at);
CREATE INDEX pending_authorizations_by_login ON pending_authorizations (login_id);

ALTER TABLE logins ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
-- false for connections made with Save: false; they live only as long as their sessions
ALTER TABLE logins ADD COLUMN saved BOOLEAN NOT NULL DEFAULT TRUE;

ALTER TABLE sessions ADD COLUMN tag TEXT;
-- when a long data operation (the 202 flow) started for this RequestId
ALTER TABLE sessions ADD COLUMN operation_started_at BIGINT;
