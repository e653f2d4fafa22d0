//! End-to-end HTTP benchmark of the token path, against a bare-axum baseline in the same run.
//!
//! One process, one multi-thread tokio runtime: bankgate (`bankgate_server::app` on a SQLite
//! store in a temporary directory, toolbox seeded, one sandbox LoginId) and a bare axum router
//! answering a small static JSON body are served on loopback, and N concurrent client tasks
//! sharing one keep-alive `reqwest::Client` drive, one after the other, for a fixed time after a
//! one-second warm-up:
//!
//! - (a) the baseline: `POST` to the bare router;
//! - (b) `GenerateAuthorizeToken` with the toolbox secret key;
//! - (c) a flow: `GenerateAuthorizeToken`, then `Authorize` (cached mode) with that token.
//!
//! For each scenario it prints throughput and p50/p99 latency (per request; per flow for (c)), each
//! as a ratio to the baseline of the same run, so that noise from a busy machine largely cancels
//! out; for (b) and (c) it also prints how the store's writer grouped their writes into commits.
//! Any failed request is counted, shown, and makes the run exit with an error.
//!
//! Run: `cargo bench -p bankgate --bench http [-- --seconds S --clients N]`, or set
//! `BENCH_SECONDS` (measured seconds per scenario, default 5) and `BENCH_CLIENTS` (concurrent
//! clients, default 32); the options win over the variables.
//!
//! With `BENCH_POSTGRES_URL=postgres://…` bankgate runs on PostgreSQL instead (its own group-commit
//! writer), in a fresh schema of that database that the bench drops at the end.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::http::header;
use axum::routing::post;
use bankgate_core::model::toolbox;
use bankgate_core::{CustomerId, SystemClock};
use bankgate_server::AppState;
use bankgate_store::{BatchStats, PgSettings, PgStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const WARMUP: Duration = Duration::from_secs(1);
const DEFAULT_MEASURE: Duration = Duration::from_secs(5);
const DEFAULT_CLIENTS: usize = 32;
/// Bounds every request, so a stuck server turns into counted errors, not a hung bench.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Shaped like a GenerateAuthorizeToken answer, so the client does the same work for both.
const BASELINE_BODY: &str =
    r#"{"HttpStatusCode":200,"Token":"6f2ba2d1-8d5e-4c1e-9a55-0b7f3c1d2e4f"}"#;
const BASELINE_PATH: &str = "/GenerateAuthorizeToken";
/// Distinct error messages kept per scenario; the rest are only counted.
const ERROR_KINDS_KEPT: usize = 8;

const USAGE: &str = "usage: cargo bench -p bankgate --bench http [-- --seconds S] [--clients N]
  --seconds S   measured seconds per scenario, after a 1 s warm-up (env BENCH_SECONDS, default 5)
  --clients N   concurrent client tasks (env BENCH_CLIENTS, default 32)";

fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let Some(config) = Config::load()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(config))
}

#[derive(Debug, Clone, Copy)]
struct Config {
    measure: Duration,
    clients: usize,
}

impl Config {
    /// Reads the environment, then the command line; `None` when help was asked for.
    fn load() -> anyhow::Result<Option<Self>> {
        let mut config = Self {
            measure: DEFAULT_MEASURE,
            clients: DEFAULT_CLIENTS,
        };
        if let Ok(text) = std::env::var("BENCH_SECONDS") {
            config.measure = parse_seconds(&text, "BENCH_SECONDS")?;
        }
        if let Ok(text) = std::env::var("BENCH_CLIENTS") {
            config.clients = parse_clients(&text, "BENCH_CLIENTS")?;
        }
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            match flag.as_str() {
                // `cargo bench` passes this to every bench binary.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--seconds" | "--clients" => {
                    let value = inline
                        .or_else(|| args.next().filter(|value| !value.starts_with("--")))
                        .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
                    if flag == "--seconds" {
                        config.measure = parse_seconds(&value, "--seconds")?;
                    } else {
                        config.clients = parse_clients(&value, "--clients")?;
                    }
                }
                other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
                other => eprintln!("note: ignoring {other:?}: this bench has no filters"),
            }
        }
        Ok(Some(config))
    }
}

