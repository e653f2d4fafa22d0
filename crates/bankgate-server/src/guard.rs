//! Brute-force protection on the credential-taking endpoints (GenerateAuthorizeToken's secret
//! key, live /Authorize's bank password). Handlers ask [`AttemptGuard::check`] before they look
//! at a credential and report how it went; a refusal becomes the 401 `TOO_MANY_REQUESTS`
//! (`docs/flinks-wire.md`, "Error envelope"), with `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bankgate_core::{Clock, CustomerId, Timestamp};

/// Who is attempting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The customer whose credential is tried.
    pub customer_id: CustomerId,
    pub target: Target,
    /// The client's address; `None` when unknown (in-process calls), in which case the attempt
    /// counts only toward the per-customer limit.
    pub client: Option<IpAddr>,
}

/// What an attempt tries to open: the customer's secret key, or one bank login of the
/// customer's end users. Failures count per target, so a user mistyping a bank password never
/// locks out the fintech's token minting nor another user's login; only the per-client limit
/// is shared by the users behind one relay address (raise or disable it behind a relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    SecretKey,
    /// A digest of institution and username (case-insensitive), never the username itself.
    BankLogin([u8; 8]),
}

impl Target {
    pub fn bank_login(institution: &str, username: &str) -> Self {
        let who = format!(
            "{}\n{}",
            institution.trim().to_ascii_lowercase(),
            username.trim().to_ascii_lowercase()
        );
        let digest = bankgate_core::Digest::of_presented(&who);
        let mut short = [0_u8; 8];
        short.copy_from_slice(&digest.as_bytes()[..8]);
        Self::BankLogin(short)
    }
}

pub trait AttemptGuard: Send + Sync + std::fmt::Debug {
    /// `Err(retry_after)` when this attempt must be refused without looking at the credential.
    fn check(&self, attempt: &Attempt) -> Result<(), Duration>;
    fn failed(&self, attempt: &Attempt);
    fn succeeded(&self, attempt: &Attempt);
}

/// No limit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl AttemptGuard for Unlimited {
    fn check(&self, _: &Attempt) -> Result<(), Duration> {
        Ok(())
    }

    fn failed(&self, _: &Attempt) {}

    fn succeeded(&self, _: &Attempt) {}
}

/// The limits of a [`FailureLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failures from one client within `window` that lock that client out (of every customer).
    /// IPv6 clients count per /64 (see [`FailureLimiter`]). 0 turns the per-client limit off.
    pub max_failures_per_client: u32,
    /// Failures against one customer, from any clients, within `window` that lock that customer
    /// out for every client: the limit that an attacker rotating addresses still meets. 0 turns
    /// the per-customer limit off.
    pub max_failures_per_target: u32,
    /// How far back failures count: a failure stops counting once it is `window` old.
    pub window: Duration,
    /// How long a locked key refuses attempts, from the failure that reached its limit.
    pub lockout: Duration,
}

impl Default for LimitConfig {
    /// 10 failures per client or 50 per customer within 5 minutes lock out for 5 minutes: a
    /// person fixing a typo never gets near it, a guesser gets ~2 tries a minute per address.
    fn default() -> Self {
        Self {
            max_failures_per_client: 10,
            max_failures_per_target: 50,
            window: Duration::from_secs(5 * 60),
            lockout: Duration::from_secs(5 * 60),
        }
    }
}

