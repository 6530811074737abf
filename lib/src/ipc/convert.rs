//! Conversions between the shared models ([`crate::models`]) and their wire messages.
//!
//! Every field maps one to one, and unknown (`None`) stays unknown: proto3 `optional` fields
//! keep "absent" apart from zero. Decoding checks what prost cannot: `on_disk` must be 1, 0 or
//! -1; an alert's id must be a checked [`AlertId`], its severity one this build knows, and each
//! of its rows as many values as columns.

use super::IpcError;
use super::frame::MessageType;
use super::proto;
use crate::alert::{Alert, Severity};
use crate::ids::AlertId;
use crate::models::{EventKind, OnDisk, ProcessEvent, ProcessRecord, ScanErrors, ScanSummary};

impl From<&ProcessRecord> for proto::ProcessRecord {
    fn from(r: &ProcessRecord) -> Self {
        Self {
            pid: r.pid,
            parent: r.parent,
            name: r.name.clone(),
            path: r.path.clone(),
            cmdline: r.cmdline.clone(),
            cwd: r.cwd.clone(),
            root: r.root.clone(),
            state: r.state.clone(),
            uid: r.uid,
            gid: r.gid,
            euid: r.euid,
            egid: r.egid,
            suid: r.suid,
            sgid: r.sgid,
            on_disk: i32::from(r.on_disk.as_i8()),
            resident_size: r.resident_size,
            total_size: r.total_size,
            user_time: r.user_time,
            system_time: r.system_time,
            disk_bytes_read: r.disk_bytes_read,
            disk_bytes_written: r.disk_bytes_written,
            start_time: r.start_time,
            pgroup: r.pgroup,
            threads: r.threads,
            nice: r.nice,
            cgroup_path: r.cgroup_path.clone(),
            exe_sha256: r.exe_sha256.clone(),
            exe_dev: r.exe_dev,
            exe_inode: r.exe_inode,
            cpu_percent: r.cpu_percent,
            scan_id: r.scan_id,
            collected_at: r.collected_at,
        }
    }
}

impl TryFrom<proto::ProcessRecord> for ProcessRecord {
    type Error = IpcError;

    fn try_from(r: proto::ProcessRecord) -> Result<Self, IpcError> {
        let on_disk = i8::try_from(r.on_disk)
            .ok()
            .and_then(|value| OnDisk::try_from(value).ok())
            .ok_or_else(|| IpcError::Decode {
                kind: MessageType::CollectorResponse,
                reason: format!(
                    "process {}: on_disk must be 1, 0 or -1, not {}",
                    r.pid, r.on_disk
                ),
            })?;
        Ok(Self {
            pid: r.pid,
            parent: r.parent,
            name: r.name,
            path: r.path,
            cmdline: r.cmdline,
            cwd: r.cwd,
            root: r.root,
            state: r.state,
            uid: r.uid,
            gid: r.gid,
            euid: r.euid,
            egid: r.egid,
            suid: r.suid,
            sgid: r.sgid,
            on_disk,
            resident_size: r.resident_size,
            total_size: r.total_size,
            user_time: r.user_time,
            system_time: r.system_time,
            disk_bytes_read: r.disk_bytes_read,
            disk_bytes_written: r.disk_bytes_written,
            start_time: r.start_time,
            pgroup: r.pgroup,
            threads: r.threads,
            nice: r.nice,
            cgroup_path: r.cgroup_path,
            exe_sha256: r.exe_sha256,
            exe_dev: r.exe_dev,
            exe_inode: r.exe_inode,
            cpu_percent: r.cpu_percent,
            scan_id: r.scan_id,
            collected_at: r.collected_at,
        })
    }
}

/// The most exec events one pushed batch may hold: far above what procmond sends (it sends a
/// batch every few milliseconds, at most 256 events), low enough that a hostile batch decoded
/// stays small.
pub const MAX_EXEC_EVENTS_PER_BATCH: usize = 4096;

/// An exec event as procmond pushes it.
pub fn exec_event_to_proto(event: &ProcessEvent) -> proto::ExecEvent {
    let lost = event.event == EventKind::ExecLost;
    proto::ExecEvent {
        pid: event.record.pid,
        parent: event.record.parent,
        observed_at: event.observed_at,
        process: (!lost).then(|| proto::ProcessRecord::from(&event.record)),
        lost,
    }
}

