//! `POST /AuthorizeAsync` (credentials, a LoginId, MFA answers, polls on the instance's clock)
//! and `GetStatementsAsync/{requestId}`: what a client sees at each step, and every refusal.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use bankgate_core::InstanceName;
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use serde_json::{Value, json};

use crate::support::*;

const ADMIN_TOKEN: &str = "async-admin-token";

fn async_uri() -> String {
    path(TOOLBOX_CUSTOMER, "AuthorizeAsync")
}

fn credentials(username: &str, password: &str) -> String {
    json!({
        "Institution": "FlinksCapital",
        "Username": username,
        "Password": password,
        "MostRecentCached": false,
        "Save": true,
    })
    .to_string()
}

fn answer_to(prompt: &str) -> &'static str {
    match prompt {
        "What city were you born in?" => "Montreal",
        "What is the best country on earth?" => "Canada",
        "What shape do people like most?" => "Triangle",
        other => panic!("unexpected prompt {other:?}"),
    }
}

fn request_id_of(reply: &Reply) -> String {
    reply.json["RequestId"]
        .as_str()
        .unwrap_or_else(|| panic!("no RequestId in {:#}", reply.json))
        .to_owned()
}

/// The 202 of a step that is not ready, exactly as decided (docs/flinks-wire.md,
/// "AuthorizeAsync").
#[track_caller]
fn assert_pending(reply: &Reply, request_id: &str) {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.json);
    assert_envelope(reply);
    assert_eq!(
        reply.json,
        json!({
            "HttpStatusCode": 202,
            "FlinksCode": "OPERATION_PENDING",
            "Message": "Your operation is still processing",
            "RequestId": request_id,
            "Links": [{ "rel": "AuthorizeAsync", "href": "/AuthorizeAsync", "example": null }],
        })
    );
}

impl TestApp {
    async fn start_async(&self, token: Option<&str>, body: &str) -> Reply {
        let headers: Vec<(&str, &str)> =
            token.map(|t| ("flinks-auth-key", t)).into_iter().collect();
        self.post(&async_uri(), &headers, body).await
    }

