//! Brute-force protection on the credential-taking endpoints (GenerateAuthorizeToken's secret
//! key, live /Authorize's bank password, also behind the Connect page). Handlers ask
//! [`Limiter::check`] before they look at a credential and report how it went; a refusal
//! becomes the 401 `TOO_MANY_REQUESTS` (`docs/flinks-wire.md`, "Error envelope") with
//! `Retry-After` and a Hint that says how to lift it.
//!
//! The rules (README, "Brute-force limits"; `docs/ARCHITECTURE.md`):
//!
//! - Failures count per **(client, target)** pair and per **target** (a customer's secret key,
//!   or one bank username of its end users), in the store, so every node sharing a database
//!   enforces one limit and a lockout survives a restart.
//! - A pair that reaches `max_failures_per_client` within the window is locked: that client is
//!   refused on that target, even with the right credential, until the lockout ends.
//! - A target that reaches `max_failures_per_target` (from any clients) is locked for the
//!   clients that have themselves failed on it within the window, and any client that fails on
//!   it while it is locked is locked at its first failure. A client with no failures of its own
//!   is never refused: someone else's failures from another address cannot lock a fintech or a
//!   user out. Against an attacker rotating addresses this leaves one guess per address per
//!   lockout; secret keys are random UUIDs, so that gains nothing.
//! - A success forgets only its own pair's failures (never the target's, never another pair's):
//!   succeeding on one customer or username does not launder failures on another.
//! - On sandbox instances, wrong passwords of the sandbox bank's published test users are not
//!   counted unless `limit_sandbox_passwords` is set; secret keys are counted everywhere.
//! - Cost: one read per checked attempt (both rows by primary key), one upsert per failure,
//!   and a delete on success only when the pair had a row. A client that just succeeded on a
//!   target skips the read for [`Limiter::CLEAN_FOR`] on this node: it holds the credential, so
//!   no lock is there to protect it from (a failure here ends that at once), and a backend
//!   minting tokens in a loop costs the store nothing more than before.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bankgate_core::{Clock, CustomerId, DomainError, Timestamp};
use bankgate_store::{AttemptFailure, AttemptKey, Store};

use crate::error::ApiError;

/// Who is attempting what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The customer whose credential is tried.
    pub customer_id: CustomerId,
    pub target: Target,
    /// The client's address; `None` when unknown (in-process calls), counted as one client.
    pub client: Option<IpAddr>,
    /// The customer's instance is a sandbox: its bank is the sandbox bank, whose test users
    /// and passwords are published.
    pub sandbox: bool,
}

impl Attempt {
    fn key(&self) -> AttemptKey {
        AttemptKey {
            customer_id: self.customer_id,
            target: self.target.as_key(),
            client: client_key(self.client),
        }
    }
}

/// What an attempt tries to open: the customer's secret key, or one bank login of the
/// customer's end users.
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

    /// How the store and the admin API name it.
    pub fn as_key(&self) -> String {
        match self {
            Self::SecretKey => SECRET_KEY.to_owned(),
            Self::BankLogin(digest) => {
                let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("{BANK_LOGIN_PREFIX}{hex}")
            }
        }
    }
}

/// The stored name of a secret-key target.
pub const SECRET_KEY: &str = "secret_key";
/// The stored prefix of a bank-login target (a digest follows).
pub const BANK_LOGIN_PREFIX: &str = "bank_login:";

/// The limits of a [`Limiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failures of one client on one target within `window` that lock that pair. IPv6 clients
    /// count per /64. 0 turns the per-client limit off.
    pub max_failures_per_client: u32,
    /// Failures on one target, from any clients, within `window` that lock it for the clients
    /// that failed on it (see the module). 0 turns the per-target limit off.
    pub max_failures_per_target: u32,
    /// How long a count runs from its first failure.
    pub window: Duration,
    /// How long reaching a limit refuses attempts; the count starts over after it.
    pub lockout: Duration,
    /// Count wrong passwords of the sandbox bank's test users on sandbox instances (off by
    /// default: they are published, and a tester trying refusals must not lock themselves out).
    pub limit_sandbox_passwords: bool,
}

