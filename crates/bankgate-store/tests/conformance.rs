#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Storage conformance, in the style of Dex's `storage/conformance`: every operation of the
//! [`Store`] trait, checked against a fresh database by backend-independent `async fn`s.
//!
//! A backend joins the suite with one factory (an `async fn() -> Fixture` giving a fresh, empty
//! database and a way to reopen it) and one line `conformance!(name => factory);`, which expands
//! every check into its own test, `store_conformance::{name}::{check}`. The few checks that
//! depend on SQLite internals (group commit, the purge's query plan) live in
//! [`sqlite_specific`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bankgate_core::forced::{ForcedAction, ForcedRule, ForcedTarget};
use bankgate_core::model::{
    CardOptions, Customer, CustomerKeys, DEFAULT_TOKEN_LIFETIME, Instance, InstanceKind, KeyKind,
    Language, Login, LoginType, MAX_CLOCK_OFFSET, PendingAuthorization, Session, Tenant,
};
use bankgate_core::sandbox::statements::StatementCount;
use bankgate_core::{
    AuthorizeToken, ConnectSecret, CustomerId, Digest, DomainError, InstanceName, LoginId,
    RequestId, Timestamp,
};
use bankgate_store::{AsyncStep, AttemptFailure, AttemptFilter, AttemptKey, AttemptState};
use bankgate_store::{
    AttemptResult, CallbackSubject, DeliveryContent, DeliveryStatus, MAX_DELIVERY_ATTEMPTS,
    NewDelivery, RETRY_INTERVAL,
};
use bankgate_store::{
    CachedAuthorize, ClockChange, ClockMoved, CompleteAuthorization, ConnectSession,
    ConnectStatements, CredentialMatch, ForcedCall, ForcedScope, KeyDigests, LoginChange, NewToken,
    OpenOutcome, PgSettings, PgStore, Purged, SqliteStore, Store, TokenRecord, TokenUse,
};

/// A fixed instant for the checks (2026-01-21T20:47:47.145999Z).
const START: Timestamp = Timestamp::from_micros(1_769_028_467_145_999);

// ---- backends ----

/// Reconnects to the data of a fixture, as a restarted process would.
type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

/// A backend under test: a store on a fresh, empty database.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    reopen: Reopen,
    /// Whatever must outlive the store (the SQLite temp dir). Dropped last.
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Fixture {
    /// Closes the store (the check must hold no other handle) and opens the same data again.
    pub async fn restart(self) -> Self {
        let Self {
            store,
            reopen,
            _keep,
        } = self;
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "something still holds the store; it cannot close"
        );
        // The last handle: for SQLite, dropping it joins the writer thread.
        drop(store);
        let store = reopen().await;
        Self {
            store,
            reopen,
            _keep,
        }
    }
}

/// The embedded SQLite backend, on a file in a temporary directory.
pub async fn open_sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.db");
    let reopen: Reopen = Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
            store
        })
    });
    let store = reopen().await;
    Some(Fixture {
        store,
        reopen,
        _keep: Box::new(dir),
    })
}

/// PostgreSQL, on a fresh schema of the server in `BANKGATE_TEST_POSTGRES_URL`; `None` (the
/// check is skipped) when it is not set.
pub async fn open_postgres() -> Option<Fixture> {
    let url = bankgate_store::testing::fresh_database().await?;
    let reopen: Reopen = Box::new(move || {
        let url = url.clone();
        Box::pin(async move {
            let store: Arc<dyn Store> =
                Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap());
            store
        })
    });
    let store = reopen().await;
    Some(Fixture {
        store,
        reopen,
        _keep: Box::new(()),
    })
}

/// Expands every check into one test per backend.
macro_rules! conformance {
    ($backend:ident => $open:path) => {
        mod $backend {
            use super::*;

            conformance!(@store $open;
                instances_create_get_list,
                duplicate_instance_conflicts,
                customers_create_list_tenant,
                customer_needs_its_instance,
                duplicate_customer_conflicts_and_writes_nothing,
                duplicate_key_digest_conflicts,
                find_credential_by_digest,
                rotate_keys_retires_old_keys_at_the_chosen_time,
                rotate_keys_never_revives_retired_keys,
                rotate_keys_unknown_customer,
                token_is_consumed_once,
                token_expires_at_exactly_expires_at,
                token_of_another_customer_is_left_alone,
                unknown_token,
                concurrent_consumption_spends_a_token_once,
                logins_are_scoped_to_their_customer,
                login_needs_its_customer_and_a_fresh_id,
                login_instance_names_the_holder,
                delete_login_ends_its_sessions,
                authorize_cached_opens_a_session,
                authorize_cached_without_token,
                authorize_cached_refuses_a_spent_token_and_writes_nothing,
                authorize_cached_refuses_expired_unknown_and_foreign_tokens,
                authorize_cached_unknown_login_still_spends_the_token,
                authorize_cached_failing_at_its_session_spends_nothing,
                concurrent_authorize_cached_opens_one_session,
                seed_once_seeds_once,
                purge_expired_deletes_only_what_expired,
                purge_expired_counts_past_any_chunk_size,
                pending_exchange_completes_once,
                connect_statements_are_recorded_on_the_login,
                operation_start_is_recorded_once,
                request_id_lifetimes,
                pending_step_advances_once,
                concurrent_answers_complete_an_exchange_once,
                reset_instance_forgets_state_but_keeps_credentials,
                instance_clock_moves_forward_and_back,
                concurrent_advances_stop_at_the_cap,
                token_record_tells_the_state_of_a_token,
                ping_answers,
                connect_session_spends_its_token_once,
                connect_session_refused_token_records_nothing,
                connect_session_updates_and_expires,
                connect_token_required_per_instance,
                connect_sessions_go_with_a_reset,
                async_steps_replace_and_stay_with_their_customer,
                async_steps_expire_and_go_with_their_login_and_a_reset,
                a_failing_write_leaves_concurrent_writes_alone,
                failures_lock_a_pair_at_its_limit_and_start_over_after_the_lockout,
                failures_count_per_target_across_clients,
                a_window_that_is_over_starts_the_count_again,
                forgetting_clears_only_its_own_pair,
                lockouts_are_listed_and_cleared_by_filter,
                spent_failure_rows_are_purged,
                concurrent_failures_all_count,
                lockouts_go_with_a_reset,
                forced_rules_are_listed_and_cleared_by_scope,
                forced_rules_count_down_and_match_their_call,
                forced_pending_lasts_its_period,
                concurrent_calls_take_each_use_once,
                webhook_is_set_rotated_and_removed,
                outbox_sends_in_order_retries_and_gives_up,
                queued_callbacks_go_with_a_reset,
                outbox_waits_for_not_before_and_expired_leases,
                concurrent_claims_take_each_delivery_once,
                an_authorization_queues_its_callbacks_in_its_write,
                leases_are_on_the_instance_clock_and_outcomes_written_in_batches,
                scheduled_refresh_is_switched_on_saved_cards_only,
                nightly_refresh_runs_each_night_until_the_cached_call_is_a_week_old,
                nightly_refresh_of_mfa_cards_uses_stored_answers_and_erases_wrong_ones,
                concurrent_nightly_runs_run_each_night_once,
                enhanced_mfa_answers_are_kept_as_digests_and_set_once_known,
                the_cached_call_rule_does_not_apply_to_an_instance_with_a_webhook,
            );
            conformance!(@fixture $open;
                writes_survive_a_restart,
                forced_rules_go_with_a_reset_and_survive_a_restart,
            );
        }
    };
    (@store $open:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(fixture) = $open().await else { return };
                super::$check(fixture.store.clone()).await;
            }
        )+
    };
    (@fixture $open:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(fixture) = $open().await else { return };
                super::$check(fixture).await;
            }
        )+
    };
}

conformance!(sqlite => open_sqlite);
conformance!(postgres => open_postgres);

// ---- helpers ----

/// The base of every timestamp in the checks (it has microseconds, which must round-trip).
const T0: Timestamp = START;

/// `T0` plus whole seconds.
fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// `T0` plus microseconds.
fn micros(offset: i64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + offset)
}

/// One microsecond before `t`.
fn just_before(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros() - 1)
}

/// One microsecond after `t`.
fn just_after(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros() + 1)
}

fn name(value: &str) -> InstanceName {
    value.parse().unwrap()
}

fn instance_record(instance: &str, kind: InstanceKind) -> Instance {
    Instance {
        name: name(instance),
        kind,
        token_lifetime: DEFAULT_TOKEN_LIFETIME,
        created_at: T0,
        clock_offset: Duration::ZERO,
    }
}

fn customer_record(instance: &str, label: &str) -> Customer {
    Customer {
        id: CustomerId::new_random(),
        instance: name(instance),
        label: label.to_owned(),
        authorize_token_required: true,
        api_key_required: true,
        created_at: T0,
    }
}

fn digests(keys: &CustomerKeys) -> KeyDigests {
    KeyDigests {
        secret: keys.secret_key.digest(),
        api: keys.api_key.digest(),
    }
}

fn fresh_digests() -> KeyDigests {
    digests(&CustomerKeys::generate())
}

fn token_digest() -> Digest {
    AuthorizeToken::generate().digest()
}

/// Creates the instance if it is missing, then a customer on it.
async fn customer_on(
    store: &dyn Store,
    instance: &str,
    kind: InstanceKind,
) -> (Customer, KeyDigests) {
    if store.instance(&name(instance)).await.unwrap().is_none() {
        store
            .create_instance(&instance_record(instance, kind))
            .await
            .unwrap();
    }
    let customer = customer_record(instance, "conformance");
    let keys = fresh_digests();
    store.create_customer(&customer, keys).await.unwrap();
    (customer, keys)
}

/// Records a token issued at `issued_at`, expiring at `expires_at`.
async fn issue(
    store: &dyn Store,
    customer_id: CustomerId,
    issued_at: Timestamp,
    expires_at: Timestamp,
) -> Digest {
    let digest = token_digest();
    store
        .issue_token(NewToken {
            digest,
            customer_id,
            issued_at,
            expires_at,
        })
        .await
        .unwrap();
    digest
}

async fn consume(
    store: &dyn Store,
    customer_id: CustomerId,
    token: Digest,
    now: Timestamp,
) -> TokenUse {
    store
        .consume_token(customer_id, token, RequestId::new_random(), now)
        .await
        .unwrap()
}

fn login_record(customer_id: CustomerId, username: &str) -> Login {
    Login {
        id: LoginId::new_random(),
        customer_id,
        institution: "FlinksCapital".to_owned(),
        username: username.to_owned(),
        login_type: LoginType::Personal,
        is_scheduled_refresh: false,
        last_refresh: micros(-123_457),
        created_at: T0,
        language: Language::Fr,
        saved: true,
    }
}

async fn login_for(store: &dyn Store, customer_id: CustomerId) -> Login {
    let login = login_record(customer_id, "Greatday");
    store.create_login(&login).await.unwrap();
    login
}

fn cached(
    customer_id: CustomerId,
    token: Option<Digest>,
    login_id: LoginId,
    now: Timestamp,
) -> CachedAuthorize {
    CachedAuthorize {
        customer_id,
        token,
        login_id,
        request_id: RequestId::new_random(),
        now,
        session_expires_at: now + Duration::from_secs(30 * 60),
        tag: Some("userId=7".to_owned()),
    }
}

fn sorted_by_id(mut customers: Vec<Customer>) -> Vec<Customer> {
    customers.sort_by_key(|c| c.id);
    customers
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, DomainError>) {
    match result {
        Err(DomainError::Conflict(_)) => {}
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, DomainError>, expected_what: &str) {
    match result {
        Err(DomainError::NotFound { what, .. }) if what == expected_what => {}
        other => panic!("expected NotFound {{ what: {expected_what:?} }}, got {other:?}"),
    }
}

// ---- instances ----

async fn instances_create_get_list(store: Arc<dyn Store>) {
    assert_eq!(
        store.list_instances().await.unwrap(),
        vec![],
        "a fresh store is empty"
    );
    let acme = Instance {
        name: name("acme-ca"),
        kind: InstanceKind::Production,
        token_lifetime: Duration::from_secs(600),
        created_at: micros(1),
        clock_offset: Duration::ZERO,
    };
    let sandbox = instance_record("alpha", InstanceKind::Sandbox);
    store.create_instance(&acme).await.unwrap();
    store.create_instance(&sandbox).await.unwrap();

    assert_eq!(
        store.instance(&name("acme-ca")).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.instance(&name("alpha")).await.unwrap(),
        Some(sandbox.clone())
    );
    assert_eq!(store.instance(&name("nope")).await.unwrap(), None);

    let mut listed = store.list_instances().await.unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed, vec![acme, sandbox]);
}

async fn duplicate_instance_conflicts(store: Arc<dyn Store>) {
    let original = instance_record("acme", InstanceKind::Production);
    store.create_instance(&original).await.unwrap();
    let again = Instance {
        kind: InstanceKind::Sandbox,
        token_lifetime: Duration::from_secs(5),
        created_at: at(10),
        ..original.clone()
    };
    assert_conflict(store.create_instance(&again).await);
    assert_eq!(
        store.instance(&original.name).await.unwrap(),
        Some(original.clone()),
        "the refused duplicate must not change the instance"
    );
    assert_eq!(store.list_instances().await.unwrap(), vec![original]);
}

// ---- customers ----

async fn customers_create_list_tenant(store: Arc<dyn Store>) {
    let alpha = instance_record("alpha", InstanceKind::Sandbox);
    let beta = instance_record("beta", InstanceKind::Production);
    store.create_instance(&alpha).await.unwrap();
    store.create_instance(&beta).await.unwrap();

    let a1 = customer_record("alpha", "first");
    let a2 = Customer {
        authorize_token_required: false,
        api_key_required: false,
        created_at: micros(7),
        ..customer_record("alpha", "second, legacy")
    };
    let b1 = Customer {
        authorize_token_required: false,
        ..customer_record("beta", "")
    };
    for customer in [&a1, &a2, &b1] {
        store
            .create_customer(customer, fresh_digests())
            .await
            .unwrap();
    }

    assert_eq!(
        sorted_by_id(store.list_customers(None).await.unwrap()),
        sorted_by_id(vec![a1.clone(), a2.clone(), b1.clone()])
    );
    assert_eq!(
        sorted_by_id(store.list_customers(Some(&alpha.name)).await.unwrap()),
        sorted_by_id(vec![a1.clone(), a2.clone()])
    );
    assert_eq!(
        store.list_customers(Some(&beta.name)).await.unwrap(),
        vec![b1.clone()]
    );
    assert_eq!(
        store.list_customers(Some(&name("nope"))).await.unwrap(),
        vec![]
    );

    assert_eq!(
        store.tenant(a2.id).await.unwrap(),
        Some(Tenant {
            customer: a2,
            instance: alpha
        })
    );
    assert_eq!(
        store.tenant(b1.id).await.unwrap(),
        Some(Tenant {
            customer: b1,
            instance: beta
        })
    );
    assert_eq!(store.tenant(CustomerId::new_random()).await.unwrap(), None);
}

