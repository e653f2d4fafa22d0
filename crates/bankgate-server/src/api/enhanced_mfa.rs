//! Enhanced MFA: `GET /GetMFAQuestions/{loginId}` lists the security questions a card keeps
//! without an answer, `PATCH /AnswerMFAQuestions` stores answers to them (docs/flinks-wire.md,
//! "Enhanced MFA"). Answers are kept as digests and checked when the bank next asks.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bankgate_core::LoginId;
use bankgate_core::model::{Language, Login, Tenant};
use bankgate_core::sandbox::SandboxInstitution;
use bankgate_core::sandbox::mfa::answer_digest;
use bankgate_store::MfaAnswers;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PathParams;
use super::delete_card::require_api_key;
use super::nightly::body_login_id;
use crate::auth;
use crate::body::{AnyObject, FlinksJson};
use crate::error::{ApiError, Endpoint, Reason};
use crate::host::HostKind;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct MfaQuestion {
    pub question: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GetMfaQuestionsResponse {
    pub http_status_code: u16,
    /// `SUCCESS`.
    pub message: &'static str,
    /// The questions without a stored answer, in the card's language.
    pub questions: Vec<MfaQuestion>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AnswerMfaQuestionsResponse {
    pub http_status_code: u16,
    /// `Answers updated`.
    pub message: &'static str,
}

/// One entry of `Questions`: `{"Question": "…", "Answer": "…"}` (keys in any case; the answer
/// a string or an array whose first non-blank string counts).
#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
// Only the document's: the handler reads entries as JSON values, to name a bad one.
#[allow(dead_code)]
pub struct QuestionAnswer {
    /// One of the card's questions, as GetMFAQuestions lists it.
    #[schema(min_length = 1)]
    pub question: String,
    #[schema(min_length = 1)]
    pub answer: String,
}

/// The AnswerMFAQuestions body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = AnswerMFAQuestionsBody)]
pub struct AnswerMfaQuestionsRequest {
    #[schema(value_type = String, format = Uuid, required = true)]
    pub login_id: Option<String>,
    #[schema(value_type = Vec<QuestionAnswer>, required = true, min_items = 1)]
    pub questions: Option<Vec<Value>>,
}

/// The card and its kept questions, or the refusal naming why there are none.
async fn enrolled_card(
    state: &AppState,
    tenant: &Tenant,
    endpoint: Endpoint,
    login_id: LoginId,
) -> Result<(Login, MfaAnswers, SandboxInstitution), ApiError> {
    let Some((login, answers)) = state
        .store
        .mfa_answers(tenant.customer.id, login_id)
        .await?
    else {
        let refusal = auth::login_not_found(state, tenant, login_id).await;
        return Err(ApiError::refused(endpoint, &refusal));
    };
    // Only the sandbox bank's cards exist (production instances have no bank to connect to).
    let institution = state.bank.institution(&login.institution).cloned();
    match institution {
        Some(institution) if !answers.is_empty() => Ok((login, answers, institution)),
        _ => Err(ApiError::invalid_request(
            Reason::MfaQuestionsNotCollected,
            format!(
                "LoginId {login_id} was not connected with \"WithMFAQuestions\": true and \
                 \"Save\": true, so its security questions were not collected; connect it again \
                 with both (Enhanced MFA) to use GetMFAQuestions and AnswerMFAQuestions."
            ),
        )),
    }
}

fn prompt(institution: &SandboxInstitution, question: usize, language: Language) -> String {
    institution
        .mfa_questions
        .get(question)
        .map_or_else(String::new, |q| q.prompt(language).to_owned())
}

/// The security questions of a card that have no stored answer.
#[utoipa::path(
    get,
    path = Endpoint::GetMFAQuestions.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("loginId" = String, Path, description = "A card connected with WithMFAQuestions and Save"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    responses(
        (status = 200, description = "The unanswered questions (none left: an empty list)", body = GetMfaQuestionsResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn get_mfa_questions(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams((customer_id, login_id)): PathParams<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(_): FlinksJson<AnyObject>,
) -> Result<Json<GetMfaQuestionsResponse>, ApiError> {
    const ENDPOINT: Endpoint = Endpoint::GetMFAQuestions;
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    require_api_key(&state, &tenant, &headers, uri.query(), ENDPOINT).await?;
    let login_id = auth::path_login_id(ENDPOINT, &login_id)?;
    let (login, answers, institution) = enrolled_card(&state, &tenant, ENDPOINT, login_id).await?;
    Ok(Json(GetMfaQuestionsResponse {
        http_status_code: 200,
        message: "SUCCESS",
        questions: answers
            .iter()
            .filter(|(_, answer)| answer.is_none())
            .map(|(question, _)| MfaQuestion {
                question: prompt(&institution, *question, login.language),
            })
            .collect(),
    }))
}

/// A field of a `Questions` entry, its key in any case.
fn entry_field<'a>(entry: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    entry
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// The answer as sent: a string, or the first non-blank string of an array.
fn answer_text(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::String(text) => Some(text.as_str()),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.trim().is_empty()),
        _ => None,
    }
    .map(str::trim)
    .filter(|t| !t.is_empty())
}

/// The kept question a prompt names, in either language, ignoring case and surrounding spaces.
fn question_named(
    institution: &SandboxInstitution,
    kept: &MfaAnswers,
    text: &str,
) -> Option<usize> {
    kept.iter().map(|(q, _)| *q).find(|q| {
        institution.mfa_questions.get(*q).is_some_and(|question| {
            [Language::En, Language::Fr]
                .iter()
                .any(|l| question.prompt(*l).eq_ignore_ascii_case(text.trim()))
        })
    })
}

/// Stores answers to a card's security questions; they are checked when the bank next asks.
#[utoipa::path(
    patch,
    path = Endpoint::AnswerMFAQuestions.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    request_body(content = AnswerMfaQuestionsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored", body = AnswerMfaQuestionsResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn answer_mfa_questions(
    State(state): State<AppState>,
    Extension(host): Extension<HostKind>,
    PathParams(customer_id): PathParams<String>,
    uri: Uri,
    headers: HeaderMap,
    FlinksJson(request): FlinksJson<AnswerMfaQuestionsRequest>,
) -> Result<Json<AnswerMfaQuestionsResponse>, ApiError> {
    const ENDPOINT: Endpoint = Endpoint::AnswerMFAQuestions;
    let tenant = auth::resolve_tenant(&state, &host, &customer_id, ENDPOINT).await?;
    require_api_key(&state, &tenant, &headers, uri.query(), ENDPOINT).await?;
    let login_id = body_login_id(ENDPOINT, request.login_id.as_deref(), uri.query())?;
    let entries = request.questions.unwrap_or_default();
    if entries.is_empty() {
        return Err(ApiError::invalid_request(
            Reason::MfaQuestionsMissing,
            "Send \"Questions\": [{\"Question\": \"…\", \"Answer\": \"…\"}] with the questions \
             GetMFAQuestions lists.",
        ));
    }
    let (login, kept, institution) = enrolled_card(&state, &tenant, ENDPOINT, login_id).await?;
    let listed = || {
        kept.iter()
            .map(|(q, _)| format!("{:?}", prompt(&institution, *q, login.language)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut answers: MfaAnswers = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(ApiError::invalid_request(
                Reason::BodyInvalid,
                format!(
                    "Questions[{at}] is not an object; each entry is {{\"Question\": \"…\", \
                     \"Answer\": \"…\"}}."
                ),
            ));
        };
        let text = entry_field(entry, "Question")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(question) = question_named(&institution, &kept, text) else {
            return Err(ApiError::invalid_request(
                Reason::MfaQuestionUnknown,
                format!(
                    "Questions[{at}] asks {text:?}, which is not one of this card's security \
                     questions; they are {}.",
                    listed()
                ),
            ));
        };
        let Some(answer) = answer_text(entry_field(entry, "Answer")) else {
            return Err(ApiError::invalid_request(
                Reason::MfaAnswerMissing,
                format!("Questions[{at}] ({text:?}) has no Answer; send a non-empty string."),
            ));
        };
        answers.retain(|(q, _)| *q != question);
        answers.push((question, Some(answer_digest(login_id, question, answer))));
    }
    let now = tenant.instance.now(state.clock.as_ref());
    if !state
        .store
        .set_mfa_answers(tenant.customer.id, login_id, answers, now)
        .await?
    {
        let refusal = auth::login_not_found(&state, &tenant, login_id).await;
        return Err(ApiError::refused(ENDPOINT, &refusal));
    }
    tracing::info!("Enhanced MFA answers stored");
    Ok(Json(AnswerMfaQuestionsResponse {
        http_status_code: 200,
        message: "Answers updated",
    }))
}
