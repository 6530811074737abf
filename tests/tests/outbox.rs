//! The persistent alert outbox, as an operator runs it: alerts reach every configured sink; a
//! sink that cannot take them keeps them (and says why in `outbox status` and health) until it
//! can; `alerts send-test` goes through the same path; and no alert is lost when the agent is
//! killed with SIGKILL at random moments while alerts are produced and while they are
//! delivered.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemoneye_e2e::marked::Marked;
use daemoneye_e2e::{Agent, bin, wait_for};
use serde_json::Value;

fn config(rules: &Path, sinks: &str, outbox: &str) -> String {
    format!(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\nrules = [{:?}]\n\n\
         [outbox]\n{outbox}\n\n{sinks}",
        rules.display().to_string()
    )
}

fn outbox_status(agent: &Agent) -> Option<HashMap<String, Value>> {
    let output = agent.cli(&["outbox", "status", "--format", "json"]);
    let sinks: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
    Some(
        sinks
            .into_iter()
            .map(|sink| (sink["sink"].as_str().unwrap_or_default().to_owned(), sink))
            .collect(),
    )
}

/// The alerts in a JSON-lines file, in file order.
fn alerts_in(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}")))
        .collect()
}

fn marked_pid(alert: &Value) -> Option<u64> {
    (alert["rule_id"] == "TEST-MARK").then(|| alert["rows"][0]["pid"].as_u64())?
}

#[test]
fn a_sink_that_cannot_take_alerts_keeps_them_says_why_and_delivers_them_later() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let mut sleepers = Marked::new(86398);
    std::fs::write(&rules, sleepers.rule("TEST-MARK", "high")).unwrap();
    let archive = dir.path().join("archive.jsonl");
    // The second sink's directory is a regular file: every delivery fails until it is a
    // directory.
    let blocked_dir = dir.path().join("blocked");
    std::fs::write(&blocked_dir, "not a directory").unwrap();
    let blocked = blocked_dir.join("alerts.cef");
    let sinks = format!(
        "[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = {:?}\n\n\
         [[sinks]]\nname = \"later\"\ntype = \"file\"\nformat = \"cef\"\npath = {:?}\n",
        archive.display().to_string(),
        blocked.display().to_string()
    );
    let config = config(
        &rules,
        &sinks,
        "retry_min = \"100ms\"\nretry_max = \"200ms\"\nbreaker_failures = 1000",
    );
    for n in 0..5 {
        sleepers.spawn(n);
    }
    let agent = Agent::start(&config, 0.5);
    let want = sleepers.pids();
    wait_for(
        "five alerts in the archive",
        Duration::from_secs(120),
        || {
            let pids: BTreeSet<u64> = alerts_in(&archive).iter().filter_map(marked_pid).collect();
            (pids == want).then_some(())
        },
    );
    // Nothing printed: stdout is a sink only when configured (or when none is).
    assert!(agent.stdout.lock().unwrap().is_empty());

    let status = wait_for(
        "the blocked sink to have failed",
        Duration::from_secs(60),
        || outbox_status(&agent).filter(|s| s["later"]["retried"].as_u64() >= Some(2)),
    );
    let later = &status["later"];
    assert_eq!(later["pending"], 5, "{later:#}");
    assert_eq!(later["type"], "file");
    assert!(
        later["last_error"]
            .as_str()
            .unwrap()
            .contains("Not a directory"),
        "{later:#}"
    );
    assert_eq!(status["archive"]["pending"], 0);
    assert_eq!(status["archive"]["delivered"], 5);
    let table = agent.cli(&["outbox", "status"]);
    assert_eq!(
        table.status.code(),
        Some(1),
        "a failing sink: exit 1: {table:?}"
    );
    let health = agent.health().unwrap();
    let component = |name: &str| -> Value {
        health["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no component {name}: {health:#}"))
    };
    assert_eq!(component("sink later")["status"], "degraded", "{health:#}");
    assert!(
        component("sink later")["detail"]
            .as_str()
            .unwrap()
            .contains("5 pending"),
        "{health:#}"
    );
    assert_eq!(component("sink archive")["status"], "ok", "{health:#}");

    // A test alert reaches the working sink at once; the blocked one says why not.
    let sent = agent.cli(&["alerts", "send-test", "--wait", "5", "--format", "json"]);
    assert_eq!(sent.status.code(), Some(1), "{sent:?}");
    let sent: Value = serde_json::from_slice(&sent.stdout).unwrap();
    let test_id = sent["alert_id"].as_str().unwrap().to_owned();
    let by_sink: HashMap<&str, &Value> = sent["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["sink"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_sink["archive"]["delivered"], true);
    assert_eq!(by_sink["later"]["delivered"], false);
    assert!(
        by_sink["later"]["detail"]
            .as_str()
            .unwrap()
            .contains("Not a directory")
    );
    assert!(
        alerts_in(&archive)
            .iter()
            .any(|a| a["id"] == test_id.as_str())
    );
    let one = agent.cli(&["alerts", "send-test", "--sink", "archive", "--wait", "30"]);
    assert_eq!(one.status.code(), Some(0), "{one:?}");
    let none = agent.cli(&["alerts", "send-test", "--sink", "nope"]);
    assert_ne!(none.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no sink named"),
        "{none:?}"
    );

    // The sink comes back: everything it missed (five alerts and the first test alert; the
    // second was for the archive only) arrives, as CEF.
    std::fs::remove_file(&blocked_dir).unwrap();
    std::fs::create_dir(&blocked_dir).unwrap();
    let status = wait_for(
        "the blocked sink to catch up",
        Duration::from_secs(60),
        || outbox_status(&agent).filter(|s| s["later"]["pending"] == 0),
    );
    assert_eq!(status["later"]["delivered"], 6, "{:#}", status["later"]);
    let cef = std::fs::read_to_string(&blocked).unwrap();
    assert_eq!(cef.lines().count(), 6, "{cef}");
    assert!(
        cef.lines().all(|line| line.starts_with("CEF:0|DaemonEye|")),
        "{cef}"
    );
    assert!(cef.contains(&test_id), "{cef}");
    let table = agent.cli(&["outbox", "status"]);
    assert_eq!(table.status.code(), Some(0), "{table:?}");
}

