//! Webhooks: the KYC and GetAccountsDetail callbacks after a live authorization, received by a
//! real HTTP server in the test that checks each signature the way Flinks documents it; the
//! retry after a failed attempt (the instance's clock moved, not waited for); a pending user's
//! accounts sent only once ready; the admin API that sets, shows, rotates and disables the
//! webhook, lists deliveries and replays one; URLs refused; a retry after DeleteCard sends the
//! authorization's body; an endless answer read only up to the cap; the real binary SIGKILLed
//! mid-delivery and restarted on the same database (SQLite and PostgreSQL); a receiver that
//! hangs holding up only its own callbacks, never another instance's, and the sender's bound
//! on attempts in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bankgate_core::model::InstanceKind;
use bankgate_server::admin::AdminToken;
use bankgate_server::admin_app;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::*;

const ADMIN_TOKEN: &str = "webhook-admin-token";

/// One callback as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Base64(HMAC-SHA256(secret as UTF-8, raw body)), computed here from the documented
    /// algorithm, compared with both signature headers.
    fn assert_signed_with(&self, secret: &str) {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&key, &self.body).as_ref());
        assert_eq!(self.header("flinks-authenticity-key"), expected);
        assert_eq!(self.header("x-flinks-signature"), expected);
    }
}

/// A webhook receiver on port 0: records every callback and answers with the scripted
/// statuses in turn (200 once they run out; 0 never answers).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.got.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let status = {
        let mut script = receiver.script.lock().unwrap();
        if script.is_empty() {
            200
        } else {
            script.remove(0)
        }
    };
    if status == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Starts it; returns the receiver and its URL.
    async fn start(script: &[u16]) -> (Self, String) {
        let receiver = Self {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.to_vec())),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time: the sender runs on its own task) until `n` callbacks arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            if self.count() >= n {
                return self.all();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} callbacks, got {:#?}", self.all());
    }

    /// Asserts nothing more than `n` arrives for a while.
    async fn assert_stays_at(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(self.count(), n, "{:#?}", self.all());
    }
}

/// A bankgate whose webhook sender runs (looking every 20 ms), with its admin API.
struct Hooks {
    app: TestApp,
    admin: Router,
}

impl Hooks {
    async fn new() -> Self {
        Self::sending_every(Some(Duration::from_millis(20))).await
    }

