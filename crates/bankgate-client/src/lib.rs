//! A typed client for the Flinks authorization API, usable against Flinks itself or bankgate.
//!
//! The flow's credentials and ids are distinct types ([`SecretKey`], [`AuthorizeToken`],
//! [`ApiKey`], [`LoginId`], [`RequestId`]), so the classic mix-ups do not compile: the secret
//! key cannot go to /Authorize, a LoginId cannot go to a data endpoint, and
//! [`Client::authorize`] takes the single-use token by value. The MFA exchange and the 202
//! polling are typed steps ([`Authorization`], [`Poll`]). A refusal is an [`Error::Flinks`]
//! carrying the status, `FlinksCode`, `Message` and, from bankgate, `Reason` and `Hint`.
//!
//! ```no_run
//! # async fn flow() -> Result<(), bankgate_client::Error> {
//! use bankgate_client::*;
//! let client = Client::new("http://localhost:8080", &CustomerId::new("43387ca6-0391-4c82-857d-70d95f087ecb"))?;
//! let secret = SecretKey::new("c4569c54-e167-4d34-8de6-f4113bc82414");
//! let token = client.generate_authorize_token(&secret).await?;
//! let mut step = client
//!     .authorize(token, AuthorizeRequest::live("FlinksCapital", "Greatday", "Everyday"))
//!     .await?;
//! let authorized = loop {
//!     match step {
//!         Authorization::Authorized(authorized) => break authorized,
//!         Authorization::Mfa(mfa) => {
//!             let answers = mfa.challenges.iter()
//!                 .map(|challenge| (challenge.prompt.clone(), vec!["Montreal".to_owned()]))
//!                 .collect();
//!             step = client.answer_mfa(mfa, &answers).await?;
//!         }
//!         Authorization::Pending(_) => unreachable!("a live connection answers 200 or 203"),
//!     }
//! };
//! let api_key = ApiKey::new("3d5266a8-b697-48d4-8de6-52e2e2662acc");
//! let request = AccountsDetailRequest::new(authorized.request_id);
//! let detail = client.wait_for_accounts_detail(&api_key, &request, std::time::Duration::from_secs(1800)).await?;
//! println!("{} accounts for LoginId {}", detail.accounts.len(), detail.login.id);
//! # Ok(()) }
//! ```

mod credentials;
mod error;
mod wire;

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use credentials::{ApiKey, AuthorizeToken, CustomerId, LoginId, RequestId, SecretKey};
pub use error::{Error, FlinksError, with_causes};
pub use wire::Account;
pub use wire::{
    AccountStatements, Accounts, AccountsDetailRequest, Address, AsyncAuthorization, Authorization,
    AuthorizeRequest, Authorized, Balance, Holder, IneligibleCard, Login, MfaStep,
    NightlyRefreshStatus, Pending, Poll, SecurityChallenge, SecurityResponses, Statement,
    Statements, StatementsRequest, Transaction,
};

use wire::{
    ChallengeBody, EnvelopeBody, MfaAnswer, MfaAnswersBody, MfaQuestionsBody, QuestionAnswerBody,
    ScheduledRefreshBody, TokenBody,
};

/// The header that carries the secret key and the authorize token.
const AUTH_KEY_HEADER: &str = "flinks-auth-key";
/// The header that carries the x-api-key.
const API_KEY_HEADER: &str = "x-api-key";
/// How often Flinks asks integrations to poll a 202 when the server does not say.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// A client of one customer on one instance.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `{root}/v3/{customerId}/BankingServices`, built here so no caller joins paths by hand.
    base: Url,
}

/// One answer, read whole.
struct Answer {
    endpoint: &'static str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
}

impl Client {
    /// `api_root` is the instance's API host with its scheme and nothing after it
    /// (`https://toolbox-api.private.fin.ag`, `http://localhost:8080`); the client adds
    /// `/v3/{customerId}/BankingServices/{endpoint}` itself.
    pub fn new(api_root: &str, customer_id: &CustomerId) -> Result<Self, Error> {
        install_tls_provider();
        let http = reqwest::Client::builder().build()?;
        Self::with_http_client(http, api_root, customer_id)
    }

