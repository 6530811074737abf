//! Bundles end to end (pack, sign, verify), trusted comments, key roles, keys bundles and the
//! manifest's refusals. The attacks on verification have their fixtures and their test in
//! `lib/tests/bundle_attacks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::detection::sandbox::Limits as SandboxLimits;
use crate::ids::SiteId;
use crate::minisign::{KeyId, PrehashSigner, SecretKey};

const RULE: &str = r#"[[rule]]
id = "T-1"
name = "nc"
severity = "high"
mitre = ["T1059"]
description = "a test rule"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "nc" }]
expect_rows = 1

[[rule.test]]
processes = [{ pid = 1, name = "sh" }]
expect_rows = 0
"#;

fn header(version: u64) -> String {
    format!(
        "name = \"test-rules\"\nkind = \"rules\"\nversion = {version}\n\
         created = \"2026-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
         sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n"
    )
}

fn source(dir: &Path, version: u64) -> pack::Source {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("bundle.toml"), header(version)).unwrap();
    std::fs::write(dir.join("rules/t.toml"), RULE).unwrap();
    pack::read_source(dir, &Limits::default()).unwrap()
}

fn sandbox() -> SandboxLimits {
    SandboxLimits {
        timeout: std::time::Duration::from_secs(5),
        max_rows: 1000,
        max_memory: 64 << 20,
    }
}

#[test]
fn a_packed_bundle_is_deterministic_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 1);
    let key = SecretKey::generate().unwrap();
    let (bytes, manifest, _) = pack::pack(&src, sandbox(), |_, _| {}).unwrap();
    let (again, _, _) = pack::pack(&src, sandbox(), |_, _| {}).unwrap();
    assert_eq!(bytes, again);
    let sig = pack::sign(&bytes, &manifest, &key).unwrap();
    assert_eq!(
        sig.to_text(),
        pack::sign(&bytes, &manifest, &key).unwrap().to_text()
    );
    let trust = Trust {
        bundles: vec![key.public_key()],
        ..Trust::default()
    };
    let highest = BTreeMap::new();
    let policy = Policy {
        trust: &trust,
        limits: Limits::default(),
        now: 1_790_000_000,
        newest_signed: 0,
        max_clock_skew: 86_400,
        site: SiteCheck::Host(None),
        agent_version: Some(AgentVersion(0, 1, 0)),
        highest: &highest,
        sandbox: sandbox(),
    };
    let verified = verify(&bytes, sig.to_text().as_bytes(), &policy).unwrap();
    assert_eq!(verified.get().manifest, manifest);
    assert_eq!(verified.get().files, src.files);
    let mut highest = BTreeMap::new();
    highest.insert("test-rules".to_owned(), 1);
    let policy = Policy {
        highest: &highest,
        ..policy
    };
    let err = verify(&bytes, sig.to_text().as_bytes(), &policy).unwrap_err();
    assert_eq!(err.step(), "version", "{err}");
}

/// A fixed key, so that messages naming it can be written out.
fn seeded(id: u64, seed: u8) -> SecretKey {
    SecretKey::from_seed(KeyId::from(id.to_le_bytes()), &[seed; 32])
}

/// The policy of the first test: no site set, agent 0.1.0, judged in September 2026.
fn policy<'a>(trust: &'a Trust, highest: &'a BTreeMap<String, u64>) -> Policy<'a> {
    Policy {
        trust,
        limits: Limits::default(),
        now: 1_790_000_000,
        newest_signed: 0,
        max_clock_skew: 86_400,
        site: SiteCheck::Host(None),
        agent_version: Some(AgentVersion(0, 1, 0)),
        highest,
        sandbox: sandbox(),
    }
}

/// Packs the source directory `dir` after writing `files` (path, text) into it.
fn pack_files(dir: &Path, files: &[(&str, &str)]) -> (Vec<u8>, Manifest) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let src = pack::read_source(dir, &Limits::default()).unwrap();
    let (bytes, manifest, _) = pack::pack(&src, sandbox(), |_, _| {}).unwrap();
    (bytes, manifest)
}

fn sign_with_comment(bytes: &[u8], key: &SecretKey, comment: &str) -> String {
    let mut signer = PrehashSigner::new(key);
    signer.update(bytes);
    signer.finish(comment, "test").unwrap().to_text()
}