    /// With the sender looking every `every`, or not running (callbacks only queued).
    async fn sending_every(every: Option<Duration>) -> Self {
        let app = TestApp::with(|settings| settings.webhook_interval = every).await;
        let admin = admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN)));
        Self { app, admin }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        send_to(
            &self.admin,
            request(method, uri, &[("authorization", auth.as_str())], &body),
        )
        .await
    }

    /// Sets the toolbox webhook; returns its secret.
    async fn point_toolbox_at(&self, url: &str) -> String {
        self.point_at("toolbox", url).await
    }

    /// Sets an instance's webhook; returns its secret.
    async fn point_at(&self, instance: &str, url: &str) -> String {
        let set = self
            .call(
                "PUT",
                &format!("/admin/instances/{instance}/webhook"),
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{:#}", set.json);
        set.json["secret"].as_str().unwrap().to_owned()
    }

    /// A live /Authorize of a toolbox sandbox user; returns the reply.
    async fn connect(&self, username: &str) -> Reply {
        self.connect_as(TOOLBOX_CUSTOMER, TOOLBOX_SECRET, username)
            .await
    }

    /// A live /Authorize of a sandbox user for a customer (by its secret key).
    async fn connect_as(
        &self,
        customer: impl std::fmt::Display,
        secret: &str,
        username: &str,
    ) -> Reply {
        let token = self.app.generate_token_for(&customer, secret).await;
        self.app
            .post(
                &path(customer, "Authorize"),
                &[("flinks-auth-key", token.as_str())],
                &json!({
                    "Institution": "FlinksCapital",
                    "Username": username,
                    "Password": "Everyday",
                    "MostRecentCached": false,
                    "Save": true,
                })
                .to_string(),
            )
            .await
    }

    async fn deliveries(&self) -> Vec<Value> {
        let listed = self
            .call("GET", "/admin/instances/toolbox/webhook/deliveries", None)
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{:#}", listed.json);
        listed.json.as_array().unwrap().clone()
    }

    /// The deliveries once every one is delivered (the sender records an attempt just after
    /// the receiver has answered it).
    async fn all_delivered(&self) -> Vec<Value> {
        for _ in 0..250 {
            let listed = self.deliveries().await;
            if listed.iter().all(|d| d["status"] == "delivered") {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not all delivered: {:#?}", self.deliveries().await);
    }

    async fn advance_instance_clock(&self, seconds: u64) {
        let moved = self
            .call(
                "POST",
                "/admin/instances/toolbox/clock/advance",
                Some(json!({ "seconds": seconds })),
            )
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.json);
    }
}

#[tokio::test]
async fn an_authorization_sends_kyc_then_accounts_signed_in_both_headers() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let secret = hooks.point_toolbox_at(&url).await;
    assert_eq!(secret.len(), 64);

    let authorized = hooks.connect("greatday_nomfa").await;
    assert_eq!(authorized.status, StatusCode::OK, "{:#}", authorized.json);
    let request_id = authorized.json["RequestId"].as_str().unwrap().to_owned();
    let login_id = authorized.json["Login"]["Id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for(2).await;
    for callback in &got {
        callback.assert_signed_with(&secret);
        assert_eq!(callback.header("content-type"), "application/json");
        assert_eq!(callback.header("x-bankgate-delivery").len(), 36);
    }
    assert_ne!(
        got[0].header("x-bankgate-delivery"),
        got[1].header("x-bankgate-delivery")
    );
    // KYC first, with Flinks' fields in Flinks' order.
    let kyc = got[0].json();
    assert_eq!(
        kyc.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "ResponseType",
            "HttpStatusCode",
            "Holders",
            "Login",
            "Institution",
            "RequestId"
        ]
    );
    assert_eq!(kyc["ResponseType"], "KYC");
    assert_eq!(kyc["HttpStatusCode"], 200);
    assert_eq!(kyc["RequestId"], request_id.as_str());
    assert_eq!(kyc["Login"], authorized.json["Login"]);
    assert_eq!(kyc["Institution"], "FlinksCapital");
    assert!(!kyc["Holders"].as_array().unwrap().is_empty());
    assert!(kyc["Holders"][0]["Address"]["City"].is_string());

    // Then the accounts: exactly GetAccountsDetail's 200 with its defaults, plus ResponseType.
    let mut detail = got[1].json();
    assert_eq!(detail["ResponseType"], "GetAccountsDetail");
    assert_eq!(
        detail.as_object().unwrap().keys().next().unwrap(),
        "ResponseType"
    );
    detail.as_object_mut().unwrap().remove("ResponseType");
    let read = hooks
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "GetAccountsDetail"),
            &[("x-api-key", TOOLBOX_API_KEY)],
            &json!({ "RequestId": request_id }).to_string(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:#}", read.json);
    assert_eq!(detail, read.json);
    assert_eq!(detail["Login"]["Id"], login_id.as_str());
    assert!(
        !detail["Accounts"][0]["Transactions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Listed as delivered, with the receiver's answer.
    let listed = hooks.all_delivered().await;
    assert_eq!(listed.len(), 2);
    for delivery in &listed {
        assert_eq!(delivery["status"], "delivered", "{delivery:#}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["lastStatusCode"], 200);
        assert_eq!(delivery["nextAttemptAt"], Value::Null);
        assert_eq!(delivery["requestId"], request_id.as_str());
    }
    assert_eq!(listed[1]["responseType"], "KYC");

    // A cached /Authorize of the same LoginId is no new authorization: no callbacks.
    let token = hooks.app.toolbox_token().await;
    let cached = hooks
        .app
        .authorize(TOOLBOX_CUSTOMER, &token, login_id.parse().unwrap())
        .await;
    assert_eq!(cached.status, StatusCode::OK, "{:#}", cached.json);
    receiver.assert_stays_at(2).await;

    // Replayed: the same delivery id and bytes again.
    let id = listed[0]["id"].as_str().unwrap();
    let replayed = hooks
        .call(
            "POST",
            &format!("/admin/instances/toolbox/webhook/deliveries/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{:#}", replayed.json);
    let got = receiver.wait_for(3).await;
    assert_eq!(got[2].header("x-bankgate-delivery"), id);
    assert_eq!(got[2].body, got[1].body);
    let unknown = hooks
        .call(
            "POST",
            "/admin/instances/toolbox/webhook/deliveries/nope/replay",
            None,
        )
        .await;
    unknown.assert_error(404, "INVALID_REQUEST", "not_found");
}

#[tokio::test]
async fn an_mfa_answer_completes_an_authorization_and_sends_callbacks() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let secret = hooks.point_toolbox_at(&url).await;
    let challenge = hooks.connect("Greatday").await;
    assert_eq!(challenge.status.as_u16(), 203, "{:#}", challenge.json);
    // Waiting for MFA is no authorization yet.
    receiver.assert_stays_at(0).await;
    let prompt = challenge.json["SecurityChallenges"][0]["Prompt"]
        .as_str()
        .unwrap();
    let answer = match prompt {
        p if p.contains("city") => "Montreal",
        p if p.contains("country") => "Canada",
        _ => "Triangle",
    };
    let request_id = challenge.json["RequestId"].as_str().unwrap();
    let answered = hooks
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[],
            &json!({ "RequestId": request_id, "SecurityResponses": { prompt: [answer] } })
                .to_string(),
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{:#}", answered.json);
    let got = receiver.wait_for(2).await;
    got[0].assert_signed_with(&secret);
    assert_eq!(got[0].json()["RequestId"], request_id);
    assert_eq!(got[1].json()["ResponseType"], "GetAccountsDetail");
}

#[tokio::test]
async fn a_failed_callback_is_retried_when_the_instance_clock_passes_30_minutes() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[500]).await;
    let secret = hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    let first = receiver.wait_for(1).await;
    // The accounts wait for the KYC callback, which waits 30 minutes for its retry.
    receiver.assert_stays_at(1).await;
    let listed = hooks.deliveries().await;
    let kyc = listed.iter().find(|d| d["responseType"] == "KYC").unwrap();
    assert_eq!(kyc["status"], "pending", "{kyc:#}");
    assert_eq!(kyc["attempts"], 1);
    assert_eq!(kyc["lastStatusCode"], 500);
    assert!(kyc["lastError"].as_str().unwrap().contains("500"));
    assert!(kyc["nextAttemptAt"].is_string());

    hooks.advance_instance_clock(29 * 60).await;
    receiver.assert_stays_at(1).await;
    hooks.advance_instance_clock(60).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got[1].body, first[0].body);
    assert_eq!(
        got[1].header("x-bankgate-delivery"),
        first[0].header("x-bankgate-delivery")
    );
    got[1].assert_signed_with(&secret);
    assert_eq!(got[2].json()["ResponseType"], "GetAccountsDetail");
    let listed = hooks.all_delivered().await;
    let kyc = listed.iter().find(|d| d["responseType"] == "KYC").unwrap();
    assert_eq!(
        (&kyc["status"], &kyc["attempts"]),
        (&json!("delivered"), &json!(2))
    );

    // Counted just after the attempt is recorded.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = hooks.app.state.metrics.render();
        if metrics.contains("bankgate_webhooks_delivered_total 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains("bankgate_webhooks_delivered_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bankgate_webhooks_retried_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bankgate_webhooks_failed_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_pending_users_accounts_are_sent_once_the_data_is_ready() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[]).await;
    hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("test_pending").await.status, StatusCode::OK);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["ResponseType"], "KYC");
    // The data is not ready (GetAccountsDetail would answer 202): no accounts callback yet.
    receiver.assert_stays_at(1).await;
    hooks.app.advance(Duration::from_secs(9));
    receiver.assert_stays_at(1).await;
    hooks.app.advance(Duration::from_secs(1));
    let got = receiver.wait_for(2).await;
    let detail = got[1].json();
    assert_eq!(detail["ResponseType"], "GetAccountsDetail");
    assert_eq!(detail["HttpStatusCode"], 200);
}

#[tokio::test]
async fn webhooks_are_set_shown_rotated_and_disabled_and_bad_urls_refused() {
    let hooks = Hooks::new().await;
    let shown = hooks
        .call("GET", "/admin/instances/toolbox/webhook", None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json["enabled"], false);

    let secret = hooks.point_toolbox_at("http://hooks.example.test/a").await;
    // Shown without its secret; a new URL keeps the secret (and does not show it).
    let shown = hooks
        .call("GET", "/admin/instances/toolbox/webhook", None)
        .await;
    assert_eq!(shown.json["url"], "http://hooks.example.test/a");
    assert_eq!(shown.json["enabled"], true);
    assert!(shown.json.get("secret").is_none(), "{:#}", shown.json);
    assert!(!shown.json.to_string().contains(&secret));
    let moved = hooks
        .call(
            "PUT",
            "/admin/instances/toolbox/webhook",
            Some(json!({ "url": "https://hooks.example.test/b" })),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert!(moved.json.get("secret").is_none(), "{:#}", moved.json);
    let stored = hooks
        .app
        .state
        .store
        .webhook(&"toolbox".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret, secret);

    let rotated = hooks
        .call(
            "POST",
            "/admin/instances/toolbox/webhook/rotate-secret",
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_secret = rotated.json["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);

    let disabled = hooks
        .call("DELETE", "/admin/instances/toolbox/webhook", None)
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.json["enabled"], false);
    let rotate_none = hooks
        .call(
            "POST",
            "/admin/instances/toolbox/webhook/rotate-secret",
            None,
        )
        .await;
    rotate_none.assert_error(404, "INVALID_REQUEST", "not_found");

    // Refused: not http(s), not a URL, credentials in it; production wants https except to
    // this machine. Nothing is written.
    hooks
        .app
        .customer_on("acme", InstanceKind::Production)
        .await;
    for (instance, url, says) in [
        (
            "toolbox",
            "ftp://hooks.example.test/",
            "only http and https",
        ),
        ("toolbox", "hooks.example.test/x", "not a URL"),
        (
            "toolbox",
            "https://user:pw@hooks.example.test/",
            "credentials",
        ),
        ("acme", "http://hooks.example.test/x", "need https"),
    ] {
        let refused = hooks
            .call(
                "PUT",
                &format!("/admin/instances/{instance}/webhook"),
                Some(json!({ "url": url })),
            )
            .await;
        refused.assert_error(400, "INVALID_REQUEST", "invalid_input");
        assert!(refused.hint().contains(says), "{url}: {}", refused.hint());
        let shown = hooks
            .call("GET", &format!("/admin/instances/{instance}/webhook"), None)
            .await;
        assert_eq!(shown.json["enabled"], false, "{url}");
    }
    for url in ["http://127.0.0.1:9/hook", "https://hooks.example.test/x"] {
        let allowed = hooks
            .call(
                "PUT",
                "/admin/instances/acme/webhook",
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(allowed.status, StatusCode::OK, "{url}: {:#}", allowed.json);
    }
    let missing = hooks
        .call(
            "PUT",
            "/admin/instances/nowhere/webhook",
            Some(json!({ "url": "https://a.test/" })),
        )
        .await;
    missing.assert_error(404, "INVALID_REQUEST", "not_found");
    let no_url = hooks
        .call("PUT", "/admin/instances/toolbox/webhook", Some(json!({})))
        .await;
    assert_eq!(no_url.status, StatusCode::BAD_REQUEST, "{:#}", no_url.json);
}

#[tokio::test]
async fn without_a_webhook_nothing_is_queued() {
    let hooks = Hooks::new().await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    assert!(hooks.deliveries().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_slow_authorizations() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[0; 64]).await;
    hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    // The receiver now holds the first callback (the sender waits up to 10 s for its answer).
    receiver.wait_for(1).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let reply = hooks.connect("greatday_nomfa").await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
        slowest = slowest.max(started.elapsed());
    }
    // Each of these also queued its callbacks; none waited for the receiver.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest /Authorize took {slowest:?}"
    );
    assert_eq!(hooks.deliveries().await.len(), 22);
}

/// A receiver that hangs holds only its own callbacks: with more of them in flight than the
/// sender once claimed at a time (16, all waited for before the next claim), another
/// instance's callbacks still go at once, not after the 10 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_another_instances_callbacks() {
    let hooks = Hooks::new().await;
    let (hanging, hanging_url) = Receiver::start(&[0; 64]).await;
    hooks.point_toolbox_at(&hanging_url).await;
    let (acme, acme_secret, _) = hooks.app.customer_on("acme", InstanceKind::Sandbox).await;
    let (answering, answering_url) = Receiver::start(&[]).await;
    let acme_webhook_secret = hooks.point_at("acme", &answering_url).await;

    for _ in 0..20 {
        assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    }
    // The sender holds some of them now, each for up to 10 s.
    hanging.wait_for(1).await;
    let started = std::time::Instant::now();
    let authorized = hooks.connect_as(acme, &acme_secret, "greatday_nomfa").await;
    assert_eq!(authorized.status, StatusCode::OK, "{:#}", authorized.json);
    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        while answering.count() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "acme's callbacks waited behind toolbox's hanging receiver: {} of 2 after {:?}",
        answering.count(),
        started.elapsed()
    );
    let got = answering.all();
    for callback in &got {
        callback.assert_signed_with(&acme_webhook_secret);
        assert_eq!(callback.json()["RequestId"], authorized.json["RequestId"]);
    }
    assert_eq!(got[0].json()["ResponseType"], "KYC");
    assert_eq!(got[1].json()["ResponseType"], "GetAccountsDetail");
    // Meanwhile every toolbox KYC is in flight, none answered nor given up yet.
    let held = hanging.wait_for(20).await;
    assert!(
        held.iter().all(|c| c.json()["ResponseType"] == "KYC"),
        "{held:#?}"
    );
    let toolbox = hooks.deliveries().await;
    let kycs: Vec<&Value> = toolbox
        .iter()
        .filter(|d| d["responseType"] == "KYC")
        .collect();
    assert_eq!(kycs.len(), 20);
    assert!(
        kycs.iter()
            .all(|d| d["status"] == "pending" && d["attempts"] == 1 && d["lastError"].is_null()),
        "{kycs:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The sender keeps at most `MAX_IN_FLIGHT` attempts going and claims no more than it has
/// room for: with more callbacks due than that, to a receiver that answers the first few 500 at
/// once and hangs on the rest, the places the failures free are filled and no more; the
/// callbacks past the bound wait in the outbox unclaimed (no attempt counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_claims_no_more_than_its_room_for_attempts_in_flight() {
    use bankgate_server::webhooks::{MAX_IN_FLIGHT, spawn_sender};
    const FAILING: usize = 6;
    const WAITING: usize = 10;
    let hooks = Hooks::sending_every(None).await;
    let mut script = vec![500; FAILING];
    script.extend([0; 128]);
    let (receiver, url) = Receiver::start(&script).await;
    hooks.point_toolbox_at(&url).await;
    // Queued while no sender runs, so the first claim finds them all due.
    let queued = MAX_IN_FLIGHT + FAILING + WAITING;
    for _ in 0..queued {
        assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    }
    let sender = spawn_sender(hooks.app.state.clone(), Duration::from_millis(20));
    receiver.wait_for(MAX_IN_FLIGHT + FAILING).await;
    receiver.assert_stays_at(MAX_IN_FLIGHT + FAILING).await;
    let listed = hooks
        .call(
            "GET",
            "/admin/instances/toolbox/webhook/deliveries?limit=1000",
            None,
        )
        .await;
    sender.abort();
    assert_eq!(listed.status, StatusCode::OK, "{:#}", listed.json);
    let kycs: Vec<Value> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["responseType"] == "KYC")
        .cloned()
        .collect();
    assert_eq!(kycs.len(), queued);
    let count = |attempts: u64, last_status: Value| {
        kycs.iter()
            .filter(|d| d["attempts"] == attempts && d["lastStatusCode"] == last_status)
            .count()
    };
    assert_eq!(count(1, json!(500)), FAILING, "{kycs:#?}");
    assert_eq!(count(1, Value::Null), MAX_IN_FLIGHT, "{kycs:#?}");
    assert_eq!(count(0, Value::Null), WAITING, "{kycs:#?}");
}

/// A server that dies while a receiver holds a callback (the sender's task is gone, as with
/// kill -9) loses nothing: the restarted server sends the callback again, with the same id,
/// once the dead node's hold on it (60 s on the instance's clock) is over. The real process
/// killed with SIGKILL: `a_server_killed_mid_delivery_sends_it_after_restart_*`.
#[tokio::test]
async fn a_callback_in_flight_when_the_server_dies_is_sent_again_after_restart() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[0]).await;
    hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    let first = receiver.wait_for(1).await;
    let Hooks { app, admin } = hooks;
    drop(admin);
    let app = app.restart().await;
    let hooks = Hooks {
        admin: admin_app(app.state.clone(), Some(AdminToken::new(ADMIN_TOKEN))),
        app,
    };
    // Still held by the dead sender, until the instance's clock passes its lease.
    receiver.assert_stays_at(1).await;
    hooks.advance_instance_clock(60).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(
        got[1].header("x-bankgate-delivery"),
        first[0].header("x-bankgate-delivery")
    );
    assert_eq!(got[1].body, first[0].body);
    assert_eq!(got[2].json()["ResponseType"], "GetAccountsDetail");
    let listed = hooks.all_delivered().await;
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn a_connect_page_completion_sends_the_callbacks() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let secret = hooks.point_toolbox_at(&url).await;
    let page = crate::connect::to_credentials(&hooks.app, "").await;
    let page = crate::connect::login(&hooks.app, &page, "greatday_nomfa", "Everyday").await;
    assert!(
        page.steps().contains(&"REDIRECT".to_owned()),
        "{:?}",
        page.steps()
    );
    let got = receiver.wait_for(2).await;
    got[0].assert_signed_with(&secret);
    got[1].assert_signed_with(&secret);
    let (kyc, detail) = (got[0].json(), got[1].json());
    assert_eq!(kyc["ResponseType"], "KYC");
    assert_eq!(detail["ResponseType"], "GetAccountsDetail");
    assert_eq!(kyc["Login"]["Username"], "greatday_nomfa");
    assert_eq!(kyc["RequestId"], detail["RequestId"]);
    assert_eq!(kyc["Login"]["Id"], detail["Login"]["Id"]);
}

