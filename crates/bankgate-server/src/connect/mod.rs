//! The Flinks Connect page (`docs/flinks-wire.md`, "Connect page"): what a fintech embeds in an
//! iframe so that an end user picks a bank, logs in, answers MFA, picks accounts, and hands back
//! a LoginId.
//!
//! A server-driven multi-step form: every step is a POST that answers the next screen, and the
//! server keeps the flow in a Connect session. The browser holds the session's random secret in
//! an HttpOnly cookie (so a reload resumes) and in a hidden form field (so the flow works even
//! where a browser withholds cookies from cross-site iframes). A little plain JavaScript posts
//! the events to the embedding page and performs the redirect.
//!
//! The bank work goes through the same functions as /Authorize (`api::authorize::live`), called
//! token-free: the page's token was spent when the page loaded (`docs/flinks-wire.md`,
//! "Credentials and tokens").

mod i18n;
pub mod params;
mod view;

use axum::Extension;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bankgate_core::model::{
    CONNECT_SESSION_IDLE_LIFETIME, CardOptions, InstanceKind, KeyKind, Language, Tenant,
};
use bankgate_core::sandbox::accounts::accounts_for;
use bankgate_core::sandbox::mfa::{AskedChallenge, answer_digest};
use bankgate_core::{
    ConnectSecret, CustomerId, Digest, DomainError, InstanceName, LoginId, RequestId,
};
use bankgate_store::{ConnectSession, CredentialMatch, TokenUse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use i18n::STRINGS;
use params::Params;

use crate::api::authorize::live::{self, Connection, OnWrong};
use crate::api::authorize::{Call, Outcome};
use crate::auth::ClientAddr;
use crate::error::{ApiError, FlinksCode, Reason};
use crate::host::HostKind;
use crate::state::AppState;

/// The cookie that carries the Connect session's secret.
pub const COOKIE: &str = "bankgate_connect";

/// Where the flow stands; kept (as JSON) in the Connect session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Step {
    Consent,
    Institutions {
        #[serde(default)]
        query: String,
    },
    Credentials {
        institution: String,
    },
    Mfa {
        institution: String,
        request_id: RequestId,
        /// The prompts asked (all a session saved before challenge types holds).
        prompts: Vec<String>,
        /// The challenges asked, with their choices.
        #[serde(default)]
        challenges: Vec<AskedChallenge>,
        /// Counts the MFA screens of this exchange; the form carries it, so a form of an earlier
        /// screen posted again (a double submit of TextOrCall's choice) is seen as stale rather
        /// than taken as an answer to the code.
        #[serde(default)]
        number: u32,
    },
    /// `enhancedMFA=true`: the card's security questions still without an answer, asked after
    /// the login (`docs/flinks-wire.md`, "Enhanced MFA").
    SecurityQuestions {
        institution: String,
        login_id: LoginId,
        /// The questions (their numbers) last posted blank: the fields shown in error.
        #[serde(default)]
        blank: Vec<usize>,
    },
    Accounts {
        institution: String,
        login_id: LoginId,
    },
    Success {
        institution: String,
        login_id: LoginId,
        account_ids: Vec<String>,
    },
    /// The bank refused for good (a disabled account), or a resumed step had ended.
    Failed {
        institution: Option<String>,
    },
    Closed,
}

impl Step {
    fn screen(&self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Institutions { .. } => "institutions",
            Self::Credentials { .. } => "credentials",
            Self::Mfa { .. } => "mfa",
            Self::SecurityQuestions { .. } => "security_questions",
            Self::Accounts { .. } => "accounts",
            Self::Success { .. } => "success",
            Self::Failed { .. } => "failed",
            Self::Closed => "closed",
        }
    }

    /// The challenges of an MFA step; a session saved before challenge types only knew prompts,
    /// which were all free-text questions.
    fn challenges(&self) -> Vec<AskedChallenge> {
        match self {
            Self::Mfa {
                prompts,
                challenges,
                ..
            } if challenges.is_empty() => prompts
                .iter()
                .cloned()
                .map(AskedChallenge::question)
                .collect(),
            Self::Mfa { challenges, .. } => challenges.clone(),
            _ => Vec::new(),
        }
    }

    /// An MFA screen following `previous` (the step it replaces).
    fn mfa(
        institution: String,
        request_id: RequestId,
        challenges: Vec<AskedChallenge>,
        previous: &Step,
    ) -> Self {
        Self::Mfa {
            institution,
            request_id,
            prompts: challenges.iter().map(|c| c.prompt.clone()).collect(),
            challenges,
            number: previous.mfa_number().map_or(0, |n| n.wrapping_add(1)),
        }
    }

    /// Where the flow goes once the card exists and its security questions are dealt with.
    fn after_login(params: &Params, institution: &str, login_id: LoginId) -> Self {
        if params.account_selector_enable {
            Self::Accounts {
                institution: institution.to_owned(),
                login_id,
            }
        } else {
            Self::Success {
                institution: institution.to_owned(),
                login_id,
                account_ids: Vec::new(),
            }
        }
    }

    fn mfa_number(&self) -> Option<u32> {
        match self {
            Self::Mfa { number, .. } => Some(*number),
            _ => None,
        }
    }

    fn institution(&self) -> Option<&str> {
        match self {
            Self::Credentials { institution }
            | Self::Mfa { institution, .. }
            | Self::SecurityQuestions { institution, .. }
            | Self::Accounts { institution, .. }
            | Self::Success { institution, .. } => Some(institution),
            Self::Failed { institution } => institution.as_deref(),
            Self::Consent | Self::Institutions { .. } | Self::Closed => None,
        }
    }
}

