//! Two agents of one site deliver into one real PostgreSQL 15 (started by the test with
//! `initdb` and `pg_ctl` on a temporary directory and a loopback port, see
//! `daemoneye_e2e::postgres`), under a site license naming `postgres`: the database is
//! stopped as by a crash and started again during delivery, and both agents are killed with
//! SIGKILL at random moments; afterwards every alert of each agent is in the table exactly
//! once. Before the license is installed the sink does not start and keeps its alerts.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daemoneye_e2e::bundles::{KeyPair, build, bundler_ok, path, shown};
use daemoneye_e2e::postgres::{StopMode, TempPostgres};
use daemoneye_e2e::{Agent, wait_for};
use serde_json::Value;

/// Processes per agent.
const ALERTS: usize = 160;

/// Marked processes, killed on drop.
struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(mark: u32, n: usize) -> Child {
    Command::new("sleep")
        .arg(format!("{mark}.{n:04}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning sleep")
}

/// An agent's configuration: its own rule (one alert per process marked `sleep MARK.N`), the
/// site, the license key, and the postgres sink.
fn config(dir: &Path, name: &str, mark: u32, license_pub: &Path, url: &str) -> String {
    let rules = dir.join(format!("{name}-rules.toml"));
    std::fs::write(
        &rules,
        format!(
            r#"[[rule]]
id = "TEST-{name}"
name = "A sleeper of agent {name}"
severity = "medium"
mitre = ["T1059"]
sql = "SELECT pid, cmdline FROM processes WHERE name = 'sleep' AND cmdline LIKE 'sleep {mark}.%' ORDER BY pid"
dedup = {{ key = ["pid"], window = "1d" }}
"#
        ),
    )
    .unwrap();
    format!(
        "[site]\nid = \"plant-7\"\n\n[collector]\nuser = \"daemon\"\n\n\
         [detection]\nbuiltin_rules = false\nrules = [{:?}]\n\n\
         [bundles]\ntrusted_keys = []\nlicense_keys = [{:?}]\n\n\
         [outbox]\nbatch = 20\nretry_min = \"50ms\"\nretry_max = \"500ms\"\nbreaker_failures = 1000\n\n\
         [[sinks]]\nname = \"site-db\"\ntype = \"postgres\"\nurl = {url:?}\ntimeout = \"5s\"\n",
        rules.display().to_string(),
        license_pub.display().to_string()
    )
}

fn sink_status(agent: &Agent) -> Option<Value> {
    let output = agent.cli(&["outbox", "status", "--format", "json"]);
    let sinks: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
    sinks.into_iter().find(|sink| sink["sink"] == "site-db")
}

#[test]
fn two_agents_deliver_every_alert_exactly_once_through_crashes_of_both_and_of_the_database() {
    let mut db = TempPostgres::start();
    let office = tempfile::tempdir().unwrap();
    let license_key = KeyPair::generate(office.path(), "licenses");
    let src = office.path().join("license-src");
    bundler_ok(&[
        "license",
        "issue",
        "--site",
        "plant-7",
        "--tier",
        "business",
        "--features",
        "postgres",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--out",
        path(&src),
    ]);
    let license = build(&src, &license_key, office.path());

    let marks = [("a", 86390_u32), ("b", 86391_u32)];
    let mut agents: Vec<Agent> = marks
        .iter()
        .map(|(name, mark)| {
            Agent::start(
                &config(
                    office.path(),
                    name,
                    *mark,
                    &license_key.public(),
                    &db.sink_url(),
                ),
                0.5,
            )
        })
        .collect();
    let mut sleepers = Sleepers(Vec::new());
    let mut pids: Vec<BTreeSet<u64>> = vec![BTreeSet::new(), BTreeSet::new()];
    for n in 0..10 {
        for (index, (_, mark)) in marks.iter().enumerate() {
            let child = spawn(*mark, n);
            pids[index].insert(u64::from(child.id()));
            sleepers.0.push(child);
        }
    }

    // No license yet: the sink waits and keeps what it has.
    for agent in &agents {
        let status = wait_for(
            "ten alerts kept for the sink",
            Duration::from_secs(120),
            || sink_status(agent).filter(|s| s["pending"] == 10),
        );
        assert_eq!(status["state"], "unlicensed", "{status:#}");
    }
    for agent in &agents {
        let installed = agent.cli(&["bundle", "install", path(&license)]);
        assert!(installed.status.success(), "{}", shown(&installed));
    }

    // Delivery under fire: more alerts, the database crashing and coming back, both agents
    // killed at random moments.
    let mut rng = fastrand::Rng::with_seed(0xdb_f1ee7);
    for round in 0..6 {
        for n in 10 + round * 25..10 + (round + 1) * 25 {
            for (index, (_, mark)) in marks.iter().enumerate() {
                let child = spawn(*mark, n);
                pids[index].insert(u64::from(child.id()));
                sleepers.0.push(child);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.u64(200..1200)));
        if round % 2 == 0 {
            db.stop(StopMode::Immediate);
            std::thread::sleep(Duration::from_millis(rng.u64(100..800)));
            db.restart();
        }
        let victim = rng.usize(0..agents.len());
        agents[victim].kill();
        agents[victim].restart();
    }
    assert!(pids.iter().all(|set| set.len() == ALERTS));

    for agent in &agents {
        wait_for("every alert delivered", Duration::from_secs(300), || {
            sink_status(agent)
                .filter(|s| s["pending"] == 0 && s["state"] == "running" && s["enqueued"] == ALERTS)
        });
    }
    let mut client = db.client();
    for (index, (name, _)) in marks.iter().enumerate() {
        let rule = format!("TEST-{name}");
        let rows = client
            .query(
                "SELECT id, (alert->'rows'->0->>'pid')::bigint, host, site, severity \
                 FROM daemoneye_alerts WHERE rule_id = $1",
                &[&rule],
            )
            .unwrap();
        let ids: BTreeSet<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
        let got: BTreeSet<u64> = rows
            .iter()
            .map(|row| u64::try_from(row.get::<_, i64>(1)).unwrap())
            .collect();
        assert_eq!(
            rows.len(),
            ALERTS,
            "{rule}: one row per alert, no duplicate"
        );
        assert_eq!(ids.len(), ALERTS, "{rule}: distinct alert ids");
        assert_eq!(got, pids[index], "{rule}: every process's alert");
        for row in &rows {
            assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("plant-7"));
            assert_eq!(row.get::<_, String>(4), "medium");
        }
    }
}