#[tokio::test]
async fn a_live_refresh_of_a_login_id_sends_the_callbacks_again() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[]).await;
    hooks.point_toolbox_at(&url).await;
    let first = hooks.connect("greatday_nomfa").await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.json);
    receiver.wait_for(2).await;
    let login_id = first.json["Login"]["Id"].as_str().unwrap();
    let token = hooks.app.toolbox_token().await;
    let refreshed = hooks
        .app
        .post(
            &path(TOOLBOX_CUSTOMER, "Authorize"),
            &[("flinks-auth-key", token.as_str())],
            &json!({ "LoginId": login_id, "MostRecentCached": false }).to_string(),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:#}", refreshed.json);
    let got = receiver.wait_for(4).await;
    let (kyc, detail) = (got[2].json(), got[3].json());
    assert_eq!(kyc["ResponseType"], "KYC");
    assert_eq!(kyc["Login"]["Id"], login_id);
    assert_eq!(kyc["RequestId"], refreshed.json["RequestId"]);
    assert_ne!(kyc["RequestId"], first.json["RequestId"]);
    assert_eq!(detail["RequestId"], refreshed.json["RequestId"]);
}

/// Two nodes on one PostgreSQL, both sending: every callback arrives once (each is taken by
/// one node at a time). On SQLite (one node) there is nothing to share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_outbox_and_send_each_callback_once() {
    let hooks = Hooks::new().await;
    let Backend::Postgres { url, .. } = &hooks.app.backend else {
        return;
    };
    let other_store = Arc::new(
        bankgate_store::PgStore::connect(url, bankgate_store::PgSettings::default())
            .await
            .unwrap(),
    );
    let other = bankgate_server::App::build(other_store, hooks.app.settings.clone());
    let (receiver, url) = Receiver::start(&[]).await;
    hooks.point_toolbox_at(&url).await;
    for _ in 0..10 {
        assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    }
    // Wake the other node too, so both race for every callback.
    other.state.webhook_wake.notify_one();
    let got = receiver.wait_for(20).await;
    receiver.assert_stays_at(20).await;
    let mut ids: Vec<&str> = got
        .iter()
        .map(|c| c.header("x-bankgate-delivery"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "a callback was sent twice");
    assert!(
        hooks
            .all_delivered()
            .await
            .iter()
            .all(|d| d["attempts"] == 1)
    );
    // Each delivery counted by the one node that made it.
    let delivered = |metrics: String| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("bankgate_webhooks_delivered_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut counted = 0;
    for _ in 0..100 {
        counted =
            delivered(hooks.app.state.metrics.render()) + delivered(other.state.metrics.render());
        if counted >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counted, 20);
    drop(other);
}

#[tokio::test]
async fn a_redirect_is_not_followed_but_counted_as_a_failed_attempt() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[302]).await;
    hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    receiver.wait_for(1).await;
    receiver.assert_stays_at(1).await;
    let listed = hooks.deliveries().await;
    let kyc = listed.iter().find(|d| d["responseType"] == "KYC").unwrap();
    assert_eq!(kyc["status"], "pending", "{kyc:#}");
    assert_eq!(kyc["lastStatusCode"], 302);
    assert!(
        kyc["lastError"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{kyc:#}"
    );
}

/// A callback retried after its LoginId was deleted still carries what the authorization
/// answered: its body is built from the row written with the authorization, not from the
/// LoginId as it is at the retry.
#[tokio::test]
async fn a_retry_after_delete_card_sends_the_same_body() {
    let hooks = Hooks::new().await;
    let (receiver, url) = Receiver::start(&[500]).await;
    let secret = hooks.point_toolbox_at(&url).await;
    let authorized = hooks.connect("greatday_nomfa").await;
    assert_eq!(authorized.status, StatusCode::OK, "{:#}", authorized.json);
    let first = receiver.wait_for(1).await;
    let login_id = authorized.json["Login"]["Id"].as_str().unwrap();
    let deleted = hooks
        .app
        .delete_card(TOOLBOX_CUSTOMER, TOOLBOX_API_KEY, login_id)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:#}", deleted.json);
    hooks.advance_instance_clock(30 * 60).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got[1].body, first[0].body);
    assert_eq!(
        got[1].header("x-bankgate-delivery"),
        first[0].header("x-bankgate-delivery")
    );
    got[1].assert_signed_with(&secret);
    let detail = got[2].json();
    assert_eq!(detail["ResponseType"], "GetAccountsDetail");
    assert_eq!(detail["Login"]["Id"], login_id);
    assert_eq!(detail["Login"], authorized.json["Login"]);
}

