//! Settings from four places, in this order of precedence: flags, `BANKGATE_*` variables (both
//! read by clap), the TOML file named by `--config`, the defaults. `Settings` is the one list of
//! them: its field names are the file's keys and the flags' names (`cli` holds the flags). A bad
//! value anywhere stops the start with a message naming the setting, and the file if it came
//! from there.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bankgate_server::listen::ConnectionLimits;
use bankgate_store::PgSettings;
use serde::de::{Deserialize, Deserializer, Error as _};

use crate::cli::{Cli, Command, LogFormat};
use crate::{DatabaseUrl, redact_password};

/// Every setting, resolved. A missing key takes its value from `Default`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    #[serde(deserialize_with = "from_text")]
    pub database: DatabaseUrl,
    pub db_pool_size: usize,
    #[serde(deserialize_with = "duration")]
    pub db_connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub db_statement_timeout: Duration,
    #[serde(deserialize_with = "log_filter")]
    pub log: String,
    pub log_format: LogFormat,
    #[serde(deserialize_with = "address")]
    pub listen: SocketAddr,
    /// When set, replaces the port of `listen` (`resolve` applies it).
    pub port: Option<u16>,
    #[serde(deserialize_with = "address")]
    pub admin_listen: SocketAddr,
    /// `None` (also for an empty token): the admin API refuses every call. After `resolve`, the
    /// token itself: read from `admin_token_file`, or generated for `generate`.
    #[serde(deserialize_with = "admin_token")]
    pub admin_token: Option<String>,
    /// A file holding the admin token (so it stays out of `ps` and the environment).
    pub admin_token_file: Option<PathBuf>,
    /// Set by `resolve` when the token was generated (`--admin-token generate`): `serve` prints
    /// it once. Not a setting.
    #[serde(skip)]
    pub admin_token_generated: bool,
    pub max_failures_per_client: u32,
    pub max_failures_per_target: u32,
    #[serde(deserialize_with = "duration")]
    pub failure_window: Duration,
    #[serde(deserialize_with = "duration")]
    pub failure_lockout: Duration,
    pub limit_sandbox_passwords: bool,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub purge_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub journal_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let pg = PgSettings::default();
        Self {
            database: DatabaseUrl::Sqlite("bankgate.db".into()),
            db_pool_size: pg.pool_size,
            db_connect_timeout: pg.connect_timeout,
            db_statement_timeout: pg.statement_timeout,
            log: "info".to_owned(),
            log_format: LogFormat::Human,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            port: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token: None,
            admin_token_file: None,
            admin_token_generated: false,
            max_failures_per_client: 10,
            max_failures_per_target: 50,
            failure_window: Duration::from_secs(5 * 60),
            failure_lockout: Duration::from_secs(5 * 60),
            limit_sandbox_passwords: false,
            shutdown_grace: Duration::from_secs(30),
            purge_interval: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: bankgate_server::body::BODY_TIMEOUT,
            max_connections: bankgate_server::listen::default_max_connections(),
            journal_size: bankgate_server::journal::DEFAULT_CAPACITY,
        }
    }
}

/// A value written as text (`"127.0.0.1:8080"`), parsed by its `FromStr`. The value is shown
/// in the error through `redact_password`: it may be a database URL.
fn from_text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|error| D::Error::custom(format!("{:?}: {error}", redact_password(&text))))
}

fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::cli::parse_listen(&text).map_err(|error| D::Error::custom(format!("{text:?}: {error}")))
}

fn log_filter<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::cli::parse_log_filter(&text).map_err(D::Error::custom)
}

/// A duration as `90s`, `5m`, `1h`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::cli::parse_duration(&text)
        .map_err(|error| D::Error::custom(format!("{text:?}: {error}")))
}

/// The word that asks for a generated admin token instead of giving one.
pub const GENERATE: &str = "generate";

/// The shortest admin token taken: 32 characters (e.g. 128 bits as hex) resist guessing even
/// at the rate the admin API's lockout allows.
pub const ADMIN_TOKEN_MIN_LEN: usize = 32;

