//! The challenge types of the sandbox bank (docs/flinks-wire.md, "Challenge types"): each
//! scripted user's 203, its right answer, each kind of wrong answer, and the same users on the
//! Connect page.

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::connect::{act, login, to_credentials};
use crate::support::*;

const CAR: &str = "What was the colour of your first car?";
const CITIES: &str = "Which of these cities have you lived in? Choose all that apply.";
const TEXT_OR_CALL: &str = "How would you like to receive your verification code?";
const BY_TEXT: &str = "Enter the verification code we sent you by text message";
const BY_CALL: &str = "Enter the verification code we gave you by phone call";
const IMAGE: &str = "Select your personal image";
const CITY: &str = "What city were you born in?";
const COUNTRY: &str = "What is the best country on earth?";
const SHAPE: &str = "What shape do people like most?";

fn authorize_uri() -> String {
    path(TOOLBOX_CUSTOMER, "Authorize")
}

/// A live login of a scripted user, with a fresh token.
async fn log_in(app: &TestApp, username: &str, language: &str) -> Reply {
    let body = json!({
        "Institution": "FlinksCapital",
        "Username": username,
        "Password": "Everyday",
        "Save": true,
        "Language": language,
    })
    .to_string();
    let token = app.toolbox_token().await;
    app.post(&authorize_uri(), &[("flinks-auth-key", &token)], &body)
        .await
}

/// An answer to the pending step (no token: it may be left out).
async fn answer(app: &TestApp, challenge: &Reply, responses: Value) -> Reply {
    let body = json!({
        "RequestId": challenge.json["RequestId"],
        "SecurityResponses": responses,
    })
    .to_string();
    app.post(&authorize_uri(), &[], &body).await
}

fn iterables(reply: &Reply, i: usize) -> Vec<String> {
    reply.json["SecurityChallenges"][i]["Iterables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_authorized(reply: &Reply, username: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_eq!(reply.json["Login"]["Username"], username);
}

/// A refused wrong answer, its Hint naming what was seen; the RequestId has ended.
async fn assert_wrong(
    app: &TestApp,
    challenge: &Reply,
    responses: Value,
    reason: &str,
    seen: &[&str],
) {
    let reply = answer(app, challenge, responses.clone()).await;
    reply.assert_error(401, "INVALID_SECURITY_RESPONSE", reason);
    assert_eq!(reply.json["RequestId"], challenge.json["RequestId"]);
    for text in seen {
        assert!(
            reply.hint().contains(text),
            "{responses}: the hint {:?} does not name {text:?}",
            reply.hint()
        );
    }
    answer(app, challenge, responses).await.assert_error(
        400,
        "SESSION_NONEXISTENT",
        "request_id_unknown",
    );
}

#[tokio::test]
async fn multiple_choice_takes_one_value_from_iterables() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_choice", "en").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    assert_envelope(&challenge);
    insta::assert_json_snapshot!(challenge.json, { ".RequestId" => "[request-id]" }, @r#"
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
          "Type": "MultipleChoice",
          "Prompt": "What was the colour of your first car?",
          "Iterables": [
            "Red",
            "Blue",
            "Green",
            "Black"
          ]
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    // Words match ignoring case and spaces, like the answers to questions.
    let done = answer(&app, &challenge, json!({ CAR: [" blue "] })).await;
    assert_authorized(&done, "test_mfa_choice");

    let challenge = log_in(&app, "test_mfa_choice", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ CAR: ["Purple"] }),
        "security_response_not_offered",
        &["\"Purple\"", CAR, "Iterables"],
    )
    .await;
    let challenge = log_in(&app, "test_mfa_choice", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ CAR: ["Red", "Blue"] }),
        "security_response_count",
        &[CAR, "takes 1 value", "2 different values"],
    )
    .await;
    let challenge = log_in(&app, "test_mfa_choice", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ CAR: ["Red"] }),
        "security_response_invalid",
        &["\"Red\"", CAR],
    )
    .await;

    // French: French prompt and words.
    let challenge = log_in(&app, "test_mfa_choice", "fr").await;
    let prompt = "Quelle était la couleur de votre première voiture?";
    assert_eq!(challenge.json["SecurityChallenges"][0]["Prompt"], prompt);
    assert_eq!(iterables(&challenge, 0), ["Rouge", "Bleu", "Vert", "Noir"]);
    let done = answer(&app, &challenge, json!({ prompt: ["Bleu"] })).await;
    assert_authorized(&done, "test_mfa_choice");

    // A live refresh of the saved LoginId asks the same challenge.
    let login = done.json["Login"]["Id"].as_str().unwrap();
    let token = app.toolbox_token().await;
    let refresh = app
        .post(
            &authorize_uri(),
            &[("flinks-auth-key", &token)],
            &json!({ "LoginId": login, "MostRecentCached": false }).to_string(),
        )
        .await;
    assert_eq!(refresh.status.as_u16(), 203, "{:#}", refresh.json);
    assert_eq!(
        refresh.json["SecurityChallenges"][0]["Type"],
        "MultipleChoice"
    );
    let done = answer(&app, &refresh, json!({ prompt: ["Bleu"] })).await;
    assert_authorized(&done, "test_mfa_choice");
}

