//! Every store operation, written once over the [`Tx`] primitives. A backend runs each one in a
//! transaction of its own (writes) or on a connection (reads); see [`crate::SqlStore`].
//!
//! Guarantees come from the statements themselves, so they hold across processes and nodes: a
//! token is spent by one conditional UPDATE (on PostgreSQL, READ COMMITTED re-checks its WHERE
//! after waiting on another node's row lock; SQLite has a single writer), a pending MFA step is
//! completed by the one DELETE that finds it, and purges skip rows locked elsewhere.

use std::time::Duration;

use bankgate_core::forced::{ForcedAction, ForcedRule, ForcedTarget};
use bankgate_core::model::{
    CardOptions, Customer, Instance, InstanceKind, KeyKind, Login, LoginType, MAX_CLOCK_OFFSET,
    PendingAuthorization, Session, Tenant,
};
use bankgate_core::nightly::{self, ScheduledCard, Stop};
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};

use crate::nightly::{MfaAnswers, NightlyRun, StoppedCard};
use crate::sql::{Param, Row, StoreError, Tx, params};
use crate::webhooks::{
    AttemptResult, CALLBACK_KINDS, CallbackSubject, Delivery, DeliveryContent,
    MAX_DELIVERY_ATTEMPTS, NewDelivery, RETRY_INTERVAL, Webhook,
};
use crate::{
    AsyncStep, AttemptFailure, AttemptFailures, AttemptFilter, AttemptKey, AttemptState,
    CachedAuthorize, ClockChange, ClockMoved, CompleteAuthorization, ConnectSession,
    ConnectStatements, CredentialMatch, ForcedCall, ForcedScope, KeyDigests, LoginChange, NewToken,
    OpenOutcome, Reset, TokenRecord, TokenUse,
};

/// Rows a purge deletes per transaction, so a large purge never stalls the token path.
pub const PURGE_CHUNK: i64 = 5_000;

// ---- row mapping ----

const INSTANCE_COLS: &str =
    "i.name, i.kind, i.token_lifetime_secs, i.created_at, i.clock_offset_micros";

fn instance_from(row: &Row, at: usize) -> Result<Instance, StoreError> {
    Ok(Instance {
        name: row.parse(at)?,
        kind: row.parse(at + 1)?,
        token_lifetime: Duration::from_secs(u64::try_from(row.i64(at + 2)?).unwrap_or(0)),
        created_at: row.ts(at + 3)?,
        clock_offset: duration_from_micros(row.i64(at + 4)?),
    })
}

fn duration_from_micros(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

const CUSTOMER_COLS: &str = "c.id, c.instance, c.label, c.authorize_token_required, \
     c.api_key_required, c.created_at";

fn customer_from(row: &Row, at: usize) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: row.parse(at)?,
        instance: row.parse(at + 1)?,
        label: row.string(at + 2)?,
        authorize_token_required: row.bool(at + 3)?,
        api_key_required: row.bool(at + 4)?,
        created_at: row.ts(at + 5)?,
    })
}

const LOGIN_COLS: &str = "id, customer_id, institution, username, login_type, \
     is_scheduled_refresh, last_refresh, created_at, language, saved";

fn login_from(row: &Row) -> Result<Login, StoreError> {
    Ok(Login {
        id: row.parse(0)?,
        customer_id: row.parse(1)?,
        institution: row.string(2)?,
        username: row.string(3)?,
        login_type: row.parse::<LoginType>(4)?,
        is_scheduled_refresh: row.bool(5)?,
        last_refresh: row.ts(6)?,
        created_at: row.ts(7)?,
        language: row.parse(8)?,
        saved: row.bool(9)?,
    })
}

const SESSION_COLS: &str =
    "request_id, customer_id, login_id, created_at, expires_at, tag, operation_started_at";

fn session_from(row: &Row) -> Result<Session, StoreError> {
    Ok(Session {
        request_id: row.parse(0)?,
        customer_id: row.parse(1)?,
        login_id: row.parse(2)?,
        created_at: row.ts(3)?,
        expires_at: row.ts(4)?,
        tag: row.opt_string(5)?,
        operation_started_at: row.opt_ts(6)?,
    })
}

const PENDING_COLS: &str = "request_id, customer_id, institution, username, language, save, \
     tag, login_id, questions, created_at, expires_at, schedule_refresh, with_mfa_questions";

fn pending_from(row: &Row) -> Result<PendingAuthorization, StoreError> {
    let questions = row
        .text(8)?
        .split(',')
        .filter(|q| !q.is_empty())
        .map(|q| {
            q.parse::<usize>()
                .map_err(|e| StoreError::Corrupt(format!("questions: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PendingAuthorization {
        request_id: row.parse(0)?,
        customer_id: row.parse(1)?,
        institution: row.string(2)?,
        username: row.string(3)?,
        language: row.parse(4)?,
        save: row.bool(5)?,
        tag: row.opt_string(6)?,
        login_id: row.opt_parse(7)?,
        questions,
        created_at: row.ts(9)?,
        expires_at: row.ts(10)?,
        options: CardOptions {
            schedule_refresh: row.opt_bool(11)?,
            with_mfa_questions: row.bool(12)?,
        },
    })
}

fn key_kind(text: &str) -> KeyKind {
    if text == "secret" {
        KeyKind::Secret
    } else {
        KeyKind::Api
    }
}

/// A constraint failure as the domain names it; anything else unchanged.
fn conflict_as(
    error: StoreError,
    conflict: impl FnOnce() -> String,
    missing: impl FnOnce() -> DomainError,
) -> StoreError {
    match error {
        StoreError::Unique(_) => StoreError::Domain(DomainError::Conflict(conflict())),
        StoreError::ForeignKey(_) => StoreError::Domain(missing()),
        other => other,
    }
}

// ---- instances and customers ----

pub async fn insert_instance(tx: &mut dyn Tx, instance: &Instance) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO instances (name, kind, token_lifetime_secs, created_at, clock_offset_micros) \
         VALUES ($1, $2, $3, $4, $5)",
        params![
            instance.name.as_str(),
            instance.kind.as_str(),
            i64::try_from(instance.token_lifetime.as_secs()).unwrap_or(i64::MAX),
            instance.created_at,
            micros_of(instance.clock_offset),
        ],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || format!("instance {}", instance.name),
            || DomainError::Unavailable("instances refer to nothing".to_owned()),
        )
    })?;
    Ok(())
}

pub async fn instance(tx: &mut dyn Tx, name: &str) -> Result<Option<Instance>, StoreError> {
    tx.query_opt(
        &format!("SELECT {INSTANCE_COLS} FROM instances i WHERE i.name = $1"),
        params![name],
    )
    .await?
    .map(|row| instance_from(&row, 0))
    .transpose()
}

pub async fn list_instances(tx: &mut dyn Tx) -> Result<Vec<Instance>, StoreError> {
    tx.query(
        &format!("SELECT {INSTANCE_COLS} FROM instances i ORDER BY i.name"),
        &[],
    )
    .await?
    .iter()
    .map(|row| instance_from(row, 0))
    .collect()
}

async fn insert_keys(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    keys: KeyDigests,
    now: Timestamp,
) -> Result<(), StoreError> {
    let customer = customer_id.to_string();
    for (digest, kind) in [(keys.secret, KeyKind::Secret), (keys.api, KeyKind::Api)] {
        tx.execute(
            "INSERT INTO customer_keys (digest, customer_id, kind, created_at) \
             VALUES ($1, $2, $3, $4)",
            params![&digest, &customer, kind.as_str(), now],
        )
        .await
        .map_err(|error| {
            conflict_as(
                error,
                || "a key with this value".to_owned(),
                || DomainError::NotFound {
                    what: "customer",
                    id: customer.clone(),
                },
            )
        })?;
    }
    Ok(())
}

pub async fn insert_customer(
    tx: &mut dyn Tx,
    customer: &Customer,
    keys: KeyDigests,
) -> Result<(), StoreError> {
    if instance(tx, customer.instance.as_str()).await?.is_none() {
        return Err(StoreError::Domain(DomainError::NotFound {
            what: "instance",
            id: customer.instance.to_string(),
        }));
    }
    tx.execute(
        "INSERT INTO customers \
         (id, instance, label, authorize_token_required, api_key_required, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        params![
            &customer.id.to_string(),
            customer.instance.as_str(),
            &customer.label,
            customer.authorize_token_required,
            customer.api_key_required,
            customer.created_at,
        ],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || format!("customer {}", customer.id),
            || DomainError::NotFound {
                what: "instance",
                id: customer.instance.to_string(),
            },
        )
    })?;
    insert_keys(tx, customer.id, keys, customer.created_at).await
}

pub async fn list_customers(
    tx: &mut dyn Tx,
    instance: Option<&str>,
) -> Result<Vec<Customer>, StoreError> {
    tx.query(
        &format!(
            "SELECT {CUSTOMER_COLS} FROM customers c \
             WHERE CAST($1 AS TEXT) IS NULL OR c.instance = $1 ORDER BY c.instance, c.created_at, c.id"
        ),
        params![instance],
    )
    .await?
    .iter()
    .map(|row| customer_from(row, 0))
    .collect()
}

pub async fn tenant(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
) -> Result<Option<Tenant>, StoreError> {
    tx.query_opt(
        &format!(
            "SELECT {CUSTOMER_COLS}, {INSTANCE_COLS} FROM customers c \
             JOIN instances i ON i.name = c.instance WHERE c.id = $1"
        ),
        params![&customer_id.to_string()],
    )
    .await?
    .map(|row| {
        Ok(Tenant {
            customer: customer_from(&row, 0)?,
            instance: instance_from(&row, 6)?,
        })
    })
    .transpose()
}

