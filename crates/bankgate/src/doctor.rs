//! `bankgate doctor`: the Flinks troubleshooting checklist, run against any Flinks-compatible
//! server. It relies only on Flinks' wire behaviour (statuses, FlinksCodes, the documented
//! messages), never on bankgate's `Reason`, so it can check a configuration against Flinks
//! itself before a demo.

use std::fmt;

use bankgate_client::{ApiKey, Client, CustomerId, Error, Poll, RequestId, SecretKey};
use reqwest::Url;
use serde::Serialize;

use crate::cli::DoctorArgs;

/// The header Flinks reads the secret key and the authorize token from.
const AUTH_KEY_HEADER: &str = "flinks-auth-key";
/// The documented message of a refused authorize token (Flinks' troubleshooting page).
const TOKEN_REFUSED_MESSAGE: &str = "valid authorize token";
/// A LoginId and a RequestId no server has issued, to probe a credential without real data.
const UNISSUED_ID: &str = "00000000-0000-4000-8000-000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub outcome: Outcome,
    /// What the server answered (never a credential).
    pub detail: String,
    /// How to fix it, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub base_url: String,
    pub customer_id: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bankgate doctor: {} (customer {})",
            self.base_url, self.customer_id
        )?;
        for check in &self.checks {
            let mark = match check.outcome {
                Outcome::Pass => "✓",
                Outcome::Fail => "✗",
                Outcome::Skip => "-",
            };
            writeln!(f, "{mark} {}: {}", check.check, check.detail)?;
            if let Some(fix) = &check.fix {
                writeln!(f, "    fix: {fix}")?;
            }
        }
        match self.failures() {
            0 => write!(f, "all checks passed"),
            n => write!(f, "{n} of {} checks failed", self.checks.len()),
        }
    }
}

struct Checklist(Vec<Check>);

impl Checklist {
    fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Outcome::Pass, detail.into(), None);
    }

    fn fail(&mut self, check: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(check, Outcome::Fail, detail.into(), Some(fix.into()));
    }

    fn skip(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Outcome::Skip, detail.into(), None);
    }

    fn push(&mut self, check: &'static str, outcome: Outcome, detail: String, fix: Option<String>) {
        self.0.push(Check {
            check,
            outcome,
            detail,
            fix,
        });
    }
}

/// Runs every check in order; a check that later ones depend on stops them (they are skipped).
pub async fn run(args: &DoctorArgs) -> Report {
    let mut list = Checklist(Vec::new());
    let customer = args.customer_id.trim().to_owned();
    let report = |list: Checklist| Report {
        base_url: args.base_url.clone(),
        customer_id: customer.clone(),
        passed: list.0.iter().all(|c| c.outcome != Outcome::Fail),
        checks: list.0,
    };

    let Some(root) = check_base_url(&args.base_url, &customer, &mut list) else {
        return report(list);
    };
    bankgate_client::install_tls_provider();
    let http = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            list.fail(
                "server_reachable",
                format!("cannot make an HTTP client: {error}"),
                "report this as a bug",
            );
            return report(list);
        }
    };
    let client = match Client::with_http_client(http.clone(), &root, &CustomerId::new(&customer)) {
        Ok(client) => client,
        Err(error) => {
            list.fail(
                "base_url",
                error.to_string(),
                "give the scheme and host of the API",
            );
            return report(list);
        }
    };
    let secret = SecretKey::new(args.secret_key.trim());

    // The secret key under flinks-auth-key: the start of every flow.
    let token = match client.generate_authorize_token(&secret).await {
        Ok(token) => {
            list.pass("server_reachable", format!("{root} answers"));
            list.pass(
                "secret_key",
                format!(
                    "GenerateAuthorizeToken accepts the secret key ending in {} under {AUTH_KEY_HEADER}",
                    bankgate_core::credentials::last_four(&args.secret_key)
                ),
            );
            token
        }
        Err(Error::Transport(error)) => {
            list.fail(
                "server_reachable",
                format!("no answer from {root}: {}", bankgate_client::with_causes(&error)),
                "check the host and port (and that the server runs); Flinks hosts are {instance}-api.private.fin.ag",
            );
            return report(list);
        }
        Err(error) => {
            list.pass("server_reachable", format!("{root} answers"));
            list.fail(
                "secret_key",
                format!(
                    "GenerateAuthorizeToken refused the secret key: {}",
                    wire(&error)
                ),
                secret_key_fix(&error),
            );
            return report(list);
        }
    };

    wrong_headers_refused(&http, &root, &customer, &args.secret_key, &mut list).await;

    // The token: accepted once, refused the second time. Sent raw, not through the SDK, whose
    // types make a second use impossible to write.
    let login = args
        .login_id
        .as_deref()
        .map(str::trim)
        .unwrap_or(UNISSUED_ID)
        .to_owned();
    let body = serde_json::json!({ "LoginId": login, "MostRecentCached": true });
    let token = token.into_connect_parameter();
    let first = post_authorize(&http, &root, &customer, &token, &body).await;
    let mut request_id = None;
    match &first {
        Ok((status, envelope)) if refuses_token(*status, envelope) => {
            list.fail(
                "token_accepted",
                format!("/Authorize refused a token minted a moment ago: {}", describe(*status, envelope)),
                format!("send the token (not the secret key) in {AUTH_KEY_HEADER}, once, within 30 minutes of minting it"),
            );
        }
        Ok((status, envelope)) => {
            list.pass(
                "token_accepted",
                format!(
                    "/Authorize took the token (answered {})",
                    describe(*status, envelope)
                ),
            );
            match args.login_id.as_deref() {
                None => list.skip("login_id", "give --login-id to check that a LoginId is found"),
                Some(_) if *status == 200 || *status == 202 || *status == 203 => {
                    request_id = envelope["RequestId"].as_str().map(RequestId::new);
                    list.pass("login_id", format!("cached /Authorize found the LoginId (HTTP {status})"));
                }
                Some(_) => list.fail(
                    "login_id",
                    format!("cached /Authorize did not find the LoginId: {}", describe(*status, envelope)),
                    "use a LoginId of this customer on this instance (sandbox and production LoginIds differ), not deleted with /DeleteCard",
                ),
            }
        }
        Err(error) => list.fail(
            "token_accepted",
            format!(
                "no answer from /Authorize: {}",
                bankgate_client::with_causes(error)
            ),
            "check the host and port",
        ),
    }
    if first.is_ok() {
        match post_authorize(&http, &root, &customer, &token, &body).await {
            Ok((status, envelope)) if refuses_token(status, &envelope) => list.pass(
                "token_single_use",
                format!("the same token is refused the second time ({})", describe(status, &envelope)),
            ),
            Ok((status, envelope)) => list.fail(
                "token_single_use",
                format!("the same token was accepted twice ({})", describe(status, &envelope)),
                "Flinks refuses a token's second use: mint a new token for every /Authorize (and every Connect page)",
            ),
            Err(error) => list.fail(
                "token_single_use",
                format!("no answer from /Authorize: {}", bankgate_client::with_causes(&error)),
                "check the host and port",
            ),
        }
    }

    match args.api_key.as_deref() {
        None => list.skip(
            "api_key",
            "give --api-key to check the x-api-key on a data endpoint",
        ),
        Some(key) => check_api_key(&client, key, request_id, &mut list).await,
    }
    report(list)
}

