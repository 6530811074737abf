//! Helpers for the bundle tests: run `daemoneye-bundler`, write bundle sources, build them.
//! Everything goes through the real binaries, as an operator on the office side would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{Agent, bin};

/// Runs `daemoneye-bundler ARGS`.
pub fn bundler(args: &[&str]) -> Output {
    Command::new(bin("daemoneye-bundler"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("running daemoneye-bundler")
}

/// Runs `daemoneye-bundler ARGS` and panics with its stderr unless it succeeds.
pub fn bundler_ok(args: &[&str]) -> String {
    let output = bundler(args);
    assert!(
        output.status.success(),
        "daemoneye-bundler {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An unencrypted key pair made by `daemoneye-bundler keygen`: `PREFIX.key`, `PREFIX.pub`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// `PREFIX`.
    pub prefix: PathBuf,
}

impl KeyPair {
    /// Makes `dir/name.key` and `dir/name.pub`.
    pub fn generate(dir: &Path, name: &str) -> Self {
        let prefix = dir.join(name);
        bundler_ok(&["keygen", "--out", path(&prefix), "--unencrypted"]);
        Self { prefix }
    }

    /// The secret key file.
    pub fn key(&self) -> PathBuf {
        self.prefix.with_extension("key")
    }

    /// The public key file.
    pub fn public(&self) -> PathBuf {
        self.prefix.with_extension("pub")
    }

    /// The base64 line of the public key file.
    pub fn public_line(&self) -> String {
        std::fs::read_to_string(self.public())
            .expect("reading the public key")
            .lines()
            .nth(1)
            .expect("a public key file has two lines")
            .to_owned()
    }

    /// The key id, as minisign prints it (from the public key file's comment).
    pub fn key_id(&self) -> String {
        let text = std::fs::read_to_string(self.public()).expect("reading the public key");
        let first = text.lines().next().expect("a comment line");
        first
            .rsplit(' ')
            .next()
            .expect("the comment ends with the key id")
            .to_owned()
    }
}

/// A path as `&str` (the tests' temporary paths are UTF-8).
pub fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The header every test bundle uses but for what varies.
pub fn header(name: &str, kind: &str, version: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"{kind}\"\nversion = {version}\n\
         created = \"2026-01-01T00:00:00Z\"\nexpires = \"2099-01-01T00:00:00Z\"\n\
         sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n{extra}"
    )
}

/// A rule that fires on a process whose name is `process`.
pub fn rule_for(id: &str, process: &str) -> String {
    format!(
        r#"[[rule]]
id = "{id}"
name = "{process} is running"
severity = "high"
mitre = ["T1059"]
description = "A test rule from a bundle: the process {process} runs."
sql = "SELECT pid, name FROM processes WHERE name = '{process}'"

[[rule.test]]
name = "the process"
processes = [{{ pid = 10, name = "{process}" }}]
expect_rows = 1

[[rule.test]]
name = "another process"
processes = [{{ pid = 10, name = "sshd" }}]
expect_rows = 0
"#
    )
}

/// Writes a rules bundle source in `dir` (replacing what was there): `bundle.toml` with
/// `name`, `version` and `extra` header lines, and one rule file per `(id, process)`.
pub fn rules_source(dir: &Path, name: &str, version: u64, extra: &str, rules: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("rules")).expect("creating the source");
    std::fs::write(
        dir.join("bundle.toml"),
        header(name, "rules", version, extra),
    )
    .expect("writing bundle.toml");
    for (id, process) in rules {
        std::fs::write(
            dir.join("rules").join(format!("{id}.toml")),
            rule_for(id, process),
        )
        .expect("writing a rule");
    }
}

/// Writes a keys bundle source in `dir`: `add` keys (public key lines, role bundles) and
/// `revoke` key ids.
pub fn keys_source(dir: &Path, name: &str, version: u64, add: &[String], revoke: &[String]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("keys")).expect("creating the source");
    std::fs::write(dir.join("bundle.toml"), header(name, "keys", version, ""))
        .expect("writing bundle.toml");
    let mut text = String::new();
    for key in add {
        text.push_str(&format!(
            "[[add]]\nrole = \"bundles\"\npublic_key = \"{key}\"\ncomment = \"rotated in by a test\"\n\n"
        ));
    }
    for id in revoke {
        text.push_str(&format!("[[revoke]]\nkey_id = \"{id}\"\n\n"));
    }
    std::fs::write(dir.join("keys/keys.toml"), text).expect("writing keys.toml");
}

/// Builds `src` with `key` into `out_dir`; the bundle's path (its signature beside it).
pub fn build(src: &Path, key: &KeyPair, out_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(out_dir).expect("creating the output directory");
    let before: Vec<PathBuf> = bundles_in(out_dir);
    bundler_ok(&[
        "build",
        path(src),
        "--key",
        path(&key.key()),
        "--out",
        path(out_dir),
    ]);
    bundles_in(out_dir)
        .into_iter()
        .find(|bundle| !before.contains(bundle))
        .or_else(|| before.last().cloned())
        .expect("the build wrote a bundle")
}

fn bundles_in(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("reading the output directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bundle"))
        .collect();
    all.sort();
    all
}

/// `FILE.minisig` beside `bundle`.
pub fn signature_of(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// Copies a bundle and its signature into `inbox` the way an operator's script should: each
/// written under a temporary name, then renamed (the signature last).
pub fn drop_into_inbox(bundle: &Path, inbox: &Path) {
    let name = bundle.file_name().expect("a file name");
    for (from, to) in [
        (bundle.to_path_buf(), inbox.join(name)),
        (signature_of(bundle), signature_of(&inbox.join(name))),
    ] {
        let tmp = inbox.join(".copying");
        std::fs::copy(&from, &tmp).expect("copying into the inbox");
        std::fs::rename(&tmp, &to).expect("renaming into the inbox");
    }
}

/// `cmd` with its output, for messages.
pub fn shown(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A process a test starts (a copy of `sleep` under a name a rule looks for), killed when
/// dropped.
pub struct Probe(std::process::Child);

impl Probe {
    /// Runs `program 600`.
    pub fn start(program: &Path) -> Self {
        let child = Command::new(program)
            .arg("600")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting a probe process");
        Self(child)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ids `rules list` shows.
pub fn rule_ids(agent: &Agent) -> Vec<String> {
    let output = agent.cli(&["rules", "list", "--format", "json"]);
    let rules: Vec<Value> = serde_json::from_slice(&output.stdout).expect("rules list JSON");
    rules
        .iter()
        .filter_map(|rule| rule["id"].as_str().map(str::to_owned))
        .collect()
}