pub async fn rotate_keys(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    keys: KeyDigests,
    now: Timestamp,
    retire_old_at: Timestamp,
) -> Result<(), StoreError> {
    let customer = customer_id.to_string();
    if tx
        .query_opt("SELECT 1 FROM customers WHERE id = $1", params![&customer])
        .await?
        .is_none()
    {
        return Err(StoreError::Domain(DomainError::NotFound {
            what: "customer",
            id: customer,
        }));
    }
    // Shorten, never lengthen, the life of keys already on their way out.
    tx.execute(
        "UPDATE customer_keys SET not_after = $2 \
         WHERE customer_id = $1 AND (not_after IS NULL OR not_after > $2)",
        params![&customer, retire_old_at],
    )
    .await?;
    insert_keys(tx, customer_id, keys, now).await
}

/// Seeds a fixed-credential customer once; two nodes starting at once: the second waits on
/// the first's marker row, then skips.
pub async fn seed_once(
    tx: &mut dyn Tx,
    marker: &str,
    instance: &Instance,
    customer: &Customer,
    keys: KeyDigests,
) -> Result<bool, StoreError> {
    let inserted = tx
        .execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            params![marker, &instance.created_at.to_rfc3339()],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    insert_instance(tx, instance).await?;
    insert_customer(tx, customer, keys).await?;
    Ok(true)
}

// ---- credentials and tokens ----

/// A credential as stored: a key keeps the time it retires, so a cached copy can tell
/// "retired" at any later instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Key {
        customer_id: CustomerId,
        instance: bankgate_core::InstanceName,
        instance_kind: InstanceKind,
        kind: KeyKind,
        not_after: Option<Timestamp>,
    },
    Token(CredentialMatch),
}

impl Credential {
    /// What the credential is at `now`.
    pub fn at(&self, now: Timestamp) -> CredentialMatch {
        match self {
            Self::Key {
                customer_id,
                instance,
                instance_kind,
                kind,
                not_after,
            } => CredentialMatch::Key {
                customer_id: *customer_id,
                instance: instance.clone(),
                instance_kind: *instance_kind,
                kind: *kind,
                retired_at: not_after.filter(|at| *at <= now),
            },
            Self::Token(token) => token.clone(),
        }
    }
}

pub async fn find_credential(
    tx: &mut dyn Tx,
    digest: Digest,
) -> Result<Option<Credential>, StoreError> {
    // One round trip for both kinds of credential.
    let Some(row) = tx
        .query_opt(
            "SELECT k.customer_id, c.instance, i.kind, k.kind, k.not_after \
             FROM customer_keys k JOIN customers c ON c.id = k.customer_id \
             JOIN instances i ON i.name = c.instance WHERE k.digest = $1 \
             UNION ALL \
             SELECT t.customer_id, c.instance, i.kind, 'token', NULL \
             FROM authorize_tokens t JOIN customers c ON c.id = t.customer_id \
             JOIN instances i ON i.name = c.instance WHERE t.digest = $1 \
             LIMIT 1",
            params![&digest],
        )
        .await?
    else {
        return Ok(None);
    };
    let customer_id = row.parse(0)?;
    let instance = row.parse(1)?;
    let instance_kind = row.parse(2)?;
    Ok(Some(match row.text(3)? {
        "token" => Credential::Token(CredentialMatch::Token {
            customer_id,
            instance,
            instance_kind,
        }),
        kind => Credential::Key {
            customer_id,
            instance,
            instance_kind,
            kind: key_kind(kind),
            not_after: row.opt_ts(4)?,
        },
    }))
}

pub async fn issue_token(tx: &mut dyn Tx, token: NewToken) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        params![
            &token.digest,
            &token.customer_id.to_string(),
            token.issued_at,
            token.expires_at,
        ],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || "a token with this value".to_owned(),
            || DomainError::NotFound {
                what: "customer",
                id: token.customer_id.to_string(),
            },
        )
    })?;
    Ok(())
}

/// Consumes the token if it is this customer's, unused and unexpired; classifies it otherwise.
pub async fn consume_token(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    digest: Digest,
    request_id: Option<RequestId>,
    now: Timestamp,
) -> Result<TokenUse, StoreError> {
    let request_id = request_id.map(|id| id.to_string());
    // One conditional UPDATE: atomic whoever else shares the database.
    let consumed = tx
        .execute(
            "UPDATE authorize_tokens SET consumed_at = $1, request_id = $2 \
             WHERE digest = $3 AND customer_id = $4 AND consumed_at IS NULL AND expires_at > $1",
            params![
                now,
                request_id.as_deref(),
                &digest,
                &customer_id.to_string()
            ],
        )
        .await?;
    if consumed == 1 {
        return Ok(TokenUse::Consumed);
    }
    let Some(row) = tx
        .query_opt(
            "SELECT t.customer_id, t.consumed_at, t.expires_at, c.instance, i.kind \
             FROM authorize_tokens t JOIN customers c ON c.id = t.customer_id \
             JOIN instances i ON i.name = c.instance WHERE t.digest = $1",
            params![&digest],
        )
        .await?
    else {
        return Ok(TokenUse::Unknown);
    };
    let owner: CustomerId = row.parse(0)?;
    Ok(if owner != customer_id {
        TokenUse::OtherCustomer {
            instance: row.parse(3)?,
            instance_kind: row.parse::<InstanceKind>(4)?,
        }
    } else if let Some(at) = row.opt_ts(1)? {
        TokenUse::Used { at }
    } else {
        TokenUse::Expired { at: row.ts(2)? }
    })
}

pub async fn token_record(
    tx: &mut dyn Tx,
    digest: Digest,
) -> Result<Option<TokenRecord>, StoreError> {
    tx.query_opt(
        "SELECT customer_id, issued_at, expires_at, consumed_at, request_id \
         FROM authorize_tokens WHERE digest = $1",
        params![&digest],
    )
    .await?
    .map(|row| {
        Ok(TokenRecord {
            customer_id: row.parse(0)?,
            issued_at: row.ts(1)?,
            expires_at: row.ts(2)?,
            consumed_at: row.opt_ts(3)?,
            request_id: row.opt_parse(4)?,
        })
    })
    .transpose()
}

// ---- LoginIds and sessions ----

pub async fn insert_login(tx: &mut dyn Tx, login: &Login) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO logins ({LOGIN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        params![
            &login.id.to_string(),
            &login.customer_id.to_string(),
            &login.institution,
            &login.username,
            login.login_type.as_str(),
            login.is_scheduled_refresh,
            login.last_refresh,
            login.created_at,
            login.language.as_str(),
            login.saved,
        ],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || format!("LoginId {}", login.id),
            || DomainError::NotFound {
                what: "customer",
                id: login.customer_id.to_string(),
            },
        )
    })?;
    Ok(())
}

/// The customer's LoginId; `saved_only` hides connections made with `Save: false`.
pub async fn login(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
    saved_only: bool,
) -> Result<Option<Login>, StoreError> {
    tx.query_opt(
        &format!(
            "SELECT {LOGIN_COLS} FROM logins WHERE id = $1 AND customer_id = $2 \
             AND (saved OR NOT $3)"
        ),
        params![&login_id.to_string(), &customer_id.to_string(), saved_only],
    )
    .await?
    .map(|row| login_from(&row))
    .transpose()
}

/// The Connect page's statement parameters on a LoginId; `None` for a card the page did not
/// connect (its months are NULL).
pub async fn connect_statements(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
) -> Result<Option<ConnectStatements>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT connect_statements_enabled, connect_statement_months FROM logins \
             WHERE id = $1 AND customer_id = $2",
            params![&login_id.to_string(), &customer_id.to_string()],
        )
        .await?
    else {
        return Ok(None);
    };
    let Some(months) = row.opt_text(1)? else {
        return Ok(None);
    };
    Ok(Some(ConnectStatements {
        enabled: row.bool(0)?,
        months: months
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("connect_statement_months: {e}")))?,
    }))
}

/// The instance of whichever customer holds this saved LoginId: one primary-key lookup, for
/// naming the instance a LoginId was used outside of (#30 of docs/integration-mistakes.md).
pub async fn login_instance(
    tx: &mut dyn Tx,
    login_id: LoginId,
) -> Result<Option<(InstanceName, InstanceKind)>, StoreError> {
    tx.query_opt(
        "SELECT c.instance, i.kind FROM logins l JOIN customers c ON c.id = l.customer_id \
         JOIN instances i ON i.name = c.instance WHERE l.id = $1 AND l.saved",
        params![&login_id.to_string()],
    )
    .await?
    .map(|row| Ok((row.parse(0)?, row.parse(1)?)))
    .transpose()
}

/// Deletes the LoginId; its sessions go with it (ON DELETE CASCADE).
pub async fn delete_login(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
) -> Result<bool, StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM logins WHERE id = $1 AND customer_id = $2",
            params![&login_id.to_string(), &customer_id.to_string()],
        )
        .await?;
    Ok(deleted == 1)
}

fn insert_session_sql() -> String {
    format!("INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)")
}

/// A session's columns as the INSERT binds them (the ids as text).
struct SessionRow<'s> {
    request_id: String,
    customer_id: String,
    login_id: String,
    session: &'s Session,
}

