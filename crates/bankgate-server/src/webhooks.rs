//! Webhooks: the KYC and GetAccountsDetail callbacks Flinks sends after an authorization
//! (docs/flinks-wire.md, "Webhooks"). The authorization's own write puts two small rows in the
//! store's outbox; a background sender, on its own task and its own connections, claims the
//! due ones, builds their bodies with the code that answers the endpoints, signs and POSTs
//! them, and records the attempts, so the API never waits on a receiver.

use std::time::Duration;

use bankgate_core::model::{AUTHORIZED_SESSION_LIFETIME, InstanceKind, Session, Tenant};
use bankgate_core::{DomainError, InstanceName, Timestamp};
use bankgate_store::{
    AttemptResult, CALLBACK_KINDS, CallbackSubject, Delivery, DeliveryContent, Webhook,
};
use base64::Engine as _;

use crate::api::accounts::{self, Reading};
use crate::state::AppState;

/// No answer within this is a failed attempt (Flinks' receivers get the same).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node holds a claimed callback: past it (the node died mid-delivery), another
/// node (or this one, restarted) sends it again. Longer than an attempt can take. On the
/// instance's clock, as every time of the outbox: on a sandbox, a test moves the clock past a
/// dead node's lease instead of waiting for it, as it does for a retry. Moving a clock can only
/// end a lease early, so a callback may be sent twice; receivers drop the second by its
/// `X-Bankgate-Delivery` id (at-least-once delivery). A node cannot safely take back leases at
/// its start instead: on PostgreSQL it cannot tell a dead node's lease from a live one's.
pub const LEASE: Duration = Duration::from_secs(60);

/// After an attempt ends, how long the sender gathers the others that end, to record them in
/// one write.
const GATHER: Duration = Duration::from_millis(50);

/// Attempts in flight at most. Each holds a connection and its body for up to
/// [`DELIVERY_TIMEOUT`], and starts with a store read (the webhook), so the bound caps the
/// sender's sockets, memory and bursts of reads beside the API's. A receiver that hangs holds
/// one place per callback for 10 s: 64 leaves room for healthy receivers until it gets more
/// than 6 callbacks a second.
pub const MAX_IN_FLIGHT: usize = 64;

/// Bytes of a receiver's answer read at most (the answer is not used; reading a little lets
/// the connection be reused).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The headers a callback carries. The signature goes in both names the Flinks docs use.
pub const SIGNATURE_HEADERS: [&str; 2] = ["flinks-authenticity-key", "X-Flinks-Signature"];
pub const DELIVERY_HEADER: &str = "X-Bankgate-Delivery";

/// Base64(HMAC-SHA256(secret as UTF-8 bytes, raw body)), as Flinks documents it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

/// Whether `header` is the signature of `body` under `secret`, compared in constant time.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(mac) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &mac).is_ok()
}

