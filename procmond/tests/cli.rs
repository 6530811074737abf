//! `procmond --once` as an operator runs it: output formats, configuration layers and the
//! exit codes of INTERFACE.md (0 success, 2 usage or configuration error).

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs procmond with a clean configuration environment: no user file, no DAEMONEYE_ vars.
fn procmond(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procmond"));
    for (name, _) in std::env::vars() {
        if name.starts_with("DAEMONEYE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .envs(env.iter().copied());
    cmd.args(args).output().expect("procmond runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_output_lists_this_test_process() {
    let home = tempfile::tempdir().unwrap();
    let out = procmond(&["--once", "--format", "json"], &[], home.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == std::process::id())
        .expect("the test process is listed");
    assert_eq!(me["on_disk"], 1);
    assert_eq!(me["exe_sha256"].as_str().map(str::len), Some(64));
    assert!(doc["scan"]["scan_id"].is_number());
}

#[test]
fn table_output_has_a_header_and_a_row_per_process() {
    let home = tempfile::tempdir().unwrap();
    let out = procmond(&["--once"], &[], home.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.split_whitespace().eq([
        "PID", "PPID", "UID", "S", "ON_DISK", "SHA256", "NAME", "CMDLINE"
    ]));
    let me = std::process::id().to_string();
    assert!(
        lines.any(|l| l.split_whitespace().next() == Some(me.as_str())),
        "{text}"
    );
}

#[test]
fn without_once_it_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = procmond(&[], &[], home.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--once"), "{}", stderr(&out));
}

#[test]
fn a_bad_configuration_names_source_key_and_reason_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bad.toml");
    std::fs::write(&file, "[collection]\nhash_time_budget = \"soon\"\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let check = |args: &[&str], env: &[(&str, &str)], want: &[&str]| {
        let out = procmond(args, env, home.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        for part in want {
            assert!(err.contains(part), "{part:?} missing from {err}");
        }
        assert!(
            out.stdout.is_empty(),
            "nothing printed on a bad configuration"
        );
    };
    check(
        &["--once", "--config", file_arg],
        &[],
        &[
            file_arg,
            "collection.hash_time_budget",
            "invalid duration \"soon\"",
        ],
    );
    check(
        &["--once"],
        &[("DAEMONEYE_COLLECTION__HASH_MAX_BYTES", "0")],
        &[
            "DAEMONEYE_COLLECTION__HASH_MAX_BYTES",
            "collection.hash_max_bytes",
        ],
    );
    check(
        &["--once"],
        &[("DAEMONEYE_COLLECTION__COLOUR", "blue")],
        &["DAEMONEYE_COLLECTION__COLOUR", "unknown key"],
    );
    check(
        &["--once", "--config", "/nonexistent/daemoneye.toml"],
        &[],
        &["/nonexistent/daemoneye.toml"],
    );
}

#[test]
fn the_command_line_overrides_file_and_environment() {
    // The file asks for huge executables to be hashed, the flag for none: the flag wins and
    // every executable is reported too large instead of hashed.
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config.toml");
    std::fs::write(&file, "[collection]\nhash_max_bytes = 1073741824\n").unwrap();
    let out = procmond(
        &[
            "--once",
            "--format",
            "json",
            "--config",
            file.to_str().unwrap(),
            "--hash-max-bytes",
            "1",
        ],
        &[("DAEMONEYE_COLLECTION__HASH_MAX_BYTES", "1073741824")],
        home.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["scan"]["hashed_files"], 0, "{}", doc["scan"]);
    assert!(doc["scan"]["errors"]["hash_too_large"].as_u64().unwrap() > 0);
    let hashed = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["exe_sha256"].is_null())
        .count();
    assert_eq!(hashed, 0);
}
