//! `procmond --once --ledger DIR`. (A file of its own: beside `once.rs`, which copies an
//! executable and runs it, a procmond started from another thread at that moment can inherit
//! the copy's open write descriptor, and the copy's exec then fails with ETXTBSY.)

use std::process::{Command, Stdio};

use daemoneye_e2e::bin;
use serde_json::Value;

/// `procmond --once --ledger DIR` records its start, the scan and its stop, and signs a
/// checkpoint; the directory verifies offline, and a second run appends to it.
#[test]
fn procmond_once_records_the_scan_in_a_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let run = || {
        let out = Command::new(bin("procmond"))
            .args(["--once", "--format", "json", "--ledger"])
            .arg(&ledger)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
        scan["processes"].as_array().unwrap().len()
    };
    let verify = || {
        Command::new(bin("daemoneye-cli"))
            .args(["audit", "verify"])
            .arg(&ledger)
            .arg("--key")
            .arg(ledger.join("ledger.pub"))
            .output()
            .unwrap()
    };
    let processes = run();
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ledger_created, procmond_started, scan, procmond_stopped; one checkpoint.
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("verified: 4 entries, 1 checkpoints"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(processes > 1);
    run();
    let out = verify();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("verified: 7 entries, 2 checkpoints"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without --once, --ledger is a usage error.
    let refused = Command::new(bin("procmond"))
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}
