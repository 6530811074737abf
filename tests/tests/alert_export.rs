//! Alerts that prove themselves, as a site runs it: alerts a sink cannot take stay pending;
//! `alerts export` writes them beside their ledger entries and proofs; the receiving site runs
//! `audit verify` on the file with only the ledger's public key (no agent, no data
//! directory): exit 0 listing each alert; one byte of an alert changed, a record dropped or an
//! alert added: exit 3 naming it. The exported alerts stay pending.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use daemoneye_e2e::marked::Marked;
use daemoneye_e2e::{Agent, bin, wait_for};
use serde_json::Value;

const MARK: u32 = 86_391;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `audit verify FILE --key KEY`, offline: from `/`, no data directory, no agent.
fn verify(file: &Path, key: &Path) -> Output {
    Command::new(bin("daemoneye-cli"))
        .current_dir("/")
        .args(["audit", "verify"])
        .arg(file)
        .arg("--key")
        .arg(key)
        .env_remove("DAEMONEYE_DATA_DIR")
        .output()
        .expect("running daemoneye-cli")
}

/// The reason `audit verify` gives for exit 3.
fn failed(out: &Output, what: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("daemoneye-cli: audit verify: FAILED: "))
        .unwrap_or_else(|| panic!("{what}: no FAILED line in {stderr:?}"))
        .to_owned()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, body).unwrap();
}

fn pending(agent: &Agent) -> Option<u64> {
    let output = agent.cli(&["outbox", "status", "--format", "json"]);
    let sinks: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
    sinks
        .iter()
        .find(|sink| sink["sink"] == "blocked")
        .and_then(|sink| sink["pending"].as_u64())
}

#[test]
fn an_export_of_pending_alerts_verifies_offline_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let mut sleepers = Marked::new(MARK);
    std::fs::write(&rules, sleepers.rule("TEST-EXPORT", "high")).unwrap();
    // The sink's directory is a regular file: every delivery fails, the alerts stay pending.
    let blocked_dir = dir.path().join("blocked");
    std::fs::write(&blocked_dir, "not a directory").unwrap();
    let config = format!(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\nrules = [{:?}]\n\n\
         [outbox]\nretry_min = \"100ms\"\nretry_max = \"200ms\"\n\n\
         [[sinks]]\nname = \"blocked\"\ntype = \"file\"\npath = {:?}\n",
        rules.display().to_string(),
        blocked_dir.join("alerts.jsonl").display().to_string()
    );
    for n in 0..4 {
        sleepers.spawn(n);
    }
    let agent = Agent::start(&config, 0.5);
    wait_for("four pending alerts", Duration::from_secs(120), || {
        (pending(&agent) == Some(4)).then_some(())
    });

    // The ledger records each alert just after the scan's write: export until all four are
    // in (each try is recorded as an export, which does no harm).
    let export = dir.path().join("alerts.export");
    let exported = wait_for(
        "an export of the four alerts",
        Duration::from_secs(60),
        || {
            let out = agent.cli(&["alerts", "export", "--out", export.to_str()?, "--force"]);
            let stdout = text(&out.stdout);
            (out.status.success() && stdout.starts_with("exported 4 alerts")).then_some(stdout)
        },
    );
    assert!(exported.contains("they stay pending"), "{exported}");
    let mode = std::fs::metadata(&export).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Still pending: an export does not take them from their sink.
    assert_eq!(pending(&agent), Some(4));
    // An existing file is not replaced without --force.
    let again = agent.cli(&["alerts", "export", "--out", export.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("--force"));

    let key = dir.path().join("ledger.pub");
    let out = agent.cli(&["audit", "key", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = verify(&export, &key);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("verified: 4 alerts exactly as the host recorded them"),
        "{stdout}"
    );

    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let carried: Vec<usize> = (1..lines.len())
        .filter(|&n| lines[n].get("alert").is_some())
        .collect();
    assert_eq!(carried.len(), 4);
    let alert_of = |n: usize| -> Value {
        serde_json::from_slice(&BASE64.decode(lines[n]["alert"].as_str().unwrap()).unwrap())
            .unwrap()
    };
    let ids: BTreeSet<String> = carried
        .iter()
        .map(|&n| alert_of(n)["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        assert!(stdout.contains(&format!("alert {id} entry ")), "{stdout}");
    }
    let tampered = dir.path().join("tampered.export");

    // One byte inside one alert's bytes.
    let at = carried[1];
    let id = alert_of(at)["id"].as_str().unwrap().to_owned();
    let index = lines[at]["index"].as_u64().unwrap();
    let mut changed = lines.clone();
    let mut bytes = BASE64.decode(lines[at]["alert"].as_str().unwrap()).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    changed[at]["alert"] = BASE64.encode(&bytes).into();
    write_lines(&tampered, &changed);
    let reason = failed(&verify(&tampered, &key), "a changed byte");
    assert_eq!(
        reason,
        format!(
            "alert {id} (entry {index}) is not the alert the host recorded: its bytes were changed"
        )
    );

    // One record dropped.
    let mut dropped = lines.clone();
    dropped.remove(at);
    write_lines(&tampered, &dropped);
    let reason = failed(&verify(&tampered, &key), "a dropped record");
    assert!(
        reason.starts_with(&format!(
            "entry {index} (alert {id} by the header) is missing from the export"
        )),
        "{reason}"
    );

    // One alert added, beside an entry that is not an alert's.
    let plain = (1..lines.len())
        .find(|&n| lines[n].get("alert").is_none())
        .expect("a record without an alert (the export's own entry at least)");
    let mut forged = alert_of(at);
    forged["id"] = "00000000000000000000000000000bad".into();
    let mut added = lines.clone();
    added[plain]["alert"] = BASE64.encode(forged.to_string()).into();
    write_lines(&tampered, &added);
    let reason = failed(&verify(&tampered, &key), "an added alert");
    assert!(
        reason
            .ends_with("alert 00000000000000000000000000000bad sits beside it: an alert was added"),
        "{reason}"
    );
}
