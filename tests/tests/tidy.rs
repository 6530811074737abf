//! The house rules that a compiler does not check, checked on every test run (in the manner of
//! rust-analyzer's `tidy.rs`):
//!
//! - every Rust file of the workspace starts with its `//!` doc (what it is for);
//! - no production file is longer than [`MAX_PRODUCTION_LINES`] lines (the part before its
//!   `#[cfg(test)]` module): a longer one is asking to be split along a seam;
//! - the pure modules (rule parsing, the Merkle tree, the entry and note codecs, the text and
//!   id checks, the frame codec) import no storage, IPC, network or filesystem code and read
//!   no clock and no environment: they take bytes and values, `now` included, and return
//!   values, so that they are table-testable and fuzzable;
//! - `unwrap` and `expect` are denied by clippy outside tests (the workspace lints say so;
//!   this test checks that they still do).

use std::path::{Path, PathBuf};

/// The longest a production file may be.
const MAX_PRODUCTION_LINES: usize = 800;

/// The workspace's crates (the fuzz crate is outside the workspace and has its own rules).
const CRATES: &[&str] = &["lib", "procmond", "agent", "cli", "bundler", "tests"];

/// Modules that must stay pure: a path, or a directory whose every production file is pure.
const PURE: &[&str] = &[
    "lib/src/accounts.rs",
    "lib/src/alert.rs",
    "lib/src/detection/alerts.rs",
    "lib/src/detection/precheck.rs",
    "lib/src/detection/rules.rs",
    "lib/src/ipc/frame.rs",
    "lib/src/ledger/entry.rs",
    "lib/src/ledger/entry",
    "lib/src/ledger/merkle.rs",
    "lib/src/ledger/note.rs",
    "lib/src/ledger/note",
    "lib/src/ledger/mod.rs",
    "lib/src/minisign",
    "lib/src/text.rs",
    "lib/src/ids.rs",
    "lib/src/bundle/manifest.rs",
    "lib/src/bundle/open.rs",
    "lib/src/bundle/content.rs",
    "lib/src/bundle/license.rs",
    "lib/src/bundle/trust.rs",
    "agent/src/outbox/retry.rs",
    "agent/src/outbox/format.rs",
];

/// What a pure module must not name, with why.
const IMPURE: &[(&str, &str)] = &[
    ("std::fs", "the filesystem"),
    ("File::open", "the filesystem"),
    ("File::create", "the filesystem"),
    ("OpenOptions", "the filesystem"),
    ("std::env", "the environment"),
    ("std::net", "the network"),
    ("std::process", "other processes"),
    ("SystemTime::now", "the wall clock"),
    ("Instant::now", "the clock"),
    ("tokio", "async I/O"),
    ("redb", "storage"),
    ("crate::storage", "storage"),
    ("crate::ipc", "IPC"),
    ("rusqlite", "SQL storage"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("listing the workspace").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for krate in CRATES {
        for dir in ["src", "tests", "benches"] {
            rust_files(&workspace().join(krate).join(dir), &mut files);
        }
        let build = workspace().join(krate).join("build.rs");
        if build.is_file() {
            files.push(build);
        }
    }
    files.sort();
    assert!(files.len() > 50, "found only {} files", files.len());
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A production source file: under a crate's `src/`, and not a test module of its own.
fn is_production(path: &Path) -> bool {
    let rel = relative(path);
    rel.contains("/src/")
        && !rel.ends_with("/tests.rs")
        && !rel.contains("/tests/")
        && !rel.starts_with("tests/")
}

/// The lines of `text` before its top-level `#[cfg(test)]`.
fn production_part(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|line| *line != "#[cfg(test)]")
        .collect()
}

#[test]
fn every_file_starts_with_its_doc() {
    let missing: Vec<String> = all_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("reading a source file");
            !text.starts_with("//!")
        })
        .map(|path| relative(&path))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc at the top: {missing:#?}"
    );
}

#[test]
fn no_production_file_is_too_long() {
    let long: Vec<String> = all_files()
        .into_iter()
        .filter(|path| is_production(path))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).expect("reading a source file");
            let lines = production_part(&text).len();
            (lines > MAX_PRODUCTION_LINES).then(|| format!("{}: {lines} lines", relative(&path)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "production files over {MAX_PRODUCTION_LINES} lines (split them along a seam): {long:#?}"
    );
}

#[test]
fn pure_modules_do_no_io_and_read_no_clock() {
    let mut checked = 0;
    let mut found = Vec::new();
    for path in all_files() {
        let rel = relative(&path);
        let pure = PURE.iter().any(|pure| {
            rel == *pure || rel.starts_with(&format!("{pure}/")) && is_production(&path)
        });
        if !pure {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(&path).expect("reading a source file");
        for (number, line) in production_part(&text).iter().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (token, what) in IMPURE {
                if code.contains(token) {
                    found.push(format!("{rel}:{}: {token} ({what})", number + 1));
                }
            }
        }
    }
    assert!(
        checked >= 8,
        "only {checked} pure files found: is PURE stale?"
    );
    assert!(found.is_empty(), "pure modules doing I/O: {found:#?}");
}

#[test]
fn clippy_denies_unwrap_and_expect_outside_tests() {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    for lint in ["unwrap_used = \"deny\"", "expect_used = \"deny\""] {
        assert!(manifest.contains(lint), "Cargo.toml lacks {lint}");
    }
    let clippy = std::fs::read_to_string(workspace().join("clippy.toml")).unwrap();
    for setting in [
        "allow-unwrap-in-tests = true",
        "allow-expect-in-tests = true",
    ] {
        assert!(clippy.contains(setting), "clippy.toml lacks {setting}");
    }
}
