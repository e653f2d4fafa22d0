//! The mistakes real integrations make (docs/integration-mistakes.md, by number): each is refused
//! with the Flinks status, FlinksCode and Message it always had, a `Reason` of its own and a
//! `Hint` naming the cue the server saw, and never a credential echoed back.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use bankgate_core::model::InstanceKind;
use bankgate_server::error::Reason;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::support::{
    Reply, TOOLBOX_API_KEY, TOOLBOX_CUSTOMER, TOOLBOX_SECRET, TestApp, path, request,
    toolbox_customer,
};

/// Asserts the refusal, that its hint contains every cue, and that no credential is in the body.
#[track_caller]
fn refused(reply: &Reply, status: u16, code: &str, reason: &str, cues: &[&str]) {
    reply.assert_error(status, code, reason);
    for cue in cues {
        assert!(
            reply.hint().contains(cue),
            "hint of {reason} lacks {cue:?}: {}",
            reply.hint()
        );
    }
    let body = reply.json.to_string();
    for secret in [TOOLBOX_SECRET, TOOLBOX_API_KEY] {
        assert!(!body.contains(secret), "credential echoed: {body}");
    }
}

#[track_caller]
fn no_echo(reply: &Reply, credential: &str) {
    assert!(
        !reply.json.to_string().contains(credential),
        "credential echoed: {:#}",
        reply.json
    );
}

fn cached_body(login: impl std::fmt::Display) -> String {
    json!({ "LoginId": login.to_string(), "MostRecentCached": true }).to_string()
}

// --- The issue's cases ---

/// #23: the token in a body field, no header. The token stays unspent.
#[tokio::test]
async fn authorize_token_in_a_body_field() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    for field in ["Token", "AuthToken", "authorizeToken"] {
        let token = app.toolbox_token().await;
        let body = json!({ "LoginId": login.to_string(), "MostRecentCached": true, field: token });
        let reply = app
            .post(&path(TOOLBOX_CUSTOMER, "Authorize"), &[], &body.to_string())
            .await;
        refused(
            &reply,
            401,
            "ACCESS_DENIED",
            "authorize_token_in_body",
            &[&format!("`{field}`"), "`flinks-auth-key` header"],
        );
        assert_eq!(
            reply.json["Message"],
            "You must provide a valid authorize token"
        );
        no_echo(&reply, &token);
        let ok = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
        assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.json);
    }
}

/// #24: a credential in the query string, on the three kinds of endpoint.
#[tokio::test]
async fn credential_in_the_query_string() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            &format!(
                "{}?flinks-auth-key={TOOLBOX_SECRET}",
                path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken")
            ),
            &[],
            "",
        )
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "credential_in_query",
        &["query parameter `flinks-auth-key`", "header"],
    );
    assert_eq!(reply.json["Message"], "You must provide a valid auth key");

    let token = app.toolbox_token().await;
    let login = app.toolbox_login().await;
    let reply = app
        .post(
            &format!(
                "{}?authorizeToken={token}",
                path(TOOLBOX_CUSTOMER, "Authorize")
            ),
            &[],
            &cached_body(login),
        )
        .await;
    refused(
        &reply,
        401,
        "ACCESS_DENIED",
        "credential_in_query",
        &["`authorizeToken`"],
    );
    no_echo(&reply, &token);

    let reply = app
        .post(
            &format!(
                "{}?x-api-key={TOOLBOX_API_KEY}",
                path(TOOLBOX_CUSTOMER, "GetAccountsSummary")
            ),
            &[],
            r#"{"RequestId":"7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10"}"#,
        )
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "credential_in_query",
        &["`x-api-key`"],
    );
}

/// #4: a base URL with a path joined with a '/'-rooted path loses /v3/{customerId}.
#[tokio::test]
async fn base_path_dropped_by_url_resolution() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            "/BankingServices/GenerateAuthorizeToken",
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        )
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "path_prefix_missing",
        &["/v3/{customerId} was lost", "base URL"],
    );
}

