//! Ingest: one scan, one write transaction.
//!
//! The process events of a scan are the difference between it and the newest stored scan. Only
//! the identities of the newest scan's processes are read (the pid from each snapshot key, the
//! start time from the first bytes of each value: see the module documentation of [`super`]),
//! and only the records of processes that exited are decoded in full. Nothing older than the
//! newest scan is read. The `by_pid` index changes only where a process started or exited: a
//! start opens a run, an exit closes the run it ends.

use std::cmp::Ordering;

use redb::ReadableTable;

use super::codec::{self, name};
use super::{Ingested, Store, StoreError};
use crate::models::{EventKind, ProcessEvent, ProcessRecord, ScanSummary};

/// One difference between two scans, by index into the identity lists given to [`diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The old scan's process at this index is not in the new scan.
    Exit(usize),
    /// The new scan's process at this index is not in the old scan.
    Start(usize),
}

/// The processes that started and exited between two scans, each given as its (pid, start
/// time) identities sorted by pid with no pid twice. A pid in both with different start times
/// was reused: its old process exited and a new one started. Changes come in pid order, an
/// exit before the start of the same pid.
fn diff(old: &[(u32, Option<i64>)], new: &[(u32, Option<i64>)]) -> Vec<Change> {
    let mut changes = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => o.0.cmp(&n.0),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                changes.push(Change::Exit(i));
                i += 1;
            }
            Ordering::Greater => {
                changes.push(Change::Start(j));
                j += 1;
            }
            Ordering::Equal => {
                if old[i].1 != new[j].1 {
                    changes.push(Change::Exit(i));
                    changes.push(Change::Start(j));
                }
                i += 1;
                j += 1;
            }
        }
    }
    changes
}

