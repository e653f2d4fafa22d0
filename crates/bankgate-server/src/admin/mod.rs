//! The admin API: what operators and test suites drive, on its own listener (never the public
//! port). Everything under `/admin/` needs the admin token set at start; health, readiness and
//! metrics do not (probes and scrapers carry no secrets, and those answers hold none).

pub mod failures;
mod requests;
pub mod views;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bankgate_core::model::InstanceKind;
use bankgate_core::{Clock, CustomerId, DomainError, InstanceName, LoginId, Timestamp};
use bankgate_store::ClockChange;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::ClientAddr;
use crate::body::PathParams;
use crate::error::{ApiError, FlinksCode, Reason};
use crate::operator::{NewCustomer, Operator};
use crate::state::AppState;
use views::{
    ClearedLockoutsView, ClockView, CreatedCustomerView, CustomerView, DeliveryView, InstanceView,
    LockoutView, LoginView, ResetView, RotatedKeysView, TokenView, WebhookView,
};

/// The SHA-256 of the admin token: the token itself is not kept in memory after start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// What the admin handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    app: AppState,
    operator: Operator,
}

impl AdminState {
    pub fn new(app: AppState) -> Self {
        Self {
            operator: app.operator(),
            app,
        }
    }
}

/// The admin token bankgate was started with (`None`: the admin API is off) and the wrong
/// tokens seen so far, as a request extension the token check reads.
#[derive(Debug, Clone)]
pub struct AdminTokenSetting {
    pub token: Option<AdminToken>,
    pub failures: Arc<AdminFailures>,
}

impl AdminTokenSetting {
    pub fn new(token: Option<AdminToken>, clock: Arc<dyn Clock>) -> Self {
        Self {
            token,
            failures: Arc::new(AdminFailures::new(clock)),
        }
    }
}

/// Wrong admin tokens one client address may send within [`ADMIN_FAILURE_WINDOW`] before it
/// is refused (429) for [`ADMIN_LOCKOUT`], whatever it sends.
pub const ADMIN_MAX_FAILURES: u32 = 10;
pub const ADMIN_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
pub const ADMIN_LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Addresses remembered at most; past it, the ones with no recent failure are forgotten.
const ADMIN_TRACKED_CLIENTS: usize = 10_000;

/// Wrong admin tokens per client address, in memory on this node (the admin API is per node).
/// Only the address that guessed is refused: the operator's own calls from elsewhere go on.
pub struct AdminFailures {
    clock: Arc<dyn Clock>,
    clients: Mutex<HashMap<Option<IpAddr>, ClientFailures>>,
}

#[derive(Debug, Clone, Copy)]
struct ClientFailures {
    count: u32,
    window_start: Timestamp,
    locked_until: Option<Timestamp>,
}

impl std::fmt::Debug for AdminFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminFailures").finish_non_exhaustive()
    }
}

