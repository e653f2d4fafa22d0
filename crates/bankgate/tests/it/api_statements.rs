//! POST /GetStatements: real PDF statements, base64 in JSON.

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::*;

async fn session(app: &TestApp) -> String {
    let login = app.toolbox_login().await;
    let reply = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
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

fn pdf_of(statement: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(statement["Base64Bytes"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn the_most_recent_statement_of_every_account_is_a_pdf() {
    let app = TestApp::new().await;
    let request_id = session(&app).await;
    let reply = statements(&app, json!({ "RequestId": request_id })).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_envelope(&reply);
    let keys: Vec<&String> = reply.json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "HttpStatusCode",
            "StatementsByAccount",
            "Login",
            "Institution",
            "RequestId"
        ]
    );
    let by_account = reply.json["StatementsByAccount"].as_array().unwrap();
    assert!(!by_account.is_empty());
    for account in by_account {
        assert!(
            account["AccountNumber"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        let list = account["Statements"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["FileType"], "PDF");
        uuid::Uuid::parse_str(list[0]["UniqueId"].as_str().unwrap()).unwrap();
        let pdf = pdf_of(&list[0]);
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        let tail = String::from_utf8_lossy(&pdf[pdf.len() - 8..]).into_owned();
        assert!(tail.contains("%%EOF"), "{tail:?}");
    }
    // The same request gives the same documents.
    let again = statements(&app, json!({ "RequestId": request_id })).await;
    assert_eq!(
        again.json["StatementsByAccount"],
        reply.json["StatementsByAccount"]
    );
}

#[tokio::test]
async fn counts_and_filters() {
    let app = TestApp::new().await;
    let request_id = session(&app).await;
    let all = statements(&app, json!({ "RequestId": request_id })).await;
    let account_id = {
        let summary = app
            .post(
                &path(TOOLBOX_CUSTOMER, "GetAccountsSummary"),
                &[("x-api-key", TOOLBOX_API_KEY)],
                &json!({ "RequestId": request_id }).to_string(),
            )
            .await;
        summary.json["Accounts"][0]["Id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let three = statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "Months3", "AccountsFilter": [account_id] }),
    )
    .await;
    assert_eq!(three.status, StatusCode::OK, "{:#}", three.json);
    let by_account = three.json["StatementsByAccount"].as_array().unwrap();
    assert_eq!(by_account.len(), 1);
    let list = by_account[0]["Statements"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list[0], all.json["StatementsByAccount"][0]["Statements"][0],
        "the most recent is the same document"
    );

    let year = statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "months12", "AccountsFilter": [account_id] }),
    )
    .await;
    assert_eq!(
        year.json["StatementsByAccount"][0]["Statements"]
            .as_array()
            .unwrap()
            .len(),
        12
    );

    statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "Months12" }),
    )
    .await
    .assert_error(400, "INVALID_REQUEST", "months12_needs_one_account");
    statements(
        &app,
        json!({ "RequestId": request_id, "NumberOfStatements": "Months7" }),
    )
    .await
    .assert_error(400, "INVALID_REQUEST", "number_of_statements_invalid");
    statements(&app, json!({ "RequestId": request_id, "AccountsFilter": ["00000000-0000-4000-8000-000000000000"] }))
        .await
        .assert_error(400, "INVALID_REQUEST", "account_unknown");
}

#[tokio::test]
async fn statements_need_the_api_key_and_a_live_request_id() {
    let app = TestApp::new().await;
    let request_id = session(&app).await;
    app.post(
        &path(TOOLBOX_CUSTOMER, "GetStatements"),
        &[],
        &json!({ "RequestId": request_id }).to_string(),
    )
    .await
    .assert_error(401, "UNAUTHORIZED", "api_key_missing");
    statements(&app, json!({}))
        .await
        .assert_error(400, "INVALID_REQUEST", "request_id_missing");
    app.advance(std::time::Duration::from_secs(30 * 60));
    statements(&app, json!({ "RequestId": request_id }))
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_expired");
}
