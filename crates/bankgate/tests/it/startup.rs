//! Starting bankgate as a new operator does: the banner, and every start-up failure saying its
//! cause and its fix (the real binary, each test in its own temp dir).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bankgate_store::{SqliteStore, Store};
use serde_json::Value;

use crate::support::{TOOLBOX_CUSTOMER, TOOLBOX_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_bankgate");
const TIMEOUT: Duration = Duration::from_secs(30);

/// `bankgate` run in `dir`, with none of the runner's `BANKGATE_*` settings.
fn bankgate(dir: &Path) -> Command {
    bankgate_at(Path::new(BIN), dir)
}

/// The binary at `binary`, run as [`bankgate`] runs it.
fn bankgate_at(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(dir).stdin(Stdio::null());
    for (var, _) in std::env::vars() {
        if var.starts_with("BANKGATE_") {
            command.env_remove(var);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// Runs a command to its end; one still running after [`TIMEOUT`] (a start that waits when it
/// should have failed) is killed and fails the test.
fn run(command: &mut Command) -> (bool, String, String) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let Ok(output) = finished.recv_timeout(TIMEOUT) else {
        // The shell's kill: the child belongs to the waiting thread now.
        let _ = Command::new("sh")
            .args(["-c", "kill -9 \"$1\"", "sh", &id.to_string()])
            .status();
        panic!("still running after {TIMEOUT:?}");
    };
    let Output {
        status,
        stdout,
        stderr,
    } = output.unwrap();
    (
        status.success(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[track_caller]
fn fails_saying(command: &mut Command, expected: &[&str]) -> String {
    let (ok, stdout, stderr) = run(command);
    assert!(
        !ok,
        "expected a failure; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for part in expected {
        assert!(
            stderr.contains(part),
            "stderr should say {part:?}:\n{stderr}"
        );
    }
    stderr
}

/// A `serve` child and its stdout lines; killed when dropped.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Serving {
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self { child, lines }
    }

    /// The next stdout line starting with `prefix`, without it.
    fn line(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no line starting {prefix:?}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_banner_names_the_database_the_admin_api_and_a_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let serving = Serving::start(bankgate(dir.path()).args(["--database", "data/bg.db", "serve"]));
    let api = serving.line("bankgate listening on http://");
    let database = serving.line("database: ");
    let absolute = dir.path().join("data/bg.db");
    assert_eq!(database, format!("sqlite://{}", absolute.display()));
    assert!(absolute.exists());
    let admin = serving.line("admin API: ");
    assert!(admin.starts_with("off"), "{admin}");
    let toolbox = serving.line("toolbox: ");
    assert!(
        toolbox.contains(TOOLBOX_CUSTOMER) && toolbox.contains(TOOLBOX_SECRET),
        "{toolbox}"
    );
    let curl = serving.line("try: ");
    let url = format!("http://{api}/v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken");
    assert_eq!(
        curl,
        format!("curl -s -X POST {url} -H 'flinks-auth-key: {TOOLBOX_SECRET}'")
    );
    // The line works as printed.
    bankgate_client::install_tls_provider();
    let answer = reqwest::Client::new()
        .post(&url)
        .header("flinks-auth-key", TOOLBOX_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    drop(serving);

    let on = Serving::start(
        bankgate(dir.path())
            .args(["--database", "data/bg.db", "serve"])
            .env(
                "BANKGATE_ADMIN_TOKEN",
                "startup-test-admin-token-0123456789abcdef",
            ),
    );
    assert!(on.line("admin API: ").starts_with("on"));
}

#[test]
fn a_taken_port_is_reported_before_any_database_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    fails_saying(
        bankgate(dir.path()).args([
            "--database",
            "bg.db",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &address,
        ]),
        &[&format!("cannot listen on {address} (admin API)"), "in use"],
    );
    assert!(!dir.path().join("bg.db").exists(), "a database was created");
}

#[test]
fn commands_that_only_read_create_no_database_and_name_the_file_they_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let expected = format!(
        "no database at sqlite://{}",
        dir.path().join("bankgate.db").display()
    );
    for args in [
        &["instance", "list"][..],
        &["customer", "list"],
        &["instance", "clock", "toolbox"],
    ] {
        fails_saying(bankgate(dir.path()).args(args), &[&expected, "--database"]);
    }
    assert!(!dir.path().join("bankgate.db").exists());
    // A command that writes creates it, and says where.
    let (ok, _, stderr) =
        run(bankgate(dir.path()).args(["customer", "create", "--instance", "toolbox"]));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: created a new database at sqlite://{}",
            dir.path().join("bankgate.db").display()
        )),
        "{stderr}"
    );
    // From then on, the reading commands use it, and nothing is noted.
    let (ok, stdout, stderr) = run(bankgate(dir.path()).args(["--json", "customer", "list"]));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("created"), "{stderr}");
    let customers: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(customers.as_array().unwrap().len(), 2, "{customers}");
}

