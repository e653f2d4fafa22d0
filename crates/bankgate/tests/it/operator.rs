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
