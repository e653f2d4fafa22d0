//! Storage for bankgate: one [`Store`] trait, implemented once ([`SqlStore`]) over two
//! backends.
//!
//! Operations are shaped by what the API needs in one step (consume a token, look up a LoginId
//! and open a session) so that each request costs one durable write. Each operation is written
//! once, in `ops`, over the few primitives of `sql` (run a statement, read rows, in a
//! transaction); a backend supplies only those primitives, its SQL dialect and its connection
//! handling: SQLite (a writer thread that commits many requests' writes together) and PostgreSQL
//! (a transaction per write on pooled connections; the server groups concurrent commits).

mod lookups;
mod nightly;
mod ops;
mod postgres;
mod sql;
mod sql_store;
mod sqlite;
#[doc(hidden)]
pub mod testing;
mod webhooks;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bankgate_core::forced::ForcedRule;
use bankgate_core::model::{
    Customer, Instance, InstanceKind, KeyKind, Login, PendingAuthorization, Session, Tenant,
};
use bankgate_core::sandbox::statements::StatementCount;
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};

pub use lookups::LOOKUP_TTL;
pub use nightly::{MfaAnswers, NightlyRun, StoppedCard};
pub use postgres::{PgConnectError, PgSettings, PgStore, PgUrl, Postgres, SslMode};
pub use sql::StoreError;
pub use sql_store::SqlStore;
pub use sqlite::{BatchStats, IN_MEMORY, Sqlite, SqliteStore};
pub use webhooks::{
    AttemptResult, CALLBACK_KINDS, CallbackSubject, Delivery, DeliveryContent, DeliveryStatus,
    FINISHED_DELIVERY_RETENTION, MAX_DELIVERY_ATTEMPTS, NewDelivery, RETRY_INTERVAL, Webhook,
};

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
    /// Echoed by the data endpoints of this session.
    pub tag: Option<String>,
}

/// What an authorization that completes does to the LoginId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginChange {
    /// A new connection: record this LoginId.
    Create(Login),
    /// A live refresh of a saved LoginId: it refreshed at `at` (its refresh error and nightly
    /// stop are cleared).
    Refresh { login_id: LoginId, at: Timestamp },
    /// A new connection that keeps its security questions (Enhanced MFA): the LoginId and its
    /// questions, answered or not.
    CreateWithQuestions { login: Login, answers: MfaAnswers },
}

/// A live /Authorize that ends authorized: spend the token (if a fresh one was sent), close the
/// pending MFA step (if any), create or refresh the LoginId, open the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteAuthorization {
    pub customer_id: CustomerId,
    pub token: Option<Digest>,
    pub request_id: RequestId,
    pub now: Timestamp,
    pub login: LoginChange,
    pub session_expires_at: Timestamp,
    pub tag: Option<String>,
    /// Completes a pending MFA exchange, which must still exist: of concurrent answers (or an
    /// answer racing a wrong one that ended it), only one completes.
    pub from_pending: bool,
    /// Queue the authorization's callbacks ([`CALLBACK_KINDS`]) in the same write, if this
    /// instance has a webhook when it commits. `None` when the caller knows it has none.
    pub webhook: Option<InstanceName>,
    /// Set when the Connect page made this authorization: recorded on the LoginId (the last
    /// Connect page wins). `None` (the API) leaves the LoginId's record as it is.
    pub connect_statements: Option<ConnectStatements>,
}

/// The Connect page's statement parameters, as recorded on a LoginId it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectStatements {
    /// `detailsAndStatementEnable=true` was on the page: GetStatements may read this card.
    pub enabled: bool,
    /// `monthsOfStatements`: GetStatements' `NumberOfStatements` when the request names none.
    pub months: StatementCount,
}

/// The result of an operation that opens a session. The token outcome is committed whatever
/// follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    TokenRefused(TokenUse),
    LoginNotFound,
    /// The pending MFA exchange was already completed or ended by another call.
    ExchangeEnded,
    Opened {
        login: Login,
        session: Session,
    },
}

/// An authorize token as recorded (never the token itself: only its digest is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRecord {
    pub customer_id: CustomerId,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    /// The RequestId the token opened, when it was consumed by /Authorize.
    pub request_id: Option<RequestId>,
}

