//! `daemoneye-bundler build`, `verify`, `inspect` and `license issue`, run as the operator runs
//! them (the built binary, in a temporary directory), with stock `minisign` (which `.ci/run`
//! installs) on the other side of every signature. Refusals come first.
//!
//! No test is skipped when minisign is missing: it fails, naming what to install.

// A test's helpers panic on failure as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BUNDLER: &str = env!("CARGO_BIN_EXE_daemoneye-bundler");

const GOOD_RULE: &str = r#"[[rule]]
id = "T-0001"
name = "netcat"
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

/// Runs the bundler with `args` and `stdin` (null when `None`).
fn bundler(args: &[&str], dir: &Path, stdin: Option<&str>) -> Output {
    let mut child = Command::new(BUNDLER)
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs stock minisign with `args` in `dir`.
fn minisign(args: &[&str], dir: &Path) -> Output {
    Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run stock minisign ({e}): install it (apt-get install minisign; .ci/run does)")
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts `output` exited with `code`; returns its stdout.
fn exits(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {}\nstderr {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// One line on stderr, returned.
fn one_line_error(output: &Output) -> String {
    let err = text(&output.stderr);
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    err
}

/// An unencrypted bundler key pair `NAME.key`, `NAME.pub` in `dir`.
fn key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = bundler(&["keygen", "--unencrypted", "--out", name], dir, None);
    exits(&out, 0, "keygen");
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// A rules source `dir/NAME` holding `rule` as `rules/t.toml`.
fn rules_source(dir: &Path, name: &str, version: u64, rule: &str) -> PathBuf {
    let src = dir.join(name);
    fs::create_dir_all(src.join("rules")).unwrap();
    fs::write(
        src.join("bundle.toml"),
        format!(
            "name = \"{name}\"\nkind = \"rules\"\nversion = {version}\n\
             created = \"2026-01-01T00:00:00Z\"\nexpires = \"2099-01-01T00:00:00Z\"\n\
             sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n"
        ),
    )
    .unwrap();
    fs::write(src.join("rules/t.toml"), rule).unwrap();
    src
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Builds `src` with `key` into `out`; asserts success.
fn build(dir: &Path, src: &Path, key: &Path, out: &Path) -> String {
    let output = bundler(
        &["build", s(src), "--key", s(key), "--out", s(out)],
        dir,
        None,
    );
    exits(&output, 0, "build")
}

fn sig(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

fn verify(dir: &Path, bundle: &Path, public: &Path) -> Output {
    bundler(&["verify", s(bundle), "--pub", s(public)], dir, None)
}

/// A signed test bundle `t-rules-1.bundle` in `dir`, and the key pair.
fn signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (secret, public) = key(dir, "k");
    let src = rules_source(dir, "t-rules", 1, GOOD_RULE);
    build(dir, &src, &secret, dir);
    (dir.join("t-rules-1.bundle"), secret, public)
}

#[test]
fn build_refuses_a_rule_whose_fixture_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = key(dir.path(), "k");
    let failing = GOOD_RULE.replace("expect_rows = 0", "expect_rows = 2");
    let src = rules_source(dir.path(), "t-rules", 1, &failing);
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let output = bundler(
        &["build", s(&src), "--key", s(&secret), "--out", "out"],
        dir.path(),
        None,
    );
    exits(&output, 1, "a failing fixture");
    let err = one_line_error(&output);
    assert!(
        err.contains("content:") && err.contains("T-0001") && err.contains("fixture"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        0,
        "something was written"
    );

    // An existing bundle of that name is left as it was.
    let bundle = out_dir.join("t-rules-1.bundle");
    fs::write(&bundle, b"the old bundle").unwrap();
    let output = bundler(
        &["build", s(&src), "--key", s(&secret), "--out", s(&bundle)],
        dir.path(),
        None,
    );
    exits(&output, 1, "a failing fixture, over an old bundle");
    assert_eq!(fs::read(&bundle).unwrap(), b"the old bundle");
    assert!(!sig(&bundle).exists());
}

#[test]
fn build_refuses_an_out_file_not_named_as_the_manifest_says() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = key(dir.path(), "k");
    let src = rules_source(dir.path(), "t-rules", 3, GOOD_RULE);
    for wrong in ["rules.bundle", "t-rules-2.bundle", "missing-dir/"] {
        let output = bundler(
            &["build", s(&src), "--key", s(&secret), "--out", wrong],
            dir.path(),
            None,
        );
        exits(&output, 2, wrong);
        let err = one_line_error(&output);
        assert!(err.contains("t-rules-3.bundle"), "{wrong}: {err}");
        assert!(!dir.path().join(wrong).exists());
    }
}

#[test]
fn build_refuses_a_source_with_something_a_bundle_may_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = key(dir.path(), "k");
    let src = rules_source(dir.path(), "t-rules", 1, GOOD_RULE);
    std::os::unix::fs::symlink("/etc/passwd", src.join("rules/passwd.toml")).unwrap();
    let output = bundler(
        &["build", s(&src), "--key", s(&secret), "--out", "."],
        dir.path(),
        None,
    );
    exits(&output, 1, "a symlink in the source");
    assert!(one_line_error(&output).contains("source:"));
    assert!(!dir.path().join("t-rules-1.bundle").exists());
}

#[test]
fn verify_refuses_a_flipped_byte_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, public) = signed(dir.path());
    let mut bytes = fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&bundle, &bytes).unwrap();
    let output = verify(dir.path(), &bundle, &public);
    assert!(exits(&output, 3, "a flipped byte").is_empty());
    let err = one_line_error(&output);
    assert!(err.contains("verification failed: signature:"), "{err}");
}

