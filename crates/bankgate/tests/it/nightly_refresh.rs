//! The nightly (scheduled) refresh: SetScheduledRefresh, ScheduleRefresh on a new card's live
//! /Authorize and Connect's scheduleRefresh, `Login.IsScheduledRefresh`, the run at 02:00 on
//! the instance's clock, and GetNightlyRefreshStatus.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bankgate_core::LoginId;
use bankgate_core::model::InstanceKind;
use bankgate_store::ClockChange;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A saved card of a sandbox user connected live at the current time (`extra` merged into the
/// body); greatday_nomfa needs no MFA.
pub(crate) async fn connect_card(app: &TestApp, username: &str, extra: Value) -> Reply {
    let token = app.toolbox_token().await;
    let mut body = json!({
        "Institution": "FlinksCapital",
        "Username": username,
        "Password": "Everyday",
        "Save": true,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post(
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", &token)],
        &body.to_string(),
    )
    .await
}

async fn new_card(app: &TestApp, extra: Value) -> LoginId {
    let reply = connect_card(app, "greatday_nomfa", extra).await;
    assert_eq!(reply.status.as_u16(), 200, "{:#}", reply.json);
    reply.json["Login"]["Id"].as_str().unwrap().parse().unwrap()
}

pub(crate) async fn patch(
    app: &TestApp,
    endpoint: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    app.send(request(
        "PATCH",
        &path(TOOLBOX_CUSTOMER, endpoint),
        headers,
        body,
    ))
    .await
}

async fn set_scheduled(app: &TestApp, body: &str) -> Reply {
    patch(
        app,
        "SetScheduledRefresh",
        &[("x-api-key", TOOLBOX_API_KEY)],
        body,
    )
    .await
}

async fn status(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    app.send(request(
        "GET",
        &path(TOOLBOX_CUSTOMER, "GetNightlyRefreshStatus"),
        headers,
        "",
    ))
    .await
}

/// Moves the toolbox clock as an operator does (admin API, CLI).
pub(crate) async fn advance_toolbox(app: &TestApp, by: Duration) {
    app.operator()
        .change_clock(&"toolbox".parse().unwrap(), ClockChange::Advance(by))
        .await
        .unwrap();
}

async fn cached_login(app: &TestApp, login: LoginId) -> Value {
    let token = app.toolbox_token().await;
    let reply = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    assert_eq!(reply.status.as_u16(), 200, "{:#}", reply.json);
    reply.json["Login"].clone()
}

async fn stored(app: &TestApp, login: LoginId) -> bankgate_core::model::Login {
    app.state
        .store
        .login(toolbox_customer(), login)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn set_scheduled_refresh_switches_a_card_in_both_spellings_and_login_objects_show_it() {
    let app = TestApp::new().await;
    let login = new_card(&app, json!({})).await;
    assert_eq!(cached_login(&app, login).await["IsScheduledRefresh"], false);

    let on = set_scheduled(
        &app,
        &json!({"LoginId": login, "IsActivated": true}).to_string(),
    )
    .await;
    assert_eq!(on.status.as_u16(), 200);
    assert_eq!(on.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        on.json,
        json!(format!(
            "LoginId {login} has now been activated for automatic refresh"
        ))
    );
    let token = app.toolbox_token().await;
    let cached = app.authorize(TOOLBOX_CUSTOMER, &token, login).await;
    assert_eq!(cached.json["Login"]["IsScheduledRefresh"], true);
    // The data endpoints show it too.
    let summary = app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsSummary"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({"RequestId": cached.json["RequestId"]}).to_string(),
        )
        .await;
    assert_eq!(
        summary.json["Login"]["IsScheduledRefresh"], true,
        "{:#}",
        summary.json
    );

    // The C# SDK's spelling: camelCase keys, the boolean as a string.
    let off = set_scheduled(
        &app,
        &json!({"loginId": login, "isActivated": "false"}).to_string(),
    )
    .await;
    assert_eq!(off.status.as_u16(), 200, "{:#}", off.json);
    assert_eq!(
        off.json,
        json!(format!(
            "LoginId {login} has now been deactivated for automatic refresh"
        ))
    );
    assert!(!stored(&app, login).await.is_scheduled_refresh);
    let again = set_scheduled(
        &app,
        &json!({"LOGINID": login, "IsActivated": "TRUE"}).to_string(),
    )
    .await;
    assert_eq!(again.status.as_u16(), 200, "{:#}", again.json);
    assert!(stored(&app, login).await.is_scheduled_refresh);
}

#[tokio::test]
async fn set_scheduled_refresh_refuses_every_bad_input_and_changes_nothing() {
    let app = TestApp::new().await;
    let login = new_card(&app, json!({})).await;
    let deleted = new_card(&app, json!({})).await;
    app.delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, &deleted.to_string())
        .await;
    let unsaved = connect_card(&app, "greatday_nomfa", json!({"Save": false})).await;
    let unsaved = unsaved.json["Login"]["Id"].as_str().unwrap().to_owned();
    let (other_customer, _, other_key) = app.customer_with("toolbox", true, true).await;
    let on = |id: &str| json!({"LoginId": id, "IsActivated": true}).to_string();
    let key = [("x-api-key", TOOLBOX_API_KEY)];
    // (what, headers, body, status, FlinksCode, Reason)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no x-api-key",
            vec![],
            on(&login.to_string()),
            401,
            "UNAUTHORIZED",
            "api_key_missing",
        ),
        (
            "a wrong x-api-key",
            vec![("x-api-key", "5b0b2bde-8cf5-4bd0-8b3a-4a4f4b4f4b4f")],
            on(&login.to_string()),
            401,
            "UNAUTHORIZED",
            "api_key_invalid",
        ),
        (
            "the secret key",
            vec![("x-api-key", TOOLBOX_SECRET)],
            on(&login.to_string()),
            401,
            "UNAUTHORIZED",
            "auth_key_given_as_api_key",
        ),
        (
            "another customer's x-api-key",
            vec![("x-api-key", other_key.as_str())],
            on(&login.to_string()),
            401,
            "UNAUTHORIZED",
            "api_key_invalid",
        ),
        (
            "no LoginId",
            key.to_vec(),
            json!({"IsActivated": true}).to_string(),
            400,
            "INVALID_REQUEST",
            "login_id_missing",
        ),
        (
            "a LoginId that is no UUID",
            key.to_vec(),
            on("card-1"),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            "an unknown LoginId",
            key.to_vec(),
            on(&LoginId::new_random().to_string()),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            "a deleted LoginId",
            key.to_vec(),
            on(&deleted.to_string()),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            "an unsaved card",
            key.to_vec(),
            on(&unsaved),
            400,
            "INVALID_LOGIN",
            "login_not_found",
        ),
        (
            "no IsActivated",
            key.to_vec(),
            json!({"LoginId": login}).to_string(),
            400,
            "INVALID_REQUEST",
            "is_activated_missing",
        ),
        (
            "IsActivated null",
            key.to_vec(),
            json!({"LoginId": login, "IsActivated": null}).to_string(),
            400,
            "INVALID_REQUEST",
            "is_activated_missing",
        ),
        (
            "IsActivated \"yes\"",
            key.to_vec(),
            json!({"LoginId": login, "IsActivated": "yes"}).to_string(),
            400,
            "INVALID_REQUEST",
            "body_invalid",
        ),
        (
            "IsActivated 1",
            key.to_vec(),
            json!({"LoginId": login, "IsActivated": 1}).to_string(),
            400,
            "INVALID_REQUEST",
            "body_invalid",
        ),
        (
            "not JSON",
            key.to_vec(),
            "LoginId=x&IsActivated=true".to_owned(),
            400,
            "INVALID_REQUEST",
            "body_not_json",
        ),
        (
            "an array",
            key.to_vec(),
            "[]".to_owned(),
            400,
            "INVALID_REQUEST",
            "body_not_object",
        ),
    ];
    for (what, headers, body, status, code, reason) in cases {
        let reply = set_scheduled_with(&app, &headers, &body).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {:#}", reply.json);
        reply.assert_error(status, code, reason);
    }
    // Another customer cannot switch this customer's card.
    let foreign = app
        .send(request(
            "PATCH",
            &path(other_customer, "SetScheduledRefresh"),
            &[("x-api-key", &other_key)],
            &on(&login.to_string()),
        ))
        .await;
    foreign.assert_error(400, "INVALID_LOGIN", "login_not_found");
    // The Ruby gem's query string is named in the hint.
    let query = app
        .send(request(
            "PATCH",
            &format!(
                "{}?login_id={login}&is_activated=true",
                path(TOOLBOX_CUSTOMER, "SetScheduledRefresh")
            ),
            &key,
            "{}",
        ))
        .await;
    query.assert_error(400, "INVALID_REQUEST", "login_id_missing");
    assert!(query.hint().contains("query string"), "{}", query.hint());
    // Only PATCH.
    let post = app
        .post(
            &path(TOOLBOX_CUSTOMER, "SetScheduledRefresh"),
            &key,
            &on(&login.to_string()),
        )
        .await;
    assert_eq!(post.status.as_u16(), 405, "{:#}", post.json);
    assert!(post.hint().contains("PATCH /v3/"), "{}", post.hint());
    assert!(
        !stored(&app, login).await.is_scheduled_refresh,
        "nothing changed"
    );
}

async fn set_scheduled_with(app: &TestApp, headers: &[(&str, &str)], body: &str) -> Reply {
    patch(app, "SetScheduledRefresh", headers, body).await
}

/// A response's header (the `Reply` of the harness keeps none but two).
async fn with_header(app: &TestApp, req: Request<Body>, name: &str) -> (Option<String>, Value) {
    let response = app.router.clone().oneshot(req).await.unwrap();
    let value = response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (value, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn schedule_refresh_on_a_new_cards_authorize_switches_it_on_and_is_ignored_on_an_existing_one()
 {
    let app = TestApp::new().await;
    let reply = connect_card(&app, "greatday_nomfa", json!({"ScheduleRefresh": "true"})).await;
    assert_eq!(
        reply.json["Login"]["IsScheduledRefresh"], true,
        "{:#}",
        reply.json
    );
    let login: LoginId = reply.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
    assert!(stored(&app, login).await.is_scheduled_refresh);
    let plain = connect_card(&app, "greatday_nomfa", json!({"ScheduleRefresh": false})).await;
    assert_eq!(plain.json["Login"]["IsScheduledRefresh"], false);

    // Through an MFA step: the flag waits with the pending step.
    let token = app.toolbox_token().await;
    let challenge = connect_card(&app, "Greatday", json!({"scheduleRefresh": true})).await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap();
    let answer = crate::enhanced_mfa::answer_to(prompt);
    let done = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"RequestId": challenge.json["RequestId"], "SecurityResponses": {prompt: [answer]}})
                .to_string(),
        )
        .await;
    assert_eq!(done.status.as_u16(), 200, "{:#}", done.json);
    assert_eq!(done.json["Login"]["IsScheduledRefresh"], true);

    // An existing card: a live refresh ignores it, and says so.
    let unflagged: LoginId = plain.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
    let token = app.toolbox_token().await;
    let (ignored, body) = with_header(
        &app,
        request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": unflagged, "MostRecentCached": false, "ScheduleRefresh": true})
                .to_string(),
        ),
        "x-bankgate-ignored-fields",
    )
    .await;
    assert_eq!(body["HttpStatusCode"], 200, "{body:#}");
    assert_eq!(body["Login"]["IsScheduledRefresh"], false);
    assert_eq!(ignored.as_deref(), Some("ScheduleRefresh"));
    assert!(!stored(&app, unflagged).await.is_scheduled_refresh);
}