#[test]
fn a_bad_sink_table_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    for (sinks, want) in [
        (
            "[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"/tmp/x\"\ncolour = \"red\"\n",
            "sinks.a: unknown field `colour`",
        ),
        (
            "[[sinks]]\nname = \"Bad Name\"\ntype = \"stdout\"\n",
            "sinks[0].name: may hold only a-z, 0-9, '_' and '-'",
        ),
        (
            "[[sinks]]\nname = \"a\"\ntype = \"stdout\"\n\n[[sinks]]\nname = \"a\"\ntype = \"stdout\"\n",
            "names two sinks",
        ),
        (
            "[[sinks]]\nname = \"a\"\ntype = \"carrier-pigeon\"\n",
            "carrier-pigeon",
        ),
        (
            "[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"relative.jsonl\"\n",
            "sinks.a: path: must be absolute",
        ),
    ] {
        let file = dir.path().join("config.toml");
        std::fs::write(&file, sinks).unwrap();
        let output = Command::new(bin("daemoneye-agent"))
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--once")
            .env_remove("DAEMONEYE_DATA_DIR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{sinks}: {stderr}");
        assert!(stderr.contains(want), "{sinks}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(!dir.path().join("data").join("events.redb").exists());
    }
}

/// The durability scenario: the sink is down while 1,000 alerts are produced and the
/// agent is killed with SIGKILL at random moments (12 times); the sink comes back and the
/// agent is killed at random moments while it delivers (12 times more, batches of 10); then
/// every alert is in the sink, first arrivals in the order they were enqueued, and the
/// duplicates (sent again after a kill) are counted and bounded by the batches in flight.
#[test]
fn no_alert_is_lost_when_the_agent_is_killed_while_producing_and_delivering() {
    const ALERTS: usize = 1000;
    const KILLS_DOWN: usize = 12;
    const KILLS_UP: usize = 12;
    const BATCH: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let mut sleepers = Marked::new(86397);
    std::fs::write(&rules, sleepers.rule("TEST-MARK", "high")).unwrap();
    let down = dir.path().join("down");
    std::fs::write(&down, "a file where the sink's directory should be").unwrap();
    let file = down.join("alerts.jsonl");
    let sinks = format!(
        "[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = {:?}\n",
        file.display().to_string()
    );
    let config = config(
        &rules,
        &sinks,
        &format!(
            "batch = {BATCH}\nretry_min = \"50ms\"\nretry_max = \"200ms\"\nbreaker_failures = 1000"
        ),
    );
    let agent_dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_in(agent_dir, &config, 0.3, &[]);
    let mut rng = fastrand::Rng::with_seed(0x0b0c5);

    // Production, sink down: sleepers appear in steps between random kills.
    let per_round = ALERTS.div_ceil(KILLS_DOWN);
    for round in 0..KILLS_DOWN {
        for n in round * per_round..((round + 1) * per_round).min(ALERTS) {
            sleepers.spawn(n);
        }
        std::thread::sleep(Duration::from_millis(rng.u64(200..1500)));
        agent.kill();
        agent.restart();
    }
    let want = sleepers.pids();
    assert_eq!(want.len(), ALERTS);
    let pending = wait_for(
        "every alert enqueued while the sink is down",
        Duration::from_secs(300),
        || {
            outbox_status(&agent)
                .and_then(|s| s["archive"]["pending"].as_u64())
                .filter(|&p| p >= ALERTS as u64)
        },
    );
    assert_eq!(
        pending, ALERTS as u64,
        "nothing else raised, nothing delivered"
    );

    // The sink comes back; kills at random moments while it delivers.
    std::fs::remove_file(&down).unwrap();
    std::fs::create_dir(&down).unwrap();
    let mut killed_with_pending = 0;
    for _ in 0..KILLS_UP {
        std::thread::sleep(Duration::from_millis(rng.u64(50..600)));
        let arrived = alerts_in(&file).len();
        agent.kill();
        if arrived < ALERTS {
            killed_with_pending += 1;
        }
        agent.restart();
    }
    wait_for("every alert delivered", Duration::from_secs(300), || {
        outbox_status(&agent).filter(|s| s["archive"]["pending"] == 0)
    });

    let alerts = alerts_in(&file);
    let mut seen = BTreeSet::new();
    let mut first_arrivals = Vec::new();
    for alert in &alerts {
        let pid = marked_pid(alert).expect("only marked alerts");
        if seen.insert(alert["id"].as_str().unwrap().to_owned()) {
            first_arrivals.push((alert["scan_id"].as_i64().unwrap(), pid));
        }
    }
    let pids: BTreeSet<u64> = first_arrivals.iter().map(|(_, pid)| *pid).collect();
    assert_eq!(pids, want, "every alert arrived");
    assert_eq!(first_arrivals.len(), ALERTS, "one alert per process");
    let mut sorted = first_arrivals.clone();
    sorted.sort_unstable();
    assert_eq!(
        first_arrivals, sorted,
        "first arrivals in enqueue order (scan, then pid)"
    );
    let duplicates = alerts.len() - ALERTS;
    println!(
        "durability: {ALERTS} alerts, {} kills ({KILLS_DOWN} producing, {KILLS_UP} delivering, \
         {killed_with_pending} with deliveries pending), {duplicates} duplicates",
        KILLS_DOWN + KILLS_UP
    );
    assert!(
        duplicates <= KILLS_UP * BATCH,
        "duplicates ({duplicates}) bounded by the batch in flight at each kill"
    );
}

