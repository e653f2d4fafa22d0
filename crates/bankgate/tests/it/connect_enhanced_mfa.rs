//! The Connect page's `enhancedMFA` and `skipEnhancedMFA`: the card the page connects keeps its
//! security questions, and a step after the login collects the answers still missing (stored as
//! AnswerMFAQuestions stores them, listed by GetMFAQuestions until then).

use bankgate_core::LoginId;
use serde_json::Value;

use crate::connect::{Page, act, answer_for, login, prompt_of, to_credentials};
use crate::enhanced_mfa::{listed, live_refresh, questions};
use crate::support::*;

/// The labels of the security-question fields shown, with their field names.
fn fields(page: &Page) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = page.body.as_str();
    while let Some(at) = rest.find("<label for=\"question_") {
        rest = &rest[at + "<label for=\"".len()..];
        let name = rest[..rest.find('"').unwrap()].to_owned();
        let text_start = rest.find('>').unwrap() + 1;
        let text_end = rest[text_start..].find('<').unwrap() + text_start;
        let label = rest[text_start..text_end].replace("&#x27;", "'");
        found.push((name, label));
    }
    found
}

/// The `<input>` tag of a field.
fn input<'a>(page: &'a Page, name: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("<input type=\"text\" id=\"{name}\""))
        .unwrap_or_else(|| panic!("no field {name}: {}", page.body));
    let end = page.body[start..].find('>').unwrap() + start;
    &page.body[start..=end]
}

/// Logs `username` in through the page opened with `extra`, answering its MFA if asked.
async fn through_login(app: &TestApp, extra: &str, username: &str) -> Page {
    let page = to_credentials(app, extra).await;
    let mut page = login(app, &page, username, "Everyday").await;
    if page.screen() == "mfa" {
        // Every question on the screen (test_mfa_triple asks all three at once).
        let mut answers = vec![("action".to_owned(), "submit_mfa".to_owned())];
        let mut i = 0;
        while let Some(at) = page.body.find(&format!("<label for=\"answer_{i}\">")) {
            let start = at + format!("<label for=\"answer_{i}\">").len();
            let end = page.body[start..].find('<').unwrap() + start;
            let prompt = page.body[start..end].replace("&#x27;", "'");
            answers.push((format!("answer_{i}"), answer_for(&prompt).to_owned()));
            i += 1;
        }
        assert!(i > 0, "{}", prompt_of(&page));
        let answers: Vec<(&str, &str)> = answers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        page = act(app, &page, &answers).await;
    }
    page
}

fn login_id_of(page: &Page) -> LoginId {
    let redirect = page
        .events()
        .into_iter()
        .find(|e| e["step"] == "REDIRECT")
        .unwrap_or_else(|| panic!("no REDIRECT: {}", page.body));
    redirect["loginId"].as_str().unwrap().parse().unwrap()
}

fn has_step(page: &Page, step: &str) -> bool {
    page.events().iter().any(|e: &Value| e["step"] == step)
}

/// Answers every field shown with the sandbox's right answer.
async fn answer_all(app: &TestApp, page: &Page) -> Page {
    let shown = fields(page);
    let mut form = vec![("action".to_owned(), "submit_security_answers".to_owned())];
    form.extend(
        shown
            .iter()
            .map(|(name, label)| (name.clone(), answer_for(label).to_owned())),
    );
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    act(app, page, &form).await
}

#[tokio::test]
async fn the_step_asks_the_questions_left_and_stores_the_answers() {
    let app = TestApp::new().await;
    let page = through_login(&app, "&enhancedMFA=true", "Greatday").await;
    assert_eq!(page.screen(), "security_questions", "{}", page.body);
    assert!(
        has_step(&page, "ENHANCED_MFA_HAS_QUESTIONS"),
        "{:?}",
        page.steps()
    );
    assert!(page.body.contains("<h1>Security questions</h1>"));
    // The two questions not asked at the login, each its own labelled field; no Skip button.
    let shown = fields(&page);
    assert_eq!(shown.len(), 2, "{shown:?}");
    for (name, _) in &shown {
        let tag = input(&page, name);
        assert!(tag.contains(&format!("name=\"{name}\"")) && tag.contains("required"));
        assert!(
            !tag.contains("autofocus") && !tag.contains("aria-invalid"),
            "{tag}"
        );
    }
    assert!(!page.body.contains("skip_security_answers"));
    let page = answer_all(&app, &page).await;
    assert_eq!(page.screen(), "success", "{}", page.body);
    assert!(!has_step(&page, "ENHANCED_MFA_NO_QUESTIONS"));
    let login_id = login_id_of(&page);
    assert!(listed(&questions(&app, login_id).await).is_empty());
    // The stored answers answer the bank at the next live refresh: no 203.
    let reply = live_refresh(&app, login_id).await;
    assert_eq!(reply.status.as_u16(), 200, "{:#}", reply.json);
}

