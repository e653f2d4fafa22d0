//! Reaching PostgreSQL: the URL (with libpq's `sslmode` and `sslrootcert`), TLS through
//! rustls, and what a failed start says.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` and never verifies a certificate
//! itself (the TLS connector does). bankgate reads `sslmode` and `sslrootcert` out of the URL
//! and gives them libpq's meanings:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | no |
//! | `prefer` (the default) | when the server offers TLS | only when `sslrootcert` is given: the chain |
//! | `require` | always | only when `sslrootcert` is given: the chain (as libpq does with a root file) |
//! | `verify-ca` | always | the chain up to `sslrootcert` |
//! | `verify-full` | always | the chain, and that the certificate names the host of the URL |
//!
//! `verify-ca` and `verify-full` need `sslrootcert=PATH` (a PEM file of the CA certificates);
//! bankgate trusts no system roots, so nothing depends on the machine's certificate store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, as far as bankgate supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            // libpq's `allow` tries plain first: a downgrade bankgate does not offer.
            other => Err(format!(
                "sslmode={other} is not supported; use disable, prefer, require, verify-ca or \
                 verify-full"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn driver(self) -> DriverSslMode {
        match self {
            Self::Disable => DriverSslMode::Disable,
            Self::Prefer => DriverSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// A PostgreSQL URL, read: the driver's settings and the TLS settings bankgate applies.
#[derive(Debug, Clone)]
pub struct PgUrl {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl PgUrl {
    /// Reads a `postgres://` or `postgresql://` URL. The error never repeats the URL (it may
    /// hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("the URL parameter {key} is not valid UTF-8"))?;
            match key {
                "sslmode" => ssl_mode = SslMode::parse(&value)?,
                "sslrootcert" if value.is_empty() => {
                    return Err("sslrootcert= needs a file path".to_owned());
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|error| format!("invalid PostgreSQL URL: {error}"))?;
        config.ssl_mode(ssl_mode.driver());
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "sslmode={} needs sslrootcert=PATH: the PEM file of the CA that signed the \
                 server's certificate (your provider publishes it)",
                ssl_mode.as_str()
            ));
        }
        Ok(Self {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The rustls connector for this URL's TLS settings (reads `sslrootcert`).
    pub fn tls(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            Some(path) => Some(Arc::new(load_roots(path)?)),
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.ssl_mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => {
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|error| format!("sslrootcert: {error}"))?
            }
            (_, Some(roots)) => Arc::new(ChainOnly(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|error| format!("sslrootcert: {error}"))?,
            )),
            // Encrypted but unauthenticated, as libpq's require without a root file.
            (_, None) => Arc::new(Unverified(provider.clone())),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|error| format!("cannot read sslrootcert={shown}: {error}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|error| {
            format!("sslrootcert={shown} is not a PEM certificate file: {error}")
        })?;
        roots
            .add(cert)
            .map_err(|error| format!("sslrootcert={shown}: a certificate is unusable: {error}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert={shown} holds no certificate (expected PEM, \
             -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(roots)
}

/// libpq's verify-ca: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: any certificate, as libpq. The handshake's
/// signatures are still checked, so the session is at least bound to the key presented.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a node could not open its PostgreSQL store, said with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PgConnectError {
    /// The cause and what to do about it.
    pub message: String,
    /// Whether trying again later may succeed (the server is down, starting, or full), as
    /// opposed to a setting only the operator can fix (a password, a missing database).
    pub transient: bool,
}

impl PgConnectError {
    pub(super) fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }

    pub(super) fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }
}

/// Explains a failure to connect or to migrate, from the driver's error: the server's SQLSTATE
/// and words for refusals, the TLS verdict for a handshake, the OS error for a socket.
pub(super) fn explain(error: &tokio_postgres::Error, url: &PgUrl) -> PgConnectError {
    let user = url.config.get_user().unwrap_or("(none)");
    let database = url
        .config
        .get_dbname()
        .unwrap_or(url.config.get_user().unwrap_or("(none)"));
    if let Some(db) = error.as_db_error() {
        let said = format!("PostgreSQL said: {} ({})", db.message(), db.code().code());
        let code = db.code();
        let (fix, transient) = if *code == SqlState::INVALID_PASSWORD {
            (
                format!("check the password of user \"{user}\" in the database URL"),
                false,
            )
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            (
                format!(
                    "the server does not let user \"{user}\" connect from here: add a line for it \
                     to the server's pg_hba.conf (or use TLS, sslmode=require, if the line is \
                     hostssl)"
                ),
                false,
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            (
                format!(
                    "create it (as a superuser: CREATE DATABASE \"{database}\" OWNER \"{user}\") \
                     or fix the database name in the URL"
                ),
                false,
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                format!(
                    "user \"{user}\" may not create bankgate's tables in database \
                     \"{database}\": make it the owner (ALTER DATABASE \"{database}\" OWNER TO \
                     \"{user}\", and ALTER SCHEMA public OWNER TO \"{user}\" inside it) or GRANT \
                     CREATE ON SCHEMA public TO \"{user}\""
                ),
                false,
            )
        } else if *code == SqlState::INVALID_SCHEMA_NAME {
            (
                format!(
                    "user \"{user}\" cannot use the schema its search_path names (it is missing \
                     or belongs to another user): create it owned by \"{user}\", or GRANT USAGE, \
                     CREATE ON SCHEMA to it"
                ),
                false,
            )
        } else if *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
        {
            (
                "the server is starting, stopping or full; bankgate retries".to_owned(),
                true,
            )
        } else {
            ("see PostgreSQL's message".to_owned(), false)
        };
        return PgConnectError {
            message: format!("{said}: {fix}"),
            transient,
        };
    }
    if let Some(tls) = rustls_error(error) {
        return PgConnectError::fatal(explain_tls(tls, url));
    }
    let text = with_causes(error);
    if text.contains("server does not support TLS") {
        return PgConnectError::fatal(format!(
            "the server does not accept TLS connections and sslmode={} requires them: enable \
             ssl on the server, or use sslmode=prefer (or disable) on a private network",
            url.ssl_mode.as_str()
        ));
    }
    if text.starts_with("error performing TLS handshake") {
        return PgConnectError::fatal(format!("TLS with the server failed: {text}"));
    }
    if text.starts_with("invalid configuration") || text.starts_with("invalid connection string") {
        return PgConnectError::fatal(text);
    }
    // No answer: refused, unreachable, unknown host, timed out. The server may come.
    PgConnectError::transient(format!("cannot reach PostgreSQL at {}: {text}", hosts(url)))
}

/// The error and its causes on one line (the driver's Display names only the kind).
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

fn rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error hides what it wraps from `source`.
        if let Some(tls) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = cause.source();
    }
    None
}

fn explain_tls(error: &rustls::Error, url: &PgUrl) -> String {
    let root = url
        .root_cert
        .as_deref()
        .map_or_else(String::new, |p| p.display().to_string());
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's TLS certificate does not name the host {} (sslmode=verify-full): \
             connect with a host name the certificate lists, or use sslmode=verify-ca to check \
             only the chain",
            hosts(url)
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server's TLS certificate is not signed by a CA in sslrootcert={root}: point \
             sslrootcert at the CA certificate of this server (your provider publishes it)"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's TLS certificate has expired: renew it on the server".to_owned(),
        other => format!("TLS with the server failed: {other}"),
    }
}

