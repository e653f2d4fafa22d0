//! The Flinks API endpoints under `/v3/{customerId}/BankingServices/`.

pub mod accounts;
pub mod authorize;
pub mod delete_card;
pub mod generate_authorize_token;

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use serde::Serialize;

use crate::error::ApiError;

/// Path parameters, whose rejections also leave as the Flinks envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid_request(
            "path_invalid",
            format!("The path could not be read: {rejection}."),
        )
    }
}

/// One entry of a `Links` array.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Link {
    pub rel: &'static str,
    pub href: &'static str,
    pub example: Option<&'static str>,
}

impl Link {
    pub const fn to(rel: &'static str, href: &'static str) -> Self {
        Self {
            rel,
            href,
            example: None,
        }
    }
}
