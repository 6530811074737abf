//! Two agents of one site deliver into one real PostgreSQL 15 (started by the test with
//! `initdb` and `pg_ctl` on a temporary directory and a loopback port, see
//! `daemoneye_e2e::postgres`), under a site license naming `postgres`: the database is
//! stopped as by a crash and started again during delivery, and both agents are killed with
//! SIGKILL at random moments; afterwards every alert of each agent is in the table exactly
//! once. Before the license is installed the sink does not start and keeps its alerts.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use daemoneye_e2e::bundles::{KeyPair, build, bundler_ok, path, shown};
use daemoneye_e2e::marked::Marked;
use daemoneye_e2e::postgres::{StopMode, TempPostgres};
use daemoneye_e2e::{Agent, wait_for};
use serde_json::Value;

/// Processes per agent.
const ALERTS: usize = 160;

/// An agent's configuration: its own rule (one alert per process marked `sleep MARK.N`), the
/// site, the license key, and the postgres sink.
fn config(dir: &Path, name: &str, marked: &Marked, license_pub: &Path, url: &str) -> String {
    let rules = dir.join(format!("{name}-rules.toml"));
    std::fs::write(&rules, marked.rule(&format!("TEST-{name}"), "medium")).unwrap();
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

    let names = ["a", "b"];
    let mut marked = [Marked::new(86380), Marked::new(86381)];
    let mut agents: Vec<Agent> = names
        .iter()
        .zip(&marked)
        .map(|(name, marked)| {
            Agent::start(
                &config(
                    office.path(),
                    name,
                    marked,
                    &license_key.public(),
                    &db.sink_url(),
                ),
                0.5,
            )
        })
        .collect();
    for n in 0..10 {
        for processes in &mut marked {
            processes.spawn(n);
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
            for processes in &mut marked {
                processes.spawn(n);
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
    let pids: Vec<BTreeSet<u64>> = marked.iter().map(Marked::pids).collect();
    assert!(pids.iter().all(|set| set.len() == ALERTS));

    for agent in &agents {
        wait_for("every alert delivered", Duration::from_secs(300), || {
            sink_status(agent)
                .filter(|s| s["pending"] == 0 && s["state"] == "running" && s["enqueued"] == ALERTS)
        });
    }
    let mut client = db.client();
    for (index, name) in names.iter().enumerate() {
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
