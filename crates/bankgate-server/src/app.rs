//! Builds the application from settings: the one place the public API, the admin API and the
//! background purge are wired, used by `bankgate serve` and by the integration tests alike.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bankgate_core::Clock;
use bankgate_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::admin::{self, AdminState, AdminToken, AdminTokenSetting};
use crate::error::{ApiError, FlinksCode, Reason};
use crate::guard::{LimitConfig, Limiter};
use crate::journal::{self, Journal, JournalState};
use crate::state::{AppState, Shared};
use crate::{api, body, connect, error, metrics, openapi, purge, routing, webhooks};

/// What the application is built from, besides its store.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// The clock tokens and sessions run on.
    pub clock: Arc<dyn Clock>,
    /// The brute-force limiter's limits.
    pub limits: LimitConfig,
    /// The admin token (`None`: the admin API refuses every `/admin/` call).
    pub admin_token: Option<String>,
    /// How often expired rows are purged (`None`: never in the background).
    pub purge_interval: Option<Duration>,
    /// How long a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// How many requests the journal keeps per instance (0: no journal).
    pub journal_capacity: usize,
    /// How often the webhook sender looks for due callbacks besides being woken when some are
    /// queued (`None`: no sender on this node).
    pub webhook_interval: Option<Duration>,
}

/// The built application: its state, the public and admin services, and the purge task,
/// which stops when the `App` is dropped.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    /// The public Flinks API and Connect pages.
    pub api: Router,
    /// The admin API, for its own listener.
    pub admin: Router,
    purger: Option<tokio::task::JoinHandle<()>>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Wires everything over `store`; its commits and token outcomes feed the app's metrics.
    /// With a purge or webhook interval, must run inside a tokio runtime (it spawns those tasks).
    pub fn build(store: Arc<dyn Store>, settings: AppSettings) -> Self {
        let mut shared = Shared::new(store, settings.clock.clone());
        shared.body_read_timeout = settings.body_read_timeout;
        shared.limiter = Limiter::new(settings.limits, shared.store.clone(), settings.clock);
        shared.journal = Arc::new(Journal::new(settings.journal_capacity));
        let state = AppState::from(shared);
        let purger = settings.purge_interval.map(|every| {
            purge::spawn_purger(
                state.store.clone(),
                state.clock.clone(),
                state.metrics.clone(),
                every,
            )
        });
        let sender = settings
            .webhook_interval
            .map(|every| webhooks::spawn_sender(state.clone(), every));
        let token = settings.admin_token.as_deref().map(AdminToken::new);
        Self {
            api: app(state.clone()),
            admin: admin_app(state.clone(), token),
            state,
            purger,
            sender,
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(purger) = self.purger.take() {
            purger.abort();
        }
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
    }
}

/// The public API as one service over `state`: canonicalisation runs before routing, every
/// answer is JSON.
pub fn app(state: AppState) -> Router {
    let (flinks, _) = api::routes().split_for_parts();
    let api = flinks
        // Sandbox faults, on the Flinks endpoints only (the routes above this line).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::faults::apply,
        ))
        // The Connect page (iframe hosts, or a bare host with ?instance=).
        .route("/", get(connect::page).post(connect::step))
        .route("/v2", get(connect::page).post(connect::step))
        .route("/v2/", get(connect::page).post(connect::step))
        .route(
            "/v2/Credential/{institution}",
            get(connect::page_at_institution).post(connect::step),
        )
        .route(
            "/v2/Credential/{institution}/",
            get(connect::page_at_institution).post(connect::step),
        )
        .route("/v2/assets/connect.js", get(connect::script))
        .route("/v2/assets/connect.css", get(connect::stylesheet))
        // The OpenAPI document of this API (the admin listener also serves it).
        .route("/openapi.json", get(openapi::public_json))
        .fallback(routing::not_found)
        .method_not_allowed_fallback(routing::method_not_allowed)
        .with_state(state.clone());

    // A router with no routes of its own: its middleware runs before the inner router matches.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routing::canonicalize,
        ))
        .layer(DefaultBodyLimit::max(body::BODY_LIMIT))
        // A client that stops sending its body mid-way, or drips it, gets a 400, not a
        // connection held open: one deadline for the whole body.
        .layer(RequestBodyDeadlineLayer::new(state.body_read_timeout))
        // A bug must still answer in the envelope, not drop the connection.
        .layer(CatchPanicLayer::custom(error::panic_response))
        // Outside the body limit and the panic catcher, so the journal sees what clients got.
        .layer(axum::middleware::from_fn_with_state(
            JournalState {
                journal: state.journal.clone(),
                clock: state.clock.clone(),
            },
            journal::record,
        ))
        // Outside everything that answers, so refused hosts, oversized bodies and panics count.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // The path is not recorded: it can carry a LoginId.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        endpoint = tracing::field::Empty,
                        instance = tracing::field::Empty,
                        customer_id = tracing::field::Empty,
                        request_id = tracing::field::Empty,
                        reason = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(log_answer),
        )
        .layer(nosniff())
}

