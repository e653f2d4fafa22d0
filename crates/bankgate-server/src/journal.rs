//! The request journal: the last N requests of each instance, as the server saw them, so a team
//! can answer "what did our app send, and what went wrong?" after the fact (README, "Request
//! journal"). Each node keeps its own, in memory; it never holds a secret: credential headers
//! are kept as a fingerprint (the kind of credential the value matched and its last 4
//! characters) and credential-like body fields are masked.
//!
//! The refusal's FlinksCode, `Reason` and `Hint` come from the response (`error.rs` leaves them
//! there). Handlers add what only they know (instance, RequestId, LoginId) through
//! [`note`], a task-local the journal's middleware sets around each request, so no handler
//! signature carries the journal.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use bankgate_core::{Clock, Digest, Timestamp};
use serde::Serialize;

use crate::endpoint::{Credential, Endpoint};
use crate::error::{FlinksCode, Hint, Reason};

/// How many requests each instance keeps by default.
pub const DEFAULT_CAPACITY: usize = 1_000;
/// The most of a request body the journal keeps (bodies are at most 64 KiB anyway).
const BODY_KEPT: usize = 16 * 1024;
/// What replaces a masked value.
const MASK: &str = "***";

/// Body fields and query parameters whose values are credentials or a user's bank secrets
/// (compared case-insensitively, ignoring `-` and `_`).
const SECRET_FIELDS: &[&str] = &[
    "password",
    "securityresponses",
    "answer",
    "answers",
    "token",
    "authtoken",
    "authorizetoken",
    "flinksauthkey",
    "xapikey",
    "apikey",
    "secret",
    "secretkey",
    "authkey",
    "authorization",
    // the Connect page's session secret, which opens that user's session
    "session",
];

fn is_secret_name(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_FIELDS.contains(&folded.as_str())
        // Connect's answer fields are `answer`, `answer_0`, `answer-1`…
        || folded.starts_with("answer")
}

/// A header that may carry a credential: its value is never kept.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name != "proxy-authorization"
        && ["auth", "key", "token", "secret"]
            .iter()
            .any(|part| name.contains(part))
}

/// The kinds of credential a presented value can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    SecretKey,
    ApiKey,
    AuthorizeToken,
}

impl From<Credential> for CredentialKind {
    fn from(credential: Credential) -> Self {
        match credential {
            Credential::SecretKey => Self::SecretKey,
            Credential::AuthorizeToken => Self::AuthorizeToken,
            Credential::ApiKey => Self::ApiKey,
        }
    }
}

/// What handlers learn about a request, read by the middleware once it is answered.
#[derive(Debug, Default)]
pub struct Facts {
    pub instance: Option<String>,
    pub customer_id: Option<String>,
    pub request_id: Option<String>,
    pub login_id: Option<String>,
    /// Presented values that were looked up, by digest, and what they matched.
    pub credentials: Vec<(Digest, CredentialKind)>,
}

tokio::task_local! {
    static FACTS: RefCell<Facts>;
}

/// Adds to the journal entry of the request being handled (nothing outside a journaled
/// request).
pub fn note(change: impl FnOnce(&mut Facts)) {
    // A request's handlers run on its task; the cell is never borrowed across an await.
    let _ = FACTS.try_with(|facts| change(&mut facts.borrow_mut()));
}

/// The RequestId of the request being handled, for the journal and the request's log span.
pub fn record_request_id(request_id: impl std::fmt::Display) {
    let request_id = request_id.to_string();
    tracing::Span::current().record("request_id", request_id.as_str());
    note(|facts| facts.request_id = Some(request_id));
}

/// The LoginId the request is about.
pub fn record_login_id(login_id: impl std::fmt::Display) {
    let login_id = login_id.to_string();
    note(|facts| facts.login_id = Some(login_id));
}

/// A header as kept: its name and, for a credential, what it matched and its last 4 characters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSeen {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Fingerprint>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fingerprint {
    /// The kind of credential the value matched; absent when it matched none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<CredentialKind>,
    /// The last 4 characters of the value, to tell two values apart.
    pub last4: String,
}

/// One request as the journal keeps it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Increases by one per journaled request on this node (`after=` reads from there).
    pub id: u64,
    /// When it arrived, on the server's clock (RFC 3339, UTC).
    pub time: String,
    #[serde(skip)]
    pub at: Timestamp,
    pub method: String,
    /// The path, and the query string with credential-like values masked.
    pub path: String,
    pub host: Option<String>,
    /// The endpoint the path names, when it names one.
    pub endpoint: Option<String>,
    pub instance: Option<String>,
    pub customer_id: Option<String>,
    pub headers: Vec<HeaderSeen>,
    /// The body as sent with credential-like fields masked (JSON or a form), or a note saying
    /// what it was; null when there was none. Any JSON value.
    pub body: Option<serde_json::Value>,
    pub status: u16,
    pub flinks_code: Option<String>,
    pub reason: Option<String>,
    pub hint: Option<String>,
    pub request_id: Option<String>,
    pub login_id: Option<String>,
    pub duration_ms: f64,
}

