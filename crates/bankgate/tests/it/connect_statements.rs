//! The Connect page's `detailsAndStatementEnable` and `monthsOfStatements`, as GetStatements
//! sees them: a card the page connected without statements enabled is refused (with the fix in
//! the hint), the page's months are the default, API cards are unaffected, bad values fall back.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::connect::{act, answer_for, login, prompt_of, to_credentials};
use crate::support::*;

/// Connects `username` through the page opened with `extra` parameters (answering MFA if
/// asked) and returns the LoginId of its redirect.
async fn connect_card(app: &TestApp, extra: &str, username: &str) -> String {
    let page = to_credentials(app, extra).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut page = login(app, &page, username, "Everyday").await;
    if page.screen() == "mfa" {
        let prompt = prompt_of(&page);
        page = act(
            app,
            &page,
            &[("action", "submit_mfa"), ("answer_0", answer_for(&prompt))],
        )
        .await;
    }
    assert_eq!(page.screen(), "success", "{}", page.body);
    let redirect = page
        .events()
        .into_iter()
        .find(|e| e["step"] == "REDIRECT")
        .expect("a REDIRECT event");
    redirect["loginId"].as_str().unwrap().to_owned()
}

/// A cached-mode /Authorize on the LoginId, as an integration does after the redirect.
async fn request_id_for(app: &TestApp, login_id: &str) -> String {
    let reply = app
        .authorize(
            TOOLBOX_CUSTOMER,
            &app.toolbox_token().await,
            login_id.parse().unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    reply.json["RequestId"].as_str().unwrap().to_owned()
}

async fn statements(app: &TestApp, body: Value) -> Reply {
    app.post(
        &path(TOOLBOX_CUSTOMER, "GetStatements"),
        &[("x-api-key", TOOLBOX_API_KEY)],
        &body.to_string(),
    )
    .await
}

async fn statements_async(app: &TestApp, request_id: &str) -> Reply {
    app.send(request(
        "GET",
        &format!(
            "{}/{request_id}",
            path(TOOLBOX_CUSTOMER, "GetStatementsAsync")
        ),
        &[("x-api-key", TOOLBOX_API_KEY)],
        "",
    ))
    .await
}

/// Statements per account in a 200.
fn counts(reply: &Reply) -> Vec<usize> {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    let counts: Vec<usize> = reply.json["StatementsByAccount"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Statements"].as_array().unwrap().len())
        .collect();
    assert!(!counts.is_empty());
    counts
}

#[track_caller]
fn assert_not_enabled(reply: &Reply, login_id: &str) {
    reply.assert_error(400, "INVALID_REQUEST", "statements_not_enabled");
    let hint = reply.hint();
    assert!(hint.contains(login_id), "{hint}");
    assert!(
        hint.contains("add detailsAndStatementEnable=true") && hint.contains("iframe URL"),
        "{hint}"
    );
}

#[tokio::test]
async fn enabled_cards_read_statements_for_the_pages_months() {
    let app = TestApp::new().await;
    // Through MFA (the answer completes the authorization) and without.
    for username in ["Greatday", "greatday_nomfa"] {
        let login_id = connect_card(
            &app,
            "&detailsAndStatementEnable=true&monthsOfStatements=MostRecent",
            username,
        )
        .await;
        let request_id = request_id_for(&app, &login_id).await;
        let reply = statements(&app, json!({ "RequestId": request_id })).await;
        assert!(counts(&reply).iter().all(|&n| n == 1), "{:#}", reply.json);
        assert_eq!(reply.json["Login"]["Id"], login_id.as_str());
        let polled = statements_async(&app, &request_id).await;
        assert_eq!(
            polled.json["StatementsByAccount"],
            reply.json["StatementsByAccount"]
        );
    }
}

#[tokio::test]
async fn months3_is_the_default_of_the_page() {
    let app = TestApp::new().await;
    let login_id = connect_card(&app, "&detailsAndStatementEnable=true", "greatday_nomfa").await;
    let request_id = request_id_for(&app, &login_id).await;
    let reply = statements(&app, json!({ "RequestId": request_id })).await;
    assert!(counts(&reply).iter().all(|&n| n == 3), "{:#}", reply.json);
}

#[tokio::test]
async fn a_card_connected_without_statements_is_refused_with_the_fix() {
    let app = TestApp::new().await;
    for (extra, username) in [
        ("", "greatday_nomfa"),
        ("&detailsAndStatementEnable=false", "Greatday"),
        ("&monthsOfStatements=Months12", "greatday_nomfa"),
    ] {
        let login_id = connect_card(&app, extra, username).await;
        let request_id = request_id_for(&app, &login_id).await;
        let reply = statements(&app, json!({ "RequestId": request_id })).await;
        assert_not_enabled(&reply, &login_id);
        assert_eq!(reply.json["RequestId"], request_id.as_str());
        // An explicit NumberOfStatements does not get round it; nor does the poll.
        let reply = statements(
            &app,
            json!({ "RequestId": request_id, "NumberOfStatements": "Months3" }),
        )
        .await;
        assert_not_enabled(&reply, &login_id);
        assert_not_enabled(&statements_async(&app, &request_id).await, &login_id);
        // The rest of the card reads as before.
        let accounts = app
            .post(
                &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
                &[("x-api-key", TOOLBOX_API_KEY)],
                &json!({ "RequestId": request_id }).to_string(),
            )
            .await;
        assert_eq!(accounts.status, StatusCode::OK, "{:#}", accounts.json);
    }
}

#[tokio::test]
async fn api_cards_are_unaffected() {
    let app = TestApp::new().await;
    // Made through /Authorize, even after a page without statements connected another card.
    connect_card(&app, "", "greatday_nomfa").await;
    let login_id = app.toolbox_login().await;
    let request_id = request_id_for(&app, &login_id.to_string()).await;
    let reply = statements(&app, json!({ "RequestId": request_id })).await;
    assert!(counts(&reply).iter().all(|&n| n == 1), "{:#}", reply.json);
    let reply = statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "Months3" }),
    )
    .await;
    assert!(counts(&reply).iter().all(|&n| n == 3), "{:#}", reply.json);
}

