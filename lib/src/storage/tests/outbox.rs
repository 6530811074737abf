//! The outbox: bounds, order, answers, status, durability, the write unit, the schema upgrade,
//! and a proptest model of the whole state machine against the real store.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use redb::Database;

use super::*;

fn id(n: u64) -> AlertId {
    let mut bytes = [0; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    AlertId::from_bytes(bytes)
}

fn limits(max_alerts: u64, max_bytes: u64) -> OutboxLimits {
    OutboxLimits {
        max_alerts,
        max_bytes,
        ..OutboxLimits::default()
    }
}

/// Enqueues alert `n` with a payload of `len` bytes for `sinks` in its own write unit.
fn enqueue(
    store: &Store,
    sinks: &[&str],
    n: u64,
    len: usize,
    now_ms: i64,
    limits: &OutboxLimits,
) -> Vec<Dropped> {
    store
        .write("enqueue", |w| {
            w.enqueue(sinks, &id(n), &vec![b'x'; len], now_ms, limits)
        })
        .unwrap()
}

fn due_seqs(store: &Store, sink: &str, now_ms: i64) -> Vec<u64> {
    store
        .outbox_due(sink, 100, now_ms)
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect()
}

fn status(store: &Store, sink: &str, now_ms: i64) -> SinkOutbox {
    store
        .outbox_status(now_ms)
        .unwrap()
        .into_iter()
        .find(|s| s.sink == sink)
        .unwrap()
}

fn dropped_seqs(dropped: &[Dropped]) -> Vec<(String, u64, DropReason)> {
    dropped
        .iter()
        .map(|d| (d.sink.clone(), d.seq, d.reason))
        .collect()
}

#[test]
fn invalid_sink_names_are_refused_everywhere() {
    let (_dir, store) = temp_store();
    let long = "a".repeat(65);
    for (name, reason) in [
        ("", "it is empty"),
        (long.as_str(), "it is longer than 64 characters"),
        ("Siem", "only a-z, 0-9, _ and - are allowed"),
        ("a b", "only a-z, 0-9, _ and - are allowed"),
        ("a\0", "only a-z, 0-9, _ and - are allowed"),
        ("a/../b", "only a-z, 0-9, _ and - are allowed"),
        ("é", "only a-z, 0-9, _ and - are allowed"),
    ] {
        let check = |err: StoreError| {
            assert!(
                matches!(&err, StoreError::InvalidSinkName { reason: r, .. } if *r == reason),
                "{name:?}: {err:?}"
            );
        };
        let lim = OutboxLimits::default();
        check(
            store
                .write("enqueue", |w| {
                    w.enqueue(&["ok", name], &id(1), b"{}", 0, &lim)
                })
                .unwrap_err(),
        );
        check(store.outbox_due(name, 1, 0).unwrap_err());
        check(store.outbox_delivered(name, &[0], 0).unwrap_err());
        check(store.outbox_retry(name, 0, "x", 0).unwrap_err());
        check(store.outbox_reject(name, 0, "x", 0).unwrap_err());
        check(store.outbox_forget_sink(name).unwrap_err());
        check(store.outbox_pending(Some(name), 1).unwrap_err());
        check(store.outbox_dead_letters(name, 1).unwrap_err());
        assert!(!is_valid_sink_name(name));
    }
    // The valid sink of the refused enqueue got nothing: the unit failed as a whole.
    assert!(store.outbox_status(0).unwrap().is_empty());
    for name in ["a", "siem-1_x", &"z".repeat(64)] {
        assert!(is_valid_sink_name(name), "{name}");
    }
    let err = store.outbox_due("", 1, 0).unwrap_err().to_string();
    assert!(
        err.contains("\"\" is not a sink name: it is empty"),
        "{err}"
    );
}

#[test]
fn a_full_queue_drops_the_oldest_by_count() {
    let (_dir, store) = temp_store();
    let lim = limits(3, 1 << 20);
    for n in 0..3 {
        assert!(enqueue(&store, &["a", "b"], n, 10, 100 + n as i64, &lim).is_empty());
    }
    let dropped = enqueue(&store, &["a", "b"], 3, 10, 103, &lim);
    assert_eq!(
        dropped_seqs(&dropped),
        [
            ("a".into(), 0, DropReason::Full),
            ("b".into(), 0, DropReason::Full)
        ]
    );
    assert_eq!(dropped[0].alert_id, id(0));
    assert_eq!((dropped[0].enqueued_ms, dropped[0].bytes), (100, 10));
    assert_eq!(due_seqs(&store, "a", 0), [1, 2, 3]);
    let dropped = enqueue(&store, &["a"], 4, 10, 104, &lim);
    assert_eq!(dropped_seqs(&dropped), [("a".into(), 1, DropReason::Full)]);
    let a = status(&store, "a", 200);
    assert_eq!(
        (a.pending, a.pending_bytes, a.dropped, a.enqueued),
        (3, 30, 2, 5)
    );
    assert_eq!(a.oldest_pending_ms, Some(102));
    assert_eq!(status(&store, "b", 200).dropped, 1);
}

#[test]
fn a_full_queue_drops_the_oldest_by_bytes_and_a_too_large_one_drops_itself() {
    let (_dir, store) = temp_store();
    let lim = limits(100, 100);
    enqueue(&store, &["a"], 0, 40, 0, &lim);
    enqueue(&store, &["a"], 1, 40, 0, &lim);
    // 80 + 30 > 100: the oldest goes, one is enough.
    let dropped = enqueue(&store, &["a"], 2, 30, 0, &lim);
    assert_eq!(dropped_seqs(&dropped), [("a".into(), 0, DropReason::Full)]);
    // 70 + 100 > 100: both older ones go.
    let dropped = enqueue(&store, &["a"], 3, 100, 0, &lim);
    assert_eq!(
        dropped_seqs(&dropped),
        [
            ("a".into(), 1, DropReason::Full),
            ("a".into(), 2, DropReason::Full)
        ]
    );
    // Larger than the bound alone: dropped itself, the queue untouched.
    let dropped = enqueue(&store, &["a"], 4, 101, 0, &lim);
    assert_eq!(
        dropped_seqs(&dropped),
        [("a".into(), 4, DropReason::TooLarge)]
    );
    assert_eq!(due_seqs(&store, "a", 0), [3]);
    let a = status(&store, "a", 0);
    assert_eq!(
        (a.pending, a.pending_bytes, a.dropped, a.enqueued),
        (1, 100, 4, 5)
    );
    // max_alerts 0 takes nothing.
    let dropped = enqueue(&store, &["a"], 5, 1, 0, &limits(0, 100));
    assert_eq!(
        dropped_seqs(&dropped),
        [("a".into(), 5, DropReason::TooLarge)]
    );
    assert_eq!(due_seqs(&store, "a", 0), [3]);
}

#[test]
fn delivered_of_a_non_head_is_refused_and_changes_nothing() {
    let (_dir, store) = temp_store();
    let lim = OutboxLimits::default();
    for n in 0..3 {
        enqueue(&store, &["a"], n, 5, 0, &lim);
    }
    let check = |seqs: &[u64], bad: u64| {
        let err = store.outbox_delivered("a", seqs, 1).unwrap_err();
        assert!(
            matches!(&err, StoreError::NotOutboxHead { sink, seq, head: Some(0), .. }
                if sink == "a" && *seq == bad),
            "{seqs:?}: {err:?}"
        );
    };
    check(&[1], 1);
    check(&[0, 2], 2);
    check(&[1, 0], 0);
    check(&[0, 0], 0);
    check(&[7], 7);
    assert!(matches!(
        store.outbox_retry("a", 1, "x", 5).unwrap_err(),
        StoreError::NotOutboxHead { seq: 1, .. }
    ));
    assert!(matches!(
        store.outbox_reject("a", 2, "x", 5).unwrap_err(),
        StoreError::NotOutboxHead { seq: 2, .. }
    ));
    assert!(matches!(
        store.outbox_delivered("nobody", &[0], 1).unwrap_err(),
        StoreError::NotOutboxHead { head: None, .. }
    ));
    assert_eq!(due_seqs(&store, "a", 0), [0, 1, 2]);
    let a = status(&store, "a", 0);
    assert_eq!(
        (a.delivered, a.retried, a.dead_lettered, a.pending),
        (0, 0, 0, 3)
    );

    assert_eq!(store.outbox_delivered("a", &[0, 1], 9).unwrap(), 2);
    // Answered before: skipped, not refused.
    assert_eq!(store.outbox_delivered("a", &[0, 1, 2], 9).unwrap(), 1);
    let a = status(&store, "a", 0);
    assert_eq!(
        (a.delivered, a.pending, a.last_delivered_ms),
        (3, 0, Some(9))
    );
    assert!(matches!(
        store.outbox_delivered("a", &[3], 9).unwrap_err(),
        StoreError::NotOutboxHead {
            seq: 3,
            head: None,
            ..
        }
    ));
}

#[test]
fn order_is_kept_across_retries() {
    let (_dir, store) = temp_store();
    let lim = OutboxLimits::default();
    for n in 0..3 {
        enqueue(&store, &["a", "b"], n, 5, 0, &lim);
    }
    assert!(
        store
            .outbox_retry("a", 0, "connection refused", 1000)
            .unwrap()
    );
    // The head waits, and so does everything behind it; the other sink does not.
    assert!(store.outbox_due("a", 10, 999).unwrap().is_empty());
    assert_eq!(due_seqs(&store, "b", 999), [0, 1, 2]);
    let s = status(&store, "a", 999);
    assert!(s.waiting);
    assert_eq!(
        (s.head_attempts, s.retried, s.next_attempt_ms),
        (1, 1, Some(1000))
    );
    assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    assert!(store.outbox_retry("a", 0, "timeout", 3000).unwrap());
    let due = store.outbox_due("a", 2, 3000).unwrap();
    assert_eq!(
        due.iter().map(|p| (p.seq, p.attempts)).collect::<Vec<_>>(),
        [(0, 2), (1, 0)]
    );
    assert_eq!(due[0].alert_id, id(0));
    assert_eq!(due[0].payload, b"xxxxx");
    store.outbox_delivered("a", &[0], 3001).unwrap();
    let s = status(&store, "a", 3001);
    assert_eq!(
        (s.head_attempts, s.next_attempt_ms, s.last_error),
        (0, None, None)
    );
    assert_eq!((s.retried, s.delivered, s.waiting), (2, 1, false));
    assert_eq!(due_seqs(&store, "a", 0), [1, 2]);
}

#[test]
fn reject_moves_the_head_to_bounded_dead_letters() {
    let (_dir, store) = temp_store();
    let lim = OutboxLimits {
        max_dead_letters: 2,
        ..OutboxLimits::default()
    };
    for n in 0..4 {
        enqueue(&store, &["a"], n, 3 + n as usize, 10 * n as i64, &lim);
    }
    store.outbox_retry("a", 0, "5xx", 50).unwrap();
    assert_eq!(
        store.outbox_reject("a", 0, "400 bad json", 60).unwrap(),
        Some(vec![])
    );
    let dead = store.outbox_dead_letters("a", 10).unwrap();
    assert_eq!(
        dead,
        [DeadLetter {
            seq: 0,
            alert_id: id(0),
            payload: b"xxx".to_vec(),
            enqueued_ms: 0,
            attempts: 1,
            reason: "400 bad json".into(),
            dead_at_ms: 60,
        }]
    );
    // The next one goes at once, even though the rejected head was waiting.
    assert_eq!(due_seqs(&store, "a", 0), [1, 2, 3]);
    let long = "é".repeat(MAX_REASON_BYTES);
    store.outbox_reject("a", 1, &long, 61).unwrap();
    let dropped = store.outbox_reject("a", 2, "r", 62).unwrap().unwrap();
    assert_eq!(
        dropped_seqs(&dropped),
        [("a".into(), 0, DropReason::DeadLetterOverflow)]
    );
    let dead = store.outbox_dead_letters("a", 10).unwrap();
    assert_eq!(dead.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(dead[0].reason.len(), MAX_REASON_BYTES);
    assert_eq!(dead[0].reason, "é".repeat(MAX_REASON_BYTES / 2));
    let s = status(&store, "a", 100);
    assert_eq!(
        (
            s.dead_lettered,
            s.dead_letters,
            s.dropped,
            s.pending,
            s.pending_bytes
        ),
        (3, 2, 1, 1, 6)
    );
    assert_eq!(s.last_error.as_deref(), Some("r"));
    assert_eq!(
        s.enqueued,
        s.pending + s.delivered + s.dead_letters + s.dropped
    );
}

#[test]
fn status_reports_every_number() {
    let (_dir, store) = temp_store();
    let lim = limits(2, 1000);
    enqueue(&store, &["b", "a"], 0, 7, 1000, &lim);
    enqueue(&store, &["a"], 1, 11, 1500, &lim);
    enqueue(&store, &["a"], 2, 13, 1700, &lim);
    store.outbox_retry("a", 1, "refused", 5000).unwrap();
    store.outbox_delivered("b", &[0], 1800).unwrap();
    let all = store.outbox_status(2000).unwrap();
    assert_eq!(
        all,
        [
            SinkOutbox {
                sink: "a".into(),
                pending: 2,
                pending_bytes: 24,
                oldest_pending_ms: Some(1500),
                oldest_pending_age_ms: Some(500),
                head_attempts: 1,
                next_attempt_ms: Some(5000),
                waiting: true,
                last_error: Some("refused".into()),
                last_delivered_ms: None,
                enqueued: 3,
                delivered: 0,
                retried: 1,
                dropped: 1,
                dead_lettered: 0,
                dead_letters: 0,
            },
            SinkOutbox {
                sink: "b".into(),
                pending: 0,
                pending_bytes: 0,
                oldest_pending_ms: None,
                oldest_pending_age_ms: None,
                head_attempts: 0,
                next_attempt_ms: None,
                waiting: false,
                last_error: None,
                last_delivered_ms: Some(1800),
                enqueued: 1,
                delivered: 1,
                retried: 0,
                dropped: 0,
                dead_lettered: 0,
                dead_letters: 0,
            },
        ]
    );
    // An enqueue time after `now_ms` (a clock that went back) is an age of 0, not negative.
    assert_eq!(status(&store, "a", 0).oldest_pending_age_ms, Some(0));
}

#[test]
fn a_delivery_dropped_in_flight_is_skipped_not_refused() {
    let (_dir, store) = temp_store();
    let lim = limits(3, 1000);
    for n in 0..3 {
        enqueue(&store, &["a"], n, 1, 0, &lim);
    }
    let in_flight: Vec<u64> = due_seqs(&store, "a", 0);
    assert_eq!(in_flight, [0, 1, 2]);
    // While the batch is out, two newer alerts push out 0 and 1.
    enqueue(&store, &["a"], 3, 1, 0, &lim);
    enqueue(&store, &["a"], 4, 1, 0, &lim);
    assert!(!store.outbox_retry("a", 0, "x", 10).unwrap());
    assert_eq!(store.outbox_reject("a", 1, "x", 10).unwrap(), None);
    assert_eq!(store.outbox_delivered("a", &in_flight, 5).unwrap(), 1);
    let s = status(&store, "a", 0);
    assert_eq!(
        (s.delivered, s.dropped, s.retried, s.dead_lettered),
        (1, 2, 0, 0)
    );
    assert_eq!(due_seqs(&store, "a", 0), [3, 4]);
}

#[test]
fn forgetting_a_sink_drops_its_queue_and_keeps_its_counts() {
    let (_dir, store) = temp_store();
    let lim = OutboxLimits::default();
    for n in 0..3 {
        enqueue(&store, &["a", "b"], n, 2, 0, &lim);
    }
    store.outbox_delivered("a", &[0], 1).unwrap();
    store.outbox_retry("a", 1, "down", 100).unwrap();
    let dropped = store.outbox_forget_sink("a").unwrap();
    assert_eq!(
        dropped_seqs(&dropped),
        [
            ("a".into(), 1, DropReason::SinkRemoved),
            ("a".into(), 2, DropReason::SinkRemoved)
        ]
    );
    let s = status(&store, "a", 0);
    assert_eq!(
        (s.pending, s.pending_bytes, s.dropped, s.delivered),
        (0, 0, 2, 1)
    );
    assert_eq!((s.head_attempts, s.next_attempt_ms), (0, None));
    assert_eq!(due_seqs(&store, "b", 0), [0, 1, 2]);
    assert!(store.outbox_forget_sink("never-seen").unwrap().is_empty());
    assert_eq!(store.outbox_status(0).unwrap().len(), 2);
    // Back in the configuration: seqs continue.
    enqueue(&store, &["a"], 9, 2, 0, &lim);
    assert_eq!(due_seqs(&store, "a", 0), [3]);
}

#[test]
fn pending_lists_every_sink_in_order_for_export() {
    let (_dir, store) = temp_store();
    let lim = OutboxLimits::default();
    enqueue(&store, &["b", "a"], 0, 1, 0, &lim);
    enqueue(&store, &["a"], 1, 1, 0, &lim);
    enqueue(&store, &["b", "b"], 2, 1, 0, &lim);
    store.outbox_retry("b", 0, "x", 0).unwrap();
    let all = store.outbox_pending(None, 100).unwrap();
    let got: Vec<(&str, u64, u32)> = all
        .iter()
        .map(|(sink, p)| (sink.as_str(), p.seq, p.attempts))
        .collect();
    assert_eq!(got, [("a", 0, 0), ("a", 1, 0), ("b", 0, 1), ("b", 1, 0)]);
    assert_eq!(store.outbox_pending(None, 3).unwrap().len(), 3);
    assert_eq!(store.outbox_pending(Some("b"), 100).unwrap().len(), 2);
    assert!(store.outbox_pending(Some("c"), 100).unwrap().is_empty());
    // Read-only.
    assert_eq!(store.outbox_pending(None, 100).unwrap(), all);
}

#[test]
fn a_failed_write_unit_enqueues_nothing() {
    let (_dir, store) = temp_store();
    let failed: Result<(), StoreError> = store.write("a scan's decisions", |w| {
        w.put_alerts(&[stored_alert("a", 1)])?;
        w.enqueue(&["siem"], &id(1), b"{}", 0, &OutboxLimits::default())?;
        Err(StoreError::Encode {
            path: std::path::PathBuf::from("test"),
            table: "alerts",
            reason: "made to fail".to_owned(),
        })
    });
    assert!(failed.is_err());
    assert!(store.alerts().unwrap().is_empty());
    assert!(store.outbox_status(0).unwrap().is_empty());
    assert!(store.outbox_pending(None, 10).unwrap().is_empty());
    // The same unit that succeeds commits both.
    store
        .write("a scan's decisions", |w| {
            w.put_alerts(&[stored_alert("a", 1)])?;
            w.enqueue(&["siem"], &id(1), b"{}", 0, &OutboxLimits::default())
        })
        .unwrap();
    assert_eq!(store.alerts().unwrap().len(), 1);
    assert_eq!(due_seqs(&store, "siem", 0), [0]);
}

#[test]
fn the_outbox_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let lim = OutboxLimits {
        max_dead_letters: 5,
        ..limits(3, 1000)
    };
    let before = {
        let store = Store::open(&path, CACHE).unwrap();
        for n in 0..5 {
            enqueue(&store, &["a", "b"], n, 4, n as i64, &lim);
        }
        store.outbox_retry("a", 2, "down", 77).unwrap();
        store.outbox_reject("b", 2, "bad", 8).unwrap();
        (
            store.outbox_status(50).unwrap(),
            store.outbox_pending(None, 100).unwrap(),
        )
    };
    let store = Store::open(&path, CACHE).unwrap();
    assert_eq!(store.outbox_status(50).unwrap(), before.0);
    assert_eq!(store.outbox_pending(None, 100).unwrap(), before.1);
    assert_eq!(store.outbox_dead_letters("b", 10).unwrap()[0].seq, 2);
    // The dead-letter bound the last enqueue gave is kept too; seqs continue.
    enqueue(&store, &["a"], 5, 4, 9, &lim);
    assert_eq!(due_seqs(&store, "a", 77), [3, 4, 5]);
}

/// Makes `path` what an agent of schema version 1 left: no outbox tables, version 1.
fn make_version_1(path: &Path) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(txn.delete_table(codec::OUTBOX).unwrap());
    assert!(txn.delete_table(codec::OUTBOX_SINKS).unwrap());
    assert!(txn.delete_table(codec::OUTBOX_DEAD).unwrap());
    txn.open_table(codec::META)
        .unwrap()
        .insert(codec::SCHEMA_KEY, 1u32.to_be_bytes().as_slice())
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_version_1_store_is_upgraded_and_gains_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = Store::open(&path, CACHE).unwrap();
        ingest(&store, 1000, &[record(1, Some(1))]);
        store.put_alerts(&[stored_alert("a", 1)]).unwrap();
    }
    make_version_1(&path);
    let store = Store::open(&path, CACHE).unwrap();
    // Everything version 1 held is there, the outbox works, and the file says version 2.
    assert_eq!(store.latest_scan().unwrap().unwrap().finished_at, 1000);
    assert_eq!(store.alerts().unwrap().len(), 1);
    assert!(store.outbox_status(0).unwrap().is_empty());
    enqueue(&store, &["siem"], 1, 2, 0, &OutboxLimits::default());
    assert_eq!(due_seqs(&store, "siem", 0), [0]);
    drop(store);
    let db = Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(codec::META).unwrap();
    let version = meta.get(codec::SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(version.value(), 2u32.to_be_bytes());
}

