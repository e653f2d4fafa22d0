//! POST /GetAccountsSummary and /GetAccountsDetail, and their Async polls: a RequestId from a
//! cached /Authorize and the x-api-key read the synthetic accounts of the session's LoginId.

use std::time::Duration;

use axum::http::StatusCode;
use bankgate_core::{LoginId, RequestId};
use bankgate_server::api::accounts::SANDBOX_PROCESSING_TIME;
use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

use crate::support::*;

const SUMMARY_ACCOUNT_KEYS: [&str; 12] = [
    "EftEligibleRatio",
    "ETransferEligibleRatio",
    "Title",
    "AccountNumber",
    "LastFourDigits",
    "Balance",
    "Category",
    "Type",
    "Currency",
    "Holder",
    "AccountType",
    "Id",
];

const DETAIL_ACCOUNT_KEYS: [&str; 14] = [
    "Transactions",
    "TransitNumber",
    "InstitutionNumber",
    "OverdraftLimit",
    "Title",
    "AccountNumber",
    "LastFourDigits",
    "Balance",
    "Category",
    "Type",
    "Currency",
    "Holder",
    "AccountType",
    "Id",
];

const TRANSACTION_KEYS: [&str; 7] = [
    "Date",
    "Code",
    "Description",
    "Debit",
    "Credit",
    "Balance",
    "Id",
];

const UNKNOWN_GUID: &str = "5f0c7c1e-2b9a-4d0e-9a57-0d7b6a1f3c42";

/// The keys of a JSON object, in wire order (serde_json keeps it for these tests).
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value:#}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// A decimal amount in cents, rounded (the wire carries floats).
fn cents(value: &Value) -> i64 {
    let amount = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    (amount * 100.0).round() as i64
}

/// Debit or Credit: null counts as nothing.
fn cents_or_zero(value: &Value) -> i64 {
    if value.is_null() { 0 } else { cents(value) }
}

fn date(value: &Value) -> NaiveDate {
    NaiveDate::parse_from_str(value.as_str().unwrap(), "%Y-%m-%d")
        .unwrap_or_else(|_| panic!("not a date: {value}"))
}

/// The date the test clock starts at: the LastRefresh date of every LoginId created in a test.
fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 21).unwrap()
}

fn accounts(reply: &Reply) -> &Vec<Value> {
    reply.json["Accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no Accounts in {:#}", reply.json))
}

/// A cached /Authorize of `login` (toolbox customer); returns the RequestId.
async fn session(app: &TestApp, login: LoginId) -> String {
    let reply = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    reply.json["RequestId"].as_str().unwrap().to_owned()
}

/// POST to a data endpoint of the toolbox customer with its x-api-key.
async fn data(app: &TestApp, endpoint: &str, body: Value) -> Reply {
    app.post(
        &path(TOOLBOX_CUSTOMER, endpoint),
        &[("x-api-key", TOOLBOX_API_KEY)],
        &body.to_string(),
    )
    .await
}

async fn summary(app: &TestApp, request_id: &str) -> Reply {
    data(
        app,
        "GetAccountsSummary",
        json!({ "RequestId": request_id }),
    )
    .await
}

async fn detail(app: &TestApp, body: Value) -> Reply {
    data(app, "GetAccountsDetail", body).await
}

/// `GET` or `POST` on an Async poll of the toolbox customer.
async fn poll(app: &TestApp, method: &str, endpoint: &str, request_id: &str) -> Reply {
    app.send(request(
        method,
        &format!("{}/{request_id}", path(TOOLBOX_CUSTOMER, endpoint)),
        &[("x-api-key", TOOLBOX_API_KEY)],
        "",
    ))
    .await
}

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    assert_envelope(reply);
}

