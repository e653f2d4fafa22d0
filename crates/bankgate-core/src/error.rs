//! Why bankgate says no.

use crate::clock::Timestamp;
use crate::ids::InstanceName;

/// The exact cause of a refused API request. The server names each with its `Reason` beside the
/// Flinks envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no secret key in flinks-auth-key")]
    AuthKeyMissing,
    #[error("the secret key is not valid for this customer")]
    AuthKeyInvalid,
    #[error("an authorize token was sent where the secret key goes")]
    TokenGivenAsAuthKey,
    #[error("the x-api-key was sent where the secret key goes")]
    ApiKeyGivenAsAuthKey,
    #[error("the secret key was sent where the x-api-key goes")]
    AuthKeyGivenAsApiKey,
    #[error("no authorize token in flinks-auth-key")]
    AuthorizeTokenMissing,
    #[error("the authorize token is not known")]
    AuthorizeTokenInvalid,
    #[error("the authorize token was already used")]
    AuthorizeTokenUsed { at: Timestamp },
    #[error("the authorize token expired")]
    AuthorizeTokenExpired { at: Timestamp },
    #[error("the secret key was sent where an authorize token goes")]
    AuthKeyGivenAsToken,
    #[error("a credential was sent under {sent} instead of {expected}")]
    WrongAuthHeader {
        sent: String,
        expected: &'static str,
    },
    /// The credential or customerId belongs to another instance. The instance is named only when
    /// it is a sandbox (hints never reveal a production tenant's data).
    #[error("the credential belongs to another instance")]
    WrongEnvironment { named: Option<InstanceName> },
    #[error("the customerId is not known on this instance")]
    CustomerNotFound,
    #[error("the LoginId is not known to this customer")]
    LoginNotFound,
    /// The LoginId was issued on another sandbox instance (named only sandbox to sandbox, as
    /// [`Refusal::WrongEnvironment`]).
    #[error("the LoginId belongs to another instance")]
    LoginOnOtherInstance { instance: InstanceName },
    #[error("no x-api-key")]
    ApiKeyMissing,
    #[error("the x-api-key is not valid for this customer")]
    ApiKeyInvalid,
    #[error("the RequestId is not known")]
    RequestIdUnknown { request_id: String },
    #[error("the RequestId expired")]
    RequestIdExpired { request_id: String, at: Timestamp },
    /// A RequestId that is not a UUID, so never one bankgate issued (`placeholder` when it is
    /// `undefined`, `null`, `{requestId}`…).
    #[error("the RequestId is not a UUID")]
    RequestIdMalformed {
        request_id: String,
        placeholder: bool,
    },
    #[error("the x-api-key was sent where an authorize token goes")]
    ApiKeyGivenAsToken,
    #[error("an authorize token was sent where the x-api-key goes")]
    TokenGivenAsApiKey,
    /// No credential header, but a body field that looks like the authorize token.
    #[error("the authorize token was sent in the body field {field}")]
    AuthorizeTokenInBody { field: String },
    /// No credential header, but a query parameter whose name looks like a credential.
    #[error("a credential was sent as the query parameter {parameter}")]
    CredentialInQuery { parameter: String },
    /// The credential header's value starts with an HTTP auth scheme (`Bearer `).
    #[error("the {header} value starts with {scheme}")]
    CredentialSchemePrefix {
        header: &'static str,
        scheme: &'static str,
    },
    /// The credential header's value cannot be a credential at all (every credential is a UUID).
    #[error("the {header} value is not shaped like a credential: {shape:?}")]
    CredentialMalformed {
        header: &'static str,
        shape: Malformed,
    },
    /// A path segment that should hold an id holds a placeholder (`undefined`, `{customerId}`).
    #[error("the {what:?} in the path is a placeholder")]
    PathPlaceholder { what: PathId },
}

/// The ids a path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathId {
    CustomerId,
    LoginId,
}

impl PathId {
    /// The name Flinks' documentation gives it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::CustomerId => "customerId",
            Self::LoginId => "LoginId",
        }
    }
}

/// What is wrong with a credential value that is not a UUID. Describes only its shape: the value
/// itself is never repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Wrapped in quotes (an `.env` loader kept them).
    Quoted,
    /// A documentation placeholder (`<token>`, `{token}`, `your-secret`, `undefined`).
    Placeholder,
    /// The example token printed in the README (or its shortened `9f32e159-…` form).
    ReadmeExample,
    /// Not printable ASCII (a pasted ellipsis or typographic quote).
    NotAscii,
    /// Any other value that is not a UUID (truncated, extra characters).
    NotUuid,
}

/// Everything that can go wrong in bankgate's domain operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The store could not answer (database down, disk full). Never carries secrets.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}
