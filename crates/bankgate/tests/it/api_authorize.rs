//! POST /Authorize in cached mode: an authorize token and a LoginId open a RequestId.

use axum::http::StatusCode;
use bankgate_core::model::InstanceKind;
use bankgate_core::{LoginId, RequestId};

use crate::support::*;

#[tokio::test]
async fn cached_mode_answers_as_the_live_service_does() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    app.advance(std::time::Duration::from_secs(90));
    let token = app.toolbox_token().await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_envelope(&reply);
    assert_eq!(
        reply.json["Login"]["Id"],
        login.to_string(),
        "Login.Id is the LoginId"
    );
    let request_id: RequestId = reply.json["RequestId"].as_str().unwrap().parse().unwrap();
    // LastRefresh: when the LoginId last refreshed, UTC, six fraction digits, no zone.
    assert_eq!(
        reply.json["Login"]["LastRefresh"],
        "2026-01-21T20:47:47.145999"
    );
    insta::assert_json_snapshot!(reply.json, {
        ".RequestId" => "[request-id]",
        ".Login.Id" => "[login-id]",
    }, @r#"
    {
      "Links": [
        {
          "rel": "AccountsDetail",
          "href": "/GetAccountsDetail",
          "example": null
        },
        {
          "rel": "AccountsSummary",
          "href": "/GetAccountsSummary",
          "example": null
        },
        {
          "rel": "Statements",
          "href": "/GetStatements",
          "example": null
        }
      ],
      "HttpStatusCode": 200,
      "InstitutionName": "FlinksCapital",
      "Login": {
        "Username": "Greatday",
        "IsScheduledRefresh": false,
        "LastRefresh": "2026-01-21T20:47:47.145999",
        "Type": "Personal",
        "Id": "[login-id]"
      },
      "InstitutionId": 14,
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    // The RequestId is a live session of this customer, for 30 minutes.
    let session = app
        .state
        .store
        .session(toolbox_customer(), request_id)
        .await
        .unwrap()
        .expect("session stored");
    assert_eq!(session.login_id, login);
    assert_eq!(
        session.expires_at,
        app.state.clock.now() + std::time::Duration::from_secs(30 * 60)
    );
}

#[tokio::test]
async fn every_call_opens_a_new_request_id() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let first = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let second = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_ne!(first.json["RequestId"], second.json["RequestId"]);
}

#[tokio::test]
async fn keys_in_any_case_string_booleans_and_a_tag() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let uri = path(TOOLBOX_CUSTOMER, "authorize");
    for (body, tag) in [
        (
            format!(r#"{{"loginid":"{login}","mostrecentcached":"true"}}"#),
            None,
        ),
        (
            format!(r#"{{"LOGINID":"{login}","MostRecentCached":"True","Tag":"userId=42"}}"#),
            Some("userId=42"),
        ),
        (
            format!(r#"{{"LoginId":"{login}","MostRecentCached":true,"Unknown":[1,2]}}"#),
            None,
        ),
    ] {
        let token = app.toolbox_token().await;
        let reply = app.post(&uri, &[("flinks-auth-key", &token)], &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {:#}", reply.json);
        match tag {
            Some(tag) => assert_eq!(reply.json["Tag"], tag),
            None => assert!(reply.json.get("Tag").is_none()),
        }
    }
}

#[tokio::test]
async fn extra_credentials_beside_a_valid_token_are_ignored() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[
                ("flinks-auth-key", &token),
                ("Authorization", "Bearer abc"),
                ("x-api-key", TOOLBOX_API_KEY),
            ],
            &format!(
                r#"{{"LoginId":"{login}","MostRecentCached":true,"authorizeToken":"{token}"}}"#
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
}

#[tokio::test]
async fn token_refusals() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    let body = format!(r#"{{"LoginId":"{login}","MostRecentCached":true}}"#);
    let message = "You must provide a valid authorize token";

    let missing = app.post(&uri, &[], &body).await;
    missing.assert_error(401, "ACCESS_DENIED", "authorize_token_missing");
    assert_eq!(missing.json["Message"], message);

    let unknown = app
        .authorize(
            TOOLBOX_CUSTOMER,
            "7b1cbd0c-3a43-4c36-9a7e-2d7f1e0c0a11",
            login,
        )
        .await;
    unknown.assert_error(401, "ACCESS_DENIED", "authorize_token_invalid");
    assert_eq!(unknown.json["Message"], message);

    let secret = app.authorize(TOOLBOX_CUSTOMER, TOOLBOX_SECRET, login).await;
    secret.assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");
    assert!(
        secret.hint().contains("GenerateAuthorizeToken"),
        "{}",
        secret.hint()
    );

    let token = app.toolbox_token().await;
    for (name, value) in [
        ("x-api-key", token.clone()),
        ("Authorization", format!("Bearer {token}")),
    ] {
        let reply = app.post(&uri, &[(name, &value)], &body).await;
        reply.assert_error(401, "ACCESS_DENIED", "wrong_auth_header");
        assert!(
            reply.hint().contains("`flinks-auth-key`"),
            "{}",
            reply.hint()
        );
    }
    // The misplaced token was not spent.
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &token, login).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_works_once() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &token, login).await.status,
        StatusCode::OK
    );
    app.advance(std::time::Duration::from_secs(5));
    let again = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    again.assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    assert!(
        again.hint().contains("2026-01-21T20:47:47Z"),
        "says when: {}",
        again.hint()
    );
}

#[tokio::test]
async fn unknown_deleted_or_foreign_login_ids_are_invalid_login_and_still_spend_the_token() {
    let app = TestApp::new().await;
    let (other_customer, _, _) = app.customer_with("toolbox", true, true).await;
    let foreign = app.login(other_customer, "Greatday").await;
    for login in [LoginId::new_random(), foreign] {
        let token = app.toolbox_token().await;
        let reply = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
        reply.assert_error(401, "INVALID_LOGIN", "login_not_found");
        assert_eq!(reply.json["Message"], "LoginId not found or invalid");
        app.authorize(TOOLBOX_CUSTOMER, &token, login)
            .await
            .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    }
    let token = app.toolbox_token().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            r#"{"LoginId":"not-a-guid","MostRecentCached":true}"#,
        )
        .await;
    reply.assert_error(401, "INVALID_LOGIN", "login_not_found");
}