/// The running balances of one account add up from oldest to newest, and the latest equals
/// `Balance.Current`.
#[track_caller]
fn assert_running_balances(account: &Value) {
    let transactions = account["Transactions"].as_array().unwrap();
    let credit_account = account["Category"] == "Credits";
    let dates: Vec<NaiveDate> = transactions.iter().map(|t| date(&t["Date"])).collect();
    assert!(
        dates.windows(2).all(|pair| pair[0] >= pair[1]),
        "transactions are listed most recent first: {dates:?}"
    );
    let oldest_first: Vec<&Value> = transactions.iter().rev().collect();
    for pair in oldest_first.windows(2) {
        let before = cents(&pair[0]["Balance"]);
        let debit = cents_or_zero(&pair[1]["Debit"]);
        let credit = cents_or_zero(&pair[1]["Credit"]);
        let expected = if credit_account {
            before + debit - credit
        } else {
            before + credit - debit
        };
        assert_eq!(
            cents(&pair[1]["Balance"]),
            expected,
            "{} ({}): {} after {}",
            account["Title"],
            account["Category"],
            pair[1],
            pair[0]
        );
    }
    if let Some(latest) = transactions.first() {
        assert_eq!(
            cents(&latest["Balance"]),
            cents(&account["Balance"]["Current"]),
            "the latest running balance is the current balance of {}",
            account["Title"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GetAccountsSummary

#[tokio::test]
async fn summary_lists_the_accounts_in_the_documented_shape() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let opened = app
        .authorize(TOOLBOX_CUSTOMER, &app.toolbox_token().await, login)
        .await;
    let request_id = opened.json["RequestId"].as_str().unwrap().to_owned();

    let reply = summary(&app, &request_id).await;
    assert_ok(&reply);
    assert_eq!(reply.json["HttpStatusCode"], 200);
    assert_eq!(
        keys(&reply.json),
        [
            "HttpStatusCode",
            "Accounts",
            "Links",
            "InstitutionName",
            "Login",
            "InstitutionId",
            "Institution",
            "RequestId"
        ]
    );
    assert_eq!(
        reply.json["Links"].to_string(),
        json!([
            {"rel": "AccountsDetail", "href": "/GetAccountsDetail", "example": null},
            {"rel": "Statements", "href": "/GetStatements", "example": null},
        ])
        .to_string()
    );
    assert_eq!(reply.json["InstitutionName"], "FlinksCapital");
    assert_eq!(reply.json["Institution"], "FlinksCapital");
    assert_eq!(reply.json["InstitutionId"], 14);
    assert_eq!(reply.json["RequestId"], request_id);
    assert_eq!(reply.json["Login"]["Id"], login.to_string());
    assert_eq!(
        reply.json["Login"], opened.json["Login"],
        "the Login of the summary is the one /Authorize showed"
    );

    let accounts = accounts(&reply);
    assert!(!accounts.is_empty(), "{:#}", reply.json);
    for account in accounts {
        assert_eq!(keys(account), SUMMARY_ACCOUNT_KEYS, "{account:#}");
        assert_eq!(
            keys(&account["Balance"]),
            ["Available", "Current", "Limit"],
            "{account:#}"
        );
        assert_eq!(
            keys(&account["Holder"]),
            ["Name", "Address", "Email", "PhoneNumber"],
            "{account:#}"
        );
        assert_eq!(
            keys(&account["Holder"]["Address"]),
            [
                "CivicAddress",
                "City",
                "Province",
                "PostalCode",
                "POBox",
                "Country"
            ],
            "{account:#}"
        );
        assert!(
            ["CAD", "USD"].contains(&account["Currency"].as_str().unwrap()),
            "{account:#}"
        );
        assert!(
            ["Operations", "Credits", "Products"].contains(&account["Category"].as_str().unwrap()),
            "{account:#}"
        );
        for ratio in ["EftEligibleRatio", "ETransferEligibleRatio"] {
            let ratio = account[ratio].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&ratio), "{account:#}");
        }
        assert!(account["Balance"]["Current"].is_number(), "{account:#}");
        assert!(account["Balance"]["Available"].is_number(), "{account:#}");
        uuid::Uuid::parse_str(account["Id"].as_str().unwrap()).unwrap();
    }
    let ids: std::collections::HashSet<&str> =
        accounts.iter().map(|a| a["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), accounts.len(), "account Ids are distinct");

    // The first account is always the chequing account; everything that varies is redacted.
    insta::assert_json_snapshot!(accounts[0], {
        ".AccountNumber" => "[account-number]",
        ".Balance.Available" => "[amount]",
        ".Balance.Current" => "[amount]",
        ".Holder.Name" => "[name]",
        ".Holder.Address.CivicAddress" => "[civic-address]",
        ".Holder.Address.City" => "[city]",
        ".Holder.Address.Province" => "[province]",
        ".Holder.Address.PostalCode" => "[postal-code]",
        ".Holder.Email" => "[email]",
        ".Holder.PhoneNumber" => "[phone]",
        ".Id" => "[account-id]",
    }, @r#"
    {
      "EftEligibleRatio": 1.0,
      "ETransferEligibleRatio": 1.0,
      "Title": "Chequing Account",
      "AccountNumber": "[account-number]",
      "LastFourDigits": null,
      "Balance": {
        "Available": "[amount]",
        "Current": "[amount]",
        "Limit": null
      },
      "Category": "Operations",
      "Type": "Chequing",
      "Currency": "CAD",
      "Holder": {
        "Name": "[name]",
        "Address": {
          "CivicAddress": "[civic-address]",
          "City": "[city]",
          "Province": "[province]",
          "PostalCode": "[postal-code]",
          "POBox": null,
          "Country": "CA"
        },
        "Email": "[email]",
        "PhoneNumber": "[phone]"
      },
      "AccountType": "Personal",
      "Id": "[account-id]"
    }
    "#);
}

#[tokio::test]
async fn the_tag_sent_to_authorize_is_echoed_by_the_data_endpoints() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let opened = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": login.to_string(), "MostRecentCached": true, "Tag": "userId=42"})
                .to_string(),
        )
        .await;
    assert_ok(&opened);
    let request_id = opened.json["RequestId"].as_str().unwrap();

    let summary = summary(&app, request_id).await;
    assert_ok(&summary);
    assert_eq!(summary.json["Tag"], "userId=42");
    assert_eq!(
        keys(&summary.json),
        [
            "HttpStatusCode",
            "Accounts",
            "Links",
            "Tag",
            "InstitutionName",
            "Login",
            "InstitutionId",
            "Institution",
            "RequestId"
        ]
    );
    let detail = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&detail);
    assert_eq!(detail.json["Tag"], "userId=42");

    // Without a Tag, none is sent back.
    let untagged = session(&app, login).await;
    let summary = self::summary(&app, &untagged).await;
    assert!(summary.json.get("Tag").is_none(), "{:#}", summary.json);
    let detail = self::detail(&app, json!({ "RequestId": untagged })).await;
    assert!(detail.json.get("Tag").is_none(), "{:#}", detail.json);
}

// ---------------------------------------------------------------------------------------------
// GetAccountsDetail

#[tokio::test]
async fn detail_lists_accounts_and_90_days_of_transactions() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let request_id = session(&app, login).await;

    let reply = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&reply);
    assert_eq!(
        keys(&reply.json),
        [
            "HttpStatusCode",
            "Accounts",
            "InstitutionName",
            "Login",
            "InstitutionId",
            "Institution",
            "RequestId"
        ]
    );
    assert_eq!(reply.json["InstitutionId"], 14);
    assert_eq!(reply.json["Institution"], "FlinksCapital");
    assert_eq!(reply.json["InstitutionName"], "FlinksCapital");
    assert_eq!(reply.json["RequestId"], request_id);
    assert_eq!(reply.json["Login"]["Id"], login.to_string());
    let last_refresh = reply.json["Login"]["LastRefresh"].as_str().unwrap();
    assert_eq!(&last_refresh[..10], as_of().to_string());

    let accounts = accounts(&reply);
    assert!(!accounts.is_empty());
    let first_day = as_of() - Days::new(89);
    let mut transaction_count = 0;
    for account in accounts {
        assert_eq!(keys(account), DETAIL_ACCOUNT_KEYS, "{account:#}");
        assert_eq!(keys(&account["Balance"]), ["Available", "Current", "Limit"]);
        assert_eq!(
            keys(&account["Holder"]),
            ["Name", "Address", "Email", "PhoneNumber"]
        );
        assert!(
            account["TransitNumber"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(
            account["InstitutionNumber"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(
            account["AccountNumber"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(["CAD", "USD"].contains(&account["Currency"].as_str().unwrap()));
        assert!(
            ["Operations", "Credits", "Products"].contains(&account["Category"].as_str().unwrap())
        );
        for transaction in account["Transactions"].as_array().unwrap() {
            transaction_count += 1;
            assert_eq!(keys(transaction), TRANSACTION_KEYS, "{transaction:#}");
            let day = date(&transaction["Date"]);
            assert!(
                first_day <= day && day <= as_of(),
                "{day} is outside the default 90 days up to {}",
                as_of()
            );
            assert!(
                transaction["Description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
            assert!(transaction["Balance"].is_number());
            uuid::Uuid::parse_str(transaction["Id"].as_str().unwrap()).unwrap();
        }
        assert_running_balances(account);
    }
    assert!(transaction_count > 0, "{:#}", reply.json);

    // Days90 spelled out is the default.
    let days90 = detail(
        &app,
        json!({ "RequestId": request_id, "DaysOfTransactions": "Days90" }),
    )
    .await;
    assert_ok(&days90);
    assert_eq!(days90.json["Accounts"], reply.json["Accounts"]);
}

#[tokio::test]
async fn days365_and_days360_reach_further_back_but_not_beyond_a_year() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let days90 = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&days90);
    let earliest_allowed = as_of() - Days::new(364);
    let first_of_90 = as_of() - Days::new(89);

    for days in ["Days365", "Days360"] {
        let reply = detail(
            &app,
            json!({ "RequestId": request_id, "DaysOfTransactions": days }),
        )
        .await;
        assert_ok(&reply);
        let long = accounts(&reply);
        let short = accounts(&days90);
        assert_eq!(long.len(), short.len());
        let (mut long_total, mut short_total) = (0, 0);
        let mut reaches_back = false;
        for (long, short) in long.iter().zip(short) {
            assert_eq!(long["Id"], short["Id"]);
            let long_list = long["Transactions"].as_array().unwrap();
            let short_list = short["Transactions"].as_array().unwrap();
            long_total += long_list.len();
            short_total += short_list.len();
            // The short window is the most recent part of the same history.
            assert_eq!(&long_list[..short_list.len()], &short_list[..], "{days}");
            for transaction in long_list {
                let day = date(&transaction["Date"]);
                assert!(
                    earliest_allowed <= day && day <= as_of(),
                    "{days}: {day} is more than 365 days before {}",
                    as_of()
                );
                reaches_back |= day < first_of_90;
            }
            assert_keys_of_transactions(long);
            assert_running_balances(long);
        }
        assert!(
            long_total > short_total,
            "{days}: {long_total} vs {short_total}"
        );
        assert!(reaches_back, "{days} reaches further back than 90 days");
    }
}

#[track_caller]
fn assert_keys_of_transactions(account: &Value) {
    for transaction in account["Transactions"].as_array().unwrap() {
        assert_eq!(keys(transaction), TRANSACTION_KEYS, "{transaction:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// Options

#[tokio::test]
async fn with_transactions_false_empties_every_transaction_list() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    for value in [json!(false), json!("false"), json!("False")] {
        let reply = detail(
            &app,
            json!({ "RequestId": request_id, "WithTransactions": value }),
        )
        .await;
        assert_ok(&reply);
        for account in accounts(&reply) {
            assert_eq!(account["Transactions"], json!([]), "{value}: {account:#}");
            assert_eq!(keys(account), DETAIL_ACCOUNT_KEYS);
        }
    }
    // true keeps them.
    let reply = detail(
        &app,
        json!({ "RequestId": request_id, "WithTransactions": "true" }),
    )
    .await;
    assert_ok(&reply);
    assert!(
        !accounts(&reply)[0]["Transactions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn with_balance_false_nulls_every_balance() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    for value in [json!(false), json!("false")] {
        let reply = detail(
            &app,
            json!({ "RequestId": request_id, "WithBalance": value }),
        )
        .await;
        assert_ok(&reply);
        for account in accounts(&reply) {
            assert_eq!(
                account["Balance"].to_string(),
                r#"{"Available":null,"Current":null,"Limit":null}"#,
                "{value}: {account:#}"
            );
        }
    }
}

#[tokio::test]
async fn with_kyc_false_in_either_spelling_hides_the_holder() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    for field in ["WithKYC", "WithKyc"] {
        for value in [json!(false), json!("false")] {
            let mut body = json!({ "RequestId": request_id });
            body[field] = value.clone();
            let reply = detail(&app, body).await;
            assert_ok(&reply);
            for account in accounts(&reply) {
                assert!(account["Holder"].is_null(), "{field}: {value}: {account:#}");
                assert_eq!(keys(account), DETAIL_ACCOUNT_KEYS);
            }
        }
    }
    // By default the holder is there.
    let reply = detail(&app, json!({ "RequestId": request_id })).await;
    assert!(accounts(&reply)[0]["Holder"].is_object());
}

#[tokio::test]
async fn with_account_identity_false_hides_the_numbers() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    for value in [json!(false), json!("false")] {
        let reply = detail(
            &app,
            json!({ "RequestId": request_id, "WithAccountIdentity": value }),
        )
        .await;
        assert_ok(&reply);
        for account in accounts(&reply) {
            for field in ["TransitNumber", "InstitutionNumber", "AccountNumber"] {
                assert!(account[field].is_null(), "{value}: {field} in {account:#}");
            }
            assert!(account["Id"].is_string());
        }
    }
}

#[tokio::test]
async fn keys_match_in_any_case() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let reply = detail(
        &app,
        json!({
            "requestid": request_id,
            "WITHTRANSACTIONS": "FALSE",
            "withbalance": false,
            "withkyc": "false",
            "withAccountIdentity": false,
        }),
    )
    .await;
    assert_ok(&reply);
    assert_eq!(reply.json["RequestId"], request_id);
    for account in accounts(&reply) {
        assert_eq!(account["Transactions"], json!([]));
        assert!(account["Balance"]["Current"].is_null());
        assert!(account["Holder"].is_null());
        assert!(account["AccountNumber"].is_null());
    }
    let summary = data(
        &app,
        "GetAccountsSummary",
        json!({ "REQUESTID": request_id }),
    )
    .await;
    assert_ok(&summary);
}

// ---------------------------------------------------------------------------------------------
// AccountsFilter and bad bodies

#[tokio::test]
async fn accounts_filter_narrows_to_the_named_account() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let all = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&all);
    let wanted = accounts(&all).last().unwrap().clone();

    let reply = detail(
        &app,
        json!({ "RequestId": request_id, "AccountsFilter": [wanted["Id"]] }),
    )
    .await;
    assert_ok(&reply);
    assert_eq!(accounts(&reply), &vec![wanted.clone()]);

    let summary = data(
        &app,
        "GetAccountsSummary",
        json!({ "RequestId": request_id, "AccountsFilter": [wanted["Id"]] }),
    )
    .await;
    assert_ok(&summary);
    assert_eq!(accounts(&summary).len(), 1);
    assert_eq!(accounts(&summary)[0]["Id"], wanted["Id"]);

    // An empty filter is no filter.
    let unfiltered = detail(
        &app,
        json!({ "RequestId": request_id, "AccountsFilter": [] }),
    )
    .await;
    assert_eq!(unfiltered.json["Accounts"], all.json["Accounts"]);
}

#[tokio::test]
async fn an_account_filter_naming_no_account_of_the_login_is_refused() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    // An account of another LoginId is no account of this one either.
    let other = session(&app, app.toolbox_login().await).await;
    let foreign = detail(&app, json!({ "RequestId": other })).await;
    let foreign_id = accounts(&foreign)[0]["Id"].as_str().unwrap().to_owned();
    for endpoint in ["GetAccountsDetail", "GetAccountsSummary"] {
        for id in [UNKNOWN_GUID, "not-a-guid", &foreign_id] {
            let reply = data(
                &app,
                endpoint,
                json!({ "RequestId": request_id, "AccountsFilter": [id] }),
            )
            .await;
            reply.assert_error(400, "INVALID_REQUEST", "account_unknown");
            assert_eq!(reply.json["RequestId"], request_id, "{endpoint} {id}");
        }
    }
}

#[tokio::test]
async fn unknown_days_of_transactions_is_refused() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let reply = detail(
        &app,
        json!({ "RequestId": request_id, "DaysOfTransactions": "Days7" }),
    )
    .await;
    reply.assert_error(400, "INVALID_REQUEST", "days_of_transactions_invalid");
    assert_eq!(reply.json["RequestId"], request_id);
    assert!(reply.hint().contains("Days365"), "{}", reply.hint());
}

#[tokio::test]
async fn malformed_bodies_are_refused_in_the_envelope() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let uri = path(TOOLBOX_CUSTOMER, "GetAccountsDetail");
    let headers = [("x-api-key", TOOLBOX_API_KEY)];

    let wrong_type = app
        .post(
            &uri,
            &headers,
            &json!({ "RequestId": request_id, "AccountsFilter": "x" }).to_string(),
        )
        .await;
    wrong_type.assert_error(400, "INVALID_REQUEST", "body_invalid");

    let not_json = app.post(&uri, &headers, "{").await;
    not_json.assert_error(400, "INVALID_REQUEST", "body_not_json");

    let not_a_bool = app
        .post(
            &uri,
            &headers,
            &json!({ "RequestId": request_id, "WithBalance": "maybe" }).to_string(),
        )
        .await;
    not_a_bool.assert_error(400, "INVALID_REQUEST", "body_invalid");

    // The session is unharmed by the refusals.
    assert_ok(&detail(&app, json!({ "RequestId": request_id })).await);
}

