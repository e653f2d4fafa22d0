//! What the store keeps of the nightly refresh and of Enhanced MFA answers.

use bankgate_core::nightly::Stop;
use bankgate_core::{Digest, LoginId, Timestamp};

/// A flagged card that the last nightly run did not refresh (GetNightlyRefreshStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedCard {
    pub login_id: LoginId,
    /// The last successful refresh (live, or a nightly one).
    pub last_refresh: Timestamp,
    pub stop: Stop,
    /// The night (its 02:00) the card was not refreshed.
    pub stopped_at: Timestamp,
    /// The FlinksCode of the last refresh's failure, if it failed.
    pub refresh_error: Option<String>,
}

/// What one catch-up of an instance's nightly refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NightlyRun {
    /// Nights run (0: none was due, or another node ran them).
    pub nights: u64,
    /// Flagged cards refreshed at least once.
    pub refreshed: u64,
    /// Flagged cards that stopped refreshing during these nights.
    pub stopped: u64,
}

/// A card's Enhanced MFA questions: (index into its institution's questions, the answer's
/// digest once answered). Empty when the card was not connected with `WithMFAQuestions`.
pub type MfaAnswers = Vec<(usize, Option<Digest>)>;
