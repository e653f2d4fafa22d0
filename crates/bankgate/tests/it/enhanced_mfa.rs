//! Enhanced MFA: WithMFAQuestions on a new card's live /Authorize, GetMFAQuestions,
//! AnswerMFAQuestions, stored answers on the next live refresh and the nightly refresh, and a
//! wrong stored answer erased and listed again.

use std::time::Duration;

use bankgate_core::LoginId;
use serde_json::{Value, json};

use crate::nightly_refresh::{advance_toolbox, connect_card, patch};
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

pub(crate) fn answer_to(prompt: &str) -> &'static str {
    ANSWERS
        .iter()
        .find(|(p, _)| *p == prompt)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("unexpected prompt {prompt:?}"))
}

fn prompt_of(reply: &Reply) -> String {
    reply.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge in {:#}", reply.json))
        .to_owned()
}

async fn answer(app: &TestApp, challenge: &Reply, text: &str) -> Reply {
    let prompt = prompt_of(challenge);
    app.post(
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[],
        &json!({"RequestId": challenge.json["RequestId"], "SecurityResponses": {prompt: [text]}})
            .to_string(),
    )
    .await
}

/// A Greatday card connected with `extra` (WithMFAQuestions…), through its one question:
/// (LoginId, the prompt asked).
async fn greatday_card(app: &TestApp, extra: Value) -> (LoginId, String) {
    let challenge = connect_card(app, "Greatday", extra).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = prompt_of(&challenge);
    let done = answer(app, &challenge, answer_to(&prompt)).await;
    assert_eq!(done.status.as_u16(), 200, "{:#}", done.json);
    let login = done.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
    (login, prompt)
}

pub(crate) async fn questions(app: &TestApp, login: impl std::fmt::Display) -> Reply {
    app.send(request(
        "GET",
        &format!("{}/{login}", path(TOOLBOX_CUSTOMER, "GetMFAQuestions")),
        &[("x-api-key", TOOLBOX_API_KEY)],
        "",
    ))
    .await
}

pub(crate) fn listed(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status.as_u16(), 200, "{:#}", reply.json);
    reply.json["Questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["Question"].as_str().unwrap().to_owned())
        .collect()
}

async fn answer_questions(app: &TestApp, body: Value) -> Reply {
    patch(
        app,
        "AnswerMFAQuestions",
        &[("x-api-key", TOOLBOX_API_KEY)],
        &body.to_string(),
    )
    .await
}

pub(crate) async fn live_refresh(app: &TestApp, login: LoginId) -> Reply {
    let token = app.toolbox_token().await;
    app.post(
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", &token)],
        &json!({"LoginId": login, "MostRecentCached": false}).to_string(),
    )
    .await
}

const ENGLISH: [&str; 3] = [
    "What city were you born in?",
    "What is the best country on earth?",
    "What shape do people like most?",
];

#[tokio::test]
async fn with_mfa_questions_keeps_the_answer_given_and_lists_the_other_questions() {
    let app = TestApp::new().await;
    let (login, asked) = greatday_card(&app, json!({"WithMFAQuestions": true})).await;
    let unanswered = questions(&app, login).await;
    assert_envelope(&unanswered);
    let others: Vec<&str> = ENGLISH.into_iter().filter(|q| *q != asked).collect();
    assert_eq!(listed(&unanswered), others);
    insta::assert_json_snapshot!(unanswered.json, {".Questions[].Question" => "[question]"}, @r#"
    {
      "HttpStatusCode": 200,
      "Message": "SUCCESS",
      "Questions": [
        {
          "Question": "[question]"
        },
        {
          "Question": "[question]"
        }
      ]
    }
    "#);
    // pyflinks' spelling (PascalCase) for one, lower case keys for the other.
    let stored = answer_questions(
        &app,
        json!({"loginId": login, "questions": [
            {"Question": others[0], "Answer": answer_to(others[0])},
            {"question": others[1].to_uppercase(), "answer": [answer_to(others[1])]},
        ]}),
    )
    .await;
    assert_eq!(stored.status.as_u16(), 200, "{:#}", stored.json);
    assert_eq!(
        stored.json,
        json!({"HttpStatusCode": 200, "Message": "Answers updated"})
    );
    assert!(listed(&questions(&app, login).await).is_empty());
    // The string "true" works as well (the C# SDK), in French.
    let (fr, _) = greatday_card(&app, json!({"WithMfaQuestions": "true", "Language": "fr"})).await;
    let french = listed(&questions(&app, fr).await);
    assert_eq!(french.len(), 2);
    assert!(french.iter().all(|q| q.starts_with("Quel")), "{french:?}");
}

#[tokio::test]
async fn stored_answers_answer_the_next_live_refresh_and_the_nightly_refresh() {
    let app = TestApp::new().await;
    let (login, asked) = greatday_card(
        &app,
        json!({"WithMFAQuestions": true, "ScheduleRefresh": true}),
    )
    .await;
    let others: Vec<&str> = ENGLISH.into_iter().filter(|q| *q != asked).collect();
    let body = json!({"LoginId": login, "Questions": others.iter().map(|q| json!({"Question": q, "Answer": answer_to(q)})).collect::<Vec<_>>()});
    assert_eq!(answer_questions(&app, body).await.status.as_u16(), 200);
    // Every question has a right answer: the live refresh is not asked anything.
    let refreshed = live_refresh(&app, login).await;
    assert_eq!(refreshed.status.as_u16(), 200, "{:#}", refreshed.json);
    assert_eq!(refreshed.json["Login"]["Id"], login.to_string());
    // Nor is the nightly refresh (a cached call keeps the card eligible).
    let token = app.toolbox_token().await;
    app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    advance_toolbox(&app, Duration::from_secs(24 * 3600)).await;
    let status = app
        .send(request(
            "GET",
            &path(TOOLBOX_CUSTOMER, "GetNightlyRefreshStatus"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        ))
        .await;
    assert_eq!(
        status.json["IneligibleCards"],
        json!([]),
        "{:#}",
        status.json
    );
    let card = app
        .state
        .store
        .login(toolbox_customer(), login)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(card.last_refresh.to_rfc3339(), "2026-01-22T02:00:00Z");
}

#[tokio::test]
async fn a_wrong_stored_answer_is_erased_listed_again_and_the_live_call_asks_the_user() {
    let app = TestApp::new().await;
    let (login, _) = greatday_card(&app, json!({"WithMFAQuestions": true})).await;
    // Wrong answers to every question, the one answered at connection included.
    let wrong: Vec<Value> = ENGLISH
        .iter()
        .map(|q| json!({"Question": q, "Answer": "Atlantis"}))
        .collect();
    let stored = answer_questions(&app, json!({"LoginId": login, "Questions": wrong})).await;
    assert_eq!(stored.status.as_u16(), 200, "{:#}", stored.json);
    assert!(
        listed(&questions(&app, login).await).is_empty(),
        "stored unchecked"
    );

    // The live refresh meets the wrong answer: it is erased and the user is asked (203).
    let challenge = live_refresh(&app, login).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = prompt_of(&challenge);
    assert_eq!(
        listed(&questions(&app, login).await),
        std::slice::from_ref(&prompt)
    );
    // Answered right, it is kept again: the next live refresh is not asked.
    let done = answer(&app, &challenge, answer_to(&prompt)).await;
    assert_eq!(done.status.as_u16(), 200, "{:#}", done.json);
    assert!(listed(&questions(&app, login).await).is_empty());
    let again = live_refresh(&app, login).await;
    assert_eq!(again.status.as_u16(), 200, "{:#}", again.json);
}

#[tokio::test]
async fn the_nightly_refresh_erases_a_wrong_stored_answer_and_lists_the_card() {
    let app = TestApp::new().await;
    let (login, _) = greatday_card(
        &app,
        json!({"WithMFAQuestions": true, "ScheduleRefresh": true}),
    )
    .await;
    let wrong: Vec<Value> = ENGLISH
        .iter()
        .map(|q| json!({"Question": q, "Answer": "Atlantis"}))
        .collect();
    answer_questions(&app, json!({"LoginId": login, "Questions": wrong})).await;
    let token = app.toolbox_token().await;
    app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    advance_toolbox(&app, Duration::from_secs(24 * 3600)).await;
    let status = app
        .send(request(
            "GET",
            &path(TOOLBOX_CUSTOMER, "GetNightlyRefreshStatus"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        ))
        .await;
    let card = &status.json["IneligibleCards"][0];
    assert_eq!(card["LoginId"], login.to_string(), "{:#}", status.json);
    assert_eq!(card["LastRefreshState"], "AnsweringSecurityChallenge");
    assert_eq!(card["LastRefreshErrorCode"], "INVALID_SECURITY_RESPONSE");
    assert_eq!(card["Reason"], "security_answer_wrong");
    assert_eq!(
        listed(&questions(&app, login).await).len(),
        1,
        "the wrong one is listed again"
    );
}

#[tokio::test]
async fn get_mfa_questions_refuses_every_bad_input() {
    let app = TestApp::new().await;
    let (plain, _) = greatday_card(&app, json!({})).await;
    let (enrolled, _) = greatday_card(&app, json!({"WithMFAQuestions": true})).await;
    let (other, _, other_key) = app.customer_with("toolbox", true, true).await;
    let get = |login: String, headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send(request(
                "GET",
                &format!("{}/{login}", path(TOOLBOX_CUSTOMER, "GetMFAQuestions")),
                &headers,
                "",
            ))
            .await
        }
    };
    let key = || vec![("x-api-key", TOOLBOX_API_KEY.to_owned())];
    get(enrolled.to_string(), vec![])
        .await
        .assert_error(401, "UNAUTHORIZED", "api_key_missing");
    get(enrolled.to_string(), vec![("x-api-key", other_key.clone())])
        .await
        .assert_error(401, "UNAUTHORIZED", "api_key_invalid");
    get(LoginId::new_random().to_string(), key())
        .await
        .assert_error(400, "INVALID_LOGIN", "login_not_found");
    get("card-1".to_owned(), key())
        .await
        .assert_error(400, "INVALID_LOGIN", "login_not_found");
    get("undefined".to_owned(), key())
        .await
        .assert_error(400, "INVALID_LOGIN", "path_placeholder");
    let not_collected = get(plain.to_string(), key()).await;
    not_collected.assert_error(400, "INVALID_REQUEST", "mfa_questions_not_collected");
    assert!(
        not_collected.hint().contains("WithMFAQuestions"),
        "{}",
        not_collected.hint()
    );
    // Another customer's view of the card: not found.
    let foreign = app
        .send(request(
            "GET",
            &format!("{}/{enrolled}", path(other, "GetMFAQuestions")),
            &[("x-api-key", &other_key)],
            "",
        ))
        .await;
    foreign.assert_error(400, "INVALID_LOGIN", "login_not_found");
    // A deleted card: not found.
    app.delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &enrolled.to_string())
        .await;
    get(enrolled.to_string(), key())
        .await
        .assert_error(400, "INVALID_LOGIN", "login_not_found");
    // WithMFAQuestions without Save keeps nothing, and says so.
    let token = app.toolbox_token().await;
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"Institution": "FlinksCapital", "Username": "greatday_nomfa", "Password": "Everyday", "WithMFAQuestions": true})
                .to_string(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers().get("x-bankgate-ignored-fields").unwrap(),
        "WithMFAQuestions"
    );
}