/// What to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub instance: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub login_id: Option<String>,
    pub since: Option<Timestamp>,
    /// Only entries with a larger id (to follow the journal).
    pub after: Option<u64>,
    pub limit: usize,
}

impl Filter {
    fn admits(&self, entry: &Entry) -> bool {
        let same = |wanted: &Option<String>, seen: &Option<String>| {
            wanted
                .as_deref()
                .is_none_or(|w| seen.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(w)))
        };
        same(&self.endpoint, &entry.endpoint)
            && same(&self.reason, &entry.reason)
            && same(&self.request_id, &entry.request_id)
            && same(&self.login_id, &entry.login_id)
            && self.status.is_none_or(|s| s == entry.status)
            && self.since.is_none_or(|since| entry.at >= since)
            && self.after.is_none_or(|after| entry.id > after)
    }
}

/// The journals of every instance on this node; requests that named no instance (an unknown
/// customer on a bare host, a path that is no API path) are kept under none.
#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    next_id: AtomicU64,
    entries: Mutex<HashMap<Option<String>, VecDeque<Arc<Entry>>>>,
}

impl Journal {
    /// A journal keeping `capacity` requests per instance; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            next_id: AtomicU64::new(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn push(&self, mut entry: Entry) {
        entry.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = entries.entry(entry.instance.clone()).or_default();
        if kept.len() == self.capacity {
            kept.pop_front();
        }
        kept.push_back(Arc::new(entry));
    }

    /// Matching entries, newest first.
    pub fn list(&self, filter: &Filter) -> Vec<Arc<Entry>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found: Vec<Arc<Entry>> = entries
            .iter()
            .filter(|(instance, _)| {
                filter.instance.as_deref().is_none_or(|wanted| {
                    instance
                        .as_deref()
                        .is_some_and(|i| i.eq_ignore_ascii_case(wanted))
                })
            })
            .flat_map(|(_, kept)| kept.iter().filter(|e| filter.admits(e)).cloned())
            .collect();
        drop(entries);
        found.sort_by_key(|entry| std::cmp::Reverse(entry.id));
        found.truncate(filter.limit);
        found
    }
}

/// What the middleware needs.
#[derive(Debug, Clone)]
pub struct JournalState {
    pub journal: Arc<Journal>,
    pub clock: Arc<dyn Clock>,
}

/// Journals every request to the public API: wraps the body so the part the handler reads is
/// kept (nothing is read ahead of the handler, so body limits and timeouts behave as without
/// the journal), and collects what handlers [`note`].
pub async fn record(State(state): State<JournalState>, request: Request, next: Next) -> Response {
    if state.journal.capacity == 0 {
        return next.run(request).await;
    }
    let started = Instant::now();
    let at = state.clock.now();
    let method = request.method().to_string();
    let path = masked_path(request.uri());
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let endpoint = Endpoint::of_path(request.uri().path()).map(|(e, _)| e);
    let presented = presented_credentials(request.headers());
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(
        parts,
        Body::new(KeepingBody {
            inner: body,
            kept: kept.clone(),
        }),
    );

    let (response, facts) = FACTS
        .scope(RefCell::new(Facts::default()), async move {
            let response = next.run(request).await;
            let facts = FACTS.with(|facts| std::mem::take(&mut *facts.borrow_mut()));
            (response, facts)
        })
        .await;

    let status = response.status();
    let reason = response.extensions().get::<Reason>().copied();
    let flinks_code = response.extensions().get::<FlinksCode>().copied();
    let hint = response.extensions().get::<Hint>().map(|h| h.0.clone());
    let succeeded = status.is_success() || status.as_u16() == 203;
    let headers = presented
        .into_iter()
        .map(|(name, seen)| {
            let credential = seen.map(|(digest, last4)| {
                let matched = facts
                    .credentials
                    .iter()
                    .find(|(d, _)| *d == digest)
                    .map(|(_, kind)| *kind)
                    .or_else(|| {
                        // Accepted where the endpoint reads its credential, or refused as a
                        // token already spent or expired: it matched what the endpoint reads.
                        let matched = succeeded || reason.is_some_and(is_spent_token);
                        endpoint
                            .filter(|e| matched && e.credential_header() == name)
                            .map(|e| e.credential().into())
                    });
                Fingerprint { matched, last4 }
            });
            HeaderSeen { name, credential }
        })
        .collect();
    let body_bytes = std::mem::take(&mut *kept.lock().unwrap_or_else(PoisonError::into_inner));
    let entry = Entry {
        id: 0,
        time: at.to_rfc3339(),
        at,
        method,
        path,
        host,
        endpoint: endpoint.map(|e| e.name().to_owned()),
        instance: facts.instance,
        customer_id: facts.customer_id,
        headers,
        body: masked_body(&body_bytes, &content_type),
        status: status.as_u16(),
        flinks_code: flinks_code.map(|c| c.as_str().to_owned()),
        reason: reason.map(|r| r.as_str().to_owned()),
        hint,
        request_id: facts.request_id,
        login_id: facts.login_id,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    state.journal.push(entry);
    response
}

/// Refusals of a value that is an authorize token, but no longer usable.
fn is_spent_token(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::AuthorizeTokenUsed | Reason::AuthorizeTokenExpired
    )
}

