//! Brute-force limits on secret keys and bank passwords (README, "Brute-force limits"): the
//! attacks that laundered or turned the old per-node limiter against victims, and the tester who
//! locked themselves out trying the refusal table. Each test drives the app in process with a
//! client address per request; the store is the test backend's (SQLite, or PostgreSQL with
//! `BANKGATE_TEST_BACKEND=postgres`). `multinode` shows the limit shared by two nodes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use bankgate_core::CustomerId;
use bankgate_core::model::InstanceKind;
use bankgate_server::guard::LimitConfig;
use serde_json::{Value, json};

use crate::support::*;

const LOCKOUT: Duration = Duration::from_secs(120);
const ADMIN_TOKEN: &str = "limits-admin-token-0123456789abcdef";

/// 3 failures per (client, target), 50 per target, in 5 minutes lock for 2 minutes.
fn limits() -> LimitConfig {
    LimitConfig {
        max_failures_per_client: 3,
        max_failures_per_target: 50,
        window: Duration::from_secs(300),
        lockout: LOCKOUT,
        limit_sandbox_passwords: false,
    }
}

async fn limited_app(limits: LimitConfig) -> TestApp {
    TestApp::with(|settings| {
        settings.limits = limits;
        settings.admin_token = Some(ADMIN_TOKEN.to_owned());
    })
    .await
}

/// A target locked by 5 failures from any clients.
fn tight_target() -> LimitConfig {
    LimitConfig {
        max_failures_per_target: 5,
        ..limits()
    }
}

/// Sandbox passwords counted too, as on a deployment that asks for it.
fn strict() -> LimitConfig {
    LimitConfig {
        limit_sandbox_passwords: true,
        ..limits()
    }
}

type Client = [u8; 4];
const ATTACKER: Client = [203, 0, 113, 9];
const BACKEND: Client = [192, 0, 2, 10];
const LOCALHOST: Client = [127, 0, 0, 1];

fn from(client: Client, mut request: axum::http::Request<axum::body::Body>) -> Request {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((client, 40_000))));
    request
}

type Request = axum::http::Request<axum::body::Body>;

/// GenerateAuthorizeToken for a customer from a client address.
async fn token_from(
    app: &TestApp,
    client: Client,
    customer: impl std::fmt::Display,
    secret: &str,
) -> Reply {
    let request = request(
        "POST",
        &path(customer, "GenerateAuthorizeToken"),
        &[("flinks-auth-key", secret)],
        "",
    );
    app.send(from(client, request)).await
}

/// A toolbox token, minted from an address that never fails.
async fn fresh_token(app: &TestApp) -> String {
    let reply = token_from(app, [198, 51, 100, 200], TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
    reply.json["Token"].as_str().unwrap().to_owned()
}

/// A live /Authorize on the toolbox from a client address, with a token of its own unless one
/// is given.
async fn bank_login_from(
    app: &TestApp,
    client: Client,
    username: &str,
    password: &str,
    token: Option<&str>,
) -> Reply {
    let token = match token {
        Some(token) => token.to_owned(),
        None => fresh_token(app).await,
    };
    let body = json!({"Institution": "FlinksCapital", "Username": username, "Password": password});
    let request = request(
        "POST",
        &path(TOOLBOX_CUSTOMER, "Authorize"),
        &[("flinks-auth-key", &token)],
        &body.to_string(),
    );
    app.send(from(client, request)).await
}

/// An admin API call with the admin token.
async fn admin(app: &TestApp, method: &str, uri: &str) -> Reply {
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    send_to(
        &app.admin,
        request(method, uri, &[("authorization", &bearer)], ""),
    )
    .await
}

const WRONG: &str = "00000000-0000-4000-8000-000000000000";

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
}

