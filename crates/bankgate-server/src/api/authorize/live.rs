//! The live modes of /Authorize against the sandbox bank: connecting with credentials,
//! refreshing a saved LoginId, and the MFA exchange (203, answers, 200).

use bankgate_core::model::{
    AUTHORIZED_SESSION_LIFETIME, AUTHORIZING_IDLE_LIFETIME, CardOptions, InstanceKind, Language,
    Login, LoginType, PendingAuthorization,
};
use bankgate_core::sandbox::mfa::{SCRIPTED_BASE, answer_digest};
use bankgate_core::sandbox::{SandboxInstitution, SandboxUser, Scenario, StepVerdict};
use bankgate_core::{Digest, LoginId, Refusal, RequestId};
use bankgate_store::{
    CompleteAuthorization, ConnectStatements, LoginChange, OpenOutcome, TokenUse,
};
use serde_json::{Map, Value};

use super::{Call, ENDPOINT, Outcome, forced};
use crate::error::{ApiError, BankRefusal, Reason};
use crate::guard::{Attempt, Target};

/// Credentials and options of a new connection.
#[derive(Debug)]
pub struct Connection {
    pub institution: String,
    pub username: String,
    pub password: String,
    pub language: Language,
    pub save: bool,
    pub tag: Option<String>,
    /// The Connect page's statement parameters (`None` from the API), for the LoginId.
    pub statements: Option<ConnectStatements>,
    /// `ScheduleRefresh`, `WithMFAQuestions`: what the new card gets.
    pub options: CardOptions,
}

/// The refusal of a live connection on a production instance, with the status and FlinksCode of
/// an institution the instance lacks (docs/flinks-wire.md, "Endpoint rulings").
pub fn no_bank_on_production(sandbox: Option<&SandboxInstitution>, asked: &str) -> ApiError {
    match sandbox {
        Some(institution) => ApiError::invalid_request(
            Reason::SandboxBankOnProduction,
            format!(
                "{} is the sandbox's test institution, which production instances do not serve; \
                 try its test users on a sandbox instance (such as toolbox-api) and real accounts \
                 here.",
                institution.id
            ),
        ),
        None => ApiError::invalid_request(
            Reason::InstitutionUnknown,
            format!("There is no institution {asked:?} on this instance."),
        ),
    }
}

fn new_request_id() -> RequestId {
    let request_id = RequestId::new_random();
    crate::journal::record_request_id(request_id);
    request_id
}

/// `Institution`/`Username`/`Password`: log in to the sandbox bank.
pub async fn connect(call: &Call<'_>, connection: Connection) -> Result<Outcome, ApiError> {
    let request_id = new_request_id();
    // Production instances do not know the sandbox bank (nor any other: bankgate has no real
    // banks), as a Flinks production instance has no FlinksCapital.
    if call.tenant.instance.kind != InstanceKind::Sandbox {
        call.spend_token(request_id).await?;
        return Err(no_bank_on_production(
            call.state.bank.institution(&connection.institution),
            &connection.institution,
        ));
    }
    let Some(institution) = call.state.bank.institution(&connection.institution) else {
        call.spend_token(request_id).await?;
        let known: Vec<&str> = call
            .state
            .bank
            .institutions()
            .iter()
            .map(|i| i.id)
            .collect();
        return Err(ApiError::invalid_request(
            Reason::InstitutionUnknown,
            format!(
                "There is no institution {:?} here; the sandbox institutions are: {}.",
                connection.institution,
                known.join(", ")
            ),
        ));
    };
    let attempt = Attempt {
        customer_id: call.tenant.customer.id,
        client: call.client.0,
        target: Target::bank_login(institution.id, &connection.username),
        sandbox: call.tenant.instance.kind == InstanceKind::Sandbox,
    };
    // Refused before the token is spent: the password was not looked at, and the same token
    // works once the lockout ends or is lifted.
    let checked = call.state.limiter.check(&attempt).await?;
    // Passwords match exactly; usernames ignoring case (`docs/flinks-wire.md`, "Sandbox bank").
    let Some(user) = institution
        .user(&connection.username)
        .filter(|user| user.password == connection.password)
    else {
        call.spend_token(request_id).await?;
        call.state.limiter.failed(&attempt, checked).await?;
        return Err(bank_credentials_invalid());
    };
    call.state.limiter.succeeded(&attempt, checked).await?;
    let subject = forced::Subject {
        institution,
        username: user.username,
        login: None,
        language: connection.language,
        save: connection.save,
        tag: connection.tag.clone(),
        options: connection.options,
    };
    let call = &match forced::check(call, subject, request_id).await? {
        forced::Checked::Forced(outcome) => return Ok(outcome),
        forced::Checked::Go(token) => Call { token, ..*call },
    };
    refuse_scenario(call, user, request_id).await?;

    if user.scenario.asks_mfa() {
        let questions =
            institution.first_challenges(user, user.username.to_ascii_lowercase().as_bytes());
        let pending = PendingAuthorization {
            request_id,
            customer_id: call.tenant.customer.id,
            institution: institution.id.to_owned(),
            username: user.username.to_owned(),
            language: connection.language,
            save: connection.save,
            tag: connection.tag,
            login_id: None,
            questions,
            created_at: call.now,
            expires_at: call.now + AUTHORIZING_IDLE_LIFETIME,
            options: connection.options,
        };
        return start_mfa(call, institution, pending).await;
    }
    let login = new_login(
        call,
        institution,
        user.username,
        connection.language,
        connection.save,
    );
    let change = new_card(institution, login, connection.options, &[]);
    complete(
        call,
        call.token,
        request_id,
        change,
        connection.tag,
        false,
        connection.statements,
    )
    .await
}

