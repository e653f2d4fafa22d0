//! The OpenAPI documents: served, covering every route, and true to what the handlers answer
//! (real responses validated against the documented schemas).

use axum::Router;
use axum::http::StatusCode;
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use bankgate_server::openapi::{admin_openapi, public_openapi};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

fn document(doc: impl serde::Serialize) -> Value {
    serde_json::to_value(doc).unwrap()
}

/// Validates `body` against what `doc` says `method path` answers with `status`.
#[track_caller]
fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented: {body:#}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    // The schema's $refs point into the document's components.
    let root = json!({ "allOf": [schema], "components": doc["components"] });
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} breaks the document: {errors:?}\n{body:#}"
    );
}

const GAT: &str = "/v3/{customerId}/BankingServices/GenerateAuthorizeToken";
const AUTHORIZE: &str = "/v3/{customerId}/BankingServices/Authorize";
const SUMMARY: &str = "/v3/{customerId}/BankingServices/GetAccountsSummary";
const DETAIL: &str = "/v3/{customerId}/BankingServices/GetAccountsDetail";
const DETAIL_ASYNC: &str = "/v3/{customerId}/BankingServices/GetAccountsDetailAsync/{requestId}";
const STATEMENTS: &str = "/v3/{customerId}/BankingServices/GetStatements";
const DELETE_CARD: &str = "/v3/{customerId}/BankingServices/DeleteCard/{loginId}";
const AUTHORIZE_ASYNC: &str = "/v3/{customerId}/BankingServices/AuthorizeAsync";
const STATEMENTS_ASYNC: &str = "/v3/{customerId}/BankingServices/GetStatementsAsync/{requestId}";

#[test]
fn the_public_document_lists_every_endpoint_and_only_those() {
    let doc = document(public_openapi());
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    // The endpoints as declared once in the server (name, path, credential).
    let mut expected: Vec<&str> = bankgate_server::Endpoint::ALL
        .iter()
        .map(|endpoint| endpoint.path())
        .collect();
    expected.sort_unstable();
    assert_eq!(paths, expected);
    for path in [
        GAT,
        AUTHORIZE,
        SUMMARY,
        DETAIL,
        DETAIL_ASYNC,
        STATEMENTS,
        DELETE_CARD,
    ] {
        assert!(paths.contains(&path), "{path}");
    }
    // Both methods of the Async polls.
    for method in ["get", "post"] {
        assert!(doc["paths"][DETAIL_ASYNC][method].is_object(), "{method}");
    }
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
}

