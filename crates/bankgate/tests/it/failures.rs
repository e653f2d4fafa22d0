//! Forced failures and endpoint faults of sandbox instances (docs/flinks-wire.md, "Forced
//! failures"): set through the admin API, met through the Flinks API, each exactly as the real
//! failure looks, plus `Reason: forced_failure` and a hint naming the rule.

use std::time::{Duration, Instant};

use axum::Router;
use bankgate_core::LoginId;
use bankgate_core::model::InstanceKind;
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

const ADMIN_TOKEN: &str = "failures-admin-token";
const ANSWERS: &str = r#"{"What city were you born in?":["Montreal"],"What is the best country on earth?":["Canada"],"What shape do people like most?":["Triangle"]}"#;

struct Bench {
    app: TestApp,
    admin: Router,
}

impl Bench {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let admin = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
        Self { app, admin }
    }

    async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        send_to(
            &self.admin,
            request(method, uri, &[("authorization", auth.as_str())], &body),
        )
        .await
    }

    async fn fail_login(&self, login: LoginId, body: Value) -> Reply {
        self.admin(
            "POST",
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins/{login}/failures"),
            Some(body),
        )
        .await
    }

    /// A rule on the toolbox customer (`body` names its username, or none for every call).
    async fn fail_customer(&self, body: Value) -> Reply {
        self.admin(
            "POST",
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/failures"),
            Some(body),
        )
        .await
    }

    async fn login_rules(&self, login: LoginId) -> Vec<Value> {
        let reply = self
            .admin(
                "GET",
                &format!("/admin/customers/{TOOLBOX_CUSTOMER}/logins/{login}/failures"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{:#}", reply.json);
        reply.json.as_array().unwrap().clone()
    }

    /// Cached /Authorize of a toolbox LoginId with a fresh token.
    async fn cached(&self, login: LoginId) -> Reply {
        let token = self.app.toolbox_token().await;
        self.app.authorize(TOOLBOX_CUSTOMER, &token, login).await
    }

    async fn live(&self, username: &str) -> Reply {
        let token = self.app.toolbox_token().await;
        self.app
            .post(
                &path(TOOLBOX_CUSTOMER, "Authorize"),
                &[("flinks-auth-key", &token)],
                &format!(
                    r#"{{"Institution":"FlinksCapital","Username":"{username}","Password":"Everyday","MostRecentCached":false,"Save":true}}"#
                ),
            )
            .await
    }
}

#[track_caller]
fn assert_forced(reply: &Reply, status: u16, code: &str, message: &str, rule: &str) {
    reply.assert_error(status, code, "forced_failure");
    assert_eq!(reply.json["Message"], message, "{:#}", reply.json);
    assert!(
        reply.hint().contains(rule) && reply.hint().starts_with("Forced failure, not a bug"),
        "{}",
        reply.hint()
    );
}

#[tokio::test]
async fn each_failure_answers_as_the_real_one_then_the_call_succeeds() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    for (code, status, flinks_code, message) in [
        (
            "RETRY_LATER",
            401,
            "RETRY_LATER",
            "The financial institution could not be reached, retry later",
        ),
        (
            "DISABLED_LOGIN",
            401,
            "DISABLED_LOGIN",
            "The account has been disabled by the financial institution",
        ),
        (
            "INVALID_LOGIN",
            401,
            "INVALID_LOGIN",
            "The card number (username) or password provided is invalid",
        ),
        (
            "AGGREGATION_ERROR",
            500,
            "AGGREGATION_ERROR",
            "An unexpected error occurred",
        ),
    ] {
        let set = bench.fail_login(login, json!({"flinksCode": code})).await;
        assert_eq!(set.status, 201, "{:#}", set.json);
        assert_eq!(set.json["flinksCode"], code);
        assert_eq!(set.json["remaining"], 1);
        let rule = set.json["id"].as_str().unwrap().to_owned();

        let reply = bench.cached(login).await;
        assert_forced(&reply, status, flinks_code, message, &rule);
        assert_eq!(reply.json.get("RequestId"), None, "no session was opened");
        assert!(
            reply.hint().contains("it applies to 0 more calls"),
            "{}",
            reply.hint()
        );
        assert_eq!(bench.cached(login).await.status, 200, "{code}: used up");
    }
    // INVALID_LOGIN says what it stands for.
    let set = bench
        .fail_login(login, json!({"flinksCode": "invalid_login"}))
        .await;
    assert_eq!(set.json["action"], "INVALID_LOGIN (password changed)");
}

#[tokio::test]
async fn the_count_goes_down_to_zero_and_a_refused_token_uses_nothing() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    let other = bench.app.toolbox_login().await;
    let set = bench
        .fail_login(login, json!({"flinksCode": "RETRY_LATER", "count": 2}))
        .await;
    assert_eq!(set.status, 201, "{:#}", set.json);

    // A spent token is refused as always, before any rule.
    let token = bench.app.toolbox_token().await;
    assert_eq!(
        bench
            .app
            .authorize(TOOLBOX_CUSTOMER, &token, other)
            .await
            .status,
        200
    );
    bench
        .app
        .authorize(TOOLBOX_CUSTOMER, &token, login)
        .await
        .assert_error(401, "ACCESS_DENIED", "authorize_token_used");
    assert_eq!(bench.login_rules(login).await[0]["remaining"], 2);
    // Another LoginId of the same user is not concerned.
    assert_eq!(bench.cached(other).await.status, 200);

    let first = bench.cached(login).await;
    first.assert_error(401, "RETRY_LATER", "forced_failure");
    assert!(
        first.hint().contains("it applies to 1 more calls"),
        "{}",
        first.hint()
    );
    assert_eq!(bench.login_rules(login).await[0]["remaining"], 1);
    bench
        .cached(login)
        .await
        .assert_error(401, "RETRY_LATER", "forced_failure");
    assert!(bench.login_rules(login).await.is_empty(), "used up, gone");
    let after = bench.cached(login).await;
    assert_eq!(after.status, 200, "{:#}", after.json);
    assert_eq!(after.json["Login"]["Id"], login.to_string());
}