/// The latest step of a RequestId authorized through /AuthorizeAsync: the answer /Authorize's
/// code gave to that step, shown to polls from `ready_at` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncStep {
    pub request_id: RequestId,
    pub customer_id: CustomerId,
    /// The LoginId an authorized step opened: deleting it (DeleteCard) ends the step too.
    pub login_id: Option<LoginId>,
    /// The rendered answer, written by the server; opaque to the store.
    pub answer: String,
    pub created_at: Timestamp,
    /// On the instance's clock.
    pub ready_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A move of a sandbox instance's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChange {
    /// Forward by this much more (moves add up).
    Advance(std::time::Duration),
    /// Back to real time.
    Reset,
}

/// What a clock move came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMoved {
    /// The instance's clock is now this far ahead of real time.
    To(std::time::Duration),
    /// The advance would have passed [`bankgate_core::model::MAX_CLOCK_OFFSET`]: nothing was
    /// written, the clock stays this far ahead.
    PastLimit(std::time::Duration),
}

/// One browser going through the Connect page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    /// Digest of the random secret the browser holds (cookie and form field).
    pub secret: Digest,
    pub customer_id: CustomerId,
    /// The authorize token the page was opened with (spent by
    /// [`Store::open_connect_session`]); a reload may present it again.
    pub token: Option<Digest>,
    /// The page's own state (step, parameters), opaque to the store.
    pub state: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Which forced rules an operator lists or clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedScope {
    /// Every failure rule of a customer (its LoginIds' and its users').
    Customer(CustomerId),
    /// The failure rules of one LoginId.
    Login(CustomerId, LoginId),
    /// The endpoint faults of an instance.
    Faults(InstanceName),
}

/// A call that forced rules may apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedCall<'a> {
    /// An /Authorize of a customer's sandbox user, through a LoginId or not (a new connection).
    Authorize {
        customer_id: CustomerId,
        login_id: Option<LoginId>,
        username: &'a str,
    },
    /// Any call of an endpoint (by name) on an instance.
    Endpoint {
        instance: &'a InstanceName,
        endpoint: &'a str,
    },
}

/// What a reset removed from an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reset {
    pub tokens: u64,
    pub logins: u64,
    pub sessions: u64,
    pub pending: u64,
}

/// How many rows a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub tokens: u64,
    pub sessions: u64,
    /// Pending MFA steps that went idle.
    pub pending: u64,
    /// Failed-attempt counters whose window and lockout are over.
    pub attempt_failures: u64,
}

/// The `client` of the row that counts a target's failures from every client.
pub const ANY_CLIENT: &str = "*";

/// Whose failed attempts at what: a customer, one of its credentials (`secret_key`, or a bank
/// login's digest), and a client (an address key, or [`ANY_CLIENT`]). The server names them;
/// the store only keeps them apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub customer_id: CustomerId,
    pub target: String,
    pub client: String,
}

impl AttemptKey {
    /// The same target, counted over every client.
    #[must_use]
    pub fn any_client(&self) -> Self {
        Self {
            client: ANY_CLIENT.to_owned(),
            ..self.clone()
        }
    }
}

/// One row of failed attempts, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailures {
    pub key: AttemptKey,
    /// Failures within the window that began at `window_start` (0 once a lockout began: after
    /// it, the count starts over).
    pub failures: u64,
    pub window_start: Timestamp,
    /// Every failure recorded on this row since it was created.
    pub total: u64,
    pub last_failure: Timestamp,
    /// The limit the last failure counted against.
    pub max_failures: u64,
    pub locked_until: Option<Timestamp>,
}

impl AttemptFailures {
    /// When attempts are refused until, if they are now.
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| now < *until)
    }
}

/// A failed attempt to record on its pair row and its target's row, in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The (customer, target, client) pair.
    pub key: AttemptKey,
    pub now: Timestamp,
    /// How long a count runs from its first failure.
    pub window: std::time::Duration,
    /// How long reaching a limit refuses attempts.
    pub lockout: std::time::Duration,
    /// Failures within the window that lock the pair (at least 1).
    pub max_per_client: u64,
    /// Failures from every client within the window that lock the target; 0: not counted.
    pub max_per_target: u64,
}

