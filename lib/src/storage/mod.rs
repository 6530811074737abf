//! The event store: every retained scan, its process events, rule states and alerts, in one
//! [redb](https://docs.rs/redb) file.
//!
//! Only the agent writes the store (redb locks the file, so a second writer fails to open it).
//! Each scan is one write transaction ([`Store::ingest`]): the scan row, its snapshot rows, the
//! indexes and the process events computed against the newest stored scan are committed
//! together or not at all. Retention ([`Store::enforce_retention`]) deletes old scans in small
//! transactions, so that an ingest never waits for a whole backlog. This module must never
//! panic on what it reads back: a value it does not understand is a [`StoreError`].
//!
//! # Tables, byte by byte
//!
//! Integers in keys are big-endian and fixed-width, so that redb's byte order (keys are
//! `[u8; N]` arrays compared with `memcmp`) is numeric order. Scan ids are positive and stored
//! as `u64`. An `i64` that must sort (`finished_at`, `start_time`) is stored *ordered*: its two's
//! complement with the sign bit flipped, big-endian, so that `i64::MIN` is `00 … 00`, `0` is
//! `80 00 … 00` and `i64::MAX` is `ff … ff`.
//!
//! | table        | key bytes                                                             | value          |
//! |--------------|-----------------------------------------------------------------------|----------------|
//! | `meta`       | UTF-8 name                                                            | see below      |
//! | `scans`      | 0..8 scan id                                                          | `ScanSummary`  |
//! | `by_time`    | 0..8 ordered `finished_at`, 8..16 scan id                             | empty          |
//! | `snapshots`  | 0..8 scan id, 8..12 pid                                               | snapshot       |
//! | `by_pid`     | 0..4 pid, 4 start tag, 5..13 ordered start time, 13..21 first scan id | last scan id   |
//! | `ended`      | 0..8 last scan id, 8..29 the run's `by_pid` key                       | empty          |
//! | `events`     | 0..8 scan id, 8..12 sequence number within the scan                   | `ProcessEvent` |
//! | `rule_state` | UTF-8 rule id                                                         | `RuleState`    |
//! | `alerts`     | UTF-8 alert id                                                        | `StoredAlert`  |
//! | `outbox`     | 0..64 sink name, zero-padded, 64..72 delivery sequence number         | delivery       |
//! | `outbox_sinks` | UTF-8 sink name                                                     | sink meta      |
//! | `outbox_dead`  | as `outbox`                                                         | dead letter    |
//!
//! `by_pid` indexes *runs*, not rows: a run is one process (pid and start time) seen in
//! consecutive scans, from its first scan to its last. In the key, the start tag is `00` when
//! the start time is unknown (`None`; bytes 5..13 are then zero) and `01` when it is known, so
//! that an unknown start time sorts before every known one and never collides with one; all
//! the runs of one process are one contiguous key range, oldest first. The value is the run's
//! last scan id, 8 bytes big-endian, or `ff ff ff ff ff ff ff ff` while the process is in the
//! newest scan. A run is written when its start event is (or with the first scan ever) and
//! closed when its exit event is, at which point its key also goes into `ended`, ordered by
//! last scan, so that retention finds the runs whose every scan it deleted without reading
//! `by_pid` whole. A process's history is then its runs' scan ranges, looked up in `snapshots`.
//!
//! One row per process per scan, which a (pid, start time, scan) key would need, costs 10,000
//! inserts into a large table for every 10,000-process scan and as many deletes in retention,
//! scattered over every page of that table; runs cost two writes per process start or exit.
//! Measured with `benches/store.rs` (10,000 records a scan, 100 scans kept, ingest then
//! retention): 32,000 records/s with a row per scan, about 300,000 with runs.
//!
//! The three `outbox` tables hold the persistent alert outbox; their keys, values and the
//! states of a delivery are specified in the module documentation of `outbox.rs`
//! ([`Writer::enqueue`] and the `Store::outbox_*` methods).
//!
//! `meta` holds one entry, `schema_version`: 4 bytes, a big-endian `u32`, currently 2. It
//! versions the set of tables and their key layouts. Version 1 had every table above but the
//! three `outbox` tables; a version 1 store is upgraded when opened, in one write transaction
//! that creates those tables and writes version 2 (nothing else changes, so no value is
//! rewritten). A store with any other version (a newer agent's) is refused
//! ([`StoreError::SchemaVersion`]) rather than misread, and it is read without opening the file
//! for writing, so that such a store stays byte for byte as it was. An upgraded store is
//! refused in turn by an agent that reads only version 1: a downgrade must not silently
//! ignore undelivered alerts. What happens to a damaged
//! file is in `open.rs`: it is moved aside, never deleted.
//!
//! Every other value starts with one byte, the value format version (currently 1); a value
//! with another first byte is [`StoreError::UnknownValueFormat`]. In format 1:
//!
//! | table        | bytes after the format byte                                              |
//! |--------------|--------------------------------------------------------------------------|
//! | `scans`      | postcard of `ScanSummary`                                                |
//! | `snapshots`  | postcard of the pair `(record.start_time, record)`: the start time first |
//! | `events`     | postcard of `ProcessEvent`                                               |
//! | `rule_state` | postcard of [`RuleState`]                                                |
//! | `alerts`     | JSON (UTF-8) of [`StoredAlert`]                                          |
//! | `outbox*`    | postcard, see `outbox.rs`                                                |
//!
//! A snapshot repeats the start time in front of the record so that ingest and retention can
//! read a process's identity (pid from the key, start time from the value's first bytes)
//! without decoding the whole record. Alerts are JSON because their rows hold
//! `serde_json::Value`s, which postcard cannot decode; there are few of them.
//!
//! Postcard is serde's field order with variable-length integers (`Option` is a `00`/`01` tag,
//! strings a length then UTF-8), so adding, removing or reordering a field of a stored type
//! changes the value format: such a change must bump `codec::VALUE_FORMAT` and keep a decoder
//! for the old format.