/// A pushed exec event, checked: a read event carries its process, with the event's pid; a
/// lost one carries none (its record then holds the pid and parent the kernel gave).
pub fn exec_event_from_proto(event: proto::ExecEvent) -> Result<ProcessEvent, IpcError> {
    let refuse = |reason: String| IpcError::Decode {
        kind: MessageType::CollectorPush,
        reason,
    };
    let (kind, record) = match (event.lost, event.process) {
        (true, None) => (
            EventKind::ExecLost,
            ProcessRecord {
                pid: event.pid,
                parent: event.parent,
                ..ProcessRecord::default()
            },
        ),
        (false, Some(process)) => {
            if process.pid != event.pid {
                return Err(refuse(format!(
                    "exec event of pid {} carries process {}",
                    event.pid, process.pid
                )));
            }
            (EventKind::Exec, ProcessRecord::try_from(process)?)
        }
        (true, Some(_)) => {
            return Err(refuse(format!(
                "exec event of pid {} is lost but carries a process",
                event.pid
            )));
        }
        (false, None) => {
            return Err(refuse(format!(
                "exec event of pid {} carries no process and is not lost",
                event.pid
            )));
        }
    };
    Ok(ProcessEvent {
        event: kind,
        record,
        observed_at: event.observed_at,
    })
}

impl From<&ScanErrors> for proto::ScanErrors {
    fn from(e: &ScanErrors) -> Self {
        Self {
            vanished: e.vanished,
            permission_denied: e.permission_denied,
            malformed: e.malformed,
            unreadable: e.unreadable,
            hash_too_large: e.hash_too_large,
            hash_changed_during_read: e.hash_changed_during_read,
            hash_budget_exhausted: e.hash_budget_exhausted,
            hash_unreadable: e.hash_unreadable,
        }
    }
}

impl From<proto::ScanErrors> for ScanErrors {
    fn from(e: proto::ScanErrors) -> Self {
        Self {
            vanished: e.vanished,
            permission_denied: e.permission_denied,
            malformed: e.malformed,
            unreadable: e.unreadable,
            hash_too_large: e.hash_too_large,
            hash_changed_during_read: e.hash_changed_during_read,
            hash_budget_exhausted: e.hash_budget_exhausted,
            hash_unreadable: e.hash_unreadable,
        }
    }
}

/// A scan's summary as sent over the wire, with its error counts and hashing statistics.
pub fn scan_summary_to_proto(
    summary: &ScanSummary,
    errors: &ScanErrors,
    hashed_files: u64,
    cached_files: u64,
) -> proto::ScanSummary {
    proto::ScanSummary {
        scan_id: summary.scan_id,
        started_at: summary.started_at,
        finished_at: summary.finished_at,
        process_count: summary.process_count,
        error_count: summary.error_count,
        errors: Some(errors.into()),
        hashed_files,
        cached_files,
    }
}

/// The summary and error counts of a scan received over the wire.
pub fn scan_summary_from_proto(summary: proto::ScanSummary) -> (ScanSummary, ScanErrors) {
    let errors = summary.errors.map(ScanErrors::from).unwrap_or_default();
    (
        ScanSummary {
            scan_id: summary.scan_id,
            started_at: summary.started_at,
            finished_at: summary.finished_at,
            process_count: summary.process_count,
            error_count: summary.error_count,
        },
        errors,
    )
}

