//! Live /Authorize against the sandbox bank: credentials, the 203 MFA exchange, live refresh,
//! and every scripted user.

use std::time::Duration;

use axum::http::StatusCode;
use bankgate_core::LoginId;
use serde_json::{Value, json};

use crate::support::*;

/// The FlinksCapital questions and their answers, in both languages.
const ANSWERS: &[(&str, &str)] = &[
    ("What city were you born in?", "Montreal"),
    ("What is the best country on earth?", "Canada"),
    ("What shape do people like most?", "Triangle"),
    ("Quelle est votre ville natale?", "Montreal"),
    ("Quel est le meilleur pays sur terre?", "Canada"),
    ("Quelle forme les gens aiment-ils le plus?", "Triangle"),
];

fn answer_to(prompt: &str) -> &'static str {
    ANSWERS
        .iter()
        .find(|(p, _)| *p == prompt)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("unexpected prompt {prompt:?}"))
}

fn authorize_uri() -> String {
    path(TOOLBOX_CUSTOMER, "Authorize")
}

fn connect_body(username: &str, save: bool) -> String {
    json!({
        "Institution": "FlinksCapital",
        "Username": username,
        "Password": "Everyday",
        "MostRecentCached": false,
        "Save": save,
    })
    .to_string()
}

impl TestApp {
    async fn connect(&self, token: &str, body: &str) -> Reply {
        self.post(&authorize_uri(), &[("flinks-auth-key", token)], body)
            .await
    }

    /// The follow-up call of an MFA exchange, with the given token header (or none).
    async fn answer(&self, token: Option<&str>, request_id: &str, responses: Value) -> Reply {
        let headers: Vec<(&str, &str)> =
            token.map(|t| ("flinks-auth-key", t)).into_iter().collect();
        let body = json!({ "RequestId": request_id, "SecurityResponses": responses }).to_string();
        self.post(&authorize_uri(), &headers, &body).await
    }
}

