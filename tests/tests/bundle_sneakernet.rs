//! End to end, as an air-gapped site works: on the office side a key is made and a rule bundle
//! built; it is carried over and dropped into the agent's inbox; the agent applies it and a
//! rule from it fires on a real process. Then a newer bundle through `bundle install`, a
//! `bundle rollback`, and a keys bundle that rotates the signing key, after which a bundle
//! signed by the old key is refused and one signed by the new key applied. Every step is in
//! `bundle history` and in the audit ledger.
//!
//! Runs as root (procmond needs its capabilities); CI runs it as root.

use std::time::Duration;

use daemoneye_e2e::bundles::{
    KeyPair, Probe, build, drop_into_inbox, keys_source, path, rule_ids, rules_source, shown,
};
use daemoneye_e2e::{Agent, copy_exe, wait_for};
use serde_json::Value;

fn status(agent: &Agent) -> Value {
    let output = agent.cli(&["bundle", "status", "--format", "json"]);
    assert!(output.status.success(), "bundle status: {}", shown(&output));
    serde_json::from_slice(&output.stdout).expect("bundle status prints JSON")
}

/// The active version of `name`, if any.
fn active(agent: &Agent, name: &str) -> Option<u64> {
    status(agent)["bundles"]
        .as_array()?
        .iter()
        .find(|bundle| bundle["name"] == name)
        .and_then(|bundle| bundle["version"].as_u64())
}

