//! `GET /admin/requests`: this node's request journal (README, "Request journal").

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use bankgate_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AdminState, instance_name};
use crate::error::{ApiError, Reason};
use crate::journal::{Entry, Filter};

/// How many entries one answer holds when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// The most one answer holds.
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RequestFilter {
    instance: Option<String>,
    endpoint: Option<String>,
    status: Option<u16>,
    reason: Option<String>,
    request_id: Option<String>,
    login_id: Option<String>,
    since: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestsView {
    /// Newest first.
    requests: Vec<Entry>,
    /// How many requests this node keeps per instance (0: the journal is off).
    capacity: usize,
}

/// The last requests this node answered, newest first, with what went wrong. Each node keeps
/// its own journal; credentials appear only as fingerprints.
#[utoipa::path(get, path = "/admin/requests", tag = "journal", security(("admin_token" = [])),
    params(
        ("instance" = Option<String>, Query, description = "Only this instance's requests"),
        ("endpoint" = Option<String>, Query, description = "Only this endpoint's (e.g. Authorize)"),
        ("status" = Option<u16>, Query, description = "Only answers with this HTTP status"),
        ("reason" = Option<String>, Query, description = "Only refusals with this Reason"),
        ("requestId" = Option<String>, Query, description = "Only requests about this RequestId"),
        ("loginId" = Option<String>, Query, description = "Only requests about this LoginId"),
        ("since" = Option<String>, Query, description = "Only requests at or after this time (RFC 3339)"),
        ("after" = Option<u64>, Query, description = "Only entries with a larger id (to follow the journal)"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 10000)"),
    ),
    responses((status = 200, body = RequestsView), crate::error::ErrorResponses))]
pub(crate) async fn list_requests(
    State(state): State<AdminState>,
    filter: Result<Query<RequestFilter>, QueryRejection>,
) -> Result<Json<RequestsView>, ApiError> {
    let Query(query) = filter.map_err(|rejection| {
        ApiError::invalid_request(
            Reason::QueryInvalid,
            format!(
                "The query string could not be read ({}); the parameters are instance, endpoint, \
                 status, reason, requestId, loginId, since (RFC 3339), after and limit.",
                rejection.body_text()
            ),
        )
    })?;
    let instance = query
        .instance
        .as_deref()
        .map(instance_name)
        .transpose()?
        .map(|name| name.as_str().to_owned());
    let since = query
        .since
        .as_deref()
        .map(|since| {
            chrono::DateTime::parse_from_rfc3339(since.trim())
                .map(|at| Timestamp::from_datetime(at.to_utc()))
                .map_err(|_| {
                    ApiError::invalid_request(
                        Reason::QueryInvalid,
                        format!(
                            "since={since:?} is not an RFC 3339 time, e.g. 2026-12-01T09:30:00Z."
                        ),
                    )
                })
        })
        .transpose()?;
    let filter = Filter {
        instance,
        endpoint: query.endpoint,
        status: query.status,
        reason: query.reason,
        request_id: query.request_id,
        login_id: query.login_id,
        since,
        after: query.after,
        limit: query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
    };
    let journal = &state.app.journal;
    Ok(Json(RequestsView {
        requests: journal
            .list(&filter)
            .into_iter()
            .map(|entry| entry.as_ref().clone())
            .collect(),
        capacity: journal.capacity(),
    }))
}
