//! PostgreSQL for the tests: the server named by `BANKGATE_TEST_POSTGRES_URL`, and a fresh schema
//! per test in it (the store crate's test helpers, shared with its conformance suite).

use std::io::Write;

pub use bankgate_store::testing::{URL_VAR, connect, fresh_database, server_url};

/// Shows in the output of `cargo test` (not captured) whether the PostgreSQL tests ran.
#[test]
fn postgres_tests_skipped_without_url() {
    let line = match server_url() {
        Some(_) => format!("\nnote: {URL_VAR} is set: the PostgreSQL tests ran\n"),
        None => format!(
            "\nnote: PostgreSQL tests skipped: {URL_VAR} not set (see the README's test section)\n"
        ),
    };
    // Written to the process's stderr directly: libtest captures only print!/eprint!.
    let _ = std::io::stderr().write_all(line.as_bytes());
}
