//! What operators do: create instances and customers, rotate keys, seed the toolbox, make
//! sandbox LoginIds, reset and move sandbox instances. One implementation, used by the CLI and
//! the admin API.

use std::sync::Arc;
use std::time::Duration;

use bankgate_core::model::{
    Customer, CustomerKeys, DEFAULT_TOKEN_LIFETIME, Instance, InstanceKind, Language, Login,
    LoginType, Tenant, toolbox,
};
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::{
    ApiKey, Clock, CustomerId, Digest, DomainError, InstanceName, LoginId, SecretKey, Timestamp,
};
use bankgate_store::{
    AttemptFailures, AttemptFilter, ClockChange, ClockMoved, Delivery, KeyDigests, Reset, Store,
    TokenRecord, Webhook,
};

mod forced;
pub use forced::{
    FAULT_STATUSES, FailureFor, FaultKind, ForcedError, NewFailure, describe as describe_forced,
};

use crate::webhooks;

fn no_webhook(name: &InstanceName) -> DomainError {
    DomainError::NotFound {
        what: "webhook",
        id: format!("of instance {name} (set one with a URL first)"),
    }
}

/// The marker the toolbox seed leaves, so a restart never seeds twice.
const TOOLBOX_SEED_MARKER: &str = "seed:toolbox:v1";

/// Options for a new customer.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub instance: InstanceName,
    pub label: String,
    pub authorize_token_required: bool,
    pub api_key_required: bool,
}

pub use bankgate_core::model::MAX_CLOCK_OFFSET;

fn humanize(duration: Duration) -> String {
    format!("{} days", duration.as_secs() / 86_400)
}

/// An instance's time, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceClock {
    pub now: Timestamp,
    /// How far ahead of real time the instance runs.
    pub offset: Duration,
}

impl InstanceClock {
    fn of(instance: &Instance, clock: &dyn Clock) -> Self {
        Self {
            now: instance.now(clock),
            offset: instance.clock_offset,
        }
    }
}

/// Where an authorize token stands, on its instance's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Issued, unused, not expired: the next call presenting it will consume it.
    Issued,
    Consumed,
    Expired,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Consumed => "consumed",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    pub record: TokenRecord,
    pub instance: InstanceName,
    pub status: TokenStatus,
}

#[derive(Debug, Clone)]
pub struct Operator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    bank: SandboxBank,
}

fn digests(keys: &CustomerKeys) -> KeyDigests {
    KeyDigests {
        secret: keys.secret_key.digest(),
        api: keys.api_key.digest(),
    }
}

