//! The `bankgate` command: serve the Flinks API, or run an operator command, on one database.

pub mod cli;
pub mod commands;
pub mod config;

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
            return match s.parse::<tokio_postgres::Config>() {
                Ok(_) => Ok(Self::Postgres(s.to_owned())),
                Err(error) => Err(format!("invalid PostgreSQL URL: {error}")),
            };
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
/// `postgres://user:***@host/db?password=***`: wherever a URL is shown (logs, errors).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
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

/// Opens the store (creating and migrating it if needed). `pg` applies to PostgreSQL only.
pub async fn open_store(url: &DatabaseUrl, pg: PgSettings) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let store = SqliteStore::open(path)
                .with_context(|| format!("cannot open the database {url}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
