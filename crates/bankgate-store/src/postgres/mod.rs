//! The shared backend: PostgreSQL, for several bankgate nodes behind one load balancer.
//!
//! Each write is one transaction on a pooled connection; PostgreSQL itself groups the commits
//! of concurrent transactions into shared WAL flushes, across connections and across nodes, so
//! no node funnels its writes through one connection. Reads run on a pooled connection outside
//! any transaction. Guarantees across nodes come from the operations' statements
//! (see [`crate::ops`]).
//!
//! Every call is bounded: connecting and waiting for a pooled connection by `connect_timeout`,
//! each statement by the server's `statement_timeout`, and the whole call by a client-side
//! deadline a little past it (for a network that goes silent). Connection failures surface as
//! [`DomainError::Unavailable`] (a 503 envelope); broken connections are dropped from the pool,
//! so a node recovers by itself once the database is back.

mod connect;
mod schema;

pub use connect::{PgConnectError, PgUrl, SslMode};

use std::time::Duration;

use async_trait::async_trait;
use std::future::Future;
use std::task::Poll;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::ObserverSlot;
use crate::sql::{Backend, Dialect, OpFuture, Param, Row, StoreError, Tx, Value, execute_in_turn};
use crate::sql_store::SqlStore;

/// Connection settings of the PostgreSQL backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    /// Connections per node.
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

    /// The deadline of one write: its statements may wait on another transaction's row locks.
    fn write_timeout(&self) -> Duration {
        self.statement_timeout * 2 + Duration::from_secs(1)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.code() {
            None if error.as_db_error().is_none() => {
                // Not an answer from the server: the connection is gone or never came.
                Self::Unavailable(format!("database connection: {error}"))
            }
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => Self::Unique(error.to_string()),
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                Self::ForeignKey(error.to_string())
            }
            // The server's own words (the plain Display says only "db error").
            _ => match error.as_db_error() {
                Some(db) => Self::Database(format!("postgres: {db}")),
                None => Self::Database(format!("postgres: {error}")),
            },
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            // The server's own words (the plain Display says only "db error").
            deadpool_postgres::PoolError::Backend(error) => match error.as_db_error() {
                Some(db) => Self::Unavailable(format!("no database connection: {db}")),
                None => Self::Unavailable(format!("no database connection: {error}")),
            },
            other => Self::Unavailable(format!("no database connection: {other}")),
        }
    }
}

/// Why the first connection of a node failed, with the fix.
fn pool_error(error: deadpool_postgres::PoolError, url: &PgUrl, wait: Duration) -> PgConnectError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => connect::explain(&error, url),
        deadpool_postgres::PoolError::Timeout(_) => PgConnectError::transient(format!(
            "PostgreSQL did not answer within {} (db_connect_timeout)",
            humanize(wait)
        )),
        other => PgConnectError::fatal(format!("no database connection: {other}")),
    }
}

fn humanize(wait: Duration) -> String {
    format!("{:.1}s", wait.as_secs_f64())
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(value) if *ty == Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
            Self::Int(value) => value.to_sql(ty, out),
            Self::Text(value) => value.to_sql(ty, out),
            Self::Blob(value) => value.to_sql(ty, out),
            Self::Bool(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which delegates to the value's own type.
        true
    }

    to_sql_checked!();
}

fn value_of(row: &tokio_postgres::Row, idx: usize) -> Result<Value, StoreError> {
    let corrupt =
        |error: tokio_postgres::Error| StoreError::Corrupt(format!("column {idx}: {error}"));
    let ty = row.columns()[idx].type_();
    let value = if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(idx)
            .map_err(corrupt)?
            .map(Value::Bool)
    } else if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(idx)
            .map_err(corrupt)?
            .map(Value::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(idx)
            .map_err(corrupt)?
            .map(|v| Value::Int(v.into()))
    } else if *ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(idx)
            .map_err(corrupt)?
            .map(Value::Blob)
    } else {
        row.try_get::<_, Option<String>>(idx)
            .map_err(corrupt)?
            .map(Value::Text)
    };
    Ok(value.unwrap_or(Value::Null))
}

