//! The one API error type, and the only place outcomes become the Flinks error envelope
//! (status, FlinksCode, Message) plus the `Reason` and `Hint` bankgate adds (see
//! `docs/flinks-wire.md`, "Error envelope").

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bankgate_core::forced::{ForcedAction, ForcedRule, ForcedTarget};
use bankgate_core::sandbox::mfa::{ChallengeKind, WrongAnswer};
use bankgate_core::{DomainError, Malformed, PathId, Refusal, RequestId, Timestamp};
use serde::Serialize;

pub use crate::endpoint::Endpoint;

/// Declares a closed set of wire names: the enum, its wire spelling (in one place), and `ALL`.
macro_rules! wire_names {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)+];

            /// The spelling on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// The value a wire spelling names (reading back an answer the server stored).
            pub fn from_wire(wire: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == wire)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

wire_names! {
    /// The Flinks error codes bankgate answers with (and the two of a 202).
    FlinksCode {
        Unauthorized = "UNAUTHORIZED",
        AccessDenied = "ACCESS_DENIED",
        InvalidLogin = "INVALID_LOGIN",
        InvalidRequest = "INVALID_REQUEST",
        SessionNonexistent = "SESSION_NONEXISTENT",
        TooManyRequests = "TOO_MANY_REQUESTS",
        RetryLater = "RETRY_LATER",
        AggregationError = "AGGREGATION_ERROR",
        DisabledLogin = "DISABLED_LOGIN",
        UnknownChallengeKey = "UNKNOWN_CHALLENGE_KEY",
        SecurityResponsesIncomplete = "SECURITYRESPONSES_INCOMPLETE",
        InvalidSecurityResponse = "INVALID_SECURITY_RESPONSE",
        OperationDispatched = "OPERATION_DISPATCHED",
        OperationPending = "OPERATION_PENDING",
    }
}

