//! Endpoint faults of sandbox instances (docs/flinks-wire.md, "Forced failures"): the next
//! calls of an endpoint answer a 5xx, or wait before answering as usual. Runs on the Flinks
//! routes only, after routing, before the handler (so a fault spends no token).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bankgate_core::CustomerId;
use bankgate_core::forced::ForcedAction;
use bankgate_core::model::InstanceKind;
use bankgate_store::ForcedCall;

use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn apply(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let endpoint = Endpoint::of_path(path).map(|(endpoint, _)| endpoint);
    let customer = path
        .split('/')
        .nth(2)
        .and_then(|id| id.parse::<CustomerId>().ok());
    let (Some(endpoint), Some(customer)) = (endpoint, customer) else {
        return next.run(request).await;
    };
    // Remembered lookups: an instance without rules costs two map reads.
    let tenant = match state.store.tenant(customer).await {
        Ok(Some(tenant)) if tenant.instance.kind == InstanceKind::Sandbox => tenant,
        _ => return next.run(request).await,
    };
    match state.store.has_forced_rules(&tenant.instance.name).await {
        Ok(true) => {}
        _ => return next.run(request).await,
    }
    let call = ForcedCall::Endpoint {
        instance: &tenant.instance.name,
        endpoint: endpoint.name(),
    };
    let now = tenant.instance.now(state.clock.as_ref());
    let rule = match state.store.take_forced(&call, now).await {
        Ok(Some(rule)) => rule,
        Ok(None) => return next.run(request).await,
        Err(error) => return ApiError::from(error).into_response(),
    };
    tracing::info!(rule = %rule.id, "forced fault");
    if let ForcedAction::Stall(period) = rule.action {
        // Real time: a stall is for client timeouts, which run on real clocks.
        tokio::time::sleep(period).await;
        return next.run(request).await;
    }
    match ApiError::forced(&rule, now) {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}
