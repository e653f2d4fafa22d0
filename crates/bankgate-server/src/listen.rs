//! The accept loop both listeners run: hyper's HTTP/1 server with its header-read timer and a
//! cap on open connections, so slow or idle clients cannot hold the process's file descriptors.
//! (axum::serve neither times out a request head nor caps connections.)

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// Connections the admin listener keeps open at most: health checks, metrics scrapes and an
/// operator or two. Its own cap, so a flood on the API listener never reaches it.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// File descriptors left to everything but API connections when the cap is derived from the
/// open-file limit: the admin listener's connections, the database (pool or SQLite files), logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection must deliver a complete request head within this, counted from when the
    /// server starts waiting for one: the connection's accept, or the previous answer on a
    /// kept-alive connection (so it is also the keep-alive idle limit). Past it, hyper closes
    /// the connection.
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's accept queue until one
    /// closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
        }
    }
}

/// The API listener's default cap: the process's open-file limit (`ulimit -n`) less a reserve,
/// so accepting never fails with "Too many open files"; 768 under the common 1024.
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let cap = limit.saturating_sub(RESERVED_DESCRIPTORS).clamp(16, 16_384);
    usize::try_from(cap).unwrap_or(16_384)
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; in-flight requests
/// finish first (the caller bounds how long).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first, then accept: at the cap, clients queue in the kernel rather than
        // costing a descriptor each.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.as_mut() => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        // The client address for handlers (brute-force limits per client), as axum's
        // connect info gives it.
        let service =
            app.clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(remote));
                    request.map(axum::body::Body::new)
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A header-read timeout or a client that went away: routine, not an error.
                tracing::debug!(%error, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept: a client that reset before being accepted is routine; anything else (out
/// of descriptors despite the cap) is logged and retried after a pause, as axum does.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept error; retrying in 100ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
