//! Opening and reading a file that is not as the store left it: each failure is its own
//! `StoreError` variant, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};

use super::*;

#[test]
fn the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(Store::open(&path, CACHE).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path, CACHE).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn open_fails_without_a_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("store.redb");
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("missing/store.redb"), "{err}");
}

#[test]
fn a_second_writer_is_refused() {
    let (dir, _store) = temp_store();
    let path = dir.path().join("store.redb");
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(
        matches!(&err, StoreError::InUse { path: p } if *p == path),
        "{err:?}"
    );
    assert!(!err.is_damage());
    // Not damage: the file is not moved aside.
    let err = Store::open_or_recover(&path, CACHE, 0).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn another_schema_version_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(Store::open(&path, CACHE).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(codec::META)
            .unwrap()
            .insert(codec::SCHEMA_KEY, 3u32.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(
        matches!(&err, StoreError::SchemaVersion { path: p, found: 3, expected: 2 } if *p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("store.redb")
            && message.contains("version 3")
            && message.contains("version 2"),
        "{message}"
    );
}

#[test]
fn a_redb_file_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<u64, u64> = TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
}

#[test]
fn an_unknown_value_format_is_an_error_not_a_panic() {
    let (_dir, store) = temp_store();
    ingest(&store, 1000, &[record(1, Some(1))]);
    ingest(&store, 2000, &[record(2, Some(2))]);
    store.put_alerts(&[stored_alert("a", 1)]).unwrap();
    store
        .put_rule_states(&[rule_state("r", RuleStatus::Ok)])
        .unwrap();
    {
        let txn = store.db.begin_write().unwrap();
        let bad: &[u8] = &[9, 0, 0];
        txn.open_table(codec::SNAPSHOTS)
            .unwrap()
            .insert(&codec::snapshot_key(2, 2), bad)
            .unwrap();
        txn.open_table(codec::SCANS)
            .unwrap()
            .insert(&codec::scan_key(1), bad)
            .unwrap();
        txn.open_table(codec::EVENTS)
            .unwrap()
            .insert(&codec::event_key(2, 0), bad)
            .unwrap();
        txn.open_table(codec::ALERTS)
            .unwrap()
            .insert("a", bad)
            .unwrap();
        txn.open_table(codec::RULE_STATE)
            .unwrap()
            .insert("r", bad)
            .unwrap();
        txn.commit().unwrap();
    }
    let check = |result: Result<(), StoreError>, expected_table: &str| {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, StoreError::UnknownValueFormat { table, version: 9, .. } if *table == expected_table),
            "{err:?}"
        );
        assert!(err.to_string().contains("format version 9"), "{err}");
    };
    check(store.snapshot(2).map(drop), "snapshots");
    check(store.process_history(2, Some(2)).map(drop), "snapshots");
    check(store.ingest(&summary(3000, 0), &[]).map(drop), "snapshots");
    check(store.scan(1).map(drop), "scans");
    check(store.scans().map(drop), "scans");
    check(store.events(2).map(drop), "events");
    check(store.alert("a").map(drop), "alerts");
    check(store.ack_alert("a", 5).map(drop), "alerts");
    check(store.rule_states().map(drop), "rule_state");
    // The failed ingest wrote nothing.
    assert_eq!(store.latest_scan().unwrap().unwrap().scan_id, 2);

    // A truncated value is corrupt, not an unknown format.
    {
        let txn = store.db.begin_write().unwrap();
        let truncated: &[u8] = &[1, 5];
        txn.open_table(codec::SNAPSHOTS)
            .unwrap()
            .insert(&codec::snapshot_key(2, 2), truncated)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = store.snapshot(2).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                table: "snapshots",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A store at `dir/events.redb` holding a few scans, closed.
fn closed_store(dir: &Path) -> PathBuf {
    let path = dir.join("events.redb");
    let store = Store::open(&path, CACHE).unwrap();
    for scan in 0..20 {
        let records: Vec<ProcessRecord> = (0..200)
            .map(|pid| record(pid, Some(i64::from(pid) + scan)))
            .collect();
        ingest(&store, 1000 * (scan + 1), &records);
    }
    drop(store);
    path
}

/// Overwrites `len` bytes at `at` with reproducible pseudo-random bytes (xorshift).
fn scribble(path: &Path, at: usize, len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() >= at + len, "{} bytes", bytes.len());
    let mut state: u64 = 0x5eed_da3a_0000_0001;
    for byte in &mut bytes[at..at + len] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state.to_le_bytes()[0];
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn random_bytes_inside_the_store_are_damage_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = closed_store(dir.path());
    let damaged = scribble(&path, 4096, 64 * 1024);
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(err.is_damage(), "{err:?}");
    assert!(err.to_string().contains("events.redb"), "{err}");
    // Opening did not change the file.
    assert!(std::fs::read(&path).unwrap() == damaged);
}

#[test]
fn a_damaged_store_is_moved_aside_and_a_new_one_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = closed_store(dir.path());
    let damaged = scribble(&path, 4096, 64 * 1024);
    // 2026-12-03T01:45:00.5Z
    let now_ms = 1_796_262_300_500;
    let (store, recovered) = Store::open_or_recover(&path, CACHE, now_ms).unwrap();
    let recovered = recovered.expect("the store was damaged");
    assert_eq!(
        recovered.moved_to,
        dir.path().join("events.redb.damaged-20261203T014500Z")
    );
    assert!(recovered.reason.contains("events.redb"), "{recovered:?}");
    assert!(std::fs::read(&recovered.moved_to).unwrap() == damaged);
    // The new store is empty and works.
    assert_eq!(store.latest_scan().unwrap(), None);
    ingest(&store, 5000, &[record(1, Some(1))]);
    drop(store);

    // Damaged again in the same second: the first moved file is kept, the second gets `.1`.
    scribble(&path, 0, 4096);
    let (_store, again) = Store::open_or_recover(&path, CACHE, now_ms).unwrap();
    assert_eq!(
        again.unwrap().moved_to,
        dir.path().join("events.redb.damaged-20261203T014500Z.1")
    );
    assert_eq!(
        names(dir.path()),
        [
            "events.redb",
            "events.redb.damaged-20261203T014500Z",
            "events.redb.damaged-20261203T014500Z.1"
        ]
    );
}

#[test]
fn a_file_that_is_not_redb_at_all_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    std::fs::write(&path, vec![0x41; 8192]).unwrap();
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(err.is_damage(), "{err:?}");
    let (_store, recovered) = Store::open_or_recover(&path, CACHE, 0).unwrap();
    assert!(recovered.is_some());
}

#[test]
fn a_newer_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = closed_store(dir.path());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(codec::META)
            .unwrap()
            .insert(codec::SCHEMA_KEY, 7u32.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open_or_recover(&path, CACHE, 0).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::SchemaVersion {
                found: 7,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_damage());
    assert!(std::fs::read(&path).unwrap() == before);
    assert_eq!(names(dir.path()), ["events.redb"]);
}