/// The line that ends each request to the public API, inside its span (instance, customerId,
/// RequestId, Reason). Refusals at INFO and server errors at WARN: they are what an operator
/// reads the log for. Successes at DEBUG (`--log info,bankgate_server::requests=debug` shows
/// them): formatting and writing a line per success cost about a sixth of a token's CPU time
/// (README, Performance).
fn log_answer(response: &Response, latency: Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    // Whole microseconds: a raw f64 prints as 0.7351979999999999.
    let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
    if status >= 500 {
        tracing::warn!(target: "bankgate_server::requests", status, latency_ms, "answered");
    } else if status >= 400 {
        tracing::info!(target: "bankgate_server::requests", status, latency_ms, "answered");
    } else {
        tracing::debug!(target: "bankgate_server::requests", status, latency_ms, "answered");
    }
}

/// `X-Content-Type-Options: nosniff` on every answer (JSON, the Connect pages and their assets,
/// refusals made by the outer layers): a browser must not read an answer as another type.
fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

/// The admin listener's service over `state`. Without a token, `/admin/` refuses every call.
pub fn admin_app(state: AppState, token: Option<AdminToken>) -> Router {
    let (documented, _) = admin::routes().split_for_parts();
    documented
        .route("/openapi/public.json", get(openapi::public_json))
        .route("/openapi/admin.json", get(openapi::admin_json))
        .fallback(admin::admin_not_found)
        .with_state(AdminState::new(state.clone()))
        .layer(Extension(AdminTokenSetting::new(
            token,
            state.clock.clone(),
        )))
        .layer(RequestBodyDeadlineLayer::new(state.body_read_timeout))
        // Outside the router: axum sets `Allow` on a 405 after the router's fallback answers.
        .layer(axum::middleware::from_fn(explain_method_not_allowed))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    // The route template, not the path: paths carry customerIds and LoginIds.
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str)
                        .to_owned();
                    tracing::info_span!(
                        "admin_request",
                        method = %request.method(),
                        route,
                        reason = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(nosniff())
}

/// One port's service across the start: it answers as `starting` until the application's
/// router is handed over, then as the application, on the same socket and connections (so no
/// request can reach a server that is going away).
#[derive(Debug, Clone)]
pub struct Handover {
    ready: Arc<OnceLock<Router>>,
    starting: Router,
}

impl Handover {
    pub fn new(starting: Router) -> Self {
        Self {
            ready: Arc::new(OnceLock::new()),
            starting,
        }
    }

    /// From now on, every request goes to `app` (the first call wins).
    pub fn hand_over(&self, app: Router) {
        let _ = self.ready.set(app);
    }

    /// The router to serve.
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.clone())
    }
}

impl tower::Service<Request> for Handover {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let mut router = self.ready.get().unwrap_or(&self.starting).clone();
        tower::Service::call(&mut router, request)
    }
}

/// The public listener's service while the database is not open yet (a node started before
/// its PostgreSQL): every request answers 503 `RETRY_LATER` (`store_unavailable`), so a client
/// or load balancer retries rather than failing on a refused connection.
pub fn starting_api() -> Router {
    Router::new().fallback(|| async { ApiError::starting() })
}

/// The admin listener's service while the database is not open yet: alive (`/healthz` 200),
/// not ready (`/readyz` 503), and every other route 503 like the public API.
pub fn starting_admin() -> Router {
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz_starting))
        .fallback(|| async { ApiError::starting() })
}

/// Turns axum's bare 405 into the envelope, naming the methods the document gives the route.
async fn explain_method_not_allowed(request: Request, next: Next) -> Response {
    let method: Method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allowed = openapi::admin_methods_at(&path);
    let mut answer = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        FlinksCode::InvalidRequest,
        "The requested method is not allowed",
        Reason::MethodNotAllowed,
        format!(
            "This route does not take {method}; call it with {}.",
            allowed.join(" or ")
        ),
    )
    .into_response();
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}
