//! Multi-factor challenges of the sandbox institutions, in English and French.

use std::fmt;
use std::str::FromStr;

/// The language of a bank connection; MFA prompts come in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Language {
    #[default]
    En,
    Fr,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }
}

impl FromStr for Language {
    type Err = String;

    /// `en`, `fr`, and regional forms (`fr-CA`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let primary = s.trim().split(['-', '_']).next().unwrap_or_default();
        match primary.to_ascii_lowercase().as_str() {
            "en" => Ok(Self::En),
            "fr" => Ok(Self::Fr),
            _ => Err(format!("unsupported language {s:?}; use en or fr")),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security question with its prompt in each language and its one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaQuestion {
    pub en: &'static str,
    pub fr: &'static str,
    pub answer: &'static str,
}

impl MfaQuestion {
    pub fn prompt(&self, language: Language) -> &'static str {
        match language {
            Language::En => self.en,
            Language::Fr => self.fr,
        }
    }

    /// Answers match ignoring case and surrounding spaces (docs/flinks-wire.md, "Sandbox bank").
    pub fn accepts(&self, answer: &str) -> bool {
        self.answer.eq_ignore_ascii_case(answer.trim())
    }
}

/// The three questions Flinks documents for its Canadian test institution.
pub const FLINKS_CAPITAL_QUESTIONS: &[MfaQuestion] = &[
    MfaQuestion {
        en: "What city were you born in?",
        fr: "Quelle est votre ville natale?",
        answer: "Montreal",
    },
    MfaQuestion {
        en: "What is the best country on earth?",
        fr: "Quel est le meilleur pays sur terre?",
        answer: "Canada",
    },
    MfaQuestion {
        en: "What shape do people like most?",
        fr: "Quelle forme les gens aiment-ils le plus?",
        answer: "Triangle",
    },
];

/// A stored Enhanced MFA answer (docs/flinks-wire.md, "Enhanced MFA"): a SHA-256 digest over
/// the LoginId, the question and the answer as the sandbox bank compares it (trimmed, ASCII case
/// folded), never the answer itself. The sandbox bank's check is that comparison, so replaying
/// the digest is replaying the answer; the LoginId and question in it keep equal answers of two
/// cards (or two questions) from having equal digests.
pub fn answer_digest(login_id: crate::LoginId, question: usize, answer: &str) -> crate::Digest {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"bankgate enhanced MFA answer\0");
    hasher.update(login_id.to_string().as_bytes());
    hasher.update(format!("\0{question}\0").as_bytes());
    hasher.update(answer.trim().to_ascii_lowercase().as_bytes());
    let bytes: [u8; 32] = hasher.finalize().into();
    // 32 bytes always make a digest.
    crate::Digest::from_slice(&bytes).unwrap_or_else(|| crate::Digest::of_presented(answer))
}

impl MfaQuestion {
    /// Whether a stored answer digest (see [`answer_digest`]) is this question's right answer.
    pub fn stored_answer_is_right(
        &self,
        login_id: crate::LoginId,
        question: usize,
        stored: &crate::Digest,
    ) -> bool {
        answer_digest(login_id, question, self.answer) == *stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_leniently() {
        assert_eq!("FR".parse::<Language>(), Ok(Language::Fr));
        assert_eq!("fr-CA".parse::<Language>(), Ok(Language::Fr));
        assert_eq!(" en ".parse::<Language>(), Ok(Language::En));
        assert!("de".parse::<Language>().is_err());
    }

    #[test]
    fn answers_ignore_case_and_spaces_prompts_are_translated() {
        let q = FLINKS_CAPITAL_QUESTIONS[0];
        assert!(q.accepts(" montreal "));
        assert!(!q.accepts("Toronto"));
        for q in FLINKS_CAPITAL_QUESTIONS {
            assert!(q.prompt(Language::Fr).contains("Quel"), "{}", q.fr);
            assert!(q.prompt(Language::En).ends_with('?'));
        }
    }

    #[test]
    fn stored_answers_compare_as_the_bank_does_and_differ_per_card_and_question() {
        let login = crate::LoginId::new_random();
        let q = FLINKS_CAPITAL_QUESTIONS[0];
        assert!(q.stored_answer_is_right(login, 0, &answer_digest(login, 0, " MONTREAL ")));
        assert!(!q.stored_answer_is_right(login, 0, &answer_digest(login, 0, "Toronto")));
        assert_ne!(answer_digest(login, 0, "x"), answer_digest(login, 1, "x"));
        let other = crate::LoginId::new_random();
        assert_ne!(answer_digest(login, 0, "x"), answer_digest(other, 0, "x"));
    }
}
