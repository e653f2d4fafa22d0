//! The data endpoints: a RequestId and the x-api-key read the accounts of the session's LoginId
//! (GetAccountsSummary, GetAccountsDetail, their Async polls, GetStatements).

use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bankgate_core::model::{Login, Session, Tenant};
use bankgate_core::sandbox::Scenario;
use bankgate_core::sandbox::accounts::{self, Account, HISTORY_DAYS, to_decimal};
use bankgate_core::sandbox::statements::{self, StatementCount};
use bankgate_core::{Refusal, RequestId};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PathParams;
use super::authorize::LoginBody;
use super::delete_card::require_api_key;
use crate::auth;
use crate::body::{self, RawBody, lenient_bool};
use crate::error::{ApiError, BankRefusal, Endpoint, FlinksCode, Reason};
use crate::host::HostKind;
use crate::state::AppState;

/// How long the sandbox takes to finish a long operation (test_pending, test_dispatched): the
/// first poll after this answers 200. Flinks asks clients to poll every 10 seconds.
pub const SANDBOX_PROCESSING_TIME: Duration = Duration::from_secs(10);

/// The body of the data endpoints (keys match in any case; booleans may be strings).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = DataBody)]
pub struct DataRequest {
    #[schema(format = Uuid)]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub with_account_identity: Option<bool>,
    /// Also spelled `WithKyc` (keys match in any case).
    #[serde(rename = "WithKYC", default, deserialize_with = "lenient_bool")]
    pub with_kyc: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub with_transactions: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub with_balance: Option<bool>,
    pub accounts_filter: Option<Vec<String>>,
    /// `Days90`, `Days360` or `Days365`.
    #[schema(pattern = "^(Days90|Days360|Days365)$")]
    pub days_of_transactions: Option<String>,
    /// Not read: a LoginId here means /Authorize was skipped, which the refusal says.
    #[schema(ignore)]
    pub login_id: Option<serde_json::Value>,
    /// GetStatements: `MostRecent`, `Months3` or `Months12`.
    #[schema(pattern = "^(MostRecent|Months3|Months12)$")]
    pub number_of_statements: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct BalanceBody {
    available: Option<f64>,
    current: Option<f64>,
    limit: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct AddressBody {
    civic_address: String,
    city: &'static str,
    province: &'static str,
    postal_code: &'static str,
    #[serde(rename = "POBox")]
    po_box: Option<String>,
    country: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct HolderBody {
    name: String,
    address: AddressBody,
    email: String,
    phone_number: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct TransactionBody {
    date: String,
    /// Deprecated by Flinks; always null.
    code: Option<String>,
    description: String,
    debit: Option<f64>,
    credit: Option<f64>,
    balance: f64,
    id: Uuid,
}

/// An account in GetAccountsSummary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct SummaryAccount {
    eft_eligible_ratio: f64,
    #[serde(rename = "ETransferEligibleRatio")]
    etransfer_eligible_ratio: f64,
    title: &'static str,
    account_number: String,
    last_four_digits: Option<String>,
    balance: BalanceBody,
    category: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
    currency: &'static str,
    holder: Option<HolderBody>,
    account_type: &'static str,
    id: Uuid,
}

/// An account in GetAccountsDetail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct DetailAccount {
    transactions: Vec<TransactionBody>,
    transit_number: Option<String>,
    institution_number: Option<&'static str>,
    overdraft_limit: Option<f64>,
    title: &'static str,
    account_number: Option<String>,
    last_four_digits: Option<String>,
    balance: BalanceBody,
    category: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
    currency: &'static str,
    holder: Option<HolderBody>,
    account_type: &'static str,
    id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct SummaryResponse {
    http_status_code: u16,
    accounts: Vec<SummaryAccount>,
    links: [super::Link; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    institution_name: String,
    login: LoginBody,
    institution_id: u32,
    institution: String,
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct DetailResponse {
    http_status_code: u16,
    accounts: Vec<DetailAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    institution_name: String,
    login: LoginBody,
    institution_id: u32,
    institution: String,
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
}

/// The 202 while a long operation runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct PendingResponse {
    #[schema(value_type = String)]
    flinks_code: FlinksCode,
    links: [PollLink; 1],
    http_status_code: u16,
    message: &'static str,
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PollLink {
    rel: &'static str,
    href: &'static str,
    example: String,
}

/// What a data endpoint is called with, read in the order refusals are decided: the path, then
/// the body (so a bad body is refused before the credentials are looked at).
pub struct DataCall<P> {
    state: AppState,
    host: HostKind,
    path: P,
    headers: HeaderMap,
    query: Option<String>,
    request: DataRequest,
    /// Body fields this endpoint does not read, named in a response header.
    ignored: Vec<String>,
}

/// The path parameters of a data endpoint: the customerId, and the RequestId of the polls.
pub trait DataPath {
    fn customer_id(&self) -> &str;
    fn request_id(&self) -> Option<&str>;
}

impl DataPath for String {
    fn customer_id(&self) -> &str {
        self
    }

    fn request_id(&self) -> Option<&str> {
        None
    }
}

impl DataPath for (String, String) {
    fn customer_id(&self) -> &str {
        &self.0
    }

    fn request_id(&self) -> Option<&str> {
        Some(&self.1)
    }
}

impl<P: DataPath + DeserializeOwned + Send> FromRequest<AppState> for DataCall<P> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Extension(host) = Extension::<HostKind>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let PathParams(path) = PathParams::<P>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let query = parts.uri.query().map(str::to_owned);
        let RawBody(bytes) = RawBody::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let request = body::parse::<DataRequest>(&bytes).map_err(IntoResponse::into_response)?;
        let ignored = body::ignored_fields::<DataRequest>(&bytes);
        Ok(Self {
            state: state.clone(),
            host,
            path,
            headers,
            query,
            request,
            ignored,
        })
    }
}

impl<P: DataPath> DataCall<P> {
    /// A body with a LoginId and no RequestId: the caller skipped /Authorize, so say that rather
    /// than only "RequestId missing".
    fn explain_missing_request_id(&self, error: ApiError) -> ApiError {
        if error.reason == Reason::RequestIdMissing && self.request.login_id.is_some() {
            return ApiError::invalid_request(
                Reason::LoginIdGivenToDataEndpoint,
                "The body has a LoginId but no RequestId; exchange the LoginId for a RequestId at \
                 /Authorize (LoginId and MostRecentCached: true) first.",
            );
        }
        error
    }

    /// The session to read: the RequestId in the path (polls) or else in the body.
    async fn open(&self, endpoint: Endpoint) -> Result<Reading, ApiError> {
        open_reading(
            &self.state,
            &self.host,
            self.path.customer_id(),
            &self.headers,
            self.query.as_deref(),
            endpoint,
            self.path
                .request_id()
                .or(self.request.request_id.as_deref()),
        )
        .await
        .map_err(|error| self.explain_missing_request_id(error))
    }
}

/// An authorized session with everything the data endpoints render.
pub(crate) struct Reading {
    pub tenant: Tenant,
    pub session: Session,
    pub login: Login,
    pub as_of: NaiveDate,
    pub accounts: Vec<Account>,
}

/// Resolves customer, x-api-key and RequestId; refuses sessions that are unknown, expired or
/// still waiting for MFA.
pub(crate) async fn open_reading(
    state: &AppState,
    host: &HostKind,
    customer_id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    endpoint: Endpoint,
    request_id: Option<&str>,
) -> Result<Reading, ApiError> {
    let tenant = auth::resolve_tenant(state, host, customer_id, endpoint).await?;
    require_api_key(state, &tenant, headers, query, endpoint).await?;
    let Some(raw) = request_id.map(str::trim).filter(|r| !r.is_empty()) else {
        return Err(ApiError::invalid_request(
            Reason::RequestIdMissing,
            format!(
                "{} needs the RequestId of an authorized /Authorize.",
                endpoint.name()
            ),
        ));
    };
    let unknown = || {
        ApiError::refused(
            endpoint,
            &Refusal::RequestIdUnknown {
                request_id: raw.to_owned(),
            },
        )
    };
    let request_id: RequestId = raw.parse().map_err(|_| {
        ApiError::refused(
            endpoint,
            &Refusal::RequestIdMalformed {
                request_id: raw.to_owned(),
                placeholder: auth::is_placeholder(raw),
            },
        )
    })?;
    crate::journal::record_request_id(request_id);
    let now = tenant.instance.now(state.clock.as_ref());
    let customer = tenant.customer.id;
    let Some(session) = state.store.session(customer, request_id).await? else {
        if let Some(pending) = state.store.pending(customer, request_id).await? {
            if pending.expires_at <= now {
                return Err(ApiError::refused(
                    endpoint,
                    &Refusal::RequestIdExpired {
                        request_id: raw.to_owned(),
                        at: pending.expires_at,
                    },
                ));
            }
            return Err(
                ApiError::from(BankRefusal::SessionNotAuthorized).with_request_id(request_id)
            );
        }
        return Err(unknown());
    };
    if session.expires_at <= now {
        return Err(ApiError::refused(
            endpoint,
            &Refusal::RequestIdExpired {
                request_id: raw.to_owned(),
                at: session.expires_at,
            },
        ));
    }
    let Some(login) = state.store.login(customer, session.login_id).await? else {
        return Err(unknown());
    };
    Ok(Reading::new(tenant, session, login))
}

impl Reading {
    pub(crate) fn new(tenant: Tenant, session: Session, login: Login) -> Self {
        // Anchored on the LoginId's creation, not its last refresh: the same LoginId must always
        // yield the same accounts and transaction ids (`docs/flinks-wire.md`, "Sandbox bank"),
        // whenever it is refreshed.
        let as_of = login.created_at.to_datetime().date_naive();
        let accounts = accounts::accounts_for(login.id, as_of);
        Self {
            tenant,
            session,
            login,
            as_of,
            accounts,
        }
    }

    fn institution_id(&self, state: &AppState) -> u32 {
        state.bank.numeric_id(&self.login.institution)
    }

    /// The sandbox user's scripted slowness: `Some(code)` while the long operation runs. A
    /// first synchronous call of `test_dispatched` says `OPERATION_DISPATCHED`; everything else
    /// while it runs says `OPERATION_PENDING`.
    async fn still_processing(
        &self,
        state: &AppState,
        polling: bool,
    ) -> Result<Option<(FlinksCode, Duration)>, ApiError> {
        let scenario = state
            .bank
            .institution(&self.login.institution)
            .and_then(|i| i.user(&self.login.username))
            .map(|u| u.scenario);
        if !matches!(scenario, Some(Scenario::Pending | Scenario::Dispatched)) {
            return Ok(None);
        }
        let now = self.tenant.instance.now(state.clock.as_ref());
        let started = state
            .store
            .start_operation(self.tenant.customer.id, self.session.request_id, now)
            .await?
            .unwrap_or(now);
        if now >= started + SANDBOX_PROCESSING_TIME {
            return Ok(None);
        }
        let first_call = started == now && !polling;
        let code = if first_call && scenario == Some(Scenario::Dispatched) {
            FlinksCode::OperationDispatched
        } else {
            FlinksCode::OperationPending
        };
        let ready_at = started + SANDBOX_PROCESSING_TIME;
        let remaining = Duration::from_micros(
            u64::try_from(ready_at.as_micros() - now.as_micros()).unwrap_or_default(),
        );
        Ok(Some((code, remaining)))
    }

    /// Narrows to `AccountsFilter`; an id this login does not have is a 400.
    fn filtered(&self, filter: Option<&[String]>) -> Result<Vec<&Account>, ApiError> {
        let Some(filter) = filter.filter(|f| !f.is_empty()) else {
            return Ok(self.accounts.iter().collect());
        };
        let mut chosen = Vec::with_capacity(filter.len());
        for wanted in filter {
            let account = wanted
                .parse::<Uuid>()
                .ok()
                .and_then(|id| self.accounts.iter().find(|a| a.id == id))
                .ok_or_else(|| {
                    ApiError::invalid_request(
                        Reason::AccountUnknown,
                        format!("AccountsFilter names {wanted:?}, which is not an account of this LoginId."),
                    )
                    .with_request_id(self.session.request_id)
                })?;
            if !chosen.iter().any(|a: &&Account| a.id == account.id) {
                chosen.push(account);
            }
        }
        Ok(chosen)
    }
}

/// The 202, with `Retry-After` (whole seconds, at least 1) saying when the data will be ready.
/// The body stays exactly Flinks' (clients compare it); the header is bankgate's addition.
fn pending_response(
    (code, remaining): (FlinksCode, Duration),
    request_id: RequestId,
    poll: Endpoint,
) -> Response {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    let secs = secs.max(1);
    let message = if code == FlinksCode::OperationDispatched {
        "Your operations had been dispatched to background process for long running jobs"
    } else {
        "Your operation is still processing"
    };
    let href = match poll {
        Endpoint::GetAccountsSummaryAsync => "/GetAccountsSummaryAsync",
        Endpoint::GetStatementsAsync => "/GetStatementsAsync",
        _ => "/GetAccountsDetailAsync",
    };
    let body = PendingResponse {
        flinks_code: code,
        links: [PollLink {
            rel: poll.name(),
            href,
            example: format!("{href}/{request_id}"),
        }],
        http_status_code: 202,
        message,
        request_id,
    };
    (
        StatusCode::ACCEPTED,
        [(header::RETRY_AFTER, secs.to_string())],
        Json(body),
    )
        .into_response()
}

fn balance(account: &Account, with_balance: bool) -> BalanceBody {
    if !with_balance {
        return BalanceBody {
            available: None,
            current: None,
            limit: None,
        };
    }
    BalanceBody {
        available: Some(to_decimal(account.available)),
        current: Some(to_decimal(account.current)),
        limit: account.limit.map(to_decimal),
    }
}

fn holder(account: &Account) -> HolderBody {
    let holder = &account.holder;
    HolderBody {
        name: holder.name.clone(),
        address: AddressBody {
            civic_address: holder.address.civic_address.clone(),
            city: holder.address.city,
            province: holder.address.province,
            postal_code: holder.address.postal_code,
            po_box: holder.address.po_box.clone(),
            country: holder.address.country,
        },
        email: holder.email.clone(),
        phone_number: holder.phone_number.clone(),
    }
}

fn summary_account(account: &Account, login: &Login) -> SummaryAccount {
    SummaryAccount {
        eft_eligible_ratio: account.eft_eligible_ratio,
        etransfer_eligible_ratio: account.etransfer_eligible_ratio,
        title: account.title,
        account_number: account.account_number.clone(),
        last_four_digits: account.last_four_digits.clone(),
        balance: balance(account, true),
        category: account.category.as_str(),
        kind: account.kind,
        currency: account.currency,
        holder: Some(holder(account)),
        account_type: login.login_type.as_str(),
        id: account.id,
    }
}

/// The options of GetAccountsDetail, with Flinks' defaults filled in.
struct DetailOptions {
    identity: bool,
    kyc: bool,
    transactions: bool,
    balance: bool,
    days: u32,
}

impl DetailOptions {
    fn of(request: &DataRequest) -> Result<Self, ApiError> {
        let days = match request.days_of_transactions.as_deref().map(str::trim) {
            None => 90,
            Some(days) if days.eq_ignore_ascii_case("Days90") => 90,
            Some(days)
                if days.eq_ignore_ascii_case("Days360") || days.eq_ignore_ascii_case("Days365") =>
            {
                HISTORY_DAYS
            }
            Some(other) => {
                return Err(ApiError::invalid_request(
                    Reason::DaysOfTransactionsInvalid,
                    format!("DaysOfTransactions is {other:?}; use Days90, Days360 or Days365."),
                ));
            }
        };
        Ok(Self {
            identity: request.with_account_identity.unwrap_or(true),
            kyc: request.with_kyc.unwrap_or(true),
            transactions: request.with_transactions.unwrap_or(true),
            balance: request.with_balance.unwrap_or(true),
            days,
        })
    }
}

fn detail_account(
    account: &Account,
    login: &Login,
    options: &DetailOptions,
    as_of: NaiveDate,
) -> DetailAccount {
    let transactions = if options.transactions {
        account
            .transactions_within(as_of, options.days)
            .iter()
            .map(|t| TransactionBody {
                date: t.date.format("%Y-%m-%d").to_string(),
                code: None,
                description: t.description.clone(),
                debit: t.debit.map(to_decimal),
                credit: t.credit.map(to_decimal),
                balance: to_decimal(t.balance),
                id: t.id,
            })
            .collect()
    } else {
        Vec::new()
    };
    DetailAccount {
        transactions,
        transit_number: options.identity.then(|| account.transit_number.clone()),
        institution_number: options.identity.then_some(account.institution_number),
        overdraft_limit: account.overdraft_limit.map(to_decimal),
        title: account.title,
        account_number: options.identity.then(|| account.account_number.clone()),
        last_four_digits: account.last_four_digits.clone(),
        balance: balance(account, options.balance),
        category: account.category.as_str(),
        kind: account.kind,
        currency: account.currency,
        holder: options.kyc.then(|| holder(account)),
        account_type: login.login_type.as_str(),
        id: account.id,
    }
}

async fn summary(
    state: &AppState,
    reading: Reading,
    request: &DataRequest,
    polling: bool,
) -> Result<Response, ApiError> {
    // Bad input is refused before a long operation starts, as in detail().
    let chosen = reading.filtered(request.accounts_filter.as_deref())?;
    if let Some(code) = reading.still_processing(state, polling).await? {
        return Ok(pending_response(
            code,
            reading.session.request_id,
            Endpoint::GetAccountsSummaryAsync,
        ));
    }
    let accounts = chosen
        .into_iter()
        .map(|a| summary_account(a, &reading.login))
        .collect();
    Ok(Json(SummaryResponse {
        http_status_code: 200,
        accounts,
        links: [
            super::Link::to("AccountsDetail", "/GetAccountsDetail"),
            super::Link::to("Statements", "/GetStatements"),
        ],
        tag: reading.session.tag.clone(),
        institution_name: reading.login.institution.clone(),
        login: LoginBody::from(&reading.login),
        institution_id: reading.institution_id(state),
        institution: reading.login.institution.clone(),
        request_id: reading.session.request_id,
    })
    .into_response())
}

async fn detail(
    state: &AppState,
    reading: Reading,
    request: &DataRequest,
    polling: bool,
) -> Result<Response, ApiError> {
    let options =
        DetailOptions::of(request).map_err(|e| e.with_request_id(reading.session.request_id))?;
    let chosen = reading.filtered(request.accounts_filter.as_deref())?;
    if let Some(code) = reading.still_processing(state, polling).await? {
        return Ok(pending_response(
            code,
            reading.session.request_id,
            Endpoint::GetAccountsDetailAsync,
        ));
    }
    Ok(Json(detail_body(state, &reading, &options, chosen)).into_response())
}

fn detail_body(
    state: &AppState,
    reading: &Reading,
    options: &DetailOptions,
    chosen: Vec<&Account>,
) -> DetailResponse {
    let accounts = chosen
        .into_iter()
        .map(|a| detail_account(a, &reading.login, options, reading.as_of))
        .collect();
    DetailResponse {
        http_status_code: 200,
        accounts,
        tag: reading.session.tag.clone(),
        institution_name: reading.login.institution.clone(),
        login: LoginBody::from(&reading.login),
        institution_id: reading.institution_id(state),
        institution: reading.login.institution.clone(),
        request_id: reading.session.request_id,
    }
}

/// A callback body: the answer it repeats, with `ResponseType` first (docs/flinks-wire.md,
/// "Webhooks").
#[derive(Debug, Serialize)]
struct Callback<T> {
    #[serde(rename = "ResponseType")]
    response_type: &'static str,
    #[serde(flatten)]
    body: T,
}

/// The KYC callback's fields after `ResponseType`, as Flinks' example shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KycBody {
    http_status_code: u16,
    holders: Vec<HolderBody>,
    login: LoginBody,
    institution: String,
    request_id: RequestId,
}

/// A callback of an authorization, as the exact bytes to send: `KYC` (the holders of the
/// accounts, the login) or `GetAccountsDetail` (its 200 with the endpoint's defaults, built by
/// the code that answers GetAccountsDetail); `None` for another kind.
pub(crate) fn callback_body(
    state: &AppState,
    reading: &Reading,
    kind: &str,
) -> Result<Option<String>, serde_json::Error> {
    match kind {
        "KYC" => {
            let mut holders: Vec<HolderBody> = Vec::new();
            for account in &reading.accounts {
                if !holders.iter().any(|h| h.name == account.holder.name) {
                    holders.push(holder(account));
                }
            }
            let kyc = Callback {
                response_type: "KYC",
                body: KycBody {
                    http_status_code: 200,
                    holders,
                    login: LoginBody::from(&reading.login),
                    institution: reading.login.institution.clone(),
                    request_id: reading.session.request_id,
                },
            };
            serde_json::to_string(&kyc).map(Some)
        }
        "GetAccountsDetail" => {
            let defaults = DetailOptions::of(&DataRequest::default())
                .map_err(|_| serde::ser::Error::custom("the default options are valid"))?;
            let detail = Callback {
                response_type: "GetAccountsDetail",
                body: detail_body(state, reading, &defaults, reading.accounts.iter().collect()),
            };
            serde_json::to_string(&detail).map(Some)
        }
        _ => Ok(None),
    }
}

/// When the data of a just-authorized session is ready: at once, or after the 202 period of
/// the sandbox users that simulate a long operation.
pub(crate) fn data_ready_at(state: &AppState, reading: &Reading) -> bankgate_core::Timestamp {
    let slow = state
        .bank
        .institution(&reading.login.institution)
        .and_then(|i| i.user(&reading.login.username))
        .is_some_and(|u| matches!(u.scenario, Scenario::Pending | Scenario::Dispatched));
    let authorized = reading.session.created_at;
    if slow {
        authorized + SANDBOX_PROCESSING_TIME
    } else {
        authorized
    }
}

/// Declares an accounts endpoint: its documentation and a handler that opens the session and
/// renders it with `$render`. The four differ only in these parameters.
macro_rules! accounts_endpoint {
    (
        $(#[doc = $doc:literal])+
        $name:ident: [$($method:tt)+] $endpoint:ident, $path:ty, [$($params:tt)+],
        $body:ident, $render:ident, polling: $polling:literal
    ) => {
        $(#[doc = $doc])+
        #[utoipa::path(
            $($method)+,
            path = Endpoint::$endpoint.path(),
            tag = "Flinks API",
            params($($params)+ ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
            request_body(content = Option<DataRequest>, content_type = "application/json"),
            responses(
                (status = 200, description = "The accounts", body = $body),
                (status = 202, description = "Still processing: poll the Async endpoint", body = PendingResponse),
                crate::error::ErrorResponses,
            ),
        )]
        pub async fn $name(call: DataCall<$path>) -> Result<Response, ApiError> {
            let reading = call.open(Endpoint::$endpoint).await?;
            $render(&call.state, reading, &call.request, $polling)
                .await
                .map(|response| body::mark_ignored(response, &call.ignored))
        }
    };
}

accounts_endpoint! {
    /// The accounts of an authorized RequestId, without transactions.
    get_accounts_summary: [post] GetAccountsSummary, String,
    [("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"),],
    SummaryResponse, summary, polling: false
}

accounts_endpoint! {
    /// The accounts of an authorized RequestId, with transactions and holder details as asked.
    get_accounts_detail: [post] GetAccountsDetail, String,
    [("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"),],
    DetailResponse, detail, polling: false
}

accounts_endpoint! {
    /// `GET|POST /GetAccountsSummaryAsync/{requestId}`: poll a summary.
    get_accounts_summary_async: [method(get, post)] GetAccountsSummaryAsync, (String, String),
    [("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("requestId" = String, Path, description = "The RequestId"),],
    SummaryResponse, summary, polling: true
}

accounts_endpoint! {
    /// `GET|POST /GetAccountsDetailAsync/{requestId}`: poll a detail; the body may repeat the
    /// options of the first call.
    get_accounts_detail_async: [method(get, post)] GetAccountsDetailAsync, (String, String),
    [("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("requestId" = String, Path, description = "The RequestId"),],
    DetailResponse, detail, polling: true
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct StatementBody {
    unique_id: Uuid,
    file_type: &'static str,
    base64_bytes: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct AccountStatements {
    account_number: String,
    statements: Vec<StatementBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
struct StatementsResponse {
    http_status_code: u16,
    statements_by_account: Vec<AccountStatements>,
    login: LoginBody,
    institution: String,
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
}

/// `POST /GetStatements`: monthly PDF statements per account.
#[utoipa::path(
    post,
    path = Endpoint::GetStatements.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    request_body(content = Option<DataRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The accounts", body = StatementsResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn get_statements(call: DataCall<String>) -> Result<Response, ApiError> {
    statements(call, Endpoint::GetStatements, false).await
}

/// `GET|POST /GetStatementsAsync/{requestId}`: poll statements; the body may repeat the options
/// of the first call. Answers GetStatements' 200 once the sandbox's long operation is over.
#[utoipa::path(
    method(get, post),
    path = Endpoint::GetStatementsAsync.path(),
    tag = "Flinks API",
    params(("customerId" = String, Path, description = "The customer (a UUID)", example = "43387ca6-0391-4c82-857d-70d95f087ecb"), ("requestId" = String, Path, description = "The RequestId"), ("x-api-key" = Option<String>, Header, description = "The customer's x-api-key")),
    request_body(content = Option<DataRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The statements", body = StatementsResponse),
        (status = 202, description = "Still processing: poll again", body = PendingResponse),
        crate::error::ErrorResponses,
    ),
)]
pub async fn get_statements_async(call: DataCall<(String, String)>) -> Result<Response, ApiError> {
    statements(call, Endpoint::GetStatementsAsync, true).await
}

async fn statements<P: DataPath>(
    call: DataCall<P>,
    endpoint: Endpoint,
    polling: bool,
) -> Result<Response, ApiError> {
    use base64::Engine as _;

    let reading = call.open(endpoint).await?;
    let request = &call.request;
    let request_id = reading.session.request_id;
    // A card the Connect page connected carries the page's statement parameters; API cards
    // (/Authorize, /AuthorizeAsync) have none and read statements as they always have.
    let connect = call
        .state
        .store
        .connect_statements(reading.tenant.customer.id, reading.login.id)
        .await?;
    if connect.is_some_and(|c| !c.enabled) {
        return Err(ApiError::invalid_request(
            Reason::StatementsNotEnabled,
            format!(
                "LoginId {} was connected through the Connect page without \
                 detailsAndStatementEnable=true, so its statements were not collected; add \
                 detailsAndStatementEnable=true (and monthsOfStatements=MostRecent, Months3 or \
                 Months12) to the iframe URL and connect the account again.",
                reading.login.id
            ),
        )
        .with_request_id(request_id));
    }
    // Without NumberOfStatements, a Connect card gets the page's monthsOfStatements.
    let (default_count, from_page) = match connect {
        Some(page) => (page.months, true),
        None => (StatementCount::MostRecent, false),
    };
    let named = request.number_of_statements.as_deref().map(str::trim);
    let count: StatementCount = named
        .map_or(Ok(default_count), str::parse)
        .map_err(|problem| {
            ApiError::invalid_request(Reason::NumberOfStatementsInvalid, problem)
                .with_request_id(request_id)
        })?;
    let chosen = reading.filtered(request.accounts_filter.as_deref())?;
    // Flinks serves a year of statements for one account at a time.
    if count == StatementCount::Months12
        && request
            .accounts_filter
            .as_ref()
            .is_none_or(|f| f.len() != 1)
    {
        let hint = if named.is_none() && from_page {
            "NumberOfStatements Months12 (the Connect page's monthsOfStatements, used because the \
             request names none) needs exactly one account Id in AccountsFilter; name one, or \
             send NumberOfStatements MostRecent or Months3."
        } else {
            "NumberOfStatements Months12 needs exactly one account Id in AccountsFilter."
        };
        return Err(
            ApiError::invalid_request(Reason::Months12NeedsOneAccount, hint)
                .with_request_id(request_id),
        );
    }
    // The poll shares the 202 period of the other Async polls; GetStatements itself answers at
    // once, as it always has.
    if polling && let Some(code) = reading.still_processing(&call.state, true).await? {
        return Ok(pending_response(code, request_id, endpoint));
    }
    let statements_by_account = chosen
        .into_iter()
        .map(|account| AccountStatements {
            account_number: account.account_number.clone(),
            statements: statements::statements_for(
                &reading.login.institution,
                account,
                reading.as_of,
                count,
            )
            .into_iter()
            .map(|statement| StatementBody {
                unique_id: statement.unique_id,
                file_type: "PDF",
                base64_bytes: base64::engine::general_purpose::STANDARD.encode(&statement.pdf),
            })
            .collect(),
        })
        .collect();
    let response = Json(StatementsResponse {
        http_status_code: 200,
        statements_by_account,
        login: LoginBody::from(&reading.login),
        institution: reading.login.institution.clone(),
        request_id,
    })
    .into_response();
    Ok(body::mark_ignored(response, &call.ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_of_transactions_values() {
        let with = |days: &str| DataRequest {
            days_of_transactions: Some(days.to_owned()),
            ..DataRequest::default()
        };
        assert_eq!(
            DetailOptions::of(&DataRequest::default())
                .map(|o| o.days)
                .ok(),
            Some(90)
        );
        assert_eq!(
            DetailOptions::of(&with("days365")).map(|o| o.days).ok(),
            Some(365)
        );
        assert_eq!(
            DetailOptions::of(&with("Days360")).map(|o| o.days).ok(),
            Some(365)
        );
        assert!(DetailOptions::of(&with("Days7")).is_err());
    }
}