/// #22: a token pasted with its quotes, the README's example token and its shortened form.
#[tokio::test]
async fn quoted_and_readme_tokens_are_named() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    let token = app.toolbox_token().await;
    let quoted = format!("\"{token}\"");
    let reply = app
        .post(&uri, &[("flinks-auth-key", &quoted)], &cached_body(login))
        .await;
    refused(
        &reply,
        401,
        "ACCESS_DENIED",
        "credential_malformed",
        &["quotes"],
    );
    no_echo(&reply, &token);
    // The quoted token was not spent: without the quotes it works.
    let ok = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.json);

    let reply = app
        .post(
            &uri,
            &[("flinks-auth-key", "9f32e159-4e18-4c61-91a9-9f6af436d812")],
            &cached_body(login),
        )
        .await;
    refused(
        &reply,
        401,
        "ACCESS_DENIED",
        "credential_malformed",
        &["README"],
    );

    // `9f32e159-…` as pasted from the README: not ASCII, so no header text at all.
    let mut shortened = request("POST", &uri, &[], &cached_body(login));
    shortened.headers_mut().insert(
        "flinks-auth-key",
        HeaderValue::from_bytes("9f32e159-…".as_bytes()).unwrap(),
    );
    let reply = app.send(shortened).await;
    refused(
        &reply,
        401,
        "ACCESS_DENIED",
        "credential_malformed",
        &["README"],
    );
}

/// After a wrong MFA answer the RequestId has ended; a retry without a token hears so.
#[tokio::test]
async fn a_retry_after_a_wrong_answer_hears_the_request_id_ended() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let uri = path(TOOLBOX_CUSTOMER, "Authorize");
    let connect =
        json!({"Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday"});
    let mfa = app
        .post(&uri, &[("flinks-auth-key", &token)], &connect.to_string())
        .await;
    assert_eq!(mfa.status.as_u16(), 203, "{:#}", mfa.json);
    let request_id = mfa.json["RequestId"].as_str().unwrap().to_owned();
    let prompt = mfa.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = json!({ "RequestId": request_id, "SecurityResponses": { prompt: ["Atlantis"] } });
    app.post(&uri, &[], &answer.to_string()).await.assert_error(
        401,
        "INVALID_SECURITY_RESPONSE",
        "security_response_invalid",
    );
    let retry = app.post(&uri, &[], &answer.to_string()).await;
    refused(
        &retry,
        400,
        "SESSION_NONEXISTENT",
        "request_id_unknown",
        &["a wrong answer", "new authorize token"],
    );
    assert_eq!(
        retry.json["Message"],
        format!("RequestId {request_id} is invalid or session has ended")
    );
}

/// #30: a customerId sent to another instance's host is not suggested back.
#[tokio::test]
async fn customer_not_found_does_not_suggest_the_customer_id_sent() {
    let app = TestApp::new().await;
    app.customer_on("acme", InstanceKind::Production).await;
    let mut request = request(
        "POST",
        &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
        &[("flinks-auth-key", TOOLBOX_SECRET)],
        "",
    );
    request
        .headers_mut()
        .insert(header::HOST, HeaderValue::from_static("acme-api.localhost"));
    let reply = app.send(request).await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "customer_not_found",
        &["the host"],
    );
    no_echo(&reply, TOOLBOX_CUSTOMER);
}

/// A bad body on /Authorize spends the token, and the hint says so.
#[tokio::test]
async fn a_body_error_on_authorize_says_the_token_is_spent() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            "{oops",
        )
        .await;
    refused(
        &reply,
        400,
        "INVALID_REQUEST",
        "body_not_json",
        &["now spent", "generate a new one"],
    );
    no_echo(&reply, &token);
    let login = app.toolbox_login().await;
    app.authorize(TOOLBOX_CUSTOMER, &token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

/// The 202s say in `Retry-After` when the data will be ready; the body stays Flinks'.
#[tokio::test]
async fn the_202_carries_retry_after() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "test_pending").await;
    let session = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id = session.json["RequestId"].as_str().unwrap().to_owned();
    let detail = || async {
        app.post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await
    };
    let first = detail().await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:#}", first.json);
    assert_eq!(first.retry_after.as_deref(), Some("10"));
    app.advance(Duration::from_millis(3_500));
    let later = detail().await;
    assert_eq!(later.status, StatusCode::ACCEPTED, "{:#}", later.json);
    assert_eq!(later.retry_after.as_deref(), Some("7"));
    app.advance(Duration::from_secs(7));
    assert_eq!(detail().await.status, StatusCode::OK);
}

