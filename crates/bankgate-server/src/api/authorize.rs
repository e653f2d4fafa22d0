//! `POST /v3/{customerId}/BankingServices/Authorize`: an authorize token in `flinks-auth-key`
//! opens a session (RequestId) on a LoginId.
//!
//! Cached mode (`LoginId` + `MostRecentCached: true`) is served here; the live modes
//! (credentials, MFA answers, live refresh) need the sandbox bank's login flow.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use bankgate_core::model::{AUTHORIZED_SESSION_LIFETIME, KeyKind, Login, Tenant};
use bankgate_core::time_format::flinks_datetime;
use bankgate_core::{Digest, LoginId, Refusal, RequestId};
use bankgate_store::{CachedAuthorize, CachedOutcome, TokenUse};
use serde::{Deserialize, Serialize};

use super::{Link, PathParams};
use crate::auth::{self, header_value, is_current_key, missing_credential, misused_credential};
use crate::body::{self, RawBody, lenient_bool};
use crate::error::{ApiError, Endpoint, nameable};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::Authorize;

/// The /Authorize body. Keys arrive in any case; see [`body::parse`].
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeRequest {
    #[serde(rename = "loginid")]
    pub login_id: Option<String>,
    #[serde(
        rename = "mostrecentcached",
        default,
        deserialize_with = "lenient_bool"
    )]
    pub most_recent_cached: Option<bool>,
    #[serde(rename = "institution")]
    pub institution: Option<String>,
    #[serde(rename = "username")]
    pub username: Option<String>,
    #[serde(rename = "password")]
    pub password: Option<String>,
    #[serde(rename = "requestid")]
    pub request_id: Option<String>,
    #[serde(rename = "securityresponses")]
    pub security_responses: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "save", default, deserialize_with = "lenient_bool")]
    pub save: Option<bool>,
    #[serde(rename = "language")]
    pub language: Option<String>,
    #[serde(rename = "tag")]
    pub tag: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoginBody {
    pub username: String,
    pub is_scheduled_refresh: bool,
    pub last_refresh: String,
    #[serde(rename = "Type")]
    pub login_type: &'static str,
    pub id: LoginId,
}

impl From<&Login> for LoginBody {
    fn from(login: &Login) -> Self {
        Self {
            username: login.username.clone(),
            is_scheduled_refresh: login.is_scheduled_refresh,
            last_refresh: flinks_datetime(login.last_refresh),
            login_type: login.login_type.as_str(),
            id: login.id,
        }
    }
}

/// The 200 of an authorized session, fields in the order the live service sends them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizedResponse {
    pub links: [Link; 3],
    pub http_status_code: u16,
    pub institution_name: String,
    pub login: LoginBody,
    pub institution_id: u32,
    pub institution: String,
    pub request_id: RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

pub async fn authorize(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams(customer_id): PathParams<String>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Json<AuthorizedResponse>, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    let token = presented_token(&state, &tenant, &headers).await?;
    let request_id = RequestId::new_random();
    tracing::Span::current().record("request_id", tracing::field::display(request_id));
    let now = state.clock.now();

    // The token is spent by the first request presenting it, whatever follows (decisions §2),
    // so a body we cannot serve still consumes it.
    let request = body::parse::<AuthorizeRequest>(&bytes);
    let login_id = match request
        .as_ref()
        .map_err(Clone::clone)
        .and_then(cached_login_id)
    {
        Ok(login_id) => login_id,
        Err(problem) => {
            if let Some(digest) = token {
                let used = state
                    .store
                    .consume_token(tenant.customer.id, digest, request_id, now)
                    .await?;
                if used != TokenUse::Consumed {
                    return Err(token_refusal(&state, &tenant, digest, used).await);
                }
            }
            return Err(problem);
        }
    };
    let tag = request.ok().and_then(|r| r.tag);

    let outcome = state
        .store
        .authorize_cached(CachedAuthorize {
            customer_id: tenant.customer.id,
            token,
            login_id,
            request_id,
            now,
            session_expires_at: now + AUTHORIZED_SESSION_LIFETIME,
        })
        .await?;
    match outcome {
        CachedOutcome::TokenRefused(used) => match token {
            Some(digest) => Err(token_refusal(&state, &tenant, digest, used).await),
            None => Err(ApiError::refused(ENDPOINT, &Refusal::AuthorizeTokenInvalid)),
        },
        CachedOutcome::LoginNotFound => Err(ApiError::refused(ENDPOINT, &Refusal::LoginNotFound)),
        CachedOutcome::Opened { login, session } => {
            let institution_id = state
                .bank
                .institution(&login.institution)
                .map_or(0, |i| i.numeric_id);
            tracing::info!("session opened (cached)");
            Ok(Json(AuthorizedResponse {
                links: [
                    Link::to("AccountsDetail", "/GetAccountsDetail"),
                    Link::to("AccountsSummary", "/GetAccountsSummary"),
                    Link::to("Statements", "/GetStatements"),
                ],
                http_status_code: 200,
                institution_name: login.institution.clone(),
                login: LoginBody::from(&login),
                institution_id,
                institution: login.institution.clone(),
                request_id: session.request_id,
                tag,
            }))
        }
    }
}

