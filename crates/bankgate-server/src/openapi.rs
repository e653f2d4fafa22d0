//! The OpenAPI 3 documents of the public Flinks API and of the admin API, generated from the
//! handlers' annotations. Served at `/openapi.json` (public port) and `/openapi/public.json`,
//! `/openapi/admin.json` (admin port).

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The /Authorize body as clients send it (keys match in any case; booleans may be strings).
/// Which fields count depends on the mode: `LoginId` + `MostRecentCached` (cached),
/// `Institution` + `Username` + `Password` (live), `LoginId` alone (live refresh), `RequestId` +
/// `SecurityResponses` (an MFA answer).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct AuthorizeBody {
    #[schema(format = Uuid)]
    login_id: Option<String>,
    most_recent_cached: Option<bool>,
    institution: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[schema(format = Uuid)]
    request_id: Option<String>,
    /// Answers keyed by the exact prompt of the 203.
    security_responses: Option<BTreeMap<String, Vec<String>>>,
    save: Option<bool>,
    /// `en` or `fr`.
    #[schema(pattern = "^(en|fr)$")]
    language: Option<String>,
    tag: Option<String>,
}

/// The body of the data endpoints (keys match in any case; booleans may be strings).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct DataBody {
    #[schema(format = Uuid)]
    request_id: Option<String>,
    with_account_identity: Option<bool>,
    /// Also spelled `WithKyc`.
    #[serde(rename = "WithKYC")]
    with_kyc: Option<bool>,
    with_transactions: Option<bool>,
    with_balance: Option<bool>,
    accounts_filter: Option<Vec<String>>,
    /// `Days90`, `Days360` or `Days365`.
    #[schema(pattern = "^(Days90|Days360|Days365)$")]
    days_of_transactions: Option<String>,
    /// GetStatements: `MostRecent`, `Months3` or `Months12`.
    #[schema(pattern = "^(MostRecent|Months3|Months12)$")]
    number_of_statements: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bankgate: the Flinks API",
        description = "The Flinks authorization API as bankgate serves it. Every error is the \
                       Flinks envelope, with bankgate's Reason and Hint.",
    ),
    paths(
        crate::api::generate_authorize_token::generate_authorize_token,
        crate::api::authorize::authorize,
        crate::api::delete_card::delete_card,
        crate::api::accounts::get_accounts_summary,
        crate::api::accounts::get_accounts_detail,
        crate::api::accounts::get_accounts_summary_async,
        crate::api::accounts::get_accounts_detail_async,
        crate::api::accounts::get_statements,
    ),
    components(schemas(AuthorizeBody, DataBody))
)]
struct PublicApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bankgate admin API",
        description = "Operators' and test suites' surface, on the admin listener. /admin/ \
                       routes need `Authorization: Bearer <admin token>`.",
    ),
    paths(
        crate::admin::healthz,
        crate::admin::readyz,
        crate::admin::metrics,
        crate::admin::list_instances,
        crate::admin::create_instance,
        crate::admin::get_instance,
        crate::admin::reset_instance,
        crate::admin::get_clock,
        crate::admin::advance_clock,
        crate::admin::reset_clock,
        crate::admin::list_customers,
        crate::admin::create_customer,
        crate::admin::rotate_keys,
        crate::admin::create_login,
        crate::admin::get_login,
        crate::admin::delete_login,
        crate::admin::inspect_token,
    ),
    modifiers(&AdminToken),
)]
struct AdminApi;

/// Declares the bearer scheme the `/admin/` routes use.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn public_openapi() -> utoipa::openapi::OpenApi {
    PublicApi::openapi()
}

pub fn admin_openapi() -> utoipa::openapi::OpenApi {
    AdminApi::openapi()
}

pub async fn public_json() -> Response {
    Json(public_openapi()).into_response()
}

pub async fn admin_json() -> Response {
    Json(admin_openapi()).into_response()
}