/// Counts failed credential attempts per client address and per customer, and refuses attempts
/// for a key (client or customer) that reached its limit until its lockout ends.
///
/// - **Window**: sliding. A key is locked by the failure that makes `max` failures within the
///   last `window` (a failure exactly `window` old no longer counts), so failures bunched across
///   a boundary get no second allowance. Locking clears the key's count: after the lockout the
///   key starts over. Failures while locked are not counted (`check` refuses them first).
/// - **Clients**: an IPv4-mapped IPv6 address counts as its IPv4 address (dual-stack listeners
///   report IPv4 clients that way); other IPv6 addresses count per /64, the block one host or
///   site usually holds whole, so rotating through it gains nothing. A locked client does not
///   affect other clients of the same customer.
/// - **Success** forgets the client's failures (and lock), so a caller who mistyped is not
///   slowed down. It does not touch the customer's count: otherwise an attacker rotating
///   addresses could be reset by the customer's own legitimate traffic succeeding in between.
///   Those failures just age out of the window.
/// - **Cost**: `check` and `succeeded` are a hash lookup under a mutex; nothing sleeps or blocks
///   on I/O. Time is read only through the clock.
/// - **Memory**: at most [`Self::MAX_TRACKED_CLIENTS`] client and
///   [`Self::MAX_TRACKED_CUSTOMERS`] customer records, each holding fewer timestamps than its
///   limit. Only failures add records. When a table is full, the failure that would add a new
///   key first drops the stale records (no failure within the window, not locked); if that does
///   not free a quarter of the table, it evicts unlocked records closest to expiring (then, only
///   if every record is locked, locks closest to ending) until it has. So sweeps happen at most
///   once per quarter-table of new keys, and only while addresses are being sprayed.
pub struct FailureLimiter {
    config: LimitConfig,
    clock: Arc<dyn Clock>,
    /// Keyed by address and by whether the target is a secret key: a success on one kind never
    /// clears failures on the other (minting tokens must not launder password guesses).
    clients: FailureTable<(IpAddr, bool)>,
    /// Keyed by customer and target.
    customers: FailureTable<(CustomerId, Target)>,
    /// Clients that recently succeeded for a customer, and until when they are trusted: they
    /// pass a customer-wide lock, so strangers who know a customerId (it is in every path)
    /// cannot lock its own backend out.
    trusted: Mutex<HashMap<(CustomerId, Target, IpAddr), Timestamp>>,
}

impl FailureLimiter {
    /// The most client records kept (~100 bytes each with the default limits).
    pub const MAX_TRACKED_CLIENTS: usize = 65_536;
    /// The most customer records kept; the store bounds customers anyway, as failures only
    /// reach the guard for customers that exist.
    pub const MAX_TRACKED_CUSTOMERS: usize = 65_536;

    pub fn new(config: LimitConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            clients: FailureTable::new(config.max_failures_per_client, Self::MAX_TRACKED_CLIENTS),
            customers: FailureTable::new(
                config.max_failures_per_target,
                Self::MAX_TRACKED_CUSTOMERS,
            ),
            config,
            clock,
            trusted: Mutex::new(HashMap::new()),
        }
    }

    /// How long a success keeps a client trusted for its customer.
    pub const TRUST_AFTER_SUCCESS: Duration = Duration::from_secs(24 * 60 * 60);
    /// The most (customer, client) pairs trusted at once.
    pub const MAX_TRUSTED: usize = 65_536;

    fn trusted_until(&self, attempt: &Attempt, client: IpAddr) -> Option<Timestamp> {
        let trusted = self.trusted.lock().unwrap_or_else(PoisonError::into_inner);
        trusted
            .get(&(attempt.customer_id, attempt.target, client))
            .copied()
    }

    /// How many client and customer records are held now (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.clients.len() + self.customers.len()
    }

    /// Whole seconds, rounded up so a client honouring `Retry-After` never comes back early; at
    /// least 1 s, at most the lockout (a clock stepped back must not stretch the wait).
    fn retry_after(&self, locked_until: Timestamp, now: Timestamp) -> Duration {
        let remaining = u64::try_from(locked_until.as_micros().saturating_sub(now.as_micros()))
            .unwrap_or(0)
            .min(u64::try_from(self.config.lockout.as_micros()).unwrap_or(u64::MAX));
        Duration::from_secs(remaining.div_ceil(1_000_000).max(1))
    }
}

impl std::fmt::Debug for FailureLimiter {
    // Not the tables: they can hold tens of thousands of addresses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("config", &self.config)
            .field("tracked_clients", &self.clients.len())
            .field("tracked_customers", &self.customers.len())
            .finish_non_exhaustive()
    }
}