#[tokio::test]
async fn multiple_answers_are_every_right_value_in_any_order() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_choices", "en").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    insta::assert_json_snapshot!(challenge.json, { ".RequestId" => "[request-id]" }, @r#"
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
          "Type": "MultipleChoiceMultipleAnswers",
          "Prompt": "Which of these cities have you lived in? Choose all that apply.",
          "Iterables": [
            "Montreal",
            "Toronto",
            "Vancouver",
            "Calgary",
            "Halifax"
          ]
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    let done = answer(
        &app,
        &challenge,
        json!({ CITIES: ["Vancouver", "montreal"] }),
    )
    .await;
    assert_authorized(&done, "test_mfa_choices");

    for (values, reason, seen) in [
        (
            json!(["Montreal"]),
            "security_response_count",
            &["takes 2 values", "1 different value was sent"][..],
        ),
        (
            json!(["Montreal", "Toronto", "Vancouver"]),
            "security_response_count",
            &["3 different values"][..],
        ),
        (
            json!(["Montreal", "Paris"]),
            "security_response_not_offered",
            &["\"Paris\""][..],
        ),
        (
            json!(["Montreal", "Toronto"]),
            "security_response_invalid",
            &["\"Montreal\" + \"Toronto\""][..],
        ),
    ] {
        let challenge = log_in(&app, "test_mfa_choices", "en").await;
        assert_wrong(&app, &challenge, json!({ CITIES: values }), reason, seen).await;
    }
}

#[tokio::test]
async fn text_or_call_asks_for_the_code_on_the_same_request_id() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_text_or_call", "en").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    insta::assert_json_snapshot!(challenge.json, { ".RequestId" => "[request-id]" }, @r#"
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
          "Type": "TextOrCall",
          "Prompt": "How would you like to receive your verification code?",
          "Iterables": [
            "Text",
            "Call"
          ]
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    let code = answer(&app, &challenge, json!({ TEXT_OR_CALL: ["Text"] })).await;
    assert_eq!(code.status.as_u16(), 203, "{:#}", code.json);
    assert_eq!(code.json["RequestId"], challenge.json["RequestId"]);
    insta::assert_json_snapshot!(code.json, { ".RequestId" => "[request-id]" }, @r#"
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
          "Prompt": "Enter the verification code we sent you by text message"
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    // The choice is no longer what is asked.
    let again = answer(&app, &code, json!({ TEXT_OR_CALL: ["Text"] })).await;
    again.assert_error(401, "UNKNOWN_CHALLENGE_KEY", "unknown_challenge_key");
    assert!(again.hint().contains(BY_TEXT), "{}", again.hint());
    let done = answer(&app, &code, json!({ BY_TEXT: ["123456"] })).await;
    assert_authorized(&done, "test_mfa_text_or_call");

    // By phone call, another prompt; a wrong code ends the RequestId.
    let challenge = log_in(&app, "test_mfa_text_or_call", "en").await;
    let code = answer(&app, &challenge, json!({ TEXT_OR_CALL: "call" })).await;
    assert_eq!(code.json["SecurityChallenges"][0]["Prompt"], BY_CALL);
    assert_wrong(
        &app,
        &code,
        json!({ BY_CALL: ["000000"] }),
        "security_response_invalid",
        &[BY_CALL],
    )
    .await;
    let challenge = log_in(&app, "test_mfa_text_or_call", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ TEXT_OR_CALL: ["Fax"] }),
        "security_response_not_offered",
        &["\"Fax\""],
    )
    .await;
    let challenge = log_in(&app, "test_mfa_text_or_call", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ TEXT_OR_CALL: ["Text", "Call"] }),
        "security_response_count",
        &["takes 1 value"],
    )
    .await;

    // French: the values stay Text and Call.
    let challenge = log_in(&app, "test_mfa_text_or_call", "fr").await;
    assert_eq!(iterables(&challenge, 0), ["Text", "Call"]);
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"].clone();
    let code = answer(
        &app,
        &challenge,
        json!({ prompt.as_str().unwrap(): ["Text"] }),
    )
    .await;
    let code_prompt = "Entrez le code de vérification envoyé par message texte";
    assert_eq!(code.json["SecurityChallenges"][0]["Prompt"], code_prompt);
    let done = answer(&app, &code, json!({ code_prompt: ["123456"] })).await;
    assert_authorized(&done, "test_mfa_text_or_call");
}