fn history(agent: &Agent) -> Vec<Value> {
    let output = agent.cli(&["bundle", "history", "--format", "json"]);
    assert!(
        output.status.success(),
        "bundle history: {}",
        shown(&output)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("bundle history prints JSON")
}

/// Whether the agent printed an alert of `rule_id`.
fn fired(agent: &Agent, rule_id: &str) -> bool {
    agent
        .printed_alerts()
        .iter()
        .any(|alert| alert["rule_id"] == rule_id)
}

#[test]
fn keygen_build_carry_apply_fire_update_rollback_rotate() {
    let office = tempfile::tempdir().unwrap();
    let old_key = KeyPair::generate(office.path(), "site-2026");
    let out = office.path().join("usb");

    // 1. A rule bundle, built on the office side.
    let src = office.path().join("site-rules");
    rules_source(&src, "site-rules", 1, "", &[("SITE-0001", "deprobe-one")]);
    let v1 = build(&src, &old_key, &out);
    assert!(v1.ends_with("site-rules-1.bundle"), "{}", v1.display());

    // 2. The agent trusts the key; the probe processes run.
    let config = format!(
        "[bundles]\ntrusted_keys = [\"{}\"]\nlicense_keys = []\ninbox_interval = \"200ms\"\n",
        path(&old_key.public())
    );
    let agent = Agent::start(&config, 1.0);
    agent.wait_for_procmond();
    let bin = office.path().join("bin");
    let sleep = "/bin/sleep";
    let _one = Probe::start(&copy_exe(sleep, &bin, "deprobe-one"));
    let _two = Probe::start(&copy_exe(sleep, &bin, "deprobe-two"));
    assert_eq!(active(&agent, "site-rules"), None);

    // 3. Carried by hand into the inbox: applied, and its rule fires on the real process.
    drop_into_inbox(&v1, &agent.data_dir.join("inbox"));
    wait_for(
        "the inbox bundle to be applied",
        Duration::from_secs(60),
        || (active(&agent, "site-rules") == Some(1)).then_some(()),
    );
    wait_for("the bundle's rule to load", Duration::from_secs(30), || {
        rule_ids(&agent)
            .contains(&"SITE-0001".to_owned())
            .then_some(())
    });
    wait_for("the bundle's rule to fire", Duration::from_secs(60), || {
        fired(&agent, "SITE-0001").then_some(())
    });
    wait_for(
        "the bundle to leave the inbox",
        Duration::from_secs(30),
        || (!agent.data_dir.join("inbox/site-rules-1.bundle").exists()).then_some(()),
    );
    let applied: Vec<String> = std::fs::read_dir(agent.data_dir.join("inbox/applied"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        applied
            .iter()
            .any(|name| name.ends_with("-site-rules-1.bundle"))
            && applied
                .iter()
                .any(|name| name.ends_with("-site-rules-1.bundle.minisig")),
        "the applied pair is kept in inbox/applied: {applied:?}"
    );

    // 4. A newer bundle through `bundle install`: the new rule replaces the old one.
    rules_source(&src, "site-rules", 2, "", &[("SITE-0002", "deprobe-two")]);
    let v2 = build(&src, &old_key, &out);
    let installed = agent.cli(&["bundle", "install", path(&v2)]);
    assert!(
        installed.status.success(),
        "install v2: {}",
        shown(&installed)
    );
    assert_eq!(active(&agent, "site-rules"), Some(2));
    let ids = rule_ids(&agent);
    assert!(
        ids.contains(&"SITE-0002".to_owned()) && !ids.contains(&"SITE-0001".to_owned()),
        "{ids:?}"
    );
    wait_for("the new rule to fire", Duration::from_secs(60), || {
        fired(&agent, "SITE-0002").then_some(())
    });

    // 5. Replay of v2 and the older v1: refused, exit 3, nothing changes.
    for (bundle, reason) in [(&v2, "not above version 2"), (&v1, "not above version 2")] {
        let refused = agent.cli(&["bundle", "install", path(bundle)]);
        assert_eq!(refused.status.code(), Some(3), "{}", shown(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(reason),
            "{}",
            shown(&refused)
        );
        assert_eq!(active(&agent, "site-rules"), Some(2));
    }

    // 6. `bundle rollback`: back to version 1 and its rule.
    let rolled = agent.cli(&["bundle", "rollback", "site-rules"]);
    assert!(rolled.status.success(), "rollback: {}", shown(&rolled));
    assert_eq!(active(&agent, "site-rules"), Some(1));
    let ids = rule_ids(&agent);
    assert!(
        ids.contains(&"SITE-0001".to_owned()) && !ids.contains(&"SITE-0002".to_owned()),
        "{ids:?}"
    );
    let again = agent.cli(&["bundle", "rollback", "site-rules"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "no second step back: {}",
        shown(&again)
    );

    // 7. A keys bundle signed by the old key adds a new key and revokes the old one.
    let new_key = KeyPair::generate(office.path(), "site-2027");
    let keys_src = office.path().join("site-keys");
    keys_source(
        &keys_src,
        "site-keys",
        1,
        &[new_key.public_line()],
        &[old_key.key_id()],
    );
    let rotation = build(&keys_src, &old_key, &out);
    let applied = agent.cli(&["bundle", "install", path(&rotation)]);
    assert!(
        applied.status.success(),
        "the keys bundle: {}",
        shown(&applied)
    );
    let keys = status(&agent)["keys"].clone();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == new_key.key_id().as_str()),
        "{keys}"
    );

    // 8. A bundle signed by the old key is refused; by the new key, applied.
    rules_source(&src, "site-rules", 3, "", &[("SITE-0003", "deprobe-one")]);
    let old_signed = build(&src, &old_key, &office.path().join("old-signed"));
    let refused = agent.cli(&["bundle", "install", path(&old_signed)]);
    assert_eq!(refused.status.code(), Some(3), "{}", shown(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("revoked"),
        "{}",
        shown(&refused)
    );
    let new_signed = build(&src, &new_key, &office.path().join("new-signed"));
    let accepted = agent.cli(&["bundle", "install", path(&new_signed)]);
    assert!(accepted.status.success(), "{}", shown(&accepted));
    assert_eq!(active(&agent, "site-rules"), Some(3));

    // 9. The history has every decision, newest first.
    let actions: Vec<(String, String, Option<u64>)> = history(&agent)
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or_default().to_owned(),
                entry["name"].as_str().unwrap_or_default().to_owned(),
                entry["version"].as_u64(),
            )
        })
        .collect();
    let revoked = &history(&agent)[1];
    let reason = revoked["reason"].as_str().unwrap();
    assert!(
        reason.contains("site-rules-3.bundle") && reason.contains("revoked"),
        "{revoked}"
    );
    let expected: Vec<(String, String, Option<u64>)> = [
        ("applied", "site-rules", Some(3)),
        // Refused at the signature: never decompressed, so not named from its manifest.
        ("refused", "", None),
        ("applied", "site-keys", Some(1)),
        ("rolled_back", "site-rules", Some(1)),
        ("refused", "site-rules", Some(1)),
        ("refused", "site-rules", Some(2)),
        ("applied", "site-rules", Some(2)),
        ("applied", "site-rules", Some(1)),
    ]
    .iter()
    .map(|(a, n, v)| ((*a).to_owned(), (*n).to_owned(), *v))
    .collect();
    assert_eq!(actions, expected);

    // 10. And the audit ledger recorded them, each with its bundle.
    let export = office.path().join("audit-export");
    let output = agent.cli(&["audit", "export", "--out", path(&export)]);
    assert!(output.status.success(), "audit export: {}", shown(&output));
    let entries: Vec<Value> = std::fs::read_to_string(export.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let count = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("bundle_accepted"), 4, "applied: v1, v2, the keys, v3");
    assert_eq!(
        count("bundle_refused"),
        3,
        "refused: the replay, the rollback, the old key"
    );
    assert_eq!(count("bundle_rolled_back"), 1);

    // 11. The state survives a restart.
    let mut agent = agent;
    agent.stop();
    agent.restart();
    wait_for("the agent to answer again", Duration::from_secs(60), || {
        agent
            .cli(&["bundle", "status", "--format", "json"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(active(&agent, "site-rules"), Some(3));
    let refused = agent.cli(&["bundle", "install", path(&old_signed)]);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "the revocation survives a restart"
    );
}
