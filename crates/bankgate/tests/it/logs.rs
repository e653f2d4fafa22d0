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
async fn no_key_token_password_answer_or_login_id_reaches_a_log_line() {
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
    // Bank passwords and MFA answers, right and wrong.
    let authorize = path(TOOLBOX_CUSTOMER, "Authorize");
    let wrong_password = "Wrong-Pa55word-for-logs";
    app.post(
        &authorize,
        &[("flinks-auth-key", &app.toolbox_token().await)],
        &format!(
            r#"{{"Institution":"FlinksCapital","Username":"Greatday","Password":"{wrong_password}"}}"#
        ),
    )
    .await;
    let challenge = app
        .post(
            &authorize,
            &[("flinks-auth-key", &app.toolbox_token().await)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"Everyday","Save":true}"#,
        )
        .await;
    let mfa_request = challenge.json["RequestId"].as_str().unwrap().to_owned();
    let wrong_answer = "Atlantis-answer-for-logs";
    app.post(
        &authorize,
        &[],
        &serde_json::json!({
            "RequestId": mfa_request,
            "SecurityResponses": { "What is the best country on earth?": [wrong_answer] },
        })
        .to_string(),
    )
    .await;

    // The admin API: its token, and the keys it shows once.
    let admin_token = "admin-token-for-logs";
    let admin = bankgate_server::admin_app(
        app.state.clone(),
        Some(bankgate_server::admin::AdminToken::new(admin_token)),
    );
    let bearer = format!("Bearer {admin_token}");
    let created = send_to(
        &admin,
        request(
            "POST",
            "/admin/customers",
            &[("authorization", &bearer)],
            r#"{"instance":"toolbox"}"#,
        ),
    )
    .await;
    let new_secret = created.json["secretKey"].as_str().unwrap().to_owned();
    let new_api_key = created.json["apiKey"].as_str().unwrap().to_owned();
    send_to(
        &admin,
        request(
            "POST",
            "/admin/tokens/inspect",
            &[("authorization", &bearer)],
            &format!(r#"{{"token":"{token}"}}"#),
        ),
    )
    .await;
    send_to(
        &admin,
        request(
            "GET",
            "/admin/instances",
            &[("authorization", "Bearer wrong-admin-token")],
            "",
        ),
    )
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
    assert!(
        logs.contains("admin_token_invalid") && logs.contains("/admin/tokens/inspect"),
        "admin calls are logged by route and Reason"
    );
    // …and nothing that opens a door.
    for secret in [
        TOOLBOX_SECRET,
        TOOLBOX_API_KEY,
        token.as_str(),
        &login.to_string(),
        wrong_password,
        "Everyday",
        wrong_answer,
        admin_token,
        "wrong-admin-token",
        &new_secret,
        &new_api_key,
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