/// The Connect session's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageState {
    pub params: Params,
    pub step: Step,
    /// An i18n key: a problem (or note) shown on the current screen.
    pub notice: Option<String>,
    /// The username last typed, kept so a retry only needs the password again (never the
    /// password itself).
    #[serde(default)]
    pub username: Option<String>,
    /// The institution the page was opened at (`/v2/Credential/{institution}/`).
    #[serde(default)]
    pub preselected: Option<String>,
}

/// The events to post to the embedding page (`docs/flinks-wire.md`, "Connect page").
#[derive(Debug, Default)]
pub struct Events(Vec<Value>);

impl Events {
    fn push(&mut self, step: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("step".to_owned(), Value::from(step));
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        self.0.push(Value::Object(event));
    }

    fn with_institution(&mut self, step: &str, institution: &str) {
        self.push(step, json!({ "institution": institution }));
    }
}

/// GET `/`, `/v2`, `/v2/`: opens the page (spending the authorize token) or resumes it.
pub async fn page(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    open_page(&state, &host, &headers, query, None).await
}

/// GET `/v2/Credential/{institution}/`: the page opened at one institution's login, as
/// integrations that pick the bank themselves embed it (`docs/flinks-wire.md`, "Connect page").
pub async fn page_at_institution(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    Path(institution): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    open_page(&state, &host, &headers, query, Some(&institution)).await
}

/// Opens the page, at institution `at` if given.
async fn open_page(
    state: &AppState,
    host: &HostKind,
    headers: &HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    at: Option<&str>,
) -> Response {
    // An unreadable query string is treated as no parameters: the defaults apply.
    let pairs = query.map(|Query(pairs)| pairs).unwrap_or_default();
    let params = Params::parse(&pairs);
    let instance = match instance_of(state, host, &pairs) {
        Ok(instance) => instance,
        Err(response) => return *response,
    };
    crate::journal::note(|facts| facts.instance = Some(instance.as_str().to_owned()));
    match open(state, &instance, headers, &pairs, params.clone(), at).await {
        Ok(response) => response,
        Err(error) => failure_page(&params, error),
    }
}

/// POST to any Connect address (`/`, `/v2/`, `/v2/Credential/{institution}/`): one step of the
/// flow. The forms post back to the address the page has.
pub async fn step(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    client: ClientAddr,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let fields = form.map(|Form(fields)| fields).unwrap_or_default();
    // On a bare host the session itself says which instance it is on.
    let instance = match &host {
        HostKind::Bare => None,
        host => match instance_of(&state, host, &fields) {
            Ok(instance) => {
                crate::journal::note(|facts| facts.instance = Some(instance.as_str().to_owned()));
                Some(instance)
            }
            Err(response) => return *response,
        },
    };
    // Only the form's own field counts, never the cookie alone: another site can make a browser
    // post a form here with the cookie attached, but it cannot know the secret (CSRF).
    let secret = field(&fields, "session").map(str::to_owned);
    let found = match secret.as_deref() {
        Some(secret) => find_session(&state, instance.as_ref(), secret).await,
        None => Ok(None),
    };
    let (session, tenant, mut page) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            // No language is known without a session; the form says which one it showed.
            let mut params = Params::default();
            if let Some(language) = field(&fields, "language").and_then(|l| l.parse().ok()) {
                params.language = language;
            }
            return problem_page(&params, StatusCode::UNAUTHORIZED, "err_session_expired", {
                let mut events = Events::default();
                events.push("SESSION_NONEXISTENT", json!({}));
                events
            });
        }
        Err(error) => return failure_page(&Params::default(), error),
    };
    let now = tenant.instance.now(state.clock.as_ref());
    let call = Call {
        state: &state,
        tenant: &tenant,
        token: None,
        now,
        client,
    };
    let mut events = Events::default();
    let action = field(&fields, "action").unwrap_or_default().to_owned();
    if let Err(error) = act(&call, &mut page, &action, &fields, &mut events).await {
        return failure_page(&page.params, error);
    }
    let saved = match serde_json::to_string(&page) {
        Ok(json) => json,
        Err(_) => return failure_page(&page.params, ApiError::unavailable()),
    };
    match state
        .store
        .update_connect_session(session.secret, &saved, now + CONNECT_SESSION_IDLE_LIFETIME)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return problem_page(
                &page.params,
                StatusCode::UNAUTHORIZED,
                "err_session_expired",
                Events::default(),
            );
        }
        Err(error) => return failure_page(&page.params, error.into()),
    }
    let secret = secret.unwrap_or_default();
    match render_page(&call, &page, &secret, events, None).await {
        Ok(response) => response,
        Err(error) => failure_page(&page.params, error),
    }
}

