//! Identifiers. Each is its own type so a LoginId can never be passed where a RequestId goes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A UUID v4 whose 122 random bits come straight from the OS CSPRNG (`getrandom`), whatever
/// features other crates turn on in `uuid` (one enables its user-space `fast-rng`).
pub fn random_uuid() -> Uuid {
    let mut bytes = [0_u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => uuid::Builder::from_random_bytes(bytes).into_uuid(),
        // The OS source failing is near impossible; uuid's own generator is still seeded by it.
        Err(_) => Uuid::new_v4(),
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id (UUID v4 from the OS CSPRNG).
            pub fn new_random() -> Self {
                Self($crate::ids::random_uuid())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            // Lowercase and hyphenated, as Flinks writes every GUID.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The GUID in every API path; identifies one customer (integration) of one instance.
    CustomerId
);
uuid_id!(
    /// A saved bank connection ("card"); permanent until DeleteCard.
    LoginId
);
uuid_id!(
    /// One /Authorize session.
    RequestId
);

/// The name of an instance (`toolbox`, `acme-ca`): the first label of its hosts, before `-api`
/// or `-iframe`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

/// Why a string is not an instance name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "instance names are 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-' \
     and not ending in '-api' or '-iframe' (got {0:?})"
)]
pub struct InvalidInstanceName(pub String);

impl InstanceName {
    /// The public sandbox every Flinks integrator starts on.
    pub fn toolbox() -> Self {
        Self("toolbox".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceName {
    type Error = InvalidInstanceName;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        // A DNS label, so that `{name}-api.{domain}` is a valid host; and not itself ending in a
        // host suffix, or `x-api-api.domain` would be ambiguous to read back.
        let valid = !value.is_empty()
            && value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-')
            && !value.ends_with("-api")
            && !value.ends_with("-iframe");
        if valid {
            Ok(Self(value))
        } else {
            Err(InvalidInstanceName(value))
        }
    }
}

impl FromStr for InstanceName {
    type Err = InvalidInstanceName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<InstanceName> for String {
    fn from(value: InstanceName) -> Self {
        value.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_lowercase_hyphenated_and_parse_any_case() {
        let id: CustomerId = "43387CA6-0391-4C82-857D-70D95F087ECB".parse().unwrap();
        assert_eq!(id.to_string(), "43387ca6-0391-4c82-857d-70d95f087ecb");
        assert!("not-a-guid".parse::<LoginId>().is_err());
    }

    #[test]
    fn instance_names_are_dns_labels_without_host_suffixes() {
        for good in ["toolbox", "acme-ca", "a", "x1"] {
            assert!(good.parse::<InstanceName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "Toolbox",
            "-a",
            "a-",
            "a.b",
            "acme-api",
            "acme-iframe",
            "a b",
        ] {
            assert!(bad.parse::<InstanceName>().is_err(), "{bad}");
        }
        assert!("a".repeat(64).parse::<InstanceName>().is_err());
    }
}
