//! A damaged `bundles/state.json` stops bundles, never monitoring: the agent starts on its
//! built-in rules, scans, shows the `bundles` component failed with the reason, refuses a
//! bundle install (exit 1, the reason named) and leaves the file byte for byte as it was.
//!
//! Runs as root (procmond needs its capabilities); CI runs it as root.

use std::time::Duration;

use daemoneye_e2e::bundles::{KeyPair, build, path, rules_source, shown};
use daemoneye_e2e::{Agent, wait_for};

#[test]
fn a_damaged_bundle_state_fails_bundles_and_keeps_monitoring() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("data/bundles/state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let damaged = b"{\"format\": 1, \"active\": {\"core-rules\": ";
    std::fs::write(&state, damaged).unwrap();
    let office = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(office.path(), "k");
    let config = format!(
        "[bundles]\ntrusted_keys = [\"{}\"]\nlicense_keys = []\n",
        path(&key.public())
    );
    let agent = Agent::start_in(dir, &config, 1.0, &[]);
    agent.wait_for_procmond();

    let health = wait_for("a scan", Duration::from_secs(60), || {
        agent
            .health()
            .filter(|h| h["scans"]["completed"].as_u64().is_some_and(|n| n > 0))
    });
    let bundles = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bundles")
        .cloned()
        .unwrap();
    assert_eq!(bundles["status"], "failed", "{bundles}");
    let detail = bundles["detail"].as_str().unwrap();
    assert!(detail.contains("the bundle state is damaged"), "{detail}");
    assert!(detail.contains("state.json"), "{detail}");
    let rules = agent.cli(&["rules", "list", "--format", "json"]);
    let rules: serde_json::Value = serde_json::from_slice(&rules.stdout).unwrap();
    assert!(
        rules.as_array().unwrap().len() >= 15,
        "the built-in rules run"
    );

    let src = office.path().join("src");
    rules_source(&src, "site-rules", 1, "", &[("SITE-1", "whatever")]);
    let bundle = build(&src, &key, &office.path().join("out"));
    let refused = agent.cli(&["bundle", "install", path(&bundle)]);
    assert_eq!(refused.status.code(), Some(1), "{}", shown(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("no bundle can be applied until it is repaired"),
        "{}",
        shown(&refused)
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        damaged,
        "the state file is left alone"
    );
}
