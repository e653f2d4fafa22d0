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
    background: Option<String>,
    foreground: Option<String>,
    /// An error screen with no flow to go on with.
    terminal: bool,
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
            .map(|(key, _, _)| *key);
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
            institution_name: institution.as_deref().map(display_name).unwrap_or_default(),
            institution,
            institutions,
            query,
            search: params.institution_filter_enable,
            challenges,
            mfa_step: page.step.mfa_number().unwrap_or_default(),
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
            alert: notice.is_some_and(|k| {
                k.starts_with("err_") || k.ends_with("_empty") || k.ends_with("_selected")
            }),
            notice,
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
            background: params.background_color.clone(),
            foreground: params.foreground_color1.clone(),
            terminal: false,
        }
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