impl<'s> SessionRow<'s> {
    fn of(session: &'s Session) -> Self {
        Self {
            request_id: session.request_id.to_string(),
            customer_id: session.customer_id.to_string(),
            login_id: session.login_id.to_string(),
            session,
        }
    }

    fn params(&self) -> [Param<'_>; 7] {
        [
            Param::from(&self.request_id),
            Param::from(&self.customer_id),
            Param::from(&self.login_id),
            Param::from(self.session.created_at),
            Param::from(self.session.expires_at),
            Param::from(self.session.tag.as_deref()),
            Param::from(self.session.operation_started_at.map(Timestamp::as_micros)),
        ]
    }
}

async fn insert_session(tx: &mut dyn Tx, session: &Session) -> Result<(), StoreError> {
    tx.execute(&insert_session_sql(), &SessionRow::of(session).params())
        .await?;
    Ok(())
}

pub async fn session(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    request_id: RequestId,
) -> Result<Option<Session>, StoreError> {
    tx.query_opt(
        &format!("SELECT {SESSION_COLS} FROM sessions WHERE request_id = $1 AND customer_id = $2"),
        params![&request_id.to_string(), &customer_id.to_string()],
    )
    .await?
    .map(|row| session_from(&row))
    .transpose()
}

/// How stale a card's recorded last cached call may be (see [`authorize_cached`]).
const CACHED_CALL_PRECISION: std::time::Duration = std::time::Duration::from_secs(60);

/// Spends the token (if any), then opens a session on a saved LoginId.
pub async fn authorize_cached(
    tx: &mut dyn Tx,
    request: CachedAuthorize,
) -> Result<OpenOutcome, StoreError> {
    if let Some(digest) = request.token {
        let used = consume_token(
            tx,
            request.customer_id,
            digest,
            Some(request.request_id),
            request.now,
        )
        .await?;
        if used != TokenUse::Consumed {
            return Ok(OpenOutcome::TokenRefused(used));
        }
    }
    // Cached mode replays a saved connection only.
    let Some(login) = login(tx, request.customer_id, request.login_id, true).await? else {
        return Ok(OpenOutcome::LoginNotFound);
    };
    let session = Session {
        request_id: request.request_id,
        customer_id: request.customer_id,
        login_id: login.id,
        created_at: request.now,
        expires_at: request.session_expires_at,
        tag: request.tag,
        operation_started_at: None,
    };
    // The nightly refresh needs a cached call in the last 7 days, judged by the night: a
    // minute's precision is plenty. Writing the card on every call made each concurrent cached
    // call of one LoginId wait for the others' row lock until their commits (PostgreSQL: 448
    // flows/s where 2,872 were served before the write came in).
    // Both statements go with the COMMIT (one round trip on PostgreSQL).
    let (insert, row) = (insert_session_sql(), SessionRow::of(&session));
    let login_id = login.id.to_string();
    tx.finish_with(&[
        (insert.as_str(), &row.params()[..]),
        (
            "UPDATE logins SET last_cached_at = $2 \
             WHERE id = $1 AND (last_cached_at IS NULL OR last_cached_at < $3)",
            &params![&login_id, request.now, request.now - CACHED_CALL_PRECISION][..],
        ),
    ])
    .await?;
    Ok(OpenOutcome::Opened { login, session })
}

/// Records when the 202 data operation of a session started (the first call wins) and returns
/// that time.
pub async fn start_operation(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    request_id: RequestId,
    at: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let (request, customer) = (request_id.to_string(), customer_id.to_string());
    tx.execute(
        "UPDATE sessions SET operation_started_at = $3 \
         WHERE request_id = $1 AND customer_id = $2 AND operation_started_at IS NULL",
        params![&request, &customer, at],
    )
    .await?;
    Ok(tx
        .query_opt(
            "SELECT operation_started_at FROM sessions WHERE request_id = $1 AND customer_id = $2",
            params![&request, &customer],
        )
        .await?
        .map(|row| row.opt_ts(0))
        .transpose()?
        .flatten())
}

// ---- the live flow: pending MFA steps ----

pub async fn start_pending(
    tx: &mut dyn Tx,
    token: Option<Digest>,
    pending: &PendingAuthorization,
    now: Timestamp,
) -> Result<TokenUse, StoreError> {
    if let Some(digest) = token {
        let used = consume_token(
            tx,
            pending.customer_id,
            digest,
            Some(pending.request_id),
            now,
        )
        .await?;
        if used != TokenUse::Consumed {
            return Ok(used);
        }
    }
    let questions: Vec<String> = pending.questions.iter().map(ToString::to_string).collect();
    let login_id = pending.login_id.map(|id| id.to_string());
    tx.execute(
        &format!(
            "INSERT INTO pending_authorizations ({PENDING_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ),
        params![
            &pending.request_id.to_string(),
            &pending.customer_id.to_string(),
            &pending.institution,
            &pending.username,
            pending.language.as_str(),
            pending.save,
            pending.tag.as_deref(),
            login_id.as_deref(),
            &questions.join(","),
            pending.created_at,
            pending.expires_at,
            pending.options.schedule_refresh,
            pending.options.with_mfa_questions,
        ],
    )
    .await?;
    Ok(TokenUse::Consumed)
}

pub async fn pending(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    request_id: RequestId,
) -> Result<Option<PendingAuthorization>, StoreError> {
    tx.query_opt(
        &format!(
            "SELECT {PENDING_COLS} FROM pending_authorizations \
             WHERE request_id = $1 AND customer_id = $2"
        ),
        params![&request_id.to_string(), &customer_id.to_string()],
    )
    .await?
    .map(|row| pending_from(&row))
    .transpose()
}

pub async fn extend_pending(
    tx: &mut dyn Tx,
    request_id: RequestId,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE pending_authorizations SET expires_at = $2 WHERE request_id = $1",
        params![&request_id.to_string(), expires_at],
    )
    .await?;
    Ok(())
}

/// Moves a pending MFA step on to its next challenges (TextOrCall's code after the choice), if
/// it still asks `from`: an answer that raced another one on the same step finds it moved or
/// ended. Returns whether it moved.
pub async fn advance_pending(
    tx: &mut dyn Tx,
    request_id: RequestId,
    from: &[usize],
    to: &[usize],
    expires_at: Timestamp,
) -> Result<bool, StoreError> {
    let join = |numbers: &[usize]| {
        numbers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let moved = tx
        .execute(
            "UPDATE pending_authorizations SET questions = $3, expires_at = $4 \
             WHERE request_id = $1 AND questions = $2",
            params![&request_id.to_string(), &join(from), &join(to), expires_at],
        )
        .await?;
    Ok(moved == 1)
}

pub async fn drop_pending(tx: &mut dyn Tx, request_id: RequestId) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM pending_authorizations WHERE request_id = $1",
        params![&request_id.to_string()],
    )
    .await?;
    Ok(())
}

/// The RequestId a consumed token opened, if it was consumed.
pub async fn token_request(
    tx: &mut dyn Tx,
    digest: Digest,
) -> Result<Option<RequestId>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT request_id FROM authorize_tokens WHERE digest = $1 AND consumed_at IS NOT NULL",
            params![&digest],
        )
        .await?
        .map(|row| row.opt_parse(0))
        .transpose()?
        .flatten())
}

/// Spends the token (if a fresh one was sent), closes the pending MFA step (if any), creates or
/// refreshes the LoginId, opens the session.
pub async fn complete_authorization(
    tx: &mut dyn Tx,
    completion: CompleteAuthorization,
) -> Result<OpenOutcome, StoreError> {
    let CompleteAuthorization {
        customer_id,
        token,
        request_id,
        now,
        login: change,
        session_expires_at,
        tag,
        from_pending,
        webhook,
        connect_statements,
    } = completion;
    if let Some(digest) = token {
        let used = consume_token(tx, customer_id, digest, Some(request_id), now).await?;
        if used != TokenUse::Consumed {
            return Ok(OpenOutcome::TokenRefused(used));
        }
    }
    // The DELETE takes the row lock: of two calls completing one exchange, the second waits,
    // then finds it gone.
    let ended = tx
        .execute(
            "DELETE FROM pending_authorizations WHERE request_id = $1 AND customer_id = $2",
            params![&request_id.to_string(), &customer_id.to_string()],
        )
        .await?;
    if from_pending && ended != 1 {
        return Ok(OpenOutcome::ExchangeEnded);
    }
    let login = match change {
        LoginChange::Create(login) => {
            insert_login(tx, &login).await?;
            if login.is_scheduled_refresh {
                count_nights_from(tx, customer_id, now).await?;
            }
            login
        }
        LoginChange::CreateWithQuestions { login, answers } => {
            insert_login(tx, &login).await?;
            if login.is_scheduled_refresh {
                count_nights_from(tx, customer_id, now).await?;
            }
            let id = login.id.to_string();
            for (question, answer) in &answers {
                tx.execute(
                    "INSERT INTO login_mfa_answers (login_id, question, answer_digest, \
                     updated_at) VALUES ($1, $2, $3, $4)",
                    params![&id, question_param(*question), answer.as_ref(), now],
                )
                .await?;
            }
            login
        }
        LoginChange::Refresh { login_id, at } => {
            // A success: the card is healthy again for the nightly refresh.
            tx.execute(
                "UPDATE logins SET last_refresh = $3, refresh_error = NULL, nightly_stop = NULL, \
                 nightly_stop_at = NULL WHERE id = $1 AND customer_id = $2",
                params![&login_id.to_string(), &customer_id.to_string(), at],
            )
            .await?;
            match login(tx, customer_id, login_id, false).await? {
                Some(login) => login,
                // Deleted while the user answered MFA.
                None => return Ok(OpenOutcome::LoginNotFound),
            }
        }
    };
    if let Some(recorded) = connect_statements {
        tx.execute(
            "UPDATE logins SET connect_statements_enabled = $3, connect_statement_months = $4 \
             WHERE id = $1 AND customer_id = $2",
            params![
                &login.id.to_string(),
                &customer_id.to_string(),
                recorded.enabled,
                recorded.months.as_str(),
            ],
        )
        .await?;
    }
    let session = Session {
        request_id,
        customer_id,
        login_id: login.id,
        created_at: now,
        expires_at: session_expires_at,
        tag,
        operation_started_at: None,
    };
    insert_session(tx, &session).await?;
    if let Some(instance) = webhook {
        queue_callbacks(tx, instance.as_str(), &login, &session).await?;
    }
    Ok(OpenOutcome::Opened { login, session })
}

