//! The sandbox bank: test institutions and their scripted users.
//!
//! Institutions are data. Adding one is adding an entry to [`SandboxBank::builtin`], not code.

pub mod accounts;
pub mod mfa;
pub mod statements;

use mfa::{
    AskedChallenge, Challenge, ChallengeKind, FLINKS_CAPITAL_QUESTIONS, Language, MfaQuestion,
    SCRIPTED_BASE, SCRIPTED_CHALLENGES, WrongAnswer,
};

/// What a sandbox user's login leads to (docs/flinks-wire.md, "Sandbox bank").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Logs in after one MFA question per step, drawn from the institution's questions.
    Mfa,
    /// Logs in after these challenges (numbers as in [`SandboxInstitution::challenge`]), and
    /// those a right answer leads to.
    Challenges(&'static [usize]),
    /// Logs in straight after credentials.
    NoMfa,
    /// `DISABLED_LOGIN`.
    DisabledAccount,
    /// 401 `RETRY_LATER`.
    ServiceUnavailable,
    /// 202 `OPERATION_DISPATCHED`.
    Dispatched,
    /// 202 `OPERATION_PENDING`.
    Pending,
}

impl Scenario {
    /// Whether logging in leads to MFA challenges.
    pub fn asks_mfa(self) -> bool {
        matches!(self, Self::Mfa | Self::Challenges(_))
    }
}

/// What the answers sent for one MFA step come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepVerdict {
    /// Nothing answered (no answers, or only blank ones to the prompts asked): ask again.
    AskAgain,
    /// Answers keyed by prompts that were not asked, and none to those that were.
    UnknownPrompts,
    /// Some prompts asked got no (non-blank) answer.
    Incomplete { answered: usize, asked: usize },
    /// The first wrong answer, by prompt.
    Wrong {
        prompt: String,
        kind: ChallengeKind,
        wrong: WrongAnswer,
    },
    /// Every answer right, and these challenges come next (TextOrCall's code).
    Next(Vec<usize>),
    /// Every answer right: logged in.
    Done,
}

/// One scripted user of a sandbox institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    pub username: &'static str,
    pub password: &'static str,
    pub scenario: Scenario,
}

/// A test institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInstitution {
    /// The id clients send as `Institution` (`FlinksCapital`).
    pub id: &'static str,
    /// `InstitutionId` on the wire.
    pub numeric_id: u32,
    pub users: &'static [SandboxUser],
    /// The security questions its MFA users are asked.
    pub mfa_questions: &'static [MfaQuestion],
    /// Its other challenges, numbered from [`SCRIPTED_BASE`].
    pub scripted: &'static [Challenge],
}

impl SandboxInstitution {
    /// The question asked at an MFA step, drawn deterministically from `seed` (the username of
    /// a new connection, the LoginId of a refresh) so a user always meets the same prompt.
    pub fn question_for(&self, seed: &[u8]) -> Option<usize> {
        use sha2::Digest as _;
        let count = self.mfa_questions.len();
        (count > 0).then(|| usize::from(sha2::Sha256::digest(seed)[0]) % count)
    }

    /// Challenge number `n`: a security question below [`SCRIPTED_BASE`], a scripted challenge
    /// from there on.
    pub fn challenge(&self, n: usize) -> Option<Challenge> {
        match n.checked_sub(SCRIPTED_BASE) {
            None => self.mfa_questions.get(n).map(Challenge::question),
            Some(i) => self.scripted.get(i).copied(),
        }
    }

    /// The challenges a user meets first: for `Greatday` one question drawn from `seed` (the
    /// username of a new connection, the LoginId of a refresh), for a scripted user its own.
    pub fn first_challenges(&self, user: &SandboxUser, seed: &[u8]) -> Vec<usize> {
        match user.scenario {
            Scenario::Challenges(numbers) => numbers.to_vec(),
            _ => self.question_for(seed).into_iter().collect(),
        }
    }

    /// The challenges `numbers` as asked in `language` (unknown numbers skipped).
    pub fn asked(&self, numbers: &[usize], language: Language) -> Vec<AskedChallenge> {
        numbers
            .iter()
            .filter_map(|&n| self.challenge(n))
            .map(|c| c.asked(language))
            .collect()
    }

