//! Settings from four places, in this order of precedence: flags, `BANKGATE_*` variables (both
//! read by clap), the TOML file named by `--config`, the defaults. A bad value anywhere stops
//! the start with a message naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use bankgate_store::PgSettings;

use crate::cli::{Cli, Command, LogFormat, ServeArgs, parse_duration};
use crate::{DatabaseUrl, redact_password};

/// The keys a config file may hold: the long flags, with underscores.
const KEYS: &[&str] = &[
    "database",
    "db_pool_size",
    "db_connect_timeout",
    "db_statement_timeout",
    "log",
    "log_format",
    "listen",
    "admin_listen",
    "admin_token",
    "max_failures_per_client",
    "max_failures_per_target",
    "failure_window",
    "failure_lockout",
    "shutdown_grace",
    "purge_interval",
];

/// Every setting, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub db_pool_size: usize,
    pub db_connect_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub log: String,
    pub log_format: LogFormat,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<String>,
    pub max_failures_per_client: u32,
    pub max_failures_per_target: u32,
    pub failure_window: Duration,
    pub failure_lockout: Duration,
    pub shutdown_grace: Duration,
    pub purge_interval: Duration,
}

/// The values of a config file, as text, by key.
#[derive(Debug, Default)]
struct FileValues {
    path: Option<PathBuf>,
    values: BTreeMap<String, String>,
}

impl FileValues {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("the config file {} is not valid TOML", path.display()))?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            if !KEYS.contains(&key.as_str()) {
                bail!(
                    "unknown setting `{key}` in {}; the settings are: {}",
                    path.display(),
                    KEYS.join(", ")
                );
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                other => bail!(
                    "setting `{key}` in {}: expected a string or a whole number, found {}",
                    path.display(),
                    other.type_str()
                ),
            };
            values.insert(key, text);
        }
        Ok(Self {
            path: Some(path.to_owned()),
            values,
        })
    }

    /// The flag's value if given, else the file's (parsed), else `default`.
    fn pick<T, E: std::fmt::Display>(
        &self,
        key: &str,
        given: Option<T>,
        parse: impl Fn(&str) -> Result<T, E>,
        default: impl FnOnce() -> T,
    ) -> anyhow::Result<T> {
        if let Some(value) = given {
            return Ok(value);
        }
        match (self.values.get(key), &self.path) {
            (Some(text), Some(path)) => parse(text).map_err(|error| {
                anyhow::anyhow!(
                    "bad value {:?} for setting `{key}` in {}: {error}",
                    redact_password(text),
                    path.display()
                )
            }),
            _ => Ok(default()),
        }
    }
}

fn parse_with<T: FromStr>(text: &str) -> Result<T, T::Err> {
    text.parse()
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

    /// Resolves every setting for this command line.
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => FileValues::load(path)?,
            None => FileValues::default(),
        };
        let none = ServeArgs::default();
        let serve = match &cli.command {
            Command::Serve(args) => args,
            _ => &none,
        };
        let addr = |text: &str| {
            text.parse::<SocketAddr>()
                .map_err(|error| format!("{error} (expected host:port, e.g. 127.0.0.1:8080)"))
        };
        Ok(Self {
            database: file.pick(
                "database",
                cli.database
                    .as_deref()
                    .map(|raw| {
                        raw.parse::<DatabaseUrl>().map_err(|error| {
                            anyhow::anyhow!(
                                "bad value {:?} for --database (or BANKGATE_DATABASE): {error}",
                                redact_password(raw)
                            )
                        })
                    })
                    .transpose()?,
                parse_with::<DatabaseUrl>,
                || DatabaseUrl::Sqlite("bankgate.db".into()),
            )?,
            db_pool_size: file.pick(
                "db_pool_size",
                cli.db_pool_size,
                parse_with::<usize>,
                || PgSettings::default().pool_size,
            )?,
            db_connect_timeout: file.pick(
                "db_connect_timeout",
                cli.db_connect_timeout,
                parse_duration,
                || PgSettings::default().connect_timeout,
            )?,
            db_statement_timeout: file.pick(
                "db_statement_timeout",
                cli.db_statement_timeout,
                parse_duration,
                || PgSettings::default().statement_timeout,
            )?,
            log: file.pick("log", cli.log.clone(), parse_with::<String>, || {
                "info".to_owned()
            })?,
            log_format: file.pick(
                "log_format",
                cli.log_format,
                parse_with::<LogFormat>,
                || LogFormat::Human,
            )?,
            listen: file.pick("listen", serve.listen, addr, || {
                SocketAddr::from(([127, 0, 0, 1], 8080))
            })?,
            admin_listen: file.pick("admin_listen", serve.admin_listen, addr, || {
                SocketAddr::from(([127, 0, 0, 1], 8081))
            })?,
            admin_token: file
                .pick(
                    "admin_token",
                    serve.admin_token.clone().map(Some),
                    |text: &str| Ok::<_, String>(Some(text.to_owned())),
                    || None,
                )?
                .filter(|token| !token.is_empty()),
            max_failures_per_client: file.pick(
                "max_failures_per_client",
                serve.max_failures_per_client,
                parse_with::<u32>,
                || 10,
            )?,
            max_failures_per_target: file.pick(
                "max_failures_per_target",
                serve.max_failures_per_target,
                parse_with::<u32>,
                || 50,
            )?,
            failure_window: file.pick(
                "failure_window",
                serve.failure_window,
                parse_duration,
                || Duration::from_secs(5 * 60),
            )?,
            failure_lockout: file.pick(
                "failure_lockout",
                serve.failure_lockout,
                parse_duration,
                || Duration::from_secs(5 * 60),
            )?,
            shutdown_grace: file.pick(
                "shutdown_grace",
                serve.shutdown_grace,
                parse_duration,
                || Duration::from_secs(30),
            )?,
            purge_interval: file.pick(
                "purge_interval",
                serve.purge_interval,
                parse_duration,
                || Duration::from_secs(60),
            )?,
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
}
