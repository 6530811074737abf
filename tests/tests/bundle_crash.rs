//! The agent killed with SIGKILL at random moments while it applies a bundle, 50 times: after
//! every restart exactly one complete version of the rule bundle is active — the one before
//! or the one being applied, never a mix, never none — `bundle status` names it and reports no
//! damaged bundle, and no staging leftovers remain.
//!
//! The agent runs without procmond (`--procmond` names a file that does not exist: the
//! supervisor keeps retrying while the control socket answers), so that a round costs an
//! agent start, not a collector start; applying a bundle does not involve procmond.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_e2e::bundles::{KeyPair, build, path, rules_source};
use daemoneye_e2e::{bin, wait_for};
use serde_json::Value;

/// Crashes in all.
const ROUNDS: usize = 50;
/// Rules per bundle: enough that verifying and applying one takes a while to interrupt.
const RULES: usize = 40;

struct RunningAgent(Child);

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data_dir: &Path, config: &Path) -> RunningAgent {
    let child = Command::new(bin("daemoneye-agent"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .args([
            "--procmond",
            "/nonexistent/procmond",
            "--log-format",
            "json",
            "-q",
        ])
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting daemoneye-agent");
    RunningAgent(child)
}

fn cli(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin("daemoneye-cli"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdin(Stdio::null());
    command
}

/// `bundle status` once the agent answers: (active version of `crash-rules`, problems).
fn status(data_dir: &Path) -> (Option<u64>, Vec<Value>) {
    wait_for("the agent to answer", Duration::from_secs(60), || {
        let output = cli(data_dir, &["bundle", "status", "--format", "json"])
            .output()
            .ok()?;
        let status: Value = serde_json::from_slice(&output.stdout).ok()?;
        let version = status["bundles"].as_array().and_then(|all| {
            let named: Vec<&Value> = all.iter().filter(|b| b["name"] == "crash-rules").collect();
            assert!(named.len() <= 1, "one active version at most: {status}");
            named.first().and_then(|b| b["version"].as_u64())
        });
        let problems = status["problems"].as_array().cloned().unwrap_or_default();
        Some((version, problems))
    })
}

fn rules(count: usize, version: u64) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("CR-{version:03}-{i:03}"), format!("crash{i}")))
        .collect()
}

fn build_versions(office: &Path, key: &KeyPair, last: u64) -> Vec<PathBuf> {
    let src = office.join("src");
    (1..=last)
        .map(|version| {
            let named = rules(RULES, version);
            let borrowed: Vec<(&str, &str)> = named
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            rules_source(&src, "crash-rules", version, "", &borrowed);
            build(&src, key, &office.join("out"))
        })
        .collect()
}

#[test]
fn sigkill_during_apply_leaves_one_whole_version_active() {
    let office = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(office.path(), "crash");
    let versions = build_versions(office.path(), &key, ROUNDS as u64 + 1);
    let data_dir = office.path().join("data");
    let config = office.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[bundles]\ntrusted_keys = [\"{}\"]\nlicense_keys = []\n",
            path(&key.public())
        ),
    )
    .unwrap();

    // Version 1, applied without interruption, and how long an apply takes.
    let mut agent = start(&data_dir, &config);
    assert_eq!(status(&data_dir).0, None);
    let began = Instant::now();
    let output = cli(&data_dir, &["bundle", "install", path(&versions[0])])
        .output()
        .unwrap();
    let apply = began.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut active = 1u64;
    let mut interrupted = 0;

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for round in 0..ROUNDS {
        let next = active + 1;
        let bundle = &versions[usize::try_from(next - 1).unwrap()];
        let mut install = cli(&data_dir, &["bundle", "install", path(bundle)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from before the request arrives to just after the apply ends.
        let limit = u64::try_from(apply.as_micros())
            .unwrap_or(u64::MAX)
            .max(1000)
            * 3
            / 2;
        std::thread::sleep(Duration::from_micros(rng.u64(0..limit)));
        let _ = agent.0.kill();
        let _ = agent.0.wait();
        let finished = install.wait().unwrap().success();
        drop(agent);

        agent = start(&data_dir, &config);
        let (version, problems) = status(&data_dir);
        assert!(
            problems.is_empty(),
            "round {round}: problems after the crash: {problems:?}"
        );
        let version = version.unwrap_or_else(|| panic!("round {round}: no version active"));
        assert!(
            version == active || version == next,
            "round {round}: version {version} active, expected {active} or {next}"
        );
        if finished {
            assert_eq!(
                version, next,
                "round {round}: an install that answered is kept"
            );
        }
        if version == active {
            interrupted += 1;
        }
        active = version;
        let staging = data_dir.join("bundles/staging");
        let leftovers = std::fs::read_dir(&staging).map_or(0, |dir| dir.count());
        assert_eq!(
            leftovers, 0,
            "round {round}: staging leftovers after the restart"
        );
        // The rule set the agent runs is the active version's, whole.
        let listed = cli(&data_dir, &["rules", "list", "--format", "json"])
            .output()
            .unwrap();
        let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
        let from_bundle: Vec<&str> = listed
            .iter()
            .filter_map(|rule| rule["id"].as_str())
            .filter(|id| id.starts_with("CR-"))
            .collect();
        assert_eq!(from_bundle.len(), RULES, "round {round}: {from_bundle:?}");
        let prefix = format!("CR-{active:03}-");
        assert!(
            from_bundle.iter().all(|id| id.starts_with(&prefix)),
            "round {round}: rules of version {active} only: {from_bundle:?}"
        );
    }
    eprintln!(
        "{ROUNDS} crashes: {interrupted} left the old version, {} the new; an apply took {apply:?}",
        ROUNDS - interrupted
    );
}
