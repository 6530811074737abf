//! `daemoneye-agent --once`: one scan, JSON alerts on stdout, exit 0; the dedup state
//! survives between runs. (A file of its own, so that it does not compete for the CPU with the
//! busy-loop case of `detection.rs`: test binaries run one after the other.)

use std::process::{Command, Stdio};

use daemoneye_e2e::{bin, copy_exe};
use serde_json::Value;

/// The rule ids whose alerts name `pid` in their rows.
fn rules_for(alerts: &[Value], pid: u32) -> Vec<String> {
    alerts
        .iter()
        .filter(|alert| {
            alert["rows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|row| row["pid"].as_u64() == Some(u64::from(pid)))
        })
        .map(|alert| alert["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn once_prints_json_alerts_and_exits_zero() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let tmp = tempfile::Builder::new()
        .prefix("de-once-")
        .tempdir_in("/tmp")
        .unwrap();
    let runner = copy_exe("/bin/sleep", &tmp.path().join("x"), "once-runner");
    let mut suspect = Command::new(runner)
        .arg("300")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = suspect.id();
    let data = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(bin("daemoneye-agent"))
            .args(["--once", "--format", "json", "--data-dir"])
            .arg(data.path())
            .env_remove("DAEMONEYE_DATA_DIR")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let alerts: Vec<Value> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rules_for(&alerts, pid), ["DE-LNX-0002"], "{alerts:#?}");
    for alert in &alerts {
        for key in [
            "id",
            "rule_id",
            "rule_name",
            "severity",
            "mitre",
            "host",
            "site",
            "scan_id",
            "detected_at",
            "dedup_key",
            "suppressed",
            "rows",
            "summary",
        ] {
            assert!(alert.get(key).is_some(), "{key} missing in {alert}");
        }
    }
    // The second run finds the same process within the dedup window: nothing new about it.
    let second = run();
    assert!(second.status.success(), "{second:?}");
    let again: Vec<Value> = String::from_utf8(second.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(rules_for(&again, pid).is_empty(), "repeated: {again:#?}");
    suspect.kill().unwrap();
    suspect.wait().unwrap();
}
