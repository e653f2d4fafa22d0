//! The one implementation of [`Store`]: each method runs its operation from [`crate::ops`] on
//! the backend, as a read or as a durable write, and reports to the observer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bankgate_core::forced::ForcedRule;
use bankgate_core::model::{
    Customer, Instance, InstanceKind, Login, PendingAuthorization, Session, Tenant,
};
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};

use crate::lookups::{LOOKUP_TTL, Lookups};
use crate::nightly::{MfaAnswers, NightlyRun, StoppedCard};
use crate::ops::{self, Expiring, PURGE_CHUNK};
use crate::sql::{Backend, one_statement};
use crate::webhooks::{AttemptResult, Delivery, NewDelivery, Webhook};
use crate::{
    AsyncStep, AttemptFailure, AttemptFailures, AttemptFilter, AttemptKey, AttemptState,
    CachedAuthorize, ClockChange, ClockMoved, CompleteAuthorization, ConnectSession,
    ConnectStatements, CredentialMatch, ForcedCall, ForcedScope, KeyDigests, NewToken,
    ObserverSlot, OpenOutcome, Purged, Reset, Store, StoreObserver, TokenRecord, TokenUse,
};

/// A [`Store`] on any SQL backend.
#[derive(Debug)]
pub struct SqlStore<B> {
    pub(crate) backend: B,
    pub(crate) observer: ObserverSlot,
    lookups: Lookups,
}

/// Runs an operation through the backend: `run!(self.read, |tx| …)`, `run!(self.write, …)`, or
/// `run!(self.write_statement, …)` for an operation of one statement. The arguments are moved
/// into the operation.
macro_rules! run {
    ($self:ident.write_statement, |$tx:ident| $body:expr) => {
        $self
            .backend
            .write_statement(one_statement(move |$tx| {
                Box::pin(async move { $body.await })
            }))
            .await
            .map_err(DomainError::from)
    };
    ($self:ident.$how:ident, |$tx:ident| $body:expr) => {
        $self
            .backend
            .$how(move |$tx| Box::pin(async move { $body.await }))
            .await
            .map_err(DomainError::from)
    };
}

impl<B: Backend> SqlStore<B> {
    /// `observer` is the slot the backend reports commits to, shared with the store's.
    pub(crate) fn new(backend: B, observer: ObserverSlot) -> Self {
        Self {
            backend,
            observer,
            lookups: Lookups::new(LOOKUP_TTL),
        }
    }

    /// Trust remembered customers, instances and keys for `ttl` instead of [`LOOKUP_TTL`]
    /// (zero: look every one up).
    #[must_use]
    pub fn with_lookup_ttl(mut self, ttl: Duration) -> Self {
        self.lookups = Lookups::new(ttl);
        self
    }

