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
}