async fn customer_needs_its_instance(store: Arc<dyn Store>) {
    let orphan = customer_record("nowhere", "orphan");
    let keys = fresh_digests();
    assert_not_found(store.create_customer(&orphan, keys).await, "instance");
    assert_eq!(store.tenant(orphan.id).await.unwrap(), None);
    assert_eq!(store.list_customers(None).await.unwrap(), vec![]);
    assert_eq!(store.find_credential(keys.secret, T0).await.unwrap(), None);
}

async fn duplicate_customer_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    let (first, first_keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let again = Customer {
        label: "impostor".to_owned(),
        ..first.clone()
    };
    let again_keys = fresh_digests();
    assert_conflict(store.create_customer(&again, again_keys).await);

    assert_eq!(
        store.list_customers(None).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        store.tenant(first.id).await.unwrap().unwrap().customer,
        first
    );
    // The refused customer's keys were not stored; the original's still work.
    assert_eq!(
        store.find_credential(again_keys.secret, T0).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_credential(again_keys.api, T0).await.unwrap(),
        None
    );
    assert!(
        store
            .find_credential(first_keys.secret, T0)
            .await
            .unwrap()
            .is_some()
    );
}

async fn duplicate_key_digest_conflicts(store: Arc<dyn Store>) {
    let (first, first_keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let second = customer_record("alpha", "same secret");
    let reused = KeyDigests {
        secret: first_keys.secret,
        api: fresh_digests().api,
    };
    assert_conflict(store.create_customer(&second, reused).await);
    // Nothing of the refused customer remains, and the key still names its owner.
    assert_eq!(store.tenant(second.id).await.unwrap(), None);
    assert_eq!(store.find_credential(reused.api, T0).await.unwrap(), None);
    match store.find_credential(first_keys.secret, T0).await.unwrap() {
        Some(CredentialMatch::Key { customer_id, .. }) => assert_eq!(customer_id, first.id),
        other => panic!("the secret key should still be the first customer's: {other:?}"),
    }
}

// ---- credentials ----

async fn find_credential_by_digest(store: Arc<dyn Store>) {
    let (customer, keys) = customer_on(&*store, "acme", InstanceKind::Production).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;

    assert_eq!(
        store.find_credential(keys.secret, at(1)).await.unwrap(),
        Some(CredentialMatch::Key {
            customer_id: customer.id,
            instance: name("acme"),
            instance_kind: InstanceKind::Production,
            kind: KeyKind::Secret,
            retired_at: None,
        })
    );
    assert_eq!(
        store.find_credential(keys.api, at(1)).await.unwrap(),
        Some(CredentialMatch::Key {
            customer_id: customer.id,
            instance: name("acme"),
            instance_kind: InstanceKind::Production,
            kind: KeyKind::Api,
            retired_at: None,
        })
    );
    let expected_token = Some(CredentialMatch::Token {
        customer_id: customer.id,
        instance: name("acme"),
        instance_kind: InstanceKind::Production,
    });
    assert_eq!(
        store.find_credential(token, at(1)).await.unwrap(),
        expected_token
    );
    // A token is still recognised as a token once spent or expired (for precise refusals).
    assert_eq!(
        consume(&*store, customer.id, token, at(2)).await,
        TokenUse::Consumed
    );
    assert_eq!(
        store.find_credential(token, at(3600)).await.unwrap(),
        expected_token
    );

    assert_eq!(
        store.find_credential(token_digest(), at(1)).await.unwrap(),
        None
    );
}

async fn rotate_keys_retires_old_keys_at_the_chosen_time(store: Arc<dyn Store>) {
    let (customer, old) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, other_keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let new = fresh_digests();
    let now = at(10);
    let retire = now + Duration::from_secs(60);
    store
        .rotate_keys(customer.id, new, now, retire)
        .await
        .unwrap();

    let retired_at = |found: Option<CredentialMatch>| match found {
        Some(CredentialMatch::Key {
            customer_id,
            retired_at,
            ..
        }) => {
            assert_eq!(customer_id, customer.id);
            retired_at
        }
        other => panic!("expected a key of {}, got {other:?}", customer.id),
    };
    for digest in [old.secret, old.api] {
        assert_eq!(
            retired_at(store.find_credential(digest, now).await.unwrap()),
            None
        );
        assert_eq!(
            retired_at(
                store
                    .find_credential(digest, just_before(retire))
                    .await
                    .unwrap()
            ),
            None,
            "one microsecond before the grace period ends, the old key still works"
        );
        assert_eq!(
            retired_at(store.find_credential(digest, retire).await.unwrap()),
            Some(retire),
            "the old key is retired at exactly retire_old_at"
        );
        assert_eq!(
            retired_at(store.find_credential(digest, at(3600)).await.unwrap()),
            Some(retire)
        );
    }
    assert_eq!(
        store.find_credential(new.secret, at(3600)).await.unwrap(),
        Some(CredentialMatch::Key {
            customer_id: customer.id,
            instance: name("alpha"),
            instance_kind: InstanceKind::Sandbox,
            kind: KeyKind::Secret,
            retired_at: None,
        })
    );
    match store.find_credential(new.api, at(3600)).await.unwrap() {
        Some(CredentialMatch::Key {
            kind: KeyKind::Api,
            retired_at: None,
            ..
        }) => {}
        other => panic!("the new x-api-key should be current: {other:?}"),
    }
    // Another customer's keys are untouched by the rotation.
    for digest in [other_keys.secret, other_keys.api] {
        match store.find_credential(digest, at(3600)).await.unwrap() {
            Some(CredentialMatch::Key {
                customer_id,
                retired_at: None,
                ..
            }) => assert_eq!(customer_id, other.id),
            found => panic!("another customer's key changed: {found:?}"),
        }
    }
}

async fn rotate_keys_never_revives_retired_keys(store: Arc<dyn Store>) {
    let (customer, first) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let second = fresh_digests();
    let third = fresh_digests();
    // No grace: the first keys stop at once.
    store
        .rotate_keys(customer.id, second, at(1), at(1))
        .await
        .unwrap();
    // A long grace on the next rotation applies to the second keys only.
    store
        .rotate_keys(customer.id, third, at(2), at(2) + Duration::from_secs(3600))
        .await
        .unwrap();

    let retired = |found: Option<CredentialMatch>| match found {
        Some(CredentialMatch::Key { retired_at, .. }) => retired_at,
        other => panic!("expected a key, got {other:?}"),
    };
    assert_eq!(
        retired(store.find_credential(first.secret, at(3)).await.unwrap()),
        Some(at(1)),
        "a retired key must not come back to life with a later rotation's grace period"
    );
    assert_eq!(
        retired(store.find_credential(second.secret, at(3)).await.unwrap()),
        None
    );
    assert_eq!(
        retired(
            store
                .find_credential(second.secret, at(3602))
                .await
                .unwrap()
        ),
        Some(at(3602))
    );
    assert_eq!(
        retired(store.find_credential(third.secret, at(9999)).await.unwrap()),
        None
    );
}

async fn rotate_keys_unknown_customer(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let keys = fresh_digests();
    assert_not_found(
        store
            .rotate_keys(CustomerId::new_random(), keys, at(1), at(1))
            .await,
        "customer",
    );
    assert_eq!(
        store.find_credential(keys.secret, at(2)).await.unwrap(),
        None
    );
    assert_eq!(store.find_credential(keys.api, at(2)).await.unwrap(), None);
}

// ---- authorize tokens ----

async fn token_is_consumed_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;

    assert_eq!(
        consume(&*store, customer.id, token, micros(1_000_001)).await,
        TokenUse::Consumed
    );
    let used = TokenUse::Used {
        at: micros(1_000_001),
    };
    assert_eq!(consume(&*store, customer.id, token, at(2)).await, used);
    assert_eq!(
        consume(&*store, customer.id, token, at(3)).await,
        used,
        "still the first use"
    );
    assert_eq!(
        consume(&*store, customer.id, token, at(7200)).await,
        used,
        "a used token reports its use even once it has expired"
    );
}

async fn token_expires_at_exactly_expires_at(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let now = at(600);
    let expiring_now = issue(&*store, customer.id, T0, now).await;
    let one_micro_left = issue(&*store, customer.id, T0, just_after(now)).await;

    assert_eq!(
        consume(&*store, customer.id, expiring_now, now).await,
        TokenUse::Expired { at: now },
        "a token whose expires_at is now is expired"
    );
    assert_eq!(
        consume(&*store, customer.id, expiring_now, now).await,
        TokenUse::Expired { at: now },
        "an expired token is never consumed"
    );
    assert_eq!(
        consume(&*store, customer.id, one_micro_left, now).await,
        TokenUse::Consumed,
        "a token with one microsecond left is consumable"
    );
}

async fn token_of_another_customer_is_left_alone(store: Arc<dyn Store>) {
    let (owner, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (neighbour, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (stranger, _) = customer_on(&*store, "beta", InstanceKind::Production).await;
    let token = issue(&*store, owner.id, T0, at(1800)).await;

    let foreign = TokenUse::OtherCustomer {
        instance: name("alpha"),
        instance_kind: InstanceKind::Sandbox,
    };
    assert_eq!(consume(&*store, neighbour.id, token, at(1)).await, foreign);
    assert_eq!(consume(&*store, stranger.id, token, at(2)).await, foreign);
    assert_eq!(
        consume(&*store, owner.id, token, at(3)).await,
        TokenUse::Consumed,
        "another customer's attempt must not spend the token"
    );
    assert_eq!(
        consume(&*store, neighbour.id, token, at(4)).await,
        foreign,
        "spent or not, it is still someone else's"
    );
}

async fn unknown_token(store: Arc<dyn Store>) {
    let (customer, keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    assert_eq!(
        consume(&*store, customer.id, token_digest(), at(1)).await,
        TokenUse::Unknown
    );
    assert_eq!(
        consume(&*store, customer.id, keys.secret, at(1)).await,
        TokenUse::Unknown,
        "a secret key is not a token"
    );
}

async fn concurrent_consumption_spends_a_token_once(store: Arc<dyn Store>) {
    const TASKS: i64 = 64;
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            // Each request has its own "now", so the winner is identifiable.
            let now = micros(1_000_000 + i);
            barrier.wait().await;
            (now, consume(&*store, customer.id, token, now).await)
        });
    }
    let outcomes = tasks.join_all().await;
    let winners: Vec<Timestamp> = outcomes
        .iter()
        .filter(|(_, used)| *used == TokenUse::Consumed)
        .map(|(now, _)| *now)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one consumer wins: {outcomes:?}");
    let losers = outcomes
        .iter()
        .filter(|(_, used)| *used == TokenUse::Used { at: winners[0] })
        .count();
    assert_eq!(
        losers, 63,
        "every other consumer sees the winner's use: {outcomes:?}"
    );
}

// ---- logins and sessions ----

