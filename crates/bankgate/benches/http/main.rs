//! End-to-end HTTP benchmark of bankgate as users run it, against a bare axum baseline measured
//! in the same run.
//!
//! bankgate is the real binary (`bankgate --database … serve`, built optimised by cargo for
//! benches), so the app, its runtime and its brute-force limiter are exactly `serve`'s. The load
//! comes from `wrk` in separate processes, so the client's cost is not charged to the server:
//!
//! - (a) the baseline: a bare axum server in this process, on its own multi-thread runtime,
//!   parsing a small JSON body and answering a new UUID in a small JSON body;
//! - (a′) the durable floors: the baseline's exchange, answered once the new token's digest is
//!   durably committed to the run's database, and the flow against the same server spending
//!   that token and writing a session in one commit (see `floor.rs`): the least a durable token
//!   and a durable flow cost here;
//! - (b) `GenerateAuthorizeToken` with the toolbox secret key;
//! - (c) the flow: `GenerateAuthorizeToken`, then `Authorize` in cached mode with that token and a
//!   LoginId made beforehand through the admin API; each wrk thread queues the tokens it got
//!   and spends one whenever it has one.
//!
//! The baseline runs before and after bankgate's scenarios and ratios divide by its mean, so
//! that a machine shared with compilers cancels out as far as it can. Any answer outside 2xx and
//! any socket error is counted, shown, and fails the run.
//!
//! Run: `cargo bench -p bankgate --bench http [-- --help]`.

mod baseline;
mod control;
mod database;
mod floor;
mod load;
mod node;
mod options;
mod prefill;
mod report;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bankgate_core::model::toolbox;

use crate::baseline::Baseline;
use crate::control::Http;
use crate::database::Database;
use crate::load::{Api, Outcome, Scripts, Wrk};
use crate::node::Node;
use crate::options::{Options, USAGE};
use crate::report::Row;

// The baseline runs in this process: it gets bankgate's allocator, so the ratios compare the
// work done per request, not two allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARMUP_SECONDS: u64 = 1;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    match start() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some requests failed (above); the figures are not trustworthy");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(false)` when the run completed with failed requests.
fn start() -> anyhow::Result<bool> {
    let Some(options) = Options::load()? else {
        println!("{USAGE}");
        return Ok(true);
    };
    load::check_wrk()?;
    if options.perf {
        check_perf()?;
    }
    let dir = tempfile::TempDir::new().context("cannot create a temporary directory")?;
    let baseline = Baseline::start()?;
    let database = Database::create(baseline.runtime(), &options, dir.path())?;
    baseline.serve_floor(database.floor(baseline.runtime(), dir.path())?);
    let outcome = bench(&options, &baseline, &database, dir.path());
    // Cleanup whatever happened; the bench's own error comes first.
    let dropped = database.remove(baseline.runtime());
    let stopped = baseline.stop();
    let ok = outcome?;
    dropped?;
    stopped?;
    dir.close()
        .context("cannot remove the temporary directory")?;
    Ok(ok)
}

fn check_perf() -> anyhow::Result<()> {
    match Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        _ => bail!("--perf needs `perf` (Debian: apt-get install linux-perf)"),
    }
}

/// A TCP listener that accepts every connection and never reads or answers it; the sockets stay
/// open until the bench ends.
fn hanging_receiver() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    Ok(address)
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|_| format!("load average {:.2}", load_average()))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Where wrk sends the load of one scenario.
#[derive(Clone, Copy)]
enum Scenario {
    Baseline,
    /// The baseline's exchange with a durable insert (`floor.rs`).
    Floor,
    /// The flow against the floor's two endpoints.
    FloorFlow,
    Token,
    Flow,
    /// Token, then a live Authorize (greatday_nomfa): each completes a live authorization, so
    /// each queues webhook callbacks when the instance has a webhook.
    Live,
}

impl Scenario {
    /// Served by this process (the baseline's server), not by bankgate's nodes.
    fn in_process(self) -> bool {
        matches!(self, Self::Baseline | Self::Floor | Self::FloorFlow)
    }

