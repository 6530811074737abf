//! Tests of the store through its public API, each on a fresh file in a temporary directory.

use std::collections::BTreeSet;

use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use tempfile::TempDir;

use super::*;
use crate::alert::{Alert, Severity};
use crate::ids::AlertId;
use crate::models::{EventKind, OnDisk, ProcessRecord, ScanSummary};

mod failures;
mod outbox;
mod retention;

const CACHE: usize = 1 << 20;

pub(super) fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.redb"), CACHE).unwrap();
    (dir, store)
}

pub(super) fn record(pid: u32, start_time: Option<i64>) -> ProcessRecord {
    ProcessRecord {
        pid,
        start_time,
        name: Some(format!("p{pid}")),
        ..ProcessRecord::default()
    }
}

fn full_record() -> ProcessRecord {
    ProcessRecord {
        pid: 4242,
        parent: Some(1),
        name: Some("sshd".to_owned()),
        path: Some("/usr/sbin/sshd".to_owned()),
        cmdline: Some("sshd: alice [priv] \u{1F600} \"quoted\"".to_owned()),
        cwd: Some("/".to_owned()),
        root: Some("/".to_owned()),
        state: Some("S".to_owned()),
        uid: Some(0),
        gid: Some(0),
        euid: Some(1000),
        egid: Some(1000),
        suid: Some(0),
        sgid: Some(0),
        on_disk: OnDisk::Gone,
        resident_size: Some(u64::MAX),
        total_size: Some(1 << 40),
        user_time: Some(12),
        system_time: Some(34),
        disk_bytes_read: Some(0),
        disk_bytes_written: Some(99),
        start_time: Some(-1),
        pgroup: Some(4242),
        threads: Some(3),
        nice: Some(-20),
        cgroup_path: Some("/system.slice/ssh.service".to_owned()),
        exe_sha256: Some("ab".repeat(32)),
        exe_dev: Some(2049),
        exe_inode: Some(131_072),
        cpu_percent: Some(0.125),
        scan_id: 999,
        collected_at: 1_700_000_000_123,
    }
}

fn summary(finished_at: i64, count: usize) -> ScanSummary {
    ScanSummary {
        scan_id: 77,
        started_at: finished_at - 100,
        finished_at,
        process_count: count as u64,
        error_count: 1,
    }
}

pub(super) fn ingest(store: &Store, finished_at: i64, records: &[ProcessRecord]) -> Ingested {
    store
        .ingest(&summary(finished_at, records.len()), records)
        .unwrap()
}

fn ids(scans: &[ScanSummary]) -> Vec<i64> {
    scans.iter().map(|scan| scan.scan_id).collect()
}

/// Entries of every scan-bound table, to check that retention leaves nothing behind:
/// scans, by_time, snapshots, by_pid, events, ended.
fn table_lens(store: &Store) -> [u64; 6] {
    let txn = store.db.begin_read().unwrap();
    [
        txn.open_table(codec::SCANS).unwrap().len().unwrap(),
        txn.open_table(codec::BY_TIME).unwrap().len().unwrap(),
        txn.open_table(codec::SNAPSHOTS).unwrap().len().unwrap(),
        txn.open_table(codec::BY_PID).unwrap().len().unwrap(),
        txn.open_table(codec::EVENTS).unwrap().len().unwrap(),
        txn.open_table(codec::ENDED).unwrap().len().unwrap(),
    ]
}

#[test]
fn ingest_assigns_ids_1_2_3_and_restamps_records() {
    let (_dir, store) = temp_store();
    for (incoming, expected) in [(77, 1), (5, 2), (77, 3)] {
        let mut records = vec![record(1, Some(10)), record(2, Some(20))];
        records.iter_mut().for_each(|r| r.scan_id = incoming);
        let scan = ScanSummary {
            scan_id: incoming,
            ..summary(1000 * expected, 2)
        };
        let ingested = store.ingest(&scan, &records).unwrap();
        assert_eq!(ingested.scan_id, expected);
        assert_eq!(ingested.records, 2);
        let stored = store.scan(expected).unwrap().unwrap();
        assert_eq!(
            stored,
            ScanSummary {
                scan_id: expected,
                ..scan
            }
        );
        for record in store.snapshot(expected).unwrap() {
            assert_eq!(record.scan_id, expected);
        }
    }
    assert_eq!(ids(&store.scans().unwrap()), [1, 2, 3]);
    assert_eq!(store.latest_scan().unwrap().unwrap().scan_id, 3);
    assert_eq!(store.scan(4).unwrap(), None);
    assert_eq!(store.scan(-1).unwrap(), None);
}