    /// As [`Client::new`], with an HTTP client of your own (timeouts, proxies).
    pub fn with_http_client(
        http: reqwest::Client,
        api_root: &str,
        customer_id: &CustomerId,
    ) -> Result<Self, Error> {
        let refuse = |problem| Error::BaseUrl {
            url: api_root.to_owned(),
            problem,
        };
        let root = api_root.trim().trim_end_matches('/');
        let (scheme, rest) = root
            .split_once("://")
            .ok_or_else(|| refuse("has no scheme: write http:// or https:// before the host"))?;
        if scheme != "http" && scheme != "https" {
            return Err(refuse("is not http:// or https://"));
        }
        if rest.contains('/') {
            return Err(refuse(
                "has a path: give only the scheme and host, the client adds /v3/{customerId}/BankingServices",
            ));
        }
        let customer = customer_id.as_str().trim();
        if customer.is_empty() || customer.contains('/') {
            return Err(Error::BaseUrl {
                url: api_root.to_owned(),
                problem: "is fine, but the customerId is empty or has a slash",
            });
        }
        let base = Url::parse(&format!("{root}/v3/{customer}/BankingServices"))
            .map_err(|_| refuse("is not a URL"))?;
        Ok(Self { http, base })
    }

    /// `POST /GenerateAuthorizeToken` with the secret key: a single-use token, valid 30 minutes.
    pub async fn generate_authorize_token(
        &self,
        secret_key: &SecretKey,
    ) -> Result<AuthorizeToken, Error> {
        let answer = self
            .call::<()>(
                Method::POST,
                "GenerateAuthorizeToken",
                &[],
                Some((AUTH_KEY_HEADER, secret_key.expose())),
                None,
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(answer.refusal());
        }
        let body: TokenBody = answer.json()?;
        Ok(AuthorizeToken::new(body.token))
    }

    /// `POST /Authorize`, spending the token: cached mode, a live refresh or a live connection.
    pub async fn authorize(
        &self,
        token: AuthorizeToken,
        request: AuthorizeRequest,
    ) -> Result<Authorization, Error> {
        let answer = self
            .call(
                Method::POST,
                "Authorize",
                &[],
                Some((AUTH_KEY_HEADER, token.expose())),
                Some(&request),
            )
            .await?;
        answer.authorization(token)
    }

    /// `POST /Authorize` with the RequestId of a 203 and the answers keyed by exact prompt. The
    /// step's token goes again in `flinks-auth-key`, as Flinks documents.
    pub async fn answer_mfa(
        &self,
        step: MfaStep,
        answers: &SecurityResponses,
    ) -> Result<Authorization, Error> {
        let body = MfaAnswer {
            request_id: &step.request_id,
            security_responses: answers,
        };
        let credential = step
            .token
            .as_ref()
            .map(|token| (AUTH_KEY_HEADER, token.expose()));
        let answer = self
            .call(Method::POST, "Authorize", &[], credential, Some(&body))
            .await?;
        match step.token {
            Some(token) => answer.authorization(token),
            None => answer.authorization_without_token(),
        }
    }

    /// `POST /AuthorizeAsync`, spending the token: starts what [`Client::authorize`] does
    /// (credentials, or a LoginId refreshed live), answered through polls.
    pub async fn authorize_async(
        &self,
        token: AuthorizeToken,
        request: AuthorizeRequest,
    ) -> Result<AsyncAuthorization, Error> {
        let answer = self
            .call(
                Method::POST,
                "AuthorizeAsync",
                &[],
                Some((AUTH_KEY_HEADER, token.expose())),
                Some(&request),
            )
            .await?;
        answer.async_started()
    }

    /// `POST /AuthorizeAsync` with the RequestId alone: the step's answer once it is ready
    /// (200, or a 203 to answer with [`Client::answer_mfa_async`]), a 202 before. A poll sends
    /// no token, so the 203's step carries none.
    pub async fn poll_authorize_async(
        &self,
        request_id: &RequestId,
    ) -> Result<Authorization, Error> {
        let body = serde_json::json!({ "RequestId": request_id });
        let answer = self
            .call(Method::POST, "AuthorizeAsync", &[], None, Some(&body))
            .await?;
        answer.authorization_without_token()
    }

    /// `POST /AuthorizeAsync` with the RequestId of a 203 and the answers keyed by exact prompt:
    /// a 202; the outcome is what the next ready poll answers.
    pub async fn answer_mfa_async(
        &self,
        step: MfaStep,
        answers: &SecurityResponses,
    ) -> Result<AsyncAuthorization, Error> {
        let body = MfaAnswer {
            request_id: &step.request_id,
            security_responses: answers,
        };
        let credential = step
            .token
            .as_ref()
            .map(|token| (AUTH_KEY_HEADER, token.expose()));
        let answer = self
            .call(Method::POST, "AuthorizeAsync", &[], credential, Some(&body))
            .await?;
        answer.async_started()
    }

