//! Forced failures on /Authorize (docs/flinks-wire.md, "Forced failures"): a rule an operator
//! set for a LoginId or a sandbox user answers the call instead of the bank.

use bankgate_core::forced::{ForcedAction, ForcedTarget};
use bankgate_core::model::{
    AUTHORIZING_IDLE_LIFETIME, CardOptions, InstanceKind, Language, Login, PendingAuthorization,
};
use bankgate_core::sandbox::SandboxInstitution;
use bankgate_core::{Digest, RequestId};
use bankgate_store::{ForcedCall, ForcedScope};

use super::{Call, Outcome};
use crate::error::ApiError;

/// Who a call is about, once the bank accepted it.
pub(crate) struct Subject<'a> {
    pub institution: &'a SandboxInstitution,
    pub username: &'a str,
    /// The saved connection, when the call opens one (cached mode, live refresh).
    pub login: Option<&'a Login>,
    pub language: Language,
    pub save: bool,
    pub tag: Option<String>,
    /// The new card's options (`ScheduleRefresh`, `WithMFAQuestions`): a forced question must
    /// not lose them. Ignored on an existing card, as everywhere.
    pub options: CardOptions,
}

/// What a call does after looking for a rule.
pub(crate) enum Checked {
    /// A rule answered with a new security question (a forced refusal is the `Err`).
    Forced(Outcome),
    /// No rule applies: go on, with this token still to spend (`None` once spent).
    Go(Option<Digest>),
}

/// Whether rules may apply to calls of this instance: a sandbox with rules.
pub(crate) async fn active(call: &Call<'_>) -> Result<bool, ApiError> {
    let instance = &call.tenant.instance;
    Ok(instance.kind == InstanceKind::Sandbox
        && call.state.store.has_forced_rules(&instance.name).await?)
}

/// Looks for a rule matching the call. On an instance without rules (every production
/// instance, most sandboxes) this costs one remembered lookup; with rules, one read, then the
/// token is spent (a refused token is answered as always and uses no rule up) and one use is
/// taken atomically.
pub(crate) async fn check(
    call: &Call<'_>,
    subject: Subject<'_>,
    request_id: RequestId,
) -> Result<Checked, ApiError> {
    let store = &call.state.store;
    if !active(call).await? {
        return Ok(Checked::Go(call.token));
    }
    let customer_id = call.tenant.customer.id;
    let login_id = subject.login.map(|login| login.id);
    let username = subject.username.to_lowercase();
    let applies = store
        .forced_rules(&ForcedScope::Customer(customer_id))
        .await?
        .iter()
        // A rule used up counts too: taking it deletes it, and the call then goes on as usual.
        .any(|rule| match &rule.target {
            ForcedTarget::Login(_, id) => Some(*id) == login_id,
            ForcedTarget::Username(_, name) => *name == username,
            ForcedTarget::Endpoint(_) => false,
        });
    if !applies {
        return Ok(Checked::Go(call.token));
    }
    call.spend_token(request_id).await?;
    let forced_call = ForcedCall::Authorize {
        customer_id,
        login_id,
        username: &username,
    };
    let Some(rule) = store.take_forced(&forced_call, call.now).await? else {
        // Another call took the last use meanwhile: this one goes on, its token spent.
        return Ok(Checked::Go(None));
    };
    tracing::info!(rule = %rule.id, "forced failure");
    // Like the scripted failures, no RequestId: no session is left to use it with.
    if let Some(refusal) = ApiError::forced(&rule, call.now) {
        if let Some(login_id) = login_id
            && !refusal.status.is_success()
        {
            // The card's last authorization failed: the nightly refresh sees it
            // (docs/flinks-wire.md, "Nightly refresh").
            store
                .record_refresh_error(customer_id, login_id, refusal.flinks_code.as_str())
                .await?;
        }
        return Err(refusal);
    }
    debug_assert_eq!(rule.action, ForcedAction::NewMfaQuestion);
    // A question this user was not asked: neither the one of a new connection nor the one of a
    // refresh of this LoginId.
    let institution = subject.institution;
    let asked = [
        institution.question_for(username.as_bytes()),
        subject
            .login
            .and_then(|login| institution.question_for(login.id.as_uuid().as_bytes())),
    ];
    let question = (0..institution.mfa_questions.len()).find(|i| !asked.contains(&Some(*i)));
    let pending = PendingAuthorization {
        request_id,
        customer_id,
        institution: institution.id.to_owned(),
        username: subject.login.map_or_else(
            || subject.username.to_owned(),
            |login| login.username.clone(),
        ),
        language: subject.language,
        save: subject.save,
        tag: subject.tag,
        login_id,
        questions: question.into_iter().collect(),
        created_at: call.now,
        expires_at: call.now + AUTHORIZING_IDLE_LIFETIME,
        options: subject.options,
    };
    let spent = Call {
        token: None,
        ..*call
    };
    let hint = ApiError::forced_hint(&rule, call.now);
    super::live::start_mfa(&spent, institution, pending)
        .await
        .map(|outcome| Checked::Forced(outcome.forced(hint)))
}
