//! Exec events from the kernel, stored beside the scans: each is a `process_events` row of the
//! newest scan when it arrives (after that scan's own start and exit events, numbered on from
//! them), so retention deletes it with that scan, and `Store::events(scan)` lists it. Their
//! commits are not synced on their own (`Durability::None`): the next scan's commit makes
//! them durable.

use redb::{ReadableDatabase, ReadableTable};

use super::codec::{self, name};
use super::{Store, StoreError};
use crate::models::{ProcessEvent, ProcessRecord};

impl Store {
    /// Appends `events` (exec events) to the newest scan's events in one write transaction,
    /// setting each record's `scan_id` to it. Returns that scan's id, or `None`, writing
    /// nothing, while no scan is stored yet (the caller keeps the events until one is).
    pub fn append_exec_events(&self, events: &[ProcessEvent]) -> Result<Option<i64>, StoreError> {
        const OPERATION: &str = "store exec events";
        let mut txn = self.db.begin_write().map_err(self.db_err(OPERATION))?;
        // No fsync of its own: exec events come many times a second, and the next durable
        // commit (every scan's ingest) makes them durable with it. A crash loses at most the
        // exec events since the last scan; alerts raised from them are written durably.
        txn.set_durability(redb::Durability::None)
            .map_err(|err| self.encode_err(name::EVENTS)(err.to_string()))?;
        let stored = {
            let scans = txn
                .open_table(codec::SCANS)
                .map_err(self.db_err(OPERATION))?;
            let Some(newest) = scans
                .last()
                .map_err(self.db_err(OPERATION))?
                .map(|(key, _)| codec::scan_of_scan_key(key.value()))
            else {
                return Ok(None);
            };
            let scan_id = i64::try_from(newest).map_err(|_| {
                self.corrupt(name::SCANS, format!("scan id {newest} does not fit an i64"))
            })?;
            let mut table = txn
                .open_table(codec::EVENTS)
                .map_err(self.db_err(OPERATION))?;
            let (first, last) = (
                codec::event_key(newest, 0),
                codec::event_key(newest, u32::MAX),
            );
            let next = table
                .range::<&[u8; 12]>(&first..=&last)
                .map_err(self.db_err(OPERATION))?
                .next_back()
                .transpose()
                .map_err(self.db_err(OPERATION))?
                .map_or(0u64, |(key, _)| {
                    let key = key.value();
                    u64::from(u32::from_be_bytes([key[8], key[9], key[10], key[11]])) + 1
                });
            let mut buf = Vec::new();
            for (offset, event) in events.iter().enumerate() {
                let seq = u32::try_from(next + offset as u64).map_err(|_| {
                    self.encode_err(name::EVENTS)("more than 2^32 events in one scan".to_owned())
                })?;
                let stamped = ProcessEvent {
                    record: ProcessRecord {
                        scan_id,
                        ..event.record.clone()
                    },
                    ..event.clone()
                };
                buf =
                    codec::encode_postcard(&stamped, buf).map_err(self.encode_err(name::EVENTS))?;
                table
                    .insert(&codec::event_key(newest, seq), buf.as_slice())
                    .map_err(self.db_err(OPERATION))?;
            }
            Some(scan_id)
        };
        txn.commit().map_err(self.db_err(OPERATION))?;
        Ok(stored)
    }

    /// The record of `pid` in scan `scan_id`, if that scan saw it: the parent of an exec'd
    /// process, looked up in the newest scan without reading the whole scan.
    pub fn snapshot_record(
        &self,
        scan_id: i64,
        pid: u32,
    ) -> Result<Option<ProcessRecord>, StoreError> {
        const OPERATION: &str = "read one process of a scan";
        let Ok(id) = u64::try_from(scan_id) else {
            return Ok(None);
        };
        let txn = self.db.begin_read().map_err(self.db_err(OPERATION))?;
        let table = txn
            .open_table(codec::SNAPSHOTS)
            .map_err(self.db_err(OPERATION))?;
        let Some(value) = table
            .get(&codec::snapshot_key(id, pid))
            .map_err(self.db_err(OPERATION))?
        else {
            return Ok(None);
        };
        codec::decode_snapshot(value.value())
            .map(Some)
            .map_err(self.value_err(name::SNAPSHOTS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::EventKind;
    use crate::storage::tests::{ingest, record, temp_store};

    fn exec(pid: u32, lost: bool) -> ProcessEvent {
        ProcessEvent {
            event: if lost {
                EventKind::ExecLost
            } else {
                EventKind::Exec
            },
            record: ProcessRecord {
                pid,
                parent: Some(1),
                cmdline: (!lost).then(|| format!("/bin/true {pid}")),
                ..ProcessRecord::default()
            },
            observed_at: 1_000 + i64::from(pid),
        }
    }

    fn scan(store: &Store, pids: &[u32], at: i64) -> i64 {
        let records: Vec<ProcessRecord> = pids
            .iter()
            .map(|&pid| record(pid, Some(i64::from(pid))))
            .collect();
        ingest(store, at, &records).scan_id
    }

    #[test]
    fn exec_events_wait_for_a_scan_then_follow_its_own_events() {
        let (_dir, store) = temp_store();
        assert_eq!(store.append_exec_events(&[exec(50, false)]).unwrap(), None);
        assert!(store.all_events(100).unwrap().items.is_empty());

        scan(&store, &[1, 2], 10);
        let second = scan(&store, &[1, 3], 20); // 2 exits, 3 starts: two events of its own
        assert_eq!(store.events(second).unwrap().len(), 2);
        let stored = store
            .append_exec_events(&[exec(60, false), exec(61, true)])
            .unwrap();
        assert_eq!(stored, Some(second));
        assert_eq!(
            store.append_exec_events(&[exec(62, false)]).unwrap(),
            Some(second)
        );
        let events = store.events(second).unwrap();
        let kinds: Vec<(EventKind, u32)> = events.iter().map(|e| (e.event, e.record.pid)).collect();
        assert_eq!(kinds.len(), 5);
        assert_eq!(
            &kinds[2..],
            &[
                (EventKind::Exec, 60),
                (EventKind::ExecLost, 61),
                (EventKind::Exec, 62)
            ]
        );
        assert!(events.iter().all(|e| e.record.scan_id == second));
        assert_eq!(events[2].record.cmdline.as_deref(), Some("/bin/true 60"));

        // The next scan starts its own numbering; the exec events stay with theirs.
        let third = scan(&store, &[1, 3], 30);
        assert!(store.events(third).unwrap().is_empty());
        assert_eq!(store.events(second).unwrap().len(), 5);
    }

    #[test]
    fn one_record_of_a_scan_is_found_by_pid() {
        let (_dir, store) = temp_store();
        let id = scan(&store, &[1, 7], 10);
        assert_eq!(store.snapshot_record(id, 7).unwrap().unwrap().pid, 7);
        assert!(store.snapshot_record(id, 8).unwrap().is_none());
        assert!(store.snapshot_record(id + 1, 7).unwrap().is_none());
        assert!(store.snapshot_record(-1, 7).unwrap().is_none());
    }
}