/// How many process records a `CollectorResponse` payload holds, counted on the wire before it
/// is decoded.
///
/// A record costs a few bytes on the wire but a few hundred once decoded (every optional field
/// takes its room), so a hostile collector could send a frame of millions of empty records and
/// exhaust the agent's memory inside prost. Counting first lets the caller refuse such a frame
/// while it is still only bytes. The walk follows the protobuf wire format
/// (<https://protobuf.dev/programming-guides/encoding/>): `CollectorResponse.result` is field 2
/// and `DetectionResult.processes` is field 4, both length-delimited.
pub fn scan_records_in(payload: &[u8]) -> Result<usize, IpcError> {
    let malformed = |reason: &str| IpcError::Decode {
        kind: MessageType::CollectorResponse,
        reason: reason.to_owned(),
    };
    let mut count = 0;
    for (field, value) in WireFields::new(payload) {
        let value = value.map_err(malformed)?;
        if field == 2 {
            for (inner, entry) in WireFields::new(value.unwrap_or_default()) {
                if entry.map_err(malformed)?.is_some() && inner == 4 {
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}

/// The top-level fields of a protobuf message: field number and, for length-delimited fields,
/// the bytes (other wire types are skipped and yield `None`).
struct WireFields<'a> {
    rest: &'a [u8],
}

impl<'a> WireFields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], &'static str> {
        let len = usize::try_from(len).map_err(|_| "field length overflows")?;
        if len > self.rest.len() {
            return Err("field runs past the end of the message");
        }
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(value)
    }
}

impl<'a> Iterator for WireFields<'a> {
    type Item = (u64, Result<Option<&'a [u8]>, &'static str>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let key = match self.varint() {
            Ok(key) => key,
            Err(err) => {
                self.rest = &[];
                return Some((0, Err(err)));
            }
        };
        let field = key >> 3;
        let value = match key & 7 {
            0 => self.varint().map(|_| None),
            1 => self.take(8).map(|_| None),
            2 => self.varint().and_then(|len| self.take(len)).map(Some),
            5 => self.take(4).map(|_| None),
            _ => Err("unsupported wire type"),
        };
        if value.is_err() {
            self.rest = &[];
        }
        Some((field, value))
    }
}

impl From<Severity> for proto::Severity {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Info => Self::Info,
            Severity::Low => Self::Low,
            Severity::Medium => Self::Medium,
            Severity::High => Self::High,
            Severity::Critical => Self::Critical,
        }
    }
}

/// The severity a wire value names; `None` for unspecified or a value this build does not know.
pub fn severity_from_proto(value: i32) -> Option<Severity> {
    match proto::Severity::try_from(value).ok()? {
        proto::Severity::Unspecified => None,
        proto::Severity::Info => Some(Severity::Info),
        proto::Severity::Low => Some(Severity::Low),
        proto::Severity::Medium => Some(Severity::Medium),
        proto::Severity::High => Some(Severity::High),
        proto::Severity::Critical => Some(Severity::Critical),
    }
}

