//! `--prefill N`: a store that has served for a while. N rows each of authorize tokens (half
//! expired), LoginIds and sessions (half expired), inserted in bulk into the schema the store
//! migrated, before any server starts.
//!
//! Expired rows expired less than the retention period ago, so the purger leaves them during
//! the run and every scenario meets the same table sizes. Keys are random like the store's, and
//! inserted in key order: the primary-key B-trees then grow at their right edge instead of
//! touching a random page per row, which is what makes 10^7 rows a matter of minutes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bankgate_core::model::{AUTHORIZED_SESSION_LIFETIME, DEFAULT_TOKEN_LIFETIME, LoginType};
use bankgate_core::sandbox::mfa::Language;
use sha2::{Digest as _, Sha256};

/// Rows per PostgreSQL statement.
const PG_CHUNK: usize = 20_000;
const MINUTE: i64 = 60_000_000;

/// Random values without a system call each: SHA-256 of a secret seed and a counter.
struct Random {
    seed: [u8; 16],
    counter: u64,
}

impl Random {
    fn new() -> Self {
        Self {
            seed: *uuid::Uuid::new_v4().as_bytes(),
            counter: 0,
        }
    }

    fn uuid(&mut self) -> uuid::Uuid {
        self.counter += 1;
        let mut hash = Sha256::new();
        hash.update(self.seed);
        hash.update(self.counter.to_le_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&hash.finalize()[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// `n` new ids, sorted: the byte order of a UUID is the order of its lowercase text.
    fn sorted_ids(&mut self, n: usize) -> Vec<uuid::Uuid> {
        let mut ids: Vec<uuid::Uuid> = (0..n).map(|_| self.uuid()).collect();
        ids.sort_unstable();
        ids
    }

    /// `n` digests of new authorize tokens, as the store keeps them (SHA-256 of the token as
    /// issued), sorted.
    fn sorted_token_digests(&mut self, n: usize) -> Vec<[u8; 32]> {
        let mut digests: Vec<[u8; 32]> = (0..n)
            .map(|_| Sha256::digest(self.uuid().hyphenated().to_string().as_bytes()).into())
            .collect();
        digests.sort_unstable();
        digests
    }
}

/// Row times, in microseconds since the epoch as the schema keeps them.
struct Times {
    now: i64,
}

impl Times {
    fn new() -> anyhow::Result<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        Ok(Self {
            now: i64::try_from(now.as_micros())?,
        })
    }

    /// (created, expires) of row `i` with `lifetime`: even rows expired 1 to 29 minutes ago,
    /// odd rows live 1 to 29 more minutes, spread over that range.
    fn span(&self, i: usize, lifetime: Duration) -> (i64, i64) {
        let lifetime = i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX);
        // A multiplicative hash of the row number: spread, but unrelated to key order.
        let mixed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        let spread = MINUTE + i64::try_from(mixed % (28 * MINUTE as u64)).unwrap_or(0);
        let expires = if i.is_multiple_of(2) {
            self.now - spread
        } else {
            self.now + spread
        };
        (expires - lifetime, expires)
    }
}

/// Fills a migrated SQLite database (no server running) in one transaction.
pub fn sqlite(path: &std::path::Path, rows: u64, customer_id: &str) -> anyhow::Result<()> {
    let rows = usize::try_from(rows)?;
    let mut conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // A throwaway database filled by one writer: no journal, no fsync, a large cache. WAL comes
    // back at the end, as the store expects it.
    let _: String = conn.query_row("PRAGMA journal_mode = OFF", [], |row| row.get(0))?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -524288;")?;
    let times = Times::new()?;
    let mut random = Random::new();
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, digest) in random.sorted_token_digests(rows).iter().enumerate() {
            let (issued, expires) = times.span(i, DEFAULT_TOKEN_LIFETIME);
            insert.execute(rusqlite::params![&digest[..], customer_id, issued, expires])?;
        }
    }
    let login_ids = random.sorted_ids(rows);
    {
        let mut insert = tx.prepare(
            "INSERT INTO logins (id, customer_id, institution, username, login_type, \
             is_scheduled_refresh, last_refresh, created_at, language, saved) \
             VALUES (?1, ?2, 'FlinksCapital', 'Greatday', ?3, 0, ?4, ?4, ?5, 1)",
        )?;
        for id in &login_ids {
            insert.execute(rusqlite::params![
                id.hyphenated().to_string(),
                customer_id,
                LoginType::Personal.as_str(),
                times.now,
                Language::En.as_str()
            ])?;
        }
    }
    {
        let mut insert = tx.prepare(
            "INSERT INTO sessions (request_id, customer_id, login_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let request_ids = random.sorted_ids(rows);
        for (i, (request_id, login_id)) in request_ids.iter().zip(&login_ids).enumerate() {
            let (created, expires) = times.span(i, AUTHORIZED_SESSION_LIFETIME);
            insert.execute(rusqlite::params![
                request_id.hyphenated().to_string(),
                customer_id,
                login_id.hyphenated().to_string(),
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
    let rows = usize::try_from(rows)?;
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to BENCH_POSTGRES_URL")?;
    tokio::spawn(connection);
    let times = Times::new()?;
    let mut random = Random::new();
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;

    let insert = tx
        .prepare(
            "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
             SELECT d, $1, i, e FROM unnest($2::bytea[], $3::int8[], $4::int8[]) AS t(d, i, e)",
        )
        .await?;
    let digests = random.sorted_token_digests(rows);
    for (chunk, digests) in digests.chunks(PG_CHUNK).enumerate() {
        let first = chunk * PG_CHUNK;
        let (issued, expires): (Vec<i64>, Vec<i64>) = (first..first + digests.len())
            .map(|i| times.span(i, DEFAULT_TOKEN_LIFETIME))
            .unzip();
        let digests: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
        tx.execute(&insert, &[&customer_id, &digests, &issued, &expires])
            .await?;
    }
    drop(digests);

    let insert = tx
        .prepare(
            "INSERT INTO logins (id, customer_id, institution, username, login_type, \
             is_scheduled_refresh, last_refresh, created_at, language, saved) \
             SELECT id, $1, 'FlinksCapital', 'Greatday', $3, false, $4, $4, $5, true \
             FROM unnest($2::text[]) AS t(id)",
        )
        .await?;
    let login_ids: Vec<String> = random
        .sorted_ids(rows)
        .iter()
        .map(|id| id.hyphenated().to_string())
        .collect();
    for ids in login_ids.chunks(PG_CHUNK) {
        tx.execute(
            &insert,
            &[
                &customer_id,
                &ids,
                &LoginType::Personal.as_str(),
                &times.now,
                &Language::En.as_str(),
            ],
        )
        .await?;
    }

    let insert = tx
        .prepare(
            "INSERT INTO sessions (request_id, customer_id, login_id, created_at, expires_at) \
             SELECT r, $1, l, c, e FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[]) \
             AS t(r, l, c, e)",
        )
        .await?;
    let request_ids: Vec<String> = random
        .sorted_ids(rows)
        .iter()
        .map(|id| id.hyphenated().to_string())
        .collect();
    for (chunk, (request_ids, login_ids)) in request_ids
        .chunks(PG_CHUNK)
        .zip(login_ids.chunks(PG_CHUNK))
        .enumerate()
    {
        let first = chunk * PG_CHUNK;
        let (created, expires): (Vec<i64>, Vec<i64>) = (first..first + request_ids.len())
            .map(|i| times.span(i, AUTHORIZED_SESSION_LIFETIME))
            .unzip();
        tx.execute(
            &insert,
            &[&customer_id, &request_ids, &login_ids, &created, &expires],
        )
        .await?;
    }
    tx.commit().await?;
    // What autovacuum would do soon after such a load: plans as a server in service gets them,
    // and hint bits set now rather than by the first reads under measurement.
    client
        .batch_execute("VACUUM (ANALYZE) authorize_tokens, logins, sessions")
        .await?;
    // The load's dirty buffers written now: otherwise the checkpointer writes them during the
    // measured runs, and a store of N rows is charged for having just been bulk-loaded.
    if let Err(error) = client.batch_execute("CHECKPOINT").await {
        eprintln!("prefill: CHECKPOINT refused ({error}); the first runs may pay for the load");
    }
    Ok(())
}
