//! The few primitives every backend supplies, so that each store operation (in [`crate::ops`])
//! is written once: run a statement, read its rows, in a transaction the backend opens.
//!
//! SQL is written in PostgreSQL's spelling (`$1` placeholders, `TRUE`/`FALSE`, `RETURNING`,
//! `ON CONFLICT`), which SQLite also reads once its placeholders become `?1`. The one place the
//! dialects differ in meaning (row locks for purging on several nodes) is a [`Dialect`] flavour.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bankgate_core::{Digest, DomainError, Timestamp};

/// Failures inside a backend. Cloneable: one failed commit answers a whole batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error (a bug, or a constraint the operation did not expect).
    #[error("database: {0}")]
    Database(String),
    /// A row with this key exists already.
    #[error("unique constraint: {0}")]
    Unique(String),
    /// A row this one refers to does not exist.
    #[error("foreign key constraint: {0}")]
    ForeignKey(String),
    /// The database cannot be reached, or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Domain(domain) => domain,
            other => DomainError::Unavailable(other.to_string()),
        }
    }
}

/// Where the dialects differ in meaning, not only in spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Appended to a purge's inner SELECT: on PostgreSQL, rows another node is purging or
    /// spending right now are left to it; SQLite has one writer and no row locks.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A statement parameter, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Bool(bool),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Self::Null, Self::Text)
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Self::Null, Self::Int)
    }
}

impl From<Option<bool>> for Param<'_> {
    fn from(value: Option<bool>) -> Self {
        value.map_or(Self::Null, Self::Bool)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<Timestamp> for Param<'_> {
    fn from(value: Timestamp) -> Self {
        Self::Int(value.as_micros())
    }
}

impl<'a> From<&'a Digest> for Param<'a> {
    fn from(value: &'a Digest) -> Self {
        Self::Blob(value.as_bytes())
    }
}

impl<'a> From<Option<&'a Digest>> for Param<'a> {
    fn from(value: Option<&'a Digest>) -> Self {
        value.map_or(Self::Null, |digest| Self::Blob(digest.as_bytes()))
    }
}

/// Builds a `&[Param]` from values of mixed types.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Param::from($value)),*]
    };
}
pub(crate) use params;

/// A column value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

/// One row of a result, with typed getters that turn surprises into [`StoreError::Corrupt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, idx: usize) -> Result<&Value, StoreError> {
        self.0
            .get(idx)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {idx}")))
    }

    fn mistyped(idx: usize, wanted: &str, found: &Value) -> StoreError {
        StoreError::Corrupt(format!("column {idx}: expected {wanted}, found {found:?}"))
    }

    pub fn opt_i64(&self, idx: usize) -> Result<Option<i64>, StoreError> {
        match self.at(idx)? {
            Value::Null => Ok(None),
            Value::Int(value) => Ok(Some(*value)),
            other => Err(Self::mistyped(idx, "an integer", other)),
        }
    }

    pub fn i64(&self, idx: usize) -> Result<i64, StoreError> {
        self.opt_i64(idx)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {idx}: unexpected NULL")))
    }

    /// SQLite keeps booleans as integers.
    pub fn bool(&self, idx: usize) -> Result<bool, StoreError> {
        match self.at(idx)? {
            Value::Bool(value) => Ok(*value),
            Value::Int(value) => Ok(*value != 0),
            other => Err(Self::mistyped(idx, "a boolean", other)),
        }
    }

    pub fn opt_bool(&self, idx: usize) -> Result<Option<bool>, StoreError> {
        match self.at(idx)? {
            Value::Null => Ok(None),
            _ => self.bool(idx).map(Some),
        }
    }

    pub fn opt_text(&self, idx: usize) -> Result<Option<&str>, StoreError> {
        match self.at(idx)? {
            Value::Null => Ok(None),
            Value::Text(value) => Ok(Some(value)),
            other => Err(Self::mistyped(idx, "text", other)),
        }
    }

    pub fn text(&self, idx: usize) -> Result<&str, StoreError> {
        self.opt_text(idx)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {idx}: unexpected NULL")))
    }

    pub fn opt_string(&self, idx: usize) -> Result<Option<String>, StoreError> {
        Ok(self.opt_text(idx)?.map(str::to_owned))
    }

    pub fn string(&self, idx: usize) -> Result<String, StoreError> {
        Ok(self.text(idx)?.to_owned())
    }

    /// A column holding the text form of `T` (ids, names, kinds).
    pub fn parse<T: std::str::FromStr>(&self, idx: usize) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text(idx)?;
        text.parse::<T>()
            .map_err(|error| StoreError::Corrupt(format!("column {idx}: {error}")))
    }

    pub fn opt_parse<T: std::str::FromStr>(&self, idx: usize) -> Result<Option<T>, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        match self.opt_text(idx)? {
            None => Ok(None),
            Some(_) => self.parse(idx).map(Some),
        }
    }

    pub fn ts(&self, idx: usize) -> Result<Timestamp, StoreError> {
        Ok(Timestamp::from_micros(self.i64(idx)?))
    }

    pub fn opt_ts(&self, idx: usize) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_i64(idx)?.map(Timestamp::from_micros))
    }

    pub fn opt_digest(&self, idx: usize) -> Result<Option<Digest>, StoreError> {
        match self.at(idx)? {
            Value::Null => Ok(None),
            Value::Blob(bytes) => Digest::from_slice(bytes)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("column {idx}: not a digest"))),
            other => Err(Self::mistyped(idx, "a digest", other)),
        }
    }
}

