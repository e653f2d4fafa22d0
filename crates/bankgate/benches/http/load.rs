//! The load: `wrk` processes driven by Lua scripts the bench writes, and what they report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Requests slower than this count as errors; wrk's default (2 s) would silently drop slow
/// requests from the latency distribution.
const TIMEOUT: &str = "10s";
/// The prefix of the one line each script's `done()` prints for the bench.
const RESULT: &str = "BENCH-RESULT ";
const SAMPLE: &str = "BENCH-SAMPLE ";

/// Checks that wrk is installed, with the fix when it is not.
pub fn check_wrk() -> anyhow::Result<()> {
    match Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!("wrk is not installed: `apt-get install wrk` (Debian, Ubuntu), then run again")
        }
        Err(error) => Err(error).context("cannot run wrk"),
    }
}

/// Counting answers by status and printing the result line: shared by every script.
const COMMON: &str = r#"
-- Counts answers by status, keeps a few bodies of non-2xx answers, and prints one line the
-- bench parses. Written by crates/bankgate/benches/http.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}
samples = {}
flows = 0

local function count(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  if (status < 200 or status > 299) and #samples < 3 then
    local text = string.gsub(body or "", "%s+", " ")
    samples[#samples + 1] = status .. " " .. string.sub(text, 1, 300)
  end
end

function done(summary, latency, requests)
  local total, all_flows, kept, parts = {}, 0, {}, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
    all_flows = all_flows + thread:get("flows")
    for _, sample in ipairs(thread:get("samples")) do
      kept[#kept + 1] = sample
    end
  end
  for status, n in pairs(total) do
    parts[#parts + 1] = status .. ":" .. n
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d flows=%d connect=%d read=%d write=%d timeout=%d statuses=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    all_flows, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
  for _, sample in ipairs(kept) do
    io.write("BENCH-SAMPLE " .. sample .. "\n")
  end
end
"#;

/// The scripts, written once per run.
pub struct Scripts {
    pub baseline: PathBuf,
    pub token: PathBuf,
    pub flow: PathBuf,
    pub live: PathBuf,
    /// The flow against the durable floor's two endpoints.
    pub floor_flow: PathBuf,
}

/// The sandbox user a live authorization connects without MFA, so each completes in one call.
const LIVE_BODY: &str = r#"{"Institution":"FlinksCapital","Username":"greatday_nomfa","Password":"Everyday","MostRecentCached":false,"Save":false}"#;

/// What the scripts need to know about bankgate.
pub struct Api<'a> {
    pub customer_id: &'a str,
    pub secret_key: &'a str,
    pub login_id: &'a str,
    pub baseline_body: &'a str,
    /// Where the durable floor's GenerateAuthorizeToken and Authorize are, on the baseline.
    pub floor_base: &'a str,
}

impl Scripts {
    pub fn write(dir: &Path, api: &Api<'_>) -> anyhow::Result<Self> {
        let base = format!("/v3/{}/BankingServices", api.customer_id);
        let baseline = format!(
            r#"{COMMON}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}

function response(status, headers, body)
  count(status, body)
end
"#,
            body = lua_string(api.baseline_body),
        );
        let token = format!(
            r#"{COMMON}
wrk.method = "POST"
wrk.headers["flinks-auth-key"] = {secret}
wrk.headers["Content-Type"] = "application/json"

function response(status, headers, body)
  count(status, body)
end
"#,
            secret = lua_string(api.secret_key),
        );
        let authorize_body = format!(
            r#"{{"LoginId":"{}","MostRecentCached":true}}"#,
            api.login_id
        );
        // Token, then Authorize with that token and `authorize_body`: tokens from
        // GenerateAuthorizeToken answers, not yet spent, go out whenever this thread holds one.
        let flow_with = |base: &str, authorize_body: &str| {
            format!(
                r#"{COMMON}
local queue = {{}}
local generate

function init(args)
  generate = wrk.format("POST", {generate_path}, {{["flinks-auth-key"] = {secret}, ["Content-Type"] = "application/json"}})
end

function request()
  local token = table.remove(queue)
  if token == nil then
    return generate
  end
  return wrk.format("POST", {authorize_path}, {{["flinks-auth-key"] = token, ["Content-Type"] = "application/json"}}, {authorize_body})
end

function response(status, headers, body)
  count(status, body)
  if status == 200 then
    local token = string.match(body, '"Token":"([%x%-]+)"')
    if token then
      table.insert(queue, token)
    elseif string.find(body, '"RequestId"', 1, true) then
      flows = flows + 1
    end
  end
end
"#,
                generate_path = lua_string(&format!("{base}/GenerateAuthorizeToken")),
                authorize_path = lua_string(&format!("{base}/Authorize")),
                secret = lua_string(api.secret_key),
                authorize_body = lua_string(authorize_body),
            )
        };
        let flow = flow_with(&base, &authorize_body);
        let live = flow_with(&base, LIVE_BODY);
        let floor_flow = flow_with(api.floor_base, &authorize_body);
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        };
        Ok(Self {
            baseline: write("baseline.lua", &baseline)?,
            token: write("token.lua", &token)?,
            flow: write("flow.lua", &flow)?,
            live: write("live.lua", &live)?,
            floor_flow: write("floor_flow.lua", &floor_flow)?,
        })
    }
}

/// A Lua string literal; the values are ids, paths and JSON, escaped anyway.
fn lua_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One wrk process under way.
pub struct Wrk {
    child: Child,
    what: String,
}

impl Wrk {
    /// `wrk -tT -cC -dSs --latency --timeout 10s -s SCRIPT URL`.
    pub fn spawn(
        script: &Path,
        url: &str,
        threads: usize,
        connections: usize,
        seconds: u64,
    ) -> anyhow::Result<Self> {
        // wrk refuses fewer connections than threads.
        let threads = threads.min(connections).max(1);
        let child = Command::new("wrk")
            .arg(format!("-t{threads}"))
            .arg(format!("-c{connections}"))
            .arg(format!("-d{seconds}s"))
            .args(["--latency", "--timeout", TIMEOUT, "-s"])
            .arg(script)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start wrk")?;
        Ok(Self {
            child,
            what: format!("wrk -t{threads} -c{connections} -d{seconds}s {url}"),
        })
    }

    pub fn finish(self) -> anyhow::Result<Outcome> {
        let output = self
            .child
            .wait_with_output()
            .with_context(|| format!("{} did not finish", self.what))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!(
                "{} failed ({}):\n{stdout}{stderr}",
                self.what,
                output.status
            );
        }
        Outcome::parse(&stdout)
            .with_context(|| format!("cannot read the result of {}:\n{stdout}{stderr}", self.what))
    }
}

/// What one wrk process saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    pub duration: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Authorize answers of 200 in the flow script.
    pub flows: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub samples: Vec<String>,
}