/// The README's refusal table and `Reason::ALL` name the same Reasons.
#[test]
fn the_readme_lists_every_reason() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("### The refusals you will meet").unwrap();
    let section = &readme[start..];
    let end = section[4..].find("\n## ").map_or(section.len(), |i| i + 4);
    let mut listed = std::collections::BTreeSet::new();
    for row in section[..end].lines().filter(|l| l.starts_with('|')) {
        let reasons = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap_or_default();
        for (i, part) in reasons.split('`').enumerate() {
            if i % 2 == 1 {
                listed.insert(part.to_owned());
            }
        }
    }
    let declared: std::collections::BTreeSet<String> =
        Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let missing: Vec<_> = declared.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "Reasons missing from the README table: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "README lists Reasons the code lacks: {unknown:?}"
    );
}

// --- docs/integration-mistakes.md, credentials ---

/// #16: the secret key, or a token, in `flinks-auth-key` on a data endpoint.
#[tokio::test]
async fn a_secret_key_or_token_where_the_x_api_key_goes() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GetAccountsSummary");
    let body = r#"{"RequestId":"7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10"}"#;
    let reply = app
        .post(&uri, &[("flinks-auth-key", TOOLBOX_SECRET)], body)
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "auth_key_given_as_api_key",
        &["secret key", "`x-api-key`"],
    );
    assert_eq!(reply.json["Message"], "You must provide a valid x-api-key");
    let token = app.toolbox_token().await;
    for header in ["flinks-auth-key", "x-api-key"] {
        let reply = app.post(&uri, &[(header, &token)], body).await;
        refused(
            &reply,
            401,
            "UNAUTHORIZED",
            "token_given_as_api_key",
            &["authorize token", "`x-api-key`"],
        );
        no_echo(&reply, &token);
    }
}

/// #17, #18: the x-api-key sent to /Authorize, in either header.
#[tokio::test]
async fn the_x_api_key_where_the_token_goes() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    for header in ["x-api-key", "flinks-auth-key"] {
        let reply = app
            .post(
                &path(TOOLBOX_CUSTOMER, "Authorize"),
                &[(header, TOOLBOX_API_KEY)],
                &cached_body(login),
            )
            .await;
        refused(
            &reply,
            401,
            "ACCESS_DENIED",
            "api_key_given_as_token",
            &["x-api-key", "/GenerateAuthorizeToken"],
        );
    }
}

/// #19, #20: the x-api-key under `x-api-key` on GenerateAuthorizeToken; the secret key under
/// `Authorization: Bearer` next to another header: the one carrying the key is named.
#[tokio::test]
async fn misplaced_values_are_looked_up() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let reply = app.post(&uri, &[("x-api-key", TOOLBOX_API_KEY)], "").await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "api_key_given_as_auth_key",
        &["x-api-key", "secret key"],
    );
    let bearer = format!("Bearer {TOOLBOX_SECRET}");
    let reply = app
        .post(
            &uri,
            &[("x-api-key", "whatever"), ("authorization", &bearer)],
            "",
        )
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "wrong_auth_header",
        &["`authorization`", "`flinks-auth-key`"],
    );
}

/// #21: `Bearer ` inside the flinks-auth-key value.
#[tokio::test]
async fn a_scheme_prefix_inside_the_credential() {
    let app = TestApp::new().await;
    let bearer = format!("Bearer {TOOLBOX_SECRET}");
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", &bearer)],
            "",
        )
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "credential_scheme_prefix",
        &["'Bearer '", "`flinks-auth-key`"],
    );
}