#[tokio::test]
async fn an_in_memory_database_is_a_mode_for_tests() {
    // Readers see the writer's data: one connection, no WAL.
    let store = SqliteStore::open(":memory:").unwrap();
    let operator = bankgate_server::operator::Operator::new(
        std::sync::Arc::new(store),
        std::sync::Arc::new(bankgate_core::SystemClock),
        bankgate_core::sandbox::SandboxBank::builtin(),
    );
    assert!(operator.seed_toolbox().await.unwrap());
    assert_eq!(operator.list_instances().await.unwrap().len(), 1);
    assert!(!operator.seed_toolbox().await.unwrap(), "seeded twice");
    let other = SqliteStore::open(":memory:").unwrap();
    assert!(other.list_instances().await.unwrap().is_empty(), "shared");

    // And the binary serves on it.
    let dir = tempfile::tempdir().unwrap();
    let serving = Serving::start(bankgate(dir.path()).args(["--database", ":memory:", "serve"]));
    let api = serving.line("bankgate listening on http://");
    assert!(serving.line("database: ").contains("in memory"));
    bankgate_client::install_tls_provider();
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{api}/v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken"
        ))
        .header("flinks-auth-key", TOOLBOX_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a file was written"
    );
}

// ---- files this user may not write ----

/// `bankgate` as a user that may not write what `setup` made: as root (CI), another user
/// (nobody); otherwise the current user, after `chmod` took its rights away.
#[cfg(unix)]
mod unwritable {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    use super::*;

    const NOBODY: u32 = 65534;

    fn is_root(dir: &Path) -> bool {
        let probe = dir.join(".probe");
        std::fs::write(&probe, "").unwrap();
        let root = std::fs::metadata(&probe).unwrap().uid() == 0;
        std::fs::remove_file(probe).unwrap();
        root
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A dir the test user may read but not write, with `file` (if any) read-only to it.
    fn restricted(dir: &Path, file: Option<&Path>) -> Command {
        let root = is_root(dir);
        if let Some(file) = file {
            chmod(file, if root { 0o644 } else { 0o444 });
        }
        let mut command = if root && !others_may_run(Path::new(BIN)) {
            // The checkout is private to root (CI's clone may be): run a copy nobody can reach.
            let copy = dir.join("bankgate");
            std::fs::copy(BIN, &copy).unwrap();
            chmod(&copy, 0o755);
            bankgate_at(&copy, dir)
        } else {
            bankgate(dir)
        };
        chmod(dir, if root { 0o755 } else { 0o555 });
        if root {
            command.uid(NOBODY).gid(NOBODY);
        }
        command
    }

    /// Whether any user may execute `binary` (every directory above it searchable by others).
    fn others_may_run(binary: &Path) -> bool {
        let mode = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.mode());
        mode(binary) & 0o001 != 0
            && binary
                .ancestors()
                .skip(1)
                .filter(|dir| !dir.as_os_str().is_empty())
                .all(|dir| mode(dir) & 0o001 != 0)
    }

    fn restore(dir: &Path) {
        chmod(dir, 0o755);
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_named_with_the_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.db");
        fails_saying(
            restricted(dir.path(), None).args([
                "--database",
                "bg.db",
                "customer",
                "create",
                "--instance",
                "toolbox",
            ]),
            &[
                &format!("cannot create the database file {}", path.display()),
                "Permission denied",
                "--database",
            ],
        );
        restore(dir.path());
        assert!(!path.exists());
    }