impl Default for LimitConfig {
    /// 10 failures per client or 50 per target within 5 minutes lock out for 5 minutes: a person
    /// fixing a typo never gets near it, a guesser gets ~1 try a minute per address.
    fn default() -> Self {
        Self {
            max_failures_per_client: 10,
            max_failures_per_target: 50,
            window: Duration::from_secs(5 * 60),
            lockout: Duration::from_secs(5 * 60),
            limit_sandbox_passwords: false,
        }
    }
}

impl LimitConfig {
    /// No limits at all.
    pub fn off() -> Self {
        Self {
            max_failures_per_client: 0,
            max_failures_per_target: 0,
            ..Self::default()
        }
    }
}

/// Whose lockout refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// This client failed too often on this target.
    Client,
    /// The target failed too often from many clients, and this client failed on it too.
    Target,
}

/// Why an attempt was refused without looking at its credential; what the Hint tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub scope: LockScope,
    pub customer_id: CustomerId,
    pub target: Target,
    /// The client as the admin API and CLI name it (an address, an IPv6 /64, or `unknown`).
    pub client: String,
    /// The limit that was reached, and the window it counts in.
    pub max_failures: u64,
    pub window: Duration,
    /// Whole seconds until the lockout ends, at least 1.
    pub retry_after: Duration,
}

/// What [`Limiter::check`] found, for reporting the attempt's outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// The attempt counts at all (limits on, not a lenient sandbox password).
    counted: bool,
    /// The pair has a row (a success must forget it).
    pair_has_row: bool,
    /// The target is locked now: a failure locks the pair at once.
    target_locked: bool,
    /// The pair succeeded on this node a moment ago: the store was not read.
    recently_clean: bool,
}

/// Counts failed credential attempts in the store and refuses locked ones (see the module).
#[derive(Debug, Clone)]
pub struct Limiter {
    config: LimitConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Pairs that succeeded on this node, and until when their check may skip the store.
    clean: Arc<Mutex<HashMap<AttemptKey, Timestamp>>>,
}

