//! What happens before a request reaches its handler: the host is read, paths with empty
//! segments are refused, endpoint names are matched case-insensitively; and what answers when
//! nothing matches.

use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Endpoint, FlinksCode, Reason};
use crate::host::{self, HostKind};

const PATH_SHAPE: &str = "/v3/{customerId}/BankingServices/{Endpoint}";

fn known_endpoints() -> String {
    let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
    names.join(", ")
}

/// How an endpoint is called, for hints: its documented methods and path.
fn usage(endpoint: Endpoint) -> String {
    format!(
        "{} {}",
        crate::openapi::methods_of(endpoint).join(" or "),
        endpoint.path()
    )
}

/// Runs before routing (it wraps the router), so the router sees canonical paths.
pub async fn canonicalize(mut request: Request, next: Next) -> Response {
    let host_header = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let host = host::classify(host_header.as_deref());
    match &host {
        HostKind::WrongShape(name) => {
            return ApiError::not_found(
                Reason::HostWrongShape,
                format!(
                    "The host {name} is not an instance host: use {{instance}}-api.{{domain}} \
                     (for example toolbox-api.localhost) or a bare host such as localhost."
                ),
            )
            .into_response();
        }
        HostKind::Iframe(instance) if !is_connect_path(request.uri().path()) => {
            return ApiError::not_found(
                Reason::ApiOnIframeHost,
                format!(
                    "{instance}-iframe hosts serve the Connect page (/v2/); the API is on \
                     {instance}-api hosts."
                ),
            )
            .into_response();
        }
        HostKind::Bare | HostKind::Api(_) | HostKind::Iframe(_) => {}
    }

    let path = request.uri().path();
    // Connect page addresses end in '/' as Flinks documents them (`/v2/`,
    // `/v2/Credential/{institution}/`): that trailing '/' is not an empty segment.
    let checked = match path.strip_suffix('/') {
        Some(trimmed) if path.starts_with("/v2/") => trimmed,
        _ => path,
    };
    if path != "/" && checked.split('/').skip(1).any(str::is_empty) {
        return ApiError::not_found(
            Reason::EmptyPathSegment,
            format!(
                "The path {path} has an empty segment (a doubled or trailing '/'); API paths \
                 look like {PATH_SHAPE}."
            ),
        )
        .into_response();
    }
    if let Some(canonical) = canonical_path(path).filter(|canonical| canonical != path) {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{canonical}?{query}"),
            None => canonical,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request.extensions_mut().insert(host);
    next.run(request).await
}

/// The paths an iframe host serves: the Connect page and its assets.
fn is_connect_path(path: &str) -> bool {
    path == "/" || path == "/v2" || path.starts_with("/v2/")
}

/// `/V3/{id}/bankingservices/authorize/…` → `/v3/{id}/BankingServices/Authorize/…`
fn canonical_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() < 4
        || !segments[0].eq_ignore_ascii_case("v3")
        || !segments[2].eq_ignore_ascii_case("BankingServices")
    {
        return None;
    }
    let endpoint = Endpoint::named(segments[3])?;
    let mut canonical = format!("/v3/{}/BankingServices/{}", segments[1], endpoint.name());
    for rest in &segments[4..] {
        canonical.push('/');
        canonical.push_str(rest);
    }
    Some(canonical)
}

/// No route matched.
pub async fn not_found(uri: Uri) -> ApiError {
    let path = uri.path();
    if let Some((endpoint, _)) = Endpoint::of_path(path) {
        return ApiError::not_found(
            Reason::PathWrongShape,
            format!("{} is called as {}.", endpoint.name(), usage(endpoint)),
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() >= 4
        && segments[0].eq_ignore_ascii_case("v3")
        && !segments[2].eq_ignore_ascii_case("BankingServices")
    {
        return ApiError::not_found(
            Reason::UnknownPath,
            format!(
                "The third segment of the path is {:?}; API paths look like {PATH_SHAPE}.",
                segments[2]
            ),
        );
    }
    if segments.len() >= 4 && segments[0].eq_ignore_ascii_case("v3") {
        return ApiError::not_found(
            Reason::UnknownEndpoint,
            format!(
                "There is no endpoint {} here; the endpoints are: {}.",
                segments[3],
                known_endpoints()
            ),
        );
    }
    ApiError::not_found(
        Reason::UnknownPath,
        format!(
            "API paths look like {PATH_SHAPE}; the endpoints are: {}.",
            known_endpoints()
        ),
    )
}

/// A route matched the path but not the method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let hint = match Endpoint::of_path(uri.path()) {
        Some((endpoint, _)) => format!("{} is called as {}.", endpoint.name(), usage(endpoint)),
        None => format!("{method} is not accepted here."),
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        FlinksCode::InvalidRequest,
        "The requested method is not allowed",
        Reason::MethodNotAllowed,
        hint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_become_canonical() {
        assert_eq!(
            canonical_path("/V3/abc/bankingservices/generateauthorizetoken").as_deref(),
            Some("/v3/abc/BankingServices/GenerateAuthorizeToken")
        );
        assert_eq!(
            canonical_path("/v3/abc/BankingServices/deletecard/xyz").as_deref(),
            Some("/v3/abc/BankingServices/DeleteCard/xyz")
        );
        assert_eq!(canonical_path("/v3/abc/BankingServices/Nope"), None);
        assert_eq!(canonical_path("/v2/abc/BankingServices/Authorize"), None);
    }
}
