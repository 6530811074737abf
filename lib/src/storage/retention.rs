//! Retention: deleting old scans in small transactions.
//!
//! redb has one writer at a time, and ingest is a writer. Deleting a backlog of scans in one
//! transaction would make the next ingest wait for all of it; deleting a few scans per
//! transaction and committing between batches bounds that wait to one batch.
//!
//! A scan's rows (scan, time index, snapshots, events) are deleted as key ranges. The `by_pid`
//! runs are deleted once the oldest remaining scan is newer than their last scan, found through
//! the `ended` table (see the module documentation of [`super`]); a run still going is never
//! deleted.

use std::collections::BTreeSet;
use std::time::Duration;

use redb::{ReadableTable, Table};

use super::codec::{self, name};
use super::{Store, StoreError};
use crate::models::ScanSummary;

/// Which scans to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Scans kept, newest first; older ones are deleted. The newest scan is kept even at 0.
    pub max_scans: u64,
    /// Scans that finished longer ago than this are deleted (except the newest).
    pub max_age: Duration,
    /// Scans deleted per write transaction (0 is taken as 1).
    pub scans_per_transaction: usize,
}

/// What [`Store::enforce_retention`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Scans deleted.
    pub scans: u64,
    /// Snapshot rows deleted (one per process per scan).
    pub records: u64,
    /// Process events deleted.
    pub events: u64,
    /// Write transactions committed.
    pub transactions: u64,
}

/// The tables a deletion touches, open in one write transaction.
struct Tables<'txn> {
    scans: Table<'txn, &'static [u8; 8], &'static [u8]>,
    by_time: Table<'txn, &'static [u8; 16], ()>,
    snapshots: Table<'txn, &'static [u8; 12], &'static [u8]>,
    by_pid: Table<'txn, &'static [u8; 21], &'static [u8; 8]>,
    ended: Table<'txn, &'static [u8; 29], ()>,
    events: Table<'txn, &'static [u8; 12], &'static [u8]>,
}

/// The scans a policy deletes, oldest first, given every stored scan id in ascending order and
/// the ids of the scans that finished before the age cutoff. The newest scan is never among
/// them.
fn victims(ids: &[u64], max_scans: u64, too_old: &[u64]) -> Vec<u64> {
    let Some(&newest) = ids.last() else {
        return Vec::new();
    };
    let excess =
        usize::try_from((ids.len() as u64).saturating_sub(max_scans)).unwrap_or(usize::MAX);
    let mut out: BTreeSet<u64> = ids.iter().take(excess).copied().collect();
    out.extend(too_old);
    out.remove(&newest);
    out.into_iter().collect()
}

impl Store {
    /// Deletes scans (with their snapshots, index entries and events) older than
    /// `policy.max_age` relative to `now_ms`, and beyond the newest `policy.max_scans`. Never
    /// deletes the newest scan. Deletes at most `policy.scans_per_transaction` scans per write
    /// transaction and commits between batches, so an ingest waiting for the single writer
    /// waits for one small batch at most, never for the whole backlog. Returns what it deleted.
    pub fn enforce_retention(
        &self,
        policy: &Retention,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        const OPERATION: &str = "enforce retention";
        let max_age_ms = i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        let doomed = {
            let txn = self.read(OPERATION)?;
            let scans = txn
                .open_table(codec::SCANS)
                .map_err(self.db_err(OPERATION))?;
            let by_time = txn
                .open_table(codec::BY_TIME)
                .map_err(self.db_err(OPERATION))?;
            let mut ids = Vec::new();
            for entry in scans.iter().map_err(self.db_err(OPERATION))? {
                let (key, _) = entry.map_err(self.db_err(OPERATION))?;
                ids.push(codec::scan_of_scan_key(key.value()));
            }
            // Strictly older than the cutoff: keys below (cutoff, scan 0).
            let mut too_old = Vec::new();
            for entry in by_time
                .range::<&[u8; 16]>(..&codec::time_key(cutoff, 0))
                .map_err(self.db_err(OPERATION))?
            {
                let (key, _) = entry.map_err(self.db_err(OPERATION))?;
                too_old.push(codec::scan_of_time_key(key.value()));
            }
            victims(&ids, policy.max_scans, &too_old)
        };

        let mut report = RetentionReport::default();
        for batch in doomed.chunks(policy.scans_per_transaction.max(1)) {
            let txn = self.db.begin_write().map_err(self.db_err(OPERATION))?;
            {
                let mut tables = Tables {
                    scans: txn
                        .open_table(codec::SCANS)
                        .map_err(self.db_err(OPERATION))?,
                    by_time: txn
                        .open_table(codec::BY_TIME)
                        .map_err(self.db_err(OPERATION))?,
                    snapshots: txn
                        .open_table(codec::SNAPSHOTS)
                        .map_err(self.db_err(OPERATION))?,
                    by_pid: txn
                        .open_table(codec::BY_PID)
                        .map_err(self.db_err(OPERATION))?,
                    ended: txn
                        .open_table(codec::ENDED)
                        .map_err(self.db_err(OPERATION))?,
                    events: txn
                        .open_table(codec::EVENTS)
                        .map_err(self.db_err(OPERATION))?,
                };
                for &id in batch {
                    self.delete_scan(&mut tables, id, &mut report)?;
                }
                self.prune_runs(&mut tables)?;
            }
            txn.commit().map_err(self.db_err(OPERATION))?;
            report.transactions += 1;
        }
        Ok(report)
    }