impl Limiter {
    pub fn new(config: LimitConfig, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            store,
            clock,
            clean: Arc::default(),
        }
    }

    /// How long a success lets the same pair's next checks skip the store on this node.
    pub const CLEAN_FOR: Duration = Duration::from_secs(1);
    /// The most pairs remembered as clean (~100 bytes each).
    pub const MAX_CLEAN: usize = 65_536;

    fn clean(&self) -> std::sync::MutexGuard<'_, HashMap<AttemptKey, Timestamp>> {
        // A panic mid-update leaves at worst a pair read from the store again.
        self.clean.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn config(&self) -> LimitConfig {
        self.config
    }

    fn counts(&self, attempt: &Attempt) -> bool {
        let on = self.config.max_failures_per_client > 0 || self.config.max_failures_per_target > 0;
        let lenient = attempt.sandbox
            && matches!(attempt.target, Target::BankLogin(_))
            && !self.config.limit_sandbox_passwords;
        on && !lenient
    }

    /// Refuses the attempt (`TOO_MANY_REQUESTS`) if its pair is locked, or its target is locked
    /// and this client failed on it within the window.
    pub async fn check(&self, attempt: &Attempt) -> Result<Checked, ApiError> {
        if !self.counts(attempt) {
            return Ok(Checked::default());
        }
        let key = attempt.key();
        let now = self.clock.now();
        if self.clean().get(&key).is_some_and(|until| now < *until) {
            return Ok(Checked {
                counted: true,
                recently_clean: true,
                ..Checked::default()
            });
        }
        let state = self.store.attempt_state(&key).await?;
        let lockout = |scope, until, max_failures| {
            ApiError::rate_limited(&Lockout {
                scope,
                customer_id: attempt.customer_id,
                target: attempt.target,
                client: key.client.clone(),
                max_failures,
                window: self.config.window,
                retry_after: self.retry_after(until, now),
            })
        };
        if let Some(pair) = &state.pair
            && let Some(until) = pair.locked_at(now)
        {
            return Err(lockout(LockScope::Client, until, pair.max_failures));
        }
        let target_lock = state
            .target
            .as_ref()
            .and_then(|target| Some((target.locked_at(now)?, target.max_failures)));
        let failed_here = state
            .pair
            .as_ref()
            .is_some_and(|pair| pair.failures > 0 && now < pair.window_start + self.config.window);
        if let Some((until, max)) = target_lock
            && failed_here
        {
            return Err(lockout(LockScope::Target, until, max));
        }
        Ok(Checked {
            counted: true,
            pair_has_row: state.pair.is_some(),
            target_locked: target_lock.is_some(),
            recently_clean: false,
        })
    }

    /// Counts a failed attempt (one statement).
    pub async fn failed(&self, attempt: &Attempt, checked: Checked) -> Result<(), DomainError> {
        if !checked.counted {
            return Ok(());
        }
        let key = attempt.key();
        self.clean().remove(&key);
        let per_client = match self.config.max_failures_per_client {
            _ if checked.target_locked => 1,
            // Still counted, so the target's lock knows who failed.
            0 => u64::MAX,
            max => u64::from(max),
        };
        self.store
            .record_failure(AttemptFailure {
                key,
                now: self.clock.now(),
                window: self.config.window,
                lockout: self.config.lockout,
                max_per_client: per_client,
                max_per_target: u64::from(self.config.max_failures_per_target),
            })
            .await?;
        Ok(())
    }

    /// Forgets this pair's failures; nothing to do when it had none.
    pub async fn succeeded(&self, attempt: &Attempt, checked: Checked) -> Result<(), DomainError> {
        if !checked.counted {
            return Ok(());
        }
        let key = attempt.key();
        if checked.pair_has_row {
            self.store.forget_failures(&key).await?;
        }
        if !checked.recently_clean {
            let until = self.clock.now() + Self::CLEAN_FOR;
            let mut clean = self.clean();
            if clean.len() >= Self::MAX_CLEAN {
                // Bounded: drop what expired, and if that is not enough, start over (a pair
                // forgotten is only read from the store again).
                let now = self.clock.now();
                clean.retain(|_, until| now < *until);
                if clean.len() >= Self::MAX_CLEAN {
                    clean.clear();
                }
            }
            clean.insert(key, until);
        }
        Ok(())
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

/// The client an address counts as: an IPv4-mapped IPv6 address as its IPv4 address
/// (dual-stack listeners report IPv4 clients that way); other IPv6 addresses per /64, the block
/// one host or site usually holds whole, so rotating through it gains nothing.
pub fn client_key(address: Option<IpAddr>) -> String {
    match address {
        None => UNKNOWN_CLIENT.to_owned(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// The client of in-process calls, which carry no address.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// An operator's way of naming a client: an address (an IPv6 one names its /64), a /64 as
/// listed, or `unknown`. `None` when it is none of these.
pub fn parse_client(text: &str) -> Option<String> {
    let text = text.trim();
    if text == UNKNOWN_CLIENT {
        return Some(text.to_owned());
    }
    let address = text.strip_suffix("/64").unwrap_or(text);
    let address: IpAddr = address.parse().ok()?;
    if text.ends_with("/64") && !address.is_ipv6() {
        return None;
    }
    Some(client_key(Some(address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let key = |text: &str| client_key(Some(text.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::9"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:203.0.113.1"), "203.0.113.1");
        assert_eq!(key("203.0.113.1"), "203.0.113.1");
        assert_eq!(client_key(None), "unknown");
    }

    #[test]
    fn operators_name_clients_as_addresses_or_as_listed() {
        assert_eq!(parse_client("203.0.113.9").as_deref(), Some("203.0.113.9"));
        assert_eq!(
            parse_client("2001:db8:1:2::77").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            parse_client("2001:db8:1:2::/64").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(parse_client("unknown").as_deref(), Some("unknown"));
        for bad in ["", "localhost", "203.0.113.9/64", "*", "10.0.0.0/8"] {
            assert_eq!(parse_client(bad), None, "{bad}");
        }
    }

    #[test]
    fn bank_logins_match_ignoring_case_and_never_show_the_username() {
        let a = Target::bank_login("FlinksCapital", "Greatday");
        assert_eq!(a, Target::bank_login("flinkscapital", " GREATDAY "));
        assert_ne!(a, Target::bank_login("FlinksCapital", "greatday_nomfa"));
        let key = a.as_key();
        assert!(
            key.starts_with(BANK_LOGIN_PREFIX) && key.len() == 27,
            "{key}"
        );
        assert!(!key.to_lowercase().contains("greatday"));
        assert_eq!(Target::SecretKey.as_key(), "secret_key");
    }
}