impl Outcome {
    fn parse(stdout: &str) -> anyhow::Result<Self> {
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix(RESULT))
            .context("no result line")?;
        let mut fields = BTreeMap::new();
        for pair in line.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("bad field {pair:?}"))?;
            fields.insert(key, value);
        }
        let number = |key: &str| -> anyhow::Result<u64> {
            let value = fields.get(key).with_context(|| format!("no {key}"))?;
            value
                .parse()
                .with_context(|| format!("{key}={value} is not a whole number"))
        };
        let mut statuses = BTreeMap::new();
        for part in fields
            .get("statuses")
            .copied()
            .unwrap_or_default()
            .split(',')
            .filter(|part| !part.is_empty())
        {
            let (status, count) = part
                .split_once(':')
                .with_context(|| format!("bad status count {part:?}"))?;
            statuses.insert(status.parse()?, count.parse()?);
        }
        Ok(Self {
            requests: number("requests")?,
            duration: Duration::from_micros(number("duration_us")?),
            p50: Duration::from_micros(number("p50_us")?),
            p99: Duration::from_micros(number("p99_us")?),
            flows: number("flows")?,
            socket_errors: number("connect")?
                + number("read")?
                + number("write")?
                + number("timeout")?,
            statuses,
            samples: stdout
                .lines()
                .filter_map(|line| line.strip_prefix(SAMPLE))
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Answers outside 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn per_second(&self, count: u64) -> f64 {
        let seconds = self.duration.as_secs_f64();
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    }
}
