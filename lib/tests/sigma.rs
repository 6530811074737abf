//! The 144 vendored Sigma rules (bundles/sigma-linux/) load as DaemonEye rules and run against
//! the `process_creation` view.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use daemoneye_lib::detection::engine::Engine;
use daemoneye_lib::detection::rules::{self, Rule};
use daemoneye_lib::detection::sandbox::{Dataset, Limits, Sandbox};
use daemoneye_lib::models::ProcessRecord;

fn bundle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bundles/sigma-linux")
}

fn load() -> Vec<Rule> {
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let loaded = rules::load_paths(&[bundle().join("rules")], &sandbox);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    loaded.rules
}

fn process(pid: u32, parent: u32, path: &str, cmdline: &str) -> ProcessRecord {
    ProcessRecord {
        pid,
        parent: Some(parent),
        name: path.rsplit('/').next().map(str::to_owned),
        path: Some(path.to_owned()),
        cmdline: Some(cmdline.to_owned()),
        cwd: Some("/root".to_owned()),
        uid: Some(0),
        scan_id: 1,
        ..ProcessRecord::default()
    }
}

#[test]
fn all_144_sigma_rules_validate_and_match_the_upstream_sql() {
    let rules = load();
    assert_eq!(rules.len(), 144);
    let upstream: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle().join("upstream/rules.json")).unwrap(),
    )
    .unwrap();
    let upstream = upstream.as_array().unwrap();
    assert_eq!(upstream.len(), 144);
    for (rule, original) in rules.iter().zip(upstream) {
        assert_eq!(
            rule.id.as_str(),
            format!("SIGMA-{}", original["id"].as_str().unwrap())
        );
        assert_eq!(
            rule.sql.sql(),
            original["sql"].as_str().unwrap(),
            "{}",
            rule.id
        );
        let author = original["author"].as_str().unwrap();
        assert!(
            rule.description.contains(author),
            "{}: attribution",
            rule.id
        );
        assert!(rule.description.contains("DRL-1.1"), "{}: licence", rule.id);
    }
}

#[test]
fn all_144_sigma_rules_run_against_process_creation() {
    let rules = load();
    let count = rules.len();
    let mut engine = Engine::new(rules, Limits::default()).unwrap();
    let processes = vec![
        process(1, 0, "/usr/lib/systemd/systemd", "/sbin/init"),
        process(100, 1, "/usr/sbin/sshd", "sshd: root@pts/0"),
        process(200, 100, "/usr/bin/bash", "-bash"),
        // CVE-2019-14287: sudo with a negative user id.
        process(300, 200, "/usr/bin/sudo", "sudo -u#-1 /bin/bash"),
        // Clearing the shell history.
        process(301, 200, "/usr/bin/rm", "rm -rf /root/.bash_history"),
        process(302, 200, "/usr/bin/base64", "base64 -d /tmp/payload"),
    ];
    let users = vec![(0, "root".to_owned())];
    let runs = engine
        .evaluate(&Dataset {
            processes: Some(&processes),
            users: Some(&users),
            ..Dataset::default()
        })
        .unwrap();
    assert_eq!(runs.len(), count);
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            run.outcome
                .as_ref()
                .err()
                .map(|err| format!("{}: {err}", engine.rules()[run.rule].id))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let matched = |title_part: &str| -> Vec<i64> {
        runs.iter()
            .filter(|run| engine.rules()[run.rule].name.contains(title_part))
            .flat_map(|run| run.outcome.as_ref().unwrap().rows.iter())
            .filter_map(|row| match &row[0] {
                daemoneye_lib::detection::sandbox::Cell::Integer(pid) => Some(*pid),
                _ => None,
            })
            .collect()
    };
    assert_eq!(matched("CVE-2019-14287"), [300]);
    assert!(
        matched("History").contains(&301),
        "{:?}",
        matched("History")
    );
    assert!(matched("Base64").contains(&302), "{:?}", matched("Base64"));
}