impl AdminFailures {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, ClientFailures>> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(retry_after)` while `client` is locked out.
    fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.clock.now();
        match self
            .clients()
            .get(&client.map(network))
            .and_then(|f| f.locked_until)
        {
            Some(until) if until > now => Err(seconds_until(until, now)),
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `client`; `Err(retry_after)` when this one locks it out.
    fn failed(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut clients = self.clients();
        if clients.len() >= ADMIN_TRACKED_CLIENTS {
            let locked = |f: &ClientFailures| f.locked_until.is_some_and(|until| until > now);
            clients.retain(|_, f| f.window_start + ADMIN_FAILURE_WINDOW > now || locked(f));
            // Guesses from very many addresses: keep only the locks, so the table (and this
            // pass) stays small.
            if clients.len() >= ADMIN_TRACKED_CLIENTS / 2 {
                clients.retain(|_, f| locked(f));
            }
        }
        let failures = clients
            .entry(client.map(network))
            .or_insert(ClientFailures {
                count: 0,
                window_start: now,
                locked_until: None,
            });
        if failures.window_start + ADMIN_FAILURE_WINDOW <= now {
            *failures = ClientFailures {
                count: 0,
                window_start: now,
                locked_until: None,
            };
        }
        failures.count += 1;
        if failures.count >= ADMIN_MAX_FAILURES {
            let until = now + ADMIN_LOCKOUT;
            failures.locked_until = Some(until);
            return Err(seconds_until(until, now));
        }
        Ok(())
    }
}

/// The unit an address is counted in: an IPv4 address, or an IPv6 /64 (one host usually holds
/// a whole /64, so counting single IPv6 addresses would not limit it).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// Whole seconds, rounded up (a client honouring `Retry-After` never comes back early).
fn seconds_until(until: Timestamp, now: Timestamp) -> Duration {
    let micros = u64::try_from(until.as_micros().saturating_sub(now.as_micros())).unwrap_or(0);
    Duration::from_secs(micros.div_ceil(1_000_000).max(1))
}

/// The admin listener's documented routes: each registration routes the handler on the path and
/// methods its `#[utoipa::path]` documents and adds it to the document. `/admin/` routes check
/// the token (an [`AdminTokenSetting`] extension layered on by whoever serves them).
pub fn routes() -> OpenApiRouter<AdminState> {
    let guarded = OpenApiRouter::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(get_instance))
        .routes(routes!(reset_instance))
        .routes(routes!(get_clock))
        .routes(routes!(advance_clock))
        .routes(routes!(reset_clock))
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(rotate_keys))
        .routes(routes!(create_login))
        .routes(routes!(get_login, delete_login))
        .routes(routes!(inspect_token))
        .routes(routes!(requests::list_requests))
        .routes(routes!(list_lockouts, clear_lockouts))
        .routes(routes!(
            failures::add_login_failure,
            failures::list_login_failures,
            failures::clear_login_failures
        ))
        .routes(routes!(
            failures::add_user_failure,
            failures::list_customer_failures,
            failures::clear_customer_failures
        ))
        .routes(routes!(
            failures::add_fault,
            failures::list_faults,
            failures::clear_faults
        ))
        .routes(routes!(get_webhook, set_webhook, disable_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
        .route_layer(axum::middleware::from_fn(require_token));
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .merge(guarded)
}

async fn require_token(
    Extension(setting): Extension<AdminTokenSetting>,
    client: ClientAddr,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = setting.token else {
        return refuse(
            Reason::AdminDisabled,
            "The admin API is off: start bankgate with --admin-token (or BANKGATE_ADMIN_TOKEN, \
             or --admin-token-file).",
        );
    };
    // A locked-out address is refused before its token is looked at: guessing goes no further.
    if let Err(retry_after) = setting.failures.check(client.0) {
        return locked_out(retry_after);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        None => refuse(
            Reason::AdminTokenMissing,
            "Send the admin token as `Authorization: Bearer <token>`.",
        ),
        // Compared as digests: how long the comparison takes says nothing about the token.
        Some(token) if AdminToken::new(token) == expected => next.run(request).await,
        Some(_) => match setting.failures.failed(client.0) {
            Ok(()) => refuse(
                Reason::AdminTokenInvalid,
                "This is not the admin token bankgate was started with.",
            ),
            Err(retry_after) => locked_out(retry_after),
        },
    }
}

/// 429 with `Retry-After`: this address sent too many wrong admin tokens.
fn locked_out(retry_after: Duration) -> Response {
    let secs = retry_after.as_secs();
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        FlinksCode::TooManyRequests,
        "Too many requests, retry later",
        Reason::AdminLockedOut,
        format!(
            "{ADMIN_MAX_FAILURES} wrong admin tokens came from this address within {} minutes; \
             it is refused for {secs} more seconds. Other addresses are not affected; \
             restarting bankgate also clears it.",
            ADMIN_FAILURE_WINDOW.as_secs() / 60
        ),
    );
    error.retry_after_secs = Some(secs);
    error.into_response()
}

