//! bankgate under test: the real binary, started as users start it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Built by cargo in the bench profile (optimised), like `cargo build --release`.
const BIN: &str = env!("CARGO_BIN_EXE_bankgate");
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// One `bankgate serve` process.
pub struct Node {
    child: Child,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Node {
    /// Starts `bankgate --database DATABASE serve` on loopback ports the kernel picks (the
    /// process prints them), logging to `dir/node-INDEX.log`.
    pub fn start(
        database: &str,
        admin_token: &str,
        dir: &Path,
        index: usize,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("node-{index}.log"));
        let mut command = Command::new(BIN);
        // Only what the bench sets: a BANKGATE_* variable of the caller's shell would change
        // what is measured.
        for (var, _) in std::env::vars() {
            if var.starts_with("BANKGATE_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .current_dir(dir)
            .env("BANKGATE_ADMIN_TOKEN", admin_token)
            .args(["--database", database, "serve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).with_context(|| format!("cannot create {}", log.display()))?)
            .spawn()
            .with_context(|| format!("cannot start {BIN}"))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("no stdout from bankgate");
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        // Reads the two address lines, then keeps draining so the process never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut api, mut admin) = (None, None);
        while api.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = receiver.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "bankgate did not print its addresses within {START_TIMEOUT:?}; its log:\n{}",
                    tail(&log)
                );
            };
            if let Some(address) = line.strip_prefix("bankgate listening on http://") {
                api = Some(address.parse().context("bad API address")?);
            } else if let Some(address) = line.strip_prefix("bankgate admin API on http://") {
                admin = Some(address.parse().context("bad admin address")?);
            }
        }
        let (Some(api), Some(admin)) = (api, admin) else {
            bail!("unreachable: both addresses were read");
        };
        Ok(Self {
            child,
            api,
            admin,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time this process has used so far (user + system).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(&self.pid().to_string())
    }

    /// VmRSS (now) and VmHWM (the peak so far) from /proc.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in {path}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// SIGTERM (a graceful stop, as an operator's), then SIGKILL if it hangs.
    pub fn stop(mut self) -> anyhow::Result<()> {
        // `kill(1)`: the workspace forbids the unsafe code a direct kill(2) would need.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "bankgate exited with {status}; its log:\n{}",
                        self.log_tail()
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("bankgate did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed it")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Already reaped after `stop`; otherwise an error path: never leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU time (user + system) of process `pid` ("self" for this one), from /proc/PID/stat.
pub fn cpu_of(pid: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and
    // stime are the 12th and 13th, in clock ticks (100 a second on Linux).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("no command name in {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("no field {i} in {path}"))
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}