#[test]
fn verify_refuses_the_wrong_key_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, _) = signed(dir.path());
    let (_, other) = key(dir.path(), "other");
    let output = verify(dir.path(), &bundle, &other);
    exits(&output, 3, "the wrong key");
    let err = one_line_error(&output);
    assert!(err.contains("verification failed: signature:"), "{err}");
}

#[test]
fn verify_refuses_a_missing_signature_and_a_signature_of_another_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, secret, public) = signed(dir.path());
    // Another bundle's signature, renamed beside this one: the bytes differ.
    let src2 = rules_source(dir.path(), "t-rules-two", 1, GOOD_RULE);
    build(dir.path(), &src2, &secret, dir.path());
    fs::copy(sig(&dir.path().join("t-rules-two-1.bundle")), sig(&bundle)).unwrap();
    exits(
        &verify(dir.path(), &bundle, &public),
        3,
        "another's signature",
    );
    fs::remove_file(sig(&bundle)).unwrap();
    let output = verify(dir.path(), &bundle, &public);
    exits(&output, 3, "no signature");
    assert!(one_line_error(&output).contains("no signature"));
}

#[test]
fn verify_refuses_an_expired_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = key(dir.path(), "k");
    let src = rules_source(dir.path(), "t-rules", 1, GOOD_RULE);
    let header = fs::read_to_string(src.join("bundle.toml"))
        .unwrap()
        .replace("2099-01-01", "2020-06-01")
        .replace("2026-01-01", "2020-01-01");
    fs::write(src.join("bundle.toml"), header).unwrap();
    build(dir.path(), &src, &secret, dir.path());
    let output = verify(dir.path(), &dir.path().join("t-rules-1.bundle"), &public);
    exits(&output, 3, "expired");
    assert!(one_line_error(&output).contains("expired at 2020-06-01T00:00:00Z"));
}

#[test]
fn inspect_refuses_what_is_not_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("junk.bundle"), b"not zstd at all").unwrap();
    let output = bundler(&["inspect", "junk.bundle"], dir.path(), None);
    let out = exits(&output, 1, "junk");
    assert!(out.starts_with("NOT VERIFIED"), "{out}");
    assert!(one_line_error(&output).contains("no readable manifest"));
}

