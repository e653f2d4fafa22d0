//! `bankgate doctor` against a running bankgate: every check passes with good settings, and
//! each broken setting fails its own named check (exit code 1).

use std::process::Command;

use serde_json::Value;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_bankgate");

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the real binary off the test's runtime, which keeps serving meanwhile.
async fn doctor(args: Vec<String>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .current_dir(dir.path())
            .env_remove("BANKGATE_DOCTOR_SECRET_KEY")
            .env_remove("BANKGATE_DOCTOR_API_KEY")
            .arg("doctor")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

struct Settings {
    base_url: String,
    customer_id: String,
    secret_key: String,
    api_key: Option<String>,
    login_id: Option<String>,
}

impl Settings {
    fn args(&self, json: bool) -> Vec<String> {
        let mut args = vec![
            "--base-url".to_owned(),
            self.base_url.clone(),
            "--customer-id".to_owned(),
            self.customer_id.clone(),
            "--secret-key".to_owned(),
            self.secret_key.clone(),
        ];
        if let Some(key) = &self.api_key {
            args.extend(["--api-key".to_owned(), key.clone()]);
        }
        if let Some(login) = &self.login_id {
            args.extend(["--login-id".to_owned(), login.clone()]);
        }
        if json {
            args.push("--json".to_owned());
        }
        args
    }
}

fn outcomes_of(run: &Run) -> Vec<(String, String)> {
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor --json prints JSON ({e}): {}", run.stdout));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn outcome_of<'a>(outcomes: &'a [(String, String)], check: &str) -> &'a str {
    outcomes
        .iter()
        .find(|(name, _)| name == check)
        .map(|(_, outcome)| outcome.as_str())
        .unwrap_or_else(|| panic!("no check {check} in {outcomes:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_settings_pass_every_check() {
    let app = TestApp::new().await;
    let (_client, served) = app.client().await;
    let login = app.toolbox_login().await;
    let good = Settings {
        base_url: format!("{}/v3/{TOOLBOX_CUSTOMER}/BankingServices", served.root),
        customer_id: TOOLBOX_CUSTOMER.to_owned(),
        secret_key: TOOLBOX_SECRET.to_owned(),
        api_key: Some(TOOLBOX_API_KEY.to_owned()),
        login_id: Some(login.to_string()),
    };

    let run = doctor(good.args(false)).await;
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    for check in [
        "base_url",
        "server_reachable",
        "secret_key",
        "wrong_headers_refused",
        "token_accepted",
        "login_id",
        "token_single_use",
        "api_key",
    ] {
        assert!(
            run.stdout.contains(&format!("✓ {check}: ")),
            "{check}:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.ends_with("all checks passed\n"),
        "{}",
        run.stdout
    );
    // Credentials are named by their last four characters at most.
    assert!(!run.stdout.contains(TOOLBOX_SECRET) && !run.stdout.contains(TOOLBOX_API_KEY));

    let run = doctor(good.args(true)).await;
    assert!(run.success);
    let outcomes = outcomes_of(&run);
    assert_eq!(outcomes.len(), 8);
    assert!(outcomes.iter().all(|(_, o)| o == "pass"), "{outcomes:?}");

    // Without the optional settings those checks are skipped, not failed; the API key check
    // still runs with a made-up RequestId when only the LoginId is missing.
    let minimal = Settings {
        api_key: None,
        login_id: None,
        ..good
    };
    let run = doctor(minimal.args(true)).await;
    assert!(run.success, "{}", run.stdout);
    let outcomes = outcomes_of(&run);
    assert_eq!(outcome_of(&outcomes, "login_id"), "skip");
    assert_eq!(outcome_of(&outcomes, "api_key"), "skip");
    assert_eq!(outcome_of(&outcomes, "token_single_use"), "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_setting_fails_its_own_check() {
    let app = TestApp::new().await;
    let (_client, served) = app.client().await;
    let login = app.toolbox_login().await;
    let good = || Settings {
        base_url: served.root.clone(),
        customer_id: TOOLBOX_CUSTOMER.to_owned(),
        secret_key: TOOLBOX_SECRET.to_owned(),
        api_key: Some(TOOLBOX_API_KEY.to_owned()),
        login_id: Some(login.to_string()),
    };
    let unknown = "5b2c6a8e-1d4f-4c3a-9e7b-0a1b2c3d4e5f".to_owned();
    let cases: Vec<(&str, Settings)> = vec![
        (
            "base_url",
            Settings {
                base_url: format!("{}//v3/{TOOLBOX_CUSTOMER}/BankingServices", served.root),
                ..good()
            },
        ),
        (
            "base_url",
            Settings {
                base_url: format!("{}/v3/{TOOLBOX_CUSTOMER}/BankingServices/", served.root),
                ..good()
            },
        ),
        (
            "server_reachable",
            Settings {
                base_url: "http://127.0.0.1:9".to_owned(),
                ..good()
            },
        ),
        (
            "secret_key",
            Settings {
                secret_key: unknown.clone(),
                ..good()
            },
        ),
        (
            "secret_key",
            Settings {
                customer_id: unknown.clone(),
                ..good()
            },
        ),
        (
            "api_key",
            Settings {
                api_key: Some(unknown.clone()),
                ..good()
            },
        ),
        (
            "api_key",
            Settings {
                api_key: Some(TOOLBOX_SECRET.to_owned()),
                ..good()
            },
        ),
        (
            "login_id",
            Settings {
                login_id: Some(unknown.clone()),
                ..good()
            },
        ),
    ];
    for (check, settings) in cases {
        let run = doctor(settings.args(false)).await;
        assert!(!run.success, "{check} should fail:\n{}", run.stdout);
        assert!(
            run.stdout.contains(&format!("✗ {check}: ")),
            "{check} should be the failing check:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("    fix: "), "{}", run.stdout);
        assert!(
            run.stderr.contains("doctor checks failed"),
            "{}",
            run.stderr
        );
        let run = doctor(settings.args(true)).await;
        let outcomes = outcomes_of(&run);
        let failed: Vec<&str> = outcomes
            .iter()
            .filter(|(_, o)| o == "fail")
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            failed,
            [check],
            "only the broken setting fails: {outcomes:?}"
        );
    }
}
