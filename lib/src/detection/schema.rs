//! The SQL schema rules and queries see (INTERFACE.md, "SQL schema"), as SQLite DDL.
//!
//! Column names follow osquery's `processes` table. The tables live in an in-memory SQLite
//! database that the engine fills for each evaluation (see `engine`); nothing here touches disk.

/// A column type, as SQLite declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Integer,
    /// UTF-8 text.
    Text,
    /// 64-bit float.
    Real,
}

impl ColumnType {
    /// The declared type.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Integer => "INTEGER",
            Self::Text => "TEXT",
            Self::Real => "REAL",
        }
    }
}

use ColumnType::{Integer, Real, Text};

/// The process columns, in the order of `ProcessRecord`'s fields.
pub const PROCESS_COLUMNS: &[(&str, ColumnType)] = &[
    ("pid", Integer),
    ("parent", Integer),
    ("name", Text),
    ("path", Text),
    ("cmdline", Text),
    ("cwd", Text),
    ("root", Text),
    ("state", Text),
    ("uid", Integer),
    ("gid", Integer),
    ("euid", Integer),
    ("egid", Integer),
    ("suid", Integer),
    ("sgid", Integer),
    ("on_disk", Integer),
    ("resident_size", Integer),
    ("total_size", Integer),
    ("user_time", Integer),
    ("system_time", Integer),
    ("disk_bytes_read", Integer),
    ("disk_bytes_written", Integer),
    ("start_time", Integer),
    ("pgroup", Integer),
    ("threads", Integer),
    ("nice", Integer),
    ("cgroup_path", Text),
    ("exe_sha256", Text),
    ("exe_dev", Integer),
    ("exe_inode", Integer),
    ("cpu_percent", Real),
    ("scan_id", Integer),
    ("collected_at", Integer),
];

/// The `scans` columns.
pub const SCAN_COLUMNS: &[(&str, ColumnType)] = &[
    ("scan_id", Integer),
    ("started_at", Integer),
    ("finished_at", Integer),
    ("process_count", Integer),
    ("error_count", Integer),
];

/// The `alerts` columns: the alert's JSON fields, `mitre` and `rows` as JSON text, plus
/// `acked` (1 once an operator acknowledged it).
pub const ALERT_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", Text),
    ("rule_id", Text),
    ("rule_name", Text),
    ("severity", Text),
    ("mitre", Text),
    ("host", Text),
    ("site", Text),
    ("scan_id", Integer),
    ("detected_at", Text),
    ("dedup_key", Text),
    ("suppressed", Integer),
    ("summary", Text),
    ("rows", Text),
    ("acked", Integer),
];

/// The `users` columns (as osquery's `users`): account names for the `User` Sigma field.
pub const USER_COLUMNS: &[(&str, ColumnType)] = &[("uid", Integer), ("username", Text)];

/// The columns of the `process_creation` view, with Sigma's field names.
///
/// `LogonId` (auditd's login uid) is not collected and is always NULL, so that Sigma rules
/// naming it run and match nothing rather than fail.
pub const PROCESS_CREATION_COLUMNS: &[&str] = &[
    "ProcessId",
    "Image",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonId",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
    "scan_id",
];

/// A table rules and queries may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The newest scan (or the scan being evaluated), one row per process.
    Processes,
    /// Every retained scan's processes.
    ProcessSnapshots,
    /// Starts and exits between consecutive scans.
    ProcessEvents,
    /// One row per retained scan.
    Scans,
    /// Alerts raised so far.
    Alerts,
    /// Account names.
    Users,
    /// The view over `processes` with Sigma's field names.
    ProcessCreation,
}