wire_names! {
    /// bankgate's stable snake_case name of the exact cause of a refusal, sent as `Reason`.
    Reason {
        // Credentials and customers (one per `Refusal`).
        AuthKeyMissing = "auth_key_missing",
        AuthKeyInvalid = "auth_key_invalid",
        TokenGivenAsAuthKey = "token_given_as_auth_key",
        ApiKeyGivenAsAuthKey = "api_key_given_as_auth_key",
        AuthKeyGivenAsApiKey = "auth_key_given_as_api_key",
        AuthorizeTokenMissing = "authorize_token_missing",
        AuthorizeTokenInvalid = "authorize_token_invalid",
        AuthorizeTokenUsed = "authorize_token_used",
        AuthorizeTokenExpired = "authorize_token_expired",
        AuthKeyGivenAsToken = "auth_key_given_as_token",
        WrongAuthHeader = "wrong_auth_header",
        WrongEnvironment = "wrong_environment",
        CustomerNotFound = "customer_not_found",
        LoginNotFound = "login_not_found",
        ApiKeyMissing = "api_key_missing",
        ApiKeyInvalid = "api_key_invalid",
        RequestIdUnknown = "request_id_unknown",
        RequestIdExpired = "request_id_expired",
        RateLimited = "rate_limited",
        ApiKeyGivenAsToken = "api_key_given_as_token",
        TokenGivenAsApiKey = "token_given_as_api_key",
        AuthorizeTokenInBody = "authorize_token_in_body",
        AuthorizeTokenEmpty = "authorize_token_empty",
        RedirectUrlNotEncoded = "redirect_url_not_encoded",
        CredentialInQuery = "credential_in_query",
        CredentialSchemePrefix = "credential_scheme_prefix",
        CredentialMalformed = "credential_malformed",
        RequestIdMalformed = "request_id_malformed",
        // Hosts and paths.
        PathPlaceholder = "path_placeholder",
        CustomerIdMissing = "customer_id_missing",
        PathPrefixMissing = "path_prefix_missing",
        VersionSegmentWrong = "version_segment_wrong",
        EndpointNameWhitespace = "endpoint_name_whitespace",
        EndpointIdMissingSlash = "endpoint_id_missing_slash",
        RequestIdInPath = "request_id_in_path",
        HostWrongShape = "host_wrong_shape",
        HostMissingApiSuffix = "host_missing_api_suffix",
        ApiOnIframeHost = "api_on_iframe_host",
        ConnectOnIframeHost = "connect_on_iframe_host",
        EmptyPathSegment = "empty_path_segment",
        PathWrongShape = "path_wrong_shape",
        PathInvalid = "path_invalid",
        UnknownPath = "unknown_path",
        UnknownEndpoint = "unknown_endpoint",
        EndpointNotServed = "endpoint_not_served",
        MethodNotAllowed = "method_not_allowed",
        // Bodies and fields.
        BodyUnreadable = "body_unreadable",
        BodyTooLarge = "body_too_large",
        BodyNotJson = "body_not_json",
        BodyNotObject = "body_not_object",
        BodyInvalid = "body_invalid",
        LoginIdMissing = "login_id_missing",
        CredentialsMissing = "credentials_missing",
        LanguageInvalid = "language_invalid",
        InstitutionUnknown = "institution_unknown",
        SandboxBankOnProduction = "sandbox_bank_on_production",
        RequestIdMissing = "request_id_missing",
        LoginIdGivenToDataEndpoint = "login_id_given_to_data_endpoint",
        AccountUnknown = "account_unknown",
        DaysOfTransactionsInvalid = "days_of_transactions_invalid",
        NumberOfStatementsInvalid = "number_of_statements_invalid",
        Months12NeedsOneAccount = "months12_needs_one_account",
        StatementsNotEnabled = "statements_not_enabled",
        // The nightly refresh and Enhanced MFA (docs/flinks-wire.md, "Nightly refresh",
        // "Enhanced MFA").
        IsActivatedMissing = "is_activated_missing",
        MfaQuestionsNotCollected = "mfa_questions_not_collected",
        MfaQuestionsMissing = "mfa_questions_missing",
        MfaQuestionUnknown = "mfa_question_unknown",
        MfaAnswerMissing = "mfa_answer_missing",
        // The (sandbox) bank.
        BankCredentialsInvalid = "bank_credentials_invalid",
        LoginDisabled = "login_disabled",
        InstitutionUnavailable = "institution_unavailable",
        UnknownChallengeKey = "unknown_challenge_key",
        SecurityResponsesIncomplete = "security_responses_incomplete",
        SecurityResponseInvalid = "security_response_invalid",
        SecurityResponseNotOffered = "security_response_not_offered",
        SecurityResponseCount = "security_response_count",
        SessionNotAuthorized = "session_not_authorized",
        // Forced failures of a sandbox (docs/flinks-wire.md, "Forced failures").
        ForcedFailure = "forced_failure",
        ForcedFailureOnProduction = "forced_failure_on_production",
        // The admin API.
        AdminDisabled = "admin_disabled",
        AdminTokenMissing = "admin_token_missing",
        AdminTokenInvalid = "admin_token_invalid",
        AdminLockedOut = "admin_locked_out",
        AdminRouteUnknown = "admin_route_unknown",
        InstanceNameInvalid = "instance_name_invalid",
        CustomerIdInvalid = "customer_id_invalid",
        LoginIdInvalid = "login_id_invalid",
        TokenUnknown = "token_unknown",
        QueryInvalid = "query_invalid",
        // Domain and store outcomes.
        InvalidInput = "invalid_input",
        NotFound = "not_found",
        Conflict = "conflict",
        StoreUnavailable = "store_unavailable",
        InternalError = "internal_error",
    }
}

impl Reason {
    /// Whether the (sandbox) bank decided this refusal, or a forced failure standing in for it:
    /// what a bank login attempt comes to, which /AuthorizeAsync answers at a poll, after its
    /// 202; every other refusal is about the request itself and is answered at once.
    pub const fn from_bank(self) -> bool {
        matches!(
            self,
            Self::BankCredentialsInvalid
                | Self::LoginDisabled
                | Self::InstitutionUnavailable
                | Self::UnknownChallengeKey
                | Self::SecurityResponsesIncomplete
                | Self::SecurityResponseInvalid
                | Self::SecurityResponseNotOffered
                | Self::SecurityResponseCount
                | Self::ForcedFailure
        )
    }
}

