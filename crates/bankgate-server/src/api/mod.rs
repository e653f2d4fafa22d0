//! The Flinks API endpoints under `/v3/{customerId}/BankingServices/`.

pub mod accounts;
pub mod authorize;
pub mod authorize_async;
pub mod delete_card;
pub mod enhanced_mfa;
pub mod faults;
pub mod generate_authorize_token;
pub mod nightly;

use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The Flinks endpoints: each registration routes the handler on the path and methods its
/// `#[utoipa::path]` documents, and adds that documentation to the router's OpenAPI document.
/// A new endpoint is one line here, its handler, and its `Endpoint` entry.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate_authorize_token::generate_authorize_token))
        .routes(routes!(authorize::authorize))
        .routes(routes!(authorize_async::authorize_async))
        .routes(routes!(delete_card::delete_card))
        .routes(routes!(accounts::get_accounts_summary))
        .routes(routes!(accounts::get_accounts_summary_async))
        .routes(routes!(accounts::get_accounts_detail))
        .routes(routes!(accounts::get_accounts_detail_async))
        .routes(routes!(accounts::get_statements))
        .routes(routes!(accounts::get_statements_async))
        .routes(routes!(nightly::set_scheduled_refresh))
        .routes(routes!(nightly::get_nightly_refresh_status))
        .routes(routes!(enhanced_mfa::get_mfa_questions))
        .routes(routes!(enhanced_mfa::answer_mfa_questions))
}

pub use crate::body::PathParams;

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