impl Store {
    /// One write transaction per scan: assigns scan_id = (largest stored scan id, or 0) + 1 —
    /// procmond restarts its own counter, the store's id is authoritative — re-stamps every
    /// record's scan_id, writes the scan row, the snapshot rows, the by-pid+start index, the
    /// by-time index, and the process events computed against the newest stored scan (same
    /// process = same pid and same start_time; start = in the new scan only, record from the
    /// new scan; exit = in the old scan only, record from the old scan but record.scan_id set
    /// to the new scan; observed_at = the new scan's finished_at). First scan ever: no events.
    ///
    /// A scan with the same pid twice is refused ([`StoreError::DuplicatePid`]).
    pub fn ingest(
        &self,
        summary: &ScanSummary,
        records: &[ProcessRecord],
    ) -> Result<Ingested, StoreError> {
        const OPERATION: &str = "ingest a scan";
        let mut sorted: Vec<&ProcessRecord> = records.iter().collect();
        sorted.sort_unstable_by_key(|record| record.pid);
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].pid == pair[1].pid) {
            return Err(StoreError::DuplicatePid {
                path: self.path.clone(),
                pid: pair[0].pid,
            });
        }
        let new: Vec<(u32, Option<i64>)> = sorted.iter().map(|r| (r.pid, r.start_time)).collect();

        let txn = self.db.begin_write().map_err(self.db_err(OPERATION))?;
        let ingested = {
            let mut scans = txn
                .open_table(codec::SCANS)
                .map_err(self.db_err(OPERATION))?;
            let mut by_time = txn
                .open_table(codec::BY_TIME)
                .map_err(self.db_err(OPERATION))?;
            let mut snapshots = txn
                .open_table(codec::SNAPSHOTS)
                .map_err(self.db_err(OPERATION))?;
            let mut by_pid = txn
                .open_table(codec::BY_PID)
                .map_err(self.db_err(OPERATION))?;
            let mut events = txn
                .open_table(codec::EVENTS)
                .map_err(self.db_err(OPERATION))?;
            let mut ended = txn
                .open_table(codec::ENDED)
                .map_err(self.db_err(OPERATION))?;

            let previous = scans
                .last()
                .map_err(self.db_err(OPERATION))?
                .map(|(key, _)| codec::scan_of_scan_key(key.value()));
            let id = previous.unwrap_or(0).saturating_add(1);
            let scan_id = i64::try_from(id).map_err(|_| {
                self.corrupt(name::SCANS, format!("scan id {id} does not fit an i64"))
            })?;

            let old = match previous {
                Some(previous) => self.identities(&snapshots, previous)?,
                None => Vec::new(),
            };
            // Against no scan at all (the first one ever), every process starts a run in the
            // index, but no event is written.
            let changes = diff(&old, &new);
            let mut buf = Vec::new();
            let (mut started, mut exited) = (0u64, 0u64);
            for change in changes {
                // Events first: an exit reads the old scan's record before the table changes.
                let (event, record) = match (change, previous) {
                    (Change::Start(j), _) => {
                        let (pid, start) = new[j];
                        by_pid
                            .insert(
                                &codec::by_pid_key(pid, start, id),
                                &codec::RUNNING.to_be_bytes(),
                            )
                            .map_err(self.db_err(OPERATION))?;
                        if previous.is_none() {
                            continue;
                        }
                        started += 1;
                        (EventKind::Start, sorted[j].clone())
                    }
                    (Change::Exit(i), Some(old_id)) => {
                        let (pid, start) = old[i];
                        let run = self.running(&by_pid, pid, start, old_id)?;
                        by_pid
                            .insert(&run, &old_id.to_be_bytes())
                            .map_err(self.db_err(OPERATION))?;
                        ended
                            .insert(&codec::ended_key(old_id, &run), ())
                            .map_err(self.db_err(OPERATION))?;
                        exited += 1;
                        (EventKind::Exit, self.old_record(&snapshots, old_id, pid)?)
                    }
                    // Without a previous scan `old` is empty: nothing can exit.
                    (Change::Exit(_), None) => continue,
                };
                let seq = u32::try_from(started + exited - 1).map_err(|_| {
                    self.encode_err(name::EVENTS)("more than 2^32 events in one scan".to_owned())
                })?;
                let event = ProcessEvent {
                    event,
                    record: ProcessRecord { scan_id, ..record },
                    observed_at: summary.finished_at,
                };
                buf = codec::encode_postcard(&event, buf).map_err(self.encode_err(name::EVENTS))?;
                events
                    .insert(&codec::event_key(id, seq), buf.as_slice())
                    .map_err(self.db_err(OPERATION))?;
            }

            for record in &sorted {
                let stamped = ProcessRecord {
                    scan_id,
                    ..(*record).clone()
                };
                buf = codec::encode_snapshot(&stamped, buf)
                    .map_err(self.encode_err(name::SNAPSHOTS))?;
                snapshots
                    .insert(&codec::snapshot_key(id, record.pid), buf.as_slice())
                    .map_err(self.db_err(OPERATION))?;
            }

            let stored = ScanSummary {
                scan_id,
                ..summary.clone()
            };
            buf = codec::encode_postcard(&stored, buf).map_err(self.encode_err(name::SCANS))?;
            scans
                .insert(&codec::scan_key(id), buf.as_slice())
                .map_err(self.db_err(OPERATION))?;
            by_time
                .insert(&codec::time_key(summary.finished_at, id), ())
                .map_err(self.db_err(OPERATION))?;

            Ingested {
                scan_id,
                records: records.len() as u64,
                started,
                exited,
            }
        };
        txn.commit().map_err(self.db_err(OPERATION))?;
        Ok(ingested)
    }

    /// The (pid, start time) of every process of scan `id`, in pid order.
    fn identities(
        &self,
        snapshots: &impl ReadableTable<&'static [u8; 12], &'static [u8]>,
        id: u64,
    ) -> Result<Vec<(u32, Option<i64>)>, StoreError> {
        const OPERATION: &str = "read a scan's processes";
        let (low, high) = (
            codec::snapshot_key(id, 0),
            codec::snapshot_key(id, u32::MAX),
        );
        let mut out = Vec::new();
        for entry in snapshots
            .range::<&[u8; 12]>(&low..=&high)
            .map_err(self.db_err(OPERATION))?
        {
            let (key, value) = entry.map_err(self.db_err(OPERATION))?;
            let start = codec::decode_snapshot_start(value.value())
                .map_err(self.value_err(name::SNAPSHOTS))?;
            out.push((codec::pid_of_snapshot_key(key.value()), start));
        }
        Ok(out)
    }

    /// The `by_pid` key of the run of (`pid`, `start`) that is still going in scan `newest`:
    /// the run with the latest first scan up to `newest`, which must be marked running.
    fn running(
        &self,
        by_pid: &impl ReadableTable<&'static [u8; 21], &'static [u8; 8]>,
        pid: u32,
        start: Option<i64>,
        newest: u64,
    ) -> Result<[u8; 21], StoreError> {
        const OPERATION: &str = "find a running process";
        let (low, high) = (
            codec::by_pid_key(pid, start, 0),
            codec::by_pid_key(pid, start, newest),
        );
        let last = by_pid
            .range::<&[u8; 21]>(&low..=&high)
            .map_err(self.db_err(OPERATION))?
            .next_back()
            .transpose()
            .map_err(self.db_err(OPERATION))?;
        match last {
            Some((key, value)) if u64::from_be_bytes(*value.value()) == codec::RUNNING => {
                Ok(*key.value())
            }
            _ => Err(self.corrupt(
                name::BY_PID,
                format!("no running entry for pid {pid} start time {start:?} of scan {newest}"),
            )),
        }
    }

    /// The record of `pid` in scan `id`, which the caller has just seen in the table.
    fn old_record(
        &self,
        snapshots: &impl ReadableTable<&'static [u8; 12], &'static [u8]>,
        id: u64,
        pid: u32,
    ) -> Result<ProcessRecord, StoreError> {
        const OPERATION: &str = "read an exited process";
        let value = snapshots
            .get(&codec::snapshot_key(id, pid))
            .map_err(self.db_err(OPERATION))?
            .ok_or_else(|| {
                self.corrupt(name::SNAPSHOTS, format!("pid {pid} of scan {id} vanished"))
            })?;
        codec::decode_snapshot(value.value()).map_err(self.value_err(name::SNAPSHOTS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_pairs_processes_by_pid_and_start_time() {
        use Change::{Exit, Start};
        type Ids = &'static [(u32, Option<i64>)];
        let check = |old: Ids, new: Ids, expected: &[Change]| {
            assert_eq!(diff(old, new), expected, "old {old:?} new {new:?}");
        };
        check(&[], &[], &[]);
        check(&[(1, Some(5))], &[(1, Some(5))], &[]);
        check(&[], &[(1, Some(5)), (2, None)], &[Start(0), Start(1)]);
        check(&[(1, Some(5)), (2, None)], &[], &[Exit(0), Exit(1)]);
        // A reused pid: the old process exited, a new one started.
        check(&[(7, Some(5))], &[(7, Some(6))], &[Exit(0), Start(0)]);
        // An unknown start time is an identity of its own.
        check(&[(7, None)], &[(7, Some(6))], &[Exit(0), Start(0)]);
        check(&[(7, None)], &[(7, None)], &[]);
        check(
            &[(1, Some(1)), (3, Some(3)), (5, Some(5))],
            &[(2, Some(2)), (3, Some(3)), (6, Some(6))],
            &[Exit(0), Start(0), Exit(2), Start(2)],
        );
    }
}