#[tokio::test]
async fn connect_schedule_refresh_switches_on_the_card_the_page_makes() {
    let app = TestApp::new().await;
    let page = crate::connect::to_credentials(&app, "&scheduleRefresh=true").await;
    let page = crate::connect::login(&app, &page, "greatday_nomfa", "Everyday").await;
    let login: LoginId = page.events()[1]["loginId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stored(&app, login).await.is_scheduled_refresh);
    let page = crate::connect::to_credentials(&app, "").await;
    let page = crate::connect::login(&app, &page, "greatday_nomfa", "Everyday").await;
    let login: LoginId = page.events()[1]["loginId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(!stored(&app, login).await.is_scheduled_refresh);
}

#[tokio::test]
async fn the_nightly_refresh_runs_at_two_and_a_card_without_cached_calls_stops_after_seven_days() {
    let app = TestApp::new().await;
    // Connected at 2026-01-21T20:47:47Z, flagged, read cached once.
    let login = new_card(&app, json!({"ScheduleRefresh": true})).await;
    let unflagged = new_card(&app, json!({})).await;
    cached_login(&app, login).await;
    cached_login(&app, unflagged).await;
    let connected = stored(&app, login).await.last_refresh;

    // Not yet 02:00: nothing ran.
    advance_toolbox(&app, Duration::from_secs(5 * 3600)).await;
    assert_eq!(stored(&app, login).await.last_refresh, connected);
    // Across 02:00 on 2026-01-22: refreshed at 02:00; the unflagged card is not.
    advance_toolbox(&app, Duration::from_secs(3600)).await;
    let first = stored(&app, login).await.last_refresh;
    assert_eq!(first.to_rfc3339(), "2026-01-22T02:00:00Z");
    assert_eq!(stored(&app, unflagged).await.last_refresh, connected);
    let healthy = status(
        &app,
        &[("Authorization", &format!("Bearer {TOOLBOX_API_KEY}"))],
    )
    .await;
    assert_eq!(healthy.status.as_u16(), 200, "{:#}", healthy.json);
    assert_eq!(
        healthy.json,
        json!({"HttpStatusCode": 200, "IneligibleCards": []})
    );

    // Seven more days: refreshed each night while the cached call is under 7 days old, then
    // listed (the eighth night after connecting, 2026-01-29T02:00).
    advance_toolbox(&app, DAY * 7).await;
    assert_eq!(
        stored(&app, login).await.last_refresh.to_rfc3339(),
        "2026-01-28T02:00:00Z"
    );
    let listed = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    assert_eq!(listed.status.as_u16(), 200, "{:#}", listed.json);
    assert_eq!(
        listed.json["IneligibleCards"][0]["LoginId"],
        login.to_string()
    );
    insta::assert_json_snapshot!(listed.json, {".IneligibleCards[0].LoginId" => "[login-id]"}, @r#"
    {
      "HttpStatusCode": 200,
      "IneligibleCards": [
        {
          "LoginId": "[login-id]",
          "LastRefreshDate": "2026-01-28T02:00:00.000000",
          "LastRefreshState": "Completed",
          "LastRefreshErrorCode": null,
          "Reason": "no_cached_call",
          "Hint": "The card had no cached /Authorize (MostRecentCached: true) in the 7 days before 2026-01-29T02:00:00Z (instances with a webhook are exempt); refresh it live, then keep reading it at least weekly."
        }
      ]
    }
    "#);
    // Another night changes nothing; a live refresh makes it eligible again.
    advance_toolbox(&app, DAY).await;
    let still = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    assert_eq!(still.json, listed.json);
    let token = app.toolbox_token().await;
    let refresh = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": login, "MostRecentCached": false}).to_string(),
        )
        .await;
    assert_eq!(refresh.status.as_u16(), 200, "{:#}", refresh.json);
    let cleared = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    assert_eq!(cleared.json["IneligibleCards"], json!([]));
}

#[tokio::test]
async fn the_real_clock_crossing_two_runs_it_before_the_status_answers_once_per_night() {
    let app = TestApp::new().await;
    let login = new_card(&app, json!({"ScheduleRefresh": true})).await;
    cached_login(&app, login).await;
    // Real time passes (no operator move): the status runs the nights it crossed, each once.
    for _ in 0..3 {
        app.advance(DAY);
        let reply = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
        assert_eq!(reply.json["IneligibleCards"], json!([]));
    }
    assert_eq!(
        stored(&app, login).await.last_refresh.to_rfc3339(),
        "2026-01-24T02:00:00Z"
    );
}

#[tokio::test]
async fn a_card_whose_live_refresh_failed_is_listed_with_its_error() {
    let app = TestApp::new().await;
    let token = app.toolbox_token().await;
    let challenge = connect_card(&app, "Greatday", json!({"ScheduleRefresh": true})).await;
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap();
    let done = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"RequestId": challenge.json["RequestId"], "SecurityResponses": {prompt: [crate::enhanced_mfa::answer_to(prompt)]}})
                .to_string(),
        )
        .await;
    let login: LoginId = done.json["Login"]["Id"].as_str().unwrap().parse().unwrap();
    cached_login(&app, login).await;
    // A live refresh answered wrong.
    let token = app.toolbox_token().await;
    let asked = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": login, "MostRecentCached": false}).to_string(),
        )
        .await;
    assert_eq!(asked.status.as_u16(), 203, "{:#}", asked.json);
    let prompt = asked.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap();
    let wrong = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[],
            &json!({"RequestId": asked.json["RequestId"], "SecurityResponses": {prompt: ["Atlantis"]}})
                .to_string(),
        )
        .await;
    wrong.assert_error(
        401,
        "INVALID_SECURITY_RESPONSE",
        "security_response_invalid",
    );
    advance_toolbox(&app, DAY).await;
    let listed = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    let card = &listed.json["IneligibleCards"][0];
    assert_eq!(card["LoginId"], login.to_string(), "{:#}", listed.json);
    assert_eq!(card["LastRefreshState"], "Failed");
    assert_eq!(card["LastRefreshErrorCode"], "INVALID_SECURITY_RESPONSE");
    assert_eq!(card["Reason"], "refresh_error");
}