/// A new webhook secret: 32 bytes from the OS CSPRNG, as hex.
pub fn new_secret() -> Result<String, DomainError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| DomainError::Unavailable(format!("no randomness: {error}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Refuses URLs a webhook may not point at: anything but http(s); on production instances
/// anything but https, except to this machine (a developer's receiver).
pub fn check_url(url: &str, kind: InstanceKind) -> Result<(), DomainError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|error| {
        DomainError::Invalid(format!(
            "the webhook URL {url:?} is not a URL ({error}); give an absolute http(s) URL such \
             as https://app.example.com/flinks/webhook"
        ))
    })?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(DomainError::Invalid(format!(
            "the webhook URL {url:?} has the scheme {scheme:?}; only http and https URLs can \
             receive callbacks"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(DomainError::Invalid(format!(
            "the webhook URL {url:?} carries credentials; callbacks are authenticated by their \
             signature, so give the URL without user:password@"
        )));
    }
    if kind == InstanceKind::Production && scheme != "https" && !is_loopback(&parsed) {
        return Err(DomainError::Invalid(format!(
            "the webhook URL {url:?} is plain http on a production instance; callbacks carry \
             account data, so production webhooks need https (plain http is allowed only to \
             this machine: localhost, 127.0.0.1, [::1])"
        )));
    }
    Ok(())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The instance to queue an authorization's callbacks for, in the authorization's own write:
/// `None` when it has no webhook. Asked of the store's remembered lookups, so an authorization
/// on an instance without a webhook costs a map lookup; a webhook set on another node is seen
/// within [`bankgate_store::LOOKUP_TTL`]. The write itself queues only if the webhook still
/// exists, so one disabled meanwhile queues nothing.
pub async fn queue_for(state: &AppState, tenant: &Tenant) -> Option<InstanceName> {
    let instance = &tenant.instance.name;
    match state.store.has_webhook(instance).await {
        Ok(false) => None,
        // Unknown: let the write decide.
        Ok(true) | Err(_) => Some(instance.clone()),
    }
}

/// After an authorization that queued callbacks committed: the sender looks at once.
pub fn queued(state: &AppState) {
    state.webhook_wake.notify_one();
}

/// reqwest's rustls needs a process-wide crypto provider; ring, unless the program chose one.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The HTTP client of the sender: its own connections, a timeout, no redirects, no proxy from
/// the environment (a callback goes where the operator said).
fn client() -> Result<reqwest::Client, reqwest::Error> {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("bankgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The background sender, until the task is aborted. `every` is how often it looks for due
/// callbacks besides being woken when some are queued.
pub fn spawn_sender(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match client() {
            Ok(client) => send(state, client, every).await,
            Err(error) => {
                tracing::error!(%error, "webhooks: cannot build the HTTP client; no callbacks will be sent")
            }
        }
    })
}

/// Keeps up to [`MAX_IN_FLIGHT`] attempts going: claims due callbacks whenever there is room
/// (when woken, on every tick of `every`, after outcomes are written: a delivered KYC makes
/// its GetAccountsDetail due), so a receiver that hangs holds only its own callbacks, never
/// the others'. A claim that returns fewer than it asked for means nothing else is due: the
/// next claim waits for one of those events.
///
/// Outcomes are written in batches: those ending within [`GATHER`] of the first go in the same
/// transaction. Callbacks to a receiver that hangs, claimed together, time out together; written
/// one by one, their failures were a burst of separate commits on SQLite's single writer, in
/// the queue of the API's writes.
async fn send(state: AppState, client: reqwest::Client, every: Duration) {
    // Dropped with the task: an aborted sender aborts its attempts (their leases run out).
    let mut attempts = tokio::task::JoinSet::new();
    let mut ended: Vec<(String, AttemptResult)> = Vec::new();
    let mut gather_until: Option<tokio::time::Instant> = None;
    // An interval of zero would panic; none is configured, but the sender must not die of it.
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut look = true;
    loop {
        let room = MAX_IN_FLIGHT.saturating_sub(attempts.len());
        if look && room > 0 {
            look = false;
            match claim(&state, room).await {
                Ok(claimed) => {
                    // As many as asked: more may be due; look again once there is room.
                    look = claimed.len() >= room;
                    for delivery in claimed {
                        let (state, client) = (state.clone(), client.clone());
                        attempts.spawn(async move {
                            let result = deliver(&state, &client, &delivery).await;
                            (delivery.id, result)
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "webhooks: could not claim callbacks; will retry")
                }
            }
            continue;
        }
        let gathered = gather_until.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            () = state.webhook_wake.notified() => look = true,
            _ = tick.tick() => look = true,
            Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                // A panicked attempt records nothing: its lease runs out and it is sent again.
                ended.extend(joined.ok());
                gather_until.get_or_insert_with(|| tokio::time::Instant::now() + GATHER);
            }
            () = tokio::time::sleep_until(gathered), if gather_until.is_some() => {
                gather_until = None;
                record(&state, std::mem::take(&mut ended)).await;
                // Places freed and, maybe, the next callback of a RequestId due.
                look = true;
            }
        }
    }
}

/// Claims at most `room` due callbacks, leased for [`LEASE`].
async fn claim(state: &AppState, room: usize) -> Result<Vec<Delivery>, DomainError> {
    let now = state.clock.now();
    let limit = u32::try_from(room).unwrap_or(u32::MAX);
    state.store.claim_deliveries(now, now + LEASE, limit).await
}

/// Writes a batch of outcomes and counts them.
async fn record(state: &AppState, batch: Vec<(String, AttemptResult)>) {
    if batch.is_empty() {
        return;
    }
    let results: Vec<AttemptResult> = batch.iter().map(|(_, r)| r.clone()).collect();
    match state
        .store
        .finish_deliveries(batch, state.clock.now())
        .await
    {
        Ok(after) => {
            for (result, after) in results.iter().zip(after) {
                if let Some(after) = after {
                    state.metrics.webhook_attempted(result, after.status);
                }
            }
        }
        Err(error) => tracing::warn!(%error, attempts = results.len(),
            "webhooks: could not record attempts; the callbacks will be sent again"),
    }
}

/// One attempt of one callback: its body (as stored, or built now), signed and POSTed.
async fn deliver(state: &AppState, client: &reqwest::Client, delivery: &Delivery) -> AttemptResult {
    let webhook = match state.store.webhook(&delivery.instance).await {
        Ok(Some(webhook)) => webhook,
        Ok(None) => {
            return AttemptResult::Failed {
                status: None,
                error: "the instance has no webhook any more".to_owned(),
            };
        }
        Err(error) => {
            return AttemptResult::Failed {
                status: None,
                error: format!("could not read the webhook: {error}"),
            };
        }
    };
    let body = match &delivery.content {
        DeliveryContent::Body(body) => body.clone(),
        DeliveryContent::Subject(subject) => match build_body(state, delivery, subject).await {
            Ok(Built::Body(body)) => body,
            Ok(Built::NotYet(until)) => return AttemptResult::NotYet { until },
            Err(error) => {
                return AttemptResult::Failed {
                    status: None,
                    error: format!("could not build the callback: {error}"),
                };
            }
        },
    };
    attempt(client, &webhook, &delivery.id, body).await
}

enum Built {
    Body(String),
    /// The data is not ready before this (instance clock).
    NotYet(Timestamp),
}

/// The callback's body, built by the code that answers the endpoint it repeats, from the
/// LoginId and session as the authorization left them: the same bytes whenever it is sent.
async fn build_body(
    state: &AppState,
    delivery: &Delivery,
    subject: &CallbackSubject,
) -> Result<Built, String> {
    let login = &subject.login;
    let tenant = state
        .store
        .tenant(login.customer_id)
        .await
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("the customer {} no longer exists", login.customer_id))?;
    let now = tenant.instance.now(state.clock.as_ref());
    // The session as it was opened (it may be purged by the last retry): what the body
    // repeats of it is its RequestId, tag and opening time.
    let session = Session {
        request_id: delivery.request_id,
        customer_id: login.customer_id,
        login_id: login.id,
        created_at: delivery.created_at,
        expires_at: delivery.created_at + AUTHORIZED_SESSION_LIFETIME,
        tag: subject.tag.clone(),
        operation_started_at: None,
    };
    let reading = Reading::new(tenant, session, login.clone());
    // A pending sandbox user's accounts are sent when its 202 period is over.
    if delivery.kind == CALLBACK_KINDS[1] {
        let ready_at = accounts::data_ready_at(state, &reading);
        if ready_at > now {
            return Ok(Built::NotYet(ready_at));
        }
    }
    accounts::callback_body(state, &reading, &delivery.kind)
        .map_err(|error| error.to_string())?
        .map(Built::Body)
        .ok_or_else(|| format!("unknown callback kind {:?}", delivery.kind))
}

/// One POST of one callback.
async fn attempt(
    client: &reqwest::Client,
    webhook: &Webhook,
    id: &str,
    body: String,
) -> AttemptResult {
    let signed = signature(&webhook.secret, body.as_bytes());
    let sent = client
        .post(&webhook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADERS[0], &signed)
        .header(SIGNATURE_HEADERS[1], &signed)
        .header(DELIVERY_HEADER, id)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            return AttemptResult::Failed {
                status: None,
                error: describe(&error),
            };
        }
    };
    let status = response.status();
    // Read a little of the answer, never all of it: a receiver cannot make the sender hold
    // much memory.
    let mut read = 0;
    while read < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    if status.is_success() {
        return AttemptResult::Delivered {
            status: status.as_u16(),
        };
    }
    let error = if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("nowhere");
        format!(
            "HTTP {status}: redirects are not followed (to {to}); set the webhook to the final URL"
        )
    } else {
        format!("HTTP {status}: only a 2xx answer counts as delivered")
    };
    AttemptResult::Failed {
        status: Some(status.as_u16()),
        error,
    }
}