/// The rows an attempt is checked against: its pair's and its target's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptState {
    pub pair: Option<AttemptFailures>,
    pub target: Option<AttemptFailures>,
}

/// Which failure rows an operator lists or clears; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    pub customer_id: Option<CustomerId>,
    pub client: Option<String>,
}

/// Where a store reports what it did, for metrics. Every method has a no-op default.
pub trait StoreObserver: Send + Sync + std::fmt::Debug + 'static {
    /// One write transaction carrying `jobs` callers' writes committed in `took`.
    fn committed(&self, _jobs: usize, _took: std::time::Duration) {}
    fn token_issued(&self) {}
    /// A presented authorize token was consumed, or refused for the reason `outcome` gives.
    fn token_presented(&self, _outcome: &TokenUse) {}
}

/// The observer a store reports to: none until one is set, set at most once.
#[derive(Debug, Clone, Default)]
pub struct ObserverSlot(Arc<OnceLock<Arc<dyn StoreObserver>>>);

impl ObserverSlot {
    pub fn set(&self, observer: Arc<dyn StoreObserver>) {
        // A second observer is ignored: metrics are wired once, at start.
        let _ = self.0.set(observer);
    }

    pub fn committed(&self, jobs: usize, took: std::time::Duration) {
        if let Some(observer) = self.0.get() {
            observer.committed(jobs, took);
        }
    }

    pub fn token_issued(&self) {
        if let Some(observer) = self.0.get() {
            observer.token_issued();
        }
    }

    /// Reports a token outcome, when a token was presented at all.
    pub fn token_presented(&self, token: Option<Digest>, outcome: &TokenUse) {
        if let (Some(_), Some(observer)) = (token, self.0.get()) {
            observer.token_presented(outcome);
        }
    }

