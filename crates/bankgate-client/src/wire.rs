//! What goes over the wire: request bodies and answers, with Flinks' field names.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::credentials::{AuthorizeToken, LoginId, RequestId};

/// The body of a first /Authorize call: cached mode, a live refresh of a LoginId, or a live
/// connection with bank credentials.
#[derive(Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_id: Option<LoginId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `true`: the last aggregation, without the bank; `false`: a live connection.
    pub most_recent_cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save: Option<bool>,
    /// `en` or `fr`: the language of the bank's security questions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A new card gets the nightly refresh (ignored for an existing card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_refresh: Option<bool>,
    /// With `Save`: keep the new card's security questions (Enhanced MFA).
    #[serde(rename = "WithMFAQuestions", skip_serializing_if = "Option::is_none")]
    pub with_mfa_questions: Option<bool>,
}

impl AuthorizeRequest {
    /// `ScheduleRefresh`: the new card gets the nightly refresh.
    pub fn schedule_refresh(mut self, on: bool) -> Self {
        self.schedule_refresh = Some(on);
        self
    }

    /// `WithMFAQuestions: true`: the new (saved) card keeps its security questions.
    pub fn with_mfa_questions(mut self) -> Self {
        self.with_mfa_questions = Some(true);
        self
    }

    /// Cached mode: reopen a saved LoginId without the bank.
    pub fn cached(login_id: impl Into<String>) -> Self {
        Self {
            login_id: Some(LoginId::new(login_id)),
            most_recent_cached: true,
            ..Self::default()
        }
    }

    /// A live refresh of a saved LoginId (the bank may ask security questions again).
    pub fn refresh(login_id: impl Into<String>) -> Self {
        Self {
            login_id: Some(LoginId::new(login_id)),
            most_recent_cached: false,
            save: Some(true),
            ..Self::default()
        }
    }

    /// A live connection with bank credentials, saved as a LoginId.
    pub fn live(
        institution: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            institution: Some(institution.into()),
            username: Some(username.into()),
            password: Some(password.into()),
            most_recent_cached: false,
            save: Some(true),
            ..Self::default()
        }
    }

    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

/// Never prints the bank password.
impl fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("login_id", &self.login_id)
            .field("institution", &self.institution)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("most_recent_cached", &self.most_recent_cached)
            .field("save", &self.save)
            .field("language", &self.language)
            .field("tag", &self.tag)
            .field("schedule_refresh", &self.schedule_refresh)
            .field("with_mfa_questions", &self.with_mfa_questions)
            .finish()
    }
}

/// The MFA answer call's body.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MfaAnswer<'a> {
    pub request_id: &'a RequestId,
    pub security_responses: &'a SecurityResponses,
}

/// Answers keyed by the exact prompt of each challenge, each a list (one item for a question).
pub type SecurityResponses = BTreeMap<String, Vec<String>>;

/// `Login` in every authorized answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Login {
    pub username: String,
    pub is_scheduled_refresh: bool,
    /// UTC without a zone, as Flinks writes it (`2026-01-21T20:47:47.145999`).
    pub last_refresh: String,
    #[serde(rename = "Type")]
    pub kind: String,
    /// The LoginId.
    pub id: LoginId,
}

/// A 200 from /Authorize.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Authorized {
    pub request_id: RequestId,
    pub login: Login,
    pub institution: String,
    #[serde(default)]
    pub tag: Option<String>,
}

/// One security question of a 203.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityChallenge {
    #[serde(rename = "Type")]
    pub kind: String,
    pub prompt: String,
    /// The choices of a multiple-choice or image challenge.
    #[serde(default)]
    pub iterables: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChallengeBody {
    pub request_id: RequestId,
    #[serde(default)]
    pub institution: Option<String>,
    pub security_challenges: Vec<SecurityChallenge>,
}

/// A 203 from /Authorize: the bank asks security questions. Answer them with
/// [`crate::Client::answer_mfa`], which takes the step by value and sends the authorize token
/// that opened it again, as Flinks documents.
#[derive(Debug)]
pub struct MfaStep {
    pub request_id: RequestId,
    pub institution: Option<String>,
    pub challenges: Vec<SecurityChallenge>,
    pub(crate) token: Option<AuthorizeToken>,
}

/// What /Authorize (or an MFA answer) ended in.
#[derive(Debug)]
pub enum Authorization {
    /// 200: the RequestId opens the data endpoints.
    Authorized(Authorized),
    /// 203: security questions to answer.
    Mfa(MfaStep),
    /// 202: still working; call again later with the same RequestId.
    Pending(Pending),
}

/// A 202 (`OPERATION_PENDING` or `OPERATION_DISPATCHED`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub request_id: Option<RequestId>,
    pub flinks_code: Option<String>,
    pub message: Option<String>,
    /// From the `Retry-After` header, when the server sends one.
    pub retry_after: Option<std::time::Duration>,
}