/// What a [`PgTx`] wraps its statements in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Each statement on its own, committing by itself: reads, and operations of one statement.
    Autocommit,
    /// A transaction, begun with the first statement (BEGIN travels with it: one round trip).
    Transaction { begun: bool },
    /// A transaction the operation has ended itself ([`Tx::finish_with`]): COMMIT was sent with
    /// its last statements, so nothing more may run and the caller neither commits nor rolls
    /// back.
    Finished,
}

/// A pooled connection, as the operations see it.
struct PgTx<'c> {
    client: &'c Object,
    scope: Scope,
}

impl PgTx<'_> {
    /// Prepares `sql` (once per connection) for the next statement of the operation; says
    /// whether BEGIN must go ahead of it.
    async fn prepare(
        &mut self,
        sql: &str,
    ) -> Result<(tokio_postgres::Statement, bool), StoreError> {
        let begin = match &mut self.scope {
            Scope::Autocommit | Scope::Transaction { begun: true } => false,
            Scope::Transaction { begun } => {
                *begun = true;
                true
            }
            // A statement here would run outside the committed transaction: a bug.
            Scope::Finished => {
                return Err(StoreError::Database(
                    "an operation ran a statement after finishing its transaction".to_owned(),
                ));
            }
        };
        let stmt = self.client.prepare_cached(sql).await?;
        Ok((stmt, begin))
    }
}

