//! The seam for brute-force protection on credential-taking endpoints. Handlers ask before they
//! check a credential and report how it went; a later issue plugs in a real limiter.

use std::time::Duration;

use bankgate_core::CustomerId;

/// Who is attempting: the customer addressed (and, later, the client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    pub customer_id: CustomerId,
}

pub trait AttemptGuard: Send + Sync + std::fmt::Debug {
    /// `Err(retry_after)` when this attempt must be refused without looking at the credential.
    fn check(&self, attempt: &Attempt) -> Result<(), Duration>;
    fn failed(&self, attempt: &Attempt);
    fn succeeded(&self, attempt: &Attempt);
}

/// No limit (the default until the limiter lands).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl AttemptGuard for Unlimited {
    fn check(&self, _: &Attempt) -> Result<(), Duration> {
        Ok(())
    }

    fn failed(&self, _: &Attempt) {}

    fn succeeded(&self, _: &Attempt) {}
}