fn hosts(url: &PgUrl) -> String {
    let mut shown = String::new();
    for (i, host) in url.config.get_hosts().iter().enumerate() {
        if i > 0 {
            shown.push(',');
        }
        match host {
            Host::Tcp(name) => shown.push_str(name),
            #[cfg(unix)]
            Host::Unix(path) => shown.push_str(&path.display().to_string()),
        }
        if let Some(port) = url
            .config
            .get_ports()
            .get(i)
            .or(url.config.get_ports().first())
        {
            let _ = write!(shown, ":{port}");
        }
    }
    if shown.is_empty() {
        shown.push_str("localhost");
    }
    shown
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ssl_settings_are_read_out_of_the_url() {
        let url = PgUrl::parse(
            "postgres://bg@db:5432/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, SslMode::VerifyFull);
        assert_eq!(url.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(url.config.get_ssl_mode(), DriverSslMode::Require);
        assert_eq!(url.config.get_application_name(), Some("a"));
        assert_eq!(
            PgUrl::parse("postgres://db/x").unwrap().ssl_mode,
            SslMode::Prefer
        );
        assert_eq!(
            PgUrl::parse("postgres://db/x?sslmode=disable")
                .unwrap()
                .config
                .get_ssl_mode(),
            DriverSslMode::Disable
        );
    }

    #[test]
    fn unsupported_ssl_settings_are_refused_with_the_choices() {
        let allow = PgUrl::parse("postgres://u:secret@db/x?sslmode=allow").unwrap_err();
        assert!(allow.contains("verify-full"), "{allow}");
        assert!(!allow.contains("secret"), "{allow}");
        let no_root = PgUrl::parse("postgres://db/x?sslmode=verify-ca").unwrap_err();
        assert!(no_root.contains("sslrootcert=PATH"), "{no_root}");
        assert!(PgUrl::parse("postgres://db/x?nonsense=1").is_err());
    }

    #[test]
    fn a_root_file_that_is_missing_or_not_pem_is_named() {
        let missing =
            PgUrl::parse("postgres://db/x?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .unwrap()
                .tls()
                .err()
                .unwrap();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
        assert!(missing.contains("No such file"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let url = format!(
            "postgres://db/x?sslmode=verify-ca&sslrootcert={}",
            junk.display()
        );
        let empty = PgUrl::parse(&url).unwrap().tls().err().unwrap();
        assert!(empty.contains("holds no certificate"), "{empty}");
    }
}
