//! The figures of a run, and how they are printed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::load::Outcome;

/// One measured scenario, summed over the wrk processes that drove it (one per node).
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub is_baseline: bool,
    pub requests: u64,
    /// Requests per second, or flows per second.
    pub rate: f64,
    /// The worst of the wrk processes' percentiles: they cannot be merged exactly.
    pub p50: Duration,
    pub p99: Duration,
    pub non_2xx: u64,
    pub socket_errors: u64,
    /// Including the warm-up's.
    pub statuses: BTreeMap<u16, u64>,
    pub samples: Vec<String>,
    /// The 1-minute load average when the run started.
    pub load: f64,
    /// Writes per commit over the run, from bankgate's metrics.
    pub writes_per_commit: Option<f64>,
    /// CPU time the server used per request (per flow for the flows), over the measured run:
    /// unlike the rates, barely moved by other work on the machine.
    pub cpu_per_unit: Option<Duration>,
}

impl Row {
    /// Sums the measured outcomes; the warm-up's only count towards failures.
    pub fn new(
        label: String,
        per_flow: bool,
        measured: &[Outcome],
        warmup: &[Outcome],
        load: f64,
    ) -> Self {
        let mut statuses = BTreeMap::new();
        let mut samples = Vec::new();
        for outcome in measured.iter().chain(warmup) {
            for (status, count) in &outcome.statuses {
                *statuses.entry(*status).or_default() += count;
            }
            samples.extend(outcome.samples.iter().cloned());
        }
        Self {
            label,
            is_baseline: false,
            requests: measured.iter().map(|o| o.requests).sum(),
            rate: measured
                .iter()
                .map(|o| o.per_second(if per_flow { o.flows } else { o.requests }))
                .sum(),
            p50: measured.iter().map(|o| o.p50).max().unwrap_or_default(),
            p99: measured.iter().map(|o| o.p99).max().unwrap_or_default(),
            non_2xx: measured.iter().chain(warmup).map(Outcome::non_2xx).sum(),
            socket_errors: measured.iter().chain(warmup).map(|o| o.socket_errors).sum(),
            statuses,
            samples,
            load,
            writes_per_commit: None,
            cpu_per_unit: None,
        }
    }

    pub fn failures(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// The baseline's figures that ratios divide by: the mean of its runs (before and after).
struct Reference {
    rate: f64,
    p50: f64,
    p99: f64,
    cpu: Option<f64>,
}

impl Reference {
    fn of(rows: &[Row]) -> Option<Self> {
        let baselines: Vec<&Row> = rows.iter().filter(|row| row.is_baseline).collect();
        if baselines.is_empty() {
            return None;
        }
        let n = baselines.len() as f64;
        let mean = |f: &dyn Fn(&Row) -> f64| baselines.iter().map(|row| f(row)).sum::<f64>() / n;
        Some(Self {
            rate: mean(&|row| row.rate),
            p50: mean(&|row| row.p50.as_secs_f64()),
            p99: mean(&|row| row.p99.as_secs_f64()),
            cpu: baselines
                .iter()
                .map(|row| row.cpu_per_unit.map(|cpu| cpu.as_secs_f64()))
                .sum::<Option<f64>>()
                .map(|sum| sum / n),
        })
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

fn ratio(value: f64, base: f64) -> String {
    if base > 0.0 && value.is_finite() && value > 0.0 {
        format!("{:.3}", value / base)
    } else {
        "n/a".to_owned()
    }
}

pub fn print(rows: &[Row]) {
    let reference = Reference::of(rows);
    println!(
        "{:<40} {:>9} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>8} {:>5} {:>8} {:>6}",
        "scenario",
        "requests",
        "rate/s",
        "p50 ms",
        "p99 ms",
        "rate×",
        "p50×",
        "p99×",
        "load",
        "failures",
        "w/c",
        "CPU µs",
        "CPU×"
    );
    for row in rows {
        let (rate_x, p50_x, p99_x) = reference.as_ref().map_or_else(
            || ("n/a".to_owned(), "n/a".to_owned(), "n/a".to_owned()),
            |base| {
                (
                    ratio(row.rate, base.rate),
                    ratio(row.p50.as_secs_f64(), base.p50),
                    ratio(row.p99.as_secs_f64(), base.p99),
                )
            },
        );
        println!(
            "{:<40} {:>9} {:>10.0} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6.2} {:>8} {:>5} {:>8} {:>6}",
            row.label,
            row.requests,
            row.rate,
            ms(row.p50),
            ms(row.p99),
            rate_x,
            p50_x,
            p99_x,
            row.load,
            row.failures(),
            row.writes_per_commit
                .map_or_else(|| "-".to_owned(), |w| format!("{w:.1}")),
            row.cpu_per_unit.map_or_else(
                || "-".to_owned(),
                |cpu| format!("{:.1}", cpu.as_secs_f64() * 1e6)
            ),
            match (
                row.cpu_per_unit,
                reference.as_ref().and_then(|base| base.cpu)
            ) {
                (Some(cpu), Some(base)) => ratio(cpu.as_secs_f64(), base),
                _ => "n/a".to_owned(),
            },
        );
    }
    println!(
        "rate/s: requests per second, or flows per second for the flow (one flow = \
         GenerateAuthorizeToken + Authorize, counted per Authorize 200; its p50/p99 are per request).\n\
         ×: over the baseline (mean of its runs): rate× < 1 and p50×, p99× > 1 are slower.\n\
         load: 1-minute load average when the run started. w/c: store writes per commit (group commit).\n\
         CPU µs: the server's CPU time (user + system) per request, or per flow; CPU×: over the \
         baseline's per request (> 1 costs more). PostgreSQL's own CPU is not included.\n\
         Several nodes: rates summed, p50/p99 the worse node's."
    );
    for row in rows.iter().filter(|row| row.failures() > 0) {
        let statuses: Vec<String> = row
            .statuses
            .iter()
            .map(|(status, count)| format!("{status}×{count}"))
            .collect();
        println!(
            "FAILURES in {}: {} non-2xx, {} socket errors or timeouts; answers by status: {}",
            row.label,
            row.non_2xx,
            row.socket_errors,
            statuses.join(" ")
        );
        // Each wrk thread keeps its first three; a handful tells what went wrong.
        for sample in row.samples.iter().take(6) {
            println!("  {sample}");
        }
    }
}
