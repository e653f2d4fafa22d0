//! bankgate's HTTP surface: the Flinks API on `{instance}-api` hosts (and bare hosts), and the
//! Connect page on `{instance}-iframe` hosts, and the admin API on its own listener.

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod connect;
pub mod error;
pub mod guard;
pub mod host;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod purge;
pub mod routing;
pub mod state;

use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::{ApiError, Endpoint};
pub use state::AppState;

/// The public API as one service: canonicalisation runs before routing, every answer is JSON.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/v3/{customer_id}/BankingServices/GenerateAuthorizeToken",
            post(api::generate_authorize_token::generate_authorize_token),
        )
        .route(
            "/v3/{customer_id}/BankingServices/Authorize",
            post(api::authorize::authorize),
        )
        .route(
            "/v3/{customer_id}/BankingServices/DeleteCard/{login_id}",
            delete(api::delete_card::delete_card),
        )
        .route(
            "/v3/{customer_id}/BankingServices/GetAccountsSummary",
            post(api::accounts::get_accounts_summary),
        )
        .route(
            "/v3/{customer_id}/BankingServices/GetAccountsDetail",
            post(api::accounts::get_accounts_detail),
        )
        .route(
            "/v3/{customer_id}/BankingServices/GetStatements",
            post(api::accounts::get_statements),
        )
        // Documented as GET; some clients POST (decisions §4).
        .route(
            "/v3/{customer_id}/BankingServices/GetAccountsSummaryAsync/{request_id}",
            get(api::accounts::get_accounts_summary_async)
                .post(api::accounts::get_accounts_summary_async),
        )
        .route(
            "/v3/{customer_id}/BankingServices/GetAccountsDetailAsync/{request_id}",
            get(api::accounts::get_accounts_detail_async)
                .post(api::accounts::get_accounts_detail_async),
        )
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
        // The OpenAPI document of this API (the admin listener also serves it).
        .route("/openapi.json", get(openapi::public_json))
        .route("/v2/assets/connect.js", get(connect::script))
        .route("/v2/assets/connect.css", get(connect::stylesheet))
        .fallback(routing::not_found)
        .method_not_allowed_fallback(routing::method_not_allowed)
        .with_state(state.clone());

    // A router with no routes of its own: its middleware runs before the inner router matches.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn(routing::canonicalize))
        .layer(DefaultBodyLimit::max(body::BODY_LIMIT))
        // A client that stops sending its body mid-way gets a 400, not a connection held open.
        .layer(RequestBodyTimeoutLayer::new(body::BODY_TIMEOUT))
        // A bug must still answer in the envelope, not drop the connection.
        .layer(CatchPanicLayer::custom(error::panic_response))
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
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Serves `app` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connect info gives handlers the client address (brute-force limits per client).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
