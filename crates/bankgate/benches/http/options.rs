//! The bench's options: environment variables first, then the command line, which wins.

use anyhow::{Context, bail};

pub const USAGE: &str = "\
usage: cargo bench -p bankgate --bench http [-- OPTIONS]
  --seconds S        measured seconds per wrk run, after a 1 s warm-up (BENCH_SECONDS, default 10)
  --connections N    open connections, shared by the nodes (BENCH_CONNECTIONS, default 32)
  --threads T        wrk threads per wrk process (BENCH_THREADS, default 2)
  --prefill N        rows of each kind put in the store before it serves (BENCH_PREFILL, default 0)
  --nodes K          bankgate processes on one PostgreSQL database (BENCH_NODES, default 1)
  --scenario NAME    baseline, token, flow, live or all (BENCH_SCENARIO, default all)
  --perf             profile bankgate with `perf record` during an extra token run (BENCH_PERF=1)
BENCH_POSTGRES_URL=postgres://… runs bankgate on PostgreSQL, in a schema created for the run.";

/// Which bankgate scenarios run; the baseline always does, as the reference of the ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Baseline,
    Token,
    Flow,
    Live,
    All,
}

impl Choice {
    pub fn token(self) -> bool {
        matches!(self, Self::Token | Self::All)
    }

    pub fn flow(self) -> bool {
        matches!(self, Self::Flow | Self::All)
    }

    pub fn live(self) -> bool {
        matches!(self, Self::Live | Self::All)
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub threads: usize,
    pub prefill: u64,
    pub nodes: usize,
    pub scenario: Choice,
    pub perf: bool,
    pub postgres_url: Option<String>,
}

impl Options {
    /// Reads the environment, then the command line; `None` when help was asked for.
    pub fn load() -> anyhow::Result<Option<Self>> {
        let mut options = Self {
            seconds: 10,
            connections: 32,
            threads: 2,
            prefill: 0,
            nodes: 1,
            scenario: Choice::All,
            perf: false,
            postgres_url: None,
        };
        for (var, flag) in [
            ("BENCH_SECONDS", "--seconds"),
            ("BENCH_CONNECTIONS", "--connections"),
            ("BENCH_THREADS", "--threads"),
            ("BENCH_PREFILL", "--prefill"),
            ("BENCH_NODES", "--nodes"),
            ("BENCH_SCENARIO", "--scenario"),
        ] {
            if let Ok(value) = std::env::var(var)
                && !value.trim().is_empty()
            {
                options.set(flag, value.trim(), var)?;
            }
        }
        if let Ok(value) = std::env::var("BENCH_PERF") {
            options.perf = matches!(value.trim(), "1" | "true" | "yes");
        }
        if let Ok(url) = std::env::var("BENCH_POSTGRES_URL")
            && !url.trim().is_empty()
        {
            options.postgres_url = Some(url.trim().to_owned());
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
                "--perf" => options.perf = true,
                "--seconds" | "--connections" | "--threads" | "--prefill" | "--nodes"
                | "--scenario" => {
                    let value = inline
                        .or_else(|| args.next().filter(|value| !value.starts_with("--")))
                        .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
                    options.set(&flag, &value, &flag)?;
                }
                other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
                other => eprintln!("note: ignoring {other:?}: this bench has no filters"),
            }
        }
        options.check()?;
        Ok(Some(options))
    }

    fn set(&mut self, flag: &str, value: &str, source: &str) -> anyhow::Result<()> {
        match flag {
            "--seconds" => self.seconds = positive(value, source)?,
            "--connections" => self.connections = usize::try_from(positive(value, source)?)?,
            "--threads" => self.threads = usize::try_from(positive(value, source)?)?,
            "--nodes" => self.nodes = usize::try_from(positive(value, source)?)?,
            "--prefill" => {
                self.prefill = value
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{source}: {value:?} is not a number of rows"))?;
            }
            "--scenario" => {
                self.scenario = match value {
                    "baseline" => Choice::Baseline,
                    "token" => Choice::Token,
                    "flow" => Choice::Flow,
                    "live" => Choice::Live,
                    "all" => Choice::All,
                    _ => bail!(
                        "{source}: expected baseline, token, flow, live or all, got {value:?}"
                    ),
                }
            }
            _ => bail!("unknown option {flag}"),
        }
        Ok(())
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.nodes > 1 && self.postgres_url.is_none() {
            bail!(
                "--nodes {} needs BENCH_POSTGRES_URL: several nodes share one PostgreSQL database",
                self.nodes
            );
        }
        if self.connections < self.nodes {
            bail!(
                "--connections {} is fewer than one per node (--nodes {})",
                self.connections,
                self.nodes
            );
        }
        Ok(())
    }
}

/// Accepts `1_000_000` as well as `1000000`.
fn positive(text: &str, source: &str) -> anyhow::Result<u64> {
    match text.replace('_', "").parse::<u64>() {
        Ok(value) if value > 0 => Ok(value),
        _ => bail!("{source}: expected a whole number of at least 1, got {text:?}"),
    }
}
