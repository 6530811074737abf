//! Retention: what goes, what stays, how many transactions.

use std::time::Duration;

use super::*;

#[test]
fn retention_by_count_deletes_everything_of_old_scans_in_batches() {
    let (_dir, store) = temp_store();
    for scan in 0..10 {
        // pid 1 lives throughout; pid 100 + scan lives for one scan only.
        ingest(
            &store,
            1000 * (scan + 1),
            &[record(1, Some(1)), record(100 + scan as u32, Some(scan))],
        );
    }
    let policy = Retention {
        max_scans: 3,
        max_age: Duration::from_secs(1 << 40),
        scans_per_transaction: 2,
    };
    let report = store.enforce_retention(&policy, 10_000).unwrap();
    // Scans 1..=7 go: 14 records; scans 2..=7 had 2 events each (one exit, one start).
    assert_eq!(
        report,
        RetentionReport {
            scans: 7,
            records: 14,
            events: 12,
            transactions: 4,
        }
    );
    assert_eq!(ids(&store.scans().unwrap()), [8, 9, 10]);
    let history: Vec<_> = store
        .process_history(1, Some(1))
        .unwrap()
        .iter()
        .map(|r| r.scan_id)
        .collect();
    assert_eq!(history, [8, 9, 10]);
    assert_eq!(store.process_history(100, Some(0)).unwrap(), []);
    assert_eq!(
        ids(&store.scans_between(0, 7000).unwrap()),
        Vec::<i64>::new()
    );
    for scan_id in 1..=7 {
        assert_eq!(store.events(scan_id).unwrap(), []);
        assert_eq!(store.snapshot(scan_id).unwrap(), []);
    }
    // Two snapshot rows and two events per scan. by_pid: pid 1 (running since scan 1), pids
    // 107 and 108 (ended in scans 8 and 9, both in `ended`) and 109 (running); the runs of
    // pids 100 to 106 ended before scan 8 and are gone.
    assert_eq!(table_lens(&store), [3, 3, 6, 4, 6, 2]);
    // Nothing more to do: no transaction at all.
    assert_eq!(
        store.enforce_retention(&policy, 10_000).unwrap(),
        RetentionReport::default()
    );
    // The next ingest still diffs against the newest scan and gets the next id.
    let next = ingest(&store, 11_000, &[record(1, Some(1))]);
    assert_eq!((next.scan_id, next.started, next.exited), (11, 0, 1));
}

#[test]
fn process_history_skips_scans_deleted_out_of_order() {
    let (_dir, store) = temp_store();
    // The clock went back for scan 3: retention by age deletes scans 1 and 3, not 2.
    for finished_at in [1000, 9000, 2000, 9500] {
        ingest(&store, finished_at, &[record(1, Some(1))]);
    }
    ingest(&store, 9600, &[record(2, Some(2))]);
    let policy = Retention {
        max_scans: 100,
        max_age: Duration::from_millis(5000),
        scans_per_transaction: 1,
    };
    let report = store.enforce_retention(&policy, 10_000).unwrap();
    assert_eq!((report.scans, report.transactions), (2, 2));
    assert_eq!(ids(&store.scans().unwrap()), [2, 4, 5]);
    let history: Vec<_> = store
        .process_history(1, Some(1))
        .unwrap()
        .iter()
        .map(|r| r.scan_id)
        .collect();
    assert_eq!(history, [2, 4]);
    // pid 1 ended in scan 4, which is kept, so its run stays indexed.
    assert_eq!(table_lens(&store), [3, 3, 3, 2, 2, 1]);
}

#[test]
fn retention_by_age_never_deletes_the_newest() {
    let policy = |max_scans, max_age_ms, scans_per_transaction| Retention {
        max_scans,
        max_age: Duration::from_millis(max_age_ms),
        scans_per_transaction,
    };
    // finished_at of scans 1..=5, policy, now, scans kept, transactions
    let cases = [
        // Strictly older than now - max_age: the scan that finished at 3000 stays.
        (policy(100, 2500, 1), 5500, vec![3, 4, 5], 2),
        (policy(100, 0, 10), 5000, vec![5], 1),
        // Every scan too old: the newest stays anyway.
        (policy(100, 10, 3), 1_000_000, vec![5], 2),
        (policy(0, 1 << 40, 3), 0, vec![5], 2),
        // Taken as one scan per transaction.
        (policy(2, 1 << 40, 0), 0, vec![4, 5], 3),
        (policy(5, 1 << 40, 1), 0, vec![1, 2, 3, 4, 5], 0),
    ];
    for (policy, now_ms, kept, transactions) in cases {
        let (_dir, store) = temp_store();
        for finished_at in [1000, 2000, 3000, 4000, 5000] {
            ingest(&store, finished_at, &[record(1, Some(1))]);
        }
        let report = store.enforce_retention(&policy, now_ms).unwrap();
        assert_eq!(
            ids(&store.scans().unwrap()),
            kept,
            "{policy:?} now {now_ms}"
        );
        assert_eq!(report.transactions, transactions, "{policy:?} now {now_ms}");
        assert_eq!(report.scans, 5 - kept.len() as u64);
        assert_eq!(report.records, report.scans);
        assert_eq!(store.latest_scan().unwrap().unwrap().scan_id, 5);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// After any sequence of scans and a retention pass, the history of every process is
    /// exactly the kept scans it appears in: the run index agrees with the snapshots.
    #[test]
    fn process_history_matches_the_kept_snapshots(
        scans in proptest::collection::vec(
            proptest::collection::btree_map(0u32..8, proptest::option::of(0i64..2), 0..6),
            1..7,
        ),
        max_scans in 0u64..8,
    ) {
        let (_dir, store) = temp_store();
        for (n, scan) in (1..).zip(&scans) {
            let records: Vec<_> = scan.iter().map(|(&pid, &start)| record(pid, start)).collect();
            ingest(&store, 1000 * n, &records);
        }
        let policy = Retention {
            max_scans,
            max_age: Duration::from_secs(1 << 30),
            scans_per_transaction: 2,
        };
        store.enforce_retention(&policy, 0).unwrap();
        let kept = ids(&store.scans().unwrap());
        for pid in 0..8 {
            for start in [None, Some(0), Some(1)] {
                let expected: Vec<i64> = (1..)
                    .zip(&scans)
                    .filter(|(id, scan)| kept.contains(id) && scan.get(&pid) == Some(&start))
                    .map(|(id, _)| id)
                    .collect();
                let history: Vec<i64> = store
                    .process_history(pid, start)
                    .unwrap()
                    .iter()
                    .map(|r| r.scan_id)
                    .collect();
                proptest::prop_assert_eq!(history, expected, "pid {} start {:?}", pid, start);
            }
        }
    }
}