fn refuse(reason: Reason, hint: &'static str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        FlinksCode::Unauthorized,
        "You must provide a valid admin token",
        reason,
        hint,
    )
    .into_response()
}

/// No admin route has this path.
pub async fn admin_not_found() -> ApiError {
    ApiError::not_found(
        Reason::AdminRouteUnknown,
        "Admin routes: /healthz, /readyz, /metrics, /admin/instances, /admin/customers, \
         /admin/tokens/inspect, /admin/requests, /admin/lockouts (see /openapi/admin.json).",
    )
}

/// JSON bodies of the admin API; a bad body is a 400 envelope whose hint names the field.
#[derive(Debug)]
pub(crate) struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|_| {
            ApiError::invalid_request(
                Reason::BodyUnreadable,
                "The request body could not be read.",
            )
        })?;
        body_of(&bytes).map(Body)
    }
}

/// Parses an admin body, explaining a refusal in words (the field, and what it must be).
fn body_of<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde reads a struct from an array too (by position): say plainly it must be an object.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && !value.is_object()
    {
        let found = match value {
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(ApiError::invalid_request(
            Reason::BodyInvalid,
            format!("The body must be a JSON object, not {found}."),
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader)
        .map_err(|error| ApiError::invalid_request(Reason::BodyInvalid, body_hint(&error)))?;
    reader.end().map_err(|error| {
        ApiError::invalid_request(
            Reason::BodyInvalid,
            format!(
                "The body goes on after its JSON object (line {}, column {}); send one object.",
                error.line(),
                error.column()
            ),
        )
    })?;
    Ok(value)
}

fn body_hint(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = error.inner();
    if inner.is_eof() && inner.line() == 1 && inner.column() == 0 {
        return "This route takes a JSON object body (see /openapi/admin.json).".to_owned();
    }
    if inner.is_syntax() || inner.is_eof() {
        return format!(
            "The body is not valid JSON (line {}, column {}); send a JSON object.",
            inner.line(),
            inner.column()
        );
    }
    // serde's own sentence, without its position: "missing field `name`",
    // "invalid type: string \"x\", expected u64", "unknown variant `x`, expected ...".
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or_default();
    let field = error.path().to_string();
    if let Some(missing) = text.strip_prefix("missing field ") {
        return format!("The body needs the field {missing}.");
    }
    if let Some(rest) = text.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let known = expected.trim_start_matches("one of ");
        return format!("{name} is not a field of this body; its fields are {known}.");
    }
    let expected = text
        .rsplit_once("expected ")
        .map_or(text, |(_, expected)| expected);
    let wanted = match expected {
        "u64" | "u32" | "u16" | "u8" | "usize" => "a whole number, 0 or more",
        "a boolean" => "true or false",
        "a string" => "a string",
        other => other,
    };
    format!("The field `{field}` must be {wanted}.")
}

fn instance_name(name: &str) -> Result<InstanceName, ApiError> {
    name.parse::<InstanceName>()
        .map_err(|error| ApiError::invalid_request(Reason::InstanceNameInvalid, error.to_string()))
}

fn customer_id(id: &str) -> Result<CustomerId, ApiError> {
    id.parse::<CustomerId>().map_err(|_| {
        ApiError::invalid_request(
            Reason::CustomerIdInvalid,
            format!("{id:?} is not a customerId (a UUID)."),
        )
    })
}

fn login_id(id: &str) -> Result<LoginId, ApiError> {
    id.parse::<LoginId>().map_err(|_| {
        ApiError::invalid_request(
            Reason::LoginIdInvalid,
            format!("{id:?} is not a LoginId (a UUID)."),
        )
    })
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health::new("ok", None))
}

/// An instance's kind, as the admin API reads it (and documents it: the core's `InstanceKind`
/// knows nothing of OpenAPI).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Sandbox,
    Production,
}

impl From<Kind> for InstanceKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Sandbox => Self::Sandbox,
            Kind::Production => Self::Production,
        }
    }
}

