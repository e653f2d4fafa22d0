//! The nightly (scheduled) refresh: `PATCH /SetScheduledRefresh` switches it per card,
//! `GET /GetNightlyRefreshStatus` lists the flagged cards it stopped refreshing, and
//! [`catch_up`] runs the nights an instance's clock crossed (docs/flinks-wire.md, "Nightly
//! refresh").

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use bankgate_core::nightly::Stop;
use bankgate_core::time_format::flinks_datetime;
use bankgate_core::{InstanceName, LoginId, Refusal, Timestamp};
use bankgate_store::{NightlyRun, Store};
use serde::{Deserialize, Serialize};

use super::PathParams;
use super::delete_card::require_api_key;
use crate::auth;
use crate::body::{AnyObject, FlinksJson, lenient_bool};
use crate::error::{ApiError, Endpoint, Reason};
use crate::host::HostKind;
use crate::state::AppState;

/// Runs the nights whose 02:00 the instance's clock passed since the last run (once, whichever
/// node asks first). Called when an operator moves a sandbox clock, by the background purge
/// timer, and before GetNightlyRefreshStatus answers; never on the other API paths.
pub async fn catch_up(
    store: &dyn Store,
    instance: &InstanceName,
    now: Timestamp,
) -> Result<NightlyRun, bankgate_core::DomainError> {
    let run = store.run_nightly(instance, now).await?;
    if run.nights > 0 {
        tracing::info!(
            instance = %instance,
            nights = run.nights,
            refreshed = run.refreshed,
            stopped = run.stopped,
            "nightly refresh ran"
        );
    }
    Ok(run)
}

/// The SetScheduledRefresh body (keys in any case; `IsActivated` a boolean or a string).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = SetScheduledRefreshBody)]
pub struct SetScheduledRefreshRequest {
    /// The saved card (a LoginId of this customer).
    #[schema(value_type = String, format = Uuid, required = true)]
    pub login_id: Option<String>,
    /// `true` switches the nightly refresh on, `false` off (also `"true"`/`"false"`).
    #[serde(default, deserialize_with = "lenient_bool")]
    #[schema(value_type = bool, required = true)]
    pub is_activated: Option<bool>,
}

/// The LoginId in a body: missing, or not one of this customer's saved cards.
pub(crate) fn body_login_id(
    endpoint: Endpoint,
    login_id: Option<&str>,
    query: Option<&str>,
) -> Result<LoginId, ApiError> {
    let Some(login_id) = login_id.map(str::trim).filter(|id| !id.is_empty()) else {
        // The Ruby gem sends its parameters in the query string.
        let in_query = query.is_some_and(|q| q.to_ascii_lowercase().contains("login"));
        let hint = if in_query {
            "The LoginId is in the query string; send it in the JSON body as \"LoginId\"."
        } else {
            "Send the card's LoginId in the JSON body as \"LoginId\"."
        };
        return Err(ApiError::invalid_request(Reason::LoginIdMissing, hint));
    };
    let Ok(login_id) = login_id.parse::<LoginId>() else {
        return Err(ApiError::refused(endpoint, &Refusal::LoginNotFound));
    };
    crate::journal::record_login_id(login_id);
    Ok(login_id)
}

/// Switches a saved card's nightly refresh on or off; answers a bare JSON string, as Flinks'
/// documentation shows.
#[utoipa::path(
    patch,
    path = Endpoint::SetScheduledRefresh.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    request_body(content = SetScheduledRefreshRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The confirmation sentence, a bare JSON string", body = String, content_type = "application/json", example = json!("LoginId bb8b8569-3bfc-43c1-ae31-08d6decf1675 has now been activated for automatic refresh")),
        crate::error::ErrorResponses,
    ),
)]
pub async fn set_scheduled_refresh(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(request): FlinksJson<SetScheduledRefreshRequest>,
) -> Result<Json<String>, ApiError> {
    const ENDPOINT: Endpoint = Endpoint::SetScheduledRefresh;
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    require_api_key(&state, &tenant, &headers, uri.query(), ENDPOINT).await?;
    let login_id = body_login_id(ENDPOINT, request.login_id.as_deref(), uri.query())?;
    let Some(on) = request.is_activated else {
        return Err(ApiError::invalid_request(
            Reason::IsActivatedMissing,
            "Send \"IsActivated\": true to switch the nightly refresh on, or false to switch it \
             off.",
        ));
    };
    let now = tenant.instance.now(state.clock.as_ref());
    let Some(login) = state
        .store
        .set_scheduled_refresh(tenant.customer.id, login_id, on, now)
        .await?
    else {
        let refusal = auth::login_not_found(&state, &tenant, login_id).await;
        return Err(ApiError::refused(ENDPOINT, &refusal));
    };
    let done = if login.is_scheduled_refresh {
        "activated"
    } else {
        "deactivated"
    };
    tracing::info!(
        scheduled = login.is_scheduled_refresh,
        "scheduled refresh set"
    );
    Ok(Json(format!(
        "LoginId {login_id} has now been {done} for automatic refresh"
    )))
}

