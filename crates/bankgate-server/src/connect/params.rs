//! The Connect page's URL parameters (`docs/flinks-wire.md`, "Connect page"). Unknown parameters
//! are ignored and invalid values fall back to the default, as the page must open whatever an
//! integration sends.

use bankgate_core::RequestId;
use bankgate_core::model::Language;
use bankgate_core::sandbox::statements::StatementCount;
use bankgate_store::ConnectStatements;
use serde::{Deserialize, Serialize};

/// Longest free-text value kept (customerName, tag); longer ones fall back to the default.
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Light,
    Dark,
}

/// The parameters the page honours, each with its documented default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub demo: bool,
    #[serde(with = "language_code")]
    pub language: Language,
    pub redirect_url: Option<String>,
    pub inner_redirect: bool,
    pub js_redirect: bool,
    pub consent_enable: bool,
    pub customer_name: Option<String>,
    pub terms_url: Option<String>,
    pub header_enable: bool,
    pub back_enable: bool,
    pub close_enable: bool,
    pub theme: Theme,
    /// Hex colour without `#`.
    pub background_color: Option<String>,
    pub foreground_color1: Option<String>,
    pub desktop_layout: bool,
    pub institution_filter_enable: bool,
    pub account_selector_enable: bool,
    pub account_selector_multiple: bool,
    pub tag: Option<String>,
    pub request_id: Option<RequestId>,
    /// `scheduleRefresh=true`: the card the page makes gets the nightly refresh.
    #[serde(default)]
    pub schedule_refresh: bool,
    /// `detailsAndStatementEnable`: GetStatements may read the card this page connects. Absent
    /// from a page state saved before it existed: the default.
    #[serde(default)]
    pub details_and_statement_enable: bool,
    /// `monthsOfStatements`: GetStatements' default `NumberOfStatements` for that card.
    #[serde(default = "default_months", with = "statement_count")]
    pub months_of_statements: StatementCount,
    /// `enhancedMFA=true`: the card keeps its security questions (as `WithMFAQuestions`), and
    /// a step after the login collects the answers still missing.
    #[serde(default)]
    pub enhanced_mfa: bool,
    /// `skipEnhancedMFA=true`: that step may be skipped.
    #[serde(default)]
    pub skip_enhanced_mfa: bool,
}

/// `monthsOfStatements` when absent or invalid (Flinks' documented default).
fn default_months() -> StatementCount {
    StatementCount::Months3
}

impl Default for Params {
    fn default() -> Self {
        Self {
            demo: false,
            language: Language::En,
            redirect_url: None,
            inner_redirect: false,
            js_redirect: false,
            // The current Flinks page defaults to showing consent (`docs/flinks-wire.md`, "Connect page").
            consent_enable: true,
            customer_name: None,
            terms_url: None,
            header_enable: true,
            back_enable: true,
            close_enable: false,
            theme: Theme::Light,
            background_color: None,
            foreground_color1: None,
            desktop_layout: false,
            institution_filter_enable: false,
            account_selector_enable: false,
            account_selector_multiple: false,
            tag: None,
            request_id: None,
            schedule_refresh: false,
            details_and_statement_enable: false,
            months_of_statements: default_months(),
            enhanced_mfa: false,
            skip_enhanced_mfa: false,
        }
    }
}

impl Params {
    /// Reads the query pairs. Names match case-insensitively (integrations differ); the first
    /// occurrence of a name wins.
    pub fn parse(pairs: &[(String, String)]) -> Self {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
        };
        let flag = |name: &str, default: bool| get(name).and_then(boolean).unwrap_or(default);
        let defaults = Self::default();
        Self {
            demo: flag("demo", defaults.demo),
            language: get("language")
                .and_then(|l| l.parse().ok())
                .unwrap_or(defaults.language),
            redirect_url: get("redirectUrl").and_then(web_url),
            inner_redirect: flag("innerRedirect", defaults.inner_redirect),
            js_redirect: flag("jsRedirect", defaults.js_redirect),
            consent_enable: flag("consentEnable", defaults.consent_enable),
            customer_name: get("customerName").and_then(text),
            terms_url: get("termsUrl").and_then(web_url),
            header_enable: flag("headerEnable", defaults.header_enable),
            back_enable: flag("backEnable", defaults.back_enable),
            close_enable: flag("closeEnable", defaults.close_enable),
            theme: match get("theme").map(str::to_ascii_lowercase).as_deref() {
                Some("dark") => Theme::Dark,
                _ => Theme::Light,
            },
            background_color: get("backgroundColor").and_then(colour),
            foreground_color1: get("foregroundColor1").and_then(colour),
            desktop_layout: flag("desktopLayout", defaults.desktop_layout),
            institution_filter_enable: flag(
                "institutionFilterEnable",
                defaults.institution_filter_enable,
            ),
            account_selector_enable: flag(
                "accountSelectorEnable",
                defaults.account_selector_enable,
            ),
            account_selector_multiple: flag(
                "accountSelectorMultiple",
                defaults.account_selector_multiple,
            ),
            tag: get("tag").and_then(text),
            request_id: get("requestId").and_then(|r| r.parse().ok()),
            schedule_refresh: flag("scheduleRefresh", defaults.schedule_refresh),
            details_and_statement_enable: flag(
                "detailsAndStatementEnable",
                defaults.details_and_statement_enable,
            ),
            months_of_statements: get("monthsOfStatements")
                .and_then(|m| m.parse().ok())
                .unwrap_or(defaults.months_of_statements),
            enhanced_mfa: flag("enhancedMFA", defaults.enhanced_mfa),
            skip_enhanced_mfa: flag("skipEnhancedMFA", defaults.skip_enhanced_mfa),
        }
    }

    /// What the LoginId this page connects records for GetStatements.
    pub fn statements(&self) -> ConnectStatements {
        ConnectStatements {
            enabled: self.details_and_statement_enable,
            months: self.months_of_statements,
        }
    }
}