#[tokio::test]
async fn image_selection_sends_png_images_and_takes_the_chosen_one() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_image", "en").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    insta::assert_json_snapshot!(challenge.json, {
        ".RequestId" => "[request-id]",
        ".SecurityChallenges[0].Iterables[]" => "[base64 png]",
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
          "Type": "ImageSelection",
          "Prompt": "Select your personal image",
          "Iterables": [
            "[base64 png]",
            "[base64 png]",
            "[base64 png]",
            "[base64 png]"
          ]
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    let images = iterables(&challenge, 0);
    assert_eq!(images.len(), 4);
    for image in &images {
        let png = base64::engine::general_purpose::STANDARD
            .decode(image)
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a real PNG");
        assert_eq!(&png[12..16], b"IHDR");
    }
    let done = answer(&app, &challenge, json!({ IMAGE: [images[1]] })).await;
    assert_authorized(&done, "test_mfa_image");

    let challenge = log_in(&app, "test_mfa_image", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ IMAGE: [images[0]] }),
        "security_response_invalid",
        &["\"Red square\"", IMAGE],
    )
    .await;
    // An image that is not offered: the hint shows the start of what was sent.
    let other = base64::engine::general_purpose::STANDARD
        .encode(b"\x89PNG\r\n\x1a\nan image this challenge never offered");
    let challenge = log_in(&app, "test_mfa_image", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ IMAGE: [other] }),
        "security_response_not_offered",
        &[&other[..20], "…"],
    )
    .await;
    let challenge = log_in(&app, "test_mfa_image", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ IMAGE: [images[1], images[2]] }),
        "security_response_count",
        &["takes 1 value"],
    )
    .await;
}

#[tokio::test]
async fn three_questions_are_answered_in_one_call() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_triple", "en").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    insta::assert_json_snapshot!(challenge.json, { ".RequestId" => "[request-id]" }, @r#"
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
          "Prompt": "What city were you born in?"
        },
        {
          "Type": "QuestionAndAnswer",
          "Prompt": "What is the best country on earth?"
        },
        {
          "Type": "QuestionAndAnswer",
          "Prompt": "What shape do people like most?"
        }
      ],
      "Institution": "FlinksCapital",
      "RequestId": "[request-id]"
    }
    "#);
    // A missing prompt: not all answered, and the step waits.
    let partial = answer(
        &app,
        &challenge,
        json!({ CITY: ["Montreal"], COUNTRY: ["Canada"] }),
    )
    .await;
    partial.assert_error(
        401,
        "SECURITYRESPONSES_INCOMPLETE",
        "security_responses_incomplete",
    );
    assert!(partial.hint().contains("2 of the 3"), "{}", partial.hint());
    let unknown = answer(&app, &challenge, json!({ "What is your name?": ["Bob"] })).await;
    unknown.assert_error(401, "UNKNOWN_CHALLENGE_KEY", "unknown_challenge_key");
    let done = answer(
        &app,
        &challenge,
        json!({ CITY: ["Montreal"], COUNTRY: ["canada"], SHAPE: "Triangle" }),
    )
    .await;
    assert_authorized(&done, "test_mfa_triple");

    let challenge = log_in(&app, "test_mfa_triple", "en").await;
    assert_wrong(
        &app,
        &challenge,
        json!({ CITY: ["Montreal"], COUNTRY: ["France"], SHAPE: ["Triangle"] }),
        "security_response_invalid",
        &[COUNTRY],
    )
    .await;
}

// ---- the Connect page ----

/// Logs a scripted user in on the Connect page (language `lang`), at its MFA screen.
async fn connect_mfa(app: &TestApp, username: &str, lang: &str) -> crate::connect::Page {
    let page = to_credentials(app, &format!("&language={lang}")).await;
    let page = login(app, &page, username, "Everyday").await;
    assert_eq!(page.screen(), "mfa", "{username}");
    page
}