    #[test]
    fn a_database_file_of_another_user_is_named_with_the_os_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.db");
        drop(SqliteStore::open(&path).unwrap());
        let stderr = fails_saying(
            restricted(dir.path(), Some(&path)).args(["--database", "bg.db", "instance", "list"]),
            &[
                &format!(
                    "the database file {} cannot be opened for writing",
                    path.display()
                ),
                "Permission denied",
                "chown",
            ],
        );
        assert!(stderr.lines().count() <= 3, "{stderr}");
        restore(dir.path());
    }

    #[test]
    fn an_unmigrated_file_that_cannot_be_written_says_so_without_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE kept (x INTEGER)")
            .unwrap();
        let stderr = fails_saying(
            restricted(dir.path(), Some(&path)).args(["--database", "old.db", "serve"]),
            &[
                &format!("the database file {} needs migrating", path.display()),
                "cannot be written",
                "Permission denied",
            ],
        );
        assert!(!stderr.contains("CREATE TABLE"), "{stderr}");
        assert!(stderr.lines().count() <= 3, "{stderr}");
        restore(dir.path());
    }
}

// ---- PostgreSQL ----

/// The test server's URL with another user, password or database.
fn pg_url(server: &str, userinfo: &str, database: &str, query: &str) -> String {
    let config = bankgate_store::PgUrl::parse(server).unwrap().config;
    let tokio_postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else {
        panic!("the start-up tests need a TCP PostgreSQL URL");
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{userinfo}@{host}:{port}/{database}{query}")
}

#[tokio::test]
async fn a_missing_postgres_database_says_how_to_create_it() {
    let Some(server) = crate::pg::server_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = pg_url(&server, "postgres", "bankgate_no_such_database", "");
    fails_saying(
        bankgate(dir.path()).args(["--database", &url, "instance", "list"]),
        &[
            "database \"bankgate_no_such_database\" does not exist (3D000)",
            "CREATE DATABASE \"bankgate_no_such_database\" OWNER \"postgres\"",
        ],
    );
}

#[tokio::test]
async fn a_postgres_user_without_rights_on_the_schema_is_told_to_own_it() {
    let Some(database) = crate::pg::fresh_database().await else {
        return;
    };
    let server = crate::pg::server_url().unwrap();
    let admin = crate::pg::connect(&server).await;
    // A role of its own, created once per server (tests run in parallel and again).
    let _ = admin
        .batch_execute("CREATE ROLE bankgate_not_owner LOGIN")
        .await;
    // It may use the test's schema (owned by the server's user), not create in it.
    let schema = database.rsplit("search_path%3D").next().unwrap();
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO bankgate_not_owner"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let query = database
        .split_once('?')
        .map_or(String::new(), |(_, q)| format!("?{q}"));
    let url = pg_url(&server, "bankgate_not_owner", "postgres", &query);
    fails_saying(
        bankgate(dir.path()).args(["--database", &url, "instance", "list"]),
        &[
            "permission denied for schema",
            "(42501)",
            "OWNER TO \"bankgate_not_owner\"",
        ],
    );
}

/// PostgreSQL's answer to a wrong password, from a stand-in server (the test server trusts
/// every connection): `N` to TLS, then an ErrorResponse with SQLSTATE 28P01.
#[tokio::test]
async fn a_wrong_postgres_password_says_so_not_db_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ssl_request = [0_u8; 8];
                socket.read_exact(&mut ssl_request).await.unwrap();
                socket.write_all(b"N").await.unwrap();
                let mut length = [0_u8; 4];
                socket.read_exact(&mut length).await.unwrap();
                let mut startup = vec![0_u8; u32::from_be_bytes(length) as usize - 4];
                socket.read_exact(&mut startup).await.unwrap();
                let mut fields = Vec::new();
                for (tag, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "28P01"),
                    (b'M', "password authentication failed for user \"bg\""),
                ] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                let _ = socket.write_all(&message).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://bg:wrong-password@127.0.0.1:{port}/bankgate");
    let stderr = tokio::task::spawn_blocking(move || {
        fails_saying(
            bankgate(dir.path()).args(["--database", &url, "serve"]),
            &[
                "password authentication failed for user \"bg\" (28P01)",
                "check the password of user \"bg\"",
            ],
        )
    })
    .await
    .unwrap();
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(!stderr.contains("db error"), "{stderr}");
    server.abort();
}

#[test]
fn an_sslmode_the_build_cannot_do_is_refused_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    fails_saying(
        bankgate(dir.path()).args([
            "--database",
            "postgres://bg@127.0.0.1:1/bankgate?sslmode=allow",
            "instance",
            "list",
        ]),
        &["sslmode=allow is not supported", "verify-full"],
    );
}
