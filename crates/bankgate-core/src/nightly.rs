//! The sandbox's nightly (scheduled) refresh: when it runs and which cards it refreshes
//! (docs/flinks-wire.md, "Nightly refresh"). Pure rules; the store applies them to the flagged
//! cards of an instance, once per night crossed.

use std::time::Duration;

use crate::Digest;
use crate::clock::Timestamp;
use crate::ids::LoginId;
use crate::sandbox::{SandboxBank, Scenario};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;
/// The refresh runs at 02:00 on the instance's clock (UTC: instance clocks have no zone).
const RUN_AT_MICROS: i64 = 2 * 3600 * 1_000_000;

/// A card must have refreshed successfully, and (without a webhook) have had a cached call,
/// within this long before a night to be refreshed that night.
pub const ELIGIBILITY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The authorization errors that leave a card eligible (Flinks' list, "BANK
/// MAINTENANCE_RETRY_LATER" spelled as it shows it); any other error of the last refresh stops
/// the nightly refresh until a live refresh succeeds.
pub const TOLERATED_ERRORS: &[&str] = &[
    "RETRY_LATER",
    "AGGREGATION_ERROR",
    "SESSION_EXPIRED",
    "DISABLED_INSTITUTION",
    "UNAUTHORIZED",
    "SESSION_NONEXISTENT",
    "BANK MAINTENANCE_RETRY_LATER",
];

/// The night whose 02:00 is the latest at or before `at`, counted in days since the epoch.
pub fn night_of(at: Timestamp) -> i64 {
    (at.as_micros() - RUN_AT_MICROS).div_euclid(DAY_MICROS)
}

/// 02:00 of a night.
pub fn run_time(night: i64) -> Timestamp {
    Timestamp::from_micros(
        night
            .saturating_mul(DAY_MICROS)
            .saturating_add(RUN_AT_MICROS),
    )
}

/// Why a flagged card was not refreshed on a night (stored by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The last refresh failed with an error that is not tolerated (`refresh_error`).
    RefreshError,
    /// No successful refresh in the 7 days before the night.
    RefreshTooOld,
    /// No cached /Authorize in the 7 days before the night (instances without a webhook).
    NoCachedCall,
    /// The bank asked a security question the card has no stored answer to.
    QuestionUnanswered,
    /// The stored answer to the question asked was wrong (it is erased).
    AnswerWrong,
}

impl Stop {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RefreshError => "refresh_error",
            Self::RefreshTooOld => "refresh_too_old",
            Self::NoCachedCall => "no_cached_call",
            Self::QuestionUnanswered => "security_question_unanswered",
            Self::AnswerWrong => "security_answer_wrong",
        }
    }

    /// `LastRefreshState` of GetNightlyRefreshStatus: where the last refresh stopped.
    pub const fn last_refresh_state(self) -> &'static str {
        match self {
            Self::RefreshError => "Failed",
            Self::RefreshTooOld | Self::NoCachedCall => "Completed",
            Self::QuestionUnanswered | Self::AnswerWrong => "AnsweringSecurityChallenge",
        }
    }
}

impl std::str::FromStr for Stop {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::RefreshError,
            Self::RefreshTooOld,
            Self::NoCachedCall,
            Self::QuestionUnanswered,
            Self::AnswerWrong,
        ]
        .into_iter()
        .find(|stop| stop.as_str() == s)
        .ok_or_else(|| format!("unknown nightly stop {s:?}"))
    }
}

/// A card flagged for the nightly refresh, as the store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledCard {
    pub login_id: LoginId,
    pub institution: String,
    pub username: String,
    pub last_refresh: Timestamp,
    /// The last cached /Authorize of the card.
    pub last_cached_call: Option<Timestamp>,
    /// Since when the flag is on.
    pub scheduled_since: Timestamp,
    /// The FlinksCode of the last live refresh's failure (cleared by a success).
    pub refresh_error: Option<String>,
    /// Stored Enhanced MFA answers: (question index, answer digest if answered).
    pub answers: Vec<(usize, Option<Digest>)>,
}

/// What the nights did to a card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The last night it was refreshed (its new `LastRefresh`), if any.
    pub refreshed_at: Option<Timestamp>,
    /// The night it stopped, and why; `None` when it refreshed every night considered.
    pub stopped: Option<(Stop, Timestamp)>,
    /// The card's refresh error after the nights: `Some(None)` clears it.
    pub refresh_error: Option<Option<String>>,
    /// A stored answer found wrong: the question whose answer is erased.
    pub erase_answer: Option<usize>,
}

impl Verdict {
    /// Whether there is anything to write.
    pub fn changes(&self) -> bool {
        *self != Self::default()
    }
}