fn load_mfa(page: &crate::connect::Page) -> Value {
    page.events()
        .into_iter()
        .find(|e| {
            e["step"]
                .as_str()
                .is_some_and(|s| s.starts_with("COMPONENT_LOAD_MFA"))
        })
        .unwrap()
}

#[tokio::test]
async fn each_challenge_type_has_its_screen_and_a_wrong_answer_retries_there() {
    let app = TestApp::new().await;

    // Radio buttons, labelled; a wrong choice comes back to the same screen.
    let page = connect_mfa(&app, "test_mfa_choice", "en").await;
    assert_eq!(
        load_mfa(&page),
        json!({ "step": "COMPONENT_LOAD_MFA", "institution": "FlinksCapital", "mfaTypes": ["MultipleChoice"] })
    );
    assert!(
        page.body
            .contains("<legend>What was the colour of your first car?</legend>")
    );
    assert!(
        page.body
            .contains(r#"<input type="radio" id="answer_0_1" name="answer_0" value="1" required>"#)
    );
    assert!(
        page.body
            .contains(r#"<label class="choice" for="answer_0_1">"#)
    );
    assert!(!page.body.contains("autofocus"));
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "0")]).await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(
        page.steps(),
        [
            "SUBMIT_MFA",
            "INVALID_SECURITY_RESPONSE",
            "COMPONENT_LOAD_MFA_RETRY"
        ]
    );
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["MultipleChoice"]));
    assert!(page.alert().unwrap().contains("Try again"));
    // Nothing chosen: asked again, nothing sent to the bank.
    let page = act(&app, &page, &[("action", "submit_mfa")]).await;
    assert_eq!(page.steps(), ["SUBMIT_MFA", "COMPONENT_LOAD_MFA_RETRY"]);
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "1")]).await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());

    // Checkboxes, several ticked.
    let page = connect_mfa(&app, "test_mfa_choices", "fr").await;
    assert_eq!(
        load_mfa(&page)["mfaTypes"],
        json!(["MultipleChoiceMultipleAnswers"])
    );
    assert!(
        page.body
            .contains(r#"<input type="checkbox" id="answer_0_2" name="answer_0" value="2">"#)
    );
    assert!(page.body.contains("Choisissez toutes les réponses"));
    assert!(page.body.contains("<span>Montréal</span>"));
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "0")]).await;
    assert_eq!(page.screen(), "mfa");
    assert!(page.alert().unwrap().contains("Réessayez"));
    let page = act(
        &app,
        &page,
        &[
            ("action", "submit_mfa"),
            ("answer_0", "2"),
            ("answer_0", "0"),
        ],
    )
    .await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());

    // The choice, then the code on the next screen.
    let page = connect_mfa(&app, "test_mfa_text_or_call", "en").await;
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["TextOrCall"]));
    assert!(page.body.contains("<span>Text message</span>"));
    assert!(page.body.contains(r#"name="mfa_step" value="0""#));
    let choice = [
        ("action", "submit_mfa"),
        ("mfa_step", "0"),
        ("answer_0", "1"),
    ];
    let page = act(&app, &page, &choice).await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(page.steps(), ["SUBMIT_MFA", "COMPONENT_LOAD_MFA"]);
    assert!(page.body.contains(r#"name="mfa_step" value="1""#));
    // The choice's form posted again (a double submit): the code screen stays, untouched.
    let page = act(&app, &page, &choice).await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(page.steps(), ["COMPONENT_LOAD_MFA"]);
    assert_eq!(page.alert(), None);
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["QuestionAndAnswer"]));
    assert!(
        page.body
            .contains(&format!(r#"<label for="answer_0">{BY_CALL}</label>"#))
    );
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", "111111")],
    )
    .await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(
        page.steps(),
        [
            "SUBMIT_MFA",
            "INVALID_SECURITY_RESPONSE",
            "COMPONENT_LOAD_MFA_RETRY"
        ]
    );
    assert!(page.body.contains(BY_CALL), "the code screen again");
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", "123456")],
    )
    .await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());

    // An image grid: each image a labelled radio button with alt text.
    let page = connect_mfa(&app, "test_mfa_image", "fr").await;
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["ImageSelection"]));
    assert!(page.body.contains(r#"class="choices images""#));
    assert_eq!(page.body.matches("src=\"data:image/png;base64,").count(), 4);
    assert!(page.body.contains(r#"alt="Cercle bleu""#));
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "1")]).await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());

    // Three questions on one screen; one left blank asks again.
    let page = connect_mfa(&app, "test_mfa_triple", "en").await;
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["QuestionAndAnswer"]));
    for (i, prompt) in [CITY, COUNTRY, SHAPE].iter().enumerate() {
        assert!(
            page.body
                .contains(&format!(r#"<label for="answer_{i}">{prompt}</label>"#))
        );
    }
    let page = act(
        &app,
        &page,
        &[
            ("action", "submit_mfa"),
            ("answer_0", "Montreal"),
            ("answer_1", "Canada"),
        ],
    )
    .await;
    assert_eq!(page.steps(), ["SUBMIT_MFA", "COMPONENT_LOAD_MFA_RETRY"]);
    let page = act(
        &app,
        &page,
        &[
            ("action", "submit_mfa"),
            ("answer_0", "Montreal"),
            ("answer_1", "Canada"),
            ("answer_2", "Circle"),
        ],
    )
    .await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(page.steps()[1], "INVALID_SECURITY_RESPONSE");
    let page = act(
        &app,
        &page,
        &[
            ("action", "submit_mfa"),
            ("answer_0", "Montreal"),
            ("answer_1", "Canada"),
            ("answer_2", "Triangle"),
        ],
    )
    .await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());
}

