//! Tests of the bundle state machine: real bundles packed and signed with lib's bundler code
//! and fresh minisign keys, in temporary data directories; the negative cases first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use daemoneye_lib::bundle::pack;
use daemoneye_lib::ipc::proto::Page;
use daemoneye_lib::minisign::SecretKey;

use super::*;

/// 2026-09-21, between every test bundle's `created` and `expires`.
const NOW_MS: i64 = 1_790_000_000_000;
const NOW: i64 = NOW_MS / 1000;
static SEQ: AtomicU64 = AtomicU64::new(0);

fn rule(id: &str) -> String {
    format!(
        r#"[[rule]]
id = "{id}"
name = "nc"
severity = "high"
mitre = ["T1059"]
description = "a test rule"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{{ pid = 1, name = "nc" }}]
expect_rows = 1
"#
    )
}

fn sandbox() -> sandbox::Limits {
    sandbox::Limits {
        timeout: Duration::from_secs(5),
        max_rows: 1000,
        max_memory: 64 << 20,
    }
}

/// A data directory, two configured keys (bundles, licenses) and a place to build bundles.
struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
    key: SecretKey,
    license_key: SecretKey,
    settings: BundleSettings,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    let keys = tmp.path().join("keys");
    for dir in [&data, &out, &keys] {
        fs::create_dir(dir).unwrap();
    }
    let key = SecretKey::generate().unwrap();
    let license_key = SecretKey::generate().unwrap();
    fs::write(keys.join("bundle.pub"), key.public_key().to_file_text()).unwrap();
    fs::write(
        keys.join("license.pub"),
        license_key.public_key().to_file_text(),
    )
    .unwrap();
    let settings = BundleSettings {
        trusted_keys: vec![keys.join("bundle.pub")],
        license_keys: vec![keys.join("license.pub")],
        limits: bundle::Limits::default(),
        max_clock_skew: Duration::from_secs(86_400),
        site: Some(SiteId::parse("plant-7").unwrap()),
        grace: Duration::from_secs(14 * 86_400),
        sandbox: sandbox(),
        agent_version: agent_version(),
    };
    Env {
        _tmp: tmp,
        data,
        out,
        key,
        license_key,
        settings,
    }
}

impl Env {
    fn open(&self) -> Bundles {
        Bundles::open(&self.data, self.settings.clone()).unwrap()
    }