// ---------------------------------------------------------------------------------------------
// Determinism and sessions

#[tokio::test]
async fn the_same_login_id_always_gives_the_same_accounts() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let first = session(&app, login).await;
    let second = session(&app, login).await;
    assert_ne!(first, second);
    let body = |rid: &str| json!({ "RequestId": rid, "DaysOfTransactions": "Days365" });
    let one = detail(&app, body(&first)).await;
    let two = detail(&app, body(&second)).await;
    assert_ok(&one);
    assert_ok(&two);
    assert_eq!(one.json["Accounts"], two.json["Accounts"]);
    assert_eq!(
        one.json["Accounts"].to_string(),
        two.json["Accounts"].to_string(),
        "same order too"
    );

    let other = session(&app, app.toolbox_login().await).await;
    let three = detail(&app, body(&other)).await;
    assert_ok(&three);
    assert_ne!(one.json["Accounts"], three.json["Accounts"]);
    let ids =
        |reply: &Reply| -> Vec<Value> { accounts(reply).iter().map(|a| a["Id"].clone()).collect() };
    assert!(
        ids(&one).iter().all(|id| !ids(&three).contains(id)),
        "two LoginIds share no account"
    );
}

#[tokio::test]
async fn summary_then_detail_on_one_request_id() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let summary = summary(&app, &request_id).await;
    assert_ok(&summary);
    let detail = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&detail);
    assert_eq!(detail.json["RequestId"], request_id);
    // Both describe the same accounts.
    let summary_accounts = accounts(&summary);
    let detail_accounts = accounts(&detail);
    assert_eq!(summary_accounts.len(), detail_accounts.len());
    for (s, d) in summary_accounts.iter().zip(detail_accounts) {
        for field in [
            "Id",
            "Title",
            "AccountNumber",
            "Balance",
            "Category",
            "Type",
            "Currency",
            "Holder",
        ] {
            assert_eq!(s[field], d[field], "{field}");
        }
    }
    // And again: a RequestId is not spent by reading.
    assert_ok(&self::summary(&app, &request_id).await);
}

