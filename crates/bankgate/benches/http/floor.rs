//! The durable floor: the baseline's exchange plus the one thing a durable token store cannot
//! skip, for both halves of the flow:
//! - `POST /floor/GenerateAuthorizeToken`: the new token's SHA-256 digest goes into an indexed
//!   table (the digest as primary key and an expiry index, as bankgate keeps its tokens);
//! - `POST /floor/Authorize` (header `flinks-auth-key`, body `{"LoginId": …}`): the token is
//!   spent (only if unspent and unexpired) and a session row is written, in one transaction;
//!   401 when the token cannot be spent.
//!
//! Each answer waits until its commit is durable, in the run's database:
//! - SQLite: WAL, `synchronous = FULL`, one group-commit writer thread (one fsync per batch),
//!   and checkpoints on a thread of their own every 200 ms, as bankgate does;
//! - PostgreSQL: one statement per request (autocommit, `synchronous_commit = on`) on a pool of
//!   as many connections as bankgate's (16), PostgreSQL grouping the commits.
//!
//! It is the least a GenerateAuthorizeToken, and a token + Authorize flow, can cost on this
//! machine with that database: the distance from the baseline to the floor is durability's,
//! the distance from the floor to bankgate is bankgate's own work (routing, credential
//! lookups, limits, journal, tracing, checks and diagnosis).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Where the floor's two endpoints live on the baseline's server.
pub const BASE: &str = "/floor";
pub const TOKEN_PATH: &str = "/floor/GenerateAuthorizeToken";
pub const AUTHORIZE_PATH: &str = "/floor/Authorize";

/// A token's lifetime, as bankgate's (30 minutes), in microseconds.
const TOKEN_LIFETIME: i64 = 30 * 60 * 1_000_000;
/// A session's lifetime, in microseconds.
const SESSION_LIFETIME: i64 = 60 * 60 * 1_000_000;
/// As bankgate's SQLite checkpoint thread.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// bankgate's PostgreSQL pool size (`PgSettings::default()`).
const PG_CONNECTIONS: usize = 16;

const CREATE: &str = "CREATE TABLE floor_tokens (digest {BLOB} PRIMARY KEY, \
     expires_at BIGINT NOT NULL, consumed_at BIGINT); \
     CREATE INDEX floor_tokens_by_expiry ON floor_tokens (expires_at); \
     CREATE TABLE floor_sessions (request_id TEXT PRIMARY KEY, login_id TEXT NOT NULL, \
     expires_at BIGINT NOT NULL); \
     CREATE INDEX floor_sessions_by_expiry ON floor_sessions (expires_at);";
const ISSUE_SQLITE: &str = "INSERT INTO floor_tokens (digest, expires_at) VALUES (?1, ?2)";
const SPEND_SQLITE: &str = "UPDATE floor_tokens SET consumed_at = ?2 \
     WHERE digest = ?1 AND consumed_at IS NULL AND expires_at > ?2";
const OPEN_SQLITE: &str =
    "INSERT INTO floor_sessions (request_id, login_id, expires_at) VALUES (?1, ?2, ?3)";
const ISSUE_POSTGRES: &str = "INSERT INTO floor_tokens (digest, expires_at) VALUES ($1, $2)";
/// Spends and opens in one statement, so in one round trip and one commit.
const SPEND_AND_OPEN_POSTGRES: &str = "WITH spent AS (UPDATE floor_tokens SET consumed_at = $2 \
     WHERE digest = $1 AND consumed_at IS NULL AND expires_at > $2 RETURNING digest) \
     INSERT INTO floor_sessions (request_id, login_id, expires_at) SELECT $3, $4, $5 FROM spent";

/// Served by the baseline once the run's database exists (503 before).
pub type Slot = Arc<OnceLock<Floor>>;

pub enum Floor {
    /// The writer thread's inbox; the thread ends with the process.
    Sqlite(mpsc::Sender<Job>),
    Postgres {
        connections: Vec<PgConnection>,
        next: AtomicUsize,
    },
}

pub struct PgConnection {
    client: tokio_postgres::Client,
    issue: tokio_postgres::Statement,
    spend_and_open: tokio_postgres::Statement,
}

/// One durable write, and whom to tell whether it happened.
enum Write {
    Issue {
        digest: [u8; 32],
        expires_at: i64,
    },
    SpendAndOpen {
        digest: [u8; 32],
        now: i64,
        request_id: String,
        login_id: String,
        /// The session's.
        expires_at: i64,
    },
}

pub struct Job {
    write: Write,
    done: oneshot::Sender<bool>,
}