/// Judges a card over the nights after `after_night` up to `last_night`, in order: each night
/// it is either refreshed (its `LastRefresh` becomes that night's 02:00) or stopped, and a
/// stopped card stays stopped (nothing it depends on changes while no call is made). Nights at or
/// before the flag was set and the card last refreshed are skipped.
pub fn judge(
    bank: &SandboxBank,
    card: &ScheduledCard,
    after_night: i64,
    last_night: i64,
    cached_call_required: bool,
) -> Verdict {
    let newest = card.scheduled_since.max(card.last_refresh);
    let first = (after_night + 1).max(night_of(newest) + 1);
    if first > last_night {
        return Verdict::default();
    }
    let at = run_time(first);
    if let Err((stop, error, erase)) = check(bank, card, at, cached_call_required) {
        return Verdict {
            refreshed_at: None,
            stopped: Some((stop, at)),
            refresh_error: error.map(Some),
            erase_answer: erase,
        };
    }
    // Refreshed on the first night, it stays fresh on the following ones; only the cached call
    // ages, so the card refreshes every night until the one past its cached call's window.
    let mut verdict = Verdict {
        refreshed_at: Some(run_time(last_night)),
        stopped: None,
        refresh_error: card.refresh_error.as_ref().map(|_| None),
        erase_answer: None,
    };
    if cached_call_required && let Some(cached) = card.last_cached_call {
        let last_fresh = night_of(cached + ELIGIBILITY_WINDOW);
        if last_fresh < last_night {
            verdict.refreshed_at = Some(run_time(last_fresh));
            verdict.stopped = Some((Stop::NoCachedCall, run_time(last_fresh + 1)));
        }
    }
    verdict
}

type Refused = (Stop, Option<String>, Option<usize>);