// ---------------------------------------------------------------------------------------------
// Credentials and RequestIds

#[tokio::test]
async fn the_x_api_key_is_required_and_checked() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let body = json!({ "RequestId": request_id }).to_string();
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        let uri = path(TOOLBOX_CUSTOMER, endpoint);
        let missing = app.post(&uri, &[], &body).await;
        missing.assert_error(401, "UNAUTHORIZED", "api_key_missing");
        assert_eq!(
            missing.json["Message"],
            "You must provide a valid x-api-key"
        );

        let wrong = app.post(&uri, &[("x-api-key", UNKNOWN_GUID)], &body).await;
        wrong.assert_error(401, "UNAUTHORIZED", "api_key_invalid");
        assert_eq!(wrong.json["Message"], "You must provide a valid x-api-key");
    }
    for endpoint in ["GetAccountsSummaryAsync", "GetAccountsDetailAsync"] {
        let uri = format!("{}/{request_id}", path(TOOLBOX_CUSTOMER, endpoint));
        app.send(request("GET", &uri, &[], "")).await.assert_error(
            401,
            "UNAUTHORIZED",
            "api_key_missing",
        );
        app.send(request("GET", &uri, &[("x-api-key", UNKNOWN_GUID)], ""))
            .await
            .assert_error(401, "UNAUTHORIZED", "api_key_invalid");
    }
}

