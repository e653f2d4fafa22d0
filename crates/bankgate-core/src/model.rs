//! The records bankgate keeps: instances, customers, LoginIds and RequestId sessions.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Timestamp};
use crate::credentials::{ApiKey, SecretKey};
use crate::ids::{CustomerId, InstanceName, LoginId, RequestId};
pub use crate::sandbox::mfa::Language;

/// Authorize tokens live 30 minutes from issue unless an instance says otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How far ahead of real time a sandbox clock may be moved: about a hundred years (far enough for
/// any test, far from the limits of the time arithmetic). The store checks it in the write that
/// moves the clock, so concurrent moves cannot pass it together.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// A RequestId stays usable for the data endpoints this long after authorization.
pub const AUTHORIZED_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A RequestId in the middle of MFA expires after this long without a call.
pub const AUTHORIZING_IDLE_LIFETIME: Duration = Duration::from_secs(8 * 60);
/// A Connect page session ends after this long without a step.
pub const CONNECT_SESSION_IDLE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Expired tokens and sessions are kept this long past expiry before purging, so that a late
/// caller is told "expired" rather than "unknown".
pub const EXPIRED_RETENTION: Duration = Duration::from_secs(60 * 60);

/// The published credentials of the public `toolbox` instance, seeded at first start so the
/// documented curl examples work against localhost unchanged.
pub mod toolbox {
    pub const CUSTOMER_ID: &str = "43387ca6-0391-4c82-857d-70d95f087ecb";
    pub const SECRET_KEY: &str = "c4569c54-e167-4d34-8de6-f4113bc82414";
    pub const API_KEY: &str = "3d5266a8-b697-48d4-8de6-52e2e2662acc";
}

/// Whether an instance is a test environment or holds real tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    Sandbox,
    Production,
}

impl InstanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandbox" => Ok(Self::Sandbox),
            "production" => Ok(Self::Production),
            other => Err(format!(
                "instance kind must be sandbox or production, not {other:?}"
            )),
        }
    }
}

/// One deployment with its own customers and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: InstanceName,
    pub kind: InstanceKind,
    pub token_lifetime: Duration,
    pub created_at: Timestamp,
    /// How far a sandbox's clock runs ahead of real time (docs/flinks-wire.md, "What bankgate
    /// adds"); zero in production.
    /// Kept in the database, so every node of a deployment reads the same time.
    pub clock_offset: Duration,
}

impl Instance {
    /// The time on this instance: the real clock moved by the instance's offset.
    pub fn now(&self, clock: &dyn Clock) -> Timestamp {
        clock.now() + self.clock_offset
    }
}

/// One integration on an instance: owns a secret key, an x-api-key and LoginIds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub instance: InstanceName,
    /// What the operator called it; shown in listings only.
    pub label: String,
    /// When off, /Authorize also accepts no token, or the secret key itself.
    pub authorize_token_required: bool,
    /// When off, DeleteCard and the data endpoints also accept no x-api-key, or the secret key.
    pub api_key_required: bool,
    pub created_at: Timestamp,
}

/// A customer together with the instance it lives on: what every API request resolves first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub customer: Customer,
    pub instance: Instance,
}

/// What a customer's key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Secret,
    Api,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Api => "api",
        }
    }
}

/// Fresh credentials for a customer, shown to the operator once and then stored as digests.
#[derive(Debug, Clone)]
pub struct CustomerKeys {
    pub secret_key: SecretKey,
    pub api_key: ApiKey,
}

impl CustomerKeys {
    pub fn generate() -> Self {
        Self {
            secret_key: SecretKey::generate(),
            api_key: ApiKey::generate(),
        }
    }
}

/// `Login.Type` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginType {
    Personal,
    Business,
}

impl LoginType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "Personal",
            Self::Business => "Business",
        }
    }
}

impl FromStr for LoginType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Personal" => Ok(Self::Personal),
            "Business" => Ok(Self::Business),
            other => Err(format!("unknown login type {other:?}")),
        }
    }
}

/// A saved bank connection ("card").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub id: LoginId,
    pub customer_id: CustomerId,
    /// Institution id as on the wire (`FlinksCapital`).
    pub institution: String,
    pub username: String,
    pub login_type: LoginType,
    pub is_scheduled_refresh: bool,
    pub last_refresh: Timestamp,
    pub created_at: Timestamp,
    /// The language of the connection (a LoginId is tied to it).
    pub language: Language,
    /// False for connections made with `Save: false`: usable only through their own sessions.
    pub saved: bool,
}

/// An authorized RequestId and what it may read until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub request_id: RequestId,
    pub customer_id: CustomerId,
    pub login_id: LoginId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Echoed as `Tag` by the data endpoints.
    pub tag: Option<String>,
    /// When a long data operation (the 202 flow) started for this RequestId.
    pub operation_started_at: Option<Timestamp>,
}

/// A RequestId whose connection waits for MFA answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub request_id: RequestId,
    pub customer_id: CustomerId,
    pub institution: String,
    pub username: String,
    pub language: Language,
    pub save: bool,
    pub tag: Option<String>,
    /// Set when a saved LoginId is being refreshed live.
    pub login_id: Option<LoginId>,
    /// Indices into the institution's questions asked at this step.
    pub questions: Vec<usize>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// What the new card gets once the MFA step completes.
    pub options: CardOptions,
}

/// Options of a live /Authorize for the card it makes (docs/flinks-wire.md, "Nightly refresh"
/// and "Enhanced MFA"); a refresh of an existing card ignores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardOptions {
    /// `ScheduleRefresh`: switches the nightly refresh on (or explicitly off).
    pub schedule_refresh: Option<bool>,
    /// `WithMFAQuestions` with `Save: true`: keep the card's security questions (Enhanced MFA).
    pub with_mfa_questions: bool,
}

/// How an authorize token stands, for refusals and operator inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Issued { expires_at: Timestamp },
    Consumed { at: Timestamp },
    Expired { at: Timestamp },
}