/// The instance a Connect request addresses: the iframe host's, or `?instance=` on a bare host.
fn instance_of(
    state: &AppState,
    host: &HostKind,
    pairs: &[(String, String)],
) -> Result<InstanceName, Box<Response>> {
    match host {
        HostKind::Iframe(instance) => Ok(instance.clone()),
        HostKind::Bare => match field(pairs, "instance") {
            None => Ok(state.default_instance.clone()),
            Some(name) => name.parse().map_err(|_| {
                let params = Params::parse(pairs);
                Box::new(problem_page(
                    &params,
                    StatusCode::NOT_FOUND,
                    "err_instance_unknown",
                    Events::default(),
                ))
            }),
        },
        HostKind::Api(instance) => Err(ApiError::not_found(
            Reason::ConnectOnIframeHost,
            format!(
                "The Connect page is served on {instance}-iframe hosts (or a bare host with \
                 ?instance={instance}); {instance}-api hosts serve the API under /v3/."
            ),
        )
        .into_response()
        .into()),
        // `routing::canonicalize` answers these before any handler runs.
        HostKind::WrongShape(_) => Err(ApiError::not_found(
            Reason::HostWrongShape,
            "Use {instance}-iframe.{domain} for the Connect page.",
        )
        .into_response()
        .into()),
    }
}

/// First load: resume this browser's session if the URL is the one it opened, else open a new
/// one, spending the token.
async fn open(
    state: &AppState,
    instance: &InstanceName,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    params: Params,
    institution: Option<&str>,
) -> Result<Response, ApiError> {
    let Some(found) = state.store.instance(instance).await? else {
        return Ok(problem_page(
            &params,
            StatusCode::NOT_FOUND,
            "err_instance_unknown",
            Events::default(),
        ));
    };
    // Production does not know the sandbox bank: `demo=true` there is refused before the token
    // is spent, with the Reason the API gives.
    if params.demo && found.kind != InstanceKind::Sandbox {
        let mut events = Events::default();
        events.push("APP_MOUNTED", json!({}));
        events.push(
            "INVALID_REQUEST",
            json!({
                "flinksCode": FlinksCode::InvalidRequest,
                "reason": Reason::SandboxBankOnProduction,
                "hint": "demo=true shows the sandbox's test institution (FlinksCapital), which \
                         production instances do not serve; drop demo=true here, or open the \
                         page on a sandbox instance (such as toolbox-iframe).",
            }),
        );
        let mut response = problem_page(
            &params,
            StatusCode::BAD_REQUEST,
            "err_demo_on_production",
            events,
        );
        response
            .extensions_mut()
            .insert(Reason::SandboxBankOnProduction);
        return Ok(response);
    }
    // The instance's clock: a sandbox's may have been moved by the admin API.
    let now = found.now(state.clock.as_ref());
    let token = field(pairs, "authorizeToken").map(Digest::of_presented);
    let mut mounted = Events::default();
    mounted.push("APP_MOUNTED", json!({}));
    redirect_warning(pairs, &mut mounted);

    // A reload: same token (or none), same browser.
    if let Some(secret) = cookie(headers)
        && let Some((session, tenant, page)) = find_session(state, Some(instance), &secret).await?
        && (token.is_none() || token == session.token)
        && (params.request_id.is_none() || params.request_id == page.params.request_id)
    {
        let call = Call {
            state,
            tenant: &tenant,
            token: None,
            now,
            client: ClientAddr::default(),
        };
        let mut events = mounted;
        load_events(&call, &page, &mut events).await?;
        return render_page(&call, &page, &secret, events, None).await;
    }

    let customer_id = match token {
        Some(digest) => match crate::auth::find_credential(state, digest, now).await? {
            Some(CredentialMatch::Token {
                customer_id,
                instance: of,
                ..
            }) if &of == instance => customer_id,
            // The secret key in the URL (#28 of docs/integration-mistakes.md): say so, since it
            // has now reached a browser; only for this instance's keys (no other tenant named).
            Some(CredentialMatch::Key {
                kind: KeyKind::Secret,
                instance: of,
                ..
            }) if &of == instance => {
                return Ok(token_problem(&params, Reason::AuthKeyGivenAsToken, mounted));
            }
            _ => {
                return Ok(token_problem(
                    &params,
                    Reason::AuthorizeTokenInvalid,
                    mounted,
                ));
            }
        },
        None if state.store.connect_token_required(instance).await? => {
            // `authorizeToken=` with no value: the code that mints the token did not run or its
            // result was not put in the URL (#28 of docs/integration-mistakes.md).
            let empty = pairs
                .iter()
                .any(|(key, _)| key.eq_ignore_ascii_case("authorizeToken"));
            let reason = if empty {
                Reason::AuthorizeTokenEmpty
            } else {
                Reason::AuthorizeTokenMissing
            };
            return Ok(token_problem(&params, reason, mounted));
        }
        None => match sole_customer(state, instance, pairs).await? {
            Some(customer_id) => customer_id,
            None => {
                return Ok(problem_page(
                    &params,
                    StatusCode::BAD_REQUEST,
                    "err_customer_unknown",
                    mounted,
                ));
            }
        },
    };
    let Some(tenant) = state.store.tenant(customer_id).await? else {
        return Ok(token_problem(
            &params,
            Reason::AuthorizeTokenInvalid,
            mounted,
        ));
    };

    let mut page = PageState {
        step: if params.consent_enable {
            Step::Consent
        } else {
            Step::Institutions {
                query: String::new(),
            }
        },
        notice: None,
        username: None,
        // Only an institution this page would offer (demo mode for the sandbox bank's).
        preselected: institution
            .filter(|_| params.demo)
            .and_then(|id| state.bank.institution(id))
            .map(|i| i.id.to_owned()),
        params,
    };
    if let (Some(institution), false) = (&page.preselected, page.params.consent_enable) {
        page.step = Step::Credentials {
            institution: institution.clone(),
        };
    }
    // Resuming an MFA step started through the API (`docs/flinks-wire.md`, "Connect page").
    if let Some(request_id) = page.params.request_id {
        page.step = match state.store.pending(customer_id, request_id).await? {
            Some(pending) if pending.expires_at > now => {
                match state.bank.institution(&pending.institution) {
                    Some(institution) => Step::mfa(
                        institution.id.to_owned(),
                        request_id,
                        institution.asked(&pending.questions, pending.language),
                        &page.step,
                    ),
                    None => Step::Failed { institution: None },
                }
            }
            _ => Step::Failed { institution: None },
        };
        if matches!(page.step, Step::Failed { .. }) {
            page.notice = Some("err_SESSION_NONEXISTENT".to_owned());
            mounted.push("SESSION_NONEXISTENT", json!({ "requestId": request_id }));
        }
    }

    let secret = ConnectSecret::generate();
    let state_json = serde_json::to_string(&page).map_err(|_| ApiError::unavailable())?;
    let used = state
        .store
        .open_connect_session(
            &ConnectSession {
                secret: secret.digest(),
                customer_id,
                token,
                state: state_json,
                created_at: now,
                expires_at: now + CONNECT_SESSION_IDLE_LIFETIME,
            },
            now,
        )
        .await?;
    let reason = match used {
        TokenUse::Consumed => None,
        TokenUse::Used { .. } => Some(Reason::AuthorizeTokenUsed),
        TokenUse::Expired { .. } => Some(Reason::AuthorizeTokenExpired),
        TokenUse::OtherCustomer { .. } | TokenUse::Unknown => Some(Reason::AuthorizeTokenInvalid),
    };
    if let Some(reason) = reason {
        return Ok(token_problem(&page.params, reason, mounted));
    }
    tracing::info!("connect session opened");
    let call = Call {
        state,
        tenant: &tenant,
        token: None,
        now,
        client: ClientAddr::default(),
    };
    let mut events = mounted;
    load_events(&call, &page, &mut events).await?;
    let set_cookie = session_cookie(headers, secret.expose());
    render_page(&call, &page, secret.expose(), events, set_cookie).await
}

