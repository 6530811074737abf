//! A damaged event store never stops detection: the agent moves it aside (never deletes it),
//! starts a new one, says so in its log, in health and in the audit ledger, and goes on
//! scanning. A store written by a newer agent is refused and left as it is; a data directory
//! another agent uses is refused with that agent's pid.
//!
//! Every wait polls with a generous deadline; nothing here depends on how fast a scan is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use daemoneye_e2e::{Agent, bin, wait_for};
use daemoneye_lib::ledger::entry::Entry;
use serde_json::Value;

/// One rule that matches on every scan: the agent itself.
const RULES: &str = r#"
[[rule]]
id = "TEST-ALIVE"
name = "The agent itself"
severity = "info"
mitre = ["T1057"]
sql = "SELECT pid, name FROM processes WHERE name = 'daemoneye-agent'"
"#;

/// A temporary directory with `rules.toml` and `config.toml` (only [`RULES`]), and the
/// configuration's text.
fn prepared_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let config = format!(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\nrules = [{:?}]\n",
        rules.display().to_string()
    );
    std::fs::write(dir.path().join("config.toml"), &config).unwrap();
    (dir, config)
}

/// Runs `daemoneye-agent ARGS --data-dir <dir>/data --config <dir>/config.toml` to its end
/// (killed after a generous deadline, which fails the test).
fn run_agent(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(bin("daemoneye-agent"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env_remove("DAEMONEYE_DATA_DIR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("the agent did not exit: {output:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A real store, written and closed by the agent (`--once`), in `<dir>/data/events.redb`.
fn store_written_by_the_agent(dir: &Path) -> PathBuf {
    let once = run_agent(dir, &["--once"]);
    assert!(once.status.success(), "{once:?}");
    let store = dir.join("data").join("events.redb");
    assert!(store.is_file());
    store
}

/// The data directory's files whose names start with `events.redb.damaged-`.
fn moved_aside(data_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("events.redb.damaged-"))
        })
        .collect();
    found.sort();
    found
}

/// The entries of a ledger's `entries.log` (magic, then frames of length, CRC and payload).
fn ledger_entries(ledger: &Path) -> Vec<Entry> {
    let Ok(bytes) = std::fs::read(ledger.join("entries.log")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        out.push(Entry::decode(&bytes[at + 8..at + 8 + len]).unwrap());
        at += 8 + len;
    }
    out
}

/// Fails if `text` holds Rust's report of a panic (the default hook's `thread '…' panicked
/// at …` and its backtrace hint). The store's own reason may say that redb panicked: that
/// panic was caught, and saying so is the diagnosis.
fn assert_no_panic_report(text: &str) {
    assert!(
        !text.contains("panicked at") && !text.contains("RUST_BACKTRACE"),
        "{text}"
    );
}

fn component<'a>(health: &'a Value, name: &str) -> Option<&'a Value> {
    health["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

#[test]
fn a_damaged_store_is_moved_aside_and_detection_goes_on() {
    let (dir, config) = prepared_dir();
    let store = store_written_by_the_agent(dir.path());
    // 64 KiB of (seeded, so reproducible) random bytes from offset 4096: redb's own pages.
    let mut bytes = std::fs::read(&store).unwrap();
    assert!(bytes.len() > 4096 + 65536, "{} bytes", bytes.len());
    let mut rng = fastrand::Rng::with_seed(0x5eed_da3a);
    rng.fill(&mut bytes[4096..4096 + 65536]);
    std::fs::write(&store, &bytes).unwrap();

    let agent = Agent::start_in(dir, &config, 1.0, &[]);
    let data_dir = agent.data_dir.clone();
    // Health: a `store` component, degraded, with the reason and the moved-aside file.
    let store_health = wait_for("the store component", Duration::from_secs(90), || {
        agent.health().and_then(|h| component(&h, "store").cloned())
    });
    assert_eq!(store_health["status"], "degraded", "{store_health:#}");
    let aside = moved_aside(&data_dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = aside[0].file_name().unwrap().to_str().unwrap().to_owned();
    // events.redb.damaged-YYYYMMDDTHHMMSSZ
    let stamp = name.strip_prefix("events.redb.damaged-").unwrap();
    assert_eq!(stamp.len(), 16, "{name}");
    assert!(
        stamp[..8].bytes().all(|b| b.is_ascii_digit())
            && &stamp[8..9] == "T"
            && stamp[9..15].bytes().all(|b| b.is_ascii_digit())
            && stamp.ends_with('Z'),
        "{name}"
    );
    let detail = store_health["detail"].as_str().unwrap();
    assert!(detail.contains("damaged"), "{detail}");
    assert!(detail.contains(&name), "{detail}");
    // The damaged file is kept exactly as it was found.
    assert!(
        std::fs::read(&aside[0]).unwrap() == bytes,
        "the moved-aside file differs from the damaged store"
    );
    assert!(data_dir.join("events.redb").is_file());

    // Detection goes on: scans are stored, the rule fires, its alert is in the new store.
    wait_for("three processed scans", Duration::from_secs(120), || {
        (agent.logged("scan processed").len() >= 3).then_some(())
    });
    let agent_pid = u64::from(agent.pid());
    wait_for("the rule's alert", Duration::from_secs(60), || {
        agent
            .printed_alerts()
            .iter()
            .any(|a| {
                a["rule_id"] == "TEST-ALIVE" && a["rows"][0]["pid"].as_u64() == Some(agent_pid)
            })
            .then_some(())
    });
    let listed = agent.cli(&["alerts", "list", "--format", "json"]);
    assert!(listed.status.success(), "{listed:?}");
    let alerts: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        alerts.iter().any(|a| a["rule_id"] == "TEST-ALIVE"),
        "{alerts:#?}"
    );
    // health-check exits 1: not every component is ok, and the store stays degraded.
    let check = agent.cli(&["health-check"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let table = String::from_utf8_lossy(&check.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("store") && l.contains("degraded")),
        "{table}"
    );

    // The ledger records the recovery, naming both files.
    let recovered = wait_for("the store_recovered entry", Duration::from_secs(60), || {
        ledger_entries(&data_dir.join("ledger"))
            .into_iter()
            .map(|e| e.to_json())
            .find(|e| e["kind"] == "store_recovered")
    });
    assert_eq!(recovered["source"], "agent", "{recovered:#}");
    let fields = &recovered["fields"];
    assert_eq!(
        fields["path"],
        data_dir.join("events.redb").display().to_string(),
        "{recovered:#}"
    );
    assert_eq!(
        fields["moved_to"],
        aside[0].display().to_string(),
        "{recovered:#}"
    );
    assert!(!fields["reason"].as_str().unwrap().is_empty());

    // One clear log line, and no panic ever reached the operator.
    let log = agent.log.lock().unwrap().clone();
    assert_no_panic_report(&log.join("\n"));
    assert_eq!(
        agent
            .logged("event store damaged: moved aside, a new store was created")
            .len(),
        1,
        "{log:#?}"
    );
}

#[test]
fn a_store_of_a_newer_schema_is_refused_and_left_untouched() {
    let (dir, _config) = prepared_dir();
    let store = store_written_by_the_agent(dir.path());
    // What a newer agent would leave: the schema version (`meta`, key `schema_version`, 4
    // bytes big-endian, as `lib/src/storage/mod.rs` specifies) set to 3.
    {
        let db = redb::Database::create(&store).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut table = txn.open_table(meta).unwrap();
            table
                .insert("schema_version", 3u32.to_be_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let before = std::fs::read(&store).unwrap();

    let out = run_agent(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_no_panic_report(&stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("daemoneye-agent:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.contains(&store.display().to_string()), "{line}");
    assert!(line.contains("schema version 3"), "{line}");
    assert!(line.contains("version 2"), "{line}");
    assert!(
        std::fs::read(&store).unwrap() == before,
        "the store changed"
    );
    assert!(moved_aside(&dir.path().join("data")).is_empty());
}

#[test]
fn a_second_agent_names_the_first_agents_pid() {
    let (dir, config) = prepared_dir();
    let first = Agent::start_in(dir, &config, 1.0, &[]);
    first.wait_for_procmond();
    let config_dir = first.dir.path().to_owned();
    let out = run_agent(&config_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A runtime failure, as before: the exit code of this case does not change.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "another agent (pid {}) uses this data directory {}",
        first.pid(),
        first.data_dir.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!stderr.contains("Database already open"), "{stderr}");
    assert_no_panic_report(&stderr);
    // The first agent is undisturbed.
    assert!(first.health().is_some());
}