/// `LoginId` without `MostRecentCached: true`: refresh a saved connection live.
pub async fn refresh(
    call: &Call<'_>,
    login_id: LoginId,
    language: Option<Language>,
    tag: Option<String>,
) -> Result<Outcome, ApiError> {
    let request_id = new_request_id();
    let login = call
        .state
        .store
        .login(call.tenant.customer.id, login_id)
        .await?
        .filter(|login| login.saved);
    if let (Some(login), false) = (&login, call.tenant.instance.kind == InstanceKind::Sandbox) {
        call.spend_token(request_id).await?;
        return Err(no_bank_on_production(
            call.state.bank.institution(&login.institution),
            &login.institution,
        ));
    }
    let found = login.as_ref().and_then(|login| {
        let institution = call.state.bank.institution(&login.institution)?;
        Some((login, institution, institution.user(&login.username)?))
    });
    let Some((login, institution, user)) = found else {
        call.spend_token(request_id).await?;
        let refusal = crate::auth::login_not_found(call.state, call.tenant, login_id).await;
        return Err(ApiError::refused(ENDPOINT, &refusal));
    };
    let subject = forced::Subject {
        institution,
        username: &login.username,
        login: Some(login),
        language: language.unwrap_or(login.language),
        save: true,
        tag: tag.clone(),
        options: CardOptions::default(),
    };
    let call = &match forced::check(call, subject, request_id).await? {
        forced::Checked::Forced(outcome) => return Ok(outcome),
        forced::Checked::Go(token) => Call { token, ..*call },
    };
    refuse_scenario(call, user, request_id).await?;
    let question = institution.question_for(login.id.as_uuid().as_bytes());
    if user.scenario == Scenario::Mfa
        && let Some(question) = question
        && stored_answer_is_right(call, institution, login.id, question).await?
    {
        // Enhanced MFA: the stored answer answers the bank, and the user is not asked.
        let change = LoginChange::Refresh {
            login_id: login.id,
            at: call.now,
        };
        return complete(call, call.token, request_id, change, tag, false, None).await;
    }
    if user.scenario.asks_mfa() {
        let pending = PendingAuthorization {
            request_id,
            customer_id: call.tenant.customer.id,
            institution: institution.id.to_owned(),
            username: login.username.clone(),
            language: language.unwrap_or(login.language),
            save: true,
            tag,
            login_id: Some(login.id),
            questions: institution.first_challenges(user, login.id.as_uuid().as_bytes()),
            created_at: call.now,
            expires_at: call.now + AUTHORIZING_IDLE_LIFETIME,
            options: CardOptions::default(),
        };
        return start_mfa(call, institution, pending).await;
    }
    let change = LoginChange::Refresh {
        login_id: login.id,
        at: call.now,
    };
    complete(call, call.token, request_id, change, tag, false, None).await
}