/// One request of a pipeline: a statement's changed-row count, or COMMIT's (0).
type Request<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Sends every request before waiting for any answer (the client queues requests in the order
/// they are first polled), then collects the answers in order.
async fn pipelined(mut requests: Vec<Request<'_>>) -> Vec<Result<u64, tokio_postgres::Error>> {
    let mut early = Vec::with_capacity(requests.len());
    for request in &mut requests {
        early.push(std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await);
    }
    let mut answers = Vec::with_capacity(requests.len());
    for (request, early) in requests.into_iter().zip(early) {
        answers.push(match early {
            Poll::Ready(answer) => answer,
            Poll::Pending => request.await,
        });
    }
    answers
}

/// Sends BEGIN, then `statement`, without waiting for BEGIN's answer in between (the client
/// queues requests in the order they are first polled), so opening the transaction costs no
/// round trip of its own.
async fn after_begin<T>(
    client: &Object,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    let mut begin = std::pin::pin!(client.batch_execute("BEGIN"));
    let early = std::future::poll_fn(|cx| Poll::Ready(begin.as_mut().poll(cx))).await;
    let answer = statement.await;
    match early {
        Poll::Ready(begun) => begun?,
        Poll::Pending => begin.await?,
    }
    Ok(answer?)
}

#[async_trait]
impl Tx for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let (stmt, begin) = self.prepare(sql).await?;
        let request = self.client.execute(&stmt, &params);
        if begin {
            after_begin(self.client, request).await
        } else {
            Ok(request.await?)
        }
    }

    async fn finish_with(
        &mut self,
        statements: &[(&str, &[Param<'_>])],
    ) -> Result<Vec<u64>, StoreError> {
        if self.scope != (Scope::Transaction { begun: true }) {
            // No transaction open (autocommit, or nothing run yet): no COMMIT to join.
            return execute_in_turn(self, statements).await;
        }
        let client = self.client;
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, _) in statements {
            prepared.push(client.prepare_cached(sql).await?);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = statements
            .iter()
            .map(|(_, params)| params.iter().map(|p| p as _).collect())
            .collect();
        let mut requests: Vec<Request<'_>> = prepared
            .iter()
            .zip(&params)
            .map(|(stmt, params)| Box::pin(client.execute(stmt, params)) as Request<'_>)
            .collect();
        // COMMIT of a transaction a failed statement aborted rolls it back (and reports no
        // error): the statement's error is the answer either way.
        requests.push(Box::pin(async move {
            client.batch_execute("COMMIT").await.map(|()| 0)
        }));
        self.scope = Scope::Finished;
        let mut counts = Vec::with_capacity(statements.len());
        for answer in pipelined(requests).await {
            counts.push(answer?);
        }
        counts.truncate(statements.len());
        Ok(counts)
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let (stmt, begin) = self.prepare(sql).await?;
        let request = self.client.query(&stmt, &params);
        let rows = if begin {
            after_begin(self.client, request).await?
        } else {
            request.await?
        };
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|idx| value_of(row, idx))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }
}

/// The PostgreSQL backend of one node: its connection pool.
#[derive(Debug)]
pub struct Postgres {
    pool: Pool,
    settings: PgSettings,
    observer: ObserverSlot,
}

impl Postgres {
    async fn client(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `op` in `scope` on a pooled connection, within the deadline of a read or of a write
    /// (`writes`, which are also reported as commits). A connection is only
    /// given back to the pool outside any transaction: if the call fails inside one it is rolled
    /// back, and if the call is abandoned (a timeout, a caller gone) the connection is closed,
    /// which makes the server roll back.
    async fn run<T, F>(&self, scope: Scope, writes: bool, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        let mut held = Held(Some(self.client().await?));
        let started = std::time::Instant::now();
        let deadline = if writes {
            self.settings.write_timeout()
        } else {
            self.settings.call_timeout()
        };
        let outcome = tokio::time::timeout(deadline, async {
            let Some(client) = held.0.as_ref() else {
                return Err(StoreError::Closed);
            };
            let mut tx = PgTx { client, scope };
            let value = op(&mut tx).await;
            let begun = tx.scope == Scope::Transaction { begun: true };
            match value {
                Ok(value) if begun => {
                    client.batch_execute("COMMIT").await?;
                    Ok(value)
                }
                Ok(value) => Ok(value),
                Err(error) if begun => {
                    client.batch_execute("ROLLBACK").await?;
                    Err(error)
                }
                Err(error) => Err(error),
            }
        })
        .await;
        match outcome {
            Ok(outcome) => {
                if outcome.is_ok() && writes {
                    self.observer.committed(1, started.elapsed());
                }
                // Settled (committed, rolled back, or never begun): the pool may have it back.
                // A failed COMMIT or ROLLBACK left it in doubt: `held` closes it.
                if !matches!(
                    &outcome,
                    Err(StoreError::Unavailable(_) | StoreError::Database(_))
                ) {
                    held.release();
                }
                outcome
            }
            Err(_) => Err(late()),
        }
    }
}

/// A pooled connection that is closed, not given back, unless released: its state is unknown
/// until the call that holds it settles.
struct Held(Option<Object>);

impl Held {
    fn release(&mut self) {
        // Dropping the object gives the connection back to the pool.
        drop(self.0.take());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

fn late() -> StoreError {
    StoreError::Unavailable("the database did not answer in time".to_owned())
}

#[async_trait]
impl Backend for Postgres {
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(Scope::Autocommit, false, op).await
    }

    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(Scope::Transaction { begun: false }, true, op)
            .await
    }

    async fn write_statement<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(Scope::Autocommit, true, op).await
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

/// The PostgreSQL store of one node.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects, and brings the schema up to date (nodes starting together take turns). The
    /// URL may carry libpq's `sslmode` and `sslrootcert` (see [`PgUrl`]).
    pub async fn connect(url: &str, settings: PgSettings) -> Result<Self, PgConnectError> {
        let url = PgUrl::parse(url).map_err(PgConnectError::fatal)?;
        let tls = url.tls().map_err(PgConnectError::fatal)?;
        let mut config = url.config.clone();
        config.connect_timeout(settings.connect_timeout);
        // synchronous_commit on whatever the server's default: a write is acknowledged only
        // once its commit is flushed (durable before the response).
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
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| PgConnectError::fatal(format!("database pool: {error}")))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|error| pool_error(error, &url, settings.connect_timeout))?;
            schema::migrate(&mut client, &url).await?;
        }
        let observer = ObserverSlot::default();
        let backend = Postgres {
            pool,
            settings,
            observer: observer.clone(),
        };
        Ok(Self::new(backend, observer))
    }

    /// Closes every connection; calls still running finish first or fail.
    pub async fn close(self) {
        self.backend.pool.close();
    }
}
