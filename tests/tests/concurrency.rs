//! End to end: the agent's tasks do not wait for each other.
//!
//! - While procmond runs a scan, the procmond link still carries health checks and ledger
//!   requests: `health-check` shows procmond's own report and `audit checkpoint` answers. A
//!   debug-built procmond holds a scan for as long as the file named by
//!   `DAEMONEYE_TEST_SCAN_GATE` exists (release builds have no such hook), so the scan is in
//!   progress for as long as the test needs, however fast or slow the machine is.
//! - A CLI query runs in a sandbox of its own: scans go on being stored and detected while a
//!   query runs for its whole budget.
//!
//! Runs as root (CI does), like every test that starts procmond with its privilege drop.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemoneye_e2e::{Agent, bin, wait_for};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs it as root)"
    );
}

#[test]
fn health_and_ledger_requests_are_answered_while_a_scan_is_held() {
    require_root();
    // procmond checks the gate after dropping to its own user: the directory must be
    // searchable by everyone.
    let gate_dir = tempfile::Builder::new()
        .prefix("de-gate-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(gate_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gate = gate_dir.path().join("hold");
    std::fs::write(&gate, b"").unwrap();
    let agent = Agent::start_with_env(
        "[collector]\nuser = \"daemon\"\nhealth_interval = \"200ms\"\n",
        1.0,
        &[("DAEMONEYE_TEST_SCAN_GATE", gate.as_path())],
    );
    wait_for(
        "procmond to hold the first scan",
        Duration::from_secs(60),
        || agent.logged("scan held at the test gate").first().cloned(),
    );

    // procmond's own health report arrives although the scan has not finished (before, a
    // scan held the connection and health checks were skipped until it ended).
    let health = agent.wait_for_procmond();
    assert_eq!(health["procmond"]["privileges_dropped"], true, "{health:#}");
    let checkpoint = agent.cli(&["audit", "checkpoint"]);
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    let note = String::from_utf8(checkpoint.stdout).unwrap();
    assert!(note.starts_with("daemoneye.ledger/"), "{note}");

    // All of that happened while the scan was still held.
    assert!(gate.exists());
    assert!(agent.logged("scan received").is_empty());
    assert_eq!(health["scans"]["completed"], 0, "{health:#}");

    std::fs::remove_file(&gate).unwrap();
    wait_for(
        "the released scan to be processed",
        Duration::from_secs(60),
        || (!agent.logged("scan processed").is_empty()).then_some(()),
    );
}

#[test]
fn a_long_query_does_not_hold_up_the_scans() {
    require_root();
    // The query below counts forever; it is stopped at the sandbox's budget, 25 s here
    // (within the CLI's 30 s answer timeout).
    let agent = Agent::start(
        "[collector]\nuser = \"daemon\"\n[detection]\nrule_timeout = \"25s\"\n",
        1.0,
    );
    agent.wait_for_procmond();
    wait_for("a first scan", Duration::from_secs(60), || {
        (!agent.logged("scan processed").is_empty()).then_some(())
    });
    let mut query = Command::new(bin("daemoneye-cli"))
        .args([
            "query",
            "--sql",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            "--data-dir",
        ])
        .arg(&agent.data_dir)
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = agent.logged("scan processed").len();
    // Two whole scans while the query runs: the second started after the query did. Before,
    // scans and queries shared one lock and no scan finished until the query had.
    wait_for(
        "two scans during the query",
        Duration::from_secs(60),
        || (agent.logged("scan processed").len() >= before + 2).then_some(()),
    );
    assert!(
        query.try_wait().unwrap().is_none(),
        "the query ended before two scans did"
    );
    let ended = query.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(stderr.contains("over the 25000 ms budget"), "{stderr}");
}
