//! Opening and reading a file that is not as the store left it: each failure is its own
//! `StoreError` variant, never a panic.

use std::os::unix::fs::PermissionsExt;

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
    let err = Store::open(&dir.path().join("store.redb"), CACHE).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
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
            .insert(codec::SCHEMA_KEY, 2u32.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(
        matches!(&err, StoreError::SchemaVersion { path: p, found: 2, expected: 1 } if *p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("store.redb")
            && message.contains("version 2")
            && message.contains("version 1"),
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