    /// Builds and signs a bundle of `kind` from `files`; returns the `.bundle` path.
    fn build(
        &self,
        name: &str,
        kind: &str,
        version: u64,
        header: &str,
        files: &[(&str, String)],
        key: &SecretKey,
    ) -> PathBuf {
        let src = self
            .out
            .join(format!("src-{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir_all(src.join(kind)).unwrap();
        fs::write(
            src.join("bundle.toml"),
            format!(
                "name = \"{name}\"\nkind = \"{kind}\"\nversion = {version}\n\
                 created = \"2026-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
                 min_agent_version = \"0.1.0\"\n{header}"
            ),
        )
        .unwrap();
        for (path, text) in files {
            fs::write(src.join(path), text).unwrap();
        }
        let source = pack::read_source(&src, &bundle::Limits::default()).unwrap();
        let (bytes, manifest, _) = pack::pack(&source, sandbox(), |_, _| {}).unwrap();
        let signature = pack::sign(&bytes, &manifest, key).unwrap();
        let path = self.out.join(format!(
            "{name}-{version}-{}.bundle",
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        pack::write(&path, &bytes, &signature).unwrap();
        path
    }

    fn rules(&self, name: &str, version: u64, key: &SecretKey) -> PathBuf {
        self.build(
            name,
            "rules",
            version,
            "sites = [\"*\"]\n",
            &[("rules/t.toml", rule(&format!("T-{version}")))],
            key,
        )
    }

    fn keys(&self, name: &str, version: u64, keys_toml: String, key: &SecretKey) -> PathBuf {
        self.build(
            name,
            "keys",
            version,
            "sites = [\"*\"]\n",
            &[("keys/keys.toml", keys_toml)],
            key,
        )
    }

    fn license(&self, version: u64, key: &SecretKey) -> PathBuf {
        let license = "site = \"plant-7\"\ntier = \"business\"\n\
                       features = [\"curated-rules\"]\nissued = \"2026-01-01T00:00:00Z\"\n\
                       expires = \"2029-01-01T00:00:00Z\"\n";
        self.build(
            "plant-7-license",
            "license",
            version,
            "sites = [\"plant-7\"]\n",
            &[("license/license.toml", license.to_owned())],
            key,
        )
    }
}

/// Every path under `dir` with its bytes (`None` for a directory), but the history.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if relative == Path::new(DIR).join(HISTORY) {
                continue;
            }
            if path.is_dir() {
                out.insert(relative, None);
                walk(root, &path, out);
            } else {
                out.insert(relative, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Installs `path` from the CLI and asserts it was applied.
fn install_ok(bundles: &mut Bundles, path: &Path) {
    let decision = bundles.install_file(path, "cli", NOW_MS);
    assert!(decision.applied(), "{:?}", decision.proto);
}

fn history_len(bundles: &Bundles) -> usize {
    bundles.history(&Page::default()).unwrap().entries.len()
}

fn assert_refused(decision: &Decision, step: &str, reason: &str) {
    assert_eq!(
        decision.proto.action,
        BundleAction::Refused as i32,
        "{decision:?}"
    );
    assert_eq!(decision.proto.step, step, "{decision:?}");
    assert!(
        decision.proto.reason.contains(reason),
        "{}",
        decision.proto.reason
    );
    assert_eq!(decision.changed, None);
    assert!(matches!(decision.ledger, Body::BundleRefused { .. }));
}

#[test]
fn a_refused_install_changes_nothing_but_the_history() {
    let env = env();
    let mut bundles = env.open();
    let v2 = env.rules("base", 2, &env.key);
    assert!(bundles.install_file(&v2, "cli", NOW_MS).applied());
    let before = snapshot(&env.data);

    // A flipped byte: the signature no longer verifies.
    let flipped = env.out.join("flipped.bundle");
    let mut bytes = fs::read(env.rules("base", 3, &env.key)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&flipped, bytes).unwrap();
    let mut sig = env.rules("base", 3, &env.key).into_os_string();
    sig.push(".minisig");
    fs::copy(&sig, env.out.join("flipped.bundle.minisig")).unwrap();
    let decision = bundles.install_file(&flipped, "cli", NOW_MS);
    assert_refused(&decision, "signature", "flipped.bundle");
    assert_eq!(decision.proto.name, "");

    // An untrusted key.
    let stranger = SecretKey::generate().unwrap();
    let untrusted = env.rules("base", 3, &stranger);
    assert_refused(
        &bundles.install_file(&untrusted, "cli", NOW_MS),
        "signature",
        "",
    );

    // A replay of the active version, and a rollback to a lower one.
    let replay = bundles.install_file(&v2, "cli", NOW_MS);
    assert_refused(&replay, "version", "not above version 2");
    assert_eq!(replay.proto.name, "base");
    assert_eq!(replay.proto.version, Some(2));
    let lower = env.rules("base", 1, &env.key);
    assert_refused(
        &bundles.install_file(&lower, "cli", NOW_MS),
        "version",
        "not above",
    );

    // A missing file and a missing signature.
    assert_refused(
        &bundles.install_file(&env.out.join("nope.bundle"), "cli", NOW_MS),
        "read",
        "nope.bundle",
    );
    let unsigned = env.out.join("unsigned.bundle");
    fs::copy(&v2, &unsigned).unwrap();
    assert_refused(
        &bundles.install_file(&unsigned, "cli", NOW_MS),
        "signature",
        "unsigned.bundle.minisig",
    );

    assert_eq!(snapshot(&env.data), before);
    assert_eq!(history_len(&bundles), 7);
    assert_eq!(bundles.active_rules()[0].version, 2);
}

#[test]
fn a_refusal_in_a_fresh_data_directory_creates_only_the_history() {
    let env = env();
    let mut bundles = env.open();
    let before = snapshot(&env.data);
    let stranger = SecretKey::generate().unwrap();
    let decision = bundles.install_file(&env.rules("base", 1, &stranger), "cli", NOW_MS);
    assert_refused(&decision, "signature", "");
    assert_eq!(snapshot(&env.data), before);
    assert!(env.data.join(DIR).join(HISTORY).exists());
    assert!(!env.data.join(DIR).join(STATE).exists());
}

#[test]
fn an_install_applies_and_survives_a_restart() {
    let env = env();
    let mut bundles = env.open();
    let path = env.rules("base", 1, &env.key);
    let decision = bundles.install_file(&path, "cli", NOW_MS);
    assert!(decision.applied(), "{decision:?}");
    assert_eq!(decision.changed, Some(Kind::Rules));
    assert_eq!(decision.proto.reason, "1 rules in 1 files");
    let sha = bundle::open::sha256(&fs::read(&path).unwrap());
    assert_eq!(decision.proto.sha256, daemoneye_lib::text::hex(&sha));
    assert_eq!(
        decision.ledger,
        Body::BundleAccepted {
            name: "base".to_owned(),
            version: "1".to_owned(),
            sha256: sha,
        }
    );
    let state = fs::read_to_string(env.data.join(DIR).join(STATE)).unwrap();
    assert!(
        state.contains("\"base\"") && state.contains("\"format\": 1"),
        "{state}"
    );
    let stored = env.data.join(DIR).join("store/base/1");
    assert!(
        !stored.join("rules").exists(),
        "the bundle file is kept, not its files"
    );
    assert_eq!(
        fs::read(stored.join("bundle")).unwrap(),
        fs::read(&path).unwrap()
    );
    for file in ["manifest.toml", "bundle.minisig"] {
        assert!(stored.join(file).is_file());
    }
    let expected = vec![ActiveRules {
        name: "base".to_owned(),
        version: 1,
        requires_license: None,
        files: vec![("rules/t.toml".to_owned(), rule("T-1"))],
    }];
    assert_eq!(bundles.active_rules(), expected);
    let history = bundles.history(&Page::default()).unwrap();
    assert_eq!(history.entries, vec![decision.proto.clone()]);

    drop(bundles);
    let bundles = env.open();
    assert_eq!(bundles.active_rules(), expected);
    let status = bundles.status(NOW_MS);
    assert!(status.problems.is_empty(), "{:?}", status.problems);
    assert_eq!(status.bundles.len(), 1);
    assert!(status.bundles[0].in_force);
    assert_eq!(status.keys.len(), 2);
}

#[test]
fn a_rolled_back_version_cannot_be_installed_again() {
    let env = env();
    let mut bundles = env.open();
    assert_eq!(
        bundles.rollback(None, NOW_MS).unwrap_err(),
        "no active bundle has a previous version: there is nothing to roll back"
    );
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    let v2 = env.rules("base", 2, &env.key);
    assert!(bundles.install_file(&v2, "cli", NOW_MS + 1).applied());
    let store = env.data.join(DIR).join("store/base");
    assert!(store.join("1").is_dir() && store.join("2").is_dir());

    let decision = bundles.rollback(Some("base"), NOW_MS + 2).unwrap();
    assert_eq!(decision.proto.action, BundleAction::RolledBack as i32);
    assert_eq!(
        (decision.proto.version, decision.proto.from_version),
        (Some(1), Some(2))
    );
    assert_eq!(decision.changed, Some(Kind::Rules));
    assert_eq!(
        decision.ledger,
        Body::BundleRolledBack {
            name: "base".to_owned(),
            from_version: "2".to_owned(),
            to_version: "1".to_owned(),
        }
    );
    assert_eq!(bundles.active_rules()[0].version, 1);
    assert!(!store.join("2").exists());

    assert_refused(
        &bundles.install_file(&v2, "cli", NOW_MS),
        "version",
        "replay",
    );
    assert_eq!(
        bundles.rollback(Some("base"), NOW_MS).unwrap_err(),
        "\"base\" version 1 has no previous version to roll back to"
    );
    assert_eq!(
        bundles.rollback(None, NOW_MS).unwrap_err(),
        "no active bundle has a previous version: there is nothing to roll back"
    );
    assert!(bundles.rollback(Some("other"), NOW_MS).is_err());
    // The history, newest first, in pages.
    let page = bundles
        .history(&Page {
            cursor: String::new(),
            max: 2,
        })
        .unwrap();
    assert_eq!(page.entries[0].step, "version");
    assert_eq!(page.entries[1].action, BundleAction::RolledBack as i32);
    let rest = bundles
        .history(&Page {
            cursor: page.next_cursor,
            max: 0,
        })
        .unwrap();
    assert_eq!(rest.entries.len(), 2);
    assert_eq!(rest.next_cursor, "");
    assert!(
        bundles
            .history(&Page {
                cursor: "x".to_owned(),
                max: 0
            })
            .is_err()
    );

    drop(bundles);
    let mut bundles = env.open();
    assert_refused(
        &bundles.install_file(&v2, "cli", NOW_MS),
        "version",
        "replay",
    );
    install_ok(&mut bundles, &env.rules("base", 3, &env.key));
}

#[test]
fn a_keys_bundle_adds_and_revokes_keys_for_good() {
    let env = env();
    let mut bundles = env.open();
    let new = SecretKey::generate().unwrap();
    let keys = format!(
        "[[add]]\nrole = \"bundles\"\npublic_key = \"{}\"\n\n[[revoke]]\nkey_id = \"{}\"\n",
        new.public_key().to_base64(),
        env.key.key_id()
    );
    let decision = bundles.install_file(&env.keys("site-keys", 1, keys, &env.key), "cli", NOW_MS);
    assert!(decision.applied(), "{decision:?}");
    assert_eq!(decision.changed, Some(Kind::Keys));

    for mut bundles in [bundles, env.open()] {
        let old = bundles.install_file(&env.rules("base", 1, &env.key), "cli", NOW_MS);
        assert_refused(&old, "signature", "revoked");
        let status = bundles.status(NOW_MS);
        assert_eq!(status.revoked, vec![env.key.key_id().to_string()]);
        assert!(
            status
                .keys
                .iter()
                .any(|k| k.key_id == new.key_id().to_string()
                    && k.source == "keys bundle site-keys-1")
        );
        assert!(
            !status
                .keys
                .iter()
                .any(|k| k.key_id == env.key.key_id().to_string())
        );
        assert!(
            bundles
                .rollback(Some("site-keys"), NOW_MS)
                .unwrap_err()
                .contains("keys bundle")
        );
    }
    let mut bundles = env.open();
    let decision = bundles.install_file(&env.rules("base", 1, &new), "cli", NOW_MS);
    assert!(decision.applied(), "{decision:?}");
    assert_eq!(decision.proto.signer, new.key_id().to_string());
}

#[test]
fn open_removes_what_an_interrupted_apply_left() {
    let env = env();
    let mut bundles = env.open();
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    drop(bundles);
    let dir = env.data.join(DIR);
    let state_before = fs::read(dir.join(STATE)).unwrap();
    // Crashed in step 1 (staging), after step 2 (renamed, state not replaced), inside
    // atomic_replace (its temporary file), and a name state.json never knew.
    fs::create_dir_all(dir.join("staging/base-2-1-0/rules")).unwrap();
    fs::write(dir.join("staging/base-2-1-0/rules/t.toml"), "half").unwrap();
    fs::create_dir_all(dir.join("store/base/2/rules")).unwrap();
    fs::write(dir.join("store/base/2/rules/t.toml"), rule("T-2")).unwrap();
    fs::create_dir_all(dir.join("store/ghost/1")).unwrap();
    fs::write(dir.join(".state.json.4242.0.tmp"), b"{\"format\": 1").unwrap();

    let mut bundles = env.open();
    assert!(!dir.join("staging/base-2-1-0").exists());
    assert!(!dir.join("store/base/2").exists());
    assert!(!dir.join("store/ghost").exists());
    assert!(!dir.join(".state.json.4242.0.tmp").exists());
    assert_eq!(fs::read(dir.join(STATE)).unwrap(), state_before);
    let status = bundles.status(NOW_MS);
    assert_eq!(
        status
            .bundles
            .iter()
            .map(|b| (b.name.as_str(), b.version))
            .collect::<Vec<_>>(),
        vec![("base", 1)]
    );
    assert!(status.problems.is_empty(), "{:?}", status.problems);

    // A leftover of the very version being applied is replaced.
    fs::create_dir_all(dir.join("store/base/2/rules")).unwrap();
    fs::write(dir.join("store/base/2/rules/t.toml"), "stale").unwrap();
    install_ok(&mut bundles, &env.rules("base", 2, &env.key));
    assert!(
        !dir.join("store/base/2/rules").exists(),
        "the leftover is gone"
    );
    assert_eq!(bundles.active_rules()[0].files[0].1, rule("T-2"));
    assert!(dir.join("store/base/1").is_dir());
    assert_eq!(fs::read_dir(dir.join("staging")).unwrap().count(), 0);
}

#[test]
fn a_damaged_or_unknown_state_file_stops_bundles_not_the_agent_and_is_left_alone() {
    let env = env();
    let mut bundles = env.open();
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    drop(bundles);
    let path = env.data.join(DIR).join(STATE);
    let stored = env.data.join(DIR).join("store/base/1/bundle");
    for (bytes, expected) in [
        (&b"{\"format\": 1, \"active\": "[..], "damaged: not JSON"),
        (
            &b"{\"format\": 2}"[..],
            "format 2, this agent reads format 1 only",
        ),
        (&b"{\"format\": 1, \"surprise\": 1}"[..], "unknown field"),
    ] {
        fs::write(&path, bytes).unwrap();
        let mut bundles = Bundles::open(&env.data, env.settings.clone()).unwrap();
        let broken = bundles.broken().unwrap().to_owned();
        assert!(broken.contains(&path.display().to_string()), "{broken}");
        assert!(broken.contains(expected), "{broken}");
        let status = bundles.status(NOW_MS);
        assert_eq!(status.state_error, broken);
        assert!(status.bundles.is_empty());
        assert!(bundles.active_rules().is_empty());
        let refused = bundles.install_file(&env.rules("base", 2, &env.key), "cli", NOW_MS);
        assert_refused(&refused, "state", "damaged");
        assert!(bundles.rollback(Some("base"), NOW_MS).is_err());
        assert!(bundles.poll_inbox(NOW_MS).is_empty());
        // Nothing of what the state may name is touched.
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert!(stored.is_file(), "the store is kept");
        assert!(Bundles::config_layer(&env.data).unwrap().is_none());
    }
}

#[test]
fn a_damaged_stored_file_is_a_problem_and_not_used() {
    let env = env();
    let mut bundles = env.open();
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    install_ok(&mut bundles, &env.rules("other", 1, &env.key));
    drop(bundles);
    let file = env.data.join(DIR).join("store/base/1/bundle");
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fs::write(&file, bytes).unwrap();

    let bundles = env.open();
    let names: Vec<String> = bundles.active_rules().into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec!["other".to_owned()]);
    let status = bundles.status(NOW_MS);
    assert_eq!(status.problems.len(), 1, "{:?}", status.problems);
    assert!(status.problems[0].contains("bundle base version 1 is damaged"));
    assert!(
        !status
            .bundles
            .iter()
            .find(|b| b.name == "base")
            .unwrap()
            .in_force
    );
}

#[test]
fn a_missing_key_file_trusts_nothing_and_a_bad_one_is_a_problem() {
    let mut env = env();
    env.settings
        .trusted_keys
        .push(PathBuf::from("/nonexistent/key.pub"));
    let bad = env.data.join("bad.pub");
    fs::create_dir_all(&env.data).unwrap();
    fs::write(&bad, "untrusted comment: x\nnot a key\n").unwrap();
    env.settings.trusted_keys.push(bad.clone());
    let bundles = env.open();
    let status = bundles.status(NOW_MS);
    assert_eq!(status.problems.len(), 1, "{:?}", status.problems);
    assert!(
        status.problems[0].contains("bad.pub"),
        "{:?}",
        status.problems
    );
    assert_eq!(status.keys.len(), 2);
}

#[test]
fn a_key_file_installed_after_the_start_is_trusted_at_the_next_install() {
    let mut env = env();
    let later = env.data.join("later.pub");
    env.settings.trusted_keys = vec![later.clone()];
    let mut bundles = env.open();
    assert!(bundles.status(NOW_MS).problems.is_empty());
    let v1 = env.rules("base", 1, &env.key);
    let refused = bundles.install_file(&v1, "cli", NOW_MS);
    assert!(!refused.applied(), "no key is trusted yet");
    fs::write(&later, env.key.public_key().to_file_text()).unwrap();
    let applied = bundles.install_file(&v1, "cli", NOW_MS + 1);
    assert!(applied.applied(), "{:?}", applied.proto);
}

#[test]
fn the_inbox_takes_a_pair_once_it_stopped_changing() {
    let env = env();
    let mut bundles = env.open();
    let inbox = env.data.join(INBOX);
    let drop_pair = |from: &Path, name: &str| {
        fs::copy(from, inbox.join(name)).unwrap();
        let mut sig = from.as_os_str().to_owned();
        sig.push(".minisig");
        fs::copy(sig, inbox.join(format!("{name}.minisig"))).unwrap();
    };
    let v1 = env.rules("base", 1, &env.key);
    drop_pair(&v1, "base-1.bundle");
    fs::copy(&v1, inbox.join("lonely.bundle")).unwrap();
    fs::write(inbox.join("notes.txt"), "ignored").unwrap();

    assert!(bundles.poll_inbox(NOW_MS).is_empty());
    assert_eq!(
        bundles.status(NOW_MS).pending,
        vec!["base-1.bundle".to_owned(), "lonely.bundle".to_owned()]
    );
    let decisions = bundles.poll_inbox(NOW_MS + 1);
    assert_eq!(decisions.len(), 1);
    assert!(decisions[0].applied());
    assert_eq!(decisions[0].proto.source, "inbox");
    let applied = inbox.join("applied");
    let moved = format!("{}-base-1.bundle", NOW_MS + 1);
    assert!(applied.join(&moved).is_file());
    assert!(applied.join(format!("{moved}.minisig")).is_file());
    assert!(!inbox.join("base-1.bundle").exists());

    // A pair that changes between two polls waits; the replay is then refused and filed.
    drop_pair(&v1, "again.bundle");
    assert!(bundles.poll_inbox(NOW_MS + 2).is_empty());
    fs::write(inbox.join("again.bundle.minisig"), "changed\n").unwrap();
    assert!(bundles.poll_inbox(NOW_MS + 3).is_empty());
    drop_pair(&v1, "again.bundle");
    assert!(bundles.poll_inbox(NOW_MS + 4).is_empty());
    let decisions = bundles.poll_inbox(NOW_MS + 5);
    assert_eq!(decisions.len(), 1);
    assert_refused(&decisions[0], "version", "replay");
    assert!(
        inbox
            .join("refused")
            .join(format!("{}-again.bundle", NOW_MS + 5))
            .is_file()
    );

    for _ in 0..3 {
        assert!(bundles.poll_inbox(NOW_MS + 6).is_empty());
    }
    assert!(inbox.join("lonely.bundle").is_file());
    assert_eq!(
        bundles.status(NOW_MS).pending,
        vec!["lonely.bundle".to_owned()]
    );
}

#[test]
fn the_inbox_keeps_the_newest_pairs_only() {
    let env = env();
    let mut bundles = env.open();
    let inbox = env.data.join(INBOX);
    let stranger = SecretKey::generate().unwrap();
    let refused = env.rules("base", 1, &stranger);
    let mut sig = refused.as_os_str().to_owned();
    sig.push(".minisig");
    for round in 0..(inbox::KEEP as i64 + 2) {
        fs::copy(&refused, inbox.join("x.bundle")).unwrap();
        fs::copy(&sig, inbox.join("x.bundle.minisig")).unwrap();
        bundles.poll_inbox(NOW_MS + round * 10);
        assert_eq!(bundles.poll_inbox(NOW_MS + round * 10 + 1).len(), 1);
    }
    let left = fs::read_dir(inbox.join("refused")).unwrap().count();
    assert_eq!(left, 2 * inbox::KEEP);
    assert!(
        !inbox
            .join("refused")
            .join(format!("{}-x.bundle", NOW_MS + 1))
            .exists()
    );
}

#[test]
fn a_license_bundle_signed_by_a_license_key_licenses_this_site() {
    let env = env();
    let mut bundles = env.open();
    assert!(
        bundles
            .license_state()
            .allows("curated-rules", NOW)
            .is_err()
    );
    // A bundle key may not sign a license.
    assert_refused(
        &bundles.install_file(&env.license(1, &env.key), "cli", NOW_MS),
        "signature",
        "may not sign a license bundle",
    );
    let decision = bundles.install_file(&env.license(1, &env.license_key), "cli", NOW_MS);
    assert!(decision.applied(), "{decision:?}");
    assert_eq!(decision.changed, Some(Kind::License));
    assert_eq!(bundles.license_state().allows("curated-rules", NOW), Ok(()));
    assert!(bundles.license_state().allows("splunk_hec", NOW).is_err());
    let info = bundles.status(NOW_MS).license.unwrap();
    assert!(info.in_force);
    assert_eq!(info.tier, "business");

    // A rule pack that needs the feature is in force under it.
    let pack = env.build(
        "curated",
        "rules",
        1,
        "sites = [\"*\"]\nrequires_license = \"curated-rules\"\n",
        &[("rules/t.toml", rule("C-1"))],
        &env.key,
    );
    assert!(bundles.install_file(&pack, "cli", NOW_MS).applied());
    let rules = bundles.active_rules();
    assert_eq!(rules[0].requires_license.as_deref(), Some("curated-rules"));
    let status = bundles.status(NOW_MS);
    assert!(status.bundles.iter().all(|b| b.in_force), "{status:?}");
    assert_eq!(
        env.open().license_state().allows("curated-rules", NOW),
        Ok(())
    );
}

#[test]
fn a_config_bundle_is_the_config_layer_and_one_of_a_kind() {
    let env = env();
    assert_eq!(Bundles::config_layer(&env.data).unwrap(), None);
    let mut bundles = env.open();
    let config = |name: &str, version: u64, text: &str| {
        env.build(
            name,
            "config",
            version,
            "sites = [\"*\"]\n",
            &[("config/config.toml", text.to_owned())],
            &env.key,
        )
    };
    let decision = bundles.install_file(
        &config("site-config", 3, "[storage]\nretention_scans = 50\n"),
        "cli",
        NOW_MS,
    );
    assert!(decision.applied(), "{decision:?}");
    let expected = BundleLayer {
        source: "bundle site-config version 3".to_owned(),
        text: "[storage]\nretention_scans = 50\n".to_owned(),
    };
    assert_eq!(bundles.config_layer_now(), Some(expected.clone()));
    assert_eq!(Bundles::config_layer(&env.data).unwrap(), Some(expected));

    let other = bundles.install_file(
        &config("other-config", 1, "[storage]\nretention_scans = 60\n"),
        "cli",
        NOW_MS + 1,
    );
    assert!(other.applied(), "{other:?}");
    assert!(
        other
            .proto
            .reason
            .contains("replaces config bundle site-config version 3")
    );
    let layer = Bundles::config_layer(&env.data).unwrap().unwrap();
    assert_eq!(layer.source, "bundle other-config version 1");
    assert!(!env.data.join(DIR).join("store/site-config").exists());
}

#[test]
fn the_agent_version_parses() {
    assert_eq!(
        agent_version().to_string(),
        env!("CARGO_PKG_VERSION").split(['-', '+']).next().unwrap()
    );
}

#[test]
fn a_bundle_signed_by_a_key_revoked_since_says_so_and_is_not_rolled_back_to() {
    let env = env();
    let mut bundles = env.open();
    let new = SecretKey::generate().unwrap();
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    let keys = format!(
        "[[add]]\nrole = \"bundles\"\npublic_key = \"{}\"\n\n[[revoke]]\nkey_id = \"{}\"\n",
        new.public_key().to_base64(),
        env.key.key_id()
    );
    install_ok(&mut bundles, &env.keys("site-keys", 1, keys, &env.key));
    let status = bundles.status(NOW_MS);
    assert!(status.problems.is_empty(), "{:?}", status.problems);
    let base = status.bundles.iter().find(|b| b.name == "base").unwrap();
    assert!(base.in_force);
    assert!(
        base.note.ends_with(&format!(
            "signed by key {}, which keys bundle site-keys-1 revoked since: re-sign it with a \
             trusted key",
            env.key.key_id()
        )),
        "{}",
        base.note
    );
    let keys = status
        .bundles
        .iter()
        .find(|b| b.name == "site-keys")
        .unwrap();
    assert!(!keys.note.contains("revoked"), "{}", keys.note);
    install_ok(&mut bundles, &env.rules("base", 2, &new));
    let refused = bundles.rollback(Some("base"), NOW_MS).unwrap_err();
    assert!(refused.contains("revoked: it is not restored"), "{refused}");
    assert_eq!(active_version(&bundles, "base"), Some(2));
}

fn active_version(bundles: &Bundles, name: &str) -> Option<u64> {
    bundles
        .status(NOW_MS)
        .bundles
        .iter()
        .find(|b| b.name == name)
        .map(|b| b.version)
}

#[test]
fn a_change_is_recorded_in_the_ledger_and_the_history_even_after_a_crash_between() {
    let env = env();
    let mut bundles = env.open();
    let decision = bundles.install_file(&env.rules("base", 1, &env.key), "cli", NOW_MS);
    assert!(decision.applied());
    // The switch made the change and its unrecorded mark in one step.
    let waiting = bundles.unrecorded();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].0, "base");
    assert_eq!(waiting[0].1, NOW_MS);
    assert_eq!(waiting[0].2, decision.ledger);
    drop(bundles);

    // A crash after the switch, before the history line: the line is gone.
    let history = env.data.join(DIR).join(HISTORY);
    fs::write(&history, "").unwrap();
    let mut bundles = env.open();
    let lines = bundles.history(&Page::default()).unwrap().entries;
    assert_eq!(lines.len(), 1, "the history line is added back at open");
    assert_eq!(lines[0].name, "base");
    assert_eq!(lines[0].version, Some(1));
    assert_eq!(lines[0].at_ms, NOW_MS);
    assert_eq!(
        bundles.unrecorded().len(),
        1,
        "still waiting for the ledger"
    );

    // The ledger took it: the mark goes, for good.
    bundles.mark_recorded("base", NOW_MS).unwrap();
    assert!(bundles.unrecorded().is_empty());
    drop(bundles);
    let bundles = env.open();
    assert!(bundles.unrecorded().is_empty());
    assert_eq!(bundles.history(&Page::default()).unwrap().entries.len(), 1);
}

#[test]
fn a_recheck_finds_a_stored_copy_damaged_while_the_agent_runs() {
    let env = env();
    let mut bundles = env.open();
    install_ok(&mut bundles, &env.rules("base", 1, &env.key));
    bundles.recheck();
    assert!(bundles.status(NOW_MS).problems.is_empty());
    let file = env.data.join(DIR).join("store/base/1/bundle");
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&file, bytes).unwrap();
    assert!(
        bundles.status(NOW_MS).problems.is_empty(),
        "not looked at yet"
    );
    bundles.recheck();
    let problems = bundles.status(NOW_MS).problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("the stored copy of bundle base version 1 is damaged: "),
        "{problems:?}"
    );
    // What runs was read whole at start and stays in force.
    assert_eq!(bundles.active_rules().len(), 1);
}
