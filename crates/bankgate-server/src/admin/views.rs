//! What operators see: the JSON the admin API answers and the CLI prints with `--json`.
//! Credentials appear only where they are created (a new customer, a rotation), never again.

use bankgate_core::Timestamp;
use bankgate_core::model::{Customer, CustomerKeys, Instance, Login};
use bankgate_core::time_format::flinks_datetime;
use bankgate_store::{
    ANY_CLIENT, AttemptFailures, Delivery, DeliveryStatus, MAX_DELIVERY_ATTEMPTS, Reset, Webhook,
};
use serde::Serialize;

use crate::operator::{InstanceClock, TokenState};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub name: String,
    /// `sandbox` or `production`.
    pub kind: String,
    pub token_lifetime_seconds: u64,
    /// How far the instance's clock runs ahead of real time (sandboxes only).
    pub clock_offset_seconds: f64,
    pub created_at: String,
}

impl From<&Instance> for InstanceView {
    fn from(instance: &Instance) -> Self {
        Self {
            name: instance.name.to_string(),
            kind: instance.kind.as_str().to_owned(),
            token_lifetime_seconds: instance.token_lifetime.as_secs(),
            clock_offset_seconds: instance.clock_offset.as_secs_f64(),
            created_at: instance.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub customer_id: String,
    pub instance: String,
    pub label: String,
    pub authorize_token_required: bool,
    pub api_key_required: bool,
    pub created_at: String,
}

impl From<&Customer> for CustomerView {
    fn from(customer: &Customer) -> Self {
        Self {
            customer_id: customer.id.to_string(),
            instance: customer.instance.to_string(),
            label: customer.label.clone(),
            authorize_token_required: customer.authorize_token_required,
            api_key_required: customer.api_key_required,
            created_at: customer.created_at.to_rfc3339(),
        }
    }
}

/// A customer just created: the only time its keys are shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCustomerView {
    #[serde(flatten)]
    pub customer: CustomerView,
    /// The `flinks-auth-key` of GenerateAuthorizeToken.
    pub secret_key: String,
    /// The `x-api-key` of DeleteCard and the data endpoints.
    pub api_key: String,
}

impl CreatedCustomerView {
    pub fn new(customer: &Customer, keys: &CustomerKeys) -> Self {
        Self {
            customer: customer.into(),
            secret_key: keys.secret_key.expose().to_owned(),
            api_key: keys.api_key.expose().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKeysView {
    pub customer_id: String,
    pub secret_key: String,
    pub api_key: String,
    pub old_keys_valid_for_seconds: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginView {
    pub login_id: String,
    pub customer_id: String,
    pub institution: String,
    pub username: String,
    /// False for connections made with `Save: false`, which live only as long as their session.
    pub saved: bool,
    pub created_at: String,
    /// As /Authorize reports it (`2026-01-21T20:47:47.145999`, UTC, no zone).
    pub last_refresh: String,
}

impl From<&Login> for LoginView {
    fn from(login: &Login) -> Self {
        Self {
            login_id: login.id.to_string(),
            customer_id: login.customer_id.to_string(),
            institution: login.institution.clone(),
            username: login.username.clone(),
            saved: login.saved,
            created_at: login.created_at.to_rfc3339(),
            last_refresh: flinks_datetime(login.last_refresh),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetView {
    pub instance: String,
    pub tokens: u64,
    pub login_ids: u64,
    pub sessions: u64,
    pub pending_mfa: u64,
}

impl ResetView {
    pub fn new(instance: &str, reset: Reset) -> Self {
        Self {
            instance: instance.to_owned(),
            tokens: reset.tokens,
            login_ids: reset.logins,
            sessions: reset.sessions,
            pending_mfa: reset.pending,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    pub instance: String,
    /// The instance's time (RFC 3339, UTC).
    pub now: String,
    pub offset_seconds: f64,
    /// Whether the instance reads real time (no offset).
    pub real_time: bool,
}

impl ClockView {
    pub fn new(instance: &str, clock: InstanceClock) -> Self {
        Self {
            instance: instance.to_owned(),
            now: clock.now.to_rfc3339(),
            offset_seconds: clock.offset.as_secs_f64(),
            real_time: clock.offset.is_zero(),
        }
    }
}

/// A token's state; the token itself is never echoed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// `issued` (unused, valid), `consumed` or `expired`, on the instance's clock.
    pub status: String,
    pub customer_id: String,
    pub instance: String,
    pub issued_at: String,
    pub expires_at: String,
    pub consumed_at: Option<String>,
    /// The RequestId the token opened, when /Authorize consumed it.
    pub request_id: Option<String>,
}

impl From<&TokenState> for TokenView {
    fn from(state: &TokenState) -> Self {
        let record = &state.record;
        Self {
            status: state.status.as_str().to_owned(),
            customer_id: record.customer_id.to_string(),
            instance: state.instance.to_string(),
            issued_at: record.issued_at.to_rfc3339(),
            expires_at: record.expires_at.to_rfc3339(),
            consumed_at: record.consumed_at.map(|at| at.to_rfc3339()),
            request_id: record.request_id.map(|id| id.to_string()),
        }
    }
}

/// A brute-force lockout in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockoutView {
    pub customer_id: String,
    /// `secret_key`, or `bank_login:` and a digest of institution and username.
    pub target: String,
    /// The client address (IPv6: its /64), `unknown` for calls without one, or `*`: the
    /// target itself, locked for the clients that failed on it.
    pub client: String,
    /// The limit that was reached.
    pub max_failures: u64,
    /// Failures recorded on this counter since it began (also during the lockout).
    pub total_failures: u64,
    pub last_failure_at: String,
    pub locked_until: String,
    pub retry_after_seconds: u64,
}

impl LockoutView {
    /// `None` when the row is not locked at `now`.
    pub fn new(row: &AttemptFailures, now: Timestamp) -> Option<Self> {
        let until = row.locked_at(now)?;
        let left = u64::try_from(until.as_micros().saturating_sub(now.as_micros())).unwrap_or(0);
        Some(Self {
            customer_id: row.key.customer_id.to_string(),
            target: row.key.target.clone(),
            client: row.key.client.clone(),
            max_failures: row.max_failures,
            total_failures: row.total,
            last_failure_at: row.last_failure.to_rfc3339(),
            locked_until: until.to_rfc3339(),
            retry_after_seconds: left.div_ceil(1_000_000).max(1),
        })
    }

    /// One line of `bankgate lockouts list`.
    pub fn line(&self) -> String {
        let who = if self.client == ANY_CLIENT {
            "clients that failed on it".to_owned()
        } else {
            self.client.clone()
        };
        format!(
            "{}\t{}\t{}\tuntil {} ({} s)",
            self.customer_id, self.target, who, self.locked_until, self.retry_after_seconds
        )
    }
}

/// What clearing lockouts did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClearedLockoutsView {
    /// Failure counters forgotten (locked or not).
    pub cleared: u64,
}

/// An instance's webhook. `secret` appears only where it is made (the first URL, a rotation).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub instance: String,
    /// `false` once disabled (then `url` is null).
    pub enabled: bool,
    pub url: Option<String>,
    /// The HMAC secret, shown this once; keep it in the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How callbacks are signed.
    pub signature: &'static str,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl WebhookView {
    pub fn new(instance: &str, webhook: Option<&Webhook>, secret: Option<String>) -> Self {
        Self {
            instance: instance.to_owned(),
            enabled: webhook.is_some(),
            url: webhook.map(|w| w.url.clone()),
            secret,
            signature: "Base64(HMAC-SHA256(secret, body)) in flinks-authenticity-key and X-Flinks-Signature",
            created_at: webhook.map(|w| w.created_at.to_rfc3339()),
            updated_at: webhook.map(|w| w.updated_at.to_rfc3339()),
        }
    }
}

/// One callback in the outbox, without its body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Also sent as `X-Bankgate-Delivery`.
    pub id: String,
    /// `KYC` or `GetAccountsDetail`.
    pub response_type: String,
    pub request_id: String,
    pub login_id: String,
    /// `pending`, `delivered` or `failed` (every attempt failed).
    pub status: &'static str,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due, on the instance's clock (pending only).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.clone(),
            response_type: d.kind.clone(),
            request_id: d.request_id.to_string(),
            login_id: d.login_id.to_string(),
            status: d.status.as_str(),
            attempts: d.attempts,
            max_attempts: MAX_DELIVERY_ATTEMPTS,
            last_status_code: d.last_status,
            last_error: d.last_error.clone(),
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then(|| d.next_attempt_at.to_rfc3339()),
            created_at: d.created_at.to_rfc3339(),
            finished_at: d.finished_at.map(Timestamp::to_rfc3339),
        }
    }
}
