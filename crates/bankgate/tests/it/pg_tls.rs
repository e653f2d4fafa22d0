//! TLS to PostgreSQL: `sslmode` and `sslrootcert` with libpq's meanings, against the test
//! server with TLS on (`.ci/run` makes a throwaway CA with `.ci/pg-tls-certs` and starts its
//! cluster with `ssl=on`; plain connections keep working there for every other test).
//!
//! `BANKGATE_TEST_POSTGRES_CA` names the CA certificate that signed the server's (for `localhost`
//! and `127.0.0.1`); `other-ca.crt` beside it is an unrelated CA. Without the variable these
//! tests skip, and with `CI=true` they fail.

use std::path::PathBuf;

use bankgate_store::{PgSettings, PgStore};

use crate::pg::{connect, fresh_database};

const CA_VAR: &str = "BANKGATE_TEST_POSTGRES_CA";

/// The CA file, or `None` (skipped) outside CI.
fn ca() -> Option<PathBuf> {
    match std::env::var(CA_VAR) {
        Ok(path) if !path.trim().is_empty() => Some(PathBuf::from(path.trim())),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {CA_VAR} is not set: .ci/run makes the CA and sets it"
            );
            eprintln!("skipped: {CA_VAR} not set");
            None
        }
    }
}

/// A fresh database on the TLS test server, with the CA; `None` when skipped.
async fn tls_database() -> Option<(String, PathBuf)> {
    let ca = ca()?;
    let url = fresh_database().await?;
    Some((url, ca))
}

/// `url` with more libpq parameters.
fn with(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// `url` with another host name, still reaching the same server (`hostaddr`).
fn with_host(url: &str, host: &str) -> String {
    let config = bankgate_store::PgUrl::parse(url).unwrap().config;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    with(
        &format!("{scheme}://{user}{host}:{port}{tail}"),
        "hostaddr=127.0.0.1",
    )
}

/// Whether the connection named `application` (the store's, opened by `connect`) is encrypted,
/// as the server sees it.
async fn encrypted(server: &str, application: &str) -> bool {
    let rows = connect(server)
        .await
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no connection named {application}");
    rows.iter().all(|row| row.get::<_, bool>(0))
}

fn application() -> String {
    format!("bankgate-tls-{}", bankgate_core::RequestId::new_random())
}

async fn connects(url: &str) -> Result<PgStore, String> {
    PgStore::connect(url, PgSettings::default())
        .await
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn verify_full_with_the_right_ca_and_host_connects_encrypted() {
    let Some((url, ca)) = tls_database().await else {
        return;
    };
    let name = application();
    let url = with(
        &url,
        &format!(
            "sslmode=verify-full&sslrootcert={}&application_name={name}",
            ca.display()
        ),
    );
    let store = connects(&url).await.unwrap();
    assert!(encrypted(&crate::pg::server_url().unwrap(), &name).await);
    // The host name the certificate lists, reached by name.
    store.close().await;
    connects(&with_host(&url, "localhost"))
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn verify_full_with_a_wrong_ca_is_refused_naming_the_file() {
    let Some((url, ca)) = tls_database().await else {
        return;
    };
    let other = ca.with_file_name("other-ca.crt");
    assert!(other.exists(), "{} is missing", other.display());
    let refused = connects(&with(
        &url,
        &format!("sslmode=verify-full&sslrootcert={}", other.display()),
    ))
    .await
    .err()
    .unwrap();
    assert!(
        refused.contains("not signed by a CA in sslrootcert=")
            && refused.contains(&other.display().to_string()),
        "{refused}"
    );
    // verify-ca checks the same chain.
    let refused = connects(&with(
        &url,
        &format!("sslmode=verify-ca&sslrootcert={}", other.display()),
    ))
    .await
    .err()
    .unwrap();
    assert!(refused.contains("not signed by a CA"), "{refused}");
}

#[tokio::test]
async fn verify_full_with_a_wrong_host_is_refused_and_verify_ca_accepts_it() {
    let Some((url, ca)) = tls_database().await else {
        return;
    };
    let elsewhere = with_host(&url, "db.bankgate.invalid");
    let refused = connects(&with(
        &elsewhere,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .await
    .err()
    .unwrap();
    assert!(
        refused.contains("does not name the host db.bankgate.invalid")
            && refused.contains("sslmode=verify-ca"),
        "{refused}"
    );
    // The chain is good: verify-ca (no name check) connects.
    connects(&with(
        &elsewhere,
        &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    ))
    .await
    .unwrap()
    .close()
    .await;
}

#[tokio::test]
async fn require_without_a_ca_connects_encrypted() {
    let Some((url, _)) = tls_database().await else {
        return;
    };
    let name = application();
    let store = connects(&with(
        &url,
        &format!("sslmode=require&application_name={name}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(&crate::pg::server_url().unwrap(), &name).await);
    store.close().await;
}

/// A server without TLS answers `N` to the TLS request: what PostgreSQL with `ssl=off` does.
#[tokio::test]
async fn require_against_a_server_without_tls_fails_clearly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0_u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    let refused = connects(&format!(
        "postgres://bankgate@127.0.0.1:{port}/bankgate?sslmode=require"
    ))
    .await
    .err()
    .unwrap();
    assert!(
        refused.contains("does not accept TLS connections") && refused.contains("sslmode=require"),
        "{refused}"
    );
    server.abort();
}

#[tokio::test]
async fn ssl_settings_the_build_cannot_honour_are_refused_before_connecting() {
    let refused = connects("postgres://bankgate@127.0.0.1:1/bankgate?sslmode=allow")
        .await
        .err()
        .unwrap();
    assert!(
        refused.contains("sslmode=allow is not supported"),
        "{refused}"
    );
    let refused = connects("postgres://bankgate@127.0.0.1:1/bankgate?sslmode=verify-full")
        .await
        .err()
        .unwrap();
    assert!(refused.contains("needs sslrootcert=PATH"), "{refused}");
}