#[tokio::test]
async fn a_username_rule_covers_every_login_id_and_live_connections() {
    let bench = Bench::new().await;
    let (first, second) = (
        bench.app.toolbox_login().await,
        bench.app.toolbox_login().await,
    );
    let nomfa = bench.app.login(toolbox_customer(), "greatday_nomfa").await;
    let set = bench
        .fail_customer(json!({"username": "GREATDAY", "flinksCode": "DISABLED_LOGIN", "count": 3}))
        .await;
    assert_eq!(set.status, 201, "{:#}", set.json);
    assert_eq!(set.json["username"], "greatday");

    assert_eq!(bench.cached(nomfa).await.status, 200, "another user");
    for reply in [
        bench.cached(first).await,
        bench.cached(second).await,
        bench.live("Greatday").await,
    ] {
        reply.assert_error(401, "DISABLED_LOGIN", "forced_failure");
        assert!(
            reply.hint().contains("sandbox user greatday"),
            "{}",
            reply.hint()
        );
    }
    // Used up: Greatday is asked its usual question again.
    assert_eq!(bench.live("Greatday").await.status, 203);
    let listed = bench
        .admin(
            "GET",
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/failures"),
            None,
        )
        .await;
    assert_eq!(listed.json, json!([]));

    // A wrong password is still a wrong password: the rule is not met.
    bench
        .fail_customer(json!({"username": "Greatday", "flinksCode": "RETRY_LATER"}))
        .await;
    let token = bench.app.toolbox_token().await;
    bench
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            r#"{"Institution":"FlinksCapital","Username":"Greatday","Password":"nope"}"#,
        )
        .await
        .assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");
    let cleared = bench
        .admin(
            "DELETE",
            &format!("/admin/customers/{TOOLBOX_CUSTOMER}/failures"),
            None,
        )
        .await;
    assert_eq!(cleared.json, json!({"cleared": 1}));
    assert_eq!(bench.cached(first).await.status, 200);
}

