//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Writes go through the group-commit [`writer::Writer`] thread. Reads run on the calling
//! thread, on a connection from a small pool: a WAL read of a few indexed rows takes
//! microseconds, far less than handing it to another thread and waking the caller again.

mod access;
mod checkpointer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use bankgate_core::DomainError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params_from_iter};
use rusqlite_migration::{M, Migrations};

use crate::ObserverSlot;
use crate::ops::{PURGE_CHUNK, purge_chunk_sql};
use crate::sql::{
    Backend, Dialect, OpFuture, Param, Row, StoreError, Tx, Value, sqlite_placeholders,
};
use crate::sql_store::SqlStore;
use checkpointer::Checkpointer;
pub use writer::BatchStats;
use writer::Writer;

/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept open; more are opened under load and closed after.
const READ_POOL_SIZE: usize = 8;

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, _) = &error {
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
                    return Self::Unique(error.to_string());
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    return Self::ForeignKey(error.to_string());
                }
                _ => {}
            }
        }
        Self::Database(format!("sqlite: {error}"))
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Self::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(value)),
            Self::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
            Self::Blob(value) => ToSqlOutput::Borrowed(ValueRef::Blob(value)),
            Self::Bool(value) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(value))),
        })
    }
}

/// The path that names an in-memory database (for tests): no file, no WAL, no checkpoints.
pub const IN_MEMORY: &str = ":memory:";

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
        M::up(include_str!(
            "../../migrations/sqlite/0005_attempt_failures.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0006_forced_failures.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/0007_webhooks.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/0008_webhook_snapshots.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0009_authorize_async.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0010_nightly_refresh_enhanced_mfa.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0011_connect_statements.sql"
        )),
    ])
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Statements are written once and reused: keep every one of them prepared.
    conn.set_prepared_statement_cache_capacity(64);
    // FULL: a commit is on disk before anyone is told it happened (group commit pays for it).
    // mmap: a reader whose page cache the writer's commits invalidated reads pages straight
    // from the OS cache instead of a pread per page.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA mmap_size = 67108864;",
    )
}

/// A transaction (writer thread) or a read connection, as the operations see it.
struct SqliteTx<'c> {
    // `&mut` rather than `&`: a `Connection` may move between threads but not be shared, and the
    // operation's future must be `Send`.
    conn: &'c mut Connection,
}

#[async_trait]
impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(&sqlite_placeholders(sql))?;
        Ok(stmt.execute(params_from_iter(params.iter()))? as u64)
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&sqlite_placeholders(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for idx in 0..columns {
                values.push(match row.get_ref(idx)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(value) => Value::Int(value),
                    ValueRef::Text(text) => Value::Text(
                        std::str::from_utf8(text)
                            .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))?
                            .to_owned(),
                    ),
                    ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(StoreError::Corrupt(format!("column {idx}: a float")));
                    }
                });
            }
            found.push(Row(values));
        }
        Ok(found)
    }
}

/// A migration's failure without the SQL it ran (a whole migration file otherwise).
fn migration_error(error: &rusqlite_migration::Error) -> String {
    match error {
        rusqlite_migration::Error::RusqliteError { err, .. } => err.to_string(),
        other => other.to_string(),
    }
}

/// How many migrations a database file still needs, read without writing; `None` when it
/// cannot be read.
fn pending_migrations(path: &Path) -> Option<usize> {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let pending = migrations().pending_migrations(&conn).ok()?;
    usize::try_from(pending).ok()
}

/// Runs an operation on SQLite to completion. SQLite never makes an operation wait, so its
/// future is ready at the first poll; one that is not waited on something else (a bug).
fn run_now<T>(future: OpFuture<'_, T>) -> Result<T, StoreError> {
    let mut future = future;
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => Err(StoreError::Database(
            "a SQLite operation waited on something other than SQLite".to_owned(),
        )),
    }
}

/// The SQLite backend: its file, the writer thread and idle read connections.
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// None in memory: there is no WAL to copy back.
    _checkpointer: Option<Checkpointer>,
    /// An in-memory database lives in one connection, the writer's: reads go through it too,
    /// so they see every write (another connection would open another, empty database).
    in_memory: bool,
}

