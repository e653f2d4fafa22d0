//! POST /GenerateAuthorizeToken: the secret key buys an authorize token.

use std::time::Duration;

use axum::http::StatusCode;
use bankgate_core::model::InstanceKind;

use crate::support::*;

#[tokio::test]
async fn the_documented_curl_returns_a_fresh_guid_token() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[
                ("flinks-auth-key", TOOLBOX_SECRET),
                ("Accept", "application/json"),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_envelope(&reply);
    let token = reply.json["Token"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(token).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(
        token,
        parsed.hyphenated().to_string(),
        "lowercase, hyphenated"
    );
    insta::assert_json_snapshot!(reply.json, { ".Token" => "[token]" }, @r#"
    {
      "HttpStatusCode": 200,
      "Token": "[token]"
    }
    "#);
    assert_ne!(
        app.toolbox_token().await,
        token,
        "every call mints a new token"
    );
}

#[tokio::test]
async fn bodies_clients_send_are_accepted() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    for body in ["", "{}", "  ", r#"{"Anything": "ignored"}"#] {
        let reply = app
            .post(&uri, &[("flinks-auth-key", TOOLBOX_SECRET)], body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "body {body:?}: {:#}",
            reply.json
        );
    }
    // No Content-Type at all, and one with a charset (the C# SDK's).
    let no_type = axum::http::Request::builder()
        .method("POST")
        .uri(&uri)
        .header("flinks-auth-key", TOOLBOX_SECRET)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(no_type).await.status, StatusCode::OK);
    let charset = app
        .post(
            &uri,
            &[
                ("flinks-auth-key", TOOLBOX_SECRET),
                ("content-type", "application/json;charset=UTF-8"),
            ],
            "",
        )
        .await;
    assert_eq!(charset.status, StatusCode::OK);
}

#[tokio::test]
async fn credentials_match_in_any_case_like_every_guid() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", &TOOLBOX_SECRET.to_uppercase())],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    let token = reply.json["Token"].as_str().unwrap().to_uppercase();
    let login = app.toolbox_login().await;
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &token, login).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_missing_or_unknown_secret_key_is_unauthorized() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let missing = app.post(&uri, &[], "").await;
    missing.assert_error(401, "UNAUTHORIZED", "auth_key_missing");
    assert_eq!(missing.json["Message"], "You must provide a valid auth key");
    assert!(
        missing.hint().contains("flinks-auth-key"),
        "{}",
        missing.hint()
    );

    let empty = app.post(&uri, &[("flinks-auth-key", "  ")], "").await;
    empty.assert_error(401, "UNAUTHORIZED", "auth_key_missing");

    let unknown = app
        .post(
            &uri,
            &[("flinks-auth-key", "00000000-0000-4000-8000-000000000000")],
            "",
        )
        .await;
    unknown.assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    assert_eq!(unknown.json["Message"], "You must provide a valid auth key");
}

#[tokio::test]
async fn the_other_credentials_in_the_secret_keys_place_are_named() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let token = app.toolbox_token().await;
    app.post(&uri, &[("flinks-auth-key", &token)], "")
        .await
        .assert_error(401, "UNAUTHORIZED", "token_given_as_auth_key");
    app.post(&uri, &[("flinks-auth-key", TOOLBOX_API_KEY)], "")
        .await
        .assert_error(401, "UNAUTHORIZED", "api_key_given_as_auth_key");
}

