//! Storage for bankgate: one [`Store`] trait, and its backends.
//!
//! Operations are shaped by what the API needs in one step (consume a token, look up a LoginId
//! and open a session) so that each request costs one durable write, and backends can commit many
//! requests' writes together (group commit).

mod sqlite;

use async_trait::async_trait;
use bankgate_core::model::{Customer, Instance, InstanceKind, KeyKind, Login, Session, Tenant};
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};

pub use sqlite::{BatchStats, SqliteStore};

/// A customer's key as stored: its digest and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDigests {
    pub secret: Digest,
    pub api: Digest,
}

/// Who a presented credential belongs to, whatever it was presented as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialMatch {
    /// A customer's secret key or x-api-key. `retired_at` is set once a rotation's grace period
    /// has ended.
    Key {
        customer_id: CustomerId,
        instance: InstanceName,
        instance_kind: InstanceKind,
        kind: KeyKind,
        retired_at: Option<Timestamp>,
    },
    /// An authorize token.
    Token {
        customer_id: CustomerId,
        instance: InstanceName,
        instance_kind: InstanceKind,
    },
}

/// A token to record as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewToken {
    pub digest: Digest,
    pub customer_id: CustomerId,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What happened to a presented authorize token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUse {
    /// It was valid and is now consumed (durably, once the call returns).
    Consumed,
    Used {
        at: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
    /// Issued to another customer; left untouched.
    OtherCustomer {
        instance: InstanceName,
        instance_kind: InstanceKind,
    },
    Unknown,
}

/// A cached-mode /Authorize: spend the token (if any), then open a session on the LoginId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAuthorize {
    pub customer_id: CustomerId,
    /// `None` when the customer does not require tokens and none was sent.
    pub token: Option<Digest>,
    pub login_id: LoginId,
    pub request_id: RequestId,
    pub now: Timestamp,
    pub session_expires_at: Timestamp,
}

/// The result of a [`CachedAuthorize`]. The token outcome is committed whatever follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedOutcome {
    TokenRefused(TokenUse),
    LoginNotFound,
    Opened { login: Login, session: Session },
}

/// How many rows a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub tokens: u64,
    pub sessions: u64,
}

/// Everything bankgate persists. Implementations must make each write durable before returning,
/// and must make token consumption atomic across every process sharing the database.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    async fn create_instance(&self, instance: &Instance) -> Result<(), DomainError>;
    async fn instance(&self, name: &InstanceName) -> Result<Option<Instance>, DomainError>;
    async fn list_instances(&self) -> Result<Vec<Instance>, DomainError>;

    async fn create_customer(
        &self,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<(), DomainError>;
    async fn list_customers(
        &self,
        instance: Option<&InstanceName>,
    ) -> Result<Vec<Customer>, DomainError>;
    /// The customer and its instance.
    async fn tenant(&self, customer_id: CustomerId) -> Result<Option<Tenant>, DomainError>;
    /// Adds new keys; the customer's current ones stop working at `retire_old_at`.
    async fn rotate_keys(
        &self,
        customer_id: CustomerId,
        keys: KeyDigests,
        now: Timestamp,
        retire_old_at: Timestamp,
    ) -> Result<(), DomainError>;

    /// Finds whatever credential has this digest: a key (of any customer) or a token.
    async fn find_credential(
        &self,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>, DomainError>;

    async fn issue_token(&self, token: NewToken) -> Result<(), DomainError>;
    /// Consumes a token of `customer_id` if it is unused and unexpired; atomic and durable.
    async fn consume_token(
        &self,
        customer_id: CustomerId,
        digest: Digest,
        request_id: RequestId,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError>;

    async fn create_login(&self, login: &Login) -> Result<(), DomainError>;
    async fn login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<Login>, DomainError>;
    /// Deletes the LoginId and ends its sessions. `false` when it did not exist for this customer.
    async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<bool, DomainError>;

    async fn authorize_cached(
        &self,
        request: CachedAuthorize,
    ) -> Result<CachedOutcome, DomainError>;
    async fn session(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<Session>, DomainError>;

    /// Seeds a fixed-credential customer once (the public toolbox). Returns whether it seeded.
    async fn seed_once(
        &self,
        marker: &str,
        instance: &Instance,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<bool, DomainError>;

    /// Deletes tokens and sessions that expired at or before `expired_before`.
    async fn purge_expired(&self, expired_before: Timestamp) -> Result<Purged, DomainError>;
}