#[test]
fn a_version_0_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(Store::open(&path, CACHE).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(codec::META)
            .unwrap()
            .insert(codec::SCHEMA_KEY, 0u32.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, CACHE).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaVersion {
                found: 0,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---- The model ----------------------------------------------------------------------------

const SINKS: [&str; 3] = ["a", "b", "c"];

/// What the model knows of one sink.
#[derive(Debug, Default, Clone)]
struct ModelSink {
    /// (seq, alert number, payload length, enqueued_ms), oldest first.
    queue: VecDeque<(u64, u64, u64, i64)>,
    dead: VecDeque<u64>,
    next_seq: u64,
    head_attempts: u32,
    next_attempt_ms: Option<i64>,
    last_error: Option<String>,
    last_delivered_ms: Option<i64>,
    enqueued: u64,
    delivered: u64,
    retried: u64,
    dropped: u64,
    dead_lettered: u64,
    max_dead: u64,
}

#[derive(Debug, Clone)]
enum Op {
    /// Enqueue for the sinks whose bit is set in the mask, a payload of that length.
    Enqueue(u8, usize),
    /// Read the due batch of a sink, at most this many.
    Due(usize, usize),
    /// Answer a batch: the first `n` of the head batch (`pick` 0), a non-head (1), or a seq
    /// that is gone (2).
    Delivered(usize, usize, u8),
    Retry(usize, i64, u8),
    Reject(usize, u8),
    Forget(usize),
    Reopen,
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let sink = 0..SINKS.len();
    prop_oneof![
        4 => (1u8..8, 0usize..40).prop_map(|(m, l)| Op::Enqueue(m, l)),
        2 => (sink.clone(), 0usize..4).prop_map(|(s, n)| Op::Due(s, n)),
        3 => (sink.clone(), 0usize..4, 0u8..3).prop_map(|(s, n, p)| Op::Delivered(s, n, p)),
        2 => (sink.clone(), 0i64..4, 0u8..3).prop_map(|(s, w, p)| Op::Retry(s, w, p)),
        1 => (sink.clone(), 0u8..3).prop_map(|(s, p)| Op::Reject(s, p)),
        1 => sink.prop_map(Op::Forget),
        1 => Just(Op::Reopen),
        1 => (0i64..4).prop_map(Op::Wait),
    ]
}

/// The seq an answer names: the head, one that is not the head, or one that is gone.
fn pick(m: &ModelSink, pick: u8) -> u64 {
    let head = m.queue.front().map(|d| d.0);
    match (pick, head) {
        (0, Some(head)) => head,
        (0 | 1, _) => m.queue.get(1).map_or(m.next_seq + 3, |d| d.0),
        _ => head.unwrap_or(m.next_seq).saturating_sub(1),
    }
}

/// How the outbox must answer these seqs, in the model's terms.
enum Answer {
    /// All are gone (or there are none): nothing happens.
    Gone,
    /// Those not gone are exactly the head and the ones right behind it: they are answered.
    Head,
    /// Refused.
    NotHead,
}

fn answer(m: &ModelSink, seqs: &[u64]) -> Answer {
    let head = m.queue.front().map_or(m.next_seq, |d| d.0);
    let live: Vec<u64> = seqs.iter().copied().filter(|&seq| seq >= head).collect();
    let queued: Vec<u64> = m.queue.iter().take(live.len()).map(|d| d.0).collect();
    if live.is_empty() {
        Answer::Gone
    } else if live == queued {
        Answer::Head
    } else {
        Answer::NotHead
    }
}

struct Run {
    _dir: TempDir,
    path: std::path::PathBuf,
    store: Option<Store>,
    model: BTreeMap<&'static str, ModelSink>,
    now: i64,
    alerts: u64,
    limits: OutboxLimits,
}

impl Run {
    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn step(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Enqueue(mask, len) => {
                let sinks: Vec<&str> = (0..SINKS.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| SINKS[i])
                    .collect();
                let n = self.alerts;
                self.alerts += 1;
                let got = enqueue(self.store(), &sinks, n, len, now, &self.limits);
                let mut want = Vec::new();
                let (lim, len) = (&self.limits, len as u64);
                for sink in sinks {
                    let m = self.model.entry(sink).or_default();
                    let seq = m.next_seq;
                    m.next_seq += 1;
                    m.enqueued += 1;
                    m.max_dead = lim.max_dead_letters;
                    if lim.max_alerts == 0 || len > lim.max_bytes {
                        m.dropped += 1;
                        want.push((sink.to_owned(), seq, DropReason::TooLarge));
                        continue;
                    }
                    while m.queue.len() as u64 >= lim.max_alerts
                        || m.queue.iter().map(|d| d.2).sum::<u64>() + len > lim.max_bytes
                    {
                        let old = m.queue.pop_front().unwrap();
                        m.dropped += 1;
                        m.head_attempts = 0;
                        want.push((sink.to_owned(), old.0, DropReason::Full));
                    }
                    m.queue.push_back((seq, n, len, now));
                }
                assert_eq!(dropped_seqs(&got), want);
            }
            Op::Due(s, max) => {
                let got = self.store().outbox_due(SINKS[s], max, now).unwrap();
                assert_eq!(got, self.due(s, max));
            }
            Op::Delivered(s, n, p) => {
                let sink = SINKS[s];
                let m = self.model.get(sink).cloned().unwrap_or_default();
                let seqs: Vec<u64> = match p {
                    0 => self.due(s, n).iter().map(|d| d.seq).collect(),
                    _ => vec![pick(&m, p)],
                };
                let got = self.store().outbox_delivered(sink, &seqs, now);
                match answer(&m, &seqs) {
                    Answer::Gone => assert_eq!(got.unwrap(), 0),
                    Answer::NotHead => {
                        assert!(
                            matches!(got, Err(StoreError::NotOutboxHead { .. })),
                            "{got:?}"
                        );
                    }
                    Answer::Head => {
                        assert_eq!(got.unwrap(), seqs.len() as u64);
                        let m = self.model.get_mut(sink).unwrap();
                        m.queue.drain(..seqs.len());
                        m.delivered += seqs.len() as u64;
                        m.head_attempts = 0;
                        m.next_attempt_ms = None;
                        m.last_error = None;
                        m.last_delivered_ms = Some(now);
                    }
                }
            }
            Op::Retry(s, wait, p) => {
                let sink = SINKS[s];
                let m = self.model.get(sink).cloned().unwrap_or_default();
                let seq = pick(&m, p);
                let reason = format!("retry {now}");
                let got = self.store().outbox_retry(sink, seq, &reason, now + wait);
                match answer(&m, &[seq]) {
                    Answer::Gone => assert!(!got.unwrap()),
                    Answer::NotHead => {
                        assert!(
                            matches!(got, Err(StoreError::NotOutboxHead { .. })),
                            "{got:?}"
                        );
                    }
                    Answer::Head => {
                        assert!(got.unwrap());
                        let m = self.model.get_mut(sink).unwrap();
                        m.head_attempts += 1;
                        m.retried += 1;
                        m.last_error = Some(reason);
                        m.next_attempt_ms = Some(now + wait);
                    }
                }
            }
            Op::Reject(s, p) => {
                let sink = SINKS[s];
                let m = self.model.get(sink).cloned().unwrap_or_default();
                let seq = pick(&m, p);
                let reason = format!("reject {now}");
                let got = self.store().outbox_reject(sink, seq, &reason, now);
                match answer(&m, &[seq]) {
                    Answer::Gone => assert_eq!(got.unwrap(), None),
                    Answer::NotHead => {
                        assert!(
                            matches!(got, Err(StoreError::NotOutboxHead { .. })),
                            "{got:?}"
                        );
                    }
                    Answer::Head => {
                        let m = self.model.get_mut(sink).unwrap();
                        m.queue.pop_front();
                        m.dead.push_back(seq);
                        m.dead_lettered += 1;
                        m.head_attempts = 0;
                        m.next_attempt_ms = None;
                        m.last_error = Some(reason);
                        let mut want = Vec::new();
                        while m.dead.len() as u64 > m.max_dead {
                            let old = m.dead.pop_front().unwrap();
                            m.dropped += 1;
                            want.push((sink.to_owned(), old, DropReason::DeadLetterOverflow));
                        }
                        assert_eq!(dropped_seqs(&got.unwrap().unwrap()), want);
                    }
                }
            }
            Op::Forget(s) => {
                let sink = SINKS[s];
                let got = self.store().outbox_forget_sink(sink).unwrap();
                let mut want = Vec::new();
                if let Some(m) = self.model.get_mut(sink) {
                    for d in m.queue.drain(..) {
                        want.push((sink.to_owned(), d.0, DropReason::SinkRemoved));
                    }
                    m.dropped += want.len() as u64;
                    m.head_attempts = 0;
                    m.next_attempt_ms = None;
                }
                assert_eq!(dropped_seqs(&got), want);
            }
            Op::Reopen => {
                drop(self.store.take());
                self.store = Some(Store::open(&self.path, CACHE).unwrap());
            }
            Op::Wait(ms) => self.now += ms,
        }
        self.check();
    }

    /// What `outbox_due` must return for sink `s`.
    fn due(&self, s: usize, max: usize) -> Vec<Pending> {
        let Some(m) = self.model.get(SINKS[s]) else {
            return Vec::new();
        };
        if m.next_attempt_ms.is_some_and(|at| at > self.now) {
            return Vec::new();
        }
        m.queue
            .iter()
            .take(max)
            .enumerate()
            .map(|(i, &(seq, n, len, at))| Pending {
                seq,
                alert_id: id(n),
                payload: vec![b'x'; len as usize],
                enqueued_ms: at,
                attempts: if i == 0 { m.head_attempts } else { 0 },
            })
            .collect()
    }

    /// Every observable against the model.
    fn check(&self) {
        let store = self.store();
        let mut want_status = Vec::new();
        let mut want_pending = Vec::new();
        for (&sink, m) in &self.model {
            let oldest = m.queue.front().map(|d| d.3);
            want_status.push(SinkOutbox {
                sink: sink.to_owned(),
                pending: m.queue.len() as u64,
                pending_bytes: m.queue.iter().map(|d| d.2).sum(),
                oldest_pending_ms: oldest,
                oldest_pending_age_ms: oldest.map(|at| (self.now - at).max(0)),
                head_attempts: m.head_attempts,
                next_attempt_ms: m.next_attempt_ms,
                waiting: oldest.is_some() && m.next_attempt_ms.is_some_and(|at| at > self.now),
                last_error: m.last_error.clone(),
                last_delivered_ms: m.last_delivered_ms,
                enqueued: m.enqueued,
                delivered: m.delivered,
                retried: m.retried,
                dropped: m.dropped,
                dead_lettered: m.dead_lettered,
                dead_letters: m.dead.len() as u64,
            });
            assert_eq!(
                m.enqueued,
                m.queue.len() as u64 + m.delivered + m.dead.len() as u64 + m.dropped
            );
            let s = SINKS.iter().position(|x| *x == sink).unwrap();
            let head_attempts = m.head_attempts;
            for (i, &(seq, n, len, at)) in m.queue.iter().enumerate() {
                want_pending.push((
                    sink.to_owned(),
                    Pending {
                        seq,
                        alert_id: id(n),
                        payload: vec![b'x'; len as usize],
                        enqueued_ms: at,
                        attempts: if i == 0 { head_attempts } else { 0 },
                    },
                ));
            }
            assert_eq!(
                store.outbox_due(sink, 1000, self.now).unwrap(),
                self.due(s, 1000)
            );
            let dead: Vec<u64> = store
                .outbox_dead_letters(sink, 1000)
                .unwrap()
                .iter()
                .map(|d| d.seq)
                .collect();
            assert_eq!(dead, Vec::from(m.dead.clone()));
        }
        assert_eq!(store.outbox_status(self.now).unwrap(), want_status);
        assert_eq!(
            store.outbox_pending(None, usize::MAX).unwrap(),
            want_pending
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random sequences of enqueue, due, delivered, retry, reject, forget and reopen on three
    /// sinks, with small bounds so that they bite, against a model of queues and counters:
    /// every answer and every observable after every step.
    #[test]
    fn the_outbox_behaves_like_its_model(
        max_alerts in 0u64..6,
        max_bytes in 20u64..120,
        max_dead_letters in 0u64..3,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = Store::open(&path, CACHE).unwrap();
        let mut run = Run {
            _dir: dir,
            path,
            store: Some(store),
            model: BTreeMap::new(),
            now: 1000,
            alerts: 0,
            limits: OutboxLimits { max_alerts, max_bytes, max_dead_letters },
        };
        for op in &ops {
            run.step(op);
        }
    }
}
