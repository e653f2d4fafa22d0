//! bankgate's HTTP surface: the Flinks API on `{instance}-api` hosts (and bare hosts), and the
//! Connect page on `{instance}-iframe` hosts, and the admin API on its own listener.
//!
//! Modules depend one way: `endpoint` and `error` at the bottom; `body`, `host`, `journal`,
//! `auth`, `guard`, `metrics`, `state` above them; the handlers (`api`, `connect`, `admin`) above those;
//! `openapi` and `routing` read the handlers' routers; `app` wires everything.

pub mod admin;
pub mod api;
mod app;
pub mod auth;
pub mod body;
pub mod connect;
pub mod endpoint;
pub mod error;
pub mod guard;
pub mod host;
pub mod journal;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod purge;
pub mod routing;
pub mod state;
pub mod webhooks;

use std::future::Future;

use axum::Router;

pub use app::{App, AppSettings, Handover, admin_app, app, starting_admin, starting_api};
pub use error::{ApiError, Endpoint};
pub use state::AppState;

/// Serves `app` until `shutdown` resolves, with the default connection limits; in-flight
/// requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve_with(listener, app, listen::ConnectionLimits::default(), shutdown).await
}