    /// Measured in flows (token + Authorize), not requests.
    fn counts_flows(self) -> bool {
        matches!(self, Self::Flow | Self::Live | Self::FloorFlow)
    }
}

struct Bench<'a> {
    options: &'a Options,
    http: Http<'a>,
    scripts: Scripts,
    baseline: std::net::SocketAddr,
}

impl Bench<'_> {
    fn url(&self, scenario: Scenario, node: &Node) -> String {
        match scenario {
            Scenario::Baseline => format!("http://{}{}", self.baseline, baseline::PATH),
            // The flow scripts build their own paths; each starts on GenerateAuthorizeToken.
            Scenario::Floor | Scenario::FloorFlow => {
                format!("http://{}{}", self.baseline, floor::TOKEN_PATH)
            }
            Scenario::Token | Scenario::Flow | Scenario::Live => format!(
                "http://{}/v3/{}/BankingServices/GenerateAuthorizeToken",
                node.api,
                toolbox::CUSTOMER_ID
            ),
        }
    }

    fn script(&self, scenario: Scenario) -> &Path {
        match scenario {
            // The same request as the baseline's.
            Scenario::Baseline | Scenario::Floor => &self.scripts.baseline,
            Scenario::Token => &self.scripts.token,
            Scenario::Flow => &self.scripts.flow,
            Scenario::FloorFlow => &self.scripts.floor_flow,
            Scenario::Live => &self.scripts.live,
        }
    }

    /// wrk against each of `nodes` at once (the baseline: one process), connections shared.
    fn drive(
        &self,
        scenario: Scenario,
        nodes: &[&Node],
        seconds: u64,
    ) -> anyhow::Result<Vec<Outcome>> {
        let connections = self.options.connections / nodes.len();
        let runs = nodes
            .iter()
            .map(|node| {
                Wrk::spawn(
                    self.script(scenario),
                    &self.url(scenario, node),
                    self.options.threads,
                    connections,
                    seconds,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        runs.into_iter().map(Wrk::finish).collect()
    }

    /// CPU time used so far by what serves `scenario`: the nodes, or for the baseline this
    /// process (whose other threads sleep while wrk runs).
    fn cpu(&self, scenario: Scenario, nodes: &[&Node]) -> anyhow::Result<Duration> {
        if scenario.in_process() {
            return node::cpu_of("self");
        }
        nodes.iter().map(|node| node.cpu()).sum()
    }

    /// A 1 s warm-up, then the measured run.
    fn measure(&self, label: &str, scenario: Scenario, nodes: &[&Node]) -> anyhow::Result<Row> {
        let warmup = self.drive(scenario, nodes, WARMUP_SECONDS)?;
        let load = load_average();
        let store_nodes = if scenario.in_process() {
            &[][..]
        } else {
            nodes
        };
        let before = self.http.all_commits(store_nodes);
        let cpu_before = self.cpu(scenario, nodes)?;
        let measured = self.drive(scenario, nodes, self.options.seconds)?;
        let cpu_after = self.cpu(scenario, nodes)?;
        let after = self.http.all_commits(store_nodes);
        let mut row = Row::new(
            label.to_owned(),
            scenario.counts_flows(),
            &measured,
            &warmup,
            load,
        );
        row.is_baseline = matches!(scenario, Scenario::Baseline);
        let units = row.rate * self.options.seconds as f64;
        if units > 0.0 {
            row.cpu_per_unit = Some(cpu_after.saturating_sub(cpu_before).div_f64(units));
        }
        if let (Some(before), Some(after)) = (before, after) {
            let commits = after.1 - before.1;
            if commits > 0.0 {
                row.writes_per_commit = Some((after.0 - before.0) / commits);
            }
        }
        println!(
            "  {label}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms{}",
            row.rate,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            if row.failures() > 0 {
                format!(", {} FAILURES", row.failures())
            } else {
                String::new()
            }
        );
        Ok(row)
    }

    /// `perf record -g` on bankgate during an extra, unmeasured token run; prints the top symbols.
    fn profile(&self, node: &Node) -> anyhow::Result<()> {
        let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bankgate-perf.data");
        let seconds = self.options.seconds;
        let mut perf = Command::new("perf")
            .args(["record", "-g", "-o"])
            .arg(&data)
            .args([
                "-p",
                &node.pid().to_string(),
                "--",
                "sleep",
                &seconds.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start perf record")?;
        let load = self.drive(Scenario::Token, &[node], seconds);
        let recorded = perf.wait().context("perf record did not finish")?;
        load?;
        if !recorded.success() {
            let mut message = String::new();
            if let Some(mut stderr) = perf.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut message);
            }
            bail!("perf record failed ({recorded}): {message}");
        }
        println!(
            "\nperf profile of bankgate during an extra (b) GenerateAuthorizeToken run (self time):"
        );
        for (title, sort, limit) in [
            ("by binary", "dso", "1"),
            ("by symbol, over 1%", "dso,symbol", "1"),
        ] {
            let report = Command::new("perf")
                .args(["report", "-i"])
                .arg(&data)
                .args(["--no-children", "-g", "none", "--stdio"])
                .args(["--percent-limit", limit, "--sort", sort])
                .stderr(Stdio::null())
                .output()
                .context("cannot run perf report")?;
            println!("{title}:");
            for line in String::from_utf8_lossy(&report.stdout)
                .lines()
                .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            {
                // Generic Rust symbols run to hundreds of characters.
                let line: String = line.chars().take(150).collect();
                println!("  {}", line.trim_end());
            }
        }
        println!(
            "full profile: perf report -i {} (kept until the next --perf run)",
            data.display()
        );
        Ok(())
    }
}

fn bench(
    options: &Options,
    baseline: &Baseline,
    database: &Database,
    dir: &Path,
) -> anyhow::Result<bool> {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "bankgate HTTP bench: wrk -t{} -c{} (--latency, --timeout 10s), {} s warm-up + {} s per run, \
         {cpus} CPUs",
        options.threads, options.connections, WARMUP_SECONDS, options.seconds
    );
    println!(
        "database: {}; {} node(s)",
        database.describe(),
        options.nodes
    );
    println!("at start: {}", uptime());

    if options.prefill > 0 {
        let started = Instant::now();
        database.prefill(baseline.runtime(), options.prefill)?;
        println!(
            "prefill: {} rows each of tokens, LoginIds and sessions in {:.1} s",
            options.prefill,
            started.elapsed().as_secs_f64()
        );
    }

    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    let mut nodes = Vec::new();
    for index in 0..options.nodes {
        nodes.push(Node::start(&database.url(), &admin_token, dir, index + 1)?);
    }
    let http = Http {
        runtime: baseline.runtime(),
        client: {
            bankgate_client::install_tls_provider();
            reqwest::Client::builder()
        }
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?,
        admin_token,
    };
    for node in &nodes {
        http.wait_ready(node)?;
    }
    // A moment for start-up work (the first purge) to settle before memory is read.
    std::thread::sleep(Duration::from_millis(500));
    let idle = nodes
        .iter()
        .map(Node::memory)
        .collect::<anyhow::Result<Vec<_>>>()?;

    let Some(first) = nodes.first() else {
        bail!("no node started");
    };
    let login_id = http.create_login(first)?;
    for node in &nodes {
        http.preflight(node, &login_id)?;
    }
    let scripts = Scripts::write(
        dir,
        &Api {
            customer_id: toolbox::CUSTOMER_ID,
            secret_key: toolbox::SECRET_KEY,
            login_id: &login_id,
            baseline_body: baseline::BODY,
            floor_base: floor::BASE,
        },
    )?;
    let bench = Bench {
        options,
        http,
        scripts,
        baseline: baseline.address,
    };

    let all: Vec<&Node> = nodes.iter().collect();
    let mut rows = Vec::new();
    println!();
    rows.push(bench.measure("(a) baseline, before", Scenario::Baseline, &[first])?);
    if options.scenario.token() {
        rows.push(bench.measure("(a′) durable floor: token", Scenario::Floor, &[first])?);
    }
    if options.scenario.flow() {
        rows.push(bench.measure("(a′) durable floor: flow", Scenario::FloorFlow, &[first])?);
    }
    for (wanted, scenario, name) in [
        (
            options.scenario.token(),
            Scenario::Token,
            "(b) GenerateAuthorizeToken",
        ),
        (
            options.scenario.flow(),
            Scenario::Flow,
            "(c) flow: token + Authorize",
        ),
    ] {
        if !wanted {
            continue;
        }
        if all.len() == 1 {
            rows.push(bench.measure(name, scenario, &all)?);
        } else {
            // The question several nodes answer: do they serve more together than one alone?
            rows.push(bench.measure(&format!("{name}, 1 node"), scenario, &[first])?);
            rows.push(bench.measure(&format!("{name}, {} nodes", all.len()), scenario, &all)?);
        }
    }
    // How much the SQLite files grew during a live scenario (the WAL grows while checkpoints
    // fall behind the writes, so this is an upper bound of what the scenario wrote).
    let grown = |label: &str, before: &mut Option<u64>| {
        let now = database.sqlite_bytes();
        if let (Some(was), Some(now)) = (*before, now) {
            println!(
                "  SQLite database + WAL after {label}: {} (+{})",
                mib(now / 1024),
                mib(now.saturating_sub(was) / 1024)
            );
        }
        *before = now;
    };
    let mut size = database.sqlite_bytes();
    if options.scenario.live() {
        // The webhook sender must not slow the API: the same live flow without a webhook, with
        // one whose receiver answers 200 at once (the cost of queueing callbacks), and with one
        // whose receiver accepts connections and never answers (every delivery hangs until the
        // sender's 10 s timeout), and with one that answers 500 at once (every attempt fails
        // and is recorded as such): (e), (f) and (g) should not differ.
        rows.push(bench.measure(
            "(d) live flow: token + live Authorize, no webhook",
            Scenario::Live,
            &[first],
        )?);
        grown("(d)", &mut size);
        bench.http.set_webhook(
            first,
            &format!("http://{}{}", baseline.address, baseline::HOOK_PATH),
        )?;
        rows.push(bench.measure(
            "(e) live flow, webhook receiver answering 200",
            Scenario::Live,
            &[first],
        )?);
        grown("(e)", &mut size);
        let receiver = hanging_receiver()?;
        bench
            .http
            .set_webhook(first, &format!("http://{receiver}/hook"))?;
        rows.push(bench.measure(
            "(f) live flow, webhook receiver that never answers",
            Scenario::Live,
            &[first],
        )?);
        grown("(f)", &mut size);
        bench.http.set_webhook(
            first,
            &format!("http://{}{}", baseline.address, baseline::HOOK_500_PATH),
        )?;
        rows.push(bench.measure(
            "(g) live flow, webhook receiver answering 500",
            Scenario::Live,
            &[first],
        )?);
        grown("(g)", &mut size);
    }
    rows.push(bench.measure("(a) baseline, after", Scenario::Baseline, &[first])?);
    let peak = nodes
        .iter()
        .map(Node::memory)
        .collect::<anyhow::Result<Vec<_>>>()?;

    println!();
    report::print(&rows);
    println!();
    for (index, (idle, peak)) in idle.iter().zip(&peak).enumerate() {
        println!(
            "memory of node {}: {} resident when idle after start (VmRSS), {} at peak under load (VmHWM)",
            index + 1,
            mib(idle.rss_kib),
            mib(peak.peak_kib)
        );
    }
    if options.perf {
        bench.profile(first)?;
    }
    println!("at end: {}", uptime());

    for node in nodes {
        node.stop()?;
    }
    Ok(rows.iter().all(|row| row.failures() == 0))
}
