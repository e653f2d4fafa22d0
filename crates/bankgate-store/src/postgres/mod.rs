//! The shared backend: PostgreSQL, for several bankgate nodes behind one load balancer.
//!
//! Writes go through the group-commit [`writer::Writer`] (one per node); reads use the pool.
//! Guarantees across nodes come from the statements: a token is spent by one conditional UPDATE
//! (READ COMMITTED re-checks its WHERE after waiting on another node's lock), every multi-step
//! operation is one transaction, and purges lock with SKIP LOCKED so two nodes purging at once
//! neither block each other nor delete (or count) a row twice.
//!
//! Every call is bounded: connecting and waiting for a pooled connection by `connect_timeout`,
//! each statement by the server's `statement_timeout`, and the whole call by a client-side
//! deadline a little past it (for a network that goes silent). Connection failures surface as
//! [`DomainError::Unavailable`] (a 503 envelope); broken connections are dropped from the pool,
//! so a node recovers by itself once the database is back.

mod schema;
mod writer;

use std::time::Duration;

use async_trait::async_trait;
use bankgate_core::model::{
    Customer, Instance, InstanceKind, KeyKind, Language, Login, LoginType, PendingAuthorization,
    Session, Tenant,
};
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::{
    BatchStats, CachedAuthorize, ClockChange, CompleteAuthorization, ConnectSession,
    CredentialMatch, KeyDigests, LoginChange, NewToken, ObserverSlot, OpenOutcome, Purged, Reset,
    Store, StoreObserver, TokenRecord, TokenUse,
};
use writer::{JobFuture, Writer};

/// Rows a purge deletes per transaction, so a large purge never stalls the token path.
const PURGE_CHUNK: i64 = 5_000;

/// Connection settings of the PostgreSQL backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    /// Connections per node (one of them is the writer's).
    pub pool_size: usize,
    /// Bounds opening a connection, and waiting for a free one.
    pub connect_timeout: Duration,
    /// Bounds each statement on the server; the client gives up a little later.
    pub statement_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl PgSettings {
    /// The client-side deadline of one read: the server's own timeout fires first and gives a
    /// clean error; this catches a connection that went silent.
    fn call_timeout(&self) -> Duration {
        self.statement_timeout + Duration::from_secs(1)
    }

    /// The deadline of one write batch: its statements may wait on another node's batch.
    fn batch_timeout(&self) -> Duration {
        self.statement_timeout * 2 + Duration::from_secs(1)
    }
}

/// Failures inside the PostgreSQL backend. Cloneable, because one failed commit answers a whole
/// batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgError {
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.as_db_error().is_none() {
            // Not an answer from the server: the connection is gone or never came.
            return Self::Unavailable(format!("database connection: {error}"));
        }
        Self::Postgres(error.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(format!("no database connection: {error}"))
    }
}

impl From<PgError> for DomainError {
    fn from(error: PgError) -> Self {
        match error {
            PgError::Domain(domain) => domain,
            other => DomainError::Unavailable(other.to_string()),
        }
    }
}

/// The PostgreSQL store of one node.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    writer: Writer,
    settings: PgSettings,
    observer: ObserverSlot,
}

