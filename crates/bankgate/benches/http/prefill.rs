//! `--prefill N`: a store that has served for a while. N rows each of authorize tokens (half
//! expired), LoginIds and sessions (half expired), inserted in bulk into the schema the store
//! migrated, before any server starts.
//!
//! Expired rows expired less than the retention period ago, so the purger leaves them during
//! the run and every scenario meets the same table sizes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bankgate_core::model::{AUTHORIZED_SESSION_LIFETIME, DEFAULT_TOKEN_LIFETIME, LoginType};
use bankgate_core::sandbox::mfa::Language;
use sha2::{Digest as _, Sha256};

/// Rows per PostgreSQL statement.
const PG_CHUNK: usize = 20_000;

/// Row times, in microseconds since the epoch as the schema keeps them.
struct Clock {
    now: i64,
}

impl Clock {
    fn new() -> anyhow::Result<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        Ok(Self {
            now: i64::try_from(now.as_micros())?,
        })
    }

    /// (created, expires) of row `i` with `lifetime`: even rows expired 1 to 29 minutes ago,
    /// odd rows live for 1 to 29 more minutes.
    fn span(&self, i: u64, lifetime: Duration) -> (i64, i64) {
        let lifetime = i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX);
        let minute = 60_000_000_i64;
        let spread = 1 + i64::try_from(i % 28).unwrap_or(0); // 1..=28 minutes
        let expires = if i % 2 == 0 {
            self.now - spread * minute
        } else {
            self.now + spread * minute
        };
        (expires - lifetime, expires)
    }
}

/// A random authorize token's digest, as the store keeps it (SHA-256 of the issued UUID string).
fn token_digest() -> [u8; 32] {
    Sha256::digest(uuid::Uuid::new_v4().hyphenated().to_string().as_bytes()).into()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Fills a migrated SQLite database (no server running) in one transaction.
pub fn sqlite(path: &std::path::Path, rows: u64, customer_id: &str) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // A throwaway database filled by one writer: no journal, no fsync, a large cache. WAL comes
    // back at the end, as the store expects it.
    let _: String = conn.query_row("PRAGMA journal_mode = OFF", [], |row| row.get(0))?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -524288;")?;
    let clock = Clock::new()?;
    let tx = conn.transaction()?;
    let mut login_ids = Vec::with_capacity(usize::try_from(rows)?);
    {
        let mut insert = tx.prepare(
            "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for i in 0..rows {
            let (issued, expires) = clock.span(i, DEFAULT_TOKEN_LIFETIME);
            insert.execute(rusqlite::params![
                &token_digest()[..],
                customer_id,
                issued,
                expires
            ])?;
        }
    }
    {
        let mut insert = tx.prepare(
            "INSERT INTO logins (id, customer_id, institution, username, login_type, \
             is_scheduled_refresh, last_refresh, created_at, language, saved) \
             VALUES (?1, ?2, 'FlinksCapital', 'Greatday', ?3, 0, ?4, ?4, ?5, 1)",
        )?;
        for _ in 0..rows {
            let id = new_id();
            insert.execute(rusqlite::params![
                id,
                customer_id,
                LoginType::Personal.as_str(),
                clock.now,
                Language::En.as_str()
            ])?;
            login_ids.push(id);
        }
    }
    {
        let mut insert = tx.prepare(
            "INSERT INTO sessions (request_id, customer_id, login_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (i, login_id) in (0..rows).zip(&login_ids) {
            let (created, expires) = clock.span(i, AUTHORIZED_SESSION_LIFETIME);
            insert.execute(rusqlite::params![
                new_id(),
                customer_id,
                login_id,
                created,
                expires
            ])?;
        }
    }
    tx.commit()?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "cannot return to WAL ({mode})"
    );
    Ok(())
}

/// Fills a migrated PostgreSQL schema in one transaction, by chunks of `unnest`ed arrays.
pub async fn postgres(url: &str, rows: u64, customer_id: &str) -> anyhow::Result<()> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to BENCH_POSTGRES_URL")?;
    tokio::spawn(connection);
    let clock = Clock::new()?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let tokens = tx
        .prepare(
            "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
             SELECT d, $1, i, e FROM unnest($2::bytea[], $3::int8[], $4::int8[]) AS t(d, i, e)",
        )
        .await?;
    let logins = tx
        .prepare(
            "INSERT INTO logins (id, customer_id, institution, username, login_type, \
             is_scheduled_refresh, last_refresh, created_at, language, saved) \
             SELECT id, $1, 'FlinksCapital', 'Greatday', $3, false, $4, $4, $5, true \
             FROM unnest($2::text[]) AS t(id)",
        )
        .await?;
    let sessions = tx
        .prepare(
            "INSERT INTO sessions (request_id, customer_id, login_id, created_at, expires_at) \
             SELECT r, $1, l, c, e FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[]) \
             AS t(r, l, c, e)",
        )
        .await?;
    let mut done = 0_u64;
    while done < rows {
        let count = usize::try_from((rows - done).min(PG_CHUNK as u64))?;
        let range = done..done + count as u64;
        let mut digests = Vec::with_capacity(count);
        let mut issued = Vec::with_capacity(count);
        let mut expires = Vec::with_capacity(count);
        for i in range.clone() {
            let (from, to) = clock.span(i, DEFAULT_TOKEN_LIFETIME);
            digests.push(token_digest().to_vec());
            issued.push(from);
            expires.push(to);
        }
        tx.execute(&tokens, &[&customer_id, &digests, &issued, &expires])
            .await?;

        let login_ids: Vec<String> = (0..count).map(|_| new_id()).collect();
        tx.execute(
            &logins,
            &[
                &customer_id,
                &login_ids,
                &LoginType::Personal.as_str(),
                &clock.now,
                &Language::En.as_str(),
            ],
        )
        .await?;

        let request_ids: Vec<String> = (0..count).map(|_| new_id()).collect();
        let (mut created, mut ends) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for i in range {
            let (from, to) = clock.span(i, AUTHORIZED_SESSION_LIFETIME);
            created.push(from);
            ends.push(to);
        }
        tx.execute(
            &sessions,
            &[&customer_id, &request_ids, &login_ids, &created, &ends],
        )
        .await?;
        done += count as u64;
    }
    tx.commit().await?;
    // What autovacuum would do soon after such a load: plans as a server in service gets them.
    client
        .batch_execute("ANALYZE authorize_tokens; ANALYZE logins; ANALYZE sessions")
        .await?;
    Ok(())
}
