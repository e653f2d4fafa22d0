//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Writes go through the group-commit [`writer::Writer`]; reads use a small pool of connections
//! on blocking threads, which WAL lets run beside the writer.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bankgate_core::model::{
    Customer, Instance, InstanceKind, KeyKind, Language, Login, LoginType, PendingAuthorization,
    Session, Tenant,
};
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};

use crate::{
    CachedAuthorize, ClockChange, CompleteAuthorization, ConnectSession, CredentialMatch,
    KeyDigests, LoginChange, NewToken, ObserverSlot, OpenOutcome, Purged, Reset, Store,
    StoreObserver, TokenRecord, TokenUse,
};
pub use writer::BatchStats;
use writer::Writer;

/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows a purge deletes per transaction, so a large purge never stalls the token path.
const PURGE_CHUNK: i64 = 5_000;
const READ_POOL_SIZE: u32 = 8;

/// Failures inside the SQLite backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error.to_string())
    }
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Domain(domain) => domain,
            other => DomainError::Unavailable(other.to_string()),
        }
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/sqlite/0001_core.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/0002_live_authorize.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0003_instance_clock.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/0004_connect.sql")),
    ])
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // FULL: a commit is on disk before anyone is told it happened (group commit pays for it).
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: r2d2::Pool<SqliteConnectionManager>,
    observer: ObserverSlot,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DomainError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                DomainError::Unavailable(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let mut conn = Connection::open(&path).map_err(StoreError::from)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(StoreError::from)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DomainError::Unavailable(format!(
                "{} does not support WAL (journal_mode is {mode})",
                path.display()
            )));
        }
        configure(&conn).map_err(StoreError::from)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|error| DomainError::Unavailable(format!("migration failed: {error}")))?;

        let manager = SqliteConnectionManager::file(&path).with_init(|conn| configure(conn));
        let readers = r2d2::Pool::builder()
            .max_size(READ_POOL_SIZE)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|error| DomainError::Unavailable(format!("read pool: {error}")))?;
        let observer = ObserverSlot::default();
        Ok(Self {
            path,
            writer: Writer::start(conn, observer.clone())?,
            readers,
            observer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How writes have been grouped into commits so far.
    pub fn batch_stats(&self) -> BatchStats {
        self.writer.stats()
    }

    async fn read<T, F>(&self, work: F) -> Result<T, DomainError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|error| StoreError::Unavailable(format!("read pool: {error}")))?;
            work(&conn)
        })
        .await
        .map_err(|error| DomainError::Unavailable(format!("read task: {error}")))?
        .map_err(DomainError::from)
    }

    async fn write<T, F>(&self, work: F) -> Result<T, DomainError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(work).await.map_err(DomainError::from)
    }

    /// Deletes expired rows a chunk per write job, so a large purge shares the writer with
    /// the token path instead of holding it.
    async fn purge_in_chunks(
        &self,
        sql: &'static str,
        expired_before: Timestamp,
    ) -> Result<u64, DomainError> {
        let mut total = 0_u64;
        loop {
            let deleted = self
                .write(move |conn| {
                    Ok(conn.execute(sql, params![expired_before.as_micros(), PURGE_CHUNK])?)
                })
                .await?;
            total += deleted as u64;
            if (deleted as i64) < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Deletes expired sessions a chunk at a time, and with them the connections made with
    /// `Save: false` that no session uses any more (found from the deleted rows, so the work
    /// stays proportional to what expired).
    async fn purge_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        let mut total = 0_u64;
        loop {
            let deleted = self
                .write(move |conn| {
                    let mut logins: Vec<String> = conn
                        .prepare_cached(PURGE_SESSIONS)?
                        .query_map(params![expired_before.as_micros(), PURGE_CHUNK], |row| {
                            row.get::<_, String>(0)
                        })?
                        .collect::<Result<_, _>>()?;
                    let deleted = logins.len();
                    logins.sort_unstable();
                    logins.dedup();
                    let mut forget = conn.prepare_cached(
                        "DELETE FROM logins WHERE id = ?1 AND saved = 0 \
                         AND NOT EXISTS (SELECT 1 FROM sessions WHERE login_id = ?1)",
                    )?;
                    for login_id in logins {
                        forget.execute(params![login_id])?;
                    }
                    Ok(deleted)
                })
                .await?;
            total += deleted as u64;
            if (deleted as i64) < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// The query plan SQLite chooses for the purge, for tests that the purge uses its index.
    #[doc(hidden)]
    pub fn explain_purge(&self) -> Result<String, DomainError> {
        let conn = self
            .readers
            .get()
            .map_err(|e| DomainError::Unavailable(e.to_string()))?;
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PURGE_TOKENS}"))
            .map_err(StoreError::from)?;
        let rows = stmt
            .query_map(params![0_i64, PURGE_CHUNK], |row| row.get::<_, String>(3))
            .map_err(StoreError::from)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)?;
        Ok(rows.join("\n"))
    }
}

