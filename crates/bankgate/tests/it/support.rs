//! A bankgate in a test: its own database, a clock the test moves, and helpers that speak the
//! API the way a client would.
//!
//! The database is a SQLite file, or, with `BANKGATE_TEST_BACKEND=postgres`, a fresh schema on
//! the PostgreSQL of `BANKGATE_TEST_POSTGRES_URL`: `.ci/run` runs every API test both ways.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bankgate_core::model::{InstanceKind, toolbox};
use bankgate_core::{CustomerId, LoginId, ManualClock, Timestamp};
use bankgate_server::guard::LimitConfig;
use bankgate_server::operator::{NewCustomer, Operator};
use bankgate_server::{App, AppSettings, AppState};
use bankgate_store::{BatchStats, PgSettings, PgStore, SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

pub const TOOLBOX_CUSTOMER: &str = toolbox::CUSTOMER_ID;
pub const TOOLBOX_SECRET: &str = toolbox::SECRET_KEY;
pub const TOOLBOX_API_KEY: &str = toolbox::API_KEY;

/// 2026-01-21T20:47:47.145999Z: a fixed start so tests are repeatable.
pub const START: Timestamp = Timestamp::from_micros(1_769_028_467_145_999);

/// The store under a [`TestApp`].
#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres { store: Arc<PgStore>, url: String },
}

impl Backend {
    /// How SQLite's writer grouped writes into commits (PostgreSQL groups them itself).
    pub fn batch_stats(&self) -> Option<BatchStats> {
        match self {
            Self::Sqlite(store) => Some(store.batch_stats()),
            Self::Postgres { .. } => None,
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Postgres { store, .. } => store.clone(),
        }
    }

    fn handles(&self) -> usize {
        match self {
            Self::Sqlite(store) => Arc::strong_count(store),
            Self::Postgres { store, .. } => Arc::strong_count(store),
        }
    }
}

/// Whether API tests run on PostgreSQL (`BANKGATE_TEST_BACKEND=postgres`).
fn on_postgres() -> bool {
    match std::env::var("BANKGATE_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("BANKGATE_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

pub struct TestApp {
    pub dir: TempDir,
    pub clock: ManualClock,
    pub backend: Backend,
    pub settings: AppSettings,
    pub state: AppState,
    /// The public API, built as `bankgate serve` builds it.
    pub router: Router,
    /// The admin API, with the token of `settings` (none by default).
    pub admin: Router,
    /// Keeps the background tasks (webhook sender, purge) running while the test runs.
    _app: App,
}

/// The settings `bankgate serve` starts with, on `clock`, without the background purge (tests
/// purge when they mean to).
pub fn test_settings(clock: &ManualClock) -> AppSettings {
    AppSettings {
        clock: Arc::new(clock.clone()),
        limits: LimitConfig::default(),
        admin_token: None,
        purge_interval: None,
        body_read_timeout: bankgate_server::body::BODY_TIMEOUT,
        journal_capacity: bankgate_server::journal::DEFAULT_CAPACITY,
        webhook_interval: None,
    }
}

/// An HTTP client builder for tests that talk to a real socket. reqwest's rustls (enabled by the
/// SDK) needs a process-wide crypto provider before the first client is built.
pub fn http() -> reqwest::ClientBuilder {
    bankgate_client::install_tls_provider();
    reqwest::Client::builder()
}

/// A server started by [`TestApp::client`]; stopped when dropped.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub root: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.server.abort();
    }
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub json: Value,
}

impl Reply {
    /// Asserts this is a Flinks error envelope with the given status, code and reason.
    #[track_caller]
    pub fn assert_error(&self, status: u16, flinks_code: &str, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {:#}", self.json);
        assert_envelope(self);
        assert_eq!(self.json["FlinksCode"], flinks_code, "{:#}", self.json);
        assert_eq!(self.json["Reason"], reason, "{:#}", self.json);
    }

    pub fn hint(&self) -> &str {
        self.json["Hint"].as_str().unwrap_or_default()
    }
}

/// What every API response promises (docs/flinks-wire.md, "Request parsing"): JSON, `HttpStatusCode` equal to the status,
/// and on errors `FlinksCode`, `Message`, `Links`, `Reason` and `Hint`.
#[track_caller]
pub fn assert_envelope(reply: &Reply) {
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "content type of {:#}",
        reply.json
    );
    assert_eq!(
        reply.json["HttpStatusCode"],
        reply.status.as_u16(),
        "{:#}",
        reply.json
    );
    if !reply.status.is_success() {
        for field in ["FlinksCode", "Message", "Reason", "Hint"] {
            let value = reply.json[field].as_str().unwrap_or_default();
            assert!(!value.is_empty(), "{field} missing in {:#}", reply.json);
        }
        assert_eq!(
            reply.json["Links"],
            serde_json::json!([]),
            "{:#}",
            reply.json
        );
    }
}

pub fn toolbox_customer() -> CustomerId {
    TOOLBOX_CUSTOMER.parse().unwrap()
}

pub fn path(customer: impl std::fmt::Display, endpoint: &str) -> String {
    format!("/v3/{customer}/BankingServices/{endpoint}")
}

impl TestApp {
    /// A fresh bankgate with the toolbox seeded, its clock stopped at [`START`].
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Like [`TestApp::new`], with settings changed by `change`.
    pub async fn with(change: impl FnOnce(&mut AppSettings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = if on_postgres() {
            let url = crate::pg::fresh_database()
                .await
                .expect("BANKGATE_TEST_BACKEND=postgres needs BANKGATE_TEST_POSTGRES_URL");
            Self::connect_postgres(url).await
        } else {
            Backend::Sqlite(Arc::new(
                SqliteStore::open(dir.path().join("bankgate.db")).unwrap(),
            ))
        };
        let clock = ManualClock::new(START);
        let mut settings = test_settings(&clock);
        change(&mut settings);
        Self::open(dir, clock, settings, backend).await
    }

    async fn connect_postgres(url: String) -> Backend {
        let store = Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap());
        Backend::Postgres { store, url }
    }