/// A SIEM sink without a license does not start, says why, and keeps its alerts; the other
/// sinks run. A webhook receiver that accepts the connection and never answers occupies only
/// its own sink: scans go on being processed while the request hangs.
#[test]
fn an_unlicensed_sink_waits_and_a_hanging_receiver_never_holds_up_the_scans() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let mut sleepers = Marked::new(86396);
    std::fs::write(&rules, sleepers.rule("TEST-MARK", "high")).unwrap();
    let token = dir.path().join("hec.token");
    std::fs::write(&token, "00000000-0000-0000-0000-000000000000\n").unwrap();
    let archive = dir.path().join("archive.jsonl");
    // Accepts connections, reads nothing, answers nothing; the accepted streams are kept open.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in hang.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    let sinks = format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:9\"\n\
         token_file = {:?}\n\n\
         [[sinks]]\nname = \"soar\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/alerts\"\n\
         timeout = \"300s\"\n\n\
         [[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = {:?}\n",
        token.display().to_string(),
        archive.display().to_string()
    );
    let config = config(&rules, &sinks, "");
    sleepers.spawn(0);
    let agent = Agent::start(&config, 0.5);
    wait_for("the alert in the archive", Duration::from_secs(120), || {
        alerts_in(&archive)
            .iter()
            .any(|alert| marked_pid(alert).is_some())
            .then_some(())
    });
    wait_for(
        "the webhook request to hang",
        Duration::from_secs(120),
        || (!held.lock().unwrap().is_empty()).then_some(()),
    );
    let hung_at = agent.logged("scan processed").len();
    wait_for(
        "three scans processed while the webhook request hangs",
        Duration::from_secs(120),
        || (agent.logged("scan processed").len() >= hung_at + 3).then_some(()),
    );
    let status = outbox_status(&agent).unwrap();
    assert_eq!(
        status["soar"]["pending"], 1,
        "still in flight: {:#}",
        status["soar"]
    );
    assert_eq!(
        status["soar"]["retried"], 0,
        "the request has not timed out"
    );
    let siem = &status["siem"];
    assert_eq!(siem["state"], "unlicensed", "{siem:#}");
    assert!(
        siem["state_reason"]
            .as_str()
            .unwrap()
            .contains("splunk_hec needs a license"),
        "{siem:#}"
    );
    assert_eq!(siem["pending"], 1, "its alert is kept: {siem:#}");
    assert_eq!(status["archive"]["delivered"], 1);
    let health = agent.health().unwrap();
    let siem_health = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sink siem")
        .cloned()
        .unwrap();
    assert_eq!(siem_health["status"], "degraded", "{health:#}");
    assert!(
        siem_health["detail"]
            .as_str()
            .unwrap()
            .starts_with("not started: splunk_hec needs a license"),
        "{health:#}"
    );
    // SIGTERM while the request still hangs (its timeout is 300 s): the agent stops without
    // waiting for it; the delivery stays pending for the next start.
    let mut agent = agent;
    let status = agent.stop_within(Duration::from_secs(120));
    assert!(status.success(), "{status:?}");
}

