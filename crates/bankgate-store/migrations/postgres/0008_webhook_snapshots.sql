-- A callback is queued as a small row written with the authorization (the LoginId as it was
-- then, the session's tag) and its body is built when it is sent, by the code that answers
-- GetAccountsDetail: the request that completes an authorization no longer builds and writes
-- both bodies. `body` stays for rows queued before this change (sent as stored). The lease is
-- now on the instance's clock, like every other time of this table.
ALTER TABLE webhook_deliveries ALTER COLUMN body DROP NOT NULL;
-- the LoginId as the authorization left it, and the session's tag (the body repeats them; the
-- LoginId may be refreshed or deleted, the session purged, before the last retry)
ALTER TABLE webhook_deliveries
    ADD COLUMN customer_id             TEXT COLLATE "C",
    ADD COLUMN login_institution       TEXT,
    ADD COLUMN login_username          TEXT,
    ADD COLUMN login_type              TEXT,
    ADD COLUMN login_scheduled_refresh BOOLEAN,
    ADD COLUMN login_last_refresh      BIGINT,
    ADD COLUMN login_created_at        BIGINT,
    ADD COLUMN login_language          TEXT,
    ADD COLUMN login_saved             BOOLEAN,
    ADD COLUMN tag                     TEXT,
    ADD CONSTRAINT webhook_deliveries_body_or_snapshot
        CHECK (body IS NOT NULL OR login_created_at IS NOT NULL);
-- 'waiting': a later callback of its RequestId, claimable once the one before it is delivered or
-- given up (kept out of the claim's scan meanwhile).
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'waiting', 'delivered', 'failed'));
-- Leases taken before were on real time: released (at worst a callback is sent again, with
-- its delivery id, which at-least-once delivery allows).
UPDATE webhook_deliveries SET lease_until = NULL;
