//! Site licenses end to end. A curated rule pack whose manifest says
//! `requires_license = "curated-rules"` stands for every licensed feature (the SIEM sinks
//! will ask the same question, `LicenseState::allows`): without a license it is refused
//! activation and the agent says so; a license for another site is refused; a license for this
//! site turns it on and its rule fires; once the license expired and its grace period passed,
//! the pack is off again and health says why. Core monitoring (the built-in rules, the scans)
//! is unchanged throughout.
//!
//! The license expires 40 s after it is issued, with a grace period of 30 s, so the test waits
//! for both (the agent's clock cannot be faked from outside); the waits only bound a hang.
//!
//! Runs as root (procmond needs its capabilities); CI runs it as root.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daemoneye_e2e::bundles::{
    KeyPair, Probe, build, bundler_ok, path, rule_ids, rules_source, shown,
};
use daemoneye_e2e::{Agent, copy_exe, wait_for};
use serde_json::Value;

fn health_component(agent: &Agent, name: &str) -> Value {
    let health = agent.health().expect("the agent answers");
    health["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} component in {health}"))
}

fn pack_in_force(agent: &Agent) -> Option<bool> {
    let output = agent.cli(&["bundle", "status", "--format", "json"]);
    let status: Value = serde_json::from_slice(&output.stdout).expect("bundle status JSON");
    status["bundles"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == "curated")
        .and_then(|b| b["in_force"].as_bool())
}

/// An RFC 3339 time `secs` from now.
fn from_now(secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at_ms = i64::try_from((now + secs) * 1000).unwrap();
    daemoneye_lib::text::format_time_ms(at_ms)
}

fn issue_license(
    dir: &std::path::Path,
    site: &str,
    expires: &str,
    key: &KeyPair,
    out: &std::path::Path,
) -> std::path::PathBuf {
    let src = dir.join(format!("license-src-{site}-{}", expires.replace(':', "")));
    bundler_ok(&[
        "license",
        "issue",
        "--site",
        site,
        "--tier",
        "business",
        "--features",
        "curated-rules,splunk_hec",
        "--expires",
        expires,
        "--out",
        path(&src),
    ]);
    build(&src, key, out)
}

#[test]
fn a_licensed_pack_runs_only_under_a_valid_license_for_this_site() {
    let office = tempfile::tempdir().unwrap();
    let bundle_key = KeyPair::generate(office.path(), "bundles");
    let license_key = KeyPair::generate(office.path(), "licenses");
    let out = office.path().join("usb");
    let src = office.path().join("curated");
    rules_source(
        &src,
        "curated",
        1,
        "requires_license = \"curated-rules\"\n",
        &[("CUR-0001", "delicensed")],
    );
    let pack = build(&src, &bundle_key, &out);
    let config = format!(
        "[site]\nid = \"plant-7\"\n[bundles]\ntrusted_keys = [\"{}\"]\nlicense_keys = [\"{}\"]\n\
         inbox_interval = \"200ms\"\n[license]\ngrace = \"30s\"\n",
        path(&bundle_key.public()),
        path(&license_key.public())
    );
    let agent = Agent::start(&config, 1.0);
    agent.wait_for_procmond();
    let _probe = Probe::start(&copy_exe(
        "/bin/sleep",
        &office.path().join("bin"),
        "delicensed",
    ));
    let core_rules = rule_ids(&agent).len();
    assert!(core_rules >= 15, "the built-in pack runs");

    // 1. Without a license: the pack is applied but not in force; the agent says why.
    let installed = agent.cli(&["bundle", "install", path(&pack)]);
    assert!(installed.status.success(), "{}", shown(&installed));
    assert_eq!(pack_in_force(&agent), Some(false));
    assert!(!rule_ids(&agent).contains(&"CUR-0001".to_owned()));
    let license = health_component(&agent, "license");
    assert_eq!(license["status"], "degraded", "{license}");
    assert!(
        license["detail"]
            .as_str()
            .unwrap()
            .contains("curated-rules needs a license: no license: free tier"),
        "{license}"
    );
    assert_eq!(
        rule_ids(&agent).len(),
        core_rules,
        "core monitoring unchanged"
    );

    // 2. A license for another site: refused at verification.
    let other = issue_license(
        office.path(),
        "plant-8",
        &from_now(3600),
        &license_key,
        &out,
    );
    let refused = agent.cli(&["bundle", "install", path(&other)]);
    assert_eq!(refused.status.code(), Some(3), "{}", shown(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not for this host's site (plant-7)"),
        "{}",
        shown(&refused)
    );
    // ...and one signed by a bundle key instead of a license key.
    let wrong_key = issue_license(
        office.path(),
        "plant-7",
        &from_now(3600),
        &bundle_key,
        &office.path().join("wrong"),
    );
    let refused = agent.cli(&["bundle", "install", path(&wrong_key)]);
    assert_eq!(refused.status.code(), Some(3), "{}", shown(&refused));
    assert_eq!(pack_in_force(&agent), Some(false));

    // 3. A license for this site: the pack turns on and its rule fires.
    let valid = issue_license(office.path(), "plant-7", &from_now(40), &license_key, &out);
    let applied = agent.cli(&["bundle", "install", path(&valid)]);
    assert!(applied.status.success(), "{}", shown(&applied));
    assert_eq!(pack_in_force(&agent), Some(true));
    assert!(rule_ids(&agent).contains(&"CUR-0001".to_owned()));
    assert_eq!(health_component(&agent, "license")["status"], "ok");
    wait_for("the licensed rule to fire", Duration::from_secs(60), || {
        agent
            .printed_alerts()
            .iter()
            .any(|alert| alert["rule_id"] == "CUR-0001")
            .then_some(())
    });

    // 4. Expired: for the grace period (30 s) the pack stays on, and health says so.
    let grace = wait_for("the license to expire", Duration::from_secs(120), || {
        let license = health_component(&agent, "license");
        license["detail"]
            .as_str()
            .unwrap()
            .contains("its features stay on until the grace period ends")
            .then_some(license)
    });
    assert_eq!(grace["status"], "degraded", "{grace}");
    assert_eq!(
        pack_in_force(&agent),
        Some(true),
        "the pack runs in the grace period"
    );
    assert!(rule_ids(&agent).contains(&"CUR-0001".to_owned()));

    // 5. After the grace period: the pack goes off by itself; the core rules stay.
    wait_for("the license to lapse", Duration::from_secs(120), || {
        (pack_in_force(&agent) == Some(false)).then_some(())
    });
    wait_for(
        "the rule set without the pack",
        Duration::from_secs(30),
        || (!rule_ids(&agent).contains(&"CUR-0001".to_owned())).then_some(()),
    );
    let license = health_component(&agent, "license");
    assert_eq!(license["status"], "degraded", "{license}");
    assert!(
        license["detail"]
            .as_str()
            .unwrap()
            .contains("grace period is over: free tier"),
        "{license}"
    );
    assert_eq!(
        rule_ids(&agent).len(),
        core_rules,
        "core monitoring unchanged"
    );
    assert_eq!(health_component(&agent, "procmond")["status"], "ok");
}
