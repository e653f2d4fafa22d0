//! Forced failures (docs/flinks-wire.md, "Forced failures"): what operators set on a sandbox
//! instance so the next calls fail on purpose. One implementation for the admin API and the CLI.

use std::time::Duration;

use bankgate_core::forced::{
    FailureCode, ForcedAction, ForcedRule, ForcedTarget, MAX_COUNT, MAX_STALL,
};
use bankgate_core::model::{InstanceKind, Tenant};
use bankgate_core::{CustomerId, DomainError, InstanceName, LoginId};
use bankgate_store::ForcedScope;

use super::Operator;
use crate::endpoint::Endpoint;

/// The 5xx statuses a fault may answer.
pub const FAULT_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// Why a rule was not set.
#[derive(Debug)]
pub enum ForcedError {
    /// Production instances take no rules: they must behave as Flinks does.
    Production {
        instance: InstanceName,
    },
    Domain(DomainError),
}

impl From<DomainError> for ForcedError {
    fn from(error: DomainError) -> Self {
        Self::Domain(error)
    }
}

impl std::fmt::Display for ForcedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Production { instance } => write!(
                f,
                "{instance} is a production instance; forced failures and faults can only be \
                 set on sandbox instances"
            ),
            Self::Domain(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ForcedError {}

/// Who a failure rule is for.
#[derive(Debug, Clone)]
pub enum FailureFor {
    Login(LoginId),
    Username(String),
}

/// A failure rule as asked for.
#[derive(Debug, Clone)]
pub struct NewFailure {
    pub code: FailureCode,
    /// How many calls it answers (1 to [`MAX_COUNT`]).
    pub count: i64,
    /// How long the 202 lasts (`OPERATION_PENDING` only).
    pub seconds: Option<u64>,
}

/// What a fault does.
#[derive(Debug, Clone, Copy)]
pub enum FaultKind {
    Status(u16),
    StallSeconds(u64),
}

fn count_of(count: i64) -> Result<u64, DomainError> {
    u64::try_from(count)
        .ok()
        .filter(|count| (1..=MAX_COUNT).contains(count))
        .ok_or_else(|| {
            DomainError::Invalid(format!(
                "count must be a whole number from 1 to {MAX_COUNT} (how many calls fail), not \
                 {count}"
            ))
        })
}

impl Operator {
    /// The customer's tenant, on a sandbox instance.
    async fn sandbox_tenant(&self, customer_id: CustomerId) -> Result<Tenant, ForcedError> {
        let tenant = self.tenant(customer_id).await?;
        if tenant.instance.kind != InstanceKind::Sandbox {
            return Err(ForcedError::Production {
                instance: tenant.instance.name,
            });
        }
        Ok(tenant)
    }

    /// Makes the next `count` /Authorize calls of a LoginId (or of every LoginId of a sandbox
    /// user, and live connections with that username) answer a documented failure.
    pub async fn add_failure(
        &self,
        customer_id: CustomerId,
        target: FailureFor,
        failure: NewFailure,
    ) -> Result<ForcedRule, ForcedError> {
        let tenant = self.sandbox_tenant(customer_id).await?;
        let count = count_of(failure.count)?;
        let action = failure
            .code
            .action(failure.seconds)
            .map_err(DomainError::Invalid)?;
        let target = match target {
            FailureFor::Login(login_id) => {
                if self.store.login(customer_id, login_id).await?.is_none() {
                    return Err(DomainError::NotFound {
                        what: "LoginId",
                        id: login_id.to_string(),
                    }
                    .into());
                }
                ForcedTarget::Login(customer_id, login_id)
            }
            FailureFor::Username(username) => {
                let known = self
                    .bank
                    .institutions()
                    .iter()
                    .any(|institution| institution.user(&username).is_some());
                if !known {
                    let users: Vec<&str> = self
                        .bank
                        .institutions()
                        .iter()
                        .flat_map(|institution| institution.users.iter().map(|u| u.username))
                        .collect();
                    return Err(DomainError::Invalid(format!(
                        "{username:?} is no sandbox user; known: {}",
                        users.join(", ")
                    ))
                    .into());
                }
                ForcedTarget::Username(customer_id, username.to_lowercase())
            }
        };
        let rule = ForcedRule {
            id: uuid::Uuid::new_v4().to_string(),
            instance: tenant.instance.name.clone(),
            target,
            action,
            remaining: count,
            active_until: None,
            created_at: tenant.instance.now(self.clock.as_ref()),
        };
        self.store.add_forced_rule(&rule).await?;
        Ok(rule)
    }

    /// Makes the next `count` calls of an endpoint on a sandbox instance answer a 5xx, or wait
    /// before answering as usual.
    pub async fn add_fault(
        &self,
        instance: &InstanceName,
        endpoint: &str,
        kind: FaultKind,
        count: i64,
    ) -> Result<ForcedRule, ForcedError> {
        let found = self.instance(instance).await?;
        if found.kind != InstanceKind::Sandbox {
            return Err(ForcedError::Production {
                instance: found.name,
            });
        }
        let count = count_of(count)?;
        let endpoint = Endpoint::named(endpoint).ok_or_else(|| {
            let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
            DomainError::Invalid(format!(
                "{endpoint:?} is not an endpoint bankgate serves; known: {}",
                known.join(", ")
            ))
        })?;
        let action = match kind {
            FaultKind::Status(status) if FAULT_STATUSES.contains(&status) => {
                ForcedAction::Status(status)
            }
            FaultKind::Status(status) => {
                return Err(DomainError::Invalid(format!(
                    "a fault answers 500, 502, 503 or 504, not {status}"
                ))
                .into());
            }
            FaultKind::StallSeconds(secs) if (1..=MAX_STALL.as_secs()).contains(&secs) => {
                ForcedAction::Stall(Duration::from_secs(secs))
            }
            FaultKind::StallSeconds(secs) => {
                return Err(DomainError::Invalid(format!(
                    "a stall lasts 1 to {} seconds, not {secs}",
                    MAX_STALL.as_secs()
                ))
                .into());
            }
        };
        let rule = ForcedRule {
            id: uuid::Uuid::new_v4().to_string(),
            instance: found.name.clone(),
            target: ForcedTarget::Endpoint(endpoint.name().to_owned()),
            action,
            remaining: count,
            active_until: None,
            created_at: found.now(self.clock.as_ref()),
        };
        self.store.add_forced_rule(&rule).await?;
        Ok(rule)
    }

    /// The failure rules of a customer, or of one of its LoginIds.
    pub async fn failures(
        &self,
        customer_id: CustomerId,
        login_id: Option<LoginId>,
    ) -> Result<Vec<ForcedRule>, DomainError> {
        self.tenant(customer_id).await?;
        self.store
            .forced_rules(&failure_scope(customer_id, login_id))
            .await
    }

    /// Clears the failure rules of a customer, or of one of its LoginIds; returns how many.
    pub async fn clear_failures(
        &self,
        customer_id: CustomerId,
        login_id: Option<LoginId>,
    ) -> Result<u64, DomainError> {
        self.tenant(customer_id).await?;
        self.store
            .clear_forced_rules(&failure_scope(customer_id, login_id))
            .await
    }

    pub async fn faults(&self, instance: &InstanceName) -> Result<Vec<ForcedRule>, DomainError> {
        self.instance(instance).await?;
        self.store
            .forced_rules(&ForcedScope::Faults(instance.clone()))
            .await
    }

    pub async fn clear_faults(&self, instance: &InstanceName) -> Result<u64, DomainError> {
        self.instance(instance).await?;
        self.store
            .clear_forced_rules(&ForcedScope::Faults(instance.clone()))
            .await
    }
}

fn failure_scope(customer_id: CustomerId, login_id: Option<LoginId>) -> ForcedScope {
    match login_id {
        Some(login_id) => ForcedScope::Login(customer_id, login_id),
        None => ForcedScope::Customer(customer_id),
    }
}

/// How hints and listings describe a rule's action.
pub fn describe(action: ForcedAction) -> String {
    match action {
        ForcedAction::RetryLater => "RETRY_LATER".to_owned(),
        ForcedAction::DisabledLogin => "DISABLED_LOGIN".to_owned(),
        ForcedAction::PasswordChanged => "INVALID_LOGIN (password changed)".to_owned(),
        ForcedAction::NewMfaQuestion => "MFA (a new security question)".to_owned(),
        ForcedAction::AggregationError => "AGGREGATION_ERROR".to_owned(),
        ForcedAction::Pending(period) => {
            format!("OPERATION_PENDING for {} s", period.as_secs())
        }
        ForcedAction::Status(status) => format!("HTTP {status}"),
        ForcedAction::Stall(period) => format!("a {} s stall", period.as_secs()),
    }
}
