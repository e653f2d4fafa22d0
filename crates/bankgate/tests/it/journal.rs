//! The request journal (`GET /admin/requests`, `bankgate requests`): what a team sees of its
//! app's requests after the fact, and that it never keeps a secret.

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

const ADMIN_TOKEN: &str = "journal-test-admin-token-0123456789abcdef";
const IFRAME: &str = "toolbox-iframe.localhost:8080";

async fn journaled_app(capacity: usize) -> TestApp {
    TestApp::with(|settings| {
        settings.admin_token = Some(ADMIN_TOKEN.to_owned());
        settings.journal_capacity = capacity;
    })
    .await
}

async fn journal(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .uri(format!("/admin/requests?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = app.admin.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn answer(prompt: &str) -> &'static str {
    let p = prompt.to_lowercase();
    if p.contains("city") {
        "Montreal"
    } else if p.contains("country") {
        "Canada"
    } else {
        "Triangle"
    }
}

/// A form post of the Connect page; the session secret is the hidden field's value.
async fn connect_post(app: &TestApp, session: &str, fields: &str) -> String {
    let request = Request::builder()
        .method("POST")
        .uri("/v2/")
        .header(header::HOST, IFRAME)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("session={session}&{fields}")))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn hidden_session(page: &str) -> String {
    let needle = "name=\"session\" value=\"";
    let start = page.find(needle).expect("a session field") + needle.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

/// Every secret of a full flow, and the journal afterwards: none of them is in it.
#[tokio::test]
async fn a_full_flow_is_journaled_without_a_secret() {
    let app = journaled_app(1000).await;
    let mut secrets = vec![
        TOOLBOX_SECRET.to_owned(),
        TOOLBOX_API_KEY.to_owned(),
        "Everyday".to_owned(),
    ];

    // Live connection with MFA, the token sent again with the answer.
    let token = app.toolbox_token().await;
    secrets.push(token.clone());
    let authorize = path(TOOLBOX_CUSTOMER, "Authorize");
    let reply = app
        .post(
            &authorize,
            &[("flinks-auth-key", &token)],
            &json!({"Institution": "FlinksCapital", "Username": "Greatday", "Password": "Everyday",
                    "MostRecentCached": false, "Save": true})
            .to_string(),
        )
        .await;
    assert_eq!(reply.status, 203, "{:#}", reply.json);
    let request_id = reply.json["RequestId"].as_str().unwrap().to_owned();
    let prompt = reply.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap();
    secrets.push(answer(prompt).to_owned());
    let reply = app
        .post(
            &authorize,
            &[("flinks-auth-key", &token)],
            &json!({"RequestId": request_id, "SecurityResponses": {prompt: [answer(prompt)]}})
                .to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{:#}", reply.json);
    let login_id = reply.json["Login"]["Id"].as_str().unwrap().to_owned();
    let reply = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsSummary"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200);

    // Two refusals: the secret key sent as a token, and a token used twice.
    let reply = app
        .post(
            &authorize,
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            &json!({"LoginId": login_id, "MostRecentCached": true}).to_string(),
        )
        .await;
    reply.assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");
    let reply = app
        .post(
            &authorize,
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": login_id, "MostRecentCached": true}).to_string(),
        )
        .await;
    reply.assert_error(401, "ACCESS_DENIED", "authorize_token_used");

    // The Connect page: its token in the URL, the session secret, a password and an answer in
    // its forms.
    let connect_token = app.toolbox_token().await;
    secrets.push(connect_token.clone());
    let request = Request::builder()
        .uri(format!(
            "/v2/?demo=true&consentEnable=false&authorizeToken={connect_token}"
        ))
        .header(header::HOST, IFRAME)
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let page = response.into_body().collect().await.unwrap().to_bytes();
    let session = hidden_session(std::str::from_utf8(&page).unwrap());
    secrets.push(session.clone());
    connect_post(
        &app,
        &session,
        "action=select_institution&institution=FlinksCapital",
    )
    .await;
    let page = connect_post(
        &app,
        &session,
        "action=submit_credentials&username=Greatday&password=Everyday",
    )
    .await;
    assert!(page.contains("answer_0"), "the MFA screen: {page}");
    connect_post(&app, &session, "action=submit_mfa&answer_0=Triangle").await;
    secrets.push("Triangle".to_owned());

    let (status, body) = journal(&app, "instance=toolbox&limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let text = body.to_string();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the journal holds a secret ({secret}): {body:#}"
        );
    }
    let requests = body["requests"].as_array().unwrap();
    assert_eq!(body["capacity"], 1000);
    assert_eq!(requests.len(), 11, "{body:#}");
    let ids: Vec<u64> = requests.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // What each entry says.
    let find = |pred: &dyn Fn(&Value) -> bool| {
        requests
            .iter()
            .find(|r| pred(r))
            .unwrap_or_else(|| panic!("no such entry in {body:#}"))
            .clone()
    };
    let minted = find(&|r| r["endpoint"] == "GenerateAuthorizeToken");
    assert_eq!(minted["status"], 200);
    assert_eq!(minted["instance"], "toolbox");
    assert_eq!(minted["customerId"], TOOLBOX_CUSTOMER);
    let key = minted["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "flinks-auth-key")
        .unwrap();
    assert_eq!(
        key["credential"],
        json!({"matched": "secret_key", "last4": "2414"})
    );

    let live = find(&|r| r["status"] == 203);
    assert_eq!(live["method"], "POST");
    assert_eq!(live["requestId"], request_id.as_str());
    assert_eq!(live["body"]["Username"], "Greatday");
    assert_eq!(live["body"]["Password"], "***");
    let answered = find(&|r| r["status"] == 200 && r["endpoint"] == "Authorize");
    assert_eq!(answered["loginId"], login_id.as_str());
    assert_eq!(answered["body"]["SecurityResponses"], "***");

    let refused = find(&|r| r["reason"] == "auth_key_given_as_token");
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["flinksCode"], "ACCESS_DENIED");
    assert!(refused["hint"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(refused["loginId"], login_id.as_str());
    let presented = &refused["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "flinks-auth-key")
        .unwrap()["credential"];
    assert_eq!(
        presented["matched"], "secret_key",
        "the kind the value matched"
    );

    let summary = find(&|r| r["endpoint"] == "GetAccountsSummary");
    let api_key = summary["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-api-key")
        .unwrap();
    assert_eq!(api_key["credential"]["matched"], "api_key");
    assert_eq!(summary["loginId"], login_id.as_str());

    let page_load =
        find(&|r| r["method"] == "GET" && r["path"].as_str().unwrap().starts_with("/v2/"));
    assert_eq!(
        page_load["path"],
        "/v2/?demo=true&consentEnable=false&authorizeToken=***"
    );
    assert_eq!(page_load["instance"], "toolbox");
    let credentials = find(&|r| r["body"]["action"] == "submit_credentials");
    assert_eq!(credentials["body"]["password"], "***");
    assert_eq!(credentials["body"]["session"], "***");
    assert_eq!(credentials["body"]["username"], "Greatday");
}

#[tokio::test]
async fn filters_narrow_the_journal_and_bad_ones_are_refused() {
    let app = journaled_app(1000).await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    assert_eq!(reply.status, 200);
    let request_id = reply.json["RequestId"].as_str().unwrap().to_owned();
    let used = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    used.assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    let unknown = app
        .post(&path(TOOLBOX_CUSTOMER, "GetAccountsSummry"), &[], "{}")
        .await;
    assert_eq!(unknown.status, 404);

    let count = |body: &Value| body["requests"].as_array().unwrap().len();
    let (_, all) = journal(&app, "").await;
    assert_eq!(count(&all), 4);
    let (_, authorize) = journal(&app, "endpoint=authorize").await;
    assert_eq!(
        count(&authorize),
        2,
        "endpoint names match case-insensitively"
    );
    let (_, refused) = journal(&app, "status=401").await;
    assert_eq!(count(&refused), 1);
    let (_, by_reason) = journal(&app, "reason=authorize_token_used").await;
    assert_eq!(by_reason["requests"][0]["status"], 401);
    let (_, by_request) = journal(&app, &format!("requestId={request_id}")).await;
    assert_eq!(count(&by_request), 1);
    let (_, by_login) = journal(&app, &format!("loginId={login}")).await;
    assert_eq!(count(&by_login), 2);
    let (_, newest) = journal(&app, "limit=1").await;
    assert_eq!(newest["requests"][0]["reason"], "unknown_endpoint");
    let newest_id = newest["requests"][0]["id"].as_u64().unwrap();
    let (_, after) = journal(&app, &format!("after={}", newest_id - 1)).await;
    assert_eq!(count(&after), 1);
    let (_, future) = journal(&app, "since=2100-01-01T00:00:00Z").await;
    assert_eq!(count(&future), 0);
    let (_, past) = journal(&app, "since=2000-01-01T00:00:00%2B00:00").await;
    assert_eq!(count(&past), 4);
    let (_, other) = journal(&app, "instance=nowhere").await;
    assert_eq!(count(&other), 0);

    for (query, cue) in [
        ("status=abc", "status"),
        ("since=yesterday", "RFC 3339"),
        ("colour=blue", "parameters are"),
        ("instance=Not_A_Name", ""),
    ] {
        let (status, body) = journal(&app, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body:#}");
        assert!(
            body["Hint"].as_str().unwrap().contains(cue),
            "{query}: {body:#}"
        );
    }

    // Without the admin token, nothing.
    let request = Request::builder()
        .uri("/admin/requests")
        .body(Body::empty())
        .unwrap();
    let response = app.admin.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_instance_keeps_only_its_last_n_and_zero_keeps_none() {
    let app = journaled_app(2).await;
    for _ in 0..3 {
        app.toolbox_token().await;
    }
    let (_, body) = journal(&app, "instance=toolbox").await;
    assert_eq!(body["requests"].as_array().unwrap().len(), 2);
    assert_eq!(body["capacity"], 2);

    let app = journaled_app(0).await;
    app.toolbox_token().await;
    let (status, body) = journal(&app, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"requests": [], "capacity": 0}));
}

/// `bankgate requests` prints one line a request and the diagnosis of a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_each_request_and_why_it_was_refused() {
    let app = journaled_app(1000).await;
    app.toolbox_token().await;
    let login = app.toolbox_login().await;
    let refused = app.authorize(TOOLBOX_CUSTOMER, TOOLBOX_SECRET, login).await;
    refused.assert_error(401, "ACCESS_DENIED", "auth_key_given_as_token");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bankgate_server::serve(
        listener,
        app.admin.clone(),
        async move {
            stopped.await.ok();
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>, token: Option<&'static str>| {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_bankgate"));
            command.current_dir(dir).env_remove("BANKGATE_ADMIN_TOKEN");
            if let Some(token) = token {
                command.env("BANKGATE_ADMIN_TOKEN", token);
            }
            command.arg("requests").args(args).output().unwrap()
        })
    };
    let output = run(
        vec![
            "--admin-url".into(),
            admin_url.clone(),
            "--instance".into(),
            "toolbox".into(),
        ],
        Some(ADMIN_TOKEN),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("GenerateAuthorizeToken -> 200"),
        "oldest first: {stdout}"
    );
    let refusal = lines
        .iter()
        .position(|l| l.contains("-> 401 ACCESS_DENIED auth_key_given_as_token"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(lines[refusal + 1].starts_with("    why: "), "{stdout}");
    assert_eq!(
        lines[refusal + 2],
        "    sent: flinks-auth-key: secret_key …2414"
    );
    assert!(!stdout.contains(TOOLBOX_SECRET));

    // No or a wrong token: the admin API's own diagnosis.
    let output = run(vec!["--admin-url".into(), admin_url.clone()], None)
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Authorization: Bearer"));
    stop.send(()).ok();
    server.await.unwrap().unwrap();
    // Nothing listening: says what to check.
    let output = run(vec!["--admin-url".into(), admin_url], Some(ADMIN_TOKEN))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("is bankgate serving"));
}