/// What a wrong answer does to the MFA exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWrong {
    /// /Authorize: the RequestId ends; the user starts again with a new token.
    EndExchange,
    /// The Connect page: the same step is asked again on the same screen (the page holds no
    /// password to log in again with, and the sandbox's answers are public anyway).
    KeepStep,
}

/// `RequestId` + `SecurityResponses`: continue a pending MFA exchange.
pub async fn answer(
    call: &Call<'_>,
    pending: PendingAuthorization,
    responses: Map<String, Value>,
) -> Result<Outcome, ApiError> {
    answer_step(call, pending, responses, OnWrong::EndExchange, None).await
}

/// [`answer`], choosing what a wrong answer does; `statements` are the Connect page's, for the
/// LoginId the exchange completes.
pub async fn answer_step(
    call: &Call<'_>,
    pending: PendingAuthorization,
    responses: Map<String, Value>,
    on_wrong: OnWrong,
    statements: Option<ConnectStatements>,
) -> Result<Outcome, ApiError> {
    let request_id = pending.request_id;
    crate::journal::record_request_id(request_id);
    let store = &call.state.store;
    let customer_id = call.tenant.customer.id;
    // The token bound to this RequestId may come again; any other token is spent now,
    // whatever follows (even an expired RequestId).
    if let Some(digest) = call.token
        && store.token_request(digest).await? != Some(request_id)
    {
        let used = store
            .consume_token(customer_id, digest, request_id, call.now)
            .await?;
        if used != TokenUse::Consumed {
            return Err(call.token_refusal(used).await);
        }
    }
    if pending.expires_at <= call.now {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdExpired {
                request_id: request_id.to_string(),
                at: pending.expires_at,
            },
        )
        .with_request_id(request_id));
    }
    let Some(institution) = call.state.bank.institution(&pending.institution) else {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        )
        .with_request_id(request_id));
    };
    let verdict = institution.judge(
        &pending.questions,
        pending.language,
        |prompt| responses.get(prompt).map(answer_values),
        !responses.is_empty(),
    );
    let keep_waiting = || async {
        store
            .extend_pending(request_id, call.now + AUTHORIZING_IDLE_LIFETIME)
            .await
    };
    let ask = |numbers: &[usize]| Outcome::Mfa {
        institution: institution.id,
        challenges: institution.asked(numbers, pending.language),
        request_id,
        forced: None,
    };
    match verdict {
        StepVerdict::AskAgain => {
            keep_waiting().await?;
            return Ok(ask(&pending.questions));
        }
        StepVerdict::UnknownPrompts => {
            keep_waiting().await?;
            let expected = institution
                .asked(&pending.questions, pending.language)
                .iter()
                .map(|c| format!("{:?}", c.prompt))
                .collect();
            return Err(
                ApiError::from(BankRefusal::UnknownChallengeKey { expected })
                    .with_request_id(request_id),
            );
        }
        StepVerdict::Incomplete { answered, asked } => {
            keep_waiting().await?;
            let refusal = BankRefusal::ResponsesIncomplete { answered, asked };
            return Err(ApiError::from(refusal).with_request_id(request_id));
        }
        StepVerdict::Wrong {
            prompt,
            kind,
            wrong,
        } => {
            match on_wrong {
                // A wrong answer ends this RequestId: the user starts again with a new token.
                OnWrong::EndExchange => store.drop_pending(request_id).await?,
                OnWrong::KeepStep => keep_waiting().await?,
            }
            if let Some(login_id) = pending.login_id {
                // The card's last refresh failed: the nightly refresh stops until one succeeds.
                store
                    .record_refresh_error(customer_id, login_id, "INVALID_SECURITY_RESPONSE")
                    .await?;
            }
            let refusal = BankRefusal::ResponseInvalid {
                prompt,
                kind,
                wrong,
            };
            return Err(ApiError::from(refusal).with_request_id(request_id));
        }
        StepVerdict::Next(next) => {
            let moved = store
                .advance_pending(
                    request_id,
                    &pending.questions,
                    &next,
                    call.now + AUTHORIZING_IDLE_LIFETIME,
                )
                .await?;
            if moved {
                return Ok(ask(&next));
            }
            // Another answer to the same step got there first: show where the exchange stands
            // now, or that it has ended.
            return match store.pending(customer_id, request_id).await? {
                Some(now) => Ok(ask(&now.questions)),
                None => Err(ApiError::refused(
                    ENDPOINT,
                    &Refusal::RequestIdUnknown {
                        request_id: request_id.to_string(),
                    },
                )),
            };
        }
        StepVerdict::Done => {}
    }
    // The answers given to the institution's security questions (Enhanced MFA keeps them).
    let given: Vec<(usize, String)> = pending
        .questions
        .iter()
        .filter(|&&number| number < SCRIPTED_BASE)
        .filter_map(|&number| {
            let prompt = institution.challenge(number)?.prompt(pending.language);
            let value = responses
                .get(prompt)
                .map(answer_values)?
                .into_iter()
                .next()?;
            Some((number, value))
        })
        .collect();
    let change = match pending.login_id {
        Some(login_id) => LoginChange::Refresh {
            login_id,
            at: call.now,
        },
        None => {
            let user = institution
                .user(&pending.username)
                .map_or("", |u| u.username);
            let login = new_login(call, institution, user, pending.language, pending.save);
            new_card(institution, login, pending.options, &given)
        }
    };
    let outcome = complete(
        call,
        None,
        request_id,
        change,
        pending.tag,
        true,
        statements,
    )
    .await?;
    if let Some(login_id) = pending.login_id {
        // A card that keeps its questions keeps this right answer too (it was erased if a
        // stored one was wrong); the store leaves cards that keep none alone.
        let right = given
            .iter()
            .map(|(q, text)| (*q, Some(answer_digest(login_id, *q, text))))
            .collect();
        store
            .set_mfa_answers(customer_id, login_id, right, call.now)
            .await?;
    }
    Ok(outcome)
}

