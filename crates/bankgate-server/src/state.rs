//! What every handler shares.

use std::sync::Arc;

use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{Clock, InstanceName};
use bankgate_store::Store;

use crate::guard::{AttemptGuard, Unlimited};
use crate::operator::Operator;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub bank: SandboxBank,
    pub guard: Arc<dyn AttemptGuard>,
    /// The instance Connect pages on a bare host default to.
    pub default_instance: InstanceName,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            bank: SandboxBank::builtin(),
            guard: Arc::new(Unlimited),
            default_instance: InstanceName::toolbox(),
        }
    }

    pub fn operator(&self) -> Operator {
        Operator::new(self.store.clone(), self.clock.clone(), self.bank.clone())
    }
}
