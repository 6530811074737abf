//! Every attack fixture of `tests/fixtures/bundles/attacks/` against the agent's own install
//! path, on a data directory with a rules, a config, a license and a keys bundle active: each
//! is refused at its step with its message, and afterwards every byte under the data
//! directory is what it was — the active rules, config, keys and license, the state file, the
//! store, the inbox — but the one new history line; nothing is written anywhere else, not even
//! in the staging area.
//!
//! The baseline bundles are built here, signed with the published TEST key of
//! `tests/fixtures/keys/` that the fixtures are signed with (`lib/tests/bundle_attacks.rs`
//! checks the same fixtures against lib's `verify` alone).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemoneye_agent::bundles::{BundleSettings, Bundles, agent_version};
use daemoneye_lib::bundle::{self, pack};
use daemoneye_lib::detection::sandbox;
use daemoneye_lib::ids::SiteId;
use daemoneye_lib::ipc::proto::BundleAction;
use daemoneye_lib::minisign::{SecretKey, SecretKeyFile};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn test_key() -> SecretKey {
    let text = fs::read_to_string(fixtures().join("keys/test-bundle.key")).unwrap();
    SecretKeyFile::parse(&text).unwrap().unlock(None).unwrap()
}

/// Every file under `dir` with its bytes, but `skip`.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                all.insert(path.clone(), b"<dir>".to_vec());
                stack.push(path);
            } else if path != skip {
                all.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    all
}

fn build(
    out: &Path,
    name: &str,
    kind: &str,
    version: u64,
    extra: &str,
    files: &[(&str, String)],
    key: &SecretKey,
) -> PathBuf {
    let src = out.join(format!("src-{name}-{version}"));
    let sites = if extra.contains("sites") {
        ""
    } else {
        "sites = [\"*\"]\n"
    };
    fs::create_dir_all(src.join(kind)).unwrap();
    fs::write(
        src.join("bundle.toml"),
        format!(
            "name = \"{name}\"\nkind = \"{kind}\"\nversion = {version}\n\
             created = \"2027-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
             min_agent_version = \"0.1.0\"\n{sites}{extra}"
        ),
    )
    .unwrap();
    for (path, text) in files {
        fs::write(src.join(path), text).unwrap();
    }
    let source = pack::read_source(&src, &bundle::Limits::default()).unwrap();
    let (bytes, manifest, _) = pack::pack(&source, sandbox_limits(), |_, _| {}).unwrap();
    let signature = pack::sign(&bytes, &manifest, key).unwrap();
    let path = out.join(format!("{name}-{version}.bundle"));
    pack::write(&path, &bytes, &signature).unwrap();
    path
}

fn sandbox_limits() -> sandbox::Limits {
    sandbox::Limits {
        timeout: Duration::from_secs(5),
        max_rows: 1000,
        max_memory: 64 << 20,
    }
}

const RULE: &str = r#"[[rule]]
id = "BASE-1"
name = "nc"
severity = "high"
mitre = ["T1059"]
description = "the baseline's rule"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "nc" }]
expect_rows = 1
"#;