/// The rules at one night's 02:00: `Err` with why the card is not refreshed, the refresh error
/// to record and the stored answer to erase.
fn check(
    bank: &SandboxBank,
    card: &ScheduledCard,
    at: Timestamp,
    cached_call_required: bool,
) -> Result<(), Refused> {
    if let Some(error) = &card.refresh_error
        && !TOLERATED_ERRORS.contains(&error.as_str())
    {
        return Err((Stop::RefreshError, None, None));
    }
    if card.last_refresh + ELIGIBILITY_WINDOW < at {
        return Err((Stop::RefreshTooOld, None, None));
    }
    if cached_call_required
        && card
            .last_cached_call
            .is_none_or(|cached| cached + ELIGIBILITY_WINDOW < at)
    {
        return Err((Stop::NoCachedCall, None, None));
    }
    let institution = bank.institution(&card.institution);
    let Some((institution, user)) = institution.and_then(|i| Some((i, i.user(&card.username)?)))
    else {
        return Err((Stop::RefreshError, Some("INVALID_LOGIN".to_owned()), None));
    };
    match user.scenario {
        Scenario::DisabledAccount => {
            Err((Stop::RefreshError, Some("DISABLED_LOGIN".to_owned()), None))
        }
        Scenario::ServiceUnavailable => {
            Err((Stop::RefreshError, Some("RETRY_LATER".to_owned()), None))
        }
        Scenario::Mfa => {
            // The question a refresh of this card is asked (as a live refresh is).
            let Some(question) = institution.question_for(card.login_id.as_uuid().as_bytes())
            else {
                return Ok(());
            };
            let stored = card
                .answers
                .iter()
                .find(|(q, _)| *q == question)
                .and_then(|(_, answer)| answer.as_ref());
            match (stored, institution.mfa_questions.get(question)) {
                (Some(stored), Some(asked))
                    if asked.stored_answer_is_right(card.login_id, question, stored) =>
                {
                    Ok(())
                }
                (Some(_), _) => Err((
                    Stop::AnswerWrong,
                    Some("INVALID_SECURITY_RESPONSE".to_owned()),
                    Some(question),
                )),
                (None, _) => Err((Stop::QuestionUnanswered, None, None)),
            }
        }
        // Choices, codes and images need the user at every login (as one-time codes at real
        // banks, for which Flinks no longer runs the nightly refresh): never unattended.
        Scenario::Challenges(_) => Err((Stop::QuestionUnanswered, None, None)),
        Scenario::NoMfa | Scenario::Pending | Scenario::Dispatched => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::mfa::answer_digest;

    const HOUR: i64 = 3600 * 1_000_000;

    fn night_start() -> Timestamp {
        // 2026-01-21T20:47:47Z, as the integration tests start.
        Timestamp::from_micros(1_769_028_467_145_999)
    }

    fn card(username: &str) -> ScheduledCard {
        let now = night_start();
        ScheduledCard {
            login_id: LoginId::new_random(),
            institution: "FlinksCapital".to_owned(),
            username: username.to_owned(),
            last_refresh: now,
            last_cached_call: Some(now),
            scheduled_since: now,
            refresh_error: None,
            answers: Vec::new(),
        }
    }

    #[test]
    fn nights_begin_at_two_in_the_morning() {
        let night = night_of(night_start());
        let two = run_time(night + 1);
        assert_eq!(night_of(two), night + 1);
        assert_eq!(night_of(Timestamp::from_micros(two.as_micros() - 1)), night);
        assert_eq!(two.to_rfc3339(), "2026-01-22T02:00:00Z");
        assert_eq!(two.as_micros() % (24 * HOUR), 2 * HOUR);
    }

    #[test]
    fn a_card_refreshes_each_night_until_its_cached_call_is_seven_days_old() {
        let bank = SandboxBank::builtin();
        let card = card("greatday_nomfa");
        let tonight = night_of(card.last_refresh);
        let one = judge(&bank, &card, tonight, tonight + 1, true);
        assert_eq!(one.refreshed_at, Some(run_time(tonight + 1)));
        assert_eq!(one.stopped, None);
        // Eight nights: the seventh is the last within 7 days of the cached call.
        let eight = judge(&bank, &card, tonight, tonight + 8, true);
        assert_eq!(eight.refreshed_at, Some(run_time(tonight + 7)));
        assert_eq!(
            eight.stopped,
            Some((Stop::NoCachedCall, run_time(tonight + 8)))
        );
        // With a webhook, no cached call is needed.
        let hooked = judge(&bank, &card, tonight, tonight + 8, false);
        assert_eq!(hooked.refreshed_at, Some(run_time(tonight + 8)));
        assert_eq!(hooked.stopped, None);
        // Nights already processed change nothing.
        assert!(!judge(&bank, &card, tonight + 8, tonight + 8, true).changes());
    }

    #[test]
    fn a_card_never_called_cached_or_in_error_is_not_refreshed() {
        let bank = SandboxBank::builtin();
        let mut never = card("greatday_nomfa");
        never.last_cached_call = None;
        let night = night_of(never.last_refresh);
        let verdict = judge(&bank, &never, night, night + 1, true);
        assert_eq!(
            verdict.stopped,
            Some((Stop::NoCachedCall, run_time(night + 1)))
        );
        let mut failed = card("greatday_nomfa");
        failed.refresh_error = Some("INVALID_LOGIN".to_owned());
        assert_eq!(
            judge(&bank, &failed, night, night + 1, true).stopped,
            Some((Stop::RefreshError, run_time(night + 1)))
        );
        // A tolerated error does not stop it, and the refresh clears it.
        failed.refresh_error = Some("RETRY_LATER".to_owned());
        let retried = judge(&bank, &failed, night, night + 1, true);
        assert_eq!(retried.stopped, None);
        assert_eq!(retried.refresh_error, Some(None));
    }

    #[test]
    fn mfa_cards_need_the_right_stored_answer() {
        let bank = SandboxBank::builtin();
        let fc = bank.institution("FlinksCapital").unwrap();
        let mut card = card("Greatday");
        let night = night_of(card.last_refresh);
        assert_eq!(
            judge(&bank, &card, night, night + 1, true).stopped,
            Some((Stop::QuestionUnanswered, run_time(night + 1)))
        );
        let q = fc.question_for(card.login_id.as_uuid().as_bytes()).unwrap();
        card.answers = vec![(q, Some(answer_digest(card.login_id, q, "wrong")))];
        let wrong = judge(&bank, &card, night, night + 1, true);
        assert_eq!(wrong.stopped.map(|s| s.0), Some(Stop::AnswerWrong));
        assert_eq!(wrong.erase_answer, Some(q));
        assert_eq!(
            wrong.refresh_error,
            Some(Some("INVALID_SECURITY_RESPONSE".to_owned()))
        );
        let right = fc.mfa_questions[q].answer;
        card.answers = vec![(q, Some(answer_digest(card.login_id, q, right)))];
        assert_eq!(judge(&bank, &card, night, night + 1, true).stopped, None);
    }

    #[test]
    fn stops_round_trip_their_names() {
        for stop in [
            Stop::RefreshError,
            Stop::RefreshTooOld,
            Stop::NoCachedCall,
            Stop::QuestionUnanswered,
            Stop::AnswerWrong,
        ] {
            assert_eq!(stop.as_str().parse::<Stop>(), Ok(stop));
        }
        assert!("x".parse::<Stop>().is_err());
    }
}