// ---- instance-wide operations ----

/// Forgets every token, LoginId, session, pending MFA exchange and AuthorizeAsync step of an
/// instance's customers, and the instance's lockouts, forced failures and queued webhook
/// callbacks.
pub async fn reset_instance(tx: &mut dyn Tx, instance: &str) -> Result<Reset, StoreError> {
    let of_instance = "customer_id IN (SELECT id FROM customers WHERE instance = $1)";
    let mut reset = Reset::default();
    // Forced failures and queued webhook callbacks go too: a test suite resets between tests,
    // and must not inherit them (the webhook itself is a setting, and stays).
    for table in ["forced_rules", "webhook_deliveries", "nightly_runs"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE instance = $1"),
            params![instance],
        )
        .await?;
    }
    // Connect sessions and failure counters are not counted: they hold nothing a caller could
    // use. Lockouts go too: a reset is a clean slate for the next test run.
    for table in [
        "connect_sessions",
        "attempt_failures",
        "authorize_async_steps",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE {of_instance}"),
            params![instance],
        )
        .await?;
    }
    // Sessions before LoginIds, so they are counted rather than cascaded away.
    for (table, removed) in [
        ("pending_authorizations", &mut reset.pending),
        ("sessions", &mut reset.sessions),
        ("logins", &mut reset.logins),
        ("authorize_tokens", &mut reset.tokens),
    ] {
        *removed = tx
            .execute(
                &format!("DELETE FROM {table} WHERE {of_instance}"),
                params![instance],
            )
            .await?;
    }
    Ok(reset)
}

/// Moves an instance's clock in one statement, so concurrent advances (from any node) add up; the
/// cap is in that statement's condition, so they cannot pass it together (PostgreSQL re-checks
/// the condition on the row a concurrent update left; SQLite has one writer).
pub async fn change_clock(
    tx: &mut dyn Tx,
    instance: &str,
    change: ClockChange,
) -> Result<Option<ClockMoved>, StoreError> {
    let row = match change {
        ClockChange::Advance(by) => {
            let by = micros_of(by);
            let room = micros_of(MAX_CLOCK_OFFSET).saturating_sub(by);
            let moved = tx
                .query_opt(
                    "UPDATE instances SET clock_offset_micros = clock_offset_micros + $2 \
                     WHERE name = $1 AND clock_offset_micros <= $3 \
                     RETURNING clock_offset_micros",
                    params![instance, by, room],
                )
                .await?;
            if let Some(row) = moved {
                return Ok(Some(ClockMoved::To(duration_from_micros(row.i64(0)?))));
            }
            // Refused by the cap, or no such instance: say which.
            return tx
                .query_opt(
                    "SELECT clock_offset_micros FROM instances WHERE name = $1",
                    params![instance],
                )
                .await?
                .map(|row| Ok(ClockMoved::PastLimit(duration_from_micros(row.i64(0)?))))
                .transpose();
        }
        ClockChange::Reset => {
            tx.query_opt(
                "UPDATE instances SET clock_offset_micros = 0 \
                 WHERE name = $1 RETURNING clock_offset_micros",
                params![instance],
            )
            .await?
        }
    };
    row.map(|row| Ok(ClockMoved::To(duration_from_micros(row.i64(0)?))))
        .transpose()
}

pub async fn ping(tx: &mut dyn Tx) -> Result<(), StoreError> {
    tx.query("SELECT count(*) FROM meta", &[]).await?;
    Ok(())
}

// ---- purging ----

/// Tables whose expired rows a purge deletes, by primary key.
#[derive(Debug, Clone, Copy)]
pub enum Expiring {
    Tokens,
    /// RequestId sessions, purged with [`purge_sessions_chunk`].
    Sessions,
    Pending,
    ConnectSessions,
    AttemptFailures,
    AsyncSteps,
}

impl Expiring {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            Self::Tokens => ("authorize_tokens", "digest"),
            Self::Sessions => ("sessions", "request_id"),
            Self::Pending => ("pending_authorizations", "request_id"),
            Self::ConnectSessions => ("connect_sessions", "secret_digest"),
            Self::AttemptFailures => ("attempt_failures", "key"),
            Self::AsyncSteps => ("authorize_async_steps", "request_id"),
        }
    }
}

/// The statement that deletes one chunk of expired rows, walking the expiry index from the
/// oldest: work proportional to what expired.
pub fn purge_chunk_sql(table: &str, key: &str, lock: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE {key} IN \
         (SELECT {key} FROM {table} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2{lock})"
    )
}

/// Deletes one chunk of expired rows; returns how many.
pub async fn purge_chunk(
    tx: &mut dyn Tx,
    what: Expiring,
    expired_before: Timestamp,
) -> Result<u64, StoreError> {
    let (table, key) = what.table_and_key();
    let sql = purge_chunk_sql(table, key, tx.dialect().skip_locked());
    tx.execute(&sql, params![expired_before, PURGE_CHUNK]).await
}

/// Deletes one chunk of expired sessions, and with them the connections made with `Save:
/// false` that no session uses any more (found from the deleted rows, so the work stays
/// proportional to what expired).
pub async fn purge_sessions_chunk(
    tx: &mut dyn Tx,
    expired_before: Timestamp,
) -> Result<u64, StoreError> {
    let (table, key) = Expiring::Sessions.table_and_key();
    let sql = format!(
        "{} RETURNING login_id",
        purge_chunk_sql(table, key, tx.dialect().skip_locked())
    );
    let rows = tx.query(&sql, params![expired_before, PURGE_CHUNK]).await?;
    let mut logins = rows
        .iter()
        .filter_map(|row| row.opt_string(0).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    logins.sort_unstable();
    logins.dedup();
    for login_id in &logins {
        tx.execute(
            "DELETE FROM logins WHERE id = $1 AND saved = FALSE \
             AND NOT EXISTS (SELECT 1 FROM sessions WHERE login_id = $1)",
            params![login_id],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

// ---- AuthorizeAsync ----

/// Records a RequestId's latest step in one statement; a RequestId of another customer keeps
/// its step (the condition of the upsert), and nothing is written.
pub async fn put_async_step(tx: &mut dyn Tx, step: &AsyncStep) -> Result<bool, StoreError> {
    let written = tx
        .execute(
            "INSERT INTO authorize_async_steps \
             (request_id, customer_id, login_id, answer, created_at, ready_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (request_id) DO UPDATE SET login_id = excluded.login_id, \
             answer = excluded.answer, created_at = excluded.created_at, \
             ready_at = excluded.ready_at, expires_at = excluded.expires_at \
             WHERE authorize_async_steps.customer_id = excluded.customer_id",
            params![
                &step.request_id.to_string(),
                &step.customer_id.to_string(),
                step.login_id.map(|id| id.to_string()).as_deref(),
                &step.answer,
                step.created_at,
                step.ready_at,
                step.expires_at,
            ],
        )
        .await?;
    Ok(written == 1)
}

pub async fn async_step(
    tx: &mut dyn Tx,
    request_id: RequestId,
) -> Result<Option<AsyncStep>, StoreError> {
    tx.query_opt(
        "SELECT customer_id, login_id, answer, created_at, ready_at, expires_at \
         FROM authorize_async_steps WHERE request_id = $1",
        params![&request_id.to_string()],
    )
    .await?
    .map(|row| {
        Ok(AsyncStep {
            request_id,
            customer_id: row.parse(0)?,
            login_id: row.opt_parse(1)?,
            answer: row.string(2)?,
            created_at: row.ts(3)?,
            ready_at: row.ts(4)?,
            expires_at: row.ts(5)?,
        })
    })
    .transpose()
}

// ---- the Connect page ----

/// Spends `session.token` (if any) and records the Connect session; nothing is recorded unless
/// the token was consumed.
pub async fn open_connect_session(
    tx: &mut dyn Tx,
    session: &ConnectSession,
    now: Timestamp,
) -> Result<TokenUse, StoreError> {
    if let Some(digest) = session.token {
        // No RequestId: the page opens its own through the live flow, token-free.
        let used = consume_token(tx, session.customer_id, digest, None, now).await?;
        if used != TokenUse::Consumed {
            return Ok(used);
        }
    }
    tx.execute(
        "INSERT INTO connect_sessions \
         (secret_digest, customer_id, token_digest, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        params![
            &session.secret,
            &session.customer_id.to_string(),
            session.token.as_ref(),
            &session.state,
            session.created_at,
            session.expires_at,
        ],
    )
    .await?;
    Ok(TokenUse::Consumed)
}

pub async fn connect_session(
    tx: &mut dyn Tx,
    secret: Digest,
) -> Result<Option<ConnectSession>, StoreError> {
    tx.query_opt(
        "SELECT customer_id, token_digest, state, created_at, expires_at \
         FROM connect_sessions WHERE secret_digest = $1",
        params![&secret],
    )
    .await?
    .map(|row| {
        Ok(ConnectSession {
            secret,
            customer_id: row.parse(0)?,
            token: row.opt_digest(1)?,
            state: row.string(2)?,
            created_at: row.ts(3)?,
            expires_at: row.ts(4)?,
        })
    })
    .transpose()
}

pub async fn update_connect_session(
    tx: &mut dyn Tx,
    secret: Digest,
    state: &str,
    expires_at: Timestamp,
) -> Result<bool, StoreError> {
    let updated = tx
        .execute(
            "UPDATE connect_sessions SET state = $2, expires_at = $3 WHERE secret_digest = $1",
            params![&secret, state, expires_at],
        )
        .await?;
    Ok(updated == 1)
}

pub async fn connect_token_required(tx: &mut dyn Tx, instance: &str) -> Result<bool, StoreError> {
    match tx
        .query_opt(
            "SELECT authorize_token_required FROM connect_settings WHERE instance = $1",
            params![instance],
        )
        .await?
    {
        Some(row) => row.bool(0),
        None => Ok(true),
    }
}

pub async fn set_connect_token_required(
    tx: &mut dyn Tx,
    instance: &str,
    required: bool,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO connect_settings (instance, authorize_token_required) VALUES ($1, $2) \
         ON CONFLICT (instance) \
         DO UPDATE SET authorize_token_required = excluded.authorize_token_required",
        params![instance, required],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || format!("instance {instance}"),
            || DomainError::NotFound {
                what: "instance",
                id: instance.to_owned(),
            },
        )
    })?;
    Ok(())
}

