//! When the store cannot answer, clients get a clear 503 envelope, never a 500 or a hang.

use std::sync::Arc;

use async_trait::async_trait;
use bankgate_core::forced::ForcedRule;
use bankgate_core::model::{
    Customer, Instance, InstanceKind, Login, PendingAuthorization, Session, Tenant,
};
use bankgate_core::{CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId, Timestamp};
use bankgate_server::AppState;
use bankgate_store::{
    AttemptFailure, AttemptFailures, AttemptFilter, AttemptKey, AttemptState, CachedAuthorize,
    ClockChange, ClockMoved, CompleteAuthorization, ConnectSession, CredentialMatch, ForcedCall,
    ForcedScope, KeyDigests, NewToken, OpenOutcome, Purged, Reset, Store, TokenRecord, TokenUse,
};

use crate::support::*;

/// A store whose database is gone.
#[derive(Debug)]
struct Unreachable;

fn down<T>() -> Result<T, DomainError> {
    Err(DomainError::Unavailable("connection refused".to_owned()))
}

#[async_trait]
impl Store for Unreachable {
    async fn create_instance(&self, _: &Instance) -> Result<(), DomainError> {
        down()
    }
    async fn instance(&self, _: &InstanceName) -> Result<Option<Instance>, DomainError> {
        down()
    }
    async fn list_instances(&self) -> Result<Vec<Instance>, DomainError> {
        down()
    }
    async fn create_customer(&self, _: &Customer, _: KeyDigests) -> Result<(), DomainError> {
        down()
    }
    async fn list_customers(&self, _: Option<&InstanceName>) -> Result<Vec<Customer>, DomainError> {
        down()
    }
    async fn tenant(&self, _: CustomerId) -> Result<Option<Tenant>, DomainError> {
        down()
    }
    async fn rotate_keys(
        &self,
        _: CustomerId,
        _: KeyDigests,
        _: Timestamp,
        _: Timestamp,
    ) -> Result<(), DomainError> {
        down()
    }
    async fn find_credential(
        &self,
        _: Digest,
        _: Timestamp,
    ) -> Result<Option<CredentialMatch>, DomainError> {
        down()
    }
    async fn issue_token(&self, _: NewToken) -> Result<(), DomainError> {
        down()
    }
    async fn consume_token(
        &self,
        _: CustomerId,
        _: Digest,
        _: RequestId,
        _: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        down()
    }
    async fn create_login(&self, _: &Login) -> Result<(), DomainError> {
        down()
    }
    async fn login(&self, _: CustomerId, _: LoginId) -> Result<Option<Login>, DomainError> {
        down()
    }
    async fn connect_statements(
        &self,
        _: CustomerId,
        _: LoginId,
    ) -> Result<Option<bankgate_store::ConnectStatements>, DomainError> {
        down()
    }
    async fn login_instance(
        &self,
        _: LoginId,
    ) -> Result<Option<(InstanceName, InstanceKind)>, DomainError> {
        down()
    }
    async fn delete_login(&self, _: CustomerId, _: LoginId) -> Result<bool, DomainError> {
        down()
    }
    async fn authorize_cached(&self, _: CachedAuthorize) -> Result<OpenOutcome, DomainError> {
        down()
    }
    async fn session(&self, _: CustomerId, _: RequestId) -> Result<Option<Session>, DomainError> {
        down()
    }
    async fn start_pending(
        &self,
        _: Option<Digest>,
        _: &PendingAuthorization,
        _: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        down()
    }
    async fn pending(
        &self,
        _: CustomerId,
        _: RequestId,
    ) -> Result<Option<PendingAuthorization>, DomainError> {
        down()
    }
    async fn extend_pending(&self, _: RequestId, _: Timestamp) -> Result<(), DomainError> {
        down()
    }
    async fn advance_pending(
        &self,
        _: RequestId,
        _: &[usize],
        _: &[usize],
        _: Timestamp,
    ) -> Result<bool, DomainError> {
        down()
    }
    async fn drop_pending(&self, _: RequestId) -> Result<(), DomainError> {
        down()
    }
    async fn token_request(&self, _: Digest) -> Result<Option<RequestId>, DomainError> {
        down()
    }
    async fn token_record(&self, _: Digest) -> Result<Option<TokenRecord>, DomainError> {
        down()
    }
    async fn change_clock(
        &self,
        _: &InstanceName,
        _: ClockChange,
    ) -> Result<Option<ClockMoved>, DomainError> {
        down()
    }
    async fn ping(&self) -> Result<(), DomainError> {
        down()
    }
    async fn complete_authorization(
        &self,
        _: CompleteAuthorization,
    ) -> Result<OpenOutcome, DomainError> {
        down()
    }
    async fn start_operation(
        &self,
        _: CustomerId,
        _: RequestId,
        _: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError> {
        down()
    }
    async fn seed_once(
        &self,
        _: &str,
        _: &Instance,
        _: &Customer,
        _: KeyDigests,
    ) -> Result<bool, DomainError> {
        down()
    }
    async fn reset_instance(&self, _: &InstanceName) -> Result<Reset, DomainError> {
        down()
    }
    async fn purge_expired(&self, _: Timestamp) -> Result<Purged, DomainError> {
        down()
    }
    async fn open_connect_session(
        &self,
        _: &ConnectSession,
        _: Timestamp,
    ) -> Result<TokenUse, DomainError> {
        down()
    }
    async fn connect_session(&self, _: Digest) -> Result<Option<ConnectSession>, DomainError> {
        down()
    }
    async fn update_connect_session(
        &self,
        _: Digest,
        _: &str,
        _: Timestamp,
    ) -> Result<bool, DomainError> {
        down()
    }
    async fn connect_token_required(&self, _: &InstanceName) -> Result<bool, DomainError> {
        down()
    }
    async fn set_connect_token_required(
        &self,
        _: &InstanceName,
        _: bool,
    ) -> Result<(), DomainError> {
        down()
    }
    async fn purge_connect_sessions(&self, _: Timestamp) -> Result<u64, DomainError> {
        down()
    }
    async fn attempt_state(&self, _: &AttemptKey) -> Result<AttemptState, DomainError> {
        down()
    }
    async fn record_failure(&self, _: AttemptFailure) -> Result<AttemptState, DomainError> {
        down()
    }
    async fn forget_failures(&self, _: &AttemptKey) -> Result<(), DomainError> {
        down()
    }
    async fn lockouts(
        &self,
        _: &AttemptFilter,
        _: Timestamp,
    ) -> Result<Vec<AttemptFailures>, DomainError> {
        down()
    }
    async fn clear_failures(&self, _: &AttemptFilter) -> Result<u64, DomainError> {
        down()
    }
    async fn add_forced_rule(&self, _: &ForcedRule) -> Result<(), DomainError> {
        down()
    }
    async fn forced_rules(&self, _: &ForcedScope) -> Result<Vec<ForcedRule>, DomainError> {
        down()
    }
    async fn clear_forced_rules(&self, _: &ForcedScope) -> Result<u64, DomainError> {
        down()
    }
    async fn has_forced_rules(&self, _: &InstanceName) -> Result<bool, DomainError> {
        down()
    }
    async fn take_forced(
        &self,
        _: &ForcedCall<'_>,
        _: Timestamp,
    ) -> Result<Option<ForcedRule>, DomainError> {
        down()
    }
}

#[tokio::test]
async fn every_endpoint_answers_503_in_the_envelope_when_the_store_is_down() {
    let state = AppState::new(
        Arc::new(Unreachable),
        Arc::new(bankgate_core::ManualClock::new(START)),
    );
    let router = bankgate_server::app(state);
    let login = LoginId::new_random();
    for (method, uri, header) in [
        (
            "POST",
            path(TOOLBOX_CUSTOMER, "GenerateAuthorizeToken"),
            ("flinks-auth-key", TOOLBOX_SECRET),
        ),
        (
            "POST",
            path(TOOLBOX_CUSTOMER, "Authorize"),
            ("flinks-auth-key", TOOLBOX_SECRET),
        ),
        (
            "DELETE",
            format!("{}/{login}", path(TOOLBOX_CUSTOMER, "DeleteCard")),
            ("x-api-key", TOOLBOX_API_KEY),
        ),
    ] {
        let reply = send_to(&router, request(method, &uri, &[header], "")).await;
        reply.assert_error(503, "RETRY_LATER", "store_unavailable");
        assert!(
            !reply.hint().contains("connection refused"),
            "internals stay in the log"
        );
    }
}

#[tokio::test]
async fn the_connect_page_says_to_retry_when_the_store_is_down() {
    let state = AppState::new(
        Arc::new(Unreachable),
        Arc::new(bankgate_core::ManualClock::new(START)),
    );
    let router = bankgate_server::app(state);
    let response = tower::ServiceExt::oneshot(
        router,
        axum::http::Request::get("/v2/?authorizeToken=9f32e159-4e18-4c61-91a9-9f6af436d812")
            .header("host", "toolbox-iframe.localhost")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        body.contains("Something unexpected happened. Try again."),
        "{body}"
    );
    assert!(body.contains("AGGREGATION_ERROR"));
    assert!(
        !body.contains("connection refused"),
        "internals stay in the log"
    );
}

#[tokio::test]
async fn readiness_fails_while_the_store_is_down_and_health_does_not() {
    let state = AppState::new(
        Arc::new(Unreachable),
        Arc::new(bankgate_core::ManualClock::new(START)),
    );
    let admin = bankgate_server::admin_app(state, None);
    let ready = send_to(&admin, request("GET", "/readyz", &[], "")).await;
    assert_eq!(ready.status.as_u16(), 503);
    assert_eq!(ready.json["status"], "unavailable");
    assert!(!ready.json.to_string().contains("connection refused"));
    let health = send_to(&admin, request("GET", "/healthz", &[], "")).await;
    assert_eq!(health.status.as_u16(), 200);
}
