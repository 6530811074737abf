//! Damage before the tail of the audit ledger is found and reported: an agent records some
//! entries and stops, one byte early in `entries.log` is flipped, the agent starts again, and
//! `daemoneye-cli health-check` turns the ledger `failed`, naming the damaged frame's byte
//! offset and entry index (found by procmond's background check, which walks the whole log
//! from its start at every start). procmond keeps recording, and says so once in its log.
//! Damage in the newest entry, which the open reads whole, makes the ledger refuse to open, and
//! health says so with the offset.
//!
//! Runs as root (the agent starts a privileged procmond, which owns the ledger); CI runs it as
//! root.

use std::ops::Range;
use std::time::Duration;

use daemoneye_e2e::{Agent, wait_for};
use serde_json::Value;

const ENTRIES_MAGIC: &[u8; 8] = b"DEYELOG1";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
}

/// The `ledger` component of a health report: status and detail.
fn ledger(health: &Value) -> Option<(String, String)> {
    health["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "ledger")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// The entry count at the start of an open ledger's detail ("N entries (blake3), ...").
fn entry_count(detail: &str) -> Option<u64> {
    detail.split(" entries").next()?.trim().parse().ok()
}

/// Each frame of `entries.log`: its offset and the range of its payload.
fn frames(bytes: &[u8]) -> Vec<(usize, Range<usize>)> {
    assert_eq!(&bytes[..8], ENTRIES_MAGIC);
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, at + 8..at + 8 + len));
        at += 8 + len;
    }
    assert_eq!(at, bytes.len(), "entries.log ends with a whole frame");
    out
}

#[test]
fn an_early_flipped_byte_turns_the_ledger_failed_with_its_offset() {
    require_root();
    let mut agent = Agent::start("", 1.0);
    agent.wait_for_procmond();
    wait_for("a few ledger entries", Duration::from_secs(60), || {
        let (status, detail) = ledger(&agent.health()?)?;
        (status == "ok" && entry_count(&detail)? >= 6).then_some(())
    });
    agent.stop();

    // Entry 2 (procmond's privilege drop): early, neither the first frame nor the tail.
    let path = agent.data_dir.join("ledger").join("entries.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let all = frames(&bytes);
    assert!(all.len() >= 6, "{} entries", all.len());
    let (offset, payload) = all[2].clone();
    bytes[payload.start + payload.len() / 2] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    agent.restart();
    let (_, detail) = wait_for(
        "health-check to report the ledger failed",
        Duration::from_secs(60),
        || ledger(&agent.health()?).filter(|(status, _)| status == "failed"),
    );
    assert!(
        detail.contains(&format!("entries.log at byte {offset} (entry 2)")),
        "{detail}"
    );
    let health = agent.health().unwrap();
    assert_eq!(health["overall"], "failed", "{health}");

    // procmond keeps recording after the damage was found (the health detail says so, and the
    // count grows with every scan), and logged the damage once.
    let before = entry_count(&detail).unwrap_or(0);
    wait_for(
        "more entries after the damage",
        Duration::from_secs(60),
        || {
            let (status, detail) = ledger(&agent.health()?)?;
            assert_eq!(status, "failed", "{detail}");
            (entry_count(&detail)? > before).then_some(())
        },
    );
    let logged = agent.logged("the audit ledger is damaged");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["fields"]["offset"], offset, "{logged:?}");
    assert_eq!(logged[0]["fields"]["entry"], 2, "{logged:?}");
}

#[test]
fn damage_in_the_newest_entry_is_found_at_open_and_the_ledger_refused() {
    require_root();
    let mut agent = Agent::start("", 1.0);
    agent.wait_for_procmond();
    wait_for("a few ledger entries", Duration::from_secs(60), || {
        let (status, detail) = ledger(&agent.health()?)?;
        (status == "ok" && entry_count(&detail)? >= 4).then_some(())
    });
    agent.stop();

    // procmond's stop entry is the newest, covered by the checkpoint signed at the stop: the
    // open reads that frame whole.
    let path = agent.data_dir.join("ledger").join("entries.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let (offset, payload) = frames(&bytes).last().unwrap().clone();
    bytes[payload.start + 1] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    agent.restart();
    let (_, detail) = wait_for(
        "health-check to report the ledger failed",
        Duration::from_secs(60),
        || ledger(&agent.health()?).filter(|(status, _)| status == "failed"),
    );
    assert!(
        detail.starts_with(&format!(
            "damaged, refused to open: entries.log at byte {offset}:"
        )),
        "{detail}"
    );
    // Nothing was cut or appended.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