async fn logins_are_scoped_to_their_customer(store: Arc<dyn Store>) {
    let (owner, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = Login {
        login_type: LoginType::Business,
        is_scheduled_refresh: true,
        ..login_record(owner.id, "greatday_nomfa")
    };
    store.create_login(&login).await.unwrap();

    assert_eq!(
        store.login(owner.id, login.id).await.unwrap(),
        Some(login.clone())
    );
    assert_eq!(store.login(other.id, login.id).await.unwrap(), None);
    assert_eq!(
        store.login(owner.id, LoginId::new_random()).await.unwrap(),
        None
    );

    assert!(
        !store.delete_login(other.id, login.id).await.unwrap(),
        "another customer cannot delete the LoginId"
    );
    assert_eq!(
        store.login(owner.id, login.id).await.unwrap(),
        Some(login.clone())
    );
    assert!(store.delete_login(owner.id, login.id).await.unwrap());
    assert!(
        !store.delete_login(owner.id, login.id).await.unwrap(),
        "already deleted"
    );
    assert_eq!(store.login(owner.id, login.id).await.unwrap(), None);
}

async fn login_instance_names_the_holder(store: Arc<dyn Store>) {
    let (alpha, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (prod, _) = customer_on(&*store, "prod", InstanceKind::Production).await;
    let on_alpha = login_for(&*store, alpha.id).await;
    let on_prod = login_for(&*store, prod.id).await;
    let unsaved = Login {
        saved: false,
        ..login_record(alpha.id, "Greatday")
    };
    store.create_login(&unsaved).await.unwrap();
    assert_eq!(
        store.login_instance(on_alpha.id).await.unwrap(),
        Some((name("alpha"), InstanceKind::Sandbox))
    );
    assert_eq!(
        store.login_instance(on_prod.id).await.unwrap(),
        Some((name("prod"), InstanceKind::Production))
    );
    // A connection made with `Save: false` is no LoginId to name, nor is an unknown or deleted one.
    assert_eq!(store.login_instance(unsaved.id).await.unwrap(), None);
    assert_eq!(
        store.login_instance(LoginId::new_random()).await.unwrap(),
        None
    );
    assert!(store.delete_login(alpha.id, on_alpha.id).await.unwrap());
    assert_eq!(store.login_instance(on_alpha.id).await.unwrap(), None);
}

async fn login_needs_its_customer_and_a_fresh_id(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let again = Login {
        username: "test_pending".to_owned(),
        ..login.clone()
    };
    assert_conflict(store.create_login(&again).await);
    assert_eq!(
        store.login(customer.id, login.id).await.unwrap(),
        Some(login)
    );

    let nobody = CustomerId::new_random();
    let orphan = login_record(nobody, "Greatday");
    assert_not_found(store.create_login(&orphan).await, "customer");
    assert_eq!(store.login(nobody, orphan.id).await.unwrap(), None);
}

async fn delete_login_ends_its_sessions(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let doomed = login_for(&*store, customer.id).await;
    let kept = login_for(&*store, customer.id).await;
    let open = |login: LoginId| {
        let store = store.clone();
        async move {
            let request = cached(customer.id, None, login, at(1));
            match store.authorize_cached(request).await.unwrap() {
                OpenOutcome::Opened { session, .. } => session,
                other => panic!("expected a session, got {other:?}"),
            }
        }
    };
    let doomed_session = open(doomed.id).await;
    let kept_session = open(kept.id).await;
    assert!(
        store
            .session(customer.id, doomed_session.request_id)
            .await
            .unwrap()
            .is_some()
    );

    assert!(store.delete_login(customer.id, doomed.id).await.unwrap());
    assert_eq!(
        store
            .session(customer.id, doomed_session.request_id)
            .await
            .unwrap(),
        None,
        "deleting a LoginId ends its RequestIds"
    );
    assert_eq!(
        store
            .session(customer.id, kept_session.request_id)
            .await
            .unwrap(),
        Some(kept_session),
        "other LoginIds' sessions stay"
    );
}

async fn authorize_cached_opens_a_session(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let now = micros(5_000_001);
    let request = cached(customer.id, Some(token), login.id, now);

    let expected_session = Session {
        request_id: request.request_id,
        customer_id: customer.id,
        login_id: login.id,
        created_at: now,
        expires_at: request.session_expires_at,
        tag: Some("userId=7".to_owned()),
        operation_started_at: None,
    };
    assert_eq!(
        store.authorize_cached(request.clone()).await.unwrap(),
        OpenOutcome::Opened {
            login: login.clone(),
            session: expected_session.clone(),
        }
    );
    assert_eq!(
        store
            .session(customer.id, request.request_id)
            .await
            .unwrap(),
        Some(expected_session)
    );
    assert_eq!(
        store.session(other.id, request.request_id).await.unwrap(),
        None,
        "a RequestId is only visible to its customer"
    );
    assert_eq!(
        store
            .session(customer.id, RequestId::new_random())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        consume(&*store, customer.id, token, at(6)).await,
        TokenUse::Used { at: now },
        "the session spent the token"
    );
}

async fn authorize_cached_without_token(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let request = cached(customer.id, None, login.id, at(1));
    match store.authorize_cached(request.clone()).await.unwrap() {
        OpenOutcome::Opened {
            login: opened,
            session,
        } => {
            assert_eq!(opened, login);
            assert_eq!(session.request_id, request.request_id);
            assert_eq!(session.login_id, login.id);
        }
        other => panic!("expected a session, got {other:?}"),
    }
    assert!(
        store
            .session(customer.id, request.request_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// The session row and the card's update are the operation's last statements, which
/// PostgreSQL sends with the COMMIT: when one fails, the token's spend goes with it.
async fn authorize_cached_failing_at_its_session_spends_nothing(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let first = issue(&*store, customer.id, T0, at(1800)).await;
    let second = issue(&*store, customer.id, T0, at(1800)).await;
    let opened = cached(customer.id, Some(first), login.id, at(1));
    assert!(matches!(
        store.authorize_cached(opened.clone()).await.unwrap(),
        OpenOutcome::Opened { .. }
    ));

    // The same RequestId again: the session's INSERT fails on its primary key.
    let colliding = CachedAuthorize {
        token: Some(second),
        now: at(2),
        ..opened.clone()
    };
    assert!(
        store.authorize_cached(colliding).await.is_err(),
        "a session that cannot be written fails the call"
    );
    assert_eq!(
        consume(&*store, customer.id, second, at(3)).await,
        TokenUse::Consumed,
        "the failed call must not have spent its token"
    );
    assert_eq!(
        store
            .session(customer.id, opened.request_id)
            .await
            .unwrap()
            .map(|session| session.created_at),
        Some(at(1)),
        "the first session stays as it was"
    );
}

async fn authorize_cached_refuses_a_spent_token_and_writes_nothing(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    assert_eq!(
        consume(&*store, customer.id, token, at(1)).await,
        TokenUse::Consumed
    );

    let request = cached(customer.id, Some(token), login.id, at(2));
    assert_eq!(
        store.authorize_cached(request.clone()).await.unwrap(),
        OpenOutcome::TokenRefused(TokenUse::Used { at: at(1) })
    );
    assert_eq!(
        store
            .session(customer.id, request.request_id)
            .await
            .unwrap(),
        None,
        "a refused token opens no session"
    );
    assert_eq!(
        consume(&*store, customer.id, token, at(3)).await,
        TokenUse::Used { at: at(1) },
        "the refusal must not overwrite when the token was used"
    );
}

async fn authorize_cached_refuses_expired_unknown_and_foreign_tokens(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Production).await;
    let login = login_for(&*store, customer.id).await;
    let expired = issue(&*store, customer.id, T0, at(60)).await;
    let foreign = issue(&*store, other.id, T0, at(1800)).await;

    let cases = [
        (expired, TokenUse::Expired { at: at(60) }),
        (token_digest(), TokenUse::Unknown),
        (
            foreign,
            TokenUse::OtherCustomer {
                instance: name("beta"),
                instance_kind: InstanceKind::Production,
            },
        ),
    ];
    for (token, refusal) in cases {
        let request = cached(customer.id, Some(token), login.id, at(60));
        assert_eq!(
            store.authorize_cached(request.clone()).await.unwrap(),
            OpenOutcome::TokenRefused(refusal)
        );
        assert_eq!(
            store
                .session(customer.id, request.request_id)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        consume(&*store, other.id, foreign, at(61)).await,
        TokenUse::Consumed,
        "the owner can still spend a token another customer presented"
    );
}

async fn authorize_cached_unknown_login_still_spends_the_token(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let others_login = login_for(&*store, other.id).await;

    for login_id in [LoginId::new_random(), others_login.id] {
        let token = issue(&*store, customer.id, T0, at(1800)).await;
        let request = cached(customer.id, Some(token), login_id, at(5));
        assert_eq!(
            store.authorize_cached(request.clone()).await.unwrap(),
            OpenOutcome::LoginNotFound
        );
        assert_eq!(
            store
                .session(customer.id, request.request_id)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.session(other.id, request.request_id).await.unwrap(),
            None
        );
        assert_eq!(
            consume(&*store, customer.id, token, at(6)).await,
            TokenUse::Used { at: at(5) },
            "the token is spent whatever follows (docs/flinks-wire.md, Credentials and tokens)"
        );
    }
    assert_eq!(
        store.login(other.id, others_login.id).await.unwrap(),
        Some(others_login),
        "the other customer's LoginId is untouched"
    );
}

async fn concurrent_authorize_cached_opens_one_session(store: Arc<dyn Store>) {
    const TASKS: usize = 32;
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            let request = cached(customer.id, Some(token), login.id, at(1));
            barrier.wait().await;
            let outcome = store.authorize_cached(request.clone()).await.unwrap();
            let session = store
                .session(customer.id, request.request_id)
                .await
                .unwrap();
            (outcome, session)
        });
    }
    let outcomes = tasks.join_all().await;
    let opened = outcomes
        .iter()
        .filter(|(outcome, session)| {
            matches!(outcome, OpenOutcome::Opened { .. }) && session.is_some()
        })
        .count();
    let refused = outcomes
        .iter()
        .filter(|(outcome, session)| {
            *outcome == OpenOutcome::TokenRefused(TokenUse::Used { at: at(1) }) && session.is_none()
        })
        .count();
    assert_eq!((opened, refused), (1, TASKS - 1), "{outcomes:?}");
}

// ---- seeding ----

async fn seed_once_seeds_once(store: Arc<dyn Store>) {
    let instance = instance_record("toolbox", InstanceKind::Sandbox);
    let customer = customer_record("toolbox", "seeded");
    let keys = fresh_digests();
    assert!(
        store
            .seed_once("seed:test:v1", &instance, &customer, keys)
            .await
            .unwrap()
    );

    // A second start tries the same (its clock and random values differ); nothing changes.
    let later_instance = Instance {
        created_at: at(99),
        ..instance.clone()
    };
    let later_customer = customer_record("toolbox", "seeded again");
    let later_keys = fresh_digests();
    for _ in 0..2 {
        assert!(
            !store
                .seed_once("seed:test:v1", &later_instance, &later_customer, later_keys)
                .await
                .unwrap()
        );
    }

    assert_eq!(
        store.list_instances().await.unwrap(),
        vec![instance.clone()]
    );
    assert_eq!(
        store.list_customers(None).await.unwrap(),
        vec![customer.clone()]
    );
    assert_eq!(
        store.tenant(customer.id).await.unwrap(),
        Some(Tenant {
            customer: customer.clone(),
            instance
        })
    );
    match store.find_credential(keys.secret, at(1)).await.unwrap() {
        Some(CredentialMatch::Key {
            customer_id,
            kind: KeyKind::Secret,
            retired_at: None,
            ..
        }) => assert_eq!(customer_id, customer.id),
        other => panic!("the seeded secret key should be found: {other:?}"),
    }
    assert_eq!(
        store
            .find_credential(later_keys.secret, at(1))
            .await
            .unwrap(),
        None
    );
}

// ---- purging ----

async fn purge_expired_deletes_only_what_expired(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let cutoff = at(3600);
    let before = just_before(cutoff);
    let after = just_after(cutoff);

    let gone_early = issue(&*store, customer.id, T0, before).await;
    let gone_at_cutoff = issue(&*store, customer.id, T0, cutoff).await;
    let spent_and_gone = issue(&*store, customer.id, T0, cutoff).await;
    assert_eq!(
        consume(&*store, customer.id, spent_and_gone, at(1)).await,
        TokenUse::Consumed
    );
    let kept = issue(&*store, customer.id, T0, after).await;
    let kept_spent = issue(&*store, customer.id, T0, at(7200)).await;
    assert_eq!(
        consume(&*store, customer.id, kept_spent, at(1)).await,
        TokenUse::Consumed
    );

    let mut sessions = Vec::new();
    for expires_at in [before, cutoff, after, at(7200)] {
        let request = CachedAuthorize {
            session_expires_at: expires_at,
            ..cached(customer.id, None, login.id, at(1))
        };
        match store.authorize_cached(request).await.unwrap() {
            OpenOutcome::Opened { session, .. } => sessions.push(session),
            other => panic!("expected a session, got {other:?}"),
        }
    }

    assert_eq!(
        store.purge_expired(cutoff).await.unwrap(),
        Purged {
            tokens: 3,
            sessions: 2,
            pending: 0,
            attempt_failures: 0,
        }
    );
    for gone in [gone_early, gone_at_cutoff, spent_and_gone] {
        assert_eq!(store.find_credential(gone, cutoff).await.unwrap(), None);
        assert_eq!(
            consume(&*store, customer.id, gone, cutoff).await,
            TokenUse::Unknown
        );
    }
    assert_eq!(
        consume(&*store, customer.id, kept_spent, cutoff).await,
        TokenUse::Used { at: at(1) }
    );
    assert_eq!(
        consume(&*store, customer.id, kept, cutoff).await,
        TokenUse::Consumed,
        "a token expiring after the cutoff stays usable"
    );
    for (session, survives) in sessions.iter().zip([false, false, true, true]) {
        let found = store
            .session(customer.id, session.request_id)
            .await
            .unwrap();
        assert_eq!(
            found.as_ref(),
            survives.then_some(session),
            "session expiring {:?}",
            session.expires_at
        );
    }
    assert_eq!(
        store.purge_expired(cutoff).await.unwrap(),
        Purged::default(),
        "a second purge finds nothing"
    );
    assert_eq!(
        store.login(customer.id, login.id).await.unwrap(),
        Some(login),
        "LoginIds are never purged"
    );
}

async fn purge_expired_counts_past_any_chunk_size(store: Arc<dyn Store>) {
    // More than a backend is likely to delete per statement, so chunked purges are counted whole.
    const EXPIRED: usize = 12_001;
    const LIVE: usize = 10;
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    // Issued 256 at a time: twelve thousand writes queued at once outwait a PostgreSQL pool's
    // slot timeout on a loaded machine, and this test is about the purge, not the pool.
    let mut tokens = Vec::with_capacity(EXPIRED + LIVE);
    let all: Vec<usize> = (0..EXPIRED + LIVE).collect();
    for chunk in all.chunks(256) {
        let mut tasks = tokio::task::JoinSet::new();
        for &i in chunk {
            let store = store.clone();
            tasks.spawn(async move {
                let expires_at = if i < EXPIRED {
                    at(1 + (i as u64 % 100))
                } else {
                    at(1000)
                };
                issue(&*store, customer.id, T0, expires_at).await
            });
        }
        tokens.extend(tasks.join_all().await);
    }
    assert_eq!(
        store.purge_expired(at(500)).await.unwrap(),
        Purged {
            tokens: EXPIRED as u64,
            sessions: 0,
            pending: 0,
            attempt_failures: 0,
        }
    );
    assert_eq!(
        store.purge_expired(at(500)).await.unwrap(),
        Purged::default()
    );
    let mut usable = 0;
    for token in tokens {
        if consume(&*store, customer.id, token, at(500)).await == TokenUse::Consumed {
            usable += 1;
        }
    }
    assert_eq!(usable, LIVE);
}

// ---- durability ----

async fn writes_survive_a_restart(fixture: Fixture) {
    let store = fixture.store.clone();
    let (customer, keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let spent = issue(&*store, customer.id, T0, at(1800)).await;
    let request = cached(customer.id, Some(spent), login.id, at(1));
    let OpenOutcome::Opened { session, .. } = store.authorize_cached(request).await.unwrap() else {
        panic!("expected a session");
    };
    drop(store);

    // An issued token is durable before it is returned (docs/flinks-wire.md, Credentials and
    // tokens).
    let fixture = fixture.restart().await;
    let store = fixture.store.clone();
    assert!(store.tenant(customer.id).await.unwrap().is_some());
    assert!(
        store
            .find_credential(keys.secret, at(2))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.login(customer.id, login.id).await.unwrap(),
        Some(login)
    );
    assert_eq!(
        store
            .session(customer.id, session.request_id)
            .await
            .unwrap(),
        Some(session)
    );
    assert_eq!(
        consume(&*store, customer.id, spent, at(2)).await,
        TokenUse::Used { at: at(1) }
    );
    assert_eq!(
        consume(&*store, customer.id, token, at(3)).await,
        TokenUse::Consumed
    );
    drop(store);

    // A consumption is durable before it is reported: a restart never makes it usable again.
    let fixture = fixture.restart().await;
    assert_eq!(
        consume(&*fixture.store, customer.id, token, at(4)).await,
        TokenUse::Used { at: at(3) }
    );
}

// ---- SQLite only ----

mod sqlite_specific {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open(dir.path().join("bankgate.db")).unwrap())
    }

    /// Two stores on one file (two bankgate processes sharing it) still spend a token once:
    /// 64 concurrent uses split across both give exactly one success.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_handles_on_one_file_spend_a_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let first: Arc<dyn Store> = open(&dir);
        let second: Arc<dyn Store> = open(&dir);
        let (customer, _) = customer_on(&*first, "alpha", InstanceKind::Sandbox).await;
        let token = issue(&*first, customer.id, T0, at(1800)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let barrier = barrier.clone();
            tasks.spawn(async move {
                barrier.wait().await;
                consume(&*store, customer.id, token, at(1)).await
            });
        }
        let outcomes = tasks.join_all().await;
        let consumed = outcomes
            .iter()
            .filter(|o| **o == TokenUse::Consumed)
            .count();
        assert_eq!(consumed, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| *o == TokenUse::Consumed || matches!(o, TokenUse::Used { .. })),
            "{outcomes:?}"
        );
    }

    /// Concurrent writes share commits: 200 issues cost fewer than 200 transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_issues_are_group_committed() {
        const ISSUES: usize = 200;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = open(&dir);
        let store: Arc<dyn Store> = sqlite.clone();
        let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
        let before = sqlite.batch_stats();

        let barrier = Arc::new(tokio::sync::Barrier::new(ISSUES));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..ISSUES {
            let (store, barrier) = (store.clone(), barrier.clone());
            tasks.spawn(async move {
                let digest = token_digest();
                barrier.wait().await;
                let issued = store
                    .issue_token(NewToken {
                        digest,
                        customer_id: customer.id,
                        issued_at: T0,
                        expires_at: at(1800),
                    })
                    .await;
                (digest, issued)
            });
        }
        let issued = tasks.join_all().await;
        for (digest, result) in &issued {
            assert_eq!(result, &Ok(()));
            assert!(
                store
                    .find_credential(*digest, at(1))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        // The writer counts a batch only after answering its callers (see
        // `batch_stats_count_every_acknowledged_write`); one more write, which the writer takes
        // only after counting every earlier batch, makes the 200 issues' figures settle.
        issue(&*store, customer.id, T0, at(1800)).await;

        let after = sqlite.batch_stats();
        let jobs = after.jobs - before.jobs;
        let batches = after.batches - before.batches;
        assert!(jobs >= ISSUES as u64, "{ISSUES} issues counted: {after:?}");
        assert!(
            batches < jobs,
            "concurrent writes should share commits: {batches} batches for {jobs} jobs"
        );
        assert!(after.largest > 1, "{after:?}");
    }

    /// `batch_stats()` is "how writes have been grouped so far": a write that has been
    /// acknowledged must already be in it (metrics and tests read it right after a write).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_stats_count_every_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = open(&dir);
        let store: Arc<dyn Store> = sqlite.clone();
        // Two writes: the instance and the customer.
        let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
        let mut acknowledged = 2_u64;
        // Several rounds: the count lags only when the test reads it before the writer thread
        // has come round to updating it.
        for _ in 0..200 {
            issue(&*store, customer.id, T0, at(1800)).await;
            acknowledged += 1;
            let stats = sqlite.batch_stats();
            assert!(
                stats.jobs >= acknowledged,
                "{acknowledged} writes acknowledged, but the stats count {}: {stats:?}",
                stats.jobs
            );
        }
    }

    /// The purge walks the expiry index: its cost follows what expired, not the table size.
    #[test]
    fn purge_uses_the_expiry_index() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = open(&dir);
        let plan = sqlite.explain_purge().unwrap();
        assert!(
            plan.contains("authorize_tokens_by_expiry"),
            "query plan:\n{plan}"
        );
    }

    /// The nightly run reads only flagged cards, through their partial index, not every card.
    #[test]
    fn the_nightly_run_reads_flagged_cards_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = open(&dir);
        let plan = sqlite.explain_nightly().unwrap();
        assert!(plan.contains("logins_scheduled"), "query plan:\n{plan}");
        assert!(!plan.contains("SCAN l"), "query plan:\n{plan}");
    }
}

