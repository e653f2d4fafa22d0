-- AuthorizeAsync: the latest step of each RequestId authorized through /AuthorizeAsync. The
-- step's answer was decided by /Authorize's code when the step was sent; polls show it from
-- `ready_at` (on the instance's clock) and a 202 before.
CREATE TABLE authorize_async_steps (
    request_id  TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- the LoginId an authorized step opened: DeleteCard ends the step with its sessions
    login_id    TEXT REFERENCES logins (id) ON DELETE CASCADE,
    -- the rendered answer (status, headers, body), JSON written by the server; opaque here
    answer      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    ready_at    INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX authorize_async_steps_by_expiry ON authorize_async_steps (expires_at);
CREATE INDEX authorize_async_steps_by_customer ON authorize_async_steps (customer_id);
CREATE INDEX authorize_async_steps_by_login ON authorize_async_steps (login_id);