#[tokio::test]
async fn the_status_takes_bearer_or_x_api_key_and_refuses_anything_else() {
    let app = TestApp::new().await;
    let bearer = format!("Bearer {TOOLBOX_API_KEY}");
    let lower = format!("bearer {TOOLBOX_API_KEY}");
    for headers in [
        vec![("Authorization", bearer.as_str())],
        vec![("Authorization", lower.as_str())],
        vec![("x-api-key", TOOLBOX_API_KEY)],
    ] {
        let reply = status(&app, &headers).await;
        assert_eq!(reply.status.as_u16(), 200, "{headers:?}: {:#}", reply.json);
        assert_envelope(&reply);
    }
    let secret = format!("Bearer {TOOLBOX_SECRET}");
    let wrong = "Bearer 5b0b2bde-8cf5-4bd0-8b3a-4a4f4b4f4b4f".to_owned();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "api_key_missing"),
        (vec![("Authorization", wrong.as_str())], "api_key_invalid"),
        (
            vec![("Authorization", secret.as_str())],
            "auth_key_given_as_api_key",
        ),
        (
            vec![("Authorization", "Bearer undefined")],
            "credential_malformed",
        ),
        (
            vec![("Authorization", TOOLBOX_API_KEY)],
            "wrong_auth_header",
        ),
    ];
    for (headers, reason) in cases {
        let reply = status(&app, &headers).await;
        reply.assert_error(401, "UNAUTHORIZED", reason);
    }
    // A production customer's status works the same (and lists nothing: it has no bank).
    let (customer, _, key) = app.customer_on("acme", InstanceKind::Production).await;
    let reply = app
        .send(request(
            "GET",
            &path(customer, "GetNightlyRefreshStatus"),
            &[("x-api-key", &key)],
            "",
        ))
        .await;
    assert_eq!(reply.json["IneligibleCards"], json!([]), "{:#}", reply.json);
}

