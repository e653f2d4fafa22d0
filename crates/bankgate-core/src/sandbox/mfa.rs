//! Multi-factor challenges of the sandbox institutions, in English and French: the documented
//! security questions, and the scripted challenges of every type (docs/flinks-wire.md,
//! "Challenge types"). This module is the one place that knows their prompts and answers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

/// `Type` of a challenge in a 203's `SecurityChallenges` (docs/flinks-wire.md, "Challenge types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeKind {
    QuestionAndAnswer,
    MultipleChoice,
    MultipleChoiceMultipleAnswers,
    TextOrCall,
    ImageSelection,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuestionAndAnswer => "QuestionAndAnswer",
            Self::MultipleChoice => "MultipleChoice",
            Self::MultipleChoiceMultipleAnswers => "MultipleChoiceMultipleAnswers",
            Self::TextOrCall => "TextOrCall",
            Self::ImageSelection => "ImageSelection",
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one entry of `Iterables` holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceValue {
    /// A word, in each language.
    Word { en: &'static str, fr: &'static str },
    /// A PNG image, sent base64-encoded.
    Png(&'static [u8]),
}

/// One entry of a challenge's `Iterables`, with what the Connect page shows for it (the label
/// of a radio button, the alt text of an image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub value: ChoiceValue,
    pub en: &'static str,
    pub fr: &'static str,
}

impl Choice {
    /// A word that is its own label.
    pub const fn word(en: &'static str, fr: &'static str) -> Self {
        Self {
            value: ChoiceValue::Word { en, fr },
            en,
            fr,
        }
    }

    /// The `Iterables` entry: the word in the language, or the image in base64.
    pub fn value(&self, language: Language) -> String {
        use base64::Engine as _;
        match self.value {
            ChoiceValue::Word { en, fr } => match language {
                Language::En => en.to_owned(),
                Language::Fr => fr.to_owned(),
            },
            ChoiceValue::Png(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn label(&self, language: Language) -> &'static str {
        match language {
            Language::En => self.en,
            Language::Fr => self.fr,
        }
    }

    /// Words match ignoring case and surrounding spaces, as free-text answers do; an image's
    /// base64 string only ignoring surrounding spaces.
    fn matches(&self, language: Language, given: &str) -> bool {
        let given = given.trim();
        match self.value {
            ChoiceValue::Word { .. } => self.value(language).eq_ignore_ascii_case(given),
            ChoiceValue::Png(_) => self.value(language) == given,
        }
    }
}

/// The right answer to a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Free text, matched ignoring case and surrounding spaces.
    Text(&'static str),
    /// Exactly one value: the `Iterables` entry at this index.
    One(usize),
    /// Exactly these `Iterables` entries, in any order (a set: a value sent twice counts once).
    All(&'static [usize]),
    /// Any one value; the entry chosen decides the challenge asked next (`then`).
    Pick,
}

/// A challenge the sandbox bank can ask, in both languages, with its right answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub kind: ChallengeKind,
    pub en: &'static str,
    pub fr: &'static str,
    pub iterables: &'static [Choice],
    pub expected: Expected,
    /// For `Expected::Pick`: the challenge number asked next after each entry of `iterables`.
    pub then: &'static [usize],
}

/// A challenge as asked at one step: what a 203 lists and the Connect page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedChallenge {
    pub kind: ChallengeKind,
    pub prompt: String,
    /// `Iterables` on the wire (empty for free-text questions).
    #[serde(default)]
    pub iterables: Vec<String>,
    /// What the Connect page shows for each entry of `iterables`.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl AskedChallenge {
    /// A free-text question (and what a Connect session saved before challenge types knew).
    pub fn question(prompt: String) -> Self {
        Self {
            kind: ChallengeKind::QuestionAndAnswer,
            prompt,
            iterables: Vec::new(),
            labels: Vec::new(),
        }
    }
}

/// Why an answer to one challenge is wrong; each names what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrongAnswer {
    /// Free text (or a code) that is not the answer.
    Text,
    /// A value that is not one of the challenge's `Iterables`.
    NotOffered { value: String },
    /// Too few or too many (distinct) values.
    Count { given: usize, needed: usize },
    /// Values from `Iterables`, but not the right ones.
    Choice { given: Vec<String> },
}

/// A right answer: what (if anything) is asked next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RightAnswer {
    pub next: Option<usize>,
}

impl Challenge {
    pub const fn question(q: &MfaQuestion) -> Self {
        Self {
            kind: ChallengeKind::QuestionAndAnswer,
            en: q.en,
            fr: q.fr,
            iterables: &[],
            expected: Expected::Text(q.answer),
            then: &[],
        }
    }