#[test]
fn snapshot_round_trips_full_and_empty_records() {
    let empty = ProcessRecord {
        pid: 7,
        ..ProcessRecord::default()
    };
    for records in [
        vec![full_record()],
        vec![empty.clone()],
        vec![full_record(), empty],
    ] {
        let (_dir, store) = temp_store();
        let scan_id = ingest(&store, 1000, &records).scan_id;
        let mut expected: Vec<_> = records
            .into_iter()
            .map(|r| ProcessRecord { scan_id, ..r })
            .collect();
        expected.sort_by_key(|r| r.pid);
        assert_eq!(store.snapshot(scan_id).unwrap(), expected);
    }
}

#[test]
fn snapshot_of_an_unknown_scan_is_empty() {
    let (_dir, store) = temp_store();
    ingest(&store, 1000, &[record(1, Some(1))]);
    for scan_id in [0, 2, -5, i64::MAX] {
        assert_eq!(store.snapshot(scan_id).unwrap(), []);
        assert_eq!(store.events(scan_id).unwrap(), []);
    }
}

#[test]
fn events_report_starts_exits_and_reused_pids() {
    type Ids = &'static [(u32, Option<i64>)];
    // old scan, new scan, expected events as (kind, pid, start time)
    type Events = &'static [(EventKind, u32, Option<i64>)];
    let cases: [(Ids, Ids, Events); 5] = [
        (&[(1, Some(1))], &[(1, Some(1))], &[]),
        (
            &[(1, Some(1))],
            &[(1, Some(1)), (2, Some(2))],
            &[(EventKind::Start, 2, Some(2))],
        ),
        (
            &[(1, Some(1)), (2, None)],
            &[(1, Some(1))],
            &[(EventKind::Exit, 2, None)],
        ),
        (
            &[(3, Some(30))],
            &[(3, Some(31))],
            &[
                (EventKind::Exit, 3, Some(30)),
                (EventKind::Start, 3, Some(31)),
            ],
        ),
        (&[], &[(9, None)], &[(EventKind::Start, 9, None)]),
    ];
    for (old, new, expected) in cases {
        let (_dir, store) = temp_store();
        let old: Vec<_> = old
            .iter()
            .map(|&(pid, start)| ProcessRecord {
                cmdline: Some("old".to_owned()),
                ..record(pid, start)
            })
            .collect();
        let new: Vec<_> = new.iter().map(|&(pid, start)| record(pid, start)).collect();
        let first = ingest(&store, 1000, &old);
        assert_eq!(
            (first.started, first.exited),
            (0, 0),
            "first scan ever: no events"
        );
        assert_eq!(store.events(first.scan_id).unwrap(), []);

        let second = ingest(&store, 2000, &new);
        let events = store.events(second.scan_id).unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.event, e.record.pid, e.record.start_time))
            .collect();
        assert_eq!(got, expected, "old {old:?} new {new:?}");
        let count = |kind| expected.iter().filter(|e| e.0 == kind).count() as u64;
        assert_eq!(second.started, count(EventKind::Start));
        assert_eq!(second.exited, count(EventKind::Exit));
        for event in &events {
            assert_eq!(event.observed_at, 2000);
            assert_eq!(event.record.scan_id, second.scan_id);
            // An exit carries the old scan's record, a start the new one's.
            let from_old = event.record.cmdline.as_deref() == Some("old");
            assert_eq!(from_old, event.event == EventKind::Exit, "{event:?}");
        }
    }
}

#[test]
fn ingest_refuses_a_scan_with_a_pid_twice() {
    let (_dir, store) = temp_store();
    let err = store
        .ingest(
            &summary(1, 3),
            &[record(5, Some(1)), record(6, None), record(5, Some(2))],
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicatePid { pid: 5, .. }),
        "{err}"
    );
    assert_eq!(store.latest_scan().unwrap(), None);
}

#[test]
fn reads_by_time_and_with_limits() {
    let (_dir, store) = temp_store();
    ingest(&store, 3000, &[record(1, Some(1)), record(2, Some(2))]);
    ingest(&store, 1000, &[record(1, Some(1)), record(3, Some(3))]);
    ingest(&store, 2000, &[record(4, Some(4))]);
    // by finished_at, not by id
    let check = |from, to, expected: &[i64]| {
        assert_eq!(
            ids(&store.scans_between(from, to).unwrap()),
            expected,
            "[{from}, {to}]"
        );
    };
    check(i64::MIN, i64::MAX, &[2, 3, 1]);
    check(1000, 2000, &[2, 3]);
    check(1001, 2999, &[3]);
    check(3001, 4000, &[]);
    check(2000, 1000, &[]);

    let all = store.snapshots(usize::MAX).unwrap();
    let got: Vec<_> = all.items.iter().map(|r| (r.scan_id, r.pid)).collect();
    assert_eq!(got, [(3, 4), (2, 1), (2, 3), (1, 1), (1, 2)]);
    assert!(!all.truncated);
    let some = store.snapshots(2).unwrap();
    assert_eq!(some.items.len(), 2);
    assert!(some.truncated);
    assert!(!store.snapshots(5).unwrap().truncated);

    // scan 2: exit 2, start 3; scan 3: exit 1, exit 3, start 4
    let events = store.all_events(usize::MAX).unwrap();
    let got: Vec<_> = events
        .items
        .iter()
        .map(|e| (e.record.scan_id, e.event, e.record.pid))
        .collect();
    assert_eq!(
        got,
        [
            (3, EventKind::Exit, 1),
            (3, EventKind::Exit, 3),
            (3, EventKind::Start, 4),
            (2, EventKind::Exit, 2),
            (2, EventKind::Start, 3),
        ]
    );
    assert!(!events.truncated);
    let some = store.all_events(3).unwrap();
    assert_eq!(some.items.len(), 3);
    assert!(some.truncated);
}

