//! Table definitions, key encodings and value encodings of the event store.
//!
//! The byte layouts are documented in the module documentation of [`super`]; this file is their
//! one implementation. Everything here is pure: bytes and values in, bytes and values out.

use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::models::ProcessRecord;

/// The version of the table layout described in the module documentation, kept in `meta`.
/// Version 2 added the outbox tables (`outbox`, `outbox_sinks`, `outbox_dead`).
pub(super) const SCHEMA_VERSION: u32 = 2;

/// The oldest schema version this program opens: it upgrades a store of any version from
/// this one up to [`SCHEMA_VERSION`] by creating the tables added since, in one transaction.
pub(super) const OLDEST_SCHEMA_VERSION: u32 = 1;

/// Whether a store of schema version `found` can be opened (and, if older, upgraded).
pub(super) fn schema_readable(found: u32) -> bool {
    (OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found)
}

/// The `meta` key under which [`SCHEMA_VERSION`] is kept, as 4 big-endian bytes.
pub(super) const SCHEMA_KEY: &str = "schema_version";

/// The first byte of every value except those of `meta`: the layout of the bytes after it.
pub(super) const VALUE_FORMAT: u8 = 1;

// Keys are fixed-width byte arrays rather than redb tuples. redb compares `&[u8; N]` keys with
// one `memcmp` and stores them without a length, while a tuple key allocates a `Vec` for every
// encoding and compares element by element through function pointers; for the 10,000
// snapshot inserts of a 10,000-process scan, the arrays are the cheaper of the two. The
// big-endian integers make byte order numeric order, which the range scans rely on.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const SCANS: TableDefinition<&[u8; 8], &[u8]> = TableDefinition::new("scans");
pub(super) const BY_TIME: TableDefinition<&[u8; 16], ()> = TableDefinition::new("by_time");
pub(super) const SNAPSHOTS: TableDefinition<&[u8; 12], &[u8]> = TableDefinition::new("snapshots");
pub(super) const BY_PID: TableDefinition<&[u8; 21], &[u8; 8]> = TableDefinition::new("by_pid");
pub(super) const ENDED: TableDefinition<&[u8; 29], ()> = TableDefinition::new("ended");
pub(super) const EVENTS: TableDefinition<&[u8; 12], &[u8]> = TableDefinition::new("events");
pub(super) const RULE_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("rule_state");
pub(super) const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
pub(super) const OUTBOX: TableDefinition<&[u8; OUTBOX_KEY], &[u8]> = TableDefinition::new("outbox");
pub(super) const OUTBOX_SINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_sinks");
pub(super) const OUTBOX_DEAD: TableDefinition<&[u8; OUTBOX_KEY], &[u8]> =
    TableDefinition::new("outbox_dead");

/// Table names, for error messages.
pub(super) mod name {
    pub const META: &str = "meta";
    pub const SCANS: &str = "scans";
    pub const SNAPSHOTS: &str = "snapshots";
    pub const EVENTS: &str = "events";
    pub const BY_PID: &str = "by_pid";
    pub const RULE_STATE: &str = "rule_state";
    pub const ALERTS: &str = "alerts";
    pub const OUTBOX: &str = "outbox";
    pub const OUTBOX_SINKS: &str = "outbox_sinks";
    pub const OUTBOX_DEAD: &str = "outbox_dead";
}

/// Reads a big-endian `u64` at `at`. Callers pass fixed-width keys with constant offsets that
/// lie inside them, so the slice is always 8 bytes long and `copy_from_slice` cannot panic.
fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

/// Reads a big-endian `u32` at `at` (same contract as [`be_u64`]).
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

