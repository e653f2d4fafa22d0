//! The accept loop both listeners run: hyper's HTTP/1 server, a cap on open connections, and a
//! per-connection watch that closes a connection slow to send its request head or idle too long
//! between requests, so slow or idle clients cannot hold the process's file descriptors.
//! (axum::serve has none of these. hyper's own header-read timer starts as soon as it waits for
//! a request, idle time included, so it cannot keep a kept-alive connection longer than a slow
//! head: a proxy pooling connections to bankgate, e.g. a load balancer idling 60 s, needs that.)

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
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
    /// A request head must be complete within this of its first byte (for a connection's first
    /// request, of the accept); past it the connection is closed.
    pub header_read_timeout: Duration,
    /// A kept-alive connection may wait this long after an answer for the next request's first
    /// byte; past it the connection is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's accept queue until one
    /// closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
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
    // The watch below times heads and idle connections (see the module comment).
    http.header_read_timeout(None);
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
        let phase = Arc::new(Mutex::new(Phase::Waiting {
            since: Instant::now(),
            first: true,
        }));
        let (on_request, on_answer) = (phase.clone(), phase.clone());
        let service = app
            .clone()
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                set(&on_request, Phase::Busy);
                // The client address for handlers (brute-force limits per client), as
                // axum's connect info gives it.
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                request.map(axum::body::Body::new)
            })
            .map_future(move |answer| {
                let on_answer = on_answer.clone();
                async move {
                    let answer = answer.await;
                    set(
                        &on_answer,
                        Phase::Waiting {
                            since: Instant::now(),
                            first: false,
                        },
                    );
                    answer
                }
            });
        let io = Watched {
            inner: stream,
            phase: phase.clone(),
        };
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let mut connection = Box::pin(connection);
            loop {
                let deadline = deadline(&phase, limits);
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            // A client that went away: routine, not an error.
                            tracing::debug!(%error, "connection closed");
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        if Instant::now() >= self::deadline(&phase, limits) {
                            tracing::debug!("closing a connection: request head too slow, or idle");
                            break;
                        }
                    }
                }
            }
            // Dropping the connection closes the socket, then frees the slot.
            drop(connection);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Where a connection stands, for its watch.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's first byte: since the accept (`first`) or the last answer.
    Waiting { since: Instant, first: bool },
    /// A request head has begun arriving.
    Head { since: Instant },
    /// A request is being read or handled (the body timeout and the handlers bound this).
    Busy,
}

fn set(phase: &Mutex<Phase>, to: Phase) {
    *phase.lock().unwrap_or_else(PoisonError::into_inner) = to;
}

/// When the connection must have moved on from where it stands.
fn deadline(phase: &Mutex<Phase>, limits: ConnectionLimits) -> Instant {
    match *phase.lock().unwrap_or_else(PoisonError::into_inner) {
        Phase::Waiting { since, first: true } | Phase::Head { since } => {
            since + limits.header_read_timeout
        }
        Phase::Waiting {
            since,
            first: false,
        } => since + limits.idle_timeout,
        // Nothing to time: look again later.
        Phase::Busy => Instant::now() + limits.header_read_timeout.min(limits.idle_timeout),
    }
}

/// The connection's socket, noting when a waited-for request starts arriving.
struct Watched {
    inner: TcpStream,
    phase: Arc<Mutex<Phase>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
            if let Phase::Waiting { .. } = *phase {
                *phase = Phase::Head {
                    since: Instant::now(),
                };
            }
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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