/// One transaction (or, for reads, one connection) of a backend: all an operation may do.
#[async_trait]
pub trait Tx: Send {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;
    /// Runs a query; returns every row.
    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Runs the operation's last statements, in order, and returns each one's changed-row
    /// count; the operation runs nothing after them. A backend may send them together with its
    /// COMMIT: PostgreSQL pipelines them in one write, one round trip where each statement and
    /// the COMMIT took one of their own. A failure fails the call and the whole operation.
    async fn finish_with(
        &mut self,
        statements: &[(&str, &[Param<'_>])],
    ) -> Result<Vec<u64>, StoreError> {
        execute_in_turn(self, statements).await
    }

    /// The first row, if any.
    async fn query_opt(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
}

/// Runs `statements` one after the other on `tx`; returns each one's changed-row count.
pub(crate) async fn execute_in_turn<T: Tx + ?Sized>(
    tx: &mut T,
    statements: &[(&str, &[Param<'_>])],
) -> Result<Vec<u64>, StoreError> {
    let mut counts = Vec::with_capacity(statements.len());
    for (sql, params) in statements {
        counts.push(tx.execute(sql, params).await?);
    }
    Ok(counts)
}

/// What an operation returns: a future borrowing the transaction it runs in.
pub type OpFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// A [`Tx`] that refuses a second statement: what an operation declared as one statement runs
/// in, since a backend gives such an operation no transaction or savepoint of its own.
struct OneStatement<'t> {
    tx: &'t mut dyn Tx,
    ran: bool,
}

impl OneStatement<'_> {
    fn count(&mut self) -> Result<(), StoreError> {
        if std::mem::replace(&mut self.ran, true) {
            return Err(StoreError::Database(
                "an operation declared as one statement ran a second one".to_owned(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Tx for OneStatement<'_> {
    fn dialect(&self) -> Dialect {
        self.tx.dialect()
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.count()?;
        self.tx.execute(sql, params).await
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        self.count()?;
        self.tx.query(sql, params).await
    }
}

/// Wraps an operation declared as one statement so that it cannot run a second one, whichever
/// backend runs it.
pub fn one_statement<T, F>(op: F) -> impl for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send
where
    F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
    T: Send + 'static,
{
    move |tx| {
        Box::pin(async move {
            let mut one = OneStatement { tx, ran: false };
            op(&mut one).await
        })
    }
}

/// How a backend runs an operation: on a connection for reads, in a durable transaction for
/// writes. An operation that fails leaves nothing behind.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static;

    /// Runs `op` in a transaction and returns once that transaction is durably committed.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static;

    /// Runs an operation of exactly one statement (wrapped by [`one_statement`]), which is atomic
    /// by itself: a backend may skip the transaction or savepoint around it (PostgreSQL: one
    /// round trip instead of three).
    async fn write_statement<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut dyn Tx) -> OpFuture<'t, T> + Send + 'static,
        T: Send + 'static,
    {
        self.write(op).await
    }

    /// Whether the store is the embedded one, for the few checks (query plans) only it has.
    fn dialect(&self) -> Dialect;
}

/// `$1` placeholders as SQLite's `?1` (the same numbered binding; SQLite would read `$1` as a
/// *named* parameter, numbered by first appearance, which would misbind out-of-order uses).
pub fn sqlite_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('$') {
        return std::borrow::Cow::Borrowed(sql);
    }
    std::borrow::Cow::Owned(sql.replace('$', "?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_sqlite_parameters() {
        assert_eq!(
            sqlite_placeholders("UPDATE t SET a = $3 WHERE b = $1 AND c = $2"),
            "UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?2"
        );
        assert_eq!(sqlite_placeholders("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn rows_read_booleans_from_either_backend() {
        let row = Row(vec![Value::Int(1), Value::Bool(false), Value::Null]);
        assert!(row.bool(0).unwrap());
        assert!(!row.bool(1).unwrap());
        assert!(row.bool(2).is_err());
        assert_eq!(row.opt_i64(2).unwrap(), None);
        assert!(matches!(row.i64(5), Err(StoreError::Corrupt(_))));
    }
}