    /// Deletes expired rows a chunk per transaction, so a large purge shares the database with
    /// the token path instead of holding it.
    async fn purge(&self, what: Expiring, expired_before: Timestamp) -> Result<u64, DomainError> {
        let mut total = 0_u64;
        loop {
            let deleted = match what {
                // Also forgets the unsaved LoginIds the sessions held: more than one statement.
                Expiring::Sessions => run!(self.write, |tx| ops::purge_sessions_chunk(
                    tx,
                    expired_before
                ))?,
                _ => run!(self.write_statement, |tx| ops::purge_chunk(
                    tx,
                    what,
                    expired_before
                ))?,
            };
            total += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn create_instance(&self, instance: &Instance) -> Result<(), DomainError> {
        let instance = instance.clone();
        run!(self.write_statement, |tx| ops::insert_instance(
            tx, &instance
        ))
    }

    async fn instance(&self, name: &InstanceName) -> Result<Option<Instance>, DomainError> {
        let name = name.to_string();
        run!(self.read, |tx| ops::instance(tx, &name))
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DomainError> {
        run!(self.read, |tx| ops::list_instances(tx))
    }

    async fn create_customer(
        &self,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<(), DomainError> {
        let customer = customer.clone();
        run!(self.write, |tx| ops::insert_customer(tx, &customer, keys))
    }

    async fn list_customers(
        &self,
        instance: Option<&InstanceName>,
    ) -> Result<Vec<Customer>, DomainError> {
        let instance = instance.map(ToString::to_string);
        run!(self.read, |tx| ops::list_customers(tx, instance.as_deref()))
    }

    async fn tenant(&self, customer_id: CustomerId) -> Result<Option<Tenant>, DomainError> {
        if let Some(tenant) = self.lookups.tenant(customer_id) {
            return Ok(Some(tenant));
        }
        let tenant = run!(self.read, |tx| ops::tenant(tx, customer_id))?;
        if let Some(tenant) = &tenant {
            self.lookups.remember_tenant(tenant);
        }
        Ok(tenant)
    }

    async fn rotate_keys(
        &self,
        customer_id: CustomerId,
        keys: KeyDigests,
        now: Timestamp,
        retire_old_at: Timestamp,
    ) -> Result<(), DomainError> {
        let rotated = run!(self.write, |tx| ops::rotate_keys(
            tx,
            customer_id,
            keys,
            now,
            retire_old_at
        ));
        self.lookups.keys_changed();
        rotated
    }

    async fn find_credential(
        &self,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>, DomainError> {
        if let Some(key) = self.lookups.key(digest) {
            return Ok(Some(key.at(now)));
        }
        let found = run!(self.read, |tx| ops::find_credential(tx, digest))?;
        if let Some(credential) = &found {
            self.lookups.remember_credential(digest, credential);
        }
        Ok(found.map(|credential| credential.at(now)))
    }

    async fn issue_token(&self, token: NewToken) -> Result<(), DomainError> {
        run!(self.write_statement, |tx| ops::issue_token(tx, token))?;
        self.observer.token_issued();
        Ok(())
    }

    async fn consume_token(
        &self,
        customer_id: CustomerId,
        digest: Digest,
        request_id: RequestId,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let outcome = run!(self.write, |tx| ops::consume_token(
            tx,
            customer_id,
            digest,
            Some(request_id),
            now
        ))?;
        self.observer.token_presented(Some(digest), &outcome);
        Ok(outcome)
    }

    async fn create_login(&self, login: &Login) -> Result<(), DomainError> {
        let login = login.clone();
        run!(self.write_statement, |tx| ops::insert_login(tx, &login))
    }

    async fn login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<Login>, DomainError> {
        run!(self.read, |tx| ops::login(tx, customer_id, login_id, false))
    }

    async fn connect_statements(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<ConnectStatements>, DomainError> {
        run!(self.read, |tx| ops::connect_statements(
            tx,
            customer_id,
            login_id
        ))
    }

    async fn login_instance(
        &self,
        login_id: LoginId,
    ) -> Result<Option<(InstanceName, InstanceKind)>, DomainError> {
        run!(self.read, |tx| ops::login_instance(tx, login_id))
    }

    async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<bool, DomainError> {
        run!(self.write_statement, |tx| ops::delete_login(
            tx,
            customer_id,
            login_id
        ))
    }

    async fn authorize_cached(&self, request: CachedAuthorize) -> Result<OpenOutcome, DomainError> {
        let token = request.token;
        let outcome = run!(self.write, |tx| ops::authorize_cached(tx, request))?;
        self.observer.token_opened(token, &outcome);
        Ok(outcome)
    }

    async fn session(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<Session>, DomainError> {
        run!(self.read, |tx| ops::session(tx, customer_id, request_id))
    }

    async fn start_pending(
        &self,
        token: Option<Digest>,
        pending: &PendingAuthorization,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let pending = pending.clone();
        let outcome = run!(self.write, |tx| ops::start_pending(
            tx, token, &pending, now
        ))?;
        self.observer.token_presented(token, &outcome);
        Ok(outcome)
    }

    async fn pending(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
    ) -> Result<Option<PendingAuthorization>, DomainError> {
        run!(self.read, |tx| ops::pending(tx, customer_id, request_id))
    }

    async fn extend_pending(
        &self,
        request_id: RequestId,
        expires_at: Timestamp,
    ) -> Result<(), DomainError> {
        run!(self.write_statement, |tx| ops::extend_pending(
            tx, request_id, expires_at
        ))
    }

    async fn advance_pending(
        &self,
        request_id: RequestId,
        from: &[usize],
        to: &[usize],
        expires_at: Timestamp,
    ) -> Result<bool, DomainError> {
        // Owned, as the transaction's closure must be 'static.
        let (from, to) = (from.to_vec(), to.to_vec());
        run!(self.write_statement, |tx| ops::advance_pending(
            tx, request_id, &from, &to, expires_at
        ))
    }

    async fn drop_pending(&self, request_id: RequestId) -> Result<(), DomainError> {
        run!(self.write_statement, |tx| ops::drop_pending(tx, request_id))
    }

    async fn token_record(&self, digest: Digest) -> Result<Option<TokenRecord>, DomainError> {
        run!(self.read, |tx| ops::token_record(tx, digest))
    }

    async fn token_request(&self, digest: Digest) -> Result<Option<RequestId>, DomainError> {
        run!(self.read, |tx| ops::token_request(tx, digest))
    }

    async fn complete_authorization(
        &self,
        completion: CompleteAuthorization,
    ) -> Result<OpenOutcome, DomainError> {
        let token = completion.token;
        let outcome = run!(self.write, |tx| ops::complete_authorization(tx, completion))?;
        self.observer.token_opened(token, &outcome);
        Ok(outcome)
    }

    async fn start_operation(
        &self,
        customer_id: CustomerId,
        request_id: RequestId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError> {
        run!(self.write, |tx| ops::start_operation(
            tx,
            customer_id,
            request_id,
            at
        ))
    }

    async fn seed_once(
        &self,
        marker: &str,
        instance: &Instance,
        customer: &Customer,
        keys: KeyDigests,
    ) -> Result<bool, DomainError> {
        let (marker, instance, customer) = (marker.to_owned(), instance.clone(), customer.clone());
        run!(self.write, |tx| ops::seed_once(
            tx, &marker, &instance, &customer, keys
        ))
    }

    async fn reset_instance(&self, instance: &InstanceName) -> Result<Reset, DomainError> {
        let name = instance.to_string();
        let reset = run!(self.write, |tx| ops::reset_instance(tx, &name));
        self.lookups.forced_changed(instance);
        reset
    }

    async fn change_clock(
        &self,
        instance: &InstanceName,
        change: ClockChange,
    ) -> Result<Option<ClockMoved>, DomainError> {
        let instance = instance.to_string();
        // Not one statement: a refused advance reads the offset it stayed at.
        let changed = run!(self.write, |tx| ops::change_clock(tx, &instance, change));
        self.lookups.tenants_changed();
        changed
    }

    async fn ping(&self) -> Result<(), DomainError> {
        run!(self.read, |tx| ops::ping(tx))
    }

    fn observe(&self, observer: Arc<dyn StoreObserver>) {
        self.observer.set(observer);
    }

    async fn purge_expired(&self, expired_before: Timestamp) -> Result<Purged, DomainError> {
        Ok(Purged {
            tokens: self.purge(Expiring::Tokens, expired_before).await?,
            sessions: self.purge(Expiring::Sessions, expired_before).await?,
            pending: self.purge(Expiring::Pending, expired_before).await?,
            attempt_failures: self
                .purge(Expiring::AttemptFailures, expired_before)
                .await?,
        })
    }

    async fn open_connect_session(
        &self,
        session: &ConnectSession,
        now: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        let session = session.clone();
        let token = session.token;
        let outcome = run!(self.write, |tx| ops::open_connect_session(
            tx, &session, now
        ))?;
        self.observer.token_presented(token, &outcome);
        Ok(outcome)
    }

    async fn connect_session(&self, secret: Digest) -> Result<Option<ConnectSession>, DomainError> {
        run!(self.read, |tx| ops::connect_session(tx, secret))
    }

    async fn update_connect_session(
        &self,
        secret: Digest,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<bool, DomainError> {
        let state = state.to_owned();
        run!(self.write_statement, |tx| ops::update_connect_session(
            tx, secret, &state, expires_at
        ))
    }

    async fn connect_token_required(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        let instance = instance.to_string();
        run!(self.read, |tx| ops::connect_token_required(tx, &instance))
    }

    async fn set_connect_token_required(
        &self,
        instance: &InstanceName,
        required: bool,
    ) -> Result<(), DomainError> {
        let instance = instance.to_string();
        run!(self.write_statement, |tx| ops::set_connect_token_required(
            tx, &instance, required
        ))
    }

    async fn purge_connect_sessions(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        self.purge(Expiring::ConnectSessions, expired_before).await
    }

    async fn attempt_state(&self, pair: &AttemptKey) -> Result<AttemptState, DomainError> {
        let pair = pair.clone();
        run!(self.read, |tx| ops::attempt_state(tx, &pair))
    }

    async fn record_failure(&self, failure: AttemptFailure) -> Result<AttemptState, DomainError> {
        run!(self.write_statement, |tx| ops::record_failure(tx, &failure))
    }

    async fn forget_failures(&self, pair: &AttemptKey) -> Result<(), DomainError> {
        let pair = pair.clone();
        run!(self.write_statement, |tx| ops::forget_failures(tx, &pair))
    }

    async fn lockouts(
        &self,
        filter: &AttemptFilter,
        now: Timestamp,
    ) -> Result<Vec<AttemptFailures>, DomainError> {
        let filter = filter.clone();
        run!(self.read, |tx| ops::lockouts(tx, &filter, now))
    }

    async fn clear_failures(&self, filter: &AttemptFilter) -> Result<u64, DomainError> {
        let filter = filter.clone();
        run!(self.write_statement, |tx| ops::clear_failures(tx, &filter))
    }

    async fn set_webhook(
        &self,
        instance: &InstanceName,
        url: &str,
        new_secret: &str,
        now: Timestamp,
    ) -> Result<(Webhook, bool), DomainError> {
        let name = instance.to_string();
        let (url, secret) = (url.to_owned(), new_secret.to_owned());
        let set = run!(self.write_statement, |tx| ops::set_webhook(
            tx, &name, &url, &secret, now
        ));
        self.lookups.webhook_changed(instance);
        set
    }

    async fn rotate_webhook_secret(
        &self,
        instance: &InstanceName,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<Webhook>, DomainError> {
        let (name, secret) = (instance.to_string(), secret.to_owned());
        let rotated = run!(self.write_statement, |tx| ops::rotate_webhook_secret(
            tx, &name, &secret, now
        ));
        self.lookups.webhook_changed(instance);
        rotated
    }

    async fn delete_webhook(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        let name = instance.to_string();
        let deleted = run!(self.write_statement, |tx| ops::delete_webhook(tx, &name));
        self.lookups.webhook_changed(instance);
        deleted
    }

    async fn has_webhook(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        if let Some(has) = self.lookups.has_webhook(instance) {
            return Ok(has);
        }
        let name = instance.to_string();
        let has = run!(self.read, |tx| ops::webhook(tx, &name))?.is_some();
        self.lookups.remember_webhook(instance, has);
        Ok(has)
    }

    async fn webhook(&self, instance: &InstanceName) -> Result<Option<Webhook>, DomainError> {
        let instance = instance.to_string();
        run!(self.read, |tx| ops::webhook(tx, &instance))
    }

    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, DomainError> {
        run!(self.write, |tx| ops::enqueue_deliveries(tx, &deliveries))
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, DomainError> {
        run!(self.write_statement, |tx| ops::claim_deliveries(
            tx,
            now,
            lease_until,
            limit
        ))
    }

    async fn finish_delivery(
        &self,
        id: &str,
        result: &AttemptResult,
        now: Timestamp,
    ) -> Result<Option<Delivery>, DomainError> {
        let (id, result) = (id.to_owned(), result.clone());
        // Two statements when the callback is done: the next of its RequestId is released.
        run!(self.write, |tx| ops::finish_delivery(tx, &id, &result, now))
    }

    async fn finish_deliveries(
        &self,
        results: Vec<(String, AttemptResult)>,
        now: Timestamp,
    ) -> Result<Vec<Option<Delivery>>, DomainError> {
        run!(self.write, |tx| ops::finish_deliveries(tx, &results, now))
    }

    async fn deliveries(
        &self,
        instance: &InstanceName,
        limit: u32,
    ) -> Result<Vec<Delivery>, DomainError> {
        let instance = instance.to_string();
        run!(self.read, |tx| ops::deliveries(tx, &instance, limit))
    }

    async fn replay_delivery(
        &self,
        instance: &InstanceName,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Delivery>, DomainError> {
        let (instance, id) = (instance.to_string(), id.to_owned());
        run!(self.write_statement, |tx| ops::replay_delivery(
            tx, &instance, &id, now
        ))
    }

    async fn put_async_step(&self, step: &AsyncStep) -> Result<bool, DomainError> {
        let step = step.clone();
        run!(self.write_statement, |tx| ops::put_async_step(tx, &step))
    }

    async fn async_step(&self, request_id: RequestId) -> Result<Option<AsyncStep>, DomainError> {
        run!(self.read, |tx| ops::async_step(tx, request_id))
    }

    async fn purge_async_steps(&self, expired_before: Timestamp) -> Result<u64, DomainError> {
        self.purge(Expiring::AsyncSteps, expired_before).await
    }

    async fn purge_deliveries(&self, finished_before: Timestamp) -> Result<u64, DomainError> {
        run!(self.write_statement, |tx| ops::purge_deliveries(
            tx,
            finished_before
        ))
    }

    async fn add_forced_rule(&self, rule: &ForcedRule) -> Result<(), DomainError> {
        let rule = rule.clone();
        let instance = rule.instance.clone();
        let added = run!(self.write_statement, |tx| ops::add_forced_rule(tx, &rule));
        self.lookups.forced_changed(&instance);
        added
    }

    async fn forced_rules(&self, scope: &ForcedScope) -> Result<Vec<ForcedRule>, DomainError> {
        let scope = scope.clone();
        run!(self.read, |tx| ops::forced_rules(tx, &scope))
    }

    async fn clear_forced_rules(&self, scope: &ForcedScope) -> Result<u64, DomainError> {
        let scope = scope.clone();
        let cleared = run!(self.write_statement, |tx| ops::clear_forced_rules(
            tx, &scope
        ));
        // Which instance a customer is on is not at hand here: forget every instance's flag.
        self.lookups.forced_changed_all();
        cleared
    }

    async fn has_forced_rules(&self, instance: &InstanceName) -> Result<bool, DomainError> {
        if let Some(has) = self.lookups.has_forced(instance) {
            return Ok(has);
        }
        let name = instance.to_string();
        let has = run!(self.read, |tx| ops::has_forced_rules(tx, &name))?;
        self.lookups.remember_forced(instance, has);
        Ok(has)
    }

    async fn take_forced(
        &self,
        call: &ForcedCall<'_>,
        now: Timestamp,
    ) -> Result<Option<ForcedRule>, DomainError> {
        let owned = OwnedCall::of(call);
        let taken = run!(self.write, |tx| ops::take_forced(tx, &owned.as_call(), now))?;
        if let Some(rule) = &taken
            && rule.remaining == 0
        {
            // Used up: the instance may have no rule left.
            self.lookups.forced_changed(&rule.instance);
        }
        Ok(taken)
    }

    async fn set_scheduled_refresh(
        &self,
        customer_id: CustomerId,
        login_id: bankgate_core::LoginId,
        on: bool,
        now: Timestamp,
    ) -> Result<Option<Login>, DomainError> {
        run!(self.write, |tx| ops::set_scheduled_refresh(
            tx,
            customer_id,
            login_id,
            on,
            now
        ))
    }

    async fn run_nightly(
        &self,
        instance: &InstanceName,
        now: Timestamp,
    ) -> Result<NightlyRun, DomainError> {
        let name = instance.to_string();
        let due = bankgate_core::nightly::night_of(now);
        // A read first: on most calls no night is due, and nothing is written.
        let read = name.clone();
        let Some(last) = run!(self.read, |tx| ops::nightly_last(tx, &read))? else {
            return Ok(NightlyRun::default());
        };
        if last >= due {
            return Ok(NightlyRun::default());
        }
        run!(self.write, |tx| ops::run_nights(tx, &name, last, due, now))
    }

    async fn stopped_cards(
        &self,
        customer_id: CustomerId,
    ) -> Result<Vec<StoppedCard>, DomainError> {
        run!(self.read, |tx| ops::stopped_cards(tx, customer_id))
    }

    async fn record_refresh_error(
        &self,
        customer_id: CustomerId,
        login_id: bankgate_core::LoginId,
        code: &str,
    ) -> Result<(), DomainError> {
        let code = code.to_owned();
        run!(self.write_statement, |tx| ops::record_refresh_error(
            tx,
            customer_id,
            login_id,
            &code
        ))
    }

    async fn mfa_answers(
        &self,
        customer_id: CustomerId,
        login_id: bankgate_core::LoginId,
    ) -> Result<Option<(Login, MfaAnswers)>, DomainError> {
        run!(self.read, |tx| ops::mfa_answers(tx, customer_id, login_id))
    }

    async fn set_mfa_answers(
        &self,
        customer_id: CustomerId,
        login_id: bankgate_core::LoginId,
        answers: MfaAnswers,
        now: Timestamp,
    ) -> Result<bool, DomainError> {
        run!(self.write, |tx| ops::set_mfa_answers(
            tx,
            customer_id,
            login_id,
            &answers,
            now
        ))
    }
}

/// A [`ForcedCall`] that owns its strings, to move into an operation.
enum OwnedCall {
    Authorize {
        customer_id: CustomerId,
        login_id: Option<bankgate_core::LoginId>,
        username: String,
    },
    Endpoint {
        instance: InstanceName,
        endpoint: String,
    },
}

impl OwnedCall {
    fn of(call: &ForcedCall<'_>) -> Self {
        match call {
            ForcedCall::Authorize {
                customer_id,
                login_id,
                username,
            } => Self::Authorize {
                customer_id: *customer_id,
                login_id: *login_id,
                username: (*username).to_owned(),
            },
            ForcedCall::Endpoint { instance, endpoint } => Self::Endpoint {
                instance: (*instance).clone(),
                endpoint: (*endpoint).to_owned(),
            },
        }
    }

    fn as_call(&self) -> ForcedCall<'_> {
        match self {
            Self::Authorize {
                customer_id,
                login_id,
                username,
            } => ForcedCall::Authorize {
                customer_id: *customer_id,
                login_id: *login_id,
                username,
            },
            Self::Endpoint { instance, endpoint } => ForcedCall::Endpoint { instance, endpoint },
        }
    }
}