/// Without a token, the page serves the customer named by `customerId`, or the instance's only
/// customer (the seeded toolbox has one).
async fn sole_customer(
    state: &AppState,
    instance: &InstanceName,
    pairs: &[(String, String)],
) -> Result<Option<CustomerId>, ApiError> {
    let customers = state.store.list_customers(Some(instance)).await?;
    if let Some(wanted) = field(pairs, "customerId") {
        return Ok(customers
            .iter()
            .find(|c| c.id.to_string().eq_ignore_ascii_case(wanted))
            .map(|c| c.id));
    }
    Ok(match customers.as_slice() {
        [only] => Some(only.id),
        _ => None,
    })
}

/// The live session for a secret, if it belongs to this instance and has not expired.
async fn find_session(
    state: &AppState,
    instance: Option<&InstanceName>,
    secret: &str,
) -> Result<Option<(ConnectSession, Tenant, PageState)>, ApiError> {
    let Some(session) = state
        .store
        .connect_session(Digest::of_presented(secret))
        .await?
    else {
        return Ok(None);
    };
    let Some(tenant) = state.store.tenant(session.customer_id).await? else {
        return Ok(None);
    };
    // Expiry on the instance's clock (a sandbox's may be moved), whatever host asked.
    if session.expires_at <= tenant.instance.now(state.clock.as_ref()) {
        return Ok(None);
    }
    if instance.is_some_and(|instance| &tenant.instance.name != instance) {
        return Ok(None);
    }
    let Ok(page) = serde_json::from_str::<PageState>(&session.state) else {
        return Ok(None);
    };
    Ok(Some((session, tenant, page)))
}