/// One card the nightly refresh stopped refreshing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IneligibleCard {
    #[schema(value_type = String, format = Uuid)]
    pub login_id: LoginId,
    /// The last successful refresh (live or nightly), as `LastRefresh` is written.
    pub last_refresh_date: String,
    /// `Completed` (the last refresh succeeded; the card aged out of the rules), `Failed`, or
    /// `AnsweringSecurityChallenge`.
    pub last_refresh_state: &'static str,
    /// The FlinksCode the last refresh failed with, if it failed.
    pub last_refresh_error_code: Option<String>,
    /// bankgate's addition: which rule stopped the card.
    pub reason: &'static str,
    /// bankgate's addition: what makes the card refresh again.
    pub hint: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NightlyRefreshStatusResponse {
    pub http_status_code: u16,
    pub ineligible_cards: Vec<IneligibleCard>,
}

fn stop_hint(stop: Stop, night: Timestamp) -> String {
    let night = night.to_rfc3339();
    match stop {
        Stop::RefreshError => format!(
            "The card's last refresh failed (LastRefreshErrorCode), so the refresh of {night} did \
             not run; a live /Authorize of its LoginId that succeeds (or a new connection through \
             Connect) lets it run again."
        ),
        Stop::RefreshTooOld => format!(
            "The card had no successful refresh in the 7 days before {night}; refresh it live \
             (/Authorize with its LoginId, MostRecentCached false) to let it run again."
        ),
        Stop::NoCachedCall => format!(
            "The card had no cached /Authorize (MostRecentCached: true) in the 7 days before \
             {night} (instances with a webhook are exempt); refresh it live, then keep reading it \
             at least weekly."
        ),
        Stop::QuestionUnanswered => format!(
            "On {night} the bank asked a security question the card has no stored answer to; \
             store it with AnswerMFAQuestions (see GetMFAQuestions), then refresh it live."
        ),
        Stop::AnswerWrong => format!(
            "On {night} the stored answer to the bank's security question was wrong and was \
             erased; store the right one with AnswerMFAQuestions, then refresh it live."
        ),
    }
}

/// `Authorization: Bearer {x-api-key}` as the `x-api-key` header (docs/flinks-wire.md,
/// "Nightly refresh"): the header map `require_api_key` then reads.
fn bearer_as_api_key(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    let api_key = Endpoint::GetNightlyRefreshStatus.credential_header();
    if headers.get(api_key).is_some() {
        return headers;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let value = value.trim();
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .and_then(|key| HeaderValue::from_str(key).ok());
    if let Some(key) = bearer {
        headers.remove(header::AUTHORIZATION);
        headers.insert(api_key, key);
    }
    headers
}

/// The customer's flagged cards that the nightly refresh stopped refreshing, after running the
/// nights the instance's clock crossed.
#[utoipa::path(
    get,
    path = Endpoint::GetNightlyRefreshStatus.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("Authorization" = Option<String>, Header, description = "Bearer and the customer's x-api-key"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key (instead of Authorization)")),
    responses(
        (status = 200, description = "The flagged cards that stopped refreshing (none: an empty list)", body = NightlyRefreshStatusResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn get_nightly_refresh_status(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(_): FlinksJson<AnyObject>,
) -> Result<Json<NightlyRefreshStatusResponse>, ApiError> {
    const ENDPOINT: Endpoint = Endpoint::GetNightlyRefreshStatus;
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    let headers = bearer_as_api_key(&headers);
    require_api_key(&state, &tenant, &headers, uri.query(), ENDPOINT).await?;
    let now = tenant.instance.now(state.clock.as_ref());
    catch_up(state.store.as_ref(), &tenant.instance.name, now).await?;
    let cards = state.store.stopped_cards(tenant.customer.id).await?;
    Ok(Json(NightlyRefreshStatusResponse {
        http_status_code: 200,
        ineligible_cards: cards
            .into_iter()
            .map(|card| IneligibleCard {
                login_id: card.login_id,
                last_refresh_date: flinks_datetime(card.last_refresh),
                last_refresh_state: card.stop.last_refresh_state(),
                last_refresh_error_code: card.refresh_error,
                reason: card.stop.as_str(),
                hint: stop_hint(card.stop, card.stopped_at),
            })
            .collect(),
    }))
}
