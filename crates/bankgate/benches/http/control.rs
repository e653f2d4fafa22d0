//! The bench's own few HTTP calls, outside measurements: readiness, setup, metrics.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bankgate_core::model::toolbox;

use crate::node::Node;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// On the bench's runtime (the baseline's), with the nodes' admin token.
pub struct Http<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub client: reqwest::Client,
    pub admin_token: String,
}

impl Http<'_> {
    fn get(&self, url: &str) -> anyhow::Result<(u16, String)> {
        self.runtime.block_on(async {
            let response = self.client.get(url).send().await?;
            let status = response.status().as_u16();
            Ok::<_, anyhow::Error>((status, response.text().await?))
        })
    }

    /// POSTs `body` with one header; answers status and body.
    fn post(&self, url: &str, header: (&str, &str), body: &str) -> anyhow::Result<(u16, String)> {
        self.runtime.block_on(async {
            let response = self
                .client
                .post(url)
                .header(header.0, header.1)
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .send()
                .await?;
            let status = response.status().as_u16();
            Ok::<_, anyhow::Error>((status, response.text().await?))
        })
    }

    pub fn wait_ready(&self, node: &Node) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", node.admin);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if matches!(self.get(&url), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "bankgate was not ready within {READY_TIMEOUT:?}; its log:\n{}",
                    node.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A sandbox LoginId of the toolbox customer, through the admin API.
    /// Points the toolbox instance's webhook at `url` (a sandbox: plain http to loopback is fine).
    pub fn set_webhook(&self, node: &Node, url: &str) -> anyhow::Result<()> {
        let endpoint = format!("http://{}/admin/instances/toolbox/webhook", node.admin);
        let (status, body) = self.runtime.block_on(async {
            let response = self
                .client
                .put(&endpoint)
                .bearer_auth(&self.admin_token)
                .json(&serde_json::json!({ "url": url }))
                .send()
                .await?;
            let status = response.status().as_u16();
            Ok::<_, anyhow::Error>((status, response.text().await?))
        })?;
        if status != 200 {
            bail!("setting the webhook: HTTP {status}: {body}");
        }
        Ok(())
    }

    pub fn create_login(&self, node: &Node) -> anyhow::Result<String> {
        let url = format!(
            "http://{}/admin/customers/{}/logins",
            node.admin,
            toolbox::CUSTOMER_ID
        );
        let bearer = format!("Bearer {}", self.admin_token);
        let (status, body) = self.post(
            &url,
            ("Authorization", &bearer),
            r#"{"username":"Greatday","institution":"FlinksCapital"}"#,
        )?;
        if status != 201 {
            bail!("creating a LoginId: HTTP {status}: {body}");
        }
        let view: serde_json::Value = serde_json::from_str(&body)?;
        view.get("loginId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no loginId in {body}"))
    }

    /// One flow by hand on each node, so a misconfiguration fails here with a clear message,
    /// and the flow script's reading of the answers is checked.
    pub fn preflight(&self, node: &Node, login_id: &str) -> anyhow::Result<()> {
        let base = format!(
            "http://{}/v3/{}/BankingServices",
            node.api,
            toolbox::CUSTOMER_ID
        );
        let (status, body) = self.post(
            &format!("{base}/GenerateAuthorizeToken"),
            ("flinks-auth-key", toolbox::SECRET_KEY),
            "",
        )?;
        let answer: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("GenerateAuthorizeToken: HTTP {status}: {body}"))?;
        let Some(token) = answer.get("Token").and_then(serde_json::Value::as_str) else {
            bail!("GenerateAuthorizeToken: HTTP {status}: {body}");
        };
        let (status, body) = self.post(
            &format!("{base}/Authorize"),
            ("flinks-auth-key", token),
            &format!(r#"{{"LoginId":"{login_id}","MostRecentCached":true}}"#),
        )?;
        // The flow script tells the two answers apart by these fields.
        if status != 200 || !body.contains("\"RequestId\"") || body.contains("\"Token\":\"") {
            bail!("Authorize: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// Writes and commits of the store so far, from the node's metrics.
    fn commits(&self, node: &Node) -> Option<(f64, f64)> {
        let (status, text) = self.get(&format!("http://{}/metrics", node.admin)).ok()?;
        if status != 200 {
            return None;
        }
        let value = |name: &str| -> Option<f64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        };
        Some((
            value("bankgate_store_commit_batch_size_sum")?,
            value("bankgate_store_commit_batch_size_count")?,
        ))
    }

    pub fn all_commits(&self, nodes: &[&Node]) -> Option<(f64, f64)> {
        nodes
            .iter()
            .try_fold((0.0, 0.0), |(writes, commits), node| {
                let (w, c) = self.commits(node)?;
                Some((writes + w, commits + c))
            })
    }
}
