//! `POST /v3/{customerId}/BankingServices/AuthorizeAsync`: /Authorize, answered through polls
//! (docs/flinks-wire.md, "AuthorizeAsync").
//!
//! A step (credentials, a LoginId, or MFA answers) runs /Authorize's own code
//! ([`super::authorize::decide`]) when it arrives: the token is spent, the bank answers, the
//! session opens and the webhook callbacks are queued exactly as on /Authorize. The step then
//! answers 202 with its RequestId, and keeps /Authorize's answer, rendered, for the polls
//! (`{"RequestId"}`), which see it [`STEP_DELAY`] later on the instance's clock (a 202 before).
//! The answer is kept as rendered rather than as a typed outcome so that it stays exactly
//! /Authorize's whatever /Authorize comes to answer. Refusals about the request itself (token,
//! body, RequestId) are answered at once, as /Authorize would; only what the bank decides waits
//! for a poll.

use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bankgate_core::model::{AUTHORIZED_SESSION_LIFETIME, Tenant};
use bankgate_core::{LoginId, Refusal, RequestId, Timestamp};
use bankgate_store::AsyncStep;
use serde::{Deserialize, Serialize};

use super::PathParams;
use super::authorize::{AuthorizeRequest, decide};
use crate::auth::{self, ClientAddr};
use crate::body;
use crate::error::{ApiError, Endpoint, FlinksCode, Hint, Reason};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::AuthorizeAsync;

/// How long after it is sent a step's answer is ready for polls, on the instance's clock
/// (moving a sandbox's clock makes it ready at once).
pub const STEP_DELAY: Duration = Duration::from_secs(2);

/// How long a step's answer stays available to polls after it is ready: the longest a
/// RequestId serves (an authorized session's).
const STEP_LIFETIME: Duration = AUTHORIZED_SESSION_LIFETIME;

/// The 202 of a step that is not ready, exactly as Flinks' sandbox answers it (field order
/// included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = AuthorizeAsyncPending)]
pub struct PendingResponse {
    http_status_code: u16,
    /// `OPERATION_PENDING`.
    #[schema(value_type = String)]
    flinks_code: FlinksCode,
    /// `Your operation is still processing`.
    message: &'static str,
    /// Poll with it.
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
    links: [super::Link; 1],
}

impl PendingResponse {
    fn new(request_id: RequestId) -> Self {
        Self {
            http_status_code: 202,
            flinks_code: FlinksCode::OperationPending,
            message: "Your operation is still processing",
            request_id,
            links: [super::Link::to("AuthorizeAsync", "/AuthorizeAsync")],
        }
    }

    /// The 202, with `Retry-After` (whole seconds until the step is ready, at least 1; bankgate's
    /// addition, as on the data polls).
    fn into_response(self, now: Timestamp, ready_at: Timestamp) -> Response {
        let micros = ready_at.as_micros().saturating_sub(now.as_micros());
        let secs = u64::try_from(micros)
            .unwrap_or_default()
            .div_ceil(1_000_000)
            .max(1);
        (
            StatusCode::ACCEPTED,
            [(header::RETRY_AFTER, secs.to_string())],
            axum::Json(self),
        )
            .into_response()
    }
}

/// /Authorize's answer to a step, as kept for the polls: the response itself, and the
/// refusal's `Reason`, `FlinksCode` and `Hint` that the journal and metrics read off a response.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flinks_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl StoredAnswer {
    async fn of(response: Response) -> Result<Self, ApiError> {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|error| internal(&format!("an answer could not be read: {error}")))?;
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name != header::CONTENT_LENGTH)
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        Ok(Self {
            status: parts.status.as_u16(),
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            reason: parts
                .extensions
                .get::<Reason>()
                .map(|r| r.as_str().to_owned()),
            flinks_code: parts
                .extensions
                .get::<FlinksCode>()
                .map(|c| c.as_str().to_owned()),
            hint: parts.extensions.get::<Hint>().map(|h| h.0.clone()),
        })
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_TYPE);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.append(name, value);
            }
        }
        let extensions = response.extensions_mut();
        if let Some(reason) = self.reason.as_deref().and_then(Reason::from_wire) {
            tracing::Span::current().record("reason", reason.as_str());
            extensions.insert(reason);
        }
        if let Some(code) = self.flinks_code.as_deref().and_then(FlinksCode::from_wire) {
            extensions.insert(code);
        }
        if let Some(hint) = self.hint {
            extensions.insert(Hint(hint));
        }
        response
    }
}

fn internal(detail: &str) -> ApiError {
    tracing::error!(%detail, "AuthorizeAsync");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        FlinksCode::AggregationError,
        "An unexpected error occurred",
        Reason::InternalError,
        "bankgate could not keep or read an AuthorizeAsync step; start again with a new \
         authorize token, and report it if it persists.",
    )
}

