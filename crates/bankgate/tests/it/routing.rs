//! Hosts, paths and methods (docs/flinks-wire.md, "Hosts and URLs"): every refusal is a JSON
//! envelope with a hint.

use axum::http::StatusCode;
use bankgate_core::model::InstanceKind;

use crate::support::*;

fn token_uri() -> String {
    path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken")
}

#[tokio::test]
async fn instance_hosts_and_bare_hosts_are_served() {
    let app = TestApp::new().await;
    for host in [
        "toolbox-api.localhost:8080",
        "toolbox-api.private.fin.ag",
        "localhost:8080",
        "127.0.0.1",
        "[::1]:8080",
    ] {
        let reply = app
            .post(
                &token_uri(),
                &[("host", host), ("flinks-auth-key", TOOLBOX_SECRET)],
                "",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {:#}", reply.json);
    }
}

#[tokio::test]
async fn hosts_of_the_wrong_shape_are_404_with_the_right_shape_named() {
    let app = TestApp::new().await;
    for host in [
        "toolbox.api.localhost",
        "api-toolbox.private.fin.ag",
        "TOOLBOX_X-api.localhost",
    ] {
        let reply = app
            .post(
                &token_uri(),
                &[("host", host), ("flinks-auth-key", TOOLBOX_SECRET)],
                "",
            )
            .await;
        reply.assert_error(404, "INVALID_REQUEST", "host_wrong_shape");
        assert!(
            reply.hint().contains("{instance}-api.{domain}"),
            "{}",
            reply.hint()
        );
    }
}

#[tokio::test]
async fn a_customer_id_on_another_instances_host_is_refused() {
    let app = TestApp::new().await;
    let (bank, bank_secret, _) = app.customer_on("bigbank", InstanceKind::Production).await;
    let reply = app
        .post(
            &token_uri(),
            &[
                ("host", "bigbank-api.localhost"),
                ("flinks-auth-key", TOOLBOX_SECRET),
            ],
            "",
        )
        .await;
    // Addressed to a production instance: the hint describes only what was sent.
    reply.assert_error(401, "UNAUTHORIZED", "customer_not_found");
    assert!(!reply.hint().contains("belongs to"), "{}", reply.hint());
    // Addressed to a sandbox, a sandbox's customerId may be named.
    app.customer_on("acme", InstanceKind::Sandbox).await;
    let reply = app
        .post(
            &token_uri(),
            &[
                ("host", "acme-api.localhost"),
                ("flinks-auth-key", TOOLBOX_SECRET),
            ],
            "",
        )
        .await;
    reply.assert_error(401, "UNAUTHORIZED", "wrong_environment");
    assert!(reply.hint().contains("toolbox"), "{}", reply.hint());

    let reply = app
        .post(
            &path(bank, "GenerateAuthorizeToken"),
            &[
                ("host", "toolbox-api.localhost"),
                ("flinks-auth-key", &bank_secret),
            ],
            "",
        )
        .await;
    reply.assert_error(401, "UNAUTHORIZED", "customer_not_found");
    assert!(
        !reply.hint().contains("bigbank"),
        "production is never named: {}",
        reply.hint()
    );
    // On its own host it works.
    let reply = app
        .post(
            &path(bank, "GenerateAuthorizeToken"),
            &[
                ("host", "bigbank-api.example.test"),
                ("flinks-auth-key", &bank_secret),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn empty_path_segments_are_404_never_normalised() {
    let app = TestApp::new().await;
    for uri in [
        format!("//v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken"),
        format!("/v3/{TOOLBOX_CUSTOMER}//GenerateAuthorizeToken"),
        format!("/v3/{TOOLBOX_CUSTOMER}/BankingServices/GenerateAuthorizeToken/"),
        format!("/v3/{TOOLBOX_CUSTOMER}/BankingServices/DeleteCard/"),
    ] {
        let reply = app
            .post(&uri, &[("flinks-auth-key", TOOLBOX_SECRET)], "")
            .await;
        reply.assert_error(404, "INVALID_REQUEST", "empty_path_segment");
    }
}

#[tokio::test]
async fn endpoint_names_match_in_any_case() {
    let app = TestApp::new().await;
    for uri in [
        format!("/v3/{TOOLBOX_CUSTOMER}/BankingServices/generateauthorizetoken"),
        format!("/V3/{TOOLBOX_CUSTOMER}/bankingservices/GENERATEAUTHORIZETOKEN"),
    ] {
        let reply = app
            .post(&uri, &[("flinks-auth-key", TOOLBOX_SECRET)], "")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {:#}", reply.json);
    }
}

#[tokio::test]
async fn unknown_endpoints_and_paths_list_what_exists() {
    let app = TestApp::new().await;
    let reply = app
        .post(&path(TOOLBOX_CUSTOMER, "GenerateToken"), &[], "")
        .await;
    reply.assert_error(404, "INVALID_REQUEST", "unknown_endpoint");
    for endpoint in ["GenerateAuthorizeToken", "Authorize", "DeleteCard"] {
        assert!(reply.hint().contains(endpoint), "{}", reply.hint());
    }
    // `/` and `/v2/` are the Connect page on a bare host (docs/flinks-wire.md, "Connect page"; see
    // connect.rs).
    for uri in ["/v3", "/v2/x", "/health?x=1"] {
        app.send(request("GET", uri, &[], "")).await.assert_error(
            404,
            "INVALID_REQUEST",
            "unknown_path",
        );
    }
    // A known endpoint with the wrong shape says how to call it.
    let reply = app
        .send(request(
            "DELETE",
            &path(TOOLBOX_CUSTOMER, "DeleteCard"),
            &[],
            "",
        ))
        .await;
    reply.assert_error(404, "INVALID_REQUEST", "path_wrong_shape");
    assert!(
        reply.hint().contains("DeleteCard/{loginId}"),
        "{}",
        reply.hint()
    );
}

#[tokio::test]
async fn wrong_methods_are_405_in_the_envelope() {
    let app = TestApp::new().await;
    let reply = app
        .send(request(
            "GET",
            &token_uri(),
            &[("flinks-auth-key", TOOLBOX_SECRET)],
            "",
        ))
        .await;
    reply.assert_error(405, "INVALID_REQUEST", "method_not_allowed");
    assert!(reply.hint().contains("POST"), "{}", reply.hint());
    let reply = app
        .send(request(
            "POST",
            &format!("{}/x", path(TOOLBOX_CUSTOMER, "DeleteCard")),
            &[],
            "",
        ))
        .await;
    reply.assert_error(405, "INVALID_REQUEST", "method_not_allowed");
    assert!(reply.hint().contains("DELETE"), "{}", reply.hint());
}

/// Every answer, of the API, the Connect page and the admin API, success or refusal, carries
/// `X-Content-Type-Options: nosniff`.
#[tokio::test]
async fn every_answer_says_nosniff() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    let app = TestApp::new().await;
    let admin = bankgate_server::admin_app(
        app.state.clone(),
        Some(bankgate_server::admin::AdminToken::new(
            "nosniff-test-admin-token-0123456789abcdef",
        )),
    );
    let get = |uri: &str, host: &str| {
        Request::get(uri)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    let cases = [
        (
            &app.router,
            request(
                "POST",
                &token_uri(),
                &[("flinks-auth-key", TOOLBOX_SECRET)],
                "",
            ),
            200,
        ),
        (&app.router, request("POST", &token_uri(), &[], ""), 401),
        (
            &app.router,
            request(
                "POST",
                &token_uri(),
                &[("host", "api-toolbox.localhost")],
                "",
            ),
            404,
        ),
        (
            &app.router,
            get("/v2/?demo=true", "toolbox-iframe.localhost"),
            401,
        ),
        (&app.router, get("/v2/assets/connect.js", "localhost"), 200),
        (&app.router, get("/openapi.json", "localhost"), 200),
        (&admin, get("/healthz", "localhost"), 200),
        (&admin, get("/metrics", "localhost"), 200),
        (&admin, get("/admin/instances", "localhost"), 401),
    ];
    for (router, request, status) in cases {
        let uri = request.uri().to_string();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{uri}");
        assert_eq!(
            response
                .headers()
                .get_all(header::X_CONTENT_TYPE_OPTIONS)
                .iter()
                .collect::<Vec<_>>(),
            ["nosniff"],
            "{uri}"
        );
    }
}