// ---- failed credential attempts ----

const FAILURE_COLS: &str = "customer_id, target, client, failures, window_start, total, \
     last_failure, max_failures, locked_until";

fn failures_from(row: &Row) -> Result<AttemptFailures, StoreError> {
    let count = |idx| row.i64(idx).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(AttemptFailures {
        key: AttemptKey {
            customer_id: row.parse(0)?,
            target: row.string(1)?,
            client: row.string(2)?,
        },
        failures: count(3)?,
        window_start: row.ts(4)?,
        total: count(5)?,
        last_failure: row.ts(6)?,
        max_failures: count(7)?,
        locked_until: row.opt_ts(8)?,
    })
}

/// The primary key of a failure row: one column, so the purge walks it like any other table.
fn failure_row_key(key: &AttemptKey) -> String {
    format!("{}|{}|{}", key.customer_id, key.target, key.client)
}

/// Sorts the rows read for an attempt into its pair's and its target's.
fn attempt_state_of(rows: &[Row], pair: &AttemptKey) -> Result<AttemptState, StoreError> {
    let mut state = AttemptState::default();
    for row in rows {
        let failures = failures_from(row)?;
        if failures.key == *pair {
            state.pair = Some(failures);
        } else {
            state.target = Some(failures);
        }
    }
    Ok(state)
}

pub async fn attempt_state(tx: &mut dyn Tx, pair: &AttemptKey) -> Result<AttemptState, StoreError> {
    let rows = tx
        .query(
            &format!("SELECT {FAILURE_COLS} FROM attempt_failures WHERE key IN ($1, $2)"),
            params![&failure_row_key(pair), &failure_row_key(&pair.any_client())],
        )
        .await?;
    attempt_state_of(&rows, pair)
}

/// One failure counted on a row, as its fresh values (the row is new, or its window is over).
struct FreshRow {
    key: String,
    client: String,
    failures: i64,
    window_start: Timestamp,
    locked_until: Option<i64>,
    max: i64,
}

/// Counts a failure on the pair's row and, when the target is counted, the target's row, in
/// one upsert (one statement: atomic, one round trip). Per row: while locked nothing changes
/// but the totals; once its window is over the count starts again at this failure; the failure
/// that reaches the row's limit locks it until `now + lockout`, and the count starts over
/// after the lockout (its next window begins when the lockout ends).
pub async fn record_failure(
    tx: &mut dyn Tx,
    failure: &AttemptFailure,
) -> Result<AttemptState, StoreError> {
    let now = failure.now;
    let window = micros_of(failure.window);
    let lock_end = now + failure.lockout;
    let fresh = |key: &AttemptKey, max: u64| {
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let locks = max <= 1;
        FreshRow {
            key: failure_row_key(key),
            client: key.client.clone(),
            failures: if locks { 0 } else { 1 },
            window_start: if locks { lock_end } else { now },
            locked_until: locks.then_some(lock_end.as_micros()),
            max,
        }
    };
    let mut rows = vec![fresh(&failure.key, failure.max_per_client)];
    if failure.max_per_target > 0 {
        rows.push(fresh(&failure.key.any_client(), failure.max_per_target));
    }
    let customer = failure.key.customer_id.to_string();
    let mut values = Vec::new();
    let mut bound: Vec<crate::sql::Param<'_>> = vec![
        now.into(),
        (now - failure.window).into(),
        lock_end.into(),
        window.into(),
        customer.as_str().into(),
        failure.key.target.as_str().into(),
    ];
    for row in &rows {
        let at = bound.len();
        values.push(format!(
            "(${k}, $5, $6, ${c}, ${f}, ${w}, 1, $1, ${m}, ${l}, ${w} + CAST($4 AS BIGINT))",
            k = at + 1,
            c = at + 2,
            f = at + 3,
            w = at + 4,
            m = at + 5,
            l = at + 6,
        ));
        bound.extend::<[crate::sql::Param<'_>; 6]>([
            row.key.as_str().into(),
            row.client.as_str().into(),
            row.failures.into(),
            row.window_start.into(),
            row.max.into(),
            row.locked_until.into(),
        ]);
    }
    // Each SET reads the row as it was; the cases are the same for every column.
    let old = "attempt_failures";
    let case = |locked: &str, over: &str, reached: &str, counting: &str| {
        format!(
            "CASE WHEN {old}.locked_until > $1 THEN {locked} \
             WHEN {old}.window_start <= $2 THEN {over} \
             WHEN {old}.failures + 1 >= excluded.max_failures THEN {reached} \
             ELSE {counting} END"
        )
    };
    let window_start = case(
        &format!("{old}.window_start"),
        "excluded.window_start",
        "$3",
        &format!("{old}.window_start"),
    );
    let sql = format!(
        "INSERT INTO attempt_failures (key, customer_id, target, client, failures, \
         window_start, total, last_failure, max_failures, locked_until, expires_at) \
         VALUES {values} ON CONFLICT (key) DO UPDATE SET \
         failures = {failures}, window_start = {window_start}, \
         locked_until = {locked_until}, expires_at = ({window_start}) + CAST($4 AS BIGINT), \
         total = {old}.total + 1, last_failure = $1, max_failures = excluded.max_failures \
         RETURNING {FAILURE_COLS}",
        values = values.join(", "),
        failures = case(
            &format!("{old}.failures"),
            "excluded.failures",
            "0",
            &format!("{old}.failures + 1"),
        ),
        locked_until = case(
            &format!("{old}.locked_until"),
            "excluded.locked_until",
            "$3",
            &format!("{old}.locked_until"),
        ),
    );
    let returned = tx.query(&sql, &bound).await?;
    attempt_state_of(&returned, &failure.key)
}

pub async fn forget_failures(tx: &mut dyn Tx, pair: &AttemptKey) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM attempt_failures WHERE key = $1",
        params![&failure_row_key(pair)],
    )
    .await?;
    Ok(())
}

const FAILURE_FILTER: &str = "(CAST($1 AS TEXT) IS NULL OR customer_id = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR client = $2)";

pub async fn lockouts(
    tx: &mut dyn Tx,
    filter: &AttemptFilter,
    now: Timestamp,
) -> Result<Vec<AttemptFailures>, StoreError> {
    let customer = filter.customer_id.map(|id| id.to_string());
    tx.query(
        &format!(
            "SELECT {FAILURE_COLS} FROM attempt_failures WHERE {FAILURE_FILTER} \
             AND locked_until > $3 ORDER BY locked_until DESC, key"
        ),
        params![customer.as_deref(), filter.client.as_deref(), now],
    )
    .await?
    .iter()
    .map(failures_from)
    .collect()
}

pub async fn clear_failures(tx: &mut dyn Tx, filter: &AttemptFilter) -> Result<u64, StoreError> {
    let customer = filter.customer_id.map(|id| id.to_string());
    tx.execute(
        &format!("DELETE FROM attempt_failures WHERE {FAILURE_FILTER}"),
        params![customer.as_deref(), filter.client.as_deref()],
    )
    .await
}

// ---- forced failures ----

const FORCED_COLS: &str = "id, instance, customer_id, login_id, username, endpoint, action, \
     amount, remaining, active_until, created_at";

