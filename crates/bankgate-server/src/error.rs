//! The one API error type: every refusal leaves bankgate as the Flinks error envelope, plus the
//! `Reason` and `Hint` fields bankgate adds (decisions §3).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bankgate_core::{DomainError, Refusal, RequestId};
use serde::Serialize;

/// Which endpoint refused: decides the FlinksCode and Message of the credential refusals that
/// "answer as the endpoint" does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GenerateAuthorizeToken,
    Authorize,
    DeleteCard,
    GetAccountsSummary,
    GetAccountsSummaryAsync,
    GetAccountsDetail,
    GetAccountsDetailAsync,
    GetStatements,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Self::GenerateAuthorizeToken,
        Self::Authorize,
        Self::DeleteCard,
        Self::GetAccountsSummary,
        Self::GetAccountsSummaryAsync,
        Self::GetAccountsDetail,
        Self::GetAccountsDetailAsync,
        Self::GetStatements,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::GenerateAuthorizeToken => "GenerateAuthorizeToken",
            Self::Authorize => "Authorize",
            Self::DeleteCard => "DeleteCard",
            Self::GetAccountsSummary => "GetAccountsSummary",
            Self::GetAccountsSummaryAsync => "GetAccountsSummaryAsync",
            Self::GetAccountsDetail => "GetAccountsDetail",
            Self::GetAccountsDetailAsync => "GetAccountsDetailAsync",
            Self::GetStatements => "GetStatements",
        }
    }

    /// How the endpoint is called, for hints.
    pub fn usage(self) -> &'static str {
        match self {
            Self::GenerateAuthorizeToken => {
                "POST /v3/{customerId}/BankingServices/GenerateAuthorizeToken"
            }
            Self::Authorize => "POST /v3/{customerId}/BankingServices/Authorize",
            Self::DeleteCard => "DELETE /v3/{customerId}/BankingServices/DeleteCard/{loginId}",
            Self::GetAccountsSummary => "POST /v3/{customerId}/BankingServices/GetAccountsSummary",
            Self::GetAccountsSummaryAsync => {
                "GET or POST /v3/{customerId}/BankingServices/GetAccountsSummaryAsync/{requestId}"
            }
            Self::GetAccountsDetail => "POST /v3/{customerId}/BankingServices/GetAccountsDetail",
            Self::GetAccountsDetailAsync => {
                "GET or POST /v3/{customerId}/BankingServices/GetAccountsDetailAsync/{requestId}"
            }
            Self::GetStatements => "POST /v3/{customerId}/BankingServices/GetStatements",
        }
    }

    /// The header this endpoint reads its credential from.
    pub fn credential_header(self) -> &'static str {
        match self {
            Self::GenerateAuthorizeToken | Self::Authorize => "flinks-auth-key",
            _ => "x-api-key",
        }
    }

    fn credential_name(self) -> &'static str {
        match self {
            Self::GenerateAuthorizeToken => "the secret key",
            Self::Authorize => "an authorize token",
            _ => "the x-api-key",
        }
    }

    /// FlinksCode and Message of this endpoint's 401 for a bad credential.
    fn unauthorized(self) -> (&'static str, &'static str) {
        match self {
            Self::GenerateAuthorizeToken => ("UNAUTHORIZED", "You must provide a valid auth key"),
            Self::Authorize => ("ACCESS_DENIED", "You must provide a valid authorize token"),
            _ => ("UNAUTHORIZED", "You must provide a valid x-api-key"),
        }
    }
}

/// An error response in the Flinks envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub flinks_code: &'static str,
    pub message: String,
    pub reason: &'static str,
    pub hint: String,
    pub request_id: Option<RequestId>,
    pub retry_after_secs: Option<u64>,
}

/// The Flinks error envelope, plus bankgate's `Reason` and `Hint`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = ErrorEnvelope)]
pub struct Envelope<'a> {
    /// Equals the HTTP status.
    http_status_code: u16,
    /// The Flinks error code (`UNAUTHORIZED`, `INVALID_LOGIN`, `SESSION_NONEXISTENT`, ...).
    flinks_code: &'a str,
    message: &'a str,
    /// Always empty on errors.
    #[schema(value_type = Vec<Object>)]
    links: [(); 0],
    /// The RequestId, where one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    request_id: Option<&'a RequestId>,
    /// bankgate's stable snake_case name of the exact cause; clients may ignore it.
    reason: &'a str,
    /// One sentence a person can act on; clients may ignore it.
    hint: &'a str,
}