#[tokio::test]
async fn a_blank_answer_is_refused_on_its_field_and_nothing_is_stored() {
    let app = TestApp::new().await;
    let page = through_login(&app, "&enhancedMFA=true&skipEnhancedMFA=true", "Greatday").await;
    let shown = fields(&page);
    let (first, second) = (&shown[0], &shown[1]);
    for blank in ["", "   "] {
        let refused = act(
            &app,
            &page,
            &[
                ("action", "submit_security_answers"),
                (first.0.as_str(), answer_for(&first.1)),
                (second.0.as_str(), blank),
            ],
        )
        .await;
        assert_eq!(refused.screen(), "security_questions", "{}", refused.body);
        assert_eq!(
            refused.alert().as_deref(),
            Some("Answer every question to continue.")
        );
        // The blank field is in error, described by the alert, and takes the focus.
        let tag = input(&refused, &second.0);
        assert!(
            tag.contains("aria-invalid=\"true\"") && tag.contains("aria-describedby=\"notice\""),
            "{tag}"
        );
        assert!(tag.contains("data-focus"), "{tag}");
        let tag = input(&refused, &first.0);
        assert!(
            !tag.contains("aria-invalid") && !tag.contains("data-focus"),
            "{tag}"
        );
        assert_eq!(fields(&refused), shown);
    }
    // Skipped now: the answer typed with the blank one was not stored.
    let page = act(&app, &page, &[("action", "skip_security_answers")]).await;
    assert_eq!(page.screen(), "success", "{}", page.body);
    let listed = listed(&questions(&app, login_id_of(&page)).await);
    let labels: Vec<String> = shown.iter().map(|(_, label)| label.clone()).collect();
    assert_eq!(listed, labels);
}

#[tokio::test]
async fn skip_goes_on_without_answers_and_only_when_allowed() {
    let app = TestApp::new().await;
    // Without skipEnhancedMFA, a posted skip does not move the flow.
    let page = through_login(&app, "&enhancedMFA=true", "greatday_nomfa").await;
    assert_eq!(page.screen(), "security_questions", "{}", page.body);
    let stayed = act(&app, &page, &[("action", "skip_security_answers")]).await;
    assert_eq!(stayed.screen(), "security_questions", "{}", stayed.body);
    // A login without MFA leaves all three questions to ask.
    assert_eq!(fields(&page).len(), 3);

    let page = through_login(
        &app,
        "&enhancedMFA=true&skipEnhancedMFA=true&accountSelectorEnable=true",
        "Greatday",
    )
    .await;
    assert!(
        page.body
            .contains("value=\"skip_security_answers\" class=\"secondary\" formnovalidate>Skip<")
    );
    let shown = fields(&page);
    let page = act(&app, &page, &[("action", "skip_security_answers")]).await;
    // On to account selection, then the end.
    assert_eq!(page.screen(), "accounts", "{}", page.body);
    let account = page.body.split("name=\"account\" value=\"").nth(1).unwrap();
    let account = &account[..account.find('"').unwrap()];
    let page = act(
        &app,
        &page,
        &[("action", "select_accounts"), ("account", account)],
    )
    .await;
    let login_id = login_id_of(&page);
    let labels: Vec<String> = shown.iter().map(|(_, label)| label.clone()).collect();
    assert_eq!(listed(&questions(&app, login_id).await), labels);
}

#[tokio::test]
async fn without_enhanced_mfa_nothing_is_asked_or_kept() {
    let app = TestApp::new().await;
    for extra in ["", "&enhancedMFA=false", "&skipEnhancedMFA=true"] {
        let page = through_login(&app, extra, "Greatday").await;
        assert_eq!(page.screen(), "success", "{extra}: {}", page.body);
        assert!(!page.steps().iter().any(|s| s.starts_with("ENHANCED_MFA")));
        questions(&app, login_id_of(&page)).await.assert_error(
            400,
            "INVALID_REQUEST",
            "mfa_questions_not_collected",
        );
    }
}

#[tokio::test]
async fn no_questions_left_after_the_logins_mfa_goes_straight_on() {
    let app = TestApp::new().await;
    // test_mfa_triple is asked all three questions at the login.
    let page = through_login(
        &app,
        "&enhancedMFA=true&skipEnhancedMFA=true",
        "test_mfa_triple",
    )
    .await;
    assert_eq!(page.screen(), "success", "{}", page.body);
    let steps = page.steps();
    let no = steps.iter().position(|s| s == "ENHANCED_MFA_NO_QUESTIONS");
    let redirect = steps.iter().position(|s| s == "REDIRECT");
    assert!(no.is_some() && no < redirect, "{steps:?}");
    assert!(!has_step(&page, "ENHANCED_MFA_HAS_QUESTIONS"));
    assert!(listed(&questions(&app, login_id_of(&page)).await).is_empty());
}

#[tokio::test]
async fn the_step_speaks_french() {
    let app = TestApp::new().await;
    let page = through_login(
        &app,
        "&enhancedMFA=true&skipEnhancedMFA=true&language=fr",
        "greatday_nomfa",
    )
    .await;
    assert_eq!(page.screen(), "security_questions", "{}", page.body);
    assert!(page.body.contains("<h1>Questions de sécurité</h1>"));
    assert!(page.body.contains(">Passer cette étape<"));
    let labels: Vec<String> = fields(&page).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        labels,
        [
            "Quelle est votre ville natale?",
            "Quel est le meilleur pays sur terre?",
            "Quelle forme les gens aiment-ils le plus?"
        ]
    );
    let refused = act(&app, &page, &[("action", "submit_security_answers")]).await;
    assert_eq!(
        refused.alert().as_deref(),
        Some("Répondez à chaque question pour continuer.")
    );
    let page = answer_all(&app, &page).await;
    assert_eq!(page.screen(), "success", "{}", page.body);
    assert!(listed(&questions(&app, login_id_of(&page)).await).is_empty());
}