mod codec;
mod exec;
mod ingest;
mod open;
mod outbox;
mod read;
mod retention;
mod state;
#[cfg(test)]
mod tests;

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};

use codec::{ValueError, name};

pub use open::{Recovered, damaged_name};
pub use outbox::{
    DeadLetter, DropReason, Dropped, MAX_REASON_BYTES, OutboxLimits, Pending, SinkOutbox,
    is_valid_sink_name,
};
pub use retention::{Retention, RetentionReport};
pub use state::{RuleState, RuleStatus, StoredAlert, Writer};

/// What [`Store::ingest`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// The id the store gave the scan.
    pub scan_id: i64,
    /// Snapshot rows written.
    pub records: u64,
    /// Start events written.
    pub started: u64,
    /// Exit events written.
    pub exited: u64,
}

/// At most a given number of items, and whether more exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited<T> {
    /// The items, in the order the method documents.
    pub items: Vec<T>,
    /// Whether items were left out because of the limit.
    pub truncated: bool,
}

/// Everything that can go wrong with the store. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file cannot be created, opened or given its permissions.
    #[error("cannot {operation} event store {}: {source}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// What was being done, for example `create`.
        operation: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The file is damaged: redb panicked while opening it (its message is the reason).
    /// redb's own `Corrupted` errors stay [`StoreError::Open`] or [`StoreError::Database`];
    /// [`StoreError::is_damage`] says which failures are damage.
    #[error("event store {} is damaged: {reason}", path.display())]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Another process holds the file's lock (redb lets one process at a time open it).
    #[error("event store {} is in use by another process", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// redb refused to open the file (not a redb file, damaged, written by an older redb).
    #[error("cannot open event store {}: {source}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// redb's reason.
        source: redb::DatabaseError,
    },
    /// A transaction, table or commit failed.
    #[error("event store {}: {operation}: {source}", path.display())]
    Database {
        /// The store file.
        path: PathBuf,
        /// What was being done, for example `ingest`.
        operation: &'static str,
        /// redb's reason (boxed: redb's error is large, and this one travels up every call).
        source: Box<redb::Error>,
    },
    /// The file holds tables but no schema version: it is not an event store.
    #[error("{} is not an event store: it has tables but no schema version", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The file was written with another table layout.
    #[error(
        "event store {} has schema version {found}, this program reads version {expected}",
        path.display()
    )]
    SchemaVersion {
        /// The store file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this program reads and writes.
        expected: u32,
    },
    /// A value starts with a format version this program does not know.
    #[error(
        "event store {}: a value in table {table} has format version {version}, expected {}",
        path.display(),
        codec::VALUE_FORMAT
    )]
    UnknownValueFormat {
        /// The store file.
        path: PathBuf,
        /// The table holding the value.
        table: &'static str,
        /// Its first byte.
        version: u8,
    },
    /// A value or key is damaged: it does not decode, or an index names a missing row.
    #[error("event store {}: corrupt entry in table {table}: {reason}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The table holding the entry.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("event store {}: cannot encode a value for table {table}: {reason}", path.display())]
    Encode {
        /// The store file.
        path: PathBuf,
        /// The table the value was for.
        table: &'static str,
        /// The encoder's reason.
        reason: String,
    },
    /// A scan holds two records with the same pid, which one listing of processes cannot
    /// produce; the scan is refused as a whole.
    #[error("event store {}: scan refused: pid {pid} appears twice", path.display())]
    DuplicatePid {
        /// The store file.
        path: PathBuf,
        /// The repeated pid.
        pid: u32,
    },
    /// An outbox call named a sink that is not 1 to 64 characters of `a-z0-9_-`.
    #[error("event store {}: {name} is not a sink name: {reason}", path.display())]
    InvalidSinkName {
        /// The store file.
        path: PathBuf,
        /// The name, quoted, escaped and cut for a message.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An outbox call that acts on the head of a sink's queue named another delivery (or
    /// sequence numbers out of order); nothing was changed.
    #[error(
        "event store {}: outbox of sink {sink}: delivery {seq} is not the next at the head ({})",
        path.display(),
        match head { Some(head) => format!("the head is {head}"), None => "nothing is pending".to_owned() }
    )]
    NotOutboxHead {
        /// The store file.
        path: PathBuf,
        /// The sink.
        sink: String,
        /// The sequence number named.
        seq: u64,
        /// The sequence number of the sink's head, if any delivery is pending.
        head: Option<u64>,
    },
}