    /// Polls an /AuthorizeAsync step until it is ready (waiting as the server's `Retry-After`
    /// says, else 10 s) or `max_wait` has passed.
    pub async fn wait_for_authorize_async(
        &self,
        request_id: &RequestId,
        max_wait: Duration,
    ) -> Result<Authorization, Error> {
        let started = tokio::time::Instant::now();
        loop {
            let pending = match self.poll_authorize_async(request_id).await? {
                Authorization::Pending(pending) => pending,
                ready => return Ok(ready),
            };
            let waited = started.elapsed();
            if waited >= max_wait {
                return Err(Error::StillPending {
                    endpoint: "AuthorizeAsync",
                    waited,
                });
            }
            let pause = pending
                .retry_after
                .unwrap_or(DEFAULT_POLL_INTERVAL)
                .min(max_wait - waited);
            tokio::time::sleep(pause).await;
        }
    }

    /// `POST /GetAccountsSummary`.
    pub async fn get_accounts_summary(
        &self,
        api_key: &ApiKey,
        request_id: &RequestId,
    ) -> Result<Poll<Accounts>, Error> {
        let body = serde_json::json!({ "RequestId": request_id });
        self.poll_call(
            Method::POST,
            "GetAccountsSummary",
            &[],
            api_key,
            Some(&body),
        )
        .await
    }

    /// `GET /GetAccountsSummaryAsync/{requestId}`: poll after a 202.
    pub async fn get_accounts_summary_async(
        &self,
        api_key: &ApiKey,
        request_id: &RequestId,
    ) -> Result<Poll<Accounts>, Error> {
        self.poll_call::<(), _>(
            Method::GET,
            "GetAccountsSummaryAsync",
            &[request_id.as_str()],
            api_key,
            None,
        )
        .await
    }

    /// `POST /GetAccountsDetail`.
    pub async fn get_accounts_detail(
        &self,
        api_key: &ApiKey,
        request: &AccountsDetailRequest,
    ) -> Result<Poll<Accounts>, Error> {
        self.poll_call(
            Method::POST,
            "GetAccountsDetail",
            &[],
            api_key,
            Some(request),
        )
        .await
    }

    /// `GET /GetAccountsDetailAsync/{requestId}`: poll after a 202.
    pub async fn get_accounts_detail_async(
        &self,
        api_key: &ApiKey,
        request_id: &RequestId,
    ) -> Result<Poll<Accounts>, Error> {
        self.poll_call::<(), _>(
            Method::GET,
            "GetAccountsDetailAsync",
            &[request_id.as_str()],
            api_key,
            None,
        )
        .await
    }

    /// GetAccountsDetail, then its `…Async` poll after each 202 (waiting as the server's
    /// `Retry-After` says, else 10 s) until the data is ready or `max_wait` has passed (Flinks
    /// documents 30 minutes).
    pub async fn wait_for_accounts_detail(
        &self,
        api_key: &ApiKey,
        request: &AccountsDetailRequest,
        max_wait: Duration,
    ) -> Result<Accounts, Error> {
        let started = tokio::time::Instant::now();
        let mut answer = self.get_accounts_detail(api_key, request).await?;
        loop {
            let pending = match answer {
                Poll::Ready(accounts) => return Ok(accounts),
                Poll::Pending(pending) => pending,
            };
            let waited = started.elapsed();
            if waited >= max_wait {
                return Err(Error::StillPending {
                    endpoint: "GetAccountsDetail",
                    waited,
                });
            }
            let pause = pending
                .retry_after
                .unwrap_or(DEFAULT_POLL_INTERVAL)
                .min(max_wait - waited);
            tokio::time::sleep(pause).await;
            answer = self
                .get_accounts_detail_async(api_key, &request.request_id)
                .await?;
        }
    }

    /// `POST /GetStatements`: PDF statements per account.
    pub async fn get_statements(
        &self,
        api_key: &ApiKey,
        request: &StatementsRequest,
    ) -> Result<Poll<Statements>, Error> {
        self.poll_call(Method::POST, "GetStatements", &[], api_key, Some(request))
            .await
    }

    /// `GET /GetStatementsAsync/{requestId}`: poll statements after a 202.
    pub async fn get_statements_async(
        &self,
        api_key: &ApiKey,
        request_id: &RequestId,
    ) -> Result<Poll<Statements>, Error> {
        self.poll_call::<(), _>(
            Method::GET,
            "GetStatementsAsync",
            &[request_id.as_str()],
            api_key,
            None,
        )
        .await
    }