/// A transport failure in a sentence: timeout, refused connection, TLS, with its cause.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs());
    }
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_algorithm() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD.encode([
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43,
            ])
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let signed = signature("s3cret", b"{}");
        assert!(verify("s3cret", b"{}", &signed));
        assert!(!verify("other", b"{}", &signed));
        assert!(!verify("s3cret", b"{ }", &signed));
        assert!(!verify("s3cret", b"{}", "not base64!"));
        assert!(!verify("s3cret", b"{}", ""));
    }

    #[test]
    fn urls_are_checked_by_scheme_and_instance_kind() {
        use InstanceKind::{Production, Sandbox};
        assert!(check_url("http://hooks.example.test/x", Sandbox).is_ok());
        assert!(check_url("https://hooks.example.test/x", Production).is_ok());
        for loopback in [
            "http://localhost:9000/",
            "http://127.0.0.1:9/",
            "http://[::1]/",
        ] {
            assert!(check_url(loopback, Production).is_ok(), "{loopback}");
        }
        for bad in [
            "ftp://a.test/",
            "file:///etc/passwd",
            "not a url",
            "/relative",
            "https://u:p@a.test/",
        ] {
            assert!(check_url(bad, Sandbox).is_err(), "{bad}");
        }
        assert!(check_url("http://hooks.example.test/x", Production).is_err());
        assert!(check_url("http://10.0.0.1/x", Production).is_err());
    }

    #[test]
    fn secrets_are_fresh() {
        let (a, b) = (
            new_secret().unwrap_or_default(),
            new_secret().unwrap_or_default(),
        );
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