const PURGE_TOKENS: &str = "DELETE FROM authorize_tokens WHERE rowid IN \
     (SELECT rowid FROM authorize_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE rowid IN \
     (SELECT rowid FROM sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2) \
     RETURNING login_id";
const PURGE_CONNECT: &str = "DELETE FROM connect_sessions WHERE rowid IN \
     (SELECT rowid FROM connect_sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
const PURGE_PENDING: &str = "DELETE FROM pending_authorizations WHERE rowid IN \
     (SELECT rowid FROM pending_authorizations WHERE expires_at <= ?1 ORDER BY expires_at \
     LIMIT ?2)";

// ---- row mapping ----

fn corrupt(what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(StoreError::Corrupt(what.to_string())),
    )
}

fn parse_col<T: std::str::FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.get(idx)?;
    text.parse::<T>()
        .map_err(|error| corrupt(format!("column {idx}: {error}")))
}

fn ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_micros(row.get(idx)?))
}

fn instance_from(row: &Row<'_>, at: usize) -> rusqlite::Result<Instance> {
    let secs: i64 = row.get(at + 2)?;
    Ok(Instance {
        name: parse_col(row, at)?,
        kind: parse_col(row, at + 1)?,
        token_lifetime: Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
        created_at: ts(row, at + 3)?,
        clock_offset: duration_from_micros(row.get(at + 4)?),
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

fn customer_from(row: &Row<'_>, at: usize) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: parse_col(row, at)?,
        instance: parse_col(row, at + 1)?,
        label: row.get(at + 2)?,
        authorize_token_required: row.get(at + 3)?,
        api_key_required: row.get(at + 4)?,
        created_at: ts(row, at + 5)?,
    })
}
const CUSTOMER_COLS: &str = "c.id, c.instance, c.label, c.authorize_token_required, \
     c.api_key_required, c.created_at";

fn login_from(row: &Row<'_>) -> rusqlite::Result<Login> {
    Ok(Login {
        id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        institution: row.get(2)?,
        username: row.get(3)?,
        login_type: parse_col::<LoginType>(row, 4)?,
        is_scheduled_refresh: row.get(5)?,
        last_refresh: ts(row, 6)?,
        created_at: ts(row, 7)?,
        language: parse_col::<Language>(row, 8)?,
        saved: row.get(9)?,
    })
}
const LOGIN_COLS: &str = "id, customer_id, institution, username, login_type, \
     is_scheduled_refresh, last_refresh, created_at, language, saved";

fn insert_login(conn: &Connection, login: &Login) -> Result<(), StoreError> {
    let result = conn
        .prepare_cached(&format!(
            "INSERT INTO logins ({LOGIN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?
        .execute(params![
            login.id.to_string(),
            login.customer_id.to_string(),
            login.institution,
            login.username,
            login.login_type.as_str(),
            login.is_scheduled_refresh,
            login.last_refresh.as_micros(),
            login.created_at.as_micros(),
            login.language.as_str(),
            login.saved
        ]);
    match result {
        Err(error) if is_unique_violation(&error) => Err(StoreError::Domain(
            DomainError::Conflict(format!("LoginId {}", login.id)),
        )),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(StoreError::Domain(DomainError::NotFound {
                what: "customer",
                id: login.customer_id.to_string(),
            }))
        }
        other => other.map(drop).map_err(StoreError::from),
    }
}

/// The customer's LoginId; `saved_only` hides connections made with `Save: false`.
fn select_login(
    conn: &Connection,
    customer_id: CustomerId,
    login_id: LoginId,
    saved_only: bool,
) -> Result<Option<Login>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {LOGIN_COLS} FROM logins WHERE id = ?1 AND customer_id = ?2 \
             AND (saved = 1 OR NOT ?3)"
        ))?
        .query_row(
            params![login_id.to_string(), customer_id.to_string(), saved_only],
            login_from,
        )
        .optional()?)
}

