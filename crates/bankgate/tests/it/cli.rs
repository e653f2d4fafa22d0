//! The real `bankgate` binary, as an operator runs it: each test has its own database file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bankgate_core::{Clock, CustomerId, LoginId};
use bankgate_core::{Digest, SystemClock};
use bankgate_store::{CredentialMatch, SqliteStore, Store};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use crate::support::{TOOLBOX_CUSTOMER, TOOLBOX_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_bankgate");

/// Every variable the CLI reads; removed from the children's environment so the runner's own
/// settings cannot leak into a test.
const GLOBAL_VARS: [&str; 7] = [
    "BANKGATE_DATABASE",
    "BANKGATE_LOG_FORMAT",
    "BANKGATE_LOG",
    "BANKGATE_CONFIG",
    "BANKGATE_DB_POOL_SIZE",
    "BANKGATE_DB_CONNECT_TIMEOUT",
    "BANKGATE_DB_STATEMENT_TIMEOUT",
];
const SERVE_VARS: [&str; 15] = [
    "BANKGATE_LISTEN",
    "BANKGATE_ADMIN_LISTEN",
    "BANKGATE_ADMIN_TOKEN",
    "BANKGATE_PURGE_INTERVAL",
    "BANKGATE_MAX_FAILURES_PER_CLIENT",
    "BANKGATE_MAX_FAILURES_PER_TARGET",
    "BANKGATE_FAILURE_WINDOW",
    "BANKGATE_FAILURE_LOCKOUT",
    "BANKGATE_SHUTDOWN_GRACE",
    "BANKGATE_HEADER_READ_TIMEOUT",
    "BANKGATE_BODY_READ_TIMEOUT",
    "BANKGATE_MAX_CONNECTIONS",
    "BANKGATE_ADMIN_TOKEN_FILE",
    "BANKGATE_PORT",
    "BANKGATE_IDLE_TIMEOUT",
];

/// How long a child may take to start listening or to stop.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// `bankgate` with a clean environment, run in `dir` (so the default database, if a test ever
/// falls back to it, lands in a temp dir and not in the repository).
fn bankgate_in(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).stdin(Stdio::null());
    for var in GLOBAL_VARS.iter().chain(&SERVE_VARS) {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1");
    command
}

/// What a finished command printed.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(command: &mut Command) -> Self {
        let output = command.output().unwrap();
        Self {
            status: output.status,
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    #[track_caller]
    fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "expected success: {self:#?}");
        self
    }

    /// Asserts a non-zero exit whose stderr says `expected`; returns stderr.
    #[track_caller]
    fn assert_failure(&self, expected: &str) -> &str {
        assert!(!self.status.success(), "expected a failure: {self:#?}");
        assert!(
            self.stderr.contains(expected),
            "stderr should say {expected:?}: {self:#?}"
        );
        &self.stderr
    }

    #[track_caller]
    fn json(&self) -> Value {
        self.assert_success();
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON value ({error}): {self:#?}"))
    }
}