impl Floor {
    pub fn sqlite(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path).context("cannot open the floor's SQLite file")?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA wal_autocheckpoint = 0; {}",
            CREATE.replace("{BLOB}", "BLOB")
        ))
        .context("cannot create the floor's tables")?;
        let checkpoints = Connection::open(path).context("cannot open the floor's SQLite file")?;
        std::thread::Builder::new()
            .name("floor-checkpoint".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(CHECKPOINT_INTERVAL);
                    // A failed round only leaves the WAL longer until the next.
                    let _ = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .context("cannot start the floor's checkpoints")?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("floor-writer".to_owned())
            .spawn(move || write_batches(conn, &inbox))
            .context("cannot start the floor's writer")?;
        Ok(Self::Sqlite(jobs))
    }

    /// In the bench's schema (`url` sets its search_path), dropped with it.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        let mut connections = Vec::with_capacity(PG_CONNECTIONS);
        for index in 0..PG_CONNECTIONS {
            let client = crate::database::pg_client(url).await?;
            if index == 0 {
                client
                    .batch_execute(&CREATE.replace("{BLOB}", "BYTEA"))
                    .await
                    .context("cannot create the floor's tables")?;
            }
            let issue = client.prepare(ISSUE_POSTGRES).await?;
            let spend_and_open = client.prepare(SPEND_AND_OPEN_POSTGRES).await?;
            connections.push(PgConnection {
                client,
                issue,
                spend_and_open,
            });
        }
        Ok(Self::Postgres {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// Whether the write is durable (for a spend: whether the token was spent).
    async fn write(&self, write: Write) -> bool {
        match self {
            Self::Sqlite(jobs) => {
                let (done, written) = oneshot::channel();
                jobs.send(Job { write, done }).is_ok() && written.await == Ok(true)
            }
            Self::Postgres { connections, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed) % connections.len();
                let Some(pg) = connections.get(index) else {
                    return false;
                };
                let changed = match &write {
                    Write::Issue { digest, expires_at } => {
                        pg.client
                            .execute(&pg.issue, &[&&digest[..], expires_at])
                            .await
                    }
                    Write::SpendAndOpen {
                        digest,
                        now,
                        request_id,
                        login_id,
                        expires_at,
                    } => {
                        pg.client
                            .execute(
                                &pg.spend_and_open,
                                &[&&digest[..], now, request_id, login_id, expires_at],
                            )
                            .await
                    }
                };
                matches!(changed, Ok(1))
            }
        }
    }
}

/// Everything waiting goes into one transaction and one fsync.
fn write_batches(mut conn: Connection, inbox: &mpsc::Receiver<Job>) {
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        batch.extend(inbox.try_iter());
        let outcomes = (|| -> rusqlite::Result<Vec<bool>> {
            let tx = conn.transaction()?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for job in &batch {
                outcomes.push(match &job.write {
                    Write::Issue { digest, expires_at } => {
                        tx.prepare_cached(ISSUE_SQLITE)?
                            .execute(params![&digest[..], expires_at])?
                            == 1
                    }
                    Write::SpendAndOpen {
                        digest,
                        now,
                        request_id,
                        login_id,
                        expires_at,
                    } => {
                        tx.prepare_cached(SPEND_SQLITE)?
                            .execute(params![&digest[..], now])?
                            == 1
                            && tx
                                .prepare_cached(OPEN_SQLITE)?
                                .execute(params![request_id, login_id, expires_at])?
                                == 1
                    }
                });
            }
            tx.commit()?;
            Ok(outcomes)
        })();
        let outcomes = outcomes.unwrap_or_default();
        for (index, job) in batch.into_iter().enumerate() {
            let _ = job.done.send(outcomes.get(index).copied().unwrap_or(false));
        }
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The baseline's answer, given once the token's digest is durable. The body is parsed as
/// the baseline's is, when there is one (the flow sends none, as to bankgate).
pub async fn token(
    State(slot): State<Slot>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, StatusCode> {
    if !body.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
    }
    let floor = slot.get().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let token = uuid::Uuid::new_v4().to_string();
    let write = Write::Issue {
        digest: digest(&token),
        expires_at: now_micros() + TOKEN_LIFETIME,
    };
    if !floor.write(write).await {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(Json(serde_json::json!({
        "HttpStatusCode": 200,
        "Token": token,
    })))
}

/// Spends the token of `flinks-auth-key` and opens a session on the body's LoginId.
pub async fn authorize(
    State(slot): State<Slot>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let floor = slot.get().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let token = headers
        .get("flinks-auth-key")
        .and_then(|value| value.to_str().ok())
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let login_id = body
        .get("LoginId")
        .and_then(serde_json::Value::as_str)
        .ok_or(StatusCode::BAD_REQUEST)?
        .to_owned();
    let request_id = uuid::Uuid::new_v4().to_string();
    let now = now_micros();
    let write = Write::SpendAndOpen {
        digest: digest(token),
        now,
        request_id: request_id.clone(),
        login_id: login_id.clone(),
        expires_at: now + SESSION_LIFETIME,
    };
    if !floor.write(write).await {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(Json(serde_json::json!({
        "HttpStatusCode": 200,
        "LoginId": login_id,
        "RequestId": request_id,
    })))
}