#[tokio::test]
async fn an_explicit_number_of_statements_wins_over_the_page() {
    let app = TestApp::new().await;
    let login_id = connect_card(
        &app,
        "&detailsAndStatementEnable=true&monthsOfStatements=Months12",
        "greatday_nomfa",
    )
    .await;
    let request_id = request_id_for(&app, &login_id).await;
    let reply = statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "MostRecent" }),
    )
    .await;
    assert!(counts(&reply).iter().all(|&n| n == 1), "{:#}", reply.json);
    // The page's Months12 needs one account, as an explicit one does; the hint says where it
    // came from.
    let reply = statements(&app, json!({ "RequestId": request_id })).await;
    reply.assert_error(400, "INVALID_REQUEST", "months12_needs_one_account");
    assert!(
        reply.hint().contains("monthsOfStatements"),
        "{}",
        reply.hint()
    );
    let all = statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "MostRecent" }),
    )
    .await;
    let account_id = all.json["StatementsByAccount"][0]["AccountNumber"].clone();
    let accounts = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await;
    let id = accounts.json["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AccountNumber"] == account_id)
        .unwrap()["Id"]
        .clone();
    let reply = statements(
        &app,
        json!({ "RequestId": request_id, "AccountsFilter": [id] }),
    )
    .await;
    assert_eq!(counts(&reply), [12], "{:#}", reply.json);
}

#[tokio::test]
async fn bad_values_fall_back_to_the_defaults() {
    let app = TestApp::new().await;
    // Not a boolean: not enabled (the page still opens and connects).
    let login_id = connect_card(
        &app,
        "&detailsAndStatementEnable=yes&monthsOfStatements=Months12",
        "greatday_nomfa",
    )
    .await;
    let request_id = request_id_for(&app, &login_id).await;
    assert_not_enabled(
        &statements(&app, json!({ "RequestId": request_id })).await,
        &login_id,
    );
    // An unknown month count: Months3. Names and values in any case, `1` as true.
    for extra in [
        "&detailsAndStatementEnable=1&monthsOfStatements=Months6",
        "&DETAILSANDSTATEMENTENABLE=TRUE&monthsOfStatements=",
        "&detailsAndStatementEnable=true&monthsOfStatements=%3Cscript%3E",
    ] {
        let login_id = connect_card(&app, extra, "greatday_nomfa").await;
        let request_id = request_id_for(&app, &login_id).await;
        let reply = statements(&app, json!({ "RequestId": request_id })).await;
        assert!(
            counts(&reply).iter().all(|&n| n == 3),
            "{extra}: {:#}",
            reply.json
        );
    }
    let login_id = connect_card(
        &app,
        "&detailsAndStatementEnable=True&MONTHSOFSTATEMENTS=mostrecent",
        "greatday_nomfa",
    )
    .await;
    let request_id = request_id_for(&app, &login_id).await;
    let reply = statements(&app, json!({ "RequestId": request_id })).await;
    assert!(counts(&reply).iter().all(|&n| n == 1), "{:#}", reply.json);
}