    async fn open(
        dir: TempDir,
        clock: ManualClock,
        settings: AppSettings,
        backend: Backend,
    ) -> Self {
        let app = App::build(backend.store(), settings.clone());
        app.state.operator().seed_toolbox().await.unwrap();
        Self {
            dir,
            clock,
            backend,
            settings,
            state: app.state.clone(),
            router: app.api.clone(),
            admin: app.admin.clone(),
            _app: app,
        }
    }

    /// Closes the store (every acknowledged write is on disk) and opens the same file again,
    /// as a restarted server would.
    pub async fn restart(self) -> Self {
        let Self {
            dir,
            clock,
            backend,
            settings,
            state,
            router,
            admin,
            _app,
        } = self;
        drop((router, admin, state, _app));
        // Aborted background tasks (the webhook sender and its attempts) let go of the store
        // when the runtime next polls them.
        for _ in 0..200 {
            if backend.handles() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The last handle: dropping it joins the writer thread.
        assert_eq!(backend.handles(), 1, "something still holds the store");
        let backend = match backend {
            Backend::Sqlite(sqlite) => {
                drop(sqlite);
                Backend::Sqlite(Arc::new(
                    SqliteStore::open(dir.path().join("bankgate.db")).unwrap(),
                ))
            }
            Backend::Postgres { store, url } => {
                if let Some(store) = Arc::into_inner(store) {
                    store.close().await;
                }
                Self::connect_postgres(url).await
            }
        };
        Self::open(dir, clock, settings, backend).await
    }

    /// The SDK, talking to this app over a real socket (port 0), as an integration would.
    pub async fn client(&self) -> (bankgate_client::Client, Served) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bankgate_server::serve(
            listener,
            self.router.clone(),
            async move {
                stopped.await.ok();
            },
        ));
        let client = bankgate_client::Client::new(
            &root,
            &bankgate_client::CustomerId::new(TOOLBOX_CUSTOMER),
        )
        .unwrap();
        (
            client,
            Served {
                root,
                stop: Some(stop),
                server,
            },
        )
    }

    pub fn operator(&self) -> Operator {
        self.state.operator()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        send_to(&self.router, request).await
    }

    /// POST with JSON headers, as the documented curl examples do.
    pub async fn post(&self, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.send(request("POST", uri, headers, body)).await
    }

    pub async fn generate_token_for(
        &self,
        customer: impl std::fmt::Display,
        secret: &str,
    ) -> String {
        let reply = self
            .post(
                &path(customer, "GenerateAuthorizeToken"),
                &[("flinks-auth-key", secret)],
                "",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.json);
        reply.json["Token"].as_str().unwrap().to_owned()
    }

    pub async fn toolbox_token(&self) -> String {
        self.generate_token_for(TOOLBOX_CUSTOMER, TOOLBOX_SECRET)
            .await
    }

    pub async fn login(&self, customer: CustomerId, username: &str) -> LoginId {
        self.operator()
            .create_login(customer, "FlinksCapital", username)
            .await
            .unwrap()
            .id
    }

    pub async fn toolbox_login(&self) -> LoginId {
        self.login(toolbox_customer(), "Greatday").await
    }

    /// Cached-mode /Authorize with a token.
    pub async fn authorize(
        &self,
        customer: impl std::fmt::Display,
        token: &str,
        login: LoginId,
    ) -> Reply {
        self.post(
            &path(customer, "Authorize"),
            &[("flinks-auth-key", token)],
            &format!(r#"{{"LoginId":"{login}","MostRecentCached":true}}"#),
        )
        .await
    }

    pub async fn delete_card(
        &self,
        customer: impl std::fmt::Display,
        api_key: &str,
        login: &str,
    ) -> Reply {
        self.send(request(
            "DELETE",
            &format!("{}/{login}", path(customer, "DeleteCard")),
            &[("x-api-key", api_key)],
            "",
        ))
        .await
    }

    /// Creates an instance and one customer on it; returns (customerId, secret key, x-api-key).
    pub async fn customer_on(
        &self,
        instance: &str,
        kind: InstanceKind,
    ) -> (CustomerId, String, String) {
        let name = instance.parse().unwrap();
        if self.state.store.instance(&name).await.unwrap().is_none() {
            self.operator()
                .create_instance(name, kind, None)
                .await
                .unwrap();
        }
        self.customer_with(instance, true, true).await
    }

    pub async fn customer_with(
        &self,
        instance: &str,
        authorize_token_required: bool,
        api_key_required: bool,
    ) -> (CustomerId, String, String) {
        let (customer, keys) = self
            .operator()
            .create_customer(NewCustomer {
                instance: instance.parse().unwrap(),
                label: "test".to_owned(),
                authorize_token_required,
                api_key_required,
            })
            .await
            .unwrap();
        (
            customer.id,
            keys.secret_key.expose().to_owned(),
            keys.api_key.expose().to_owned(),
        )
    }
}

/// Sends a request through a router and reads the reply as a client would.
pub async fn send_to(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let status = parts.status;
    let content_type = header_text(header::CONTENT_TYPE);
    let retry_after = header_text(header::RETRY_AFTER);
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("body is not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    Reply {
        status,
        content_type,
        retry_after,
        json,
    }
}

/// A request with `Content-Type: application/json` and the given extra headers.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}
