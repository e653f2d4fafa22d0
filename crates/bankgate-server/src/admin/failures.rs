//! Forced failures and endpoint faults of sandbox instances (docs/flinks-wire.md, "Forced
//! failures"), through the admin API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bankgate_core::forced::{FailureCode, ForcedAction, ForcedRule};
use bankgate_core::{CustomerId, LoginId};
use serde::{Deserialize, Serialize};

use super::{AdminState, Body, customer_id, instance_name, login_id};
use crate::body::PathParams;
use crate::error::{ApiError, Reason};
use crate::operator::{FailureFor, FaultKind, ForcedError, NewFailure, describe_forced};

/// A forced failure or fault rule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForcedRuleView {
    pub id: String,
    pub instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_id: Option<String>,
    /// Lowercase: usernames match ignoring case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `RETRY_LATER`, `DISABLED_LOGIN`, `INVALID_LOGIN`, `MFA`, `AGGREGATION_ERROR`,
    /// `OPERATION_PENDING` (failure rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flinks_code: Option<String>,
    /// The 5xx a fault answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long a fault stalls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_seconds: Option<u64>,
    /// How long a forced 202 lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// What it does, in words.
    pub action: String,
    /// Calls it still answers.
    pub remaining: u64,
    /// The end of a forced 202 in progress (RFC 3339, the instance's clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_until: Option<String>,
    pub created_at: String,
}

impl From<&ForcedRule> for ForcedRuleView {
    fn from(rule: &ForcedRule) -> Self {
        let (customer, login, username, endpoint) = rule.target.parts();
        let (mut flinks_code, mut status, mut stall, mut seconds) = (None, None, None, None);
        match rule.action {
            ForcedAction::Status(code) => status = Some(code),
            ForcedAction::Stall(period) => stall = Some(period.as_secs()),
            ForcedAction::Pending(period) => {
                seconds = Some(period.as_secs());
                flinks_code = Some(FailureCode::OperationPending.as_str().to_owned());
            }
            other => flinks_code = Some(other.stored().0.to_owned()),
        }
        Self {
            id: rule.id.clone(),
            instance: rule.instance.to_string(),
            customer_id: customer.map(|c| c.to_string()),
            login_id: login.map(|l| l.to_string()),
            username: username.map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
            flinks_code,
            status,
            stall_seconds: stall,
            seconds,
            action: describe_forced(rule.action),
            remaining: rule.remaining,
            active_until: rule.active_until.map(|at| at.to_rfc3339()),
            created_at: rule.created_at.to_rfc3339(),
        }
    }
}

/// How many rules a DELETE removed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClearedView {
    pub cleared: u64,
}

