//! Resolving who a request is for and which credential it carries.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bankgate_core::model::{InstanceKind, KeyKind, Tenant};
use bankgate_core::{
    CustomerId, Digest, InstanceName, LoginId, Malformed, PathId, Refusal, Timestamp,
};
use bankgate_store::CredentialMatch;

use crate::endpoint::Credential;
use crate::error::{ApiError, Endpoint};
use crate::host::HostKind;
use crate::journal::CredentialKind;
use crate::state::AppState;

/// Header names that are not credentials even though their names look like one.
const NOT_CREDENTIALS: &[&str] = &["proxy-authorization", "sec-websocket-key"];

/// The trimmed, non-empty value of a header.
pub fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The example token printed in the README's walkthrough: pasted as is, it names the README, not
/// the caller's own token.
const README_EXAMPLE_TOKEN: &str = "9f32e159-4e18-4c61-91a9-9f6af436d812";

/// HTTP authentication schemes that callers put in front of a Flinks credential.
const SCHEMES: &[&str] = &["Bearer", "Basic", "Token"];

/// Whether a value has the shape of every Flinks credential and id: a hyphenated UUID.
pub fn is_uuid_shape(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether a value is what an unset variable or a copied documentation example leaves behind:
/// `undefined`, `null`, `{customerId}`, `<token>`, `your-secret`.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    let wrapped = |open: &str, close: &str| {
        lower
            .strip_prefix(open)
            .and_then(|inner| inner.strip_suffix(close))
            .is_some_and(|inner| !is_uuid_shape(inner))
    };
    ["undefined", "null", "none", "nil", "nan", "[object object]"].contains(&lower.as_str())
        || wrapped("{", "}")
        || wrapped("<", ">")
        || wrapped("%7b", "%7d")
        || wrapped("%3c", "%3e")
        || wrapped("${", "}")
        || lower.starts_with("your")
        || lower.contains("changeme")
        || lower.starts_with("xxxx")
}

/// `Bearer abc` → `Some(("Bearer", "abc"))`.
fn scheme_of(value: &str) -> Option<(&'static str, &str)> {
    let (first, rest) = value.split_once(' ')?;
    let scheme = SCHEMES.iter().find(|s| s.eq_ignore_ascii_case(first))?;
    Some((scheme, rest.trim()))
}

/// Why a credential value cannot be a credential, judged by its shape alone (no lookup, so it
/// is safe to say on any instance: it describes only what the caller sent).
fn shape_refusal(header: &'static str, value: &str) -> Option<Refusal> {
    if let Some((scheme, _)) = scheme_of(value) {
        return Some(Refusal::CredentialSchemePrefix { header, scheme });
    }
    let shape = if is_uuid_shape(value) {
        if value.eq_ignore_ascii_case(README_EXAMPLE_TOKEN) {
            Malformed::ReadmeExample
        } else {
            return None;
        }
    } else if value.starts_with(['"', '\'']) || value.ends_with(['"', '\'']) {
        Malformed::Quoted
    } else if value.starts_with("9f32e159-") {
        Malformed::ReadmeExample
    } else if is_placeholder(value) {
        Malformed::Placeholder
    } else {
        Malformed::NotUuid
    };
    Some(Refusal::CredentialMalformed { header, shape })
}

/// The credential in `header`: `Ok(None)` when the header is absent or empty, `Err` when its
/// value cannot be a credential (a scheme prefix, quotes, a placeholder, not a UUID, bytes that
/// are not ASCII).
pub fn credential_in_header<'a>(
    headers: &'a HeaderMap,
    header: &'static str,
) -> Result<Option<&'a str>, Refusal> {
    let Some(raw) = headers.get(header) else {
        return Ok(None);
    };
    let Ok(value) = raw.to_str() else {
        // `to_str` refuses anything outside visible ASCII: a pasted '…' or typographic quote.
        let shape = if raw.as_bytes().starts_with(b"9f32e159-") {
            Malformed::ReadmeExample
        } else {
            Malformed::NotAscii
        };
        return Err(Refusal::CredentialMalformed { header, shape });
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match shape_refusal(header, value) {
        Some(refusal) => Err(refusal),
        None => Ok(Some(value)),
    }
}