/// Whether the card keeps a right answer to `question` (Enhanced MFA). A wrong one is erased,
/// so GetMFAQuestions lists the question again and this live call asks the user (the 203):
/// docs/flinks-wire.md, "Enhanced MFA".
async fn stored_answer_is_right(
    call: &Call<'_>,
    institution: &SandboxInstitution,
    login_id: LoginId,
    question: usize,
) -> Result<bool, ApiError> {
    let store = &call.state.store;
    let customer_id = call.tenant.customer.id;
    let Some((_, answers)) = store.mfa_answers(customer_id, login_id).await? else {
        return Ok(false);
    };
    let Some(stored) = answers
        .iter()
        .find(|(q, _)| *q == question)
        .and_then(|(_, answer)| *answer)
    else {
        return Ok(false);
    };
    let right = institution
        .mfa_questions
        .get(question)
        .is_some_and(|q| q.stored_answer_is_right(login_id, question, &stored));
    if !right {
        store
            .set_mfa_answers(customer_id, login_id, vec![(question, None)], call.now)
            .await?;
    }
    Ok(right)
}

/// What a new connection records: the card with its nightly-refresh flag and, for Enhanced
/// MFA, every question of its institution, those `answered` at this call with their answers.
fn new_card(
    institution: &SandboxInstitution,
    mut login: Login,
    options: CardOptions,
    answered: &[(usize, String)],
) -> LoginChange {
    login.is_scheduled_refresh = options.schedule_refresh == Some(true);
    if !(options.with_mfa_questions && login.saved) {
        return LoginChange::Create(login);
    }
    let answers = (0..institution.mfa_questions.len())
        .map(|question| {
            let given = answered.iter().find(|(q, _)| *q == question);
            (
                question,
                given.map(|(_, text)| answer_digest(login.id, question, text)),
            )
        })
        .collect();
    LoginChange::CreateWithQuestions { login, answers }
}