#[test]
fn every_attack_is_refused_and_changes_nothing_the_agent_keeps() {
    let cases = fixtures().join("bundles/attacks");
    let mut names: Vec<PathBuf> = fs::read_dir(&cases)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 25, "{} attack folders", names.len());
    let key = test_key();
    for case_dir in names {
        let case: toml::Table =
            toml::from_str(&fs::read_to_string(case_dir.join("case.toml")).unwrap()).unwrap();
        let context = case["context"].as_table().unwrap();
        let expect = case["expect"].as_table().unwrap();
        let shown = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let now = bundle::Timestamp::parse(context["now"].as_str().unwrap()).unwrap();
        let now_ms = now.0 * 1000;

        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = tmp.path().join("out");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&data).unwrap();
        let bundle_pub = tmp.path().join("bundle.pub");
        fs::write(&bundle_pub, key.public_key().to_file_text()).unwrap();
        let license_key = SecretKey::generate().unwrap();
        let license_pub = tmp.path().join("license.pub");
        fs::write(&license_pub, license_key.public_key().to_file_text()).unwrap();
        let mut limits = bundle::Limits::default();
        if let Some(max) = context.get("max_expanded_bytes") {
            limits.max_expanded_bytes = u64::try_from(max.as_integer().unwrap()).unwrap();
        }
        let settings = BundleSettings {
            trusted_keys: vec![bundle_pub],
            license_keys: vec![license_pub],
            limits,
            max_clock_skew: Duration::from_secs(
                u64::try_from(context["max_clock_skew"].as_integer().unwrap()).unwrap(),
            ),
            site: Some(SiteId::parse(context["site"].as_str().unwrap()).unwrap()),
            grace: Duration::from_secs(14 * 86_400),
            sandbox: sandbox_limits(),
            agent_version: agent_version(),
        };
        assert_eq!(
            agent_version().to_string(),
            context["agent_version"].as_str().unwrap(),
            "the fixtures are judged as this agent's version"
        );

        // The baseline: rules at the highest version the case names, a config, a license,
        // a keys bundle (which, for the revoked-key case, revokes the signing key).
        let mut bundles = Bundles::open(&data, settings).unwrap();
        let highest = context["highest"]["attack-rules"].as_integer().unwrap();
        let highest = u64::try_from(highest).unwrap();
        let other = SecretKey::generate().unwrap();
        let mut baseline = vec![
            build(
                &out,
                "attack-rules",
                "rules",
                highest,
                "",
                &[("rules/base.toml", RULE.to_owned())],
                &key,
            ),
            build(
                &out,
                "site-config",
                "config",
                1,
                "",
                &[(
                    "config/config.toml",
                    "[detection]\nmax_rows = 500\n".to_owned(),
                )],
                &key,
            ),
            build(
                &out,
                "license-plant-7",
                "license",
                1,
                "sites = [\"plant-7\"]\n",
                &[(
                    "license/license.toml",
                    "site = \"plant-7\"\ntier = \"business\"\nfeatures = [\"curated-rules\"]\n\
                     issued = \"2027-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n"
                        .to_owned(),
                )],
                &license_key,
            ),
        ];
        let revoked: Vec<String> = context["revoked_key_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        let mut keys = format!(
            "[[add]]\nrole = \"bundles\"\npublic_key = \"{}\"\n",
            other.public_key().to_base64()
        );
        for id in &revoked {
            keys.push_str(&format!("[[revoke]]\nkey_id = \"{id}\"\n"));
        }
        baseline.push(build(
            &out,
            "site-keys",
            "keys",
            1,
            "",
            &[("keys/keys.toml", keys)],
            &key,
        ));
        for bundle in &baseline {
            let decision = bundles.install_file(bundle, "cli", now_ms);
            assert!(
                decision.applied(),
                "{shown}: baseline {}: {:?}",
                bundle.display(),
                decision.proto
            );
        }
        let history = data.join("bundles/history.jsonl");
        let before = snapshot(&data, &history);
        let status_before = bundles.status(now_ms);
        let rules_before: Vec<_> = bundles
            .active_rules()
            .into_iter()
            .map(|r| (r.name, r.version, r.files))
            .collect();
        let license_before = bundles.license_state();
        let layer_before = bundles.config_layer_now();

        // The attack.
        let attack = case_dir.join(case["bundle"].as_str().unwrap());
        let decision = bundles.install_file(&attack, "inbox", now_ms);
        assert_eq!(
            decision.proto.action(),
            BundleAction::Refused,
            "{shown}: {:?}",
            decision.proto
        );
        assert_eq!(decision.changed, None, "{shown}");
        assert_eq!(
            decision.proto.step,
            expect["step"].as_str().unwrap(),
            "{shown}: {:?}",
            decision.proto
        );
        let message = expect["message"].as_str().unwrap();
        assert!(
            decision.proto.reason.ends_with(message),
            "{shown}: the reason {:?} does not end with {message:?}",
            decision.proto.reason
        );

        // Nothing changed but the history.
        assert_eq!(
            snapshot(&data, &history),
            before,
            "{shown}: the data directory changed"
        );
        let lines = fs::read_to_string(&history).unwrap();
        assert_eq!(lines.lines().count(), baseline.len() + 1, "{shown}");
        assert_eq!(
            bundles.status(now_ms).bundles,
            status_before.bundles,
            "{shown}"
        );
        let rules_after: Vec<_> = bundles
            .active_rules()
            .into_iter()
            .map(|r| (r.name, r.version, r.files))
            .collect();
        assert_eq!(rules_after, rules_before, "{shown}");
        assert_eq!(bundles.license_state(), license_before, "{shown}");
        assert_eq!(bundles.config_layer_now(), layer_before, "{shown}");
        // ...and a fresh open (a restart) sees the same.
        drop(bundles);
        let again = Bundles::open(&data, reopen_settings()).unwrap();
        assert_eq!(
            again.status(now_ms).bundles,
            status_before.bundles,
            "{shown}"
        );
        drop(again);
        assert_eq!(
            snapshot(&data, &history),
            before,
            "{shown}: reopening changed it"
        );
    }
}

/// Settings good enough to reopen a data directory (keys are not needed to read the state).
fn reopen_settings() -> BundleSettings {
    BundleSettings {
        trusted_keys: Vec::new(),
        license_keys: Vec::new(),
        limits: bundle::Limits::default(),
        max_clock_skew: Duration::from_secs(86_400),
        site: None,
        grace: Duration::ZERO,
        sandbox: sandbox_limits(),
        agent_version: agent_version(),
    }
}