/// The token this request spends: `None` when the customer does not require tokens and none (or
/// the secret key itself) was sent.
async fn presented_token(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<Digest>, ApiError> {
    let required = tenant.customer.authorize_token_required;
    match header_value(headers, ENDPOINT.credential_header()) {
        None if required => Err(ApiError::refused(
            ENDPOINT,
            &missing_credential(headers, ENDPOINT, Refusal::AuthorizeTokenMissing),
        )),
        None => Ok(None),
        Some(presented) if !required => {
            let (digest, found) = auth::lookup(state, presented, state.clock.now()).await?;
            Ok((!is_current_key(tenant, &found, KeyKind::Secret)).then_some(digest))
        }
        Some(presented) => Ok(Some(Digest::of_presented(presented))),
    }
}

/// Which LoginId a cached-mode body opens, or why the body cannot be served.
fn cached_login_id(request: &AuthorizeRequest) -> Result<LoginId, ApiError> {
    let live_fields =
        request.username.is_some() || request.password.is_some() || request.request_id.is_some();
    match &request.login_id {
        Some(login_id) if request.most_recent_cached == Some(true) && !live_fields => login_id
            .parse()
            .map_err(|_| ApiError::refused(ENDPOINT, &Refusal::LoginNotFound)),
        None if !live_fields => Err(ApiError::invalid_request(
            "login_id_missing",
            "Send {\"LoginId\": \"…\", \"MostRecentCached\": true} to open a saved connection.",
        )),
        _ => Err(ApiError::invalid_request(
            "live_mode_unavailable",
            "This bankgate serves /Authorize in cached mode only so far: send a LoginId with \
             \"MostRecentCached\": true (create one with `bankgate login create`).",
        )),
    }
}

/// Explains why a token was not accepted.
async fn token_refusal(
    state: &AppState,
    tenant: &Tenant,
    digest: Digest,
    used: TokenUse,
) -> ApiError {
    let refusal = match used {
        TokenUse::Used { at } => Refusal::AuthorizeTokenUsed { at },
        TokenUse::Expired { at } => Refusal::AuthorizeTokenExpired { at },
        TokenUse::OtherCustomer {
            instance,
            instance_kind,
        } if instance != tenant.instance.name => match nameable(&instance, instance_kind) {
            Some(named) => Refusal::WrongEnvironment { named: Some(named) },
            None => Refusal::AuthorizeTokenInvalid,
        },
        TokenUse::OtherCustomer { .. } | TokenUse::Consumed => Refusal::AuthorizeTokenInvalid,
        TokenUse::Unknown => {
            // Perhaps a key where the token goes: look it up to say which.
            match state.store.find_credential(digest, state.clock.now()).await {
                Ok(found) => misused_credential(tenant, found, Refusal::AuthorizeTokenInvalid),
                Err(error) => return error.into(),
            }
        }
    };
    ApiError::refused(ENDPOINT, &refusal)
}