impl Sqlite {
    fn reader(&self) -> Result<Connection, StoreError> {
        if self.in_memory {
            return Err(StoreError::Database(
                "an in-memory database has no read connections".to_owned(),
            ));
        }
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = Connection::open(&self.path)?;
                configure(&conn)?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < READ_POOL_SIZE {
            idle.push(conn);
        }
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        if self.in_memory {
            return self
                .writer
                .write(move |conn| run_now(op(&mut SqliteTx { conn })), false)
                .await;
        }
        let mut conn = self.reader()?;
        let outcome = run_now(op(&mut SqliteTx { conn: &mut conn }));
        self.give_back(conn);
        outcome
    }

    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .write(move |conn| run_now(op(&mut SqliteTx { conn })), true)
            .await
    }

    async fn write_statement<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .write(move |conn| run_now(op(&mut SqliteTx { conn })), false)
            .await
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    /// [`IN_MEMORY`] (`:memory:`) opens a database that lives as long as the store, for tests.
    /// Every failure names the file (absolute) and the OS's reason.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DomainError> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str() == IN_MEMORY {
            return Self::open_in_memory();
        }
        let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let shown = shown.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // 0700: the directory holds digests, LoginIds and sessions (existing ones are left
            // as they are); access::check creates the file and its -wal and -shm 0600.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(parent).map_err(|error| {
                DomainError::Unavailable(format!(
                    "cannot create the directory {}: {error}",
                    std::path::absolute(parent)
                        .unwrap_or_else(|_| parent.to_path_buf())
                        .display()
                ))
            })?;
        }
        access::check(&path, &shown.to_string(), pending_migrations)?;
        let cannot = |error: rusqlite::Error| {
            DomainError::Unavailable(format!("cannot open the database file {shown}: {error}"))
        };
        let mut conn = Connection::open(&path).map_err(cannot)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(cannot)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DomainError::Unavailable(format!(
                "{shown} does not support WAL (journal_mode is {mode})"
            )));
        }
        configure(&conn).map_err(cannot)?;
        migrations().to_latest(&mut conn).map_err(|error| {
            DomainError::Unavailable(format!(
                "cannot migrate the database file {shown}: {}",
                migration_error(&error)
            ))
        })?;
        // The checkpoint thread copies the WAL back, off the commit path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(cannot)?;
        let observer = ObserverSlot::default();
        let backend = Sqlite {
            _checkpointer: Some(Checkpointer::start(&path)?),
            writer: Writer::start(conn, observer.clone())?,
            path,
            readers: Mutex::new(Vec::new()),
            in_memory: false,
        };
        Ok(Self::new(backend, observer))
    }

    /// A database in memory: one connection (the writer's), no WAL, no checkpoints.
    fn open_in_memory() -> Result<Self, DomainError> {
        let mut conn = Connection::open_in_memory().map_err(StoreError::from)?;
        configure(&conn).map_err(StoreError::from)?;
        migrations().to_latest(&mut conn).map_err(|error| {
            DomainError::Unavailable(format!(
                "cannot migrate the in-memory database: {}",
                migration_error(&error)
            ))
        })?;
        let observer = ObserverSlot::default();
        let backend = Sqlite {
            _checkpointer: None,
            writer: Writer::start(conn, observer.clone())?,
            path: PathBuf::from(IN_MEMORY),
            readers: Mutex::new(Vec::new()),
            in_memory: true,
        };
        Ok(Self::new(backend, observer))
    }

    pub fn path(&self) -> &Path {
        &self.backend.path
    }

    /// How writes have been grouped into commits so far.
    pub fn batch_stats(&self) -> BatchStats {
        self.backend.writer.stats()
    }

    /// The query plan SQLite chooses for the purge, for tests that the purge uses its index.
    #[doc(hidden)]
    pub fn explain_purge(&self) -> Result<String, DomainError> {
        let conn = self.backend.reader()?;
        let sql = purge_chunk_sql("authorize_tokens", "digest", Dialect::Sqlite.skip_locked());
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sqlite_placeholders(&sql)))
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![0_i64, PURGE_CHUNK], |row| {
                    row.get::<_, String>(3)
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(StoreError::from)?;
        self.backend.give_back(conn);
        Ok(plan.join("\n"))
    }
}

impl SqliteStore {
    /// The query plan of the nightly run's card query, for tests that it reads only the flagged
    /// cards through their partial index.
    #[doc(hidden)]
    pub fn explain_nightly(&self) -> Result<String, DomainError> {
        let conn = self.backend.reader()?;
        let sql = crate::ops::flagged_cards_sql();
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sqlite_placeholders(&sql)))
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params!["toolbox"], |row| row.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(StoreError::from)?;
        self.backend.give_back(conn);
        Ok(plan.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sql::one_statement;

    /// The database, its -wal and -shm files are readable by their owner only, and the
    /// directories bankgate creates for it are 0700; an existing directory keeps its mode.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.path().join("data/nested/bankgate.db");
        let store = SqliteStore::open(&db).unwrap();
        // A write, so the WAL has content and the shared-memory index exists.
        store
            .backend
            .write_statement(one_statement(|tx| {
                Box::pin(async move { tx.query("SELECT count(*) FROM meta", &[]).await })
            }))
            .await
            .unwrap();
        let with_suffix = |suffix: &str| {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        for file in [db.clone(), with_suffix("-wal"), with_suffix("-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&dir.path().join("data/nested")), 0o700);
        assert_eq!(
            mode(dir.path()),
            0o755,
            "an existing directory is left alone"
        );
        drop(store);
        // Reopening an existing file works and keeps it private.
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        drop(store);
    }

    /// An operation declared as one statement runs without a savepoint of its own, so the
    /// wrapper every such operation goes through refuses a second statement (a bug in the
    /// declaration) instead of running it unprotected.
    #[tokio::test]
    async fn a_one_statement_write_cannot_run_two() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("one.db")).unwrap();
        let refused = store
            .backend
            .write_statement(one_statement(|tx| {
                Box::pin(async move {
                    tx.query("SELECT 1", &[]).await?;
                    tx.query("SELECT 2", &[]).await
                })
            }))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::Database(message)) if message.contains("one statement")),
            "{refused:?}"
        );
        let one = store
            .backend
            .write_statement(one_statement(|tx| {
                Box::pin(async move { tx.query("SELECT 1", &[]).await })
            }))
            .await
            .unwrap();
        assert_eq!(one, vec![Row(vec![Value::Int(1)])]);
    }
}