    pub fn prompt(&self, language: Language) -> &'static str {
        match language {
            Language::En => self.en,
            Language::Fr => self.fr,
        }
    }

    pub fn asked(&self, language: Language) -> AskedChallenge {
        AskedChallenge {
            kind: self.kind,
            prompt: self.prompt(language).to_owned(),
            iterables: self.iterables.iter().map(|c| c.value(language)).collect(),
            labels: self
                .iterables
                .iter()
                .map(|c| c.label(language).to_owned())
                .collect(),
        }
    }

    /// Checks the (non-blank) values sent for this challenge's prompt.
    pub fn check(&self, language: Language, values: &[String]) -> Result<RightAnswer, WrongAnswer> {
        if let Expected::Text(answer) = self.expected {
            // The first value counts, as for the documented questions (`["Montreal"]`).
            let given = values.first().map(|v| v.trim()).unwrap_or_default();
            return if answer.eq_ignore_ascii_case(given) {
                Ok(RightAnswer { next: None })
            } else {
                Err(WrongAnswer::Text)
            };
        }
        let mut chosen: Vec<usize> = Vec::new();
        for value in values {
            let Some(index) = self
                .iterables
                .iter()
                .position(|c| c.matches(language, value))
            else {
                return Err(WrongAnswer::NotOffered {
                    value: value.trim().to_owned(),
                });
            };
            if !chosen.contains(&index) {
                chosen.push(index);
            }
        }
        let needed = match self.expected {
            Expected::All(right) => right.len(),
            Expected::Text(_) | Expected::One(_) | Expected::Pick => 1,
        };
        if chosen.len() != needed {
            return Err(WrongAnswer::Count {
                given: chosen.len(),
                needed,
            });
        }
        let right = match self.expected {
            Expected::One(right) => chosen == [right],
            Expected::All(right) => right.iter().all(|i| chosen.contains(i)),
            Expected::Text(_) | Expected::Pick => true,
        };
        if !right {
            let given = chosen
                .iter()
                .filter_map(|&i| self.iterables.get(i))
                .map(|c| c.label(language).to_owned())
                .collect();
            return Err(WrongAnswer::Choice { given });
        }
        let next = match self.expected {
            Expected::Pick => chosen.first().and_then(|&i| self.then.get(i)).copied(),
            _ => None,
        };
        Ok(RightAnswer { next })
    }
}

/// Challenge numbers from here on are the institution's scripted challenges
/// ([`SCRIPTED_CHALLENGES`]); below it, its security questions. A pending MFA step stores these
/// numbers, so both ranges keep their numbering.
pub const SCRIPTED_BASE: usize = 100;

const TEXT_CODE: usize = SCRIPTED_BASE + 3;
const CALL_CODE: usize = SCRIPTED_BASE + 4;

/// The code every sandbox verification code challenge accepts.
pub const VERIFICATION_CODE: &str = "123456";

/// The challenges of the sandbox users other than `Greatday` (README, "Sandbox users").
pub const SCRIPTED_CHALLENGES: &[Challenge] = &[
    // 100: test_mfa_choice
    Challenge {
        kind: ChallengeKind::MultipleChoice,
        en: "What was the colour of your first car?",
        fr: "Quelle était la couleur de votre première voiture?",
        iterables: &[
            Choice::word("Red", "Rouge"),
            Choice::word("Blue", "Bleu"),
            Choice::word("Green", "Vert"),
            Choice::word("Black", "Noir"),
        ],
        expected: Expected::One(1),
        then: &[],
    },
    // 101: test_mfa_choices
    Challenge {
        kind: ChallengeKind::MultipleChoiceMultipleAnswers,
        en: "Which of these cities have you lived in? Choose all that apply.",
        fr: "Dans lesquelles de ces villes avez-vous habité? Choisissez toutes celles qui s'appliquent.",
        iterables: &[
            Choice::word("Montreal", "Montréal"),
            Choice::word("Toronto", "Toronto"),
            Choice::word("Vancouver", "Vancouver"),
            Choice::word("Calgary", "Calgary"),
            Choice::word("Halifax", "Halifax"),
        ],
        expected: Expected::All(&[0, 2]),
        then: &[],
    },
    // 102: test_mfa_text_or_call, first step. The values stay `Text` and `Call` in French (the
    // ruling names them); the labels are translated.
    Challenge {
        kind: ChallengeKind::TextOrCall,
        en: "How would you like to receive your verification code?",
        fr: "Comment voulez-vous recevoir votre code de vérification?",
        iterables: &[
            Choice {
                value: ChoiceValue::Word {
                    en: "Text",
                    fr: "Text",
                },
                en: "Text message",
                fr: "Message texte",
            },
            Choice {
                value: ChoiceValue::Word {
                    en: "Call",
                    fr: "Call",
                },
                en: "Phone call",
                fr: "Appel téléphonique",
            },
        ],
        expected: Expected::Pick,
        then: &[TEXT_CODE, CALL_CODE],
    },
    // 103: after `Text`.
    Challenge {
        kind: ChallengeKind::QuestionAndAnswer,
        en: "Enter the verification code we sent you by text message",
        fr: "Entrez le code de vérification envoyé par message texte",
        iterables: &[],
        expected: Expected::Text(VERIFICATION_CODE),
        then: &[],
    },
    // 104: after `Call`.
    Challenge {
        kind: ChallengeKind::QuestionAndAnswer,
        en: "Enter the verification code we gave you by phone call",
        fr: "Entrez le code de vérification reçu par appel téléphonique",
        iterables: &[],
        expected: Expected::Text(VERIFICATION_CODE),
        then: &[],
    },
    // 105: test_mfa_image. Real PNGs (32×32), so a client can decode and show them.
    Challenge {
        kind: ChallengeKind::ImageSelection,
        en: "Select your personal image",
        fr: "Sélectionnez votre image personnelle",
        iterables: &[
            Choice {
                value: ChoiceValue::Png(include_bytes!("images/square.png")),
                en: "Red square",
                fr: "Carré rouge",
            },
            Choice {
                value: ChoiceValue::Png(include_bytes!("images/circle.png")),
                en: "Blue circle",
                fr: "Cercle bleu",
            },
            Choice {
                value: ChoiceValue::Png(include_bytes!("images/triangle.png")),
                en: "Green triangle",
                fr: "Triangle vert",
            },
            Choice {
                value: ChoiceValue::Png(include_bytes!("images/diamond.png")),
                en: "Orange diamond",
                fr: "Losange orange",
            },
        ],
        expected: Expected::One(1),
        then: &[],
    },
];