    /// Deletes scan `id` and everything that belongs to it; nothing if it is already gone
    /// (deleted by a concurrent call).
    fn delete_scan(
        &self,
        tables: &mut Tables<'_>,
        id: u64,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "delete a scan";
        let summary: ScanSummary = {
            let Some(value) = tables
                .scans
                .remove(&codec::scan_key(id))
                .map_err(self.db_err(OPERATION))?
            else {
                return Ok(());
            };
            codec::decode_postcard(value.value()).map_err(self.value_err(name::SCANS))?
        };
        tables
            .by_time
            .remove(&codec::time_key(summary.finished_at, id))
            .map_err(self.db_err(OPERATION))?;

        // Both ranges are deleted in one pass each; the predicate counts what it deletes.
        let mut records = 0;
        let (low, high) = (
            codec::snapshot_key(id, 0),
            codec::snapshot_key(id, u32::MAX),
        );
        tables
            .snapshots
            .retain_in::<&[u8; 12], _>(&low..=&high, |_, _| {
                records += 1;
                false
            })
            .map_err(self.db_err(OPERATION))?;
        let mut events = 0;
        let (low, high) = (codec::event_key(id, 0), codec::event_key(id, u32::MAX));
        tables
            .events
            .retain_in::<&[u8; 12], _>(&low..=&high, |_, _| {
                events += 1;
                false
            })
            .map_err(self.db_err(OPERATION))?;

        report.scans += 1;
        report.records += records;
        report.events += events;
        Ok(())
    }

    /// Deletes the `by_pid` entries of runs that ended before the oldest stored scan: every
    /// scan they name is gone. A run that ended later keeps its entry even if some of its scans
    /// were deleted out of order (by age); `process_history` skips the missing ones.
    fn prune_runs(&self, tables: &mut Tables<'_>) -> Result<(), StoreError> {
        const OPERATION: &str = "delete ended processes";
        let Some(oldest) = tables
            .scans
            .first()
            .map_err(self.db_err(OPERATION))?
            .map(|(key, _)| codec::scan_of_scan_key(key.value()))
        else {
            return Ok(());
        };
        let mut runs = Vec::new();
        tables
            .ended
            .retain_in::<&[u8; 29], _>(..&codec::ended_key(oldest, &[0; 21]), |key, ()| {
                runs.push(codec::by_pid_of_ended_key(key));
                false
            })
            .map_err(self.db_err(OPERATION))?;
        for run in &runs {
            tables.by_pid.remove(run).map_err(self.db_err(OPERATION))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_are_the_excess_and_the_old_but_never_the_newest() {
        let check = |ids: &[u64], max_scans: u64, too_old: &[u64], expected: &[u64]| {
            assert_eq!(
                victims(ids, max_scans, too_old),
                expected,
                "{ids:?} {max_scans} {too_old:?}"
            );
        };
        check(&[], 0, &[], &[]);
        check(&[1, 2, 3], 5, &[], &[]);
        check(&[1, 2, 3, 4, 5], 2, &[], &[1, 2, 3]);
        check(&[1, 2, 3], 0, &[], &[1, 2]);
        check(&[1, 2, 3], 1, &[], &[1, 2]);
        check(&[1, 2, 3], 10, &[1, 2, 3], &[1, 2]);
        // Age and count overlap; a clock that went back can make a middle scan the oldest.
        check(&[1, 2, 3, 4], 3, &[1, 3], &[1, 3]);
    }
}
