//! `POST /v3/{customerId}/BankingServices/Authorize`: an authorize token in `flinks-auth-key`
//! opens a session (RequestId).
//!
//! Four modes, decided by the body:
//! - cached: `LoginId` + `MostRecentCached: true` replays a saved connection;
//! - connect: `Institution`/`Username`/`Password` logs in to a sandbox bank (203 when MFA);
//! - refresh: `LoginId` without `MostRecentCached: true` refreshes a saved connection live;
//! - answer: `RequestId` + `SecurityResponses` continues an MFA exchange.

mod forced;
pub(crate) mod live;
mod responses;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use bankgate_core::model::{
    AUTHORIZED_SESSION_LIFETIME, CardOptions, KeyKind, Language, Login, Session, Tenant,
};
use bankgate_core::sandbox::SandboxBank;
use bankgate_core::sandbox::mfa::AskedChallenge;
use bankgate_core::{Digest, LoginId, Refusal, RequestId, Timestamp};
use bankgate_store::{CachedAuthorize, OpenOutcome, TokenUse};
use serde::Deserialize;

pub use responses::{AuthorizedResponse, LoginBody, MfaResponse, SecurityChallenge};

use super::PathParams;
use crate::auth::{
    self, ClientAddr, credential_in_header, header_value, is_current_key, missing_credential,
    misused_credential, other_instance,
};
use crate::body::{self, lenient_bool};
use crate::error::{ApiError, Endpoint, Reason};
use crate::host::HostKind;
use crate::state::AppState;

const ENDPOINT: Endpoint = Endpoint::Authorize;

/// The /Authorize body as clients send it (keys match in any case; booleans may be strings).
/// Which fields count depends on the mode: `LoginId` + `MostRecentCached` (cached),
/// `Institution` + `Username` + `Password` (live), `LoginId` alone (live refresh), `RequestId` +
/// `SecurityResponses` (an MFA answer).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = AuthorizeBody)]
pub struct AuthorizeRequest {
    #[schema(format = Uuid)]
    pub login_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub most_recent_cached: Option<bool>,
    pub institution: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    #[schema(format = Uuid)]
    pub request_id: Option<String>,
    /// Answers keyed by the exact prompt of the 203.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    pub security_responses: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub save: Option<bool>,
    /// `en` or `fr`.
    #[schema(pattern = "^(en|fr)$")]
    pub language: Option<String>,
    pub tag: Option<String>,
    /// A new card gets the nightly refresh (`true`) or not; an existing card ignores it (use
    /// SetScheduledRefresh).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub schedule_refresh: Option<bool>,
    /// With `Save: true` on a new card: keep its security questions (Enhanced MFA).
    #[serde(default, deserialize_with = "lenient_bool")]
    #[schema(rename = "WithMFAQuestions")]
    pub with_mfa_questions: Option<bool>,
}

impl AuthorizeRequest {
    /// The new-card options, and the names of those sent that this mode does not apply (named
    /// in `X-Bankgate-Ignored-Fields`: docs/flinks-wire.md, "Nightly refresh").
    fn card_options(&self, new_card: bool) -> (CardOptions, Vec<String>) {
        let save = self.save == Some(true);
        let options = CardOptions {
            schedule_refresh: self.schedule_refresh.filter(|_| new_card),
            with_mfa_questions: new_card && save && self.with_mfa_questions == Some(true),
        };
        let mut unused = Vec::new();
        if self.schedule_refresh.is_some() && !new_card {
            unused.push("ScheduleRefresh".to_owned());
        }
        if self.with_mfa_questions == Some(true) && !options.with_mfa_questions {
            unused.push("WithMFAQuestions".to_owned());
        }
        (options, unused)
    }
}

/// What the body asks for.
#[derive(Debug)]
enum Mode {
    Cached(LoginId),
    Refresh(LoginId),
    Connect {
        institution: String,
        username: String,
        password: String,
    },
    Answer(RequestId),
}

