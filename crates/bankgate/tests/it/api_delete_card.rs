//! DELETE /DeleteCard/{loginId}: forgets a LoginId, with the x-api-key.

use axum::http::StatusCode;
use bankgate_core::{LoginId, RequestId};

use crate::support::*;

#[tokio::test]
async fn deleting_a_login_id_forgets_it_and_ends_its_sessions() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let opened = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id: RequestId = opened.json["RequestId"].as_str().unwrap().parse().unwrap();

    let reply = app
        .delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_envelope(&reply);
    assert_eq!(
        reply.json,
        serde_json::json!({
            "HttpStatusCode": 200,
            "Message": format!("All of the information about LoginId {login} has been removed"),
        })
    );
    assert!(
        app.state
            .store
            .session(toolbox_customer(), request_id)
            .await
            .unwrap()
            .is_none()
    );
    app.authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await
        .assert_error(401, "INVALID_LOGIN", "login_not_found");

    let again = app
        .delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login.to_string())
        .await;
    again.assert_error(400, "INVALID_LOGIN", "login_not_found");
    assert_eq!(again.json["Message"], "Invalid LoginId");
}

#[tokio::test]
async fn unknown_malformed_and_foreign_login_ids_are_invalid() {
    let app = TestApp::new().await;
    let (other, _, _) = app.customer_with("toolbox", true, true).await;
    let foreign = app.login(other, "Greatday").await;
    for login in [
        LoginId::new_random().to_string(),
        "not-a-guid".to_owned(),
        foreign.to_string(),
    ] {
        let reply = app
            .delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login)
            .await;
        reply.assert_error(400, "INVALID_LOGIN", "login_not_found");
        assert_eq!(reply.json["Message"], "Invalid LoginId");
    }
    // The other customer's LoginId survived the attempt.
    assert!(
        app.state
            .store
            .login(other, foreign)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_x_api_key_is_required_and_checked() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await.to_string();
    let uri = format!("{}/{login}", path(TOOLBOX_CUSTOMER, "DeleteCard"));
    let delete = |headers: Vec<(&'static str, String)>| {
        let app = &app;
        let uri = uri.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send(request("DELETE", &uri, &headers, "")).await
        }
    };
    let missing = delete(vec![]).await;
    missing.assert_error(401, "UNAUTHORIZED", "api_key_missing");
    assert_eq!(
        missing.json["Message"],
        "You must provide a valid x-api-key"
    );
    delete(vec![(
        "x-api-key",
        "00000000-0000-4000-8000-000000000000".into(),
    )])
    .await
    .assert_error(401, "UNAUTHORIZED", "api_key_invalid");
    delete(vec![("x-api-key", TOOLBOX_SECRET.into())])
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_given_as_api_key");
    let wrong = delete(vec![("flinks-auth-key", TOOLBOX_API_KEY.into())]).await;
    wrong.assert_error(401, "UNAUTHORIZED", "wrong_auth_header");
    assert!(wrong.hint().contains("`x-api-key`"), "{}", wrong.hint());
    // Nothing was deleted by the refused calls.
    assert!(
        app.state
            .store
            .login(toolbox_customer(), login.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
    // Clients send `{}` or nothing with DELETE.
    let reply = app
        .send(request(
            "DELETE",
            &uri,
            &[("x-api-key", TOOLBOX_API_KEY)],
            "{}",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn customers_without_the_api_key_feature_delete_without_one() {
    let app = TestApp::new().await;
    let (customer, secret, _) = app.customer_with("toolbox", true, false).await;
    let first = app.login(customer, "Greatday").await;
    let second = app.login(customer, "Greatday").await;
    let uri = |login: LoginId| format!("{}/{login}", path(customer, "DeleteCard"));
    assert_eq!(
        app.send(request("DELETE", &uri(first), &[], ""))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(request(
            "DELETE",
            &uri(second),
            &[("flinks-auth-key", &secret)],
            ""
        ))
        .await
        .status,
        StatusCode::OK
    );
}
