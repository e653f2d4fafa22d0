//! PostgreSQL for tests (this crate's and the server's): the server named by
//! `BANKGATE_TEST_POSTGRES_URL`, and a fresh schema per test in it. Without the variable,
//! PostgreSQL tests return early (and say so); with `CI=true` they fail instead, so CI can never
//! pass by skipping them. Not for production use.

/// The variable naming the test server.
pub const URL_VAR: &str = "BANKGATE_TEST_POSTGRES_URL";

/// The test server's URL, or `None` after noting the skip.
///
/// # Panics
/// When `CI=true` and the variable is not set.
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

/// Connects to `url` directly (not through a store), for setup and inspection.
///
/// # Panics
/// When the server cannot be reached: a test cannot go on without it.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(connected) => connected,
        Err(error) => panic!("cannot connect to {URL_VAR}: {error}"),
    };
    tokio::spawn(connection);
    client
}

/// A new, empty schema; returns a URL whose connections work in it (through `search_path`), so
/// every test has a database of its own without the cost of CREATE DATABASE. `None` when the
/// PostgreSQL tests are skipped.
///
/// # Panics
/// When the schema cannot be created.
pub async fn fresh_database() -> Option<String> {
    let server = server_url()?;
    let schema = format!(
        "t_{}",
        bankgate_core::RequestId::new_random()
            .to_string()
            .replace('-', "")
    );
    if let Err(error) = connect(&server)
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
    {
        panic!("cannot create a test schema: {error}");
    }
    let separator = if server.contains('?') { '&' } else { '?' };
    Some(format!(
        "{server}{separator}options=-c%20search_path%3D{schema}"
    ))
}