/// An `i64` as 8 bytes that sort like the number: two's complement with the sign bit flipped,
/// big-endian (`i64::MIN` is `00 … 00`, `-1` is `7f ff … ff`, `0` is `80 00 … 00`).
pub(super) fn ordered_i64(value: i64) -> [u8; 8] {
    (value.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// `scans` key: the scan id.
pub(super) fn scan_key(scan: u64) -> [u8; 8] {
    scan.to_be_bytes()
}

/// The scan id of a `scans` key.
pub(super) fn scan_of_scan_key(key: &[u8; 8]) -> u64 {
    u64::from_be_bytes(*key)
}

/// `snapshots` key: scan id, pid.
pub(super) fn snapshot_key(scan: u64, pid: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&scan.to_be_bytes());
    key[8..].copy_from_slice(&pid.to_be_bytes());
    key
}

/// The pid of a `snapshots` key.
pub(super) fn pid_of_snapshot_key(key: &[u8; 12]) -> u32 {
    be_u32(key, 8)
}

/// The `by_pid` value of a process that is in the newest scan: its run has not ended yet.
pub(super) const RUNNING: u64 = u64::MAX;

/// `by_pid` key: pid, start-time tag and value, first scan of the run.
pub(super) fn by_pid_key(pid: u32, start_time: Option<i64>, scan: u64) -> [u8; 21] {
    let mut key = [0; 21];
    key[..4].copy_from_slice(&pid.to_be_bytes());
    if let Some(start) = start_time {
        key[4] = 1;
        key[5..13].copy_from_slice(&ordered_i64(start));
    }
    key[13..].copy_from_slice(&scan.to_be_bytes());
    key
}

/// The first scan of the run a `by_pid` key names.
pub(super) fn scan_of_by_pid_key(key: &[u8; 21]) -> u64 {
    be_u64(key, 13)
}

/// `ended` key: the last scan of a run, then the run's `by_pid` key.
pub(super) fn ended_key(last: u64, by_pid: &[u8; 21]) -> [u8; 29] {
    let mut key = [0; 29];
    key[..8].copy_from_slice(&last.to_be_bytes());
    key[8..].copy_from_slice(by_pid);
    key
}

/// The `by_pid` key inside an `ended` key.
pub(super) fn by_pid_of_ended_key(key: &[u8; 29]) -> [u8; 21] {
    let mut by_pid = [0; 21];
    by_pid.copy_from_slice(&key[8..]);
    by_pid
}

/// `by_time` key: the scan's `finished_at`, the scan id.
pub(super) fn time_key(finished_at: i64, scan: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&ordered_i64(finished_at));
    key[8..].copy_from_slice(&scan.to_be_bytes());
    key
}

/// The scan id of a `by_time` key.
pub(super) fn scan_of_time_key(key: &[u8; 16]) -> u64 {
    be_u64(key, 8)
}

/// `events` key: scan id, sequence number within the scan.
pub(super) fn event_key(scan: u64, seq: u32) -> [u8; 12] {
    snapshot_key(scan, seq)
}

/// The longest sink name, in bytes (names are ASCII).
pub(super) const SINK_NAME_MAX: usize = 64;

/// Length of an `outbox` or `outbox_dead` key: the sink name padded with zero bytes to
/// [`SINK_NAME_MAX`], then the sequence number.
pub(super) const OUTBOX_KEY: usize = SINK_NAME_MAX + 8;

