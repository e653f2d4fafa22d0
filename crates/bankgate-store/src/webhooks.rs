//! What the store keeps of webhooks: an instance's configuration and the outbox of callbacks.

use std::time::Duration;

use bankgate_core::model::Login;
use bankgate_core::{InstanceName, LoginId, RequestId, Timestamp};

/// How many times a callback is attempted in all (Flinks: "a maximum of 10 delivery attempts").
pub const MAX_DELIVERY_ATTEMPTS: u32 = 10;

/// Between two attempts of a callback, on the instance's clock (Flinks: "30 minutes delay").
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// How long a delivered or given-up callback stays listed before the purge removes it.
pub const FINISHED_DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// An instance's webhook as stored. The secret signs callbacks, so it is kept as is.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub instance: InstanceName,
    pub url: String,
    pub secret: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Never prints the secret (it would end up in logs).
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("instance", &self.instance)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The callback kinds an authorization queues, in the order they are sent (the body's
/// `ResponseType`).
pub const CALLBACK_KINDS: [&str; 2] = ["KYC", "GetAccountsDetail"];

/// What a callback's body is built from when it is sent: the LoginId as the authorization left
/// it and the session's tag. Kept in the row because by the last retry the LoginId may have
/// been refreshed or deleted and the session purged; the body must still repeat what the
/// authorization answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSubject {
    pub login: Login,
    pub tag: Option<String>,
}

/// What a stored callback sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryContent {
    /// The exact bytes (callbacks queued with their body: [`NewDelivery`], and rows from before
    /// migration 0008).
    Body(String),
    /// Built when sent, from this.
    Subject(CallbackSubject),
}

/// A callback to put in the outbox with its body already made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// A random UUID: the `X-Bankgate-Delivery` header, for receivers to drop duplicates.
    pub id: String,
    pub instance: InstanceName,
    pub request_id: RequestId,
    pub login_id: LoginId,
    /// `KYC` or `GetAccountsDetail` (the body's `ResponseType`).
    pub kind: String,
    /// Orders the callbacks of one RequestId: a callback waits until those before it are
    /// delivered or given up.
    pub position: i64,
    /// The exact bytes to send and sign.
    pub body: String,
    pub created_at: Timestamp,
    /// The first attempt is not before this time on the instance's clock.
    pub not_before: Timestamp,
}

/// Where a callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            // A later callback waiting for the one before it is, to its readers, pending.
            "pending" | "waiting" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown delivery status {other:?}")),
        }
    }
}

/// A callback as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub instance: InstanceName,
    pub request_id: RequestId,
    pub login_id: LoginId,
    pub kind: String,
    pub content: DeliveryContent,
    pub status: DeliveryStatus,
    /// Attempts started so far (one is counted when a node claims the callback).
    pub attempts: u32,
    pub created_at: Timestamp,
    /// On the instance's clock.
    pub next_attempt_at: Timestamp,
    /// The HTTP status of the last answer, if one came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was delivered or given up, on the instance's clock.
    pub finished_at: Option<Timestamp>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Another answer (`status`), or none (`error` says why).
    Failed { status: Option<u16>, error: String },
    /// Not sent: what it carries is not ready before `until` (instance clock; a pending
    /// sandbox user's accounts). The claim's attempt is given back.
    NotYet { until: Timestamp },
}
