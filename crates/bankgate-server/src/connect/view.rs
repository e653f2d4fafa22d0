//! Renders a Connect screen: the template, its strings, and the headers of the page.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bankgate_core::model::Language;
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::sandbox::accounts::{Account, to_decimal};
use bankgate_core::sandbox::mfa::{AskedChallenge, ChallengeKind};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::params::Theme;
use super::{Events, PageState, Step, i18n};

static TEMPLATES: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A missing string or field is a bug to find in tests, not a blank on the page.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("page.html", include_str!("page.html"))?;
    Ok(env)
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_the_language() {
        assert_eq!(amount(123_456_789, Language::En), "1,234,567.89");
        assert_eq!(
            amount(123_456_789, Language::Fr),
            "1\u{202f}234\u{202f}567,89"
        );
        assert_eq!(amount(-5, Language::En), "-0.05");
        assert_eq!(amount(99_900, Language::En), "999.00");
    }

    #[test]
    fn colours_keep_their_contrast() {
        // The figures of the accessibility scan: white on the dark theme's accent, the old
        // focus ring and field border on white.
        assert!((contrast("ffffff", "7aa7ff") - 2.39).abs() < 0.01);
        assert!(contrast("ffffff", "ffbf47") < 3.0 && contrast("ffffff", "c9ced8") < 3.0);
        assert_eq!(readable_on("7aa7ff"), "000000");
        assert_eq!(readable_on("1f57d6"), "ffffff");
        assert_eq!(custom_palette(Theme::Light, None, None), None);
        // A light custom accent gets dark button text, and links fall back to the text colour.
        let style = custom_palette(Theme::Light, None, Some("ffd700")).unwrap();
        assert!(style.contains("--on-primary:#000000;"), "{style}");
        assert!(style.contains("--link:#000000;"), "{style}");
        // A dark custom background takes the dark palette, whatever the theme.
        let style = custom_palette(Theme::Light, Some("000"), None).unwrap();
        assert!(style.starts_with("--bg:#000;--fg:#eef0f4;"), "{style}");
        assert!(style.contains("--on-primary:#ffffff;"), "{style}");
        // A mid grey keeps nothing of the palette that would not read on it.
        let style = custom_palette(Theme::Dark, Some("777777"), Some("777777")).unwrap();
        for part in style.split(';').filter(|p| !p.is_empty()) {
            let (name, colour) = part.split_once(":#").unwrap();
            if name != "--bg" && name != "--accent" {
                let needed = if matches!(name, "--border" | "--focus") {
                    3.0
                } else {
                    4.5
                };
                assert!(contrast(colour, "777777") >= needed, "{part}");
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct InstitutionView {
    id: &'static str,
    name: String,
}

#[derive(Debug, Serialize)]
struct AccountView {
    id: String,
    title: &'static str,
    ending: String,
    balance: String,
    currency: &'static str,
}

/// One entry of a challenge's choices: its index (the form value), its label, and for an
/// image the base64 PNG.
#[derive(Debug, Serialize)]
struct ChoiceView {
    value: usize,
    label: String,
    image: Option<String>,
}

/// One challenge of the MFA screen.
#[derive(Debug, Serialize)]
struct ChallengeView {
    kind: &'static str,
    prompt: String,
    /// Checkboxes rather than radio buttons.
    multiple: bool,
    choices: Vec<ChoiceView>,
}

impl ChallengeView {
    fn new(challenge: AskedChallenge) -> Self {
        let image = challenge.kind == ChallengeKind::ImageSelection;
        let choices = challenge
            .iterables
            .into_iter()
            .enumerate()
            .map(|(value, iterable)| ChoiceView {
                value,
                label: challenge
                    .labels
                    .get(value)
                    .cloned()
                    .unwrap_or_else(|| iterable.clone()),
                image: image.then_some(iterable),
            })
            .collect();
        Self {
            kind: challenge.kind.as_str(),
            prompt: challenge.prompt,
            multiple: challenge.kind == ChallengeKind::MultipleChoiceMultipleAnswers,
            choices,
        }
    }
}

/// One field of the security-questions step (`enhancedMFA`).
#[derive(Debug, Serialize)]
struct QuestionView {
    /// The question's number, which names its field.
    number: usize,
    prompt: String,
    /// Posted blank: shown in error.
    invalid: bool,
    focus: bool,
}

#[derive(Debug, Serialize)]
struct RedirectView {
    url: String,
    inner: bool,
    js: bool,
}

/// Everything the template reads.
#[derive(Debug, Serialize)]
pub struct View {
    lang: &'static str,
    t: std::collections::BTreeMap<&'static str, &'static str>,
    screen: &'static str,
    session: Option<String>,
    customer: String,
    institution: Option<String>,
    institution_name: String,
    institutions: Vec<InstitutionView>,
    query: String,
    search: bool,
    challenges: Vec<ChallengeView>,
    /// Which MFA screen of the exchange this is (see `Step::Mfa`).
    mfa_step: u32,
    questions: Vec<QuestionView>,
    /// `skipEnhancedMFA=true`: the questions step has a Skip button.
    skip_questions: bool,
    username: String,
    accounts: Vec<AccountView>,
    multiple: bool,
    notice: Option<&'static str>,
    /// The notice is a problem (shown as an alert), not a note.
    alert: bool,
    events: String,
    redirect: Option<RedirectView>,
    demo: bool,
    header: bool,
    back: bool,
    close: bool,
    terms_url: Option<String>,
    theme: &'static str,
    desktop: bool,
    nonce: String,
    /// The declarations that apply `backgroundColor` / `foregroundColor1` (see `custom_palette`).
    custom_style: Option<String>,
    /// The screen's heading, and the window's title (which changes with each step).
    title: String,
    window_title: String,
    /// The notice is about the fields of this screen: they are marked invalid and described by
    /// it.
    invalid: bool,
    /// An error screen with no flow to go on with.
    terminal: bool,
}

/// A colour's relative luminance (WCAG 2).
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let value =
            f64::from(u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
                / 255.0;
        if value <= 0.040_45 {
            value / 12.92
        } else {
            ((value + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
}

/// The WCAG contrast ratio of two colours (six hex digits each).
fn contrast(a: &str, b: &str) -> f64 {
    let (a, b) = (luminance(a), luminance(b));
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

/// `f0a` → `ff00aa`.
fn six_digits(hex: &str) -> String {
    if hex.len() == 3 {
        hex.chars().flat_map(|c| [c, c]).collect()
    } else {
        hex.to_owned()
    }
}

/// Black or white, whichever reads better on `background` (one of them always reaches 4.5:1).
fn readable_on(background: &str) -> &'static str {
    if contrast("ffffff", background) >= contrast("000000", background) {
        "ffffff"
    } else {
        "000000"
    }
}

/// The page's colours for a custom background and/or accent (`backgroundColor`,
/// `foregroundColor1`): the text, borders and focus ring follow the background (the light or
/// the dark palette, each colour kept only where it keeps WCAG AA's contrast on it, else black
/// or white), links and secondary buttons use the accent only where it reads on the background,
/// and the primary button's text is black or white by contrast with the accent.
fn custom_palette(theme: Theme, background: Option<&str>, accent: Option<&str>) -> Option<String> {
    if background.is_none() && accent.is_none() {
        return None;
    }
    let (theme_bg, theme_accent) = match theme {
        Theme::Light => ("ffffff", "1f57d6"),
        Theme::Dark => ("15171c", "7aa7ff"),
    };
    let bg = background.map_or_else(|| theme_bg.to_owned(), six_digits);
    let accent_hex = accent.map_or_else(|| theme_accent.to_owned(), six_digits);
    let text = readable_on(&bg);
    let dark = text == "ffffff";
    // (variable, the palette's colour, the contrast it needs: text 4.5, borders and focus 3)
    let wanted: [(&str, &str, f64); 4] = if dark {
        [
            ("fg", "eef0f4", 4.5),
            ("muted", "aab0bc", 4.5),
            ("border", "7a8090", 3.0),
            ("focus", "ffbf47", 3.0),
        ]
    } else {
        [
            ("fg", "1b1d22", 4.5),
            ("muted", "5b606b", 4.5),
            ("border", "767b86", 3.0),
            ("focus", "b35900", 3.0),
        ]
    };
    let mut style = String::new();
    if let Some(background) = background {
        style.push_str(&format!("--bg:#{background};"));
        for (name, colour, ratio) in wanted {
            let colour = if contrast(colour, &bg) >= ratio {
                colour
            } else {
                text
            };
            style.push_str(&format!("--{name}:#{colour};"));
        }
    }
    if let Some(accent) = accent {
        style.push_str(&format!("--accent:#{accent};"));
    }
    let link = if contrast(&accent_hex, &bg) >= 4.5 {
        accent_hex.as_str()
    } else {
        text
    };
    style.push_str(&format!(
        "--link:#{link};--on-primary:#{};",
        readable_on(&accent_hex)
    ));
    Some(style)
}

/// The heading of a screen; an error screen's says what failed (a link refused before
/// anything was tried is not a failed connection).
fn title(
    t: &std::collections::BTreeMap<&'static str, &'static str>,
    step: &Step,
    notice: Option<&str>,
    multiple: bool,
    institution_name: &str,
) -> String {
    let key = match step {
        Step::Consent => "consent_title",
        Step::Institutions { .. } => "inst_title",
        Step::Credentials { .. } => "cred_title",
        Step::Mfa { .. } => "mfa_title",
        Step::SecurityQuestions { .. } => "sq_title",
        Step::Accounts { .. } if multiple => "acc_title_multiple",
        Step::Accounts { .. } => "acc_title",
        Step::Success { .. } => "success_title",
        Step::Closed => "closed_title",
        Step::Failed { .. } => match notice.unwrap_or_default() {
            key if key.starts_with("err_token_") || key == "err_customer_unknown" => "link_title",
            "err_session_expired" => "session_ended_title",
            "err_instance_unknown" | "err_demo_on_production" => "unavailable_title",
            _ => "error_title",
        },
    };
    t.get(key)
        .copied()
        .unwrap_or_default()
        .replace("{institution}", institution_name)
}

/// A balance as each language writes it: `1,234.56` in English, `1 234,56` in French.
fn amount(cents: i64, language: Language) -> String {
    let plain = format!("{:.2}", to_decimal(cents.abs()));
    let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, "00"));
    let (group, point) = match language {
        Language::En => (",", "."),
        // A narrow no-break space, as French typography groups digits.
        Language::Fr => ("\u{202f}", ","),
    };
    let digits: Vec<char> = whole.chars().collect();
    let mut grouped = String::new();
    for (i, digit) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push_str(group);
        }
        grouped.push(*digit);
    }
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{grouped}{point}{fraction}")
}

/// `FlinksCapital` → `Flinks Capital`.
fn display_name(id: &str) -> String {
    let mut name = String::new();
    for (i, c) in id.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            name.push(' ');
        }
        name.push(c);
    }
    name
}