impl PgStore {
    /// Connects, and brings the schema up to date (nodes starting together take turns).
    pub async fn connect(url: &str, settings: PgSettings) -> Result<Self, DomainError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            DomainError::Unavailable(format!("invalid PostgreSQL URL: {error}"))
        })?;
        config.connect_timeout(settings.connect_timeout);
        // synchronous_commit on whatever the server's default: a write is acknowledged only
        // once its commit is flushed (decisions.md §2: durable before the response).
        let session = format!(
            "-c statement_timeout={} -c synchronous_commit=on",
            settings.statement_timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {session}"),
            _ => session,
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("bankgate");
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| DomainError::Unavailable(format!("database pool: {error}")))?;
        {
            let mut client = pool.get().await.map_err(PgError::from)?;
            schema::migrate(&mut client).await?;
        }
        let observer = ObserverSlot::default();
        Ok(Self {
            writer: Writer::start(pool.clone(), settings.batch_timeout(), observer.clone()),
            pool,
            settings,
            observer,
        })
    }

    /// How writes have been grouped into commits so far, on this node.
    pub fn batch_stats(&self) -> BatchStats {
        self.writer.stats()
    }

    /// Lets the queued writes finish and closes every connection.
    pub async fn close(mut self) {
        self.writer.close().await;
        self.pool.close();
    }

    async fn read<T, F>(&self, work: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(&'c ClientWrapper) -> JobFuture<'c, T> + Send,
        T: Send,
    {
        let client = self.pool.get().await.map_err(PgError::from)?;
        match tokio::time::timeout(self.settings.call_timeout(), work(&client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => {
                // In an unknown state: never hand it out again.
                drop(Object::take(client));
                Err(DomainError::Unavailable(
                    "the database did not answer in time".to_owned(),
                ))
            }
        }
    }

    async fn write<T, F>(&self, work: F) -> Result<T, DomainError>
    where
        F: for<'c> FnOnce(&'c ClientWrapper) -> JobFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(work).await.map_err(DomainError::from)
    }

    /// Deletes expired rows a chunk per write job, so a large purge shares the writer with the
    /// token path instead of holding it.
    async fn purge_in_chunks(
        &self,
        sql: &'static str,
        expired_before: Timestamp,
    ) -> Result<u64, DomainError> {
        let mut total = 0_u64;
        loop {
            let deleted = self
                .write(move |conn| {
                    Box::pin(async move {
                        let stmt = conn.prepare_cached(sql).await?;
                        Ok(conn
                            .execute(&stmt, &[&expired_before.as_micros(), &PURGE_CHUNK])
                            .await?)
                    })
                })
                .await?;
            total += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// Deletes expired sessions a chunk at a time, and with them the connections made with
    /// `Save: false` that no session uses any more.
    async fn purge_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        let mut total = 0_u64;
        loop {
            let deleted = self
                .write(move |conn| {
                    Box::pin(async move {
                        let stmt = conn.prepare_cached(PURGE_SESSIONS).await?;
                        let rows = conn
                            .query(&stmt, &[&expired_before.as_micros(), &PURGE_CHUNK])
                            .await?;
                        let mut logins: Vec<String> = rows
                            .iter()
                            .filter_map(|row| row.get::<_, Option<String>>(0))
                            .collect();
                        logins.sort_unstable();
                        logins.dedup();
                        if !logins.is_empty() {
                            let forget = conn
                                .prepare_cached(
                                    "DELETE FROM logins l WHERE l.id = ANY($1) AND NOT l.saved \
                                     AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.login_id = l.id)",
                                )
                                .await?;
                            conn.execute(&forget, &[&logins]).await?;
                        }
                        Ok(rows.len() as u64)
                    })
                })
                .await?;
            total += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

// SKIP LOCKED: rows another node is purging (or spending) right now are left to it.
const PURGE_TOKENS: &str = "DELETE FROM authorize_tokens WHERE digest IN \
     (SELECT digest FROM authorize_tokens WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 \
     FOR UPDATE SKIP LOCKED)";
const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE request_id IN \
     (SELECT request_id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 \
     FOR UPDATE SKIP LOCKED) RETURNING login_id";
const PURGE_CONNECT: &str = "DELETE FROM connect_sessions WHERE secret_digest IN \
     (SELECT secret_digest FROM connect_sessions WHERE expires_at <= $1 ORDER BY expires_at \
     LIMIT $2 FOR UPDATE SKIP LOCKED)";
const PURGE_PENDING: &str = "DELETE FROM pending_authorizations WHERE request_id IN \
     (SELECT request_id FROM pending_authorizations WHERE expires_at <= $1 \
     ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

// ---- row mapping ----

fn parse_col<T: std::str::FromStr>(row: &Row, idx: usize) -> Result<T, PgError>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(idx).map_err(corrupt_col(idx))?;
    text.parse::<T>()
        .map_err(|error| PgError::Corrupt(format!("column {idx}: {error}")))
}

fn corrupt_col(idx: usize) -> impl Fn(tokio_postgres::Error) -> PgError {
    move |error| PgError::Corrupt(format!("column {idx}: {error}"))
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, idx: usize) -> Result<T, PgError> {
    row.try_get(idx).map_err(corrupt_col(idx))
}

fn ts(row: &Row, idx: usize) -> Result<Timestamp, PgError> {
    Ok(Timestamp::from_micros(get(row, idx)?))
}

fn instance_from(row: &Row, at: usize) -> Result<Instance, PgError> {
    let secs: i64 = get(row, at + 2)?;
    Ok(Instance {
        name: parse_col(row, at)?,
        kind: parse_col(row, at + 1)?,
        token_lifetime: Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
        created_at: ts(row, at + 3)?,
        clock_offset: duration_from_micros(get(row, at + 4)?),
    })
}
const INSTANCE_COLS: &str =
    "i.name, i.kind, i.token_lifetime_secs, i.created_at, i.clock_offset_micros";

fn duration_from_micros(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn customer_from(row: &Row, at: usize) -> Result<Customer, PgError> {
    Ok(Customer {
        id: parse_col(row, at)?,
        instance: parse_col(row, at + 1)?,
        label: get(row, at + 2)?,
        authorize_token_required: get(row, at + 3)?,
        api_key_required: get(row, at + 4)?,
        created_at: ts(row, at + 5)?,
    })
}
const CUSTOMER_COLS: &str = "c.id, c.instance, c.label, c.authorize_token_required, \
     c.api_key_required, c.created_at";

fn login_from(row: &Row) -> Result<Login, PgError> {
    Ok(Login {
        id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        institution: get(row, 2)?,
        username: get(row, 3)?,
        login_type: parse_col::<LoginType>(row, 4)?,
        is_scheduled_refresh: get(row, 5)?,
        last_refresh: ts(row, 6)?,
        created_at: ts(row, 7)?,
        language: parse_col::<Language>(row, 8)?,
        saved: get(row, 9)?,
    })
}
const LOGIN_COLS: &str = "id, customer_id, institution, username, login_type, \
     is_scheduled_refresh, last_refresh, created_at, language, saved";

fn session_from(row: &Row) -> Result<Session, PgError> {
    Ok(Session {
        request_id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        login_id: parse_col(row, 2)?,
        created_at: ts(row, 3)?,
        expires_at: ts(row, 4)?,
        tag: get(row, 5)?,
        operation_started_at: get::<Option<i64>>(row, 6)?.map(Timestamp::from_micros),
    })
}
const SESSION_COLS: &str =
    "request_id, customer_id, login_id, created_at, expires_at, tag, operation_started_at";

fn pending_from(row: &Row) -> Result<PendingAuthorization, PgError> {
    let questions: String = get(row, 8)?;
    let questions = questions
        .split(',')
        .filter(|q| !q.is_empty())
        .map(|q| {
            q.parse::<usize>()
                .map_err(|e| PgError::Corrupt(format!("questions: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let login_id: Option<String> = get(row, 7)?;
    Ok(PendingAuthorization {
        request_id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        institution: get(row, 2)?,
        username: get(row, 3)?,
        language: parse_col(row, 4)?,
        save: get(row, 5)?,
        tag: get(row, 6)?,
        login_id: login_id
            .map(|id| {
                id.parse::<LoginId>()
                    .map_err(|e| PgError::Corrupt(format!("login_id: {e}")))
            })
            .transpose()?,
        questions,
        created_at: ts(row, 9)?,
        expires_at: ts(row, 10)?,
    })
}
const PENDING_COLS: &str = "request_id, customer_id, institution, username, language, save, \
     tag, login_id, questions, created_at, expires_at";

fn violates(error: &tokio_postgres::Error, state: &SqlState) -> bool {
    error.code() == Some(state)
}

// ---- statements shared by several operations ----

async fn query_opt(
    conn: &ClientWrapper,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, PgError> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_opt(&stmt, params).await?)
}

async fn execute(
    conn: &ClientWrapper,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, PgError> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.execute(&stmt, params).await?)
}

async fn insert_instance(conn: &ClientWrapper, instance: &Instance) -> Result<(), PgError> {
    let stmt = conn
        .prepare_cached(
            "INSERT INTO instances (name, kind, token_lifetime_secs, created_at, \
             clock_offset_micros) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let lifetime = i64::try_from(instance.token_lifetime.as_secs()).unwrap_or(i64::MAX);
    match conn
        .execute(
            &stmt,
            &[
                &instance.name.as_str(),
                &instance.kind.as_str(),
                &lifetime,
                &instance.created_at.as_micros(),
                &micros_of(instance.clock_offset),
            ],
        )
        .await
    {
        Err(error) if violates(&error, &SqlState::UNIQUE_VIOLATION) => Err(PgError::Domain(
            DomainError::Conflict(format!("instance {}", instance.name)),
        )),
        other => other.map(drop).map_err(PgError::from),
    }
}

async fn insert_keys(
    conn: &ClientWrapper,
    customer_id: CustomerId,
    keys: KeyDigests,
    now: Timestamp,
) -> Result<(), PgError> {
    let stmt = conn
        .prepare_cached(
            "INSERT INTO customer_keys (digest, customer_id, kind, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    let customer_id = customer_id.to_string();
    for (digest, kind) in [(keys.secret, KeyKind::Secret), (keys.api, KeyKind::Api)] {
        conn.execute(
            &stmt,
            &[
                &&digest.as_bytes()[..],
                &customer_id,
                &kind.as_str(),
                &now.as_micros(),
            ],
        )
        .await
        .map_err(|error| {
            if violates(&error, &SqlState::UNIQUE_VIOLATION) {
                PgError::Domain(DomainError::Conflict("a key with this value".to_owned()))
            } else {
                error.into()
            }
        })?;
    }
    Ok(())
}

async fn insert_customer(
    conn: &ClientWrapper,
    customer: &Customer,
    keys: KeyDigests,
) -> Result<(), PgError> {
    let exists = query_opt(
        conn,
        "SELECT kind FROM instances WHERE name = $1",
        &[&customer.instance.as_str()],
    )
    .await?;
    if exists.is_none() {
        return Err(PgError::Domain(DomainError::NotFound {
            what: "instance",
            id: customer.instance.to_string(),
        }));
    }
    let stmt = conn
        .prepare_cached(
            "INSERT INTO customers (id, instance, label, authorize_token_required, \
             api_key_required, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    let result = conn
        .execute(
            &stmt,
            &[
                &customer.id.to_string(),
                &customer.instance.as_str(),
                &customer.label,
                &customer.authorize_token_required,
                &customer.api_key_required,
                &customer.created_at.as_micros(),
            ],
        )
        .await;
    match result {
        Err(error) if violates(&error, &SqlState::UNIQUE_VIOLATION) => {
            return Err(PgError::Domain(DomainError::Conflict(format!(
                "customer {}",
                customer.id
            ))));
        }
        Err(error) if violates(&error, &SqlState::FOREIGN_KEY_VIOLATION) => {
            // The instance went away since the check above (another node).
            return Err(PgError::Domain(DomainError::NotFound {
                what: "instance",
                id: customer.instance.to_string(),
            }));
        }
        other => other.map(drop)?,
    }
    insert_keys(conn, customer.id, keys, customer.created_at).await
}

async fn insert_login(conn: &ClientWrapper, login: &Login) -> Result<(), PgError> {
    let stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO logins ({LOGIN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await?;
    let result = conn
        .execute(
            &stmt,
            &[
                &login.id.to_string(),
                &login.customer_id.to_string(),
                &login.institution,
                &login.username,
                &login.login_type.as_str(),
                &login.is_scheduled_refresh,
                &login.last_refresh.as_micros(),
                &login.created_at.as_micros(),
                &login.language.as_str(),
                &login.saved,
            ],
        )
        .await;
    match result {
        Err(error) if violates(&error, &SqlState::UNIQUE_VIOLATION) => Err(PgError::Domain(
            DomainError::Conflict(format!("LoginId {}", login.id)),
        )),
        Err(error) if violates(&error, &SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(PgError::Domain(DomainError::NotFound {
                what: "customer",
                id: login.customer_id.to_string(),
            }))
        }
        other => other.map(drop).map_err(PgError::from),
    }
}

/// The customer's LoginId; `saved_only` hides connections made with `Save: false`.
async fn select_login(
    conn: &ClientWrapper,
    customer_id: CustomerId,
    login_id: LoginId,
    saved_only: bool,
) -> Result<Option<Login>, PgError> {
    query_opt(
        conn,
        &format!(
            "SELECT {LOGIN_COLS} FROM logins WHERE id = $1 AND customer_id = $2 \
             AND (saved OR NOT $3)"
        ),
        &[&login_id.to_string(), &customer_id.to_string(), &saved_only],
    )
    .await?
    .as_ref()
    .map(login_from)
    .transpose()
}

async fn insert_session(conn: &ClientWrapper, session: &Session) -> Result<(), PgError> {
    execute(
        conn,
        &format!("INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &session.request_id.to_string(),
            &session.customer_id.to_string(),
            &session.login_id.to_string(),
            &session.created_at.as_micros(),
            &session.expires_at.as_micros(),
            &session.tag,
            &session.operation_started_at.map(Timestamp::as_micros),
        ],
    )
    .await
    .map(drop)
}

/// Consumes the token if it is this customer's, unused and unexpired; classifies it otherwise.
async fn consume_token_in(
    conn: &ClientWrapper,
    customer_id: CustomerId,
    digest: Digest,
    request_id: Option<RequestId>,
    now: Timestamp,
) -> Result<TokenUse, PgError> {
    // One conditional UPDATE: a concurrent one on another node holds the row lock until its
    // commit, after which READ COMMITTED re-checks `consumed_at IS NULL` and finds it spent.
    let consumed = execute(
        conn,
        "UPDATE authorize_tokens SET consumed_at = $1, request_id = $2 \
         WHERE digest = $3 AND customer_id = $4 AND consumed_at IS NULL AND expires_at > $1",
        &[
            &now.as_micros(),
            &request_id.map(|id| id.to_string()),
            &&digest.as_bytes()[..],
            &customer_id.to_string(),
        ],
    )
    .await?;
    if consumed == 1 {
        return Ok(TokenUse::Consumed);
    }
    let Some(row) = query_opt(
        conn,
        "SELECT t.customer_id, t.consumed_at, t.expires_at, c.instance, i.kind \
         FROM authorize_tokens t JOIN customers c ON c.id = t.customer_id \
         JOIN instances i ON i.name = c.instance WHERE t.digest = $1",
        &[&&digest.as_bytes()[..]],
    )
    .await?
    else {
        return Ok(TokenUse::Unknown);
    };
    let owner: CustomerId = parse_col(&row, 0)?;
    let consumed_at: Option<i64> = get(&row, 1)?;
    Ok(if owner != customer_id {
        TokenUse::OtherCustomer {
            instance: parse_col(&row, 3)?,
            instance_kind: parse_col::<InstanceKind>(&row, 4)?,
        }
    } else if let Some(at) = consumed_at {
        TokenUse::Used {
            at: Timestamp::from_micros(at),
        }
    } else {
        TokenUse::Expired { at: ts(&row, 2)? }
    })
}

#[async_trait]
impl Store for PgStore {
    async fn create_instance(&self, instance: &Instance) -> Result<(), DomainError> {
        let instance = instance.clone();
        self.write(move |conn| Box::pin(async move { insert_instance(conn, &instance).await }))
            .await
    }

    async fn instance(&self, name: &InstanceName) -> Result<Option<Instance>, DomainError> {
        let name = name.to_string();
        self.read(move |conn| {
            Box::pin(async move {
                query_opt(
                    conn,
                    &format!("SELECT {INSTANCE_COLS} FROM instances i WHERE i.name = $1"),
                    &[&name],
                )
                .await?
                .map(|row| instance_from(&row, 0))
                .transpose()
            })
        })
        .await
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DomainError> {
        self.read(|conn| {
            Box::pin(async move {
                let stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {INSTANCE_COLS} FROM instances i ORDER BY i.name"
                    ))
                    .await?;
                conn.query(&stmt, &[])
                    .await?
                    .iter()
                    .map(|row| instance_from(row, 0))
                    .collect()
            })
        })
        .await
    }

    async fn create_customer(
        &self,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<(), DomainError> {
        let customer = customer.clone();
        self.write(move |conn| {
            Box::pin(async move { insert_customer(conn, &customer, keys).await })
        })
        .await
    }

    async fn list_customers(
        &self,
        instance: Option<&InstanceName>,
    ) -> Result<Vec<Customer>, DomainError> {
        let instance = instance.map(ToString::to_string);
        self.read(move |conn| {
            Box::pin(async move {
                let stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {CUSTOMER_COLS} FROM customers c \
                         WHERE $1::TEXT IS NULL OR c.instance = $1 \
                         ORDER BY c.instance, c.created_at, c.id"
                    ))
                    .await?;
                conn.query(&stmt, &[&instance])
                    .await?
                    .iter()
                    .map(|row| customer_from(row, 0))
                    .collect()
            })
        })
        .await
    }

    async fn tenant(&self, customer_id: CustomerId) -> Result<Option<Tenant>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                let Some(row) = query_opt(
                    conn,
                    &format!(
                        "SELECT {CUSTOMER_COLS}, {INSTANCE_COLS} FROM customers c \
                         JOIN instances i ON i.name = c.instance WHERE c.id = $1"
                    ),
                    &[&customer_id.to_string()],
                )
                .await?
                else {
                    return Ok(None);
                };
                Ok(Some(Tenant {
                    customer: customer_from(&row, 0)?,
                    instance: instance_from(&row, 6)?,
                }))
            })
        })
        .await
    }

    async fn rotate_keys(
        &self,
        customer_id: CustomerId,
        keys: KeyDigests,
        now: Timestamp,
        retire_old_at: Timestamp,
    ) -> Result<(), DomainError> {
        self.write(move |conn| {
            Box::pin(async move {
                let id = customer_id.to_string();
                // FOR UPDATE: two nodes rotating one customer's keys take turns.
                let exists = query_opt(
                    conn,
                    "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?;
                if exists.is_none() {
                    return Err(PgError::Domain(DomainError::NotFound {
                        what: "customer",
                        id,
                    }));
                }
                // Shorten, never lengthen, the life of keys already on their way out.
                execute(
                    conn,
                    "UPDATE customer_keys SET not_after = $2 \
                     WHERE customer_id = $1 AND (not_after IS NULL OR not_after > $2)",
                    &[&id, &retire_old_at.as_micros()],
                )
                .await?;
                insert_keys(conn, customer_id, keys, now).await
            })
        })
        .await
    }

    async fn find_credential(
        &self,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                let bytes = &digest.as_bytes()[..];
                // One round trip for both kinds of credential.
                let Some(row) = query_opt(
                    conn,
                    "SELECT k.customer_id, c.instance, i.kind, k.kind, k.not_after \
                     FROM customer_keys k JOIN customers c ON c.id = k.customer_id \
                     JOIN instances i ON i.name = c.instance WHERE k.digest = $1 \
                     UNION ALL \
                     SELECT t.customer_id, c.instance, i.kind, 'token', NULL \
                     FROM authorize_tokens t JOIN customers c ON c.id = t.customer_id \
                     JOIN instances i ON i.name = c.instance WHERE t.digest = $1 \
                     LIMIT 1",
                    &[&bytes],
                )
                .await?
                else {
                    return Ok(None);
                };
                let kind: String = get(&row, 3)?;
                let customer_id = parse_col(&row, 0)?;
                let instance = parse_col(&row, 1)?;
                let instance_kind = parse_col(&row, 2)?;
                Ok(Some(match kind.as_str() {
                    "token" => CredentialMatch::Token {
                        customer_id,
                        instance,
                        instance_kind,
                    },
                    _ => CredentialMatch::Key {
                        customer_id,
                        instance,
                        instance_kind,
                        kind: if kind == "secret" {
                            KeyKind::Secret
                        } else {
                            KeyKind::Api
                        },
                        retired_at: get::<Option<i64>>(&row, 4)?
                            .map(Timestamp::from_micros)
                            .filter(|at| *at <= now),
                    },
                }))
            })
        })
        .await
    }

    async fn issue_token(&self, token: NewToken) -> Result<(), DomainError> {
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    execute(
                        conn,
                        "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                        &[
                            &&token.digest.as_bytes()[..],
                            &token.customer_id.to_string(),
                            &token.issued_at.as_micros(),
                            &token.expires_at.as_micros(),
                        ],
                    )
                    .await
                    .map(drop)
                })
            })
            .await?;
        self.observer.token_issued();
        Ok(outcome)
    }

    async fn consume_token(
        &self,
        customer_id: CustomerId,
        digest: Digest,
        request_id: RequestId,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    consume_token_in(conn, customer_id, digest, Some(request_id), now).await
                })
            })
            .await?;
        self.observer.token_presented(Some(digest), &outcome);
        Ok(outcome)
    }

    async fn create_login(&self, login: &Login) -> Result<(), DomainError> {
        let login = login.clone();
        self.write(move |conn| Box::pin(async move { insert_login(conn, &login).await }))
            .await
    }

    async fn login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<Login>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move { select_login(conn, customer_id, login_id, false).await })
        })
        .await
    }

    async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<bool, DomainError> {
        self.write(move |conn| {
            Box::pin(async move {
                // Sessions and pending exchanges go with it through ON DELETE CASCADE.
                let deleted = execute(
                    conn,
                    "DELETE FROM logins WHERE id = $1 AND customer_id = $2",
                    &[&login_id.to_string(), &customer_id.to_string()],
                )
                .await?;
                Ok(deleted == 1)
            })
        })
        .await
    }

    async fn authorize_cached(&self, request: CachedAuthorize) -> Result<OpenOutcome, DomainError> {
        let token = request.token;
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(digest) = request.token {
                        let used = consume_token_in(
                            conn,
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
                    let Some(login) =
                        select_login(conn, request.customer_id, request.login_id, true).await?
                    else {
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
                    insert_session(conn, &session).await?;
                    Ok(OpenOutcome::Opened { login, session })
                })
            })
            .await?;
        self.observer.token_opened(token, &outcome);
        Ok(outcome)
    }

    async fn session(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<Session>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                query_opt(
                    conn,
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions \
                         WHERE request_id = $1 AND customer_id = $2"
                    ),
                    &[&request_id.to_string(), &customer_id.to_string()],
                )
                .await?
                .as_ref()
                .map(session_from)
                .transpose()
            })
        })
        .await
    }

    async fn start_pending(
        &self,
        token: Option<Digest>,
        pending: &PendingAuthorization,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let pending = pending.clone();
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(digest) = token {
                        let used = consume_token_in(
                            conn,
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
                    let questions: Vec<String> =
                        pending.questions.iter().map(ToString::to_string).collect();
                    execute(
                        conn,
                        &format!(
                            "INSERT INTO pending_authorizations ({PENDING_COLS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                        ),
                        &[
                            &pending.request_id.to_string(),
                            &pending.customer_id.to_string(),
                            &pending.institution,
                            &pending.username,
                            &pending.language.as_str(),
                            &pending.save,
                            &pending.tag,
                            &pending.login_id.map(|id| id.to_string()),
                            &questions.join(","),
                            &pending.created_at.as_micros(),
                            &pending.expires_at.as_micros(),
                        ],
                    )
                    .await?;
                    Ok(TokenUse::Consumed)
                })
            })
            .await?;
        self.observer.token_presented(token, &outcome);
        Ok(outcome)
    }

    async fn pending(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<PendingAuthorization>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                query_opt(
                    conn,
                    &format!(
                        "SELECT {PENDING_COLS} FROM pending_authorizations \
                         WHERE request_id = $1 AND customer_id = $2"
                    ),
                    &[&request_id.to_string(), &customer_id.to_string()],
                )
                .await?
                .as_ref()
                .map(pending_from)
                .transpose()
            })
        })
        .await
    }

    async fn extend_pending(
        &self,
        request_id: RequestId,
        expires_at: Timestamp,
    ) -> Result<(), DomainError> {
        self.write(move |conn| {
            Box::pin(async move {
                execute(
                    conn,
                    "UPDATE pending_authorizations SET expires_at = $2 WHERE request_id = $1",
                    &[&request_id.to_string(), &expires_at.as_micros()],
                )
                .await
                .map(drop)
            })
        })
        .await
    }

    async fn drop_pending(&self, request_id: RequestId) -> Result<(), DomainError> {
        self.write(move |conn| {
            Box::pin(async move {
                execute(
                    conn,
                    "DELETE FROM pending_authorizations WHERE request_id = $1",
                    &[&request_id.to_string()],
                )
                .await
                .map(drop)
            })
        })
        .await
    }

    async fn token_request(&self, digest: Digest) -> Result<Option<RequestId>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                let Some(row) = query_opt(
                    conn,
                    "SELECT request_id FROM authorize_tokens \
                     WHERE digest = $1 AND consumed_at IS NOT NULL",
                    &[&&digest.as_bytes()[..]],
                )
                .await?
                else {
                    return Ok(None);
                };
                get::<Option<String>>(&row, 0)?
                    .map(|id| {
                        id.parse::<RequestId>()
                            .map_err(|e| PgError::Corrupt(format!("token request_id: {e}")))
                    })
                    .transpose()
            })
        })
        .await
    }

    async fn complete_authorization(
        &self,
        completion: CompleteAuthorization,
    ) -> Result<OpenOutcome, DomainError> {
        let token = completion.token;
        let outcome = self.write(move |conn| {
            Box::pin(async move {
                let CompleteAuthorization {
                    customer_id,
                    token,
                    request_id,
                    now,
                    login,
                    session_expires_at,
                    tag,
                    from_pending,
                } = completion;
                if let Some(digest) = token {
                    let used =
                        consume_token_in(conn, customer_id, digest, Some(request_id), now).await?;
                    if used != TokenUse::Consumed {
                        return Ok(OpenOutcome::TokenRefused(used));
                    }
                }
                // The DELETE takes the row lock: of two nodes completing one exchange, the
                // second waits, then finds it gone.
                let ended = execute(
                    conn,
                    "DELETE FROM pending_authorizations WHERE request_id = $1 AND customer_id = $2",
                    &[&request_id.to_string(), &customer_id.to_string()],
                )
                .await?;
                if from_pending && ended != 1 {
                    return Ok(OpenOutcome::ExchangeEnded);
                }
                let login = match login {
                    LoginChange::Create(login) => {
                        insert_login(conn, &login).await?;
                        login
                    }
                    LoginChange::Refresh { login_id, at } => {
                        execute(
                            conn,
                            "UPDATE logins SET last_refresh = $3 WHERE id = $1 AND customer_id = $2",
                            &[&login_id.to_string(), &customer_id.to_string(), &at.as_micros()],
                        )
                        .await?;
                        match select_login(conn, customer_id, login_id, false).await? {
                            Some(login) => login,
                            // Deleted while the user answered MFA.
                            None => return Ok(OpenOutcome::LoginNotFound),
                        }
                    }
                };
                let session = Session {
                    request_id,
                    customer_id,
                    login_id: login.id,
                    created_at: now,
                    expires_at: session_expires_at,
                    tag,
                    operation_started_at: None,
                };
                insert_session(conn, &session).await?;
                Ok(OpenOutcome::Opened { login, session })
            })
        })
        .await?;
        self.observer.token_opened(token, &outcome);
        Ok(outcome)
    }

    async fn start_operation(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError> {
        self.write(move |conn| {
            Box::pin(async move {
                let (request_id, customer_id) = (request_id.to_string(), customer_id.to_string());
                // COALESCE keeps the first start; the row lock orders racing nodes.
                let row = query_opt(
                    conn,
                    "UPDATE sessions SET operation_started_at = COALESCE(operation_started_at, $3) \
                     WHERE request_id = $1 AND customer_id = $2 RETURNING operation_started_at",
                    &[&request_id, &customer_id, &at.as_micros()],
                )
                .await?;
                Ok(match row {
                    Some(row) => get::<Option<i64>>(&row, 0)?.map(Timestamp::from_micros),
                    None => None,
                })
            })
        })
        .await
    }

    async fn seed_once(
        &self,
        marker: &str,
        instance: &Instance,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<bool, DomainError> {
        let (marker, instance, customer) = (marker.to_owned(), instance.clone(), customer.clone());
        self.write(move |conn| {
            Box::pin(async move {
                // Two nodes starting at once: the second waits on the first's row, then skips.
                let inserted = execute(
                    conn,
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&marker, &instance.created_at.to_rfc3339()],
                )
                .await?;
                if inserted == 0 {
                    return Ok(false);
                }
                insert_instance(conn, &instance).await?;
                insert_customer(conn, &customer, keys).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn reset_instance(&self, instance: &InstanceName) -> Result<Reset, DomainError> {
        let instance = instance.to_string();
        self.write(move |conn| {
            Box::pin(async move {
                let mut reset = Reset::default();
                // Connect sessions are not counted: they hold nothing a caller could use.
                execute(
                    conn,
                    "DELETE FROM connect_sessions WHERE customer_id IN \
                     (SELECT id FROM customers WHERE instance = $1)",
                    &[&instance],
                )
                .await?;
                // Sessions before LoginIds, so they are counted rather than cascaded away.
                for (table, removed) in [
                    ("pending_authorizations", &mut reset.pending),
                    ("sessions", &mut reset.sessions),
                    ("logins", &mut reset.logins),
                    ("authorize_tokens", &mut reset.tokens),
                ] {
                    *removed = execute(
                        conn,
                        &format!(
                            "DELETE FROM {table} WHERE customer_id IN \
                             (SELECT id FROM customers WHERE instance = $1)"
                        ),
                        &[&instance],
                    )
                    .await?;
                }
                Ok(reset)
            })
        })
        .await
    }

    async fn token_record(&self, digest: Digest) -> Result<Option<TokenRecord>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                let Some(row) = query_opt(
                    conn,
                    "SELECT customer_id, issued_at, expires_at, consumed_at, request_id \
                     FROM authorize_tokens WHERE digest = $1",
                    &[&&digest.as_bytes()[..]],
                )
                .await?
                else {
                    return Ok(None);
                };
                let request_id: Option<String> = get(&row, 4)?;
                Ok(Some(TokenRecord {
                    customer_id: parse_col(&row, 0)?,
                    issued_at: ts(&row, 1)?,
                    expires_at: ts(&row, 2)?,
                    consumed_at: get::<Option<i64>>(&row, 3)?.map(Timestamp::from_micros),
                    request_id: match request_id {
                        None => None,
                        Some(_) => Some(parse_col(&row, 4)?),
                    },
                }))
            })
        })
        .await
    }

    async fn change_clock(
        &self,
        instance: &InstanceName,
        change: ClockChange,
    ) -> Result<Option<Duration>, DomainError> {
        let name = instance.to_string();
        self.write(move |conn| {
            Box::pin(async move {
                // One statement: concurrent advances (from any node) add up.
                let row =
                    match change {
                        ClockChange::Advance(by) => query_opt(
                            conn,
                            "UPDATE instances SET clock_offset_micros = clock_offset_micros + $2 \
                             WHERE name = $1 RETURNING clock_offset_micros",
                            &[&name, &micros_of(by)],
                        )
                        .await?,
                        ClockChange::Reset => {
                            query_opt(
                                conn,
                                "UPDATE instances SET clock_offset_micros = 0 \
                             WHERE name = $1 RETURNING clock_offset_micros",
                                &[&name],
                            )
                            .await?
                        }
                    };
                row.map(|row| get::<i64>(&row, 0).map(duration_from_micros))
                    .transpose()
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), DomainError> {
        self.read(|conn| {
            Box::pin(async move {
                conn.simple_query("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }

    fn observe(&self, observer: std::sync::Arc<dyn StoreObserver>) {
        self.observer.set(observer);
    }

    async fn open_connect_session(
        &self,
        session: &ConnectSession,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let session = session.clone();
        let token = session.token;
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(digest) = session.token {
                        // No RequestId: the page opens its own through the live flow.
                        let used =
                            consume_token_in(conn, session.customer_id, digest, None, now).await?;
                        if used != TokenUse::Consumed {
                            return Ok(used);
                        }
                    }
                    execute(
                        conn,
                        "INSERT INTO connect_sessions \
                         (secret_digest, customer_id, token_digest, state, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &&session.secret.as_bytes()[..],
                            &session.customer_id.to_string(),
                            &session.token.as_ref().map(|d| d.as_bytes().to_vec()),
                            &session.state,
                            &session.created_at.as_micros(),
                            &session.expires_at.as_micros(),
                        ],
                    )
                    .await?;
                    Ok(TokenUse::Consumed)
                })
            })
            .await?;
        self.observer.token_presented(token, &outcome);
        Ok(outcome)
    }

    async fn connect_session(&self, secret: Digest) -> Result<Option<ConnectSession>, DomainError> {
        self.read(move |conn| {
            Box::pin(async move {
                let Some(row) = query_opt(
                    conn,
                    "SELECT customer_id, token_digest, state, created_at, expires_at \
                     FROM connect_sessions WHERE secret_digest = $1",
                    &[&&secret.as_bytes()[..]],
                )
                .await?
                else {
                    return Ok(None);
                };
                let token = match get::<Option<Vec<u8>>>(&row, 1)? {
                    None => None,
                    Some(bytes) => Some(Digest::from_slice(&bytes).ok_or_else(|| {
                        PgError::Corrupt("connect_sessions.token_digest".to_owned())
                    })?),
                };
                Ok(Some(ConnectSession {
                    secret,
                    customer_id: parse_col(&row, 0)?,
                    token,
                    state: get(&row, 2)?,
                    created_at: ts(&row, 3)?,
                    expires_at: ts(&row, 4)?,
                }))
            })
        })
        .await
    }

    async fn update_connect_session(
        &self,
        secret: Digest,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<bool, DomainError> {
        let state = state.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let updated = execute(
                    conn,
                    "UPDATE connect_sessions SET state = $2, expires_at = $3 \
                     WHERE secret_digest = $1",
                    &[&&secret.as_bytes()[..], &state, &expires_at.as_micros()],
                )
                .await?;
                Ok(updated == 1)
            })
        })
        .await
    }

    async fn connect_token_required(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        let instance = instance.to_string();
        self.read(move |conn| {
            Box::pin(async move {
                let row = query_opt(
                    conn,
                    "SELECT authorize_token_required FROM connect_settings WHERE instance = $1",
                    &[&instance],
                )
                .await?;
                Ok(match row {
                    Some(row) => get::<bool>(&row, 0)?,
                    None => true,
                })
            })
        })
        .await
    }

    async fn set_connect_token_required(
        &self,
        instance: &InstanceName,
        required: bool,
    ) -> Result<(), DomainError> {
        let instance = instance.to_string();
        self.write(move |conn| {
            Box::pin(async move {
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO connect_settings (instance, authorize_token_required) \
                         VALUES ($1, $2) ON CONFLICT (instance) \
                         DO UPDATE SET authorize_token_required = excluded.authorize_token_required",
                    )
                    .await?;
                match conn.execute(&stmt, &[&instance, &required]).await {
                    Err(error) if violates(&error, &SqlState::FOREIGN_KEY_VIOLATION) => {
                        Err(PgError::Domain(DomainError::NotFound {
                            what: "instance",
                            id: instance,
                        }))
                    }
                    other => other.map(drop).map_err(PgError::from),
                }
            })
        })
        .await
    }

    async fn purge_connect_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        self.purge_in_chunks(PURGE_CONNECT, expired_before).await
    }

    async fn purge_expired(&self, expired_before: Timestamp) -> Result<Purged, DomainError> {
        Ok(Purged {
            tokens: self.purge_in_chunks(PURGE_TOKENS, expired_before).await?,
            sessions: self.purge_sessions(expired_before).await?,
            pending: self.purge_in_chunks(PURGE_PENDING, expired_before).await?,
        })
    }
}