/// Applies one user action to the flow.
async fn act(
    call: &Call<'_>,
    page: &mut PageState,
    action: &str,
    fields: &[(String, String)],
    events: &mut Events,
) -> Result<(), ApiError> {
    let previous_notice = page.notice.take();
    match (action, page.step.clone()) {
        ("accept_consent", Step::Consent) => {
            events.push("COMPONENT_ACCEPT_CONSENT", json!({}));
            page.step = match &page.preselected {
                Some(institution) => Step::Credentials {
                    institution: institution.clone(),
                },
                None => Step::Institutions {
                    query: String::new(),
                },
            };
        }
        ("deny_consent", Step::Consent) => {
            events.push("COMPONENT_DENY_CONSENT", json!({}));
            page.notice = Some("consent_denied".to_owned());
        }
        ("search", Step::Institutions { .. }) => {
            let query = field(fields, "query").unwrap_or_default();
            page.step = Step::Institutions {
                query: query.chars().take(100).collect(),
            };
        }
        ("select_institution", Step::Institutions { .. }) => {
            let chosen = field(fields, "institution")
                .and_then(|id| visible_institution(call, &page.params, id));
            match chosen {
                Some(institution) => {
                    events.with_institution("INSTITUTION_SELECTED", institution);
                    page.step = Step::Credentials {
                        institution: institution.to_owned(),
                    };
                }
                None => page.notice = previous_notice,
            }
        }
        ("back", Step::Credentials { .. }) => {
            page.step = Step::Institutions {
                query: String::new(),
            };
        }
        (
            "back",
            Step::Mfa {
                institution,
                request_id,
                ..
            },
        ) => {
            // Going back abandons this MFA exchange: a new login starts a new one.
            call.state.store.drop_pending(request_id).await?;
            page.step = Step::Credentials { institution };
        }
        ("submit_credentials", Step::Credentials { institution }) => {
            events.with_institution("SUBMIT_CREDENTIAL", &institution);
            let username = field(fields, "username").unwrap_or_default().to_owned();
            page.username = Some(username.chars().take(256).collect());
            let connection = Connection {
                institution: institution.clone(),
                username,
                password: field_raw(fields, "password").unwrap_or_default().to_owned(),
                language: page.params.language,
                // The page hands out a LoginId that /Authorize must open in cached mode.
                save: true,
                tag: page.params.tag.clone(),
                statements: Some(page.params.statements()),
                // `scheduleRefresh=true`: the card the page makes gets the nightly refresh.
                options: CardOptions {
                    schedule_refresh: page.params.schedule_refresh.then_some(true),
                    // `enhancedMFA=true`: as `WithMFAQuestions` with `Save` (the page saves).
                    with_mfa_questions: page.params.enhanced_mfa,
                },
            };
            let outcome = live::connect(call, connection).await;
            settle(page, &institution, outcome, events)?;
        }
        // The form of an earlier MFA screen: show the current one.
        ("submit_mfa", Step::Mfa { number, .. })
            if field(fields, "mfa_step").is_some_and(|posted| posted != number.to_string()) =>
        {
            page.notice = previous_notice;
        }
        (
            "submit_mfa",
            Step::Mfa {
                institution,
                request_id,
                ..
            },
        ) => {
            events.with_institution("SUBMIT_MFA", &institution);
            let responses = mfa_responses(&page.step.challenges(), fields);
            if responses
                .values()
                .any(|v| v.as_array().is_none_or(Vec::is_empty))
            {
                page.notice = Some("mfa_empty".to_owned());
                return load_events(call, page, events).await;
            }
            let Some(pending) = call
                .state
                .store
                .pending(call.tenant.customer.id, request_id)
                .await?
            else {
                ended(page, &institution, events);
                return load_events(call, page, events).await;
            };
            let outcome = live::answer_step(
                call,
                pending,
                responses,
                OnWrong::KeepStep,
                Some(page.params.statements()),
            )
            .await;
            settle(page, &institution, outcome, events)?;
        }
        (
            "submit_security_answers",
            Step::SecurityQuestions {
                institution,
                login_id,
                ..
            },
        ) => {
            let asked = unanswered(call, login_id).await?;
            let mut answers = Vec::new();
            let mut blank = Vec::new();
            for question in asked {
                match field(fields, &format!("question_{question}")) {
                    Some(answer) => {
                        answers.push((question, Some(answer_digest(login_id, question, answer))))
                    }
                    None => blank.push(question),
                }
            }
            if !blank.is_empty() {
                // Nothing is stored until every question has an answer.
                page.notice = Some("sq_empty".to_owned());
                page.step = Step::SecurityQuestions {
                    institution,
                    login_id,
                    blank,
                };
                return load_events(call, page, events).await;
            }
            // Kept as AnswerMFAQuestions keeps them: digests, checked by the bank when it next
            // asks during a live call.
            let stored = call
                .state
                .store
                .set_mfa_answers(call.tenant.customer.id, login_id, answers, call.now)
                .await?;
            page.step = if stored {
                Step::after_login(&page.params, &institution, login_id)
            } else {
                // The card was deleted meanwhile (DeleteCard).
                Step::Failed {
                    institution: Some(institution),
                }
            };
        }
        (
            "skip_security_answers",
            Step::SecurityQuestions {
                institution,
                login_id,
                ..
            },
        ) if page.params.skip_enhanced_mfa => {
            page.step = Step::after_login(&page.params, &institution, login_id);
        }
        (
            "select_accounts",
            Step::Accounts {
                institution,
                login_id,
            },
        ) => {
            let known = account_ids(call, login_id).await?;
            let mut chosen: Vec<String> = fields
                .iter()
                .filter(|(name, value)| name == "account" && known.contains(value))
                .map(|(_, value)| value.clone())
                .collect();
            chosen.dedup();
            if !page.params.account_selector_multiple {
                chosen.truncate(1);
            }
            if chosen.is_empty() {
                page.notice = Some("acc_none_selected".to_owned());
                return load_events(call, page, events).await;
            }
            let account_id = if page.params.account_selector_multiple {
                json!(chosen)
            } else {
                json!(chosen[0])
            };
            events.push(
                "ACCOUNT_SELECTED",
                json!({ "institution": institution, "accountId": account_id }),
            );
            page.step = Step::Success {
                institution,
                login_id,
                account_ids: chosen,
            };
        }
        ("start_over", Step::Failed { .. }) => {
            page.step = Step::Institutions {
                query: String::new(),
            };
        }
        ("close", step) if page.params.close_enable => {
            let mut fields = Map::new();
            if let Some(institution) = step.institution() {
                fields.insert("institution".to_owned(), Value::from(institution));
            }
            events.push("COMPONENT_CLOSE_SESSION", Value::Object(fields));
            page.step = Step::Closed;
        }
        // A stale form (a reload that posts the last form again, the browser's back button, a
        // double submit): show where the flow stands now, as a screen load.
        _ => page.notice = previous_notice,
    }
    // Enhanced MFA with nothing left to ask (all answered during the login's MFA): say so and
    // go on.
    if let Step::SecurityQuestions {
        institution,
        login_id,
        ..
    } = &page.step
        && unanswered(call, *login_id).await?.is_empty()
    {
        events.with_institution("ENHANCED_MFA_NO_QUESTIONS", institution);
        page.step = Step::after_login(&page.params, &institution.clone(), *login_id);
        page.notice = None;
    }
    load_events(call, page, events).await
}