#[test]
fn a_stock_minisign_trusted_comment_names_the_bundle_by_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 1);
    let (bytes, _, _) = pack::pack(&src, sandbox(), |_, _| {}).unwrap();
    let key = seeded(1, 1);
    let trust = Trust {
        bundles: vec![key.public_key()],
        ..Trust::default()
    };
    let highest = BTreeMap::new();
    let policy = policy(&trust, &highest);
    // What `minisign -S -m test-rules-1.bundle` writes by default.
    let stock = sign_with_comment(
        &bytes,
        &key,
        "timestamp:1\tfile:test-rules-1.bundle\thashed",
    );
    assert!(verify(&bytes, stock.as_bytes(), &policy).is_ok());
    let other = sign_with_comment(&bytes, &key, "timestamp:1\tfile:other-1.bundle\thashed");
    let err = verify(&bytes, other.as_bytes(), &policy).unwrap_err();
    assert!(
        matches!(err, BundleError::CommentMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.step(), "trusted-comment");
    assert_eq!(
        err.to_string(),
        "the signature's trusted comment \"timestamp:1\\tfile:other-1.bundle\\thashed\" \
         does not name this bundle (bundle:test-rules version:1)"
    );
}

#[test]
fn trusted_comments_name_this_bundle_or_are_refused() {
    let header = Header::parse_source(&header(3)).unwrap();
    let check = |comment: &str, ok: bool| {
        let got = check_trusted_comment(comment, &header);
        assert_eq!(got.is_ok(), ok, "{comment:?}: {got:?}");
    };
    check(
        "bundle:test-rules\tversion:3\tkind:rules\tfile:test-rules-3.bundle",
        true,
    );
    check("timestamp:1\tfile:test-rules-3.bundle\thashed", true);
    check("bundle:test-rules\tversion:3", true);
    check("timestamp:1\tfile:test-rules-2.bundle\thashed", false);
    check("bundle:test-rules\tversion:2", false);
    check(
        "bundle:test-rules\tversion:3\tfile:test-rules-2.bundle",
        false,
    );
    check("bundle:test-rules\tversion:3\tversion:4", false);
    check("bundle:other\tversion:3", false);
    check("timestamp:1\thashed", false);
    check("", false);
    // Our form names both: a name alone or a version alone names no bundle version.
    check("bundle:test-rules", false);
    check("version:3", false);
    check("bundle:test-rules\tkind:rules", false);
}

const LICENSE: &str = r#"site = "plant-7"
tier = "business"
features = ["splunk_hec"]
issued = "2026-01-01T00:00:00Z"
expires = "2027-01-01T00:00:00Z"
"#;

#[test]
fn a_license_bundle_needs_a_license_key_and_a_rules_bundle_a_bundle_key() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, manifest) = pack_files(
        dir.path(),
        &[
            (
                "bundle.toml",
                "name = \"plant-7-license\"\nkind = \"license\"\nversion = 1\n\
                 created = \"2026-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
                 sites = [\"plant-7\"]\nmin_agent_version = \"0.1.0\"\n",
            ),
            ("license/license.toml", LICENSE),
        ],
    );
    let bundle_key = seeded(0xB0B0_0000_0000_0001, 1);
    let license_key = seeded(0x11CE_0000_0000_0002, 2);
    let trust = Trust {
        bundles: vec![bundle_key.public_key()],
        licenses: vec![license_key.public_key()],
        ..Trust::default()
    };
    let highest = BTreeMap::new();
    let site = SiteId::parse("plant-7").unwrap();
    let policy = Policy {
        site: SiteCheck::Host(Some(&site)),
        ..policy(&trust, &highest)
    };
    let by_bundle_key = pack::sign(&bytes, &manifest, &bundle_key).unwrap();
    let err = verify(&bytes, by_bundle_key.to_text().as_bytes(), &policy).unwrap_err();
    assert!(matches!(err, BundleError::WrongRole { .. }), "{err:?}");
    assert_eq!(err.step(), "signature");
    assert_eq!(
        err.to_string(),
        "signature: key B0B0000000000001 may not sign a license bundle (it is trusted for bundles only)"
    );
    let by_license_key = pack::sign(&bytes, &manifest, &license_key).unwrap();
    let verified = verify(&bytes, by_license_key.to_text().as_bytes(), &policy).unwrap();
    assert!(matches!(
        verified.get().content,
        content::Content::License(_)
    ));
    assert_eq!(verified.get().signer, license_key.key_id());

    // And the other way round: a rules bundle signed by the license key.
    let rules_dir = tempfile::tempdir().unwrap();
    let src = source(rules_dir.path(), 1);
    let (bytes, manifest, _) = pack::pack(&src, sandbox(), |_, _| {}).unwrap();
    let sig = pack::sign(&bytes, &manifest, &license_key).unwrap();
    let err = verify(&bytes, sig.to_text().as_bytes(), &policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "signature: key 11CE000000000002 may not sign a rules bundle (it is trusted for licenses only)"
    );
}

