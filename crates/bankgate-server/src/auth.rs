//! Resolving who a request is for and which credential it carries.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bankgate_core::model::{InstanceKind, KeyKind, Tenant};
use bankgate_core::{CustomerId, Digest, InstanceName, Refusal, Timestamp};
use bankgate_store::CredentialMatch;

use crate::error::{ApiError, Endpoint};
use crate::host::HostKind;
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

/// When the expected header is absent: the name of a header that seems to carry the credential
/// instead (`x-api-key`, `Authorization`, `Bearer`, `flinks_auth_key`…).
pub fn misplaced_credential(headers: &HeaderMap, expected: &str) -> Option<String> {
    headers
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != expected && !NOT_CREDENTIALS.contains(name))
        .find(|name| {
            *name == "bearer"
                || ["auth", "key", "token", "secret"]
                    .iter()
                    .any(|word| name.contains(word))
        })
        .map(str::to_owned)
}

/// The refusal for a missing credential: a misplaced one if there is any, else `missing`.
pub fn missing_credential(headers: &HeaderMap, endpoint: Endpoint, missing: Refusal) -> Refusal {
    match misplaced_credential(headers, endpoint.credential_header()) {
        Some(sent) => Refusal::WrongAuthHeader {
            sent,
            expected: endpoint.credential_header(),
        },
        None => missing,
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

/// Looks a presented credential up by digest.
pub async fn lookup(
    state: &AppState,
    value: &str,
    now: Timestamp,
) -> Result<(Digest, Option<CredentialMatch>), ApiError> {
    let digest = Digest::of_presented(value);
    Ok((digest, state.store.find_credential(digest, now).await?))
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