impl From<ForcedError> for ApiError {
    fn from(error: ForcedError) -> Self {
        match error {
            ForcedError::Production { instance } => ApiError::invalid_request(
                Reason::ForcedFailureOnProduction,
                format!(
                    "{instance} is a production instance, which behaves as Flinks does: forced \
                     failures and faults are for sandbox instances only (make one with POST \
                     /admin/instances and kind sandbox)."
                ),
            ),
            ForcedError::Domain(error) => error.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewLoginFailure {
    /// `RETRY_LATER`, `DISABLED_LOGIN`, `INVALID_LOGIN` (password changed), `MFA` (a new
    /// security question), `AGGREGATION_ERROR` or `OPERATION_PENDING` (a 202 for `seconds`).
    #[schema(schema_with = failure_codes)]
    flinks_code: String,
    /// How many calls it answers (default 1, at most 1000).
    #[schema(minimum = 1, maximum = 1000)]
    count: Option<i64>,
    /// `OPERATION_PENDING` only: how long the 202 lasts, on the instance's clock.
    #[schema(minimum = 1, maximum = 86400)]
    seconds: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUserFailure {
    /// A sandbox user (`Greatday`, `greatday_nomfa`, …), any case.
    #[schema(schema_with = sandbox_users)]
    username: String,
    /// As for a LoginId.
    #[schema(schema_with = failure_codes)]
    flinks_code: String,
    #[schema(minimum = 1, maximum = 1000)]
    count: Option<i64>,
    #[schema(minimum = 1, maximum = 86400)]
    seconds: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewFault {
    /// An endpoint name (`GetAccountsDetail`, `Authorize`, …).
    #[schema(schema_with = endpoints)]
    endpoint: String,
    /// 500, 502, 503 or 504 (give this or `stallSeconds`).
    #[schema(schema_with = fault_statuses)]
    status: Option<u16>,
    /// Wait this long (1 to 60 s), then answer as usual.
    #[schema(minimum = 1, maximum = 60)]
    stall_seconds: Option<u64>,
    #[schema(minimum = 1, maximum = 1000)]
    count: Option<i64>,
}

/// A schema with these values (the handlers also take any case, and explain a value that is
/// none of them).
fn one_of<V: Into<serde_json::Value>>(
    kind: utoipa::openapi::schema::Type,
    values: impl IntoIterator<Item = V>,
) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(values))
        .build()
}

fn failure_codes() -> utoipa::openapi::schema::Object {
    one_of(
        utoipa::openapi::schema::Type::String,
        FailureCode::ALL.iter().map(|code| code.as_str()),
    )
}

fn sandbox_users() -> utoipa::openapi::schema::Object {
    let bank = bankgate_core::sandbox::SandboxBank::builtin();
    let users: Vec<&'static str> = bank
        .institutions()
        .iter()
        .flat_map(|institution| institution.users.iter().map(|user| user.username))
        .collect();
    one_of(utoipa::openapi::schema::Type::String, users)
}

fn endpoints() -> utoipa::openapi::schema::Object {
    one_of(
        utoipa::openapi::schema::Type::String,
        crate::endpoint::Endpoint::ALL.iter().map(|e| e.name()),
    )
}

fn fault_statuses() -> utoipa::openapi::schema::Object {
    one_of(
        utoipa::openapi::schema::Type::Integer,
        crate::operator::FAULT_STATUSES,
    )
}

fn failure(code: &str, count: Option<i64>, seconds: Option<u64>) -> Result<NewFailure, ApiError> {
    let code = code
        .parse::<FailureCode>()
        .map_err(|error| ApiError::invalid_request(Reason::InvalidInput, error))?;
    Ok(NewFailure {
        code,
        count: count.unwrap_or(1),
        seconds,
    })
}

/// Sandbox only: the next `count` /Authorize calls of this LoginId (cached, or a live refresh)
/// answer the failure.
#[utoipa::path(post, path = "/admin/customers/{customerId}/logins/{loginId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)"), ("loginId" = String, Path, description = "The LoginId")),
    request_body = NewLoginFailure,
    responses((status = 201, body = ForcedRuleView), crate::error::ErrorResponses))]
pub(crate) async fn add_login_failure(
    State(state): State<AdminState>,
    PathParams((customer, login)): PathParams<(String, String)>,
    Body(request): Body<NewLoginFailure>,
) -> Result<(StatusCode, Json<ForcedRuleView>), ApiError> {
    let (customer, login) = (customer_id(&customer)?, login_id(&login)?);
    let failure = failure(&request.flinks_code, request.count, request.seconds)?;
    let rule = state
        .operator
        .add_failure(customer, FailureFor::Login(login), failure)
        .await?;
    Ok((StatusCode::CREATED, Json(ForcedRuleView::from(&rule))))
}

/// The failure rules of a LoginId.
#[utoipa::path(get, path = "/admin/customers/{customerId}/logins/{loginId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)"), ("loginId" = String, Path, description = "The LoginId")),
    responses((status = 200, body = Vec<ForcedRuleView>), crate::error::ErrorResponses))]
pub(crate) async fn list_login_failures(
    State(state): State<AdminState>,
    PathParams((customer, login)): PathParams<(String, String)>,
) -> Result<Json<Vec<ForcedRuleView>>, ApiError> {
    let (customer, login) = (customer_id(&customer)?, login_id(&login)?);
    list(&state, customer, Some(login)).await
}

/// Clears the failure rules of a LoginId.
#[utoipa::path(delete, path = "/admin/customers/{customerId}/logins/{loginId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)"), ("loginId" = String, Path, description = "The LoginId")),
    responses((status = 200, body = ClearedView), crate::error::ErrorResponses))]
pub(crate) async fn clear_login_failures(
    State(state): State<AdminState>,
    PathParams((customer, login)): PathParams<(String, String)>,
) -> Result<Json<ClearedView>, ApiError> {
    let (customer, login) = (customer_id(&customer)?, login_id(&login)?);
    let cleared = state.operator.clear_failures(customer, Some(login)).await?;
    Ok(Json(ClearedView { cleared }))
}