fn parse_seconds(text: &str, source: &str) -> anyhow::Result<Duration> {
    let seconds: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("{source}: {text:?} is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        bail!("{source}: the measured time must be positive, got {text:?}");
    }
    Duration::try_from_secs_f64(seconds).with_context(|| format!("{source}: {text:?} is too long"))
}

fn parse_clients(text: &str, source: &str) -> anyhow::Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(clients) if clients > 0 => Ok(clients),
        _ => bail!("{source}: expected a number of clients of at least 1, got {text:?}"),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // bankgate, exactly as `bankgate serve` builds it (minus the log subscriber and the purger).
    let dir = tempfile::TempDir::new().context("cannot create a temporary directory")?;
    let db_path = dir.path().join("bench.db");
    let backend = match std::env::var("BENCH_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => BenchStore::postgres(url.trim()).await?,
        _ => BenchStore::Sqlite(Arc::new(SqliteStore::open(&db_path)?)),
    };
    let store = backend.store();
    let state = AppState::new(store, Arc::new(SystemClock));
    state.operator().seed_toolbox().await?;
    let customer_id: CustomerId = toolbox::CUSTOMER_ID
        .parse()
        .context("the toolbox customer id is not a UUID")?;
    let login = state
        .operator()
        .create_login(customer_id, "FlinksCapital", "Greatday")
        .await?;
    let bankgate = Server::start(bankgate_server::app(state)).await?;

    let baseline_app = Router::new().route(
        BASELINE_PATH,
        post(|| async { ([(header::CONTENT_TYPE, "application/json")], BASELINE_BODY) }),
    );
    let baseline = Server::start(baseline_app).await?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let api = format!(
        "http://{}/v3/{}/BankingServices",
        bankgate.address,
        toolbox::CUSTOMER_ID
    );
    let target = Arc::new(Target {
        client,
        baseline_url: format!("http://{}{BASELINE_PATH}", baseline.address),
        token_url: format!("{api}/GenerateAuthorizeToken"),
        authorize_url: format!("{api}/Authorize"),
        authorize_body:
            serde_json::json!({ "LoginId": login.id.to_string(), "MostRecentCached": true })
                .to_string(),
    });

    // One call each first: a misconfigured setup fails here, not after minutes of errors.
    for scenario in Scenario::ALL {
        target
            .call(scenario)
            .await
            .map_err(|error| anyhow::anyhow!("preflight of {}: {error}", scenario.label()))?;
    }

    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "bankgate HTTP bench: {} clients, {} s warm-up + {:.1} s measured per scenario, {cpus} CPUs, \
         HTTP/1.1 keep-alive on loopback",
        config.clients,
        WARMUP.as_secs(),
        config.measure.as_secs_f64(),
    );
    match &backend {
        BenchStore::Sqlite(_) => println!(
            "database: {} (SQLite WAL, synchronous=FULL)",
            db_path.display()
        ),
        BenchStore::Postgres { schema, .. } => println!(
            "database: PostgreSQL from BENCH_POSTGRES_URL, schema {schema} \
             (synchronous_commit=on)"
        ),
    }
    println!();

    let mut reports = Vec::new();
    for scenario in Scenario::ALL {
        let commits = scenario.writes().then_some(&backend);
        reports.push(drive(&target, scenario, config, commits).await?);
    }
    print_reports(&reports);

    // Close the client's connections first, so the graceful shutdowns have nothing to wait for.
    drop(target);
    baseline.stop().await?;
    bankgate.stop().await?;
    backend.close().await?; // every queued write done once the server has let go of the store
    dir.close()
        .context("cannot remove the temporary directory")?;

    let errors: u64 = reports.iter().map(|r| r.errors + r.warmup_errors).sum();
    if errors > 0 {
        bail!("{errors} request(s) failed during the run; its figures are not trustworthy");
    }
    println!("no errors");
    Ok(())
}

