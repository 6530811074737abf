//! Reading scans, snapshots, process histories and events.
//!
//! Every method is one read transaction: it sees the store as of one commit, whatever ingest
//! and retention do meanwhile.

use redb::{ReadableTable, TableDefinition};

use super::codec::{self, name};
use super::{Limited, Store, StoreError};
use crate::models::{ProcessEvent, ProcessRecord, ScanSummary};

impl Store {
    /// The newest scan, if any.
    pub fn latest_scan(&self) -> Result<Option<ScanSummary>, StoreError> {
        const OPERATION: &str = "read the latest scan";
        let txn = self.read(OPERATION)?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(OPERATION))?;
        let last = scans.last().map_err(self.db_err(OPERATION))?;
        last.map(|(_, value)| codec::decode_postcard(value.value()))
            .transpose()
            .map_err(self.value_err(name::SCANS))
    }

    /// One scan, if it is stored.
    pub fn scan(&self, scan_id: i64) -> Result<Option<ScanSummary>, StoreError> {
        const OPERATION: &str = "read a scan";
        let Ok(id) = u64::try_from(scan_id) else {
            return Ok(None);
        };
        let txn = self.read(OPERATION)?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(OPERATION))?;
        let value = scans
            .get(&codec::scan_key(id))
            .map_err(self.db_err(OPERATION))?;
        value
            .map(|value| codec::decode_postcard(value.value()))
            .transpose()
            .map_err(self.value_err(name::SCANS))
    }

    /// Every stored scan, oldest first.
    pub fn scans(&self) -> Result<Vec<ScanSummary>, StoreError> {
        const OPERATION: &str = "read the scans";
        let txn = self.read(OPERATION)?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(OPERATION))?;
        let mut out = Vec::new();
        for entry in scans.iter().map_err(self.db_err(OPERATION))? {
            let (_, value) = entry.map_err(self.db_err(OPERATION))?;
            out.push(codec::decode_postcard(value.value()).map_err(self.value_err(name::SCANS))?);
        }
        Ok(out)
    }

    /// Scans whose `finished_at` is in `[from_ms, to_ms]`, oldest first (uses the time index).
    pub fn scans_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ScanSummary>, StoreError> {
        const OPERATION: &str = "read scans by time";
        if from_ms > to_ms {
            return Ok(Vec::new());
        }
        let txn = self.read(OPERATION)?;
        let by_time = txn
            .open_table(codec::BY_TIME)
            .map_err(self.db_err(OPERATION))?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(OPERATION))?;
        let (low, high) = (
            codec::time_key(from_ms, 0),
            codec::time_key(to_ms, u64::MAX),
        );
        let mut out = Vec::new();
        for entry in by_time
            .range::<&[u8; 16]>(&low..=&high)
            .map_err(self.db_err(OPERATION))?
        {
            let (key, _) = entry.map_err(self.db_err(OPERATION))?;
            let id = codec::scan_of_time_key(key.value());
            let value = scans
                .get(&codec::scan_key(id))
                .map_err(self.db_err(OPERATION))?
                .ok_or_else(|| {
                    self.corrupt(
                        name::SCANS,
                        format!("by_time names scan {id}, which is missing"),
                    )
                })?;
            out.push(codec::decode_postcard(value.value()).map_err(self.value_err(name::SCANS))?);
        }
        Ok(out)
    }

    /// One scan's records in pid order (empty if the scan is unknown).
    pub fn snapshot(&self, scan_id: i64) -> Result<Vec<ProcessRecord>, StoreError> {
        self.one_scan(&SNAPSHOT_ROWS, scan_id)
    }

    /// Records of the newest scans first (each scan in pid order), at most `max_records`;
    /// `truncated` says whether more exist.
    pub fn snapshots(&self, max_records: usize) -> Result<Limited<ProcessRecord>, StoreError> {
        self.newest_scans(&SNAPSHOT_ROWS, max_records)
    }

    /// Every retained record of one process (pid and start time), oldest scan first (uses the
    /// pid index).
    pub fn process_history(
        &self,
        pid: u32,
        start_time: Option<i64>,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        const OPERATION: &str = "read a process history";
        let txn = self.read(OPERATION)?;
        let by_pid = txn
            .open_table(codec::BY_PID)
            .map_err(self.db_err(OPERATION))?;
        let snapshots = txn
            .open_table(codec::SNAPSHOTS)
            .map_err(self.db_err(OPERATION))?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(OPERATION))?;
        let bounds = (scans.first(), scans.last());
        let (Some((oldest, _)), Some((newest, _))) = (
            bounds.0.map_err(self.db_err(OPERATION))?,
            bounds.1.map_err(self.db_err(OPERATION))?,
        ) else {
            return Ok(Vec::new());
        };
        let oldest = codec::scan_of_scan_key(oldest.value());
        let newest = codec::scan_of_scan_key(newest.value());
        let low = codec::by_pid_key(pid, start_time, 0);
        let high = codec::by_pid_key(pid, start_time, u64::MAX);
        let mut out = Vec::new();
        for entry in by_pid
            .range::<&[u8; 21]>(&low..=&high)
            .map_err(self.db_err(OPERATION))?
        {
            let (key, value) = entry.map_err(self.db_err(OPERATION))?;
            let first = codec::scan_of_by_pid_key(key.value());
            let last = match u64::from_be_bytes(*value.value()) {
                codec::RUNNING => newest,
                last => last,
            };
            // Scans of the run that retention deleted (all before `oldest`, and any deleted
            // out of order by age) have no snapshot row: they are skipped.
            for id in first.max(oldest)..=last {
                let Some(value) = snapshots
                    .get(&codec::snapshot_key(id, pid))
                    .map_err(self.db_err(OPERATION))?
                else {
                    continue;
                };
                let record = codec::decode_snapshot(value.value())
                    .map_err(self.value_err(name::SNAPSHOTS))?;
                if record.start_time != start_time {
                    return Err(self.corrupt(
                        name::BY_PID,
                        format!(
                            "pid {pid} started at {start_time:?} runs through scan {last}, \
                             but scan {id} holds a process started at {:?}",
                            record.start_time
                        ),
                    ));
                }
                out.push(record);
            }
        }
        Ok(out)
    }

    /// The events observed in `scan_id`, in the order ingest computed them (by pid).
    pub fn events(&self, scan_id: i64) -> Result<Vec<ProcessEvent>, StoreError> {
        self.one_scan(&EVENT_ROWS, scan_id)
    }

    /// Events of the newest scans first (each scan's in order), at most `max_events`.
    pub fn all_events(&self, max_events: usize) -> Result<Limited<ProcessEvent>, StoreError> {
        self.newest_scans(&EVENT_ROWS, max_events)
    }

    /// One scan's rows of `kind`, in key order (empty if the scan is unknown).
    fn one_scan<T>(&self, kind: &PerScan<T>, scan_id: i64) -> Result<Vec<T>, StoreError> {
        let Ok(id) = u64::try_from(scan_id) else {
            return Ok(Vec::new());
        };
        let txn = self.read(kind.operation)?;
        let table = txn
            .open_table(kind.table)
            .map_err(self.db_err(kind.operation))?;
        let mut out = Vec::new();
        self.scan_rows_into(kind, &table, id, usize::MAX, &mut out)?;
        Ok(out)
    }

    /// Rows of `kind` of the newest scans first, at most `max`.
    fn newest_scans<T>(&self, kind: &PerScan<T>, max: usize) -> Result<Limited<T>, StoreError> {
        let txn = self.read(kind.operation)?;
        let scans = txn
            .open_table(codec::SCANS)
            .map_err(self.db_err(kind.operation))?;
        let table = txn
            .open_table(kind.table)
            .map_err(self.db_err(kind.operation))?;
        let mut items = Vec::new();
        for entry in scans.iter().map_err(self.db_err(kind.operation))?.rev() {
            let (key, _) = entry.map_err(self.db_err(kind.operation))?;
            let id = codec::scan_of_scan_key(key.value());
            if self.scan_rows_into(kind, &table, id, max, &mut items)? {
                return Ok(Limited {
                    items,
                    truncated: true,
                });
            }
        }
        Ok(Limited {
            items,
            truncated: false,
        })
    }

    /// Appends scan `id`'s rows of `kind` to `out` until it holds `max` items; returns whether
    /// rows were left out.
    fn scan_rows_into<T>(
        &self,
        kind: &PerScan<T>,
        table: &impl ReadableTable<&'static [u8; 12], &'static [u8]>,
        id: u64,
        max: usize,
        out: &mut Vec<T>,
    ) -> Result<bool, StoreError> {
        // Both tables key their rows (scan id, u32), as `snapshot_key` lays them out.
        let (low, high) = (
            codec::snapshot_key(id, 0),
            codec::snapshot_key(id, u32::MAX),
        );
        for entry in table
            .range::<&[u8; 12]>(&low..=&high)
            .map_err(self.db_err(kind.operation))?
        {
            if out.len() >= max {
                return Ok(true);
            }
            let (_, value) = entry.map_err(self.db_err(kind.operation))?;
            out.push((kind.decode)(value.value()).map_err(self.value_err(kind.name))?);
        }
        Ok(false)
    }
}

/// A table of rows keyed (scan id, u32): `snapshots` (by pid) and `events` (by sequence).
struct PerScan<T> {
    table: TableDefinition<'static, &'static [u8; 12], &'static [u8]>,
    name: &'static str,
    operation: &'static str,
    decode: fn(&[u8]) -> Result<T, codec::ValueError>,
}

const SNAPSHOT_ROWS: PerScan<ProcessRecord> = PerScan {
    table: codec::SNAPSHOTS,
    name: name::SNAPSHOTS,
    operation: "read snapshots",
    decode: codec::decode_snapshot,
};

const EVENT_ROWS: PerScan<ProcessEvent> = PerScan {
    table: codec::EVENTS,
    name: name::EVENTS,
    operation: "read events",
    decode: codec::decode_postcard::<ProcessEvent>,
};