/// #22: placeholders and values that are not UUIDs.
#[tokio::test]
async fn placeholder_and_truncated_credentials() {
    let app = TestApp::new().await;
    let uri = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    for (value, cue) in [
        ("your-secret-key", "placeholder"),
        ("<SECRET_KEY>", "placeholder"),
        ("undefined", "placeholder"),
        ("TheSecretKey", "not a UUID"),
        (&TOOLBOX_SECRET[..30], "not a UUID"),
    ] {
        let reply = app.post(&uri, &[("flinks-auth-key", value)], "").await;
        refused(&reply, 401, "UNAUTHORIZED", "credential_malformed", &[cue]);
    }
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsSummary"),
            &[("x-api-key", "your-api-key")],
            "{}",
        )
        .await;
    refused(
        &reply,
        401,
        "UNAUTHORIZED",
        "credential_malformed",
        &["`x-api-key`", "placeholder"],
    );
}

// --- docs/integration-mistakes.md, paths ---

async fn post_path(app: &TestApp, uri: &str) -> Reply {
    app.post(uri, &[("flinks-auth-key", TOOLBOX_SECRET)], "")
        .await
}

/// #2, #3: the customerId empty or left out.
#[tokio::test]
async fn customer_id_missing_from_the_path() {
    let app = TestApp::new().await;
    for uri in [
        "/v3//BankingServices/GenerateAuthorizeToken",
        "/v3/BankingServices/GenerateAuthorizeToken",
        "/v3/AccountsSummary",
    ] {
        let reply = post_path(&app, uri).await;
        refused(
            &reply,
            404,
            "INVALID_REQUEST",
            "customer_id_missing",
            &["customerId", "/v3/"],
        );
    }
}

/// #5: no /v3, or /v3 twice.
#[tokio::test]
async fn version_segment_missing_or_doubled() {
    let app = TestApp::new().await;
    for (uri, cue) in [
        (
            format!("/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken"),
            "no /v3",
        ),
        (
            format!("/v3/v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken"),
            "/v3 twice",
        ),
    ] {
        let reply = post_path(&app, &uri).await;
        refused(
            &reply,
            404,
            "INVALID_REQUEST",
            "version_segment_wrong",
            &[cue],
        );
    }
}

/// #6: placeholders where an id goes.
#[tokio::test]
async fn placeholders_in_the_path() {
    let app = TestApp::new().await;
    for customer in ["undefined", "%7BcustomerId%7D", "null"] {
        let reply = post_path(&app, &path(customer, "GenerateAuthorizeToken")).await;
        refused(
            &reply,
            401,
            "UNAUTHORIZED",
            "path_placeholder",
            &["customerId", "placeholder"],
        );
        assert_eq!(reply.json["Message"], "You must provide a valid auth key");
    }
    let poll = format!(
        "{}/undefined",
        path(TOOLBOX_CUSTOMER, "GetAccountsDetailAsync")
    );
    let reply = app
        .send(request("GET", &poll, &[("x-api-key", TOOLBOX_API_KEY)], ""))
        .await;
    refused(
        &reply,
        400,
        "SESSION_NONEXISTENT",
        "request_id_malformed",
        &["placeholder"],
    );
    let delete = format!("{}/undefined", path(TOOLBOX_CUSTOMER, "DeleteCard"));
    let reply = app
        .send(request(
            "DELETE",
            &delete,
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        ))
        .await;
    refused(
        &reply,
        400,
        "INVALID_LOGIN",
        "path_placeholder",
        &["LoginId"],
    );
}