impl View {
    pub fn new(
        bank: &SandboxBank,
        page: &PageState,
        session: Option<&str>,
        accounts: &[Account],
        events: Events,
    ) -> Self {
        let params = &page.params;
        let t = i18n::strings(params.language);
        let institution = page.step.institution().map(str::to_owned);
        let query = match &page.step {
            Step::Institutions { query } => query.clone(),
            _ => String::new(),
        };
        let institutions = if params.demo {
            bank.institutions()
                .iter()
                .map(|i| InstitutionView {
                    id: i.id,
                    name: display_name(i.id),
                })
                .filter(|i| {
                    let q = query.to_lowercase();
                    q.is_empty()
                        || i.name.to_lowercase().contains(&q)
                        || i.id.to_lowercase().contains(&q)
                })
                .collect()
        } else {
            Vec::new()
        };
        let challenges = page
            .step
            .challenges()
            .into_iter()
            .map(ChallengeView::new)
            .collect();
        let redirect = match &page.step {
            Step::Success {
                institution,
                login_id,
                account_ids,
            } => super::redirect_url(params, institution, *login_id, account_ids).map(|url| {
                RedirectView {
                    url,
                    inner: params.inner_redirect,
                    js: params.js_redirect,
                }
            }),
            _ => None,
        };
        let notice = page
            .notice
            .as_deref()
            .and_then(|key| i18n::STRINGS.iter().find(|(k, _, _)| *k == key))
            .map(|(key, _, _)| *key)
            // An error screen always says what went wrong, in its alert.
            .or_else(|| {
                matches!(page.step, Step::Failed { .. }).then_some("err_AGGREGATION_ERROR")
            });
        let alert = notice.is_some_and(|k| {
            k.starts_with("err_") || k.ends_with("_empty") || k.ends_with("_selected")
        });
        let institution_name = institution.as_deref().map(display_name).unwrap_or_default();
        let title = title(
            &t,
            &page.step,
            notice,
            params.account_selector_multiple,
            &institution_name,
        );
        let page_title = t.get("page_title").copied().unwrap_or_default();
        let window_title = if alert {
            t.get("title_error")
                .copied()
                .unwrap_or_default()
                .replace("{title}", &title)
        } else {
            title.clone()
        };
        let window_title = format!("{window_title} \u{2013} {page_title}");
        // The bank refused what was typed or chosen on this very screen.
        let invalid = alert
            && matches!(
                (&page.step, notice.unwrap_or_default()),
                (
                    Step::Credentials { .. },
                    "err_INVALID_LOGIN" | "err_DISABLED_LOGIN"
                ) | (
                    Step::Mfa { .. },
                    "err_INVALID_SECURITY_RESPONSE" | "mfa_empty"
                ) | (Step::Accounts { .. }, "acc_none_selected")
                    | (Step::SecurityQuestions { .. }, "sq_empty")
            );
        Self {
            lang: params.language.as_str(),
            screen: page.step.screen(),
            session: session.map(str::to_owned),
            customer: params.customer_name.clone().unwrap_or_else(|| {
                t.get("default_customer")
                    .copied()
                    .unwrap_or_default()
                    .to_owned()
            }),
            institution_name,
            institution,
            institutions,
            query,
            search: params.institution_filter_enable,
            challenges,
            mfa_step: page.step.mfa_number().unwrap_or_default(),
            questions: Vec::new(),
            skip_questions: params.skip_enhanced_mfa,
            username: page.username.clone().unwrap_or_default(),
            accounts: accounts
                .iter()
                .map(|a| AccountView {
                    id: a.id.to_string(),
                    title: a.title,
                    ending: a
                        .account_number
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect(),
                    balance: amount(a.current, params.language),
                    currency: a.currency,
                })
                .collect(),
            multiple: params.account_selector_multiple,
            alert,
            notice,
            title,
            window_title,
            invalid,
            t,
            events: serde_json::to_string(&events.0).unwrap_or_else(|_| "[]".to_owned()),
            redirect,
            demo: params.demo,
            header: params.header_enable,
            back: params.back_enable,
            close: params.close_enable,
            terms_url: params.terms_url.clone(),
            theme: match params.theme {
                Theme::Light => "light",
                Theme::Dark => "dark",
            },
            desktop: params.desktop_layout,
            nonce: bankgate_core::ConnectSecret::generate()
                .expose()
                .replace('-', ""),
            custom_style: custom_palette(
                params.theme,
                params.background_color.as_deref(),
                params.foreground_color1.as_deref(),
            ),
            terminal: false,
        }
    }

