//! The credentials and ids of the Flinks flow as distinct types, so one cannot be passed where
//! another is expected (the secret key to /Authorize, a LoginId to a data endpoint), and the
//! authorize token is spent by value.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! secret {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub(crate) fn expose(&self) -> &str {
                &self.0
            }
        }

        /// Never prints the value: a credential must not reach a log through `{:?}`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(…{})"), last_four(&self.0))
            }
        }
    };
}

macro_rules! id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

secret! {
    /// The secret key (`flinks-auth-key` on GenerateAuthorizeToken). It only mints authorize
    /// tokens.
    SecretKey
}

secret! {
    /// The x-api-key, read by the data endpoints and DeleteCard.
    ApiKey
}

id! {
    /// The customerId in every path: the GUID of an integration on an instance.
    CustomerId
}

id! {
    /// A saved bank connection ("card"), permanent until DeleteCard.
    LoginId
}

id! {
    /// One authorization session; it opens the data endpoints.
    RequestId
}

/// A single-use authorize token from GenerateAuthorizeToken. It is neither `Clone` nor `Copy`:
/// [`crate::Client::authorize`] takes it by value, so spending it twice does not compile.
///
/// Each `compile_fail` example below has a twin that compiles and differs only in the marked
/// line, so the failure can only come from that line (stable rustdoc does not check error codes).
///
/// ```compile_fail
/// # async fn twice(client: bankgate_client::Client, token: bankgate_client::AuthorizeToken, other: bankgate_client::AuthorizeToken) {
/// use bankgate_client::AuthorizeRequest;
/// let _ = client.authorize(token, AuthorizeRequest::cached("a-login-id")).await;
/// let _ = client.authorize(token, AuthorizeRequest::cached("a-login-id")).await; // used twice
/// # }
/// ```
/// ```no_run
/// # async fn twice(client: bankgate_client::Client, token: bankgate_client::AuthorizeToken, other: bankgate_client::AuthorizeToken) {
/// use bankgate_client::AuthorizeRequest;
/// let _ = client.authorize(token, AuthorizeRequest::cached("a-login-id")).await;
/// let _ = client.authorize(other, AuthorizeRequest::cached("a-login-id")).await; // a new token
/// # }
/// ```
///
/// A token cannot be kept aside for later:
///
/// ```compile_fail
/// # fn keep(token: bankgate_client::AuthorizeToken) {
/// let _kept = token.clone(); // not Clone
/// # }
/// ```
/// ```no_run
/// # fn keep(token: bankgate_client::AuthorizeToken) {
/// let _kept = token.into_connect_parameter(); // consumed: the Connect page spends it
/// # }
/// ```
///
/// The secret key is not an authorize token (the most common /Authorize mistake):
///
/// ```compile_fail
/// # async fn mix_up(client: bankgate_client::Client, secret: bankgate_client::SecretKey, token: bankgate_client::AuthorizeToken) {
/// use bankgate_client::AuthorizeRequest;
/// let _ = client.authorize(secret, AuthorizeRequest::cached("a-login-id")).await; // the secret key
/// # }
/// ```
/// ```no_run
/// # async fn mix_up(client: bankgate_client::Client, secret: bankgate_client::SecretKey, token: bankgate_client::AuthorizeToken) {
/// use bankgate_client::AuthorizeRequest;
/// let _ = client.authorize(token, AuthorizeRequest::cached("a-login-id")).await; // the token
/// # }
/// ```
///
/// A LoginId does not open a data endpoint; the RequestId of an authorization does:
///
/// ```compile_fail
/// # async fn data(client: bankgate_client::Client, key: bankgate_client::ApiKey, login: bankgate_client::LoginId, request: bankgate_client::RequestId) {
/// let _ = client.get_accounts_summary(&key, &login).await; // a LoginId
/// # }
/// ```
/// ```no_run
/// # async fn data(client: bankgate_client::Client, key: bankgate_client::ApiKey, login: bankgate_client::LoginId, request: bankgate_client::RequestId) {
/// let _ = client.get_accounts_summary(&key, &request).await; // the RequestId
/// # }
/// ```
pub struct AuthorizeToken(String);

impl AuthorizeToken {
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    /// The token's value, for the Connect iframe's `authorizeToken=` parameter; taking it
    /// consumes the token, which is spent by the page that opens it.
    pub fn into_connect_parameter(self) -> String {
        self.0
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthorizeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorizeToken(…{})", last_four(&self.0))
    }
}

fn last_four(value: &str) -> &str {
    let start = value
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(index, _)| index);
    &value[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_last_four_characters() {
        let key = SecretKey::new("c4569c54-e167-4d34-8de6-f4113bc82414");
        assert_eq!(format!("{key:?}"), "SecretKey(…2414)");
        let token = AuthorizeToken::new("ab".to_owned());
        assert_eq!(format!("{token:?}"), "AuthorizeToken(…ab)");
    }
}