/// `outbox` and `outbox_dead` key: the sink name, zero-padded to 64 bytes, then `seq`. A sink
/// name holds no zero byte (callers check it first), so the padded names sort like the names
/// and one sink's entries are one contiguous range, in `seq` order. Bytes of `sink` past 64
/// are ignored; callers pass checked names of at most 64 bytes.
pub(super) fn outbox_key(sink: &str, seq: u64) -> [u8; OUTBOX_KEY] {
    let mut key = [0; OUTBOX_KEY];
    let name = sink.as_bytes();
    let len = name.len().min(SINK_NAME_MAX);
    key[..len].copy_from_slice(&name[..len]);
    key[SINK_NAME_MAX..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number of an `outbox` or `outbox_dead` key.
pub(super) fn seq_of_outbox_key(key: &[u8; OUTBOX_KEY]) -> u64 {
    be_u64(key, SINK_NAME_MAX)
}

/// The sink name of an `outbox` or `outbox_dead` key: its bytes up to the first zero byte.
/// Malformed when they are not UTF-8 (the writer only writes checked ASCII names).
pub(super) fn sink_of_outbox_key(key: &[u8; OUTBOX_KEY]) -> Result<&str, ValueError> {
    let name = &key[..SINK_NAME_MAX];
    let len = name.iter().position(|&b| b == 0).unwrap_or(SINK_NAME_MAX);
    std::str::from_utf8(&name[..len])
        .map_err(|err| ValueError::Malformed(format!("sink name in key: {err}")))
}

/// Why a stored value could not be decoded; the caller adds the file and the table.
#[derive(Debug, PartialEq)]
pub(super) enum ValueError {
    /// The first byte is not [`VALUE_FORMAT`].
    UnknownFormat(u8),
    /// The value is empty or its payload does not decode.
    Malformed(String),
}

/// Strips and checks the format byte.
fn payload(bytes: &[u8]) -> Result<&[u8], ValueError> {
    match bytes.split_first() {
        Some((&VALUE_FORMAT, rest)) => Ok(rest),
        Some((&other, _)) => Err(ValueError::UnknownFormat(other)),
        None => Err(ValueError::Malformed("empty value".to_owned())),
    }
}

/// `VALUE_FORMAT` followed by the postcard encoding of `value`, appended to `buf` after
/// clearing it (so that one buffer serves a whole scan).
pub(super) fn encode_postcard<T: Serialize>(
    value: &T,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, String> {
    buf.clear();
    buf.push(VALUE_FORMAT);
    postcard::to_extend(value, buf).map_err(|err| err.to_string())
}

/// The inverse of [`encode_postcard`].
pub(super) fn decode_postcard<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValueError> {
    postcard::from_bytes(payload(bytes)?).map_err(|err| ValueError::Malformed(err.to_string()))
}

/// A `snapshots` value: `VALUE_FORMAT`, then the postcard encoding of the pair
/// `(record.start_time, record)`. The start time comes first, repeated, so that ingest and
/// retention read a process's identity without decoding the whole record.
pub(super) fn encode_snapshot(record: &ProcessRecord, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    buf.clear();
    buf.push(VALUE_FORMAT);
    postcard::to_extend(&(record.start_time, record), buf).map_err(|err| err.to_string())
}

/// The start time at the front of a `snapshots` value.
pub(super) fn decode_snapshot_start(bytes: &[u8]) -> Result<Option<i64>, ValueError> {
    postcard::take_from_bytes::<Option<i64>>(payload(bytes)?)
        .map(|(start, _)| start)
        .map_err(|err| ValueError::Malformed(err.to_string()))
}

/// The record of a `snapshots` value.
pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<ProcessRecord, ValueError> {
    decode_postcard::<(Option<i64>, ProcessRecord)>(bytes).map(|(_, record)| record)
}

/// `VALUE_FORMAT` followed by the JSON encoding of `value`: for alerts, whose rows hold
/// `serde_json::Value`s, which postcard cannot decode (it has no `deserialize_any`).
pub(super) fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut buf = vec![VALUE_FORMAT];
    serde_json::to_writer(&mut buf, value).map_err(|err| err.to_string())?;
    Ok(buf)
}

/// The inverse of [`encode_json`].
pub(super) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValueError> {
    serde_json::from_slice(payload(bytes)?).map_err(|err| ValueError::Malformed(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_i64_sorts_like_the_number() {
        let values = [i64::MIN, -1_000_000, -1, 0, 1, 1_700_000_000, i64::MAX];
        for pair in values.windows(2) {
            assert!(ordered_i64(pair[0]) < ordered_i64(pair[1]), "{pair:?}");
        }
        assert_eq!(ordered_i64(0), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            ordered_i64(-1),
            [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn keys_sort_in_numeric_tuple_order() {
        // Each row: two tuples in ascending order; their keys must sort the same way.
        let snapshots = [
            ((1, 5), (1, 6)),
            ((1, u32::MAX), (2, 0)),
            ((255, 1), (256, 0)),
        ];
        for ((s1, p1), (s2, p2)) in snapshots {
            assert!(snapshot_key(s1, p1) < snapshot_key(s2, p2));
            assert_eq!(pid_of_snapshot_key(&snapshot_key(s1, p1)), p1);
        }
        let by_pid = [
            ((7, None, 9), (7, Some(i64::MIN), 1)),
            ((7, Some(-5), 9), (7, Some(3), 1)),
            ((7, Some(3), 1), (7, Some(3), 2)),
            ((7, Some(i64::MAX), u64::MAX), (8, None, 0)),
        ];
        for ((p1, t1, s1), (p2, t2, s2)) in by_pid {
            assert!(by_pid_key(p1, t1, s1) < by_pid_key(p2, t2, s2));
            assert_eq!(scan_of_by_pid_key(&by_pid_key(p1, t1, s1)), s1);
        }
        let times = [((-1, 9), (0, 1)), ((5, 1), (5, 2)), ((5, u64::MAX), (6, 0))];
        for ((t1, s1), (t2, s2)) in times {
            assert!(time_key(t1, s1) < time_key(t2, s2));
            assert_eq!(scan_of_time_key(&time_key(t1, s1)), s1);
        }
        let run = by_pid_key(7, Some(3), 9);
        assert!(
            ended_key(4, &by_pid_key(u32::MAX, None, 0)) < ended_key(5, &by_pid_key(0, None, 0))
        );
        assert_eq!(by_pid_of_ended_key(&ended_key(4, &run)), run);
        assert_eq!(scan_of_scan_key(&scan_key(258)), 258);
        assert_eq!(event_key(1, 2), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn outbox_keys_sort_by_sink_then_seq() {
        // Each row: two (sink, seq) pairs in ascending order; their keys must sort the same way.
        let pairs = [
            (("a", 5), ("a", 6)),
            (("a", u64::MAX), ("a-", 0)),
            (("a", u64::MAX), ("aa", 0)),
            (("siem", 255), ("siem", 256)),
            (("z", 0), (&*"z".repeat(64), 0)),
        ];
        for ((s1, q1), (s2, q2)) in pairs {
            let (k1, k2) = (outbox_key(s1, q1), outbox_key(s2, q2));
            assert!(k1 < k2, "{s1}/{q1} {s2}/{q2}");
            assert_eq!(seq_of_outbox_key(&k1), q1);
            assert_eq!(sink_of_outbox_key(&k1), Ok(s1));
            assert_eq!(sink_of_outbox_key(&k2), Ok(s2));
        }
        let key = outbox_key("ab", 258);
        assert_eq!(&key[..3], b"ab\0");
        assert_eq!(&key[64..], [0, 0, 0, 0, 0, 0, 1, 2]);
        let mut bad = key;
        bad[0] = 0xff;
        assert!(matches!(
            sink_of_outbox_key(&bad),
            Err(ValueError::Malformed(_))
        ));
    }

    #[test]
    fn values_are_checked_before_decoding() {
        let check = |bytes: &[u8], expected: Result<u64, ValueError>| {
            assert_eq!(decode_postcard::<u64>(bytes), expected, "{bytes:?}");
        };
        check(&[1, 42], Ok(42));
        check(&[9, 42], Err(ValueError::UnknownFormat(9)));
        check(&[0], Err(ValueError::UnknownFormat(0)));
        check(&[], Err(ValueError::Malformed("empty value".to_owned())));
        assert!(matches!(
            decode_postcard::<u64>(&[1]),
            Err(ValueError::Malformed(_))
        ));
    }

    #[test]
    fn snapshot_values_carry_the_start_time_first() {
        for start_time in [None, Some(-3), Some(1_700_000_000)] {
            let record = ProcessRecord {
                pid: 9,
                start_time,
                name: Some("x".to_owned()),
                ..ProcessRecord::default()
            };
            let bytes = encode_snapshot(&record, Vec::new()).unwrap();
            assert_eq!(bytes[0], VALUE_FORMAT);
            assert_eq!(decode_snapshot_start(&bytes), Ok(start_time));
            assert_eq!(decode_snapshot(&bytes), Ok(record));
        }
    }
}