fn session_from(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        request_id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        login_id: parse_col(row, 2)?,
        created_at: ts(row, 3)?,
        expires_at: ts(row, 4)?,
        tag: row.get(5)?,
        operation_started_at: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
    })
}
const SESSION_COLS: &str =
    "request_id, customer_id, login_id, created_at, expires_at, tag, operation_started_at";

fn insert_session(conn: &Connection, session: &Session) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO sessions ({SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        session.request_id.to_string(),
        session.customer_id.to_string(),
        session.login_id.to_string(),
        session.created_at.as_micros(),
        session.expires_at.as_micros(),
        session.tag,
        session.operation_started_at.map(Timestamp::as_micros)
    ])?;
    Ok(())
}

fn pending_from(row: &Row<'_>) -> rusqlite::Result<PendingAuthorization> {
    let questions: String = row.get(8)?;
    let questions = questions
        .split(',')
        .filter(|q| !q.is_empty())
        .map(|q| {
            q.parse::<usize>()
                .map_err(|e| corrupt(format!("questions: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let login_id: Option<String> = row.get(7)?;
    Ok(PendingAuthorization {
        request_id: parse_col(row, 0)?,
        customer_id: parse_col(row, 1)?,
        institution: row.get(2)?,
        username: row.get(3)?,
        language: parse_col(row, 4)?,
        save: row.get(5)?,
        tag: row.get(6)?,
        login_id: login_id
            .map(|id| {
                id.parse::<LoginId>()
                    .map_err(|e| corrupt(format!("login_id: {e}")))
            })
            .transpose()?,
        questions,
        created_at: ts(row, 9)?,
        expires_at: ts(row, 10)?,
    })
}
const PENDING_COLS: &str = "request_id, customer_id, institution, username, language, save, \
     tag, login_id, questions, created_at, expires_at";

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn insert_instance(conn: &Connection, instance: &Instance) -> Result<(), StoreError> {
    let result = conn.execute(
        "INSERT INTO instances (name, kind, token_lifetime_secs, created_at, clock_offset_micros) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            instance.name.as_str(),
            instance.kind.as_str(),
            i64::try_from(instance.token_lifetime.as_secs()).unwrap_or(i64::MAX),
            instance.created_at.as_micros(),
            micros_of(instance.clock_offset),
        ],
    );
    match result {
        Err(error) if is_unique_violation(&error) => Err(StoreError::Domain(
            DomainError::Conflict(format!("instance {}", instance.name)),
        )),
        other => other.map(drop).map_err(StoreError::from),
    }
}

fn insert_keys(
    conn: &Connection,
    customer_id: CustomerId,
    keys: KeyDigests,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO customer_keys (digest, customer_id, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (digest, kind) in [(keys.secret, KeyKind::Secret), (keys.api, KeyKind::Api)] {
        stmt.execute(params![
            digest.as_bytes(),
            customer_id.to_string(),
            kind.as_str(),
            now.as_micros()
        ])
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Domain(DomainError::Conflict("a key with this value".to_owned()))
            } else {
                error.into()
            }
        })?;
    }
    Ok(())
}

fn insert_customer(
    conn: &Connection,
    customer: &Customer,
    keys: KeyDigests,
) -> Result<(), StoreError> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT kind FROM instances WHERE name = ?1",
            params![customer.instance.as_str()],
            |row| row.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::Domain(DomainError::NotFound {
            what: "instance",
            id: customer.instance.to_string(),
        }));
    }
    let result = conn.execute(
        "INSERT INTO customers (id, instance, label, authorize_token_required, api_key_required, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            customer.id.to_string(),
            customer.instance.as_str(),
            customer.label,
            customer.authorize_token_required,
            customer.api_key_required,
            customer.created_at.as_micros()
        ],
    );
    match result {
        Err(error) if is_unique_violation(&error) => {
            return Err(StoreError::Domain(DomainError::Conflict(format!(
                "customer {}",
                customer.id
            ))));
        }
        other => other.map(drop)?,
    }
    insert_keys(conn, customer.id, keys, customer.created_at)
}