/// Starts an authorization (credentials, or a LoginId with `MostRecentCached: false`), answers
/// an MFA step (`RequestId` + `SecurityResponses`), or polls (`RequestId` alone): /Authorize's
/// answer, 2 seconds after each step on the instance's clock.
#[utoipa::path(
    post,
    path = Endpoint::AuthorizeAsync.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("flinks-auth-key" = Option<String>, Header, description = "An authorize token on the first call, as /Authorize takes it; an MFA answer may repeat it; a poll needs none")),
    request_body(content = AuthorizeRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The step is under way, or a poll came before it was ready: poll with the RequestId (Retry-After says when)", body = PendingResponse),
        (status = 200, description = "A poll of a step that authorized: /Authorize's 200", body = super::authorize::AuthorizedResponse),
        (status = 203, description = "A poll of a step that asks MFA: /Authorize's 203; answer with the RequestId and SecurityResponses", body = super::authorize::MfaResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn authorize_async(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    client: ClientAddr,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    let bytes = body::read(body).await;
    // A poll names a RequestId and answers nothing; everything else is a step for /Authorize's
    // code, which also refuses the bodies it cannot read (spending the token, as /Authorize).
    let request = bytes
        .as_deref()
        .ok()
        .and_then(|bytes| body::parse::<AuthorizeRequest>(bytes).ok());
    if let Some(AuthorizeRequest {
        request_id: Some(raw),
        security_responses: None,
        ..
    }) = &request
    {
        let ignored = bytes
            .as_deref()
            .map(body::ignored_fields::<AuthorizeRequest>)
            .unwrap_or_default();
        return poll(&state, &tenant, raw)
            .await
            .map(|response| body::mark_ignored(response, &ignored));
    }
    let answered = request
        .and_then(|r| r.request_id)
        .and_then(|raw| raw.parse::<RequestId>().ok());
    let now = tenant.instance.now(state.clock.as_ref());
    let decided = decide(state.clone(), tenant.clone(), client, uri, headers, bytes).await;
    // The answer is rendered out of this request's span: it is the poll's to report.
    let (request_id, login_id, answer, ignored) = match decided {
        Ok((outcome, ignored)) => {
            let (request_id, login_id) = (outcome.request_id(), outcome.login_id());
            let response = tracing::Span::none()
                .in_scope(|| body::mark_ignored(outcome.into_response(&state.bank), &ignored));
            (request_id, login_id, response, ignored)
        }
        Err(refusal) if refusal.reason.from_bank() => {
            // A refusal leaving no session has no RequestId of its own: the step needs one.
            let request_id = refusal
                .request_id
                .or(answered)
                .unwrap_or_else(RequestId::new_random);
            crate::journal::record_request_id(request_id);
            let response = tracing::Span::none().in_scope(|| refusal.into_response());
            (request_id, None, response, Vec::new())
        }
        Err(refusal) => return Err(refusal),
    };
    let ready_at = now + STEP_DELAY;
    keep(&state, &tenant, request_id, login_id, answer, now).await?;
    tracing::info!("AuthorizeAsync step accepted");
    Ok(body::mark_ignored(
        PendingResponse::new(request_id).into_response(now, ready_at),
        &ignored,
    ))
}

/// Keeps a step's answer for the polls.
async fn keep(
    state: &AppState,
    tenant: &Tenant,
    request_id: RequestId,
    login_id: Option<LoginId>,
    answer: Response,
    now: Timestamp,
) -> Result<(), ApiError> {
    let stored = StoredAnswer::of(answer).await?;
    let answer = serde_json::to_string(&stored)
        .map_err(|error| internal(&format!("an answer could not be kept: {error}")))?;
    let ready_at = now + STEP_DELAY;
    let step = AsyncStep {
        request_id,
        customer_id: tenant.customer.id,
        login_id,
        answer,
        created_at: now,
        ready_at,
        expires_at: ready_at + STEP_LIFETIME,
    };
    if state.store.put_async_step(&step).await? {
        Ok(())
    } else {
        // /Authorize's code only continues RequestIds of this customer, so this is a bug.
        Err(internal("a RequestId of another customer"))
    }
}

/// `{"RequestId"}`: the step's answer once it is ready, the 202 before.
async fn poll(state: &AppState, tenant: &Tenant, raw: &str) -> Result<Response, ApiError> {
    let request_id: RequestId = raw.trim().parse().map_err(|_| {
        ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdMalformed {
                request_id: raw.to_owned(),
                placeholder: auth::is_placeholder(raw),
            },
        )
    })?;
    crate::journal::record_request_id(request_id);
    let unknown = |hint: &str| {
        ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        )
        .with_hint(hint)
    };
    // Another customer's step is not named as such (never say whose, as for LoginIds).
    let step = state
        .store
        .async_step(request_id)
        .await?
        .filter(|step| step.customer_id == tenant.customer.id);
    let Some(step) = step else {
        let hint = if state
            .store
            .session(tenant.customer.id, request_id)
            .await?
            .is_some()
            || state
                .store
                .pending(tenant.customer.id, request_id)
                .await?
                .is_some()
        {
            "This RequestId was opened by /Authorize, not /AuthorizeAsync: continue it with \
             /Authorize (a RequestId's steps all go to one of the two)."
        } else {
            "No /AuthorizeAsync step of this customerId has this RequestId: check that the \
             customerId in the path is the one whose /AuthorizeAsync call returned it; \
             otherwise it was never issued, its 30 minutes after the last step are over, or \
             DeleteCard ended it, so start again with a new authorize token."
        };
        return Err(unknown(hint));
    };
    let now = tenant.instance.now(state.clock.as_ref());
    if step.expires_at <= now {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdExpired {
                request_id: request_id.to_string(),
                at: step.expires_at,
            },
        )
        .with_hint(format!(
            "This RequestId's last /AuthorizeAsync step expired at {}; start again with a new \
             authorize token.",
            step.expires_at.to_rfc3339()
        )));
    }
    if now < step.ready_at {
        return Ok(PendingResponse::new(request_id).into_response(now, step.ready_at));
    }
    let stored: StoredAnswer = serde_json::from_str(&step.answer)
        .map_err(|error| internal(&format!("a kept answer could not be read: {error}")))?;
    Ok(stored.into_response())
}