/// The numbers of the card's security questions without a stored answer (none for a card
/// without Enhanced MFA, or one gone).
async fn unanswered(call: &Call<'_>, login_id: LoginId) -> Result<Vec<usize>, ApiError> {
    Ok(call
        .state
        .store
        .mfa_answers(call.tenant.customer.id, login_id)
        .await?
        .map(|(_, answers)| {
            answers
                .into_iter()
                .filter(|(_, answer)| answer.is_none())
                .map(|(question, _)| question)
                .collect()
        })
        .unwrap_or_default())
}

/// Moves the flow on from what the bank said.
fn settle(
    page: &mut PageState,
    institution: &str,
    outcome: Result<Outcome, ApiError>,
    events: &mut Events,
) -> Result<(), ApiError> {
    match outcome {
        Ok(Outcome::Mfa {
            institution,
            challenges,
            request_id,
            forced: _,
        }) => {
            page.step = Step::mfa(institution.to_owned(), request_id, challenges, &page.step);
        }
        Ok(Outcome::Authorized { login, session: _ }) => {
            // With Enhanced MFA, the questions come first (`act` moves on at once when none is
            // left to ask).
            page.step = if page.params.enhanced_mfa {
                Step::SecurityQuestions {
                    institution: institution.to_owned(),
                    login_id: login.id,
                    blank: Vec::new(),
                }
            } else {
                Step::after_login(&page.params, institution, login.id)
            };
        }
        // The store is down: nothing happened; the caller shows a failure page.
        Err(error) if error.reason == Reason::StoreUnavailable => {
            return Err(error);
        }
        Err(error) => {
            let code = error.flinks_code;
            events.with_institution(code.as_str(), institution);
            page.notice = Some(i18n::error_key(code.as_str()));
            page.step = match code {
                FlinksCode::DisabledLogin => Step::Failed {
                    institution: Some(institution.to_owned()),
                },
                FlinksCode::SecurityResponsesIncomplete => {
                    page.notice = Some("mfa_empty".to_owned());
                    page.step.clone()
                }
                // A wrong answer: the same step again, on the same screen (the exchange was
                // kept for it, `OnWrong::KeepStep`).
                FlinksCode::InvalidSecurityResponse if matches!(page.step, Step::Mfa { .. }) => {
                    page.step.clone()
                }
                FlinksCode::SessionNonexistent => {
                    ended(page, institution, events);
                    return Ok(());
                }
                // Wrong credentials, an unreachable bank, a wrong answer (which ends the
                // RequestId), too many attempts: the user logs in again.
                _ => Step::Credentials {
                    institution: institution.to_owned(),
                },
            };
        }
    }
    Ok(())
}

/// The form's answers as `SecurityResponses`: the text typed for a question, the `Iterables`
/// entries whose (index) values were ticked for a choice. An unanswered prompt gets `[]`.
fn mfa_responses(challenges: &[AskedChallenge], fields: &[(String, String)]) -> Map<String, Value> {
    challenges
        .iter()
        .enumerate()
        .map(|(i, challenge)| {
            let name = format!("answer_{i}");
            let values: Vec<String> = if challenge.iterables.is_empty() {
                field(fields, &name)
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            } else {
                let mut chosen: Vec<String> = fields
                    .iter()
                    .filter(|(key, _)| *key == name)
                    .filter_map(|(_, value)| value.trim().parse::<usize>().ok())
                    .filter_map(|index| challenge.iterables.get(index).cloned())
                    .collect();
                chosen.dedup();
                chosen
            };
            (challenge.prompt.clone(), json!(values))
        })
        .collect()
}

