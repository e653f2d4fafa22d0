//! The SDK (`bankgate-client`) against a real bankgate over a socket: the documented flow end to
//! end through typed steps, and refusals carrying FlinksCode, Reason and Hint.

use std::time::Duration;

use bankgate_client::{
    AccountsDetailRequest, ApiKey, Authorization, AuthorizeRequest, Error, LoginId, Poll,
    SecretKey, SecurityResponses, StatementsRequest,
};

use crate::support::*;

fn sandbox_answer(prompt: &str) -> &'static str {
    match prompt {
        "What city were you born in?" => "Montreal",
        "What is the best country on earth?" => "Canada",
        "What shape do people like most?" => "Triangle",
        other => panic!("a prompt the sandbox does not ask: {other}"),
    }
}

#[tokio::test]
async fn the_documented_flow_through_typed_steps() {
    let app = TestApp::new().await;
    let (client, _served) = app.client().await;
    let secret = SecretKey::new(TOOLBOX_SECRET);
    let api_key = ApiKey::new(TOOLBOX_API_KEY);

    let token = client.generate_authorize_token(&secret).await.unwrap();
    let step = client
        .authorize(
            token,
            AuthorizeRequest::live("FlinksCapital", "Greatday", "Everyday"),
        )
        .await
        .unwrap();
    let Authorization::Mfa(mfa) = step else {
        panic!("Greatday is asked a security question first: {step:?}");
    };
    assert_eq!(mfa.challenges.len(), 1);
    assert_eq!(mfa.challenges[0].kind, "QuestionAndAnswer");
    let request_id = mfa.request_id.clone();
    let answers: SecurityResponses = mfa
        .challenges
        .iter()
        .map(|c| (c.prompt.clone(), vec![sandbox_answer(&c.prompt).to_owned()]))
        .collect();
    let Authorization::Authorized(authorized) = client.answer_mfa(mfa, &answers).await.unwrap()
    else {
        panic!("the right answer authorizes");
    };
    assert_eq!(
        authorized.request_id, request_id,
        "the RequestId stays the same from 203 to 200"
    );
    assert_eq!(authorized.login.username, "Greatday");
    assert_eq!(authorized.institution, "FlinksCapital");
    let login_id = authorized.login.id.clone();

    let Poll::Ready(summary) = client
        .get_accounts_summary(&api_key, &authorized.request_id)
        .await
        .unwrap()
    else {
        panic!("Greatday's data is ready at once");
    };
    assert!(!summary.accounts.is_empty());
    assert_eq!(summary.login.id, login_id);
    assert!(summary.accounts.iter().all(|a| a.transactions.is_empty()));

    let detail = client
        .wait_for_accounts_detail(
            &api_key,
            &AccountsDetailRequest::new(authorized.request_id.clone()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(detail.accounts.len(), summary.accounts.len());
    assert!(detail.accounts.iter().any(|a| !a.transactions.is_empty()));

    let Poll::Ready(statements) = client
        .get_statements(
            &api_key,
            &StatementsRequest::new(authorized.request_id.clone()),
        )
        .await
        .unwrap()
    else {
        panic!("statements are ready at once");
    };
    assert!(!statements.statements_by_account.is_empty());
    assert_eq!(
        statements.statements_by_account[0].statements[0].file_type,
        "PDF"
    );

    // Cached mode with a new token reopens the saved LoginId.
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let cached = client
        .authorize(token, AuthorizeRequest::cached(login_id.as_str()))
        .await
        .unwrap();
    assert!(
        matches!(cached, Authorization::Authorized(ref a) if a.login.id == login_id),
        "{cached:?}"
    );

    let message = client.delete_card(&api_key, &login_id).await.unwrap();
    assert_eq!(
        message,
        format!("All of the information about LoginId {login_id} has been removed")
    );
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let error = client
        .authorize(token, AuthorizeRequest::cached(login_id.as_str()))
        .await
        .unwrap_err();
    let refusal = error.flinks().expect("a Flinks refusal");
    assert_eq!(refusal.status, 401);
    assert_eq!(refusal.flinks_code.as_deref(), Some("INVALID_LOGIN"));
    assert_eq!(refusal.reason.as_deref(), Some("login_not_found"));
}

#[tokio::test]
async fn refusals_carry_flinks_code_reason_and_hint() {
    let app = TestApp::new().await;
    let (client, _served) = app.client().await;

    let error = client
        .generate_authorize_token(&SecretKey::new("8c3b1a7e-6b0e-4a53-9d0a-2f1f3c0b9e11"))
        .await
        .unwrap_err();
    let refusal = error.flinks().expect("a Flinks refusal");
    assert_eq!(refusal.status, 401);
    assert_eq!(refusal.flinks_code.as_deref(), Some("UNAUTHORIZED"));
    assert_eq!(refusal.reason.as_deref(), Some("auth_key_invalid"));
    assert!(refusal.hint.as_deref().is_some_and(|h| !h.is_empty()));
    // The error's text names all of it, without the key.
    let text = error.to_string();
    assert!(
        text.contains("HTTP 401 UNAUTHORIZED") && text.contains("auth_key_invalid"),
        "{text}"
    );
    assert!(!text.contains("8c3b1a7e"), "{text}");

    // A RequestId that was never issued.
    let error = client
        .get_accounts_summary(
            &ApiKey::new(TOOLBOX_API_KEY),
            &bankgate_client::RequestId::new("0d9ec3fb-3f8c-4d3b-8e0e-1f5b6c7d8e9f"),
        )
        .await
        .unwrap_err();
    let refusal = error.flinks().expect("a Flinks refusal");
    assert_eq!(refusal.status, 400);
    assert_eq!(refusal.flinks_code.as_deref(), Some("SESSION_NONEXISTENT"));
    assert_eq!(refusal.reason.as_deref(), Some("request_id_unknown"));
    assert_eq!(
        refusal.message.as_deref(),
        Some("RequestId 0d9ec3fb-3f8c-4d3b-8e0e-1f5b6c7d8e9f is invalid or session has ended")
    );

    // Nothing listening: a transport error, not a refusal.
    drop(_served);
    let unreachable = bankgate_client::Client::new(
        "http://127.0.0.1:9",
        &bankgate_client::CustomerId::new(TOOLBOX_CUSTOMER),
    )
    .unwrap();
    let error = unreachable
        .generate_authorize_token(&SecretKey::new(TOOLBOX_SECRET))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn a_pending_detail_is_polled_until_ready() {
    let app = TestApp::new().await;
    let (client, _served) = app.client().await;
    let token = client
        .generate_authorize_token(&SecretKey::new(TOOLBOX_SECRET))
        .await
        .unwrap();
    let Authorization::Authorized(authorized) = client
        .authorize(
            token,
            AuthorizeRequest::live("FlinksCapital", "test_pending", "Everyday"),
        )
        .await
        .unwrap()
    else {
        panic!("test_pending connects without MFA");
    };
    let api_key = ApiKey::new(TOOLBOX_API_KEY);
    let request = AccountsDetailRequest::new(authorized.request_id.clone());
    let Poll::Pending(pending) = client
        .get_accounts_detail(&api_key, &request)
        .await
        .unwrap()
    else {
        panic!("test_pending's first data call is a 202");
    };
    assert_eq!(pending.flinks_code.as_deref(), Some("OPERATION_PENDING"));
    assert_eq!(pending.request_id.as_ref(), Some(&authorized.request_id));
    let retry_after = pending.retry_after.expect("the 202 says when to come back");

    // Polling before the data is ready keeps answering 202; the wait gives up at its limit.
    let error = client
        .wait_for_accounts_detail(&api_key, &request, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::StillPending { .. }), "{error:?}");

    app.advance(retry_after);
    let ready = client
        .get_accounts_detail_async(&api_key, &authorized.request_id)
        .await
        .unwrap();
    assert!(
        matches!(ready, Poll::Ready(ref detail) if !detail.accounts.is_empty()),
        "{ready:?}"
    );
    let _: LoginId = match ready {
        Poll::Ready(detail) => detail.login.id,
        Poll::Pending(_) => unreachable!(),
    };
}

/// The SDK reads `Iterables` and follows a second 203 on the same RequestId (TextOrCall's code).
#[tokio::test]
async fn challenge_types_through_the_sdk() {
    let app = TestApp::new().await;
    let (client, _served) = app.client().await;
    let secret = SecretKey::new(TOOLBOX_SECRET);

    let token = client.generate_authorize_token(&secret).await.unwrap();
    let step = client
        .authorize(
            token,
            AuthorizeRequest::live("FlinksCapital", "test_mfa_text_or_call", "Everyday"),
        )
        .await
        .unwrap();
    let Authorization::Mfa(choice) = step else {
        panic!("a choice first: {step:?}");
    };
    assert_eq!(choice.challenges[0].kind, "TextOrCall");
    let offered = choice.challenges[0].iterables.clone().unwrap();
    assert_eq!(offered, ["Text", "Call"]);
    let answers: SecurityResponses = [(
        choice.challenges[0].prompt.clone(),
        vec![offered[0].clone()],
    )]
    .into();
    let Authorization::Mfa(code) = client.answer_mfa(choice, &answers).await.unwrap() else {
        panic!("then the code");
    };
    assert_eq!(code.challenges[0].kind, "QuestionAndAnswer");
    assert_eq!(code.challenges[0].iterables, None);
    let answers: SecurityResponses =
        [(code.challenges[0].prompt.clone(), vec!["123456".to_owned()])].into();
    let Authorization::Authorized(authorized) = client.answer_mfa(code, &answers).await.unwrap()
    else {
        panic!("the right code authorizes");
    };
    assert_eq!(authorized.login.username, "test_mfa_text_or_call");

    // An image that is not offered: the refusal names it.
    let token = client.generate_authorize_token(&secret).await.unwrap();
    let Authorization::Mfa(image) = client
        .authorize(
            token,
            AuthorizeRequest::live("FlinksCapital", "test_mfa_image", "Everyday"),
        )
        .await
        .unwrap()
    else {
        panic!("an image challenge");
    };
    assert_eq!(image.challenges[0].iterables.as_ref().unwrap().len(), 4);
    let answers: SecurityResponses = [(
        image.challenges[0].prompt.clone(),
        vec!["bm90IGFuIGltYWdl".to_owned()],
    )]
    .into();
    let Err(Error::Flinks(refusal)) = client.answer_mfa(image, &answers).await else {
        panic!("refused");
    };
    assert_eq!(
        refusal.flinks_code.as_deref(),
        Some("INVALID_SECURITY_RESPONSE")
    );
    assert_eq!(
        refusal.reason.as_deref(),
        Some("security_response_not_offered")
    );
    assert!(
        refusal
            .hint
            .as_deref()
            .unwrap()
            .contains("bm90IGFuIGltYWdl")
    );
}