/// The base URL's shape; `Some(root)` (scheme and host) when calls can be made with it.
fn check_base_url(base_url: &str, customer: &str, list: &mut Checklist) -> Option<String> {
    const CHECK: &str = "base_url";
    let Ok(url) = Url::parse(base_url.trim()) else {
        list.fail(
            CHECK,
            format!("{base_url:?} is not a URL"),
            "write it as https://{instance}-api.private.fin.ag",
        );
        return None;
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        list.fail(
            CHECK,
            format!("the scheme is {}", url.scheme()),
            "use https:// (http:// only for a local bankgate)",
        );
        return None;
    }
    let Some(host) = url.host_str() else {
        list.fail(
            CHECK,
            "the URL has no host",
            "write it as https://{instance}-api.private.fin.ag",
        );
        return None;
    };
    if !bankgate_server::auth::is_uuid_shape(customer) {
        list.fail(
            CHECK,
            "the customerId is not a GUID",
            "copy the customerId (8-4-4-4-12 hexadecimal) from your Flinks instance settings",
        );
        return None;
    }
    let root = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    let path = url.path();
    let expected = format!("/v3/{customer}/BankingServices");
    let mut problems = Vec::new();
    if path.contains("//") {
        problems.push((
            "the path has a doubled slash".to_owned(),
            "join the base URL and the endpoint with exactly one '/'".to_owned(),
        ));
    }
    if path != "/" && !path.is_empty() {
        let trimmed = path.trim_end_matches('/');
        if !trimmed.eq_ignore_ascii_case(&expected) {
            problems.push((
                format!("the path is {path}, not {expected}"),
                format!("use {root}{expected}/{{endpoint}} (the customerId you gave, BankingServices, then the endpoint)"),
            ));
        } else if path.ends_with('/') {
            problems.push((
                "the base URL ends with a slash".to_owned(),
                "drop the trailing slash, or a path starting with '/' makes a doubled slash"
                    .to_owned(),
            ));
        }
    }
    let first_label = host.split('.').next().unwrap_or(host);
    if host.ends_with(".fin.ag") && !first_label.ends_with("-api") {
        problems.push((
            format!("the host {host} is not an API host"),
            format!(
                "the API is served at {}-api.{}",
                first_label.trim_end_matches("-iframe"),
                host.split_once('.').map_or("", |(_, rest)| rest)
            ),
        ));
    }
    if first_label.ends_with("-iframe") {
        problems.push((
            format!("{host} is the Connect (iframe) host"),
            "call the API on the {instance}-api host; -iframe serves only the Connect page"
                .to_owned(),
        ));
    }
    if problems.is_empty() {
        list.pass(CHECK, format!("{root}{expected}/{{endpoint}}"));
        Some(root)
    } else {
        let (detail, fix): (Vec<_>, Vec<_>) = problems.into_iter().unzip();
        list.fail(CHECK, detail.join("; "), fix.join("; "));
        // The checks that follow still run on the root, so they say what else is wrong.
        Some(root)
    }
}

