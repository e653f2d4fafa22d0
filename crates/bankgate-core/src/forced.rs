//! Forced failures: rules an operator sets on a sandbox instance so the next calls fail on
//! purpose (docs/flinks-wire.md, "Forced failures"). Kept in the store, so they hold across
//! restarts and nodes; each use is counted down atomically.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{CustomerId, InstanceName, LoginId, Timestamp};

/// The longest a fault may stall an endpoint (the server's own timeouts still apply).
pub const MAX_STALL: Duration = Duration::from_secs(60);
/// The longest a forced 202 may last, on the instance's clock.
pub const MAX_PENDING: Duration = Duration::from_secs(86_400);
/// The most uses one rule may have.
pub const MAX_COUNT: u64 = 1_000;

/// What a rule makes a call answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedAction {
    /// 401 `RETRY_LATER`: the institution cannot be reached.
    RetryLater,
    /// 401 `DISABLED_LOGIN`: the bank disabled the account.
    DisabledLogin,
    /// 401 `INVALID_LOGIN`: as if the user changed their bank password.
    PasswordChanged,
    /// A 203 with a question the user was not asked before.
    NewMfaQuestion,
    /// 500 `AGGREGATION_ERROR`.
    AggregationError,
    /// 202 `OPERATION_PENDING` for this long after the first call it answers.
    Pending(Duration),
    /// An endpoint answers this 5xx status.
    Status(u16),
    /// An endpoint waits this long, then answers as usual.
    Stall(Duration),
}

impl ForcedAction {
    /// How the store keeps it: a name and a number.
    pub fn stored(self) -> (&'static str, i64) {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match self {
            Self::RetryLater => ("RETRY_LATER", 0),
            Self::DisabledLogin => ("DISABLED_LOGIN", 0),
            Self::PasswordChanged => ("INVALID_LOGIN", 0),
            Self::NewMfaQuestion => ("MFA", 0),
            Self::AggregationError => ("AGGREGATION_ERROR", 0),
            Self::Pending(d) => ("OPERATION_PENDING", millis(d)),
            Self::Status(status) => ("status", i64::from(status)),
            Self::Stall(d) => ("stall", millis(d)),
        }
    }

    /// Reads back what [`Self::stored`] wrote.
    pub fn from_stored(name: &str, amount: i64) -> Result<Self, String> {
        let millis = Duration::from_millis(u64::try_from(amount).unwrap_or(0));
        Ok(match name {
            "RETRY_LATER" => Self::RetryLater,
            "DISABLED_LOGIN" => Self::DisabledLogin,
            "INVALID_LOGIN" => Self::PasswordChanged,
            "MFA" => Self::NewMfaQuestion,
            "AGGREGATION_ERROR" => Self::AggregationError,
            "OPERATION_PENDING" => Self::Pending(millis),
            "status" => Self::Status(u16::try_from(amount).map_err(|e| e.to_string())?),
            "stall" => Self::Stall(millis),
            other => return Err(format!("unknown forced action {other:?}")),
        })
    }

    /// How long a call it answers keeps answering the same (the 202 period), if at all.
    pub fn period(self) -> Option<Duration> {
        match self {
            Self::Pending(duration) => Some(duration),
            _ => None,
        }
    }

    /// Whether it is an endpoint fault rather than an /Authorize failure.
    pub fn is_fault(self) -> bool {
        matches!(self, Self::Status(_) | Self::Stall(_))
    }
}

/// The codes a failure rule takes, as the admin API and the CLI spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    RetryLater,
    DisabledLogin,
    InvalidLogin,
    Mfa,
    AggregationError,
    OperationPending,
}

impl FailureCode {
    pub const ALL: [Self; 6] = [
        Self::RetryLater,
        Self::DisabledLogin,
        Self::InvalidLogin,
        Self::Mfa,
        Self::AggregationError,
        Self::OperationPending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryLater => "RETRY_LATER",
            Self::DisabledLogin => "DISABLED_LOGIN",
            Self::InvalidLogin => "INVALID_LOGIN",
            Self::Mfa => "MFA",
            Self::AggregationError => "AGGREGATION_ERROR",
            Self::OperationPending => "OPERATION_PENDING",
        }
    }

    /// The action, given the 202's duration (required for `OPERATION_PENDING` only).
    pub fn action(self, seconds: Option<u64>) -> Result<ForcedAction, String> {
        let fixed = |action| match seconds {
            None => Ok(action),
            Some(_) => Err(format!(
                "`seconds` goes only with OPERATION_PENDING, not {}",
                self.as_str()
            )),
        };
        match self {
            Self::RetryLater => fixed(ForcedAction::RetryLater),
            Self::DisabledLogin => fixed(ForcedAction::DisabledLogin),
            Self::InvalidLogin => fixed(ForcedAction::PasswordChanged),
            Self::Mfa => fixed(ForcedAction::NewMfaQuestion),
            Self::AggregationError => fixed(ForcedAction::AggregationError),
            Self::OperationPending => match seconds {
                Some(secs) if secs >= 1 && secs <= MAX_PENDING.as_secs() => {
                    Ok(ForcedAction::Pending(Duration::from_secs(secs)))
                }
                _ => Err(format!(
                    "OPERATION_PENDING needs `seconds`, how long the 202 lasts: 1 to {}",
                    MAX_PENDING.as_secs()
                )),
            },
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "{s:?} is not a forced failure; use one of {}",
                    known.join(", ")
                )
            })
    }
}

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedTarget {
    /// /Authorize of one LoginId.
    Login(CustomerId, LoginId),
    /// /Authorize of every LoginId of a sandbox user of a customer, and live /Authorize with
    /// that username. Kept lowercase: usernames match ignoring case.
    Username(CustomerId, String),
    /// Every call of one endpoint (by its name) on the instance.
    Endpoint(String),
}

impl ForcedTarget {
    /// The target as the columns that keep it: customerId, LoginId, username, endpoint.
    pub fn parts(
        &self,
    ) -> (
        Option<CustomerId>,
        Option<LoginId>,
        Option<&str>,
        Option<&str>,
    ) {
        match self {
            Self::Login(customer, login) => (Some(*customer), Some(*login), None, None),
            Self::Username(customer, username) => (Some(*customer), None, Some(username), None),
            Self::Endpoint(endpoint) => (None, None, None, Some(endpoint)),
        }
    }
}

/// One rule, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedRule {
    /// A UUID, so a rule can be named in hints and listings.
    pub id: String,
    pub instance: InstanceName,
    pub target: ForcedTarget,
    pub action: ForcedAction,
    /// Uses left.
    pub remaining: u64,
    /// The end of a 202 period in progress, on the instance's clock.
    pub active_until: Option<Timestamp>,
    pub created_at: Timestamp,
}