impl From<&Refusal> for Reason {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::AuthKeyMissing => Self::AuthKeyMissing,
            Refusal::AuthKeyInvalid => Self::AuthKeyInvalid,
            Refusal::TokenGivenAsAuthKey => Self::TokenGivenAsAuthKey,
            Refusal::ApiKeyGivenAsAuthKey => Self::ApiKeyGivenAsAuthKey,
            Refusal::AuthKeyGivenAsApiKey => Self::AuthKeyGivenAsApiKey,
            Refusal::AuthorizeTokenMissing => Self::AuthorizeTokenMissing,
            Refusal::AuthorizeTokenInvalid => Self::AuthorizeTokenInvalid,
            Refusal::AuthorizeTokenUsed { .. } => Self::AuthorizeTokenUsed,
            Refusal::AuthorizeTokenExpired { .. } => Self::AuthorizeTokenExpired,
            Refusal::AuthKeyGivenAsToken => Self::AuthKeyGivenAsToken,
            Refusal::WrongAuthHeader { .. } => Self::WrongAuthHeader,
            Refusal::WrongEnvironment { .. } => Self::WrongEnvironment,
            Refusal::CustomerNotFound => Self::CustomerNotFound,
            Refusal::LoginNotFound => Self::LoginNotFound,
            Refusal::LoginOnOtherInstance { .. } => Self::WrongEnvironment,
            Refusal::ApiKeyMissing => Self::ApiKeyMissing,
            Refusal::ApiKeyInvalid => Self::ApiKeyInvalid,
            Refusal::RequestIdUnknown { .. } => Self::RequestIdUnknown,
            Refusal::RequestIdExpired { .. } => Self::RequestIdExpired,
            Refusal::RequestIdMalformed { .. } => Self::RequestIdMalformed,
            Refusal::ApiKeyGivenAsToken => Self::ApiKeyGivenAsToken,
            Refusal::TokenGivenAsApiKey => Self::TokenGivenAsApiKey,
            Refusal::AuthorizeTokenInBody { .. } => Self::AuthorizeTokenInBody,
            Refusal::CredentialInQuery { .. } => Self::CredentialInQuery,
            Refusal::CredentialSchemePrefix { .. } => Self::CredentialSchemePrefix,
            Refusal::CredentialMalformed { .. } => Self::CredentialMalformed,
            Refusal::PathPlaceholder { .. } => Self::PathPlaceholder,
        }
    }
}

/// What the (sandbox) bank, or the state of its exchange, said no with: always a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankRefusal {
    /// Wrong username or password.
    CredentialsInvalid,
    /// The scripted `test_disabled_account` user.
    LoginDisabled,
    /// The scripted `test_service_unavailable` user.
    InstitutionUnavailable,
    /// Answers keyed by prompts that were not asked; `expected` are the prompts, quoted.
    UnknownChallengeKey { expected: Vec<String> },
    /// Some prompts unanswered: how many of how many asked.
    ResponsesIncomplete { answered: usize, asked: usize },
    /// A wrong answer (ends the RequestId on /Authorize): to which prompt, and what was wrong.
    ResponseInvalid {
        prompt: String,
        kind: ChallengeKind,
        wrong: WrongAnswer,
    },
    /// The RequestId still waits for MFA answers.
    SessionNotAuthorized,
}