/// A value of an alert's row as a cell. The rows hold what SQLite returned (null, integer,
/// real, text; blobs already as hex text); a JSON boolean, array or object cannot occur there
/// and would cross as integer 0/1 or as its JSON text.
fn value_to_cell(value: &serde_json::Value) -> proto::Cell {
    use proto::cell::Value;
    let value = match value {
        serde_json::Value::Null => Value::Null(true),
        serde_json::Value::Bool(flag) => Value::Integer(i64::from(*flag)),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Value::Integer(integer),
            None => Value::Real(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::Text(text.clone()),
        other => Value::Text(other.to_string()),
    };
    proto::Cell { value: Some(value) }
}

/// A cell as JSON (blobs as lowercase hex, as alerts and query results show them).
pub fn cell_to_json(cell: &proto::Cell) -> serde_json::Value {
    use proto::cell::Value;
    match &cell.value {
        None | Some(Value::Null(_)) => serde_json::Value::Null,
        Some(Value::Integer(value)) => (*value).into(),
        Some(Value::Real(value)) => serde_json::Number::from_f64(*value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Value::Text(value)) => value.clone().into(),
        Some(Value::Blob(bytes)) => crate::text::hex(bytes).into(),
    }
}

impl From<&Alert> for proto::Alert {
    fn from(alert: &Alert) -> Self {
        Self {
            id: alert.id.to_string(),
            rule_id: alert.rule_id.clone(),
            rule_name: alert.rule_name.clone(),
            severity: proto::Severity::from(alert.severity) as i32,
            mitre: alert.mitre.clone(),
            host: alert.host.clone(),
            site: alert.site.clone(),
            scan_id: alert.scan_id,
            detected_at: alert.detected_at.clone(),
            dedup_key: alert.dedup_key.clone(),
            suppressed: alert.suppressed,
            rows: alert
                .rows
                .iter()
                .map(|row| proto::AlertRow {
                    columns: row.keys().cloned().collect(),
                    values: row.values().map(value_to_cell).collect(),
                })
                .collect(),
            summary: alert.summary.clone(),
        }
    }
}

impl TryFrom<proto::Alert> for Alert {
    type Error = IpcError;

    fn try_from(alert: proto::Alert) -> Result<Self, IpcError> {
        let bad = |reason: String| IpcError::Decode {
            kind: MessageType::AgentResponse,
            reason,
        };
        let id = AlertId::parse(&alert.id).map_err(|err| bad(format!("alert id: {err}")))?;
        let severity = severity_from_proto(alert.severity)
            .ok_or_else(|| bad(format!("alert {id}: unknown severity {}", alert.severity)))?;
        let mut rows = Vec::with_capacity(alert.rows.len());
        for row in alert.rows {
            if row.columns.len() != row.values.len() {
                return Err(bad(format!(
                    "alert {id}: a row of {} columns and {} values",
                    row.columns.len(),
                    row.values.len()
                )));
            }
            rows.push(
                row.columns
                    .into_iter()
                    .zip(row.values.iter().map(cell_to_json))
                    .collect(),
            );
        }
        Ok(Self {
            id,
            rule_id: alert.rule_id,
            rule_name: alert.rule_name,
            severity,
            mitre: alert.mitre,
            host: alert.host,
            site: alert.site,
            scan_id: alert.scan_id,
            detected_at: alert.detected_at,
            dedup_key: alert.dedup_key,
            suppressed: alert.suppressed,
            rows,
            summary: alert.summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn record() -> impl Strategy<Value = ProcessRecord> {
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(".{0,20}"),
            proptest::option::of(any::<u64>()),
            prop_oneof![
                Just(OnDisk::Present),
                Just(OnDisk::Gone),
                Just(OnDisk::Unknown)
            ],
            proptest::option::of(any::<i64>()),
            proptest::option::of(-1.0e6_f64..1.0e6),
            proptest::option::of(any::<i32>()),
        )
            .prop_map(
                |(pid, uid, name, size, on_disk, start, cpu, nice)| ProcessRecord {
                    pid,
                    uid,
                    euid: uid.map(|uid| uid ^ 1),
                    name: name.clone(),
                    cmdline: name,
                    resident_size: size,
                    on_disk,
                    start_time: start,
                    cpu_percent: cpu,
                    nice,
                    scan_id: -3,
                    collected_at: 1_700_000_000_000,
                    ..ProcessRecord::default()
                },
            )
    }

    proptest! {
        #[test]
        fn records_survive_the_wire(record in record()) {
            let bytes = proto::ProcessRecord::from(&record).encode_to_vec();
            let back = ProcessRecord::try_from(proto::ProcessRecord::decode(&bytes[..]).unwrap()).unwrap();
            prop_assert_eq!(back, record);
        }
    }

    #[test]
    fn unknown_stays_unknown_and_zero_stays_zero() {
        let record = ProcessRecord {
            pid: 1,
            uid: Some(0),
            ..ProcessRecord::default()
        };
        let wire = proto::ProcessRecord::from(&record);
        assert_eq!(wire.uid, Some(0));
        assert_eq!(wire.gid, None);
        assert_eq!(wire.on_disk, -1);
    }

    #[test]
    fn an_impossible_on_disk_is_refused() {
        let wire = proto::ProcessRecord {
            pid: 9,
            on_disk: 5,
            ..proto::ProcessRecord::default()
        };
        let err = ProcessRecord::try_from(wire).unwrap_err();
        assert!(
            err.to_string()
                .contains("process 9: on_disk must be 1, 0 or -1, not 5"),
            "{err}"
        );
    }

    #[test]
    fn records_are_counted_on_the_wire_before_decoding() {
        let response = |n: usize| proto::CollectorResponse {
            request_id: 300,
            kind: Some(proto::collector_response::Kind::Result(
                proto::DetectionResult {
                    task_id: "t".into(),
                    processes: vec![proto::ProcessRecord::default(); n],
                    scan: Some(proto::ScanSummary::default()),
                    ..Default::default()
                },
            )),
        };
        for n in [0, 1, 1000] {
            assert_eq!(scan_records_in(&response(n).encode_to_vec()).unwrap(), n);
        }
        let health = proto::CollectorResponse {
            request_id: 1,
            kind: Some(proto::collector_response::Kind::Health(Default::default())),
        };
        assert_eq!(scan_records_in(&health.encode_to_vec()).unwrap(), 0);
        let mut truncated = response(3).encode_to_vec();
        truncated.pop();
        let err = scan_records_in(&truncated).unwrap_err();
        assert!(err.to_string().contains("runs past the end"), "{err}");
        assert!(
            scan_records_in(&[0x0b]).is_err(),
            "a group (wire type 3) is refused"
        );
        assert!(
            scan_records_in(&[0x08, 0xff]).is_err(),
            "a truncated varint is refused"
        );
    }

    #[test]
    fn scan_summaries_round_trip() {
        let summary = ScanSummary {
            scan_id: 4,
            started_at: 10,
            finished_at: 20,
            process_count: 3,
            error_count: 2,
        };
        let errors = ScanErrors {
            vanished: 1,
            hash_unreadable: 1,
            ..ScanErrors::default()
        };
        let wire = scan_summary_to_proto(&summary, &errors, 5, 6);
        assert_eq!((wire.hashed_files, wire.cached_files), (5, 6));
        assert_eq!(scan_summary_from_proto(wire), (summary, errors));
    }
    #[test]
    fn alerts_survive_the_wire() {
        let mut row = serde_json::Map::new();
        row.insert("pid".into(), 42.into());
        row.insert("name".into(), "sh\u{202e}x".into());
        row.insert("cpu".into(), 97.5.into());
        row.insert("exe".into(), serde_json::Value::Null);
        let alert = Alert {
            id: AlertId::parse("0123456789abcdef0123456789abcdef").expect("an id"),
            rule_id: "DE-LNX-0001".into(),
            rule_name: "a rule".into(),
            severity: Severity::High,
            mitre: vec!["T1059".into()],
            host: "h".into(),
            site: Some("site-1".into()),
            scan_id: 7,
            detected_at: "2026-12-03T00:00:00Z".into(),
            dedup_key: "[\"42\"]".into(),
            suppressed: 3,
            rows: vec![row],
            summary: "s".into(),
        };
        let wire = proto::Alert::from(&alert);
        let bytes = wire.encode_to_vec();
        let back = Alert::try_from(proto::Alert::decode(bytes.as_slice()).expect("decodes"))
            .expect("converts");
        assert_eq!(back, alert);
    }

    #[test]
    fn a_hostile_alert_is_refused() {
        let good = proto::Alert {
            id: "0123456789abcdef0123456789abcdef".into(),
            severity: proto::Severity::Low as i32,
            ..proto::Alert::default()
        };
        assert!(Alert::try_from(good.clone()).is_ok());
        for bad in [
            proto::Alert {
                id: "../../x".into(),
                ..good.clone()
            },
            proto::Alert {
                severity: 0,
                ..good.clone()
            },
            proto::Alert {
                severity: 99,
                ..good.clone()
            },
            proto::Alert {
                rows: vec![proto::AlertRow {
                    columns: vec!["a".into(), "b".into()],
                    values: vec![proto::Cell::default()],
                }],
                ..good.clone()
            },
        ] {
            assert!(Alert::try_from(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exec_events_round_trip_and_inconsistent_ones_are_refused() {
        let read = ProcessEvent {
            event: EventKind::Exec,
            record: ProcessRecord {
                pid: 77,
                parent: Some(70),
                cmdline: Some("/bin/true x".into()),
                ..ProcessRecord::default()
            },
            observed_at: 1_700_000_000_000,
        };
        let lost = ProcessEvent {
            event: EventKind::ExecLost,
            record: ProcessRecord {
                pid: 78,
                parent: Some(70),
                ..ProcessRecord::default()
            },
            observed_at: 1_700_000_000_001,
        };
        for event in [&read, &lost] {
            assert_eq!(
                &exec_event_from_proto(exec_event_to_proto(event)).unwrap(),
                event
            );
        }
        let mut other_pid = exec_event_to_proto(&read);
        other_pid.pid = 5;
        let mut lost_with_process = exec_event_to_proto(&read);
        lost_with_process.lost = true;
        let mut read_without_process = exec_event_to_proto(&read);
        read_without_process.process = None;
        let mut bad_on_disk = exec_event_to_proto(&read);
        if let Some(process) = bad_on_disk.process.as_mut() {
            process.on_disk = 7;
        }
        for (bad, why) in [
            (other_pid, "carries process 77"),
            (lost_with_process, "is lost but carries a process"),
            (read_without_process, "carries no process and is not lost"),
            (bad_on_disk, "on_disk must be 1, 0 or -1"),
        ] {
            let err = exec_event_from_proto(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