/// The store under test.
enum BenchStore {
    Sqlite(Arc<SqliteStore>),
    Postgres {
        store: Arc<PgStore>,
        admin: tokio_postgres::Client,
        schema: String,
    },
}

impl BenchStore {
    /// PostgreSQL, in a new schema of the database at `url`.
    async fn postgres(url: &str) -> anyhow::Result<Self> {
        let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("cannot connect to BENCH_POSTGRES_URL")?;
        tokio::spawn(connection);
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .context("cannot create the bench schema")?;
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
        let store = Arc::new(PgStore::connect(&url, PgSettings::default()).await?);
        Ok(Self::Postgres {
            store,
            admin,
            schema,
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Postgres { store, .. } => store.clone(),
        }
    }

    fn batch_stats(&self) -> BatchStats {
        match self {
            Self::Sqlite(store) => store.batch_stats(),
            // PostgreSQL groups concurrent commits itself; nothing to count here.
            Self::Postgres { .. } => BatchStats::default(),
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        match self {
            // Dropping the last handle joins the writer thread.
            Self::Sqlite(store) => drop(store),
            Self::Postgres {
                store,
                admin,
                schema,
            } => {
                if let Some(store) = Arc::into_inner(store) {
                    store.close().await;
                }
                admin
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .context("cannot drop the bench schema")?;
            }
        }
        Ok(())
    }
}

/// A server on a loopback port, stopped gracefully.
struct Server {
    address: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: Router) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            address,
            stop,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let served = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.task)
            .await
            .with_context(|| format!("the server on {} did not stop", self.address))?;
        served
            .context("the server task failed")?
            .context("the server failed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Baseline,
    GenerateToken,
    TokenAndAuthorize,
}

impl Scenario {
    const ALL: [Self; 3] = [Self::Baseline, Self::GenerateToken, Self::TokenAndAuthorize];

    fn label(self) -> &'static str {
        match self {
            Self::Baseline => "(a) baseline: bare axum POST",
            Self::GenerateToken => "(b) GenerateAuthorizeToken",
            Self::TokenAndAuthorize => "(c) token + Authorize, per flow",
        }
    }

    /// Whether the scenario writes to the store (and so has group-commit figures).
    fn writes(self) -> bool {
        self != Self::Baseline
    }
}

/// What the clients talk to.
struct Target {
    client: reqwest::Client,
    baseline_url: String,
    token_url: String,
    authorize_url: String,
    authorize_body: String,
}

impl Target {
    /// One operation of `scenario`: `Err` describes what went wrong.
    async fn call(&self, scenario: Scenario) -> Result<(), String> {
        match scenario {
            Scenario::Baseline => self.token(&self.baseline_url, "baseline").await.map(drop),
            Scenario::GenerateToken => self
                .token(&self.token_url, "GenerateAuthorizeToken")
                .await
                .map(drop),
            Scenario::TokenAndAuthorize => {
                let token = self
                    .token(&self.token_url, "GenerateAuthorizeToken")
                    .await?;
                let response = self
                    .client
                    .post(&self.authorize_url)
                    .header("flinks-auth-key", token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(self.authorize_body.clone())
                    .send()
                    .await;
                expect_ok(response, "Authorize").await.map(drop)
            }
        }
    }

    /// POSTs with the toolbox secret key and returns the `Token` of the answer.
    async fn token(&self, url: &str, what: &str) -> Result<String, String> {
        let response = self
            .client
            .post(url)
            .header("flinks-auth-key", toolbox::SECRET_KEY)
            .send()
            .await;
        let body = expect_ok(response, what).await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|error| format!("{what}: the body is not JSON: {error}"))?;
        answer
            .get("Token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{what}: no Token in {}", lossy(&body)))
    }
}

