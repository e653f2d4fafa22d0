//! The README's "Using bankgate from a test suite" script, run as it stands against the real
//! binary: it must find its own ports (port 0, read from the server's lines), pass, and leave
//! nothing behind. It needs bash, curl and jq; without them the test says so and passes, except
//! with `CI=true`, where it fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../../README.md");

/// The first `sh` block of the README section titled `title`.
fn script_in(title: &str) -> String {
    let start = README
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no README section {title:?}"));
    let section = &README[start..];
    let fence = section.find("```sh\n").expect("no sh block in the section") + "```sh\n".len();
    let end = section[fence..].find("\n```").expect("unclosed sh block");
    section[fence..fence + end + 1].to_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn the_test_suite_script_runs_on_its_own_ports_and_cleans_up() {
    let missing: Vec<_> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|tool| !have(tool))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the README script needs {missing:?} (.ci/run installs them)"
        );
        eprintln!("skipped: the README script needs {missing:?}");
        return;
    }
    let script = script_in("Using bankgate from a test suite");
    // Fixed ports would reach whatever server already holds them.
    for fixed in [":8080", ":8081"] {
        assert!(
            !script.contains(fixed),
            "the script uses {fixed}:\n{script}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let script_path = tmp.path().join("suite.sh");
    std::fs::write(&script_path, &script).unwrap();
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_bankgate")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg(&script_path)
        .current_dir(tmp.path())
        .env("PATH", path)
        // The script's mktemp -d lands here, so the test sees what it leaves behind.
        .env("TMPDIR", &scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("BANKGATE_") {
            command.env_remove(name);
        }
    }
    let child = command.spawn().unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README script failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("token expired after 30 minutes"),
        "{stdout}\n{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // Its temp dir (database, server output) is gone: the server had stopped by then.
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