fn forced_from(row: &Row) -> Result<ForcedRule, StoreError> {
    let target = match (
        row.opt_parse::<CustomerId>(2)?,
        row.opt_parse::<LoginId>(3)?,
        row.opt_string(4)?,
        row.opt_string(5)?,
    ) {
        (Some(customer), Some(login), _, _) => ForcedTarget::Login(customer, login),
        (Some(customer), None, Some(username), _) => ForcedTarget::Username(customer, username),
        (None, _, _, Some(endpoint)) => ForcedTarget::Endpoint(endpoint),
        _ => {
            return Err(StoreError::Corrupt(
                "forced rule without a target".to_owned(),
            ));
        }
    };
    Ok(ForcedRule {
        id: row.string(0)?,
        instance: row.parse(1)?,
        target,
        action: ForcedAction::from_stored(row.text(6)?, row.i64(7)?)
            .map_err(StoreError::Corrupt)?,
        remaining: u64::try_from(row.i64(8)?).unwrap_or(0),
        active_until: row.opt_ts(9)?,
        created_at: row.ts(10)?,
    })
}

/// The WHERE clause of a scope, over `$1` (and `$2`).
fn forced_scope(scope: &ForcedScope) -> (&'static str, String, Option<String>) {
    match scope {
        ForcedScope::Customer(customer) => (
            "customer_id = $1 AND CAST($2 AS TEXT) IS NULL",
            customer.to_string(),
            None,
        ),
        ForcedScope::Login(customer, login) => (
            "customer_id = $1 AND login_id = $2",
            customer.to_string(),
            Some(login.to_string()),
        ),
        ForcedScope::Faults(instance) => (
            "instance = $1 AND endpoint IS NOT NULL AND CAST($2 AS TEXT) IS NULL",
            instance.to_string(),
            None,
        ),
    }
}

pub async fn add_forced_rule(tx: &mut dyn Tx, rule: &ForcedRule) -> Result<(), StoreError> {
    let (customer, login, username, endpoint) = rule.target.parts();
    let (customer, login) = (
        customer.map(|c| c.to_string()),
        login.map(|l| l.to_string()),
    );
    let username = username.map(str::to_lowercase);
    let (action, amount) = rule.action.stored();
    tx.execute(
        &format!(
            "INSERT INTO forced_rules ({FORCED_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        params![
            &rule.id,
            rule.instance.as_str(),
            customer.as_deref(),
            login.as_deref(),
            username.as_deref(),
            endpoint,
            action,
            amount,
            i64::try_from(rule.remaining).unwrap_or(i64::MAX),
            rule.active_until.map(Timestamp::as_micros),
            rule.created_at,
        ],
    )
    .await
    .map_err(|error| {
        conflict_as(
            error,
            || format!("forced rule {}", rule.id),
            || DomainError::NotFound {
                what: "instance or customer",
                id: rule.instance.to_string(),
            },
        )
    })?;
    Ok(())
}

pub async fn forced_rules(
    tx: &mut dyn Tx,
    scope: &ForcedScope,
) -> Result<Vec<ForcedRule>, StoreError> {
    let (condition, first, second) = forced_scope(scope);
    tx.query(
        &format!(
            "SELECT {FORCED_COLS} FROM forced_rules WHERE {condition} ORDER BY created_at, id"
        ),
        params![&first, second.as_deref()],
    )
    .await?
    .iter()
    .map(forced_from)
    .collect()
}

pub async fn clear_forced_rules(tx: &mut dyn Tx, scope: &ForcedScope) -> Result<u64, StoreError> {
    let (condition, first, second) = forced_scope(scope);
    tx.execute(
        &format!("DELETE FROM forced_rules WHERE {condition}"),
        params![&first, second.as_deref()],
    )
    .await
}

/// Whether an instance has any rule at all: what a node remembers, so calls on an instance
/// without rules cost nothing more.
pub async fn has_forced_rules(tx: &mut dyn Tx, instance: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM forced_rules WHERE instance = $1 LIMIT 1",
            params![instance],
        )
        .await?
        .is_some())
}

/// Takes one use of the oldest rule matching a call: a 202 period in progress answers without
/// using anything up; otherwise one conditional UPDATE counts a use down, so two concurrent
/// calls never both take the last one (PostgreSQL re-checks `remaining > 0` on the row another
/// transaction just updated; SQLite has one writer). A rule used up is deleted.
pub async fn take_forced(
    tx: &mut dyn Tx,
    call: &ForcedCall<'_>,
    now: Timestamp,
) -> Result<Option<ForcedRule>, StoreError> {
    let (condition, first, second, third) = match call {
        ForcedCall::Authorize {
            customer_id,
            login_id,
            username,
        } => (
            "customer_id = $1 AND (login_id = $2 OR (login_id IS NULL AND username = $3))",
            customer_id.to_string(),
            login_id.map(|id| id.to_string()),
            Some(username.to_lowercase()),
        ),
        ForcedCall::Endpoint { instance, endpoint } => (
            "instance = $1 AND endpoint = $2 AND CAST($3 AS TEXT) IS NULL",
            instance.to_string(),
            Some((*endpoint).to_owned()),
            None,
        ),
    };
    let now_micros = now.as_micros();
    // 202 periods that ended leave nothing behind.
    tx.execute(
        &format!(
            "DELETE FROM forced_rules WHERE {condition} AND remaining = 0 \
             AND (active_until IS NULL OR active_until <= $4)"
        ),
        params![&first, second.as_deref(), third.as_deref(), now_micros],
    )
    .await?;
    if let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT {FORCED_COLS} FROM forced_rules WHERE {condition} AND active_until > $4 \
                 ORDER BY created_at, id LIMIT 1"
            ),
            params![&first, second.as_deref(), third.as_deref(), now_micros],
        )
        .await?
    {
        return forced_from(&row).map(Some);
    }
    // A candidate lost to a concurrent call: look again (each statement sees what committed).
    // This ends: each loss means another call took a use, and uses are finite.
    loop {
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT {FORCED_COLS} FROM forced_rules WHERE {condition} AND remaining > 0 \
                     ORDER BY created_at, id LIMIT 1"
                ),
                params![&first, second.as_deref(), third.as_deref()],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut rule = forced_from(&row)?;
        let until = rule.action.period().map(|period| now + period);
        let Some(row) = tx
            .query_opt(
                "UPDATE forced_rules SET remaining = remaining - 1, active_until = $2 \
                 WHERE id = $1 AND remaining > 0 RETURNING remaining",
                params![&rule.id, until.map(Timestamp::as_micros)],
            )
            .await?
        else {
            continue;
        };
        rule.remaining = u64::try_from(row.i64(0)?).unwrap_or(0);
        rule.active_until = until;
        if rule.remaining == 0 && until.is_none() {
            tx.execute("DELETE FROM forced_rules WHERE id = $1", params![&rule.id])
                .await?;
        }
        return Ok(Some(rule));
    }
}

// ---- webhooks ----

const WEBHOOK_COLS: &str = "instance, url, secret, created_at, updated_at";

fn webhook_from(row: &Row) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        instance: row.parse(0)?,
        url: row.string(1)?,
        secret: row.string(2)?,
        created_at: row.ts(3)?,
        updated_at: row.ts(4)?,
    })
}

pub async fn set_webhook(
    tx: &mut dyn Tx,
    instance: &str,
    url: &str,
    new_secret: &str,
    now: Timestamp,
) -> Result<(Webhook, bool), StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO instance_webhooks ({WEBHOOK_COLS}) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (instance) DO UPDATE SET url = excluded.url, \
                 updated_at = excluded.updated_at RETURNING {WEBHOOK_COLS}"
            ),
            params![instance, url, new_secret, now],
        )
        .await
        .map_err(|error| {
            conflict_as(
                error,
                || format!("instance {instance}"),
                || DomainError::NotFound {
                    what: "instance",
                    id: instance.to_owned(),
                },
            )
        })?
        .ok_or_else(|| StoreError::Database("an upsert returned no row".to_owned()))?;
    let webhook = webhook_from(&row)?;
    let took = webhook.secret == new_secret;
    Ok((webhook, took))
}

pub async fn rotate_webhook_secret(
    tx: &mut dyn Tx,
    instance: &str,
    secret: &str,
    now: Timestamp,
) -> Result<Option<Webhook>, StoreError> {
    tx.query_opt(
        &format!(
            "UPDATE instance_webhooks SET secret = $2, updated_at = $3 WHERE instance = $1 \
             RETURNING {WEBHOOK_COLS}"
        ),
        params![instance, secret, now],
    )
    .await?
    .as_ref()
    .map(webhook_from)
    .transpose()
}

pub async fn delete_webhook(tx: &mut dyn Tx, instance: &str) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "DELETE FROM instance_webhooks WHERE instance = $1",
            params![instance],
        )
        .await?
        > 0)
}

pub async fn webhook(tx: &mut dyn Tx, instance: &str) -> Result<Option<Webhook>, StoreError> {
    tx.query_opt(
        &format!("SELECT {WEBHOOK_COLS} FROM instance_webhooks WHERE instance = $1"),
        params![instance],
    )
    .await?
    .as_ref()
    .map(webhook_from)
    .transpose()
}

const DELIVERY_COLS: &str = "id, instance, request_id, login_id, kind, body, status, attempts, \
     created_at, next_attempt_at, last_status, last_error, finished_at, customer_id, \
     login_institution, login_username, login_type, login_scheduled_refresh, \
     login_last_refresh, login_created_at, login_language, login_saved, tag";

