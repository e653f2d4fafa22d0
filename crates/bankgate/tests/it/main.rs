//! bankgate's integration tests: one binary. Most tests drive the Router in process; a few start
//! the real binary. Each test has its own database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod api_accounts;
mod api_authorize;
mod api_delete_card;
mod api_generate_token;
mod api_live;
mod api_statements;
mod authorize_async;
mod challenge_types;
mod cli;
mod client;
mod concurrency;
mod connect;
mod connect_browser;
mod connect_enhanced_mfa;
mod connect_statements;
mod connections;
mod doctor;
mod enhanced_mfa;
mod failures;
mod journal;
mod limits;
mod logs;
mod mistakes;
mod multinode;
mod nightly_refresh;
mod openapi;
mod operator;
mod outage;
mod pg;
mod pg_tls;
mod production_bank;
mod readme;
mod repository;
mod restart;
mod routing;
mod startup;
mod support;
mod tokens;
mod webhooks;