#[test]
fn license_issue_refuses_bad_input_and_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("full")).unwrap();
    fs::write(dir.path().join("full/x"), b"x").unwrap();
    // (site, tier, features, expires, out, what stderr names)
    let cases = [
        ("bad site", "business", "", "2099-01-01", "lic", "--site"),
        ("Plant-7", "business", "", "2099-01-01", "lic", "--site"),
        ("plant-7", "Gold", "", "2099-01-01", "lic", "--tier"),
        (
            "plant-7",
            "business",
            "splunk_hec,Bad",
            "2099-01-01",
            "lic",
            "--features",
        ),
        ("plant-7", "business", "", "2099-13-01", "lic", "--expires"),
        (
            "plant-7",
            "business",
            "",
            "2001-01-01",
            "lic",
            "not in the future",
        ),
        ("plant-7", "business", "", "2099-01-01", "full", "not empty"),
    ];
    for (site, tier, features, expires, out, expected) in cases {
        let mut args = vec![
            "license",
            "issue",
            "--site",
            site,
            "--tier",
            tier,
            "--expires",
            expires,
            "--out",
            out,
        ];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        let output = bundler(&args, dir.path(), None);
        exits(&output, 2, &format!("{args:?}"));
        let err = one_line_error(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!dir.path().join("lic").exists(), "{args:?} wrote");
    }
    assert_eq!(fs::read_dir(dir.path().join("full")).unwrap().count(), 1);
}

#[test]
fn build_signs_what_stock_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, public) = signed(dir.path());
    let output = minisign(
        &["-V", "-H", "-p", s(&public), "-m", s(&bundle)],
        dir.path(),
    );
    let out = exits(&output, 0, "stock minisign -V");
    assert!(
        out.contains(
            "Trusted comment: bundle:t-rules\tversion:1\tkind:rules\tfile:t-rules-1.bundle"
        ),
        "{out}"
    );
}

#[test]
fn a_bundle_signed_by_stock_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, _) = signed(dir.path());
    fs::remove_file(sig(&bundle)).unwrap();
    exits(
        &minisign(
            &["-G", "-W", "-p", "stock.pub", "-s", "stock.key"],
            dir.path(),
        ),
        0,
        "minisign -G -W",
    );
    // Stock's default trusted comment: timestamp:T<TAB>file:t-rules-1.bundle<TAB>hashed.
    exits(
        &minisign(
            &["-S", "-s", "stock.key", "-m", "t-rules-1.bundle"],
            dir.path(),
        ),
        0,
        "minisign -S",
    );
    let comment = fs::read_to_string(sig(&bundle)).unwrap();
    assert!(comment.contains("\tfile:t-rules-1.bundle\t"), "{comment}");
    let output = verify(dir.path(), &bundle, &dir.path().join("stock.pub"));
    let out = exits(&output, 0, "verify of a stock signature");
    assert!(out.contains("name: t-rules\n"), "{out}");

    // A stock signature whose trusted comment names nothing of the bundle is refused.
    exits(
        &minisign(
            &[
                "-S",
                "-s",
                "stock.key",
                "-m",
                "t-rules-1.bundle",
                "-t",
                "release notes",
            ],
            dir.path(),
        ),
        0,
        "minisign -S -t",
    );
    let output = verify(dir.path(), &bundle, &dir.path().join("stock.pub"));
    exits(&output, 3, "a comment naming nothing");
    assert!(one_line_error(&output).contains("trusted comment"));
}

#[test]
fn two_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = key(dir.path(), "k");
    let src = rules_source(dir.path(), "t-rules", 1, GOOD_RULE);
    for out in ["a", "b"] {
        fs::create_dir(dir.path().join(out)).unwrap();
        build(dir.path(), &src, &secret, &dir.path().join(out));
    }
    for name in ["t-rules-1.bundle", "t-rules-1.bundle.minisig"] {
        let a = fs::read(dir.path().join("a").join(name)).unwrap();
        let b = fs::read(dir.path().join("b").join(name)).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name} differs between two builds");
    }
}

#[test]
fn build_prints_one_summary_line_and_out_may_be_a_file_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = key(dir.path(), "k");
    let src = rules_source(dir.path(), "t-rules", 4, GOOD_RULE);
    let out = build(dir.path(), &src, &secret, Path::new("t-rules-4.bundle"));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("built t-rules-4.bundle: 1 files, "),
        "{out}"
    );
    assert!(out.contains(" bytes, signed by key "), "{out}");
    exits(
        &verify(dir.path(), &dir.path().join("t-rules-4.bundle"), &public),
        0,
        "verify",
    );
    fs::create_dir(dir.path().join("out")).unwrap();
    build(dir.path(), &src, &secret, Path::new("out"));
    assert!(dir.path().join("out/t-rules-4.bundle").is_file());
    assert!(dir.path().join("out/t-rules-4.bundle.minisig").is_file());
}