#[tokio::test]
async fn a_missing_request_id_is_refused() {
    let app = TestApp::new().await;
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        for body in [json!({}), json!({ "RequestId": "" })] {
            data(&app, endpoint, body).await.assert_error(
                400,
                "INVALID_REQUEST",
                "request_id_missing",
            );
        }
        // No body at all.
        app.post(
            &path(TOOLBOX_CUSTOMER, endpoint),
            &[("x-api-key", TOOLBOX_API_KEY)],
            "",
        )
        .await
        .assert_error(400, "INVALID_REQUEST", "request_id_missing");
    }
}

#[tokio::test]
async fn unknown_and_malformed_request_ids_have_no_session() {
    let app = TestApp::new().await;
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        for request_id in [
            RequestId::new_random().to_string(),
            UNKNOWN_GUID.to_owned(),
            "not-a-guid".to_owned(),
        ] {
            let reply = data(&app, endpoint, json!({ "RequestId": request_id })).await;
            let reason = if request_id == "not-a-guid" {
                "request_id_malformed"
            } else {
                "request_id_unknown"
            };
            reply.assert_error(400, "SESSION_NONEXISTENT", reason);
            assert_eq!(
                reply.json["Message"],
                format!("RequestId {request_id} is invalid or session has ended"),
                "{endpoint}"
            );
        }
    }
    for endpoint in ["GetAccountsSummaryAsync", "GetAccountsDetailAsync"] {
        let reply = poll(&app, "GET", endpoint, UNKNOWN_GUID).await;
        reply.assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
        assert_eq!(
            reply.json["Message"],
            format!("RequestId {UNKNOWN_GUID} is invalid or session has ended")
        );
    }
}

