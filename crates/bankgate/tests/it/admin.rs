//! The admin API: the token that guards it, operator actions end to end against the public API,
//! the sandbox clock, resets, token and LoginId inspection, health and metrics.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

const ADMIN_TOKEN: &str = "s3cret-admin-token";

struct Admin {
    app: TestApp,
    router: Router,
}

impl Admin {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let router = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
        Self { app, router }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        send_to(
            &self.router,
            request(method, uri, &[("authorization", auth.as_str())], &body),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call("POST", uri, Some(body)).await
    }

    async fn text(&self, uri: &str) -> (StatusCode, String) {
        let response = self
            .router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn inspect(&self, token: &str) -> Reply {
        self.post("/admin/tokens/inspect", json!({ "token": token }))
            .await
    }
}

#[tokio::test]
async fn admin_calls_need_the_admin_token() {
    let admin = Admin::new().await;
    let uri = "/admin/instances";
    let no_token = send_to(&admin.router, request("GET", uri, &[], "")).await;
    no_token.assert_error(401, "UNAUTHORIZED", "admin_token_missing");
    for wrong in [
        "Bearer nope",
        "Bearer s3cret-admin-token-and-more",
        "s3cret-admin-token",
    ] {
        let reply = send_to(
            &admin.router,
            request("GET", uri, &[("authorization", wrong)], ""),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    // The public API's credentials are not admin credentials either.
    let secret = format!("Bearer {TOOLBOX_SECRET}");
    send_to(
        &admin.router,
        request("GET", uri, &[("authorization", &secret)], ""),
    )
    .await
    .assert_error(401, "UNAUTHORIZED", "admin_token_invalid");
    assert_eq!(admin.get(uri).await.status, StatusCode::OK);

    // Started without a token: the admin API is off, probes still answer.
    let off = admin_app(admin.app.state.clone(), None);
    send_to(
        &off,
        request("GET", uri, &[("authorization", "Bearer anything")], ""),
    )
    .await
    .assert_error(401, "UNAUTHORIZED", "admin_disabled");
    let health = send_to(&off, request("GET", "/healthz", &[], "")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["status"], "ok");
    let ready = send_to(&off, request("GET", "/readyz", &[], "")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json["status"], "ready");
}

#[tokio::test]
async fn instances_and_customers_made_by_the_admin_api_serve_the_flinks_api() {
    let admin = Admin::new().await;
    let created = admin
        .post(
            "/admin/instances",
            json!({ "name": "acme-sandbox", "kind": "sandbox", "tokenLifetimeSeconds": 600 }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.json);
    assert_eq!(created.json["tokenLifetimeSeconds"], 600);
    admin
        .post(
            "/admin/instances",
            json!({ "name": "acme-sandbox", "kind": "sandbox" }),
        )
        .await
        .assert_error(409, "INVALID_REQUEST", "conflict");
    let names: Vec<Value> = admin
        .get("/admin/instances")
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("acme-sandbox"), json!("toolbox")]);

    let customer = admin
        .post(
            "/admin/customers",
            json!({ "instance": "acme-sandbox", "label": "acme tests" }),
        )
        .await;
    assert_eq!(customer.status, StatusCode::CREATED, "{:#}", customer.json);
    let customer_id = customer.json["customerId"].as_str().unwrap().to_owned();
    let secret = customer.json["secretKey"].as_str().unwrap().to_owned();
    let token = admin.app.generate_token_for(&customer_id, &secret).await;
    assert_eq!(admin.inspect(&token).await.json["status"], "issued");

    let listed = admin.get("/admin/customers?instance=acme-sandbox").await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert_eq!(listed.json[0]["customerId"], customer_id.as_str());
    // Keys are shown once, when made; never in listings.
    assert!(
        listed.json[0].get("secretKey").is_none(),
        "{:#}",
        listed.json
    );

    // Rotation without grace: the old key stops, the new one works.
    let rotated = admin
        .call(
            "POST",
            &format!("/admin/customers/{customer_id}/rotate-keys"),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:#}", rotated.json);
    let new_secret = rotated.json["secretKey"].as_str().unwrap();
    admin
        .app
        .post(
            &path(&customer_id, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", &secret)],
            "",
        )
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    admin.app.generate_token_for(&customer_id, new_secret).await;
}

#[tokio::test]
async fn bad_admin_requests_get_the_envelope() {
    let admin = Admin::new().await;
    let cases = [
        (
            "POST",
            "/admin/instances",
            Some("{not json"),
            "body_invalid",
        ),
        (
            "POST",
            "/admin/instances",
            Some(r#"{"name":"x1","kind":"staging"}"#),
            "body_invalid",
        ),
        (
            "POST",
            "/admin/instances",
            Some(r#"{"name":"Not A Name!","kind":"sandbox"}"#),
            "instance_name_invalid",
        ),
        (
            "POST",
            "/admin/customers",
            Some(r#"{"instance":"nowhere"}"#),
            "not_found",
        ),
        ("GET", "/admin/instances/nowhere/clock", None, "not_found"),
        (
            "POST",
            "/admin/customers/not-a-uuid/logins",
            Some(r#"{"username":"Greatday"}"#),
            "customer_id_invalid",
        ),
        (
            "POST",
            "/admin/tokens/inspect",
            Some(r#"{"token":"00000000-0000-4000-8000-000000000000"}"#),
            "token_unknown",
        ),
        ("GET", "/admin/nothing-here", None, "admin_route_unknown"),
        // Found by the fuzzer: a clock moved past any sane horizon is refused, not a 503.
        (
            "POST",
            "/admin/instances/toolbox/clock/advance",
            Some(r#"{"seconds":9223372036854775806}"#),
            "invalid_input",
        ),
    ];
    for (method, uri, body, reason) in cases {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let reply = send_to(
            &admin.router,
            request(method, uri, &[("authorization", &auth)], body.unwrap_or("")),
        )
        .await;
        assert!(
            reply.status.is_client_error(),
            "{method} {uri}: {:#}",
            reply.json
        );
        assert_envelope(&reply);
        assert_eq!(
            reply.json["Reason"], reason,
            "{method} {uri}: {:#}",
            reply.json
        );
    }
}

#[tokio::test]
async fn sandbox_logins_made_and_deleted_by_the_admin_api() {
    let admin = Admin::new().await;
    let made = admin
        .post(
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins"),
            json!({ "username": "Greatday" }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.json);
    let login_id = made.json["loginId"].as_str().unwrap().to_owned();
    let login: bankgate_core::LoginId = login_id.parse().unwrap();
    let token = admin.app.toolbox_token().await;
    assert_eq!(
        admin
            .app
            .authorize(TOOLBOX_CUSTOMER, &token, login)
            .await
            .status,
        StatusCode::OK
    );

    let uri = format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins/{login_id}");
    let state = admin.get(&uri).await;
    assert_eq!(state.json["username"], "Greatday");
    assert_eq!(state.json["institution"], "FlinksCapital");
    assert_eq!(state.json["saved"], true);

    let deleted = admin
        .router
        .clone()
        .oneshot(
            Request::delete(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    admin
        .get(&uri)
        .await
        .assert_error(404, "INVALID_REQUEST", "not_found");
    admin
        .app
        .authorize(TOOLBOX_CUSTOMER, &admin.app.toolbox_token().await, login)
        .await
        .assert_error(401, "INVALID_LOGIN", "login_not_found");

    // Production instances have no sandbox bank.
    let (customer, _, _) = admin
        .app
        .customer_on("acme-ca", bankgate_core::model::InstanceKind::Production)
        .await;
    admin
        .post(
            &format!("/admin/customers/{customer}/logins"),
            json!({ "username": "Greatday" }),
        )
        .await
        .assert_error(400, "INVALID_REQUEST", "sandbox_bank_on_production");
}

#[tokio::test]
async fn a_token_expires_at_exactly_30_minutes_of_the_moved_clock() {
    let admin = Admin::new().await;
    let login = admin.app.toolbox_login().await;
    let early = admin.app.toolbox_token().await;
    let late = admin.app.toolbox_token().await;

    let moved = admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 29 * 60 + 59 }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.json);
    assert_eq!(moved.json["offsetSeconds"], 1799.0);
    assert_eq!(moved.json["realTime"], false);
    let expected_now = (START + Duration::from_secs(1799)).to_rfc3339();
    assert_eq!(moved.json["now"], expected_now.as_str());
    assert_eq!(
        admin.get("/admin/instances/toolbox/clock").await.json,
        moved.json
    );

    assert_eq!(admin.inspect(&early).await.json["status"], "issued");
    let opened = admin.app.authorize(TOOLBOX_CUSTOMER, &early, login).await;
    assert_eq!(opened.status, StatusCode::OK, "{:#}", opened.json);
    let consumed = admin.inspect(&early).await;
    assert_eq!(consumed.json["status"], "consumed");
    assert_eq!(consumed.json["requestId"], opened.json["RequestId"]);
    assert_eq!(consumed.json["consumedAt"], expected_now.as_str());
    // The token itself is never echoed.
    assert!(!consumed.json.to_string().contains(&early));

    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 1 }),
        )
        .await;
    assert_eq!(admin.inspect(&late).await.json["status"], "expired");
    admin
        .app
        .authorize(TOOLBOX_CUSTOMER, &late, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_expired");

    // Back to real time: a fresh token lives again.
    let reset = admin
        .post("/admin/instances/toolbox/clock/reset", json!({}))
        .await;
    assert_eq!(reset.json["realTime"], true);
    assert_eq!(reset.json["now"], START.to_rfc3339().as_str());
}

#[tokio::test]
async fn a_request_id_expires_after_8_idle_minutes_of_the_moved_clock() {
    let admin = Admin::new().await;
    let token = admin.app.toolbox_token().await;
    let authorize = path(TOOLBOX_CUSTOMER, "Authorize");
    let challenge = admin
        .app
        .post(
            &authorize,
            &[("flinks-auth-key", &token)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"Everyday","Save":true}"#,
        )
        .await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let request_id = challenge.json["RequestId"].as_str().unwrap().to_owned();
    let answer = json!({ "RequestId": request_id, "SecurityResponses": {} }).to_string();

    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 7 * 60 + 59 }),
        )
        .await;
    assert_eq!(
        admin
            .app
            .post(&authorize, &[], &answer)
            .await
            .status
            .as_u16(),
        203
    );
    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 8 * 60 }),
        )
        .await;
    admin.app.post(&authorize, &[], &answer).await.assert_error(
        400,
        "SESSION_NONEXISTENT",
        "request_id_expired",
    );
}

/// The hundred-year cap of a sandbox clock, through the admin API: the refusal says how far
/// ahead the clock already is, and the clock stays there.
#[tokio::test]
async fn a_clock_cannot_pass_a_hundred_years() {
    let admin = Admin::new().await;
    let sixty_years = json!({ "seconds": 60_u64 * 365 * 24 * 3600 });
    let first = admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            sixty_years.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.json);
    let second = admin
        .post("/admin/instances/toolbox/clock/advance", sixty_years)
        .await;
    second.assert_error(400, "INVALID_REQUEST", "invalid_input");
    assert!(
        second.hint().contains("at most 36500 days") && second.hint().contains("21900 days"),
        "{}",
        second.hint()
    );
    let clock = admin.get("/admin/instances/toolbox/clock").await;
    assert_eq!(clock.json, first.json);
}

#[tokio::test]
async fn production_clocks_cannot_be_moved_or_reset() {
    let admin = Admin::new().await;
    admin
        .post(
            "/admin/instances",
            json!({ "name": "acme-ca", "kind": "production" }),
        )
        .await;
    for (uri, body) in [
        (
            "/admin/instances/acme-ca/clock/advance",
            json!({ "seconds": 60 }),
        ),
        ("/admin/instances/acme-ca/clock/reset", json!({})),
        ("/admin/instances/acme-ca/reset", json!({})),
    ] {
        admin
            .post(uri, body)
            .await
            .assert_error(400, "INVALID_REQUEST", "invalid_input");
    }
    let clock = admin.get("/admin/instances/acme-ca/clock").await;
    assert_eq!(clock.json["realTime"], true);
    assert_eq!(clock.json["now"], START.to_rfc3339().as_str());
    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 0 }),
        )
        .await
        .assert_error(400, "INVALID_REQUEST", "invalid_input");
}

