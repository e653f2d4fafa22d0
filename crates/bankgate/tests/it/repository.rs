//! The repository itself: its documents are its own.

use std::path::Path;
use std::process::Command;

/// Code, tests and docs point to `docs/` (or state the rule), never to a document outside the
/// repository that a reader of a clone does not have.
#[test]
fn no_tracked_file_points_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let listed = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed: {listed:?}");
    // Spelled in pieces so that this file does not match itself.
    let forbidden = [
        concat!("shared", "/spec"),
        concat!("decisions", " §"),
        concat!("flinks-api", ".md"),
    ];
    let mut offenders = Vec::new();
    for path in String::from_utf8_lossy(&listed.stdout).split('\0') {
        if path.is_empty() {
            continue;
        }
        // Binary and missing files (a deletion not yet committed) have no text to check.
        let Ok(text) = std::fs::read_to_string(root.join(path)) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            if let Some(word) = forbidden.iter().find(|word| line.contains(**word)) {
                offenders.push(format!("{path}:{}: {word}", number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these lines point outside the repository; point to docs/flinks-wire.md (by section) \
         or state the rule instead:\n{}",
        offenders.join("\n")
    );
}