#[track_caller]
fn assert_locked(reply: &Reply, retry_after: &str) {
    reply.assert_error(401, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(reply.json["Message"], "Too many requests, retry later");
    assert_eq!(reply.retry_after.as_deref(), Some(retry_after));
}

/// A second customer, on a sandbox instance of its own: the victim of the attacks.
async fn victim(app: &TestApp) -> (CustomerId, String) {
    let (customer, secret, _) = app.customer_on("acme", InstanceKind::Sandbox).await;
    (customer, secret)
}

// ---- attacks ----

/// Found by the issue: one address made 50 wrong guesses at another customer's secret key
/// (limit 10), minting toolbox tokens with the public key in between to clear its failures.
#[tokio::test]
async fn succeeding_on_another_customer_does_not_launder_failures() {
    let app = limited_app(limits()).await;
    let (victim, secret) = victim(&app).await;
    for _ in 0..3 {
        token_from(&app, ATTACKER, victim, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
        assert_ok(&token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    }
    // Locked on the victim's key, even with the right value.
    assert_locked(&token_from(&app, ATTACKER, victim, &secret).await, "120");
    assert_locked(&token_from(&app, ATTACKER, victim, WRONG).await, "120");
    // Its own customer is another target: still open to it.
    assert_ok(&token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    // The victim's own backend is not affected.
    assert_ok(&token_from(&app, BACKEND, victim, &secret).await);
}

/// Found by the issue: failures from strangers locked a customer's token minting for every new
/// client. Now a client with no failures of its own always gets in with the right key, while
/// every client that fails on a locked target is locked at once.
#[tokio::test]
async fn strangers_failures_never_refuse_a_correct_key_from_another_address() {
    let app = limited_app(tight_target()).await;
    let (victim, secret) = victim(&app).await;
    // Five addresses, one wrong guess each: the target's limit.
    for last in 1..=5 {
        token_from(&app, [203, 0, 113, last], victim, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    // New clients (the fintech's next pod, a new office) with the right key get in.
    assert_ok(&token_from(&app, BACKEND, victim, &secret).await);
    assert_ok(&token_from(&app, [198, 51, 100, 7], victim, &secret).await);
    // The addresses that failed are refused on it, even with the right key; the Hint says it
    // is the target's lock.
    let refused = token_from(&app, [203, 0, 113, 1], victim, &secret).await;
    assert_locked(&refused, "120");
    assert!(
        refused.hint().contains("Several clients"),
        "{}",
        refused.hint()
    );
    // A new address that guesses wrong while the target is locked is locked at once.
    token_from(&app, [203, 0, 113, 50], victim, WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    assert_locked(
        &token_from(&app, [203, 0, 113, 50], victim, &secret).await,
        "120",
    );
    // After the lockout the attackers' addresses are let through again.
    app.advance(LOCKOUT);
    assert_ok(&token_from(&app, [203, 0, 113, 1], victim, &secret).await);
}

/// Found by the issue: 36 wrong bank passwords passed from one address, which logged in as
/// another user in between to clear its failures.
#[tokio::test]
async fn succeeding_on_another_username_does_not_launder_password_failures() {
    let app = limited_app(strict()).await;
    for _ in 0..3 {
        bank_login_from(&app, ATTACKER, "Greatday", "guess", None)
            .await
            .assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");
        assert_ok(&bank_login_from(&app, ATTACKER, "greatday_nomfa", "Everyday", None).await);
    }
    let locked = bank_login_from(&app, ATTACKER, "GREATDAY", "Everyday", None).await;
    assert_locked(&locked, "120");
    assert!(
        locked.hint().contains("the password of this bank username"),
        "{}",
        locked.hint()
    );
    // The user's own app, from another address, logs in (Greatday answers MFA questions next).
    let mfa = bank_login_from(&app, BACKEND, "Greatday", "Everyday", None).await;
    assert_eq!(mfa.status.as_u16(), 203, "{:#}", mfa.json);
}

/// A refusal by the limiter looks at nothing and spends nothing: the token works once the
/// lockout is lifted.
#[tokio::test]
async fn a_refused_attempt_does_not_spend_its_token() {
    let app = limited_app(strict()).await;
    for _ in 0..3 {
        bank_login_from(&app, ATTACKER, "greatday_nomfa", "guess", None)
            .await
            .assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");
    }
    let token = fresh_token(&app).await;
    for _ in 0..3 {
        assert_locked(
            &bank_login_from(&app, ATTACKER, "greatday_nomfa", "Everyday", Some(&token)).await,
            "120",
        );
    }
    app.advance(LOCKOUT);
    assert_ok(&bank_login_from(&app, ATTACKER, "greatday_nomfa", "Everyday", Some(&token)).await);
}

// ---- testers ----

/// Found by the issue: after 10 wrong sandbox passwords every live /Authorize from localhost
/// was refused for 5 minutes, even correct passwords of other users. The sandbox bank's users
/// are published: by default their wrong passwords lock nobody out.
#[tokio::test]
async fn a_tester_trying_wrong_sandbox_passwords_is_never_locked_out() {
    let app = limited_app(limits()).await;
    for _ in 0..12 {
        bank_login_from(&app, LOCALHOST, "Greatday", "wrong", None)
            .await
            .assert_error(401, "INVALID_LOGIN", "bank_credentials_invalid");
    }
    let mfa = bank_login_from(&app, LOCALHOST, "Greatday", "Everyday", None).await;
    assert_eq!(mfa.status.as_u16(), 203, "{:#}", mfa.json);
    assert_ok(&bank_login_from(&app, LOCALHOST, "greatday_nomfa", "Everyday", None).await);
    assert_eq!(
        admin(&app, "GET", "/admin/lockouts").await.json,
        json!([]),
        "nothing was even counted"
    );
}

/// Found by the issue: after 10 wrong secret keys the right key was refused with no way out
/// but waiting. Secret keys stay protected on sandboxes too, so the lock stays; the Hint now
/// says how long is left and how to lift it, and lifting it works.
#[tokio::test]
async fn a_tester_locked_out_of_a_secret_key_is_told_how_long_and_how_to_lift_it() {
    let app = limited_app(limits()).await;
    for _ in 0..3 {
        token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    app.advance(Duration::from_secs(20));
    let locked = token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await;
    assert_locked(&locked, "100");
    let hint = locked.hint();
    for part in [
        "This client (127.0.0.1) got this customer's secret key wrong 3 times within 300 seconds",
        "for 100 more seconds (Retry-After)",
        &format!("`bankgate lockouts clear --customer {TOOLBOX_CUSTOMER} --client 127.0.0.1`"),
        &format!("`DELETE /admin/lockouts?customerId={TOOLBOX_CUSTOMER}&client=127.0.0.1`"),
    ] {
        assert!(hint.contains(part), "{part:?} not in {hint:?}");
    }
    // Other testers are not affected.
    assert_ok(&token_from(&app, BACKEND, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);

    // The operator sees it and lifts it with the Hint's call.
    let listed = admin(&app, "GET", "/admin/lockouts").await;
    assert_eq!(listed.status, StatusCode::OK, "{:#}", listed.json);
    assert_eq!(
        listed.json,
        json!([{
            "customerId": TOOLBOX_CUSTOMER,
            "target": "secret_key",
            "client": "127.0.0.1",
            "maxFailures": 3,
            "totalFailures": 3,
            "lastFailureAt": listed.json[0]["lastFailureAt"],
            "lockedUntil": listed.json[0]["lockedUntil"],
            "retryAfterSeconds": 100,
        }])
    );
    let cleared = admin(
        &app,
        "DELETE",
        &format!("/admin/lockouts?customerId={TOOLBOX_CUSTOMER}&client=127.0.0.1"),
    )
    .await;
    assert_eq!(cleared.json, json!({"cleared": 1}));
    assert_eq!(admin(&app, "GET", "/admin/lockouts").await.json, json!([]));
    assert_ok(&token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
}

/// The README's refusal table, walked many times over from one address: values that are not
/// guesses (the wrong shape, never looked up; this customer's own x-api-key or token in the
/// secret key's place; the key under the wrong header) are refused with their own Reason and
/// not counted, so the right key still works.
#[tokio::test]
async fn a_tester_walking_the_secret_key_refusals_is_not_locked_out() {
    let app = limited_app(limits()).await;
    let token = fresh_token(&app).await;
    let wrong_header = |secret: &str| {
        let request = request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("x-api-key", secret)],
            "",
        );
        app.send(from(LOCALHOST, request))
    };
    for _ in 0..5 {
        for (value, reason) in [
            ("your-secret", "credential_malformed"),
            (
                "\"c4569c54-e167-4d34-8de6-f4113bc82414\"",
                "credential_malformed",
            ),
            (TOOLBOX_API_KEY, "api_key_given_as_auth_key"),
            (token.as_str(), "token_given_as_auth_key"),
        ] {
            token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, value)
                .await
                .assert_error(401, "UNAUTHORIZED", reason);
        }
        let misplaced = wrong_header(TOOLBOX_SECRET).await;
        assert_eq!(misplaced.status.as_u16(), 401, "{:#}", misplaced.json);
        assert_eq!(
            misplaced.json["Reason"], "wrong_auth_header",
            "{:#}",
            misplaced.json
        );
    }
    assert_ok(&token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    // A well-formed wrong key is a guess, and counts.
    for _ in 0..3 {
        token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    assert_locked(
        &token_from(&app, LOCALHOST, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await,
        "120",
    );
}

#[tokio::test]
async fn a_caller_who_succeeds_is_not_slowed_down() {
    let app = limited_app(limits()).await;
    // A typo now and then, each followed by a success, never adds up to a lock (short of the
    // target's limit: a success does not take its failures back from the target's count).
    for _ in 0..10 {
        token_from(&app, BACKEND, TOOLBOX_CUSTOMER, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
        assert_ok(&token_from(&app, BACKEND, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    }
}

#[tokio::test]
async fn the_lock_ends_after_the_lockout_and_the_count_starts_over() {
    let app = limited_app(limits()).await;
    for _ in 0..3 {
        token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, WRONG).await;
    }
    app.advance(LOCKOUT - Duration::from_secs(1));
    assert_locked(
        &token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await,
        "1",
    );
    app.advance(Duration::from_secs(1));
    for _ in 0..2 {
        token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    assert_ok(&token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
}

#[tokio::test]
async fn a_lockout_survives_a_restart() {
    let app = limited_app(limits()).await;
    for _ in 0..3 {
        token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, WRONG).await;
    }
    let app = app.restart().await;
    assert_locked(
        &token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await,
        "120",
    );
}

#[tokio::test]
async fn ipv6_clients_count_per_64() {
    let app = limited_app(limits()).await;
    let v6 = |text: &str| SocketAddr::new(text.parse().unwrap(), 40_000);
    let send = |address: SocketAddr, secret: &'static str| {
        let mut request = request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", secret)],
            "",
        );
        request.extensions_mut().insert(ConnectInfo(address));
        app.send(request)
    };
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        send(v6(host), WRONG).await;
    }
    let locked = send(v6("2001:db8:1:2::99"), TOOLBOX_SECRET).await;
    assert_locked(&locked, "120");
    assert!(
        locked.hint().contains("(2001:db8:1:2::/64)"),
        "{}",
        locked.hint()
    );
    assert_ok(&send(v6("2001:db8:1:3::1"), TOOLBOX_SECRET).await);
    // The operator names the client by any of its addresses.
    let cleared = admin(&app, "DELETE", "/admin/lockouts?client=2001:db8:1:2::5").await;
    assert_eq!(cleared.json, json!({"cleared": 1}));
    assert_ok(&send(v6("2001:db8:1:2::99"), TOOLBOX_SECRET).await);
}

// ---- the admin API ----

#[tokio::test]
async fn lockouts_are_listed_and_cleared_per_customer() {
    let app = limited_app(tight_target()).await;
    let (victim, secret) = victim(&app).await;
    for client in [ATTACKER, BACKEND] {
        for _ in 0..3 {
            token_from(&app, client, victim, WRONG).await;
        }
    }
    for _ in 0..3 {
        token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, WRONG).await;
    }
    let of_victim = admin(&app, "GET", &format!("/admin/lockouts?customerId={victim}")).await;
    let clients: Vec<&Value> = of_victim
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["client"])
        .collect();
    // The attacker, and the target itself (`*`: locked for the clients that failed on it), which
    // reached its limit of 5 at the backend's second failure; the backend's third attempt was
    // refused without counting, so its own pair is not locked.
    assert_eq!(
        clients,
        [&json!("*"), &json!("203.0.113.9")],
        "{:#}",
        of_victim.json
    );
    let all = admin(&app, "GET", "/admin/lockouts").await;
    assert_eq!(all.json.as_array().unwrap().len(), 3, "{:#}", all.json);

    let cleared = admin(
        &app,
        "DELETE",
        &format!("/admin/lockouts?customerId={victim}"),
    )
    .await;
    assert_eq!(
        cleared.json,
        json!({"cleared": 3}),
        "two pairs and the target"
    );
    assert_ok(&token_from(&app, ATTACKER, victim, &secret).await);
    // The other customer's lockout stays.
    assert_locked(
        &token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await,
        "120",
    );
    assert_eq!(
        admin(&app, "DELETE", "/admin/lockouts").await.json,
        json!({"cleared": 2}),
        "the attacker's pair and the toolbox key's count, locked or not"
    );
    assert_ok(&token_from(&app, ATTACKER, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
}

#[tokio::test]
async fn bad_lockout_filters_are_refused_in_words() {
    let app = limited_app(limits()).await;
    for method in ["GET", "DELETE"] {
        let reply = admin(&app, method, "/admin/lockouts?client=localhost").await;
        reply.assert_error(400, "INVALID_REQUEST", "query_invalid");
        assert!(
            reply.hint().contains("client=\"localhost\""),
            "{}",
            reply.hint()
        );
        admin(&app, method, "/admin/lockouts?customerId=nope")
            .await
            .assert_error(400, "INVALID_REQUEST", "customer_id_invalid");
        admin(&app, method, "/admin/lockouts?customer=x")
            .await
            .assert_error(400, "INVALID_REQUEST", "query_invalid");
    }
    // Without the admin token, nothing.
    send_to(&app.admin, request("DELETE", "/admin/lockouts", &[], ""))
        .await
        .assert_error(401, "UNAUTHORIZED", "admin_token_missing");
}

/// Two apps on one store, as two nodes on one database: the limit is theirs together, and a
/// client that just succeeded on a node skips the store's counters there for one second (it
/// holds the key: this is what keeps token minting in a loop free of the extra read), after
/// which that node sees the lock made on the other.
#[tokio::test]
async fn nodes_share_the_counters_and_a_fresh_success_skips_them_for_a_second() {
    let app = limited_app(limits()).await;
    let other = bankgate_server::App::build(app.state.store.clone(), app.settings.clone());
    let on_other = |secret: &'static str| {
        let request = request(
            "POST",
            &path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            &[("flinks-auth-key", secret)],
            "",
        );
        send_to(&other.api, from(BACKEND, request))
    };
    assert_ok(&token_from(&app, BACKEND, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    for _ in 0..3 {
        on_other(WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED", "auth_key_invalid");
    }
    assert_locked(&on_other(TOOLBOX_SECRET).await, "120");
    // The first node saw this client succeed a moment ago: it lets the key through.
    assert_ok(&token_from(&app, BACKEND, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await);
    // A second later it reads the counters again, and the lock holds there too.
    app.advance(bankgate_server::guard::Limiter::CLEAN_FOR);
    assert_locked(
        &token_from(&app, BACKEND, TOOLBOX_CUSTOMER, TOOLBOX_SECRET).await,
        "119",
    );
}