/// Where a live or cached authorization stands: what both /Authorize and the Connect page
/// render, each in its own way.
#[derive(Debug)]
pub enum Outcome {
    /// MFA required (the 203).
    Mfa {
        institution: &'static str,
        challenges: Vec<AskedChallenge>,
        request_id: RequestId,
        /// The hint of the forced failure that asked this question, if one did.
        forced: Option<String>,
    },
    Authorized {
        login: Login,
        session: Session,
    },
}

impl Outcome {
    /// Marks a 203 as asked by a forced failure rule, whose hint it carries.
    fn forced(self, hint: String) -> Self {
        match self {
            Self::Mfa {
                institution,
                challenges,
                request_id,
                forced: _,
            } => Self::Mfa {
                institution,
                challenges,
                request_id,
                forced: Some(hint),
            },
            other => other,
        }
    }

    /// The RequestId the outcome answers for.
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::Mfa { request_id, .. } => *request_id,
            Self::Authorized { session, .. } => session.request_id,
        }
    }

    /// The LoginId an authorization opened.
    pub fn login_id(&self) -> Option<LoginId> {
        match self {
            Self::Mfa { .. } => None,
            Self::Authorized { login, .. } => Some(login.id),
        }
    }

    /// The /Authorize answer.
    pub fn into_response(self, bank: &SandboxBank) -> Response {
        match self {
            Self::Mfa {
                institution,
                challenges,
                request_id,
                forced,
            } => {
                let mut response =
                    MfaResponse::new(institution, challenges, request_id).into_response();
                if let Some(hint) = forced {
                    crate::error::mark_forced(&mut response, hint);
                }
                response
            }
            Self::Authorized { login, session } => {
                AuthorizedResponse::new(bank, &login, &session).into_response()
            }
        }
    }
}

/// One /Authorize call in progress: who, with which token, at what time.
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub token: Option<Digest>,
    pub now: Timestamp,
    pub client: ClientAddr,
}

impl Call<'_> {
    /// Spends the token for a call that will not open a session, mapping a refusal.
    pub async fn spend_token(&self, request_id: RequestId) -> Result<(), ApiError> {
        let Some(digest) = self.token else {
            return Ok(());
        };
        let used = self
            .state
            .store
            .consume_token(self.tenant.customer.id, digest, request_id, self.now)
            .await?;
        if used == TokenUse::Consumed {
            Ok(())
        } else {
            Err(self.token_refusal(used).await)
        }
    }

    /// Explains why the token was not accepted.
    pub async fn token_refusal(&self, used: TokenUse) -> ApiError {
        let refusal = match used {
            TokenUse::Used { at } => Refusal::AuthorizeTokenUsed { at },
            TokenUse::Expired { at } => Refusal::AuthorizeTokenExpired { at },
            TokenUse::OtherCustomer {
                instance,
                instance_kind,
            } if instance != self.tenant.instance.name => other_instance(
                self.tenant.instance.kind,
                &instance,
                instance_kind,
                Refusal::AuthorizeTokenInvalid,
            ),
            TokenUse::OtherCustomer { .. } | TokenUse::Consumed => Refusal::AuthorizeTokenInvalid,
            TokenUse::Unknown => match self.token {
                // Perhaps a key where the token goes: look it up to say which.
                Some(digest) => {
                    match crate::auth::find_credential(self.state, digest, self.now).await {
                        Ok(found) => {
                            misused_credential(self.tenant, found, Refusal::AuthorizeTokenInvalid)
                        }
                        Err(error) => return error.into(),
                    }
                }
                None => Refusal::AuthorizeTokenInvalid,
            },
        };
        ApiError::refused(ENDPOINT, &refusal)
    }

    /// What an operation that opens a session came to.
    pub async fn opened(&self, outcome: OpenOutcome) -> Result<Outcome, ApiError> {
        match outcome {
            OpenOutcome::TokenRefused(used) => Err(self.token_refusal(used).await),
            // ExchangeEnded only comes from completing an MFA exchange, which
            // `live::complete` answers before getting here.
            OpenOutcome::LoginNotFound | OpenOutcome::ExchangeEnded => {
                Err(ApiError::refused(ENDPOINT, &Refusal::LoginNotFound))
            }
            OpenOutcome::Opened { login, session } => {
                // DEBUG, with the answer lines of successes (README): at INFO this line cost a
                // cached flow about as much as the answer line did a token.
                tracing::debug!(target: "bankgate_server::requests", "session authorized");
                Ok(Outcome::Authorized { login, session })
            }
        }
    }
}