/// When the expected header is absent: the headers that seem to carry the credential instead
/// (`x-api-key`, `Authorization`, `Bearer`, `flinks_auth_key`…), with their values.
fn misplaced_credentials<'a>(headers: &'a HeaderMap, expected: &str) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default().trim()))
        .filter(|(name, _)| *name != expected && !NOT_CREDENTIALS.contains(name))
        .filter(|(name, _)| {
            *name == "bearer"
                || ["auth", "key", "token", "secret"]
                    .iter()
                    .any(|word| name.contains(word))
        })
        .collect()
}

/// The name of a query parameter that looks like a credential (`?flinks-auth-key=…`,
/// `?authorizeToken=…`). Its value is never looked up: a URL is no place for a credential.
fn credential_parameter(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .find(|name| {
            let lower = name.to_ascii_lowercase();
            ["auth", "key", "token", "secret"]
                .iter()
                .any(|word| lower.contains(word))
        })
        .map(str::to_owned)
}

/// The refusal when the endpoint's header is absent. A credential under another header is looked
/// up (without spending it) so the refusal says what it is, not only where it was; else a
/// credential in the query string; else `missing`.
pub async fn missing_credential(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    query: Option<&str>,
    endpoint: Endpoint,
    missing: Refusal,
) -> Result<Refusal, ApiError> {
    let expected = endpoint.credential_header();
    let candidates = misplaced_credentials(headers, expected);
    let Some((first, _)) = candidates.first() else {
        return Ok(match credential_parameter(query) {
            Some(parameter) => Refusal::CredentialInQuery { parameter },
            None => missing,
        });
    };
    let now = tenant.instance.now(state.clock.as_ref());
    for (sent, value) in &candidates {
        let bare = scheme_of(value).map_or(*value, |(_, rest)| rest);
        // Only a UUID can be a credential: nothing else is worth a lookup.
        if !is_uuid_shape(bare) {
            continue;
        }
        let (_, found) = lookup(state, bare, now).await?;
        if let Some(found) = found {
            let wrong_header = Refusal::WrongAuthHeader {
                sent: (*sent).to_owned(),
                expected,
            };
            return Ok(misplaced_value(tenant, endpoint, found, wrong_header));
        }
    }
    Ok(Refusal::WrongAuthHeader {
        sent: (*first).to_owned(),
        expected,
    })
}

/// What a known credential under the wrong header is, for `endpoint`: the right credential in
/// the wrong header (`wrong_header`), or another credential than the endpoint takes.
fn misplaced_value(
    tenant: &Tenant,
    endpoint: Endpoint,
    found: CredentialMatch,
    wrong_header: Refusal,
) -> Refusal {
    let (owner, instance, instance_kind, what) = match found {
        CredentialMatch::Key {
            customer_id,
            instance,
            instance_kind,
            kind,
            ..
        } => (customer_id, instance, instance_kind, Some(kind)),
        CredentialMatch::Token {
            customer_id,
            instance,
            instance_kind,
        } => (customer_id, instance, instance_kind, None),
    };
    if owner != tenant.customer.id {
        return if instance != tenant.instance.name {
            other_instance(tenant.instance.kind, &instance, instance_kind, wrong_header)
        } else {
            // Another customer of the same instance: never say whose.
            wrong_header
        };
    }
    match (endpoint.credential(), what) {
        (Credential::SecretKey, None) => Refusal::TokenGivenAsAuthKey,
        (Credential::SecretKey, Some(KeyKind::Api)) => Refusal::ApiKeyGivenAsAuthKey,
        (Credential::AuthorizeToken, Some(KeyKind::Secret)) => Refusal::AuthKeyGivenAsToken,
        (Credential::AuthorizeToken, Some(KeyKind::Api)) => Refusal::ApiKeyGivenAsToken,
        (Credential::ApiKey, None) => Refusal::TokenGivenAsApiKey,
        (Credential::ApiKey, Some(KeyKind::Secret)) => Refusal::AuthKeyGivenAsApiKey,
        _ => wrong_header,
    }
}

