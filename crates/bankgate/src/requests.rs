//! `bankgate requests`: reads a running server's request journal through its admin API and
//! prints one line a request, with the diagnosis of each refusal.

use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::Deserialize;

use crate::cli::RequestsArgs;

/// How often `--follow` asks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    requests: Vec<Entry>,
    capacity: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    id: u64,
    time: String,
    method: String,
    path: String,
    instance: Option<String>,
    headers: Vec<Header>,
    status: u16,
    flinks_code: Option<String>,
    reason: Option<String>,
    hint: Option<String>,
    request_id: Option<String>,
    login_id: Option<String>,
    duration_ms: f64,
}

#[derive(Debug, Deserialize)]
struct Header {
    name: String,
    credential: Option<Fingerprint>,
}

#[derive(Debug, Deserialize)]
struct Fingerprint {
    matched: Option<String>,
    last4: String,
}

pub async fn run(args: &RequestsArgs, json: bool) -> anyhow::Result<()> {
    bankgate_client::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut after = None;
    let mut first = true;
    loop {
        let page = fetch(&http, args, after).await?;
        if first && page.capacity == 0 {
            eprintln!("note: the server keeps no journal (it was started with --journal-size 0)");
        }
        // Newest first on the wire; printed oldest first, as a log reads.
        for entry in page.requests.iter().rev() {
            if json {
                println!("{}", serde_json::to_string(&entry_json(entry))?);
            } else {
                print!("{}", line(entry));
            }
        }
        if let Some(newest) = page.requests.first() {
            after = Some(newest.id);
        }
        if !args.follow {
            return Ok(());
        }
        first = false;
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

async fn fetch(
    http: &reqwest::Client,
    args: &RequestsArgs,
    after: Option<u64>,
) -> anyhow::Result<Page> {
    let url = format!("{}/admin/requests", args.admin_url.trim_end_matches('/'));
    let mut query: Vec<(&str, String)> = Vec::new();
    let mut add = |name, value: &Option<String>| {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    };
    add("instance", &args.instance);
    add("endpoint", &args.endpoint);
    add("reason", &args.reason);
    add("requestId", &args.request_id);
    add("loginId", &args.login_id);
    add("since", &args.since);
    if let Some(status) = args.status {
        query.push(("status", status.to_string()));
    }
    match after {
        Some(after) => query.push(("after", after.to_string())),
        None => query.push(("limit", args.limit.to_string())),
    }
    let mut url = reqwest::Url::parse(&url)
        .with_context(|| format!("--admin-url {:?} is not a URL", args.admin_url))?;
    url.query_pairs_mut().extend_pairs(&query);
    let mut request = http.get(url);
    if let Some(token) = &args.admin_token {
        request = request.bearer_auth(token.trim());
    }
    let response = request.send().await.with_context(|| {
        format!(
            "no answer from the admin API at {}: is bankgate serving, and is --admin-url its --admin-listen address?",
            args.admin_url
        )
    })?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        let envelope: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        return Err(anyhow!(
            "the admin API answered {status}: {}",
            envelope["Hint"]
                .as_str()
                .or(envelope["Message"].as_str())
                .unwrap_or(body.as_str())
        ));
    }
    serde_json::from_str(&body).context("the admin API's answer is not a request journal")
}

/// One request per line, then the diagnosis of a refusal and the credentials it carried.
fn line(entry: &Entry) -> String {
    let time = entry.time.get(11..23).unwrap_or(&entry.time);
    let mut text = format!(
        "{time} {:<10} {} {} -> {}",
        entry.instance.as_deref().unwrap_or("-"),
        entry.method,
        entry.path,
        entry.status
    );
    for part in [&entry.flinks_code, &entry.reason].into_iter().flatten() {
        text.push(' ');
        text.push_str(part);
    }
    if let Some(request_id) = &entry.request_id {
        text.push_str(&format!(" RequestId={request_id}"));
    }
    if let Some(login_id) = &entry.login_id {
        text.push_str(&format!(" LoginId={login_id}"));
    }
    text.push_str(&format!(" ({:.1} ms)\n", entry.duration_ms));
    let credentials: Vec<String> = entry
        .headers
        .iter()
        .filter_map(|h| {
            h.credential.as_ref().map(|c| {
                format!(
                    "{}: {} …{}",
                    h.name,
                    c.matched.as_deref().unwrap_or("matched nothing"),
                    c.last4
                )
            })
        })
        .collect();
    if entry.reason.is_some() {
        if let Some(hint) = &entry.hint {
            text.push_str(&format!("    why: {hint}\n"));
        }
        let sent = if credentials.is_empty() {
            "no credential header".to_owned()
        } else {
            credentials.join(", ")
        };
        text.push_str(&format!("    sent: {sent}\n"));
    }
    text
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "id": entry.id,
        "time": entry.time,
        "instance": entry.instance,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "flinksCode": entry.flinks_code,
        "reason": entry.reason,
        "hint": entry.hint,
        "requestId": entry.request_id,
        "loginId": entry.login_id,
        "durationMs": entry.duration_ms,
    })
}
