//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{Clock, InstanceName};
use bankgate_store::Store;

use crate::guard::{LimitConfig, Limiter};
use crate::journal::{self, Journal};
use crate::metrics::Metrics;
use crate::operator::Operator;

/// The state handlers and middleware share, behind one `Arc`: axum clones it for every
/// extractor and layer of every request, so a clone must cost one reference count, not a copy
/// of the sandbox bank and the limiter (the profile of GenerateAuthorizeToken showed those
/// copies and their frees at ~4% of the server's time).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], reached through `Deref`.
#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub bank: SandboxBank,
    /// The brute-force limits (off unless the app is built with some).
    pub limiter: Limiter,
    /// The instance Connect pages on a bare host default to.
    pub default_instance: InstanceName,
    pub metrics: Arc<Metrics>,
    /// The last requests of each instance, as this node saw them.
    pub journal: Arc<Journal>,
    /// How long a client may take to send a request body before it is refused (400).
    pub body_read_timeout: std::time::Duration,
    /// Wakes the webhook sender when callbacks are queued.
    pub webhook_wake: Arc<tokio::sync::Notify>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State over `store`, whose commits and token outcomes feed this state's metrics.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::from(Shared::new(store, clock))
    }

    pub fn operator(&self) -> Operator {
        Operator::new(self.store.clone(), self.clock.clone(), self.bank.clone())
    }
}

impl From<Shared> for AppState {
    fn from(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Shared {
    /// The defaults over `store` (no limits, the default journal), to adjust before it is
    /// frozen into an [`AppState`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let metrics = Arc::new(Metrics::new());
        store.observe(metrics.clone());
        Self {
            limiter: Limiter::new(LimitConfig::off(), store.clone(), clock.clone()),
            store,
            clock,
            bank: SandboxBank::builtin(),
            default_instance: InstanceName::toolbox(),
            metrics,
            journal: Arc::new(Journal::new(journal::DEFAULT_CAPACITY)),
            body_read_timeout: crate::body::BODY_TIMEOUT,
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }
}