/// Finds the customer named in the path, checking it belongs to the instance the host names.
pub async fn resolve_tenant(
    state: &AppState,
    host: &HostKind,
    customer_id: &str,
    endpoint: Endpoint,
) -> Result<Tenant, ApiError> {
    let span = tracing::Span::current();
    span.record("endpoint", endpoint.name());
    let refuse = |refusal: Refusal| ApiError::refused(endpoint, &refusal);
    if is_placeholder(customer_id) {
        return Err(refuse(Refusal::PathPlaceholder {
            what: PathId::CustomerId,
        }));
    }
    let customer_id: CustomerId = customer_id
        .parse()
        .map_err(|_| refuse(Refusal::CustomerNotFound))?;
    let tenant = state
        .store
        .tenant(customer_id)
        .await?
        .ok_or_else(|| refuse(Refusal::CustomerNotFound))?;
    if let HostKind::Api(instance) = host
        && *instance != tenant.instance.name
    {
        // An instance the host names but that does not exist counts as production: say nothing.
        let addressed = state
            .store
            .instance(instance)
            .await?
            .map_or(InstanceKind::Production, |i| i.kind);
        return Err(refuse(other_instance(
            addressed,
            &tenant.instance.name,
            tenant.instance.kind,
            Refusal::CustomerNotFound,
        )));
    }
    span.record("customer_id", tracing::field::display(tenant.customer.id));
    span.record("instance", tenant.instance.name.as_str());
    crate::journal::note(|facts| {
        facts.instance = Some(tenant.instance.name.as_str().to_owned());
        facts.customer_id = Some(tenant.customer.id.to_string());
    });
    Ok(tenant)
}

/// The refusal for a credential or customerId that belongs to `other`, not to the instance
/// addressed. Hints may name an instance only on a sandbox, and only a sandbox's
/// (`docs/flinks-wire.md`, "Error envelope"): anything involving a production instance gets the
/// plain `otherwise`.
pub fn other_instance(
    addressed: InstanceKind,
    other: &InstanceName,
    other_kind: InstanceKind,
    otherwise: Refusal,
) -> Refusal {
    if addressed == InstanceKind::Sandbox && other_kind == InstanceKind::Sandbox {
        Refusal::WrongEnvironment {
            named: Some(other.clone()),
        }
    } else {
        otherwise
    }
}

/// The refusal for a LoginId this customer does not hold: on a sandbox, a LoginId that another
/// sandbox instance issued is named (#30 of docs/integration-mistakes.md); anything else, and
/// every production instance either way, stays `login_not_found`. One primary-key lookup.
pub async fn login_not_found(state: &AppState, tenant: &Tenant, login_id: LoginId) -> Refusal {
    if tenant.instance.kind != InstanceKind::Sandbox {
        return Refusal::LoginNotFound;
    }
    match state.store.login_instance(login_id).await {
        Ok(Some((instance, InstanceKind::Sandbox))) if instance != tenant.instance.name => {
            Refusal::LoginOnOtherInstance { instance }
        }
        // Unknown, this instance's (another customer's: never say whose), a production
        // instance's, or the store could not say.
        _ => Refusal::LoginNotFound,
    }
}

/// Classifies a credential that is not what the endpoint wanted from this customer.
/// `invalid` is what to say when it is simply not a valid credential here.
pub fn misused_credential(
    tenant: &Tenant,
    found: Option<CredentialMatch>,
    invalid: Refusal,
) -> Refusal {
    let (owner, instance, instance_kind, what) = match found {
        None => return invalid,
        Some(CredentialMatch::Key {
            customer_id,
            instance,
            instance_kind,
            kind,
            ..
        }) => (customer_id, instance, instance_kind, Some(kind)),
        Some(CredentialMatch::Token {
            customer_id,
            instance,
            instance_kind,
        }) => (customer_id, instance, instance_kind, None),
    };
    if owner != tenant.customer.id {
        return if instance != tenant.instance.name {
            other_instance(tenant.instance.kind, &instance, instance_kind, invalid)
        } else {
            // Another customer of the same instance: never say whose.
            invalid
        };
    }
    match (&invalid, what) {
        (Refusal::AuthKeyInvalid, None) => Refusal::TokenGivenAsAuthKey,
        (Refusal::AuthKeyInvalid, Some(KeyKind::Api)) => Refusal::ApiKeyGivenAsAuthKey,
        (Refusal::ApiKeyInvalid, Some(KeyKind::Secret)) => Refusal::AuthKeyGivenAsApiKey,
        (Refusal::AuthorizeTokenInvalid, Some(KeyKind::Secret)) => Refusal::AuthKeyGivenAsToken,
        (Refusal::AuthorizeTokenInvalid, Some(KeyKind::Api)) => Refusal::ApiKeyGivenAsToken,
        (Refusal::ApiKeyInvalid, None) => Refusal::TokenGivenAsApiKey,
        _ => invalid,
    }
}

/// Whether `digest` is a current key of `kind` belonging to this tenant.
pub fn is_current_key(tenant: &Tenant, found: &Option<CredentialMatch>, wanted: KeyKind) -> bool {
    matches!(
        found,
        Some(CredentialMatch::Key { customer_id, kind, retired_at: None, .. })
            if *customer_id == tenant.customer.id && *kind == wanted
    )
}