/// #7, #8, #9, #12: the endpoint segment.
#[tokio::test]
async fn endpoint_names_gone_wrong() {
    let app = TestApp::new().await;
    let reply = post_path(&app, &path(TOOLBOX_CUSTOMER, "GetAccountsDetail%20")).await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "endpoint_name_whitespace",
        &["GetAccountsDetail", "whitespace"],
    );
    let login = app.toolbox_login().await;
    let glued = path(TOOLBOX_CUSTOMER, &format!("DeleteCard{login}"));
    let reply = app
        .send(request(
            "DELETE",
            &glued,
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        ))
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "endpoint_id_missing_slash",
        &["DeleteCard", "put a '/'"],
    );
    for (name, cue) in [
        (
            "GetAccountsSummaryAsyncAsync",
            "did you mean GetAccountsSummaryAsync?",
        ),
        ("AccountsDetail", "rel name in Links"),
    ] {
        let reply = post_path(&app, &path(TOOLBOX_CUSTOMER, name)).await;
        refused(&reply, 404, "INVALID_REQUEST", "unknown_endpoint", &[cue]);
    }
    // Flinks endpoints bankgate does not serve yet are not called typos (#9, third form).
    for name in [
        "Institutions",
        "institutions",
        "GetWealthNightlyRefreshStatus",
    ] {
        let reply = post_path(&app, &path(TOOLBOX_CUSTOMER, name)).await;
        refused(
            &reply,
            404,
            "INVALID_REQUEST",
            "endpoint_not_served",
            &["does not serve yet", "GenerateAuthorizeToken"],
        );
    }
    let empty_id = format!("{}/", path(TOOLBOX_CUSTOMER, "GetAccountsDetailAsync"));
    let reply = app
        .send(request(
            "GET",
            &empty_id,
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        ))
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "empty_path_segment",
        &["no id after it"],
    );
}

// --- docs/integration-mistakes.md, bodies and ids ---

/// #31: a RequestId of the caller's own making.
#[tokio::test]
async fn a_request_id_that_is_not_a_uuid() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            r#"{"RequestId":"req-1769028467"}"#,
        )
        .await;
    refused(
        &reply,
        400,
        "SESSION_NONEXISTENT",
        "request_id_malformed",
        &["not a UUID"],
    );
    assert_eq!(
        reply.json["Message"],
        "RequestId req-1769028467 is invalid or session has ended"
    );
}

/// #32: a LoginId given to a data endpoint.
#[tokio::test]
async fn a_login_id_given_to_a_data_endpoint() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "LoginId": login.to_string() }).to_string(),
        )
        .await;
    refused(
        &reply,
        400,
        "INVALID_REQUEST",
        "login_id_given_to_data_endpoint",
        &["LoginId", "/Authorize"],
    );
}

/// A request Flinks accepts is still accepted: a token next to a body field, extra headers.
#[tokio::test]
async fn valid_requests_with_extra_cues_are_still_accepted() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let body =
        json!({ "LoginId": login.to_string(), "MostRecentCached": true, "authorizeToken": token });
    let request = Request::builder()
        .method("POST")
        .uri(format!("{}?debug=1", path(TOOLBOX_CUSTOMER, "Authorize")))
        .header("flinks-auth-key", &token)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
}

/// #10: a RequestId in the path of a synchronous data endpoint.
#[tokio::test]
async fn a_request_id_in_the_path_of_a_synchronous_endpoint() {
    let app = TestApp::new().await;
    let uri = format!(
        "{}/7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10?DaysOfTransactions=Days90",
        path(TOOLBOX_CUSTOMER, "GetAccountsDetail")
    );
    let reply = app
        .send(request("GET", &uri, &[("x-api-key", TOOLBOX_API_KEY)], ""))
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "request_id_in_path",
        &["JSON body", "GetAccountsDetailAsync"],
    );
}

/// #34: a field of the wrong type is named.
#[tokio::test]
async fn a_field_of_the_wrong_type_is_named() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            r#"{"RequestId":"7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10","DaysOfTransactions":90}"#,
        )
        .await;
    refused(
        &reply,
        400,
        "INVALID_REQUEST",
        "body_invalid",
        &["DaysOfTransactions", "the number 90"],
    );
}