    /// Reports the token part of an operation that opens a session: the token is spent
    /// whatever follows, unless it was refused.
    pub fn token_opened(&self, token: Option<Digest>, outcome: &OpenOutcome) {
        match outcome {
            OpenOutcome::TokenRefused(used) => self.token_presented(token, used),
            _ => self.token_presented(token, &TokenUse::Consumed),
        }
    }
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
    /// The Connect page's statement parameters recorded on this LoginId; `None` when it was
    /// never connected through the page (or does not exist).
    async fn connect_statements(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<ConnectStatements>, DomainError>;
    /// The instance (and its kind) that holds this saved LoginId, whichever customer it is of.
    async fn login_instance(
        &self,
        login_id: LoginId,
    ) -> Result<Option<(InstanceName, InstanceKind)>, DomainError>;
    /// Deletes the LoginId and ends its sessions. `false` when it did not exist for this customer.
    async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<bool, DomainError>;

    async fn authorize_cached(&self, request: CachedAuthorize) -> Result<OpenOutcome, DomainError>;
    async fn session(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<Session>, DomainError>;

    /// Spends the token (if any) and records a connection waiting for MFA answers.
    async fn start_pending(
        &self,
        token: Option<Digest>,
        pending: &PendingAuthorization,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError>;
    async fn pending(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<PendingAuthorization>, DomainError>;
    /// Pushes back the idle expiry of a pending MFA step.
    async fn extend_pending(
        &self,
        request_id: RequestId,
        expires_at: Timestamp,
    ) -> Result<(), DomainError>;
    /// Moves a pending MFA step from the challenges `from` to `to` (and pushes back its idle
    /// expiry); false when the step no longer asks `from` (answered or ended meanwhile).
    async fn advance_pending(
        &self,
        request_id: RequestId,
        from: &[usize],
        to: &[usize],
        expires_at: Timestamp,
    ) -> Result<bool, DomainError>;
    /// Ends a pending MFA step (a wrong answer).
    async fn drop_pending(&self, request_id: RequestId) -> Result<(), DomainError>;
    /// What is recorded about a token, whoever it belongs to (for operators).
    async fn token_record(&self, digest: Digest) -> Result<Option<TokenRecord>, DomainError>;
    /// The RequestId a consumed token opened, if it was consumed.
    async fn token_request(&self, digest: Digest) -> Result<Option<RequestId>, DomainError>;
    async fn complete_authorization(
        &self,
        completion: CompleteAuthorization,
    ) -> Result<OpenOutcome, DomainError>;
    /// Records when the 202 data operation of a session started (the first call wins) and
    /// returns that time.
    async fn start_operation(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError>;

    /// Seeds a fixed-credential customer once (the public toolbox). Returns whether it seeded.
    async fn seed_once(
        &self,
        marker: &str,
        instance: &Instance,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<bool, DomainError>;

    /// Forgets every token, LoginId, session, pending MFA exchange, AuthorizeAsync step and
    /// failure counter of an instance's customers, keeping the instance, its customers and their keys. One
    /// transaction.
    async fn reset_instance(&self, instance: &InstanceName) -> Result<Reset, DomainError>;

    /// Moves an instance's clock, never past `MAX_CLOCK_OFFSET` (checked in the write itself, so
    /// concurrent advances from any node cannot pass it together); `None` when there is no such
    /// instance.
    async fn change_clock(
        &self,
        instance: &InstanceName,
        change: ClockChange,
    ) -> Result<Option<ClockMoved>, DomainError>;

    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), DomainError>;

    /// Reports commits and token outcomes to `observer` from now on (metrics).
    fn observe(&self, _observer: Arc<dyn StoreObserver>) {}

    /// Deletes tokens and sessions that expired at or before `expired_before`.
    async fn purge_expired(&self, expired_before: Timestamp) -> Result<Purged, DomainError>;

    /// Spends `session.token` (if any) and records the Connect session, in one transaction: a
    /// token is never spent without the session that holds it. Nothing is recorded unless the
    /// answer is [`TokenUse::Consumed`].
    async fn open_connect_session(
        &self,
        session: &ConnectSession,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError>;
    /// The Connect session whose secret has this digest, expired or not.
    async fn connect_session(&self, secret: Digest) -> Result<Option<ConnectSession>, DomainError>;
    /// Replaces a Connect session's state and pushes back its expiry; `false` when it is gone.
    async fn update_connect_session(
        &self,
        secret: Digest,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<bool, DomainError>;
    /// Whether the Connect page of this instance requires an authorize token (default: yes).
    async fn connect_token_required(&self, instance: &InstanceName) -> Result<bool, DomainError>;
    async fn set_connect_token_required(
        &self,
        instance: &InstanceName,
        required: bool,
    ) -> Result<(), DomainError>;
    /// Deletes Connect sessions that expired at or before `expired_before`; returns how many.
    async fn purge_connect_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError>;

    /// The failure rows of an attempt's pair and target (one read).
    async fn attempt_state(&self, pair: &AttemptKey) -> Result<AttemptState, DomainError>;
    /// Counts a failed attempt on its pair and (when counted) its target, locking either that
    /// reaches its limit; one statement, atomic across nodes. Returns both rows after.
    async fn record_failure(&self, failure: AttemptFailure) -> Result<AttemptState, DomainError>;
    /// Forgets a pair's failures (a success of that client on that target).
    async fn forget_failures(&self, pair: &AttemptKey) -> Result<(), DomainError>;
    /// Rows locked at `now` that match `filter`, the latest to end first.
    async fn lockouts(
        &self,
        filter: &AttemptFilter,
        now: Timestamp,
    ) -> Result<Vec<AttemptFailures>, DomainError>;
    /// Forgets every failure row matching `filter` (locked or not); returns how many.
    async fn clear_failures(&self, filter: &AttemptFilter) -> Result<u64, DomainError>;

    /// Records a forced failure or fault rule.
    async fn add_forced_rule(&self, rule: &ForcedRule) -> Result<(), DomainError>;
    /// The rules of a scope, oldest first.
    async fn forced_rules(&self, scope: &ForcedScope) -> Result<Vec<ForcedRule>, DomainError>;
    /// Deletes the rules of a scope; returns how many.
    async fn clear_forced_rules(&self, scope: &ForcedScope) -> Result<u64, DomainError>;
    /// Whether the instance has any rule; remembered like tenants (a rule added through another
    /// node is seen within [`LOOKUP_TTL`]), so an instance without rules pays one map lookup.
    async fn has_forced_rules(&self, instance: &InstanceName) -> Result<bool, DomainError>;
    /// Takes one use of the oldest rule matching `call`, atomically (see `ops::take_forced`).
    async fn take_forced(
        &self,
        call: &ForcedCall<'_>,
        now: Timestamp,
    ) -> Result<Option<ForcedRule>, DomainError>;

    // ---- AuthorizeAsync (defaults refuse, so a store wrapper without them still builds) ----

    /// Records a RequestId's latest AuthorizeAsync step, replacing its previous one; `false`
    /// (nothing written) when the RequestId has a step of another customer.
    async fn put_async_step(&self, _step: &AsyncStep) -> Result<bool, DomainError> {
        Err(no_async_steps())
    }

    /// The latest AuthorizeAsync step of a RequestId, whichever customer it is of, expired or
    /// not.
    async fn async_step(&self, _request_id: RequestId) -> Result<Option<AsyncStep>, DomainError> {
        Err(no_async_steps())
    }

    /// Deletes AuthorizeAsync steps that expired at or before `expired_before`; returns how
    /// many.
    async fn purge_async_steps(&self, _expired_before: Timestamp) -> Result<u64, DomainError> {
        Ok(0)
    }

    // ---- webhooks (defaults refuse, so a store wrapper that has no outbox still builds) ----

    /// Sets an instance's webhook URL. The first time, `new_secret` becomes its secret; later,
    /// the secret is kept. Returns the webhook and whether `new_secret` was taken.
    async fn set_webhook(
        &self,
        _instance: &InstanceName,
        _url: &str,
        _new_secret: &str,
        _now: Timestamp,
    ) -> Result<(Webhook, bool), DomainError> {
        Err(no_webhooks())
    }

    /// Replaces the secret; `None` when the instance has no webhook.
    async fn rotate_webhook_secret(
        &self,
        _instance: &InstanceName,
        _secret: &str,
        _now: Timestamp,
    ) -> Result<Option<Webhook>, DomainError> {
        Err(no_webhooks())
    }

    /// Removes the webhook (callbacks already in the outbox are given up when their turn
    /// comes); `false` when there was none.
    async fn delete_webhook(&self, _instance: &InstanceName) -> Result<bool, DomainError> {
        Err(no_webhooks())
    }

    async fn webhook(&self, _instance: &InstanceName) -> Result<Option<Webhook>, DomainError> {
        Err(no_webhooks())
    }

    /// Whether the instance has a webhook. Asked on every live authorization, so remembered:
    /// a change made through this store is seen at once, one made by another node within
    /// [`LOOKUP_TTL`].
    async fn has_webhook(&self, _instance: &InstanceName) -> Result<bool, DomainError> {
        Err(no_webhooks())
    }

    /// Puts callbacks in the outbox, in one transaction, if their instance has a webhook;
    /// returns how many.
    async fn enqueue_deliveries(&self, _deliveries: Vec<NewDelivery>) -> Result<u64, DomainError> {
        Err(no_webhooks())
    }

    /// Takes up to `limit` callbacks that are due (on their instance's clock, `now` being real
    /// time), whose earlier callbacks of the same RequestId are done, and that no node holds;
    /// holds them until `lease_until` plus the instance's offset and counts an attempt. The
    /// lease is on the instance's clock, like every time of the outbox: a test that moves a
    /// sandbox's clock past it sees a dead node's callback sent again at once, as it sees a
    /// retry (moving a clock only ever ends a lease early, which at-least-once delivery with a
    /// delivery id allows). On PostgreSQL rows
    /// another node is claiming are skipped, so a callback is attempted by one node at a time.
    async fn claim_deliveries(
        &self,
        _now: Timestamp,
        _lease_until: Timestamp,
        _limit: u32,
    ) -> Result<Vec<Delivery>, DomainError> {
        Err(no_webhooks())
    }

    /// Records an attempt: delivered, or failed (retried after [`RETRY_INTERVAL`] on the
    /// instance's clock, given up after [`MAX_DELIVERY_ATTEMPTS`]). `None` if the row is gone.
    async fn finish_delivery(
        &self,
        _id: &str,
        _result: &AttemptResult,
        _now: Timestamp,
    ) -> Result<Option<Delivery>, DomainError> {
        Err(no_webhooks())
    }

    /// Records the attempts of a batch in one transaction (see [`Store::finish_delivery`]):
    /// a batch of callbacks timing out together writes once, not once each. Returns each
    /// callback after it (`None` if its row is gone), in the order given.
    async fn finish_deliveries(
        &self,
        _results: Vec<(String, AttemptResult)>,
        _now: Timestamp,
    ) -> Result<Vec<Option<Delivery>>, DomainError> {
        Err(no_webhooks())
    }

    /// An instance's callbacks, newest first.
    async fn deliveries(
        &self,
        _instance: &InstanceName,
        _limit: u32,
    ) -> Result<Vec<Delivery>, DomainError> {
        Err(no_webhooks())
    }

    /// Deletes callbacks delivered or given up (on their instance's clock) at or before
    /// `finished_before` plus their instance's offset; returns how many.
    async fn purge_deliveries(&self, _finished_before: Timestamp) -> Result<u64, DomainError> {
        Ok(0)
    }

    /// Sends a callback again now, with a fresh count of attempts; `None` if it does not exist
    /// on this instance.
    async fn replay_delivery(
        &self,
        _instance: &InstanceName,
        _id: &str,
        _now: Timestamp,
    ) -> Result<Option<Delivery>, DomainError> {
        Err(no_webhooks())
    }

    // ---- the nightly refresh and Enhanced MFA (defaults refuse, as the webhooks') ----

    /// Switches a saved card's nightly refresh on or off (SetScheduledRefresh); `None` when the
    /// customer has no such saved LoginId. Switching on makes sure the card's instance counts
    /// its nights from now.
    async fn set_scheduled_refresh(
        &self,
        _customer_id: CustomerId,
        _login_id: LoginId,
        _on: bool,
        _now: Timestamp,
    ) -> Result<Option<Login>, DomainError> {
        Err(no_nightly())
    }

    /// Runs the instance's nightly refresh for every night whose 02:00 passed (on the
    /// instance's clock, `now`) since the last run, once whichever node asks: a read when none
    /// is due; else one transaction that claims the nights and judges the flagged cards only.
    async fn run_nightly(
        &self,
        _instance: &InstanceName,
        _now: Timestamp,
    ) -> Result<NightlyRun, DomainError> {
        Err(no_nightly())
    }

    /// The customer's flagged cards that the last nightly run did not refresh.
    async fn stopped_cards(
        &self,
        _customer_id: CustomerId,
    ) -> Result<Vec<StoppedCard>, DomainError> {
        Err(no_nightly())
    }

    /// Records the FlinksCode a live refresh of the card failed with.
    async fn record_refresh_error(
        &self,
        _customer_id: CustomerId,
        _login_id: LoginId,
        _code: &str,
    ) -> Result<(), DomainError> {
        Err(no_nightly())
    }

    /// A saved card and its Enhanced MFA questions; `None` when the customer has no such card.
    async fn mfa_answers(
        &self,
        _customer_id: CustomerId,
        _login_id: LoginId,
    ) -> Result<Option<(Login, MfaAnswers)>, DomainError> {
        Err(no_nightly())
    }

    /// Sets answers (or erases them, `None`) of questions the card keeps, in one transaction;
    /// questions it does not keep are left alone. `false` when the card is gone.
    async fn set_mfa_answers(
        &self,
        _customer_id: CustomerId,
        _login_id: LoginId,
        _answers: MfaAnswers,
        _now: Timestamp,
    ) -> Result<bool, DomainError> {
        Err(no_nightly())
    }
}

fn no_nightly() -> DomainError {
    DomainError::Unavailable("this store keeps no nightly refresh or MFA answers".to_owned())
}

fn no_webhooks() -> DomainError {
    DomainError::Unavailable("this store keeps no webhooks".to_owned())
}

fn no_async_steps() -> DomainError {
    DomainError::Unavailable("this store keeps no AuthorizeAsync steps".to_owned())
}
