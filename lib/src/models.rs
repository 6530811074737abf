//! Canonical data types shared by every binary.
//!
//! A [`ProcessRecord`] carries exactly the columns of the `processes` table in the SQL schema
//! (INTERFACE.md), with the same names and units, so that a record can be turned into a row
//! without renaming anything. Every value the collector may fail to read is an `Option`: `None`
//! means *unknown* (the process vanished, belongs to another user, or the platform cannot tell),
//! never zero.

use serde::{Deserialize, Serialize};

/// One process as seen by one scan.
///
/// Units: sizes and byte counters in bytes, CPU times in milliseconds, `start_time` in seconds
/// since the Unix epoch, `collected_at` in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Process id.
    pub pid: u32,
    /// Parent process id (`0` for processes started by the kernel, such as `init`).
    pub parent: Option<u32>,
    /// Short name (Linux: `comm`, at most 15 bytes).
    pub name: Option<String>,
    /// Executable path, without the kernel's ` (deleted)` suffix (see `on_disk`).
    pub path: Option<String>,
    /// Full command line, arguments separated by single spaces.
    pub cmdline: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Root directory (differs from `/` inside a chroot or container).
    pub root: Option<String>,
    /// State letter as `ps` prints it (`R`, `S`, `D`, `Z`, `T`, `t`, `I`, `X`).
    pub state: Option<String>,
    /// Real user id.
    pub uid: Option<u32>,
    /// Real group id.
    pub gid: Option<u32>,
    /// Effective user id.
    pub euid: Option<u32>,
    /// Effective group id.
    pub egid: Option<u32>,
    /// Saved set-user id.
    pub suid: Option<u32>,
    /// Saved set-group id.
    pub sgid: Option<u32>,
    /// Whether the executable is on disk: see [`OnDisk`].
    pub on_disk: OnDisk,
    /// Resident set size in bytes.
    pub resident_size: Option<u64>,
    /// Virtual memory size in bytes.
    pub total_size: Option<u64>,
    /// CPU time spent in user mode, in milliseconds.
    pub user_time: Option<u64>,
    /// CPU time spent in kernel mode, in milliseconds.
    pub system_time: Option<u64>,
    /// Bytes the process caused to be read from storage.
    pub disk_bytes_read: Option<u64>,
    /// Bytes the process caused to be written to storage.
    pub disk_bytes_written: Option<u64>,
    /// Start time in seconds since the Unix epoch.
    pub start_time: Option<i64>,
    /// Process group id.
    pub pgroup: Option<u32>,
    /// Number of threads.
    pub threads: Option<u32>,
    /// Nice value (-20 to 19).
    pub nice: Option<i32>,
    /// Control group path (cgroup v2 unified path, else the v1 `name=systemd` hierarchy).
    pub cgroup_path: Option<String>,
    /// SHA-256 of the executable as lowercase hex; `None` when it could not be read or hashed.
    pub exe_sha256: Option<String>,
    /// Device number of the executable (as `stat` reports `st_dev`).
    pub exe_dev: Option<u64>,
    /// Inode number of the executable.
    pub exe_inode: Option<u64>,
    /// CPU use in percent of one core since the previous scan; `None` on a process's first scan.
    pub cpu_percent: Option<f64>,
    /// Scan that produced this record.
    pub scan_id: i64,
    /// When the record was collected, in milliseconds since the Unix epoch.
    pub collected_at: i64,
}

/// The `on_disk` column: whether the file a process was started from still exists.
///
/// Serialised as the integer the SQL schema uses, in the manner of osquery: `1` the
/// executable exists at its path, `0` it was deleted or replaced, `-1` unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i8", try_from = "i8")]
pub enum OnDisk {
    /// The path names the very file the process runs (same device and inode).
    Present,
    /// The file was deleted, or its path now names another file.
    Gone,
    /// The executable could not be examined (no permission, kernel thread, vanished process).
    #[default]
    Unknown,
}

impl OnDisk {
    /// The SQL value of this state.
    pub fn as_i8(self) -> i8 {
        match self {
            Self::Present => 1,
            Self::Gone => 0,
            Self::Unknown => -1,
        }
    }
}

impl From<OnDisk> for i8 {
    fn from(value: OnDisk) -> Self {
        value.as_i8()
    }
}

impl TryFrom<i8> for OnDisk {
    type Error = String;

    fn try_from(value: i8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Self::Present),
            0 => Ok(Self::Gone),
            -1 => Ok(Self::Unknown),
            other => Err(format!("on_disk must be 1, 0 or -1, not {other}")),
        }
    }
}

/// Totals of one scan, as the `scans` table records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanSummary {
    /// Scan id.
    pub scan_id: i64,
    /// Start of the scan, in milliseconds since the Unix epoch.
    pub started_at: i64,
    /// End of the scan, in milliseconds since the Unix epoch.
    pub finished_at: i64,
    /// Number of process records.
    pub process_count: u64,
    /// Number of processes or fields that could not be read (see [`ScanErrors`]).
    pub error_count: u64,
}