#[test]
fn the_admin_document_lists_every_admin_route() {
    let doc = document(admin_openapi());
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    routes.sort();
    let mut expected = vec![
        "get /healthz",
        "get /readyz",
        "get /metrics",
        "get /admin/instances",
        "post /admin/instances",
        "get /admin/instances/{name}",
        "post /admin/instances/{name}/reset",
        "get /admin/instances/{name}/clock",
        "post /admin/instances/{name}/clock/advance",
        "post /admin/instances/{name}/clock/reset",
        "get /admin/customers",
        "post /admin/customers",
        "post /admin/customers/{customerId}/rotate-keys",
        "post /admin/customers/{customerId}/logins",
        "get /admin/customers/{customerId}/logins/{loginId}",
        "delete /admin/customers/{customerId}/logins/{loginId}",
        "post /admin/tokens/inspect",
        "get /admin/requests",
        "get /admin/lockouts",
        "delete /admin/lockouts",
        "post /admin/customers/{customerId}/logins/{loginId}/failures",
        "get /admin/customers/{customerId}/logins/{loginId}/failures",
        "delete /admin/customers/{customerId}/logins/{loginId}/failures",
        "post /admin/customers/{customerId}/failures",
        "get /admin/customers/{customerId}/failures",
        "delete /admin/customers/{customerId}/failures",
        "post /admin/instances/{name}/faults",
        "get /admin/instances/{name}/faults",
        "delete /admin/instances/{name}/faults",
        "get /admin/instances/{name}/webhook",
        "put /admin/instances/{name}/webhook",
        "delete /admin/instances/{name}/webhook",
        "post /admin/instances/{name}/webhook/rotate-secret",
        "get /admin/instances/{name}/webhook/deliveries",
        "post /admin/instances/{name}/webhook/deliveries/{id}/replay",
    ];
    expected.sort_unstable();
    assert_eq!(routes, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_documents_are_served_on_both_listeners() {
    let app = TestApp::new().await;
    let public = send_to(&app.router, request("GET", "/openapi.json", &[], "")).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.json, document(public_openapi()));
    let admin: Router = admin_app(app.state.clone(), None);
    for (path, doc) in [
        ("/openapi/public.json", public_openapi()),
        ("/openapi/admin.json", admin_openapi()),
    ] {
        let served = send_to(&admin, request("GET", path, &[], "")).await;
        assert_eq!(served.status, StatusCode::OK, "{path}");
        assert_eq!(served.json, document(doc), "{path}");
    }
}

#[tokio::test]
async fn what_the_flinks_endpoints_answer_matches_the_document() {
    let doc = document(public_openapi());
    let app = TestApp::new().await;
    let customer = TOOLBOX_CUSTOMER;

    // GenerateAuthorizeToken: 200 and 401.
    let issued = app
        .post(
            &path(customer, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        )
        .await;
    assert_conforms(&doc, "post", GAT, 200, &issued.json);
    let refused = app
        .post(&path(customer, "GenerateAuthorizeToken"), &[], "")
        .await;
    assert_conforms(&doc, "post", GAT, 401, &refused.json);

    // Authorize: cached 200, live 203, bad JSON 400, unknown RequestId 400.
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let opened = app.authorize(customer, &token, login).await;
    assert_conforms(&doc, "post", AUTHORIZE, 200, &opened.json);
    let challenge = app
        .post(
            &path(customer, "Authorize"),
            &[("flinks-auth-key", &app.toolbox_token().await)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"Everyday"}"#,
        )
        .await;
    assert_eq!(challenge.status.as_u16(), 203);
    assert_conforms(&doc, "post", AUTHORIZE, 203, &challenge.json);
    let bad = app
        .post(
            &path(customer, "Authorize"),
            &[("flinks-auth-key", "x")],
            "{",
        )
        .await;
    assert_conforms(&doc, "post", AUTHORIZE, 400, &bad.json);
    let unknown = app
        .post(
            &path(customer, "Authorize"),
            &[],
            r#"{"RequestId":"00000000-0000-4000-8000-000000000000","SecurityResponses":{}}"#,
        )
        .await;
    assert_conforms(
        &doc,
        "post",
        AUTHORIZE,
        unknown.status.as_u16(),
        &unknown.json,
    );
    let big = format!(r#"{{"Tag":"{}"}}"#, "x".repeat(70 * 1024));
    let too_large = app
        .post(
            &path(customer, "Authorize"),
            &[("flinks-auth-key", &app.toolbox_token().await)],
            &big,
        )
        .await;
    assert_eq!(too_large.status.as_u16(), 413);
    assert_conforms(&doc, "post", AUTHORIZE, 413, &too_large.json);

    // The data endpoints: 200 with everything asked, and a 401 without the x-api-key.
    let request_id = opened.json["RequestId"].as_str().unwrap();
    let everything = json!({
        "RequestId": request_id, "WithAccountIdentity": true, "WithKYC": true,
        "WithTransactions": true, "WithBalance": true, "DaysOfTransactions": "Days365",
    })
    .to_string();
    let api_key = [("x-api-key", TOOLBOX_API_KEY)];
    let detail = app
        .post(&path(customer, "GetAccountsDetail"), &api_key, &everything)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{:#}", detail.json);
    assert_conforms(&doc, "post", DETAIL, 200, &detail.json);
    let summary = app
        .post(&path(customer, "GetAccountsSummary"), &api_key, &everything)
        .await;
    assert_conforms(&doc, "post", SUMMARY, 200, &summary.json);
    let statements = app
        .post(&path(customer, "GetStatements"), &api_key, &everything)
        .await;
    assert_eq!(statements.status, StatusCode::OK, "{:#}", statements.json);
    assert_conforms(&doc, "post", STATEMENTS, 200, &statements.json);
    let no_key = app
        .post(&path(customer, "GetAccountsDetail"), &[], &everything)
        .await;
    assert_conforms(&doc, "post", DETAIL, 401, &no_key.json);

    // The 202 of a long operation, and its poll.
    let pending_login = app.login(toolbox_customer(), "test_pending").await;
    let pending_open = app
        .authorize(customer, &app.toolbox_token().await, pending_login)
        .await;
    let pending_request = pending_open.json["RequestId"].as_str().unwrap();
    let pending = app
        .post(
            &path(customer, "GetAccountsDetail"),
            &api_key,
            &json!({ "RequestId": pending_request }).to_string(),
        )
        .await;
    assert_eq!(pending.status.as_u16(), 202, "{:#}", pending.json);
    assert_conforms(&doc, "post", DETAIL, 202, &pending.json);
    let poll = app
        .send(request(
            "GET",
            &format!(
                "{}/{pending_request}",
                path(customer, "GetAccountsDetailAsync")
            ),
            &api_key,
            "",
        ))
        .await;
    assert_conforms(&doc, "get", DETAIL_ASYNC, poll.status.as_u16(), &poll.json);
    let statements_poll = app
        .send(request(
            "GET",
            &format!("{}/{pending_request}", path(customer, "GetStatementsAsync")),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(statements_poll.status.as_u16(), 202);
    assert_conforms(&doc, "get", STATEMENTS_ASYNC, 202, &statements_poll.json);
    app.advance(std::time::Duration::from_secs(10));
    let statements_ready = app
        .send(request(
            "POST",
            &format!("{}/{pending_request}", path(customer, "GetStatementsAsync")),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(statements_ready.status, StatusCode::OK);
    assert_conforms(&doc, "post", STATEMENTS_ASYNC, 200, &statements_ready.json);

    // AuthorizeAsync: the 202, then the 203 and 200 of its polls, and a refused poll.
    let started = app
        .post(
            &path(customer, "AuthorizeAsync"),
            &[("flinks-auth-key", &app.toolbox_token().await)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"Everyday"}"#,
        )
        .await;
    assert_eq!(started.status.as_u16(), 202);
    assert_conforms(&doc, "post", AUTHORIZE_ASYNC, 202, &started.json);
    let async_request = started.json["RequestId"].as_str().unwrap().to_owned();
    app.advance(std::time::Duration::from_secs(2));
    let poll_body = json!({ "RequestId": async_request }).to_string();
    let challenge = app
        .post(&path(customer, "AuthorizeAsync"), &[], &poll_body)
        .await;
    assert_eq!(challenge.status.as_u16(), 203);
    assert_conforms(&doc, "post", AUTHORIZE_ASYNC, 203, &challenge.json);
    let no_mfa = app
        .post(
            &path(customer, "AuthorizeAsync"),
            &[("flinks-auth-key", &app.toolbox_token().await)],
            r#"{"Institution":"FlinksCapital","Username":"greatday_nomfa","Password":"Everyday"}"#,
        )
        .await;
    app.advance(std::time::Duration::from_secs(2));
    let authorized = app
        .post(
            &path(customer, "AuthorizeAsync"),
            &[],
            &json!({ "RequestId": no_mfa.json["RequestId"] }).to_string(),
        )
        .await;
    assert_eq!(authorized.status, StatusCode::OK);
    assert_conforms(&doc, "post", AUTHORIZE_ASYNC, 200, &authorized.json);
    let unknown_poll = app
        .post(
            &path(customer, "AuthorizeAsync"),
            &[],
            r#"{"RequestId":"00000000-0000-4000-8000-000000000000"}"#,
        )
        .await;
    assert_conforms(&doc, "post", AUTHORIZE_ASYNC, 400, &unknown_poll.json);

    // DeleteCard: 200, then 400 for the same LoginId.
    let deleted = app
        .delete_card(customer, TOOLBOX_API_KEY, &login.to_string())
        .await;
    assert_conforms(&doc, "delete", DELETE_CARD, 200, &deleted.json);
    let again = app
        .delete_card(customer, TOOLBOX_API_KEY, &login.to_string())
        .await;
    assert_conforms(&doc, "delete", DELETE_CARD, 400, &again.json);
}

#[tokio::test]
async fn what_the_admin_api_answers_matches_the_document() {
    let doc = document(admin_openapi());
    let app = TestApp::new().await;
    let router = admin_app(app.state.clone(), Some(AdminToken::new("t")));
    let call = |method: &'static str, uri: String, body: &'static str| {
        let router = router.clone();
        async move {
            send_to(
                &router,
                request(method, &uri, &[("authorization", "Bearer t")], body),
            )
            .await
        }
    };
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("get", "/healthz", "/healthz".into(), ""),
        ("get", "/readyz", "/readyz".into(), ""),
        ("get", "/admin/instances", "/admin/instances".into(), ""),
        (
            "post",
            "/admin/instances",
            "/admin/instances".into(),
            r#"{"name":"acme","kind":"sandbox"}"#,
        ),
        (
            "post",
            "/admin/instances",
            "/admin/instances".into(),
            r#"{"name":"acme","kind":"sandbox"}"#,
        ),
        (
            "get",
            "/admin/instances/{name}",
            "/admin/instances/toolbox".into(),
            "",
        ),
        (
            "post",
            "/admin/instances/{name}/clock/advance",
            "/admin/instances/toolbox/clock/advance".into(),
            r#"{"seconds":60}"#,
        ),
        (
            "get",
            "/admin/instances/{name}/clock",
            "/admin/instances/nowhere/clock".into(),
            "",
        ),
        (
            "post",
            "/admin/instances/{name}/clock/reset",
            "/admin/instances/toolbox/clock/reset".into(),
            "",
        ),
        (
            "post",
            "/admin/customers",
            "/admin/customers".into(),
            r#"{"instance":"acme"}"#,
        ),
        (
            "get",
            "/admin/customers",
            "/admin/customers?instance=acme".into(),
            "",
        ),
        (
            "post",
            "/admin/customers/{customerId}/rotate-keys",
            format!("/admin/customers/{TOOLBOX_CUSTOMER}/rotate-keys"),
            r#"{"graceSeconds":3600}"#,
        ),
        (
            "post",
            "/admin/customers/{customerId}/logins",
            format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins"),
            r#"{"username":"Greatday"}"#,
        ),
        (
            "post",
            "/admin/tokens/inspect",
            "/admin/tokens/inspect".into(),
            r#"{"token":"nope"}"#,
        ),
        (
            "post",
            "/admin/instances/{name}/reset",
            "/admin/instances/toolbox/reset".into(),
            "",
        ),
    ];
    for (method, template, uri, body) in cases {
        let reply = call(if method == "get" { "GET" } else { "POST" }, uri, body).await;
        assert_conforms(&doc, method, template, reply.status.as_u16(), &reply.json);
    }
    // A token issued through the public API, then inspected.
    let token = app.toolbox_token().await;
    let body: &'static str = Box::leak(format!(r#"{{"token":"{token}"}}"#).into_boxed_str());
    let inspected = call("POST", "/admin/tokens/inspect".into(), body).await;
    assert_conforms(&doc, "post", "/admin/tokens/inspect", 200, &inspected.json);
    let login = app.toolbox_login().await;
    let state = call(
        "GET",
        format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins/{login}"),
        "",
    )
    .await;
    assert_conforms(
        &doc,
        "get",
        "/admin/customers/{customerId}/logins/{loginId}",
        200,
        &state.json,
    );
    // A lockout, listed and lifted.
    for _ in 0..10 {
        app.post(
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", "00000000-0000-4000-8000-000000000000")],
            "",
        )
        .await;
    }
    for (method, uri, status) in [
        ("GET", "/admin/lockouts?client=nope", 400),
        ("GET", "/admin/lockouts", 200),
        ("DELETE", "/admin/lockouts?customerId=x", 400),
        ("DELETE", "/admin/lockouts", 200),
    ] {
        let reply = call(method, uri.into(), "").await;
        assert_eq!(reply.status.as_u16(), status, "{:#}", reply.json);
        let listed = reply.json.as_array().map_or(1, Vec::len);
        assert_eq!(listed, 1, "{:#}", reply.json);
        assert_conforms(
            &doc,
            &method.to_lowercase(),
            "/admin/lockouts",
            status,
            &reply.json,
        );
    }
}

/// The checker above can fail: a body off the document is caught.
#[test]
#[should_panic(expected = "breaks the document")]
fn a_body_that_breaks_the_document_is_caught() {
    let doc = document(public_openapi());
    assert_conforms(
        &doc,
        "post",
        GAT,
        200,
        &json!({ "HttpStatusCode": 200, "Token": 42 }),
    );
}

/// A concrete path for a documented template (any value will do: only routing is checked).
fn concrete(template: &str) -> String {
    template
        .replace("{customerId}", TOOLBOX_CUSTOMER)
        .replace("{requestId}", "00000000-0000-4000-8000-000000000000")
        .replace("{loginId}", "00000000-0000-4000-8000-000000000000")
        .replace("{name}", "toolbox")
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Sends every method to every documented path: a documented operation must reach a handler
/// (never the router's generic answers), and an undocumented method must be the router's 405
/// (so no route serves anything the document does not show).
async fn assert_router_matches_document(
    router: &Router,
    doc: &Value,
    headers: &[(&str, &str)],
    generic: &[&str],
) {
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    for (template, operations) in paths {
        for method in METHODS {
            let uri = concrete(template);
            let response = router
                .clone()
                .oneshot(request(method, &uri, headers, ""))
                .await
                .unwrap();
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            // Not every answer is JSON (/metrics is text): only envelopes carry a Reason.
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reason = json["Reason"].as_str().unwrap_or_default();
            if operations.get(method.to_lowercase()).is_some() {
                assert!(
                    !generic.contains(&reason),
                    "{method} {template} is documented but no handler answers: {json:#}"
                );
            } else {
                assert_eq!(
                    (status, reason),
                    (405, "method_not_allowed"),
                    "{method} {template} is not documented: {json:#}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_documented_flinks_operation_has_a_handler_and_nothing_else_does() {
    let doc = document(public_openapi());
    let app = TestApp::new().await;
    let generic = [
        "unknown_path",
        "unknown_endpoint",
        "path_wrong_shape",
        "method_not_allowed",
    ];
    assert_router_matches_document(&app.router, &doc, &[], &generic).await;
}

#[tokio::test]
async fn every_documented_admin_operation_has_a_handler_and_nothing_else_does() {
    let doc = document(admin_openapi());
    let app = TestApp::with(|settings| settings.admin_token = Some("t".to_owned())).await;
    let generic = ["admin_route_unknown", "method_not_allowed"];
    assert_router_matches_document(&app.admin, &doc, &[("authorization", "Bearer t")], &generic)
        .await;
}

/// The checker above can fail: a route the document does not show is caught.
#[tokio::test]
#[should_panic(expected = "is not documented")]
async fn an_undocumented_route_is_caught() {
    let app = TestApp::new().await;
    let mut doc = document(public_openapi());
    let detail_async = doc["paths"][DETAIL_ASYNC].as_object_mut().unwrap();
    detail_async.remove("post");
    assert_router_matches_document(&app.router, &doc, &[], &["unknown_path"]).await;
}

#[test]
fn operation_ids_are_unique_and_both_documents_name_a_server() {
    for doc in [document(public_openapi()), document(admin_openapi())] {
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|operations| operations.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operationIds in {ids:?}");
        let url = doc["servers"][0]["url"].as_str().unwrap_or_default();
        assert!(url.starts_with("http://"), "{:#}", doc["servers"]);
    }
    let public = document(public_openapi());
    assert_eq!(
        public["paths"][DETAIL_ASYNC]["get"]["operationId"],
        "GetAccountsDetailAsync"
    );
    assert_eq!(
        public["paths"][DETAIL_ASYNC]["post"]["operationId"],
        "GetAccountsDetailAsyncPost"
    );
    assert_eq!(
        public["paths"][GAT]["post"]["operationId"],
        "GenerateAuthorizeToken"
    );
}