/// What the probes answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reason: Option<Reason>,
}

impl Health {
    fn new(status: &'static str, reason: Option<Reason>) -> Self {
        Self { status, reason }
    }
}

/// Ready when the database answers; a load balancer stops sending traffic otherwise.
/// Readiness: 503 while the database does not answer.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, description = "Ready", body = Health),
              (status = 503, description = "The database does not answer", body = Health)))]
pub(crate) async fn readyz(State(state): State<AdminState>) -> Response {
    match state.app.store.ping().await {
        Ok(()) => Json(Health::new("ready", None)).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health::new("unavailable", Some(Reason::StoreUnavailable))),
            )
                .into_response()
        }
    }
}

/// Readiness while the node waits for its database at start (the same route, before the
/// application exists): 503 until the database is open, migrated and seeded.
pub(crate) async fn readyz_starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health::new("unavailable", Some(Reason::StoreUnavailable))),
    )
        .into_response()
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "The metrics", body = String,
               content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.render(),
    )
        .into_response()
}

/// Every instance.
#[utoipa::path(get, path = "/admin/instances", tag = "instances", security(("admin_token" = [])),
    responses((status = 200, body = Vec<InstanceView>), crate::error::ErrorResponses))]
pub(crate) async fn list_instances(
    State(state): State<AdminState>,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
    let instances = state.operator.list_instances().await?;
    Ok(Json(instances.iter().map(InstanceView::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateInstance {
    /// A DNS label (the first label of its hosts), not ending in `-api` or `-iframe`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    name: String,
    kind: Kind,
    #[schema(minimum = 1)]
    token_lifetime_seconds: Option<u64>,
}

/// Creates an instance.
#[utoipa::path(post, path = "/admin/instances", tag = "instances", security(("admin_token" = [])),
    request_body = CreateInstance,
    responses((status = 201, body = InstanceView), (status = 409, description = "It exists", body = crate::error::Envelope), crate::error::ErrorResponses))]
pub(crate) async fn create_instance(
    State(state): State<AdminState>,
    Body(request): Body<CreateInstance>,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    let instance = state
        .operator
        .create_instance(
            instance_name(&request.name)?,
            request.kind.into(),
            request.token_lifetime_seconds.map(Duration::from_secs),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(InstanceView::from(&instance))))
}

/// One instance.
#[utoipa::path(get, path = "/admin/instances/{name}", tag = "instances", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = InstanceView), crate::error::ErrorResponses))]
pub(crate) async fn get_instance(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<InstanceView>, ApiError> {
    let name = instance_name(&name)?;
    let instance = state
        .app
        .store
        .instance(&name)
        .await?
        .ok_or_else(|| DomainError::NotFound {
            what: "instance",
            id: name.to_string(),
        })?;
    Ok(Json(InstanceView::from(&instance)))
}

/// Sandbox only: forgets every token, LoginId, session, pending MFA step and brute-force
/// lockout; keeps customers and keys.
#[utoipa::path(post, path = "/admin/instances/{name}/reset", tag = "instances", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = ResetView), crate::error::ErrorResponses))]
pub(crate) async fn reset_instance(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ResetView>, ApiError> {
    let name = instance_name(&name)?;
    let reset = state.operator.reset_instance(&name).await?;
    Ok(Json(ResetView::new(name.as_str(), reset)))
}

/// The instance's time.
#[utoipa::path(get, path = "/admin/instances/{name}/clock", tag = "clock", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = ClockView), crate::error::ErrorResponses))]
pub(crate) async fn get_clock(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ClockView>, ApiError> {
    let name = instance_name(&name)?;
    let clock = state.operator.clock(&name).await?;
    Ok(Json(ClockView::new(name.as_str(), clock)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AdvanceClock {
    /// Whole seconds to move the clock forward by (at most 100 years ahead in all).
    #[schema(maximum = 3153600000.0)]
    seconds: u64,
}

/// Sandbox only: moves the instance's clock forward (moves add up).
#[utoipa::path(post, path = "/admin/instances/{name}/clock/advance", tag = "clock", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    request_body = AdvanceClock,
    responses((status = 200, body = ClockView), crate::error::ErrorResponses))]
pub(crate) async fn advance_clock(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
    Body(request): Body<AdvanceClock>,
) -> Result<Json<ClockView>, ApiError> {
    let name = instance_name(&name)?;
    let clock = state
        .operator
        .change_clock(
            &name,
            ClockChange::Advance(Duration::from_secs(request.seconds)),
        )
        .await?;
    Ok(Json(ClockView::new(name.as_str(), clock)))
}

/// Sandbox only: back to real time.
#[utoipa::path(post, path = "/admin/instances/{name}/clock/reset", tag = "clock", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = ClockView), crate::error::ErrorResponses))]
pub(crate) async fn reset_clock(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ClockView>, ApiError> {
    let name = instance_name(&name)?;
    let clock = state
        .operator
        .change_clock(&name, ClockChange::Reset)
        .await?;
    Ok(Json(ClockView::new(name.as_str(), clock)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomerFilter {
    instance: Option<String>,
}

/// Customers, never their keys.
#[utoipa::path(get, path = "/admin/customers", tag = "customers", security(("admin_token" = [])),
    params(("instance" = Option<String>, Query, description = "Only this instance's")),
    responses((status = 200, body = Vec<CustomerView>), crate::error::ErrorResponses))]
pub(crate) async fn list_customers(
    State(state): State<AdminState>,
    filter: Result<Query<CustomerFilter>, QueryRejection>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let Query(filter) = filter.map_err(|_| {
        ApiError::invalid_request(
            Reason::QueryInvalid,
            "The query string could not be read; the only parameter is `instance`.",
        )
    })?;
    let instance = filter.instance.as_deref().map(instance_name).transpose()?;
    let customers = state.operator.list_customers(instance.as_ref()).await?;
    Ok(Json(customers.iter().map(CustomerView::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateCustomer {
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    instance: String,
    label: Option<String>,
    authorize_token_required: Option<bool>,
    api_key_required: Option<bool>,
}

/// Creates a customer with fresh keys, shown only in this answer.
#[utoipa::path(post, path = "/admin/customers", tag = "customers", security(("admin_token" = [])),
    request_body = CreateCustomer,
    responses((status = 201, body = CreatedCustomerView), crate::error::ErrorResponses))]
pub(crate) async fn create_customer(
    State(state): State<AdminState>,
    Body(request): Body<CreateCustomer>,
) -> Result<(StatusCode, Json<CreatedCustomerView>), ApiError> {
    let (customer, keys) = state
        .operator
        .create_customer(NewCustomer {
            instance: instance_name(&request.instance)?,
            label: request.label.unwrap_or_default(),
            authorize_token_required: request.authorize_token_required.unwrap_or(true),
            api_key_required: request.api_key_required.unwrap_or(true),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedCustomerView::new(&customer, &keys)),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateKeys {
    /// How long the old keys keep working (default 0: they stop now).
    grace_seconds: Option<u64>,
}

/// New secret key and x-api-key, shown only in this answer; the old ones work for the grace.
#[utoipa::path(post, path = "/admin/customers/{customerId}/rotate-keys", tag = "customers", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)")), request_body(content = Option<RotateKeys>, content_type = "application/json"),
    responses((status = 200, body = RotatedKeysView), crate::error::ErrorResponses))]
pub(crate) async fn rotate_keys(
    State(state): State<AdminState>,
    PathParams(id): PathParams<String>,
    body: axum::body::Bytes,
) -> Result<Json<RotatedKeysView>, ApiError> {
    let id = customer_id(&id)?;
    // The body is optional here: no body means no grace period.
    let request: RotateKeys = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKeys::default()
    } else {
        body_of(&body)?
    };
    let grace = Duration::from_secs(request.grace_seconds.unwrap_or(0));
    let keys = state.operator.rotate_keys(id, grace).await?;
    Ok(Json(RotatedKeysView {
        customer_id: id.to_string(),
        secret_key: keys.secret_key.expose().to_owned(),
        api_key: keys.api_key.expose().to_owned(),
        old_keys_valid_for_seconds: grace.as_secs(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateLogin {
    /// Default `FlinksCapital`.
    institution: Option<String>,
    username: String,
}

/// Sandbox only: a LoginId for a sandbox user.
#[utoipa::path(post, path = "/admin/customers/{customerId}/logins", tag = "logins", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)")), request_body = CreateLogin,
    responses((status = 201, body = LoginView), crate::error::ErrorResponses))]
pub(crate) async fn create_login(
    State(state): State<AdminState>,
    PathParams(id): PathParams<String>,
    Body(request): Body<CreateLogin>,
) -> Result<(StatusCode, Json<LoginView>), ApiError> {
    let id = customer_id(&id)?;
    let institution = request.institution.as_deref().unwrap_or("FlinksCapital");
    // Production does not know the sandbox bank: the Reason the API gives (the operator refuses
    // too, in words, for the CLI).
    if let Some(tenant) = state.app.store.tenant(id).await?
        && tenant.instance.kind != InstanceKind::Sandbox
    {
        return Err(ApiError::invalid_request(
            Reason::SandboxBankOnProduction,
            format!(
                "{} is a customer of the production instance {}, which does not serve the \
                 sandbox bank (FlinksCapital and its test users); make sandbox LoginIds on a \
                 sandbox instance's customer.",
                id, tenant.instance.name
            ),
        ));
    }
    let login = state
        .operator
        .create_login(id, institution, &request.username)
        .await?;
    Ok((StatusCode::CREATED, Json(LoginView::from(&login))))
}

/// A LoginId's state.
#[utoipa::path(get, path = "/admin/customers/{customerId}/logins/{loginId}", tag = "logins", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)"), ("loginId" = String, Path, description = "The LoginId")),
    responses((status = 200, body = LoginView), crate::error::ErrorResponses))]
pub(crate) async fn get_login(
    State(state): State<AdminState>,
    PathParams((customer, login)): PathParams<(String, String)>,
) -> Result<Json<LoginView>, ApiError> {
    let (customer, login) = (customer_id(&customer)?, login_id(&login)?);
    let found = state
        .operator
        .login(customer, login)
        .await?
        .ok_or_else(|| DomainError::NotFound {
            what: "LoginId",
            id: login.to_string(),
        })?;
    Ok(Json(LoginView::from(&found)))
}

/// Sandbox only: forgets a LoginId and ends its sessions.
#[utoipa::path(delete, path = "/admin/customers/{customerId}/logins/{loginId}", tag = "logins", security(("admin_token" = [])),
    params(("customerId" = String, Path, description = "The customer (a UUID)"), ("loginId" = String, Path, description = "The LoginId")),
    responses((status = 204, description = "Forgotten"), crate::error::ErrorResponses))]
pub(crate) async fn delete_login(
    State(state): State<AdminState>,
    PathParams((customer, login)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (customer, login) = (customer_id(&customer)?, login_id(&login)?);
    state.operator.delete_login(customer, login).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InspectToken {
    /// The authorize token, sent in the body so it stays out of URLs and access logs.
    token: String,
}

/// A token's state; the token is sent in the body, never echoed.
#[utoipa::path(post, path = "/admin/tokens/inspect", tag = "tokens", security(("admin_token" = [])),
    request_body = InspectToken,
    responses((status = 200, body = TokenView), crate::error::ErrorResponses))]
pub(crate) async fn inspect_token(
    State(state): State<AdminState>,
    Body(request): Body<InspectToken>,
) -> Result<Json<TokenView>, ApiError> {
    let found = state.operator.token_state(&request.token).await?;
    match found {
        Some(found) => Ok(Json(TokenView::from(&found))),
        None => Err(ApiError::not_found(
            Reason::TokenUnknown,
            "No authorize token has this value (never issued, or purged an hour after expiry).",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LockoutFilter {
    customer_id: Option<String>,
    client: Option<String>,
}

impl LockoutFilter {
    fn read(
        query: Result<Query<Self>, QueryRejection>,
    ) -> Result<bankgate_store::AttemptFilter, ApiError> {
        let Query(filter) = query.map_err(|_| {
            ApiError::invalid_request(
                Reason::QueryInvalid,
                "The query string could not be read; its parameters are `customerId` and \
                 `client`, both optional.",
            )
        })?;
        let client = filter
            .client
            .as_deref()
            .map(|text| {
                crate::guard::parse_client(text).ok_or_else(|| {
                    ApiError::invalid_request(
                        Reason::QueryInvalid,
                        format!(
                            "client={text:?} is not a client: give an IP address (an IPv6 one \
                             stands for its /64), a /64 as listed, or `unknown`."
                        ),
                    )
                })
            })
            .transpose()?;
        Ok(bankgate_store::AttemptFilter {
            customer_id: filter.customer_id.as_deref().map(customer_id).transpose()?,
            client,
        })
    }
}

/// Brute-force lockouts in force now, the latest to end first.
#[utoipa::path(get, path = "/admin/lockouts", tag = "lockouts", security(("admin_token" = [])),
    params(("customerId" = Option<String>, Query, description = "Only this customer's"),
           ("client" = Option<String>, Query, description = "Only this client's: an IP address (IPv6: its /64), or `unknown`")),
    responses((status = 200, body = Vec<LockoutView>), crate::error::ErrorResponses))]
pub(crate) async fn list_lockouts(
    State(state): State<AdminState>,
    query: Result<Query<LockoutFilter>, QueryRejection>,
) -> Result<Json<Vec<LockoutView>>, ApiError> {
    let filter = LockoutFilter::read(query)?;
    let rows = state.operator.lockouts(&filter).await?;
    let now = state.app.clock.now();
    Ok(Json(
        rows.iter()
            .filter_map(|row| LockoutView::new(row, now))
            .collect(),
    ))
}

/// Lifts lockouts and forgets failure counts: every one, or a customer's, or a client's.
#[utoipa::path(delete, path = "/admin/lockouts", tag = "lockouts", security(("admin_token" = [])),
    params(("customerId" = Option<String>, Query, description = "Only this customer's"),
           ("client" = Option<String>, Query, description = "Only this client's: an IP address (IPv6: its /64), or `unknown`")),
    responses((status = 200, body = ClearedLockoutsView), crate::error::ErrorResponses))]
pub(crate) async fn clear_lockouts(
    State(state): State<AdminState>,
    query: Result<Query<LockoutFilter>, QueryRejection>,
) -> Result<Json<ClearedLockoutsView>, ApiError> {
    let filter = LockoutFilter::read(query)?;
    let cleared = state.operator.clear_lockouts(&filter).await?;
    Ok(Json(ClearedLockoutsView { cleared }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SetWebhook {
    /// Where callbacks are POSTed: http(s); production instances need https (plain http only to
    /// localhost).
    url: String,
}

/// The instance's webhook, never its secret.
#[utoipa::path(get, path = "/admin/instances/{name}/webhook", tag = "webhooks", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = WebhookView), crate::error::ErrorResponses))]
pub(crate) async fn get_webhook(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let name = instance_name(&name)?;
    let webhook = state.operator.webhook(&name).await?;
    Ok(Json(WebhookView::new(
        name.as_str(),
        webhook.as_ref(),
        None,
    )))
}

/// Sets the webhook's URL. The first time, the answer carries the HMAC `secret`, shown this
/// once; a later URL keeps the secret.
#[utoipa::path(put, path = "/admin/instances/{name}/webhook", tag = "webhooks", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    request_body = SetWebhook,
    responses((status = 200, body = WebhookView), crate::error::ErrorResponses))]
pub(crate) async fn set_webhook(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
    Body(request): Body<SetWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let name = instance_name(&name)?;
    let (webhook, secret) = state.operator.set_webhook(&name, &request.url).await?;
    Ok(Json(WebhookView::new(
        name.as_str(),
        Some(&webhook),
        secret,
    )))
}

/// Disables the webhook: no callback is queued any more.
#[utoipa::path(delete, path = "/admin/instances/{name}/webhook", tag = "webhooks", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = WebhookView), crate::error::ErrorResponses))]
pub(crate) async fn disable_webhook(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let name = instance_name(&name)?;
    state.operator.disable_webhook(&name).await?;
    Ok(Json(WebhookView::new(name.as_str(), None, None)))
}

/// A new HMAC secret, shown this once; the next attempts are signed with it.
#[utoipa::path(post, path = "/admin/instances/{name}/webhook/rotate-secret", tag = "webhooks", security(("admin_token" = [])), params(("name" = String, Path, description = "The instance")),
    responses((status = 200, body = WebhookView), crate::error::ErrorResponses))]
pub(crate) async fn rotate_webhook_secret(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let name = instance_name(&name)?;
    let webhook = state.operator.rotate_webhook_secret(&name).await?;
    let secret = Some(webhook.secret.clone());
    Ok(Json(WebhookView::new(
        name.as_str(),
        Some(&webhook),
        secret,
    )))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryFilter {
    limit: Option<u32>,
}

/// The instance's callbacks, newest first (at most `limit`, default 100).
#[utoipa::path(get, path = "/admin/instances/{name}/webhook/deliveries", tag = "webhooks", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The instance"),
           ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)")),
    responses((status = 200, body = Vec<DeliveryView>), crate::error::ErrorResponses))]
pub(crate) async fn list_deliveries(
    State(state): State<AdminState>,
    PathParams(name): PathParams<String>,
    query: Result<Query<DeliveryFilter>, QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let name = instance_name(&name)?;
    let Query(filter) = query.map_err(|rejection| {
        ApiError::invalid_request(
            Reason::InvalidInput,
            format!("{rejection}; limit is a whole number of deliveries."),
        )
    })?;
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let deliveries = state.operator.deliveries(&name, limit).await?;
    Ok(Json(deliveries.iter().map(DeliveryView::from).collect()))
}

/// Sends a callback again now, with a fresh count of attempts (same id and body).
#[utoipa::path(post, path = "/admin/instances/{name}/webhook/deliveries/{id}/replay", tag = "webhooks", security(("admin_token" = [])),
    params(("name" = String, Path, description = "The instance"), ("id" = String, Path, description = "The delivery (X-Bankgate-Delivery)")),
    responses((status = 200, body = DeliveryView), crate::error::ErrorResponses))]
pub(crate) async fn replay_delivery(
    State(state): State<AdminState>,
    PathParams((name, id)): PathParams<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let name = instance_name(&name)?;
    let delivery = state.operator.replay_delivery(&name, &id).await?;
    state.app.webhook_wake.notify_one();
    Ok(Json(DeliveryView::from(&delivery)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::Ipv4Addr;

    use bankgate_core::ManualClock;

    use super::*;

    /// Guesses from more addresses than the table holds: it stays bounded, and the locks stay.
    #[test]
    fn the_failure_table_stays_small_under_guesses_from_many_addresses() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(0)));
        let failures = AdminFailures::new(clock);
        let locked = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        for _ in 0..ADMIN_MAX_FAILURES {
            let _ = failures.failed(locked);
        }
        assert!(failures.check(locked).is_err());
        for n in 0..(3 * ADMIN_TRACKED_CLIENTS as u32) {
            let _ = failures.failed(Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))));
            assert!(failures.clients().len() <= ADMIN_TRACKED_CLIENTS);
        }
        assert!(failures.check(locked).is_err(), "a lock was forgotten");
    }
}