/// The 202 of an /AuthorizeAsync step (a start or an MFA answer): the step is under way; poll
/// it with [`crate::Client::poll_authorize_async`].
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncAuthorization {
    pub request_id: RequestId,
    /// From the `Retry-After` header, when the server sends one (bankgate does).
    pub retry_after: Option<std::time::Duration>,
}

/// A data endpoint's answer: the data, or a 202 to poll its `…Async` companion for.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll<T> {
    Ready(T),
    Pending(Pending),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Balance {
    pub available: Option<f64>,
    pub current: Option<f64>,
    pub limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Address {
    pub civic_address: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub postal_code: Option<String>,
    #[serde(rename = "POBox")]
    pub po_box: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Holder {
    pub name: Option<String>,
    pub address: Option<Address>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Transaction {
    pub date: String,
    pub description: String,
    pub debit: Option<f64>,
    pub credit: Option<f64>,
    pub balance: Option<f64>,
    pub id: String,
}

/// An account as GetAccountsSummary and GetAccountsDetail share it; the detail adds
/// transactions and account identity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub id: String,
    pub title: Option<String>,
    pub account_number: Option<String>,
    pub last_four_digits: Option<String>,
    pub balance: Option<Balance>,
    pub category: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub currency: Option<String>,
    pub holder: Option<Holder>,
    pub account_type: Option<String>,
    #[serde(default)]
    pub transactions: Vec<Transaction>,
    #[serde(default)]
    pub transit_number: Option<String>,
    #[serde(default)]
    pub institution_number: Option<String>,
    #[serde(default)]
    pub overdraft_limit: Option<f64>,
}

/// A 200 from GetAccountsSummary or GetAccountsDetail (and their `…Async` polls).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Accounts {
    pub request_id: RequestId,
    pub accounts: Vec<Account>,
    pub login: Login,
    pub institution: String,
    #[serde(default)]
    pub institution_name: Option<String>,
    #[serde(default)]
    pub institution_id: Option<u32>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// The options of GetAccountsDetail; only the RequestId is required.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountsDetailRequest {
    pub request_id: RequestId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_account_identity: Option<bool>,
    #[serde(rename = "WithKYC", skip_serializing_if = "Option::is_none")]
    pub with_kyc: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_transactions: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_balance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts_filter: Option<Vec<String>>,
    /// `Days90` or `Days365`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_of_transactions: Option<String>,
}

impl AccountsDetailRequest {
    pub fn new(request_id: RequestId) -> Self {
        Self {
            request_id,
            with_account_identity: None,
            with_kyc: None,
            with_transactions: None,
            with_balance: None,
            accounts_filter: None,
            days_of_transactions: None,
        }
    }
}

/// The options of GetStatements.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatementsRequest {
    pub request_id: RequestId,
    /// `MostRecent` (the default), `Months3` or `Months12` (one account only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_statements: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts_filter: Option<Vec<String>>,
}

impl StatementsRequest {
    pub fn new(request_id: RequestId) -> Self {
        Self {
            request_id,
            number_of_statements: None,
            accounts_filter: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub unique_id: String,
    pub file_type: String,
    /// The PDF, base64-encoded.
    pub base64_bytes: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountStatements {
    pub account_number: String,
    pub statements: Vec<Statement>,
}

/// A 200 from GetStatements.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statements {
    pub request_id: RequestId,
    pub statements_by_account: Vec<AccountStatements>,
    pub login: Login,
    pub institution: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TokenBody {
    pub token: String,
}

/// The common envelope's fields a refusal or a 202 carries; every one optional, since a server
/// that is not Flinks (a proxy's error page) may send none.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EnvelopeBody {
    #[serde(default)]
    pub flinks_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub request_id: Option<RequestId>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
}

/// A 200 from GetNightlyRefreshStatus.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NightlyRefreshStatus {
    #[serde(default)]
    pub ineligible_cards: Vec<IneligibleCard>,
}

/// A card the nightly refresh stopped refreshing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IneligibleCard {
    pub login_id: LoginId,
    pub last_refresh_date: Option<String>,
    pub last_refresh_state: Option<String>,
    pub last_refresh_error_code: Option<String>,
    /// bankgate's addition: which rule stopped the card.
    #[serde(default)]
    pub reason: Option<String>,
    /// bankgate's addition: what makes it refresh again.
    #[serde(default)]
    pub hint: Option<String>,
}

/// A 200 from GetMFAQuestions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MfaQuestionsBody {
    #[serde(default)]
    pub questions: Vec<MfaQuestionBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MfaQuestionBody {
    pub question: String,
}

/// The AnswerMFAQuestions body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MfaAnswersBody<'a> {
    pub login_id: &'a LoginId,
    pub questions: Vec<QuestionAnswerBody<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QuestionAnswerBody<'a> {
    pub question: &'a str,
    pub answer: &'a str,
}

/// The SetScheduledRefresh body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ScheduledRefreshBody<'a> {
    pub login_id: &'a LoginId,
    pub is_activated: bool,
}