    /// The security questions to ask: number, prompt, and whether it was posted blank. The
    /// first one in error (or the first one) takes the focus.
    pub fn with_questions(mut self, questions: Vec<(usize, String, bool)>) -> Self {
        let focus = questions
            .iter()
            .position(|(_, _, blank)| *blank)
            .unwrap_or_default();
        self.questions = questions
            .into_iter()
            .enumerate()
            .map(|(at, (number, prompt, invalid))| QuestionView {
                number,
                prompt,
                invalid,
                focus: at == focus,
            })
            .collect();
        self
    }

    /// Marks an error screen that has no session to continue.
    pub fn terminal(mut self) -> Self {
        self.terminal = true;
        self.session = None;
        self
    }
}

/// The rendered page with its headers: no caching, no referrer (the URL carries the token), and
/// a CSP that allows only bankgate's own script and style (plus this page's colours, by nonce)
/// and framing by any page (the embedding origin is the fintech's; `docs/flinks-wire.md`, "Connect page").
pub fn respond(status: StatusCode, view: &View) -> Response {
    let rendered = TEMPLATES
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|env| {
            env.get_template("page.html")
                .and_then(|template| template.render(view))
                .map_err(|error| format!("{error:#}"))
        });
    let body = match rendered {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "connect template failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The Connect page could not be shown.",
            )
                .into_response();
        }
    };
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{}'; img-src 'self' data:; \
         form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors *",
        view.nonce
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
