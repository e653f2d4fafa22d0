//! Durability: what was acknowledged before a restart holds after it.

use axum::http::StatusCode;

use crate::support::*;

/// Through the SDK over a socket, as an integration holding a token across a server restart.
#[tokio::test]
async fn an_issued_token_works_after_a_restart() {
    use bankgate_client::{Authorization, AuthorizeRequest, SecretKey};
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let (before, served) = app.client().await;
    let token = before
        .generate_authorize_token(&SecretKey::new(TOOLBOX_SECRET))
        .await
        .unwrap();
    drop((before, served));
    let app = app.restart().await;
    let (after, _served) = app.client().await;
    let answer = after
        .authorize(token, AuthorizeRequest::cached(login.to_string()))
        .await
        .unwrap();
    assert!(
        matches!(answer, Authorization::Authorized(ref a) if a.login.id.as_str() == login.to_string()),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_consumed_token_stays_consumed_after_a_restart() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &token, login).await.status,
        StatusCode::OK
    );
    let app = app.restart().await;
    app.authorize(TOOLBOX_CUSTOMER, &token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

#[tokio::test]
async fn a_restart_keeps_everything_and_does_not_seed_twice() {
    let app = TestApp::new().await;
    let (customer, secret, api_key) = app.customer_with("toolbox", true, true).await;
    let login = app.login(customer, "Greatday").await;
    let app = app.restart().await;
    assert!(
        !app.operator().seed_toolbox().await.unwrap(),
        "already seeded"
    );
    let customers = app
        .operator()
        .list_customers(Some(&"toolbox".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(customers.len(), 2);
    let token = app.generate_token_for(customer, &secret).await;
    assert_eq!(
        app.authorize(customer, &token, login).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.delete_card(customer, &api_key, &login.to_string())
            .await
            .status,
        StatusCode::OK
    );
}