    /// Judges the answers to one step. `values(prompt)` gives the non-blank values sent for a
    /// prompt (`None` when the prompt is not a key at all); `anything_sent` whether
    /// `SecurityResponses` had any key.
    pub fn judge(
        &self,
        numbers: &[usize],
        language: Language,
        values: impl Fn(&str) -> Option<Vec<String>>,
        anything_sent: bool,
    ) -> StepVerdict {
        let asked: Vec<Challenge> = numbers.iter().filter_map(|&n| self.challenge(n)).collect();
        let sent: Vec<Option<Vec<String>>> =
            asked.iter().map(|c| values(c.prompt(language))).collect();
        let answered = sent
            .iter()
            .filter(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
            .count();
        if answered == 0 {
            return if !anything_sent || sent.iter().any(Option::is_some) {
                StepVerdict::AskAgain
            } else {
                StepVerdict::UnknownPrompts
            };
        }
        if answered < asked.len() {
            return StepVerdict::Incomplete {
                answered,
                asked: asked.len(),
            };
        }
        let mut next = Vec::new();
        for (challenge, values) in asked.iter().zip(&sent) {
            match challenge.check(language, values.as_deref().unwrap_or_default()) {
                Ok(right) => next.extend(right.next),
                Err(wrong) => {
                    return StepVerdict::Wrong {
                        prompt: challenge.prompt(language).to_owned(),
                        kind: challenge.kind,
                        wrong,
                    };
                }
            }
        }
        if next.is_empty() {
            StepVerdict::Done
        } else {
            StepVerdict::Next(next)
        }
    }

    /// Usernames match case-insensitively (docs/flinks-wire.md, "Sandbox bank").
    pub fn user(&self, username: &str) -> Option<&SandboxUser> {
        self.users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username.trim()))
    }
}

const FLINKS_CAPITAL_USERS: &[SandboxUser] = &[
    SandboxUser {
        username: "Greatday",
        password: "Everyday",
        scenario: Scenario::Mfa,
    },
    SandboxUser {
        username: "greatday_nomfa",
        password: "Everyday",
        scenario: Scenario::NoMfa,
    },
    SandboxUser {
        username: "test_disabled_account",
        password: "Everyday",
        scenario: Scenario::DisabledAccount,
    },
    SandboxUser {
        username: "test_service_unavailable",
        password: "Everyday",
        scenario: Scenario::ServiceUnavailable,
    },
    SandboxUser {
        username: "test_dispatched",
        password: "Everyday",
        scenario: Scenario::Dispatched,
    },
    SandboxUser {
        username: "test_pending",
        password: "Everyday",
        scenario: Scenario::Pending,
    },
    // The other challenge types (README, "Sandbox users"; docs/flinks-wire.md, "Challenge types").
    SandboxUser {
        username: "test_mfa_choice",
        password: "Everyday",
        scenario: Scenario::Challenges(mfa::CHOICE),
    },
    SandboxUser {
        username: "test_mfa_choices",
        password: "Everyday",
        scenario: Scenario::Challenges(mfa::CHOICES),
    },
    SandboxUser {
        username: "test_mfa_text_or_call",
        password: "Everyday",
        scenario: Scenario::Challenges(mfa::TEXT_OR_CALL),
    },
    SandboxUser {
        username: "test_mfa_image",
        password: "Everyday",
        scenario: Scenario::Challenges(mfa::IMAGE),
    },
    SandboxUser {
        username: "test_mfa_triple",
        password: "Everyday",
        scenario: Scenario::Challenges(mfa::TRIPLE),
    },
];

/// The set of sandbox institutions this build knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxBank {
    institutions: Vec<SandboxInstitution>,
}

impl SandboxBank {
    /// The institutions Flinks documents for its sandbox.
    pub fn builtin() -> Self {
        Self {
            institutions: vec![SandboxInstitution {
                id: "FlinksCapital",
                numeric_id: 14,
                users: FLINKS_CAPITAL_USERS,
                mfa_questions: FLINKS_CAPITAL_QUESTIONS,
                scripted: SCRIPTED_CHALLENGES,
            }],
        }
    }

