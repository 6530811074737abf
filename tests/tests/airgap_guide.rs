//! `docs/airgap/README.md`, run: every `sh` block of the guide, in order, with bash (`set
//! -eu`), the office directories (`KEYS`, `USB`, `WORK`) and the site's (`ETC`, `INBOX`) in a
//! temporary directory and a real agent on the site side whose configuration names the trust
//! anchors where the guide installs them. Passwords are read from standard input, as the
//! bundler does when it is not on a terminal. A guide whose commands do not work fails here.
//!
//! Runs as root (procmond needs its capabilities); CI runs it as root, with stock minisign.

use std::process::{Command, Stdio};

use daemoneye_e2e::bundles::shown;
use daemoneye_e2e::{Agent, bin_dir};

/// The `sh` blocks of the guide, in order.
fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an sh block is not closed");
    blocks
}

#[test]
fn every_command_of_the_air_gap_guide_works() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/airgap/README.md"),
    )
    .unwrap();
    let blocks = sh_blocks(&guide);
    assert!(blocks.len() >= 10, "{} sh blocks", blocks.len());

    let work = tempfile::tempdir().unwrap();
    let etc = work.path().join("etc");
    let config = format!(
        "[site]\nid = \"plant-7\"\n[bundles]\ntrusted_keys = [\"{0}/keys/bundle.pub\"]\n\
         license_keys = [\"{0}/keys/license.pub\"]\ninbox_interval = \"300ms\"\n",
        etc.display()
    );
    let agent = Agent::start(&config, 2.0);
    agent.wait_for_procmond();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let password = "correct horse battery staple\n".repeat(8);
    for (index, block) in blocks.iter().enumerate() {
        // `timeout` bounds a block that would wait forever (the guide's inbox loop waits for
        // the agent): a hang fails this test instead of the whole run.
        let mut child = Command::new("timeout")
            .args(["300", "bash", "-c", &format!("set -eu\n{block}")])
            .env("PATH", &path)
            .env("HOME", work.path())
            .env("KEYS", work.path().join("keys"))
            .env("USB", work.path().join("usb"))
            .env("WORK", work.path().join("work"))
            .env("ETC", &etc)
            .env("INBOX", agent.data_dir.join("inbox"))
            .env("DAEMONEYE_DATA_DIR", &agent.data_dir)
            .env_remove("COLUMNS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(password.as_bytes());
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "block {} of the guide failed:\n{block}\n{}",
            index + 1,
            shown(&output)
        );
    }

    // What the guide promised happened.
    let status = agent.cli(&["bundle", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let active: Vec<(String, u64)> = status["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_owned(),
                b["version"].as_u64().unwrap(),
            )
        })
        .collect();
    for (name, version) in [("site-rules", 3), ("site-config", 1), ("site-keys", 1)] {
        assert!(
            active.contains(&(name.to_owned(), version)),
            "{name} {version} active: {active:?}"
        );
    }
    assert!(
        active.iter().any(|(name, _)| name == "license-plant-7"),
        "{active:?}"
    );
    assert_eq!(status["license"]["in_force"], true, "{status}");
    assert!(status["revoked"].as_array().unwrap().len() == 1, "{status}");
}