// ---- live authorization ----

fn pending_record(customer_id: CustomerId, now: Timestamp) -> PendingAuthorization {
    PendingAuthorization {
        request_id: RequestId::new_random(),
        customer_id,
        institution: "FlinksCapital".to_owned(),
        username: "Greatday".to_owned(),
        language: Language::En,
        save: true,
        tag: None,
        login_id: None,
        questions: vec![1],
        created_at: now,
        expires_at: now + Duration::from_secs(8 * 60),
        // Round-trips through the pending row (checked by `pending_exchange_completes_once`).
        options: CardOptions {
            schedule_refresh: Some(true),
            with_mfa_questions: true,
        },
    }
}

async fn pending_exchange_completes_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let pending = pending_record(customer.id, at(1));
    assert_eq!(
        store
            .start_pending(Some(token), &pending, at(1))
            .await
            .unwrap(),
        TokenUse::Consumed
    );
    assert_eq!(
        store.token_request(token).await.unwrap(),
        Some(pending.request_id)
    );
    assert_eq!(
        store
            .pending(customer.id, pending.request_id)
            .await
            .unwrap(),
        Some(pending.clone())
    );
    let complete = || CompleteAuthorization {
        customer_id: customer.id,
        token: None,
        request_id: pending.request_id,
        now: at(2),
        login: LoginChange::Create(login_record(customer.id, "Greatday")),
        session_expires_at: at(1802),
        tag: None,
        from_pending: true,
        webhook: None,
        connect_statements: None,
    };
    assert!(matches!(
        store.complete_authorization(complete()).await.unwrap(),
        OpenOutcome::Opened { .. }
    ));
    assert_eq!(
        store.complete_authorization(complete()).await.unwrap(),
        OpenOutcome::ExchangeEnded,
        "a second answer finds the exchange over"
    );
    assert_eq!(
        store
            .pending(customer.id, pending.request_id)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .session(customer.id, pending.request_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// The Connect page's statement parameters go on the LoginId with the authorization; an API
/// authorization (`None`) records nothing on a new card and leaves a refreshed card's record.
async fn connect_statements_are_recorded_on_the_login(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let complete = |login: LoginChange, connect: Option<ConnectStatements>| CompleteAuthorization {
        customer_id: customer.id,
        token: None,
        request_id: RequestId::new_random(),
        now: at(2),
        login,
        session_expires_at: at(1802),
        tag: None,
        from_pending: false,
        webhook: None,
        connect_statements: connect,
    };
    let api = login_record(customer.id, "Greatday");
    store
        .complete_authorization(complete(LoginChange::Create(api.clone()), None))
        .await
        .unwrap();
    assert_eq!(
        store.connect_statements(customer.id, api.id).await.unwrap(),
        None
    );

    let page = login_record(customer.id, "Greatday");
    let enabled = ConnectStatements {
        enabled: true,
        months: StatementCount::Months12,
    };
    store
        .complete_authorization(complete(LoginChange::Create(page.clone()), Some(enabled)))
        .await
        .unwrap();
    assert_eq!(
        store
            .connect_statements(customer.id, page.id)
            .await
            .unwrap(),
        Some(enabled)
    );
    // Another customer does not see it; an unknown LoginId has none.
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    assert_eq!(
        store.connect_statements(other.id, page.id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .connect_statements(customer.id, LoginId::new_random())
            .await
            .unwrap(),
        None
    );
    // An API refresh leaves the page's record; a later page without statements replaces it.
    let refresh = || LoginChange::Refresh {
        login_id: page.id,
        at: at(3),
    };
    store
        .complete_authorization(complete(refresh(), None))
        .await
        .unwrap();
    assert_eq!(
        store
            .connect_statements(customer.id, page.id)
            .await
            .unwrap(),
        Some(enabled)
    );
    let disabled = ConnectStatements {
        enabled: false,
        months: StatementCount::Months3,
    };
    store
        .complete_authorization(complete(refresh(), Some(disabled)))
        .await
        .unwrap();
    assert_eq!(
        store
            .connect_statements(customer.id, page.id)
            .await
            .unwrap(),
        Some(disabled)
    );
}

/// A two-step challenge (TextOrCall, then the code) moves its pending step on once: a second
/// answer to the first step finds it moved; an ended step does not come back.
async fn pending_step_advances_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let mut pending = pending_record(customer.id, T0);
    pending.questions = vec![102];
    store.start_pending(None, &pending, T0).await.unwrap();
    let id = pending.request_id;
    assert!(
        store
            .advance_pending(id, &[102], &[103], at(600))
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_pending(id, &[102], &[104], at(700))
            .await
            .unwrap(),
        "the step already moved on"
    );
    let now = store.pending(customer.id, id).await.unwrap().unwrap();
    assert_eq!(now.questions, vec![103]);
    assert_eq!(now.expires_at, at(600));
    assert_eq!(now.created_at, pending.created_at);
    // Several challenges at once keep their order.
    assert!(
        store
            .advance_pending(id, &[103], &[0, 1, 2], at(650))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .pending(customer.id, id)
            .await
            .unwrap()
            .unwrap()
            .questions,
        vec![0, 1, 2]
    );
    store.drop_pending(id).await.unwrap();
    assert!(
        !store
            .advance_pending(id, &[0, 1, 2], &[5], at(800))
            .await
            .unwrap()
    );
    assert_eq!(store.pending(customer.id, id).await.unwrap(), None);
}

/// An MFA RequestId idles out unless a call extends it, and ends at once on a wrong answer; an
/// authorized RequestId lives until its session expires. The purge takes each at its time.
async fn request_id_lifetimes(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let idle = pending_record(customer.id, T0);
    let extended = pending_record(customer.id, T0);
    let answered_wrong = pending_record(customer.id, T0);
    for pending in [&idle, &extended, &answered_wrong] {
        store.start_pending(None, pending, T0).await.unwrap();
    }
    store
        .extend_pending(extended.request_id, at(900))
        .await
        .unwrap();
    store.drop_pending(answered_wrong.request_id).await.unwrap();
    assert_eq!(
        store
            .pending(customer.id, answered_wrong.request_id)
            .await
            .unwrap(),
        None,
        "a wrong answer ends the exchange"
    );
    assert_eq!(
        store
            .pending(customer.id, extended.request_id)
            .await
            .unwrap()
            .map(|p| p.expires_at),
        Some(at(900))
    );
    let login = login_for(&*store, customer.id).await;
    let session = cached(customer.id, None, login.id, T0);
    store.authorize_cached(session.clone()).await.unwrap();

    assert_eq!(
        store.purge_expired(idle.expires_at).await.unwrap(),
        Purged {
            tokens: 0,
            sessions: 0,
            pending: 1,
            attempt_failures: 0,
        },
        "the idle exchange goes at its idle expiry"
    );
    assert_eq!(
        store.pending(customer.id, idle.request_id).await.unwrap(),
        None
    );
    assert!(
        store
            .pending(customer.id, extended.request_id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.purge_expired(just_before(at(900))).await.unwrap(),
        Purged::default()
    );
    assert_eq!(
        store
            .purge_expired(session.session_expires_at)
            .await
            .unwrap(),
        Purged {
            tokens: 0,
            sessions: 1,
            pending: 1,
            attempt_failures: 0,
        }
    );
    assert_eq!(
        store
            .session(customer.id, session.request_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.login(customer.id, login.id).await.unwrap(),
        Some(login),
        "a saved LoginId outlives its sessions"
    );
}

/// Of many concurrent right answers to one MFA exchange, one opens the session.
async fn concurrent_answers_complete_an_exchange_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let pending = pending_record(customer.id, at(1));
    store.start_pending(None, &pending, at(1)).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let completion = CompleteAuthorization {
                customer_id: customer.id,
                token: None,
                request_id: pending.request_id,
                now: at(2),
                login: LoginChange::Create(login_record(customer.id, "Greatday")),
                session_expires_at: at(1802),
                tag: None,
                from_pending: true,
                webhook: None,
                connect_statements: None,
            };
            tokio::spawn(async move { store.complete_authorization(completion).await.unwrap() })
        })
        .collect();
    let mut opened = 0;
    for task in tasks {
        match task.await.unwrap() {
            OpenOutcome::Opened { .. } => opened += 1,
            OpenOutcome::ExchangeEnded => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(opened, 1);
}

async fn operation_start_is_recorded_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let request = cached(customer.id, None, login.id, at(1));
    store.authorize_cached(request.clone()).await.unwrap();
    let first = store
        .start_operation(customer.id, request.request_id, at(5))
        .await
        .unwrap();
    let second = store
        .start_operation(customer.id, request.request_id, at(9))
        .await
        .unwrap();
    assert_eq!((first, second), (Some(at(5)), Some(at(5))));
    assert_eq!(
        store
            .start_operation(customer.id, RequestId::new_random(), at(9))
            .await
            .unwrap(),
        None
    );
}

async fn reset_instance_forgets_state_but_keeps_credentials(store: Arc<dyn Store>) {
    let (customer, keys) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let other_login = login_for(&*store, other.id).await;
    store
        .authorize_cached(cached(customer.id, None, login.id, at(1)))
        .await
        .unwrap();
    issue(&*store, customer.id, T0, at(1800)).await;
    let kept = issue(&*store, other.id, T0, at(1800)).await;
    store
        .start_pending(None, &pending_record(customer.id, at(1)), at(1))
        .await
        .unwrap();

    let reset = store.reset_instance(&name("alpha")).await.unwrap();
    assert_eq!(
        (reset.tokens, reset.logins, reset.sessions, reset.pending),
        (1, 1, 1, 1)
    );
    assert_eq!(store.login(customer.id, login.id).await.unwrap(), None);
    assert!(
        store.tenant(customer.id).await.unwrap().is_some(),
        "the customer stays"
    );
    assert!(
        matches!(
            store.find_credential(keys.secret, at(2)).await.unwrap(),
            Some(CredentialMatch::Key { .. })
        ),
        "its keys stay"
    );
    assert!(
        store
            .login(other.id, other_login.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        consume(&*store, other.id, kept, at(2)).await,
        TokenUse::Consumed
    );
}

async fn instance_clock_moves_forward_and_back(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    let offset = |secs| Some(ClockMoved::To(Duration::from_secs(secs)));
    assert_eq!(
        store
            .change_clock(&alpha, ClockChange::Advance(Duration::from_secs(60)))
            .await
            .unwrap(),
        offset(60)
    );
    // Moves add up, and each instance keeps its own clock.
    assert_eq!(
        store
            .change_clock(&alpha, ClockChange::Advance(Duration::from_secs(1800)))
            .await
            .unwrap(),
        offset(1860)
    );
    let read = |instance: &'static str| {
        let store = store.clone();
        async move {
            store
                .instance(&name(instance))
                .await
                .unwrap()
                .unwrap()
                .clock_offset
        }
    };
    assert_eq!(read("alpha").await, Duration::from_secs(1860));
    assert_eq!(read("beta").await, Duration::ZERO);
    let tenant = store
        .list_customers(Some(&alpha))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let tenant = store.tenant(tenant.id).await.unwrap().unwrap();
    assert_eq!(tenant.instance.clock_offset, Duration::from_secs(1860));

    assert_eq!(
        store
            .change_clock(&alpha, ClockChange::Reset)
            .await
            .unwrap(),
        offset(0)
    );
    assert_eq!(read("alpha").await, Duration::ZERO);
    assert_eq!(
        store
            .change_clock(&name("nowhere"), ClockChange::Reset)
            .await
            .unwrap(),
        None
    );
}

/// 150 concurrent advances of a hundredth of the cap each: exactly 100 move the clock, the rest
/// are refused with the offset they found, and the clock ends exactly at the cap.
async fn concurrent_advances_stop_at_the_cap(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let step = MAX_CLOCK_OFFSET / 100;
    let moves: Vec<_> = (0..150)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .change_clock(&name("alpha"), ClockChange::Advance(step))
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut moved = Vec::new();
    let mut refused = 0;
    for handle in moves {
        match handle.await.unwrap() {
            ClockMoved::To(offset) => moved.push(offset),
            ClockMoved::PastLimit(offset) => {
                assert!(offset + step > MAX_CLOCK_OFFSET, "{offset:?} had room");
                refused += 1;
            }
        }
    }
    assert_eq!((moved.len(), refused), (100, 50));
    moved.sort_unstable();
    let expected: Vec<Duration> = (1..=100).map(|n| step * n).collect();
    assert_eq!(moved, expected, "each advance saw the one before it");
    let clock = store.instance(&name("alpha")).await.unwrap().unwrap();
    assert_eq!(clock.clock_offset, MAX_CLOCK_OFFSET);
    // One more microsecond is refused; a reset still works; an advance past the cap in one go
    // is refused from zero.
    assert_eq!(
        store
            .change_clock(
                &name("alpha"),
                ClockChange::Advance(Duration::from_micros(1))
            )
            .await
            .unwrap(),
        Some(ClockMoved::PastLimit(MAX_CLOCK_OFFSET))
    );
    store
        .change_clock(&name("alpha"), ClockChange::Reset)
        .await
        .unwrap();
    assert_eq!(
        store
            .change_clock(
                &name("alpha"),
                ClockChange::Advance(MAX_CLOCK_OFFSET + Duration::from_secs(1))
            )
            .await
            .unwrap(),
        Some(ClockMoved::PastLimit(Duration::ZERO))
    );
}

async fn token_record_tells_the_state_of_a_token(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let issued = TokenRecord {
        customer_id: customer.id,
        issued_at: T0,
        expires_at: at(1800),
        consumed_at: None,
        request_id: None,
    };
    assert_eq!(store.token_record(token).await.unwrap(), Some(issued));
    let request_id = RequestId::new_random();
    assert_eq!(
        store
            .consume_token(customer.id, token, request_id, at(5))
            .await
            .unwrap(),
        TokenUse::Consumed
    );
    assert_eq!(
        store.token_record(token).await.unwrap(),
        Some(TokenRecord {
            consumed_at: Some(at(5)),
            request_id: Some(request_id),
            ..issued
        })
    );
    assert_eq!(store.token_record(token_digest()).await.unwrap(), None);
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---- the Connect page ----

fn connect_record(
    customer_id: CustomerId,
    token: Option<Digest>,
    now: Timestamp,
) -> ConnectSession {
    ConnectSession {
        secret: ConnectSecret::generate().digest(),
        customer_id,
        token,
        state: r#"{"step":"consent"}"#.to_owned(),
        created_at: now,
        expires_at: now + std::time::Duration::from_secs(1800),
    }
}

async fn connect_session_spends_its_token_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let token = issue(&*store, customer.id, T0, at(1800)).await;
    let first = connect_record(customer.id, Some(token), at(1));
    assert_eq!(
        store.open_connect_session(&first, at(1)).await.unwrap(),
        TokenUse::Consumed
    );
    assert_eq!(
        store.connect_session(first.secret).await.unwrap(),
        Some(first.clone()),
        "the session reads back as written, with the token it spent"
    );
    let second = connect_record(customer.id, Some(token), at(2));
    assert_eq!(
        store.open_connect_session(&second, at(2)).await.unwrap(),
        TokenUse::Used { at: at(1) }
    );
    assert_eq!(store.connect_session(second.secret).await.unwrap(), None);
    // The token is spent for /Authorize too.
    assert_eq!(
        consume(&*store, customer.id, token, at(3)).await,
        TokenUse::Used { at: at(1) }
    );
    // Without a token (an instance that does not require one) nothing is spent.
    let tokenless = connect_record(customer.id, None, at(4));
    assert_eq!(
        store.open_connect_session(&tokenless, at(4)).await.unwrap(),
        TokenUse::Consumed
    );
    assert!(
        store
            .connect_session(tokenless.secret)
            .await
            .unwrap()
            .is_some()
    );
}

async fn connect_session_refused_token_records_nothing(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let expired = issue(&*store, customer.id, T0, at(10)).await;
    let foreign = issue(&*store, other.id, T0, at(1800)).await;
    for (token, expected) in [
        (expired, TokenUse::Expired { at: at(10) }),
        (
            foreign,
            TokenUse::OtherCustomer {
                instance: name("beta"),
                instance_kind: InstanceKind::Sandbox,
            },
        ),
        (token_digest(), TokenUse::Unknown),
    ] {
        let session = connect_record(customer.id, Some(token), at(20));
        assert_eq!(
            store.open_connect_session(&session, at(20)).await.unwrap(),
            expected
        );
        assert_eq!(store.connect_session(session.secret).await.unwrap(), None);
    }
    assert_eq!(
        consume(&*store, other.id, foreign, at(21)).await,
        TokenUse::Consumed,
        "another customer's token is left alone"
    );
}

async fn connect_session_updates_and_expires(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let session = connect_record(customer.id, None, at(1));
    store.open_connect_session(&session, at(1)).await.unwrap();
    assert!(
        store
            .update_connect_session(session.secret, r#"{"step":"mfa"}"#, at(3600))
            .await
            .unwrap()
    );
    let read = store
        .connect_session(session.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.state, r#"{"step":"mfa"}"#);
    assert_eq!(read.expires_at, at(3600));
    assert!(
        !store
            .update_connect_session(ConnectSecret::generate().digest(), "{}", at(3600))
            .await
            .unwrap(),
        "an unknown session is not created by an update"
    );
    let short = connect_record(customer.id, None, at(1));
    store.open_connect_session(&short, at(1)).await.unwrap();
    store
        .update_connect_session(short.secret, "{}", at(100))
        .await
        .unwrap();
    assert_eq!(store.purge_connect_sessions(at(99)).await.unwrap(), 0);
    assert_eq!(store.purge_connect_sessions(at(100)).await.unwrap(), 1);
    assert_eq!(store.connect_session(short.secret).await.unwrap(), None);
    assert!(
        store
            .connect_session(session.secret)
            .await
            .unwrap()
            .is_some()
    );
}

async fn connect_token_required_per_instance(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    assert!(
        store.connect_token_required(&name("alpha")).await.unwrap(),
        "on by default"
    );
    store
        .set_connect_token_required(&name("alpha"), false)
        .await
        .unwrap();
    assert!(!store.connect_token_required(&name("alpha")).await.unwrap());
    assert!(store.connect_token_required(&name("beta")).await.unwrap());
    store
        .set_connect_token_required(&name("alpha"), true)
        .await
        .unwrap();
    assert!(store.connect_token_required(&name("alpha")).await.unwrap());
    assert_not_found(
        store
            .set_connect_token_required(&name("nowhere"), false)
            .await,
        "instance",
    );
}

async fn connect_sessions_go_with_a_reset(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let gone = connect_record(customer.id, None, at(1));
    let kept = connect_record(other.id, None, at(1));
    store.open_connect_session(&gone, at(1)).await.unwrap();
    store.open_connect_session(&kept, at(1)).await.unwrap();
    store.reset_instance(&name("alpha")).await.unwrap();
    assert_eq!(store.connect_session(gone.secret).await.unwrap(), None);
    assert!(store.connect_session(kept.secret).await.unwrap().is_some());
}
// ---- AuthorizeAsync steps ----

fn async_step_record(customer_id: CustomerId, answer: &str, secs: u64) -> AsyncStep {
    AsyncStep {
        request_id: RequestId::new_random(),
        customer_id,
        login_id: None,
        answer: answer.to_owned(),
        created_at: at(secs),
        ready_at: at(secs + 2),
        expires_at: at(secs + 1800),
    }
}

async fn async_steps_replace_and_stay_with_their_customer(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let first = async_step_record(customer.id, r#"{"status":203}"#, 1);
    assert_eq!(store.async_step(first.request_id).await.unwrap(), None);
    assert!(store.put_async_step(&first).await.unwrap());
    assert_eq!(
        store.async_step(first.request_id).await.unwrap(),
        Some(first.clone())
    );
    // The next step of the same RequestId replaces the first.
    let login = login_for(&*store, customer.id).await;
    let next = AsyncStep {
        login_id: Some(login.id),
        answer: r#"{"status":200}"#.to_owned(),
        created_at: at(10),
        ready_at: at(12),
        expires_at: at(1810),
        ..first.clone()
    };
    assert!(store.put_async_step(&next).await.unwrap());
    assert_eq!(
        store.async_step(next.request_id).await.unwrap(),
        Some(next.clone())
    );
    // Another customer cannot overwrite it, and the read says whose it is.
    let foreign = AsyncStep {
        customer_id: other.id,
        answer: "{}".to_owned(),
        ..next.clone()
    };
    assert!(!store.put_async_step(&foreign).await.unwrap());
    assert_eq!(store.async_step(next.request_id).await.unwrap(), Some(next));
}

async fn async_steps_expire_and_go_with_their_login_and_a_reset(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let short = AsyncStep {
        expires_at: at(100),
        ..async_step_record(customer.id, "{}", 1)
    };
    let long = async_step_record(customer.id, "{}", 1);
    store.put_async_step(&short).await.unwrap();
    store.put_async_step(&long).await.unwrap();
    assert_eq!(store.purge_async_steps(at(99)).await.unwrap(), 0);
    assert_eq!(store.purge_async_steps(at(100)).await.unwrap(), 1);
    assert_eq!(store.async_step(short.request_id).await.unwrap(), None);
    assert!(store.async_step(long.request_id).await.unwrap().is_some());

    // DeleteCard of the LoginId a step opened ends the step.
    let login = login_for(&*store, customer.id).await;
    let authorized = AsyncStep {
        login_id: Some(login.id),
        ..async_step_record(customer.id, "{}", 1)
    };
    store.put_async_step(&authorized).await.unwrap();
    assert!(store.delete_login(customer.id, login.id).await.unwrap());
    assert_eq!(store.async_step(authorized.request_id).await.unwrap(), None);

    // A reset of the instance forgets its steps, not another instance's.
    let kept = async_step_record(other.id, "{}", 1);
    store.put_async_step(&kept).await.unwrap();
    store.reset_instance(&name("alpha")).await.unwrap();
    assert_eq!(store.async_step(long.request_id).await.unwrap(), None);
    assert_eq!(store.async_step(kept.request_id).await.unwrap(), Some(kept));
}

/// A write that fails (a duplicate LoginId) rolls back alone and gets its own error, while
/// concurrent writes beside it are committed: on SQLite they share its batch, on PostgreSQL its
/// connection pool.
async fn a_failing_write_leaves_concurrent_writes_alone(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let existing = login_for(&*store, customer.id).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            let login = if i % 2 == 0 {
                existing.clone()
            } else {
                login_record(customer.id, "Greatday")
            };
            tokio::spawn(async move {
                let result = store.create_login(&login).await;
                (login, result)
            })
        })
        .collect();
    for task in tasks {
        let (login, result) = task.await.unwrap();
        if login.id == existing.id {
            assert_conflict(result);
        } else {
            result.unwrap();
            assert_eq!(
                store.login(customer.id, login.id).await.unwrap(),
                Some(login)
            );
        }
    }
}

// ---- failed credential attempts ----

const WINDOW: Duration = Duration::from_secs(300);
const LOCKOUT: Duration = Duration::from_secs(120);

fn pair(customer_id: CustomerId, client: &str) -> AttemptKey {
    AttemptKey {
        customer_id,
        target: "secret_key".to_owned(),
        client: client.to_owned(),
    }
}

fn failure(key: &AttemptKey, now: Timestamp, per_client: u64, per_target: u64) -> AttemptFailure {
    AttemptFailure {
        key: key.clone(),
        now,
        window: WINDOW,
        lockout: LOCKOUT,
        max_per_client: per_client,
        max_per_target: per_target,
    }
}

/// (failures in the window, locked until) of a row.
fn count_of(state: &Option<bankgate_store::AttemptFailures>) -> Option<(u64, Option<Timestamp>)> {
    state.as_ref().map(|row| (row.failures, row.locked_until))
}

async fn failures_lock_a_pair_at_its_limit_and_start_over_after_the_lockout(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let key = pair(customer.id, "203.0.113.9");
    assert_eq!(
        store.attempt_state(&key).await.unwrap(),
        AttemptState::default()
    );
    for (n, t) in [(1, at(0)), (2, at(10))] {
        let state = store.record_failure(failure(&key, t, 3, 0)).await.unwrap();
        assert_eq!(count_of(&state.pair), Some((n, None)));
        assert_eq!(state.target, None, "the target is not counted");
    }
    // The third failure reaches the limit: locked, and the count starts over.
    let locked = store
        .record_failure(failure(&key, at(20), 3, 0))
        .await
        .unwrap();
    let until = at(20) + LOCKOUT;
    assert_eq!(count_of(&locked.pair), Some((0, Some(until))));
    assert_eq!(store.attempt_state(&key).await.unwrap(), locked);
    // A failure while locked changes neither the count nor the lock, only the total.
    let during = store
        .record_failure(failure(&key, at(30), 3, 0))
        .await
        .unwrap();
    let row = during.pair.unwrap();
    assert_eq!(
        (row.failures, row.locked_until, row.total),
        (0, Some(until), 4)
    );
    assert_eq!(row.locked_at(just_before(until)), Some(until));
    assert_eq!(
        row.locked_at(until),
        None,
        "the lockout ends exactly at its end"
    );
    // After the lockout, two failures do not lock again: the count started over.
    for (n, t) in [(1, until), (2, just_after(until))] {
        let state = store.record_failure(failure(&key, t, 3, 0)).await.unwrap();
        assert_eq!(count_of(&state.pair), Some((n, Some(until))));
    }
    // A limit of one locks at once.
    let other = pair(customer.id, "198.51.100.1");
    let state = store
        .record_failure(failure(&other, at(40), 1, 0))
        .await
        .unwrap();
    assert_eq!(count_of(&state.pair), Some((0, Some(at(40) + LOCKOUT))));
}

async fn failures_count_per_target_across_clients(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let (first, second) = (pair(customer.id, "a"), pair(customer.id, "b"));
    store
        .record_failure(failure(&first, at(0), 10, 3))
        .await
        .unwrap();
    let state = store
        .record_failure(failure(&second, at(1), 10, 3))
        .await
        .unwrap();
    assert_eq!(count_of(&state.pair), Some((1, None)));
    assert_eq!(count_of(&state.target), Some((2, None)));
    let state = store
        .record_failure(failure(&first, at(2), 10, 3))
        .await
        .unwrap();
    assert_eq!(count_of(&state.pair), Some((2, None)), "the pair counts on");
    assert_eq!(count_of(&state.target), Some((0, Some(at(2) + LOCKOUT))));
    // A third client has no row of its own but sees the target's.
    let third = store.attempt_state(&pair(customer.id, "c")).await.unwrap();
    assert_eq!(third.pair, None);
    assert_eq!(third.target.unwrap().key, first.any_client());
    // Another customer's target is untouched.
    let (other, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    assert_eq!(
        store.attempt_state(&pair(other.id, "a")).await.unwrap(),
        AttemptState::default()
    );
}

async fn a_window_that_is_over_starts_the_count_again(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let key = pair(customer.id, "a");
    store
        .record_failure(failure(&key, at(0), 3, 0))
        .await
        .unwrap();
    store
        .record_failure(failure(&key, at(1), 3, 0))
        .await
        .unwrap();
    // One microsecond short of the window: the third failure still counts, and locks.
    let late = just_before(at(0) + WINDOW);
    let state = store
        .record_failure(failure(&key, late, 3, 0))
        .await
        .unwrap();
    assert_eq!(count_of(&state.pair), Some((0, Some(late + LOCKOUT))));

    let key = pair(customer.id, "b");
    store
        .record_failure(failure(&key, at(0), 3, 0))
        .await
        .unwrap();
    store
        .record_failure(failure(&key, at(1), 3, 0))
        .await
        .unwrap();
    // Exactly one window after the first failure: the count starts again at this one.
    let state = store
        .record_failure(failure(&key, at(0) + WINDOW, 3, 0))
        .await
        .unwrap();
    let row = state.pair.unwrap();
    assert_eq!((row.failures, row.locked_until, row.total), (1, None, 3));
    assert_eq!(row.window_start, at(0) + WINDOW);
}

async fn forgetting_clears_only_its_own_pair(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let (first, second) = (pair(customer.id, "a"), pair(customer.id, "b"));
    let bank = AttemptKey {
        target: "bank_login:0011223344556677".to_owned(),
        ..first.clone()
    };
    for key in [&first, &second, &bank] {
        store
            .record_failure(failure(key, at(0), 10, 50))
            .await
            .unwrap();
    }
    store.forget_failures(&first).await.unwrap();
    let state = store.attempt_state(&first).await.unwrap();
    assert_eq!(state.pair, None);
    assert_eq!(
        count_of(&state.target),
        Some((2, None)),
        "the target keeps its count"
    );
    let state = store.attempt_state(&second).await.unwrap();
    assert_eq!(count_of(&state.pair), Some((1, None)));
    let state = store.attempt_state(&bank).await.unwrap();
    assert_eq!(
        count_of(&state.pair),
        Some((1, None)),
        "another target of the client"
    );
    // Forgetting a pair with no row is harmless.
    store.forget_failures(&first).await.unwrap();
}

async fn lockouts_are_listed_and_cleared_by_filter(store: Arc<dyn Store>) {
    let (one, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let (two, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    store
        .record_failure(failure(&pair(one.id, "a"), at(0), 1, 0))
        .await
        .unwrap();
    store
        .record_failure(failure(&pair(two.id, "a"), at(1), 1, 0))
        .await
        .unwrap();
    store
        .record_failure(failure(&pair(two.id, "b"), at(2), 5, 0))
        .await
        .unwrap();
    let all = store
        .lockouts(&AttemptFilter::default(), at(3))
        .await
        .unwrap();
    let keys: Vec<_> = all.iter().map(|row| row.key.clone()).collect();
    assert_eq!(
        keys,
        [pair(two.id, "a"), pair(one.id, "a")],
        "latest end first"
    );
    let of_two = AttemptFilter {
        customer_id: Some(two.id),
        client: None,
    };
    assert_eq!(store.lockouts(&of_two, at(3)).await.unwrap().len(), 1);
    // Lockouts that ended are not listed.
    assert!(
        store
            .lockouts(&AttemptFilter::default(), at(1) + LOCKOUT)
            .await
            .unwrap()
            .is_empty()
    );
    // Clearing a client of a customer forgets its rows there only, locked or not.
    let cleared = store
        .clear_failures(&AttemptFilter {
            customer_id: Some(two.id),
            client: Some("a".to_owned()),
        })
        .await
        .unwrap();
    assert_eq!(cleared, 1);
    assert_eq!(store.lockouts(&of_two, at(3)).await.unwrap(), []);
    assert!(
        store
            .attempt_state(&pair(one.id, "a"))
            .await
            .unwrap()
            .pair
            .is_some()
    );
    // Everything of a customer.
    assert_eq!(store.clear_failures(&of_two).await.unwrap(), 1);
    assert_eq!(
        store
            .clear_failures(&AttemptFilter::default())
            .await
            .unwrap(),
        1
    );
}

async fn spent_failure_rows_are_purged(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let counting = pair(customer.id, "a");
    let locked = pair(customer.id, "b");
    store
        .record_failure(failure(&counting, at(0), 5, 0))
        .await
        .unwrap();
    store
        .record_failure(failure(&locked, at(0), 1, 0))
        .await
        .unwrap();
    // The counting row is spent when its window is over; the locked one when the window that
    // starts after its lockout is.
    let purged = store
        .purge_expired(just_before(at(0) + WINDOW))
        .await
        .unwrap();
    assert_eq!(purged.attempt_failures, 0);
    let purged = store.purge_expired(at(0) + WINDOW).await.unwrap();
    assert_eq!(purged.attempt_failures, 1);
    assert_eq!(store.attempt_state(&counting).await.unwrap().pair, None);
    assert!(store.attempt_state(&locked).await.unwrap().pair.is_some());
    let purged = store.purge_expired(at(0) + LOCKOUT + WINDOW).await.unwrap();
    assert_eq!(purged.attempt_failures, 1);
    assert_eq!(
        store.attempt_state(&locked).await.unwrap(),
        AttemptState::default()
    );
}

async fn concurrent_failures_all_count(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(store.as_ref(), "limits", InstanceKind::Sandbox).await;
    let key = pair(customer.id, "a");
    let attempts = (0..20).map(|i| {
        let (store, key) = (
            store.clone(),
            pair(customer.id, if i % 2 == 0 { "a" } else { "b" }),
        );
        tokio::spawn(async move { store.record_failure(failure(&key, at(1), 100, 15)).await })
    });
    for attempt in attempts {
        attempt.await.unwrap().unwrap();
    }
    let state = store.attempt_state(&key).await.unwrap();
    assert_eq!(count_of(&state.pair), Some((10, None)));
    // The 15th failure locked the target, whichever client made it; later ones did not count.
    let target = state.target.unwrap();
    assert_eq!((target.failures, target.total), (0, 20));
    assert_eq!(target.locked_until, Some(at(1) + LOCKOUT));
}

async fn lockouts_go_with_a_reset(store: Arc<dyn Store>) {
    let (reset, _) = customer_on(store.as_ref(), "alpha", InstanceKind::Sandbox).await;
    let (kept, _) = customer_on(store.as_ref(), "beta", InstanceKind::Sandbox).await;
    for customer in [reset.id, kept.id] {
        store
            .record_failure(failure(&pair(customer, "a"), at(0), 1, 5))
            .await
            .unwrap();
    }
    store.reset_instance(&name("alpha")).await.unwrap();
    assert_eq!(
        store.attempt_state(&pair(reset.id, "a")).await.unwrap(),
        AttemptState::default()
    );
    let kept = store.attempt_state(&pair(kept.id, "a")).await.unwrap();
    assert!(kept.pair.is_some() && kept.target.is_some(), "{kept:?}");
}

// ---- forced failures ----

fn forced(instance: &str, target: ForcedTarget, action: ForcedAction, count: u64) -> ForcedRule {
    ForcedRule {
        id: LoginId::new_random().to_string(),
        instance: name(instance),
        target,
        action,
        remaining: count,
        active_until: None,
        created_at: T0,
    }
}

fn authorize_call(
    customer_id: CustomerId,
    login_id: Option<LoginId>,
    username: &str,
) -> ForcedCall<'_> {
    ForcedCall::Authorize {
        customer_id,
        login_id,
        username,
    }
}

async fn forced_rules_are_listed_and_cleared_by_scope(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    assert!(!store.has_forced_rules(&name("alpha")).await.unwrap());
    let by_login = forced(
        "alpha",
        ForcedTarget::Login(customer.id, login.id),
        ForcedAction::RetryLater,
        2,
    );
    let by_user = forced(
        "alpha",
        ForcedTarget::Username(customer.id, "greatday".to_owned()),
        ForcedAction::Pending(Duration::from_secs(30)),
        1,
    );
    let fault = forced(
        "alpha",
        ForcedTarget::Endpoint("GetAccountsDetail".to_owned()),
        ForcedAction::Status(503),
        1,
    );
    for rule in [&by_login, &by_user, &fault] {
        store.add_forced_rule(rule).await.unwrap();
    }
    assert!(store.has_forced_rules(&name("alpha")).await.unwrap());
    let mut listed = store
        .forced_rules(&ForcedScope::Customer(customer.id))
        .await
        .unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![by_login.clone(), by_user.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected, "rules round-trip exactly");
    assert_eq!(
        store
            .forced_rules(&ForcedScope::Login(customer.id, login.id))
            .await
            .unwrap(),
        vec![by_login.clone()]
    );
    assert_eq!(
        store
            .forced_rules(&ForcedScope::Faults(name("alpha")))
            .await
            .unwrap(),
        vec![fault.clone()]
    );
    // A rule for a customer that does not exist is refused, and nothing is written.
    let orphan = forced(
        "alpha",
        ForcedTarget::Username(CustomerId::new_random(), "greatday".to_owned()),
        ForcedAction::RetryLater,
        1,
    );
    assert_not_found(store.add_forced_rule(&orphan).await, "instance or customer");

    assert_eq!(
        store
            .clear_forced_rules(&ForcedScope::Login(customer.id, login.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .clear_forced_rules(&ForcedScope::Customer(customer.id))
            .await
            .unwrap(),
        1
    );
    assert!(
        store.has_forced_rules(&name("alpha")).await.unwrap(),
        "the fault is left"
    );
    assert_eq!(
        store
            .clear_forced_rules(&ForcedScope::Faults(name("alpha")))
            .await
            .unwrap(),
        1
    );
    assert!(!store.has_forced_rules(&name("alpha")).await.unwrap());
}

async fn forced_rules_count_down_and_match_their_call(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    let second = login_for(&*store, customer.id).await;
    store
        .add_forced_rule(&forced(
            "alpha",
            ForcedTarget::Login(customer.id, login.id),
            ForcedAction::DisabledLogin,
            2,
        ))
        .await
        .unwrap();
    // Another LoginId, another customer's user: untouched.
    for call in [
        authorize_call(customer.id, Some(second.id), "Greatday"),
        authorize_call(other.id, None, "Greatday"),
    ] {
        assert_eq!(store.take_forced(&call, at(1)).await.unwrap(), None);
    }
    let call = authorize_call(customer.id, Some(login.id), "Greatday");
    let first = store.take_forced(&call, at(1)).await.unwrap().unwrap();
    assert_eq!(
        (first.action, first.remaining),
        (ForcedAction::DisabledLogin, 1)
    );
    let last = store.take_forced(&call, at(2)).await.unwrap().unwrap();
    assert_eq!(last.remaining, 0);
    assert_eq!(store.take_forced(&call, at(3)).await.unwrap(), None);
    assert!(
        !store.has_forced_rules(&name("alpha")).await.unwrap(),
        "a rule used up is gone"
    );

    // A username rule: every LoginId of the user (any case), and new connections.
    store
        .add_forced_rule(&forced(
            "alpha",
            ForcedTarget::Username(customer.id, "GreatDay".to_owned()),
            ForcedAction::NewMfaQuestion,
            3,
        ))
        .await
        .unwrap();
    for call in [
        authorize_call(customer.id, Some(login.id), "Greatday"),
        authorize_call(customer.id, Some(second.id), "greatday"),
        authorize_call(customer.id, None, "GREATDAY"),
    ] {
        let taken = store.take_forced(&call, at(4)).await.unwrap();
        assert_eq!(taken.map(|r| r.action), Some(ForcedAction::NewMfaQuestion));
    }
    assert_eq!(
        store
            .take_forced(&authorize_call(customer.id, None, "greatday"), at(5))
            .await
            .unwrap(),
        None
    );

    // An endpoint fault: only that endpoint of that instance.
    store
        .add_forced_rule(&forced(
            "alpha",
            ForcedTarget::Endpoint("Authorize".to_owned()),
            ForcedAction::Stall(Duration::from_secs(5)),
            1,
        ))
        .await
        .unwrap();
    let alpha = name("alpha");
    let other_endpoint = ForcedCall::Endpoint {
        instance: &alpha,
        endpoint: "GetAccountsDetail",
    };
    assert_eq!(
        store.take_forced(&other_endpoint, at(6)).await.unwrap(),
        None
    );
    let fault = ForcedCall::Endpoint {
        instance: &alpha,
        endpoint: "Authorize",
    };
    let taken = store.take_forced(&fault, at(6)).await.unwrap().unwrap();
    assert_eq!(taken.action, ForcedAction::Stall(Duration::from_secs(5)));
    assert_eq!(store.take_forced(&fault, at(7)).await.unwrap(), None);
}

async fn forced_pending_lasts_its_period(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    store
        .add_forced_rule(&forced(
            "alpha",
            ForcedTarget::Login(customer.id, login.id),
            ForcedAction::Pending(Duration::from_secs(30)),
            1,
        ))
        .await
        .unwrap();
    let call = authorize_call(customer.id, Some(login.id), "Greatday");
    let started = store.take_forced(&call, at(10)).await.unwrap().unwrap();
    assert_eq!((started.remaining, started.active_until), (0, Some(at(40))));
    let during = store
        .take_forced(&call, just_before(at(40)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        during.active_until,
        Some(at(40)),
        "the period does not restart"
    );
    assert_eq!(store.take_forced(&call, at(40)).await.unwrap(), None);
    assert!(
        store
            .forced_rules(&ForcedScope::Customer(customer.id))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_calls_take_each_use_once(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login = login_for(&*store, customer.id).await;
    store
        .add_forced_rule(&forced(
            "alpha",
            ForcedTarget::Login(customer.id, login.id),
            ForcedAction::RetryLater,
            3,
        ))
        .await
        .unwrap();
    let calls = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .take_forced(
                    &authorize_call(customer.id, Some(login.id), "Greatday"),
                    at(1),
                )
                .await
                .unwrap()
                .map(|rule| rule.remaining)
        })
    });
    let mut left: Vec<u64> = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        if let Some(remaining) = call.await.unwrap() {
            left.push(remaining);
        }
    }
    left.sort_unstable();
    assert_eq!(left, vec![0, 1, 2], "three uses, each taken once");
}

async fn forced_rules_go_with_a_reset_and_survive_a_restart(fixture: Fixture) {
    let (customer, _) = customer_on(&*fixture.store, "alpha", InstanceKind::Sandbox).await;
    let rule = forced(
        "alpha",
        ForcedTarget::Username(customer.id, "greatday".to_owned()),
        ForcedAction::AggregationError,
        2,
    );
    fixture.store.add_forced_rule(&rule).await.unwrap();
    let fixture = fixture.restart().await;
    assert_eq!(
        fixture
            .store
            .forced_rules(&ForcedScope::Customer(customer.id))
            .await
            .unwrap(),
        vec![rule]
    );
    fixture.store.reset_instance(&name("alpha")).await.unwrap();
    assert!(
        !fixture
            .store
            .has_forced_rules(&name("alpha"))
            .await
            .unwrap()
    );
}

// ---- webhooks ----

fn delivery(instance: &str, request_id: RequestId, kind: &str, position: i64) -> NewDelivery {
    NewDelivery {
        id: uuid_like(),
        instance: name(instance),
        request_id,
        login_id: LoginId::new_random(),
        kind: kind.to_owned(),
        position,
        body: format!("{{\"ResponseType\":\"{kind}\"}}"),
        created_at: T0,
        not_before: T0,
    }
}

fn uuid_like() -> String {
    RequestId::new_random().to_string()
}

async fn webhook_is_set_rotated_and_removed(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    assert_eq!(store.webhook(&alpha).await.unwrap(), None);
    let (set, took) = store
        .set_webhook(&alpha, "https://a.test/hook", "s1", T0)
        .await
        .unwrap();
    assert!(took);
    assert_eq!(
        (set.url.as_str(), set.secret.as_str()),
        ("https://a.test/hook", "s1")
    );
    // A new URL keeps the secret the receiver already has.
    let (moved, took) = store
        .set_webhook(&alpha, "https://b.test/hook", "s2", at(1))
        .await
        .unwrap();
    assert!(!took);
    assert_eq!(
        (moved.url.as_str(), moved.secret.as_str()),
        ("https://b.test/hook", "s1")
    );
    assert_eq!(moved.created_at, T0);
    assert_eq!(moved.updated_at, at(1));
    let rotated = store
        .rotate_webhook_secret(&alpha, "s3", at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "s3");
    assert_eq!(store.webhook(&alpha).await.unwrap(), Some(rotated));
    assert!(format!("{:?}", store.webhook(&alpha).await.unwrap()).contains("<redacted>"));
    assert!(store.delete_webhook(&alpha).await.unwrap());
    assert!(!store.delete_webhook(&alpha).await.unwrap());
    assert_eq!(
        store
            .rotate_webhook_secret(&alpha, "s4", at(3))
            .await
            .unwrap(),
        None
    );
    assert_not_found(
        store
            .set_webhook(&name("nowhere"), "https://a.test/", "s", T0)
            .await,
        "instance",
    );
}

async fn outbox_sends_in_order_retries_and_gives_up(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    let rid = RequestId::new_random();
    let kyc = delivery("alpha", rid, "KYC", 0);
    let detail = delivery("alpha", rid, "GetAccountsDetail", 1);
    // No webhook on beta: nothing is queued for it.
    assert_eq!(
        store
            .enqueue_deliveries(vec![delivery("beta", rid, "KYC", 0)])
            .await
            .unwrap(),
        0
    );
    store
        .set_webhook(&alpha, "https://a.test/hook", "s", T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_deliveries(vec![kyc.clone(), detail.clone()])
            .await
            .unwrap(),
        2
    );
    // The KYC callback first; the detail waits for it even though it is due.
    let lease = at(60);
    let claimed = store.claim_deliveries(T0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].id.as_str(), claimed[0].attempts),
        (kyc.id.as_str(), 1)
    );
    // Held by the lease: nobody else takes it meanwhile.
    assert!(
        store
            .claim_deliveries(at(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A 500: retried 30 minutes later on the instance's clock.
    let failed = store
        .finish_delivery(
            &kyc.id,
            &AttemptResult::Failed {
                status: Some(500),
                error: "HTTP 500".to_owned(),
            },
            at(2),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, DeliveryStatus::Pending);
    assert_eq!(failed.next_attempt_at, at(2) + RETRY_INTERVAL);
    assert_eq!(failed.last_status, Some(500));
    assert!(
        store
            .claim_deliveries(at(3), at(63), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Moving the instance's clock makes it due.
    store
        .change_clock(&alpha, ClockChange::Advance(RETRY_INTERVAL))
        .await
        .unwrap();
    let again = store.claim_deliveries(at(3), at(63), 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    let done = store
        .finish_delivery(&kyc.id, &AttemptResult::Delivered { status: 200 }, at(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(done.finished_at, Some(at(4) + RETRY_INTERVAL));
    // Now the detail.
    let next = store.claim_deliveries(at(5), at(65), 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, detail.id);
    // Every attempt fails: given up after the tenth.
    let mut last = None;
    for attempt in 1..=MAX_DELIVERY_ATTEMPTS {
        if attempt > 1 {
            store
                .change_clock(&alpha, ClockChange::Advance(RETRY_INTERVAL))
                .await
                .unwrap();
            let claimed = store.claim_deliveries(at(5), at(65), 10).await.unwrap();
            assert_eq!(claimed.len(), 1, "attempt {attempt}");
            assert_eq!(claimed[0].attempts, attempt);
        }
        last = store
            .finish_delivery(
                &detail.id,
                &AttemptResult::Failed {
                    status: None,
                    error: "timed out".to_owned(),
                },
                at(5),
            )
            .await
            .unwrap();
    }
    let last = last.unwrap();
    assert_eq!(last.status, DeliveryStatus::Failed);
    assert_eq!(last.last_error.as_deref(), Some("timed out"));
    store
        .change_clock(&alpha, ClockChange::Advance(RETRY_INTERVAL))
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(at(6), at(66), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Listed newest first; a replay starts the count again.
    let listed = store.deliveries(&alpha, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        ["GetAccountsDetail", "KYC"]
    );
    assert_eq!(
        store
            .replay_delivery(&name("beta"), &detail.id, at(7))
            .await
            .unwrap(),
        None
    );
    let replayed = store
        .replay_delivery(&alpha, &detail.id, at(7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (replayed.status, replayed.attempts),
        (DeliveryStatus::Pending, 0)
    );
    assert_eq!(
        store
            .claim_deliveries(at(7), at(67), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // The purge removes finished callbacks once old enough (on their instance's clock), never
    // pending ones: the KYC finished at `done.finished_at`, instance time.
    let offset = store.instance(&alpha).await.unwrap().unwrap().clock_offset;
    let finished = done.finished_at.unwrap();
    let purge = |real: Timestamp| {
        let store = store.clone();
        async move { store.purge_deliveries(real).await.unwrap() }
    };
    assert_eq!(purge(just_before(finished - offset)).await, 0);
    assert_eq!(purge(finished - offset).await, 1);
    let left = store.deliveries(&alpha, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, detail.id);
    assert_eq!(purge(at(1_000_000)).await, 0, "a pending callback stays");
}

async fn outbox_waits_for_not_before_and_expired_leases(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    store
        .set_webhook(&alpha, "https://a.test/hook", "s", T0)
        .await
        .unwrap();
    let mut later = delivery("alpha", RequestId::new_random(), "GetAccountsDetail", 1);
    later.not_before = at(10);
    store.enqueue_deliveries(vec![later.clone()]).await.unwrap();
    assert!(
        store
            .claim_deliveries(just_before(at(10)), at(70), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_deliveries(at(10), at(70), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A node that died holding it: taken again once its lease is over.
    assert!(
        store
            .claim_deliveries(just_before(at(70)), at(130), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retaken = store.claim_deliveries(at(70), at(130), 10).await.unwrap();
    assert_eq!((retaken.len(), retaken[0].attempts), (1, 2));
}

/// The authorization's own write queues two small rows (no body) when the instance has a
/// webhook, none otherwise; each carries the LoginId as committed and the session's tag.
async fn an_authorization_queues_its_callbacks_in_its_write(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    let complete = |login: Login, tag: Option<&str>| CompleteAuthorization {
        customer_id: customer.id,
        token: None,
        request_id: RequestId::new_random(),
        now: at(2),
        login: LoginChange::Create(login),
        session_expires_at: at(1802),
        tag: tag.map(str::to_owned),
        from_pending: false,
        webhook: Some(alpha.clone()),
        connect_statements: None,
    };
    // Asked to queue, but the instance has no webhook: nothing queued, the authorization done.
    let opened = store
        .complete_authorization(complete(login_record(customer.id, "Greatday"), None))
        .await
        .unwrap();
    assert!(matches!(opened, OpenOutcome::Opened { .. }));
    assert!(store.deliveries(&alpha, 10).await.unwrap().is_empty());
    assert!(!store.has_webhook(&alpha).await.unwrap());
    store
        .set_webhook(&alpha, "https://a.test/hook", "s", T0)
        .await
        .unwrap();
    // Seen at once through the store that set it.
    assert!(store.has_webhook(&alpha).await.unwrap());
    let login = login_record(customer.id, "Greatday");
    let OpenOutcome::Opened { session, .. } = store
        .complete_authorization(complete(login.clone(), Some("order-7")))
        .await
        .unwrap()
    else {
        panic!("not opened");
    };
    let mut listed = store.deliveries(&alpha, 10).await.unwrap();
    listed.reverse();
    assert_eq!(
        listed.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        ["KYC", "GetAccountsDetail"]
    );
    assert_ne!(listed[0].id, listed[1].id);
    for queued in &listed {
        assert_eq!(queued.request_id, session.request_id);
        assert_eq!(queued.login_id, login.id);
        assert_eq!(queued.created_at, at(2));
        assert_eq!(queued.next_attempt_at, at(2));
        assert_eq!(
            (queued.status, queued.attempts),
            (DeliveryStatus::Pending, 0)
        );
        assert_eq!(
            queued.content,
            DeliveryContent::Subject(CallbackSubject {
                login: login.clone(),
                tag: Some("order-7".to_owned()),
            })
        );
    }
    // KYC first, as before.
    let claimed = store.claim_deliveries(at(2), at(62), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, listed[0].id);
    assert_eq!(claimed[0].content, listed[0].content);
    // A retried KYC keeps GetAccountsDetail waiting, even once the KYC is due again...
    store
        .finish_delivery(
            &claimed[0].id,
            &AttemptResult::Failed {
                status: Some(500),
                error: "HTTP 500".to_owned(),
            },
            at(3),
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(at(4), at(64), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = at(3) + RETRY_INTERVAL;
    let again = store
        .claim_deliveries(retry, retry + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, listed[0].id);
    // ...and releases it once delivered.
    store
        .finish_delivery(
            &again[0].id,
            &AttemptResult::Delivered { status: 200 },
            retry,
        )
        .await
        .unwrap();
    let detail = store
        .claim_deliveries(retry, retry + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0].id, listed[1].id);
    // Disabled: the next authorization queues nothing, though asked to.
    store.delete_webhook(&alpha).await.unwrap();
    assert!(!store.has_webhook(&alpha).await.unwrap());
    store
        .complete_authorization(complete(login_record(customer.id, "Greatday"), None))
        .await
        .unwrap();
    assert_eq!(store.deliveries(&alpha, 10).await.unwrap().len(), 2);
}

/// A lease ends on the instance's clock (moving it frees a dead node's callbacks); a batch of
/// outcomes is written together; a callback held back for its data gives its attempt back.
async fn leases_are_on_the_instance_clock_and_outcomes_written_in_batches(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    store
        .set_webhook(&alpha, "https://a.test/hook", "s", T0)
        .await
        .unwrap();
    let queued: Vec<NewDelivery> = (0..3)
        .map(|_| delivery("alpha", RequestId::new_random(), "KYC", 0))
        .collect();
    store.enqueue_deliveries(queued.clone()).await.unwrap();
    assert_eq!(
        store.claim_deliveries(T0, at(60), 10).await.unwrap().len(),
        3
    );
    // Held: the same real time finds nothing...
    assert!(
        store
            .claim_deliveries(at(1), at(61), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...until the instance's clock passes the lease.
    store
        .change_clock(&alpha, ClockChange::Advance(Duration::from_secs(60)))
        .await
        .unwrap();
    let retaken = store.claim_deliveries(at(1), at(61), 10).await.unwrap();
    assert_eq!(retaken.len(), 3);
    assert!(retaken.iter().all(|d| d.attempts == 2));
    let offset = store.instance(&alpha).await.unwrap().unwrap().clock_offset;
    let until = at(500) + offset;
    let after = store
        .finish_deliveries(
            vec![
                (
                    queued[0].id.clone(),
                    AttemptResult::Delivered { status: 204 },
                ),
                (
                    queued[1].id.clone(),
                    AttemptResult::Failed {
                        status: None,
                        error: "no answer within 10 s".to_owned(),
                    },
                ),
                (queued[2].id.clone(), AttemptResult::NotYet { until }),
                (
                    "no-such-delivery".to_owned(),
                    AttemptResult::Delivered { status: 200 },
                ),
            ],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 4);
    let delivered = after[0].as_ref().unwrap();
    assert_eq!(
        (delivered.status, delivered.last_status),
        (DeliveryStatus::Delivered, Some(204))
    );
    let failed = after[1].as_ref().unwrap();
    assert_eq!(failed.status, DeliveryStatus::Pending);
    assert_eq!(failed.next_attempt_at, at(2) + offset + RETRY_INTERVAL);
    let held = after[2].as_ref().unwrap();
    assert_eq!(
        (held.status, held.attempts, held.next_attempt_at),
        (DeliveryStatus::Pending, 1, until)
    );
    assert_eq!(after[3], None);
    // Not due before `until`, then due without waiting for a lease.
    assert!(
        store
            .claim_deliveries(at(499), at(559), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.claim_deliveries(at(500), at(560), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].id.as_str(), due[0].attempts),
        (queued[2].id.as_str(), 2)
    );
}

async fn concurrent_claims_take_each_delivery_once(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    store
        .set_webhook(&alpha, "https://a.test/hook", "s", T0)
        .await
        .unwrap();
    let queued: Vec<NewDelivery> = (0..40)
        .map(|_| delivery("alpha", RequestId::new_random(), "KYC", 0))
        .collect();
    store.enqueue_deliveries(queued).await.unwrap();
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_deliveries(T0, at(60), 3).await.unwrap() })
    });
    let mut ids = Vec::new();
    for claim in claims {
        ids.extend(claim.await.unwrap().into_iter().map(|d| d.id));
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a delivery was claimed twice");
    assert_eq!(total, 24);
}

async fn queued_callbacks_go_with_a_reset(store: Arc<dyn Store>) {
    customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    customer_on(&*store, "beta", InstanceKind::Sandbox).await;
    for instance in ["alpha", "beta"] {
        store
            .set_webhook(&name(instance), "https://a.test/hook", "s", T0)
            .await
            .unwrap();
        let rid = RequestId::new_random();
        let queued = store
            .enqueue_deliveries(vec![
                delivery(instance, rid, "KYC", 0),
                delivery(instance, rid, "GetAccountsDetail", 1),
            ])
            .await
            .unwrap();
        assert_eq!(queued, 2);
    }
    store.reset_instance(&name("alpha")).await.unwrap();
    assert!(
        store
            .deliveries(&name("alpha"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.webhook(&name("alpha")).await.unwrap().is_some(),
        "the webhook setting stays"
    );
    assert_eq!(store.deliveries(&name("beta"), 10).await.unwrap().len(), 2);
}

// ---- the nightly refresh and Enhanced MFA ----

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A saved card of `username`, made at `now` by a completed live connection (with its
/// Enhanced MFA questions when `answers` is given).
async fn card_made(
    store: &dyn Store,
    customer_id: CustomerId,
    username: &str,
    scheduled: bool,
    answers: Option<bankgate_store::MfaAnswers>,
    now: Timestamp,
) -> Login {
    let login = Login {
        is_scheduled_refresh: scheduled,
        last_refresh: now,
        created_at: now,
        ..login_record(customer_id, username)
    };
    let change = match answers {
        Some(answers) => LoginChange::CreateWithQuestions {
            login: login.clone(),
            answers,
        },
        None => LoginChange::Create(login.clone()),
    };
    let outcome = store
        .complete_authorization(CompleteAuthorization {
            customer_id,
            token: None,
            request_id: RequestId::new_random(),
            now,
            login: change,
            session_expires_at: now + Duration::from_secs(1800),
            tag: None,
            from_pending: false,
            webhook: None,
            connect_statements: None,
        })
        .await
        .unwrap();
    assert!(matches!(outcome, OpenOutcome::Opened { .. }), "{outcome:?}");
    login
}

async fn cached_call(
    store: &dyn Store,
    customer_id: CustomerId,
    login_id: LoginId,
    now: Timestamp,
) {
    let outcome = store
        .authorize_cached(cached(customer_id, None, login_id, now))
        .await
        .unwrap();
    assert!(matches!(outcome, OpenOutcome::Opened { .. }), "{outcome:?}");
}

async fn scheduled_refresh_is_switched_on_saved_cards_only(store: Arc<dyn Store>) {
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let card = card_made(&*store, customer.id, "greatday_nomfa", false, None, T0).await;
    let on = store
        .set_scheduled_refresh(customer.id, card.id, true, at(5))
        .await
        .unwrap()
        .expect("the card");
    assert!(on.is_scheduled_refresh);
    assert!(
        store
            .login(customer.id, card.id)
            .await
            .unwrap()
            .unwrap()
            .is_scheduled_refresh
    );
    // Another customer's card, an unknown one and an unsaved one are not found; nothing changes.
    assert_eq!(
        store
            .set_scheduled_refresh(other.id, card.id, false, at(6))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .set_scheduled_refresh(customer.id, LoginId::new_random(), true, at(6))
            .await
            .unwrap(),
        None
    );
    let unsaved = Login {
        saved: false,
        ..login_record(customer.id, "greatday_nomfa")
    };
    store.create_login(&unsaved).await.unwrap();
    assert_eq!(
        store
            .set_scheduled_refresh(customer.id, unsaved.id, true, at(6))
            .await
            .unwrap(),
        None
    );
    let off = store
        .set_scheduled_refresh(customer.id, card.id, false, at(7))
        .await
        .unwrap()
        .unwrap();
    assert!(!off.is_scheduled_refresh);
    assert!(store.stopped_cards(customer.id).await.unwrap().is_empty());
}

async fn nightly_refresh_runs_each_night_until_the_cached_call_is_a_week_old(
    store: Arc<dyn Store>,
) {
    use bankgate_core::nightly::{Stop, night_of, run_time};
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let alpha = name("alpha");
    // Nothing flagged yet: no night is ever due.
    assert_eq!(
        store
            .run_nightly(&alpha, T0 + DAY * 3)
            .await
            .unwrap()
            .nights,
        0
    );
    let flagged = card_made(&*store, customer.id, "greatday_nomfa", true, None, T0).await;
    let plain = card_made(&*store, customer.id, "greatday_nomfa", false, None, T0).await;
    cached_call(&*store, customer.id, flagged.id, at(60)).await;
    cached_call(&*store, customer.id, plain.id, at(60)).await;
    let tonight = night_of(T0);
    // Before 02:00 nothing runs.
    assert_eq!(
        store
            .run_nightly(&alpha, T0 + Duration::from_secs(3600))
            .await
            .unwrap()
            .nights,
        0
    );
    let one = store
        .run_nightly(&alpha, run_time(tonight + 1))
        .await
        .unwrap();
    assert_eq!((one.nights, one.refreshed, one.stopped), (1, 1, 0));
    let refreshed = store.login(customer.id, flagged.id).await.unwrap().unwrap();
    assert_eq!(refreshed.last_refresh, run_time(tonight + 1));
    assert_eq!(
        store
            .login(customer.id, plain.id)
            .await
            .unwrap()
            .unwrap()
            .last_refresh,
        T0,
        "an unflagged card is left alone"
    );
    // Run again the same night: nothing is due.
    assert_eq!(
        store
            .run_nightly(&alpha, run_time(tonight + 1) + DAY / 2)
            .await
            .unwrap(),
        bankgate_store::NightlyRun::default()
    );
    // Seven more nights at once: refreshed until the seventh night after the cached call.
    let later = store
        .run_nightly(&alpha, run_time(tonight + 8))
        .await
        .unwrap();
    assert_eq!((later.nights, later.refreshed, later.stopped), (7, 1, 1));
    let card = store.login(customer.id, flagged.id).await.unwrap().unwrap();
    assert_eq!(card.last_refresh, run_time(tonight + 7));
    let stopped = store.stopped_cards(customer.id).await.unwrap();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].login_id, flagged.id);
    assert_eq!(stopped[0].stop, Stop::NoCachedCall);
    assert_eq!(stopped[0].stopped_at, run_time(tonight + 8));
    assert_eq!(stopped[0].last_refresh, run_time(tonight + 7));
    // Another night: still stopped, since the same night.
    store
        .run_nightly(&alpha, run_time(tonight + 9))
        .await
        .unwrap();
    assert_eq!(
        store.stopped_cards(customer.id).await.unwrap()[0].stopped_at,
        run_time(tonight + 8)
    );
    // A live refresh makes it healthy again; a refresh error that is not tolerated stops it.
    store
        .complete_authorization(CompleteAuthorization {
            customer_id: customer.id,
            token: None,
            request_id: RequestId::new_random(),
            now: run_time(tonight + 9),
            login: LoginChange::Refresh {
                login_id: flagged.id,
                at: run_time(tonight + 9),
            },
            session_expires_at: run_time(tonight + 10),
            tag: None,
            from_pending: false,
            webhook: None,
            connect_statements: None,
        })
        .await
        .unwrap();
    assert!(store.stopped_cards(customer.id).await.unwrap().is_empty());
    store
        .record_refresh_error(customer.id, flagged.id, "INVALID_LOGIN")
        .await
        .unwrap();
    store
        .run_nightly(&alpha, run_time(tonight + 10))
        .await
        .unwrap();
    let stopped = store.stopped_cards(customer.id).await.unwrap();
    assert_eq!(stopped[0].stop, Stop::RefreshError);
    assert_eq!(stopped[0].refresh_error.as_deref(), Some("INVALID_LOGIN"));
    // Switched off: no longer listed. A reset forgets the instance's nights.
    store
        .set_scheduled_refresh(customer.id, flagged.id, false, run_time(tonight + 10))
        .await
        .unwrap();
    assert!(store.stopped_cards(customer.id).await.unwrap().is_empty());
    store.reset_instance(&alpha).await.unwrap();
    assert_eq!(
        store
            .run_nightly(&alpha, run_time(tonight + 20))
            .await
            .unwrap()
            .nights,
        0
    );
}

async fn nightly_refresh_of_mfa_cards_uses_stored_answers_and_erases_wrong_ones(
    store: Arc<dyn Store>,
) {
    use bankgate_core::nightly::{Stop, night_of, run_time};
    use bankgate_core::sandbox::{SandboxBank, mfa::answer_digest};
    let bank = SandboxBank::builtin();
    let fc = bank.institution("FlinksCapital").unwrap();
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let unanswered: bankgate_store::MfaAnswers = (0..3).map(|q| (q, None)).collect();
    let card = card_made(&*store, customer.id, "Greatday", true, Some(unanswered), T0).await;
    cached_call(&*store, customer.id, card.id, at(60)).await;
    let asked = fc.question_for(card.id.as_uuid().as_bytes()).unwrap();
    let wrong = vec![(asked, Some(answer_digest(card.id, asked, "Atlantis")))];
    assert!(
        store
            .set_mfa_answers(customer.id, card.id, wrong, at(61))
            .await
            .unwrap()
    );
    let night = night_of(T0);
    let alpha = name("alpha");
    store
        .run_nightly(&alpha, run_time(night + 1))
        .await
        .unwrap();
    let stopped = store.stopped_cards(customer.id).await.unwrap();
    assert_eq!(stopped[0].stop, Stop::AnswerWrong);
    assert_eq!(
        stopped[0].refresh_error.as_deref(),
        Some("INVALID_SECURITY_RESPONSE")
    );
    let (_, answers) = store
        .mfa_answers(customer.id, card.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        answers.iter().all(|(_, a)| a.is_none()),
        "the wrong answer is erased: {answers:?}"
    );
    // The right answer, and a live refresh: the next night refreshes it without asking.
    let right = fc.mfa_questions[asked].answer;
    let answers = vec![(asked, Some(answer_digest(card.id, asked, right)))];
    store
        .set_mfa_answers(customer.id, card.id, answers, at(62))
        .await
        .unwrap();
    let now = run_time(night + 1) + Duration::from_secs(60);
    store
        .complete_authorization(CompleteAuthorization {
            customer_id: customer.id,
            token: None,
            request_id: RequestId::new_random(),
            now,
            login: LoginChange::Refresh {
                login_id: card.id,
                at: now,
            },
            session_expires_at: now + Duration::from_secs(1800),
            tag: None,
            from_pending: false,
            webhook: None,
            connect_statements: None,
        })
        .await
        .unwrap();
    let run = store
        .run_nightly(&alpha, run_time(night + 2))
        .await
        .unwrap();
    assert_eq!(run.refreshed, 1);
    assert!(store.stopped_cards(customer.id).await.unwrap().is_empty());
}

async fn concurrent_nightly_runs_run_each_night_once(store: Arc<dyn Store>) {
    use bankgate_core::nightly::{night_of, run_time};
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let card = card_made(&*store, customer.id, "greatday_nomfa", true, None, T0).await;
    cached_call(&*store, customer.id, card.id, at(60)).await;
    let at_night = run_time(night_of(T0) + 3);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move { store.run_nightly(&name("alpha"), at_night).await.unwrap() });
    }
    let runs = tasks.join_all().await;
    let nights: u64 = runs.iter().map(|run| run.nights).sum();
    assert_eq!(nights, 3, "{runs:?}");
    assert_eq!(runs.iter().map(|run| run.refreshed).sum::<u64>(), 1);
}

async fn enhanced_mfa_answers_are_kept_as_digests_and_set_once_known(store: Arc<dyn Store>) {
    use bankgate_core::sandbox::mfa::answer_digest;
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let (other, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    let login_id_answer = |login: LoginId| answer_digest(login, 2, "Triangle");
    let plain = card_made(&*store, customer.id, "Greatday", false, None, T0).await;
    let (_, none) = store
        .mfa_answers(customer.id, plain.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        none.is_empty(),
        "a card connected without WithMFAQuestions keeps none"
    );
    let mut login = login_record(customer.id, "Greatday");
    login.id = LoginId::new_random();
    let answers = vec![(0, None), (1, None), (2, Some(login_id_answer(login.id)))];
    let outcome = store
        .complete_authorization(CompleteAuthorization {
            customer_id: customer.id,
            token: None,
            request_id: RequestId::new_random(),
            now: T0,
            login: LoginChange::CreateWithQuestions {
                login: login.clone(),
                answers: answers.clone(),
            },
            session_expires_at: at(1800),
            tag: None,
            from_pending: false,
            webhook: None,
            connect_statements: None,
        })
        .await
        .unwrap();
    assert!(matches!(outcome, OpenOutcome::Opened { .. }));
    let (found, kept) = store
        .mfa_answers(customer.id, login.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, login.id);
    assert_eq!(kept, answers);
    // Answers of questions the card keeps are set; others are ignored; another customer's card
    // and an unknown card are not found.
    let set = vec![
        (0, Some(answer_digest(login.id, 0, "Montreal"))),
        (7, Some(answer_digest(login.id, 7, "x"))),
    ];
    assert!(
        store
            .set_mfa_answers(customer.id, login.id, set, at(5))
            .await
            .unwrap()
    );
    let (_, kept) = store
        .mfa_answers(customer.id, login.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0], (0, Some(answer_digest(login.id, 0, "Montreal"))));
    assert!(
        !store
            .set_mfa_answers(other.id, login.id, vec![(1, None)], at(6))
            .await
            .unwrap()
    );
    assert_eq!(store.mfa_answers(other.id, login.id).await.unwrap(), None);
    assert_eq!(
        store
            .mfa_answers(customer.id, LoginId::new_random())
            .await
            .unwrap(),
        None
    );
    // DeleteCard forgets them with the card.
    assert!(store.delete_login(customer.id, login.id).await.unwrap());
    assert_eq!(
        store.mfa_answers(customer.id, login.id).await.unwrap(),
        None
    );
}

async fn the_cached_call_rule_does_not_apply_to_an_instance_with_a_webhook(store: Arc<dyn Store>) {
    use bankgate_core::nightly::{night_of, run_time};
    let (customer, _) = customer_on(&*store, "alpha", InstanceKind::Sandbox).await;
    store
        .set_webhook(&name("alpha"), "https://hooks.example/flinks", "secret", T0)
        .await
        .unwrap();
    // Never read cached.
    let card = card_made(&*store, customer.id, "greatday_nomfa", true, None, T0).await;
    let run = store
        .run_nightly(&name("alpha"), run_time(night_of(T0) + 9))
        .await
        .unwrap();
    assert_eq!((run.refreshed, run.stopped), (1, 0));
    let refreshed = store.login(customer.id, card.id).await.unwrap().unwrap();
    assert_eq!(refreshed.last_refresh, run_time(night_of(T0) + 9));
}
