//! The `bankgate` command: serve the Flinks API, or run an operator command, on one database.

pub mod cli;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod listen;
pub mod requests;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use bankgate_store::{PgSettings, PgStore, SqliteStore, Store};

/// Where the state lives: `sqlite://PATH` (or a bare path), or `postgres://…` shared by several
/// nodes.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    /// A libpq-style URL (`postgres://` or `postgresql://`), kept as given.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Through Display: a password in the URL never reaches a log or an error message.
        write!(f, "DatabaseUrl({self})")
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://bankgate.db".to_owned());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // Checked now, so a typo fails at the command line rather than at connect time.
            return match bankgate_store::PgUrl::parse(s) {
                Ok(_) => Ok(Self::Postgres(s.to_owned())),
                Err(error) => Err(error),
            };
        }
        // A libpq `host=… password=…` string is not taken (the pool takes URLs only). Say so
        // without echoing it, and never treat it as an SQLite file name.
        if !s.contains("://") && s.contains('=') {
            return Err(
                "a libpq key=value string is not supported; write it as a URL: \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DB"
                    .to_owned(),
            );
        }
        if s.contains("://") {
            return Err(
                "unknown database URL scheme; use sqlite://PATH or postgres://USER@HOST/DB"
                    .to_owned(),
            );
        }
        if s.is_empty() {
            return Err(
                "the database URL is empty; use sqlite://PATH or postgres://USER@HOST/DB"
                    .to_owned(),
            );
        }
        Ok(Self::Sqlite(PathBuf::from(s)))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db?password=secret` shown as
/// `postgres://user:***@host/db?password=***`, and libpq's `host=db password=secret` as
/// `host=db password=***`: wherever a database setting is shown (logs, errors).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_value_password(url);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    // libpq also takes the password as a query parameter.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// libpq's `key=value` form: the value after `password =` (bare, or single-quoted with `\'`
/// escapes) becomes `***`. Anything after an unclosed quote is hidden too.
fn redact_key_value_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.to_ascii_lowercase().find("password") {
        let (before, after) = rest.split_at(at + "password".len());
        out.push_str(before);
        let value_start = after.trim_start();
        let Some(value) = value_start.strip_prefix('=') else {
            rest = after;
            continue;
        };
        out.push_str(&after[..after.len() - value_start.len()]);
        let trimmed = value.trim_start();
        out.push('=');
        out.push_str(&value[..value.len() - trimmed.len()]);
        out.push_str("***");
        let value = trimmed;
        rest = if let Some(quoted) = value.strip_prefix('\'') {
            // Up to the closing quote; `\'` and `\\` are escapes inside it.
            let mut end = None;
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => {}
                }
            }
            end.map_or("", |end| &quoted[end..])
        } else {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            &value[end..]
        };
    }
    out.push_str(rest);
    out
}

/// Whether log lines get colours: on a terminal, unless `NO_COLOR` is set to anything but the
/// empty string (no-color.org).
pub fn log_colors(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// What a command does with the database, which decides whether a missing SQLite file may be
/// created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: a missing file is an error (an operator in the wrong directory), never a
    /// new, empty database.
    Read,
    /// Writes: a missing file is created, migrated and seeded, and the command says so.
    Write,
}

/// Opens the store (creating and migrating it if needed and `access` allows).
/// `pg` applies to PostgreSQL only.
pub async fn open_store(
    url: &DatabaseUrl,
    pg: PgSettings,
    access: Access,
) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let in_memory = path.as_os_str() == bankgate_store::IN_MEMORY;
            let created = !in_memory && !path.exists();
            if created && access == Access::Read {
                anyhow::bail!(
                    "no database at {}: this command only reads, so it creates none. Run it \
                     in the directory that holds your database, or name it with --database \
                     sqlite:///PATH (or BANKGATE_DATABASE)",
                    url.shown()
                );
            }
            let store = SqliteStore::open(path).map_err(|error| match error {
                // The message names the file and the fix already; "storage unavailable" adds
                // nothing to it.
                bankgate_core::DomainError::Unavailable(message) => anyhow::anyhow!(message),
                other => other.into(),
            })?;
            if created {
                // On stderr: stdout carries the command's output.
                eprintln!("note: created a new database at {}", url.shown());
            }
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(raw) => {
            let store = PgStore::connect(raw, pg)
                .await
                .with_context(|| format!("cannot open the database {url}"))?;
            Ok(Arc::new(store))
        }
    }
}

impl DatabaseUrl {
    /// As shown to a person: an SQLite file by its absolute path (which file is used should
    /// never be a guess), PostgreSQL without its password.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(path) if path.as_os_str() == bankgate_store::IN_MEMORY => {
                "sqlite://:memory: (in memory, gone when the process ends)".to_owned()
            }
            Self::Sqlite(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                format!("sqlite://{}", absolute.display())
            }
            Self::Postgres(_) => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_colours_off_on_a_terminal() {
        assert!(log_colors(true, None));
        assert!(!log_colors(true, Some("1".into())));
        assert!(!log_colors(true, Some("false".into())));
        // Empty counts as unset.
        assert!(log_colors(true, Some("".into())));
        assert!(!log_colors(false, None));
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            "sqlite://data/bg.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("data/bg.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            "x.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("x.db".into()))
        );
        assert_eq!(
            "postgres://localhost/x".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres("postgres://localhost/x".into()))
        );
        assert_eq!(
            "postgresql://bg@127.0.0.1:5432/bg?sslmode=disable".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres(
                "postgresql://bg@127.0.0.1:5432/bg?sslmode=disable".into()
            ))
        );
        assert!("postgres://h/db?nonsense=1".parse::<DatabaseUrl>().is_err());
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
        assert!("sqlite://".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn postgres_passwords_are_never_displayed() {
        let url: DatabaseUrl = "postgres://bg:hunter2@db.internal:5432/bankgate?sslmode=disable"
            .parse()
            .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            url.to_string(),
            "postgres://bg:***@db.internal:5432/bankgate?sslmode=disable"
        );
        let no_password: DatabaseUrl = "postgres://bg@db/bankgate".parse().unwrap();
        assert_eq!(no_password.to_string(), "postgres://bg@db/bankgate");
        let in_query: DatabaseUrl = "postgres://bg@db/bankgate?sslmode=disable&password=hunter2"
            .parse()
            .unwrap();
        assert_eq!(
            in_query.to_string(),
            "postgres://bg@db/bankgate?sslmode=disable&password=***"
        );
    }

    #[test]
    fn libpq_key_value_strings_are_refused_and_their_passwords_hidden() {
        let given = "host=db user=bg password=hunter2 dbname=bankgate";
        let refused = given.parse::<DatabaseUrl>().unwrap_err();
        assert!(refused.contains("postgres://"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        assert_eq!(
            redact_password(given),
            "host=db user=bg password=*** dbname=bankgate"
        );
        assert_eq!(
            redact_password("host=db PASSWORD = 'hun ter\\'2' port=5432"),
            "host=db PASSWORD = *** port=5432"
        );
        assert_eq!(redact_password("password='unclosed secret"), "password=***");
        assert_eq!(redact_password("bankgate.db"), "bankgate.db");
    }
}
