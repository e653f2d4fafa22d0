//! Prometheus metrics: what the API answered, how long it took, what happened to authorize
//! tokens, how writes were grouped into commits. Rendered at `/metrics` on the admin listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bankgate_store::{AttemptResult, DeliveryStatus, Purged, StoreObserver, TokenUse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{Endpoint, Reason};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Every metric bankgate keeps, registered once. Cloning shares the same counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<EndpointLabel>,
    tokens_issued: Counter,
    tokens_consumed: Counter,
    tokens_refused: Family<ReasonLabel, Counter>,
    tokens_expired: Counter,
    rate_limited: Family<EndpointLabel, Counter>,
    commit_batch_size: Histogram,
    commit_duration: Histogram,
    webhooks_delivered: Counter,
    webhooks_retried: Counter,
    webhooks_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bankgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "API requests answered, by endpoint and HTTP status",
            requests.clone(),
        );
        let latency: HistogramFamily<EndpointLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an API request, by endpoint",
            latency.clone(),
        );
        let tokens_issued = Counter::default();
        registry.register(
            "tokens_issued",
            "Authorize tokens issued",
            tokens_issued.clone(),
        );
        let tokens_consumed = Counter::default();
        registry.register(
            "tokens_consumed",
            "Authorize tokens consumed by their first use",
            tokens_consumed.clone(),
        );
        let tokens_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tokens_refused",
            "Authorize tokens refused, by Reason (missing, invalid, used, expired, ...)",
            tokens_refused.clone(),
        );
        let tokens_expired = Counter::default();
        registry.register(
            "tokens_expired",
            "Expired authorize tokens removed by the purge",
            tokens_expired.clone(),
        );
        let rate_limited = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with TOO_MANY_REQUESTS, by endpoint",
            rate_limited.clone(),
        );
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "store_commit_batch_size",
            "Writes carried by one database commit (group commit)",
            commit_batch_size.clone(),
        );
        let commit_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 14));
        registry.register(
            "store_commit_duration_seconds",
            "Time from the start of a write transaction to its durable commit",
            commit_duration.clone(),
        );
        let webhooks_delivered = Counter::default();
        registry.register(
            "webhooks_delivered",
            "Webhook callbacks a receiver accepted (2xx)",
            webhooks_delivered.clone(),
        );
        let webhooks_retried = Counter::default();
        registry.register(
            "webhooks_retried",
            "Webhook attempts that failed and will be tried again",
            webhooks_retried.clone(),
        );
        let webhooks_failed = Counter::default();
        registry.register(
            "webhooks_failed",
            "Webhook callbacks given up after their last attempt",
            webhooks_failed.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens_issued,
            tokens_consumed,
            tokens_refused,
            tokens_expired,
            rate_limited,
            commit_batch_size,
            commit_duration,
            webhooks_delivered,
            webhooks_retried,
            webhooks_failed,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    fn answered(
        &self,
        endpoint: &'static str,
        status: u16,
        reason: Option<Reason>,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabel { endpoint })
            .observe(took.as_secs_f64());
        match reason {
            Some(Reason::RateLimited) => {
                self.rate_limited
                    .get_or_create(&EndpointLabel { endpoint })
                    .inc();
            }
            // Refusals whose Reason only the edge knows: no token, or a value the store did not
            // know as a token (a key sent as one, a token of no one). Counted here only, once per
            // request: the store reports just what it alone judges (consumed, used, expired),
            // since a value it calls unknown may turn out to be the secret key.
            Some(
                reason @ (Reason::AuthorizeTokenMissing
                | Reason::AuthorizeTokenEmpty
                | Reason::AuthorizeTokenInvalid
                | Reason::AuthKeyGivenAsToken
                | Reason::ApiKeyGivenAsToken
                | Reason::AuthorizeTokenInBody),
            ) => {
                self.tokens_refused
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// One webhook attempt and where it left its callback.
    pub fn webhook_attempted(&self, result: &AttemptResult, now: DeliveryStatus) {
        match (result, now) {
            (AttemptResult::Delivered { .. }, _) => {
                self.webhooks_delivered.inc();
            }
            (AttemptResult::Failed { .. }, DeliveryStatus::Failed) => {
                self.webhooks_failed.inc();
            }
            (AttemptResult::Failed { .. }, _) => {
                self.webhooks_retried.inc();
            }
            // Not attempted (held until its data is ready).
            (AttemptResult::NotYet { .. }, _) => {}
        }
    }

    pub fn purged(&self, purged: Purged) {
        self.tokens_expired.inc_by(purged.tokens);
    }
}

impl StoreObserver for Metrics {
    fn committed(&self, jobs: usize, took: Duration) {
        self.commit_batch_size.observe(jobs as f64);
        self.commit_duration.observe(took.as_secs_f64());
    }

    fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    fn token_presented(&self, outcome: &TokenUse) {
        let reason = match outcome {
            TokenUse::Consumed => {
                self.tokens_consumed.inc();
                return;
            }
            TokenUse::Used { .. } => Reason::AuthorizeTokenUsed,
            TokenUse::Expired { .. } => Reason::AuthorizeTokenExpired,
            // The edge counts these under the Reason it answers (see `answered`).
            TokenUse::OtherCustomer { .. } | TokenUse::Unknown => return,
        };
        self.tokens_refused
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
}

/// The endpoint a path names, matched as routing does (case-insensitively).
fn endpoint_label(path: &str) -> &'static str {
    Endpoint::of_path(path).map_or("other", |(endpoint, _)| endpoint.name())
}

/// Middleware: counts and times every answer of the public API.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let reason = response.extensions().get::<Reason>().copied();
    metrics.answered(
        endpoint,
        response.status().as_u16(),
        reason,
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_follow_routing() {
        assert_eq!(
            endpoint_label("/v3/43387ca6-0391-4c82-857d-70d95f087ecb/BankingServices/authorize"),
            "Authorize"
        );
        assert_eq!(
            endpoint_label("/v3/x/BankingServices/GetAccountsDetailAsync/abc"),
            "GetAccountsDetailAsync"
        );
        assert_eq!(endpoint_label("/v3/x/BankingServices/Nope"), "other");
        assert_eq!(endpoint_label("/"), "other");
    }

    #[test]
    fn renders_counters_with_labels() {
        let metrics = Metrics::new();
        metrics.answered(
            "Authorize",
            401,
            Some(Reason::RateLimited),
            Duration::from_millis(3),
        );
        metrics.token_presented(&TokenUse::Unknown);
        metrics.answered(
            "Authorize",
            401,
            Some(Reason::AuthorizeTokenInvalid),
            Duration::from_millis(1),
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"bankgate_http_requests_total{endpoint="Authorize",status="401"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bankgate_rate_limited_total{endpoint="Authorize"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bankgate_tokens_refused_total{reason="authorize_token_invalid"} 1"#),
            "{text}"
        );
    }
}
