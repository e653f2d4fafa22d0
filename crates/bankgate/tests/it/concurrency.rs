//! Single use under concurrency: of many requests presenting one token, exactly one wins.

use axum::http::StatusCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_authorizes_with_one_token_give_exactly_one_200() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let login = app.toolbox_login().await;
    let token = app.toolbox_token().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (app, token, barrier) = (app.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.authorize(TOOLBOX_CUSTOMER, &token, login).await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::OK {
            ok += 1;
        } else {
            reply.assert_error(401, "ACCESS_DENIED", "authorize_token_used");
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_token_requests_all_succeed_with_distinct_tokens() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.toolbox_token().await })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        tokens.insert(task.await.unwrap());
    }
    assert_eq!(tokens.len(), 64);
    if let Some(stats) = app.backend.batch_stats() {
        assert!(stats.jobs >= 64, "{stats:?}");
    }
}
