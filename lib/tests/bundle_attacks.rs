//! Every attack on bundle verification under `tests/fixtures/bundles/attacks/`, each folder a
//! bundle, its signature and a `case.toml` (the verification context and the refusal expected):
//! `verify` must refuse each at the expected step with exactly the expected message.
//!
//! Also: every attack of [`ATTACKS`] has its folder (deleting one fails), no folder is left
//! unlisted, and the generator (`lib/tests/support/bundle_fixtures.rs`, which the example
//! `make_bundle_fixtures` runs) reproduces the committed fixtures byte for byte.

// Test code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use daemoneye_lib::bundle::trust::{KeyState, parse_key_id};
use daemoneye_lib::bundle::{
    AgentVersion, BundleError, Limits, Policy, SiteCheck, Timestamp, Trust, verify,
};
use daemoneye_lib::detection::sandbox::Limits as SandboxLimits;
use daemoneye_lib::ids::SiteId;
use daemoneye_lib::minisign::{self, PublicKey, SecretKeyFile, SignatureFile};
use serde::Deserialize;

#[path = "support/bundle_fixtures.rs"]
mod bundle_fixtures;

/// Every attack, by folder. Listed here by hand, apart from the generator's list, so that a
/// folder lost from both still fails [`every_attack_has_its_folder`].
const ATTACKS: &[&str] = &[
    "bad-signature",
    "untrusted-key",
    "revoked-key",
    "legacy-signature",
    "comment-other-bundle",
    "signature-of-other-bundle",
    "truncated",
    "zstd-bomb",
    "path-dotdot",
    "path-absolute",
    "symlink",
    "hardlink",
    "device",
    "fifo",
    "duplicate-path",
    "file-not-in-manifest",
    "hash-mismatch",
    "rollback",
    "replay",
    "expired",
    "not-yet-valid",
    "wrong-site",
    "agent-too-old",
    "failing-fixture",
    "oversized-manifest",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    bundle: String,
    signature: String,
    context: Context,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Context {
    trusted_bundle_keys: Vec<String>,
    trusted_license_keys: Vec<String>,
    revoked_key_ids: Vec<String>,
    highest: BTreeMap<String, u64>,
    now: String,
    max_clock_skew: u64,
    site: Option<String>,
    agent_version: String,
    max_expanded_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    step: String,
    message: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn attacks_dir() -> PathBuf {
    fixtures().join("bundles/attacks")
}

fn public_key(name: &str) -> PublicKey {
    let path = fixtures().join(format!("keys/{name}.pub"));
    PublicKey::parse(&std::fs::read_to_string(&path).expect("reading a test key")).unwrap()
}

fn sandbox() -> SandboxLimits {
    SandboxLimits {
        timeout: std::time::Duration::from_secs(5),
        max_rows: 1000,
        max_memory: 64 << 20,
    }
}

/// Runs the case in `folder`: the refusal `verify` gives.
fn run(folder: &str) -> (Case, BundleError) {
    let dir = attacks_dir().join(folder);
    let text = std::fs::read_to_string(dir.join("case.toml")).expect("reading case.toml");
    let case: Case = toml::from_str(&text).unwrap_or_else(|err| panic!("{folder}: {err}"));
    let context = &case.context;
    let keys = |names: &[String]| names.iter().map(|n| public_key(n)).collect::<Vec<_>>();
    let mut state = KeyState::default();
    for id in &context.revoked_key_ids {
        let id = parse_key_id(id).unwrap().to_string();
        state.revoked.insert(id, "keys-rotation-1".to_owned());
    }
    let trust = Trust::new(
        &keys(&context.trusted_bundle_keys),
        &keys(&context.trusted_license_keys),
        &state,
    );
    let site = context.site.as_deref().map(|s| SiteId::parse(s).unwrap());
    let mut limits = Limits::default();
    if let Some(max) = context.max_expanded_bytes {
        limits.max_expanded_bytes = max;
    }
    let policy = Policy {
        trust: &trust,
        limits,
        now: Timestamp::parse(&context.now).unwrap().0,
        newest_signed: 0,
        max_clock_skew: context.max_clock_skew,
        site: SiteCheck::Host(site.as_ref()),
        agent_version: Some(AgentVersion::parse(&context.agent_version).unwrap()),
        highest: &context.highest,
        sandbox: sandbox(),
    };
    let bytes = std::fs::read(dir.join(&case.bundle)).expect("reading the bundle");
    let signature = std::fs::read(dir.join(&case.signature)).expect("reading the signature");
    // Every case refused after the signature step is validly signed by the trusted test key,
    // so that it is the later step, not the signature, that catches it.
    if !matches!(
        case.expect.step.as_str(),
        "size" | "signature" | "trusted-comment"
    ) {
        let parsed = SignatureFile::parse(std::str::from_utf8(&signature).unwrap()).unwrap();
        let signed = minisign::verify_reader(&[public_key("test-bundle")], &parsed, &bytes[..]);
        assert!(signed.is_ok(), "{folder}: not validly signed: {signed:?}");
    }
    match verify(&bytes, &signature, &policy) {
        Ok(_) => panic!("{folder}: the bundle was accepted"),
        Err(err) => (case, err),
    }
}

#[test]
fn every_attack_is_refused_at_its_step_with_its_message() {
    let mut failures = Vec::new();
    for folder in ATTACKS {
        let (case, err) = run(folder);
        let got = (err.step(), err.to_string());
        if got.0 != case.expect.step || got.1 != case.expect.message {
            failures.push(format!(
                "{folder}:\n  expected [{}] {}\n  got      [{}] {}",
                case.expect.step, case.expect.message, got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_attack_has_its_folder_and_no_folder_is_unlisted() {
    for folder in ATTACKS {
        let dir = attacks_dir().join(folder);
        assert!(
            dir.join("case.toml").is_file(),
            "{} is missing",
            dir.display()
        );
    }
    let mut found: Vec<String> = std::fs::read_dir(attacks_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let mut listed: Vec<String> = ATTACKS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed);
    let mut generated: Vec<&str> = bundle_fixtures::ATTACKS.to_vec();
    generated.sort_unstable();
    assert_eq!(
        generated, listed,
        "the generator's list and this one differ"
    );
}

/// Every file under `dir`, relative to it, sorted.
fn tree(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().into_string().unwrap());
        if entry.file_type().unwrap().is_dir() {
            tree(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    out.sort();
}

#[test]
fn the_generator_reproduces_the_committed_fixtures() {
    let temp = tempfile::tempdir().unwrap();
    bundle_fixtures::write_all(temp.path()).unwrap();
    let mut made = Vec::new();
    tree(temp.path(), "", &mut made);
    let mut committed = Vec::new();
    tree(&attacks_dir(), "bundles/attacks/", &mut committed);
    for name in ["test-bundle", "test-other"] {
        for ext in ["key", "pub"] {
            let path = format!("keys/{name}.{ext}");
            committed.push((path.clone(), std::fs::read(fixtures().join(&path)).unwrap()));
        }
    }
    committed.sort();
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&made), names(&committed));
    for ((path, made), (_, committed)) in made.iter().zip(&committed) {
        assert!(
            made == committed,
            "{path} differs from what the generator makes: run \
             `cargo run -p daemoneye-lib --features bundle --example make_bundle_fixtures`"
        );
    }
}

#[test]
fn the_committed_test_keys_are_the_seeded_ones_and_unencrypted() {
    for (name, key) in [
        ("test-bundle", bundle_fixtures::bundle_key()),
        ("test-other", bundle_fixtures::other_key()),
    ] {
        let text = std::fs::read_to_string(fixtures().join(format!("keys/{name}.key"))).unwrap();
        let file = SecretKeyFile::parse(&text).unwrap();
        assert!(!file.is_encrypted(), "{name}.key");
        let secret = file.unlock(None).unwrap();
        assert_eq!(secret.public_key(), key.public_key(), "{name}");
        assert_eq!(public_key(name), key.public_key(), "{name}.pub");
    }
}
