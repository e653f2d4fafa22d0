//! Command-line interface. Every server setting has a flag and a `BANKGATE_*` variable.

use std::net::SocketAddr;
use std::time::Duration;

use bankgate_core::model::InstanceKind;
use bankgate_core::{CustomerId, InstanceName};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::DatabaseUrl;

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|error| format!("{error} (examples: 30m, 90s, 1h)"))
}

/// bankgate: the Flinks authorization API, served locally or for real.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// The database: sqlite://PATH (created if missing; the default file is bankgate.db in the
    /// current directory), or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (also postgresql://),
    /// which several bankgate nodes may share.
    #[arg(
        long,
        env = "BANKGATE_DATABASE",
        default_value = "sqlite://bankgate.db",
        global = true
    )]
    pub database: DatabaseUrl,

    /// PostgreSQL only: connections each node keeps open at most (one is its writer's).
    #[arg(
        long,
        env = "BANKGATE_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub db_pool_size: usize,

    /// PostgreSQL only: how long to wait for a connection (opening one, or a free one in the
    /// pool) before answering 503.
    #[arg(long, env = "BANKGATE_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_connect_timeout: Duration,

    /// PostgreSQL only: the longest one statement may run (the server's statement_timeout);
    /// past it, and past a silent connection, requests answer 503.
    #[arg(long, env = "BANKGATE_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub db_statement_timeout: Duration,

    /// Log format: human-readable lines or one JSON object per line.
    #[arg(long, env = "BANKGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    /// Which log lines to show, as a tracing filter (e.g. info, bankgate_server=debug).
    #[arg(long, env = "BANKGATE_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Print operator command results as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The PostgreSQL settings given on the command line.
    pub fn pg_settings(&self) -> bankgate_store::PgSettings {
        bankgate_store::PgSettings {
            pool_size: self.db_pool_size,
            connect_timeout: self.db_connect_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Flinks API (and seed the public toolbox instance on first start).
    Serve(ServeArgs),
    /// Create and list instances.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Create, list and rotate the keys of customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Create sandbox LoginIds.
    #[command(subcommand)]
    Login(LoginCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (API for every instance).
    #[arg(long, env = "BANKGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Failed credential attempts (secret key, bank password) from one client address within
    /// the failure window before that client gets TOO_MANY_REQUESTS. 0 turns it off.
    #[arg(long, env = "BANKGATE_MAX_FAILURES_PER_CLIENT", default_value_t = 10)]
    pub max_failures_per_client: u32,

    /// Failed attempts against one target, from any clients, within the failure window before
    /// every client (except ones that recently succeeded) gets TOO_MANY_REQUESTS for it. A
    /// target is a customer's secret key, or one bank username of its end users. 0 turns it off.
    #[arg(long, env = "BANKGATE_MAX_FAILURES_PER_TARGET", default_value_t = 50)]
    pub max_failures_per_target: u32,

    /// How far back failed attempts count.
    #[arg(long, env = "BANKGATE_FAILURE_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub failure_window: Duration,

    /// How long a client or customer that reached its limit is refused (the Retry-After).
    #[arg(long, env = "BANKGATE_FAILURE_LOCKOUT", default_value = "5m", value_parser = parse_duration)]
    pub failure_lockout: Duration,

    /// After Ctrl-C or SIGTERM, how long in-flight requests may take before bankgate stops
    /// anyway (a second signal stops it at once).
    #[arg(long, env = "BANKGATE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How often expired tokens and sessions are purged.
    #[arg(long, env = "BANKGATE_PURGE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub purge_interval: Duration,
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
    /// Put a sandbox instance back to its seeded state between test runs: every token,
    /// LoginId and session is gone; customers and their keys stay.
    Reset {
        /// The sandbox instance.
        name: InstanceName,
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