/// A RequestId with no MFA pending: answered again if already authorized, else unknown. The
/// call spends its token like any other call: only a pending exchange lets a token come back.
pub async fn already_authorized(
    call: &Call<'_>,
    request_id: RequestId,
) -> Result<Outcome, ApiError> {
    crate::journal::record_request_id(request_id);
    // The token that opened this RequestId may ask again (a retry after a lost answer); any
    // other is spent like on every call.
    let bound = match call.token {
        Some(digest) => call.state.store.token_request(digest).await? == Some(request_id),
        None => false,
    };
    if !bound {
        call.spend_token(request_id).await?;
    }
    let customer_id = call.tenant.customer.id;
    let session = call.state.store.session(customer_id, request_id).await?;
    let Some(session) = session else {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        ));
    };
    if session.expires_at <= call.now {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdExpired {
                request_id: request_id.to_string(),
                at: session.expires_at,
            },
        ));
    }
    let Some(login) = call
        .state
        .store
        .login(customer_id, session.login_id)
        .await?
    else {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        ));
    };
    Ok(Outcome::Authorized { login, session })
}

/// The values given to a prompt, blank ones left out: `["Montreal"]`, `"Montreal"`, or several
/// for `MultipleChoiceMultipleAnswers`. Empty means the prompt was sent with no answer.
fn answer_values(value: &Value) -> Vec<String> {
    let texts: Vec<&str> = match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) async fn start_mfa(
    call: &Call<'_>,
    institution: &SandboxInstitution,
    pending: PendingAuthorization,
) -> Result<Outcome, ApiError> {
    let used = call
        .state
        .store
        .start_pending(call.token, &pending, call.now)
        .await?;
    if used != TokenUse::Consumed {
        return Err(call.token_refusal(used).await);
    }
    Ok(Outcome::Mfa {
        institution: institution.id,
        challenges: institution.asked(&pending.questions, pending.language),
        request_id: pending.request_id,
        forced: None,
    })
}

/// Opens the session; `token` is the one still to spend. With `from_pending`, the MFA exchange
/// must still be open (another answer may have completed or ended it meanwhile).
async fn complete(
    call: &Call<'_>,
    token: Option<Digest>,
    request_id: RequestId,
    login: LoginChange,
    tag: Option<String>,
    from_pending: bool,
    connect_statements: Option<ConnectStatements>,
) -> Result<Outcome, ApiError> {
    // A live authorization completed (credentials, a LoginId refresh, an MFA answer, the
    // Connect page): its callbacks go to the outbox in the same write.
    let webhook = crate::webhooks::queue_for(call.state, call.tenant).await;
    let outcome = call
        .state
        .store
        .complete_authorization(CompleteAuthorization {
            customer_id: call.tenant.customer.id,
            token,
            request_id,
            now: call.now,
            login,
            session_expires_at: call.now + AUTHORIZED_SESSION_LIFETIME,
            tag,
            from_pending,
            webhook: webhook.clone(),
            connect_statements,
        })
        .await?;
    if outcome == OpenOutcome::ExchangeEnded {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        ));
    }
    let outcome = call.opened(outcome).await?;
    if webhook.is_some() && matches!(outcome, Outcome::Authorized { .. }) {
        crate::webhooks::queued(call.state);
    }
    Ok(outcome)
}

fn new_login(
    call: &Call<'_>,
    institution: &SandboxInstitution,
    username: &str,
    language: Language,
    saved: bool,
) -> Login {
    Login {
        id: LoginId::new_random(),
        customer_id: call.tenant.customer.id,
        institution: institution.id.to_owned(),
        username: username.to_owned(),
        login_type: LoginType::Personal,
        is_scheduled_refresh: false,
        last_refresh: call.now,
        created_at: call.now,
        language,
        saved,
    }
}

/// The scripted failures of a sandbox user, after spending the token. Like every failure that
/// leaves no session behind, they carry no RequestId: there would be nothing to use it for.
async fn refuse_scenario(
    call: &Call<'_>,
    user: &SandboxUser,
    request_id: RequestId,
) -> Result<(), ApiError> {
    let refusal = match user.scenario {
        Scenario::DisabledAccount => BankRefusal::LoginDisabled,
        Scenario::ServiceUnavailable => BankRefusal::InstitutionUnavailable,
        Scenario::Mfa
        | Scenario::Challenges(_)
        | Scenario::NoMfa
        | Scenario::Dispatched
        | Scenario::Pending => {
            return Ok(());
        }
    };
    call.spend_token(request_id).await?;
    Err(refusal.into())
}

fn bank_credentials_invalid() -> ApiError {
    BankRefusal::CredentialsInvalid.into()
}