/// The body of a 200; anything else is an error naming `what` failed and how.
async fn expect_ok(
    response: reqwest::Result<reqwest::Response>,
    what: &str,
) -> Result<Vec<u8>, String> {
    let response = response.map_err(|error| format!("{what}: {error}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("{what}: reading the body: {error}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{what}: HTTP {status}: {}", lossy(&body)));
    }
    Ok(body.to_vec())
}

/// A short printable rendering of a body, for error messages.
fn lossy(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// The writer's counters, copied out.
#[derive(Debug, Clone, Copy, Default)]
struct Commits {
    batches: u64,
    jobs: u64,
    largest: usize,
}

impl Commits {
    fn of(store: &BenchStore) -> Self {
        let stats = store.batch_stats();
        Self {
            batches: stats.batches,
            jobs: stats.jobs,
            largest: stats.largest,
        }
    }
}

/// What one client task saw.
#[derive(Debug, Default)]
struct ClientRun {
    /// Successful operations started inside the measured window.
    latencies: Vec<Duration>,
    /// When the last measured operation finished.
    last_finish: Option<Instant>,
    errors: u64,
    warmup_errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

impl ClientRun {
    fn fail(&mut self, message: String, measured: bool) {
        if measured {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        self.count_kind(message, 1);
    }

    /// Counts an error message, keeping at most [`ERROR_KINDS_KEPT`] distinct ones.
    fn count_kind(&mut self, message: String, count: u64) {
        if self.error_kinds.len() < ERROR_KINDS_KEPT || self.error_kinds.contains_key(&message) {
            *self.error_kinds.entry(message).or_default() += count;
        }
    }

    fn absorb(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.last_finish = self.last_finish.max(other.last_finish);
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        for (message, count) in other.error_kinds {
            self.count_kind(message, count);
        }
    }
}

async fn client_loop(
    target: Arc<Target>,
    scenario: Scenario,
    measure_from: Instant,
    end: Instant,
) -> ClientRun {
    let mut run = ClientRun::default();
    loop {
        let started = Instant::now();
        if started >= end {
            return run;
        }
        let outcome = target.call(scenario).await;
        let finished = Instant::now();
        let measured = started >= measure_from;
        match outcome {
            Ok(()) if measured => {
                run.latencies.push(finished - started);
                run.last_finish = Some(finished);
            }
            Ok(()) => {}
            Err(message) => run.fail(message, measured),
        }
    }
}

/// One scenario's figures.
#[derive(Debug)]
struct Report {
    scenario: Scenario,
    ops: usize,
    throughput: f64,
    /// `None` when no operation succeeded.
    p50: Option<Duration>,
    p99: Option<Duration>,
    errors: u64,
    warmup_errors: u64,
    error_kinds: BTreeMap<String, u64>,
    /// Over the measured window, for scenarios that write.
    commits: Option<CommitDelta>,
}

#[derive(Debug)]
struct CommitDelta {
    batches: u64,
    jobs: u64,
    /// The largest batch of the window when it set a new record; otherwise only a bound.
    largest: usize,
    largest_is_exact: bool,
}

async fn drive(
    target: &Arc<Target>,
    scenario: Scenario,
    config: Config,
    store: Option<&BenchStore>,
) -> anyhow::Result<Report> {
    let measure_from = Instant::now() + WARMUP;
    let end = measure_from + config.measure;
    let mut clients = JoinSet::new();
    for _ in 0..config.clients {
        clients.spawn(client_loop(Arc::clone(target), scenario, measure_from, end));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = store.map(Commits::of);
    let mut run = ClientRun::default();
    while let Some(client) = clients.join_next().await {
        run.absorb(client.context("a client task failed")?);
    }
    let after = store.map(Commits::of);

    let elapsed = run
        .last_finish
        .map_or(config.measure, |last| last.duration_since(measure_from));
    run.latencies.sort_unstable();
    let commits = before.zip(after).map(|(before, after)| CommitDelta {
        batches: after.batches.saturating_sub(before.batches),
        jobs: after.jobs.saturating_sub(before.jobs),
        largest: after.largest,
        largest_is_exact: after.largest > before.largest,
    });
    Ok(Report {
        scenario,
        ops: run.latencies.len(),
        throughput: run.latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&run.latencies, 0.50),
        p99: percentile(&run.latencies, 0.99),
        errors: run.errors,
        warmup_errors: run.warmup_errors,
        error_kinds: run.error_kinds,
        commits,
    })
}

/// Nearest-rank percentile of sorted samples; `None` without samples.
fn percentile(sorted: &[Duration], quantile: f64) -> Option<Duration> {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3} ms", d.as_secs_f64() * 1e3),
    )
}

fn ratio(value: f64, base: f64) -> String {
    if base > 0.0 && value > 0.0 && value.is_finite() {
        format!("{:.3}", value / base)
    } else {
        "n/a".to_owned()
    }
}

fn latency_ratio(value: Option<Duration>, base: Option<Duration>) -> String {
    match (value, base) {
        (Some(value), Some(base)) => ratio(value.as_secs_f64(), base.as_secs_f64()),
        _ => "n/a".to_owned(),
    }
}

fn print_reports(reports: &[Report]) {
    let Some(base) = reports.iter().find(|r| r.scenario == Scenario::Baseline) else {
        return;
    };
    println!(
        "{:<32} {:>8} {:>10} {:>10} {:>10}  {:>7} {:>7} {:>7}  {:>6}",
        "scenario", "ops", "ops/s", "p50", "p99", "tput×", "p50×", "p99×", "errors"
    );
    for r in reports {
        println!(
            "{:<32} {:>8} {:>10.1} {:>10} {:>10}  {:>7} {:>7} {:>7}  {:>6}",
            r.scenario.label(),
            r.ops,
            r.throughput,
            ms(r.p50),
            ms(r.p99),
            ratio(r.throughput, base.throughput),
            latency_ratio(r.p50, base.p50),
            latency_ratio(r.p99, base.p99),
            r.errors + r.warmup_errors,
        );
    }
    println!(
        "ratios are scenario / baseline of this run: tput× < 1 is slower, p50× and p99× > 1 are \
         slower; (c) counts one flow (two requests) as one op"
    );

    println!();
    println!(
        "group commit over each measured window (one transaction, so one WAL flush, per batch):"
    );
    println!(
        "{:<32} {:>8} {:>8} {:>11} {:>8} {:>8} {:>11}",
        "scenario", "batches", "jobs", "jobs/batch", "largest", "jobs/op", "batches/op"
    );
    for r in reports {
        let Some(c) = &r.commits else { continue };
        let per = |count: u64, by: f64| {
            if by > 0.0 {
                format!("{:.2}", count as f64 / by)
            } else {
                "n/a".to_owned()
            }
        };
        let largest = if c.largest_is_exact {
            c.largest.to_string()
        } else {
            format!("≤{}", c.largest)
        };
        println!(
            "{:<32} {:>8} {:>8} {:>11} {:>8} {:>8} {:>11}",
            r.scenario.label(),
            c.batches,
            c.jobs,
            per(c.jobs, c.batches as f64),
            largest,
            per(c.jobs, r.ops as f64),
            per(c.batches, r.ops as f64),
        );
    }
    println!(
        "(largest \"≤N\": this window did not beat the record N of earlier writes; the writer keeps \
         only an all-time maximum)"
    );

    println!();
    for r in reports.iter().filter(|r| r.errors + r.warmup_errors > 0) {
        println!(
            "ERRORS in {}: {} measured, {} during warm-up; by kind (first {ERROR_KINDS_KEPT} kinds):",
            r.scenario.label(),
            r.errors,
            r.warmup_errors
        );
        for (message, count) in &r.error_kinds {
            println!("  {count:>8} × {message}");
        }
    }
}