impl Table {
    /// Every table and view, in the order they are created.
    pub const ALL: [Table; 7] = [
        Self::Processes,
        Self::ProcessSnapshots,
        Self::ProcessEvents,
        Self::Scans,
        Self::Alerts,
        Self::Users,
        Self::ProcessCreation,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Processes => "processes",
            Self::ProcessSnapshots => "process_snapshots",
            Self::ProcessEvents => "process_events",
            Self::Scans => "scans",
            Self::Alerts => "alerts",
            Self::Users => "users",
            Self::ProcessCreation => "process_creation",
        }
    }

    /// The table of this name (ASCII case-insensitive, as SQLite's names are).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|table| table.name().eq_ignore_ascii_case(name))
    }

    /// The column names a row of this table may set (in fixtures) or a query may read.
    pub fn columns(self) -> Vec<&'static str> {
        let typed = |columns: &[(&'static str, ColumnType)]| -> Vec<&'static str> {
            columns.iter().map(|(name, _)| *name).collect()
        };
        match self {
            Self::Processes | Self::ProcessSnapshots => typed(PROCESS_COLUMNS),
            Self::ProcessEvents => {
                let mut columns = vec!["event"];
                columns.extend(typed(PROCESS_COLUMNS));
                columns.extend(["observed_at", "lost"]);
                columns
            }
            Self::Scans => typed(SCAN_COLUMNS),
            Self::Alerts => typed(ALERT_COLUMNS),
            Self::Users => typed(USER_COLUMNS),
            Self::ProcessCreation => PROCESS_CREATION_COLUMNS.to_vec(),
        }
    }

    /// The type of `column` in this table, if it is one of its columns.
    pub fn column_type(self, column: &str) -> Option<ColumnType> {
        let find = |columns: &[(&'static str, ColumnType)]| {
            columns
                .iter()
                .find(|(name, _)| *name == column)
                .map(|(_, kind)| *kind)
        };
        match self {
            Self::Processes | Self::ProcessSnapshots => find(PROCESS_COLUMNS),
            Self::ProcessEvents => match column {
                "event" => Some(Text),
                "observed_at" | "lost" => Some(Integer),
                _ => find(PROCESS_COLUMNS),
            },
            Self::Scans => find(SCAN_COLUMNS),
            Self::Alerts => find(ALERT_COLUMNS),
            Self::Users => find(USER_COLUMNS),
            // The view is filled from `processes`, never directly.
            Self::ProcessCreation => None,
        }
    }

    /// Whether rows can be inserted (tables, not views).
    pub fn is_table(self) -> bool {
        self != Self::ProcessCreation
    }
}

fn column_list(columns: &[(&str, ColumnType)]) -> String {
    columns
        .iter()
        .map(|(name, kind)| format!("{name} {}", kind.sql()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table only the `process_creation` view reads: on an evaluation of exec events, where
/// `processes` holds only the processes that just executed, it gives their parents' image and
/// command line (from the newest scan or an earlier exec). Empty on scans. Queries cannot name
/// it (it is not a [`Table`]); the authorizer lets the view read it.
pub const EXEC_PARENTS: &str = "exec_parents";

/// The DDL that creates every table, index and view, in one batch.
pub fn ddl() -> String {
    let process = column_list(PROCESS_COLUMNS);
    // In `processes` the pid is unique, and the rowid alias makes parent look-ups (the
    // process_creation view, the rules' self-joins) index look-ups.
    let processes = process.replacen("pid INTEGER", "pid INTEGER PRIMARY KEY", 1);
    format!(
        "CREATE TABLE processes ({processes});\n\
         CREATE TABLE process_snapshots ({process});\n\
         CREATE INDEX process_snapshots_by_scan ON process_snapshots (scan_id, pid);\n\
         CREATE TABLE process_events (event TEXT, {process}, observed_at INTEGER, \
            lost INTEGER);\n\
         CREATE TABLE {EXEC_PARENTS} (pid INTEGER PRIMARY KEY, path TEXT, cmdline TEXT);\n\
         CREATE TABLE scans ({scans});\n\
         CREATE TABLE alerts ({alerts});\n\
         CREATE TABLE users ({users});\n\
         CREATE VIEW process_creation AS SELECT \
            p.pid AS ProcessId, p.path AS Image, p.cmdline AS CommandLine, \
            p.cwd AS CurrentDirectory, \
            COALESCE((SELECT u.username FROM users u WHERE u.uid = p.uid), \
                     CAST(p.uid AS TEXT)) AS User, \
            NULL AS LogonId, p.parent AS ParentProcessId, \
            COALESCE(pp.path, xp.path) AS ParentImage, \
            COALESCE(pp.cmdline, xp.cmdline) AS ParentCommandLine, p.scan_id AS scan_id \
          FROM processes p LEFT JOIN processes pp ON pp.pid = p.parent \
            LEFT JOIN {EXEC_PARENTS} xp ON xp.pid = p.parent AND pp.pid IS NULL;\n",
        scans =
            column_list(SCAN_COLUMNS).replacen("scan_id INTEGER", "scan_id INTEGER PRIMARY KEY", 1),
        alerts = column_list(ALERT_COLUMNS),
        users = column_list(USER_COLUMNS).replacen("uid INTEGER", "uid INTEGER PRIMARY KEY", 1),
    )
}