impl AttemptGuard for FailureLimiter {
    fn check(&self, attempt: &Attempt) -> Result<(), Duration> {
        let now = self.clock.now();
        let client_lock =
            client_slot(attempt).and_then(|slot| self.clients.locked_until(slot, now));
        let customer_lock = self
            .customers
            .locked_until((attempt.customer_id, attempt.target), now)
            .filter(|_| {
                let trusted = attempt
                    .client
                    .and_then(|address| self.trusted_until(attempt, client_key(address)));
                trusted.is_none_or(|until| now >= until)
            });
        // Both may be locked: the caller must wait for the later one.
        match client_lock.max(customer_lock) {
            None => Ok(()),
            Some(locked_until) => Err(self.retry_after(locked_until, now)),
        }
    }

    fn failed(&self, attempt: &Attempt) {
        let now = self.clock.now();
        let (window, lockout) = (self.config.window, self.config.lockout);
        if let Some(slot) = client_slot(attempt) {
            self.clients.record_failure(slot, now, window, lockout);
        }
        self.customers
            .record_failure((attempt.customer_id, attempt.target), now, window, lockout);
    }

    fn succeeded(&self, attempt: &Attempt) {
        let Some(slot) = client_slot(attempt) else {
            return;
        };
        self.clients.forget(slot);
        // Only a secret key earns trust: a bank login succeeding from a fintech's relay must not
        // let that address guess the same user's password past the limit.
        if attempt.target != Target::SecretKey {
            return;
        }
        let key = slot.0;
        let now = self.clock.now();
        let mut trusted = self.trusted.lock().unwrap_or_else(PoisonError::into_inner);
        if trusted.len() >= Self::MAX_TRUSTED
            && !trusted.contains_key(&(attempt.customer_id, attempt.target, key))
        {
            // Bounded: drop what expired, and if that is not enough, start over (losing trust
            // only means meeting the customer-wide limit like anyone else).
            trusted.retain(|_, until| now < *until);
            if trusted.len() >= Self::MAX_TRUSTED {
                trusted.clear();
            }
        }
        trusted.insert(
            (attempt.customer_id, attempt.target, key),
            now + Self::TRUST_AFTER_SUCCESS,
        );
    }
}

/// The client table's key for an attempt: the address and the kind of target.
fn client_slot(attempt: &Attempt) -> Option<(IpAddr, bool)> {
    attempt
        .client
        .map(|address| (client_key(address), attempt.target == Target::SecretKey))
}

/// The key a client address counts under (see [`FailureLimiter`]).
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// One kind of key's failures and locks.
struct FailureTable<K> {
    /// 0: this kind of key is never counted nor locked.
    max_failures: u32,
    capacity: usize,
    records: Mutex<HashMap<K, Record>>,
}

#[derive(Debug, Default)]
struct Record {
    /// This key's failures within the window, oldest first; fewer than the limit, since reaching
    /// it locks the key and clears them.
    recent_failures: VecDeque<Timestamp>,
    /// Attempts are refused while `now < locked_until`.
    locked_until: Option<Timestamp>,
}

impl Record {
    fn locked_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|&until| now < until)
    }

    /// When this record stops mattering: its last failure leaves the window and its lock ended.
    fn expires_at(&self, window: Duration) -> Timestamp {
        let failures_end = self
            .recent_failures
            .back()
            .map_or(Timestamp::from_micros(i64::MIN), |&last| last + window);
        self.locked_until
            .map_or(failures_end, |until| until.max(failures_end))
    }
}