#[tokio::test]
async fn a_secret_key_under_the_wrong_header_is_named() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let bearer = format!("Bearer {TOOLBOX_SECRET}");
    for (name, value) in [
        ("x-api-key", TOOLBOX_SECRET),
        ("Authorization", bearer.as_str()),
        ("Bearer", TOOLBOX_SECRET),
        ("flinks_auth_key", TOOLBOX_SECRET),
    ] {
        let reply = app.post(&uri, &[(name, value)], "").await;
        reply.assert_error(401, "UNAUTHORIZED", "wrong_auth_header");
        assert!(
            reply.hint().contains(&name.to_ascii_lowercase())
                && reply.hint().contains("`flinks-auth-key`"),
            "{name}: {}",
            reply.hint()
        );
    }
    // Beside a valid key, extra credentials are ignored.
    let reply = app
        .post(
            &uri,
            &[
                ("flinks-auth-key", TOOLBOX_SECRET),
                ("Authorization", "Bearer whatever"),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_of_other_instances_say_which_only_for_sandboxes() {
    let app = TestApp::new().await;
    let (_, acme_secret, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    let (_, bank_secret, _) = app.customer_on("bigbank", InstanceKind::Production).await;
    let (_, sibling_secret, _) = app.customer_with("toolbox", true, true).await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");

    let sandbox = app
        .post(&uri, &[("flinks-auth-key", &acme_secret)], "")
        .await;
    sandbox.assert_error(401, "UNAUTHORIZED", "wrong_environment");
    assert!(sandbox.hint().contains("acme"), "{}", sandbox.hint());

    // A production tenant's existence is never revealed.
    let production = app
        .post(&uri, &[("flinks-auth-key", &bank_secret)], "")
        .await;
    production.assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    assert!(
        !production.hint().contains("bigbank"),
        "{}",
        production.hint()
    );

    // Another customer of the same instance: not ours, and we don't say whose.
    app.post(&uri, &[("flinks-auth-key", &sibling_secret)], "")
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
}

#[tokio::test]
async fn unknown_or_malformed_customer_ids_are_unauthorized() {
    let app = TestApp::new().await;
    for customer in ["00000000-0000-4000-8000-000000000000", "not-a-guid"] {
        app.post(
            &path(customer, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        )
        .await
        .assert_error(401, "UNAUTHORIZED", "customer_not_found");
    }
}

#[tokio::test]
async fn bad_bodies_are_400_in_the_envelope() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let auth = [("flinks-auth-key", TOOLBOX_SECRET)];
    app.post(&uri, &auth, "{not json")
        .await
        .assert_error(400, "INVALID_REQUEST", "body_not_json");
    app.post(&uri, &auth, "[]")
        .await
        .assert_error(400, "INVALID_REQUEST", "body_not_object");
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(64 * 1024));
    app.post(&uri, &auth, &big)
        .await
        .assert_error(413, "INVALID_REQUEST", "body_too_large");
    // Just under the limit is fine.
    let fits = format!(r#"{{"pad":"{}"}}"#, "x".repeat(64 * 1024 - 20));
    assert_eq!(app.post(&uri, &auth, &fits).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotated_keys_work_through_their_grace_period_only() {
    let app = TestApp::new().await;
    let (customer, old_secret, _) = app.customer_with("toolbox", true, true).await;
    let keys = app
        .operator()
        .rotate_keys(customer, Duration::from_secs(600))
        .await
        .unwrap();
    let uri = path(customer, "GenerateAuthorizeToken");

    for key in [old_secret.as_str(), keys.secret_key.expose()] {
        let reply = app.post(&uri, &[("flinks-auth-key", key)], "").await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    }
    app.advance(Duration::from_secs(600));
    app.post(&uri, &[("flinks-auth-key", &old_secret)], "")
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    assert_eq!(
        app.post(&uri, &[("flinks-auth-key", keys.secret_key.expose())], "")
            .await
            .status,
        StatusCode::OK
    );

    // Without a grace period the old key stops at once.
    let newer = app
        .operator()
        .rotate_keys(customer, Duration::ZERO)
        .await
        .unwrap();
    app.post(&uri, &[("flinks-auth-key", keys.secret_key.expose())], "")
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    assert_eq!(
        app.post(&uri, &[("flinks-auth-key", newer.secret_key.expose())], "")
            .await
            .status,
        StatusCode::OK
    );
}
