//! The sandbox bank: test institutions and their scripted users.
//!
//! Institutions are data. Adding one is adding an entry to [`SandboxBank::builtin`], not code.

pub mod accounts;
pub mod mfa;
pub mod statements;

use mfa::{FLINKS_CAPITAL_QUESTIONS, MfaQuestion};

/// What a sandbox user's login leads to (docs/flinks-wire.md, "Sandbox bank").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Logs in after one or more MFA questions.
    Mfa,
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
}

impl SandboxInstitution {
    /// The question asked at an MFA step, drawn deterministically from `seed` (the username of
    /// a new connection, the LoginId of a refresh) so a user always meets the same prompt.
    pub fn question_for(&self, seed: &[u8]) -> Option<usize> {
        use sha2::Digest as _;
        let count = self.mfa_questions.len();
        (count > 0).then(|| usize::from(sha2::Sha256::digest(seed)[0]) % count)
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