#[tokio::test]
async fn a_forced_invalid_login_on_a_card_stops_its_nightly_refresh() {
    use bankgate_core::forced::FailureCode;
    use bankgate_server::operator::{FailureFor, NewFailure};
    let app = TestApp::new().await;
    let login = new_card(&app, json!({"ScheduleRefresh": true})).await;
    cached_login(&app, login).await;
    // The user changed their bank password: the next live refresh answers INVALID_LOGIN.
    app.operator()
        .add_failure(
            toolbox_customer(),
            FailureFor::Login(login),
            NewFailure {
                code: FailureCode::InvalidLogin,
                count: 1,
                seconds: None,
            },
        )
        .await
        .unwrap();
    let token = app.toolbox_token().await;
    let refused = app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &json!({"LoginId": login, "MostRecentCached": false}).to_string(),
        )
        .await;
    refused.assert_error(401, "INVALID_LOGIN", "forced_failure");
    advance_toolbox(&app, DAY).await;
    let listed = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    let card = &listed.json["IneligibleCards"][0];
    assert_eq!(card["LoginId"], login.to_string(), "{:#}", listed.json);
    assert_eq!(card["LastRefreshState"], "Failed");
    assert_eq!(card["LastRefreshErrorCode"], "INVALID_LOGIN");
    assert_eq!(
        stored(&app, login).await.last_refresh.to_rfc3339(),
        "2026-01-21T20:47:47Z",
        "not refreshed"
    );
}

