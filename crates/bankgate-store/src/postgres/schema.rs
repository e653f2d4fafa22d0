//! Migrations for PostgreSQL: the files in `migrations/postgres/`, applied in order, each once.
//!
//! Hand-rolled rather than a migration crate because of one need those lack: several nodes start
//! together on one database, so the whole run holds a transaction-scoped advisory lock and the
//! nodes take turns (PostgreSQL DDL is transactional: a failed migration leaves nothing behind).

use deadpool_postgres::ClientWrapper;

use super::connect::{PgConnectError, PgUrl, explain};

/// (version, SQL). Append only: a released migration never changes.
const MIGRATIONS: [(i32, &str); 11] = [
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
        include_str!("../../migrations/postgres/0005_attempt_failures.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_forced_failures.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_webhooks.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_webhook_snapshots.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_authorize_async.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_nightly_refresh_enhanced_mfa.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_connect_statements.sql"),
    ),
];

/// An arbitrary key for `pg_advisory_xact_lock`, naming "bankgate migrations".
const MIGRATION_LOCK: i64 = 0x6261_6e6b_6761_7465;

/// Brings the schema (of the connection's search_path) up to date.
pub async fn migrate(client: &mut ClientWrapper, url: &PgUrl) -> Result<(), PgConnectError> {
    // Refusals here (no right to create tables) are the operator's to fix: say which and how.
    let explained = |error: tokio_postgres::Error| explain(&error, url);
    let tx = client.transaction().await.map_err(explained)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(explained)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(explained)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(explained)?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied > latest {
        return Err(PgConnectError::fatal(format!(
            "the database schema is at version {applied}, newer than this bankgate knows \
             ({latest}); upgrade bankgate"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).await.map_err(|error| {
            let why = explained(error);
            PgConnectError {
                message: format!("migration {version} failed: {}", why.message),
                ..why
            }
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(explained)?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(explained)?;
    Ok(())
}