/// Opens a RequestId: cached (`LoginId` + `MostRecentCached`), live against the (sandbox) bank
/// with credentials, a live refresh of a saved LoginId, or the answers to an MFA step.
#[utoipa::path(
    post,
    path = Endpoint::Authorize.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("flinks-auth-key" = Option<String>, Header, description = "An authorize token (or, when the customer allows it, none or the secret key)")),
    request_body(content = AuthorizeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Authorized: the RequestId reads the accounts", body = responses::AuthorizedResponse),
        (status = 203, description = "MFA required: answer with the RequestId", body = responses::MfaResponse),
        (status = 202, description = "A sandbox's forced OPERATION_PENDING (forced failures): retry after Retry-After seconds", body = crate::error::Envelope),
        crate::error::ErrorResponses,
    ),
)]
pub async fn authorize(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    client: ClientAddr,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    // Read here rather than by an extractor, so a body too large to read still spends the
    // token like any other bad body.
    let bytes = body::read(body).await;
    let (outcome, ignored) = decide(state.clone(), tenant, client, uri, headers, bytes).await?;
    Ok(body::mark_ignored(
        outcome.into_response(&state.bank),
        &ignored,
    ))
}

/// What /Authorize decides for one request: the outcome and the body fields it did not read, or
/// the refusal. /AuthorizeAsync runs this same function for each of its steps, so both
/// endpoints follow one set of rules (docs/flinks-wire.md, "AuthorizeAsync").
pub(crate) async fn decide(
    state: AppState,
    tenant: Tenant,
    client: ClientAddr,
    uri: Uri,
    headers: HeaderMap,
    bytes: Result<axum::body::Bytes, ApiError>,
) -> Result<(Outcome, Vec<String>), ApiError> {
    let body_token = bytes.as_deref().ok().and_then(token_field);
    let mut ignored = bytes
        .as_deref()
        .map(body::ignored_fields::<AuthorizeRequest>)
        .unwrap_or_default();
    let parsed = bytes.and_then(|bytes| {
        let request = body::parse::<AuthorizeRequest>(&bytes)?;
        Ok((mode_of(&request)?, request))
    });
    let now = tenant.instance.now(state.clock.as_ref());
    let required = tenant.customer.authorize_token_required;
    let presented = Presented {
        headers: &headers,
        query: uri.query(),
        body_token: body_token.as_deref(),
    };

    // An answer to a pending MFA exchange may carry the token bound to it again, or none
    // (`docs/flinks-wire.md`, "Credentials and tokens"); every other call follows the usual token rules.
    if let Ok((Mode::Answer(request_id), request)) = &parsed
        && let Some(pending) = state.store.pending(tenant.customer.id, *request_id).await?
    {
        let token = if required {
            header_value(&headers, ENDPOINT.credential_header()).map(Digest::of_presented)
        } else {
            presented_token(&state, &tenant, &presented).await?
        };
        let call = Call {
            token,
            state: &state,
            tenant: &tenant,
            now,
            client,
        };
        let responses = request.security_responses.clone().unwrap_or_default();
        return live::answer(&call, pending, responses)
            .await
            .map(|outcome| (outcome, ignored));
    }

    // An answer for a RequestId that has no exchange waiting and no session, sent without a
    // token: the RequestId is what is wrong (a wrong answer ends it), not the missing token.
    if let Ok((Mode::Answer(request_id), _)) = &parsed
        && required
        && headers.get(ENDPOINT.credential_header()).is_none()
        && state
            .store
            .session(tenant.customer.id, *request_id)
            .await?
            .is_none()
    {
        return Err(ApiError::refused(
            ENDPOINT,
            &Refusal::RequestIdUnknown {
                request_id: request_id.to_string(),
            },
        )
        .with_hint(
            "No MFA exchange is waiting on this RequestId: a wrong answer, DeleteCard or 8 idle \
             minutes end it (or it was never issued); start again with a new authorize token.",
        ));
    }

    let call = Call {
        token: presented_token(&state, &tenant, &presented).await?,
        state: &state,
        tenant: &tenant,
        now,
        client,
    };
    // The token is spent by the first request presenting it, whatever follows (`docs/flinks-wire.md`,
    // "Credentials and tokens"),
    // so a body we cannot serve still consumes it.
    let (mode, request) = match parsed {
        Ok(ok) => ok,
        Err(problem) => {
            call.spend_token(RequestId::new_random()).await?;
            return Err(problem.token_spent(call.token.is_some()));
        }
    };
    let language = match request.language.as_deref().map(str::parse::<Language>) {
        None => None,
        Some(Ok(language)) => Some(language),
        Some(Err(problem)) => {
            call.spend_token(RequestId::new_random()).await?;
            return Err(ApiError::invalid_request(Reason::LanguageInvalid, problem)
                .token_spent(call.token.is_some()));
        }
    };
    let (options, unused) = request.card_options(matches!(mode, Mode::Connect { .. }));
    ignored.extend(unused);
    let outcome = match mode {
        Mode::Cached(login_id) => cached(&call, login_id, request.tag).await,
        Mode::Connect {
            institution,
            username,
            password,
        } => {
            let connection = live::Connection {
                institution,
                username,
                password,
                language: language.unwrap_or_default(),
                save: request.save.unwrap_or(false),
                tag: request.tag,
                options,
                // An API card: GetStatements reads it whatever a Connect page would have said.
                statements: None,
            };
            live::connect(&call, connection).await
        }
        Mode::Refresh(login_id) => live::refresh(&call, login_id, language, request.tag).await,
        Mode::Answer(request_id) => live::already_authorized(&call, request_id).await,
    }?;
    Ok((outcome, ignored))
}