impl Operator {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, bank: SandboxBank) -> Self {
        Self { store, clock, bank }
    }

    /// Creates the public toolbox instance with its published credentials, once per database.
    pub async fn seed_toolbox(&self) -> Result<bool, DomainError> {
        let now = self.clock.now();
        let instance = Instance {
            name: InstanceName::toolbox(),
            kind: InstanceKind::Sandbox,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            created_at: now,
            clock_offset: Duration::ZERO,
        };
        let customer = Customer {
            id: toolbox::CUSTOMER_ID
                .parse::<CustomerId>()
                .map_err(|e| DomainError::Invalid(e.to_string()))?,
            instance: instance.name.clone(),
            label: "Flinks public toolbox".to_owned(),
            authorize_token_required: true,
            api_key_required: true,
            created_at: now,
        };
        let keys = CustomerKeys {
            secret_key: SecretKey::from_plaintext(toolbox::SECRET_KEY),
            api_key: ApiKey::from_plaintext(toolbox::API_KEY),
        };
        self.store
            .seed_once(TOOLBOX_SEED_MARKER, &instance, &customer, digests(&keys))
            .await
    }

    pub async fn create_instance(
        &self,
        name: InstanceName,
        kind: InstanceKind,
        token_lifetime: Option<Duration>,
    ) -> Result<Instance, DomainError> {
        let token_lifetime = token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Stored in whole seconds: refuse what would be silently truncated.
        if token_lifetime < Duration::from_secs(1) || token_lifetime.subsec_nanos() != 0 {
            return Err(DomainError::Invalid(
                "the token lifetime must be a whole number of seconds, at least one".to_owned(),
            ));
        }
        let instance = Instance {
            name,
            kind,
            token_lifetime,
            created_at: self.clock.now(),
            clock_offset: Duration::ZERO,
        };
        self.store.create_instance(&instance).await?;
        Ok(instance)
    }

    pub async fn list_instances(&self) -> Result<Vec<Instance>, DomainError> {
        self.store.list_instances().await
    }

    /// Creates a customer with fresh random keys; the plaintext keys are returned only here.
    pub async fn create_customer(
        &self,
        new: NewCustomer,
    ) -> Result<(Customer, CustomerKeys), DomainError> {
        let customer = Customer {
            id: CustomerId::new_random(),
            instance: new.instance,
            label: new.label,
            authorize_token_required: new.authorize_token_required,
            api_key_required: new.api_key_required,
            created_at: self.clock.now(),
        };
        let keys = CustomerKeys::generate();
        self.store
            .create_customer(&customer, digests(&keys))
            .await?;
        Ok((customer, keys))
    }

    pub async fn list_customers(
        &self,
        instance: Option<&InstanceName>,
    ) -> Result<Vec<Customer>, DomainError> {
        // Filtering on an instance that does not exist is an error, as creating a customer
        // there is, not an empty list that hides a typo.
        if let Some(name) = instance
            && self.store.instance(name).await?.is_none()
        {
            return Err(DomainError::NotFound {
                what: "instance",
                id: name.to_string(),
            });
        }
        self.store.list_customers(instance).await
    }

    /// New secret key and x-api-key; the old ones keep working for `grace`.
    pub async fn rotate_keys(
        &self,
        customer_id: CustomerId,
        grace: Duration,
    ) -> Result<CustomerKeys, DomainError> {
        // On the instance's clock, which the API checks retirement against: on a sandbox moved
        // ahead, a grace period must not be over before it starts.
        let now = self
            .tenant(customer_id)
            .await?
            .instance
            .now(self.clock.as_ref());
        let keys = CustomerKeys::generate();
        self.store
            .rotate_keys(customer_id, digests(&keys), now, now + grace)
            .await?;
        Ok(keys)
    }

    async fn instance(&self, name: &InstanceName) -> Result<Instance, DomainError> {
        self.store
            .instance(name)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                what: "instance",
                id: name.to_string(),
            })
    }

    /// The instance, if it is a sandbox: what tests may reset and move in time.
    async fn sandbox(&self, name: &InstanceName, action: &str) -> Result<Instance, DomainError> {
        let instance = self.instance(name).await?;
        if instance.kind != InstanceKind::Sandbox {
            return Err(DomainError::Invalid(format!(
                "{name} is a production instance; only sandbox instances can {action}"
            )));
        }
        Ok(instance)
    }

    /// Puts a sandbox instance back to its seeded state: every token, LoginId, session and
    /// pending MFA exchange of its customers is gone; the customers and their keys stay.
    pub async fn reset_instance(&self, name: &InstanceName) -> Result<Reset, DomainError> {
        self.sandbox(name, "be reset").await?;
        self.store.reset_instance(name).await
    }

    /// The time on an instance (production instances always read real time).
    pub async fn clock(&self, name: &InstanceName) -> Result<InstanceClock, DomainError> {
        let instance = self.instance(name).await?;
        Ok(InstanceClock::of(&instance, self.clock.as_ref()))
    }

    /// Moves a sandbox instance's clock forward by `by`, or back to real time.
    pub async fn change_clock(
        &self,
        name: &InstanceName,
        change: ClockChange,
    ) -> Result<InstanceClock, DomainError> {
        let mut instance = self.sandbox(name, "have their clock moved").await?;
        if matches!(change, ClockChange::Advance(by) if by.is_zero()) {
            return Err(DomainError::Invalid(
                "advance the clock by a positive duration".to_owned(),
            ));
        }
        // The store checks the cap in the same write, so concurrent advances cannot pass it.
        instance.clock_offset = match self.store.change_clock(name, change).await? {
            Some(ClockMoved::To(offset)) => offset,
            Some(ClockMoved::PastLimit(offset)) => {
                return Err(DomainError::Invalid(format!(
                    "a sandbox clock may run at most {} ahead of real time; it is {} ahead now",
                    humanize(MAX_CLOCK_OFFSET),
                    humanize(offset)
                )));
            }
            None => {
                return Err(DomainError::NotFound {
                    what: "instance",
                    id: name.to_string(),
                });
            }
        };
        // Moving the clock across 02:00 runs the nightly refresh, once per night crossed, before
        // the move is answered (docs/flinks-wire.md, "Nightly refresh"). The clock has moved
        // whatever happens here; nights that failed to run are run by the next catch-up.
        let now = instance.now(self.clock.as_ref());
        if let Err(error) = crate::api::nightly::catch_up(self.store.as_ref(), name, now).await {
            tracing::warn!(%error, instance = %name, "nightly refresh failed; will retry");
        }
        Ok(InstanceClock::of(&instance, self.clock.as_ref()))
    }

    /// What is known of an authorize token, given the token itself (only its digest is
    /// looked up). `None` when no token has that value.
    /// Brute-force lockouts in force now, the latest to end first.
    pub async fn lockouts(
        &self,
        filter: &AttemptFilter,
    ) -> Result<Vec<AttemptFailures>, DomainError> {
        self.store.lockouts(filter, self.clock.now()).await
    }

    /// Lifts lockouts and forgets the failure counts of the matching clients and customers;
    /// returns how many counters were cleared.
    pub async fn clear_lockouts(&self, filter: &AttemptFilter) -> Result<u64, DomainError> {
        self.store.clear_failures(filter).await
    }

    pub async fn token_state(&self, token: &str) -> Result<Option<TokenState>, DomainError> {
        let Some(record) = self.store.token_record(Digest::of_presented(token)).await? else {
            return Ok(None);
        };
        let tenant = self.tenant(record.customer_id).await?;
        let now = tenant.instance.now(self.clock.as_ref());
        let status = match record.consumed_at {
            Some(_) => TokenStatus::Consumed,
            None if record.expires_at <= now => TokenStatus::Expired,
            None => TokenStatus::Issued,
        };
        Ok(Some(TokenState {
            record,
            instance: tenant.instance.name,
            status,
        }))
    }

    /// A LoginId of a customer, if it exists.
    pub async fn login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<Option<Login>, DomainError> {
        self.tenant(customer_id).await?;
        self.store.login(customer_id, login_id).await
    }

    /// Forgets a sandbox LoginId and ends its sessions, as /DeleteCard does.
    pub async fn delete_login(
        &self,
        customer_id: CustomerId,
        login_id: LoginId,
    ) -> Result<(), DomainError> {
        let tenant = self.tenant(customer_id).await?;
        self.sandbox(
            &tenant.instance.name,
            "have LoginIds deleted by an operator",
        )
        .await?;
        if self.store.delete_login(customer_id, login_id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound {
                what: "LoginId",
                id: login_id.to_string(),
            })
        }
    }

    async fn tenant(&self, customer_id: CustomerId) -> Result<Tenant, DomainError> {
        self.store
            .tenant(customer_id)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                what: "customer",
                id: customer_id.to_string(),
            })
    }

    /// Whether the instance's Connect page requires an authorize token (on by default). Off
    /// suits older integrations that embed the page without one; the page then serves the
    /// instance's only customer, or the one named by `?customerId=`.
    pub async fn set_connect_token_required(
        &self,
        name: &InstanceName,
        required: bool,
    ) -> Result<(), DomainError> {
        self.store.set_connect_token_required(name, required).await
    }

    async fn existing_instance(&self, name: &InstanceName) -> Result<Instance, DomainError> {
        self.store
            .instance(name)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                what: "instance",
                id: name.to_string(),
            })
    }

    /// Points the instance's webhook at `url` (checked by [`webhooks::check_url`]). The first
    /// time, a secret is made and returned (the only time it is shown); later the secret is
    /// kept, so the receiver keeps verifying.
    pub async fn set_webhook(
        &self,
        name: &InstanceName,
        url: &str,
    ) -> Result<(Webhook, Option<String>), DomainError> {
        let instance = self.existing_instance(name).await?;
        webhooks::check_url(url, instance.kind)?;
        let secret = webhooks::new_secret()?;
        let (webhook, took) = self
            .store
            .set_webhook(name, url.trim(), &secret, self.clock.now())
            .await?;
        Ok((webhook, took.then_some(secret)))
    }

    /// A new secret for the instance's webhook, returned this once; callbacks are signed with
    /// it from the next attempt on.
    pub async fn rotate_webhook_secret(&self, name: &InstanceName) -> Result<Webhook, DomainError> {
        self.existing_instance(name).await?;
        let secret = webhooks::new_secret()?;
        self.store
            .rotate_webhook_secret(name, &secret, self.clock.now())
            .await?
            .ok_or_else(|| no_webhook(name))
    }

    /// Stops callbacks: none is queued any more; queued ones fail their next attempts.
    pub async fn disable_webhook(&self, name: &InstanceName) -> Result<bool, DomainError> {
        self.existing_instance(name).await?;
        self.store.delete_webhook(name).await
    }

    pub async fn webhook(&self, name: &InstanceName) -> Result<Option<Webhook>, DomainError> {
        self.existing_instance(name).await?;
        self.store.webhook(name).await
    }

    /// The instance's callbacks, newest first.
    pub async fn deliveries(
        &self,
        name: &InstanceName,
        limit: u32,
    ) -> Result<Vec<Delivery>, DomainError> {
        self.existing_instance(name).await?;
        self.store.deliveries(name, limit).await
    }

    /// Sends a callback again at once (with a fresh count of attempts).
    pub async fn replay_delivery(
        &self,
        name: &InstanceName,
        id: &str,
    ) -> Result<Delivery, DomainError> {
        self.existing_instance(name).await?;
        self.store
            .replay_delivery(name, id.trim(), self.clock.now())
            .await?
            .ok_or_else(|| DomainError::NotFound {
                what: "webhook delivery",
                id: format!("{} on instance {name}", id.trim()),
            })
    }

    /// A LoginId for a sandbox user, as if the user had connected through Connect.
    pub async fn create_login(
        &self,
        customer_id: CustomerId,
        institution: &str,
        username: &str,
    ) -> Result<Login, DomainError> {
        // The sandbox bank serves sandbox instances; production has no FlinksCapital.
        let tenant = self.tenant(customer_id).await?;
        if tenant.instance.kind != InstanceKind::Sandbox {
            return Err(DomainError::Invalid(format!(
                "customer {customer_id} is on the production instance {}, which does not serve \
                 the sandbox bank (FlinksCapital and its test users); sandbox LoginIds can only \
                 be made on sandbox instances",
                tenant.instance.name
            )));
        }
        let institution = self.bank.institution(institution).ok_or_else(|| {
            let known: Vec<&str> = self.bank.institutions().iter().map(|i| i.id).collect();
            DomainError::Invalid(format!(
                "no sandbox institution {institution:?}; known: {}",
                known.join(", ")
            ))
        })?;
        let user = institution.user(username).ok_or_else(|| {
            let known: Vec<&str> = institution.users.iter().map(|u| u.username).collect();
            DomainError::Invalid(format!(
                "{} has no sandbox user {username:?}; known: {}",
                institution.id,
                known.join(", ")
            ))
        })?;
        let now = tenant.instance.now(self.clock.as_ref());
        let login = Login {
            id: LoginId::new_random(),
            customer_id,
            institution: institution.id.to_owned(),
            username: user.username.to_owned(),
            login_type: LoginType::Personal,
            is_scheduled_refresh: false,
            last_refresh: now,
            created_at: now,
            language: Language::En,
            saved: true,
        };
        self.store.create_login(&login).await?;
        Ok(login)
    }
}