impl<K: Copy + Eq + Hash> FailureTable<K> {
    fn new(max_failures: u32, capacity: usize) -> Self {
        Self {
            max_failures,
            capacity,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<K, Record>> {
        // A panic mid-update can only leave counters slightly off; refusing every attempt
        // forever after would be worse.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.records().len()
    }

    fn locked_until(&self, key: K, now: Timestamp) -> Option<Timestamp> {
        if self.max_failures == 0 {
            return None;
        }
        self.records()
            .get(&key)
            .and_then(|record| record.locked_until(now))
    }

    fn forget(&self, key: K) {
        if self.max_failures != 0 {
            self.records().remove(&key);
        }
    }

    fn record_failure(&self, key: K, now: Timestamp, window: Duration, lockout: Duration) {
        if self.max_failures == 0 {
            return;
        }
        let mut records = self.records();
        if records.len() >= self.capacity && !records.contains_key(&key) {
            make_room(&mut records, self.capacity, now, window);
        }
        let record = records.entry(key).or_default();
        if record.locked_until(now).is_some() {
            return;
        }
        record.locked_until = None;
        let window_start = now - window;
        while record
            .recent_failures
            .front()
            .is_some_and(|&at| at <= window_start)
        {
            record.recent_failures.pop_front();
        }
        record.recent_failures.push_back(now);
        if u32::try_from(record.recent_failures.len()).unwrap_or(u32::MAX) >= self.max_failures {
            // A fresh deque, not `clear()`: a locked record need not keep its allocation.
            record.recent_failures = VecDeque::new();
            record.locked_until = Some(now + lockout);
        }
    }
}

/// Shrinks a full table to at most three quarters of `capacity` (see [`FailureLimiter`]).
fn make_room<K: Copy + Eq + Hash>(
    records: &mut HashMap<K, Record>,
    capacity: usize,
    now: Timestamp,
    window: Duration,
) {
    records.retain(|_, record| now < record.expires_at(window));
    let target = capacity - capacity / 4;
    let Some(excess) = records.len().checked_sub(target).filter(|&n| n > 0) else {
        return;
    };
    // Unlocked records sort first (`false < true`), then the soonest to expire.
    let rank = |record: &Record| {
        (
            record.locked_until(now).is_some(),
            record.expires_at(window),
        )
    };
    let mut ranks: Vec<_> = records.values().map(rank).collect();
    let (_, &mut threshold, _) = ranks.select_nth_unstable(excess - 1);
    // Everything ranked below the threshold goes, and as many tied with it as still needed.
    let mut ties_to_evict = excess - ranks.iter().filter(|&&r| r < threshold).count();
    records.retain(|_, record| {
        let record_rank = rank(record);
        if record_rank < threshold {
            false
        } else if record_rank == threshold && ties_to_evict > 0 {
            ties_to_evict -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    #[test]
    fn a_client_that_succeeded_passes_a_customer_wide_lock() {
        let config = LimitConfig {
            max_failures_per_client: 0,
            max_failures_per_target: 3,
            ..LimitConfig::default()
        };
        let (guard, clock) = limiter(config);
        let customer = CustomerId::new_random();
        let backend = attempt(customer, client(1));
        guard.succeeded(&backend);
        fail_times(&guard, &attempt(customer, client(66)), 3);
        assert!(
            guard.check(&attempt(customer, client(67))).is_err(),
            "strangers are locked"
        );
        assert_eq!(
            guard.check(&backend),
            Ok(()),
            "the customer's own backend is not"
        );
        clock.advance(FailureLimiter::TRUST_AFTER_SUCCESS);
        guard.failed(&attempt(customer, client(68)));
        guard.failed(&attempt(customer, client(68)));
        guard.failed(&attempt(customer, client(68)));
        assert!(
            guard.check(&backend).is_err(),
            "trust ends after a day without success"
        );
    }

    use bankgate_core::ManualClock;

    use super::*;

    const MICROSECOND: Duration = Duration::from_micros(1);

    fn limiter(config: LimitConfig) -> (FailureLimiter, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000));
        (FailureLimiter::new(config, Arc::new(clock.clone())), clock)
    }

    fn client(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)))
    }

    fn attempt(customer_id: CustomerId, client: Option<IpAddr>) -> Attempt {
        Attempt {
            customer_id,
            client,
            target: Target::SecretKey,
        }
    }

