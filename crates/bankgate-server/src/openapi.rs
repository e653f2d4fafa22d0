//! The OpenAPI 3 documents of the public Flinks API and of the admin API. Their paths come from
//! the routers themselves (`api::routes`, `admin::routes`), so a documented route always has a
//! handler and the reverse; this module adds what is not a route: titles, servers, the admin
//! bearer scheme, and operationIds. Served at `/openapi.json` (public port) and
//! `/openapi/public.json`, `/openapi/admin.json` (admin port).

use std::sync::OnceLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::endpoint::Endpoint;

/// Where the public API listens by default (`--listen`).
const PUBLIC_SERVER: &str = "http://127.0.0.1:8080";
/// Where the admin API listens by default (`--admin-listen`).
const ADMIN_SERVER: &str = "http://127.0.0.1:8081";

#[derive(OpenApi)]
#[openapi(info(
    title = "bankgate: the Flinks API",
    description = "The Flinks authorization API as bankgate serves it. Every error is the \
                   Flinks envelope, with bankgate's Reason and Hint.",
))]
struct PublicInfo;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bankgate admin API",
        description = "Operators' and test suites' surface, on the admin listener. /admin/ \
                       routes need `Authorization: Bearer <admin token>`.",
    ),
    modifiers(&AdminTokenScheme),
)]
struct AdminInfo;

/// Declares the bearer scheme the `/admin/` routes use.
struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn server(url: &str, description: &str) -> Server {
    let mut server = Server::new(url);
    server.description = Some(description.to_owned());
    server
}

/// The operations of a path item, with their HTTP method, in a fixed order.
fn operations(item: &mut PathItem) -> [(&'static str, &mut Option<Operation>); 5] {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("PATCH", &mut item.patch),
        ("DELETE", &mut item.delete),
    ]
}

/// The HTTP methods a path item documents, in the order of [`operations`].
fn methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter(|(_, operation)| operation.is_some())
    .map(|(method, _)| method)
    .collect()
}

/// Names each operation after its endpoint; the POST of an endpoint that also takes GET gets
/// `Post` appended, so every operationId is unique (client generators need that).
fn name_operations(doc: &mut utoipa::openapi::OpenApi) {
    for endpoint in Endpoint::ALL {
        let Some(item) = doc.paths.paths.get_mut(endpoint.path()) else {
            continue;
        };
        let has_get = item.get.is_some();
        for (method, operation) in operations(item) {
            if let Some(operation) = operation {
                let suffix = if method == "POST" && has_get {
                    "Post"
                } else {
                    ""
                };
                operation.operation_id = Some(format!("{}{suffix}", endpoint.name()));
            }
        }
    }
}

fn build_public() -> utoipa::openapi::OpenApi {
    let mut doc = PublicInfo::openapi();
    doc.merge(crate::api::routes().into_openapi());
    name_operations(&mut doc);
    doc.servers = Some(vec![server(
        PUBLIC_SERVER,
        "The default public listener (--listen)",
    )]);
    doc
}

/// Every `/admin/` operation may answer 429 (too many wrong admin tokens from one address),
/// in the same envelope as its 401.
fn document_admin_lockout(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/admin/") {
            continue;
        }
        for (_, operation) in operations(item) {
            let Some(operation) = operation else { continue };
            let responses = &mut operation.responses.responses;
            if let Some(RefOr::T(unauthorized)) = responses.get("401") {
                let mut locked = unauthorized.clone();
                locked.description = "Too many wrong admin tokens from this address; \
                                      `Retry-After` says how long to wait"
                    .to_owned();
                responses.insert("429".to_owned(), RefOr::T(locked));
            }
        }
    }
}

fn build_admin() -> utoipa::openapi::OpenApi {
    let mut doc = AdminInfo::openapi();
    doc.merge(crate::admin::routes().into_openapi());
    document_admin_lockout(&mut doc);
    doc.servers = Some(vec![server(
        ADMIN_SERVER,
        "The default admin listener (--admin-listen)",
    )]);
    doc
}

fn public_doc() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(build_public)
}

fn admin_doc() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(build_admin)
}

pub fn public_openapi() -> utoipa::openapi::OpenApi {
    public_doc().clone()
}

pub fn admin_openapi() -> utoipa::openapi::OpenApi {
    admin_doc().clone()
}

/// The HTTP methods the document gives an endpoint (`["GET", "POST"]`), for hints.
pub fn methods_of(endpoint: Endpoint) -> Vec<&'static str> {
    public_doc()
        .paths
        .paths
        .get(endpoint.path())
        .map(methods)
        .unwrap_or_default()
}

/// The methods the admin document gives the route `path` matches (`["GET", "POST"]`).
pub fn admin_methods_at(path: &str) -> Vec<&'static str> {
    let matches = |template: &str| {
        let (mut want, mut have) = (template.split('/'), path.split('/'));
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(w), Some(h)) if w == h || (w.starts_with('{') && !h.is_empty()) => {}
                _ => return false,
            }
        }
    };
    admin_doc()
        .paths
        .paths
        .iter()
        .find(|(template, _)| matches(template))
        .map(|(_, item)| methods(item))
        .unwrap_or_default()
}

pub async fn public_json() -> Response {
    Json(public_doc()).into_response()
}

pub async fn admin_json() -> Response {
    Json(admin_doc()).into_response()
}