/// A full outbox drops the oldest deliveries of the full sink, never blocks scanning, and is
/// never silent: `outbox status` counts them, health is degraded, and the audit ledger has an
/// `alerts_dropped` entry; deliveries (`alert_delivered`) are in the ledger too.
#[test]
fn a_full_outbox_drops_the_oldest_and_says_so_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let mut sleepers = Marked::new(86395);
    std::fs::write(&rules, sleepers.rule("TEST-MARK", "high")).unwrap();
    let blocked_dir = dir.path().join("blocked");
    std::fs::write(&blocked_dir, "not a directory").unwrap();
    let archive = dir.path().join("archive.jsonl");
    let sinks = format!(
        "[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = {:?}\n\n\
         [[sinks]]\nname = \"blocked\"\ntype = \"file\"\npath = {:?}\n",
        archive.display().to_string(),
        blocked_dir.join("alerts.jsonl").display().to_string()
    );
    let config = config(&rules, &sinks, "max_alerts = 2");
    // One marked process at a time, each alert delivered to the archive before the next:
    // only the blocked sink's queue fills.
    sleepers.spawn(0);
    let agent = Agent::start(&config, 0.5);
    for n in 1..=5 {
        wait_for("the archive to deliver", Duration::from_secs(120), || {
            outbox_status(&agent).filter(|s| s["archive"]["delivered"] == n)
        });
        if n < 5 {
            sleepers.spawn(usize::try_from(n).unwrap());
        }
    }
    let status = wait_for("three drops", Duration::from_secs(120), || {
        outbox_status(&agent).filter(|s| s["blocked"]["dropped"] == 3)
    });
    assert_eq!(status["blocked"]["pending"], 2, "{:#}", status["blocked"]);
    assert_eq!(status["archive"]["dropped"], 0);
    assert_eq!(
        status["archive"]["delivered"], 5,
        "the other sink is not affected"
    );
    let health = agent.health().unwrap();
    assert!(
        health["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "sink blocked" && c["status"] == "degraded"),
        "{health:#}"
    );
    // Scans go on (nothing waits for room in the outbox).
    let scans = agent.logged("scan processed").len();
    wait_for("two more scans", Duration::from_secs(120), || {
        (agent.logged("scan processed").len() >= scans + 2).then_some(())
    });

    let export = dir.path().join("audit-export");
    let entries = wait_for("the ledger entries", Duration::from_secs(120), || {
        let _ = std::fs::remove_dir_all(&export);
        let output = agent.cli(&["audit", "export", "--out", export.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        let entries: Vec<Value> = std::fs::read_to_string(export.join("entries.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let delivered = entries
            .iter()
            .filter(|e| e["kind"] == "alert_delivered")
            .count();
        (delivered >= 5).then_some(entries)
    });
    let dropped: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "alerts_dropped")
        .collect();
    let total: u64 = dropped
        .iter()
        .map(|e| {
            assert_eq!(e["fields"]["sink"], "blocked", "{e:#}");
            assert_eq!(e["fields"]["reason"], "full", "{e:#}");
            e["fields"]["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 3, "{dropped:#?}");
}