/// Every parameter name the page reads or Flinks documents (or integrations are seen to send):
/// a name outside this list right after `redirectUrl` was most likely the redirect's own.
const CONNECT_PARAMETERS: &[&str] = &[
    "authorizeToken",
    "demo",
    "demoOutbound",
    "language",
    "redirectUrl",
    "innerRedirect",
    "jsRedirect",
    "closeEnable",
    "headerImgEnable",
    "headerEnable",
    "backEnable",
    "staticLoadingEnable",
    "removePadding",
    "institutionFilterEnable",
    "consentEnable",
    "customerName",
    "termsUrl",
    "termsNoCheckbox",
    "theme",
    "backgroundColor",
    "foregroundColor1",
    "foregroundColor2",
    "desktopLayout",
    "boxLayout",
    "fixedHeightEnable",
    "productType",
    "tag",
    "enhancedMFA",
    "skipEnhancedMFA",
    "accountSelectorEnable",
    "accountSelectorMultiple",
    "accountSelectorNoTitle",
    "accountSelectorCurrency",
    "showAllAccounts",
    "showAllOperationsAccounts",
    "fetchAllAccounts",
    "scheduleRefresh",
    "detailsAndStatementEnable",
    "requestId",
    "resumeSelectedAccounts",
    "daysOfTransactions",
    "withTransactions",
    "eftEligibleRatio",
    "maximumRetry",
    "statement",
    "stringify",
    "waitSummary",
    "webview",
    "institutionsLocation",
    // bankgate's own: the instance on a bare host, the customer of a token-free page.
    "instance",
    "customerId",
];

/// The parameters an unencoded `redirectUrl` spilled into the page's own query: with
/// `redirectUrl=https://a.test/cb?x=1&y=2` unencoded, `y` becomes a parameter of the page and is
/// lost from the redirect (#29 of docs/integration-mistakes.md). Seen as a redirectUrl that has a
/// query of its own followed by names the page does not know.
pub fn spilled_from_redirect(pairs: &[(String, String)]) -> Vec<&str> {
    let Some(at) = pairs
        .iter()
        .position(|(key, _)| key.eq_ignore_ascii_case("redirectUrl"))
    else {
        return Vec::new();
    };
    if !pairs[at].1.contains('?') {
        return Vec::new();
    }
    pairs[at + 1..]
        .iter()
        .map(|(key, _)| key.as_str())
        .take_while(|key| {
            !CONNECT_PARAMETERS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(key))
        })
        .collect()
}

fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn text(value: &str) -> Option<String> {
    (!value.is_empty() && value.chars().count() <= MAX_TEXT && !value.chars().any(char::is_control))
        .then(|| value.to_owned())
}