    #[test]
    fn minting_tokens_does_not_launder_password_guesses_nor_earn_trust_for_them() {
        let (guard, _) = limiter(LimitConfig {
            max_failures_per_client: 3,
            max_failures_per_target: 5,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        let relay = client(9);
        let mint = attempt(customer, relay);
        let guess = Attempt {
            customer_id: customer,
            client: relay,
            target: Target::bank_login("FlinksCapital", "Greatday"),
        };
        for _ in 0..2 {
            assert_eq!(guard.check(&guess), Ok(()));
            guard.failed(&guess);
            guard.succeeded(&mint);
        }
        guard.failed(&guess);
        assert!(
            guard.check(&guess).is_err(),
            "3 guesses from one address lock it for logins"
        );
        assert_eq!(guard.check(&mint), Ok(()), "but not its token minting");
        // A correct login from the relay earns no trust past the user's own limit.
        let other = client(10);
        guard.succeeded(&Attempt {
            client: other,
            ..guess
        });
        for last in 20..25 {
            guard.failed(&Attempt {
                client: client(last),
                ..guess
            });
        }
        assert!(
            guard
                .check(&Attempt {
                    client: other,
                    ..guess
                })
                .is_err()
        );
    }

    #[test]
    fn bank_login_failures_count_per_username_not_per_customer() {
        let (guard, _) = limiter(LimitConfig {
            max_failures_per_client: 0,
            max_failures_per_target: 3,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        let login = |username: &str| Attempt {
            customer_id: customer,
            client: None,
            target: Target::bank_login("FlinksCapital", username),
        };
        fail_times(&guard, &login("Greatday"), 3);
        assert!(
            guard.check(&login("GREATDAY")).is_err(),
            "usernames match ignoring case"
        );
        assert_eq!(guard.check(&login("greatday_nomfa")), Ok(()));
        assert_eq!(
            guard.check(&attempt(customer, None)),
            Ok(()),
            "the secret key is untouched"
        );
    }

    fn fail_times(guard: &dyn AttemptGuard, attempt: &Attempt, times: u32) {
        for _ in 0..times {
            assert_eq!(guard.check(attempt), Ok(()));
            guard.failed(attempt);
        }
    }

    fn lockout() -> Duration {
        LimitConfig::default().lockout
    }

    #[test]
    fn under_the_limit_nothing_is_refused() {
        let (guard, _) = limiter(LimitConfig::default());
        let customer = CustomerId::new_random();
        let a = attempt(customer, client(1));
        fail_times(&guard, &a, 9);
        assert_eq!(guard.check(&a), Ok(()));
        assert_eq!(guard.check(&attempt(customer, None)), Ok(()));
    }

    #[test]
    fn the_nth_failure_locks_that_client_but_not_other_clients_of_the_customer() {
        let (guard, clock) = limiter(LimitConfig::default());
        let customer = CustomerId::new_random();
        let a = attempt(customer, client(1));
        fail_times(&guard, &a, 10);
        assert_eq!(guard.check(&a), Err(lockout()));
        clock.advance(Duration::from_secs(100));
        assert_eq!(guard.check(&a), Err(lockout() - Duration::from_secs(100)));
        // The lock is the address's, whichever customer it tries next.
        assert_eq!(
            guard.check(&attempt(CustomerId::new_random(), client(1))),
            Err(lockout() - Duration::from_secs(100))
        );
        assert_eq!(guard.check(&attempt(customer, client(2))), Ok(()));
        assert_eq!(guard.check(&attempt(customer, None)), Ok(()));
    }

    #[test]
    fn the_lock_lifts_exactly_when_the_lockout_ends_and_the_count_starts_over() {
        let (guard, clock) = limiter(LimitConfig::default());
        let a = attempt(CustomerId::new_random(), client(1));
        fail_times(&guard, &a, 10);
        clock.advance(lockout() - MICROSECOND);
        assert_eq!(guard.check(&a), Err(Duration::from_secs(1)));
        clock.advance(MICROSECOND);
        assert_eq!(guard.check(&a), Ok(()));
        fail_times(&guard, &a, 9);
        assert_eq!(guard.check(&a), Ok(()));
        guard.failed(&a);
        assert_eq!(guard.check(&a), Err(lockout()));
    }

    #[test]
    fn the_per_customer_limit_locks_every_client_of_that_customer_only() {
        let (guard, clock) = limiter(LimitConfig {
            max_failures_per_target: 5,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        for last in 1..=4 {
            fail_times(&guard, &attempt(customer, client(last)), 1);
        }
        assert_eq!(guard.check(&attempt(customer, client(9))), Ok(()));
        fail_times(&guard, &attempt(customer, None), 1);
        for who in [client(1), client(5), client(9), None] {
            assert_eq!(guard.check(&attempt(customer, who)), Err(lockout()));
        }
        // The clients themselves are not locked: another customer is still open to them.
        assert_eq!(
            guard.check(&attempt(CustomerId::new_random(), client(1))),
            Ok(())
        );
        clock.advance(lockout());
        assert_eq!(guard.check(&attempt(customer, client(9))), Ok(()));
    }

    #[test]
    fn when_both_are_locked_the_later_lock_decides() {
        let (guard, clock) = limiter(LimitConfig {
            max_failures_per_client: 2,
            max_failures_per_target: 3,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        fail_times(&guard, &attempt(customer, client(1)), 2);
        clock.advance(Duration::from_secs(60));
        fail_times(&guard, &attempt(customer, client(2)), 1);
        assert_eq!(guard.check(&attempt(customer, client(1))), Err(lockout()));
    }

    #[test]
    fn success_resets_the_clients_count() {
        let (guard, _) = limiter(LimitConfig::default());
        let a = attempt(CustomerId::new_random(), client(1));
        fail_times(&guard, &a, 9);
        guard.succeeded(&a);
        fail_times(&guard, &a, 9);
        assert_eq!(guard.check(&a), Ok(()));
        guard.failed(&a);
        assert_eq!(guard.check(&a), Err(lockout()));
    }

    #[test]
    fn success_does_not_reset_the_customers_count() {
        let (guard, _) = limiter(LimitConfig {
            max_failures_per_target: 6,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        // An attacker rotating addresses while the customer's own caller keeps succeeding.
        for last in 1..=5 {
            fail_times(&guard, &attempt(customer, client(last)), 1);
            guard.succeeded(&attempt(customer, client(100)));
        }
        fail_times(&guard, &attempt(customer, client(6)), 1);
        // The customer is locked for everyone but the caller that has been succeeding.
        assert_eq!(guard.check(&attempt(customer, client(7))), Err(lockout()));
        assert_eq!(guard.check(&attempt(customer, client(100))), Ok(()));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let config = LimitConfig::default();
        let (guard, clock) = limiter(config);
        let customer = CustomerId::new_random();
        let (a, b) = (attempt(customer, client(1)), attempt(customer, client(2)));
        fail_times(&guard, &a, 9);
        clock.advance(config.window - MICROSECOND);
        fail_times(&guard, &b, 9);
        // a's failures are one microsecond short of the window: they still count.
        guard.failed(&a);
        assert_eq!(guard.check(&a), Err(lockout()));
        // b's failures are exactly one window old: they no longer count.
        clock.advance(config.window);
        guard.failed(&b);
        assert_eq!(guard.check(&b), Ok(()));
    }

    #[test]
    fn the_window_slides_rather_than_restarting() {
        let config = LimitConfig::default();
        let (guard, clock) = limiter(config);
        let a = attempt(CustomerId::new_random(), client(1));
        fail_times(&guard, &a, 1);
        clock.advance(config.window - Duration::from_secs(1));
        fail_times(&guard, &a, 8);
        clock.advance(Duration::from_secs(2));
        // The first failure has left the window; the other eight still count.
        fail_times(&guard, &a, 1);
        assert_eq!(guard.check(&a), Ok(()));
        guard.failed(&a);
        assert_eq!(guard.check(&a), Err(lockout()));
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let (guard, clock) = limiter(LimitConfig {
            max_failures_per_client: 1,
            lockout: Duration::from_millis(2_500),
            ..LimitConfig::default()
        });
        let a = attempt(CustomerId::new_random(), client(1));
        guard.failed(&a);
        assert_eq!(guard.check(&a), Err(Duration::from_secs(3)));
        clock.advance(Duration::from_millis(1_600));
        assert_eq!(guard.check(&a), Err(Duration::from_secs(1)));
    }

    #[test]
    fn a_clock_stepped_back_does_not_stretch_the_wait() {
        let (guard, clock) = limiter(LimitConfig {
            max_failures_per_client: 1,
            ..LimitConfig::default()
        });
        let a = attempt(CustomerId::new_random(), client(1));
        guard.failed(&a);
        clock.set(clock.now() - Duration::from_secs(3_600));
        assert_eq!(guard.check(&a), Err(lockout()));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let (guard, _) = limiter(LimitConfig {
            max_failures_per_client: 2,
            max_failures_per_target: 0,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        let v6 = |text: &str| Some(IpAddr::V6(text.parse().unwrap()));
        guard.failed(&attempt(customer, v6("2001:db8:1:2::1")));
        guard.failed(&attempt(customer, v6("2001:db8:1:2:ffff::9")));
        assert_eq!(
            guard.check(&attempt(customer, v6("2001:db8:1:2::77"))),
            Err(lockout())
        );
        assert_eq!(
            guard.check(&attempt(customer, v6("2001:db8:1:3::1"))),
            Ok(())
        );

        guard.failed(&attempt(customer, v6("::ffff:203.0.113.1")));
        guard.failed(&attempt(customer, client(1)));
        assert_eq!(guard.check(&attempt(customer, client(1))), Err(lockout()));
        assert_eq!(guard.check(&attempt(customer, client(2))), Ok(()));
    }

    #[test]
    fn a_zero_limit_turns_that_limit_off() {
        let (guard, _) = limiter(LimitConfig {
            max_failures_per_client: 0,
            max_failures_per_target: 0,
            ..LimitConfig::default()
        });
        let a = attempt(CustomerId::new_random(), client(1));
        fail_times(&guard, &a, 1_000);
        assert_eq!(guard.tracked_keys(), 0);
    }

    #[test]
    fn memory_stays_bounded_when_addresses_are_sprayed() {
        let config = LimitConfig::default();
        let (guard, clock) = limiter(config);
        let bound = FailureLimiter::MAX_TRACKED_CLIENTS + FailureLimiter::MAX_TRACKED_CUSTOMERS;
        let customer = CustomerId::new_random();
        for n in 0..100_000u32 {
            guard.failed(&attempt(customer, Some(IpAddr::V4(Ipv4Addr::from(n)))));
            assert!(guard.clients.len() <= FailureLimiter::MAX_TRACKED_CLIENTS);
        }
        assert!(guard.tracked_keys() <= bound);
        // Once the window has passed, the new key that finds the table full sweeps every stale
        // record away and keeps only the fresh ones.
        clock.advance(config.lockout.max(config.window));
        let fresh = FailureLimiter::MAX_TRACKED_CLIENTS - guard.clients.len() + 1;
        for n in 0..u32::try_from(fresh).unwrap() {
            guard.failed(&attempt(
                customer,
                Some(IpAddr::V4(Ipv4Addr::from(n + 100_000))),
            ));
        }
        assert_eq!(guard.clients.len(), fresh);
    }

    #[test]
    fn a_spray_evicts_unlocked_records_before_locked_ones() {
        let (guard, clock) = limiter(LimitConfig {
            max_failures_per_target: 0,
            ..LimitConfig::default()
        });
        let customer = CustomerId::new_random();
        let locked = attempt(customer, client(1));
        fail_times(&guard, &locked, 10);
        clock.advance(Duration::from_secs(1));
        for n in 0..100_000u32 {
            guard.failed(&attempt(customer, Some(IpAddr::V4(Ipv4Addr::from(n)))));
        }
        assert!(guard.tracked_keys() <= FailureLimiter::MAX_TRACKED_CLIENTS);
        assert_eq!(
            guard.check(&locked),
            Err(lockout() - Duration::from_secs(1))
        );
    }

    #[test]
    fn unlimited_never_refuses() {
        let guard = Unlimited;
        let a = attempt(CustomerId::new_random(), client(1));
        for _ in 0..1_000 {
            guard.failed(&a);
        }
        assert_eq!(guard.check(&a), Ok(()));
        assert_eq!(guard.check(&attempt(a.customer_id, None)), Ok(()));
    }
}