/// The same choice sent twice at once (a client's retry racing its first try): the exchange goes
/// on to the code, and neither answer is told it ended.
#[tokio::test]
async fn a_choice_sent_twice_at_once_moves_the_step_on_once() {
    let app = TestApp::new().await;
    for _ in 0..5 {
        let challenge = log_in(&app, "test_mfa_text_or_call", "en").await;
        let pick = json!({ TEXT_OR_CALL: ["Text"] });
        let (first, second) = tokio::join!(
            answer(&app, &challenge, pick.clone()),
            answer(&app, &challenge, pick.clone())
        );
        let mut asked_code = 0;
        for reply in [&first, &second] {
            match reply.status.as_u16() {
                203 => {
                    assert_eq!(reply.json["SecurityChallenges"][0]["Prompt"], BY_TEXT);
                    asked_code += 1;
                }
                // It came after the step moved on: its key is no longer asked.
                _ => reply.assert_error(401, "UNKNOWN_CHALLENGE_KEY", "unknown_challenge_key"),
            }
        }
        assert!(asked_code >= 1, "{:#} {:#}", first.json, second.json);
        let done = answer(&app, &challenge, json!({ BY_TEXT: ["123456"] })).await;
        assert_authorized(&done, "test_mfa_text_or_call");
    }
}

/// A step started through /Authorize (the code of TextOrCall, reached through the API) resumes
/// on the Connect page with `requestId`, on its own screen.
#[tokio::test]
async fn the_connect_page_resumes_a_challenge_started_through_the_api() {
    let app = TestApp::new().await;
    let challenge = log_in(&app, "test_mfa_image", "en").await;
    let request_id = challenge.json["RequestId"].as_str().unwrap().to_owned();
    let token = app.toolbox_token().await;
    let page = crate::connect::open(
        &app,
        crate::connect::IFRAME,
        &format!("authorizeToken={token}&requestId={request_id}"),
        None,
    )
    .await;
    assert_eq!(page.screen(), "mfa", "{}", page.body);
    assert_eq!(load_mfa(&page)["mfaTypes"], json!(["ImageSelection"]));
    assert_eq!(page.body.matches("data:image/png;base64,").count(), 4);
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "1")]).await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());

    // The code step of TextOrCall, after the choice was made through the API.
    let challenge = log_in(&app, "test_mfa_text_or_call", "fr").await;
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"].clone();
    let code = answer(
        &app,
        &challenge,
        json!({ prompt.as_str().unwrap(): ["Call"] }),
    )
    .await;
    assert_eq!(code.status.as_u16(), 203);
    let token = app.toolbox_token().await;
    let page = crate::connect::open(
        &app,
        crate::connect::IFRAME,
        &format!(
            "authorizeToken={token}&language=fr&requestId={}",
            code.json["RequestId"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(page.screen(), "mfa", "{}", page.body);
    assert!(
        page.body
            .contains("Entrez le code de vérification reçu par appel téléphonique")
    );
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", "123456")],
    )
    .await;
    assert_eq!(page.screen(), "success", "{:?}", page.steps());
}