fn admin_token<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let token = String::deserialize(deserializer)?;
    check_admin_token(&token).map_err(D::Error::custom)
}

/// `None` for an empty token; a refusal, naming the rule and never the token, for a short one.
fn check_admin_token(token: &str) -> Result<Option<String>, String> {
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    let length = token.chars().count();
    if token != GENERATE && length < ADMIN_TOKEN_MIN_LEN {
        return Err(format!(
            "the admin token is {length} characters; it must be at least {ADMIN_TOKEN_MIN_LEN}. \
             Generate one with `openssl rand -hex 32`, or pass `{GENERATE}` to have bankgate \
             make one and print it once at start"
        ));
    }
    Ok(Some(token.to_owned()))
}

/// 32 bytes from the OS CSPRNG, as 64 hex characters.
fn generate_admin_token() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow!("cannot generate an admin token: {error}"))?;
    Ok(hex::encode(bytes))
}

/// Deserializes `table` into settings; on failure, the key at fault (if any) and why.
fn from_table(table: toml::Table) -> Result<Settings, (Option<String>, String)> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
        let key = error
            .path()
            .iter()
            .next()
            .map(|segment| segment.to_string());
        (key, error.into_inner().message().to_owned())
    })
}

/// The config file's keys and values, checked against `Settings`.
fn load_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    // Only the parser's message and the line: its usual excerpt of the file could show a
    // database password.
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line
            .map(|line| format!(" (line {line})"))
            .unwrap_or_default();
        anyhow!(
            "the config file {} is not valid TOML{at}: {}",
            path.display(),
            error.message().trim_end()
        )
    })?;
    from_table(table.clone()).map_err(|(key, error)| match key {
        Some(key) => anyhow!("setting `{key}` in {}: {error}", path.display()),
        None => anyhow!("{}: {error}", path.display()),
    })?;
    Ok(table)
}