fn mode_of(request: &AuthorizeRequest) -> Result<Mode, ApiError> {
    if let Some(request_id) = &request.request_id {
        // The RequestId decides; repeated credentials beside it are ignored (`docs/flinks-wire.md`,
        // "Endpoint rulings").
        return request_id.parse().map(Mode::Answer).map_err(|_| {
            ApiError::refused(
                ENDPOINT,
                &Refusal::RequestIdMalformed {
                    request_id: request_id.clone(),
                    placeholder: auth::is_placeholder(request_id),
                },
            )
        });
    }
    if let Some(login_id) = &request.login_id {
        let login_id: LoginId = login_id
            .parse()
            .map_err(|_| ApiError::refused(ENDPOINT, &Refusal::LoginNotFound))?;
        crate::journal::record_login_id(login_id);
        return Ok(if request.most_recent_cached == Some(true) {
            Mode::Cached(login_id)
        } else {
            Mode::Refresh(login_id)
        });
    }
    let fields = [
        ("Institution", &request.institution),
        ("Username", &request.username),
        ("Password", &request.password),
    ];
    if fields.iter().all(|(_, value)| value.is_none()) {
        return Err(ApiError::invalid_request(
            Reason::LoginIdMissing,
            "Send {\"LoginId\": \"…\", \"MostRecentCached\": true} to open a saved connection, \
             or Institution, Username and Password to connect.",
        ));
    }
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, value)| value.as_deref().is_none_or(|v| v.trim().is_empty()))
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid_request(
            Reason::CredentialsMissing,
            format!(
                "A live connection needs Institution, Username and Password; missing: {}.",
                missing.join(", ")
            ),
        ));
    }
    Ok(Mode::Connect {
        institution: request.institution.clone().unwrap_or_default(),
        username: request.username.clone().unwrap_or_default(),
        password: request.password.clone().unwrap_or_default(),
    })
}