#[tokio::test]
async fn a_request_id_ends_30_minutes_after_authorize() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;

    app.advance(Duration::from_secs(29 * 60 + 59));
    assert_ok(&summary(&app, &request_id).await);
    assert_ok(&detail(&app, json!({ "RequestId": request_id })).await);
    assert_ok(&poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await);

    app.advance(Duration::from_secs(1));
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        let reply = data(&app, endpoint, json!({ "RequestId": request_id })).await;
        reply.assert_error(400, "SESSION_NONEXISTENT", "request_id_expired");
        assert_eq!(
            reply.json["Message"],
            format!("RequestId {request_id} is invalid or session has ended")
        );
    }
    poll(&app, "GET", "GetAccountsDetailAsync", &request_id)
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_expired");
}

#[tokio::test]
async fn a_request_id_of_another_customer_is_unknown() {
    let app = TestApp::new().await;
    let (other, secret, api_key) = app.customer_with("toolbox", true, true).await;
    let login = app.login(other, "Greatday").await;
    let token = app.generate_token_for(other, &secret).await;
    let opened = app.authorize(other, &token, login).await;
    assert_ok(&opened);
    let foreign = opened.json["RequestId"].as_str().unwrap().to_owned();
    // It works for its own customer...
    let own = app
        .post(
            &path(other, "GetAccountsDetail"),
            &[("x-api-key", &api_key)],
            &json!({ "RequestId": foreign }).to_string(),
        )
        .await;
    assert_ok(&own);
    // ...and not for the toolbox customer.
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        data(&app, endpoint, json!({ "RequestId": foreign }))
            .await
            .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    }
    poll(&app, "GET", "GetAccountsDetailAsync", &foreign)
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");

    // Nor does the toolbox RequestId work for the other customer.
    let toolbox_rid = session(&app, app.toolbox_login().await).await;
    app.post(
        &path(other, "GetAccountsDetail"),
        &[("x-api-key", &api_key)],
        &json!({ "RequestId": toolbox_rid }).to_string(),
    )
    .await
    .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
}