/// What went wrong during a scan, counted by kind. A scan never fails because one process
/// could not be read; it counts the problem here and leaves the fields unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanErrors {
    /// Processes that exited between being listed and being read.
    pub vanished: u64,
    /// Reads refused by the kernel (another user's process without the capability).
    pub permission_denied: u64,
    /// `/proc` files whose contents did not parse.
    pub malformed: u64,
    /// Other I/O errors while reading a process.
    pub unreadable: u64,
    /// Executables larger than `collection.hash_max_bytes`, left unhashed.
    pub hash_too_large: u64,
    /// Executables that changed while they were read; their hash is not trusted.
    pub hash_changed_during_read: u64,
    /// Executables not hashed because the scan's hashing time budget ran out.
    pub hash_budget_exhausted: u64,
    /// Executables that could not be opened or read for hashing.
    pub hash_unreadable: u64,
}

impl ScanErrors {
    /// Sum of every kind.
    pub fn total(&self) -> u64 {
        self.vanished
            + self.permission_denied
            + self.malformed
            + self.unreadable
            + self.hash_too_large
            + self.hash_changed_during_read
            + self.hash_budget_exhausted
            + self.hash_unreadable
    }
}

impl std::ops::AddAssign<&ScanErrors> for ScanErrors {
    fn add_assign(&mut self, more: &ScanErrors) {
        self.vanished += more.vanished;
        self.permission_denied += more.permission_denied;
        self.malformed += more.malformed;
        self.unreadable += more.unreadable;
        self.hash_too_large += more.hash_too_large;
        self.hash_changed_during_read += more.hash_changed_during_read;
        self.hash_budget_exhausted += more.hash_budget_exhausted;
        self.hash_unreadable += more.hash_unreadable;
    }
}

/// What a process event reports: a process seen for the first time, or no longer seen (both
/// from the difference of two scans), or a program the kernel reported executed.
///
/// New variants are only ever added at the end: the store keeps events as postcard, which
/// numbers the variants in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// In this scan, not in the previous one.
    Start,
    /// In the previous scan, not in this one.
    Exit,
    /// The kernel reported an `exec` and procmond read the process right after it.
    Exec,
    /// The kernel reported an `exec`, but the process exited before procmond could read it:
    /// the record holds only what the kernel gave (pid, parent).
    ExecLost,
}

impl EventKind {
    /// The SQL value of the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Exit => "exit",
            Self::Exec | Self::ExecLost => "exec",
        }
    }

    /// The SQL value of the `lost` column: 1 for an exec whose process exited before it was
    /// read, 0 for another exec, `None` (NULL) for events of scans.
    pub fn lost(self) -> Option<bool> {
        match self {
            Self::Start | Self::Exit => None,
            Self::Exec => Some(false),
            Self::ExecLost => Some(true),
        }
    }
}

/// A row of the `process_events` table: the difference between two consecutive scans, or an
/// exec the kernel reported (then `record.scan_id` is the newest scan when it was stored).
///
/// A process is the same process in both scans when its pid and its start time are equal (pids
/// are reused; start times tell the reuse apart). The record is the process as last seen: from
/// the newer scan for a start, from the older one for an exit. `record.scan_id` is the scan in
/// which the event was observed (the newer one) in both cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// Start or exit.
    pub event: EventKind,
    /// The process.
    pub record: ProcessRecord,
    /// When the event was observed (the newer scan's end), in milliseconds since the epoch.
    pub observed_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_disk_round_trips_through_its_sql_integer() {
        for (state, value) in [
            (OnDisk::Present, 1),
            (OnDisk::Gone, 0),
            (OnDisk::Unknown, -1),
        ] {
            assert_eq!(state.as_i8(), value);
            assert_eq!(serde_json::to_string(&state).unwrap(), value.to_string());
            assert_eq!(
                serde_json::from_str::<OnDisk>(&value.to_string()).unwrap(),
                state
            );
        }
        let err = serde_json::from_str::<OnDisk>("2").unwrap_err();
        assert!(
            err.to_string().contains("on_disk must be 1, 0 or -1"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_serialise_as_null_not_zero() {
        let record = ProcessRecord {
            pid: 42,
            ..ProcessRecord::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["pid"], 42);
        assert!(json["uid"].is_null());
        assert!(json["exe_sha256"].is_null());
        assert_eq!(json["on_disk"], -1);
    }

    #[test]
    fn scan_errors_total_adds_every_kind() {
        let errors = ScanErrors {
            vanished: 1,
            permission_denied: 2,
            malformed: 3,
            unreadable: 8,
            hash_too_large: 4,
            hash_changed_during_read: 5,
            hash_budget_exhausted: 6,
            hash_unreadable: 7,
        };
        assert_eq!(errors.total(), 36);
        let mut sum = errors.clone();
        sum += &errors;
        assert_eq!(sum.total(), 72);
        assert_eq!(sum.hash_unreadable, 14);
    }
}