/// Each header's name, and for a credential header the digest and last 4 of its value.
fn presented_credentials(headers: &HeaderMap) -> Vec<(String, Option<(Digest, String)>)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            if !is_credential_header(&name) {
                return (name, None);
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = value.trim();
            let last4 = bankgate_core::credentials::last_four(value).to_owned();
            (name, Some((Digest::of_presented(value), last4)))
        })
        .collect()
}

/// The path with the query's credential-like values masked (the Connect page's
/// `authorizeToken=`, a secret key pasted into `?flinks-auth-key=`).
fn masked_path(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if is_secret_name(&decoded(name)) && !value.is_empty() => {
                format!("{name}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), masked.join("&"))
}

fn decoded(text: &str) -> String {
    form_urlencoded::parse(text.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default()
}

/// The body with credential-like fields masked: JSON (any depth) and forms are parsed; anything
/// else is described, not kept, since it cannot be masked.
fn masked_body(bytes: &[u8], content_type: &str) -> Option<serde_json::Value> {
    if bytes.is_empty() {
        return None;
    }
    if let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        mask_json(&mut json);
        return Some(json);
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(bytes)
            .map(|(name, value)| {
                let value = if is_secret_name(&name) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), serde_json::Value::String(value))
            })
            .collect();
        return Some(serde_json::Value::Object(fields));
    }
    Some(serde_json::Value::String(format!(
        "({} bytes that are not JSON{}; not kept)",
        bytes.len(),
        if bytes.len() >= BODY_KEPT {
            " or longer than the journal keeps"
        } else {
            ""
        }
    )))
}

fn mask_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if is_secret_name(name) && !field.is_null() {
                    *field = serde_json::Value::String(MASK.to_owned());
                } else {
                    mask_json(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A request body that keeps a copy of the first [`BODY_KEPT`] bytes the handler reads.
struct KeepingBody {
    inner: Body,
    kept: Arc<Mutex<Vec<u8>>>,
}

impl HttpBody for KeepingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let room = BODY_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised_in_every_spelling() {
        for name in [
            "Password",
            "password",
            "SecurityResponses",
            "AuthToken",
            "authorizeToken",
            "flinks-auth-key",
            "x-api-key",
            "answer_0",
            "Token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "LoginId",
            "RequestId",
            "Username",
            "Institution",
            "MostRecentCached",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn json_bodies_are_masked_at_any_depth() {
        let body = br#"{"Username":"Greatday","Password":"Everyday","RequestId":"r","SecurityResponses":{"What city were you born in?":["Montreal"]},"Nested":[{"token":"abc"}]}"#;
        let masked = masked_body(body, "application/json").unwrap();
        let text = masked.to_string();
        for secret in ["Everyday", "Montreal", "abc"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(masked["Username"], "Greatday");
        assert_eq!(masked["Password"], MASK);
        assert_eq!(masked["SecurityResponses"], MASK);
    }

    #[test]
    fn forms_queries_and_other_bodies_keep_no_secret() {
        let form = masked_body(
            b"username=Greatday&password=Everyday&answer_0=Montreal",
            "application/x-www-form-urlencoded",
        )
        .unwrap();
        assert_eq!(form["username"], "Greatday");
        assert_eq!(form["password"], MASK);
        assert_eq!(form["answer_0"], MASK);
        let other = masked_body(b"password=Everyday", "text/plain").unwrap();
        assert!(!other.to_string().contains("Everyday"), "{other}");
        let uri: axum::http::Uri = "/v2/?demo=true&authorizeToken=9f32e159-x&flinks-auth-key=k"
            .parse()
            .unwrap();
        assert_eq!(
            masked_path(&uri),
            "/v2/?demo=true&authorizeToken=***&flinks-auth-key=***"
        );
    }

    #[test]
    fn each_instance_keeps_its_last_n() {
        let journal = Journal::new(2);
        for (instance, status) in [("a", 200), ("a", 201), ("a", 202), ("b", 401)] {
            journal.push(Entry {
                id: 0,
                time: String::new(),
                at: Timestamp::from_micros(0),
                method: "POST".into(),
                path: "/".into(),
                host: None,
                endpoint: None,
                instance: Some(instance.into()),
                customer_id: None,
                headers: vec![],
                body: None,
                status,
                flinks_code: None,
                reason: None,
                hint: None,
                request_id: None,
                login_id: None,
                duration_ms: 0.0,
            });
        }
        let all = Filter {
            limit: 10,
            ..Filter::default()
        };
        let statuses: Vec<u16> = journal.list(&all).iter().map(|e| e.status).collect();
        assert_eq!(statuses, [401, 202, 201], "newest first, two per instance");
        let only_a = Filter {
            instance: Some("A".into()),
            ..all.clone()
        };
        assert_eq!(journal.list(&only_a).len(), 2);
        let after = Filter {
            after: Some(3),
            ..all
        };
        assert_eq!(journal.list(&after).len(), 1);
    }
}
