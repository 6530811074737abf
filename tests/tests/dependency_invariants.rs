//! Architecture invariants on the dependency graph, with `cargo tree` as the ground truth:
//!
//! - the privileged collector links no SQL engine, database, HTTP, SMTP or TLS crate, and
//!   none of the archive code that only bundles need (`tar`, `zstd`), nor the bundle signing
//!   code (`minisign-verify`, `scrypt`, `blake2`: lib's `minisign` feature);
//! - daemoneye-lib, with every feature on, links no HTTP, SMTP, TLS or PostgreSQL client:
//!   network code lives in the agent, never in the library procmond links;
//! - the bundler never links the agent.

use std::path::Path;
use std::process::Command;

/// Crates that must never be in procmond's dependency graph, with why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("rusqlite", "SQL engine"),
    ("libsqlite3-sys", "SQL engine"),
    ("sqlparser", "SQL parser"),
    ("redb", "event store (only the agent writes it)"),
    ("hyper", "HTTP"),
    ("reqwest", "HTTP"),
    ("ureq", "HTTP"),
    ("h2", "HTTP"),
    ("lettre", "SMTP"),
    ("rustls", "TLS"),
    ("native-tls", "TLS"),
    ("openssl", "TLS"),
    ("openssl-sys", "TLS"),
];

/// Network clients that daemoneye-lib must never link, whatever its features.
const NETWORK_CLIENTS: &[(&str, &str)] = &[
    ("hyper", "HTTP"),
    ("reqwest", "HTTP"),
    ("ureq", "HTTP"),
    ("h2", "HTTP"),
    ("lettre", "SMTP"),
    ("rustls", "TLS"),
    ("native-tls", "TLS"),
    ("openssl", "TLS"),
    ("openssl-sys", "TLS"),
    ("postgres", "PostgreSQL client"),
    ("tokio-postgres", "PostgreSQL client"),
    ("sqlx", "database client"),
];

/// Archive code procmond does not need: only the agent and the bundler read bundles.
const ARCHIVES: &[(&str, &str)] = &[
    ("tar", "archives"),
    ("zstd", "compression"),
    ("zstd-sys", "compression"),
];

/// Bundle signing and verification, which procmond does not need (lib's `minisign` feature).
const BUNDLE_SIGNING: &[(&str, &str)] = &[
    ("minisign-verify", "bundle signature verification"),
    ("scrypt", "password-protected signing keys"),
    ("blake2", "minisign prehashing"),
    ("rpassword", "password prompts"),
];

fn dependency_names(package: &str) -> Vec<String> {
    dependency_names_with(package, &[])
}

/// Names of the forbidden crates `names` holds, with why.
fn found(names: &[String], forbidden: &[(&str, &str)]) -> Vec<String> {
    forbidden
        .iter()
        .filter(|(name, _)| names.iter().any(|n| n == name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect()
}

fn dependency_names_with(package: &str, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(extra)
        .args(["--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn procmond_links_no_sql_database_network_or_tls_crate() {
    let names = dependency_names("procmond");
    assert!(
        names.iter().any(|n| n == "sysinfo"),
        "cargo tree output looks wrong: {names:?}"
    );
    let mut bad = found(&names, FORBIDDEN);
    bad.extend(found(&names, ARCHIVES));
    bad.extend(found(&names, BUNDLE_SIGNING));
    assert!(
        bad.is_empty(),
        "procmond links forbidden crates: {}",
        bad.join(", ")
    );
}

#[test]
fn the_library_with_every_feature_links_no_network_client() {
    let names = dependency_names_with("daemoneye-lib", &["--all-features"]);
    assert!(
        names.iter().any(|n| n == "redb"),
        "cargo tree output looks wrong (no storage feature?): {names:?}"
    );
    let bad = found(&names, NETWORK_CLIENTS);
    assert!(
        bad.is_empty(),
        "daemoneye-lib links network clients: {}",
        bad.join(", ")
    );
}

#[test]
fn the_bundler_never_links_the_agent() {
    let names = dependency_names("daemoneye-bundler");
    assert!(
        names.iter().any(|n| n == "daemoneye-bundler"),
        "cargo tree output looks wrong: {names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n == "daemoneye-agent" || n == "procmond"),
        "the bundler links a daemon: {names:?}"
    );
}

/// Cargo unifies features across the workspace, so `cargo build --workspace` compiles
/// daemoneye-lib once with the agent's `detection` and `storage` features, and procmond links
/// that build. The linker must then drop all of it: the binary carries no SQLite or redb code.
/// (Debug information may still name them; `strip` removes it first. binutils is there: Rust's
/// linker driver needs it.)
#[test]
fn the_procmond_binary_carries_no_sqlite_or_redb_code() {
    let dir = tempfile::tempdir().unwrap();
    let stripped = |name: &str| -> Vec<u8> {
        let out = dir.path().join(name);
        let status = Command::new("strip")
            .arg("-o")
            .arg(&out)
            .arg(daemoneye_e2e::bin(name))
            .status()
            .expect("running strip (binutils)");
        assert!(status.success());
        std::fs::read(out).expect("reading the stripped binary")
    };
    let binary = stripped("procmond");
    for marker in [
        &b"sqlite_master"[..],
        b"sqlite3_prepare",
        b"rusqlite",
        b"redb::",
    ] {
        assert!(
            !binary.windows(marker.len()).any(|window| window == marker),
            "procmond contains {:?}",
            String::from_utf8_lossy(marker)
        );
    }
    // The same search finds what the agent links, so it is not blind.
    let agent = stripped("daemoneye-agent");
    assert!(agent.windows(13).any(|window| window == b"sqlite_master"));
}