#[tokio::test]
async fn a_forced_mfa_question_is_new_and_answerable() {
    let bench = Bench::new().await;
    // The question Greatday is asked when connecting.
    let usual = bench.live("Greatday").await;
    assert_eq!(usual.status, 203);
    let usual = usual.json["SecurityChallenges"][0]["Prompt"].clone();
    let login = bench.app.toolbox_login().await;
    let set = bench.fail_login(login, json!({"flinksCode": "MFA"})).await;
    let rule = set.json["id"].as_str().unwrap().to_owned();

    let token = bench.app.toolbox_token().await;
    let response = bench
        .app
        .router
        .clone()
        .oneshot(request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &format!(r#"{{"LoginId":"{login}","MostRecentCached":true}}"#),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 203);
    let hint = response.headers()["x-bankgate-forced-failure"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(hint.contains(&rule), "{hint}");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let mfa: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(mfa["HttpStatusCode"], 203);
    let prompt = &mfa["SecurityChallenges"][0]["Prompt"];
    assert_ne!(*prompt, usual, "a question the user was not asked");
    let request_id = mfa["RequestId"].as_str().unwrap();

    let answered = bench
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            &format!(r#"{{"RequestId":"{request_id}","SecurityResponses":{ANSWERS}}}"#),
        )
        .await;
    assert_eq!(answered.status, 200, "{:#}", answered.json);
    assert_eq!(answered.json["Login"]["Id"], login.to_string());
    assert_eq!(bench.cached(login).await.status, 200, "used up");
}

#[tokio::test]
async fn a_forced_202_lasts_its_seconds_on_the_instance_clock() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    let set = bench
        .fail_login(
            login,
            json!({"flinksCode": "OPERATION_PENDING", "seconds": 30}),
        )
        .await;
    assert_eq!(set.status, 201, "{:#}", set.json);
    assert_eq!(set.json["seconds"], 30);
    let rule = set.json["id"].as_str().unwrap().to_owned();

    let first = bench.cached(login).await;
    assert_forced(
        &first,
        202,
        "OPERATION_PENDING",
        "Your operation is still processing",
        &rule,
    );
    assert_eq!(first.retry_after.as_deref(), Some("30"));
    assert!(first.hint().contains("30 more seconds"), "{}", first.hint());

    let moved = bench
        .admin(
            "POST",
            "/admin/instances/toolbox/clock/advance",
            Some(json!({"seconds": 10})),
        )
        .await;
    assert_eq!(moved.status, 200);
    let during = bench.cached(login).await;
    during.assert_error(202, "OPERATION_PENDING", "forced_failure");
    assert_eq!(during.retry_after.as_deref(), Some("20"));
    assert!(bench.login_rules(login).await[0]["activeUntil"].is_string());

    bench
        .admin(
            "POST",
            "/admin/instances/toolbox/clock/advance",
            Some(json!({"seconds": 20})),
        )
        .await;
    let after = bench.cached(login).await;
    assert_eq!(after.status, 200, "{:#}", after.json);
    assert!(bench.login_rules(login).await.is_empty());
}

#[tokio::test]
async fn endpoint_faults_answer_5xx_or_stall() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    let authorized = bench.cached(login).await;
    let request_id = authorized.json["RequestId"].as_str().unwrap().to_owned();
    let detail_path = path(TOOLBOX_CUSTOMER, "GetAccountsDetail");
    let detail_body = format!(r#"{{"RequestId":"{request_id}"}}"#);
    let detail = || {
        bench.app.post(
            &detail_path,
            &[("x-api-key", TOOLBOX_API_KEY)],
            &detail_body,
        )
    };
    let set = bench
        .admin(
            "POST",
            "/admin/instances/toolbox/faults",
            Some(json!({"endpoint": "getaccountsdetail", "status": 503, "count": 2})),
        )
        .await;
    assert_eq!(set.status, 201, "{:#}", set.json);
    assert_eq!(set.json["endpoint"], "GetAccountsDetail");
    let rule = set.json["id"].as_str().unwrap().to_owned();
    for left in [1, 0] {
        let reply = detail().await;
        assert_forced(
            &reply,
            503,
            "RETRY_LATER",
            "The service is temporarily unavailable, retry later",
            &rule,
        );
        assert!(
            reply.hint().contains(&format!("it applies to {left} more")),
            "{}",
            reply.hint()
        );
    }
    assert_eq!(detail().await.status, 200);

    bench
        .admin(
            "POST",
            "/admin/instances/toolbox/faults",
            Some(json!({"endpoint": "GetAccountsDetail", "status": 500})),
        )
        .await;
    let listed = bench
        .admin("GET", "/admin/instances/toolbox/faults", None)
        .await;
    assert_eq!(listed.json[0]["status"], 500, "{:#}", listed.json);
    detail()
        .await
        .assert_error(500, "AGGREGATION_ERROR", "forced_failure");

    // A stall waits (real time), then answers as usual; the token is spent only after it.
    let set = bench
        .admin(
            "POST",
            "/admin/instances/toolbox/faults",
            Some(json!({"endpoint": "Authorize", "stallSeconds": 1})),
        )
        .await;
    assert_eq!(set.json["stallSeconds"], 1, "{:#}", set.json);
    let started = Instant::now();
    assert_eq!(bench.cached(login).await.status, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(bench.cached(login).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "used up");

    // Clearing works; faults of other endpoints stay untouched meanwhile.
    bench
        .admin(
            "POST",
            "/admin/instances/toolbox/faults",
            Some(json!({"endpoint": "GetStatements", "status": 502, "count": 5})),
        )
        .await;
    let cleared = bench
        .admin("DELETE", "/admin/instances/toolbox/faults", None)
        .await;
    assert_eq!(cleared.json, json!({"cleared": 1}));
}

#[tokio::test]
async fn production_instances_refuse_both_kinds_of_rules() {
    let bench = Bench::new().await;
    let (customer, _, _) = bench
        .app
        .customer_on("acme", InstanceKind::Production)
        .await;
    for (uri, body) in [
        (
            format!("/admin/customers/{customer}/failures"),
            json!({"username": "Greatday", "flinksCode": "RETRY_LATER"}),
        ),
        (
            format!(
                "/admin/customers/{customer}/logins/{}/failures",
                LoginId::new_random()
            ),
            json!({"flinksCode": "RETRY_LATER"}),
        ),
        (
            "/admin/instances/acme/faults".to_owned(),
            json!({"endpoint": "Authorize", "status": 503}),
        ),
    ] {
        let reply = bench.admin("POST", &uri, Some(body)).await;
        reply.assert_error(400, "INVALID_REQUEST", "forced_failure_on_production");
        assert!(
            reply.hint().contains("acme is a production instance"),
            "{}",
            reply.hint()
        );
    }
    let listed = bench
        .admin("GET", "/admin/instances/acme/faults", None)
        .await;
    assert_eq!(listed.json, json!([]));
}

#[tokio::test]
async fn bad_rules_are_refused_and_nothing_is_written() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    for (body, reason, says) in [
        (
            json!({"flinksCode": "NOPE"}),
            "invalid_input",
            "RETRY_LATER, DISABLED_LOGIN",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "count": 0}),
            "invalid_input",
            "from 1 to 1000",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "count": -2}),
            "invalid_input",
            "not -2",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "count": 1001}),
            "invalid_input",
            "from 1 to 1000",
        ),
        (
            json!({"flinksCode": "OPERATION_PENDING"}),
            "invalid_input",
            "needs `seconds`",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "seconds": 5}),
            "invalid_input",
            "only with OPERATION_PENDING",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "count": "2"}),
            "body_invalid",
            "count",
        ),
        (
            json!({"flinksCode": "RETRY_LATER", "LoginId": "x"}),
            "body_invalid",
            "not a field",
        ),
        (json!({}), "body_invalid", "flinksCode"),
    ] {
        let reply = bench.fail_login(login, body.clone()).await;
        reply.assert_error(400, "INVALID_REQUEST", reason);
        assert!(reply.hint().contains(says), "{body}: {}", reply.hint());
    }
    bench
        .fail_login(LoginId::new_random(), json!({"flinksCode": "RETRY_LATER"}))
        .await
        .assert_error(404, "INVALID_REQUEST", "not_found");
    let user = bench
        .fail_customer(json!({"username": "nobody", "flinksCode": "RETRY_LATER"}))
        .await;
    user.assert_error(400, "INVALID_REQUEST", "invalid_input");
    assert!(user.hint().contains("greatday_nomfa"), "{}", user.hint());
    for (body, says) in [
        (
            json!({"endpoint": "Authorize", "status": 404}),
            "500, 502, 503 or 504",
        ),
        (
            json!({"endpoint": "Authorize", "stallSeconds": 61}),
            "1 to 60 seconds",
        ),
        (
            json!({"endpoint": "Authorize", "stallSeconds": 0}),
            "1 to 60 seconds",
        ),
        (
            json!({"endpoint": "Authorize", "status": 503, "stallSeconds": 2}),
            "not both",
        ),
        (json!({"endpoint": "Authorize"}), "not neither"),
        (
            json!({"endpoint": "GetNothing", "status": 503}),
            "GetAccountsDetail",
        ),
        (
            json!({"endpoint": "Authorize", "status": 503, "count": 0}),
            "from 1 to 1000",
        ),
    ] {
        let reply = bench
            .admin(
                "POST",
                "/admin/instances/toolbox/faults",
                Some(body.clone()),
            )
            .await;
        reply.assert_error(400, "INVALID_REQUEST", "invalid_input");
        assert!(reply.hint().contains(says), "{body}: {}", reply.hint());
    }
    assert!(bench.login_rules(login).await.is_empty());
    let faults = bench
        .admin("GET", "/admin/instances/toolbox/faults", None)
        .await;
    assert_eq!(faults.json, json!([]));
    assert_eq!(bench.cached(login).await.status, 200);
}