#[tokio::test]
async fn answer_mfa_questions_refuses_every_bad_input_and_writes_nothing() {
    let app = TestApp::new().await;
    let (login, asked) = greatday_card(&app, json!({"WithMFAQuestions": true})).await;
    let (plain, _) = greatday_card(&app, json!({})).await;
    let other = ENGLISH.into_iter().find(|q| *q != asked).unwrap();
    let good = json!({"Question": other, "Answer": answer_to(other)});
    let cases = [
        (
            json!({"Questions": [good]}),
            400,
            "INVALID_REQUEST",
            "login_id_missing",
        ),
        (
            json!({"LoginId": "card-1", "Questions": [good]}),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            json!({"LoginId": LoginId::new_random(), "Questions": [good]}),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            json!({"LoginId": plain, "Questions": [good]}),
            400,
            "INVALID_REQUEST",
            "mfa_questions_not_collected",
        ),
        (
            json!({"LoginId": login}),
            400,
            "INVALID_REQUEST",
            "mfa_questions_missing",
        ),
        (
            json!({"LoginId": login, "Questions": []}),
            400,
            "INVALID_REQUEST",
            "mfa_questions_missing",
        ),
        (
            json!({"LoginId": login, "Questions": "Montreal"}),
            400,
            "INVALID_REQUEST",
            "body_invalid",
        ),
        (
            json!({"LoginId": login, "Questions": [good, "Montreal"]}),
            400,
            "INVALID_REQUEST",
            "body_invalid",
        ),
        (
            json!({"LoginId": login, "Questions": [good, {"Question": "Favourite colour?", "Answer": "Blue"}]}),
            400,
            "INVALID_REQUEST",
            "mfa_question_unknown",
        ),
        (
            json!({"LoginId": login, "Questions": [good, {"Question": other}]}),
            400,
            "INVALID_REQUEST",
            "mfa_answer_missing",
        ),
        (
            json!({"LoginId": login, "Questions": [{"Question": other, "Answer": "  "}]}),
            400,
            "INVALID_REQUEST",
            "mfa_answer_missing",
        ),
    ];
    for (body, status, code, reason) in cases {
        let reply = answer_questions(&app, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {:#}", reply.json);
        reply.assert_error(status, code, reason);
    }
    let unknown = answer_questions(
        &app,
        json!({"LoginId": login, "Questions": [{"Question": "Favourite colour?", "Answer": "Blue"}]}),
    )
    .await;
    assert!(
        unknown.hint().contains(other),
        "the hint lists the card's questions: {}",
        unknown.hint()
    );
    let no_key = patch(
        &app,
        "AnswerMFAQuestions",
        &[],
        &json!({"LoginId": login, "Questions": [good]}).to_string(),
    )
    .await;
    no_key.assert_error(401, "UNAUTHORIZED", "api_key_missing");
    // Nothing was written: both questions are still listed.
    assert_eq!(listed(&questions(&app, login).await).len(), 2);
}

#[tokio::test]
async fn the_sdk_collects_lists_and_answers_the_questions_and_reads_the_nightly_status() {
    use bankgate_client::{ApiKey, Authorization, AuthorizeRequest, SecretKey};
    let app = TestApp::new().await;
    let (client, _served) = app.client().await;
    let secret = SecretKey::new(TOOLBOX_SECRET);
    let api_key = ApiKey::new(TOOLBOX_API_KEY);
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let request = AuthorizeRequest::live("FlinksCapital", "Greatday", "Everyday")
        .with_mfa_questions()
        .schedule_refresh(true);
    let Authorization::Mfa(mfa) = client.authorize(token, request).await.unwrap() else {
        panic!("Greatday is asked a question");
    };
    let asked = mfa.challenges[0].prompt.clone();
    let answers = [(asked.clone(), vec![answer_to(&asked).to_owned()])]
        .into_iter()
        .collect();
    let Authorization::Authorized(done) = client.answer_mfa(mfa, &answers).await.unwrap() else {
        panic!("a right answer authorizes");
    };
    assert!(done.login.is_scheduled_refresh);
    let login = done.login.id;
    let left = client.get_mfa_questions(&api_key, &login).await.unwrap();
    assert_eq!(left.len(), 2);
    let replies: Vec<(String, String)> = left
        .iter()
        .map(|q| (q.clone(), answer_to(q).to_owned()))
        .collect();
    assert_eq!(
        client
            .answer_mfa_questions(&api_key, &login, &replies)
            .await
            .unwrap(),
        "Answers updated"
    );
    assert!(
        client
            .get_mfa_questions(&api_key, &login)
            .await
            .unwrap()
            .is_empty()
    );
    let off = client
        .set_scheduled_refresh(&api_key, &login, false)
        .await
        .unwrap();
    assert_eq!(
        off,
        format!(
            "LoginId {} has now been deactivated for automatic refresh",
            login.as_str()
        )
    );
    client
        .set_scheduled_refresh(&api_key, &login, true)
        .await
        .unwrap();
    // Never read cached: the first night stops it.
    advance_toolbox(&app, Duration::from_secs(24 * 3600)).await;
    let status = client.get_nightly_refresh_status(&api_key).await.unwrap();
    assert_eq!(status.ineligible_cards.len(), 1);
    assert_eq!(status.ineligible_cards[0].login_id, login);
    assert_eq!(
        status.ineligible_cards[0].reason.as_deref(),
        Some("no_cached_call")
    );
    // A refusal comes back typed.
    let unknown = bankgate_client::LoginId::new(LoginId::new_random().to_string());
    let refused = client
        .get_mfa_questions(&api_key, &unknown)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("login_not_found"), "{refused}");
}
