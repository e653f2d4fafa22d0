//! Production instances do not know the sandbox bank (issue 15, item 6): FlinksCapital and its
//! test users are refused on /Authorize, the Connect page's `demo=true` and LoginId creation,
//! each with the Reason `sandbox_bank_on_production` and a hint that says where they work.

use axum::http::StatusCode;
use bankgate_core::model::InstanceKind;
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use serde_json::json;

use crate::connect::open;
use crate::support::*;

#[tokio::test]
async fn authorize_on_production_refuses_the_sandbox_bank() {
    let app = TestApp::new().await;
    let (acme, secret, _) = app.customer_on("acme", InstanceKind::Production).await;
    for username in ["Greatday", "greatday_nomfa", "test_pending"] {
        let token = app.generate_token_for(acme, &secret).await;
        let body =
            json!({ "Institution": "FlinksCapital", "Username": username, "Password": "Everyday" });
        let reply = app
            .post(
                &path(acme, "Authorize"),
                &[("flinks-auth-key", &token)],
                &body.to_string(),
            )
            .await;
        reply.assert_error(400, "INVALID_REQUEST", "sandbox_bank_on_production");
        assert!(
            reply
                .hint()
                .contains("FlinksCapital is the sandbox's test institution")
                && reply.hint().contains("toolbox-api"),
            "{}",
            reply.hint()
        );
        // The token is spent, as by any /Authorize.
        let again = app
            .post(
                &path(acme, "Authorize"),
                &[("flinks-auth-key", &token)],
                &body.to_string(),
            )
            .await;
        again.assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    }
    // Another institution: unknown, without listing the sandbox's.
    let token = app.generate_token_for(acme, &secret).await;
    let reply = app
        .post(
            &path(acme, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({ "Institution": "RBC", "Username": "u", "Password": "p" }).to_string(),
        )
        .await;
    reply.assert_error(400, "INVALID_REQUEST", "institution_unknown");
    assert!(!reply.hint().contains("FlinksCapital"), "{}", reply.hint());
    // The sandbox still serves it.
    let token = app.toolbox_token().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({ "Institution": "FlinksCapital", "Username": "greatday_nomfa", "Password": "Everyday" })
                .to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
}

#[tokio::test]
async fn the_connect_page_of_production_refuses_demo_mode() {
    let app = TestApp::new().await;
    let (acme, secret, _) = app.customer_on("acme", InstanceKind::Production).await;
    let token = app.generate_token_for(acme, &secret).await;
    let page = open(
        &app,
        "acme-iframe.localhost",
        &format!("demo=true&authorizeToken={token}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(page.steps(), ["APP_MOUNTED", "INVALID_REQUEST"]);
    let event = &page.events()[1];
    assert_eq!(event["reason"], "sandbox_bank_on_production");
    assert_eq!(event["flinksCode"], "INVALID_REQUEST");
    assert!(
        event["hint"].as_str().unwrap().contains("drop demo=true"),
        "{event}"
    );
    assert!(
        page.alert().unwrap().contains("production instance"),
        "{:?}",
        page.alert()
    );
    // The token was not spent: the page opens without demo mode.
    let page = open(
        &app,
        "acme-iframe.localhost",
        &format!("authorizeToken={token}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.steps(), ["APP_MOUNTED", "COMPONENT_LOAD_CONSENT"]);
}

#[tokio::test]
async fn login_ids_of_the_sandbox_bank_are_not_made_on_production() {
    let app = TestApp::new().await;
    let (acme, _, _) = app.customer_on("acme", InstanceKind::Production).await;
    let admin = admin_app(
        app.state.clone(),
        Some(AdminToken::new(
            "production-bank-test-admin-token-0123456789",
        )),
    );
    let reply = send_to(
        &admin,
        request(
            "POST",
            &format!("/admin/customers/{acme}/logins"),
            &[(
                "authorization",
                "Bearer production-bank-test-admin-token-0123456789",
            )],
            r#"{"username":"Greatday"}"#,
        ),
    )
    .await;
    reply.assert_error(400, "INVALID_REQUEST", "sandbox_bank_on_production");
    assert!(
        reply.hint().contains("production instance acme"),
        "{}",
        reply.hint()
    );
    // The operator (the CLI's path) refuses in words.
    let error = app
        .operator()
        .create_login(acme, "FlinksCapital", "Greatday")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not serve the sandbox bank"),
        "{error}"
    );
}