#[test]
fn a_keys_bundle_cannot_trust_a_revoked_key_again() {
    let signer = seeded(0xB0B0_0000_0000_0001, 1);
    let revoked = seeded(0xDEAD_0000_0000_0003, 3);
    let keys_toml = format!(
        "[[add]]\nrole = \"bundles\"\npublic_key = \"{}\"\n",
        revoked.public_key().to_base64()
    );
    let dir = tempfile::tempdir().unwrap();
    let (bytes, manifest) = pack_files(
        dir.path(),
        &[
            (
                "bundle.toml",
                "name = \"site-keys\"\nkind = \"keys\"\nversion = 2\n\
                 created = \"2026-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
                 sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n",
            ),
            ("keys/keys.toml", &keys_toml),
        ],
    );
    let sig = pack::sign(&bytes, &manifest, &signer).unwrap().to_text();
    let highest = BTreeMap::new();
    let trust = Trust {
        bundles: vec![signer.public_key()],
        ..Trust::default()
    };
    // Not revoked: the bundle adds it.
    assert!(verify(&bytes, sig.as_bytes(), &policy(&trust, &highest)).is_ok());
    let trust = Trust {
        revoked: vec![revoked.key_id()],
        ..trust
    };
    let err = verify(&bytes, sig.as_bytes(), &policy(&trust, &highest)).unwrap_err();
    assert_eq!(err.step(), "content");
    assert_eq!(
        err.to_string(),
        "content: keys/keys.toml: key DEAD000000000003 was revoked and cannot be trusted again"
    );
}

const HASH_A: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const HASH_B: &str = "0000000000000000000000000000000000000000000000000000000000000002";

/// A valid manifest of two files, with `top` added to its top-level keys and `files` as its
/// `[[file]]` tables.
fn manifest_text(top: &str, files: &[(&str, &str)]) -> String {
    let mut text = format!(
        "format = 1\nname = \"test-rules\"\nkind = \"rules\"\nversion = 1\n\
         created = \"2026-01-01T00:00:00Z\"\nexpires = \"2030-01-01T00:00:00Z\"\n\
         sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n{top}"
    );
    for (path, hash) in files {
        text.push_str(&format!(
            "\n[[file]]\npath = \"{path}\"\nsize = 1\nblake3 = \"{hash}\"\n"
        ));
    }
    text
}

#[test]
fn the_manifest_refuses_what_the_format_does_not_allow() {
    let good = [("rules/a.toml", HASH_A), ("rules/b.toml", HASH_B)];
    let check = |text: String, expected: Option<&str>| {
        let got = Manifest::parse(text.as_bytes());
        match (got, expected) {
            (Ok(_), None) => {}
            (Err(BundleError::BadManifest { reason }), Some(expected)) => {
                assert_eq!(reason, expected, "{text}");
            }
            (got, expected) => panic!("{text}\nexpected {expected:?}, got {got:?}"),
        }
    };
    check(manifest_text("", &good), None);
    check(
        manifest_text("colour = \"red\"\n", &good),
        Some("unknown key \"colour\""),
    );
    check(
        manifest_text("", &[("rules/b.toml", HASH_B), ("rules/a.toml", HASH_A)]),
        Some("file \"rules/a.toml\" is out of order or named twice"),
    );
    check(
        manifest_text("", &[("rules/a.toml", HASH_A), ("rules/a.toml", HASH_B)]),
        Some("file \"rules/a.toml\" is out of order or named twice"),
    );
    let upper = HASH_A.replace('0', "A");
    check(
        manifest_text("", &[("rules/a.toml", &upper)]),
        Some("file \"rules/a.toml\": blake3 is not 64 lower-case hex digits"),
    );
    check(
        manifest_text("", &[("rules/a.toml", &HASH_A[1..])]),
        Some("file \"rules/a.toml\": blake3 is not 64 lower-case hex digits"),
    );
    check(
        manifest_text("", &good).replace("version = 1", "version = 0"),
        Some("version: must be 1 or more"),
    );
    check(
        manifest_text("", &good).replace("2030-01-01", "2025-01-01"),
        Some("expires: 2025-01-01T00:00:00Z is not after created (2026-01-01T00:00:00Z)"),
    );
    check(
        manifest_text("", &good).replace(
            "expires = \"2030-01-01T00:00:00Z\"",
            "expires = \"2026-01-01T00:00:00Z\"",
        ),
        Some("expires: 2026-01-01T00:00:00Z is not after created (2026-01-01T00:00:00Z)"),
    );
    check(manifest_text("", &[]), Some("it lists no file"));
    check(
        manifest_text("", &[("rules/../x.toml", HASH_A)]),
        Some("path \"rules/../x.toml\" leaves the bundle"),
    );
    // An unknown key inside a [[file]] table: serde's words, but a manifest refusal.
    let text = manifest_text("", &good).replace("size = 1\n", "size = 1\nmode = 420\n");
    let err = Manifest::parse(text.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, BundleError::BadManifest { reason } if reason.contains("unknown field `mode`")),
        "{err:?}"
    );
}
