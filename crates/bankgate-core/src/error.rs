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
    #[error("no x-api-key")]
    ApiKeyMissing,
    #[error("the x-api-key is not valid for this customer")]
    ApiKeyInvalid,
    #[error("the RequestId is not known")]
    RequestIdUnknown { request_id: String },
    #[error("the RequestId expired")]
    RequestIdExpired { request_id: String, at: Timestamp },
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