/// What a digest is (a key, a token), telling the request journal what the value matched.
pub async fn find_credential(
    state: &AppState,
    digest: Digest,
    now: Timestamp,
) -> Result<Option<CredentialMatch>, bankgate_core::DomainError> {
    let found = state.store.find_credential(digest, now).await?;
    if let Some(found) = &found {
        let kind = match found {
            CredentialMatch::Key {
                kind: KeyKind::Secret,
                ..
            } => CredentialKind::SecretKey,
            CredentialMatch::Key {
                kind: KeyKind::Api, ..
            } => CredentialKind::ApiKey,
            CredentialMatch::Token { .. } => CredentialKind::AuthorizeToken,
        };
        crate::journal::note(|facts| facts.credentials.push((digest, kind)));
    }
    Ok(found)
}

/// Looks a presented credential up by digest.
pub async fn lookup(
    state: &AppState,
    value: &str,
    now: Timestamp,
) -> Result<(Digest, Option<CredentialMatch>), ApiError> {
    let digest = Digest::of_presented(value);
    let found = find_credential(state, digest, now).await?;
    Ok((digest, found))
}

/// The address of the client, when the server knows it (served over TCP with connect info);
/// `None` in in-process tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// A LoginId in the path (DeleteCard, GetMFAQuestions): a placeholder left in is named as such,
/// anything else that is not a LoginId is not found (it cannot name a card); the journal notes it.
pub fn path_login_id(endpoint: Endpoint, login_id: &str) -> Result<LoginId, ApiError> {
    if is_placeholder(login_id) {
        return Err(ApiError::refused(
            endpoint,
            &Refusal::PathPlaceholder {
                what: PathId::LoginId,
            },
        ));
    }
    let Ok(login_id) = login_id.parse::<LoginId>() else {
        return Err(ApiError::refused(endpoint, &Refusal::LoginNotFound));
    };
    crate::journal::record_login_id(login_id);
    Ok(login_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(value: &str) -> Option<Refusal> {
        shape_refusal("flinks-auth-key", value)
    }

    fn malformed(shape: Malformed) -> Option<Refusal> {
        Some(Refusal::CredentialMalformed {
            header: "flinks-auth-key",
            shape,
        })
    }

    #[test]
    fn every_uuid_is_left_to_the_lookup() {
        assert_eq!(shape("c4569c54-e167-4d34-8de6-f4113bc82414"), None);
        assert_eq!(shape("C4569C54-E167-4D34-8DE6-F4113BC82414"), None);
    }

    #[test]
    fn shapes_that_cannot_be_credentials_are_named() {
        assert_eq!(
            shape("bearer c4569c54-e167-4d34-8de6-f4113bc82414"),
            Some(Refusal::CredentialSchemePrefix {
                header: "flinks-auth-key",
                scheme: "Bearer"
            })
        );
        assert_eq!(
            shape("\"c4569c54-e167-4d34-8de6-f4113bc82414\""),
            malformed(Malformed::Quoted)
        );
        assert_eq!(
            shape(README_EXAMPLE_TOKEN),
            malformed(Malformed::ReadmeExample)
        );
        assert_eq!(shape("9f32e159-..."), malformed(Malformed::ReadmeExample));
        for placeholder in [
            "<token>",
            "{authorizeToken}",
            "your-secret",
            "undefined",
            "${TOKEN}",
        ] {
            assert_eq!(
                shape(placeholder),
                malformed(Malformed::Placeholder),
                "{placeholder}"
            );
        }
        assert_eq!(shape("c4569c54-e167"), malformed(Malformed::NotUuid));
    }

    #[test]
    fn a_braced_uuid_is_not_a_placeholder() {
        assert!(!is_placeholder("{43387ca6-0391-4c82-857d-70d95f087ecb}"));
        assert!(is_placeholder("{customerId}"));
        assert!(is_placeholder("%7BcustomerId%7D"));
        assert!(is_placeholder("null"));
        assert!(!is_placeholder("43387ca6-0391-4c82-857d-70d95f087ecb"));
    }

    #[test]
    fn query_parameters_that_look_like_credentials() {
        assert_eq!(
            credential_parameter(Some("a=1&flinks-auth-key=x")).as_deref(),
            Some("flinks-auth-key")
        );
        assert_eq!(credential_parameter(Some("debug=1")), None);
        assert_eq!(credential_parameter(None), None);
    }
}
