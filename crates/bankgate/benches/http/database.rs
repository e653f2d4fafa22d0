//! Where bankgate keeps its state for the run: a SQLite file, or a schema of its own on
//! PostgreSQL; created, prefilled and removed here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bankgate_core::SystemClock;
use bankgate_core::model::toolbox;
use bankgate_server::AppState;
use bankgate_store::{PgSettings, PgStore, SqliteStore, Store};

use crate::floor::Floor;
use crate::options::Options;
use crate::prefill;

/// Where bankgate keeps its state for the run.
pub enum Database {
    Sqlite(PathBuf),
    /// A schema of its own on the server of `BENCH_POSTGRES_URL`, dropped at the end.
    Postgres {
        server: String,
        schema: String,
        url: String,
    },
}

impl Database {
    pub fn create(
        runtime: &tokio::runtime::Runtime,
        options: &Options,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let Some(server) = &options.postgres_url else {
            return Ok(Self::Sqlite(dir.join("bench.db")));
        };
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        runtime.block_on(async {
            let client = pg_client(server).await?;
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .context("cannot create the bench schema")
        })?;
        // As the multinode tests do: every connection of every node lands in the schema.
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self::Postgres {
            server: server.clone(),
            schema,
            url,
        })
    }

    /// `--database` of the nodes.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// SQLite: the bytes of the database file and its WAL, to show what a scenario wrote.
    pub fn sqlite_bytes(&self) -> Option<u64> {
        let Self::Sqlite(path) = self else {
            return None;
        };
        let wal = path.with_extension("db-wal");
        Some(
            [path.as_path(), wal.as_path()]
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum(),
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite {} (WAL, synchronous=FULL)", path.display()),
            Self::Postgres { schema, .. } => {
                format!("PostgreSQL from BENCH_POSTGRES_URL, schema {schema}")
            }
        }
    }

    /// Creates and migrates the schema through the store itself, seeds the toolbox as `serve`
    /// would, then bulk-inserts `rows` of each kind.
    pub fn prefill(&self, runtime: &tokio::runtime::Runtime, rows: u64) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(path) => {
                let store = Arc::new(SqliteStore::open(path)?);
                runtime.block_on(seed(store))?; // the last handle: its writer is joined
                prefill::sqlite(path, rows, toolbox::CUSTOMER_ID)
            }
            Self::Postgres { url, .. } => runtime.block_on(async {
                let store = Arc::new(PgStore::connect(url, PgSettings::default()).await?);
                seed(store.clone()).await?;
                if let Some(store) = Arc::into_inner(store) {
                    store.close().await;
                }
                prefill::postgres(url, rows, toolbox::CUSTOMER_ID).await
            }),
        }
    }

    /// The durable floor's store: beside bankgate's, on the same database.
    pub fn floor(&self, runtime: &tokio::runtime::Runtime, dir: &Path) -> anyhow::Result<Floor> {
        match self {
            Self::Sqlite(_) => Floor::sqlite(&dir.join("floor.db")),
            Self::Postgres { url, .. } => runtime.block_on(Floor::postgres(url)),
        }
    }

    pub fn remove(&self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(_) => Ok(()), // in the temporary directory
            Self::Postgres { server, schema, .. } => runtime.block_on(async {
                pg_client(server)
                    .await?
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .with_context(|| format!("cannot drop the bench schema {schema}"))
            }),
        }
    }
}

pub async fn pg_client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to BENCH_POSTGRES_URL")?;
    tokio::spawn(connection);
    Ok(client)
}

async fn seed(store: Arc<dyn Store>) -> anyhow::Result<()> {
    AppState::new(store, Arc::new(SystemClock))
        .operator()
        .seed_toolbox()
        .await?;
    Ok(())
}