    async fn poll_async(&self, request_id: &str) -> Reply {
        self.post(
            &async_uri(),
            &[],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await
    }

    async fn answer_async(&self, token: Option<&str>, request_id: &str, responses: Value) -> Reply {
        let body = json!({ "RequestId": request_id, "SecurityResponses": responses }).to_string();
        self.start_async(token, &body).await
    }

    /// Polls after the step's 2 seconds, on the test clock.
    async fn poll_when_ready(&self, request_id: &str) -> Reply {
        self.advance(Duration::from_secs(2));
        self.poll_async(request_id).await
    }

    async fn detail(&self, request_id: &str) -> Reply {
        self.post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await
    }
}

/// Moves the toolbox clock through the admin API, as a tester does.
async fn advance_toolbox_clock(app: &TestApp, seconds: u64) {
    let admin: Router = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let moved = send_to(
        &admin,
        request(
            "POST",
            "/admin/instances/toolbox/clock/advance",
            &[("authorization", auth.as_str())],
            &json!({ "seconds": seconds }).to_string(),
        ),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.json);
}

#[tokio::test]
async fn credentials_with_mfa_through_polls_then_the_accounts() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let started = app
        .start_async(Some(&token), &credentials("Greatday", "Everyday"))
        .await;
    let request_id = request_id_of(&started);
    assert_pending(&started, &request_id);
    insta::assert_json_snapshot!(started.json, { ".RequestId" => "[request-id]" }, @r#"
    {
      "HttpStatusCode": 202,
      "FlinksCode": "OPERATION_PENDING",
      "Message": "Your operation is still processing",
      "RequestId": "[request-id]",
      "Links": [
        {
          "rel": "AuthorizeAsync",
          "href": "/AuthorizeAsync",
          "example": null
        }
      ]
    }
    "#);
    assert_eq!(started.retry_after.as_deref(), Some("2"));

    // Too early: the same 202, counting down.
    app.advance(Duration::from_millis(1500));
    let early = app.poll_async(&request_id).await;
    assert_pending(&early, &request_id);
    assert_eq!(early.retry_after.as_deref(), Some("1"));

    // The sandbox clock moved through the admin API: the step is ready at once, and answers
    // /Authorize's 203.
    advance_toolbox_clock(&app, 1).await;
    let challenge = app.poll_async(&request_id).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    assert_envelope(&challenge);
    insta::assert_json_snapshot!(challenge.json, {
        ".RequestId" => "[request-id]",
        ".SecurityChallenges[0].Prompt" => "[prompt]",
    }, @r#"
    {
      "Links": [
        {
          "rel": "Authorization",
          "href": "/Authorize",
          "example": null
        }
      ],
      "HttpStatusCode": 203,
      "SecurityChallenges": [
        {
          "Type": "QuestionAndAnswer",
          "Prompt": "[prompt]"
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    assert_eq!(challenge.json["RequestId"], request_id.as_str());
    // A ready step answers the same to every poll.
    assert_eq!(app.poll_async(&request_id).await.json, challenge.json);
    // Not authorized yet: the data endpoints say so.
    app.detail(&request_id)
        .await
        .assert_error(401, "UNAUTHORIZED", "session_not_authorized");

    // The answer, with the step's token again (as /Authorize allows): 202, then 200.
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = app
        .answer_async(
            Some(&token),
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_pending(&answered, &request_id);
    assert_pending(&app.poll_async(&request_id).await, &request_id);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_envelope(&done);
    assert_eq!(done.json["RequestId"], request_id.as_str());
    assert_eq!(done.json["Login"]["Username"], "Greatday");
    assert_eq!(done.json["InstitutionId"], 14);
    assert_eq!(
        done.json["Links"][0]["rel"], "AccountsDetail",
        "/Authorize's 200: {:#}",
        done.json
    );

    let detail = app.detail(&request_id).await;
    assert_eq!(detail.status, StatusCode::OK, "{:#}", detail.json);
    assert_eq!(detail.json["Login"]["Id"], done.json["Login"]["Id"]);
    assert!(!detail.json["Accounts"].as_array().unwrap().is_empty());

    // The token was spent by the first call: neither endpoint takes it for anything else.
    app.start_async(Some(&token), &credentials("greatday_nomfa", "Everyday"))
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    app.post(
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", token.as_str())],
        &credentials("greatday_nomfa", "Everyday"),
    )
    .await
    .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

#[tokio::test]
async fn an_mfa_answer_without_a_token_and_the_french_prompts_work_too() {
    let app = TestApp::new().await;
    let body = json!({
        "Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday",
        "Language": "fr",
    })
    .to_string();
    let started = app
        .start_async(Some(&app.toolbox_token().await), &body)
        .await;
    let request_id = request_id_of(&started);
    let challenge = app.poll_when_ready(&request_id).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = match prompt.as_str() {
        "Quelle est votre ville natale?" => "Montreal",
        "Quel est le meilleur pays sur terre?" => "Canada",
        "Quelle forme les gens aiment-ils le plus?" => "Triangle",
        other => panic!("not a French prompt: {other:?}"),
    };
    let answered = app
        .answer_async(None, &request_id, json!({ prompt: [answer] }))
        .await;
    assert_pending(&answered, &request_id);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn a_login_id_reconnects_through_polls() {
    let app = TestApp::new().await;
    // No MFA: the first ready poll is the 200 of the same LoginId.
    let login = app.login(toolbox_customer(), "greatday_nomfa").await;
    let body = json!({ "LoginId": login, "MostRecentCached": false, "Save": true }).to_string();
    let started = app
        .start_async(Some(&app.toolbox_token().await), &body)
        .await;
    let request_id = request_id_of(&started);
    assert_pending(&started, &request_id);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_eq!(done.json["Login"]["Id"], login.to_string());
    assert_eq!(done.json["RequestId"], request_id.as_str());
    assert_eq!(app.detail(&request_id).await.status, StatusCode::OK);

    // With MFA: 203, answer, 200, the same LoginId.
    let login = app.login(toolbox_customer(), "Greatday").await;
    let body = json!({ "LoginId": login, "MostRecentCached": false }).to_string();
    let started = app
        .start_async(Some(&app.toolbox_token().await), &body)
        .await;
    let request_id = request_id_of(&started);
    let challenge = app.poll_when_ready(&request_id).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = app
        .answer_async(
            None,
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_pending(&answered, &request_id);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_eq!(done.json["Login"]["Id"], login.to_string());

    // DeleteCard ends the RequestId: its polls say so.
    app.delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login.to_string())
        .await;
    let gone = app.poll_async(&request_id).await;
    gone.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert!(gone.hint().contains("DeleteCard"), "{}", gone.hint());
}

#[tokio::test]
async fn what_the_bank_refuses_waits_for_the_poll() {
    let app = TestApp::new().await;
    for (username, password, status, code, reason) in [
        (
            "Greatday",
            "wrong",
            401,
            "INVALID_LOGIN",
            "bank_credentials_invalid",
        ),
        (
            "test_disabled_account",
            "Everyday",
            401,
            "DISABLED_LOGIN",
            "login_disabled",
        ),
        (
            "test_service_unavailable",
            "Everyday",
            401,
            "RETRY_LATER",
            "institution_unavailable",
        ),
    ] {
        let token = app.toolbox_token().await;
        let started = app
            .start_async(Some(&token), &credentials(username, password))
            .await;
        let request_id = request_id_of(&started);
        assert_pending(&started, &request_id);
        let refused = app.poll_when_ready(&request_id).await;
        refused.assert_error(status, code, reason);
        // Exactly /Authorize's refusal.
        let direct = app
            .post(
                &path(TOOLBOX_CUSTOMER, "Authorize"),
                &[("flinks-auth-key", app.toolbox_token().await.as_str())],
                &credentials(username, password),
            )
            .await;
        assert_eq!(refused.json, direct.json, "{username}");
        // The token was spent all the same.
        app.start_async(Some(&token), &credentials("greatday_nomfa", "Everyday"))
            .await
            .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    }

    // A wrong MFA answer: 202, then the refusal, and the RequestId is over.
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("Greatday", "Everyday"),
        )
        .await;
    let request_id = request_id_of(&started);
    let challenge = app.poll_when_ready(&request_id).await;
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = app
        .answer_async(None, &request_id, json!({ prompt.clone(): ["Paris"] }))
        .await;
    assert_pending(&wrong, &request_id);
    let refused = app.poll_when_ready(&request_id).await;
    refused.assert_error(
        401,
        "INVALID_SECURITY_RESPONSE",
        "security_response_invalid",
    );
    assert_eq!(refused.json["RequestId"], request_id.as_str());
    let again = app
        .answer_async(
            None,
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    again.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");

    // An answer keyed by a prompt that was not asked: also the bank's, also after the poll.
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("Greatday", "Everyday"),
        )
        .await;
    let request_id = request_id_of(&started);
    let unknown_key = app
        .answer_async(None, &request_id, json!({ "Favourite colour?": ["Blue"] }))
        .await;
    assert_pending(&unknown_key, &request_id);
    app.poll_when_ready(&request_id).await.assert_error(
        401,
        "UNKNOWN_CHALLENGE_KEY",
        "unknown_challenge_key",
    );
}

#[tokio::test]
async fn a_forced_failure_is_answered_at_the_poll_as_on_authorize() {
    let app = TestApp::new().await;
    let admin: Router = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let set = send_to(
        &admin,
        request(
            "POST",
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/failures"),
            &[("authorization", auth.as_str())],
            &json!({"username": "greatday_nomfa", "flinksCode": "RETRY_LATER", "count": 1})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(set.status, StatusCode::CREATED, "{:#}", set.json);
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("greatday_nomfa", "Everyday"),
        )
        .await;
    let request_id = request_id_of(&started);
    assert_pending(&started, &request_id);
    let forced = app.poll_when_ready(&request_id).await;
    forced.assert_error(401, "RETRY_LATER", "forced_failure");
    assert!(
        forced.hint().contains("Forced failure"),
        "{}",
        forced.hint()
    );
    // Used up: the next start connects.
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("greatday_nomfa", "Everyday"),
        )
        .await;
    let done = app.poll_when_ready(&request_id_of(&started)).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    // Its summary reads like any session's.
    let summary = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsSummary"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": done.json["RequestId"] }).to_string(),
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{:#}", summary.json);
}

#[tokio::test]
async fn refusals_of_the_request_itself_come_at_once() {
    let app = TestApp::new().await;
    let body = credentials("greatday_nomfa", "Everyday");

    // The token rules of /Authorize.
    let missing = app.start_async(None, &body).await;
    missing.assert_error(401, "ACCESS_DENIED", "authorize_token_missing");
    app.start_async(Some(TOOLBOX_API_KEY), &body)
        .await
        .assert_error(401, "ACCESS_DENIED", "api_key_given_as_token");

    // Bodies it cannot read: refused, and the token is spent, as on /Authorize.
    for (bad, reason) in [
        ("{", "body_not_json"),
        ("[1]", "body_not_object"),
        (r#"{"RequestId": 5}"#, "body_invalid"),
        (r#"{"Tag": "x"}"#, "login_id_missing"),
        (
            r#"{"Institution": "FlinksCapital", "Username": "Greatday"}"#,
            "credentials_missing",
        ),
        (
            r#"{"Institution": "Nowhere", "Username": "a", "Password": "b"}"#,
            "institution_unknown",
        ),
        (
            r#"{"Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday", "Language": "de"}"#,
            "language_invalid",
        ),
    ] {
        let token = app.toolbox_token().await;
        let refused = app.start_async(Some(&token), bad).await;
        refused.assert_error(400, "INVALID_REQUEST", reason);
        app.start_async(Some(&token), &body).await.assert_error(
            401,
            "ACCESS_DENIED",
            "authorize_token_used",
        );
    }
    let unknown_login = json!({
        "LoginId": "0a8f5c6e-7b2d-4e1f-9c3a-5d6e7f8a9b0c", "MostRecentCached": false,
    })
    .to_string();
    app.start_async(Some(&app.toolbox_token().await), &unknown_login)
        .await
        .assert_error(401, "INVALID_LOGIN", "login_not_found");

    // Polls: a RequestId that is not one, that no step has, that /Authorize opened, that
    // belongs to another customer, or whose time is over.
    app.poll_async("undefined").await.assert_error(
        400,
        "SESSION_NONEXISTENT",
        "request_id_malformed",
    );
    let never = app.poll_async("0a8f5c6e-7b2d-4e1f-9c3a-5d6e7f8a9b0c").await;
    never.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert!(never.hint().contains("never issued"), "{}", never.hint());
    assert!(!never.hint().contains("another"), "{}", never.hint());

    let login = app.toolbox_login().await;
    let opened = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let sync = app.poll_async(&request_id_of(&opened)).await;
    sync.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert!(sync.hint().contains("/Authorize"), "{}", sync.hint());

    let started = app
        .start_async(Some(&app.toolbox_token().await), &body)
        .await;
    let request_id = request_id_of(&started);
    let (other, _, _) = app
        .customer_on("toolbox", bankgate_core::model::InstanceKind::Sandbox)
        .await;
    let foreign = app
        .post(
            &path(other, "AuthorizeAsync"),
            &[],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await;
    foreign.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    // Whose it is, is not said; which customerId to check, is.
    assert!(
        foreign.hint().contains("customerId in the path"),
        "{}",
        foreign.hint()
    );
    assert_eq!(foreign.hint(), never.hint());
    // An unknown customerId is refused as on /Authorize.
    app.post(
        &path("0a8f5c6e-7b2d-4e1f-9c3a-5d6e7f8a9b0c", "AuthorizeAsync"),
        &[],
        &json!({ "RequestId": request_id }).to_string(),
    )
    .await
    .assert_error(401, "ACCESS_DENIED", "customer_not_found");

    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    app.advance(Duration::from_secs(30 * 60));
    app.poll_async(&request_id).await.assert_error(
        400,
        "SESSION_NONEXISTENT",
        "request_id_expired",
    );

    // Only POST.
    let get = app.send(request("GET", &async_uri(), &[], "")).await;
    assert_eq!(get.status.as_u16(), 405, "{:#}", get.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_spend_a_token_once() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let token = app.toolbox_token().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let (app, token, barrier) = (app.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.start_async(Some(&token), &credentials("greatday_nomfa", "Everyday"))
                    .await
            })
        })
        .collect();
    let mut started = Vec::new();
    for call in calls {
        let reply = call.await.unwrap();
        if reply.status == StatusCode::ACCEPTED {
            started.push(request_id_of(&reply));
        } else {
            reply.assert_error(401, "ACCESS_DENIED", "authorize_token_used");
        }
    }
    assert_eq!(started.len(), 1, "exactly one call spends the token");
    let done = app.poll_when_ready(&started[0]).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn completed_authorizations_queue_the_webhook_callbacks() {
    let app = TestApp::new().await;
    let toolbox: InstanceName = "toolbox".parse().unwrap();
    app.operator()
        .set_webhook(&toolbox, "https://hooks.example.test/flinks")
        .await
        .unwrap();
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("greatday_nomfa", "Everyday"),
        )
        .await;
    let request_id = request_id_of(&started);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    let queued = app.operator().deliveries(&toolbox, 10).await.unwrap();
    let mut kinds: Vec<&str> = queued
        .iter()
        .filter(|d| d.request_id.to_string() == request_id)
        .map(|d| d.kind.as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["GetAccountsDetail", "KYC"], "{queued:#?}");
    // A refused step queues nothing.
    app.start_async(
        Some(&app.toolbox_token().await),
        &credentials("greatday_nomfa", "wrong"),
    )
    .await;
    assert_eq!(
        app.operator().deliveries(&toolbox, 10).await.unwrap().len(),
        queued.len()
    );
}

// ---- GetStatementsAsync ----

fn statements_async_uri(request_id: &str) -> String {
    format!(
        "{}/{request_id}",
        path(TOOLBOX_CUSTOMER, "GetStatementsAsync")
    )
}

#[tokio::test]
async fn statements_async_answers_getstatements_after_the_pending_period() {
    let app = TestApp::new().await;
    let api_key = [("x-api-key", TOOLBOX_API_KEY)];
    let login = app.login(toolbox_customer(), "test_pending").await;
    let opened = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id = request_id_of(&opened);

    let pending = app
        .send(request(
            "GET",
            &statements_async_uri(&request_id),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(pending.status.as_u16(), 202, "{:#}", pending.json);
    assert_envelope(&pending);
    assert_eq!(pending.retry_after.as_deref(), Some("10"));
    insta::assert_json_snapshot!(pending.json, {
        ".RequestId" => "[request-id]",
        ".Links[0].example" => "[example]",
    }, @r#"
    {
      "FlinksCode": "OPERATION_PENDING",
      "Links": [
        {
          "rel": "GetStatementsAsync",
          "href": "/GetStatementsAsync",
          "example": "[example]"
        }
      ],
      "HttpStatusCode": 202,
      "Message": "Your operation is still processing",
      "RequestId": "[request-id]"
    }
    "#);
    assert_eq!(
        pending.json["Links"][0]["example"],
        format!("/GetStatementsAsync/{request_id}")
    );
    // POST with an empty body is the same poll.
    app.advance(Duration::from_secs(5));
    let still = app
        .send(request(
            "POST",
            &statements_async_uri(&request_id),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(still.status.as_u16(), 202, "{:#}", still.json);
    assert_eq!(still.retry_after.as_deref(), Some("5"));

    app.advance(Duration::from_secs(5));
    let ready = app
        .send(request(
            "GET",
            &statements_async_uri(&request_id),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.json);
    assert_envelope(&ready);
    let direct = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetStatements"),
            &api_key,
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await;
    assert_eq!(ready.json, direct.json);
    assert!(
        !ready.json["StatementsByAccount"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The options of GetStatements apply to the poll too.
    let bad = app
        .send(request(
            "POST",
            &statements_async_uri(&request_id),
            &api_key,
            r#"{"NumberOfStatements": "Months7"}"#,
        ))
        .await;
    bad.assert_error(400, "INVALID_REQUEST", "number_of_statements_invalid");
}

#[tokio::test]
async fn statements_async_of_a_ready_user_and_its_refusals() {
    let app = TestApp::new().await;
    let api_key = [("x-api-key", TOOLBOX_API_KEY)];
    let login = app.toolbox_login().await;
    let opened = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id = request_id_of(&opened);
    let ready = app
        .send(request(
            "POST",
            &statements_async_uri(&request_id),
            &api_key,
            "",
        ))
        .await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.json);
    assert_eq!(ready.json["RequestId"], request_id.as_str());

    app.send(request("GET", &statements_async_uri(&request_id), &[], ""))
        .await
        .assert_error(401, "UNAUTHORIZED", "api_key_missing");
    app.send(request(
        "GET",
        &statements_async_uri("0a8f5c6e-7b2d-4e1f-9c3a-5d6e7f8a9b0c"),
        &api_key,
        "",
    ))
    .await
    .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    app.send(request(
        "GET",
        &statements_async_uri("{requestId}"),
        &api_key,
        "",
    ))
    .await
    .assert_error(400, "SESSION_NONEXISTENT", "request_id_malformed");
    // GetStatements with the RequestId in the path is pointed at the poll.
    let misplaced = app
        .post(
            &format!("{}/{request_id}", path(TOOLBOX_CUSTOMER, "GetStatements")),
            &api_key,
            "",
        )
        .await;
    misplaced.assert_error(404, "INVALID_REQUEST", "request_id_in_path");
    assert!(
        misplaced.hint().contains("GetStatementsAsync"),
        "{}",
        misplaced.hint()
    );
}

// ---- through the SDK ----

#[tokio::test]
async fn the_sdk_runs_authorize_async_through_typed_steps() {
    use bankgate_client::{
        ApiKey, Authorization, AuthorizeRequest, Error, Poll, SecretKey, SecurityResponses,
    };

    let app = TestApp::new().await;
    let (client, _served) = app.client().await;
    let secret = SecretKey::new(TOOLBOX_SECRET);
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let started = client
        .authorize_async(
            token,
            AuthorizeRequest::live("FlinksCapital", "Greatday", "Everyday"),
        )
        .await
        .unwrap();
    assert_eq!(started.retry_after, Some(Duration::from_secs(2)));
    let early = client
        .poll_authorize_async(&started.request_id)
        .await
        .unwrap();
    assert!(
        matches!(&early, Authorization::Pending(p) if p.flinks_code.as_deref() == Some("OPERATION_PENDING")),
        "{early:?}"
    );
    app.advance(Duration::from_secs(2));
    let Authorization::Mfa(mfa) = client
        .wait_for_authorize_async(&started.request_id, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!("Greatday is asked a question first");
    };
    assert_eq!(mfa.request_id, started.request_id);
    let answers: SecurityResponses = mfa
        .challenges
        .iter()
        .map(|c| (c.prompt.clone(), vec![answer_to(&c.prompt).to_owned()]))
        .collect();
    let answered = client.answer_mfa_async(mfa, &answers).await.unwrap();
    assert_eq!(answered.request_id, started.request_id);
    app.advance(Duration::from_secs(2));
    let Authorization::Authorized(authorized) = client
        .poll_authorize_async(&answered.request_id)
        .await
        .unwrap()
    else {
        panic!("the right answer authorizes");
    };
    assert_eq!(authorized.request_id, started.request_id);
    assert_eq!(authorized.login.username, "Greatday");

    let api_key = ApiKey::new(TOOLBOX_API_KEY);
    let Poll::Ready(statements) = client
        .get_statements_async(&api_key, &authorized.request_id)
        .await
        .unwrap()
    else {
        panic!("Greatday's statements are ready at once");
    };
    assert!(!statements.statements_by_account.is_empty());

    // Refusals keep their Reason: an unknown RequestId, a refused start.
    let unknown = client
        .poll_authorize_async(&bankgate_client::RequestId::new(
            "0a8f5c6e-7b2d-4e1f-9c3a-5d6e7f8a9b0c",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.flinks().and_then(|f| f.reason.as_deref()),
        Some("request_id_unknown"),
        "{unknown}"
    );
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let refused = client
        .authorize_async(
            token,
            AuthorizeRequest::live("FlinksCapital", "Greatday", ""),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Flinks(f) if f.reason.as_deref() == Some("credentials_missing")),
        "{refused}"
    );
}

#[tokio::test]
async fn the_journal_sees_each_step_and_the_refusal_at_its_poll() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const JOURNAL_TOKEN: &str = "async-journal-admin-token-0123456789abcdef";
    let app = TestApp::with(|settings| {
        settings.admin_token = Some(JOURNAL_TOKEN.to_owned());
        settings.journal_capacity = 100;
    })
    .await;
    let started = app
        .start_async(
            Some(&app.toolbox_token().await),
            &credentials("Greatday", "not-the-password"),
        )
        .await;
    let request_id = request_id_of(&started);
    let refused = app.poll_when_ready(&request_id).await;
    refused.assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");

    let request = Request::builder()
        .uri("/admin/requests?instance=toolbox&limit=100")
        .header(header::AUTHORIZATION, format!("Bearer {JOURNAL_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = app.admin.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        !body.to_string().contains("not-the-password"),
        "the journal holds the password: {body:#}"
    );
    let entries: Vec<&Value> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["endpoint"] == "AuthorizeAsync")
        .collect();
    assert_eq!(entries.len(), 2, "{body:#}");
    // Newest first: the poll carries the bank's refusal; the step that decided it, none.
    let (poll, step) = (entries[0], entries[1]);
    assert_eq!(poll["status"], 401);
    assert_eq!(poll["reason"], "bank_credentials_invalid");
    assert_eq!(poll["flinksCode"], "INVALID_LOGIN");
    assert!(poll["hint"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(poll["requestId"], request_id.as_str());
    assert_eq!(step["status"], 202);
    assert!(step["reason"].is_null(), "{step:#}");
    assert_eq!(step["body"]["Password"], "***");
}

/// The challenge types of the sandbox bank come through AuthorizeAsync as through /Authorize:
/// TextOrCall's two 203s each after a poll, and a value that was not offered refused at the
/// poll (a bank outcome), not at once.
#[tokio::test]
async fn challenge_types_run_through_polls() {
    const TEXT_OR_CALL: &str = "How would you like to receive your verification code?";
    const BY_TEXT: &str = "Enter the verification code we sent you by text message";
    const CAR: &str = "What was the colour of your first car?";
    let app = TestApp::new().await;

    let token = app.toolbox_token().await;
    let started = app
        .start_async(
            Some(&token),
            &credentials("test_mfa_text_or_call", "Everyday"),
        )
        .await;
    let request_id = request_id_of(&started);
    assert_pending(&started, &request_id);
    let choice = app.poll_when_ready(&request_id).await;
    assert_eq!(choice.status.as_u16(), 203, "{:#}", choice.json);
    assert_eq!(choice.json["SecurityChallenges"][0]["Type"], "TextOrCall");
    assert_eq!(
        choice.json["SecurityChallenges"][0]["Iterables"],
        json!(["Text", "Call"])
    );
    let picked = app
        .answer_async(None, &request_id, json!({ TEXT_OR_CALL: ["Text"] }))
        .await;
    assert_pending(&picked, &request_id);
    let code = app.poll_when_ready(&request_id).await;
    assert_eq!(code.status.as_u16(), 203, "{:#}", code.json);
    assert_eq!(
        code.json["SecurityChallenges"],
        json!([{ "Type": "QuestionAndAnswer", "Prompt": BY_TEXT }])
    );
    let answered = app
        .answer_async(None, &request_id, json!({ BY_TEXT: ["123456"] }))
        .await;
    assert_pending(&answered, &request_id);
    let done = app.poll_when_ready(&request_id).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_eq!(done.json["Login"]["Username"], "test_mfa_text_or_call");
    assert_eq!(app.detail(&request_id).await.status, StatusCode::OK);

    // A colour that was not among the choices: 202 now, the refusal at the ready poll.
    let token = app.toolbox_token().await;
    let started = app
        .start_async(Some(&token), &credentials("test_mfa_choice", "Everyday"))
        .await;
    let request_id = request_id_of(&started);
    let choice = app.poll_when_ready(&request_id).await;
    assert_eq!(
        choice.json["SecurityChallenges"][0]["Type"],
        "MultipleChoice"
    );
    let wrong = app
        .answer_async(None, &request_id, json!({ CAR: ["Purple"] }))
        .await;
    assert_pending(&wrong, &request_id);
    let refused = app.poll_when_ready(&request_id).await;
    refused.assert_error(
        401,
        "INVALID_SECURITY_RESPONSE",
        "security_response_not_offered",
    );
    assert!(refused.hint().contains("Purple"), "{}", refused.hint());
}