    /// `DELETE /DeleteCard/{loginId}`: forget a LoginId. Answers the server's `Message`.
    pub async fn delete_card(&self, api_key: &ApiKey, login_id: &LoginId) -> Result<String, Error> {
        let answer = self
            .call::<()>(
                Method::DELETE,
                "DeleteCard",
                &[login_id.as_str()],
                Some((API_KEY_HEADER, api_key.expose())),
                None,
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(answer.refusal());
        }
        Ok(answer.envelope().message.unwrap_or_default())
    }

    /// `PATCH /SetScheduledRefresh`: switch a saved card's nightly refresh on or off. Answers
    /// the confirmation sentence (a bare JSON string).
    pub async fn set_scheduled_refresh(
        &self,
        api_key: &ApiKey,
        login_id: &LoginId,
        activated: bool,
    ) -> Result<String, Error> {
        let body = ScheduledRefreshBody {
            login_id,
            is_activated: activated,
        };
        self.api_key_call(
            Method::PATCH,
            "SetScheduledRefresh",
            &[],
            api_key,
            Some(&body),
        )
        .await
    }

    /// `GET /GetNightlyRefreshStatus` (the x-api-key as `Authorization: Bearer`): the flagged
    /// cards the nightly refresh stopped refreshing.
    pub async fn get_nightly_refresh_status(
        &self,
        api_key: &ApiKey,
    ) -> Result<NightlyRefreshStatus, Error> {
        let bearer = format!("Bearer {}", api_key.expose());
        let answer = self
            .call::<()>(
                Method::GET,
                "GetNightlyRefreshStatus",
                &[],
                Some(("authorization", &bearer)),
                None,
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(answer.refusal());
        }
        answer.json()
    }

    /// `GET /GetMFAQuestions/{loginId}`: the card's security questions without a stored answer
    /// (Enhanced MFA).
    pub async fn get_mfa_questions(
        &self,
        api_key: &ApiKey,
        login_id: &LoginId,
    ) -> Result<Vec<String>, Error> {
        let body: MfaQuestionsBody = self
            .api_key_call::<(), _>(
                Method::GET,
                "GetMFAQuestions",
                &[login_id.as_str()],
                api_key,
                None,
            )
            .await?;
        Ok(body.questions.into_iter().map(|q| q.question).collect())
    }

    /// `PATCH /AnswerMFAQuestions`: store answers (`(question, answer)`) to a card's security
    /// questions. Answers the server's `Message`.
    pub async fn answer_mfa_questions(
        &self,
        api_key: &ApiKey,
        login_id: &LoginId,
        answers: &[(String, String)],
    ) -> Result<String, Error> {
        let body = MfaAnswersBody {
            login_id,
            questions: answers
                .iter()
                .map(|(question, answer)| QuestionAnswerBody { question, answer })
                .collect(),
        };
        let envelope: EnvelopeBody = self
            .api_key_call(
                Method::PATCH,
                "AnswerMFAQuestions",
                &[],
                api_key,
                Some(&body),
            )
            .await?;
        Ok(envelope.message.unwrap_or_default())
    }

