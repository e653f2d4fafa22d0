//! Command-line interface. Every server setting has a flag, a `BANKGATE_*` variable and a key
//! in the config file (see `config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bankgate_core::model::InstanceKind;
use bankgate_core::{CustomerId, InstanceName, LoginId};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize, Serializer};

pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|error| format!("{error} (examples: 30m, 90s, 1h)"))
}

/// A listen address: `HOST:PORT` with an IP address, or `localhost:PORT` (loopback, IPv4).
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    if let Some(port) = value.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| {
                format!("{port:?} is not a port (expected localhost:PORT, e.g. localhost:8080)")
            });
    }
    value.parse().map_err(|error| {
        format!("{error} (expected IP:PORT or localhost:PORT, e.g. 127.0.0.1:8080)")
    })
}

/// A `--log` filter: what tracing takes, but a bare word must be a level (a bare `verbose`
/// would silently mean "everything from a module named verbose").
pub fn parse_log_filter(value: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let help = "use a level (trace, debug, info, warn, error, off) or TARGET=LEVEL pairs, \
                comma-separated, e.g. info,bankgate_server=debug";
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[', ':'])
            && !LEVELS.contains(&directive.to_ascii_lowercase().as_str())
        {
            return Err(format!("{directive:?} is not a log level; {help}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|error| format!("{value:?}: {error}; {help}"))
}

/// bankgate: the Flinks authorization API, served locally or for real.
///
/// Every server setting can come from a flag, a `BANKGATE_*` variable or the `--config` file;
/// a flag beats the environment, which beats the file, which beats the default.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// A TOML file of settings (keys as the flags, with underscores: `admin_listen = "..."`).
    #[arg(long, env = "BANKGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub settings: GlobalArgs,

    /// Print operator command results as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

// The flags of `config::Settings`: each field is named as its setting (the flag with
// underscores), so the flags given are laid over the file's keys as they are (`Settings::resolve`).
// Unset flags are `None` and not serialized; their defaults live in `Settings` alone.

/// The settings every command reads, as given by flags or the environment.
#[derive(Debug, Default, Args, Serialize)]
pub struct GlobalArgs {
    /// The database: sqlite://PATH (created if missing), or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB (also postgresql://), which several bankgate
    /// nodes may share. Default: sqlite://bankgate.db.
    // Read as text and parsed in `config`, so an error never echoes a password.
    #[arg(long, env = "BANKGATE_DATABASE", hide_env_values = true, global = true)]
    pub database: Option<String>,

    /// PostgreSQL only: connections each node keeps open at most (one is its writer's).
    /// Default: 16.
    #[arg(long, env = "BANKGATE_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<usize>,

    /// PostgreSQL only: how long to wait for a connection (opening one, or a free one in the
    /// pool) before answering 503. Default: 5s.
    #[arg(long, env = "BANKGATE_DB_CONNECT_TIMEOUT", value_parser = parse_duration, global = true)]
    #[serde(serialize_with = "human_duration")]
    pub db_connect_timeout: Option<Duration>,

    /// PostgreSQL only: the longest one statement may run (the server's statement_timeout);
    /// past it, and past a silent connection, requests answer 503. Default: 10s.
    #[arg(long, env = "BANKGATE_DB_STATEMENT_TIMEOUT", value_parser = parse_duration, global = true)]
    #[serde(serialize_with = "human_duration")]
    pub db_statement_timeout: Option<Duration>,

    /// Log format: human-readable lines or one JSON object per line. Default: human.
    #[arg(long, env = "BANKGATE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// Which log lines to show: a level (trace, debug, info, warn, error, off) or TARGET=LEVEL
    /// pairs, comma-separated (e.g. info,bankgate_server=debug). Colours follow the terminal
    /// and NO_COLOR. Default: info.
    #[arg(long, env = "BANKGATE_LOG", value_parser = parse_log_filter, global = true)]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Flinks API (and seed the public toolbox instance on first start).
    Serve(ServeArgs),
    /// Create, list and reset instances; read and move a sandbox instance's clock.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Create, list and rotate the keys of customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Create sandbox LoginIds.
    #[command(subcommand)]
    Login(LoginCommand),
    /// List and lift brute-force lockouts (too many wrong secret keys or bank passwords).
    #[command(subcommand)]
    Lockouts(LockoutsCommand),
    /// Make the next /Authorize calls of a sandbox LoginId, or of a sandbox user, fail on
    /// purpose (RETRY_LATER, DISABLED_LOGIN, INVALID_LOGIN, MFA, AGGREGATION_ERROR,
    /// OPERATION_PENDING); list and clear those rules.
    #[command(subcommand)]
    Failures(FailuresCommand),
    /// Make the next calls of an endpoint of a sandbox instance answer a 5xx or stall; list and
    /// clear those rules.
    #[command(subcommand)]
    Faults(FaultsCommand),
    /// Run the Flinks troubleshooting checklist against a server (bankgate or Flinks itself):
    /// URL shape, the secret key and its header, a token accepted once and refused the second
    /// time, the x-api-key, a LoginId. Exit code 0 only when every check passes.
    Doctor(DoctorArgs),
    /// Print a running server's request journal (its admin API): one line a request, and for
    /// each refusal its Hint and the credentials it carried (as fingerprints).
    Requests(RequestsArgs),
    /// Print a shell completion script, e.g. `bankgate completions bash >
    /// ~/.local/share/bash-completion/completions/bankgate`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Tools for webhook receivers.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// A receiver for developers: verifies each callback's signature, prints it (type,
    /// RequestId, LoginId, signature valid or not) and optionally forwards it to your app.
    /// Answers 401 to a bad signature, else 200 (or, when forwarding, your app's answer).
    Listen(ListenArgs),
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The webhook's secret (as `bankgate instance webhook` printed it). A flag shows in
    /// `ps`: prefer the variable.
    #[arg(long, env = "BANKGATE_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: std::net::SocketAddr,
    /// Also POST each callback (same body and headers) to this URL.
    #[arg(long)]
    pub forward: Option<String>,
}

/// What `requests` reads and how.
#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// The server's admin API (its --admin-listen address).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub admin_url: String,
    /// The admin token the server was started with.
    #[arg(long, env = "BANKGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Only this instance's requests.
    #[arg(long)]
    pub instance: Option<String>,
    /// Keep printing new requests as they arrive (Ctrl-C stops).
    #[arg(long, short)]
    pub follow: bool,
    /// Only this endpoint's requests (e.g. Authorize).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only answers with this HTTP status.
    #[arg(long)]
    pub status: Option<u16>,
    /// Only refusals with this Reason (e.g. authorize_token_used).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only requests about this RequestId.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only requests about this LoginId.
    #[arg(long)]
    pub login_id: Option<String>,
    /// Only requests at or after this time (RFC 3339, e.g. 2026-12-01T09:30:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// How many of the latest requests to print first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// What `doctor` checks: an integration's settings, as its app would use them.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The API's base URL: https://{instance}-api.private.fin.ag (a trailing
    /// /v3/{customerId}/BankingServices is allowed and checked).
    #[arg(long)]
    pub base_url: String,
    /// The customerId (a GUID).
    #[arg(long)]
    pub customer_id: String,
    /// The secret key (flinks-auth-key). A flag shows in `ps`: prefer the variable.
    #[arg(long, env = "BANKGATE_DOCTOR_SECRET_KEY", hide_env_values = true)]
    pub secret_key: String,
    /// The x-api-key, to check a data endpoint.
    #[arg(long, env = "BANKGATE_DOCTOR_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A LoginId of this customer, to check that cached /Authorize finds it (and to read its
    /// accounts summary with the x-api-key).
    #[arg(long)]
    pub login_id: Option<String>,
}

/// `serve`'s settings as given by flags or the environment.
#[derive(Debug, Default, Args, Serialize)]
pub struct ServeArgs {
    /// The address to listen on (API for every instance): IP:PORT or localhost:PORT; port 0
    /// picks a free one (the `bankgate listening on` line says which). Default: 127.0.0.1:8080.
    #[arg(long, env = "BANKGATE_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,

    /// Only the port of --listen (its host stays): `--port 9000` listens on 127.0.0.1:9000.
    #[arg(long, env = "BANKGATE_PORT")]
    pub port: Option<u16>,

    /// The admin API's address (health, readiness, metrics, /admin/...), as --listen. Keep it
    /// off the public network. Default: 127.0.0.1:8081.
    #[arg(long, env = "BANKGATE_ADMIN_LISTEN", value_parser = parse_listen)]
    pub admin_listen: Option<SocketAddr>,

    /// The token the admin API requires (`Authorization: Bearer ...`), at least 32 characters
    /// (`openssl rand -hex 32`), or `generate` to have one made and printed once at start.
    /// Without one, /admin/ refuses every call; health, readiness and metrics still answer.
    #[arg(long, env = "BANKGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A file holding the admin token (surrounding whitespace ignored), instead of
    /// --admin-token: the token then stays out of `ps` and the environment. Keep it readable
    /// by bankgate's user only (chmod 600).
    #[arg(long, env = "BANKGATE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Failed credential attempts from one client address on one target (a customer's secret
    /// key, or one bank username) within the failure window before that client gets
    /// TOO_MANY_REQUESTS on that target. 0 turns it off. Default: 10.
    #[arg(long, env = "BANKGATE_MAX_FAILURES_PER_CLIENT")]
    pub max_failures_per_client: Option<u32>,

    /// Failed attempts on one target, from any clients, within the failure window before the
    /// clients that failed on it themselves get TOO_MANY_REQUESTS for it (a client with no
    /// failures of its own is never refused). 0 turns it off. Default: 50.
    #[arg(long, env = "BANKGATE_MAX_FAILURES_PER_TARGET")]
    pub max_failures_per_target: Option<u32>,

    /// How far back failed attempts count. Default: 5m.
    #[arg(long, env = "BANKGATE_FAILURE_WINDOW", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub failure_window: Option<Duration>,

    /// How long a client or customer that reached its limit is refused (the Retry-After).
    /// Default: 5m.
    #[arg(long, env = "BANKGATE_FAILURE_LOCKOUT", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub failure_lockout: Option<Duration>,

    /// Count wrong passwords of the sandbox bank's (published) test users on sandbox instances
    /// too. Default: false, so testers trying refusals never lock themselves out; secret keys
    /// are limited everywhere.
    #[arg(long, env = "BANKGATE_LIMIT_SANDBOX_PASSWORDS", num_args = 0..=1, default_missing_value = "true")]
    pub limit_sandbox_passwords: Option<bool>,

    /// After Ctrl-C or SIGTERM, how long in-flight requests may take before bankgate stops
    /// anyway (a second signal stops it at once). Default: 30s.
    #[arg(long, env = "BANKGATE_SHUTDOWN_GRACE", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub shutdown_grace: Option<Duration>,

    /// How often expired tokens and sessions are purged. Default: 60s.
    #[arg(long, env = "BANKGATE_PURGE_INTERVAL", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub purge_interval: Option<Duration>,

    /// How long a request head may take to arrive, from its first byte (from the accept for a
    /// connection's first request); then the connection is closed. Both listeners.
    /// Default: 10s.
    #[arg(long, env = "BANKGATE_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub header_read_timeout: Option<Duration>,

    /// How long a kept-alive connection may sit idle after an answer before it is closed; keep
    /// it above the idle timeout of a load balancer or proxy that pools connections to bankgate.
    /// Both listeners. Default: 60s.
    #[arg(long, env = "BANKGATE_IDLE_TIMEOUT", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub idle_timeout: Option<Duration>,

    /// How long a client may take to send a whole request body, however it trickles in; past
    /// it the request is refused (400). Both listeners. Default: 30s.
    #[arg(long, env = "BANKGATE_BODY_READ_TIMEOUT", value_parser = parse_duration)]
    #[serde(serialize_with = "human_duration")]
    pub body_read_timeout: Option<Duration>,

    /// Connections the API listener keeps open at once; more clients wait in the kernel's
    /// queue until one closes (the admin listener has its own 64). Default: the open-file
    /// limit (`ulimit -n`) less 256, e.g. 768 under 1024.
    #[arg(long, env = "BANKGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// How many requests the request journal keeps per instance, in memory on this node
    /// (`GET /admin/requests`, `bankgate requests`). 0 turns it off. Default: 1000.
    #[arg(long, env = "BANKGATE_JOURNAL_SIZE")]
    pub journal_size: Option<usize>,
}

/// A duration flag as the config file writes it (`5m`), so the file's parser reads it back.
fn human_duration<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => s.serialize_str(&humantime::format_duration(*duration).to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create an instance with its own customers and credentials.
    Create {
        /// The instance name, the first label of its hosts ({name}-api.{domain}).
        name: InstanceName,
        /// sandbox (test data, FlinksCapital) or production.
        #[arg(long, default_value = "sandbox", value_parser = parse_kind)]
        kind: InstanceKind,
        /// How long an unused authorize token stays valid.
        #[arg(long, default_value = "30m", value_parser = parse_duration)]
        token_lifetime: Duration,
    },
    /// List instances.
    List,
    /// Read a sandbox instance's clock, move it forward, or put it back on real time.
    Clock {
        /// The instance.
        name: InstanceName,
        /// Move the clock forward by this much (moves add up), e.g. 30m.
        #[arg(long, value_parser = parse_duration, conflicts_with = "reset")]
        advance: Option<Duration>,
        /// Back to real time.
        #[arg(long)]
        reset: bool,
    },
    /// Put a sandbox instance back to its seeded state between test runs: every token,
    /// LoginId and session is gone; customers and their keys stay.
    Reset {
        /// The sandbox instance.
        name: InstanceName,
    },
    /// Show, set, rotate or disable the instance's webhook (KYC and GetAccountsDetail callbacks
    /// after each live authorization), list its deliveries or send one again. Without an
    /// option: show it (never its secret).
    Webhook {
        name: InstanceName,
        /// POST callbacks here (http or https; production: https, or http to localhost). The
        /// first URL prints the HMAC secret, this once; a later URL keeps the secret.
        #[arg(long, group = "webhook_action")]
        url: Option<String>,
        /// Make and print a new secret (this once); the next attempts are signed with it.
        #[arg(long, group = "webhook_action")]
        rotate_secret: bool,
        /// Stop sending callbacks.
        #[arg(long, group = "webhook_action")]
        disable: bool,
        /// List the latest callbacks: status, attempts, last answer, next attempt.
        #[arg(long, group = "webhook_action")]
        deliveries: bool,
        /// Send this delivery (its id, as listed) again now.
        #[arg(long, group = "webhook_action", value_name = "DELIVERY_ID")]
        replay: Option<String>,
    },
    /// Say whether the instance's Connect page requires an authorize token (the default).
    ConnectToken {
        name: InstanceName,
        /// `required` (the default) or `optional`: without a token the page serves the
        /// instance's only customer, or the one named by ?customerId=.
        #[arg(value_parser = ["required", "optional"])]
        setting: String,
    },
}

fn parse_kind(value: &str) -> Result<InstanceKind, String> {
    value.parse()
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer; prints its customerId, secret key and x-api-key once.
    Create {
        /// The instance the customer lives on.
        #[arg(long)]
        instance: InstanceName,
        /// A name for listings.
        #[arg(long, default_value = "")]
        label: String,
        /// Let /Authorize work without an authorize token (legacy integrations).
        #[arg(long)]
        no_authorize_token_required: bool,
        /// Let DeleteCard and the data endpoints work without an x-api-key (legacy integrations).
        #[arg(long)]
        no_api_key_required: bool,
    },
    /// List customers (never their keys).
    List {
        /// Only this instance's customers.
        #[arg(long)]
        instance: Option<InstanceName>,
    },
    /// Issue a new secret key and x-api-key; prints them once.
    RotateKeys {
        customer_id: CustomerId,
        /// How long the old keys keep working.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        grace: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum LoginCommand {
    /// Create a LoginId for a sandbox user, as if they had connected through Connect.
    Create {
        /// The customer that owns the LoginId.
        #[arg(long)]
        customer: CustomerId,
        /// The sandbox institution.
        #[arg(long, default_value = "FlinksCapital")]
        institution: String,
        /// The sandbox username (Greatday, greatday_nomfa, …).
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LockoutsCommand {
    /// List the lockouts in force, the latest to end first.
    List {
        /// Only this customer's.
        #[arg(long)]
        customer: Option<CustomerId>,
        /// Only this client's: an IP address (an IPv6 one stands for its /64), or `unknown`.
        #[arg(long)]
        client: Option<String>,
    },
    /// Lift lockouts and forget failure counts: a customer's, a client's, both, or --all.
    #[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["customer", "client", "all"])))]
    Clear {
        /// Only this customer's.
        #[arg(long)]
        customer: Option<CustomerId>,
        /// Only this client's: an IP address (an IPv6 one stands for its /64), or `unknown`.
        #[arg(long)]
        client: Option<String>,
        /// Every lockout of every customer.
        #[arg(long, conflicts_with_all = ["customer", "client"])]
        all: bool,
    },
}

/// Whom a failure rule is for: a LoginId or a sandbox username.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct FailureTarget {
    /// One LoginId of the customer.
    #[arg(long)]
    pub login_id: Option<LoginId>,
    /// Every LoginId of this sandbox user (any case), and live connections with it.
    #[arg(long)]
    pub username: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FailuresCommand {
    /// Make the next COUNT /Authorize calls fail with CODE.
    Add {
        #[arg(long)]
        customer: CustomerId,
        #[command(flatten)]
        target: FailureTarget,
        /// RETRY_LATER, DISABLED_LOGIN, INVALID_LOGIN (password changed), MFA (a new
        /// security question), AGGREGATION_ERROR or OPERATION_PENDING (needs --seconds).
        #[arg(long)]
        code: String,
        /// How many calls fail (1 to 1000).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        count: i64,
        /// OPERATION_PENDING: how long the 202 lasts, on the instance's clock.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// List a customer's rules (or one LoginId's).
    List {
        #[arg(long)]
        customer: CustomerId,
        #[arg(long)]
        login_id: Option<LoginId>,
    },
    /// Clear a customer's rules (or one LoginId's).
    Clear {
        #[arg(long)]
        customer: CustomerId,
        #[arg(long)]
        login_id: Option<LoginId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FaultsCommand {
    /// Make the next COUNT calls of an endpoint answer --status or wait --stall.
    Add {
        #[arg(long)]
        instance: InstanceName,
        /// The endpoint's name (GetAccountsDetail, Authorize, …).
        #[arg(long)]
        endpoint: String,
        /// 500, 502, 503 or 504.
        #[arg(long, required_unless_present = "stall", conflicts_with = "stall")]
        status: Option<u16>,
        /// Wait this long (whole seconds, 1s to 60s), then answer as usual.
        #[arg(long, value_parser = parse_duration)]
        stall: Option<Duration>,
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        count: i64,
    },
    /// List an instance's faults.
    List {
        #[arg(long)]
        instance: InstanceName,
    },
    /// Clear an instance's faults.
    Clear {
        #[arg(long)]
        instance: InstanceName,
    },
}