async fn cached(
    call: &Call<'_>,
    login_id: LoginId,
    tag: Option<String>,
) -> Result<Outcome, ApiError> {
    let request_id = RequestId::new_random();
    crate::journal::record_request_id(request_id);
    let mut token = call.token;
    if forced::active(call).await?
        && let Some(login) = call
            .state
            .store
            .login(call.tenant.customer.id, login_id)
            .await?
            .filter(|login| login.saved)
        && let Some(institution) = call.state.bank.institution(&login.institution)
    {
        let subject = forced::Subject {
            institution,
            username: &login.username,
            login: Some(&login),
            language: login.language,
            save: true,
            tag: tag.clone(),
            options: CardOptions::default(),
        };
        match forced::check(call, subject, request_id).await? {
            forced::Checked::Forced(outcome) => return Ok(outcome),
            forced::Checked::Go(left) => token = left,
        }
    }
    let call = &Call { token, ..*call };
    let outcome = call
        .state
        .store
        .authorize_cached(CachedAuthorize {
            customer_id: call.tenant.customer.id,
            token: call.token,
            login_id,
            request_id,
            now: call.now,
            session_expires_at: call.now + AUTHORIZED_SESSION_LIFETIME,
            tag,
        })
        .await?;
    if outcome == OpenOutcome::LoginNotFound {
        let refusal = crate::auth::login_not_found(call.state, call.tenant, login_id).await;
        return Err(ApiError::refused(ENDPOINT, &refusal));
    }
    call.opened(outcome).await
}

/// The body field that holds an authorize token in integrations that put it there (`Token`,
/// `AuthToken`, `authorizeToken`, `flinks-auth-key`), as the caller spelled it.
fn token_field(bytes: &[u8]) -> Option<String> {
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).ok()?;
    fields
        .into_iter()
        .filter(|(_, value)| value.as_str().is_some_and(|v| !v.trim().is_empty()))
        .map(|(key, _)| key)
        .find(|key| {
            let bare: String = key
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            [
                "token",
                "authtoken",
                "authorizetoken",
                "flinksauthkey",
                "authkey",
            ]
            .contains(&bare.as_str())
        })
}

/// Where a token could be, besides the header: for saying where a missing one was found.
struct Presented<'a> {
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    body_token: Option<&'a str>,
}

/// The token this request spends: `None` when the customer does not require tokens and none (or
/// the secret key itself) was sent.
async fn presented_token(
    state: &AppState,
    tenant: &Tenant,
    presented: &Presented<'_>,
) -> Result<Option<Digest>, ApiError> {
    let required = tenant.customer.authorize_token_required;
    let refuse = |refusal: Refusal| ApiError::refused(ENDPOINT, &refusal);
    match credential_in_header(presented.headers, ENDPOINT.credential_header()) {
        Err(malformed) => Err(refuse(malformed)),
        Ok(None) if required => Err(refuse(match presented.body_token {
            Some(field) => Refusal::AuthorizeTokenInBody {
                field: field.to_owned(),
            },
            None => {
                missing_credential(
                    state,
                    tenant,
                    presented.headers,
                    presented.query,
                    ENDPOINT,
                    Refusal::AuthorizeTokenMissing,
                )
                .await?
            }
        })),
        Ok(None) => Ok(None),
        Ok(Some(presented)) if !required => {
            let (digest, found) =
                auth::lookup(state, presented, tenant.instance.now(state.clock.as_ref())).await?;
            Ok((!is_current_key(tenant, &found, KeyKind::Secret)).then_some(digest))
        }
        Ok(Some(presented)) => Ok(Some(Digest::of_presented(presented))),
    }
}
