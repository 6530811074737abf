//! Who procmond runs as. With no `daemoneye` user and no `collector.user`, procmond drops to a
//! uid of its own (no account has it, no other process uses it; not the shared `nobody`), the
//! same one again after a restart on the same data directory, and owns its ledger directory.
//! A `collector.user` of root or of a user that does not exist is a configuration error: the
//! agent exits 2 at start with one line naming the key, instead of restarting procmond forever.
//!
//! These tests need root (procmond only drops privileges when started as root); CI runs them
//! as root.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemoneye_e2e::{Agent, bin, proc_status, wait_for};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
}

/// The real uid of `pid`, from the `Uid` line of its status.
fn uid_of(pid: u32) -> u32 {
    let line = proc_status(pid, "Uid").expect("the process is running");
    let ids: Vec<u32> = line
        .split_whitespace()
        .map(|id| id.parse().expect("numeric ids"))
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "real, effective, saved and filesystem uids differ: {line}"
    );
    ids[0]
}

/// Every running process other than `except` whose status names `id` as one of its uids or
/// gids (real, effective, saved, filesystem, supplementary).
fn other_processes_using(id: u32, except: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("listing /proc") {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == except {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if matches!(key, "Uid" | "Gid" | "Groups")
                && value.split_whitespace().any(|v| v == id.to_string())
            {
                found.push((pid, line.to_owned()));
            }
        }
    }
    found
}

/// The procmond pid and its uid once it answers.
fn running_procmond(agent: &Agent) -> (u32, u32) {
    let health = agent.wait_for_procmond();
    let pid = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    let reported = health["procmond"]["uid"].as_u64().unwrap();
    let uid = uid_of(pid);
    // Health shows the uid procmond really runs as.
    assert_eq!(reported, u64::from(uid), "{health:#}");
    (pid, uid)
}

#[test]
fn without_a_daemoneye_user_procmond_gets_a_uid_nobody_else_has_and_keeps_it() {
    require_root();
    assert!(
        nix::unistd::User::from_name("daemoneye").unwrap().is_none(),
        "this test is about hosts without a daemoneye user"
    );
    let config = "[collector]\nhealth_interval = \"200ms\"\nrestart_backoff_min = \"100ms\"\n\
                  restart_backoff_max = \"1s\"\n";
    let agent = Agent::start(config, 3600.0);
    let (pid, uid) = running_procmond(&agent);

    assert_ne!(uid, 65534, "procmond shares nobody's uid");
    assert_ne!(uid, 0, "procmond runs as root");
    assert!(
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .unwrap()
            .is_none(),
        "uid {uid} belongs to an account"
    );
    let gid: Vec<String> = proc_status(pid, "Gid")
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let gid: u32 = gid[0].parse().unwrap();
    assert_ne!(gid, 0);
    assert_ne!(gid, 65534, "procmond shares nobody's group");
    assert!(
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .unwrap()
            .is_none(),
        "gid {gid} belongs to a group"
    );
    let sharing = other_processes_using(uid, pid);
    assert!(sharing.is_empty(), "uid {uid} is shared: {sharing:?}");
    let sharing = other_processes_using(gid, pid);
    assert!(sharing.is_empty(), "gid {gid} is shared: {sharing:?}");

    // The ledger directory is procmond's, so that it can write it after the drop.
    let ledger = std::fs::metadata(agent.data_dir.join("ledger")).unwrap();
    assert_eq!((ledger.uid(), ledger.gid()), (uid, gid));

    // A restarted procmond on the same data directory comes back as the same uid.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let again = wait_for("procmond to come back", Duration::from_secs(60), || {
        agent.health().filter(|h| {
            h["procmond"]["pid"]
                .as_u64()
                .is_some_and(|new| new != u64::from(pid))
                && h["procmond"]["uid"].is_u64()
        })
    });
    let new_pid = u32::try_from(again["procmond"]["pid"].as_u64().unwrap()).unwrap();
    assert_eq!(uid_of(new_pid), uid, "{again:#}");
}

/// Kills the agent when dropped, so that a failed wait leaves nothing running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the agent with `config` until it exits (or gives up on it after a generous limit, which
/// guards against the restart loop this replaced); its exit code and stderr.
fn refused(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    let stderr_file = dir.path().join("stderr");
    let mut child = Reaped(
        Command::new(bin("daemoneye-agent"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config_file)
            .env_remove("DAEMONEYE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let status = wait_for("the agent to exit", Duration::from_secs(30), || {
        child.0.try_wait().unwrap()
    });
    (
        status.code(),
        std::fs::read_to_string(&stderr_file).unwrap(),
    )
}

#[test]
fn collector_user_root_is_a_configuration_error() {
    require_root();
    let (code, stderr) = refused("[collector]\nuser = \"root\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("collector.user"), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
}

#[test]
fn an_unknown_collector_user_is_a_configuration_error() {
    require_root();
    let (code, stderr) = refused("[collector]\nuser = \"no-such-user\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("collector.user"), "{stderr}");
    assert!(stderr.contains("no-such-user"), "{stderr}");
}
