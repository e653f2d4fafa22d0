//! What happens before a request reaches its handler: the host is read, paths with empty
//! segments are refused, endpoint names are matched case-insensitively; and what answers when
//! nothing matches.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Endpoint, FlinksCode, Reason};
use crate::host::{self, HostKind};
use crate::state::AppState;

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
pub async fn canonicalize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
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
        HostKind::Bare => {
            if let Some(error) = missing_suffix(
                &state,
                host_header.as_deref(),
                is_connect_path(request.uri().path()),
            )
            .await
            {
                return error.into_response();
            }
        }
        HostKind::Api(_) | HostKind::Iframe(_) => {}
    }

    let path = request.uri().path();
    // Connect page addresses end in '/' as Flinks documents them (`/v2/`,
    // `/v2/Credential/{institution}/`): that trailing '/' is not an empty segment.
    let checked = match path.strip_suffix('/') {
        Some(trimmed) if path.starts_with("/v2/") => trimmed,
        _ => path,
    };
    if path != "/" && checked.split('/').skip(1).any(str::is_empty) {
        return empty_segment(path).into_response();
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

/// `{instance}.{domain}` for an instance that exists: the `-api` (or `-iframe`) was left out of
/// the host. At Flinks such a name never resolves, so it is refused rather than served as a bare
/// host (docs/flinks-wire.md, "Hosts and URLs"). `*.localhost` stays bare.
async fn missing_suffix(state: &AppState, host: Option<&str>, connect: bool) -> Option<ApiError> {
    let (instance, domain) = host::suffixless_instance(host)?;
    // A store that cannot answer leaves the host bare; the handler then reports the store.
    state.store.instance(&instance).await.ok().flatten()?;
    let seen = format!("{instance}.{domain}");
    let (suffix, what) = if connect {
        ("iframe", "the Connect page")
    } else {
        ("api", "the API")
    };
    Some(ApiError::not_found(
        Reason::HostMissingApiSuffix,
        format!(
            "The host {seen} lacks the -{suffix} suffix, so at Flinks it would not resolve; \
             {what} of the {instance} instance is served at {instance}-{suffix}.{domain}."
        ),
    ))
}

/// A path with an empty segment, named by where the segment is: the customerId's place means its
/// variable is unset, the id after an endpoint likewise; anything else is a doubled '/'.
fn empty_segment(path: &str) -> ApiError {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() >= 3
        && segments[0].eq_ignore_ascii_case("v3")
        && segments[1].is_empty()
        && segments[2].eq_ignore_ascii_case("BankingServices")
    {
        return ApiError::not_found(
            Reason::CustomerIdMissing,
            "The customerId segment of the path is empty (/v3//BankingServices/…), which \
             usually means the variable holding it is unset; put your customerId (a GUID) \
             between /v3/ and /BankingServices.",
        );
    }
    let endpoint = segments
        .get(3)
        .and_then(|name| Endpoint::named(name))
        .filter(|endpoint| endpoint.path().ends_with('}'));
    if let (Some(endpoint), 5, Some(&"")) = (endpoint, segments.len(), segments.last()) {
        return ApiError::not_found(
            Reason::EmptyPathSegment,
            format!(
                "The path ends with /{}/ and no id after it, so the variable holding the id is \
                 empty; {} is called as {}.",
                endpoint.name(),
                endpoint.name(),
                usage(endpoint)
            ),
        );
    }
    ApiError::not_found(
        Reason::EmptyPathSegment,
        format!(
            "The path {path} has an empty segment (a doubled or trailing '/', as when a base URL \
             ending in '/' is joined with a path starting with '/'); API paths look like \
             {PATH_SHAPE}."
        ),
    )
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
    if let Some((endpoint, after)) = Endpoint::of_path(path) {
        let poll = match endpoint {
            Endpoint::GetAccountsSummary => Some(Endpoint::GetAccountsSummaryAsync),
            Endpoint::GetAccountsDetail => Some(Endpoint::GetAccountsDetailAsync),
            Endpoint::GetStatements => Some(Endpoint::GetStatementsAsync),
            _ => None,
        };
        if let (Some(poll), 1) = (poll, after) {
            return ApiError::not_found(
                Reason::RequestIdInPath,
                format!(
                    "{} takes the RequestId and its options in a JSON body on POST; only {} \
                     takes the RequestId in the path (query parameters are not read).",
                    endpoint.name(),
                    poll.path()
                ),
            );
        }
        return ApiError::not_found(
            Reason::PathWrongShape,
            format!("{} is called as {}.", endpoint.name(), usage(endpoint)),
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(error) = misplaced_prefix(&segments) {
        return error;
    }
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
        return unknown_endpoint(segments[3]);
    }
    ApiError::not_found(
        Reason::UnknownPath,
        format!(
            "API paths look like {PATH_SHAPE}; the endpoints are: {}.",
            known_endpoints()
        ),
    )
}

/// Paths whose `/v3/{customerId}/BankingServices` prefix is cut short or doubled: the usual
/// result of joining a base URL and a path (RFC 3986 resolution drops a base path that does not
/// end in '/'; a base that already ends in /v3 gets another).
fn misplaced_prefix(segments: &[&str]) -> Option<ApiError> {
    let is = |i: usize, name: &str| {
        segments
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case(name))
    };
    let is_endpoint_like = |i: usize| {
        segments
            .get(i)
            .is_some_and(|s| Endpoint::named(s).is_some() || rel_name(s).is_some())
    };
    if is(0, "BankingServices") {
        return Some(ApiError::not_found(
            Reason::PathPrefixMissing,
            "The path starts at /BankingServices, so /v3/{customerId} was lost: a base URL \
             without a trailing '/' joined with a '/'-rooted path drops its own path; end the \
             base URL with '/' and give request paths no leading '/'.",
        ));
    }
    if is(0, "v3") && is(1, "v3") {
        return Some(ApiError::not_found(
            Reason::VersionSegmentWrong,
            "The path has /v3 twice; the base URL already ends in /v3, so the code must not add \
             it again.",
        ));
    }
    if is(0, "v3") && (is(1, "BankingServices") || (segments.len() == 2 && is_endpoint_like(1))) {
        return Some(ApiError::not_found(
            Reason::CustomerIdMissing,
            format!(
                "The path has no customerId: it goes right after /v3/ ({PATH_SHAPE}), not in a \
                 header or the base URL's host."
            ),
        ));
    }
    if segments
        .first()
        .is_some_and(|s| crate::auth::is_uuid_shape(s))
        && is(1, "BankingServices")
    {
        return Some(ApiError::not_found(
            Reason::VersionSegmentWrong,
            "The path has no /v3 before the customerId; check whether the base URL is meant to \
             end in /v3 before the code adds the customerId.",
        ));
    }
    None
}

/// The names of the `Links` array's `rel`s, which are not endpoint names.
fn rel_name(name: &str) -> Option<Endpoint> {
    [
        ("AccountsDetail", Endpoint::GetAccountsDetail),
        ("AccountsSummary", Endpoint::GetAccountsSummary),
        ("Statements", Endpoint::GetStatements),
    ]
    .into_iter()
    .find(|(rel, _)| rel.eq_ignore_ascii_case(name))
    .map(|(_, endpoint)| endpoint)
}

/// Edit distance, for suggesting the endpoint a misspelled name meant.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + cost);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Flinks endpoints next to the ones bankgate serves, which integrations call and bankgate does
/// not answer yet: a 404 for them should not read as a typo.
const NOT_SERVED: [&str; 2] = ["Institutions", "GetWealthNightlyRefreshStatus"];

/// An endpoint segment that names no endpoint: say what it most likely meant.
fn unknown_endpoint(segment: &str) -> ApiError {
    if let Some(name) = NOT_SERVED
        .iter()
        .find(|name| name.eq_ignore_ascii_case(segment))
    {
        return ApiError::not_found(
            Reason::EndpointNotServed,
            format!(
                "{name} is a Flinks endpoint that bankgate does not serve yet; against bankgate, \
                 use the endpoints it serves: {}.",
                known_endpoints()
            ),
        );
    }
    let decoded = segment.replace("%20", " ").replace("%09", "\t");
    let trimmed = decoded.trim();
    if trimmed != decoded
        && let Some(endpoint) = Endpoint::named(trimmed)
    {
        return ApiError::not_found(
            Reason::EndpointNameWhitespace,
            format!(
                "The endpoint name {} is followed or preceded by whitespace (%20); remove the \
                 space from the constant that builds the path.",
                endpoint.name()
            ),
        );
    }
    // The longest endpoint name the segment starts with, and what follows it.
    let glued = Endpoint::ALL
        .iter()
        .filter(|endpoint| {
            segment.len() > endpoint.name().len()
                && segment
                    .get(..endpoint.name().len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(endpoint.name()))
        })
        .max_by_key(|endpoint| endpoint.name().len());
    if let Some(endpoint) = glued {
        let rest = &segment[endpoint.name().len()..];
        if rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return ApiError::not_found(
                Reason::EndpointIdMissingSlash,
                format!(
                    "The segment starts with {} and goes straight on into an id; put a '/' \
                     between them: {}.",
                    endpoint.name(),
                    usage(*endpoint)
                ),
            );
        }
    }
    let suggestion = if let Some(endpoint) = rel_name(segment) {
        Some(format!(
            "{segment} is a rel name in Links, the endpoint is {}.",
            endpoint.name()
        ))
    } else {
        Endpoint::ALL
            .iter()
            .map(|endpoint| (distance(segment, endpoint.name()), endpoint))
            .filter(|(d, _)| *d <= 6)
            .min_by_key(|(d, _)| *d)
            .map(|(_, endpoint)| format!("did you mean {}?", endpoint.name()))
    };
    ApiError::not_found(
        Reason::UnknownEndpoint,
        match suggestion {
            Some(suggestion) => format!(
                "There is no endpoint {segment} here; {suggestion} The endpoints are: {}.",
                known_endpoints()
            ),
            None => format!(
                "There is no endpoint {segment} here; the endpoints are: {}.",
                known_endpoints()
            ),
        },
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
    fn distance_counts_edits_ignoring_case() {
        assert_eq!(
            distance("GetAccountsSummaryAsyncAsync", "GetAccountsSummaryAsync"),
            5
        );
        assert_eq!(distance("getaccountsdetail", "GetAccountsDetail"), 0);
        assert_eq!(distance("GetAcountsDetail", "GetAccountsDetail"), 1);
    }

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