#[tokio::test]
async fn a_cached_call_within_the_week_keeps_a_card_refreshing() {
    let app = TestApp::new().await;
    // Connected at 2026-01-21T20:47:47Z, flagged, read cached twice within the minute (the card
    // records the first of those: a minute's precision, where the nights judge by the day).
    let login = new_card(&app, json!({"ScheduleRefresh": true})).await;
    cached_login(&app, login).await;
    advance_toolbox(&app, Duration::from_secs(30)).await;
    cached_login(&app, login).await;
    // Six days on, read cached again: the seven days now run from this call.
    advance_toolbox(&app, DAY * 6).await;
    cached_login(&app, login).await;
    // Past the night that stops a card read only on its first day (2026-01-29T02:00): the
    // later call kept it refreshing.
    advance_toolbox(&app, DAY * 3).await;
    assert_eq!(
        stored(&app, login).await.last_refresh.to_rfc3339(),
        "2026-01-30T02:00:00Z"
    );
    let healthy = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    assert_eq!(
        healthy.json["IneligibleCards"],
        json!([]),
        "{:#}",
        healthy.json
    );
    // Seven days after the last cached call (2026-01-27T20:48:17Z), the card stops: the
    // eighth night after it, 2026-02-04T02:00, lists it.
    advance_toolbox(&app, DAY * 5).await;
    let listed = status(&app, &[("x-api-key", TOOLBOX_API_KEY)]).await;
    assert_eq!(
        listed.json["IneligibleCards"][0]["Reason"],
        "no_cached_call"
    );
    assert_eq!(
        listed.json["IneligibleCards"][0]["LastRefreshDate"],
        "2026-02-03T02:00:00.000000"
    );
}