/// The MFA exchange ended (expired or answered elsewhere): log in again.
fn ended(page: &mut PageState, institution: &str, events: &mut Events) {
    if !events.0.iter().any(|e| e["step"] == "SESSION_NONEXISTENT") {
        events.with_institution("SESSION_NONEXISTENT", institution);
    }
    page.notice = Some("err_SESSION_NONEXISTENT".to_owned());
    page.step = Step::Credentials {
        institution: institution.to_owned(),
    };
}

/// A developer's mistake the page can see but must not refuse over: posted as a
/// `BANKGATE_WARNING` event with a `reason` and a `hint` (and logged to the browser console by
/// connect.js), never shown to the end user.
fn redirect_warning(pairs: &[(String, String)], events: &mut Events) {
    let spilled = params::spilled_from_redirect(pairs);
    if spilled.is_empty() {
        return;
    }
    let names: Vec<String> = spilled.iter().map(|name| format!("`{name}`")).collect();
    let what = match names.as_slice() {
        [one] => format!("the parameter {one} after it is no Connect parameter, so it was"),
        many => format!(
            "the parameters {} after it are no Connect parameters, so they were",
            many.join(", ")
        ),
    };
    events.push(
        "BANKGATE_WARNING",
        json!({
            "reason": Reason::RedirectUrlNotEncoded,
            "hint": format!(
                "redirectUrl seems cut at its own '?': {what} part of the redirect's own query, \
                 now lost from it; encode redirectUrl with encodeURIComponent before putting it \
                 in the iframe URL."
            ),
        }),
    );
}

/// The events a screen posts when it is shown.
async fn load_events(
    call: &Call<'_>,
    page: &PageState,
    events: &mut Events,
) -> Result<(), ApiError> {
    let retry = page
        .notice
        .as_deref()
        .is_some_and(|n| n.starts_with("err_"));
    match &page.step {
        Step::Consent => events.push("COMPONENT_LOAD_CONSENT", json!({})),
        Step::Institutions { .. } => events.push("COMPONENT_LOAD_INSTITUTION_SELECTOR", json!({})),
        Step::Credentials { institution } => events.with_institution(
            if retry {
                "COMPONENT_LOAD_CREDENTIAL_RETRY"
            } else {
                "COMPONENT_LOAD_CREDENTIAL"
            },
            institution,
        ),
        Step::Mfa { institution, .. } => {
            // The distinct types on this screen, in the order asked.
            let mut types: Vec<&str> = Vec::new();
            for challenge in page.step.challenges() {
                if !types.contains(&challenge.kind.as_str()) {
                    types.push(challenge.kind.as_str());
                }
            }
            events.push(
                if page.notice.is_some() {
                    "COMPONENT_LOAD_MFA_RETRY"
                } else {
                    "COMPONENT_LOAD_MFA"
                },
                json!({ "institution": institution, "mfaTypes": types }),
            );
        }
        Step::SecurityQuestions { institution, .. } => {
            events.with_institution("ENHANCED_MFA_HAS_QUESTIONS", institution);
        }
        Step::Accounts {
            institution,
            login_id,
        } => {
            let total = account_ids(call, *login_id).await?.len();
            events.push(
                "COMPONENT_LOAD_ACCOUNT_SELECTION",
                json!({ "institution": institution, "totalAccounts": total, "displayedAccounts": total }),
            );
        }
        Step::Success {
            institution,
            login_id,
            account_ids,
        } => {
            let mut event = json!({ "institution": institution, "loginId": login_id });
            if let Some(url) = redirect_url(&page.params, institution, *login_id, account_ids) {
                event["url"] = Value::from(url);
            }
            match account_ids.as_slice() {
                [] => {}
                [one] if !page.params.account_selector_multiple => {
                    event["accountId"] = Value::from(one.as_str());
                }
                many => event["accountId"] = json!(many),
            }
            events.push("REDIRECT", event);
        }
        Step::Failed { .. } | Step::Closed => {}
    }
    Ok(())
}

/// `redirectUrl` with `loginId`, `institution` and each selected `accountId` appended
/// (`docs/flinks-wire.md`, "Connect page").
pub fn redirect_url(
    params: &Params,
    institution: &str,
    login_id: LoginId,
    account_ids: &[String],
) -> Option<String> {
    let base = params.redirect_url.as_deref()?;
    let login_id = login_id.to_string();
    let mut pairs = vec![("loginId", login_id.as_str()), ("institution", institution)];
    pairs.extend(account_ids.iter().map(|id| ("accountId", id.as_str())));
    Some(params::with_query(base, &pairs))
}

/// The institutions this page shows: the sandbox bank's are test institutions, shown in demo
/// mode only (`docs/flinks-wire.md`, "Credentials and tokens").
fn visible_institution<'a>(call: &'a Call<'_>, params: &Params, id: &str) -> Option<&'a str> {
    if !params.demo {
        return None;
    }
    call.state.bank.institution(id).map(|i| i.id)
}