/// The errors every Flinks endpoint may answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
pub enum ErrorResponses<'a> {
    /// Malformed JSON, a missing or mistyped field, an unknown RequestId.
    #[response(status = 400)]
    BadRequest(#[to_schema] Envelope<'a>),
    /// A missing, wrong or spent credential; the bank refused; too many attempts.
    #[response(status = 401)]
    Unauthorized(#[to_schema] Envelope<'a>),
    /// A host, path or endpoint bankgate does not serve.
    #[response(status = 404)]
    NotFound(#[to_schema] Envelope<'a>),
    /// A method the endpoint does not take.
    #[response(status = 405)]
    MethodNotAllowed(#[to_schema] Envelope<'a>),
    /// A body over 64 KiB.
    #[response(status = 413)]
    TooLarge(#[to_schema] Envelope<'a>),
    /// An unexpected error (the envelope still says what happened).
    #[response(status = 500)]
    Internal(#[to_schema] Envelope<'a>),
    /// The database cannot be reached; retry later.
    #[response(status = 503)]
    Unavailable(#[to_schema] Envelope<'a>),
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        flinks_code: &'static str,
        message: impl Into<String>,
        reason: &'static str,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            status,
            flinks_code,
            message: message.into(),
            reason,
            hint: hint.into(),
            request_id: None,
            retry_after_secs: None,
        }
    }

    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// 400 `INVALID_REQUEST`: the body or a parameter cannot be used.
    pub fn invalid_request(reason: &'static str, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "The request is invalid",
            reason,
            hint,
        )
    }

    /// 404 for paths and hosts bankgate does not serve. The FlinksCode is a documented one
    /// (clients map codes to error types; an invented code would surprise them).
    pub fn not_found(reason: &'static str, hint: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "INVALID_REQUEST",
            "The requested resource was not found",
            reason,
            hint,
        )
    }

    /// A 401 the (sandbox) bank gives: wrong credentials, disabled account, MFA problems.
    pub fn bank(
        flinks_code: &'static str,
        message: &'static str,
        reason: &'static str,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, flinks_code, message, reason, hint)
    }

    /// 401 `TOO_MANY_REQUESTS` with `Retry-After`.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs().max(1);
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            "TOO_MANY_REQUESTS",
            "Too many requests, retry later",
            "rate_limited",
            format!("Too many failed attempts; retry after {secs} seconds."),
        );
        error.retry_after_secs = Some(secs);
        error
    }

    /// 503 when the store cannot answer; the detail goes to the log, not to the client.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RETRY_LATER",
            "The service is temporarily unavailable, retry later",
            "store_unavailable",
            "bankgate could not reach its database; retry in a moment.",
        )
    }

    /// Renders a refusal as `endpoint` answers it. Which instance a hint may name is decided
    /// before, where the refusal is made (see `auth::other_instance`).
    pub fn refused(endpoint: Endpoint, refusal: &Refusal) -> Self {
        let (code, message) = endpoint.unauthorized();
        let unauthorized = |hint: String| {
            Self::new(
                StatusCode::UNAUTHORIZED,
                code,
                message,
                refusal.reason(),
                hint,
            )
        };
        match refusal {
            Refusal::AuthKeyMissing | Refusal::AuthorizeTokenMissing | Refusal::ApiKeyMissing => {
                unauthorized(format!(
                    "Send {} in the `{}` header.",
                    endpoint.credential_name(),
                    endpoint.credential_header()
                ))
            }
            Refusal::AuthKeyInvalid => unauthorized(
                "This is not a current secret key of this customerId; check the customerId in the \
                 path and the key (a rotated key stops working when its grace period ends)."
                    .to_owned(),
            ),
            Refusal::ApiKeyInvalid => unauthorized(
                "This is not a current x-api-key of this customerId; check the customerId in the \
                 path and the key."
                    .to_owned(),
            ),
            Refusal::TokenGivenAsAuthKey => unauthorized(
                "This is an authorize token; GenerateAuthorizeToken takes the secret key in \
                 `flinks-auth-key`, and the token goes to /Authorize or the Connect page."
                    .to_owned(),
            ),
            Refusal::ApiKeyGivenAsAuthKey => unauthorized(
                "This is the x-api-key, which the data endpoints take in `x-api-key`; \
                 GenerateAuthorizeToken takes the secret key in `flinks-auth-key`."
                    .to_owned(),
            ),
            Refusal::AuthKeyGivenAsApiKey => unauthorized(
                "This is the secret key, which only mints authorize tokens; send the x-api-key \
                 in `x-api-key`."
                    .to_owned(),
            ),
            Refusal::AuthorizeTokenInvalid => unauthorized(
                "This authorize token was never issued to this customerId (or was purged long \
                 after expiry); call GenerateAuthorizeToken for a new one."
                    .to_owned(),
            ),
            Refusal::AuthorizeTokenUsed { at } => unauthorized(format!(
                "This authorize token was already used at {}; tokens are single use, so call \
                 GenerateAuthorizeToken before each /Authorize.",
                at.to_rfc3339()
            )),
            Refusal::AuthorizeTokenExpired { at } => unauthorized(format!(
                "This authorize token expired at {} unused; call GenerateAuthorizeToken for a new \
                 one.",
                at.to_rfc3339()
            )),
            Refusal::AuthKeyGivenAsToken => unauthorized(
                "This is the secret key; exchange it for an authorize token at \
                 /GenerateAuthorizeToken and send that token in `flinks-auth-key`."
                    .to_owned(),
            ),
            Refusal::WrongAuthHeader { sent, expected } => unauthorized(format!(
                "A credential was sent in `{sent}`; {} takes it in the `{expected}` header.",
                endpoint.name()
            )),
            Refusal::WrongEnvironment { named } => unauthorized(match named {
                Some(instance) => format!(
                    "This credential or customerId belongs to the `{instance}` instance; send it \
                     to {instance}-api hosts (or a bare host) with that instance's customerId."
                ),
                None => "This credential or customerId belongs to another instance.".to_owned(),
            }),
            Refusal::CustomerNotFound => unauthorized(
                "No customer with this customerId exists on this instance; check the GUID in \
                 the path (the toolbox customerId is 43387ca6-0391-4c82-857d-70d95f087ecb)."
                    .to_owned(),
            ),
            Refusal::LoginNotFound => match endpoint {
                Endpoint::DeleteCard => Self::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_LOGIN",
                    "Invalid LoginId",
                    refusal.reason(),
                    "No LoginId with this value exists for this customerId (it may already be \
                     deleted).",
                ),
                _ => Self::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_LOGIN",
                    "LoginId not found or invalid",
                    refusal.reason(),
                    "No LoginId with this value exists for this customerId; it may have been \
                     deleted with /DeleteCard or belong to another customer.",
                ),
            },
            Refusal::RequestIdUnknown { request_id } => Self::new(
                StatusCode::BAD_REQUEST,
                "SESSION_NONEXISTENT",
                format!("RequestId {request_id} is invalid or session has ended"),
                refusal.reason(),
                "This RequestId was never issued to this customerId, or its session ended; use \
                 the RequestId of a recent /Authorize.",
            ),
            Refusal::RequestIdExpired { request_id, at } => Self::new(
                StatusCode::BAD_REQUEST,
                "SESSION_NONEXISTENT",
                format!("RequestId {request_id} is invalid or session has ended"),
                refusal.reason(),
                format!(
                    "This RequestId expired at {}; call /Authorize again.",
                    at.to_rfc3339()
                ),
            ),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(detail) => Self::invalid_request("invalid_input", detail),
            DomainError::NotFound { what, id } => {
                Self::not_found("not_found", format!("{what} {id} does not exist."))
            }
            DomainError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "INVALID_REQUEST",
                "The resource already exists",
                "conflict",
                format!("{what} already exists."),
            ),
            DomainError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                Self::unavailable()
            }
        }
    }
}

/// The answer when a handler panics: 500 `AGGREGATION_ERROR`, the Flinks code for an
/// unexpected error. The panic message stays in the log.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(%detail, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "AGGREGATION_ERROR",
        "An unexpected error occurred",
        "internal_error",
        "bankgate hit an internal error; the request was not completed. Retry, and report it if it persists.",
    )
    .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::Span::current().record("reason", self.reason);
        let envelope = Envelope {
            http_status_code: self.status.as_u16(),
            flinks_code: self.flinks_code,
            message: &self.message,
            links: [],
            request_id: self.request_id.as_ref(),
            reason: self.reason,
            hint: &self.hint,
        };
        let mut response = (self.status, axum::Json(envelope)).into_response();
        response
            .extensions_mut()
            .insert(crate::metrics::OutcomeReason(self.reason));
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