/// The tables each schema version added, for creating and upgrading a store.
#[derive(Debug, Clone, Copy)]
enum TableSet {
    /// The tables of schema version 1.
    V1,
    /// The outbox tables, added by version 2.
    V2,
}

/// The event store. See the module documentation for what it holds and how.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens or creates `path` (file mode 0600, parent must exist), creating the tables.
    /// `cache_bytes`: redb's cache size (the agent passes 16 MiB; redb's default is far larger).
    ///
    /// An existing file's permissions are reset to 0600 too: snapshots hold command lines,
    /// which may carry secrets.
    ///
    /// Opening reads what the agent reads at start-up (schema version, newest scan, rule
    /// states, the outbox's per-sink state), so that damage there is found now. A store of
    /// schema version 1 is upgraded (see the module documentation). It never panics: a panic inside redb is
    /// [`StoreError::Damaged`], a lock held by another process [`StoreError::InUse`];
    /// [`StoreError::is_damage`] tells damage from the other failures, and
    /// [`Store::open_or_recover`] acts on it.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        open::guarded(path, || {
            open::check_version_read_only(path)?;
            let store = Self::open_unguarded(path, cache_bytes)?;
            store.latest_scan()?;
            store.rule_states()?;
            store.outbox_status(0)?;
            Ok(store)
        })
    }

    fn open_unguarded(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        let io = |operation| {
            move |source| StoreError::Io {
                path: path.to_owned(),
                operation,
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("open or create"))?;
        // The mode above applies only when the file is created.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(io("set permissions of"))?;
        let open_error = |source| {
            if open::in_use(&source) {
                StoreError::InUse {
                    path: path.to_owned(),
                }
            } else {
                StoreError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        };
        let backend = redb::backends::FileBackend::new(file).map_err(open_error)?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
            .map_err(open_error)?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Reads the schema version, or writes it and creates every table in a new file.
    fn check_schema(&self) -> Result<(), StoreError> {
        const OPERATION: &str = "check schema version";
        let txn = self.db.begin_write().map_err(self.db_err(OPERATION))?;
        let has_tables = txn
            .list_tables()
            .map_err(self.db_err(OPERATION))?
            .next()
            .is_some();
        let found = if has_tables {
            let meta = txn
                .open_table(codec::META)
                .map_err(self.db_err(OPERATION))?;
            let value = meta
                .get(codec::SCHEMA_KEY)
                .map_err(self.db_err(OPERATION))?
                .map(|guard| guard.value().to_vec());
            Some(value.ok_or_else(|| StoreError::NotAStore {
                path: self.path.clone(),
            })?)
        } else {
            None
        };
        match found {
            Some(bytes) => {
                let bytes: [u8; 4] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            path: self.path.clone(),
                            table: name::META,
                            reason: format!("schema version is {} bytes long, not 4", bytes.len()),
                        })?;
                let found = u32::from_be_bytes(bytes);
                if found == codec::SCHEMA_VERSION {
                    return txn.abort().map_err(self.db_err(OPERATION));
                }
                if !codec::schema_readable(found) {
                    return Err(StoreError::SchemaVersion {
                        path: self.path.clone(),
                        found,
                        expected: codec::SCHEMA_VERSION,
                    });
                }
                // An older store: version 1 lacks only the outbox tables (see the module
                // documentation). Create them and write the new version together.
                self.create_tables(&txn, &[TableSet::V2])?;
                txn.commit().map_err(self.db_err(OPERATION))
            }
            None => {
                self.create_tables(&txn, &[TableSet::V1, TableSet::V2])?;
                txn.commit().map_err(self.db_err(OPERATION))
            }
        }
    }

    /// Creates the tables each of `sets` adds (creating a table that exists is a no-op) and
    /// writes the current schema version. Creating every table up front lets the readers
    /// open them without handling `TableDoesNotExist`.
    fn create_tables(
        &self,
        txn: &redb::WriteTransaction,
        sets: &[TableSet],
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "create tables";
        let mut meta = txn
            .open_table(codec::META)
            .map_err(self.db_err(OPERATION))?;
        meta.insert(
            codec::SCHEMA_KEY,
            codec::SCHEMA_VERSION.to_be_bytes().as_slice(),
        )
        .map_err(self.db_err(OPERATION))?;
        let err = self.db_err(OPERATION);
        for set in sets {
            match set {
                TableSet::V1 => {
                    txn.open_table(codec::SCANS).map_err(&err)?;
                    txn.open_table(codec::BY_TIME).map_err(&err)?;
                    txn.open_table(codec::SNAPSHOTS).map_err(&err)?;
                    txn.open_table(codec::BY_PID).map_err(&err)?;
                    txn.open_table(codec::EVENTS).map_err(&err)?;
                    txn.open_table(codec::ENDED).map_err(&err)?;
                    txn.open_table(codec::RULE_STATE).map_err(&err)?;
                    txn.open_table(codec::ALERTS).map_err(&err)?;
                }
                TableSet::V2 => {
                    txn.open_table(codec::OUTBOX).map_err(&err)?;
                    txn.open_table(codec::OUTBOX_SINKS).map_err(&err)?;
                    txn.open_table(codec::OUTBOX_DEAD).map_err(&err)?;
                }
            }
        }
        Ok(())
    }

    /// Maps a redb error of `operation` to a [`StoreError::Database`].
    fn db_err<E: Into<redb::Error>>(
        &self,
        operation: &'static str,
    ) -> impl Fn(E) -> StoreError + '_ {
        move |source| StoreError::Database {
            path: self.path.clone(),
            operation,
            source: Box::new(source.into()),
        }
    }

    /// Maps a value that does not decode to the right [`StoreError`].
    fn value_err(&self, table: &'static str) -> impl Fn(ValueError) -> StoreError + '_ {
        move |err| match err {
            ValueError::UnknownFormat(version) => StoreError::UnknownValueFormat {
                path: self.path.clone(),
                table,
                version,
            },
            ValueError::Malformed(reason) => self.corrupt(table, reason),
        }
    }

    fn corrupt(&self, table: &'static str, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table,
            reason,
        }
    }

    fn encode_err(&self, table: &'static str) -> impl Fn(String) -> StoreError + '_ {
        move |reason| StoreError::Encode {
            path: self.path.clone(),
            table,
            reason,
        }
    }

    /// Opens a read transaction.
    fn read(&self, operation: &'static str) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(self.db_err(operation))
    }
}
