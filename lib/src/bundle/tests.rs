#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::detection::sandbox::Limits as SandboxLimits;
use crate::minisign::SecretKey;

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
