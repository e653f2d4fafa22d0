//! Credentials: secret keys, x-api-keys and authorize tokens.
//!
//! All three are UUID v4 strings drawn from the OS CSPRNG. bankgate stores only their SHA-256
//! digests and finds them by digest, so no plaintext is at rest and no comparison of a secret
//! depends on how many leading characters matched.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The last 4 characters of a presented value (trimmed): enough to tell two values apart in a
/// message or the request journal, never enough to use one.
pub fn last_four(value: &str) -> &str {
    let value = value.trim();
    let start = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    &value[start..]
}

/// The SHA-256 digest of a credential as presented on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of what a client sent, trimmed and lowercased: every credential is a GUID issued
    /// lowercase, and clients (.NET ones) may send GUIDs uppercase, as they do customerIds.
    pub fn of_presented(value: &str) -> Self {
        Self(Sha256::digest(value.trim().to_ascii_lowercase().as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a digest from a stored blob; `None` when the blob has the wrong length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for Digest {
    // A digest is not secret, but a short form keeps logs readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}…)", hex::encode(&self.0[..4]))
    }
}

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// A new random value (UUID v4 from the OS CSPRNG).
            pub fn generate() -> Self {
                Self(crate::ids::random_uuid().hyphenated().to_string())
            }

            /// Wraps a value that is already known (the published toolbox credentials, or what
            /// a client sent).
            pub fn from_plaintext(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The plaintext, to hand to its owner exactly once.
            pub fn expose(&self) -> &str {
                &self.0
            }

            pub fn digest(&self) -> Digest {
                Digest::of_presented(&self.0)
            }
        }

        impl fmt::Debug for $name {
            // Never let a secret reach a log line through `{:?}`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_string!(
    /// The customer's secret key ("flinks-auth-key" on GenerateAuthorizeToken). Never expires.
    SecretKey
);
secret_string!(
    /// The customer's `x-api-key` for the data endpoints and DeleteCard.
    ApiKey
);
secret_string!(
    /// A single-use authorize token, valid for the instance's token lifetime.
    AuthorizeToken
);
secret_string!(
    /// What a browser holds (cookie and form field) to continue its Connect page session.
    ConnectSecret
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_distinct_lowercase_uuids() {
        let a = AuthorizeToken::generate();
        let b = AuthorizeToken::generate();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.expose()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.expose(), a.expose().to_lowercase());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SecretKey::from_plaintext("c4569c54-e167-4d34-8de6-f4113bc82414");
        let shown = format!("{key:?}");
        assert!(!shown.contains("c4569c54"), "{shown}");
    }

    #[test]
    fn digest_is_sha256_of_the_trimmed_value() {
        let key = SecretKey::from_plaintext("abc");
        assert_eq!(
            hex::encode(key.digest().as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::of_presented("  abc\t"), key.digest());
        assert_eq!(
            Digest::of_presented("ABC"),
            key.digest(),
            "GUIDs in any case"
        );
    }
}