/// Challenge numbers asked first by each scripted user.
pub const CHOICE: &[usize] = &[SCRIPTED_BASE];
pub const CHOICES: &[usize] = &[SCRIPTED_BASE + 1];
pub const TEXT_OR_CALL: &[usize] = &[SCRIPTED_BASE + 2];
pub const IMAGE: &[usize] = &[SCRIPTED_BASE + 5];
/// The three documented questions at once.
pub const TRIPLE: &[usize] = &[0, 1, 2];

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

    fn values(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn a_multiple_choice_takes_one_offered_value() {
        let c = SCRIPTED_CHALLENGES[0];
        assert_eq!(
            c.check(Language::En, &values(&[" blue "])),
            Ok(RightAnswer { next: None })
        );
        assert_eq!(
            c.check(Language::Fr, &values(&["Bleu"])),
            Ok(RightAnswer { next: None })
        );
        assert_eq!(
            c.check(Language::En, &values(&["Purple"])),
            Err(WrongAnswer::NotOffered {
                value: "Purple".to_owned()
            })
        );
        assert_eq!(
            c.check(Language::En, &values(&["Red", "Blue"])),
            Err(WrongAnswer::Count {
                given: 2,
                needed: 1
            })
        );
        assert_eq!(
            c.check(Language::En, &values(&["Red"])),
            Err(WrongAnswer::Choice {
                given: vec!["Red".to_owned()]
            })
        );
    }

    #[test]
    fn multiple_answers_are_a_set_in_any_order() {
        let c = SCRIPTED_CHALLENGES[1];
        let right = Ok(RightAnswer { next: None });
        assert_eq!(
            c.check(Language::En, &values(&["Vancouver", "Montreal"])),
            right
        );
        assert_eq!(
            c.check(
                Language::En,
                &values(&["Montreal", "Vancouver", "montreal"])
            ),
            right
        );
        assert_eq!(
            c.check(Language::Fr, &values(&["Montréal", "Vancouver"])),
            right
        );
        assert_eq!(
            c.check(Language::En, &values(&["Montreal"])),
            Err(WrongAnswer::Count {
                given: 1,
                needed: 2
            })
        );
        assert_eq!(
            c.check(Language::En, &values(&["Montreal", "Toronto", "Vancouver"])),
            Err(WrongAnswer::Count {
                given: 3,
                needed: 2
            })
        );
        assert!(matches!(
            c.check(Language::En, &values(&["Montreal", "Toronto"])),
            Err(WrongAnswer::Choice { .. })
        ));
    }

    #[test]
    fn text_or_call_leads_to_the_code_and_images_are_png() {
        let c = SCRIPTED_CHALLENGES[2];
        assert_eq!(
            c.check(Language::Fr, &values(&["Call"])).unwrap().next,
            Some(CALL_CODE)
        );
        assert_eq!(
            c.check(Language::En, &values(&["text"])).unwrap().next,
            Some(TEXT_CODE)
        );
        let image = SCRIPTED_CHALLENGES[5];
        let asked = image.asked(Language::En);
        use base64::Engine as _;
        for value in &asked.iterables {
            let png = base64::engine::general_purpose::STANDARD
                .decode(value)
                .unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        }
        let right = asked.iterables[1].clone();
        assert!(image.check(Language::En, &[right]).is_ok());
        assert!(matches!(
            image.check(Language::En, &[asked.iterables[0].clone()]),
            Err(WrongAnswer::Choice { .. })
        ));
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