/// The Reason of a wrong answer, and what was seen, for its Hint.
fn wrong_answer(prompt: &str, kind: ChallengeKind, wrong: WrongAnswer) -> (Reason, String) {
    match wrong {
        WrongAnswer::Text => (
            Reason::SecurityResponseInvalid,
            format!("The answer to {prompt:?} is not the expected one"),
        ),
        WrongAnswer::Choice { given } => (
            Reason::SecurityResponseInvalid,
            format!(
                "{} is not the right choice for {prompt:?} ({kind})",
                given
                    .iter()
                    .map(|g| format!("{g:?}"))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        ),
        WrongAnswer::NotOffered { value } => {
            // An image's base64 string is long: its start is enough to recognise it.
            let shown: String = value.chars().take(40).collect();
            let cut = if shown.len() < value.len() { "…" } else { "" };
            (
                Reason::SecurityResponseNotOffered,
                format!(
                    "{shown:?}{cut} is not one of the Iterables of {prompt:?} ({kind}); send \
                     values copied from the challenge's Iterables"
                ),
            )
        }
        WrongAnswer::Count { given, needed } => (
            Reason::SecurityResponseCount,
            format!(
                "{prompt:?} ({kind}) takes {needed} value{} from its Iterables, but {given} \
                 different {} sent",
                if needed == 1 { "" } else { "s" },
                if given == 1 {
                    "value was"
                } else {
                    "values were"
                },
            ),
        ),
    }
}

impl From<BankRefusal> for ApiError {
    fn from(refusal: BankRefusal) -> Self {
        use FlinksCode as Code;
        let (code, message, reason, hint) = match refusal {
            BankRefusal::CredentialsInvalid => (
                Code::InvalidLogin,
                "The card number (username) or password provided is invalid",
                Reason::BankCredentialsInvalid,
                "The username or password is wrong for this institution (sandbox password: \
                 Everyday)."
                    .to_owned(),
            ),
            BankRefusal::LoginDisabled => (
                Code::DisabledLogin,
                "The account has been disabled by the financial institution",
                Reason::LoginDisabled,
                "This sandbox user (test_disabled_account) always gets DISABLED_LOGIN.".to_owned(),
            ),
            BankRefusal::InstitutionUnavailable => (
                Code::RetryLater,
                "The financial institution could not be reached, retry later",
                Reason::InstitutionUnavailable,
                "This sandbox user (test_service_unavailable) always gets RETRY_LATER.".to_owned(),
            ),
            BankRefusal::UnknownChallengeKey { expected } => (
                Code::UnknownChallengeKey,
                "The security response does not answer the challenge that was asked",
                Reason::UnknownChallengeKey,
                format!(
                    "SecurityResponses must be keyed by the exact prompt text; expected {}.",
                    expected.join(" and ")
                ),
            ),
            BankRefusal::ResponsesIncomplete { answered, asked } => (
                Code::SecurityResponsesIncomplete,
                "Not all security challenges were answered",
                Reason::SecurityResponsesIncomplete,
                format!(
                    "{answered} of the {asked} prompts asked were answered; answer every prompt \
                     of the SecurityChallenges in one call."
                ),
            ),
            BankRefusal::ResponseInvalid {
                prompt,
                kind,
                wrong,
            } => {
                let (reason, what) = wrong_answer(&prompt, kind, wrong);
                (
                    Code::InvalidSecurityResponse,
                    "The security response provided is invalid",
                    reason,
                    format!(
                        "{what}; start again with a new authorize token (README lists the \
                         sandbox users' answers)."
                    ),
                )
            }
            BankRefusal::SessionNotAuthorized => (
                Code::Unauthorized,
                "The card is not authorized yet",
                Reason::SessionNotAuthorized,
                "This RequestId is waiting for MFA answers; finish /Authorize first.".to_owned(),
            ),
        };
        Self::new(StatusCode::UNAUTHORIZED, code, message, reason, hint)
    }
}

impl Endpoint {
    /// FlinksCode and Message of this endpoint's 401 for a bad credential.
    fn unauthorized(self) -> (FlinksCode, &'static str) {
        match self {
            Self::GenerateAuthorizeToken => (
                FlinksCode::Unauthorized,
                "You must provide a valid auth key",
            ),
            Self::Authorize | Self::AuthorizeAsync => (
                FlinksCode::AccessDenied,
                "You must provide a valid authorize token",
            ),
            _ => (
                FlinksCode::Unauthorized,
                "You must provide a valid x-api-key",
            ),
        }
    }
}

/// An error response in the Flinks envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub flinks_code: FlinksCode,
    pub message: String,
    pub reason: Reason,
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
    #[schema(value_type = String)]
    flinks_code: FlinksCode,
    message: &'a str,
    /// Always empty on errors.
    #[schema(value_type = Vec<Object>)]
    links: [(); 0],
    /// The RequestId, where one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    request_id: Option<&'a RequestId>,
    /// bankgate's stable snake_case name of the exact cause; clients may ignore it.
    #[schema(value_type = String)]
    reason: Reason,
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
    /// A sandbox fault set through the admin API (docs/flinks-wire.md, "Forced failures").
    #[response(status = 502)]
    BadGateway(#[to_schema] Envelope<'a>),
    /// The database cannot be reached, or a sandbox fault; retry later.
    #[response(status = 503)]
    Unavailable(#[to_schema] Envelope<'a>),
    /// A sandbox fault set through the admin API.
    #[response(status = 504)]
    GatewayTimeout(#[to_schema] Envelope<'a>),
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        flinks_code: FlinksCode,
        message: impl Into<String>,
        reason: Reason,
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

    /// Replaces the hint where the caller knows more than the refusal does.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    /// Adds to the hint that the call spent its authorize token (`docs/flinks-wire.md`,
    /// "Credentials and tokens"), so a retry with the same token would fail next.
    pub fn token_spent(mut self, spent: bool) -> Self {
        if spent {
            self.hint = format!(
                "{}; the authorize token sent with it is now spent, so generate a new one \
                 before retrying.",
                self.hint.trim_end_matches('.')
            );
        }
        self
    }

    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// 400 `INVALID_REQUEST`: the body or a parameter cannot be used.
    pub fn invalid_request(reason: Reason, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            FlinksCode::InvalidRequest,
            "The request is invalid",
            reason,
            hint,
        )
    }

    /// 404 for paths and hosts bankgate does not serve. The FlinksCode is a documented one
    /// (clients map codes to error types; an invented code would surprise them).
    pub fn not_found(reason: Reason, hint: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            FlinksCode::InvalidRequest,
            "The requested resource was not found",
            reason,
            hint,
        )
    }

    /// 401 `TOO_MANY_REQUESTS` with `Retry-After`; the Hint says whose failures locked what,
    /// how long is left, and how an operator lifts it at once.
    pub fn rate_limited(lockout: &crate::guard::Lockout) -> Self {
        use crate::guard::{LockScope, Target};
        let secs = lockout.retry_after.as_secs().max(1);
        let what = match lockout.target {
            Target::SecretKey => "this customer's secret key",
            Target::BankLogin(_) => "the password of this bank username",
        };
        let (customer, client) = (lockout.customer_id, &lockout.client);
        let (max, window) = (lockout.max_failures, lockout.window.as_secs());
        let hint = match lockout.scope {
            LockScope::Client => format!(
                "This client ({client}) got {what} wrong {max} times within {window} seconds, so \
                 it is refused, even with the right value, for {secs} more seconds (Retry-After). \
                 Other clients are not affected. To lift it now, an operator runs `bankgate \
                 lockouts clear --customer {customer} --client {client}` or calls `DELETE \
                 /admin/lockouts?customerId={customer}&client={client}` on the admin API."
            ),
            LockScope::Target => format!(
                "Several clients got {what} wrong {max} times within {window} seconds, and this \
                 client ({client}) got it wrong too, so it is refused for {secs} more seconds \
                 (Retry-After); clients that have not failed are not. To lift it now, an \
                 operator runs `bankgate lockouts clear --customer {customer}` or calls `DELETE \
                 /admin/lockouts?customerId={customer}` on the admin API."
            ),
        };
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            FlinksCode::TooManyRequests,
            "Too many requests, retry later",
            Reason::RateLimited,
            hint,
        );
        error.retry_after_secs = Some(secs);
        error
    }

    /// 503 when the store cannot answer; the detail goes to the log, not to the client.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FlinksCode::RetryLater,
            "The service is temporarily unavailable, retry later",
            Reason::StoreUnavailable,
            "bankgate could not reach its database; retry in a moment.",
        )
    }

    /// 503 while the node waits for its database at start.
    pub fn starting() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            FlinksCode::RetryLater,
            "The service is temporarily unavailable, retry later",
            Reason::StoreUnavailable,
            "bankgate is starting and waiting for its database; retry in a few seconds.",
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
                Reason::from(refusal),
                hint,
            )
        };
        match refusal {
            // Many integrations predate the token (docs/flinks-wire.md, "Credentials and
            // tokens"): say why it is needed, not only where it goes (#27).
            Refusal::AuthorizeTokenMissing if endpoint == Endpoint::Authorize => unauthorized(
                "Send an authorize token in the `flinks-auth-key` header: every /Authorize call \
                 needs its own single-use token from /GenerateAuthorizeToken (mandatory for \
                 integrations created since October 2024)."
                    .to_owned(),
            ),
            Refusal::AuthKeyMissing | Refusal::AuthorizeTokenMissing | Refusal::ApiKeyMissing => {
                unauthorized(format!(
                    "Send {} in the `{}` header.",
                    endpoint.credential().described(),
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
                "No customer with this customerId exists on the instance this host names; check \
                 the GUID in the path and that the host is the instance your customerId was \
                 issued on."
                    .to_owned(),
            ),
            Refusal::PathPlaceholder { what } => {
                let name = what.name();
                let hint = format!(
                    "The path segment where the {name} goes is a placeholder (such as `undefined` \
                     or `{{{name}}}`), so the variable that should fill it is unset."
                );
                match (endpoint, what) {
                    // DeleteCard's answer for a LoginId it cannot find.
                    (Endpoint::DeleteCard | Endpoint::GetMFAQuestions, PathId::LoginId) => {
                        Self::new(
                            StatusCode::BAD_REQUEST,
                            FlinksCode::InvalidLogin,
                            "Invalid LoginId",
                            Reason::from(refusal),
                            hint,
                        )
                    }
                    _ => unauthorized(hint),
                }
            }
            Refusal::ApiKeyGivenAsToken => unauthorized(
                "This is your x-api-key, which only the data endpoints and DeleteCard take; \
                 /Authorize needs an authorize token from /GenerateAuthorizeToken in \
                 `flinks-auth-key`."
                    .to_owned(),
            ),
            Refusal::TokenGivenAsApiKey => unauthorized(format!(
                "This is an authorize token, which only opens /Authorize or the Connect page; {} \
                 takes the x-api-key, a different credential, in `x-api-key`.",
                endpoint.name()
            )),
            Refusal::AuthorizeTokenInBody { field } => unauthorized(format!(
                "The body has a `{field}` field but there is no `flinks-auth-key` header; \
                 /Authorize reads the authorize token only from the `flinks-auth-key` header."
            )),
            Refusal::CredentialInQuery { parameter } => unauthorized(format!(
                "A credential was sent as the query parameter `{parameter}`; {} reads {} only \
                 from the `{}` header (URLs end up in logs).",
                endpoint.name(),
                endpoint.credential().described(),
                endpoint.credential_header()
            )),
            Refusal::CredentialSchemePrefix { header, scheme } => unauthorized(format!(
                "The `{header}` value starts with '{scheme} '; send the bare key or token, \
                 without an authentication scheme."
            )),
            Refusal::CredentialMalformed { header, shape } => unauthorized(match shape {
                Malformed::Quoted => format!(
                    "The `{header}` value is wrapped in quotes; send the key or token without \
                     them (an .env loader or a JSON string kept them)."
                ),
                Malformed::Placeholder => format!(
                    "The `{header}` value is a placeholder, not a credential; the variable that \
                     should hold {} is unset or still holds its example.",
                    endpoint.credential().described()
                ),
                Malformed::ReadmeExample => format!(
                    "The `{header}` value is the example token printed in bankgate's README; \
                     paste the Token your own /GenerateAuthorizeToken call returned."
                ),
                Malformed::NotAscii => format!(
                    "The `{header}` value has characters that are not plain ASCII (a pasted '…' \
                     or typographic quote); credentials are UUIDs such as \
                     xxxxxxxx-xxxx-4xxx-xxxx-xxxxxxxxxxxx."
                ),
                Malformed::NotUuid => format!(
                    "The `{header}` value is not a UUID, which every Flinks credential is; it \
                     is truncated or has extra characters."
                ),
            }),
            Refusal::LoginNotFound => match endpoint {
                Endpoint::DeleteCard
                | Endpoint::SetScheduledRefresh
                | Endpoint::GetMFAQuestions
                | Endpoint::AnswerMFAQuestions => Self::new(
                    StatusCode::BAD_REQUEST,
                    FlinksCode::InvalidLogin,
                    "Invalid LoginId",
                    Reason::from(refusal),
                    "No LoginId with this value exists for this customerId (it may already be \
                     deleted).",
                ),
                _ => Self::new(
                    StatusCode::UNAUTHORIZED,
                    FlinksCode::InvalidLogin,
                    "LoginId not found or invalid",
                    Reason::from(refusal),
                    "No LoginId with this value exists for this customerId; it may have been \
                     deleted with /DeleteCard or belong to another customer.",
                ),
            },
            // The status, code and message of an unknown LoginId, which is what Flinks answers.
            Refusal::LoginOnOtherInstance { instance } => {
                let hint = format!(
                    "This LoginId was issued on the `{instance}` instance, and LoginIds are scoped \
                     to the instance that issued them; use it on {instance}-api hosts with that \
                     instance's customerId, or connect the account again on this one."
                );
                match endpoint {
                    Endpoint::DeleteCard
                    | Endpoint::SetScheduledRefresh
                    | Endpoint::GetMFAQuestions
                    | Endpoint::AnswerMFAQuestions => Self::new(
                        StatusCode::BAD_REQUEST,
                        FlinksCode::InvalidLogin,
                        "Invalid LoginId",
                        Reason::from(refusal),
                        hint,
                    ),
                    _ => Self::new(
                        StatusCode::UNAUTHORIZED,
                        FlinksCode::InvalidLogin,
                        "LoginId not found or invalid",
                        Reason::from(refusal),
                        hint,
                    ),
                }
            }
            Refusal::RequestIdUnknown { request_id } => Self::new(
                StatusCode::BAD_REQUEST,
                FlinksCode::SessionNonexistent,
                format!("RequestId {request_id} is invalid or session has ended"),
                Reason::from(refusal),
                "This RequestId was never issued to this customerId, or its session ended; use \
                 the RequestId of a recent /Authorize.",
            ),
            Refusal::RequestIdMalformed {
                request_id,
                placeholder,
            } => Self::new(
                StatusCode::BAD_REQUEST,
                FlinksCode::SessionNonexistent,
                format!("RequestId {request_id} is invalid or session has ended"),
                Reason::from(refusal),
                if *placeholder {
                    "The RequestId is a placeholder (such as `undefined` or `{requestId}`), so \
                     the variable that should hold it is unset; use the RequestId /Authorize \
                     returned."
                } else {
                    "The RequestId is not a UUID, so no /Authorize returned it; use the \
                     RequestId of a recent /Authorize, not an id of your own."
                },
            ),
            Refusal::RequestIdExpired { request_id, at } => Self::new(
                StatusCode::BAD_REQUEST,
                FlinksCode::SessionNonexistent,
                format!("RequestId {request_id} is invalid or session has ended"),
                Reason::from(refusal),
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
            DomainError::Invalid(detail) => Self::invalid_request(Reason::InvalidInput, detail),
            DomainError::NotFound { what, id } => {
                Self::not_found(Reason::NotFound, format!("{what} {id} does not exist."))
            }
            DomainError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                FlinksCode::InvalidRequest,
                "The resource already exists",
                Reason::Conflict,
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
        FlinksCode::AggregationError,
        "An unexpected error occurred",
        Reason::InternalError,
        "bankgate hit an internal error; the request was not completed. Retry, and report it if it persists.",
    )
    .into_response()
}

impl ApiError {
    /// The answer a forced failure or fault rule gives (docs/flinks-wire.md, "Forced failures"):
    /// the status, FlinksCode and Message the real failure has, with `Reason` `forced_failure`
    /// and a hint naming the rule and what is left of it. `None` for the actions that are not
    /// an envelope (a new MFA question, a stall).
    pub fn forced(rule: &ForcedRule, now: Timestamp) -> Option<Self> {
        use FlinksCode as Code;
        let (status, code, message) = match rule.action {
            ForcedAction::RetryLater => (
                StatusCode::UNAUTHORIZED,
                Code::RetryLater,
                "The financial institution could not be reached, retry later",
            ),
            ForcedAction::DisabledLogin => (
                StatusCode::UNAUTHORIZED,
                Code::DisabledLogin,
                "The account has been disabled by the financial institution",
            ),
            ForcedAction::PasswordChanged => (
                StatusCode::UNAUTHORIZED,
                Code::InvalidLogin,
                "The card number (username) or password provided is invalid",
            ),
            ForcedAction::AggregationError | ForcedAction::Status(500) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::AggregationError,
                "An unexpected error occurred",
            ),
            ForcedAction::Status(other) => (
                StatusCode::from_u16(other).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                Code::RetryLater,
                "The service is temporarily unavailable, retry later",
            ),
            ForcedAction::Pending(_) => (
                StatusCode::ACCEPTED,
                Code::OperationPending,
                "Your operation is still processing",
            ),
            ForcedAction::NewMfaQuestion | ForcedAction::Stall(_) => return None,
        };
        let hint = Self::forced_hint(rule, now);
        let mut error = Self::new(status, code, message, Reason::ForcedFailure, hint);
        if let Some(until) = rule.active_until.filter(|until| *until > now) {
            error.retry_after_secs = Some(whole_seconds_until(now, until).max(1));
        }
        Some(error)
    }

    /// The hint of a forced answer: the rule, what it does, and what is left of it.
    pub fn forced_hint(rule: &ForcedRule, now: Timestamp) -> String {
        let what = match &rule.target {
            ForcedTarget::Login(_, login) => format!("LoginId {login}"),
            ForcedTarget::Username(_, username) => format!("sandbox user {username}"),
            ForcedTarget::Endpoint(endpoint) => format!("{endpoint} on {}", rule.instance),
        };
        let left = match rule.active_until {
            Some(until) if until > now => format!(
                "this 202 lasts {} more seconds on the instance's clock",
                whole_seconds_until(now, until)
            ),
            _ => format!("it applies to {} more calls", rule.remaining),
        };
        format!(
            "Forced failure, not a bug: rule {} ({} for {what}) was set through the admin API; \
             {left}. Clear it with DELETE on its /failures or /faults route.",
            rule.id,
            crate::operator::describe_forced(rule.action),
        )
    }
}

/// Marks an answer that is not an envelope (the 203 of a forced MFA question) as forced: the
/// body stays Flinks', the `X-Bankgate-Forced-Failure` header carries the hint, and the request
/// journal and metrics see the `Reason` as for any refusal.
pub fn mark_forced(response: &mut Response, hint: String) {
    tracing::Span::current().record("reason", Reason::ForcedFailure.as_str());
    if let Ok(value) = HeaderValue::from_str(&hint) {
        response.headers_mut().insert(FORCED_FAILURE_HEADER, value);
    }
    response.extensions_mut().insert(Reason::ForcedFailure);
    response.extensions_mut().insert(Hint(hint));
}

/// The header of a forced answer that has no envelope to carry a hint.
pub const FORCED_FAILURE_HEADER: &str = "x-bankgate-forced-failure";

/// Whole seconds from `now` to `until`, rounded up.
fn whole_seconds_until(now: Timestamp, until: Timestamp) -> u64 {
    let micros = until.as_micros().saturating_sub(now.as_micros());
    u64::try_from(micros).unwrap_or(0).div_ceil(1_000_000)
}

/// The `Hint` of a refusal, left on its response for the request journal.
#[derive(Debug, Clone)]
pub struct Hint(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::Span::current().record("reason", self.reason.as_str());
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
        // Left on the response for the layers outside (metrics count refusals by reason; the
        // request journal keeps all three).
        response.extensions_mut().insert(self.reason);
        response.extensions_mut().insert(self.flinks_code);
        response.extensions_mut().insert(Hint(self.hint));
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