fn prompt_of(reply: &Reply) -> String {
    reply.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn request_id_of(reply: &Reply) -> String {
    reply.json["RequestId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn greatday_answers_one_question_and_gets_a_login_id_that_works_cached() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let challenge = app.connect(&token, &connect_body("Greatday", true)).await;
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
    let prompt = prompt_of(&challenge);
    let request_id = request_id_of(&challenge);

    // The same token may come again with the answer (docs/flinks-wire.md, "Credentials and
    // tokens").
    let done = app
        .answer(
            Some(&token),
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_eq!(
        done.json["RequestId"],
        request_id.as_str(),
        "the RequestId stays the same"
    );
    assert_eq!(done.json["Login"]["Username"], "Greatday");
    assert_eq!(done.json["InstitutionId"], 14);
    let login: LoginId = done.json["Login"]["Id"].as_str().unwrap().parse().unwrap();

    // Saved: a new token opens it in cached mode.
    let cached = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    assert_eq!(cached.status, StatusCode::OK, "{:#}", cached.json);
    // The token of the exchange is spent for anything else.
    app.connect(&token, &connect_body("Greatday", true))
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

#[tokio::test]
async fn the_same_user_always_meets_the_same_question_and_french_prompts_are_french() {
    let app = TestApp::new().await;
    let first = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", false))
        .await;
    let second = app
        .connect(&app.toolbox_token().await, &connect_body("greatday", false))
        .await;
    assert_eq!(prompt_of(&first), prompt_of(&second));
    // The README's walkthrough shows this prompt.
    assert_eq!(prompt_of(&first), "What is the best country on earth?");
    assert_ne!(request_id_of(&first), request_id_of(&second));

    let body = json!({
        "Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday",
        "Language": "fr", "Save": true,
    });
    let french = app
        .connect(&app.toolbox_token().await, &body.to_string())
        .await;
    assert_eq!(french.status.as_u16(), 203);
    let prompt = prompt_of(&french);
    assert!(prompt.contains("Quel"), "{prompt}");
    let done = app
        .answer(
            None,
            &request_id_of(&french),
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn empty_answers_ask_again_and_answers_ignore_case() {
    let app = TestApp::new().await;
    let challenge = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", true))
        .await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));
    for empty in [
        json!({}),
        json!({ prompt.clone(): [""] }),
        json!({ prompt.clone(): [] }),
    ] {
        let again = app.answer(None, &request_id, empty.clone()).await;
        assert_eq!(again.status.as_u16(), 203, "{empty}: {:#}", again.json);
        assert_eq!(prompt_of(&again), prompt);
        assert_eq!(request_id_of(&again), request_id);
    }
    let shouted = answer_to(&prompt).to_uppercase();
    let done = app
        .answer(
            None,
            &request_id,
            json!({ prompt.clone(): [format!(" {shouted} ")] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    // Once authorized, the RequestId is no exchange any more: calling again needs a fresh token
    // (which it spends), and then answers the same 200.
    let answer = json!({ prompt.clone(): [answer_to(&prompt)] });
    for (header, reason) in [
        (None, "authorize_token_missing"),
        (Some(TOOLBOX_SECRET), "auth_key_given_as_token"),
        (Some("garbage"), "credential_malformed"),
        (
            Some("7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10"),
            "authorize_token_invalid",
        ),
    ] {
        app.answer(header, &request_id, answer.clone())
            .await
            .assert_error(401, "ACCESS_DENIED", reason);
    }
    let fresh = app.toolbox_token().await;
    let again = app.answer(Some(&fresh), &request_id, answer).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["Login"]["Id"], done.json["Login"]["Id"]);
    // The fresh token is now spent for anything but this RequestId.
    let login = app.toolbox_login().await;
    app.authorize(TOOLBOX_CUSTOMER, &fresh, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

#[tokio::test]
async fn integrations_that_post_every_answer_at_once_get_through() {
    let app = TestApp::new().await;
    let challenge = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", true))
        .await;
    let all: serde_json::Map<String, Value> = ANSWERS
        .iter()
        .map(|(p, a)| ((*p).to_owned(), json!([a])))
        .collect();
    // The follow-up may repeat the credentials; the RequestId decides.
    let body = json!({
        "RequestId": request_id_of(&challenge),
        "SecurityResponses": all,
        "Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday",
    });
    let done = app.post(&authorize_uri(), &[], &body.to_string()).await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn a_wrong_answer_ends_the_request_id() {
    let app = TestApp::new().await;
    let challenge = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", true))
        .await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));
    let wrong = app
        .answer(None, &request_id, json!({ prompt.clone(): ["Atlantis"] }))
        .await;
    wrong.assert_error(
        401,
        "INVALID_SECURITY_RESPONSE",
        "security_response_invalid",
    );
    assert_eq!(wrong.json["RequestId"], request_id.as_str());
    // The exchange is over: a retry without a token hears that the RequestId has ended.
    let answer = json!({ prompt.clone(): [answer_to(&prompt)] });
    let retry = app.answer(None, &request_id, answer.clone()).await;
    retry.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert!(retry.hint().contains("a wrong answer"), "{}", retry.hint());
    let fresh = app.toolbox_token().await;
    let late = app.answer(Some(&fresh), &request_id, answer).await;
    late.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert_eq!(
        late.json["Message"],
        format!("RequestId {request_id} is invalid or session has ended")
    );
}

#[tokio::test]
async fn an_answer_to_the_wrong_prompt_names_the_prompt_expected() {
    let app = TestApp::new().await;
    let challenge = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", true))
        .await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));
    // One client rewrites prompt keys; bankgate matches them exactly.
    let rewritten = prompt.to_uppercase();
    let reply = app
        .answer(
            None,
            &request_id,
            json!({ rewritten: [answer_to(&prompt)] }),
        )
        .await;
    reply.assert_error(401, "UNKNOWN_CHALLENGE_KEY", "unknown_challenge_key");
    assert!(reply.hint().contains(&prompt), "{}", reply.hint());
    // The exchange is still open.
    let done = app
        .answer(
            None,
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn tokens_during_the_exchange() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let challenge = app.connect(&token, &connect_body("Greatday", true)).await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));

    // A token spent elsewhere is refused…
    let login = app.toolbox_login().await;
    let other = app.toolbox_token().await;
    assert_eq!(
        app.authorize(TOOLBOX_CUSTOMER, &other, login).await.status,
        StatusCode::OK
    );
    app.answer(Some(&other), &request_id, json!({}))
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    // …a fresh one is accepted and spent…
    let fresh = app.toolbox_token().await;
    assert_eq!(
        app.answer(Some(&fresh), &request_id, json!({}))
            .await
            .status
            .as_u16(),
        203
    );
    app.authorize(TOOLBOX_CUSTOMER, &fresh, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    // …and the bound one keeps working until the end.
    let done = app
        .answer(
            Some(&token),
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
}

#[tokio::test]
async fn an_exchange_expires_after_eight_idle_minutes() {
    let app = TestApp::new().await;
    let challenge = app
        .connect(&app.toolbox_token().await, &connect_body("Greatday", true))
        .await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));
    // Each call restarts the idle clock.
    app.advance(Duration::from_secs(7 * 60 + 59));
    assert_eq!(
        app.answer(None, &request_id, json!({}))
            .await
            .status
            .as_u16(),
        203
    );
    app.advance(Duration::from_secs(7 * 60 + 59));
    assert_eq!(
        app.answer(None, &request_id, json!({}))
            .await
            .status
            .as_u16(),
        203
    );
    app.advance(Duration::from_secs(8 * 60));
    let late = app
        .answer(
            None,
            &request_id,
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    late.assert_error(400, "SESSION_NONEXISTENT", "request_id_expired");
    // A fresh token sent with it is spent all the same.
    let fresh = app.toolbox_token().await;
    app.answer(Some(&fresh), &request_id, json!({}))
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_expired");
    let login = app.toolbox_login().await;
    app.authorize(TOOLBOX_CUSTOMER, &fresh, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
}

#[tokio::test]
async fn greatday_nomfa_connects_at_once_and_save_decides_whether_the_login_id_lasts() {
    let app = TestApp::new().await;
    for save in [true, false] {
        let reply = app
            .connect(
                &app.toolbox_token().await,
                &connect_body("greatday_nomfa", save),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
        assert_eq!(reply.json["Login"]["Username"], "greatday_nomfa");
        assert_eq!(
            reply.json["Login"]["LastRefresh"],
            "2026-01-21T20:47:47.145999"
        );
        let login: LoginId = reply.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
        let cached = app
            .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
            .await;
        if save {
            assert_eq!(cached.status, StatusCode::OK);
        } else {
            cached.assert_error(401, "INVALID_LOGIN", "login_not_found");
        }
    }
}

#[tokio::test]
async fn scripted_users_and_bad_credentials() {
    let app = TestApp::new().await;
    let cases = [
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
        (
            "Greatday",
            "WrongPassword",
            401,
            "INVALID_LOGIN",
            "bank_credentials_invalid",
        ),
        (
            "Greatday",
            "everyday",
            401,
            "INVALID_LOGIN",
            "bank_credentials_invalid",
        ),
        (
            "nobody",
            "Everyday",
            401,
            "INVALID_LOGIN",
            "bank_credentials_invalid",
        ),
    ];
    for (username, password, status, code, reason) in cases {
        let token = app.toolbox_token().await;
        let body =
            json!({ "Institution": "FlinksCapital", "Username": username, "Password": password });
        let reply = app.connect(&token, &body.to_string()).await;
        reply.assert_error(status, code, reason);
        assert!(
            reply.json.get("RequestId").is_none(),
            "{username}: no session, so no RequestId to use"
        );
        // Spent, whatever the bank said.
        app.connect(&token, &body.to_string()).await.assert_error(
            401,
            "ACCESS_DENIED",
            "authorize_token_used",
        );
    }
    let wrong = app
        .connect(
            &app.toolbox_token().await,
            &json!({"Institution": "FlinksCapital", "Username": "Greatday", "Password": "x"})
                .to_string(),
        )
        .await;
    assert_eq!(
        wrong.json["Message"],
        "The card number (username) or password provided is invalid"
    );
    for scripted in ["test_dispatched", "test_pending"] {
        let reply = app
            .connect(&app.toolbox_token().await, &connect_body(scripted, true))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{scripted} logs in; its data is slow: {:#}",
            reply.json
        );
    }
}

#[tokio::test]
async fn incomplete_or_unknown_connections_are_400() {
    let app = TestApp::new().await;
    let cases = [
        (
            json!({"Institution": "FlinksCapital", "Username": "Greatday"}),
            "credentials_missing",
        ),
        (
            json!({"Username": "Greatday", "Password": "Everyday"}),
            "credentials_missing",
        ),
        (
            json!({"Institution": "FlinksCapital", "Username": "", "Password": "Everyday"}),
            "credentials_missing",
        ),
        (
            json!({"Institution": "RBC", "Username": "Greatday", "Password": "Everyday"}),
            "institution_unknown",
        ),
        (
            json!({"Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday", "Language": "de"}),
            "language_invalid",
        ),
        (
            json!({"Username": 5, "Password": "Everyday"}),
            "body_invalid",
        ),
    ];
    for (body, reason) in cases {
        let reply = app
            .connect(&app.toolbox_token().await, &body.to_string())
            .await;
        reply.assert_error(400, "INVALID_REQUEST", reason);
    }
    let reply = app
        .connect(
            &app.toolbox_token().await,
            &json!({"Institution": "RBC", "Username": "a", "Password": "b"}).to_string(),
        )
        .await;
    assert!(reply.hint().contains("FlinksCapital"), "{}", reply.hint());
}

#[tokio::test]
async fn unknown_request_ids_are_session_nonexistent() {
    let app = TestApp::new().await;
    let unknown = "7d9d2a43-5bd8-4f0e-9c39-4f1d2d0a2a10";
    let reply = app
        .answer(Some(&app.toolbox_token().await), unknown, json!({}))
        .await;
    reply.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    assert_eq!(
        reply.json["Message"],
        format!("RequestId {unknown} is invalid or session has ended")
    );
    // A malformed RequestId still spends the token presented.
    let token = app.toolbox_token().await;
    app.answer(Some(&token), "not-a-guid", json!({}))
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_malformed");
    app.answer(Some(&token), unknown, json!({}))
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    // Another customer's RequestId is unknown here.
    let (other, secret, _) = app.customer_with("toolbox", true, true).await;
    let token = app.generate_token_for(other, &secret).await;
    let theirs = app
        .post(
            &path(other, "Authorize"),
            &[("flinks-auth-key", &token)],
            &connect_body("Greatday", true),
        )
        .await;
    assert_eq!(theirs.status.as_u16(), 203);
    app.answer(
        Some(&app.toolbox_token().await),
        &request_id_of(&theirs),
        json!({}),
    )
    .await
    .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
}

#[tokio::test]
async fn a_saved_login_id_refreshes_live() {
    let app = TestApp::new().await;
    let nomfa = app.login(toolbox_customer(), "greatday_nomfa").await;
    app.advance(Duration::from_secs(3600));
    let body = json!({ "LoginId": nomfa.to_string(), "MostRecentCached": false }).to_string();
    let reply = app.connect(&app.toolbox_token().await, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_eq!(
        reply.json["Login"]["Id"],
        nomfa.to_string(),
        "the LoginId does not change"
    );
    assert_eq!(
        reply.json["Login"]["LastRefresh"], "2026-01-21T21:47:47.145999",
        "refreshed now"
    );

    let greatday = app.toolbox_login().await;
    let body = json!({ "LoginId": greatday.to_string(), "Save": true }).to_string();
    let challenge = app.connect(&app.toolbox_token().await, &body).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = prompt_of(&challenge);
    let done = app
        .answer(
            None,
            &request_id_of(&challenge),
            json!({ prompt.clone(): [answer_to(&prompt)] }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:#}", done.json);
    assert_eq!(done.json["Login"]["Id"], greatday.to_string());

    let gone = LoginId::new_random();
    let body = json!({ "LoginId": gone.to_string(), "MostRecentCached": false }).to_string();
    app.connect(&app.toolbox_token().await, &body)
        .await
        .assert_error(401, "INVALID_LOGIN", "login_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_to_one_exchange_complete_it_once() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let token = app.toolbox_token().await;
    let challenge = app.connect(&token, &connect_body("Greatday", true)).await;
    let (prompt, request_id) = (prompt_of(&challenge), request_id_of(&challenge));
    let answer = json!({ prompt.clone(): [answer_to(&prompt)] });
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, request_id, answer) = (app.clone(), request_id.clone(), answer.clone());
            tokio::spawn(async move { app.answer(None, &request_id, answer).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::OK {
            ok += 1;
        } else {
            // Never a 5xx: the losers are told the exchange is over (or asked for a token).
            assert!(reply.status.is_client_error(), "{:#}", reply.json);
        }
    }
    assert_eq!(ok, 1);
    // The token that opened it may ask again after a lost answer, and gets the same 200.
    let again = app.answer(Some(&token), &request_id, answer).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.json);
}

#[tokio::test]
async fn a_login_id_keeps_its_accounts_when_refreshed_days_later() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "greatday_nomfa").await;
    let accounts = |request_id: String| {
        let app = &app;
        async move {
            let body = json!({ "RequestId": request_id, "DaysOfTransactions": "Days365" });
            app.post(
                &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
                &[("x-api-key", TOOLBOX_API_KEY)],
                &body.to_string(),
            )
            .await
            .json["Accounts"]
                .clone()
        }
    };
    let first = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let before = accounts(request_id_of(&first)).await;
    app.advance(Duration::from_secs(3 * 24 * 3600));
    let body = json!({ "LoginId": login.to_string(), "MostRecentCached": false }).to_string();
    let refreshed = app.connect(&app.toolbox_token().await, &body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:#}", refreshed.json);
    assert_eq!(accounts(request_id_of(&refreshed)).await, before);
}
