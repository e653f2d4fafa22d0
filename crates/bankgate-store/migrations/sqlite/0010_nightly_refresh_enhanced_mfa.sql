-- The nightly (scheduled) refresh and Enhanced MFA.

-- When IsScheduledRefresh was last switched on (NULL: since the card was made).
ALTER TABLE logins ADD COLUMN scheduled_since INTEGER;
-- The last cached /Authorize of the card (the nightly refresh needs one in the last 7 days).
ALTER TABLE logins ADD COLUMN last_cached_at INTEGER;
-- The FlinksCode of the last refresh's failure; NULL after a success.
ALTER TABLE logins ADD COLUMN refresh_error TEXT;
-- Why the last nightly run did not refresh the card (core::nightly::Stop), and that night.
ALTER TABLE logins ADD COLUMN nightly_stop TEXT;
ALTER TABLE logins ADD COLUMN nightly_stop_at INTEGER;
-- Only flagged cards are walked by the nightly run and GetNightlyRefreshStatus.
CREATE INDEX logins_scheduled ON logins (customer_id) WHERE is_scheduled_refresh;

-- The last night (days since the epoch, of its 02:00) whose refresh ran on an instance: the
-- conditional UPDATE that moves it is how one node, once, runs a night.
CREATE TABLE nightly_runs (
    instance   TEXT PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    last_night INTEGER NOT NULL,
    ran_at     INTEGER
);

-- Enhanced MFA: a card's security questions (indices into its institution's) and, once
-- answered, a digest of the answer (never the answer: see core::sandbox::mfa::answer_digest).
CREATE TABLE login_mfa_answers (
    login_id      TEXT NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    question      INTEGER NOT NULL,
    answer_digest BLOB,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (login_id, question)
);

-- Options of a live /Authorize that must survive its MFA step: ScheduleRefresh (NULL: not
-- sent) and WithMFAQuestions.
ALTER TABLE pending_authorizations ADD COLUMN schedule_refresh INTEGER;
ALTER TABLE pending_authorizations ADD COLUMN with_mfa_questions INTEGER NOT NULL DEFAULT 0;
