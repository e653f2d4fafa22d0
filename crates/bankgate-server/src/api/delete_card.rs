//! `DELETE /v3/{customerId}/BankingServices/DeleteCard/{loginId}`: forgets a LoginId and ends
//! its sessions. Authenticated by `x-api-key`.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bankgate_core::Refusal;
use bankgate_core::model::{KeyKind, Tenant};
use serde::Serialize;

use super::PathParams;
use crate::auth::{
    self, credential_in_header, is_current_key, missing_credential, misused_credential,
};
use crate::body::{AnyObject, FlinksJson};
use crate::error::{ApiError, Endpoint};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::DeleteCard;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteCardResponse {
    pub http_status_code: u16,
    pub message: String,
}

/// Checks the x-api-key (or, for customers that do not require one, accepts none or the secret
/// key in `flinks-auth-key`).
pub async fn require_api_key(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    query: Option<&str>,
    endpoint: Endpoint,
) -> Result<(), ApiError> {
    let optional = !tenant.customer.api_key_required;
    let refuse = |refusal: Refusal| ApiError::refused(endpoint, &refusal);
    let secret_header = Endpoint::GenerateAuthorizeToken.credential_header();
    let (presented, wanted) = match credential_in_header(headers, endpoint.credential_header()) {
        Ok(Some(api_key)) => (api_key, KeyKind::Api),
        Err(malformed) => return Err(refuse(malformed)),
        Ok(None) if optional => match credential_in_header(headers, secret_header) {
            Ok(Some(secret)) => (secret, KeyKind::Secret),
            Ok(None) => return Ok(()),
            Err(malformed) => return Err(refuse(malformed)),
        },
        Ok(None) => {
            let refusal = missing_credential(
                state,
                tenant,
                headers,
                query,
                endpoint,
                Refusal::ApiKeyMissing,
            )
            .await?;
            return Err(refuse(refusal));
        }
    };
    let (_, found) =
        auth::lookup(state, presented, tenant.instance.now(state.clock.as_ref())).await?;
    if is_current_key(tenant, &found, wanted) {
        Ok(())
    } else {
        let refusal = misused_credential(tenant, found, Refusal::ApiKeyInvalid);
        Err(ApiError::refused(endpoint, &refusal))
    }
}

/// Forgets a LoginId and ends its RequestIds.
#[utoipa::path(
    delete,
    path = Endpoint::DeleteCard.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("loginId" = String, Path, description = "The LoginId to forget"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    responses((status = 200, description = "Removed", body = DeleteCardResponse), crate::error::ErrorResponses),
)]
pub async fn delete_card(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams((customer_id, login_id)): PathParams<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(_): FlinksJson<AnyObject>,
) -> Result<Json<DeleteCardResponse>, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    require_api_key(&state, &tenant, &headers, uri.query(), ENDPOINT).await?;
    let login_id = auth::path_login_id(ENDPOINT, &login_id)?;
    if !state
        .store
        .delete_login(tenant.customer.id, login_id)
        .await?
    {
        let refusal = auth::login_not_found(&state, &tenant, login_id).await;
        return Err(ApiError::refused(ENDPOINT, &refusal));
    }
    tracing::info!("LoginId deleted");
    Ok(Json(DeleteCardResponse {
        http_status_code: 200,
        message: format!("All of the information about LoginId {login_id} has been removed"),
    }))
}
