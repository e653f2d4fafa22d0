//! What a call can end in besides its answer.

use std::fmt;

use crate::credentials::RequestId;

/// A refusal in the Flinks error envelope: the HTTP status, `FlinksCode` and `Message` that
/// Flinks documents, and the `Reason`/`Hint` bankgate adds (absent when the server is Flinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinksError {
    pub status: u16,
    pub flinks_code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<RequestId>,
    /// bankgate's stable name of the exact cause (`authorize_token_used`, …).
    pub reason: Option<String>,
    /// bankgate's one-sentence fix.
    pub hint: Option<String>,
}

impl fmt::Display for FlinksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.flinks_code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " [{reason}]")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the call.
    #[error("{0}")]
    Flinks(Box<FlinksError>),
    /// The base URL cannot be the root of a Flinks API.
    #[error("the base URL {url:?} {problem}")]
    BaseUrl { url: String, problem: &'static str },
    /// No answer (connection refused, timeout, TLS).
    #[error("no answer from the server: {}", with_causes(.0))]
    Transport(#[from] reqwest::Error),
    /// An answer that is not what Flinks sends for this status.
    #[error("unexpected answer (HTTP {status}) from {endpoint}: {detail}")]
    UnexpectedAnswer {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },
    /// A data endpoint still answered 202 after the longest wait Flinks documents.
    #[error("{endpoint} still pending after {waited:?}")]
    StillPending {
        endpoint: &'static str,
        waited: std::time::Duration,
    },
}

impl Error {
    /// The refusal, when the server sent one.
    pub fn flinks(&self) -> Option<&FlinksError> {
        match self {
            Self::Flinks(refusal) => Some(refusal.as_ref()),
            _ => None,
        }
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says
/// nothing of why (connection refused, a certificate, a timeout).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