    /// A call with the x-api-key whose 200 is `T`.
    async fn api_key_call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        ids: &[&str],
        api_key: &ApiKey,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let answer = self
            .call(
                method,
                endpoint,
                ids,
                Some((API_KEY_HEADER, api_key.expose())),
                body,
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(answer.refusal());
        }
        answer.json()
    }

    async fn poll_call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        ids: &[&str],
        api_key: &ApiKey,
        body: Option<&B>,
    ) -> Result<Poll<T>, Error> {
        let answer = self
            .call(
                method,
                endpoint,
                ids,
                Some((API_KEY_HEADER, api_key.expose())),
                body,
            )
            .await?;
        match answer.status {
            StatusCode::OK => Ok(Poll::Ready(answer.json()?)),
            StatusCode::ACCEPTED => Ok(Poll::Pending(answer.pending())),
            _ => Err(answer.refusal()),
        }
    }

    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        endpoint: &'static str,
        ids: &[&str],
        credential: Option<(&'static str, &str)>,
        body: Option<&B>,
    ) -> Result<Answer, Error> {
        let mut url = self.base.clone();
        // Segments are percent-encoded by the URL, so an id can never add a path segment.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(endpoint);
            segments.extend(ids);
        }
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((name, value)) = credential {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await?;
        Ok(Answer {
            endpoint,
            status,
            retry_after,
            body,
        })
    }
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.body).map_err(|error| Error::UnexpectedAnswer {
            endpoint: self.endpoint,
            status: self.status.as_u16(),
            detail: format!("{error}; body: {}", excerpt(&self.body)),
        })
    }

    fn envelope(&self) -> EnvelopeBody {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    fn refusal(&self) -> Error {
        let envelope = self.envelope();
        Error::Flinks(Box::new(FlinksError {
            status: self.status.as_u16(),
            flinks_code: envelope.flinks_code,
            message: envelope
                .message
                .or_else(|| (!self.body.trim().is_empty()).then(|| excerpt(&self.body))),
            request_id: envelope.request_id,
            reason: envelope.reason,
            hint: envelope.hint,
        }))
    }

    fn pending(&self) -> Pending {
        let envelope = self.envelope();
        Pending {
            request_id: envelope.request_id,
            flinks_code: envelope.flinks_code,
            message: envelope.message,
            retry_after: self.retry_after,
        }
    }

    /// The 202 that starts an /AuthorizeAsync step.
    fn async_started(&self) -> Result<AsyncAuthorization, Error> {
        if self.status != StatusCode::ACCEPTED {
            return Err(match self.status {
                StatusCode::OK | StatusCode::NON_AUTHORITATIVE_INFORMATION => {
                    Error::UnexpectedAnswer {
                        endpoint: self.endpoint,
                        status: self.status.as_u16(),
                        detail: "an /AuthorizeAsync step answers 202; poll for its outcome"
                            .to_owned(),
                    }
                }
                _ => self.refusal(),
            });
        }
        let request_id = self
            .envelope()
            .request_id
            .ok_or_else(|| Error::UnexpectedAnswer {
                endpoint: self.endpoint,
                status: self.status.as_u16(),
                detail: format!("a 202 without a RequestId: {}", excerpt(&self.body)),
            })?;
        Ok(AsyncAuthorization {
            request_id,
            retry_after: self.retry_after,
        })
    }

    fn authorization(&self, token: AuthorizeToken) -> Result<Authorization, Error> {
        self.authorization_with(Some(token))
    }

    fn authorization_without_token(&self) -> Result<Authorization, Error> {
        self.authorization_with(None)
    }

    fn authorization_with(&self, token: Option<AuthorizeToken>) -> Result<Authorization, Error> {
        match self.status {
            StatusCode::OK => Ok(Authorization::Authorized(self.json()?)),
            StatusCode::NON_AUTHORITATIVE_INFORMATION => {
                let body: ChallengeBody = self.json()?;
                Ok(Authorization::Mfa(MfaStep {
                    request_id: body.request_id,
                    institution: body.institution,
                    challenges: body.security_challenges,
                    token,
                }))
            }
            StatusCode::ACCEPTED => Ok(Authorization::Pending(self.pending())),
            _ => Err(self.refusal()),
        }
    }
}

/// reqwest's rustls needs a process-wide crypto provider; ring, unless the program chose one.
pub fn install_tls_provider() {
    #[cfg(feature = "tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The start of a body for an error message: enough to recognise an HTML error page.
fn excerpt(body: &str) -> String {
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> CustomerId {
        CustomerId::new("43387ca6-0391-4c82-857d-70d95f087ecb")
    }

    #[test]
    fn base_url_is_built_once_without_double_slashes() {
        let client = Client::new("https://toolbox-api.private.fin.ag/", &customer()).unwrap();
        assert_eq!(
            client.base.as_str(),
            "https://toolbox-api.private.fin.ag/v3/43387ca6-0391-4c82-857d-70d95f087ecb/BankingServices"
        );
    }

    /// An https root reaches a TLS handshake (here refused by a plain-HTTP listener), not a
    /// "scheme not supported" error.
    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn https_is_spoken() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await
                .ok();
        });
        let client = Client::new(&format!("https://127.0.0.1:{port}"), &customer()).unwrap();
        let error = client
            .generate_authorize_token(&SecretKey::new("k"))
            .await
            .unwrap_err();
        let Error::Transport(error) = error else {
            panic!("a transport error: {error:?}");
        };
        assert!(error.is_connect(), "{error:?}");
        // rustls read the plain-HTTP answer as a TLS record and refused it.
        let chain = format!("{error:?}");
        assert!(chain.contains("InvalidMessage"), "{chain}");
        server.await.unwrap();
    }

    #[test]
    fn a_base_url_with_a_path_is_refused_with_the_fix() {
        let error = Client::new(
            "https://toolbox-api.private.fin.ag/v3/43387ca6-0391-4c82-857d-70d95f087ecb",
            &customer(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("give only the scheme and host"),
            "{error}"
        );
        let error = Client::new("toolbox-api.private.fin.ag", &customer()).unwrap_err();
        assert!(error.to_string().contains("has no scheme"), "{error}");
        let error = Client::new("http://localhost:8080", &CustomerId::new(" ")).unwrap_err();
        assert!(error.to_string().contains("customerId is empty"), "{error}");
    }
}
