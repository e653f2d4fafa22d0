//! The bodies /Authorize answers with, in the field order the live service uses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bankgate_core::model::{Login, Session};
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::sandbox::mfa::AskedChallenge;
use bankgate_core::time_format::flinks_datetime;
use bankgate_core::{LoginId, RequestId};
use serde::Serialize;

use crate::api::Link;

/// `Login` in Authorize and data responses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LoginBody {
    pub username: String,
    pub is_scheduled_refresh: bool,
    pub last_refresh: String,
    #[serde(rename = "Type")]
    pub login_type: &'static str,
    #[schema(value_type = String, format = Uuid)]
    pub id: LoginId,
}

impl From<&Login> for LoginBody {
    /// Every answer that names a Login builds it here, so this is where the request journal
    /// learns the LoginId of a successful call.
    fn from(login: &Login) -> Self {
        crate::journal::record_login_id(login.id);
        Self {
            username: login.username.clone(),
            is_scheduled_refresh: login.is_scheduled_refresh,
            last_refresh: flinks_datetime(login.last_refresh),
            login_type: login.login_type.as_str(),
            id: login.id,
        }
    }
}

/// The 200 of an authorized session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizedResponse {
    pub links: [Link; 3],
    pub http_status_code: u16,
    pub institution_name: String,
    pub login: LoginBody,
    pub institution_id: u32,
    pub institution: String,
    #[schema(value_type = String, format = Uuid)]
    pub request_id: RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl AuthorizedResponse {
    pub fn new(bank: &SandboxBank, login: &Login, session: &Session) -> Self {
        Self {
            links: [
                Link::to("AccountsDetail", "/GetAccountsDetail"),
                Link::to("AccountsSummary", "/GetAccountsSummary"),
                Link::to("Statements", "/GetStatements"),
            ],
            http_status_code: 200,
            institution_name: login.institution.clone(),
            login: LoginBody::from(login),
            institution_id: bank.numeric_id(&login.institution),
            institution: login.institution.clone(),
            request_id: session.request_id,
            tag: session.tag.clone(),
        }
    }
}

impl IntoResponse for AuthorizedResponse {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// One MFA challenge of a 203.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityChallenge {
    /// `QuestionAndAnswer`, `MultipleChoice`, `MultipleChoiceMultipleAnswers`, `TextOrCall` or
    /// `ImageSelection`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub prompt: String,
    /// The values to choose from (base64 PNG images for `ImageSelection`); absent for a
    /// free-text question, as in the documented 203.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iterables: Vec<String>,
}

/// The 203: MFA required.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MfaResponse {
    pub links: [Link; 1],
    pub http_status_code: u16,
    pub security_challenges: Vec<SecurityChallenge>,
    pub institution: String,
    #[schema(value_type = String, format = Uuid)]
    pub request_id: RequestId,
}

impl MfaResponse {
    pub fn new(institution: &str, challenges: Vec<AskedChallenge>, request_id: RequestId) -> Self {
        Self {
            links: [Link::to("Authorization", "/Authorize")],
            http_status_code: 203,
            security_challenges: challenges
                .into_iter()
                .map(|c| SecurityChallenge {
                    kind: c.kind.as_str(),
                    prompt: c.prompt,
                    iterables: c.iterables,
                })
                .collect(),
            institution: institution.to_owned(),
            request_id,
        }
    }
}

impl IntoResponse for MfaResponse {
    fn into_response(self) -> Response {
        (StatusCode::NON_AUTHORITATIVE_INFORMATION, Json(self)).into_response()
    }
}