#[tokio::test]
async fn rules_survive_a_restart_and_go_with_a_reset() {
    let bench = Bench::new().await;
    let login = bench.app.toolbox_login().await;
    bench
        .fail_login(login, json!({"flinksCode": "RETRY_LATER", "count": 2}))
        .await;
    // The admin router holds the store too: let go of it before the restart.
    let Bench { app, admin } = bench;
    drop(admin);
    let app = app.restart().await;
    let admin = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
    let bench = Bench { app, admin };
    bench
        .cached(login)
        .await
        .assert_error(401, "RETRY_LATER", "forced_failure");
    let reset = bench
        .admin("POST", "/admin/instances/toolbox/reset", None)
        .await;
    assert_eq!(reset.status, 200, "{:#}", reset.json);
    let login = bench.app.toolbox_login().await;
    assert_eq!(bench.cached(login).await.status, 200);
    assert!(bench.login_rules(login).await.is_empty());
}

/// `bankgate --database sqlite://DIR/bg.db ARGS --json`: the exit status and stdout.
fn cli(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bankgate"))
        .current_dir(dir)
        .env_remove("BANKGATE_DATABASE")
        .env_remove("BANKGATE_CONFIG")
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("bg.db").display()))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_cli_sets_lists_and_clears_rules() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (ok, login, err) = cli(
        dir,
        &[
            "login",
            "create",
            "--customer",
            TOOLBOX_CUSTOMER,
            "--username",
            "Greatday",
        ],
    );
    assert!(ok, "{err}");
    let login: Value = serde_json::from_str(&login).unwrap();
    let login = login["loginId"].as_str().unwrap();
    let (ok, added, err) = cli(
        dir,
        &[
            "failures",
            "add",
            "--customer",
            TOOLBOX_CUSTOMER,
            "--login-id",
            login,
            "--code",
            "RETRY_LATER",
            "--count",
            "2",
        ],
    );
    assert!(ok, "{err}");
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(
        (added["flinksCode"].clone(), added["remaining"].clone()),
        (json!("RETRY_LATER"), json!(2))
    );
    let (ok, _, err) = cli(
        dir,
        &[
            "failures",
            "add",
            "--customer",
            TOOLBOX_CUSTOMER,
            "--username",
            "greatday",
            "--code",
            "OPERATION_PENDING",
            "--seconds",
            "30",
        ],
    );
    assert!(ok, "{err}");
    let (ok, listed, _) = cli(dir, &["failures", "list", "--customer", TOOLBOX_CUSTOMER]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Refusals say why, and exit non-zero.
    for (args, says) in [
        (
            vec![
                "failures",
                "add",
                "--customer",
                TOOLBOX_CUSTOMER,
                "--username",
                "Greatday",
                "--code",
                "NOPE",
            ],
            "not a forced failure",
        ),
        (
            vec![
                "failures",
                "add",
                "--customer",
                TOOLBOX_CUSTOMER,
                "--username",
                "Greatday",
                "--code",
                "RETRY_LATER",
                "--count",
                "0",
            ],
            "from 1 to 1000",
        ),
        (
            vec![
                "faults",
                "add",
                "--instance",
                "toolbox",
                "--endpoint",
                "Authorize",
                "--stall",
                "2m",
            ],
            "1 to 60 seconds",
        ),
    ] {
        let (ok, _, err) = cli(dir, &args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let (ok, fault, err) = cli(
        dir,
        &[
            "faults",
            "add",
            "--instance",
            "toolbox",
            "--endpoint",
            "GetAccountsDetail",
            "--status",
            "503",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&fault).unwrap()["status"],
        503
    );
    let (ok, cleared, _) = cli(dir, &["faults", "clear", "--instance", "toolbox"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&cleared).unwrap(),
        json!({"cleared": 1})
    );
    let (ok, cleared, _) = cli(dir, &["failures", "clear", "--customer", TOOLBOX_CUSTOMER]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&cleared).unwrap(),
        json!({"cleared": 2})
    );

    let (ok, _, err) = cli(dir, &["instance", "create", "acme", "--kind", "production"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        dir,
        &[
            "faults",
            "add",
            "--instance",
            "acme",
            "--endpoint",
            "Authorize",
            "--status",
            "503",
        ],
    );
    assert!(
        !ok && err.contains("acme is a production instance"),
        "{err}"
    );
}

#[tokio::test]
async fn a_forced_question_on_a_new_connection_keeps_its_card_options() {
    let bench = Bench::new().await;
    let set = bench
        .fail_customer(json!({"username": "greatday_nomfa", "flinksCode": "MFA"}))
        .await;
    assert_eq!(set.status, 201, "{:#}", set.json);
    // A user who is never asked a question, connecting with both card options: the rule asks one.
    let token = bench.app.toolbox_token().await;
    let asked = bench
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", &token)],
            r#"{"Institution":"FlinksCapital","Username":"greatday_nomfa","Password":"Everyday","Save":true,"ScheduleRefresh":true,"WithMFAQuestions":true}"#,
        )
        .await;
    assert_eq!(asked.status, 203, "{:#}", asked.json);
    let prompt = asked.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = bench
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[],
            &json!({
                "RequestId": asked.json["RequestId"],
                "SecurityResponses": {&prompt: [crate::enhanced_mfa::answer_to(&prompt)]},
            })
            .to_string(),
        )
        .await;
    assert_eq!(answered.status, 200, "{:#}", answered.json);
    // The card keeps both options: flagged for the nightly refresh, and its questions kept.
    assert_eq!(answered.json["Login"]["IsScheduledRefresh"], true);
    // (A card connected without WithMFAQuestions is refused here: mfa_questions_not_collected.)
    let login = answered.json["Login"]["Id"].as_str().unwrap();
    let questions = crate::enhanced_mfa::questions(&bench.app, login).await;
    let unanswered = crate::enhanced_mfa::listed(&questions);
    assert_eq!(
        unanswered.len(),
        2,
        "the institution's other two: {unanswered:?}"
    );
    assert!(
        !unanswered.contains(&prompt),
        "the forced question was answered"
    );
}