/// The secret key sent under the usual wrong headers must be refused, or an app that works
/// here fails at Flinks.
async fn wrong_headers_refused(
    http: &reqwest::Client,
    root: &str,
    customer: &str,
    secret: &str,
    list: &mut Checklist,
) {
    let url = format!("{root}/v3/{customer}/BankingServices/GenerateAuthorizeToken");
    let mut accepted = Vec::new();
    for (header, value) in [
        ("authorization", format!("Bearer {}", secret.trim())),
        ("x-api-key", secret.trim().to_owned()),
    ] {
        match http.post(&url).header(header, value).send().await {
            Ok(response) if response.status().is_success() => accepted.push(header),
            Ok(_) => {}
            Err(error) => {
                list.fail(
                    "wrong_headers_refused",
                    format!("no answer: {}", bankgate_client::with_causes(&error)),
                    "check the host and port",
                );
                return;
            }
        }
    }
    if accepted.is_empty() {
        list.pass(
            "wrong_headers_refused",
            format!("the secret key is refused under Authorization: Bearer and x-api-key; only {AUTH_KEY_HEADER} works"),
        );
    } else {
        list.fail(
            "wrong_headers_refused",
            format!(
                "this server also accepts the secret key under {}",
                accepted.join(" and ")
            ),
            format!(
                "Flinks reads it only from {AUTH_KEY_HEADER}: make sure your app sends it there"
            ),
        );
    }
}

async fn check_api_key(
    client: &Client,
    key: &str,
    request_id: Option<RequestId>,
    list: &mut Checklist,
) {
    let key = ApiKey::new(key.trim());
    let probing = request_id.is_none();
    let request_id = request_id.unwrap_or_else(|| RequestId::new(UNISSUED_ID));
    match client.get_accounts_summary(&key, &request_id).await {
        Ok(Poll::Ready(summary)) => list.pass(
            "api_key",
            format!("GetAccountsSummary answered {} accounts with the x-api-key", summary.accounts.len()),
        ),
        Ok(Poll::Pending(_)) => list.pass("api_key", "GetAccountsSummary accepted the x-api-key (202: data not ready yet)"),
        Err(Error::Flinks(refusal)) if refusal.status == 401 => list.fail(
            "api_key",
            format!("GetAccountsSummary refused the x-api-key: {}", refusal_text(&refusal)),
            "send the x-api-key (not the secret key, not a token) in the x-api-key header; it is per instance",
        ),
        Err(Error::Flinks(refusal)) if probing => list.pass(
            "api_key",
            format!(
                "the x-api-key was accepted (the made-up RequestId was then refused: HTTP {}); give --login-id for a full check",
                refusal.status
            ),
        ),
        Err(error) => list.fail(
            "api_key",
            format!("GetAccountsSummary failed: {}", wire(&error)),
            "see the message above",
        ),
    }
}

async fn post_authorize(
    http: &reqwest::Client,
    root: &str,
    customer: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let response = http
        .post(format!("{root}/v3/{customer}/BankingServices/Authorize"))
        .header(AUTH_KEY_HEADER, token)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    ))
}

/// A 401 whose message is the documented one for a bad, expired or used authorize token.
fn refuses_token(status: u16, envelope: &serde_json::Value) -> bool {
    status == 401
        && envelope["Message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains(TOKEN_REFUSED_MESSAGE))
}

fn describe(status: u16, envelope: &serde_json::Value) -> String {
    let mut text = format!("HTTP {status}");
    if let Some(code) = envelope["FlinksCode"].as_str() {
        text.push_str(&format!(" {code}"));
    }
    if let Some(message) = envelope["Message"].as_str() {
        text.push_str(&format!(": {message}"));
    }
    text
}

fn refusal_text(refusal: &bankgate_client::FlinksError) -> String {
    let mut text = format!("HTTP {}", refusal.status);
    if let Some(code) = &refusal.flinks_code {
        text.push_str(&format!(" {code}"));
    }
    if let Some(message) = &refusal.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

fn wire(error: &Error) -> String {
    match error {
        Error::Flinks(refusal) => refusal_text(refusal),
        other => other.to_string(),
    }
}

fn secret_key_fix(error: &Error) -> String {
    match error.flinks().map(|r| r.status) {
        Some(401) => "use this customer's secret key on this instance (sandbox and production keys differ), in flinks-auth-key".to_owned(),
        Some(404) => "check the customerId and the host: the server knows no such customer or path".to_owned(),
        _ => "see the answer above".to_owned(),
    }
}
