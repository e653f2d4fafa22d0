//! Settings from four places, in this order of precedence: flags, `BANKGATE_*` variables (both
//! read by clap), the TOML file named by `--config`, the defaults. `Settings` is the one list of
//! them: its field names are the file's keys and the flags' names (`cli` holds the flags). A bad
//! value anywhere stops the start with a message naming the setting, and the file if it came
//! from there.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
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
    pub log: String,
    pub log_format: LogFormat,
    #[serde(deserialize_with = "address")]
    pub listen: SocketAddr,
    #[serde(deserialize_with = "address")]
    pub admin_listen: SocketAddr,
    /// `None` (also for an empty token): the admin API refuses every call.
    #[serde(deserialize_with = "admin_token")]
    pub admin_token: Option<String>,
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
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token: None,
            max_failures_per_client: 10,
            max_failures_per_target: 50,
            failure_window: Duration::from_secs(5 * 60),
            failure_lockout: Duration::from_secs(5 * 60),
            limit_sandbox_passwords: false,
            shutdown_grace: Duration::from_secs(30),
            purge_interval: Duration::from_secs(60),
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
    text.parse().map_err(|error| {
        D::Error::custom(format!(
            "{text:?}: {error} (expected host:port, e.g. 127.0.0.1:8080)"
        ))
    })
}

/// A duration as `90s`, `5m`, `1h`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::cli::parse_duration(&text)
        .map_err(|error| D::Error::custom(format!("{text:?}: {error}")))
}

fn admin_token<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let token = String::deserialize(deserializer)?;
    Ok(Some(token).filter(|token| !token.is_empty()))
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
        from_table(table).map_err(|(key, error)| {
            let key = key.unwrap_or_default();
            anyhow!(
                "bad value for --{} (or BANKGATE_{}): {error}",
                key.replace('_', "-"),
                key.to_uppercase()
            )
        })
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
            admin_token = "from-file"
        "#;
        let settings = resolve(&["serve"], Some(file)).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(settings.max_failures_per_client, 3);
        assert_eq!(settings.failure_window, Duration::from_secs(90));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.admin_token.as_deref(), Some("from-file"));
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
                "--admin-listen=127.0.0.1:1001",
                "--admin-token=t0ken",
                "--max-failures-per-client=4",
                "--max-failures-per-target=5",
                "--failure-window=1h 30m",
                "--failure-lockout=2m",
                "--limit-sandbox-passwords",
                "--shutdown-grace=3s",
                "--purge-interval=9s",
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
                listen: "127.0.0.1:1000".parse().unwrap(),
                admin_listen: "127.0.0.1:1001".parse().unwrap(),
                admin_token: Some("t0ken".to_owned()),
                max_failures_per_client: 4,
                max_failures_per_target: 5,
                failure_window: Duration::from_secs(90 * 60),
                failure_lockout: Duration::from_secs(120),
                limit_sandbox_passwords: true,
                shutdown_grace: Duration::from_secs(3),
                purge_interval: Duration::from_secs(9),
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
        assert_eq!(flags, 17);
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
