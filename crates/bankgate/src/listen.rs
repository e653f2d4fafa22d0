//! `bankgate webhooks listen`: a webhook receiver for developers. It checks each callback's
//! signature the way an app must (Base64(HMAC-SHA256(secret, raw body)) in
//! `flinks-authenticity-key` or `X-Flinks-Signature`), prints one line per callback, and can
//! forward the callback unchanged to the developer's app.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use bankgate_server::webhooks::{DELIVERY_HEADER, SIGNATURE_HEADERS, verify};

use crate::cli::ListenArgs;

/// Callbacks larger than this are refused (GetAccountsDetail with a year of transactions is far
/// smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

struct Listener {
    secret: String,
    forward: Option<(String, reqwest::Client)>,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let forward = match args.forward {
        Some(url) => {
            bankgate_client::install_tls_provider();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .context("cannot build the HTTP client for --forward")?;
            Some((url, client))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let state = Arc::new(Listener {
        secret: args.secret,
        forward,
    });
    let app = Router::new()
        .fallback(receive)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    say(&format!("bankgate webhooks listening on http://{address}"));
    axum::serve(listener, app)
        .await
        .context("the webhook listener stopped")
}

/// One line to stdout, flushed at once (scripts and tests read it as it comes).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(listener): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature = SIGNATURE_HEADERS
        .iter()
        .find_map(|name| header(&headers, name));
    let valid = signature.is_some_and(|s| verify(&listener.secret, &body, s));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("-").to_owned();
    let verdict = match (signature, valid) {
        (None, _) => "signature MISSING (no flinks-authenticity-key nor X-Flinks-Signature)",
        (Some(_), true) => "signature valid",
        (Some(_), false) => "signature INVALID (another secret, or the body was changed)",
    };
    say(&format!(
        "{} RequestId={} LoginId={} delivery={} {verdict}",
        text(&json["ResponseType"]),
        text(&json["RequestId"]),
        text(&json["Login"]["Id"]),
        header(&headers, DELIVERY_HEADER).unwrap_or("-"),
    ));
    if !valid {
        return (StatusCode::UNAUTHORIZED, format!("{verdict}\n"));
    }
    let Some((url, client)) = &listener.forward else {
        return (StatusCode::OK, String::new());
    };
    let mut request = client.post(url).body(body.to_vec());
    for name in [
        "content-type",
        SIGNATURE_HEADERS[0],
        SIGNATURE_HEADERS[1],
        DELIVERY_HEADER,
    ] {
        if let Some(value) = header(&headers, name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            say(&format!("  forwarded to {url}: HTTP {status}"));
            (
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                String::new(),
            )
        }
        Err(error) => {
            say(&format!("  could not forward to {url}: {error}"));
            (
                StatusCode::BAD_GATEWAY,
                format!("could not forward: {error}\n"),
            )
        }
    }
}