/// A receiver answering 200 with an endless body: the sender reads at most its cap, drops
/// the connection and records the delivery. The receiver counts what it could write before
/// the connection went away: bounded (the cap plus the kernel's socket buffers), where an
/// unbounded read would take all it sends.
#[tokio::test]
async fn an_endless_answer_is_read_up_to_the_cap_and_the_delivery_recorded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hooks = Hooks::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // Bytes written per connection, pushed when the connection is gone.
    let written = Arc::new(Mutex::new(Vec::<usize>::new()));
    let counted = written.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                // The request: headers, then the body up to its Content-Length.
                let mut request = Vec::new();
                let mut buffer = [0_u8; 8192];
                loop {
                    let n = socket.read(&mut buffer).await.unwrap();
                    assert!(n > 0, "the sender closed before its request was read");
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                socket.write_all(head.as_bytes()).await.unwrap();
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                let mut total = 0;
                // 1 GiB at most, so a broken cap fails the test instead of hanging it.
                while total < 1 << 30 {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        break;
                    }
                    total += 0x10000;
                }
                counted.lock().unwrap().push(total);
            });
        }
    });
    hooks.point_toolbox_at(&url).await;
    assert_eq!(hooks.connect("greatday_nomfa").await.status, StatusCode::OK);
    let listed = hooks.all_delivered().await;
    assert_eq!(listed.len(), 2);
    for delivery in &listed {
        assert_eq!(delivery["lastStatusCode"], 200, "{delivery:#}");
        assert_eq!(delivery["attempts"], 1, "{delivery:#}");
    }
    for _ in 0..500 {
        if written.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 2, "both connections closed by the sender");
    for total in written {
        assert!(
            total < 64 << 20,
            "the receiver wrote {total} bytes before the close"
        );
    }
}