fn delivery_from(row: &Row) -> Result<Delivery, StoreError> {
    let login_id = row.parse(3)?;
    // A row has its body (queued made) or the snapshot it is built from (migration 0008).
    let content = match row.opt_string(5)? {
        Some(body) => DeliveryContent::Body(body),
        None => DeliveryContent::Subject(CallbackSubject {
            login: Login {
                id: login_id,
                customer_id: row.parse(13)?,
                institution: row.string(14)?,
                username: row.string(15)?,
                login_type: row.parse::<LoginType>(16)?,
                is_scheduled_refresh: row.bool(17)?,
                last_refresh: row.ts(18)?,
                created_at: row.ts(19)?,
                language: row.parse(20)?,
                saved: row.bool(21)?,
            },
            tag: row.opt_string(22)?,
        }),
    };
    Ok(Delivery {
        id: row.string(0)?,
        instance: row.parse(1)?,
        request_id: row.parse(2)?,
        login_id,
        kind: row.string(4)?,
        content,
        status: row.parse(6)?,
        attempts: u32::try_from(row.i64(7)?).unwrap_or(u32::MAX),
        created_at: row.ts(8)?,
        next_attempt_at: row.ts(9)?,
        last_status: row.opt_i64(10)?.and_then(|s| u16::try_from(s).ok()),
        last_error: row.opt_string(11)?,
        finished_at: row.opt_ts(12)?,
    })
}

/// Sorted as they must be sent: by RequestId's creation, then position.
fn in_order(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    deliveries
}

/// The instance's clock offset, for a statement on `webhook_deliveries`.
const INSTANCE_OFFSET: &str = "(SELECT i.clock_offset_micros FROM instances i \
     WHERE i.name = webhook_deliveries.instance)";

pub async fn enqueue_deliveries(
    tx: &mut dyn Tx,
    deliveries: &[NewDelivery],
) -> Result<u64, StoreError> {
    let mut added = 0;
    for d in deliveries {
        added += tx
            .execute(
                "INSERT INTO webhook_deliveries (id, instance, request_id, login_id, kind, \
                 position, body, status, attempts, created_at, next_attempt_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9 \
                 WHERE EXISTS (SELECT 1 FROM instance_webhooks w WHERE w.instance = $2)",
                params![
                    &d.id,
                    d.instance.as_str(),
                    &d.request_id.to_string(),
                    &d.login_id.to_string(),
                    &d.kind,
                    d.position,
                    &d.body,
                    d.created_at,
                    d.not_before,
                ],
            )
            .await?;
    }
    Ok(added)
}

/// Queues the callbacks of an authorization that just completed, in its transaction, if the
/// instance has a webhook: small rows (the LoginId as it is now, the session's tag), their
/// bodies built when sent. The first is pending; the next waits ('waiting', outside the
/// claim's scan) until the one before it is delivered or given up, so callbacks held back by a
/// failing receiver do not make every claim step over them. All due at once: the sender holds back a GetAccountsDetail whose
/// data is not ready yet ([`AttemptResult::NotYet`]), since only it knows the sandbox users.
async fn queue_callbacks(
    tx: &mut dyn Tx,
    instance: &str,
    login: &Login,
    session: &Session,
) -> Result<(), StoreError> {
    for (position, kind) in CALLBACK_KINDS.into_iter().enumerate() {
        tx.execute(
            "INSERT INTO webhook_deliveries (id, instance, request_id, login_id, kind, \
             position, status, attempts, created_at, next_attempt_at, customer_id, \
             login_institution, login_username, login_type, login_scheduled_refresh, \
             login_last_refresh, login_created_at, login_language, login_saved, tag) \
             SELECT $1, $2, $3, $4, $5, $6, $18, 0, $7, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17 \
             WHERE EXISTS (SELECT 1 FROM instance_webhooks w WHERE w.instance = $2)",
            params![
                &RequestId::new_random().to_string(),
                instance,
                &session.request_id.to_string(),
                &login.id.to_string(),
                kind,
                i64::try_from(position).unwrap_or(i64::MAX),
                session.created_at,
                &login.customer_id.to_string(),
                &login.institution,
                &login.username,
                login.login_type.as_str(),
                login.is_scheduled_refresh,
                login.last_refresh,
                login.created_at,
                login.language.as_str(),
                login.saved,
                session.tag.as_deref(),
                if position == 0 { "pending" } else { "waiting" },
            ],
        )
        .await?;
    }
    Ok(())
}

/// The scan is bounded by an index range (due at the latest on the instance furthest ahead),
/// so pending callbacks due later, the retries of a failing receiver, are not stepped over on
/// every claim; each row is then checked against its own instance's clock.
pub async fn claim_deliveries(
    tx: &mut dyn Tx,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let lock = tx.dialect().skip_locked();
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = $2 + {INSTANCE_OFFSET}, \
         attempts = attempts + 1 \
         WHERE id IN (SELECT d.id FROM webhook_deliveries d \
           WHERE d.status = 'pending' \
           AND d.next_attempt_at <= $1 + (SELECT MAX(m.clock_offset_micros) FROM instances m) \
           AND d.next_attempt_at <= $1 + (SELECT i.clock_offset_micros FROM instances i \
               WHERE i.name = d.instance) \
           AND (d.lease_until IS NULL OR d.lease_until <= $1 + (SELECT i.clock_offset_micros \
               FROM instances i WHERE i.name = d.instance)) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               WHERE p.request_id = d.request_id AND p.position < d.position \
               AND p.status = 'pending') \
           ORDER BY d.next_attempt_at, d.position LIMIT $3{lock}) \
         RETURNING {DELIVERY_COLS}"
    );
    let rows = tx
        .query(&sql, params![now, lease_until, i64::from(limit)])
        .await?;
    rows.iter()
        .map(delivery_from)
        .collect::<Result<Vec<_>, _>>()
        .map(in_order)
}

pub async fn finish_delivery(
    tx: &mut dyn Tx,
    id: &str,
    result: &AttemptResult,
    now: Timestamp,
) -> Result<Option<Delivery>, StoreError> {
    let row = match result {
        AttemptResult::Delivered { status } => {
            tx.query_opt(
                &format!(
                    "UPDATE webhook_deliveries SET status = 'delivered', lease_until = NULL, \
                     last_status = $2, last_error = NULL, \
                     finished_at = $3 + {INSTANCE_OFFSET} WHERE id = $1 \
                     RETURNING {DELIVERY_COLS}"
                ),
                params![id, i64::from(*status), now],
            )
            .await?
        }
        AttemptResult::NotYet { until } => {
            tx.query_opt(
                &format!(
                    "UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = $2, \
                     attempts = attempts - 1 WHERE id = $1 RETURNING {DELIVERY_COLS}"
                ),
                params![id, *until],
            )
            .await?
        }
        AttemptResult::Failed { status, error } => {
            let give_up = format!("attempts >= {MAX_DELIVERY_ATTEMPTS}");
            tx.query_opt(
                &format!(
                    "UPDATE webhook_deliveries SET \
                     status = CASE WHEN {give_up} THEN 'failed' ELSE 'pending' END, \
                     next_attempt_at = CASE WHEN {give_up} THEN next_attempt_at \
                       ELSE $3 + {INSTANCE_OFFSET} + CAST($5 AS BIGINT) END, \
                     finished_at = CASE WHEN {give_up} THEN $3 + {INSTANCE_OFFSET} \
                       ELSE NULL END, \
                     lease_until = NULL, last_status = $2, last_error = $4 \
                     WHERE id = $1 RETURNING {DELIVERY_COLS}"
                ),
                params![
                    id,
                    status.map(i64::from),
                    now,
                    error.as_str(),
                    micros_of(RETRY_INTERVAL)
                ],
            )
            .await?
        }
    };
    let after = row.as_ref().map(delivery_from).transpose()?;
    if after
        .as_ref()
        .is_some_and(|d| d.status != crate::webhooks::DeliveryStatus::Pending)
    {
        // Done: the next callback of its RequestId takes its turn.
        tx.execute(
            "UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'waiting' \
             AND request_id = (SELECT f.request_id FROM webhook_deliveries f WHERE f.id = $1) \
             AND position = (SELECT f.position + 1 FROM webhook_deliveries f WHERE f.id = $1)",
            params![id],
        )
        .await?;
    }
    Ok(after)
}

/// Records a batch of attempts (one transaction for all).
pub async fn finish_deliveries(
    tx: &mut dyn Tx,
    results: &[(String, AttemptResult)],
    now: Timestamp,
) -> Result<Vec<Option<Delivery>>, StoreError> {
    let mut after = Vec::with_capacity(results.len());
    for (id, result) in results {
        after.push(finish_delivery(tx, id, result, now).await?);
    }
    Ok(after)
}

pub async fn deliveries(
    tx: &mut dyn Tx,
    instance: &str,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    tx.query(
        &format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE instance = $1 \
             ORDER BY created_at DESC, position DESC LIMIT $2"
        ),
        params![instance, i64::from(limit)],
    )
    .await?
    .iter()
    .map(delivery_from)
    .collect()
}

pub async fn replay_delivery(
    tx: &mut dyn Tx,
    instance: &str,
    id: &str,
    now: Timestamp,
) -> Result<Option<Delivery>, StoreError> {
    tx.query_opt(
        &format!(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, lease_until = NULL, \
             next_attempt_at = $3 + {INSTANCE_OFFSET}, finished_at = NULL \
             WHERE instance = $1 AND id = $2 RETURNING {DELIVERY_COLS}"
        ),
        params![instance, id, now],
    )
    .await?
    .as_ref()
    .map(delivery_from)
    .transpose()
}

pub async fn purge_deliveries(
    tx: &mut dyn Tx,
    finished_before: Timestamp,
) -> Result<u64, StoreError> {
    tx.execute(
        &format!(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' \
             AND finished_at <= $1 + {INSTANCE_OFFSET}"
        ),
        params![finished_before],
    )
    .await
}