#[tokio::test]
async fn delete_card_ends_the_request_ids_of_the_login() {
    let app = TestApp::new().await;
    let login = app.toolbox_login().await;
    let request_id = session(&app, login).await;
    assert_ok(&summary(&app, &request_id).await);
    assert_ok(
        &app.delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &login.to_string())
            .await,
    );
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        data(&app, endpoint, json!({ "RequestId": request_id }))
            .await
            .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
    }
    poll(&app, "GET", "GetAccountsDetailAsync", &request_id)
        .await
        .assert_error(400, "SESSION_NONEXISTENT", "request_id_unknown");
}

// ---------------------------------------------------------------------------------------------
// 202 and the Async polls

#[tokio::test]
async fn test_pending_answers_202_until_the_operation_finishes() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "test_pending").await;
    let request_id = session(&app, login).await;

    let first = detail(&app, json!({ "RequestId": request_id })).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:#}", first.json);
    assert_envelope(&first);
    // Exactly the documented body, fields in this order.
    assert_eq!(
        first.json.to_string(),
        format!(
            r#"{{"FlinksCode":"OPERATION_PENDING","Links":[{{"rel":"GetAccountsDetailAsync","href":"/GetAccountsDetailAsync","example":"/GetAccountsDetailAsync/{request_id}"}}],"HttpStatusCode":202,"Message":"Your operation is still processing","RequestId":"{request_id}"}}"#
        )
    );

    let right_away = poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await;
    assert_eq!(
        right_away.status,
        StatusCode::ACCEPTED,
        "{:#}",
        right_away.json
    );
    assert_envelope(&right_away);
    assert_eq!(right_away.json["FlinksCode"], "OPERATION_PENDING");
    assert_eq!(
        right_away.json["Message"],
        "Your operation is still processing"
    );
    assert_eq!(right_away.json["RequestId"], request_id);

    // Just before the operation finishes: still pending.
    app.advance(SANDBOX_PROCESSING_TIME - Duration::from_secs(1));
    let almost = poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await;
    assert_eq!(almost.status, StatusCode::ACCEPTED, "{:#}", almost.json);
    assert_eq!(almost.json["FlinksCode"], "OPERATION_PENDING");

    app.advance(Duration::from_secs(1));
    let done = poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await;
    assert_ok(&done);
    assert!(!accounts(&done).is_empty());
    assert_eq!(done.json["RequestId"], request_id);
    assert_eq!(done.json["Login"]["Id"], login.to_string());
    for account in accounts(&done) {
        assert_eq!(keys(account), DETAIL_ACCOUNT_KEYS);
    }

    let posted = poll(&app, "POST", "GetAccountsDetailAsync", &request_id).await;
    assert_ok(&posted);
    assert_eq!(posted.json["Accounts"], done.json["Accounts"]);

    // The synchronous endpoint now answers 200 with the same accounts.
    let again = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&again);
    assert_eq!(again.json["Accounts"], done.json["Accounts"]);
}

#[tokio::test]
async fn test_dispatched_answers_202_operation_dispatched_first() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "test_dispatched").await;
    let request_id = session(&app, login).await;

    let first = detail(&app, json!({ "RequestId": request_id })).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:#}", first.json);
    assert_envelope(&first);
    assert_eq!(
        keys(&first.json),
        [
            "FlinksCode",
            "Links",
            "HttpStatusCode",
            "Message",
            "RequestId"
        ]
    );
    assert_eq!(first.json["FlinksCode"], "OPERATION_DISPATCHED");
    assert_eq!(
        first.json["Message"],
        "Your operations had been dispatched to background process for long running jobs"
    );
    assert_eq!(first.json["RequestId"], request_id);
    assert_eq!(
        first.json["Links"][0]["example"],
        format!("/GetAccountsDetailAsync/{request_id}")
    );

    app.advance(Duration::from_secs(1));
    let polled = poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await;
    assert_eq!(polled.status, StatusCode::ACCEPTED, "{:#}", polled.json);
    assert_envelope(&polled);

    app.advance(SANDBOX_PROCESSING_TIME);
    let done = poll(&app, "GET", "GetAccountsDetailAsync", &request_id).await;
    assert_ok(&done);
    assert!(!accounts(&done).is_empty());
}