#[test]
fn build_with_a_password_protected_key_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let made = bundler(
        &["keygen", "--out", "locked"],
        dir.path(),
        Some("pass phrase\npass phrase\n"),
    );
    exits(&made, 0, "keygen with a password");
    let src = rules_source(dir.path(), "t-rules", 1, GOOD_RULE);
    let args = ["build", s(&src), "--key", "locked.key", "--out", "."];
    let wrong = bundler(&args, dir.path(), Some("pass phrasE\n"));
    exits(&wrong, 2, "a wrong password");
    assert!(text(&wrong.stderr).contains("wrong password"));
    assert!(!dir.path().join("t-rules-1.bundle").exists());
    exits(
        &bundler(&args, dir.path(), Some("pass phrase\n")),
        0,
        "build",
    );
    let output = minisign(
        &["-V", "-p", "locked.pub", "-m", "t-rules-1.bundle"],
        dir.path(),
    );
    exits(&output, 0, "stock minisign -V");
}

#[test]
fn verify_prints_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, public) = signed(dir.path());
    let out = exits(&verify(dir.path(), &bundle, &public), 0, "verify");
    let hash = blake3::hash(GOOD_RULE.as_bytes()).to_hex();
    for line in [
        "name: t-rules",
        "kind: rules",
        "version: 1",
        "created: 2026-01-01T00:00:00Z",
        "expires: 2099-01-01T00:00:00Z",
        "sites: all sites",
        "min_agent_version: 0.1.0",
        "requires_license: none",
        "files: 1",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    assert!(out.starts_with("verified "), "{out}");
    let size = GOOD_RULE.len();
    assert!(
        out.contains(&format!("{size:>10}  {hash}  rules/t.toml")),
        "{out}"
    );
}

#[test]
fn inspect_prints_the_manifest_of_an_unsigned_file() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _, _) = signed(dir.path());
    fs::remove_file(sig(&bundle)).unwrap();
    let output = bundler(&["inspect", s(&bundle)], dir.path(), None);
    let out = exits(&output, 0, "inspect");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("NOT VERIFIED"), "{out}");
    for line in [
        "name: t-rules",
        "kind: rules",
        "version: 1",
        "signature: none beside it",
        "entries: 2",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    assert!(out.contains("Regular   manifest.toml"), "{out}");
    assert!(out.contains("Regular   rules/t.toml"), "{out}");
}

#[test]
fn a_license_issued_builds_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = key(dir.path(), "licensing");
    let output = bundler(
        &[
            "license",
            "issue",
            "--site",
            "plant-7",
            "--tier",
            "business",
            "--features",
            "splunk_hec,curated-rules",
            "--expires",
            "2099-12-03",
            "--out",
            "lic",
        ],
        dir.path(),
        None,
    );
    let out = exits(&output, 0, "license issue");
    assert!(
        out.starts_with("wrote lic: license-plant-7 version "),
        "{out}"
    );
    let license = fs::read_to_string(dir.path().join("lic/license/license.toml")).unwrap();
    assert!(license.contains("site = \"plant-7\""), "{license}");
    assert!(
        license.contains("expires = \"2099-12-03T00:00:00Z\""),
        "{license}"
    );
    let header = fs::read_to_string(dir.path().join("lic/bundle.toml")).unwrap();
    let version: u64 = header
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .parse()
        .unwrap();
    let name = format!("license-plant-7-{version}.bundle");
    build(dir.path(), &dir.path().join("lic"), &secret, dir.path());
    let out = exits(
        &verify(dir.path(), &dir.path().join(&name), &public),
        0,
        "verify the license",
    );
    for line in [
        "name: license-plant-7",
        "kind: license",
        "sites: plant-7",
        "expires: 2099-12-03T00:00:00Z",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    exits(
        &minisign(&["-V", "-p", s(&public), "-m", &name], dir.path()),
        0,
        "stock minisign -V of the license",
    );
}

#[test]
fn every_bundle_source_in_the_repository_builds_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = key(dir.path(), "k");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles");
    for (src, file) in [
        ("core-rules", "core-rules-1.bundle"),
        ("examples/site-config", "site-config-1.bundle"),
        ("examples/keys-rotation", "keys-rotation-1.bundle"),
    ] {
        build(dir.path(), &root.join(src), &secret, dir.path());
        exits(&verify(dir.path(), &dir.path().join(file), &public), 0, src);
    }
}
