//! The agent supervises procmond: procmond drops to the configured user with exactly two
//! capabilities and can still read other users' executables; a killed procmond is restarted
//! within the backoff bound and scans again; a stopped one turns health not-ok and is
//! replaced; a killed agent takes procmond with it.
//!
//! These tests need root (procmond only drops privileges when started as root); CI runs them
//! as root.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemoneye_agent::link::ProcmondLink;
use daemoneye_e2e::{Agent, has_exited, proc_status, wait_for};
use daemoneye_lib::ipc::Limits;
use daemoneye_lib::ipc::transport::{PeerPolicy, collector_socket};
use serde_json::Value;

/// Kills the child when dropped, so that a failed assertion leaves nothing running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
}

fn sha256sum(path: &std::path::Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn procmond_drops_to_the_configured_user_and_still_reads_other_users_executables() {
    require_root();
    // uid 1 ("daemon" on Debian) is configured; the process to read runs as uid 2 ("bin") from
    // a directory and a file only uid 2 may read, so only the kept capabilities let procmond in.
    let agent = Agent::start("[collector]\nuser = \"daemon\"\n", 3600.0);
    let health = agent.wait_for_procmond();
    let pid = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    // Every thread, not only the main one (what /proc/PID/status shows): capabilities belong to
    // threads, and one started before the drop would keep root's.
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!tasks.is_empty());
    for task in &tasks {
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{task}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
                .map(str::to_owned)
        };
        assert_eq!(field("Uid").as_deref(), Some("1\t1\t1\t1"), "thread {task}");
        assert_eq!(field("Gid").as_deref(), Some("1\t1\t1\t1"), "thread {task}");
        assert_eq!(
            field("CapEff").as_deref(),
            Some("0000000000080004"),
            "thread {task}"
        );
        assert_eq!(
            field("CapPrm").as_deref(),
            Some("0000000000080004"),
            "thread {task}"
        );
        assert_eq!(
            field("CapAmb").as_deref(),
            Some("0000000000000000"),
            "thread {task}"
        );
        assert_eq!(field("NoNewPrivs").as_deref(), Some("1"), "thread {task}");
    }
    assert_eq!(health["procmond"]["privileges_dropped"], true);
    assert_eq!(health["procmond"]["effective_caps"], "0x0000000000080004");

    let private = agent.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let secret = private.join("sleep");
    std::fs::copy("/bin/sleep", &secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin = Some(nix::unistd::Uid::from_raw(2));
    nix::unistd::chown(&secret, bin, Some(nix::unistd::Gid::from_raw(2))).unwrap();
    nix::unistd::chown(&private, bin, Some(nix::unistd::Gid::from_raw(2))).unwrap();
    // The temporary directory itself is 0700 root; the sleep must be able to reach its file.
    std::fs::set_permissions(agent.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let other = Reaped(
        Command::new("setpriv")
            .args(["--reuid", "2", "--regid", "2", "--clear-groups"])
            .arg(&secret)
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .expect("setpriv runs"),
    );
    let other_pid = other.0.id();
    let expected = sha256sum(&secret);
    // setpriv changes ids before it execs: wait for the exec itself, or procmond could be
    // asked about setpriv.
    wait_for(
        "the other user's sleep to exec",
        Duration::from_secs(10),
        || {
            let exe = std::fs::read_link(format!("/proc/{other_pid}/exe")).ok();
            (exe.as_deref() == Some(secret.as_path())).then_some(())
        },
    );
    assert_eq!(proc_status(other_pid, "Uid").as_deref(), Some("2\t2\t2\t2"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let socket = collector_socket(&agent.data_dir);
        let client =
            ProcmondLink::connect(&socket, Limits::default(), &PeerPolicy::for_current_user())
                .await
                .expect("root may connect to procmond");
        // procmond hashes another user's private executable in a scan (through
        // /proc/PID/exe, with the capabilities it kept).
        let scan = client.scan().await.expect("a scan");
        let record = scan
            .records
            .iter()
            .find(|r| r.pid == other_pid)
            .expect("the sleep is in the scan");
        assert_eq!(record.uid, Some(2));
        assert_eq!(record.exe_sha256.as_deref(), Some(expected.as_str()));
        assert_eq!(record.path.as_deref(), secret.to_str());
    });
}

#[test]
fn a_killed_procmond_is_restarted_within_the_backoff_bound_and_scans_again() {
    require_root();
    let config = "[collector]\nhealth_interval = \"200ms\"\nrestart_backoff_min = \"100ms\"\n\
                  restart_backoff_max = \"1s\"\n";
    let agent = Agent::start(config, 0.5);
    let first = agent.wait_for_procmond();
    let old_pid = first["procmond"]["pid"].as_u64().unwrap();
    let before = wait_for("a first scan", Duration::from_secs(120), || {
        agent
            .health()
            .map(|h| h["scans"]["completed"].as_u64().unwrap())
            .filter(|n| *n >= 1)
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(old_pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let after = wait_for("procmond to come back", Duration::from_secs(60), || {
        agent.health().filter(|h| {
            h["procmond"]["pid"]
                .as_u64()
                .is_some_and(|pid| pid != old_pid)
        })
    });
    assert_eq!(after["procmond"]["restarts"], 1);
    let last_exit = after["procmond"]["last_exit"].as_str().unwrap();
    assert!(
        last_exit.contains("killed by signal 9 (SIGKILL)"),
        "{last_exit}"
    );
    // The delay the supervisor chose is within the configured bound (100 ms doubled per crash
    // in a row, capped at 1 s, jitter only shortening it).
    let restarts = agent.logged("procmond stopped; restarting it");
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    let delay = restarts[0]["fields"]["delay_ms"].as_u64().unwrap();
    assert!(
        (75..=100).contains(&delay),
        "first restart delay {delay} ms"
    );

    wait_for(
        "a scan from the new procmond",
        Duration::from_secs(120),
        || {
            agent
                .health()
                .filter(|h| {
                    h["scans"]["completed"].as_u64().unwrap() > before
                        && h["scans"]["last_at"].is_i64()
                })
                .filter(|h| h["overall"] == "ok")
        },
    );
}

#[test]
fn procmond_exits_when_its_agent_is_killed() {
    require_root();
    let mut agent = Agent::start("", 3600.0);
    let health = agent.wait_for_procmond();
    let pid = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    assert!(!has_exited(pid));
    agent.kill();
    wait_for("procmond to exit", Duration::from_secs(20), || {
        has_exited(pid).then_some(())
    });
}

#[test]
fn the_cli_says_when_no_agent_answers() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(daemoneye_e2e::bin("daemoneye-cli"))
        .args(["health-check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("daemoneye-cli: the agent is not reachable on "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_stopped_procmond_never_leaves_health_green() {
    require_root();
    // A local user who can signal procmond stops it (`kill -STOP`), acts, and lets it go on.
    // Every time, `health-check` must turn not-ok while it is stopped, and the agent must get
    // a working collector back. Each wait has a generous limit that guards against a hung
    // test; what is asserted is the order of events, never how long they took. The hashing
    // budget is ten minutes so that a scan's own deadline (budget + 30 s or three intervals)
    // cannot be what notices the stop within those limits: before, health checks waited
    // behind the scan and `health-check` stayed ok until that deadline. Each replacement is
    // recorded in the ledger, through the new procmond, with the stopped one's pid.
    let config = "[collector]\nuser = \"daemon\"\nhealth_interval = \"200ms\"\n\
                  restart_backoff_min = \"100ms\"\nrestart_backoff_max = \"1s\"\n\
                  [collection]\nhash_time_budget = \"10m\"\n";
    let agent = Agent::start(config, 1.0);
    let mut stopped = Vec::new();
    for cycle in 0..2 {
        let health = wait_for("a healthy agent", Duration::from_secs(120), || {
            agent.health().filter(|h| {
                h["overall"] == "ok"
                    && h["procmond"]["pid"].is_u64()
                    && h["scans"]["completed"].as_u64() > Some(0)
            })
        });
        let pid = health["procmond"]["pid"].as_u64().unwrap();
        stopped.push(pid);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let seen = wait_for(
            &format!("health to say so while procmond is stopped (cycle {cycle})"),
            Duration::from_secs(120),
            || agent.health().filter(|h| h["overall"] != "ok"),
        );
        // The unanswered health check, the stale scans or the restart under way say why.
        let components = seen["components"].to_string();
        assert!(
            components.contains("has not answered a health check")
                || components.contains("no scan has finished")
                || components.contains("restart"),
            "{seen:#}"
        );
        // A procmond that stays stopped is replaced (its health checks go unanswered).
        let old = pid.as_raw().unsigned_abs();
        wait_for(
            &format!("a new procmond (cycle {cycle})"),
            Duration::from_secs(120),
            || {
                agent.health().filter(|h| {
                    h["procmond"]["pid"]
                        .as_u64()
                        .is_some_and(|p| p != u64::from(old))
                })
            },
        );
        // Harmless if it is gone; a procmond left stopped would linger.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    }
    // Both stops are in the ledger as restarts, each naming the procmond that was stopped.
    let restarted = wait_for(
        "both restarts in the ledger",
        Duration::from_secs(120),
        || {
            let export = agent.dir.path().join("export");
            let _ = std::fs::remove_dir_all(&export);
            let out = agent.cli(&[
                "audit",
                "export",
                "--out",
                export.to_str()?,
                "--proofs",
                "0",
            ]);
            if !out.status.success() {
                return None;
            }
            let pids: Vec<u64> = std::fs::read_to_string(export.join("entries.jsonl"))
                .ok()?
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|entry| entry["kind"] == "procmond_restarted")
                .filter_map(|entry| {
                    assert_eq!(entry["source"], "agent", "{entry}");
                    assert!(
                        entry["fields"]["reason"]
                            .as_str()
                            .is_some_and(|r| !r.is_empty())
                    );
                    entry["fields"]["pid"].as_u64()
                })
                .collect();
            stopped.iter().all(|pid| pids.contains(pid)).then_some(pids)
        },
    );
    assert!(restarted.len() >= 2, "{restarted:?}");
}
