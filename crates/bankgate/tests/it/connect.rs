//! The Connect page in process: what a browser receives at each step (screen, events, headers),
//! the authorize token's life, parameters and their fallbacks. The real-browser runs are in
//! `connect_browser.rs`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bankgate_core::model::InstanceKind;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::*;

pub(crate) const IFRAME: &str = "toolbox-iframe.localhost:8080";

/// A Connect page as the browser got it.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    fn attr(&self, name: &str) -> Option<String> {
        let needle = format!("{name}=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(unescape(&self.body[start..end]))
    }

    pub(crate) fn screen(&self) -> String {
        self.attr("data-screen").unwrap_or_default()
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        serde_json::from_str(&self.attr("data-events").unwrap_or_default()).unwrap()
    }

    pub(crate) fn steps(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["step"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The session secret from the hidden form field.
    fn session(&self) -> String {
        let needle = "name=\"session\" value=\"";
        let start = self.body.find(needle).expect("no session field") + needle.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    fn cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The text of the alert shown, if any (the live region is there, empty, on every screen).
    pub(crate) fn alert(&self) -> Option<String> {
        let start = self.body.find("role=\"alert\"")?;
        let text_start = self.body[start..].find('>')? + start + 1;
        let end = self.body[text_start..].find('<')? + text_start;
        Some(unescape(&self.body[text_start..end])).filter(|text| !text.trim().is_empty())
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn fetch(app: &TestApp, request: Request<Body>) -> Page {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Page {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub(crate) async fn open(app: &TestApp, host: &str, query: &str, cookie: Option<&str>) -> Page {
    let mut builder = Request::builder()
        .method("GET")
        .uri(format!("/v2/?{query}"))
        .header(header::HOST, host);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    fetch(app, builder.body(Body::empty()).unwrap()).await
}

/// POSTs one step with the session in the form, as the page's forms do.
pub(crate) async fn act(app: &TestApp, page: &Page, fields: &[(&str, &str)]) -> Page {
    act_on(app, IFRAME, &page.session(), fields).await
}

async fn act_on(app: &TestApp, host: &str, session: &str, fields: &[(&str, &str)]) -> Page {
    let mut body = format!("session={session}");
    for (name, value) in fields {
        body.push_str(&format!("&{name}={}", value.replace(' ', "+")));
    }
    let request = Request::builder()
        .method("POST")
        .uri("/v2/")
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    fetch(app, request).await
}

pub(crate) fn answer_for(prompt: &str) -> &'static str {
    let p = prompt.to_lowercase();
    if p.contains("city") || p.contains("ville") {
        "Montreal"
    } else if p.contains("country") || p.contains("pays") {
        "Canada"
    } else {
        "Triangle"
    }
}

/// The MFA prompt shown (the label of the first answer field).
pub(crate) fn prompt_of(page: &Page) -> String {
    let needle = "<label for=\"answer_0\">";
    let start = page.body.find(needle).unwrap() + needle.len();
    let end = page.body[start..].find('<').unwrap() + start;
    unescape(&page.body[start..end])
}

/// Opens the page with a fresh token and goes to the credentials screen of FlinksCapital.
pub(crate) async fn to_credentials(app: &TestApp, extra: &str) -> Page {
    let token = app.toolbox_token().await;
    let page = open(
        app,
        IFRAME,
        &format!("demo=true&consentEnable=false&authorizeToken={token}{extra}"),
        None,
    )
    .await;
    assert_eq!(page.screen(), "institutions", "{}", page.body);
    let page = act(
        app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    assert_eq!(page.screen(), "credentials");
    page
}

pub(crate) async fn login(app: &TestApp, page: &Page, username: &str, password: &str) -> Page {
    act(
        app,
        page,
        &[
            ("action", "submit_credentials"),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

fn redirect_query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').unwrap().1;
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_token_is_spent_on_load_and_a_reload_with_the_cookie_resumes() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let query = format!("demo=true&authorizeToken={token}");
    let page = open(&app, IFRAME, &query, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.screen(), "consent");
    assert_eq!(page.steps(), ["APP_MOUNTED", "COMPONENT_LOAD_CONSENT"]);
    let cookie = page.cookie().unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=None",
        "Secure",
        "Partitioned",
        "Path=/",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(&token),
        "the cookie holds the session secret, not the token"
    );

    // Spent: /Authorize refuses it.
    let login = app.toolbox_login().await;
    app.authorize(TOOLBOX_CUSTOMER, &token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");

    // A step, then a reload of the same URL in the same browser: same screen.
    let page = act(&app, &page, &[("action", "accept_consent")]).await;
    assert_eq!(page.screen(), "institutions");
    let cookie_pair = cookie.split(';').next().unwrap();
    let reloaded = open(&app, IFRAME, &query, Some(cookie_pair)).await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert_eq!(reloaded.screen(), "institutions");
    assert_eq!(
        reloaded.steps(),
        ["APP_MOUNTED", "COMPONENT_LOAD_INSTITUTION_SELECTOR"]
    );

    // Another browser (no cookie) with the same URL: the token is used.
    let other = open(&app, IFRAME, &query, None).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert_eq!(other.screen(), "failed");
    assert_eq!(other.events()[1]["step"], "TOKEN_INVALID");
    assert_eq!(other.events()[1]["reason"], "authorize_token_used");
    assert!(
        other.alert().unwrap().contains("already used"),
        "{}",
        other.body
    );
    assert!(
        !other.body.contains("name=\"session\""),
        "no flow to go on with"
    );
}

#[tokio::test]
async fn missing_unknown_expired_and_foreign_tokens_show_the_error_screen() {
    let app = TestApp::new().await;
    let expired = app.toolbox_token().await;
    app.advance(std::time::Duration::from_secs(31 * 60));
    let (acme, acme_secret, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    let foreign = app.generate_token_for(acme, &acme_secret).await;
    for (query, reason, words) in [
        (
            "demo=true".to_owned(),
            "authorize_token_missing",
            "authorization token",
        ),
        (
            "authorizeToken=6f1c1e0a-0000-4000-8000-000000000000".to_owned(),
            "authorize_token_invalid",
            "not valid",
        ),
        (
            format!("authorizeToken={expired}"),
            "authorize_token_expired",
            "expired",
        ),
        (
            format!("authorizeToken={foreign}"),
            "authorize_token_invalid",
            "not valid",
        ),
        (
            format!("authorizeToken={TOOLBOX_SECRET}"),
            "auth_key_given_as_token",
            "not valid",
        ),
        (
            "demo=true&authorizeToken=".to_owned(),
            "authorize_token_empty",
            "authorization token",
        ),
    ] {
        let page = open(&app, IFRAME, &query, None).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(page.screen(), "failed");
        let events = page.events();
        assert_eq!(events[0]["step"], "APP_MOUNTED");
        assert_eq!(events[1]["step"], "TOKEN_INVALID", "{query}");
        assert_eq!(events[1]["reason"], reason, "{query}");
        assert!(
            page.alert().unwrap().contains(words),
            "{query}: {:?}",
            page.alert()
        );
        assert!(page.cookie().is_none());
        assert!(
            !page.body.contains(TOOLBOX_SECRET),
            "the secret key is echoed"
        );
    }
    // The foreign token was not spent by the toolbox page: acme's own page takes it.
    let page = open(
        &app,
        "acme-iframe.localhost",
        &format!("authorizeToken={foreign}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.screen(), "consent");
}

#[tokio::test]
async fn greatday_connects_in_french_through_mfa_and_the_login_id_opens_at_once() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let query = format!(
        "demo=true&language=fr&authorizeToken={token}&redirectUrl=https://fintech.example/merci?step=done&customerName=Prêteur&tag=client-7"
    );
    let page = open(&app, IFRAME, &query, None).await;
    assert!(page.body.contains("<html lang=\"fr\">"));
    assert!(page.body.contains("Partagez vos renseignements bancaires"));
    assert!(page.body.contains("Prêteur"));
    let page = act(&app, &page, &[("action", "accept_consent")]).await;
    assert!(
        page.body
            .contains("Choisissez votre institution financière")
    );
    let page = act(
        &app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    assert!(
        page.body.contains("Identifiants de test"),
        "the demo hint, in French"
    );
    let page = login(&app, &page, "Greatday", "Everyday").await;
    assert_eq!(page.screen(), "mfa");
    let prompt = prompt_of(&page);
    assert!(prompt.starts_with("Quel"), "a French prompt: {prompt}");
    assert_eq!(page.steps(), ["SUBMIT_CREDENTIAL", "COMPONENT_LOAD_MFA"]);
    assert_eq!(
        page.events()[1]["mfaTypes"],
        serde_json::json!(["QuestionAndAnswer"])
    );
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", answer_for(&prompt))],
    )
    .await;
    assert_eq!(page.screen(), "success", "{}", page.body);
    assert_eq!(page.steps(), ["SUBMIT_MFA", "REDIRECT"]);
    let redirect = &page.events()[1];
    assert_eq!(redirect["institution"], "FlinksCapital");
    let login_id = redirect["loginId"].as_str().unwrap().to_owned();
    let url = redirect["url"].as_str().unwrap();
    assert_eq!(page.attr("data-redirect").as_deref(), Some(url));
    assert_eq!(page.attr("data-js-redirect").as_deref(), Some("false"));
    assert!(
        url.starts_with("https://fintech.example/merci?step=done&"),
        "{url}"
    );
    assert_eq!(
        redirect_query(url),
        [
            ("step".to_owned(), "done".to_owned()),
            ("loginId".to_owned(), login_id.clone()),
            ("institution".to_owned(), "FlinksCapital".to_owned()),
        ]
    );

    let fresh = app.toolbox_token().await;
    let reply = app
        .authorize(TOOLBOX_CUSTOMER, &fresh, login_id.parse().unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_eq!(reply.json["Login"]["Id"], login_id.as_str());
    assert_eq!(reply.json["Login"]["Username"], "Greatday");
}

#[tokio::test]
async fn bank_errors_are_shown_in_plain_words_with_a_retry_where_the_bank_allows_it() {
    let app = TestApp::new().await;
    // A wrong password: back to the credentials with the reason, and a retry that works.
    let page = to_credentials(&app, "").await;
    let page = login(&app, &page, "greatday_nomfa", "nope").await;
    assert_eq!(page.screen(), "credentials");
    assert_eq!(
        page.steps(),
        [
            "SUBMIT_CREDENTIAL",
            "INVALID_LOGIN",
            "COMPONENT_LOAD_CREDENTIAL_RETRY"
        ]
    );
    assert!(
        page.alert()
            .unwrap()
            .contains("username or password is incorrect")
    );
    assert!(
        page.body.contains("value=\"greatday_nomfa\""),
        "the username is kept for the retry"
    );
    assert!(!page.body.contains("value=\"nope\""), "the password is not");
    let page = login(&app, &page, "greatday_nomfa", "Everyday").await;
    assert_eq!(page.screen(), "success");
    assert!(page.events()[1]["loginId"].is_string());
    assert!(
        page.events()[1].get("url").is_none(),
        "no redirectUrl, no url"
    );

    // The bank cannot be reached: try again later, from the credentials screen.
    let page = to_credentials(&app, "").await;
    let page = login(&app, &page, "test_service_unavailable", "Everyday").await;
    assert_eq!(page.screen(), "credentials");
    assert_eq!(page.steps()[1], "RETRY_LATER");
    assert!(page.alert().unwrap().contains("could not reach your bank"));

    // A disabled account: no retry, another institution.
    let page = to_credentials(&app, "").await;
    let page = login(&app, &page, "test_disabled_account", "Everyday").await;
    assert_eq!(page.screen(), "failed");
    assert_eq!(page.steps(), ["SUBMIT_CREDENTIAL", "DISABLED_LOGIN"]);
    assert!(page.alert().unwrap().contains("disabled this account"));
    assert!(page.body.contains("value=\"start_over\""));
    let page = act(&app, &page, &[("action", "start_over")]).await;
    assert_eq!(page.screen(), "institutions");

    // A wrong MFA answer: the same question again on the same screen, no new login.
    let page = to_credentials(&app, "").await;
    let page = login(&app, &page, "Greatday", "Everyday").await;
    let asked = prompt_of(&page);
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", "Atlantis")],
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
    assert_eq!(prompt_of(&page), asked);
    assert!(page.alert().unwrap().contains("not correct. Try again"));
    // An empty answer asks again without ending anything.
    let page = act(&app, &page, &[("action", "submit_mfa"), ("answer_0", "")]).await;
    assert_eq!(page.screen(), "mfa");
    assert_eq!(page.steps(), ["SUBMIT_MFA", "COMPONENT_LOAD_MFA_RETRY"]);
    let prompt = prompt_of(&page);
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", answer_for(&prompt))],
    )
    .await;
    assert_eq!(page.screen(), "success");
}

#[tokio::test]
async fn account_selection_puts_the_chosen_accounts_in_the_redirect() {
    let app = TestApp::new().await;
    for multiple in [false, true] {
        let page = to_credentials(
            &app,
            &format!(
                "&accountSelectorEnable=true&accountSelectorMultiple={multiple}&redirectUrl=https://fintech.example/done&jsRedirect=true"
            ),
        )
        .await;
        let page = login(&app, &page, "greatday_nomfa", "Everyday").await;
        assert_eq!(page.screen(), "accounts");
        let load = &page.events()[1];
        assert_eq!(load["step"], "COMPONENT_LOAD_ACCOUNT_SELECTION");
        let total = load["totalAccounts"].as_u64().unwrap();
        assert!(total >= 1);
        assert_eq!(load["displayedAccounts"], total);
        let ids: Vec<String> = page
            .body
            .match_indices("name=\"account\" value=\"")
            .map(|(i, m)| page.body[i + m.len()..i + m.len() + 36].to_owned())
            .collect();
        assert_eq!(ids.len() as u64, total);
        let input = if multiple {
            "type=\"checkbox\""
        } else {
            "type=\"radio\""
        };
        assert!(page.body.contains(input));

        // Nothing chosen: say so.
        let again = act(&app, &page, &[("action", "select_accounts")]).await;
        assert_eq!(again.screen(), "accounts");
        assert!(again.alert().unwrap().contains("Select an account"));

        let chosen: Vec<&str> = if multiple && ids.len() > 1 {
            vec![&ids[0], &ids[1]]
        } else {
            vec![&ids[0]]
        };
        let mut fields = vec![("action", "select_accounts")];
        fields.extend(chosen.iter().map(|id| ("account", *id)));
        let page = act(&app, &again, &fields).await;
        assert_eq!(page.screen(), "success");
        assert_eq!(page.steps(), ["ACCOUNT_SELECTED", "REDIRECT"]);
        let redirect = &page.events()[1];
        let expected = if multiple {
            serde_json::json!(chosen)
        } else {
            serde_json::json!(chosen[0])
        };
        assert_eq!(redirect["accountId"], expected);
        assert_eq!(page.events()[0]["accountId"], expected);
        let query = redirect_query(redirect["url"].as_str().unwrap());
        let in_url: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "accountId")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(in_url, chosen);
        assert_eq!(query[0].0, "loginId");
        assert_eq!(
            query[1],
            ("institution".to_owned(), "FlinksCapital".to_owned())
        );
        assert_eq!(page.attr("data-js-redirect").as_deref(), Some("true"));
        assert!(
            !page.body.contains("id=\"continue\""),
            "jsRedirect: the embedding page navigates"
        );
    }
}

#[tokio::test]
async fn parameters_are_honoured_and_bad_values_fall_back() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!(
            "authorizeToken={token}&demo=maybe&language=de&theme=dark&backgroundColor=%23F7F7F7&foregroundColor1=javascript:x\
             &desktopLayout=true&headerEnable=false&closeEnable=true&consentEnable=nope&termsUrl=javascript:alert(1)\
             &redirectUrl=javascript:alert(1)&unknownThing=1&institutionFilterEnable=true"
        ),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    // consentEnable fell back to true, language to en, demo to false.
    assert_eq!(page.screen(), "consent");
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(page.body.contains("class=\"theme-dark desktop\""));
    assert!(page.body.contains("--bg:#f7f7f7;"));
    assert!(
        !page.body.contains("--accent"),
        "an invalid colour is ignored"
    );
    assert!(
        !page.body.contains("javascript"),
        "no script URL reaches the page"
    );
    assert!(
        !page.body.contains("class=\"bar\""),
        "headerEnable=false hides the header"
    );
    let page = act(&app, &page, &[("action", "accept_consent")]).await;
    // Not in demo mode: the test institution is not offered, and cannot be picked by hand.
    assert!(page.body.contains("No institution is available here"));
    let page = act(
        &app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    assert_eq!(page.screen(), "institutions");
    // Closing is an action like any other.
    let page = act(&app, &page, &[("action", "close")]).await;
    assert_eq!(page.screen(), "closed");
    assert_eq!(page.steps(), ["COMPONENT_CLOSE_SESSION"]);

    // Search (institutionFilterEnable) narrows the list.
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!(
            "authorizeToken={token}&demo=true&consentEnable=false&institutionFilterEnable=true"
        ),
        None,
    )
    .await;
    assert!(page.body.contains("type=\"search\""));
    let found = act(&app, &page, &[("action", "search"), ("query", "capital")]).await;
    assert!(found.body.contains("value=\"FlinksCapital\""));
    let none = act(&app, &page, &[("action", "search"), ("query", "zzz")]).await;
    assert!(!none.body.contains("value=\"FlinksCapital\""));
    assert!(none.body.contains("No institution matches your search."));
}

#[tokio::test]
async fn a_bare_host_takes_the_instance_from_the_query_and_tokens_can_be_optional() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        "localhost:8080",
        &format!("instance=toolbox&authorizeToken={token}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.screen(), "consent");
    let next = act_on(
        &app,
        "localhost:8080",
        &page.session(),
        &[("action", "accept_consent")],
    )
    .await;
    assert_eq!(next.screen(), "institutions");
    let unknown = open(&app, "localhost:8080", "instance=nowhere", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.alert().unwrap().contains("does not exist"));

    // An instance whose Connect page does not require a token serves its only customer.
    let toolbox = "toolbox".parse().unwrap();
    app.state
        .store
        .set_connect_token_required(&toolbox, false)
        .await
        .unwrap();
    let page = open(&app, IFRAME, "demo=true&consentEnable=false", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = act(
        &app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    let page = login(&app, &page, "greatday_nomfa", "Everyday").await;
    assert_eq!(page.screen(), "success");
}

#[tokio::test]
async fn request_id_resumes_an_mfa_step_started_through_the_api() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"Everyday","Save":true}"#,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 203);
    let request_id = reply.json["RequestId"].as_str().unwrap().to_owned();
    let prompt = reply.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();

    let page_token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!("authorizeToken={page_token}&requestId={request_id}&redirectUrl=https://fintech.example/x"),
        None,
    )
    .await;
    assert_eq!(page.screen(), "mfa", "{}", page.body);
    assert_eq!(prompt_of(&page), prompt);
    let page = act(
        &app,
        &page,
        &[("action", "submit_mfa"), ("answer_0", answer_for(&prompt))],
    )
    .await;
    assert_eq!(page.screen(), "success");
    let url = page.events()[1]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://fintech.example/x?loginId="));

    // An ended RequestId says so, with a way on.
    let page_token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!("authorizeToken={page_token}&requestId={request_id}"),
        None,
    )
    .await;
    assert_eq!(page.screen(), "failed");
    assert_eq!(page.steps(), ["APP_MOUNTED", "SESSION_NONEXISTENT"]);
    assert!(page.body.contains("value=\"start_over\""));
}

#[tokio::test]
async fn headers_allow_framing_and_only_bankgate_resources() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let page = open(&app, IFRAME, &format!("authorizeToken={token}"), None).await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors *",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(page.headers.get(header::X_FRAME_OPTIONS).is_none());
    assert_eq!(page.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing external"
    );
    for (asset, kind) in [
        ("connect.js", "text/javascript"),
        ("connect.css", "text/css"),
    ] {
        let reply = fetch(
            &app,
            Request::get(format!("/v2/assets/{asset}"))
                .header(header::HOST, IFRAME)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            !reply.body.contains("http"),
            "{asset} loads nothing external"
        );
    }
}

#[tokio::test]
async fn the_api_and_the_page_keep_to_their_hosts() {
    let app = TestApp::new().await;
    let on_iframe = app
        .send(request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("host", IFRAME), ("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        ))
        .await;
    on_iframe.assert_error(404, "INVALID_REQUEST", "api_on_iframe_host");
    let on_api = app
        .send(request(
            "GET",
            "/v2/",
            &[("host", "toolbox-api.localhost")],
            "",
        ))
        .await;
    on_api.assert_error(404, "INVALID_REQUEST", "connect_on_iframe_host");
    // A step must carry the session in the form: the cookie alone is what another site could
    // make the browser send.
    let token = app.toolbox_token().await;
    let page = open(&app, IFRAME, &format!("authorizeToken={token}"), None).await;
    let cookie = page.cookie().unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let forged = fetch(
        &app,
        Request::post("/v2/")
            .header(header::HOST, IFRAME)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("action=accept_consent"))
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.steps(), ["SESSION_NONEXISTENT"]);
    let reloaded = open(
        &app,
        IFRAME,
        &format!("authorizeToken={token}"),
        Some(cookie),
    )
    .await;
    assert_eq!(
        reloaded.screen(),
        "consent",
        "the forged post moved nothing"
    );
    let stale = act_on(
        &app,
        IFRAME,
        "not-a-session",
        &[("action", "accept_consent")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stale.steps(), ["SESSION_NONEXISTENT"]);
}

/// Every screen of a French flow: consent, institutions, credentials, MFA, accounts, success,
/// an error, closed.
async fn every_screen(app: &TestApp, language: &str) -> Vec<Page> {
    let token = app.toolbox_token().await;
    let mut pages = Vec::new();
    let page = open(
        app,
        IFRAME,
        &format!(
            "demo=true&language={language}&closeEnable=true&institutionFilterEnable=true&accountSelectorEnable=true&redirectUrl=https://fintech.example/done&termsUrl=https://fintech.example/terms&authorizeToken={token}"
        ),
        None,
    )
    .await;
    pages.push(page);
    let page = act(app, pages.last().unwrap(), &[("action", "deny_consent")]).await;
    pages.push(page);
    let page = act(app, pages.last().unwrap(), &[("action", "accept_consent")]).await;
    pages.push(page);
    let page = act(
        app,
        pages.last().unwrap(),
        &[("action", "search"), ("query", "zzz")],
    )
    .await;
    pages.push(page);
    let page = act(
        app,
        pages.last().unwrap(),
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    pages.push(page);
    let page = login(app, pages.last().unwrap(), "Greatday", "wrong").await;
    pages.push(page);
    let page = login(app, pages.last().unwrap(), "Greatday", "Everyday").await;
    pages.push(page);
    let page = act(
        app,
        pages.last().unwrap(),
        &[("action", "submit_mfa"), ("answer_0", "")],
    )
    .await;
    pages.push(page);
    let prompt = prompt_of(pages.last().unwrap());
    let page = act(
        app,
        pages.last().unwrap(),
        &[("action", "submit_mfa"), ("answer_0", answer_for(&prompt))],
    )
    .await;
    pages.push(page);
    let page = act(app, pages.last().unwrap(), &[("action", "select_accounts")]).await;
    pages.push(page);
    let account = {
        let body = &pages.last().unwrap().body;
        let needle = "name=\"account\" value=\"";
        let at = body.find(needle).unwrap() + needle.len();
        body[at..at + 36].to_owned()
    };
    let page = act(
        app,
        pages.last().unwrap(),
        &[("action", "select_accounts"), ("account", &account)],
    )
    .await;
    pages.push(page);
    let page = act(app, pages.last().unwrap(), &[("action", "close")]).await;
    pages.push(page);
    let token = app.toolbox_token().await;
    let page = open(
        app,
        IFRAME,
        &format!("demo=true&consentEnable=false&language={language}&authorizeToken={token}"),
        None,
    )
    .await;
    let page = act(
        app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    pages.push(login(app, &page, "test_disabled_account", "Everyday").await);
    pages.push(open(app, IFRAME, &format!("language={language}"), None).await);
    pages
}

/// Whether `text` appears as whole words (`Continue` is not in `Continuer`).
fn shows(body: &str, text: &str) -> bool {
    let text = text.trim();
    body.match_indices(text).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + text.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[tokio::test]
async fn every_screen_is_translated() {
    let app = TestApp::new().await;
    let english = every_screen(&app, "en").await;
    let french = every_screen(&app, "fr").await;
    let screens: Vec<String> = french.iter().map(Page::screen).collect();
    assert_eq!(
        screens,
        [
            "consent",
            "consent",
            "institutions",
            "institutions",
            "credentials",
            "credentials",
            "mfa",
            "mfa",
            "accounts",
            "accounts",
            "success",
            "closed",
            "failed",
            "failed"
        ]
    );
    assert_eq!(
        screens,
        english.iter().map(Page::screen).collect::<Vec<_>>()
    );
    let mut shown = std::collections::HashSet::new();
    for (en, fr) in english.iter().zip(&french) {
        assert!(fr.body.contains("<html lang=\"fr\">"));
        for (key, en_text, fr_text) in bankgate_server::connect::STRINGS {
            // Placeholders are filled in: compare the text before the first one.
            let en_text = en_text.split('{').next().unwrap().replace('\'', "&#x27;");
            let fr_text = fr_text.split('{').next().unwrap().replace('\'', "&#x27;");
            if en_text.trim().len() < 4 {
                continue;
            }
            assert!(
                !shows(&fr.body, &en_text),
                "{}: untranslated {key}",
                fr.screen()
            );
            if shows(&en.body, &en_text) {
                shown.insert(*key);
                assert!(
                    shows(&fr.body, &fr_text),
                    "{}: {key} missing in French",
                    fr.screen()
                );
            }
        }
    }
    // The walk shows nearly every string; the rest are other errors' messages.
    assert!(
        shown.len() >= 35,
        "only {} strings seen: {shown:?}",
        shown.len()
    );
}

#[tokio::test]
async fn a_credential_path_opens_the_page_at_that_institution() {
    let app = TestApp::new().await;
    let get = async |uri: String| {
        fetch(
            &app,
            Request::get(uri)
                .header(header::HOST, IFRAME)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    };
    let token = app.toolbox_token().await;
    let page = get(format!(
        "/v2/Credential/FlinksCapital/?demo=true&consentEnable=false&authorizeToken={token}"
    ))
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.screen(), "credentials");
    assert_eq!(page.steps(), ["APP_MOUNTED", "COMPONENT_LOAD_CREDENTIAL"]);
    // The forms post back to the address the page has.
    let page = fetch(
        &app,
        Request::post("/v2/Credential/FlinksCapital/?demo=true")
            .header(header::HOST, IFRAME)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "session={}&action=submit_credentials&username=greatday_nomfa&password=Everyday",
                page.session()
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(page.screen(), "success");

    // With consent first, accepting it leads to that institution's login.
    let token = app.toolbox_token().await;
    let page = get(format!(
        "/v2/Credential/flinkscapital?demo=true&authorizeToken={token}"
    ))
    .await;
    assert_eq!(page.screen(), "consent");
    let page = act(&app, &page, &[("action", "accept_consent")]).await;
    assert_eq!(page.screen(), "credentials");
    assert_eq!(page.events()[1]["institution"], "FlinksCapital");

    // An institution the page would not offer: the usual selector.
    let token = app.toolbox_token().await;
    let page = get(format!(
        "/v2/Credential/National/?demo=true&consentEnable=false&authorizeToken={token}"
    ))
    .await;
    assert_eq!(page.screen(), "institutions");
    let token = app.toolbox_token().await;
    let page = get(format!(
        "/v2/Credential/FlinksCapital/?consentEnable=false&authorizeToken={token}"
    ))
    .await;
    assert_eq!(
        page.screen(),
        "institutions",
        "FlinksCapital is shown in demo mode only"
    );
    let empty = get("/v2//Credential".to_owned()).await;
    assert_eq!(empty.status, StatusCode::NOT_FOUND);
}

/// A Connect session expires on its instance's clock on every host: a sandbox moved past its
/// idle lifetime ends it on a bare host as on the iframe host (found in review).
#[tokio::test]
async fn a_moved_sandbox_clock_ends_connect_sessions_on_every_host() {
    for host in ["localhost:8080", IFRAME] {
        let app = TestApp::new().await;
        let token = app.toolbox_token().await;
        let page = open(
            &app,
            host,
            &format!("instance=toolbox&authorizeToken={token}"),
            None,
        )
        .await;
        assert_eq!(page.screen(), "consent", "{host}");
        app.operator()
            .change_clock(
                &"toolbox".parse().unwrap(),
                bankgate_store::ClockChange::Advance(std::time::Duration::from_secs(2 * 3600)),
            )
            .await
            .unwrap();
        let next = act_on(&app, host, &page.session(), &[("action", "accept_consent")]).await;
        assert_eq!(
            next.status,
            StatusCode::UNAUTHORIZED,
            "{host}: {}",
            next.body
        );
    }
}

/// The markup side of the accessibility fixes (the browser test, `connect_browser`, audits the
/// rendered screens with axe-core): no `autofocus`, forms that post to a clean address, a live
/// region from load below the heading, titles that name the step, and wording that fits.
#[tokio::test]
async fn screens_carry_no_token_autofocus_or_misleading_words() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let page = open(
        &app,
        IFRAME,
        &format!("demo=true&customerName=Acme&authorizeToken={token}"),
        None,
    )
    .await;
    let title = |page: &Page| {
        let start = page.body.find("<title>").unwrap() + "<title>".len();
        let end = page.body.find("</title>").unwrap();
        unescape(&page.body[start..end])
    };
    let check = |page: &Page| {
        assert!(!page.body.contains("autofocus"), "{}", page.body);
        assert!(
            !page.body.contains("<form method=\"post\">"),
            "a form posts back to the address with the token"
        );
        assert_eq!(
            page.body.matches("<form ").count(),
            page.body.matches("action=\"/v2/\"").count(),
            "{}",
            page.body
        );
        let heading = page.body.find("<h1>").unwrap();
        let region = page.body.find("id=\"notice\"").unwrap();
        assert!(heading < region, "the notice comes after the heading");
    };
    check(&page);
    assert_eq!(
        title(&page),
        "Share your banking information \u{2013} Connect your bank account"
    );
    // The address the page keeps once its script has dropped the token: a reload resumes.
    let cookie = page.cookie().unwrap();
    let cookie_pair = cookie.split(';').next().unwrap();
    let reloaded = open(
        &app,
        IFRAME,
        "demo=true&customerName=Acme",
        Some(cookie_pair),
    )
    .await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert_eq!(reloaded.screen(), "consent");

    // Declining: the note says how to go on, not to close a window there may be no control for.
    let declined = act(&app, &page, &[("action", "deny_consent")]).await;
    check(&declined);
    let note = declined
        .body
        .split("id=\"notice\" role=\"status\"")
        .nth(1)
        .unwrap();
    assert!(note.contains("nothing was shared with Acme"), "{note}");
    assert!(!declined.body.contains("close this window"));

    let page = act(&app, &declined, &[("action", "accept_consent")]).await;
    let page = act(
        &app,
        &page,
        &[
            ("action", "select_institution"),
            ("institution", "FlinksCapital"),
        ],
    )
    .await;
    check(&page);
    assert_eq!(
        title(&page),
        "Log in to Flinks Capital \u{2013} Connect your bank account"
    );
    assert!(page.body.contains("id=\"username\"") && page.body.contains("data-focus>"));
    // A refused login: both fields marked and described by the alert, the password to retype.
    let page = act(
        &app,
        &page,
        &[
            ("action", "submit_credentials"),
            ("username", "Greatday"),
            ("password", "Nope"),
        ],
    )
    .await;
    check(&page);
    assert!(page.alert().unwrap().contains("incorrect"));
    assert_eq!(
        title(&page),
        "Error: Log in to Flinks Capital \u{2013} Connect your bank account"
    );
    assert_eq!(
        page.body
            .matches("aria-invalid=\"true\" aria-describedby=\"notice\"")
            .count(),
        2
    );
    assert!(
        page.body
            .contains("autocomplete=\"current-password\" required data-focus")
    );

    // The spent token, in both languages: the title says what is wrong with the link.
    for (language, heading, window) in [
        (
            "en",
            "This link cannot be used",
            "Error: This link cannot be used \u{2013} Connect your bank account",
        ),
        (
            "fr",
            "Ce lien ne peut pas être utilisé",
            "Erreur : Ce lien ne peut pas être utilisé \u{2013} Connectez votre compte bancaire",
        ),
    ] {
        let used = open(
            &app,
            IFRAME,
            &format!("language={language}&authorizeToken={token}"),
            None,
        )
        .await;
        assert_eq!(used.status, StatusCode::UNAUTHORIZED);
        assert!(
            used.body.contains(&format!("<h1>{heading}</h1>")),
            "{}",
            used.body
        );
        assert!(
            !used.body.contains("could not connect") && !used.body.contains("pas pu connecter")
        );
        assert_eq!(title(&used), window);
    }
}