#[tokio::test]
async fn test_pending_summary_answers_202_then_its_async_poll_200() {
    let app = TestApp::new().await;
    let login = app.login(toolbox_customer(), "test_pending").await;
    let request_id = session(&app, login).await;

    let first = summary(&app, &request_id).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:#}", first.json);
    assert_envelope(&first);
    assert_eq!(
        first.json.to_string(),
        format!(
            r#"{{"FlinksCode":"OPERATION_PENDING","Links":[{{"rel":"GetAccountsSummaryAsync","href":"/GetAccountsSummaryAsync","example":"/GetAccountsSummaryAsync/{request_id}"}}],"HttpStatusCode":202,"Message":"Your operation is still processing","RequestId":"{request_id}"}}"#
        )
    );
    let right_away = poll(&app, "GET", "GetAccountsSummaryAsync", &request_id).await;
    assert_eq!(right_away.status, StatusCode::ACCEPTED);
    assert_eq!(right_away.json["FlinksCode"], "OPERATION_PENDING");

    app.advance(SANDBOX_PROCESSING_TIME);
    let done = poll(&app, "GET", "GetAccountsSummaryAsync", &request_id).await;
    assert_ok(&done);
    assert!(!accounts(&done).is_empty());
    assert_eq!(done.json["Links"][0]["rel"], "AccountsDetail");
    for account in accounts(&done) {
        assert_eq!(keys(account), SUMMARY_ACCOUNT_KEYS);
    }
    assert_ok(&poll(&app, "POST", "GetAccountsSummaryAsync", &request_id).await);
    assert_ok(&summary(&app, &request_id).await);
}

#[tokio::test]
async fn async_polls_answer_200_at_once_for_a_normal_user() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let direct = detail(&app, json!({ "RequestId": request_id })).await;
    assert_ok(&direct);
    for method in ["GET", "POST"] {
        let polled = poll(&app, method, "GetAccountsDetailAsync", &request_id).await;
        assert_ok(&polled);
        assert_eq!(polled.json["Accounts"], direct.json["Accounts"], "{method}");
        let summary = poll(&app, method, "GetAccountsSummaryAsync", &request_id).await;
        assert_ok(&summary);
        assert!(!accounts(&summary).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn endpoint_names_match_in_any_case() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    let body = json!({ "RequestId": request_id }).to_string();
    let headers = [("x-api-key", TOOLBOX_API_KEY)];
    for uri in [
        path(TOOLBOX_CUSTOMER, "getaccountsdetail"),
        format!("/v3/{TOOLBOX_CUSTOMER}/bankingservices/GETACCOUNTSDETAIL"),
        path(TOOLBOX_CUSTOMER, "getaccountssummary"),
    ] {
        let reply = app.post(&uri, &headers, &body).await;
        assert_ok(&reply);
        assert!(!accounts(&reply).is_empty(), "{uri}");
    }
    let polled = app
        .send(request(
            "GET",
            &format!(
                "{}/{request_id}",
                path(TOOLBOX_CUSTOMER, "getaccountsdetailasync")
            ),
            &headers,
            "",
        ))
        .await;
    assert_ok(&polled);
}

#[tokio::test]
async fn get_on_get_accounts_detail_is_405_in_the_envelope() {
    let app = TestApp::new().await;
    let request_id = session(&app, app.toolbox_login().await).await;
    for endpoint in ["GetAccountsDetail", "GetAccountsSummary"] {
        let reply = app
            .send(request(
                "GET",
                &path(TOOLBOX_CUSTOMER, endpoint),
                &[("x-api-key", TOOLBOX_API_KEY)],
                &json!({ "RequestId": request_id }).to_string(),
            ))
            .await;
        reply.assert_error(405, "INVALID_REQUEST", "method_not_allowed");
        assert!(reply.hint().contains("POST"), "{}", reply.hint());
    }
}

// ---------------------------------------------------------------------------------------------
// Live sessions

fn live_connect_body(username: &str) -> String {
    json!({
        "Institution": "FlinksCapital",
        "Username": username,
        "Password": "Everyday",
        "MostRecentCached": false,
        "Save": true,
    })
    .to_string()
}

#[tokio::test]
async fn a_session_still_waiting_for_mfa_answers_is_not_authorized() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let challenged = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &live_connect_body("Greatday"),
        )
        .await;
    assert_eq!(challenged.status.as_u16(), 203, "{:#}", challenged.json);
    let request_id = challenged.json["RequestId"].as_str().unwrap().to_owned();
    for endpoint in ["GetAccountsSummary", "GetAccountsDetail"] {
        let reply = data(&app, endpoint, json!({ "RequestId": request_id })).await;
        reply.assert_error(401, "UNAUTHORIZED", "session_not_authorized");
        assert_eq!(reply.json["RequestId"], request_id);
    }
}

#[tokio::test]
async fn a_live_session_reads_the_same_accounts_as_a_cached_one() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let live = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &live_connect_body("greatday_nomfa"),
        )
        .await;
    assert_ok(&live);
    let live_rid = live.json["RequestId"].as_str().unwrap().to_owned();
    let login: LoginId = live.json["Login"]["Id"].as_str().unwrap().parse().unwrap();

    let from_live = detail(&app, json!({ "RequestId": live_rid })).await;
    assert_ok(&from_live);
    assert_eq!(from_live.json["Login"]["Id"], login.to_string());
    let cached_rid = session(&app, login).await;
    let from_cached = detail(&app, json!({ "RequestId": cached_rid })).await;
    assert_ok(&from_cached);
    assert_eq!(from_live.json["Accounts"], from_cached.json["Accounts"]);
}