/// #39: a form-encoded body.
#[tokio::test]
async fn a_form_encoded_body_is_named() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let login = app.toolbox_login().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &format!("LoginId={login}&MostRecentCached=true"),
        )
        .await;
    refused(
        &reply,
        400,
        "INVALID_REQUEST",
        "body_not_json",
        &["form-encoded", "application/json", "now spent"],
    );
}

/// #33, #40: fields the endpoint does not read are accepted, as Flinks accepts them, and named
/// in a response header, so `most_recent_cached` (a live refresh instead of a cached read) shows.
#[tokio::test]
async fn ignored_fields_are_named_in_a_header() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "greatday_nomfa").await;
    let token = app.toolbox_token().await;
    let cached = request(
        "POST",
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", &token)],
        &json!({ "loginId": login.to_string(), "most_recent_cached": true }).to_string(),
    );
    let response = app.router.clone().oneshot(cached).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-bankgate-ignored-fields"],
        "most_recent_cached"
    );
    let request_id = {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["RequestId"].as_str().unwrap().to_owned()
    };
    let statements = request(
        "POST",
        &path(TOOLBOX_CUSTOMER, "GetStatements"),
        &[("x-api-key", TOOLBOX_API_KEY)],
        &json!({ "RequestId": request_id, "NumberOfBankingStatements": "Months3" }).to_string(),
    );
    let response = app.router.clone().oneshot(statements).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-bankgate-ignored-fields"],
        "NumberOfBankingStatements"
    );
    // Nothing ignored, no header.
    let reply = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// #13: `{instance}.{domain}` for an existing instance, the `-api` left out: refused, the hint
/// naming the host seen and the right one. Names that are no instance and `*.localhost` stay bare.
#[tokio::test]
async fn a_host_without_the_api_suffix() {
    let app = TestApp::new().await;
    let token_path = path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    let reply = app
        .post(
            &token_path,
            &[
                ("host", "toolbox.private.fin.ag"),
                ("flinks-auth-key", TOOLBOX_SECRET),
            ],
            "",
        )
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "host_missing_api_suffix",
        &["toolbox.private.fin.ag", "toolbox-api.private.fin.ag"],
    );
    // The Connect page on such a host is sent to the -iframe host.
    let reply = app
        .send(request(
            "GET",
            "/v2/?demo=true",
            &[("host", "Toolbox.example.test:8443")],
            "",
        ))
        .await;
    refused(
        &reply,
        404,
        "INVALID_REQUEST",
        "host_missing_api_suffix",
        &["toolbox.example.test", "toolbox-iframe.example.test"],
    );
    for host in [
        "toolbox.localhost:8080",
        "bankgate.internal",
        "acme.example.test",
    ] {
        let reply = app
            .post(
                &token_path,
                &[("host", host), ("flinks-auth-key", TOOLBOX_SECRET)],
                "",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {:#}", reply.json);
    }
}

/// #29: a redirectUrl with its own query, not encoded: the page still opens (Flinks' would), and
/// posts a `BANKGATE_WARNING` naming the parameters the redirect lost. An encoded one does not.
#[tokio::test]
async fn a_redirect_url_not_encoded() {
    use crate::connect::{IFRAME, open};
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!(
            "demo=true&redirectUrl=https://fintech.test/done?connection_id=7&user=3&authorizeToken={token}"
        ),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.steps()[..2], ["APP_MOUNTED", "BANKGATE_WARNING"]);
    let warning = &page.events()[1];
    assert_eq!(warning["reason"], "redirect_url_not_encoded");
    let hint = warning["hint"].as_str().unwrap();
    for cue in ["cut at its own '?'", "`user`", "encodeURIComponent"] {
        assert!(hint.contains(cue), "{cue:?} not in {hint}");
    }
    assert!(!hint.contains(&token));
    assert_eq!(page.steps()[2], "COMPONENT_LOAD_CONSENT");

    let encoded = "https%3A%2F%2Ffintech.test%2Fdone%3Fconnection_id%3D7%26user%3D3";
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!("demo=true&redirectUrl={encoded}&authorizeToken={token}"),
        None,
    )
    .await;
    assert_eq!(page.steps(), ["APP_MOUNTED", "COMPONENT_LOAD_CONSENT"]);
}