#[test]
fn process_history_follows_pid_and_start_time() {
    let (_dir, store) = temp_store();
    ingest(&store, 1000, &[record(5, Some(50)), record(6, None)]);
    ingest(&store, 2000, &[record(5, Some(50)), record(6, None)]);
    ingest(&store, 3000, &[record(5, Some(51))]);
    let check = |pid, start, expected: &[i64]| {
        let history = store.process_history(pid, start).unwrap();
        assert!(
            history
                .iter()
                .all(|r| r.pid == pid && r.start_time == start)
        );
        let scans: Vec<_> = history.iter().map(|r| r.scan_id).collect();
        assert_eq!(scans, expected, "pid {pid} start {start:?}");
    };
    check(5, Some(50), &[1, 2]);
    check(5, Some(51), &[3]);
    check(5, None, &[]);
    check(6, None, &[1, 2]);
    check(6, Some(0), &[]);
    check(7, None, &[]);
}

fn rule_state(rule_id: &str, status: RuleStatus) -> RuleState {
    RuleState {
        rule_id: rule_id.to_owned(),
        status,
        last_scan_id: Some(3),
        last_error: Some("row limit reached".to_owned()),
        last_elapsed_us: 1234,
        runs: 10,
        degraded_runs: 2,
    }
}

/// A valid alert id made of `short` (hex digits) padded with zeros.
fn aid(short: &str) -> String {
    format!("{short:0>32}")
}

fn stored_alert(id: &str, raised_at_ms: i64) -> StoredAlert {
    let mut row = serde_json::Map::new();
    row.insert("pid".to_owned(), serde_json::json!(42));
    row.insert("path".to_owned(), serde_json::json!("/tmp/x"));
    row.insert("cpu".to_owned(), serde_json::json!(1.5));
    row.insert("gone".to_owned(), serde_json::Value::Null);
    StoredAlert {
        alert: Alert {
            id: AlertId::parse(&aid(id)).unwrap(),
            rule_id: "DE-LNX-0001".to_owned(),
            rule_name: "deleted executable".to_owned(),
            severity: Severity::High,
            mitre: vec!["T1070.004".to_owned()],
            host: "h1".to_owned(),
            site: None,
            scan_id: 3,
            detected_at: "2024-01-01T00:00:00Z".to_owned(),
            dedup_key: "42|/tmp/x".to_owned(),
            suppressed: 0,
            rows: vec![row],
            summary: "x runs deleted".to_owned(),
        },
        raised_at_ms,
        window_until_ms: raised_at_ms + 3_600_000,
        last_seen_ms: raised_at_ms,
        pending_suppressed: 2,
        acked_at_ms: None,
    }
}

#[test]
fn rule_states_round_trip_and_replace() {
    let (_dir, store) = temp_store();
    assert_eq!(store.rule_states().unwrap(), []);
    let first = [
        rule_state("b", RuleStatus::Ok),
        rule_state("a", RuleStatus::Degraded),
    ];
    store.put_rule_states(&first).unwrap();
    assert_eq!(
        store.rule_states().unwrap(),
        [first[1].clone(), first[0].clone()]
    );
    let update = RuleState {
        last_error: None,
        last_scan_id: None,
        ..rule_state("b", RuleStatus::Disabled)
    };
    store
        .put_rule_states(std::slice::from_ref(&update))
        .unwrap();
    assert_eq!(store.rule_states().unwrap(), [first[1].clone(), update]);
}