// ---- the nightly refresh ----

fn question_param(question: usize) -> i64 {
    i64::try_from(question).unwrap_or(i64::MAX)
}

fn question_from(row: &Row, idx: usize) -> Result<usize, StoreError> {
    usize::try_from(row.i64(idx)?)
        .map_err(|_| StoreError::Corrupt(format!("column {idx}: a negative question")))
}

/// Makes the customer's instance count its nights from `now` (if it did not already), so a
/// card flagged now is first judged at the next 02:00.
async fn count_nights_from(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO nightly_runs (instance, last_night) \
         SELECT instance, $2 FROM customers WHERE id = $1 ON CONFLICT (instance) DO NOTHING",
        params![&customer_id.to_string(), nightly::night_of(now)],
    )
    .await?;
    Ok(())
}

pub async fn set_scheduled_refresh(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
    on: bool,
    now: Timestamp,
) -> Result<Option<Login>, StoreError> {
    let (id, customer) = (login_id.to_string(), customer_id.to_string());
    // Right-hand sides read the row as it was: `scheduled_since` moves only when the flag does.
    let changed = tx
        .execute(
            "UPDATE logins SET \
             scheduled_since = CASE WHEN CAST($3 AS BOOLEAN) AND NOT is_scheduled_refresh \
               THEN CAST($4 AS BIGINT) WHEN CAST($3 AS BOOLEAN) THEN scheduled_since END, \
             nightly_stop = CASE WHEN CAST($3 AS BOOLEAN) THEN nightly_stop END, \
             nightly_stop_at = CASE WHEN CAST($3 AS BOOLEAN) THEN nightly_stop_at END, \
             is_scheduled_refresh = $3 \
             WHERE id = $1 AND customer_id = $2 AND saved",
            params![&id, &customer, on, now],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    if on {
        count_nights_from(tx, customer_id, now).await?;
    }
    login(tx, customer_id, login_id, true).await
}

pub async fn record_refresh_error(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
    code: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE logins SET refresh_error = $3 WHERE id = $1 AND customer_id = $2",
        params![&login_id.to_string(), &customer_id.to_string(), code],
    )
    .await?;
    Ok(())
}

/// The last night run on an instance; `None` when it never had a flagged card.
pub async fn nightly_last(tx: &mut dyn Tx, instance: &str) -> Result<Option<i64>, StoreError> {
    tx.query_opt(
        "SELECT last_night FROM nightly_runs WHERE instance = $1",
        params![instance],
    )
    .await?
    .map(|row| row.i64(0))
    .transpose()
}

/// The flagged cards of the instance `$1`: only those, through the partial index
/// `logins_scheduled`, per customer of the instance.
const FLAGGED_CARDS: &str = "l.is_scheduled_refresh AND l.saved AND l.customer_id IN \
     (SELECT id FROM customers WHERE instance = $1)";

/// The cards a nightly run judges (the query whose plan a SQLite test checks).
pub fn flagged_cards_sql() -> String {
    format!(
        "SELECT l.id, l.institution, l.username, l.last_refresh, l.last_cached_at, \
         COALESCE(l.scheduled_since, l.created_at), l.refresh_error, l.nightly_stop \
         FROM logins l WHERE {FLAGGED_CARDS}"
    )
}

/// Runs the nights after `from_night` up to `to_night` on an instance, if this call is the one
/// that moves its `last_night` from `from_night` (a conditional UPDATE: of several nodes, one
/// runs them; on PostgreSQL the others wait on the row, then find it moved).
pub async fn run_nights(
    tx: &mut dyn Tx,
    instance: &str,
    from_night: i64,
    to_night: i64,
    now: Timestamp,
) -> Result<NightlyRun, StoreError> {
    let claimed = tx
        .execute(
            "UPDATE nightly_runs SET last_night = $3, ran_at = $4 \
             WHERE instance = $1 AND last_night = $2",
            params![instance, from_night, to_night, now],
        )
        .await?;
    if claimed == 0 || to_night <= from_night {
        return Ok(NightlyRun::default());
    }
    let mut run = NightlyRun {
        nights: u64::try_from(to_night - from_night).unwrap_or(0),
        ..NightlyRun::default()
    };
    // Flinks: the cached call rule does not apply to webhook integrations.
    let cached_call_required = tx
        .query_opt(
            "SELECT 1 FROM instance_webhooks WHERE instance = $1",
            params![instance],
        )
        .await?
        .is_none();
    let flagged = FLAGGED_CARDS;
    let mut answers: std::collections::HashMap<String, MfaAnswers> =
        std::collections::HashMap::new();
    for row in tx
        .query(
            &format!(
                "SELECT a.login_id, a.question, a.answer_digest FROM login_mfa_answers a \
                 JOIN logins l ON l.id = a.login_id WHERE {flagged}"
            ),
            params![instance],
        )
        .await?
    {
        answers
            .entry(row.string(0)?)
            .or_default()
            .push((question_from(&row, 1)?, row.opt_digest(2)?));
    }
    let rows = tx.query(&flagged_cards_sql(), params![instance]).await?;
    let bank = SandboxBank::builtin();
    for row in rows {
        let id = row.string(0)?;
        let card = ScheduledCard {
            login_id: row.parse(0)?,
            institution: row.string(1)?,
            username: row.string(2)?,
            last_refresh: row.ts(3)?,
            last_cached_call: row.opt_ts(4)?,
            scheduled_since: row.ts(5)?,
            refresh_error: row.opt_string(6)?,
            answers: answers.remove(&id).unwrap_or_default(),
        };
        let was_stopped: Option<Stop> = row.opt_parse(7)?;
        let verdict = nightly::judge(&bank, &card, from_night, to_night, cached_call_required);
        let same_stop = verdict.refreshed_at.is_none()
            && verdict.erase_answer.is_none()
            && verdict.refresh_error.is_none()
            && verdict.stopped.map(|(stop, _)| stop) == was_stopped;
        if !verdict.changes() || same_stop {
            continue;
        }
        if verdict.refreshed_at.is_some() {
            run.refreshed += 1;
        }
        if verdict.stopped.is_some() && was_stopped.is_none() {
            run.stopped += 1;
        }
        let (stop, stopped_at) = verdict
            .stopped
            .map_or((None, None), |(stop, at)| (Some(stop.as_str()), Some(at)));
        let (set_error, error) = match &verdict.refresh_error {
            Some(error) => (true, error.as_deref()),
            None => (false, None),
        };
        // A card that was already stopped keeps the night it first stopped.
        tx.execute(
            "UPDATE logins SET last_refresh = COALESCE(CAST($2 AS BIGINT), last_refresh), \
             nightly_stop_at = CASE WHEN CAST($3 AS TEXT) IS NULL THEN NULL \
               WHEN nightly_stop IS NULL THEN CAST($4 AS BIGINT) ELSE nightly_stop_at END, \
             nightly_stop = $3, \
             refresh_error = CASE WHEN CAST($5 AS BOOLEAN) THEN CAST($6 AS TEXT) \
               ELSE refresh_error END \
             WHERE id = $1",
            params![
                &id,
                verdict.refreshed_at.map(Timestamp::as_micros),
                stop,
                stopped_at.map(Timestamp::as_micros),
                set_error,
                error,
            ],
        )
        .await?;
        if let Some(question) = verdict.erase_answer {
            tx.execute(
                "UPDATE login_mfa_answers SET answer_digest = NULL, updated_at = $3 \
                 WHERE login_id = $1 AND question = $2",
                params![&id, question_param(question), now],
            )
            .await?;
        }
    }
    Ok(run)
}

pub async fn stopped_cards(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
) -> Result<Vec<StoppedCard>, StoreError> {
    tx.query(
        "SELECT id, last_refresh, nightly_stop, nightly_stop_at, refresh_error FROM logins \
         WHERE customer_id = $1 AND is_scheduled_refresh AND saved AND nightly_stop IS NOT NULL \
         ORDER BY nightly_stop_at, id",
        params![&customer_id.to_string()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(StoppedCard {
            login_id: row.parse(0)?,
            last_refresh: row.ts(1)?,
            stop: row.parse(2)?,
            stopped_at: row.ts(3)?,
            refresh_error: row.opt_string(4)?,
        })
    })
    .collect()
}

// ---- Enhanced MFA ----

pub async fn mfa_answers(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
) -> Result<Option<(Login, MfaAnswers)>, StoreError> {
    let Some(login) = login(tx, customer_id, login_id, true).await? else {
        return Ok(None);
    };
    let answers = tx
        .query(
            "SELECT question, answer_digest FROM login_mfa_answers WHERE login_id = $1 \
             ORDER BY question",
            params![&login_id.to_string()],
        )
        .await?
        .iter()
        .map(|row| Ok((question_from(row, 0)?, row.opt_digest(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((login, answers)))
}

pub async fn set_mfa_answers(
    tx: &mut dyn Tx,
    customer_id: CustomerId,
    login_id: LoginId,
    answers: &MfaAnswers,
    now: Timestamp,
) -> Result<bool, StoreError> {
    if login(tx, customer_id, login_id, true).await?.is_none() {
        return Ok(false);
    }
    let id = login_id.to_string();
    for (question, answer) in answers {
        tx.execute(
            "UPDATE login_mfa_answers SET answer_digest = $3, updated_at = $4 \
             WHERE login_id = $1 AND question = $2",
            params![&id, question_param(*question), answer.as_ref(), now],
        )
        .await?;
    }
    Ok(true)
}