    /// `InstitutionId` on the wire for an institution id (0 for one this bank does not know).
    pub fn numeric_id(&self, id: &str) -> u32 {
        self.institution(id).map_or(0, |i| i.numeric_id)
    }

    pub fn institutions(&self) -> &[SandboxInstitution] {
        &self.institutions
    }

    /// Institution ids match case-insensitively: clients send `FlinksCapital` and `flinkscapital`.
    pub fn institution(&self, id: &str) -> Option<&SandboxInstitution> {
        self.institutions
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(id.trim()))
    }
}

impl Default for SandboxBank {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flinks_capital_users_match_case_insensitively() {
        let bank = SandboxBank::builtin();
        let fc = bank.institution("flinkscapital").unwrap();
        assert_eq!(fc.id, "FlinksCapital");
        assert_eq!(fc.numeric_id, 14);
        assert_eq!(fc.user("GREATDAY").unwrap().scenario, Scenario::Mfa);
        assert_eq!(fc.user("greatday_nomfa").unwrap().scenario, Scenario::NoMfa);
        assert!(fc.user("nobody").is_none());
        assert!(bank.institution("RBC").is_none());
    }

    #[test]
    fn every_scripted_user_and_step_has_its_challenges() {
        let bank = SandboxBank::builtin();
        let fc = bank.institution("FlinksCapital").unwrap();
        for user in fc.users {
            if let Scenario::Challenges(numbers) = user.scenario {
                assert!(!numbers.is_empty());
                for &n in numbers {
                    assert!(fc.challenge(n).is_some(), "{}: {n}", user.username);
                }
            }
        }
        for c in fc.scripted {
            for &n in c.then {
                assert!(fc.challenge(n).is_some());
            }
        }
        assert_eq!(
            fc.challenge(0).unwrap().kind,
            ChallengeKind::QuestionAndAnswer
        );
        assert!(fc.challenge(3).is_none());
    }

    #[test]
    fn a_step_is_judged_prompt_by_prompt() {
        let bank = SandboxBank::builtin();
        let fc = bank.institution("FlinksCapital").unwrap();
        let answers = |pairs: &'static [(&'static str, &'static [&'static str])]| {
            move |prompt: &str| {
                pairs
                    .iter()
                    .find(|(p, _)| *p == prompt)
                    .map(|(_, v)| v.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
            }
        };
        let triple = mfa::TRIPLE;
        let en = Language::En;
        assert_eq!(
            fc.judge(triple, en, answers(&[]), false),
            StepVerdict::AskAgain
        );
        assert_eq!(
            fc.judge(triple, en, answers(&[("Who?", &["x"])]), true),
            StepVerdict::UnknownPrompts
        );
        assert_eq!(
            fc.judge(
                triple,
                en,
                answers(&[("What city were you born in?", &["Montreal"])]),
                true
            ),
            StepVerdict::Incomplete {
                answered: 1,
                asked: 3
            }
        );
        let all: &'static [(&'static str, &'static [&'static str])] = &[
            ("What city were you born in?", &["Montreal"]),
            ("What is the best country on earth?", &["Canada"]),
            ("What shape do people like most?", &["Triangle"]),
        ];
        assert_eq!(fc.judge(triple, en, answers(all), true), StepVerdict::Done);
        assert_eq!(
            fc.judge(
                mfa::TEXT_OR_CALL,
                en,
                answers(&[(
                    "How would you like to receive your verification code?",
                    &["Text"]
                )]),
                true
            ),
            StepVerdict::Next(vec![SCRIPTED_BASE + 3])
        );
    }

    #[test]
    fn the_question_asked_depends_only_on_the_seed() {
        let fc = SandboxBank::builtin()
            .institution("FlinksCapital")
            .unwrap()
            .clone();
        let first = fc.question_for(b"greatday").unwrap();
        assert_eq!(fc.question_for(b"greatday"), Some(first));
        assert!(first < fc.mfa_questions.len());
        let asked: std::collections::HashSet<usize> =
            (0..64_u8).filter_map(|i| fc.question_for(&[i])).collect();
        assert_eq!(asked.len(), 3, "every question gets asked for some seed");
    }
}
