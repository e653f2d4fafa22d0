//! Brute-force protection on the credential-taking endpoints: repeated failures get
//! TOO_MANY_REQUESTS with Retry-After; a caller who succeeds is not slowed down.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use bankgate_server::guard::LimitConfig;
use serde_json::json;

use crate::support::*;

const LOCKOUT: Duration = Duration::from_secs(120);

/// A bankgate whose limiter locks after 3 failures per client or 5 per customer.
async fn limited_app() -> TestApp {
    TestApp::with(|settings| {
        settings.limits = LimitConfig {
            max_failures_per_client: 3,
            max_failures_per_target: 5,
            window: Duration::from_secs(300),
            lockout: LOCKOUT,
        };
    })
    .await
}

/// GenerateAuthorizeToken from a client address.
async fn token_from(app: &TestApp, client: [u8; 4], secret: &str) -> Reply {
    let mut request = request(
        "POST",
        &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
        &[("flinks-auth-key", secret)],
        "",
    );
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((client, 40_000))));
    app.send(request).await
}

const WRONG: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn repeated_wrong_secret_keys_lock_the_client_out_with_retry_after() {
    let app = limited_app().await;
    let attacker = [203, 0, 113, 9];
    for _ in 0..3 {
        token_from(&app, attacker, WRONG).await.assert_error(
            401,
            "UNAUTHORIZED",
            "auth_key_invalid",
        );
    }
    // Locked: even the right key is refused, without being looked at.
    let locked = token_from(&app, attacker, TOOLBOX_SECRET).await;
    locked.assert_error(401, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(locked.json["Message"], "Too many requests, retry later");
    assert_eq!(locked.retry_after.as_deref(), Some("120"));
    // Another client of the same customer is not affected.
    assert_eq!(
        token_from(&app, [198, 51, 100, 1], TOOLBOX_SECRET)
            .await
            .status,
        StatusCode::OK
    );
    // The lock ends after the lockout.
    app.advance(LOCKOUT - Duration::from_secs(1));
    let still = token_from(&app, attacker, TOOLBOX_SECRET).await;
    assert_eq!(still.retry_after.as_deref(), Some("1"));
    app.advance(Duration::from_secs(1));
    assert_eq!(
        token_from(&app, attacker, TOOLBOX_SECRET).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_caller_who_succeeds_is_not_slowed_down() {
    let app = limited_app().await;
    let backend = [192, 0, 2, 10];
    // A typo now and then, each followed by a success, never adds up to a lock.
    for _ in 0..10 {
        token_from(&app, backend, WRONG).await.assert_error(
            401,
            "UNAUTHORIZED",
            "auth_key_invalid",
        );
        assert_eq!(
            token_from(&app, backend, TOOLBOX_SECRET).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn an_attacker_rotating_addresses_meets_the_customer_limit_but_not_its_backend() {
    let app = limited_app().await;
    let backend = [192, 0, 2, 10];
    assert_eq!(
        token_from(&app, backend, TOOLBOX_SECRET).await.status,
        StatusCode::OK
    );
    for last in 1..=5 {
        token_from(&app, [203, 0, 113, last], WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    token_from(&app, [203, 0, 113, 6], TOOLBOX_SECRET)
        .await
        .assert_error(401, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(
        token_from(&app, backend, TOOLBOX_SECRET).await.status,
        StatusCode::OK,
        "the customer's own backend keeps working"
    );
}

#[tokio::test]
async fn repeated_wrong_bank_passwords_lock_that_bank_login_only() {
    let app = limited_app().await;
    let connect = |username: &str, password: &str| {
        json!({"Institution": "FlinksCapital", "Username": username, "Password": password})
            .to_string()
    };
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    for _ in 0..5 {
        let token = app.toolbox_token().await;
        app.post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("Greatday", "guess"),
        )
        .await
        .assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");
    }
    let token = app.toolbox_token().await;
    let locked = app
        .post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("greatday", "Everyday"),
        )
        .await;
    locked.assert_error(401, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(locked.retry_after.as_deref(), Some("120"));
    // Other users of the fintech, and its token minting, carry on.
    let token = app.toolbox_token().await;
    let other = app
        .post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("greatday_nomfa", "Everyday"),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.json);
}