/// `RRGGBB` or `RGB`, with or without `#`; stored lowercase without `#`.
fn colour(value: &str) -> Option<String> {
    let hex = value.strip_prefix('#').unwrap_or(value);
    (matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// An http(s) URL. Flinks' own example passes `redirectUrl=flinks.com`, so a bare host gets
/// `https://`; anything with another scheme (`javascript:`) is refused.
fn web_url(value: &str) -> Option<String> {
    if value.is_empty() || value.len() > 2048 || value.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let lower = value.to_ascii_lowercase();
    let url = if lower.starts_with("https://") || lower.starts_with("http://") {
        value.to_owned()
    } else if lower.contains(':') && !lower.contains('.') || lower.starts_with("//") {
        return None;
    } else if lower
        .split(['/', '?', '#'])
        .next()
        .is_some_and(|h| h.contains('.') && !h.contains(':'))
    {
        format!("https://{value}")
    } else {
        return None;
    };
    let host = url.split("://").nth(1)?.split(['/', '?', '#']).next()?;
    (!host.is_empty() && !host.contains('@')).then_some(url)
}

/// Appends `pairs` to a URL's query string, before any fragment.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let mut out = base.to_owned();
    for (name, value) in pairs {
        out.push(if out.contains('?') { '&' } else { '?' });
        if out.ends_with("?&") {
            out.pop();
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

mod language_code {
    use bankgate_core::model::Language;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(language: &Language, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(language.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Language, D::Error> {
        let code = String::deserialize(d)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

mod statement_count {
    use bankgate_core::sandbox::statements::StatementCount;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(count: &StatementCount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(count.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatementCount, D::Error> {
        let months = String::deserialize(d)?;
        months.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Params {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Params::parse(&pairs)
    }

    #[test]
    fn urls_are_http_only() {
        assert_eq!(
            web_url("https://example.com/thanks").as_deref(),
            Some("https://example.com/thanks")
        );
        assert_eq!(web_url("flinks.com").as_deref(), Some("https://flinks.com"));
        assert_eq!(web_url("javascript:alert(1)"), None);
        assert_eq!(web_url("//evil.example"), None);
        assert_eq!(web_url("https://user@evil.example"), None);
        assert_eq!(web_url("data:text/html,hi"), None);
    }

    #[test]
    fn redirect_query_is_appended() {
        assert_eq!(
            with_query(
                "https://a.test/t?x=1#top",
                &[("loginId", "l"), ("institution", "F C")]
            ),
            "https://a.test/t?x=1&loginId=l&institution=F%20C#top"
        );
        assert_eq!(
            with_query("https://a.test/t?", &[("a", "b")]),
            "https://a.test/t?a=b"
        );
    }

    #[test]
    fn a_redirect_url_spilled_into_the_page_query() {
        let pairs = |query: &[(&str, &str)]| -> Vec<(String, String)> {
            query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let cut = pairs(&[
            ("demo", "true"),
            ("redirectUrl", "https://a.test/cb?connection_id=1"),
            ("user", "2"),
            ("state", "3"),
            ("language", "fr"),
        ]);
        assert_eq!(spilled_from_redirect(&cut), ["user", "state"]);
        // Encoded (one parameter), or no query of its own, or known names after it: nothing.
        for fine in [
            pairs(&[
                ("redirectUrl", "https://a.test/cb?a=1&b=2"),
                ("demo", "true"),
            ]),
            pairs(&[("redirectUrl", "https://a.test/cb"), ("user", "2")]),
            pairs(&[("redirectUrl", "https://a.test/cb?a=1"), ("Demo", "true")]),
            pairs(&[("user", "2")]),
        ] {
            assert!(spilled_from_redirect(&fine).is_empty(), "{fine:?}");
        }
    }

    #[test]
    fn colours_and_flags_fall_back() {
        let p = parse(&[
            ("backgroundColor", "#F7F7F7"),
            ("foregroundColor1", "red"),
            ("DEMO", "TRUE"),
            ("closeEnable", "yes"),
        ]);
        assert_eq!(p.background_color.as_deref(), Some("f7f7f7"));
        assert_eq!(p.foreground_color1, None);
        assert!(p.demo);
        assert!(!p.close_enable);
    }

    #[test]
    fn statement_parameters_parse_and_fall_back() {
        let p = parse(&[]);
        assert!(!p.details_and_statement_enable);
        assert_eq!(p.months_of_statements, StatementCount::Months3);
        let p = parse(&[
            ("detailsandstatementenable", "True"),
            ("monthsOfStatements", "months12"),
        ]);
        assert!(p.details_and_statement_enable);
        assert_eq!(p.months_of_statements, StatementCount::Months12);
        let p = parse(&[
            ("detailsAndStatementEnable", "yes"),
            ("monthsOfStatements", "Months6"),
        ]);
        assert!(!p.details_and_statement_enable);
        assert_eq!(p.months_of_statements, StatementCount::Months3);
    }

    #[test]
    fn a_saved_page_state_without_statement_parameters_reads_with_defaults() {
        let mut saved = serde_json::to_value(Params::default()).unwrap();
        let fields = saved.as_object_mut().unwrap();
        fields.remove("details_and_statement_enable");
        fields.remove("months_of_statements");
        let read: Params = serde_json::from_value(saved).unwrap();
        assert_eq!(read, Params::default());
    }
}
