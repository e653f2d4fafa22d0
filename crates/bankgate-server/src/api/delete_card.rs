//! `DELETE /v3/{customerId}/BankingServices/DeleteCard/{loginId}`: forgets a LoginId and ends
//! its sessions. Authenticated by `x-api-key`.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use bankgate_core::model::{KeyKind, Tenant};
use bankgate_core::{LoginId, Refusal};
use serde::Serialize;

use super::PathParams;
use crate::auth::{self, header_value, is_current_key, missing_credential, misused_credential};
use crate::body::{AnyObject, FlinksJson};
use crate::error::{ApiError, Endpoint};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::DeleteCard;

#[derive(Debug, Serialize)]
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
    endpoint: Endpoint,
) -> Result<(), ApiError> {
    let refuse = |refusal: Refusal| ApiError::refused(endpoint, &refusal);
    let now = state.clock.now();
    match header_value(headers, "x-api-key") {
        Some(presented) => {
            let (_, found) = auth::lookup(state, presented, now).await?;
            if is_current_key(tenant, &found, KeyKind::Api) {
                Ok(())
            } else {
                Err(refuse(misused_credential(
                    tenant,
                    found,
                    Refusal::ApiKeyInvalid,
                )))
            }
        }
        None if !tenant.customer.api_key_required => match header_value(headers, "flinks-auth-key")
        {
            None => Ok(()),
            Some(presented) => {
                let (_, found) = auth::lookup(state, presented, now).await?;
                if is_current_key(tenant, &found, KeyKind::Secret) {
                    Ok(())
                } else {
                    Err(refuse(misused_credential(
                        tenant,
                        found,
                        Refusal::ApiKeyInvalid,
                    )))
                }
            }
        },
        None => Err(refuse(missing_credential(
            headers,
            endpoint,
            Refusal::ApiKeyMissing,
        ))),
    }
}

pub async fn delete_card(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams((customer_id, login_id)): PathParams<(String, String)>,
    headers: HeaderMap,
    FlinksJson(_): FlinksJson<AnyObject>,
) -> Result<Json<DeleteCardResponse>, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    require_api_key(&state, &tenant, &headers, ENDPOINT).await?;
    let not_found = || ApiError::refused(ENDPOINT, &Refusal::LoginNotFound);
    let login_id: LoginId = login_id.parse().map_err(|_| not_found())?;
    if !state
        .store
        .delete_login(tenant.customer.id, login_id)
        .await?
    {
        return Err(not_found());
    }
    tracing::info!("LoginId deleted");
    Ok(Json(DeleteCardResponse {
        http_status_code: 200,
        message: format!("All of the information about LoginId {login_id} has been removed"),
    }))
}
