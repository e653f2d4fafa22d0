//! Migrations for PostgreSQL: the files in `migrations/postgres/`, applied in order, each once.
//!
//! Hand-rolled rather than a migration crate because of one need those lack: several nodes start
//! together on one database, so the whole run holds a transaction-scoped advisory lock and the
//! nodes take turns (PostgreSQL DDL is transactional: a failed migration leaves nothing behind).

use deadpool_postgres::ClientWrapper;

use crate::sql::StoreError;

/// (version, SQL). Append only: a released migration never changes.
const MIGRATIONS: [(i32, &str); 5] = [
    (1, include_str!("../../migrations/postgres/0001_core.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_live_authorize.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_instance_clock.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_connect.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_forced_failures.sql"),
    ),
];

/// An arbitrary key for `pg_advisory_xact_lock`, naming "bankgate migrations".
const MIGRATION_LOCK: i64 = 0x6261_6e6b_6761_7465;

/// Brings the schema (of the connection's search_path) up to date.
pub async fn migrate(client: &mut ClientWrapper) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied > latest {
        return Err(StoreError::Unavailable(format!(
            "the database schema is at version {applied}, newer than this bankgate knows \
             ({latest}); upgrade bankgate"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).await.map_err(|error| {
            StoreError::Unavailable(format!("migration {version} failed: {error}"))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await?;
    Ok(())
}
