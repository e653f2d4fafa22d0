//! The authorize token's lifetime, read through the clock seam: no test sleeps.

use std::time::Duration;

use axum::http::StatusCode;
use bankgate_core::model::InstanceKind;
use bankgate_server::purge::purge_once;

use crate::support::*;

const THIRTY_MINUTES: Duration = Duration::from_secs(30 * 60);

#[tokio::test]
async fn a_token_is_good_until_the_last_microsecond_of_its_thirty_minutes() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let last_chance = app.toolbox_token().await;
    let too_late = app.toolbox_token().await;

    app.advance(THIRTY_MINUTES - Duration::from_micros(1));
    let reply = app.authorize(TOOLBOX_CUSTOMER, &last_chance, login).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);

    app.advance(Duration::from_micros(1));
    let reply = app.authorize(TOOLBOX_CUSTOMER, &too_late, login).await;
    reply.assert_error(401, "ACCESS_DENIED", "authorize_token_expired");
    assert!(
        reply.hint().contains("2026-01-21T21:17:47Z"),
        "says when: {}",
        reply.hint()
    );
}

#[tokio::test]
async fn the_lifetime_is_per_instance() {
    let app = TestApp::new().await;
    app.operator()
        .create_instance(
            "quick".parse().unwrap(),
            InstanceKind::Sandbox,
            Some(Duration::from_secs(300)),
        )
        .await
        .unwrap();
    let (customer, secret, _) = app.customer_with("quick", true, true).await;
    let login = app.login(customer, "Greatday").await;
    let token = app.generate_token_for(customer, &secret).await;
    let toolbox_token = app.toolbox_token().await;
    let toolbox_login = app.toolbox_login().await;

    app.advance(Duration::from_secs(300));
    app.authorize(customer, &token, login).await.assert_error(
        401,
        "ACCESS_DENIED",
        "authorize_token_expired",
    );
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &toolbox_token, toolbox_login)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_tokens_are_purged_after_the_retention_and_only_they() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let expired = app.toolbox_token().await;
    app.advance(THIRTY_MINUTES);
    let fresh = app.toolbox_token().await;

    // Within the hour after expiry the refusal still says "expired".
    let purged = purge_once(app.state.store.as_ref(), app.state.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(purged.tokens, 0);
    app.advance(Duration::from_secs(60 * 60));
    let purged = purge_once(app.state.store.as_ref(), app.state.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(purged.tokens, 1);
    app.authorize(TOOLBOX_CUSTOMER, &expired, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_invalid");

    // The fresh one expired meanwhile too, but was kept for its hour: it says so.
    app.authorize(TOOLBOX_CUSTOMER, &fresh, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_expired");
}

#[tokio::test]
async fn purging_removes_expired_sessions_too() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let reply = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id = reply.json["RequestId"].as_str().unwrap().parse().unwrap();
    app.advance(THIRTY_MINUTES + Duration::from_secs(60 * 60));
    let purged = purge_once(app.state.store.as_ref(), app.state.clock.as_ref())
        .await
        .unwrap();
    assert_eq!((purged.tokens, purged.sessions), (1, 1));
    assert!(
        app.state
            .store
            .session(toolbox_customer(), request_id)
            .await
            .unwrap()
            .is_none()
    );
    // The LoginId itself is permanent.
    assert!(
        app.state
            .store
            .login(toolbox_customer(), login)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn unsaved_login_ids_and_idle_mfa_exchanges_are_purged_with_their_sessions() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    let connect = |username: &str, save: bool| {
        serde_json::json!({
            "Institution": "FlinksCapital", "Username": username, "Password": "Everyday",
            "Save": save,
        })
        .to_string()
    };
    let token = app.toolbox_token().await;
    let unsaved = app
        .post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("greatday_nomfa", false),
        )
        .await;
    let unsaved_login = unsaved.json["Login"]["Id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let token = app.toolbox_token().await;
    let saved = app
        .post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("greatday_nomfa", true),
        )
        .await;
    let saved_login = saved.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
    let token = app.toolbox_token().await;
    let waiting = app
        .post(
            &uri,
            &[("flinks-auth-key", &token)],
            &connect("Greatday", true),
        )
        .await;
    assert_eq!(waiting.status.as_u16(), 203);
    let waiting_id = waiting.json["RequestId"].as_str().unwrap().parse().unwrap();

    app.advance(THIRTY_MINUTES + Duration::from_secs(60 * 60));
    let purged = purge_once(app.state.store.as_ref(), app.state.clock.as_ref())
        .await
        .unwrap();
    assert_eq!((purged.sessions, purged.pending), (2, 1));
    let store = &app.state.store;
    assert!(
        store
            .login(toolbox_customer(), unsaved_login)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .login(toolbox_customer(), saved_login)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .pending(toolbox_customer(), waiting_id)
            .await
            .unwrap()
            .is_none()
    );
}
