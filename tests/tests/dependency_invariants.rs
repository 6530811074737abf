//! Architecture invariant: the privileged collector links no SQL engine, database, HTTP, SMTP
//! or TLS crate. `cargo tree` is the ground truth, so the test asks it.

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

fn dependency_names(package: &str) -> Vec<String> {
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
    let found: Vec<String> = FORBIDDEN
        .iter()
        .filter(|(name, _)| names.iter().any(|n| n == name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    assert!(
        found.is_empty(),
        "procmond links forbidden crates: {}",
        found.join(", ")
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