/// A temp dir with a database file in it.
struct Db {
    dir: TempDir,
    path: PathBuf,
    url: String,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.db");
        let url = format!("sqlite://{}", path.display());
        Self { dir, path, url }
    }

    /// `bankgate --database sqlite://…/bg.db`.
    fn command(&self) -> Command {
        let mut command = bankgate_in(self.dir.path());
        command.arg("--database").arg(&self.url);
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command().args(args))
    }

    /// Runs with `--json`, asserts success, returns the printed value.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.run(&args).json()
    }

    /// Every byte SQLite keeps for this database (main file, WAL, shared memory).
    fn bytes_at_rest(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
            if file_name.starts_with("bg.db") {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(
            !bytes.is_empty(),
            "no database files in {}",
            self.dir.path().display()
        );
        bytes
    }
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Whether `text` names `var` as a whole word (so `BANKGATE_LOG` is not found in
/// `BANKGATE_LOG_FORMAT`).
fn mentions_var(text: &str, var: &str) -> bool {
    text.match_indices(var).any(|(at, _)| {
        !text[at + var.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[track_caller]
fn assert_v4_uuid(value: &Value) -> String {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let uuid = Uuid::parse_str(text).unwrap_or_else(|_| panic!("not a UUID: {text}"));
    assert_eq!(uuid.get_version_num(), 4, "{text}");
    assert_eq!(
        text,
        uuid.hyphenated().to_string(),
        "lowercase and hyphenated"
    );
    text.to_owned()
}

fn customer_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|c| c["customerId"].as_str().unwrap().to_owned())
        .collect()
}

// ---- help ----

#[test]
fn help_names_every_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let help = Run::of(bankgate_in(dir.path()).arg("--help"));
    help.assert_success();
    for var in GLOBAL_VARS {
        assert!(
            mentions_var(&help.stdout, var),
            "--help should mention {var}:\n{}",
            help.stdout
        );
    }

    let serve_help = Run::of(bankgate_in(dir.path()).args(["serve", "--help"]));
    serve_help.assert_success();
    for var in SERVE_VARS.iter().chain(&GLOBAL_VARS) {
        assert!(
            mentions_var(&serve_help.stdout, var),
            "serve --help should mention {var}:\n{}",
            serve_help.stdout
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "--help must not create a database"
    );
}

// ---- instances ----

#[test]
fn instance_create_and_list() {
    let db = Db::new();
    let created = db.json(&[
        "instance",
        "create",
        "acme",
        "--kind",
        "production",
        "--token-lifetime",
        "10m",
    ]);
    assert_eq!(created["name"], "acme");
    assert_eq!(created["kind"], "production");
    assert_eq!(created["tokenLifetimeSeconds"], 600);

    let listed = db.json(&["instance", "list"]);
    let mut summary: Vec<Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!([i["name"], i["kind"], i["tokenLifetimeSeconds"]]))
        .collect();
    summary.sort_by_key(ToString::to_string);
    assert_eq!(
        summary,
        vec![
            json!(["acme", "production", 600]),
            json!(["toolbox", "sandbox", 1800]),
        ],
        "{listed:#}"
    );
}

#[test]
fn instance_create_refuses_duplicates_and_bad_input() {
    let db = Db::new();
    db.json(&["instance", "create", "acme"]);
    db.run(&["instance", "create", "acme", "--kind", "production"])
        .assert_failure("already exists");
    db.run(&["instance", "create", "toolbox"])
        .assert_failure("already exists");

    let bad = db.run(&["instance", "create", "Bad_Name"]);
    let message = bad.assert_failure("Bad_Name");
    assert!(message.contains("instance names are"), "{bad:#?}");

    db.run(&["instance", "create", "beta", "--kind", "staging"])
        .assert_failure("sandbox or production");
    db.run(&["instance", "create", "beta", "--token-lifetime", "soon"])
        .assert_failure("30m");
    db.run(&["instance", "create", "beta", "--token-lifetime", "0s"])
        .assert_failure("at least one");

    // Nothing of the refused commands was created.
    let names: Vec<Value> = db
        .json(&["instance", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&json!("acme")) && names.contains(&json!("toolbox")),
        "{names:?}"
    );
}

// ---- customers ----

#[test]
fn customer_keys_are_shown_once_and_stored_only_as_digests() {
    let db = Db::new();
    let created = db.json(&[
        "customer",
        "create",
        "--instance",
        "toolbox",
        "--label",
        "shop",
    ]);
    let customer_id = assert_v4_uuid(&created["customerId"]);
    let secret = assert_v4_uuid(&created["secretKey"]);
    let api_key = assert_v4_uuid(&created["apiKey"]);
    assert_ne!(secret, api_key);
    assert_eq!(created["instance"], "toolbox");
    assert_eq!(created["label"], "shop");

    let list = db.run(&["customer", "list", "--json"]);
    let ids = customer_ids(&list.json());
    assert_eq!(ids.len(), 2, "{list:#?}");
    assert!(ids.contains(&TOOLBOX_CUSTOMER.to_owned()), "{ids:?}");
    assert!(ids.contains(&customer_id), "{ids:?}");
    for key in [&secret, &api_key] {
        assert!(
            !list.stdout.contains(key.as_str()),
            "a listing shows a key: {list:#?}"
        );
        assert!(
            !list.stderr.contains(key.as_str()),
            "a log shows a key: {list:#?}"
        );
    }
    let text_list = db.run(&["customer", "list"]);
    text_list.assert_success();
    assert!(text_list.stdout.contains(&customer_id), "{text_list:#?}");
    assert!(!text_list.stdout.contains(&secret) && !text_list.stdout.contains(&api_key));

    // At rest: the digests, never the keys.
    let bytes = db.bytes_at_rest();
    for key in [&secret, &api_key] {
        assert!(
            !contains_bytes(&bytes, key.as_bytes()),
            "the plaintext key {key} is in the database"
        );
        assert!(
            !contains_bytes(&bytes, key.to_uppercase().as_bytes()),
            "the plaintext key {key} (uppercase) is in the database"
        );
        assert!(
            contains_bytes(&bytes, Digest::of_presented(key).as_bytes()),
            "the key's digest should be stored (are we reading the right file?)"
        );
    }
}

#[test]
fn customer_create_needs_a_known_instance() {
    let db = Db::new();
    db.run(&["customer", "create", "--instance", "nowhere"])
        .assert_failure("nowhere");
    assert_eq!(
        customer_ids(&db.json(&["customer", "list"])),
        vec![TOOLBOX_CUSTOMER]
    );
}

#[test]
fn database_comes_from_bankgate_database() {
    let db = Db::new();
    let from_env = |args: &[&str]| {
        Run::of(
            bankgate_in(db.dir.path())
                .env("BANKGATE_DATABASE", &db.url)
                .args(args),
        )
    };
    let created = from_env(&["instance", "create", "via-env", "--json"]).json();
    assert_eq!(created["name"], "via-env");
    assert!(
        db.path.exists(),
        "the database should be where BANKGATE_DATABASE says"
    );
    assert!(
        !db.dir.path().join("bankgate.db").exists(),
        "the default database must not be used"
    );

    // The same data, whether named by flag or by variable.
    let names = |list: Value| -> Vec<String> {
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(db.json(&["instance", "list"])),
        ["toolbox", "via-env"]
    );
    assert_eq!(
        names(from_env(&["instance", "list", "--json"]).json()),
        ["toolbox", "via-env"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_prints_new_keys_and_retires_the_old() {
    let db = Db::new();
    let created = db.json(&["customer", "create", "--instance", "toolbox"]);
    let customer_id = created["customerId"].as_str().unwrap().to_owned();
    let old_secret = created["secretKey"].as_str().unwrap().to_owned();
    let old_api = created["apiKey"].as_str().unwrap().to_owned();

    let rotated = db.json(&["customer", "rotate-keys", &customer_id]);
    assert_eq!(rotated["customerId"], customer_id.as_str());
    let new_secret = assert_v4_uuid(&rotated["secretKey"]);
    let new_api = assert_v4_uuid(&rotated["apiKey"]);
    assert_ne!(new_secret, old_secret);
    assert_ne!(new_api, old_api);
    assert_ne!(new_secret, new_api);
    assert_eq!(rotated["oldKeysValidForSeconds"], 0);

    let with_grace = db.json(&["customer", "rotate-keys", &customer_id, "--grace", "1h"]);
    assert_eq!(with_grace["oldKeysValidForSeconds"], 3600);
    let newest_secret = with_grace["secretKey"].as_str().unwrap().to_owned();

    db.run(&[
        "customer",
        "rotate-keys",
        &CustomerId::new_random().to_string(),
    ])
    .assert_failure("not found");

    // What the server will see: the first keys are retired, the second ones are in their
    // grace period, the newest are current.
    let store = SqliteStore::open(&db.path).unwrap();
    let now = SystemClock.now();
    let retired_at = async |key: &str| match store
        .find_credential(Digest::of_presented(key), now)
        .await
        .unwrap()
    {
        Some(CredentialMatch::Key {
            customer_id: owner,
            retired_at,
            ..
        }) => {
            assert_eq!(owner.to_string(), customer_id);
            retired_at
        }
        other => panic!("the key {key} should be stored: {other:?}"),
    };
    assert!(
        retired_at(&old_secret).await.is_some(),
        "the old secret key is retired"
    );
    assert!(
        retired_at(&old_api).await.is_some(),
        "the old x-api-key is retired"
    );
    assert_eq!(
        retired_at(&new_secret).await,
        None,
        "still in its grace period"
    );
    assert_eq!(retired_at(&newest_secret).await, None);
}

// ---- logins ----

#[test]
fn login_create_makes_a_login_id_for_a_sandbox_user() {
    let db = Db::new();
    let login = db.json(&[
        "login",
        "create",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--username",
        "Greatday",
    ]);
    assert_v4_uuid(&login["loginId"]);
    assert_eq!(login["customerId"], TOOLBOX_CUSTOMER);
    assert_eq!(login["institution"], "FlinksCapital");
    assert_eq!(login["username"], "Greatday");

    // Usernames and institutions match case-insensitively, and come back as documented.
    let relaxed = db.json(&[
        "login",
        "create",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--institution",
        "flinkscapital",
        "--username",
        "GREATDAY_NOMFA",
    ]);
    assert_eq!(relaxed["institution"], "FlinksCapital");
    assert_eq!(relaxed["username"], "greatday_nomfa");
    assert_ne!(relaxed["loginId"], login["loginId"]);
}

#[test]
fn login_create_refuses_unknown_users_institutions_and_customers() {
    let db = Db::new();
    let unknown_user = db.run(&[
        "login",
        "create",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--username",
        "nobody",
    ]);
    let message = unknown_user.assert_failure("nobody");
    for known in ["Greatday", "greatday_nomfa", "test_pending"] {
        assert!(
            message.contains(known),
            "should name {known}: {unknown_user:#?}"
        );
    }

    let unknown_bank = db.run(&[
        "login",
        "create",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--institution",
        "NoSuchBank",
        "--username",
        "Greatday",
    ]);
    let message = unknown_bank.assert_failure("NoSuchBank");
    assert!(message.contains("FlinksCapital"), "{unknown_bank:#?}");

    let stranger = CustomerId::new_random().to_string();
    db.run(&[
        "login",
        "create",
        "--customer",
        &stranger,
        "--username",
        "Greatday",
    ])
    .assert_failure(&stranger);
    db.run(&[
        "login",
        "create",
        "--customer",
        "not-a-guid",
        "--username",
        "Greatday",
    ])
    .assert_failure("not-a-guid");

    // Production instances do not know the sandbox bank.
    db.run(&["instance", "create", "acme", "--kind", "production"])
        .assert_success();
    let acme = db.json(&[
        "customer",
        "create",
        "--instance",
        "acme",
        "--label",
        "shop",
    ]);
    let acme = acme["customerId"].as_str().unwrap();
    db.run(&[
        "login",
        "create",
        "--customer",
        acme,
        "--username",
        "Greatday",
    ])
    .assert_failure("does not serve the sandbox bank");
}

// ---- serve ----

/// A running `bankgate serve`; killed if the test ends early.
struct Server {
    child: Child,
    address: String,
    admin_address: String,
    log: PathBuf,
}

const ADMIN_TOKEN: &str = "cli-test-admin-token-0123456789abcdef";

impl Server {
    /// Spawns `bankgate serve --listen 127.0.0.1:0`, logging to `log_name` in the temp dir;
    /// returns it with its stdout, unread.
    fn spawn(db: &Db, log_name: &str) -> (Self, ChildStdout) {
        Self::spawn_with(db, log_name, &[], Some(ADMIN_TOKEN))
    }

    /// Like [`Server::spawn`], with more `serve` flags and the admin token from the
    /// environment, if any.
    fn spawn_with(
        db: &Db,
        log_name: &str,
        flags: &[&str],
        admin_token: Option<&str>,
    ) -> (Self, ChildStdout) {
        let log = db.dir.path().join(log_name);
        let mut command = db.command();
        command.arg("serve");
        // Port 0 on loopback, unless `flags` say where.
        for listen in ["--listen", "--admin-listen"] {
            if !flags.contains(&listen) {
                command.args([listen, "127.0.0.1:0"]);
            }
        }
        command.args(flags);
        if let Some(token) = admin_token {
            command.env("BANKGATE_ADMIN_TOKEN", token);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Self {
            child,
            address: String::new(),
            admin_address: String::new(),
            log,
        };
        (server, stdout)
    }

    /// Starts `bankgate serve --listen 127.0.0.1:0` and waits for its listening line.
    fn start(db: &Db, log_name: &str) -> Self {
        Self::start_with(db, log_name, &[], Some(ADMIN_TOKEN)).0
    }

    /// Like [`Server::start`] with [`Server::spawn_with`]'s arguments; also returns the lines
    /// printed up to the admin API's.
    fn start_with(
        db: &Db,
        log_name: &str,
        flags: &[&str],
        admin_token: Option<&str>,
    ) -> (Self, Vec<String>) {
        let (mut server, stdout) = Self::spawn_with(db, log_name, flags, admin_token);
        let mut printed = Vec::new();
        // A reader thread keeps draining stdout; the test waits on its lines with a deadline.
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    printed.push(line.clone());
                    if let Some(address) = line.strip_prefix("bankgate listening on http://") {
                        server.address = address.trim().to_owned();
                    }
                    if let Some(address) = line.strip_prefix("bankgate admin API on http://") {
                        server.admin_address = address.trim().to_owned();
                        // Then the banner (and a generated admin token): whatever follows
                        // at once.
                        while let Ok(next) = received.recv_timeout(Duration::from_millis(300)) {
                            printed.push(next);
                        }
                        return (server, printed);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "no listening line within {PROCESS_TIMEOUT:?}; log:\n{}",
                        server.log()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "bankgate serve exited before listening ({:?}); log:\n{}",
                    server.child.try_wait(),
                    server.log()
                ),
            }
        }
    }

    fn url(&self, customer: &str, endpoint: &str) -> String {
        format!(
            "http://{}/v3/{customer}/BankingServices/{endpoint}",
            self.address
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    fn interrupt(&mut self) -> ExitStatus {
        self.stop_with("-INT")
    }

    /// Sends a signal (`-INT`, `-TERM`) without waiting.
    fn signal(&self, signal: &str) {
        // The shell's built-in kill: slim images may lack procps' /bin/kill.
        let sent = Command::new("sh")
            .args([
                "-c",
                "kill \"$1\" \"$2\"",
                "sh",
                signal,
                &self.child.id().to_string(),
            ])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} failed");
    }

    /// Sends a signal (`-INT`, `-TERM`) and waits for the process to exit.
    fn stop_with(&mut self, signal: &str) -> ExitStatus {
        self.signal(signal);
        self.wait_for_exit()
    }

    fn wait_for_exit(&mut self) -> ExitStatus {
        let log = self.log.clone();
        wait_with_timeout(&mut self.child, "bankgate serve", || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
    }
}

/// Waits (polling, bounded) for a child to exit.
fn wait_with_timeout(child: &mut Child, what: &str, log: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit within {PROCESS_TIMEOUT:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Any helper process, killed if the test ends early.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    crate::support::http()
        .no_proxy()
        .timeout(PROCESS_TIMEOUT)
        .build()
        .unwrap()
}

/// POSTs like the documented curl examples; returns status and JSON body.
async fn post(url: &str, auth: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .header("flinks-auth-key", auth);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_tokens_across_a_restart() {
    let db = Db::new();

    let mut first = Server::start(&db, "first.log");
    let (status, issued) = post(
        &first.url(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
        TOOLBOX_SECRET,
        None,
    )
    .await;
    assert_eq!(status, 200, "{issued:#}\nlog:\n{}", first.log());
    assert_eq!(issued["HttpStatusCode"], 200);
    let token = assert_v4_uuid(&issued["Token"]);
    let stopped = first.interrupt();
    assert!(
        stopped.success(),
        "Ctrl-C should stop bankgate cleanly: {stopped:?}\n{}",
        first.log()
    );
    drop(first);

    let second = Server::start(&db, "second.log");
    // An operator adds a LoginId while the server runs on the same file.
    let login = db.json(&[
        "login",
        "create",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--username",
        "Greatday",
    ]);
    let login_id = login["loginId"].as_str().unwrap();
    let authorize = second.url(TOOLBOX_CUSTOMER, "Authorize");
    let body = json!({"LoginId": login_id, "MostRecentCached": true});

    let (status, session) = post(&authorize, &token, Some(body.clone())).await;
    assert_eq!(
        status,
        200,
        "the token from before the restart: {session:#}\nlog:\n{}",
        second.log()
    );
    assert_eq!(session["HttpStatusCode"], 200);
    assert_eq!(session["Login"]["Id"], login_id);
    assert_eq!(session["Login"]["Username"], "Greatday");
    assert_eq!(session["InstitutionId"], 14);
    assert_v4_uuid(&session["RequestId"]);

    let (status, again) = post(&authorize, &token, Some(body)).await;
    assert_eq!(status, 401, "{again:#}");
    assert_eq!(again["Reason"], "authorize_token_used", "{again:#}");

    // The second start did not seed the toolbox again.
    let toolbox = db.json(&["customer", "list", "--instance", "toolbox"]);
    assert_eq!(
        customer_ids(&toolbox),
        vec![TOOLBOX_CUSTOMER],
        "{toolbox:#}"
    );
    drop(second);
}

/// Scripts read the listening line and may stop the server at once (a check that it starts, a
/// supervisor restarting it): Ctrl-C and SIGTERM must stop it cleanly from the moment it says it
/// is listening. A shell script watches stdout and signals as soon as the line appears, as such
/// a script would; several rounds, because a server that installs its signal handlers only after
/// printing the line is killed outright only when the signal wins that race.
#[test]
fn serve_stops_cleanly_when_signalled_right_after_listening() {
    const WATCH: &str = r#"while IFS= read -r line; do
        case "$line" in "bankgate listening on http://"*) kill -s "$1" "$2"; exit 0;; esac
    done
    exit 1"#;
    let db = Db::new();
    for round in 0..20 {
        let signal = if round % 2 == 0 { "INT" } else { "TERM" };
        let (mut server, stdout) = Server::spawn(&db, &format!("round-{round}.log"));
        let pid = server.child.id().to_string();
        let mut watcher = KillOnDrop(
            Command::new("sh")
                .args(["-c", WATCH, "sh", signal, &pid])
                .stdin(Stdio::from(stdout))
                .spawn()
                .unwrap(),
        );
        let watched = wait_with_timeout(&mut watcher.0, "the watching script", || server.log());
        assert!(
            watched.success(),
            "round {round}: no listening line; log:\n{}",
            server.log()
        );
        let status = server.wait_for_exit();
        assert!(
            status.success(),
            "round {round}: SIG{signal} right after the listening line should stop bankgate \
             cleanly, got {status:?}\nlog:\n{}",
            server.log()
        );
    }
}

#[test]
fn instance_create_stores_the_lifetime_it_reports() {
    let db = Db::new();
    // Lifetimes are kept in whole seconds: a fraction is refused, not silently truncated.
    db.run(&["instance", "create", "quick", "--token-lifetime", "1500ms"])
        .assert_failure("whole number of seconds");
    let created = db.run(&["instance", "create", "quick", "--token-lifetime", "90s"]);
    created.assert_success();
    let listed = db.run(&["instance", "list"]);
    listed.assert_success();
    let lifetime = |text: &str| {
        text.lines()
            .find(|line| line.contains("quick"))
            .and_then(|line| line.split("tokens live ").nth(1))
            .map(|rest| rest.trim_end_matches(')').trim().to_owned())
            .unwrap_or_else(|| panic!("no lifetime for quick in {text:?}"))
    };
    assert_eq!(lifetime(&created.stdout), "1m 30s");
    assert_eq!(lifetime(&listed.stdout), "1m 30s");
}

#[test]
fn unsupported_database_urls_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |url: &str| Run::of(bankgate_in(dir.path()).args(["--database", url, "instance", "list"]));

    let mysql = run("mysql://x");
    let message = mysql.assert_failure("mysql://x");
    assert!(
        message.contains("sqlite://"),
        "should say what works: {mysql:#?}"
    );
    run("postgres://localhost/bankgate?nonsense=1").assert_failure("invalid PostgreSQL URL");
    // Nothing listens on port 1: a clear, fast failure that never shows the password.
    let started = std::time::Instant::now();
    let unreachable = Run::of(bankgate_in(dir.path()).args([
        "--database",
        "postgres://bg:hunter2@127.0.0.1:1/bankgate",
        "--db-connect-timeout",
        "2s",
        "instance",
        "list",
    ]));
    let message = unreachable
        .assert_failure("cannot open the database postgres://bg:***@127.0.0.1:1/bankgate");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    run("sqlite://").assert_failure("needs a file path");

    let from_env = Run::of(
        bankgate_in(dir.path())
            .env("BANKGATE_DATABASE", "mysql://x")
            .args(["instance", "list"]),
    );
    from_env.assert_failure("mysql://x");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a refused URL must not create any database"
    );
}

/// A client that sends half a request must not keep bankgate alive: after Ctrl-C it waits for
/// in-flight requests, and a second Ctrl-C stops it at once.
#[test]
fn a_second_ctrl_c_stops_a_server_held_up_by_a_stalled_client() {
    use std::io::Write;

    let db = Db::new();
    let mut server = Server::start(&db, "stalled.log");
    let mut stalled = std::net::TcpStream::connect(&server.address).unwrap();
    let path = format!("/v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken");
    write!(
        stalled,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nflinks-auth-key: {TOOLBOX_SECRET}\r\n\
         Content-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    stalled.flush().unwrap();
    // Let the request reach its handler, then ask for a graceful stop: it waits.
    std::thread::sleep(Duration::from_millis(300));
    server.signal("-INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the stalled request is still in flight, so the first Ctrl-C waits\n{}",
        server.log()
    );
    let status = server.interrupt();
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(server.log().contains("second signal"), "{}", server.log());
}

/// The admin listener of a real process: its own port, guarded by the token from the
/// environment, and the clock it moves is the one the public port reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_admin_api_on_its_own_port() {
    let db = Db::new();
    let server = Server::start(&db, "admin.log");
    assert_ne!(server.admin_address, server.address);
    let admin = |path: &str| format!("http://{}{path}", server.admin_address);

    let health = client().get(admin("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = client().get(admin("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let refused = client()
        .get(admin("/admin/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // The admin API is not on the public port.
    let public = client()
        .get(format!("http://{}/admin/instances", server.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 404);

    let (_, issued) = post(
        &server.url(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
        TOOLBOX_SECRET,
        None,
    )
    .await;
    let moved = client()
        .post(admin("/admin/instances/toolbox/clock/advance"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"seconds":1800}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200, "{}", server.log());
    let (status, refused) = post(
        &server.url(TOOLBOX_CUSTOMER, "Authorize"),
        issued["Token"].as_str().unwrap(),
        Some(json!({ "LoginId": LoginId::new_random().to_string(), "MostRecentCached": true })),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(refused["Reason"], "authorize_token_expired", "{refused:#}");

    let metrics = client().get(admin("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("bankgate_tokens_issued_total 1"), "{text}");
    assert!(
        !server.log().contains(ADMIN_TOKEN),
        "the admin token reached the log"
    );
}

/// The config file sits below the environment, which sits below flags: one database each,
/// and the instance list tells which one a command opened.
#[test]
fn config_file_environment_and_flags_take_precedence_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bankgate.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite://{}\"\nlog_format = \"json\"\n",
            dir.path().join("file.db").display()
        ),
    )
    .unwrap();
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let with_config = || {
        let mut command = bankgate_in(dir.path());
        command.arg("--config").arg(&config);
        command
    };
    // Each source gets its own instance, created in whichever database wins.
    Run::of(with_config().args(["instance", "create", "from-file"])).assert_success();
    Run::of(
        with_config()
            .env("BANKGATE_DATABASE", url("env.db"))
            .args(["instance", "create", "from-env"]),
    )
    .assert_success();
    Run::of(with_config().env("BANKGATE_DATABASE", url("env.db")).args([
        "--database",
        &url("flag.db"),
        "instance",
        "create",
        "from-flag",
    ]))
    .assert_success();
    for (db, expected) in [
        ("file.db", "from-file"),
        ("env.db", "from-env"),
        ("flag.db", "from-flag"),
    ] {
        let listed = Run::of(bankgate_in(dir.path()).args([
            "--database",
            &url(db),
            "instance",
            "list",
            "--json",
        ]))
        .json();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [expected, "toolbox"], "{db}");
    }
}

#[test]
fn a_bad_config_value_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bankgate.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nfailure_lockout = \"a while\"\n",
    )
    .unwrap();
    let run = Run::of(
        bankgate_in(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("serve"),
    );
    let stderr = run.assert_failure("failure_lockout");
    assert!(stderr.contains("bankgate.toml"), "{stderr}");
    // Nothing was started or created.
    assert!(!dir.path().join("bankgate.db").exists());
}

#[test]
fn instance_clock_reads_moves_and_resets_a_sandbox_clock() {
    let db = Db::new();
    // Reading commands create no database: make it first.
    drop(SqliteStore::open(&db.path).unwrap());
    let read = db.json(&["instance", "clock", "toolbox"]);
    assert_eq!(read["realTime"], true, "{read:#}");
    let moved = db.json(&["instance", "clock", "toolbox", "--advance", "30m"]);
    assert_eq!(moved["offsetSeconds"], 1800.0, "{moved:#}");
    let again = db.json(&["instance", "clock", "toolbox", "--advance", "90s"]);
    assert_eq!(again["offsetSeconds"], 1890.0, "moves add up: {again:#}");
    let listed = db.json(&["instance", "list"]);
    assert_eq!(listed[0]["clockOffsetSeconds"], 1890.0, "{listed:#}");
    let reset = db.json(&["instance", "clock", "toolbox", "--reset"]);
    assert_eq!(reset["realTime"], true, "{reset:#}");

    db.run(&["instance", "create", "acme", "--kind", "production"])
        .assert_success();
    db.run(&["instance", "clock", "acme", "--advance", "1m"])
        .assert_failure("production");
    db.run(&["instance", "clock", "nowhere"])
        .assert_failure("nowhere");
}

#[tokio::test]
async fn instance_connect_token_switches_the_connect_pages_token_requirement() {
    let db = Db::new();
    let set = db.json(&["instance", "connect-token", "toolbox", "optional"]);
    assert_eq!(
        set,
        json!({ "instance": "toolbox", "connectTokenRequired": false })
    );
    let toolbox: bankgate_core::InstanceName = "toolbox".parse().unwrap();
    let store = SqliteStore::open(&db.path).unwrap();
    assert!(!store.connect_token_required(&toolbox).await.unwrap());
    drop(store);
    db.json(&["instance", "connect-token", "toolbox", "required"]);
    let store = SqliteStore::open(&db.path).unwrap();
    assert!(store.connect_token_required(&toolbox).await.unwrap());
    drop(store);
    db.run(&["instance", "connect-token", "nowhere", "optional"])
        .assert_failure("nowhere");
    db.run(&["instance", "connect-token", "toolbox", "maybe"])
        .assert_failure("maybe");
}

/// A database password never reaches the terminal: not in a refused URL, not in `--help`.
#[test]
fn database_passwords_stay_out_of_errors_and_help() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://bg:s3cretpw@db:notaport/bankgate",
        "postgres://bg@db:notaport/bankgate?password=s3cretpw",
        "mysql://bg:s3cretpw@db/bankgate",
        // libpq's key=value form is refused, without echoing it.
        "host=db user=bg password=s3cretpw dbname=bankgate",
        "host=db password='s3cret pw'",
    ] {
        let run = Run::of(bankgate_in(dir.path()).args(["--database", url, "instance", "list"]));
        let stderr = run.assert_failure("--database");
        assert!(!stderr.contains("s3cret"), "{url}: {stderr}");
    }
    let help = Run::of(
        bankgate_in(dir.path())
            .env("BANKGATE_DATABASE", "postgres://bg:s3cretpw@db/bankgate")
            .arg("--help"),
    );
    help.assert_success();
    assert!(!format!("{help:?}").contains("s3cretpw"), "{help:?}");
}

// ---- the admin token ----

/// `GET /admin/instances` with `token`; the status.
async fn admin_status(server: &Server, token: &str) -> u16 {
    client()
        .get(format!("http://{}/admin/instances", server.admin_address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_short_admin_token_is_refused_with_the_rule_and_how_to_make_one() {
    let db = Db::new();
    for (how, run) in [
        ("flag", db.run(&["serve", "--admin-token", "a"])),
        (
            "variable",
            Run::of(
                db.command()
                    .arg("serve")
                    .env("BANKGATE_ADMIN_TOKEN", "short-but-not-32-characters"),
            ),
        ),
    ] {
        let error = run.assert_failure("at least 32").to_owned();
        assert!(error.contains("openssl rand -hex 32"), "{how}: {error}");
        assert!(error.contains("generate"), "{how}: {error}");
        assert!(!error.contains("short-but-not"), "{how}: {error}");
    }
    // Refused before anything was created.
    assert!(!db.path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_token_is_printed_once_and_opens_the_admin_api() {
    let db = Db::new();
    let (server, printed) =
        Server::start_with(&db, "generated.log", &["--admin-token", "generate"], None);
    let token = printed
        .iter()
        .find_map(|line| line.strip_prefix("bankgate admin token (generated): "))
        .unwrap_or_else(|| panic!("no generated token printed: {printed:?}"))
        .to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert_eq!(admin_status(&server, &token).await, 200);
    assert_eq!(admin_status(&server, "generate").await, 401);
    assert!(!server.log().contains(&token), "the token reached the log");

    // Another start makes another token.
    let other = Db::new();
    let (_, again) = Server::start_with(&other, "again.log", &["--admin-token", "generate"], None);
    assert!(!again.iter().any(|line| line.contains(&token)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_can_come_from_a_file() {
    let db = Db::new();
    let file = db.dir.path().join("admin-token");
    let token = "file-admin-token-0123456789abcdef0123";
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let file_arg = file.display().to_string();
    let (server, printed) =
        Server::start_with(&db, "file.log", &["--admin-token-file", &file_arg], None);
    // Trimmed: the newline an editor adds is not part of the token.
    assert_eq!(admin_status(&server, token).await, 200);
    assert!(
        !printed.iter().any(|line| line.contains(token)),
        "{printed:?}"
    );
    // Written 0644 above: readable by others, which the log points out (without the token).
    let log = server.log();
    assert!(log.contains("chmod 600"), "{log}");
    assert!(!log.contains(token), "{log}");
    drop(server);

    // Not both; not a short one; not a missing file.
    let both = db.run(&[
        "serve",
        "--admin-token-file",
        &file_arg,
        "--admin-token",
        "0123456789abcdef0123456789abcdef",
    ]);
    both.assert_failure("admin_token_file");
    std::fs::write(&file, "tiny\n").unwrap();
    let short = db.run(&["serve", "--admin-token-file", &file_arg]);
    let error = short.assert_failure("at least 32");
    assert!(error.contains(&file_arg), "{error}");
    let missing = db.run(&["serve", "--admin-token-file", "/nonexistent/admin-token"]);
    missing.assert_failure("/nonexistent/admin-token");
}

// ---- conventions ----

#[test]
fn completions_are_printed_for_each_shell_without_a_database() {
    let db = Db::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef bankgate"),
        ("fish", "complete -c bankgate"),
    ] {
        let run = db.run(&["completions", shell]);
        run.assert_success();
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
        assert!(run.stdout.contains("admin-token-file"), "{shell}");
    }
    db.run(&["completions", "tcsh"])
        .assert_failure("possible values: bash, elvish, fish, powershell, zsh");
    assert!(!db.path.exists(), "completions must not create a database");
}

#[test]
fn a_bad_log_filter_stops_the_start_with_the_levels() {
    let db = Db::new();
    let run = db.run(&["--log", "verbose", "serve"]);
    let error = run.assert_failure("\"verbose\" is not a log level");
    assert!(error.contains("info,bankgate_server=debug"), "{error}");
    let run = Run::of(
        db.command()
            .args(["instance", "list"])
            .env("BANKGATE_LOG", "loud"),
    );
    run.assert_failure("\"loud\" is not a log level");
    assert!(!db.path.exists());
}

#[test]
fn serve_listens_on_localhost_port_and_port() {
    let db = Db::new();
    let (server, _) = Server::start_with(
        &db,
        "localhost.log",
        &["--listen", "localhost:0", "--admin-listen", "localhost:0"],
        Some(ADMIN_TOKEN),
    );
    assert!(
        server.address.starts_with("127.0.0.1:"),
        "{}",
        server.address
    );
    assert!(server.admin_address.starts_with("127.0.0.1:"));
    drop(server);

    // --port picks the port of the listen address; a taken one is named in the error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = db.run(&["serve", "--port", &port, "--admin-listen", "127.0.0.1:0"]);
    run.assert_failure(&format!("127.0.0.1:{port}"));
}

/// Log colours on a terminal, none with `NO_COLOR` (no-color.org). `script` (util-linux)
/// gives the binary a terminal; without it the test says so and passes.
#[test]
fn no_color_turns_off_log_colours_on_a_terminal() {
    let has_script = Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_script {
        eprintln!("skipped: needs `script` (util-linux) for a terminal");
        return;
    }
    let on_a_terminal = |no_color: Option<&str>| {
        let db = Db::new();
        // The first writing command on a new database logs that it seeded the toolbox.
        let line = format!("{BIN} --database {} instance create colours", db.url);
        let mut command = Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .current_dir(db.dir.path())
            .stdin(Stdio::null());
        for var in GLOBAL_VARS.iter().chain(&SERVE_VARS) {
            command.env_remove(var);
        }
        command.env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let run = Run::of(&mut command);
        run.assert_success();
        assert!(run.stdout.contains("seeded"), "{run:#?}");
        run.stdout.contains('\u{1b}')
    };
    assert!(on_a_terminal(None), "no colours on a terminal");
    assert!(!on_a_terminal(Some("1")), "colours despite NO_COLOR");
}

/// `bankgate lockouts` reads and lifts the lockouts a running SQLite server keeps in the same
/// file; the refusal's Hint names the very command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_are_listed_and_lifted_from_the_command_line() {
    let db = Db::new();
    let server = Server::start(&db, "serve.log");
    let url = server.url(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken");
    for _ in 0..10 {
        let (status, body) = post(&url, "00000000-0000-4000-8000-000000000000", None).await;
        assert_eq!(body["Reason"], "auth_key_invalid", "{status} {body:#}");
    }
    let (status, locked) = post(&url, TOOLBOX_SECRET, None).await;
    assert_eq!((status, &locked["Reason"]), (401, &json!("rate_limited")));
    let command =
        format!("bankgate lockouts clear --customer {TOOLBOX_CUSTOMER} --client 127.0.0.1");
    assert!(
        locked["Hint"].as_str().unwrap().contains(&command),
        "{locked:#}"
    );

    let listed = db.json(&["lockouts", "list"]);
    assert_eq!(listed[0]["client"], "127.0.0.1", "{listed:#}");
    assert_eq!(listed[0]["target"], "secret_key", "{listed:#}");
    let text = db.run(&["lockouts", "list"]);
    assert!(
        text.assert_success().stdout.contains(&format!(
            "{TOOLBOX_CUSTOMER}\tsecret_key\t127.0.0.1\tuntil "
        )),
        "{text:#?}"
    );
    db.run(&["lockouts", "clear"])
        .assert_failure("--customer <CUSTOMER>|--client <CLIENT>|--all");
    db.run(&["lockouts", "clear", "--client", "localhost"])
        .assert_failure("--client \"localhost\" is not a client");
    let cleared = db.json(&[
        "lockouts",
        "clear",
        "--customer",
        TOOLBOX_CUSTOMER,
        "--client",
        "127.0.0.1",
    ]);
    assert_eq!(cleared, json!({"cleared": 1}));
    let (status, body) = post(&url, TOOLBOX_SECRET, None).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        db.run(&["lockouts", "list"]).assert_success().stdout,
        "no lockouts\n"
    );
    drop(server);
}

/// `bankgate instance webhook`: the first URL prints the secret once; showing never does;
/// rotation prints a new one; bad URLs are refused with the reason; disable stops it.
#[test]
fn instance_webhook_sets_shows_rotates_and_disables() {
    let db = Db::new();
    let set = db.json(&[
        "instance",
        "webhook",
        "toolbox",
        "--url",
        "http://localhost:9/hook",
    ]);
    let secret = set["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{set:#}");
    let text = db.run(&["instance", "webhook", "toolbox"]);
    text.assert_success();
    assert!(text.stdout.contains("http://localhost:9/hook"), "{text:#?}");
    assert!(!text.stdout.contains(&secret), "{text:#?}");
    let shown = db.json(&["instance", "webhook", "toolbox"]);
    assert!(shown.get("secret").is_none(), "{shown:#}");
    let rotated = db.json(&["instance", "webhook", "toolbox", "--rotate-secret"]);
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);
    let listed = db.run(&["instance", "webhook", "toolbox", "--deliveries"]);
    assert_eq!(listed.assert_success().stdout, "no deliveries\n");
    db.run(&["instance", "webhook", "toolbox", "--replay", "nope"])
        .assert_failure("nope");

    db.run(&["instance", "create", "acme", "--kind", "production"])
        .assert_success();
    db.run(&[
        "instance",
        "webhook",
        "acme",
        "--url",
        "http://hooks.example.test/",
    ])
    .assert_failure("need https");
    db.run(&["instance", "webhook", "toolbox", "--url", "ftp://x.test/"])
        .assert_failure("only http and https");
    db.run(&["instance", "webhook", "nowhere", "--url", "https://x.test/"])
        .assert_failure("nowhere");
    db.run(&[
        "instance",
        "webhook",
        "toolbox",
        "--disable",
        "--rotate-secret",
    ])
    .assert_failure("cannot be used with");

    let disabled = db.json(&["instance", "webhook", "toolbox", "--disable"]);
    assert_eq!(disabled["enabled"], false, "{disabled:#}");
    db.run(&["instance", "webhook", "toolbox", "--rotate-secret"])
        .assert_failure("set one with a URL first");
}

/// `bankgate webhooks listen`: prints each callback with its verdict, answers 401 to a bad
/// signature, and forwards good ones (body and signature headers unchanged) to the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_listen_verifies_prints_and_forwards() {
    use base64::Engine as _;

    // The developer's app: records what it gets.
    // (signature header, body) of each forwarded callback.
    type Forwarded = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let got: Forwarded = Arc::default();
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}/hook", app_listener.local_addr().unwrap());
    let recorded = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let signature = headers["x-flinks-signature"].to_str().unwrap().to_owned();
                recorded.lock().unwrap().push((signature, body.to_vec()));
                axum::http::StatusCode::ACCEPTED
            },
        ),
    );
    tokio::spawn(async move { axum::serve(app_listener, app).await });

    let db = Db::new();
    let mut child = bankgate_in(db.dir.path())
        .args([
            "webhooks",
            "listen",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &app_url,
        ])
        .env("BANKGATE_WEBHOOK_SECRET", "s3cret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = || received.recv_timeout(PROCESS_TIMEOUT).unwrap();
    let first = next();
    let address = first
        .strip_prefix("bankgate webhooks listening on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();

    bankgate_client::install_tls_provider();
    let client = reqwest::Client::new();
    let body =
        r#"{"ResponseType":"KYC","HttpStatusCode":200,"Login":{"Id":"l-1"},"RequestId":"r-1"}"#;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body.as_bytes()));
    let post = |signature: String| {
        client
            .post(format!("http://{address}/anything"))
            .header("content-type", "application/json")
            .header("X-Flinks-Signature", signature)
            .header("X-Bankgate-Delivery", "d-1")
            .body(body)
            .send()
    };
    let good = post(signature.clone()).await.unwrap();
    assert_eq!(
        good.status().as_u16(),
        202,
        "the app's answer is passed back"
    );
    let line = next();
    assert_eq!(
        line,
        "KYC RequestId=r-1 LoginId=l-1 delivery=d-1 signature valid"
    );
    assert!(next().contains("forwarded to"));
    let forwarded = got.lock().unwrap().clone();
    assert_eq!(
        forwarded,
        vec![(signature.clone(), body.as_bytes().to_vec())]
    );

    let bad = post("AAAA".to_owned()).await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    assert!(next().ends_with("signature INVALID (another secret, or the body was changed)"));
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "a bad callback is not forwarded"
    );

    child.kill().unwrap();
    child.wait().unwrap();
}