/// Consumes the token if it is this customer's, unused and unexpired; classifies it otherwise.
fn consume_token_in(
    conn: &Connection,
    customer_id: CustomerId,
    digest: Digest,
    request_id: Option<RequestId>,
    now: Timestamp,
) -> Result<TokenUse, StoreError> {
    // One conditional UPDATE: atomic even if several processes share the file.
    let consumed = conn
        .prepare_cached(
            "UPDATE authorize_tokens SET consumed_at = ?1, request_id = ?2 \
             WHERE digest = ?3 AND customer_id = ?4 AND consumed_at IS NULL AND expires_at > ?1",
        )?
        .execute(params![
            now.as_micros(),
            request_id.map(|id| id.to_string()),
            digest.as_bytes(),
            customer_id.to_string()
        ])?;
    if consumed == 1 {
        return Ok(TokenUse::Consumed);
    }
    let row = conn
        .prepare_cached(
            "SELECT t.customer_id, t.consumed_at, t.expires_at, c.instance, i.kind \
             FROM authorize_tokens t JOIN customers c ON c.id = t.customer_id \
             JOIN instances i ON i.name = c.instance WHERE t.digest = ?1",
        )?
        .query_row(params![digest.as_bytes()], |row| {
            Ok((
                parse_col::<CustomerId>(row, 0)?,
                row.get::<_, Option<i64>>(1)?,
                ts(row, 2)?,
                parse_col::<InstanceName>(row, 3)?,
                parse_col::<InstanceKind>(row, 4)?,
            ))
        })
        .optional()?;
    Ok(match row {
        None => TokenUse::Unknown,
        Some((owner, _, _, instance, instance_kind)) if owner != customer_id => {
            TokenUse::OtherCustomer {
                instance,
                instance_kind,
            }
        }
        Some((_, Some(at), _, _, _)) => TokenUse::Used {
            at: Timestamp::from_micros(at),
        },
        Some((_, None, expires_at, _, _)) => TokenUse::Expired { at: expires_at },
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_instance(&self, instance: &Instance) -> Result<(), DomainError> {
        let instance = instance.clone();
        self.write(move |conn| insert_instance(conn, &instance))
            .await
    }

    async fn instance(&self, name: &InstanceName) -> Result<Option<Instance>, DomainError> {
        let name = name.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {INSTANCE_COLS} FROM instances i WHERE i.name = ?1"),
                    params![name],
                    |row| instance_from(row, 0),
                )
                .optional()?)
        })
        .await
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DomainError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {INSTANCE_COLS} FROM instances i ORDER BY i.name"
            ))?;
            let rows = stmt.query_map([], |row| instance_from(row, 0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_customer(
        &self,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<(), DomainError> {
        let customer = customer.clone();
        self.write(move |conn| insert_customer(conn, &customer, keys))
            .await
    }

    async fn list_customers(
        &self,
        instance: Option<&InstanceName>,
    ) -> Result<Vec<Customer>, DomainError> {
        let instance = instance.map(ToString::to_string);
        self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CUSTOMER_COLS} FROM customers c \
                 WHERE ?1 IS NULL OR c.instance = ?1 ORDER BY c.instance, c.created_at, c.id"
            ))?;
            let rows = stmt.query_map(params![instance], |row| customer_from(row, 0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn tenant(&self, customer_id: CustomerId) -> Result<Option<Tenant>, DomainError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {CUSTOMER_COLS}, {INSTANCE_COLS} FROM customers c \
                     JOIN instances i ON i.name = c.instance WHERE c.id = ?1"
                ))?
                .query_row(params![customer_id.to_string()], |row| {
                    Ok(Tenant {
                        customer: customer_from(row, 0)?,
                        instance: instance_from(row, 6)?,
                    })
                })
                .optional()?)
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
            let exists: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM customers WHERE id = ?1",
                    params![customer_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::Domain(DomainError::NotFound {
                    what: "customer",
                    id: customer_id.to_string(),
                }));
            }
            // Shorten, never lengthen, the life of keys already on their way out.
            conn.execute(
                "UPDATE customer_keys SET not_after = ?2 \
                 WHERE customer_id = ?1 AND (not_after IS NULL OR not_after > ?2)",
                params![customer_id.to_string(), retire_old_at.as_micros()],
            )?;
            insert_keys(conn, customer_id, keys, now)
        })
        .await
    }

    async fn find_credential(
        &self,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>, DomainError> {
        self.read(move |conn| {
            let key = conn
                .prepare_cached(
                    "SELECT k.customer_id, c.instance, i.kind, k.kind, k.not_after \
                     FROM customer_keys k JOIN customers c ON c.id = k.customer_id \
                     JOIN instances i ON i.name = c.instance WHERE k.digest = ?1",
                )?
                .query_row(params![digest.as_bytes()], |row| {
                    let kind: String = row.get(3)?;
                    let not_after: Option<i64> = row.get(4)?;
                    Ok(CredentialMatch::Key {
                        customer_id: parse_col(row, 0)?,
                        instance: parse_col(row, 1)?,
                        instance_kind: parse_col(row, 2)?,
                        kind: if kind == "secret" {
                            KeyKind::Secret
                        } else {
                            KeyKind::Api
                        },
                        retired_at: not_after
                            .map(Timestamp::from_micros)
                            .filter(|at| *at <= now),
                    })
                })
                .optional()?;
            if key.is_some() {
                return Ok(key);
            }
            Ok(conn
                .prepare_cached(
                    "SELECT t.customer_id, c.instance, i.kind FROM authorize_tokens t \
                     JOIN customers c ON c.id = t.customer_id \
                     JOIN instances i ON i.name = c.instance WHERE t.digest = ?1",
                )?
                .query_row(params![digest.as_bytes()], |row| {
                    Ok(CredentialMatch::Token {
                        customer_id: parse_col(row, 0)?,
                        instance: parse_col(row, 1)?,
                        instance_kind: parse_col(row, 2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn issue_token(&self, token: NewToken) -> Result<(), DomainError> {
        let outcome = self
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    token.digest.as_bytes(),
                    token.customer_id.to_string(),
                    token.issued_at.as_micros(),
                    token.expires_at.as_micros()
                ])?;
                Ok(())
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
            .write(move |conn| consume_token_in(conn, customer_id, digest, Some(request_id), now))
            .await?;
        self.observer.token_presented(Some(digest), &outcome);
        Ok(outcome)
    }

    async fn create_login(&self, login: &Login) -> Result<(), DomainError> {
        let login = login.clone();
        self.write(move |conn| insert_login(conn, &login)).await
    }

    async fn login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<Login>, DomainError> {
        self.read(move |conn| select_login(conn, customer_id, login_id, false))
            .await
    }

    async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<bool, DomainError> {
        self.write(move |conn| {
            // Sessions go with it through ON DELETE CASCADE.
            let deleted = conn.execute(
                "DELETE FROM logins WHERE id = ?1 AND customer_id = ?2",
                params![login_id.to_string(), customer_id.to_string()],
            )?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn authorize_cached(&self, request: CachedAuthorize) -> Result<OpenOutcome, DomainError> {
        let token = request.token;
        let outcome = self
            .write(move |conn| {
                if let Some(digest) = request.token {
                    let used = consume_token_in(
                        conn,
                        request.customer_id,
                        digest,
                        Some(request.request_id),
                        request.now,
                    )?;
                    if used != TokenUse::Consumed {
                        return Ok(OpenOutcome::TokenRefused(used));
                    }
                }
                // Cached mode replays a saved connection only.
                let Some(login) = select_login(conn, request.customer_id, request.login_id, true)?
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
                insert_session(conn, &session)?;
                Ok(OpenOutcome::Opened { login, session })
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
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLS} FROM sessions WHERE request_id = ?1 AND customer_id = ?2"
                ))?
                .query_row(
                    params![request_id.to_string(), customer_id.to_string()],
                    session_from,
                )
                .optional()?)
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
                if let Some(digest) = token {
                    let used = consume_token_in(
                        conn,
                        pending.customer_id,
                        digest,
                        Some(pending.request_id),
                        now,
                    )?;
                    if used != TokenUse::Consumed {
                        return Ok(used);
                    }
                }
                let questions: Vec<String> =
                    pending.questions.iter().map(ToString::to_string).collect();
                conn.prepare_cached(&format!(
                    "INSERT INTO pending_authorizations ({PENDING_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))?
                .execute(params![
                    pending.request_id.to_string(),
                    pending.customer_id.to_string(),
                    pending.institution,
                    pending.username,
                    pending.language.as_str(),
                    pending.save,
                    pending.tag,
                    pending.login_id.map(|id| id.to_string()),
                    questions.join(","),
                    pending.created_at.as_micros(),
                    pending.expires_at.as_micros()
                ])?;
                Ok(TokenUse::Consumed)
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
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PENDING_COLS} FROM pending_authorizations \
                     WHERE request_id = ?1 AND customer_id = ?2"
                ))?
                .query_row(
                    params![request_id.to_string(), customer_id.to_string()],
                    pending_from,
                )
                .optional()?)
        })
        .await
    }

    async fn extend_pending(
        &self,
        request_id: RequestId,
        expires_at: Timestamp,
    ) -> Result<(), DomainError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE pending_authorizations SET expires_at = ?2 WHERE request_id = ?1",
                params![request_id.to_string(), expires_at.as_micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn drop_pending(&self, request_id: RequestId) -> Result<(), DomainError> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM pending_authorizations WHERE request_id = ?1",
                params![request_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_request(&self, digest: Digest) -> Result<Option<RequestId>, DomainError> {
        self.read(move |conn| {
            let request_id: Option<Option<String>> = conn
                .prepare_cached(
                    "SELECT request_id FROM authorize_tokens \
                     WHERE digest = ?1 AND consumed_at IS NOT NULL",
                )?
                .query_row(params![digest.as_bytes()], |row| row.get(0))
                .optional()?;
            request_id
                .flatten()
                .map(|id| {
                    id.parse::<RequestId>()
                        .map_err(|e| StoreError::Corrupt(format!("token request_id: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn token_record(&self, digest: Digest) -> Result<Option<TokenRecord>, DomainError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT customer_id, issued_at, expires_at, consumed_at, request_id \
                 FROM authorize_tokens WHERE digest = ?1",
            )?
            .query_row(params![digest.as_bytes()], |row| {
                let request_id: Option<String> = row.get(4)?;
                Ok(TokenRecord {
                    customer_id: parse_col(row, 0)?,
                    issued_at: ts(row, 1)?,
                    expires_at: ts(row, 2)?,
                    consumed_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
                    request_id: match request_id {
                        None => None,
                        Some(_) => Some(parse_col(row, 4)?),
                    },
                })
            })
            .optional()
            .map_err(StoreError::from)
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
            // One statement: concurrent advances add up instead of overwriting each other.
            let offset: Option<i64> = match change {
                ClockChange::Advance(by) => conn
                    .query_row(
                        "UPDATE instances SET clock_offset_micros = clock_offset_micros + ?2 \
                         WHERE name = ?1 RETURNING clock_offset_micros",
                        params![name, micros_of(by)],
                        |row| row.get(0),
                    )
                    .optional()?,
                ClockChange::Reset => conn
                    .query_row(
                        "UPDATE instances SET clock_offset_micros = 0 \
                         WHERE name = ?1 RETURNING clock_offset_micros",
                        params![name],
                        |row| row.get(0),
                    )
                    .optional()?,
            };
            Ok(offset.map(duration_from_micros))
        })
        .await
    }

    fn observe(&self, observer: Arc<dyn StoreObserver>) {
        self.observer.set(observer);
    }

    async fn ping(&self) -> Result<(), DomainError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM meta", [], |row| row.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }

    async fn complete_authorization(
        &self,
        completion: CompleteAuthorization,
    ) -> Result<OpenOutcome, DomainError> {
        let token = completion.token;
        let outcome = self
            .write(move |conn| {
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
                    let used = consume_token_in(conn, customer_id, digest, Some(request_id), now)?;
                    if used != TokenUse::Consumed {
                        return Ok(OpenOutcome::TokenRefused(used));
                    }
                }
                let ended = conn.execute(
                    "DELETE FROM pending_authorizations WHERE request_id = ?1 AND customer_id = ?2",
                    params![request_id.to_string(), customer_id.to_string()],
                )?;
                if from_pending && ended != 1 {
                    return Ok(OpenOutcome::ExchangeEnded);
                }
                let login = match login {
                    LoginChange::Create(login) => {
                        insert_login(conn, &login)?;
                        login
                    }
                    LoginChange::Refresh { login_id, at } => {
                        conn.execute(
                        "UPDATE logins SET last_refresh = ?3 WHERE id = ?1 AND customer_id = ?2",
                        params![login_id.to_string(), customer_id.to_string(), at.as_micros()],
                    )?;
                        match select_login(conn, customer_id, login_id, false)? {
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
                insert_session(conn, &session)?;
                Ok(OpenOutcome::Opened { login, session })
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
            conn.execute(
                "UPDATE sessions SET operation_started_at = ?3 \
                 WHERE request_id = ?1 AND customer_id = ?2 AND operation_started_at IS NULL",
                params![
                    request_id.to_string(),
                    customer_id.to_string(),
                    at.as_micros()
                ],
            )?;
            let started: Option<Option<i64>> = conn
                .query_row(
                    "SELECT operation_started_at FROM sessions \
                     WHERE request_id = ?1 AND customer_id = ?2",
                    params![request_id.to_string(), customer_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(started.flatten().map(Timestamp::from_micros))
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
            let inserted = conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![marker, instance.created_at.to_rfc3339()],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            insert_instance(conn, &instance)?;
            insert_customer(conn, &customer, keys)?;
            Ok(true)
        })
        .await
    }

    async fn reset_instance(&self, instance: &InstanceName) -> Result<Reset, DomainError> {
        let instance = instance.to_string();
        self.write(move |conn| {
            let of_instance = "customer_id IN (SELECT id FROM customers WHERE instance = ?1)";
            let mut reset = Reset::default();
            // Sessions before LoginIds, so they are counted rather than cascaded away.
            // Connect sessions are not counted: they hold nothing a caller could use.
            conn.execute(
                &format!("DELETE FROM connect_sessions WHERE {of_instance}"),
                params![instance],
            )?;
            for (table, removed) in [
                ("pending_authorizations", &mut reset.pending),
                ("sessions", &mut reset.sessions),
                ("logins", &mut reset.logins),
                ("authorize_tokens", &mut reset.tokens),
            ] {
                *removed = conn.execute(
                    &format!("DELETE FROM {table} WHERE {of_instance}"),
                    params![instance],
                )? as u64;
            }
            Ok(reset)
        })
        .await
    }

    async fn purge_expired(&self, expired_before: Timestamp) -> Result<Purged, DomainError> {
        Ok(Purged {
            tokens: self.purge_in_chunks(PURGE_TOKENS, expired_before).await?,
            sessions: self.purge_sessions(expired_before).await?,
            pending: self.purge_in_chunks(PURGE_PENDING, expired_before).await?,
        })
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
                if let Some(digest) = session.token {
                    // No RequestId: the page opens its own through the live flow, token-free.
                    let used = consume_token_in(conn, session.customer_id, digest, None, now)?;
                    if used != TokenUse::Consumed {
                        return Ok(used);
                    }
                }
                conn.prepare_cached(
                    "INSERT INTO connect_sessions \
                 (secret_digest, customer_id, token_digest, state, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    session.secret.as_bytes(),
                    session.customer_id.to_string(),
                    session.token.as_ref().map(|d| d.as_bytes().to_vec()),
                    session.state,
                    session.created_at.as_micros(),
                    session.expires_at.as_micros()
                ])?;
                Ok(TokenUse::Consumed)
            })
            .await?;
        self.observer.token_presented(token, &outcome);
        Ok(outcome)
    }

    async fn connect_session(&self, secret: Digest) -> Result<Option<ConnectSession>, DomainError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT customer_id, token_digest, state, created_at, expires_at \
                     FROM connect_sessions WHERE secret_digest = ?1",
                )?
                .query_row(params![secret.as_bytes()], |row| {
                    let token: Option<Vec<u8>> = row.get(1)?;
                    let token = match token {
                        None => None,
                        Some(bytes) => Some(
                            Digest::from_slice(&bytes).ok_or_else(|| corrupt("token_digest"))?,
                        ),
                    };
                    Ok(ConnectSession {
                        secret,
                        customer_id: parse_col(row, 0)?,
                        token,
                        state: row.get(2)?,
                        created_at: ts(row, 3)?,
                        expires_at: ts(row, 4)?,
                    })
                })
                .optional()?)
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
            let updated = conn
                .prepare_cached(
                    "UPDATE connect_sessions SET state = ?2, expires_at = ?3 \
                     WHERE secret_digest = ?1",
                )?
                .execute(params![secret.as_bytes(), state, expires_at.as_micros()])?;
            Ok(updated == 1)
        })
        .await
    }

    async fn connect_token_required(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        let instance = instance.to_string();
        self.read(move |conn| {
            let required: Option<bool> = conn
                .prepare_cached(
                    "SELECT authorize_token_required FROM connect_settings WHERE instance = ?1",
                )?
                .query_row(params![instance], |row| row.get(0))
                .optional()?;
            Ok(required.unwrap_or(true))
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
            let result = conn.execute(
                "INSERT INTO connect_settings (instance, authorize_token_required) \
                 VALUES (?1, ?2) ON CONFLICT (instance) \
                 DO UPDATE SET authorize_token_required = excluded.authorize_token_required",
                params![instance, required],
            );
            match result {
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if error.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Domain(DomainError::NotFound {
                        what: "instance",
                        id: instance,
                    }))
                }
                other => other.map(drop).map_err(StoreError::from),
            }
        })
        .await
    }

    async fn purge_connect_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        self.purge_in_chunks(PURGE_CONNECT, expired_before).await
    }
}