#[tokio::test]
async fn reset_through_the_admin_api_keeps_credentials() {
    let admin = Admin::new().await;
    let login = admin.app.toolbox_login().await;
    let token = admin.app.toolbox_token().await;
    let unused = admin.app.toolbox_token().await;
    admin.app.authorize(TOOLBOX_CUSTOMER, &token, login).await;

    let reset = admin
        .post("/admin/instances/toolbox/reset", json!({}))
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{:#}", reset.json);
    assert_eq!(reset.json["tokens"], 2);
    assert_eq!(reset.json["loginIds"], 1);
    assert_eq!(reset.json["sessions"], 1);

    admin
        .post("/admin/tokens/inspect", json!({ "token": unused }))
        .await
        .assert_error(404, "INVALID_REQUEST", "token_unknown");
    let fresh = admin.app.toolbox_token().await;
    admin
        .app
        .authorize(TOOLBOX_CUSTOMER, &fresh, login)
        .await
        .assert_error(401, "INVALID_LOGIN", "login_not_found");
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_commits() {
    let admin = Admin::new().await;
    let login = admin.app.toolbox_login().await;
    let token = admin.app.toolbox_token().await;
    admin.app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    admin.app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    admin
        .app
        .post(&path(TOOLBOX_CUSTOMER, "Authorize"), &[], "{}")
        .await;

    let (status, text) = admin.text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"bankgate_http_requests_total{endpoint="GenerateAuthorizeToken",status="200"} 1"#,
        r#"bankgate_http_requests_total{endpoint="Authorize",status="200"} 1"#,
        r#"bankgate_http_requests_total{endpoint="Authorize",status="401"} 2"#,
        "bankgate_tokens_issued_total 1",
        "bankgate_tokens_consumed_total 1",
        r#"bankgate_tokens_refused_total{reason="authorize_token_used"} 1"#,
        r#"bankgate_tokens_refused_total{reason="authorize_token_missing"} 1"#,
        r#"bankgate_http_request_duration_seconds_count{endpoint="Authorize"} 3"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let commits = text
        .lines()
        .find_map(|l| l.strip_prefix("bankgate_store_commit_batch_size_count "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(commits >= 3, "{text}");
    assert!(text.contains("bankgate_store_commit_duration_seconds_sum"));
    assert!(!text.contains(&token), "a token in the metrics");
}

/// A secret key (or the x-api-key) sent as the token on /Authorize counts once, under its own
/// Reason, not also as an invalid token.
#[tokio::test]
async fn a_key_sent_as_a_token_counts_once() {
    let admin = Admin::new().await;
    let login = admin.app.toolbox_login().await;
    admin
        .app
        .authorize(TOOLBOX_CUSTOMER, TOOLBOX_SECRET, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");
    admin
        .app
        .authorize(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "api_key_given_as_token");
    // A live refresh takes another path through the store.
    admin
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            &json!({ "LoginId": login.to_string(), "MostRecentCached": false }).to_string(),
        )
        .await
        .assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");
    // The Connect page with the secret key in its URL: counted the same way.
    let page = admin
        .app
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri(format!("/v2/?demo=true&authorizeToken={TOOLBOX_SECRET}"))
                .header(header::HOST, "toolbox-iframe.localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    // A token that is simply unknown still counts as invalid.
    admin
        .app
        .authorize(
            TOOLBOX_CUSTOMER,
            "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            login,
        )
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_invalid");

    let (status, text) = admin.text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("bankgate_tokens_refused_total{"))
        .collect();
    let mut expected = vec![
        r#"bankgate_tokens_refused_total{reason="auth_key_given_as_token"} 3"#,
        r#"bankgate_tokens_refused_total{reason="api_key_given_as_token"} 1"#,
        r#"bankgate_tokens_refused_total{reason="authorize_token_invalid"} 1"#,
    ];
    let mut refused_sorted = refused.clone();
    refused_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(refused_sorted, expected, "in\n{text}");
}

/// A rotation's grace period runs on the instance's clock, like the checks that end it.
#[tokio::test]
async fn a_grace_period_runs_on_a_moved_sandbox_clock() {
    let admin = Admin::new().await;
    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 3600 }),
        )
        .await;
    let rotated = admin
        .post(
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/rotate-keys"),
            json!({ "graceSeconds": 600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:#}", rotated.json);
    // Still inside the grace period on the instance's clock: the old key works.
    admin
        .app
        .generate_token_for(TOOLBOX_CUSTOMER, TOOLBOX_SECRET)
        .await;
    admin
        .post(
            "/admin/instances/toolbox/clock/advance",
            json!({ "seconds": 600 }),
        )
        .await;
    admin
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        )
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
}

#[tokio::test]
async fn a_wrong_method_gets_the_envelope_naming_the_allowed_ones() {
    let admin = Admin::new().await;
    let reply = admin.call("DELETE", "/admin/instances", None).await;
    reply.assert_error(405, "INVALID_REQUEST", "method_not_allowed");
    assert_eq!(
        reply.hint(),
        "This route does not take DELETE; call it with GET or POST."
    );
    // Probes too, without a token.
    let probe = send_to(&admin.router, request("POST", "/healthz", &[], "")).await;
    probe.assert_error(405, "INVALID_REQUEST", "method_not_allowed");
    assert!(
        probe.hint().ends_with("call it with GET."),
        "{}",
        probe.hint()
    );
}

#[tokio::test]
async fn bad_admin_bodies_name_the_field_and_what_it_takes() {
    let admin = Admin::new().await;
    let cases = [
        (
            "/admin/instances/toolbox/clock/advance",
            r#"{"seconds":"ten"}"#,
            "The field `seconds` must be a whole number, 0 or more.",
        ),
        (
            "/admin/instances/toolbox/clock/advance",
            r#"{"seconds":-1}"#,
            "The field `seconds` must be a whole number, 0 or more.",
        ),
        (
            "/admin/instances",
            r#"{"kind":"sandbox"}"#,
            "The body needs the field `name`.",
        ),
        (
            "/admin/instances",
            r#"{"name":"x1","kind":"staging"}"#,
            "The field `kind` must be `sandbox` or `production`.",
        ),
        (
            "/admin/instances",
            r#"{"name":"x1","kind":"sandbox","colour":"red"}"#,
            "`colour` is not a field of this body; its fields are `name`, `kind`, \
             `tokenLifetimeSeconds`.",
        ),
        (
            "/admin/instances",
            "{not json",
            "The body is not valid JSON (line 1, column 2); send a JSON object.",
        ),
        (
            "/admin/instances",
            "",
            "This route takes a JSON object body (see /openapi/admin.json).",
        ),
        (
            "/admin/instances",
            "[1]",
            "The body must be a JSON object, not an array.",
        ),
    ];
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for (uri, body, hint) in cases {
        let reply = send_to(
            &admin.router,
            request("POST", uri, &[("authorization", &auth)], body),
        )
        .await;
        reply.assert_error(400, "INVALID_REQUEST", "body_invalid");
        assert_eq!(reply.hint(), hint, "{body}");
    }
}

#[tokio::test]
async fn customers_of_a_missing_instance_are_a_404_as_creating_one_is() {
    let admin = Admin::new().await;
    let listed = admin.get("/admin/customers?instance=nosuch").await;
    listed.assert_error(404, "INVALID_REQUEST", "not_found");
    let created = admin
        .post("/admin/customers", json!({ "instance": "nosuch" }))
        .await;
    created.assert_error(404, "INVALID_REQUEST", "not_found");
    assert_eq!(listed.hint(), created.hint());
    // An existing instance still lists.
    let toolbox = admin.get("/admin/customers?instance=toolbox").await;
    assert_eq!(toolbox.status, StatusCode::OK, "{:#}", toolbox.json);
}

#[tokio::test]
async fn an_unreadable_path_gets_the_envelope() {
    let admin = Admin::new().await;
    admin
        .get("/admin/instances/%FF")
        .await
        .assert_error(400, "INVALID_REQUEST", "path_invalid");
}

/// `GET /admin/instances` with `token`, from `client`.
async fn admin_from(admin: &Admin, client: impl Into<std::net::IpAddr>, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    let mut request = request("GET", "/admin/instances", &[("authorization", &auth)], "");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(
            client.into(),
            40_000,
        )));
    send_to(&admin.router, request).await
}

/// One host usually holds a whole IPv6 /64: its addresses count together.
#[tokio::test]
async fn wrong_admin_tokens_from_one_ipv6_network_count_together() {
    use bankgate_server::admin::ADMIN_MAX_FAILURES;
    use std::net::Ipv6Addr;
    let admin = Admin::new().await;
    let host = |last: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last);
    for guess in 1..=ADMIN_MAX_FAILURES {
        let reply = admin_from(&admin, host(guess as u16), "wrong").await;
        let expected = if guess < ADMIN_MAX_FAILURES { 401 } else { 429 };
        assert_eq!(reply.status.as_u16(), expected, "guess {guess}");
    }
    admin_from(&admin, host(999), ADMIN_TOKEN)
        .await
        .assert_error(429, "TOO_MANY_REQUESTS", "admin_locked_out");
    // The next /64 over is someone else.
    let neighbour = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
    assert_eq!(
        admin_from(&admin, neighbour, ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_admin_tokens_lock_out_only_the_address_that_sent_them() {
    use bankgate_server::admin::{ADMIN_LOCKOUT, ADMIN_MAX_FAILURES};
    let admin = Admin::new().await;
    let guesser = [192, 0, 2, 7];
    let operator = [192, 0, 2, 8];
    for guess in 1..ADMIN_MAX_FAILURES {
        admin_from(&admin, guesser, &format!("guess-{guess}"))
            .await
            .assert_error(401, "UNAUTHORIZED", "admin_token_invalid");
    }
    let locked = admin_from(&admin, guesser, "guess-last").await;
    locked.assert_error(429, "TOO_MANY_REQUESTS", "admin_locked_out");
    let retry_after: u64 = locked.retry_after.as_deref().unwrap().parse().unwrap();
    assert_eq!(retry_after, ADMIN_LOCKOUT.as_secs());
    assert!(
        locked.hint().contains("Other addresses"),
        "{}",
        locked.hint()
    );
    // The lockout holds even for the right token from that address: guessing stops there.
    admin_from(&admin, guesser, ADMIN_TOKEN).await.assert_error(
        429,
        "TOO_MANY_REQUESTS",
        "admin_locked_out",
    );
    // The operator, elsewhere, is not refused.
    assert_eq!(
        admin_from(&admin, operator, ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
    // Probes never need the token and are never locked.
    let mut health = request("GET", "/healthz", &[], "");
    health
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            guesser, 40_000,
        ))));
    assert_eq!(send_to(&admin.router, health).await.status, StatusCode::OK);

    // The admin document says so.
    let doc = send_to(
        &admin.router,
        request("GET", "/openapi/admin.json", &[], ""),
    )
    .await;
    let responses = &doc.json["paths"]["/admin/instances"]["get"]["responses"];
    assert!(responses["429"].is_object(), "{responses:#}");
    assert!(doc.json["paths"]["/healthz"]["get"]["responses"]["429"].is_null());

    // Once the lockout has passed, the address is heard again.
    admin.app.advance(ADMIN_LOCKOUT - Duration::from_secs(1));
    let still = admin_from(&admin, guesser, ADMIN_TOKEN).await;
    assert_eq!(still.retry_after.as_deref(), Some("1"));
    admin.app.advance(Duration::from_secs(1));
    assert_eq!(
        admin_from(&admin, guesser, ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
}
