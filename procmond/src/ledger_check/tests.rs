//! The background check in procmond: damage early in `entries.log` is found at its frame's
//! offset and entry and reported through health once, a clean ledger passes (and is checked
//! again after the interval), and a stop ends a check that waits or reads.

use std::path::Path;
use std::time::Duration;

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::ledger::store::{Damage, Settings};

use super::*;

fn settings() -> Settings {
    Settings {
        hash: HashAlg::Blake3,
        origin: "daemoneye.ledger/test/host".to_owned(),
    }
}

/// Fast enough for a test, slow enough to be paced (tests never assert a duration).
const FAST: CheckSettings = CheckSettings {
    bytes_per_sec: 64 * 1024 * 1024,
    interval: Duration::from_millis(10),
};

/// Polls `check` until it is `Some`; the 60 s limit only keeps a broken test from hanging.
fn wait<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A ledger of the creation entry and `n` stop entries, with a checkpoint, closed; returns
/// the frame offsets of `entries.log`.
fn ledger(dir: &Path, n: usize) -> Vec<u64> {
    let audit = AuditLog::open(dir, &settings());
    for i in 0..n {
        audit.record(Body::ProcmondStopped {
            reason: format!("test {i}"),
        });
    }
    audit.close("test");
    let bytes = std::fs::read(dir.join("entries.log")).expect("reads");
    let mut offsets = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        offsets.push(at as u64);
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        at += 8 + len as usize;
    }
    offsets
}

#[test]
fn early_damage_turns_health_failed_with_its_offset_and_appends_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let offsets = ledger(dir.path(), 20);
    let path = dir.path().join("entries.log");
    let mut bytes = std::fs::read(&path).expect("reads");
    bytes[offsets[2] as usize + 12] ^= 0x20;
    std::fs::write(&path, bytes).expect("writes");

    let audit = Arc::new(AuditLog::open(dir.path(), &settings()));
    assert!(audit.available(), "the open reads no frame but the newest");
    assert_eq!(audit.damage(), None);
    let checker = Checker::start(Arc::clone(&audit), FAST);
    let damage = wait("the damage", || audit.damage());
    assert_eq!(
        (
            damage.file.as_str(),
            damage.offset,
            damage.entry,
            damage.at_open
        ),
        ("entries.log", offsets[2], Some(2), false),
        "{damage:?}"
    );
    assert!(damage.reason.contains("checksum"), "{damage:?}");
    assert!(
        audit.describe().contains("background check: found damage"),
        "{}",
        audit.describe()
    );
    // Reported once: a later report does not replace what was found first.
    audit.report_damage(Damage {
        file: "tree-00.hash".to_owned(),
        offset: 0,
        entry: None,
        reason: "later".to_owned(),
    });
    assert_eq!(audit.damage(), Some(damage));
    // procmond goes on recording.
    audit.record(Body::ProcmondStopped {
        reason: "after the damage".to_owned(),
    });
    assert!(
        audit
            .describe()
            .starts_with(&format!("{} entries", offsets.len() + 1)),
        "{}",
        audit.describe()
    );
    checker.stop();
}

#[test]
fn a_clean_ledger_passes_and_is_checked_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let offsets = ledger(dir.path(), 50);
    let audit = Arc::new(AuditLog::open(dir.path(), &settings()));
    let checker = Checker::start(Arc::clone(&audit), FAST);
    wait("a clean pass", || {
        audit
            .describe()
            .contains(&format!("all {} entries verified", offsets.len()))
            .then_some(())
    });
    // Entries appended meanwhile are in the next pass.
    audit.record(Body::ProcmondStopped {
        reason: "more".to_owned(),
    });
    wait("a second pass over the new entry", || {
        audit
            .describe()
            .contains(&format!("all {} entries verified", offsets.len() + 1))
            .then_some(())
    });
    assert_eq!(audit.damage(), None);
    checker.stop();
}

#[test]
fn damage_found_at_open_is_reported_and_the_ledger_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let offsets = ledger(dir.path(), 3);
    let last = *offsets.last().expect("entries");
    let path = dir.path().join("entries.log");
    let mut bytes = std::fs::read(&path).expect("reads");
    bytes[last as usize + 12] ^= 0x20;
    std::fs::write(&path, bytes).expect("writes");
    let audit = AuditLog::open(dir.path(), &settings());
    assert!(!audit.available());
    let damage = audit.damage().expect("reported");
    assert_eq!(
        (damage.file.as_str(), damage.offset, damage.at_open),
        ("entries.log", last, true),
        "{damage:?}"
    );
}

#[test]
fn a_stop_ends_a_slow_check_and_a_waiting_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    ledger(dir.path(), 500);
    let audit = Arc::new(AuditLog::open(dir.path(), &settings()));
    // At the lowest rate, a pass over ~60 KB takes about a second: the stop must not wait for it.
    let slow = Checker::start(
        Arc::clone(&audit),
        CheckSettings {
            bytes_per_sec: 64 * 1024,
            interval: Duration::from_secs(3600),
        },
    );
    wait("the pass to begin", || {
        audit
            .describe()
            .contains("background check: ")
            .then_some(())
            .filter(|()| !audit.describe().contains("not started"))
    });
    slow.stop();
    // A clean pass, then an hour's wait: the stop wakes it.
    let waiting = Checker::start(
        Arc::clone(&audit),
        CheckSettings {
            bytes_per_sec: 64 * 1024 * 1024,
            interval: Duration::from_secs(3600),
        },
    );
    wait("a clean pass", || {
        audit
            .describe()
            .contains("entries verified by")
            .then_some(())
    });
    waiting.stop();
}
