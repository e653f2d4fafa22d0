//! `POST /v3/{customerId}/BankingServices/GenerateAuthorizeToken`: the secret key in
//! `flinks-auth-key` buys one single-use authorize token.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bankgate_core::model::{InstanceKind, KeyKind};
use bankgate_core::{AuthorizeToken, Refusal};
use bankgate_store::NewToken;
use serde::Serialize;

use super::PathParams;
use crate::auth::{
    self, ClientAddr, credential_in_header, is_current_key, missing_credential, misused_credential,
};
use crate::body::{AnyObject, FlinksJson};
use crate::error::{ApiError, Endpoint};
use crate::guard::{Attempt, Target};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::GenerateAuthorizeToken;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TokenResponse {
    pub http_status_code: u16,
    pub token: String,
}

/// Mints a single-use authorize token (30 minutes unless the instance says otherwise).
#[utoipa::path(
    post,
    path = Endpoint::GenerateAuthorizeToken.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("flinks-auth-key" = Option<String>, Header, description = "The customer's secret key")),
    responses((status = 200, description = "A new token", body = TokenResponse), crate::error::ErrorResponses),
)]
pub async fn generate_authorize_token(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    client: ClientAddr,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(_): FlinksJson<AnyObject>,
) -> Result<Json<TokenResponse>, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    let refuse = |refusal: Refusal| ApiError::refused(ENDPOINT, &refusal);
    let attempt = Attempt {
        customer_id: tenant.customer.id,
        client: client.0,
        target: Target::SecretKey,
        sandbox: tenant.instance.kind == InstanceKind::Sandbox,
    };
    let checked = state.limiter.check(&attempt).await?;
    let presented = match credential_in_header(&headers, ENDPOINT.credential_header()) {
        Ok(Some(presented)) => presented,
        Ok(None) => {
            let refusal = missing_credential(
                &state,
                &tenant,
                &headers,
                uri.query(),
                ENDPOINT,
                Refusal::AuthKeyMissing,
            )
            .await?;
            // A misplaced value was looked up: count it like any other guess, unless the answer
            // tells nothing about it (any value under the wrong header answers the same) or it
            // is this customer's own credential.
            let uncounted = matches!(
                refusal,
                Refusal::AuthKeyMissing
                    | Refusal::WrongAuthHeader { .. }
                    | Refusal::CredentialInQuery { .. }
                    | Refusal::TokenGivenAsAuthKey
                    | Refusal::ApiKeyGivenAsAuthKey
            );
            if !uncounted {
                state.limiter.failed(&attempt, checked).await?;
            }
            return Err(refuse(refusal));
        }
        // Not counted: a value of the wrong shape is never looked up, so it tells a guesser
        // nothing, and testers send them on purpose (the README's refusal table).
        Err(malformed) => return Err(refuse(malformed)),
    };
    let now = tenant.instance.now(state.clock.as_ref());
    let (_, found) = auth::lookup(&state, presented, now).await?;
    if !is_current_key(&tenant, &found, KeyKind::Secret) {
        // This customer's own x-api-key, token or retired key in the wrong place is a mix-up
        // by someone who holds it, not a guess: not counted.
        if !holds_own_credential(&tenant, &found) {
            state.limiter.failed(&attempt, checked).await?;
        }
        return Err(refuse(misused_credential(
            &tenant,
            found,
            Refusal::AuthKeyInvalid,
        )));
    }
    state.limiter.succeeded(&attempt, checked).await?;

    let token = AuthorizeToken::generate();
    state
        .store
        .issue_token(NewToken {
            digest: token.digest(),
            customer_id: tenant.customer.id,
            issued_at: now,
            expires_at: now + tenant.instance.token_lifetime,
        })
        .await?;
    Ok(Json(TokenResponse {
        http_status_code: 200,
        token: token.expose().to_owned(),
    }))
}

/// Whether a presented value is a credential of this very customer (of any kind).
fn holds_own_credential(
    tenant: &bankgate_core::model::Tenant,
    found: &Option<bankgate_store::CredentialMatch>,
) -> bool {
    use bankgate_store::CredentialMatch;
    matches!(
        found,
        Some(CredentialMatch::Key { customer_id, .. } | CredentialMatch::Token { customer_id, .. })
            if *customer_id == tenant.customer.id
    )
}