#[tokio::test]
async fn bad_bodies_are_400_and_spend_the_token() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    for (body, reason) in [
        ("{oops", "body_not_json"),
        ("\"LoginId\"", "body_not_object"),
        (
            r#"{"LoginId": 12, "MostRecentCached": true}"#,
            "body_invalid",
        ),
        (
            r#"{"LoginId": "x", "MostRecentCached": "maybe"}"#,
            "body_invalid",
        ),
        (r#"{"MostRecentCached": true}"#, "login_id_missing"),
        ("", "login_id_missing"),
    ] {
        let token = app.toolbox_token().await;
        let reply = app.post(&uri, &[("flinks-auth-key", &token)], body).await;
        reply.assert_error(400, "INVALID_REQUEST", reason);
        app.authorize(TOOLBOX_CUSTOMER, &token, login)
            .await
            .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    }
    // Even a body too large to read spends it.
    let token = app.toolbox_token().await;
    let big = format!(
        r#"{{"LoginId":"{login}","Pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    app.post(&uri, &[("flinks-auth-key", &token)], &big)
        .await
        .assert_error(413, "INVALID_REQUEST", "body_too_large");
    app.authorize(TOOLBOX_CUSTOMER, &token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    // A bad body with a bad token: the token refusal wins.
    app.post(&uri, &[("flinks-auth-key", "nope")], "{oops")
        .await
        .assert_error(401, "ACCESS_DENIED", "credential_malformed");
    app.post(
        &uri,
        &[("flinks-auth-key", "7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10")],
        "{oops",
    )
    .await
    .assert_error(401, "ACCESS_DENIED", "authorize_token_invalid");
}

#[tokio::test]
async fn a_token_of_another_customer_is_refused_and_left_unspent() {
    let app = TestApp::new().await;
    let (sibling, sibling_secret, _) = app.customer_with("toolbox", true, true).await;
    let (acme, acme_secret, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    let login = app.toolbox_login().await;

    let sibling_token = app.generate_token_for(sibling, &sibling_secret).await;
    app.authorize(TOOLBOX_CUSTOMER, &sibling_token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_invalid");

    let acme_token = app.generate_token_for(acme, &acme_secret).await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &acme_token, login).await;
    reply.assert_error(401, "ACCESS_DENIED", "wrong_environment");
    assert!(reply.hint().contains("acme"), "{}", reply.hint());

    // Their owners can still use them.
    let sibling_login = app.login(sibling, "greatday_nomfa").await;
    assert_eq!(
        app.authorize(sibling, &sibling_token, sibling_login)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn customers_without_the_token_feature_authorize_without_one() {
    let app = TestApp::new().await;
    let (customer, secret, _) = app.customer_with("toolbox", false, true).await;
    let login = app.login(customer, "Greatday").await;
    let uri = path(customer, "Authorize");
    let body = format!(r#"{{"LoginId":"{login}","MostRecentCached":true}}"#);
    assert_eq!(app.post(&uri, &[], &body).await.status, StatusCode::OK);
    assert_eq!(
        app.post(&uri, &[("flinks-auth-key", &secret)], &body)
            .await
            .status,
        StatusCode::OK
    );
    // A token still works, once.
    let token = app.generate_token_for(customer, &secret).await;
    assert_eq!(
        app.authorize(customer, &token, login).await.status,
        StatusCode::OK
    );
    app.authorize(customer, &token, login).await.assert_error(
        401,
        "ACCESS_DENIED",
        "authorize_token_used",
    );
    // The toolbox customer keeps requiring one.
    let toolbox_login = app.toolbox_login().await;
    app.post(
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", TOOLBOX_SECRET)],
        &format!(r#"{{"LoginId":"{toolbox_login}","MostRecentCached":true}}"#),
    )
    .await
    .assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");
}
