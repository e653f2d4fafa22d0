//! Several bankgate nodes on one PostgreSQL: real `bankgate serve` processes sharing a database
//! (a fresh schema per test), and database outages between a node and PostgreSQL, made by a
//! proxy that can cut or stall the connections (the ChaosProxy idea).
//!
//! Every test here needs `BANKGATE_TEST_POSTGRES_URL` (see `pg.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bankgate_core::Timestamp;
use bankgate_store::{PgSettings, PgStore, Store};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::pg;
use crate::support::{TOOLBOX_API_KEY, TOOLBOX_CUSTOMER, TOOLBOX_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_bankgate");
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---- nodes ----

/// One `bankgate serve` process.
struct Node {
    child: Child,
    /// `http://ADDR`, the SDK's root.
    root: String,
    base: String,
    log: PathBuf,
    _dir: Arc<TempDir>,
}

impl Node {
    /// Starts a node on `database` (port 0) and waits until it listens.
    fn start(database: &str, extra: &[&str]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let log = dir.path().join("node.log");
        let mut command = Command::new(BIN);
        command.current_dir(dir.path()).stdin(Stdio::null());
        for (var, _) in std::env::vars() {
            if var.starts_with("BANKGATE_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args([
                "--database",
                database,
                "serve",
                "--listen",
                "127.0.0.1:0",
                // Several nodes on one machine: each its own admin port too.
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("bankgate listening on http://") {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let address = receiver.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "node did not listen within {START_TIMEOUT:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Self {
            child,
            root: format!("http://{address}"),
            base: format!("http://{address}/v3/{TOOLBOX_CUSTOMER}/BankingServices"),
            log,
            _dir: dir,
        }
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}/{endpoint}", self.base)
    }

    /// The SDK, talking to this node as an integration would.
    fn sdk(&self) -> bankgate_client::Client {
        bankgate_client::Client::new(
            &self.root,
            &bankgate_client::CustomerId::new(TOOLBOX_CUSTOMER),
        )
        .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to finish anything.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client() -> reqwest::Client {
    crate::support::http()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Sends a POST with one credential header; returns status and JSON body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    header: (&str, &str),
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(url)
        .header(header.0, header.1)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn token(client: &reqwest::Client, node: &Node) -> String {
    let (status, body) = post(
        client,
        &node.url("GenerateAuthorizeToken"),
        ("flinks-auth-key", TOOLBOX_SECRET),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body["Token"].as_str().unwrap().to_owned()
}

/// A saved LoginId, made through a live /Authorize of the sandbox user without MFA.
async fn live_login(client: &reqwest::Client, node: &Node) -> String {
    let token = token(client, node).await;
    let (status, body) = post(
        client,
        &node.url("Authorize"),
        ("flinks-auth-key", &token),
        json!({"Institution": "FlinksCapital", "Username": "greatday_nomfa",
               "Password": "Everyday", "MostRecentCached": false, "Save": true}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body["Login"]["Id"].as_str().unwrap().to_owned()
}

async fn authorize_cached(
    client: &reqwest::Client,
    node: &Node,
    token: &str,
    login: &str,
) -> Result<(u16, Value), reqwest::Error> {
    post(
        client,
        &node.url("Authorize"),
        ("flinks-auth-key", token),
        json!({"LoginId": login, "MostRecentCached": true}),
    )
    .await
}

#[track_caller]
fn assert_refused(reply: &(u16, Value), status: u16, reason: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["HttpStatusCode"], status, "{}", reply.1);
    assert_eq!(reply.1["Reason"], reason, "{}", reply.1);
}

// ---- several nodes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_on_one_node_is_spent_on_the_other() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    // Started together on an empty database: they take turns migrating, and seed once.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Node::start(&database, &[]));
        let b = scope.spawn(|| Node::start(&database, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let customers = operator(&database, &["customer", "list"]);
    assert_eq!(
        customers.as_array().map(Vec::len),
        Some(1),
        "the toolbox customer, once: {customers}"
    );
    // The flow through the SDK, as an integration drives it; only the deliberate second use of a
    // token is sent raw (the SDK's types forbid writing it).
    use bankgate_client::{ApiKey, Authorization, AuthorizeRequest, Poll, RequestId, SecretKey};
    let (on_a, on_b) = (a.sdk(), b.sdk());
    let (secret, api_key) = (SecretKey::new(TOOLBOX_SECRET), ApiKey::new(TOOLBOX_API_KEY));
    let token = on_a.generate_authorize_token(&secret).await.unwrap();
    let Authorization::Authorized(connected) = on_a
        .authorize(
            token,
            AuthorizeRequest::live("FlinksCapital", "greatday_nomfa", "Everyday"),
        )
        .await
        .unwrap()
    else {
        panic!("greatday_nomfa connects without MFA");
    };
    let login = connected.login.id;

    let issued_on_a = on_a
        .generate_authorize_token(&secret)
        .await
        .unwrap()
        .into_connect_parameter();
    let http = client();
    let (status, body) = authorize_cached(&http, &b, &issued_on_a, login.as_str())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let request_id = RequestId::new(body["RequestId"].as_str().unwrap());
    assert_refused(
        &authorize_cached(&http, &a, &issued_on_a, login.as_str())
            .await
            .unwrap(),
        401,
        "authorize_token_used",
    );

    // The session opened on B answers on A.
    let summary = on_a
        .get_accounts_summary(&api_key, &request_id)
        .await
        .unwrap();
    assert!(
        matches!(summary, Poll::Ready(ref s) if s.login.id == login),
        "{summary:?}"
    );

    // DeleteCard on A ends the LoginId and its sessions for B too.
    on_a.delete_card(&api_key, &login).await.unwrap();
    let error = on_b
        .get_accounts_summary(&api_key, &request_id)
        .await
        .unwrap_err();
    let refusal = error.flinks().expect("a refusal");
    assert_eq!(
        (refusal.status, refusal.reason.as_deref()),
        (400, Some("request_id_unknown"))
    );
    let fresh = on_b.generate_authorize_token(&secret).await.unwrap();
    let error = on_b
        .authorize(fresh, AuthorizeRequest::cached(login.as_str()))
        .await
        .unwrap_err();
    let refusal = error.flinks().expect("a refusal");
    assert_eq!(
        (refusal.status, refusal.reason.as_deref()),
        (401, Some("login_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_uses_of_one_token_across_two_nodes_give_one_success() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let nodes = Arc::new([Node::start(&database, &[]), Node::start(&database, &[])]);
    let http = client();
    let login = live_login(&http, &nodes[0]).await;
    for round in 0..3 {
        let token = token(&http, &nodes[round % 2]).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (nodes, http, token, login, barrier) = (
                    nodes.clone(),
                    http.clone(),
                    token.clone(),
                    login.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    authorize_cached(&http, &nodes[i % 2], &token, &login)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut successes = 0;
        for task in tasks {
            let reply = task.await.unwrap();
            if reply.0 == 200 {
                successes += 1;
            } else {
                assert_refused(&reply, 401, "authorize_token_used");
            }
        }
        assert_eq!(successes, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_load_loses_nothing_it_acknowledged() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let mut a = Node::start(&database, &[]);
    let b = Node::start(&database, &[]);
    let http = client();
    let login = live_login(&http, &b).await;

    // Clients hammer A. Each round issues a token to keep and one to spend; what A acknowledged
    // is recorded. (A spend in flight at the kill may or may not have happened: not checked.)
    let kept = Arc::new(Mutex::new(Vec::<String>::new()));
    let spent = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let base = a.base.clone();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (http, base, login) = (http.clone(), base.clone(), login.clone());
            let (kept, spent) = (kept.clone(), spent.clone());
            tokio::spawn(async move {
                let issue = || async {
                    match post(
                        &http,
                        &format!("{base}/GenerateAuthorizeToken"),
                        ("flinks-auth-key", TOOLBOX_SECRET),
                        json!({}),
                    )
                    .await
                    {
                        Ok((200, body)) => Some(body["Token"].as_str().unwrap().to_owned()),
                        _ => None,
                    }
                };
                loop {
                    let Some(keep) = issue().await else { return };
                    kept.lock().unwrap().push(keep);
                    let Some(token) = issue().await else { return };
                    let Ok((200, body)) = post(
                        &http,
                        &format!("{base}/Authorize"),
                        ("flinks-auth-key", &token),
                        json!({"LoginId": login, "MostRecentCached": true}),
                    )
                    .await
                    else {
                        return;
                    };
                    let request_id = body["RequestId"].as_str().unwrap().to_owned();
                    spent.lock().unwrap().push((token, request_id));
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while spent.lock().unwrap().len() < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    for task in load {
        task.await.unwrap();
    }
    let a = Node::start(&database, &[]);

    let kept = kept.lock().unwrap().clone();
    let spent = spent.lock().unwrap().clone();
    assert!(
        spent.len() >= 50,
        "too little load before the kill: {}",
        spent.len()
    );
    for (token, request_id) in &spent {
        assert_refused(
            &authorize_cached(&http, &a, token, &login).await.unwrap(),
            401,
            "authorize_token_used",
        );
        let (status, body) = post(
            &http,
            &b.url("GetAccountsSummary"),
            ("x-api-key", TOOLBOX_API_KEY),
            json!({"RequestId": request_id}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "session {request_id} lost: {body}");
    }
    // Tokens acknowledged but not spent are still good, on the other node.
    for token in &kept {
        let reply = authorize_cached(&http, &b, token, &login).await.unwrap();
        assert_eq!(reply.0, 200, "token lost: {}", reply.1);
    }
}

/// Runs an operator command on `database`; returns its `--json` output.
fn operator(database: &str, args: &[&str]) -> Value {
    let mut command = Command::new(BIN);
    for (var, _) in std::env::vars() {
        if var.starts_with("BANKGATE_") {
            command.env_remove(var);
        }
    }
    let output = command
        .args(["--database", database, "--json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_postgres_take_effect_on_running_nodes() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let node = Node::start(&database, &[]);
    let http = client();
    operator(
        &database,
        &["instance", "create", "acme", "--kind", "sandbox"],
    );
    let created = operator(&database, &["customer", "create", "--instance", "acme"]);
    let customer = created["customerId"].as_str().unwrap();
    let secret = created["secretKey"].as_str().unwrap();
    let base = node.base.replace(TOOLBOX_CUSTOMER, customer);
    let (status, body) = post(
        &http,
        &format!("{base}/GenerateAuthorizeToken"),
        ("flinks-auth-key", secret),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        status, 200,
        "the node sees the new customer at once: {body}"
    );

    // A reset from the command line ends what the node issued.
    let login = live_login(&http, &node).await;
    let issued = token(&http, &node).await;
    operator(&database, &["instance", "reset", "toolbox"]);
    assert_refused(
        &authorize_cached(&http, &node, &issued, &login)
            .await
            .unwrap(),
        401,
        "authorize_token_invalid",
    );
}

/// The brute-force limit is one for the whole deployment, not one per node: failures made on
/// two nodes add up, the lockout holds on both, and the operator lifts it from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brute_force_limit_is_shared_by_the_nodes() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let limits = ["--max-failures-per-client", "4", "--failure-lockout", "10m"];
    let a = Node::start(&database, &limits);
    let b = Node::start(&database, &limits);
    let http = client();
    let guess = async |node: &Node, key: &str| {
        let url = node.url("GenerateAuthorizeToken");
        post(&http, &url, ("flinks-auth-key", key), json!({})).await
    };
    let wrong = "00000000-0000-4000-8000-000000000000";
    // Two wrong keys on each node: four in all, the limit (with a limit per node, each node
    // would have seen only two).
    for node in [&a, &b, &a, &b] {
        assert_refused(&guess(node, wrong).await.unwrap(), 401, "auth_key_invalid");
    }
    for node in [&a, &b] {
        let refused = guess(node, TOOLBOX_SECRET).await.unwrap();
        assert_refused(&refused, 401, "rate_limited");
        let hint = refused.1["Hint"].as_str().unwrap_or_default();
        assert!(hint.contains("4 times"), "{hint}");
    }
    let listed = operator(&database, &["lockouts", "list"]);
    assert_eq!(listed[0]["client"], "127.0.0.1", "{listed}");
    assert_eq!(listed[0]["totalFailures"], 4, "{listed}");
    let cleared = operator(&database, &["lockouts", "clear", "--client", "127.0.0.1"]);
    assert_eq!(cleared["cleared"], 1, "{cleared}");
    for node in [&a, &b] {
        assert_eq!(token(&http, node).await.len(), 36);
    }
}

/// Two nodes purging at once: every expired row goes, none is counted twice, neither fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purging_on_two_nodes_at_once_neither_fails_nor_double_counts() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let node_a = Arc::new(
        PgStore::connect(&database, PgSettings::default())
            .await
            .unwrap(),
    );
    let node_b = Arc::new(
        PgStore::connect(&database, PgSettings::default())
            .await
            .unwrap(),
    );
    // The toolbox customer, as a node seeds it.
    let state = bankgate_server::AppState::new(
        node_a.clone(),
        Arc::new(bankgate_core::ManualClock::new(crate::support::START)),
    );
    state.operator().seed_toolbox().await.unwrap();
    drop(state);

    // More expired rows than one purge chunk (5,000), so both nodes go round several times.
    const EXPIRED: u64 = 12_345;
    const LIVE: u64 = 100;
    let sql = pg::connect(&database).await;
    sql.execute(
        "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
         SELECT sha256(('expired-' || i)::bytea), $1, 0, i FROM generate_series(1::bigint, $2::bigint) i",
        &[&TOOLBOX_CUSTOMER, &(EXPIRED as i64)],
    )
    .await
    .unwrap();
    sql.execute(
        "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
         SELECT sha256(('live-' || i)::bytea), $1, 0, 1000000 + i FROM generate_series(1::bigint, $2::bigint) i",
        &[&TOOLBOX_CUSTOMER, &(LIVE as i64)],
    )
    .await
    .unwrap();

    let before = Timestamp::from_micros(1_000_000);
    let (a, b) = tokio::join!(node_a.purge_expired(before), node_b.purge_expired(before));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.tokens + b.tokens, EXPIRED, "{a:?} + {b:?}");
    let left: i64 = sql
        .query_one("SELECT count(*) FROM authorize_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left as u64, LIVE);
    // Nothing left to purge, on either node.
    assert_eq!(node_a.purge_expired(before).await.unwrap().tokens, 0);
    assert_eq!(node_b.purge_expired(before).await.unwrap().tokens, 0);
}

/// The same between two `bankgate serve` processes purging on their own timers: every expired
/// row goes, the counts they log add up to what expired, and neither logs a failed purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serving_nodes_purge_together_without_failing_or_double_counting() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let purge_often = ["--purge-interval", "50ms"];
    let nodes = [
        Node::start(&database, &purge_often),
        Node::start(&database, &purge_often),
    ];
    const EXPIRED: i64 = 30_000;
    let sql = pg::connect(&database).await;
    // Expired long ago (before any retention), all visible to both nodes at one commit.
    sql.execute(
        "INSERT INTO authorize_tokens (digest, customer_id, issued_at, expires_at) \
         SELECT sha256(('expired-' || i)::bytea), $1, 0, i FROM generate_series(1::bigint, $2::bigint) i",
        &[&TOOLBOX_CUSTOMER, &EXPIRED],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = sql
            .query_one("SELECT count(*) FROM authorize_tokens", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} expired tokens still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the nodes finish logging the purge that emptied the table.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut per_node = Vec::new();
    for node in &nodes {
        let log = node.log();
        assert!(!log.contains("purge failed"), "{log}");
        per_node.push(
            log.lines()
                .filter(|line| line.contains("purged expired rows"))
                .filter_map(|line| line.split("tokens=").nth(1))
                .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .map(|digits| digits.parse::<i64>().unwrap())
                .sum::<i64>(),
        );
    }
    assert_eq!(
        per_node.iter().sum::<i64>(),
        EXPIRED,
        "purged per node: {per_node:?}"
    );
}

// ---- outages ----

/// A node started while PostgreSQL is down waits instead of exiting: its API answers 503, its
/// readiness is false, each retry is logged with its cause; once the database answers (here a
/// proxy to the test server appears on the port the node was given) it becomes ready and serves.
#[tokio::test]
async fn a_node_started_before_its_database_waits_then_serves() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let upstream = upstream_of(&database).await;
    // A port with nothing behind it, for now.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap();
    drop(free);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let log = dir.path().join("node.log");
    let mut command = Command::new(BIN);
    command.current_dir(dir.path()).stdin(Stdio::null());
    for (var, _) in std::env::vars() {
        if var.starts_with("BANKGATE_") {
            command.env_remove(var);
        }
    }
    let mut child = command
        .args(["--database", &through(&database, port), "serve"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut node = Node {
        child,
        root: String::new(),
        base: String::new(),
        log,
        _dir: dir,
    };
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let next_line = |what: &str| {
        lines
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("no {what} line; log:\n{}", node.log()))
    };
    let waiting = next_line("waiting");
    let rest = waiting
        .strip_prefix("bankgate waiting for the database: http://")
        .unwrap_or_else(|| panic!("{waiting}"));
    let api = rest.split_whitespace().next().unwrap().to_owned();
    let readyz = rest.rsplit("readiness on ").next().unwrap().to_owned();
    node.root = format!("http://{api}");
    node.base = format!("http://{api}/v3/{TOOLBOX_CUSTOMER}/BankingServices");

    let client = client();
    let ready = client.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["reason"], "store_unavailable");
    let (status, body) = post(
        &client,
        &node.url("GenerateAuthorizeToken"),
        ("flinks-auth-key", TOOLBOX_SECRET),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!((status, &body["FlinksCode"]), (503, &json!("RETRY_LATER")));
    assert_eq!(body["Reason"], "store_unavailable");
    assert!(
        body["Hint"]
            .as_str()
            .unwrap()
            .contains("waiting for its database"),
        "{body}"
    );
    // Two retries logged, each with its cause.
    let deadline = Instant::now() + START_TIMEOUT;
    while node
        .log()
        .matches("cannot be reached yet; retrying")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no retries logged:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(node.log().contains("Connection refused"), "{}", node.log());
    assert_eq!(node.child.try_wait().unwrap(), None, "the node exited");

    let _database_up = ChaosProxy::start_at(port, upstream).await;
    let listening = tokio::task::spawn_blocking(move || lines.recv_timeout(START_TIMEOUT))
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("never became ready; log:\n{}", node.log()));
    assert_eq!(listening, format!("bankgate listening on http://{api}"));
    let ready = client.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", node.log());
    let (status, body) = post(
        &client,
        &node.url("GenerateAuthorizeToken"),
        ("flinks-auth-key", TOOLBOX_SECRET),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(node.log().contains("the database answered; starting"));
}

/// A TCP proxy between a node and PostgreSQL that can cut every connection (and refuse new
/// ones), stall them (accept, then forward nothing), or work normally.
struct ChaosProxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Cut,
    Stalled,
}

impl ChaosProxy {
    async fn start(upstream: SocketAddr) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), upstream).await
    }

    /// A proxy on `address` (a port a node already tries to reach).
    async fn start_at(address: SocketAddr, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (mode, watcher) = watch::channel(Mode::Up);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(inbound, upstream, watcher.clone()));
            }
        });
        Self { address, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn relay(mut inbound: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Cut => return,
        // Held open, silent, until the mode changes; then closed.
        Mode::Stalled => {
            let _ = mode.changed().await;
            return;
        }
        Mode::Up => {}
    }
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let stalled = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        changed = mode.wait_for(|m| *m != Mode::Up) => changed.is_ok_and(|m| *m == Mode::Stalled),
    };
    if stalled {
        // Stop forwarding but keep both sockets open until the stall ends.
        let _ = mode.wait_for(|m| *m != Mode::Stalled).await;
    }
}

/// The test server's URL, pointed at `address` instead.
fn through(database: &str, address: SocketAddr) -> String {
    let config: tokio_postgres::Config = database.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the outage tests need a TCP PostgreSQL URL, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let (scheme, rest) = database.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    assert!(
        authority.ends_with(&format!("{host}:{port}")) || authority.ends_with(&host),
        "the outage tests need a URL of the form postgres://[USER@]HOST[:PORT]/…"
    );
    format!("{scheme}://{}{address}{tail}", userinfo.unwrap_or_default())
}

async fn upstream_of(database: &str) -> SocketAddr {
    let config: tokio_postgres::Config = database.parse().unwrap();
    let tokio_postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else {
        panic!("the outage tests need a TCP PostgreSQL URL");
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap()
}

/// GenerateAuthorizeToken, timed.
async fn timed_token(client: &reqwest::Client, node: &Node) -> ((u16, Value), Duration) {
    let started = Instant::now();
    let reply = post(
        client,
        &node.url("GenerateAuthorizeToken"),
        ("flinks-auth-key", TOOLBOX_SECRET),
        json!({}),
    )
    .await
    .unwrap();
    (reply, started.elapsed())
}

/// Retries until the node answers 200 again; returns how long recovery took.
async fn wait_for_recovery(client: &reqwest::Client, node: &Node) -> Duration {
    let started = Instant::now();
    loop {
        let ((status, _), _) = timed_token(client, node).await;
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the node did not recover within 20s; log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[track_caller]
fn assert_unavailable(reply: &(u16, Value), took: Duration, bound: Duration, node: &Node) {
    assert_eq!(reply.0, 503, "{}; log:\n{}", reply.1, node.log());
    assert_eq!(reply.1["HttpStatusCode"], 503);
    assert_eq!(reply.1["FlinksCode"], "RETRY_LATER");
    assert_eq!(reply.1["Reason"], "store_unavailable");
    let text = reply.1.to_string();
    assert!(
        !text.contains("postgres") && !text.contains("connection"),
        "internals stay in the log: {text}"
    );
    assert!(took < bound, "a 503 must come fast, took {took:?}");
}

const OUTAGE_ARGS: [&str; 4] = ["--db-connect-timeout", "1s", "--db-statement-timeout", "2s"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_gives_fast_503s_and_the_node_recovers_by_itself() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let proxy = ChaosProxy::start(upstream_of(&database).await).await;
    let node = Node::start(&through(&database, proxy.address), &OUTAGE_ARGS);
    let http = client();
    let login = live_login(&http, &node).await;
    let before = token(&http, &node).await;

    for outage in 0..2 {
        proxy.set(Mode::Cut);
        for _ in 0..3 {
            let (reply, took) = timed_token(&http, &node).await;
            assert_unavailable(&reply, took, Duration::from_secs(3), &node);
        }
        let (reply, took) = {
            let started = Instant::now();
            let reply = authorize_cached(&http, &node, &before, &login)
                .await
                .unwrap();
            (reply, started.elapsed())
        };
        assert_unavailable(&reply, took, Duration::from_secs(3), &node);

        proxy.set(Mode::Up);
        let took = wait_for_recovery(&http, &node).await;
        assert!(
            took < Duration::from_secs(5),
            "outage {outage}: recovery took {took:?}"
        );
    }
    // A token acknowledged before the outages still works, once.
    let (status, body) = authorize_cached(&http, &node, &before, &login)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_gives_503s_within_the_timeouts_not_a_hang() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let proxy = ChaosProxy::start(upstream_of(&database).await).await;
    let node = Node::start(&through(&database, proxy.address), &OUTAGE_ARGS);
    let http = client();
    let login = live_login(&http, &node).await;

    proxy.set(Mode::Stalled);
    // Reads and writes on connections that went silent: bounded by the statement timeout
    // (2s, and twice that for a write batch) plus a little.
    let (reply, took) = timed_token(&http, &node).await;
    assert_unavailable(&reply, took, Duration::from_secs(8), &node);
    let started = Instant::now();
    let spend = authorize_cached(&http, &node, "00000000-0000-4000-8000-000000000000", &login)
        .await
        .unwrap();
    assert_unavailable(&spend, started.elapsed(), Duration::from_secs(8), &node);

    proxy.set(Mode::Up);
    let took = wait_for_recovery(&http, &node).await;
    assert!(took < Duration::from_secs(10), "recovery took {took:?}");
    let token = token(&http, &node).await;
    let (status, body) = authorize_cached(&http, &node, &token, &login)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// Keys rotated from the command line (as on any other node) take effect on every running node
/// within the time a node trusts what it read of keys (`LOOKUP_TTL`, documented in README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_retired_elsewhere_is_refused_by_every_node_within_the_lookup_ttl() {
    let Some(database) = pg::fresh_database().await else {
        return;
    };
    let node_a = Node::start(&database, &[]);
    let node_b = Node::start(&database, &[]);
    let http = client();
    let created = operator(&database, &["customer", "create", "--instance", "toolbox"]);
    let customer = created["customerId"].as_str().unwrap();
    let old_secret = created["secretKey"].as_str().unwrap();
    let mint = async |node: &Node, secret: &str| {
        post(
            &http,
            &format!(
                "{}/GenerateAuthorizeToken",
                node.base.replace(TOOLBOX_CUSTOMER, customer)
            ),
            ("flinks-auth-key", secret),
            json!({}),
        )
        .await
        .unwrap()
    };
    // Both nodes have served the old key, so each remembers it.
    assert_eq!(mint(&node_a, old_secret).await.0, 200);
    assert_eq!(mint(&node_b, old_secret).await.0, 200);

    let rotated = operator(&database, &["customer", "rotate-keys", customer]);
    let retired_at = Instant::now();
    let new_secret = rotated["secretKey"].as_str().unwrap();
    // The new key works at once: nothing about it was remembered.
    assert_eq!(mint(&node_b, new_secret).await.0, 200);
    assert_eq!(mint(&node_a, new_secret).await.0, 200);
    for node in [&node_a, &node_b] {
        loop {
            let reply = mint(node, old_secret).await;
            if reply.0 == 401 {
                assert_refused(&reply, 401, "auth_key_invalid");
                break;
            }
            assert_eq!(reply.0, 200, "{}", reply.1);
            assert!(
                retired_at.elapsed() < bankgate_store::LOOKUP_TTL + Duration::from_secs(1),
                "a node still takes the retired key {:?} after the rotation",
                retired_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
