//! The reference: a bare axum server doing the same shape of exchange as GenerateAuthorizeToken
//! (a POST with a small JSON body in, a new UUID in a small JSON body out), with nothing else.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::routing::post;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::floor::{self, Floor};

pub const PATH: &str = "/GenerateAuthorizeToken";
/// A webhook receiver that answers every callback 200 at once (the live scenarios' healthy one).
pub const HOOK_PATH: &str = "/hook";
/// A webhook receiver that answers every callback 500 at once (every attempt fails and is
/// retried 30 minutes later on the instance's clock).
pub const HOOK_500_PATH: &str = "/hook500";
/// What wrk posts to it.
pub const BODY: &str = r#"{"MostRecentCached":true,"Tag":"bench"}"#;

/// Served on its own runtime, built like bankgate's `#[tokio::main]` (multi-thread, one worker
/// per CPU), and idle while bankgate is measured.
pub struct Baseline {
    runtime: tokio::runtime::Runtime,
    pub address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    floor: floor::Slot,
}

impl Baseline {
    pub fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the baseline's tokio runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("cannot listen on 127.0.0.1")?;
        let address = listener.local_addr()?;
        let floor = floor::Slot::default();
        let app = Router::new()
            .route(PATH, post(answer))
            .route(HOOK_PATH, post(|| async { axum::http::StatusCode::OK }))
            .route(
                HOOK_500_PATH,
                post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route(floor::TOKEN_PATH, post(floor::token))
            .route(floor::AUTHORIZE_PATH, post(floor::authorize))
            .with_state(floor.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            runtime,
            address,
            stop,
            task,
            floor,
        })
    }

    /// Serves the durable floor from now on (on the run's database, once it exists).
    pub fn serve_floor(&self, floor: Floor) {
        // Set once, by the one caller; a second floor would be a bench bug worth no panic.
        let _ = self.floor.set(floor);
    }

    /// The runtime, also used for the bench's own few HTTP calls outside measurements.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    pub fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.runtime
            .block_on(self.task)
            .context("the baseline server task failed")?
            .context("the baseline server failed")
    }
}

/// Parses the body as JSON and answers a fresh UUID from the OS CSPRNG, as bankgate's tokens are.
async fn answer(Json(_body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "HttpStatusCode": 200,
        "Token": uuid::Uuid::new_v4().to_string(),
    }))
}