// ---- the real process, killed ----

/// `bankgate serve` wants 32 characters at least.
const PROCESS_ADMIN_TOKEN: &str = "webhook-process-admin-token-0123456789";

/// One `bankgate serve` process on `database`, with an admin API.
struct Process {
    child: std::process::Child,
    api: String,
    admin: String,
    log: std::path::PathBuf,
}

impl Process {
    fn start(dir: &std::path::Path, database: &str, log_name: &str) -> Self {
        use std::io::BufRead;
        let log = dir.join(log_name);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bankgate"));
        command.current_dir(dir).stdin(std::process::Stdio::null());
        for (var, _) in std::env::vars() {
            if var.starts_with("BANKGATE_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args(["--database", database, "serve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("BANKGATE_ADMIN_TOKEN", PROCESS_ADMIN_TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut api, mut admin) = (String::new(), String::new());
        while admin.is_empty() {
            let Ok(line) = received.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                panic!(
                    "bankgate serve did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            if let Some(address) = line.strip_prefix("bankgate listening on http://") {
                api = format!("http://{}", address.trim());
            }
            if let Some(address) = line.strip_prefix("bankgate admin API on http://") {
                admin = format!("http://{}", address.trim());
            }
        }
        Self {
            child,
            api,
            admin,
            log,
        }
    }

    /// SIGKILL: the process gets no chance to finish or record anything.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = real_client()
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(PROCESS_ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "{path}: {status} {body:#}\n{}",
            self.log()
        );
        body
    }

    async fn public(&self, endpoint: &str, header: (&str, &str), body: Value) -> Value {
        let response = real_client()
            .post(format!(
                "{}/v3/{TOOLBOX_CUSTOMER}/BankingServices/{endpoint}",
                self.api
            ))
            .header(header.0, header.1)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "{endpoint}: {body:#}\n{}",
            self.log()
        );
        body
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn real_client() -> reqwest::Client {
    http()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The real binary, SIGKILLed while a receiver holds a callback (it accepted the POST and
/// never answers), restarted on the same database: the callback arrives after the restart
/// with the same `X-Bankgate-Delivery` id, once the instance's clock is moved past the dead
/// node's lease (not waited for: the lease is on the instance's clock).
async fn killed_mid_delivery(database: &str, dir: &std::path::Path) {
    let (receiver, url) = Receiver::start(&[0]).await;
    let mut first_node = Process::start(dir, database, "first.log");
    first_node
        .admin(
            reqwest::Method::PUT,
            "/admin/instances/toolbox/webhook",
            Some(json!({ "url": url })),
        )
        .await;
    let token = first_node
        .public(
            "GenerateAuthorizeToken",
            ("flinks-auth-key", TOOLBOX_SECRET),
            json!({}),
        )
        .await;
    let authorized = first_node
        .public(
            "Authorize",
            ("flinks-auth-key", token["Token"].as_str().unwrap()),
            json!({"Institution": "FlinksCapital", "Username": "greatday_nomfa",
                   "Password": "Everyday", "MostRecentCached": false, "Save": true}),
        )
        .await;
    // The delivery has begun: the receiver holds the POST.
    let first = receiver.wait_for(1).await;
    assert_eq!(first[0].json()["ResponseType"], "KYC");
    first_node.kill_9();
    let second_node = Process::start(dir, database, "second.log");
    // The dead node's lease holds the callback...
    receiver.assert_stays_at(1).await;
    // ...until the instance's clock passes it.
    second_node
        .admin(
            reqwest::Method::POST,
            "/admin/instances/toolbox/clock/advance",
            Some(json!({ "seconds": 60 })),
        )
        .await;
    let got = receiver.wait_for(3).await;
    assert_eq!(
        got[1].header("x-bankgate-delivery"),
        first[0].header("x-bankgate-delivery")
    );
    assert_eq!(got[1].body, first[0].body);
    let detail = got[2].json();
    assert_eq!(detail["ResponseType"], "GetAccountsDetail");
    assert_eq!(detail["RequestId"], authorized["RequestId"]);
    let mut listed = Vec::new();
    for _ in 0..250 {
        listed = second_node
            .admin(
                reqwest::Method::GET,
                "/admin/instances/toolbox/webhook/deliveries",
                None,
            )
            .await
            .as_array()
            .unwrap()
            .clone();
        if listed.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kyc = listed.iter().find(|d| d["responseType"] == "KYC").unwrap();
    assert_eq!(kyc["status"], "delivered", "{listed:#?}");
    assert_eq!(kyc["attempts"], 2, "{kyc:#}");
    receiver.assert_stays_at(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_sends_it_after_restart_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("bg.db").display());
    killed_mid_delivery(&database, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_sends_it_after_restart_postgres() {
    let Some(database) = crate::pg::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    killed_mid_delivery(&database, dir.path()).await;
}
