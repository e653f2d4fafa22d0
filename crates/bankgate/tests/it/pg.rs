//! PostgreSQL for the tests: the server named by `BANKGATE_TEST_POSTGRES_URL`, and a fresh schema
//! per test in it. Without the variable, PostgreSQL tests return early (and say so); with
//! `CI=true` they fail instead, so CI can never pass by skipping them.

use std::io::Write;

use tokio_postgres::NoTls;

pub const URL_VAR: &str = "BANKGATE_TEST_POSTGRES_URL";

/// The server's URL, or `None` after noting the skip.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {URL_VAR} is not set: the PostgreSQL tests must run in CI \
                 (.ci/run starts a cluster and sets it)"
            );
            eprintln!("skipped: {URL_VAR} not set");
            None
        }
    }
}

/// Connects to `url` directly (not through bankgate), for setup and inspection.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {URL_VAR}: {error}"));
    tokio::spawn(connection);
    client
}

/// A new, empty schema; returns a URL whose connections work in it (through `search_path`), so
/// every test has a database of its own without the cost of CREATE DATABASE.
pub async fn fresh_database() -> Option<String> {
    let server = server_url()?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    connect(&server)
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if server.contains('?') { '&' } else { '?' };
    Some(format!(
        "{server}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// Shows in the output of `cargo test` (not captured) whether the PostgreSQL tests ran.
#[test]
fn postgres_tests_skipped_without_url() {
    let line = match server_url() {
        Some(_) => format!("\nnote: {URL_VAR} is set: the PostgreSQL tests ran\n"),
        None => format!(
            "\nnote: PostgreSQL tests skipped: {URL_VAR} not set (see the README's test section)\n"
        ),
    };
    // Written to the process's stderr directly: libtest captures only print!/eprint!.
    let _ = std::io::stderr().write_all(line.as_bytes());
}
