//! Operator operations shared by the CLI (and later the admin API).

use bankgate_core::DomainError;
use bankgate_core::model::InstanceKind;

use crate::support::*;

#[tokio::test]
async fn sandbox_login_ids_are_only_made_on_sandbox_instances() {
    let app = TestApp::new().await;
    let (bank, _, _) = app.customer_on("bigbank", InstanceKind::Production).await;
    let refused = app
        .operator()
        .create_login(bank, "FlinksCapital", "Greatday")
        .await;
    assert!(
        matches!(&refused, Err(DomainError::Invalid(message)) if message.contains("production")),
        "{refused:?}"
    );
    let (acme, _, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    assert!(
        app.operator()
            .create_login(acme, "FlinksCapital", "Greatday")
            .await
            .is_ok()
    );
    let unknown = app
        .operator()
        .create_login(
            bankgate_core::CustomerId::new_random(),
            "FlinksCapital",
            "Greatday",
        )
        .await;
    assert!(
        matches!(
            unknown,
            Err(DomainError::NotFound {
                what: "customer",
                ..
            })
        ),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_sandbox_reset_forgets_tokens_logins_and_sessions_but_keeps_credentials() {
    let app = TestApp::new().await;
    let (acme, acme_secret, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    let acme_login = app.login(acme, "Greatday").await;
    let unused = app.generate_token_for(acme, &acme_secret).await;
    let opened = app
        .authorize(
            acme,
            &app.generate_token_for(acme, &acme_secret).await,
            acme_login,
        )
        .await;
    assert_eq!(opened.status.as_u16(), 200);
    // Another instance is untouched.
    let toolbox_login = app.toolbox_login().await;
    let toolbox_token = app.toolbox_token().await;

    let reset = app
        .operator()
        .reset_instance(&"acme".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (reset.tokens, reset.logins, reset.sessions, reset.pending),
        (2, 1, 1, 0)
    );
    app.authorize(acme, &unused, acme_login).await.assert_error(
        401,
        "ACCESS_DENIED",
        "authorize_token_invalid",
    );
    let fresh = app.generate_token_for(acme, &acme_secret).await;
    app.authorize(acme, &fresh, acme_login).await.assert_error(
        401,
        "INVALID_LOGIN",
        "login_not_found",
    );
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &toolbox_token, toolbox_login)
            .await
            .status
            .as_u16(),
        200
    );

    let (_, _, _) = app.customer_on("bigbank", InstanceKind::Production).await;
    let refused = app
        .operator()
        .reset_instance(&"bigbank".parse().unwrap())
        .await;
    assert!(
        matches!(refused, Err(DomainError::Invalid(_))),
        "{refused:?}"
    );
    let unknown = app
        .operator()
        .reset_instance(&"nowhere".parse().unwrap())
        .await;
    assert!(
        matches!(unknown, Err(DomainError::NotFound { .. })),
        "{unknown:?}"
    );
}