/// Sandbox only: the next `count` /Authorize calls of every LoginId of this sandbox user, and
/// of live connections with this username, answer the failure.
#[utoipa::path(post, path = "/admin/customers/{customerId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)")),
    request_body = NewUserFailure,
    responses((status = 201, body = ForcedRuleView), crate::error::ErrorResponses))]
pub(crate) async fn add_user_failure(
    State(state): State<AdminState>,
    PathParams(customer): PathParams<String>,
    Body(request): Body<NewUserFailure>,
) -> Result<(StatusCode, Json<ForcedRuleView>), ApiError> {
    let customer = customer_id(&customer)?;
    let failure = failure(&request.flinks_code, request.count, request.seconds)?;
    let rule = state
        .operator
        .add_failure(customer, FailureFor::Username(request.username), failure)
        .await?;
    Ok((StatusCode::CREATED, Json(ForcedRuleView::from(&rule))))
}

/// Every failure rule of a customer (its LoginIds' and its users').
#[utoipa::path(get, path = "/admin/customers/{customerId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)")),
    responses((status = 200, body = Vec<ForcedRuleView>), crate::error::ErrorResponses))]
pub(crate) async fn list_customer_failures(
    State(state): State<AdminState>,
    PathParams(customer): PathParams<String>,
) -> Result<Json<Vec<ForcedRuleView>>, ApiError> {
    list(&state, customer_id(&customer)?, None).await
}

/// Clears every failure rule of a customer.
#[utoipa::path(delete, path = "/admin/customers/{customerId}/failures", tag = "forced failures", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)")),
    responses((status = 200, body = ClearedView), crate::error::ErrorResponses))]
pub(crate) async fn clear_customer_failures(
    State(state): State<AdminState>,
    PathParams(customer): PathParams<String>,
) -> Result<Json<ClearedView>, ApiError> {
    let cleared = state
        .operator
        .clear_failures(customer_id(&customer)?, None)
        .await?;
    Ok(Json(ClearedView { cleared }))
}

async fn list(
    state: &AdminState,
    customer: CustomerId,
    login: Option<LoginId>,
) -> Result<Json<Vec<ForcedRuleView>>, ApiError> {
    let rules = state.operator.failures(customer, login).await?;
    Ok(Json(rules.iter().map(ForcedRuleView::from).collect()))
}

/// Sandbox only: the next `count` calls of an endpoint answer a 5xx, or wait before answering.
#[utoipa::path(post, path = "/admin/instances/{name}/faults", tag = "forced failures", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The instance")),
    request_body = NewFault,
    responses((status = 201, body = ForcedRuleView), crate::error::ErrorResponses))]
pub(crate) async fn add_fault(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
    Body(request): Body<NewFault>,
) -> Result<(StatusCode, Json<ForcedRuleView>), ApiError> {
    let name = instance_name(&name)?;
    let kind = match (request.status, request.stall_seconds) {
        (Some(status), None) => FaultKind::Status(status),
        (None, Some(secs)) => FaultKind::StallSeconds(secs),
        _ => {
            return Err(ApiError::invalid_request(
                Reason::InvalidInput,
                "A fault takes either `status` (500, 502, 503 or 504) or `stallSeconds` (1 to \
                 60), not both and not neither.",
            ));
        }
    };
    let rule = state
        .operator
        .add_fault(&name, &request.endpoint, kind, request.count.unwrap_or(1))
        .await?;
    Ok((StatusCode::CREATED, Json(ForcedRuleView::from(&rule))))
}

/// The endpoint faults of an instance.
#[utoipa::path(get, path = "/admin/instances/{name}/faults", tag = "forced failures", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = Vec<ForcedRuleView>), crate::error::ErrorResponses))]
pub(crate) async fn list_faults(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Vec<ForcedRuleView>>, ApiError> {
    let rules = state.operator.faults(&instance_name(&name)?).await?;
    Ok(Json(rules.iter().map(ForcedRuleView::from).collect()))
}

/// Clears the endpoint faults of an instance.
#[utoipa::path(delete, path = "/admin/instances/{name}/faults", tag = "forced failures", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = ClearedView), crate::error::ErrorResponses))]
pub(crate) async fn clear_faults(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ClearedView>, ApiError> {
    let cleared = state.operator.clear_faults(&instance_name(&name)?).await?;
    Ok(Json(ClearedView { cleared }))
}