/// #27: no token at all on /Authorize (the pre-October-2024 habit): the hint says why one is
/// needed, not only where it goes.
#[tokio::test]
async fn no_authorize_token_at_all() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[],
            &cached_body(login),
        )
        .await;
    refused(
        &reply,
        401,
        "ACCESS_DENIED",
        "authorize_token_missing",
        &[
            "`flinks-auth-key` header",
            "every /Authorize call needs its own single-use token",
            "/GenerateAuthorizeToken",
            "October 2024",
        ],
    );
    assert_eq!(
        reply.json["Message"],
        "You must provide a valid authorize token"
    );
}

/// #30: a LoginId another sandbox instance issued, used on this one, names that instance
/// (Authorize cached and live refresh, DeleteCard, with the status and code of an unknown
/// LoginId); a production instance's LoginId, or one used on production, stays login_not_found.
#[tokio::test]
async fn a_login_id_of_another_instance() {
    let app = TestApp::new().await;
    let (staging, staging_secret, staging_api_key) =
        app.customer_on("staging", InstanceKind::Sandbox).await;
    let staging_login = app.login(staging, "Greatday").await;

    // Used on the toolbox: named.
    let token = app.toolbox_token().await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &token, staging_login).await;
    refused(
        &reply,
        401,
        "INVALID_LOGIN",
        "wrong_environment",
        &["`staging` instance", "staging-api hosts"],
    );
    assert_eq!(reply.json["Message"], "LoginId not found or invalid");
    let token = app.toolbox_token().await;
    let refresh = json!({ "LoginId": staging_login.to_string(), "MostRecentCached": false });
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &refresh.to_string(),
        )
        .await;
    refused(
        &reply,
        401,
        "INVALID_LOGIN",
        "wrong_environment",
        &["`staging`"],
    );
    let reply = app
        .delete_card(
            TOOLBOX_CUSTOMER,
            TOOLBOX_API_KEY,
            &staging_login.to_string(),
        )
        .await;
    refused(
        &reply,
        400,
        "INVALID_LOGIN",
        "wrong_environment",
        &["`staging`"],
    );
    assert_eq!(reply.json["Message"], "Invalid LoginId");
    // Nothing was deleted on staging: the LoginId still opens a session there.
    let token = app.generate_token_for(staging, &staging_secret).await;
    let ok = app.authorize(staging, &token, staging_login).await;
    assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.json);
    let _ = staging_api_key;

    // A production instance's LoginId on the toolbox, and a sandbox's on production: silent.
    let (acme, acme_secret, _) = app.customer_on("acme", InstanceKind::Production).await;
    // Production has no sandbox bank, so its LoginId is written to the store directly.
    let acme_login = bankgate_core::LoginId::new_random();
    app.state
        .store
        .create_login(&bankgate_core::model::Login {
            id: acme_login,
            customer_id: acme,
            institution: "SomeBank".to_owned(),
            username: "someone".to_owned(),
            login_type: bankgate_core::model::LoginType::Personal,
            is_scheduled_refresh: false,
            last_refresh: crate::support::START,
            created_at: crate::support::START,
            language: bankgate_core::model::Language::En,
            saved: true,
        })
        .await
        .unwrap();
    let token = app.toolbox_token().await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &token, acme_login).await;
    refused(&reply, 401, "INVALID_LOGIN", "login_not_found", &[]);
    assert!(!reply.hint().contains("acme"), "{}", reply.hint());
    let token = app.generate_token_for(acme, &acme_secret).await;
    let reply = app.authorize(acme, &token, staging_login).await;
    refused(&reply, 401, "INVALID_LOGIN", "login_not_found", &[]);
    assert!(!reply.hint().contains("staging"), "{}", reply.hint());
}
