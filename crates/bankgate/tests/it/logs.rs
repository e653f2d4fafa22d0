//! Logs carry who and what, never a credential.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, from every thread (the SQLite writer and reader threads
/// included): a process-wide subscriber, so a leak anywhere fails the test below.
fn captured() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || writer.clone())
            .finish();
        // Only this test installs one; if it could not, the assertions below fail loudly.
        let _ = tracing::subscriber::set_global_default(subscriber);
        captured
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_key_api_key_token_or_login_id_reaches_a_log_line() {
    let captured = captured();

    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let opened = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    let request_id = opened.json["RequestId"].as_str().unwrap().to_owned();
    // Refusals too: a reused token, a secret key where a token goes, a wrong header.
    app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    app.authorize(TOOLBOX_CUSTOMER, TOOLBOX_SECRET, login).await;
    app.post(
        &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
        &[("x-api-key", TOOLBOX_SECRET)],
        "",
    )
    .await;
    app.delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login.to_string())
        .await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    // The spans did record who and what…
    assert!(
        logs.contains(TOOLBOX_CUSTOMER),
        "customerId is logged: {logs}"
    );
    assert!(logs.contains(&request_id), "RequestId is logged");
    assert!(
        logs.contains("authorize_token_used"),
        "the Reason is logged"
    );
    // …and nothing that opens a door.
    for secret in [
        TOOLBOX_SECRET,
        TOOLBOX_API_KEY,
        token.as_str(),
        &login.to_string(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