impl Settings {
    /// The PostgreSQL connection settings (ignored on SQLite).
    pub fn pg_settings(&self) -> PgSettings {
        PgSettings {
            pool_size: self.db_pool_size,
            connect_timeout: self.db_connect_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    /// The API listener's connection limits (the admin listener has its own, smaller cap).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    /// Resolves every setting for this command line: the flags given (clap has already put a
    /// flag above its variable) laid over the file's keys, over the defaults.
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let mut table = match &cli.config {
            Some(path) => load_file(path)?,
            None => toml::Table::new(),
        };
        table.extend(toml::Table::try_from(&cli.settings)?);
        if let Command::Serve(serve) = &cli.command {
            table.extend(toml::Table::try_from(serve)?);
        }
        // The file was checked alone, so what fails now came from a flag or a variable.
        let mut settings = from_table(table).map_err(|(key, error)| {
            let key = key.unwrap_or_default();
            anyhow!(
                "bad value for --{} (or BANKGATE_{}): {error}",
                key.replace('_', "-"),
                key.to_uppercase()
            )
        })?;
        if let Some(port) = settings.port {
            settings.listen.set_port(port);
        }
        if matches!(cli.command, Command::Serve(_)) {
            settings.resolve_admin_token()?;
        }
        Ok(settings)
    }

    /// The admin token from its file, or generated when asked for.
    fn resolve_admin_token(&mut self) -> anyhow::Result<()> {
        if let Some(path) = &self.admin_token_file {
            if self.admin_token.is_some() {
                return Err(anyhow!(
                    "both admin_token and admin_token_file are set; keep one \
                     (--admin-token-file keeps the token out of `ps` and the environment)"
                ));
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
            let token = check_admin_token(&text)
                .map_err(|error| anyhow!("the admin token file {}: {error}", path.display()))?;
            match token.as_deref() {
                None => return Err(anyhow!("the admin token file {} is empty", path.display())),
                Some(GENERATE) => {
                    return Err(anyhow!(
                        "the admin token file {} says `{GENERATE}`; put the token itself in it",
                        path.display()
                    ));
                }
                Some(_) => self.admin_token = token,
            }
        } else if self.admin_token.as_deref() == Some(GENERATE) {
            self.admin_token = Some(generate_admin_token()?);
            self.admin_token_generated = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;

    fn resolve(args: &[&str], file: Option<&str>) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["bankgate".to_owned()];
        if let Some(text) = file {
            let path = dir.path().join("bankgate.toml");
            std::fs::write(&path, text).unwrap();
            argv.push("--config".to_owned());
            argv.push(path.display().to_string());
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Settings::resolve(&Cli::try_parse_from(argv).unwrap())
    }

    #[test]
    fn defaults_without_flags_or_file() {
        let settings = resolve(&["serve"], None).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.admin_listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(settings.database, DatabaseUrl::Sqlite("bankgate.db".into()));
        assert_eq!(settings.failure_window, Duration::from_secs(300));
        assert_eq!(settings.max_failures_per_client, 10);
        assert_eq!(settings.admin_token, None);
        assert_eq!(settings.log_format, LogFormat::Human);
    }

    #[test]
    fn the_file_beats_defaults_and_flags_beat_the_file() {
        let file = r#"
            listen = "127.0.0.1:9000"
            admin_listen = "127.0.0.1:9001"
            database = "sqlite:///tmp/from-file.db"
            max_failures_per_client = 3
            failure_window = "90s"
            log_format = "json"
            admin_token = "from-file-0123456789abcdef0123456789"
        "#;
        let settings = resolve(&["serve"], Some(file)).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(settings.max_failures_per_client, 3);
        assert_eq!(settings.failure_window, Duration::from_secs(90));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(
            settings.admin_token.as_deref(),
            Some("from-file-0123456789abcdef0123456789")
        );
        assert_eq!(
            settings.database,
            DatabaseUrl::Sqlite("/tmp/from-file.db".into())
        );

        let settings = resolve(
            &[
                "--database",
                "sqlite://flag.db",
                "serve",
                "--listen",
                "127.0.0.1:7000",
                "--failure-window",
                "2m",
            ],
            Some(file),
        )
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(settings.failure_window, Duration::from_secs(120));
        assert_eq!(settings.database, DatabaseUrl::Sqlite("flag.db".into()));
        // What the flags leave unset still comes from the file.
        assert_eq!(settings.admin_listen, "127.0.0.1:9001".parse().unwrap());
    }

    #[test]
    fn operator_commands_read_the_database_from_the_file() {
        let settings = resolve(
            &["instance", "list"],
            Some(r#"database = "sqlite://ops.db""#),
        )
        .unwrap();
        assert_eq!(settings.database, DatabaseUrl::Sqlite("ops.db".into()));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (file, setting) in [
            (r#"failure_window = "soon""#, "`failure_window`"),
            (r#"listen = "localhost""#, "`listen`"),
            ("max_failures_per_target = -1", "`max_failures_per_target`"),
            (r#"log_format = "xml""#, "`log_format`"),
            (r#"database = "mysql://x""#, "`database`"),
            ("purge_interval = true", "`purge_interval`"),
            (r#"log = "verbose""#, "`log`"),
            (r#"admin_listen = "localhost:http""#, "`admin_listen`"),
            (r#"listn = "127.0.0.1:1""#, "`listn`"),
        ] {
            let error = format!("{:#}", resolve(&["serve"], Some(file)).unwrap_err());
            assert!(error.contains(setting), "{file}: {error}");
            assert!(error.contains("bankgate.toml"), "{file}: {error}");
        }
        let error = format!("{:#}", resolve(&["serve"], Some("listen = ")).unwrap_err());
        assert!(error.contains("not valid TOML"), "{error}");
    }

    /// Each flag is laid over the setting of its name: one given with every flag, a value
    /// unlike the default, comes out whole.
    #[test]
    fn every_flag_sets_its_setting() {
        let settings = resolve(
            &[
                "--database=sqlite://flags.db",
                "--db-pool-size=3",
                "--db-connect-timeout=7s",
                "--db-statement-timeout=11s",
                "--log=debug",
                "--log-format=json",
                "serve",
                "--listen=127.0.0.1:1000",
                "--port=1002",
                "--admin-listen=127.0.0.1:1001",
                "--admin-token=0123456789abcdef0123456789abcdef",
                "--max-failures-per-client=4",
                "--max-failures-per-target=5",
                "--failure-window=1h 30m",
                "--failure-lockout=2m",
                "--limit-sandbox-passwords",
                "--shutdown-grace=3s",
                "--purge-interval=9s",
                "--header-read-timeout=4s",
                "--idle-timeout=8s",
                "--body-read-timeout=6s",
                "--max-connections=12",
                "--journal-size=12",
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            settings,
            Settings {
                database: DatabaseUrl::Sqlite("flags.db".into()),
                db_pool_size: 3,
                db_connect_timeout: Duration::from_secs(7),
                db_statement_timeout: Duration::from_secs(11),
                log: "debug".to_owned(),
                log_format: LogFormat::Json,
                // --port replaces the port of --listen.
                listen: "127.0.0.1:1002".parse().unwrap(),
                port: Some(1002),
                admin_listen: "127.0.0.1:1001".parse().unwrap(),
                admin_token: Some("0123456789abcdef0123456789abcdef".to_owned()),
                admin_token_file: None,
                admin_token_generated: false,
                max_failures_per_client: 4,
                max_failures_per_target: 5,
                failure_window: Duration::from_secs(90 * 60),
                failure_lockout: Duration::from_secs(120),
                limit_sandbox_passwords: true,
                shutdown_grace: Duration::from_secs(3),
                purge_interval: Duration::from_secs(9),
                header_read_timeout: Duration::from_secs(4),
                idle_timeout: Duration::from_secs(8),
                body_read_timeout: Duration::from_secs(6),
                max_connections: 12,
                journal_size: 12,
            }
        );
        // Every `BANKGATE_*` flag but --config is a setting (the list above is complete).
        let flags = <Cli as clap::CommandFactory>::command()
            .get_arguments()
            .chain(
                <Cli as clap::CommandFactory>::command()
                    .find_subcommand("serve")
                    .unwrap()
                    .get_arguments(),
            )
            .filter(|arg| arg.get_env().is_some() && arg.get_id() != "config")
            .count();
        // (--admin-token-file excludes --admin-token: `the_admin_token_comes_from_a_file`.)
        assert_eq!(flags, 23);
    }

    #[test]
    fn a_short_admin_token_is_refused_naming_the_rule_not_the_token() {
        for (args, file) in [
            (vec!["serve", "--admin-token", "a"], None),
            (
                vec!["serve"],
                Some(r#"admin_token = "0123456789abcdef0123456789abcde""#),
            ),
        ] {
            let error = format!("{:#}", resolve(&args, file).unwrap_err());
            assert!(error.contains("at least 32"), "{error}");
            assert!(error.contains("openssl rand -hex 32"), "{error}");
            assert!(!error.contains("0123456789abcdef"), "{error}");
        }
        let long = "x".repeat(32);
        let settings = resolve(&["serve", "--admin-token", &long], None).unwrap();
        assert_eq!(settings.admin_token, Some(long));
    }

    #[test]
    fn a_generated_admin_token_is_64_random_hex_characters() {
        let first = resolve(&["serve", "--admin-token", "generate"], None).unwrap();
        let second = resolve(&["serve", "--admin-token", "generate"], None).unwrap();
        let token = first.admin_token.clone().unwrap();
        assert!(first.admin_token_generated);
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        assert_ne!(first.admin_token, second.admin_token);
        // Given, not generated.
        let given = resolve(&["serve", "--admin-token", &"y".repeat(40)], None).unwrap();
        assert!(!given.admin_token_generated);
    }

    #[test]
    fn the_admin_token_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let token = "0123456789abcdef0123456789abcdef0123";
        std::fs::write(&path, format!("  {token}\n")).unwrap();
        let file_arg = path.display().to_string();
        let settings = resolve(&["serve", "--admin-token-file", &file_arg], None).unwrap();
        assert_eq!(settings.admin_token.as_deref(), Some(token));
        assert_eq!(settings.admin_token_file, Some(path.clone()));
        assert!(!settings.admin_token_generated);
        // The config file's key too.
        let settings = resolve(
            &["serve"],
            Some(&format!("admin_token_file = {:?}", file_arg)),
        )
        .unwrap();
        assert_eq!(settings.admin_token.as_deref(), Some(token));

        let both = resolve(
            &[
                "serve",
                "--admin-token-file",
                &file_arg,
                "--admin-token",
                &"z".repeat(32),
            ],
            None,
        );
        assert!(format!("{:#}", both.unwrap_err()).contains("keep one"));
        for (content, expected) in [
            ("short\n", "at least 32"),
            ("\n", "empty"),
            ("generate", "the token itself"),
        ] {
            std::fs::write(&path, content).unwrap();
            let error = format!(
                "{:#}",
                resolve(&["serve", "--admin-token-file", &file_arg], None).unwrap_err()
            );
            assert!(error.contains(expected), "{content:?}: {error}");
            assert!(error.contains(&file_arg), "{content:?}: {error}");
        }
        // Operator commands do not read it.
        std::fs::remove_file(&path).unwrap();
        let settings = resolve(
            &["instance", "list"],
            Some(&format!("admin_token_file = {:?}", file_arg)),
        )
        .unwrap();
        assert_eq!(settings.admin_token, None);
    }

    #[test]
    fn listen_takes_localhost_and_port_replaces_its_port() {
        let settings = resolve(
            &[
                "serve",
                "--listen",
                "localhost:9000",
                "--admin-listen=localhost:9001",
            ],
            None,
        )
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(settings.admin_listen, "127.0.0.1:9001".parse().unwrap());
        let settings = resolve(&["serve", "--port", "9100"], None).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9100".parse().unwrap());
        let settings = resolve(
            &["serve", "--port", "9200"],
            Some(r#"listen = "0.0.0.0:8000""#),
        )
        .unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9200".parse().unwrap());
        let settings = resolve(&["serve"], Some(r#"listen = "localhost:7000""#)).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn log_filters_are_checked() {
        for good in [
            "info",
            "DEBUG",
            "warn,bankgate_server=debug",
            "bankgate::x=trace",
            "off",
        ] {
            let settings = resolve(&["--log", good, "serve"], None).unwrap();
            assert_eq!(settings.log, good);
        }
        for bad in ["verbose", "info,loud", "bankgate_server=loudest"] {
            let error = Cli::try_parse_from(["bankgate", "--log", bad, "serve"]).unwrap_err();
            let error = error.to_string();
            assert!(
                error.contains("trace, debug, info, warn, error, off"),
                "{bad}: {error}"
            );
        }
        let error = format!(
            "{:#}",
            resolve(&["serve"], Some(r#"log = "chatty""#)).unwrap_err()
        );
        assert!(error.contains("\"chatty\" is not a log level"), "{error}");
    }

    #[test]
    fn an_empty_admin_token_is_none() {
        let settings = resolve(&["serve"], Some(r#"admin_token = """#)).unwrap();
        assert_eq!(settings.admin_token, None);
    }

    #[test]
    fn database_passwords_stay_out_of_file_errors() {
        for file in [
            r#"database = "mysql://bg:hunter2@db/x""#,
            r#"database = "host=db password=hunter2""#,
            "database = \"postgres://bg:hunter2@db/x\"\nlisten = ",
            "database = \"postgres://bg:hunter2@db/x",
        ] {
            let error = format!("{:#}", resolve(&["serve"], Some(file)).unwrap_err());
            assert!(!error.contains("hunter2"), "{file}: {error}");
            assert!(error.contains("bankgate.toml"), "{file}: {error}");
        }
    }
}
