//! What a node remembers of customers, instances, keys and whether an instance has forced
//! rules or a webhook: every request looks them up, and they change rarely. Entries are trusted for [`LOOKUP_TTL`] of real time; a change made through
//! this node's store clears them at once, a change made elsewhere (another node, an operator
//! command) is seen within the TTL. Authorize tokens are never remembered: spending one always
//! goes to the database.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bankgate_core::model::Tenant;
use bankgate_core::{CustomerId, Digest, InstanceName};

use crate::ops::Credential;

/// How long a node trusts what it read of a customer, its instance (the sandbox clock among
/// them) and its keys, when the change was made by another process.
pub const LOOKUP_TTL: Duration = Duration::from_secs(1);

/// Entries per map; past it the map starts over (a bound on memory whatever callers present).
const CAPACITY: usize = 65_536;

#[derive(Debug)]
struct Remembered<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A poisoned map holds nothing worse than stale entries, which expire anyway.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let entries = self.lock();
        let (read_at, value) = entries.get(key)?;
        (read_at.elapsed() < ttl).then(|| value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn forget(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The node's remembered lookups.
#[derive(Debug)]
pub struct Lookups {
    ttl: Duration,
    tenants: Remembered<CustomerId, Tenant>,
    keys: Remembered<Digest, Credential>,
    /// Whether an instance has forced rules (sandbox instances only ever do).
    forced: Remembered<InstanceName, bool>,
    /// Whether an instance has a webhook (asked by every live authorization).
    webhooks: Remembered<InstanceName, bool>,
}

impl Lookups {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tenants: Remembered::new(),
            keys: Remembered::new(),
            forced: Remembered::new(),
            webhooks: Remembered::new(),
        }
    }

    pub fn tenant(&self, customer_id: CustomerId) -> Option<Tenant> {
        self.tenants.get(&customer_id, self.ttl)
    }

    pub fn remember_tenant(&self, tenant: &Tenant) {
        if !self.ttl.is_zero() {
            self.tenants.put(tenant.customer.id, tenant.clone());
        }
    }

    pub fn key(&self, digest: Digest) -> Option<Credential> {
        self.keys.get(&digest, self.ttl)
    }

    /// Remembers keys only: a token's state changes with every use.
    pub fn remember_credential(&self, digest: Digest, credential: &Credential) {
        if !self.ttl.is_zero() && matches!(credential, Credential::Key { .. }) {
            self.keys.put(digest, credential.clone());
        }
    }

    /// Keys were added or retired.
    pub fn keys_changed(&self) {
        self.keys.clear();
    }

    pub fn has_forced(&self, instance: &InstanceName) -> Option<bool> {
        self.forced.get(instance, self.ttl)
    }

    pub fn remember_forced(&self, instance: &InstanceName, has: bool) {
        if !self.ttl.is_zero() {
            self.forced.put(instance.clone(), has);
        }
    }

    /// A rule of this instance was added or used up.
    pub fn forced_changed(&self, instance: &InstanceName) {
        self.forced.forget(instance);
    }

    pub fn forced_changed_all(&self) {
        self.forced.clear();
    }

    pub fn has_webhook(&self, instance: &InstanceName) -> Option<bool> {
        self.webhooks.get(instance, self.ttl)
    }

    pub fn remember_webhook(&self, instance: &InstanceName, has: bool) {
        if !self.ttl.is_zero() {
            self.webhooks.put(instance.clone(), has);
        }
    }

    /// The instance's webhook was set, rotated or removed through this node.
    pub fn webhook_changed(&self, instance: &InstanceName) {
        self.webhooks.forget(instance);
    }

    /// A customer or an instance (its clock) changed.
    pub fn tenants_changed(&self) {
        self.tenants.clear();
    }
}