async fn account_ids(call: &Call<'_>, login_id: LoginId) -> Result<Vec<String>, ApiError> {
    let login = call
        .state
        .store
        .login(call.tenant.customer.id, login_id)
        .await?
        .ok_or(DomainError::NotFound {
            what: "LoginId",
            id: login_id.to_string(),
        })
        .map_err(|_| ApiError::unavailable())?;
    let as_of = login.created_at.to_datetime().date_naive();
    Ok(accounts_for(login.id, as_of)
        .iter()
        .map(|a| a.id.to_string())
        .collect())
}

async fn render_page(
    call: &Call<'_>,
    page: &PageState,
    secret: &str,
    events: Events,
    set_cookie: Option<HeaderValue>,
) -> Result<Response, ApiError> {
    let accounts = match &page.step {
        Step::Accounts { login_id, .. } => {
            let login = call
                .state
                .store
                .login(call.tenant.customer.id, *login_id)
                .await?;
            login
                .map(|login| accounts_for(login.id, login.created_at.to_datetime().date_naive()))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let questions = match &page.step {
        Step::SecurityQuestions {
            login_id, blank, ..
        } => security_questions(call, *login_id, page.params.language)
            .await?
            .into_iter()
            .map(|(number, prompt)| (number, prompt, blank.contains(&number)))
            .collect(),
        _ => Vec::new(),
    };
    let view = view::View::new(&call.state.bank, page, Some(secret), &accounts, events)
        .with_questions(questions);
    let mut response = view::respond(StatusCode::OK, &view);
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The card's unanswered security questions as the page shows them: number and prompt.
async fn security_questions(
    call: &Call<'_>,
    login_id: LoginId,
    language: Language,
) -> Result<Vec<(usize, String)>, ApiError> {
    let Some((login, answers)) = call
        .state
        .store
        .mfa_answers(call.tenant.customer.id, login_id)
        .await?
    else {
        return Ok(Vec::new());
    };
    let Some(institution) = call.state.bank.institution(&login.institution) else {
        return Ok(Vec::new());
    };
    Ok(answers
        .into_iter()
        .filter(|(_, answer)| answer.is_none())
        .filter_map(|(number, _)| {
            let question = institution.mfa_questions.get(number)?;
            Some((number, question.prompt(language).to_owned()))
        })
        .collect())
}

/// An error screen with no flow behind it.
fn problem_page(params: &Params, status: StatusCode, key: &str, events: Events) -> Response {
    let page = PageState {
        params: params.clone(),
        step: Step::Failed { institution: None },
        notice: Some(key.to_owned()),
        username: None,
        preselected: None,
    };
    let bank = bankgate_core::sandbox::SandboxBank::builtin();
    let view = view::View::new(&bank, &page, None, &[], events).terminal();
    view::respond(status, &view)
}

/// The authorize token was missing, unknown, used or expired: say so, and post `TOKEN_INVALID`.
fn token_problem(params: &Params, reason: Reason, mut events: Events) -> Response {
    let key = match reason {
        Reason::AuthorizeTokenMissing | Reason::AuthorizeTokenEmpty => "err_token_missing",
        Reason::AuthorizeTokenUsed => "err_token_used",
        Reason::AuthorizeTokenExpired => "err_token_expired",
        _ => "err_token_invalid",
    };
    events.push(
        "TOKEN_INVALID",
        json!({ "flinksCode": FlinksCode::AccessDenied, "reason": reason }),
    );
    let mut response = problem_page(params, StatusCode::UNAUTHORIZED, key, events);
    // For metrics, which count token refusals by the Reason answered.
    response.extensions_mut().insert(reason);
    response
}

/// The store failed: a page that says to retry, and an event.
fn failure_page(params: &Params, error: ApiError) -> Response {
    tracing::warn!(reason = error.reason.as_str(), "connect page failed");
    let mut events = Events::default();
    events.push("AGGREGATION_ERROR", json!({}));
    problem_page(params, error.status, "err_AGGREGATION_ERROR", events)
}

/// The `Set-Cookie` of a new session. `SameSite=None` lets the cookie reach a cross-site iframe;
/// browsers accept it only with `Secure`, which they allow on https and on localhost names; and
/// `Partitioned` (CHIPS) keeps it usable where third-party cookies are blocked (Chromium's
/// incognito default), keyed to the embedding site, which is all a reload needs.
fn session_cookie(headers: &HeaderMap, secret: &str) -> Option<HeaderValue> {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = host.rsplit_once(':').map_or(host.as_str(), |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host.as_str()
        }
    });
    let trustworthy = forwarded_https
        || name == "localhost"
        || name.ends_with(".localhost")
        || name.starts_with("127.")
        || name == "[::1]";
    let attributes = if trustworthy {
        "SameSite=None; Secure; Partitioned"
    } else {
        "SameSite=Lax"
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; {attributes}"
    ))
    .ok()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A field's trimmed value, by name (case-insensitive); empty counts as absent.
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A field as typed (passwords may have meaningful spaces).
fn field_raw<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// GET `/v2/assets/connect.js`
pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/connect.js"),
    )
}

/// GET `/v2/assets/connect.css`
pub async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/connect.css"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