#[test]
fn alerts_round_trip_sort_and_acknowledge() {
    let (_dir, store) = temp_store();
    let alerts = [
        stored_alert("a1", 100),
        stored_alert("a2", 300),
        stored_alert("a3", 200),
    ];
    store.put_alerts(&alerts).unwrap();
    assert_eq!(store.alert(&aid("a2")).unwrap(), Some(alerts[1].clone()));
    assert_eq!(store.alert("zz").unwrap(), None);
    let order: Vec<_> = store
        .alerts()
        .unwrap()
        .into_iter()
        .map(|a| a.alert.id.to_string())
        .collect();
    assert_eq!(order, [aid("a2"), aid("a3"), aid("a1")]);

    // id, ack time, result, acked_at_ms afterwards
    let cases = [
        (aid("a1"), 500, true, Some(500)),
        (aid("a1"), 900, true, Some(500)),
        ("nope".to_owned(), 500, false, None),
    ];
    for (id, now_ms, found, acked_at_ms) in cases {
        let id = id.as_str();
        assert_eq!(store.ack_alert(id, now_ms).unwrap(), found, "{id}");
        let acked = store.alert(id).unwrap().and_then(|a| a.acked_at_ms);
        assert_eq!(acked, acked_at_ms, "{id}");
    }
    assert_eq!(store.alert(&aid("a2")).unwrap().unwrap().acked_at_ms, None);
}

#[test]
fn one_write_unit_keeps_alerts_and_rule_states_together_or_neither() {
    let (_dir, store) = temp_store();
    let failed: Result<(), StoreError> = store.write("a scan's decisions", |w| {
        w.put_alerts(&[stored_alert("a", 1)])?;
        w.put_rule_states(&[rule_state("R-1", RuleStatus::Ok)])?;
        // Something after both writes fails: the whole unit is dropped.
        Err(StoreError::Encode {
            path: std::path::PathBuf::from("test"),
            table: "alerts",
            reason: "made to fail".to_owned(),
        })
    });
    assert!(failed.is_err());
    assert!(store.alerts().unwrap().is_empty());
    assert!(store.rule_states().unwrap().is_empty());

    store
        .write("a scan's decisions", |w| {
            w.put_alerts(&[stored_alert("a", 1), stored_alert("b", 2)])?;
            w.put_rule_states(&[rule_state("R-1", RuleStatus::Degraded)])
        })
        .unwrap();
    assert_eq!(store.alerts().unwrap().len(), 2);
    assert_eq!(
        store.rule_states().unwrap(),
        [rule_state("R-1", RuleStatus::Degraded)]
    );
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Store::open(&path, CACHE).unwrap();
    ingest(&store, 1000, &[full_record()]);
    ingest(&store, 2000, &[record(1, Some(1))]);
    store
        .put_rule_states(&[rule_state("r", RuleStatus::Ok)])
        .unwrap();
    store.put_alerts(&[stored_alert("a", 1)]).unwrap();
    let before = (
        store.scans().unwrap(),
        store.snapshots(usize::MAX).unwrap(),
        store.all_events(usize::MAX).unwrap(),
        store.rule_states().unwrap(),
        store.alerts().unwrap(),
    );
    drop(store);

    let store = Store::open(&path, CACHE).unwrap();
    let after = (
        store.scans().unwrap(),
        store.snapshots(usize::MAX).unwrap(),
        store.all_events(usize::MAX).unwrap(),
        store.rule_states().unwrap(),
        store.alerts().unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(before.2.items.len(), 2);
    assert_eq!(ingest(&store, 3000, &[]).scan_id, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Starts are the new scan's identities minus the old one's, exits the reverse, whatever
    /// the two scans (small pid and start-time ranges make reuse and overlap common).
    #[test]
    fn events_are_the_set_difference_of_two_scans(
        old in proptest::collection::btree_map(0u32..40, proptest::option::of(0i64..3), 0..30),
        new in proptest::collection::btree_map(0u32..40, proptest::option::of(0i64..3), 0..30),
    ) {
        let (_dir, store) = temp_store();
        let to_records = |scan: &std::collections::BTreeMap<u32, Option<i64>>| -> Vec<_> {
            scan.iter().rev().map(|(&pid, &start)| record(pid, start)).collect()
        };
        ingest(&store, 1000, &to_records(&old));
        let ingested = ingest(&store, 2000, &to_records(&new));
        let old: BTreeSet<_> = old.into_iter().collect();
        let new: BTreeSet<_> = new.into_iter().collect();
        let events = store.events(ingested.scan_id).unwrap();
        let of_kind = |kind| -> BTreeSet<_> {
            events
                .iter()
                .filter(|e| e.event == kind)
                .map(|e| (e.record.pid, e.record.start_time))
                .collect()
        };
        let starts = of_kind(EventKind::Start);
        let exits = of_kind(EventKind::Exit);
        prop_assert_eq!(&starts, &new.difference(&old).copied().collect());
        prop_assert_eq!(&exits, &old.difference(&new).copied().collect());
        prop_assert_eq!(events.len(), starts.len() + exits.len());
        prop_assert_eq!(ingested.started as usize, starts.len());
        prop_assert_eq!(ingested.exited as usize, exits.len());
    }
}
