//! The second wall of the SQL sandbox: an in-memory SQLite database that can only be read.
//!
//! Why in-memory tables and not virtual tables over the store: rusqlite's `VTab` traits are
//! `unsafe trait`s, and our crates forbid `unsafe`; loading a 10,000-process scan into indexed
//! in-memory tables takes a few milliseconds (see `benches/detection.rs`), far below a scan's
//! interval, and lets SQLite's planner use real indexes for the rules' self-joins.
//!
//! What a query runs under:
//! - an **authorizer** that allows `SELECT`, reads of the schema's tables, recursive CTEs and
//!   the functions of [`precheck::ALLOWED_FUNCTIONS`], and denies everything else (writes,
//!   `ATTACH`, `PRAGMA`, DDL, `load_extension`, `sqlite_master`). It runs at prepare time, so a
//!   statement that would write is never compiled;
//! - a **time budget** enforced by a progress handler every [`PROGRESS_OPS`] virtual-machine
//!   instructions: over budget, SQLite interrupts the statement and it ends as
//!   [`QueryError::Stopped`];
//! - **limits**: result rows (`detection.max_rows`, the rest dropped and the result marked
//!   truncated), result bytes, string and blob length, LIKE pattern length, expression depth,
//!   compound selects, columns, attached databases (none), and SQLite's heap
//!   (`PRAGMA hard_heap_limit`, `detection.max_memory`; temporary tables stay in that heap);
//! - defensive connection flags: no triggers, no double-quoted string literals, untrusted
//!   schema, defensive mode.
//!
//! The tables are filled by [`Sandbox::load`] with the authorizer switched to trusted mode for
//! the duration; user SQL is never prepared in that mode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, params};
use serde::{Deserialize, Serialize};

use super::functions;
use super::precheck::{self, CheckedSql, Refusal};
use super::schema::{self, Table};
use crate::alert::Alert;
use crate::models::{ProcessEvent, ProcessRecord, ScanSummary};
use crate::text::{self, hex};

/// Virtual-machine instructions between two looks at the clock.
pub const PROGRESS_OPS: i32 = 1000;
/// Bytes of result a query may return, beside the row limit.
const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// The limits a query runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time one query may run.
    pub timeout: Duration,
    /// Rows one query may return.
    pub max_rows: usize,
    /// SQLite's heap limit, in bytes (process-wide: SQLite has one heap).
    pub max_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_rows: 10_000,
            max_memory: 128 * 1024 * 1024,
        }
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// A blob, shown as lowercase hex.
    #[serde(skip_deserializing)]
    Blob(Vec<u8>),
}

impl Cell {
    /// The value as JSON (blobs as lowercase hex).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Integer(value) => (*value).into(),
            Self::Real(value) => serde_json::Number::from_f64(*value)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Self::Text(value) => value.clone().into(),
            Self::Blob(bytes) => hex(bytes).into(),
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Blob(bytes) => bytes.len(),
            _ => 8,
        }
    }

    fn from_value_ref(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(value) => Self::Integer(value),
            ValueRef::Real(value) => Self::Real(value),
            ValueRef::Text(bytes) => Self::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Integer(value) => Value::Integer(*value),
            Self::Real(value) => Value::Real(*value),
            Self::Text(value) => Value::Text(value.clone()),
            Self::Blob(value) => Value::Blob(value.clone()),
        }
    }
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, at most the row limit.
    pub rows: Vec<Vec<Cell>>,
    /// Whether rows were dropped to stay within the limits.
    pub truncated: bool,
    /// Time spent preparing and running.
    pub elapsed: Duration,
}

/// Why a query produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The parser's checks refused it.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// SQLite's authorizer refused it while preparing.
    #[error("refused by the sandbox: {0}")]
    Denied(String),
    /// It ran over its time budget and was interrupted.
    #[error("stopped after {} ms: over the {} ms budget", .elapsed.as_millis(), .budget.as_millis())]
    Stopped {
        /// How long it ran.
        elapsed: Duration,
        /// The budget.
        budget: Duration,
    },
    /// SQLite failed it: out of memory, a value too big, a bad function argument, a missing
    /// column.
    #[error("failed: {0}")]
    Failed(String),
}

/// Why the sandbox could not be set up or loaded (a bug or an exhausted machine, never bad
/// user input).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// SQLite refused a set-up step.
    #[error("setting up the SQL sandbox ({step}): {source}")]
    Setup {
        /// Which step.
        step: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Rows could not be loaded.
    #[error("loading {table}: {reason}")]
    Load {
        /// Into which table.
        table: &'static str,
        /// Why.
        reason: String,
    },
}

/// Rows of fixtures or hand-made tables: column name to value.
pub type Row = BTreeMap<String, Cell>;

/// What to load into the tables; a table left `None` keeps its rows, `Some` replaces them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dataset<'a> {
    /// `processes`: the scan being evaluated.
    pub processes: Option<&'a [ProcessRecord]>,
    /// `process_snapshots`: retained scans.
    pub snapshots: Option<&'a [ProcessRecord]>,
    /// `process_events`.
    pub events: Option<&'a [ProcessEvent]>,
    /// The parents of exec'd processes that are not in `processes` themselves (see
    /// [`schema::EXEC_PARENTS`]): `Some(&[])` on a scan.
    pub parents: Option<&'a [ProcessRecord]>,
    /// `scans`.
    pub scans: Option<&'a [ScanSummary]>,
    /// `alerts`, each with whether it was acknowledged.
    pub alerts: Option<&'a [(Alert, bool)]>,
    /// `users`: uid and name.
    pub users: Option<&'a [(u32, String)]>,
}

/// An in-memory SQLite database holding the schema, ready to run checked queries.
pub struct Sandbox {
    conn: Connection,
    limits: Limits,
    /// While true, the authorizer allows everything: only [`Sandbox::load`] sets it.
    trusted: Arc<AtomicBool>,
    /// Deadline of the running query, in nanoseconds after `epoch`; `u64::MAX` for none.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Sandbox {
    /// A sandbox with empty tables.
    pub fn new(limits: Limits) -> Result<Self, SandboxError> {
        let setup = |step| move |source| SandboxError::Setup { step, source };
        let mut conn = Connection::open_in_memory().map_err(setup("opening"))?;
        for (flag, on) in [
            (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
            (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
            (DbConfig::SQLITE_DBCONFIG_DQS_DML, false),
            (DbConfig::SQLITE_DBCONFIG_DQS_DDL, false),
        ] {
            conn.set_db_config(flag, on).map_err(setup("flags"))?;
        }
        let sql_bytes = i32::try_from(precheck::MAX_SQL_BYTES).unwrap_or(i32::MAX);
        for (limit, value) in [
            (
                Limit::SQLITE_LIMIT_LENGTH,
                as_limit(functions::MAX_VALUE_BYTES),
            ),
            (Limit::SQLITE_LIMIT_SQL_LENGTH, sql_bytes),
            (Limit::SQLITE_LIMIT_COLUMN, 512),
            (Limit::SQLITE_LIMIT_EXPR_DEPTH, 200),
            (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 64),
            (Limit::SQLITE_LIMIT_FUNCTION_ARG, 32),
            (Limit::SQLITE_LIMIT_ATTACHED, 0),
            (
                Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                as_limit(functions::MAX_LIKE_PATTERN_BYTES),
            ),
            (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 1),
            (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
        ] {
            conn.set_limit(limit, value).map_err(setup("limits"))?;
        }
        // The heap limit is process-wide (SQLite has one allocator); temporary tables and
        // sorters stay in memory so that the limit covers them and nothing spills to disk.
        conn.execute_batch(&format!(
            "PRAGMA hard_heap_limit = {}; PRAGMA temp_store = MEMORY;",
            limits.max_memory
        ))
        .map_err(setup("pragmas"))?;
        conn.execute_batch(&schema::ddl())
            .map_err(setup("schema"))?;
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let epoch = Instant::now();
        functions::register(
            &conn,
            functions::Deadline {
                at: Arc::clone(&deadline),
                epoch,
            },
        )
        .map_err(setup("functions"))?;

        let trusted = Arc::new(AtomicBool::new(false));
        let trusted_in_hook = Arc::clone(&trusted);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if trusted_in_hook.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            authorize(&ctx)
        }))
        .map_err(setup("authorizer"))?;

        let deadline_in_hook = Arc::clone(&deadline);
        conn.progress_handler(
            PROGRESS_OPS,
            Some(move || {
                let deadline = deadline_in_hook.load(Ordering::Relaxed);
                deadline != u64::MAX && nanos_since(epoch) > deadline
            }),
        )
        .map_err(setup("progress handler"))?;
        Ok(Self {
            conn,
            limits,
            trusted,
            deadline,
            epoch,
        })
    }

    /// The limits queries run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the rows of every table `data` names.
    pub fn load(&mut self, data: &Dataset<'_>) -> Result<(), SandboxError> {
        let trusted = Trusted::new(&self.trusted);
        let tx = self
            .conn
            .transaction()
            .map_err(|err| load_error("(transaction)", &err))?;
        if let Some(records) = data.processes {
            insert_processes(&tx, "processes", records)?;
        }
        if let Some(records) = data.snapshots {
            insert_processes(&tx, "process_snapshots", records)?;
        }
        if let Some(events) = data.events {
            clear(&tx, "process_events")?;
            let sql = format!(
                "INSERT INTO process_events VALUES (?{})",
                ", ?".repeat(schema::PROCESS_COLUMNS.len() + 2)
            );
            let mut insert = tx
                .prepare(&sql)
                .map_err(|err| load_error("process_events", &err))?;
            let observed_at = schema::PROCESS_COLUMNS.len() + 2;
            for event in events {
                insert
                    .raw_bind_parameter(1, event.event.as_str())
                    .and_then(|()| bind_record(&mut insert, 2, &event.record))
                    .and_then(|()| insert.raw_bind_parameter(observed_at, event.observed_at))
                    .and_then(|()| insert.raw_bind_parameter(observed_at + 1, event.event.lost()))
                    .and_then(|()| insert.raw_execute())
                    .map_err(|err| load_error("process_events", &err))?;
            }
        }
        if let Some(parents) = data.parents {
            clear(&tx, schema::EXEC_PARENTS)?;
            let mut insert = tx
                .prepare(&format!(
                    "INSERT OR IGNORE INTO {} VALUES (?, ?, ?)",
                    schema::EXEC_PARENTS
                ))
                .map_err(|err| load_error(schema::EXEC_PARENTS, &err))?;
            for parent in parents {
                insert
                    .execute(params![parent.pid, parent.path, parent.cmdline])
                    .map_err(|err| load_error(schema::EXEC_PARENTS, &err))?;
            }
        }
        if let Some(scans) = data.scans {
            clear(&tx, "scans")?;
            let mut insert = tx
                .prepare("INSERT INTO scans VALUES (?, ?, ?, ?, ?)")
                .map_err(|err| load_error("scans", &err))?;
            for scan in scans {
                insert
                    .execute(params![
                        scan.scan_id,
                        scan.started_at,
                        scan.finished_at,
                        clamp(scan.process_count),
                        clamp(scan.error_count),
                    ])
                    .map_err(|err| load_error("scans", &err))?;
            }
        }
        if let Some(alerts) = data.alerts {
            clear(&tx, "alerts")?;
            let mut insert = tx
                .prepare("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .map_err(|err| load_error("alerts", &err))?;
            for (alert, acked) in alerts {
                let mitre = serde_json::to_string(&alert.mitre).unwrap_or_default();
                let rows = serde_json::to_string(&alert.rows).unwrap_or_default();
                insert
                    .execute(params![
                        alert.id.as_str(),
                        alert.rule_id,
                        alert.rule_name,
                        alert.severity.as_str(),
                        mitre,
                        alert.host,
                        alert.site,
                        alert.scan_id,
                        alert.detected_at,
                        alert.dedup_key,
                        clamp(alert.suppressed),
                        alert.summary,
                        rows,
                        acked,
                    ])
                    .map_err(|err| load_error("alerts", &err))?;
            }
        }
        if let Some(users) = data.users {
            clear(&tx, "users")?;
            // /etc/passwd may name a uid twice (root and toor); the first name wins, as
            // getpwuid's does.
            let mut insert = tx
                .prepare("INSERT OR IGNORE INTO users VALUES (?, ?)")
                .map_err(|err| load_error("users", &err))?;
            for (uid, name) in users {
                insert
                    .execute(params![uid, name])
                    .map_err(|err| load_error("users", &err))?;
            }
        }
        tx.commit().map_err(|err| load_error("(commit)", &err))?;
        drop(trusted);
        Ok(())
    }

    /// Replaces the rows of `table` with `rows` (fixtures): every key must be a column of the
    /// table; missing columns are NULL.
    pub fn load_rows(&mut self, table: Table, rows: &[Row]) -> Result<(), String> {
        if !table.is_table() {
            return Err(format!(
                "{} is a view; load processes instead",
                table.name()
            ));
        }
        let columns = table.columns();
        for row in rows {
            if let Some(unknown) = row.keys().find(|key| !columns.contains(&key.as_str())) {
                return Err(format!(
                    "{} has no column {}",
                    table.name(),
                    text::quoted(unknown)
                ));
            }
        }
        let _trusted = Trusted::new(&self.trusted);
        let tx = self.conn.transaction().map_err(|err| err.to_string())?;
        tx.execute(&format!("DELETE FROM {}", table.name()), [])
            .map_err(|err| err.to_string())?;
        let sql = format!(
            "INSERT INTO {} ({}) VALUES (?{})",
            table.name(),
            columns.join(", "),
            ", ?".repeat(columns.len() - 1)
        );
        let mut insert = tx.prepare(&sql).map_err(|err| err.to_string())?;
        for row in rows {
            let values: Vec<Value> = columns
                .iter()
                .map(|column| row.get(*column).map_or(Value::Null, Cell::to_value))
                .collect();
            insert
                .execute(rusqlite::params_from_iter(values))
                .map_err(|err| format!("{}: {err}", table.name()))?;
        }
        drop(insert);
        tx.commit().map_err(|err| err.to_string())
    }

    /// The column names `sql` would return, without running it.
    pub fn columns(&self, sql: &CheckedSql) -> Result<Vec<String>, QueryError> {
        let statement = self
            .conn
            .prepare(sql.sql())
            .map_err(|err| prepare_error(err, sql))?;
        Ok(statement.column_names().map(str::to_owned).collect())
    }

    /// Runs `sql` within the limits.
    pub fn run(&self, sql: &CheckedSql) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let budget = self.limits.timeout;
        let deadline = nanos_since(self.epoch)
            .saturating_add(u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX - 1))
            .min(u64::MAX - 1);
        self.deadline.store(deadline, Ordering::Relaxed);
        let result = self.run_inner(sql);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        let elapsed = started.elapsed();
        match result {
            Ok((columns, rows, truncated)) => Ok(QueryResult {
                columns,
                rows,
                truncated,
                elapsed,
            }),
            Err(err)
                if err.sqlite_error_code() == Some(ErrorCode::OperationInterrupted)
                    || err.to_string().contains(functions::OVER_BUDGET) =>
            {
                Err(QueryError::Stopped { elapsed, budget })
            }
            Err(err) => Err(prepare_error(err, sql)),
        }
    }

    #[allow(clippy::type_complexity, reason = "a private tuple of the three parts")]
    fn run_inner(&self, sql: &CheckedSql) -> rusqlite::Result<(Vec<String>, Vec<Vec<Cell>>, bool)> {
        let mut statement = self.conn.prepare(sql.sql())?;
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = statement.query([])?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        while let Some(row) = rows.next()? {
            if out.len() == self.limits.max_rows || bytes > MAX_RESULT_BYTES {
                truncated = true;
                break;
            }
            let mut cells = Vec::with_capacity(width);
            for index in 0..width {
                let cell = Cell::from_value_ref(row.get_ref(index)?);
                bytes += cell.size();
                cells.push(cell);
            }
            out.push(cells);
        }
        Ok((columns, out, truncated))
    }
}

/// Marks the authorizer trusted while alive.
struct Trusted<'a>(&'a AtomicBool);

impl<'a> Trusted<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Relaxed);
        Self(flag)
    }
}

impl Drop for Trusted<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// The authorizer's decision for user SQL (see the module doc).
fn authorize(ctx: &AuthContext<'_>) -> Authorization {
    let allowed = match ctx.action {
        AuthAction::Select | AuthAction::Recursive => true,
        // SQLite names no database for reads of CTEs and subqueries (and for a table read
        // without taking a column, as `count(*)` does); its internal tables are never readable.
        AuthAction::Read { table_name, .. } => {
            Table::from_name(table_name).is_some()
                || table_name == schema::EXEC_PARENTS
                || (ctx.database_name.is_none() && !table_name.starts_with("sqlite_"))
        }
        AuthAction::Function { function_name } => precheck::is_allowed_function(function_name),
        _ => false,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

fn prepare_error(err: rusqlite::Error, sql: &CheckedSql) -> QueryError {
    // SQLite quotes the whole statement in its message ("… in SELECT … at offset 18"); the
    // statement can be 70 KB long, and the caller knows it.
    let message = err.to_string().replace(&format!(" in {}", sql.sql()), "");
    let message = text::escape(&precheck::cut(&message)).into_owned();
    if is_denial(&err) {
        QueryError::Denied(message)
    } else {
        QueryError::Failed(message)
    }
}

/// Whether the authorizer refused `err`'s statement. A denied read is SQLITE_AUTH; a denied
/// function comes back as a plain SQLITE_ERROR naming the denial.
fn is_denial(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(ErrorCode::AuthorizationForStatementDenied)
        || err.to_string().starts_with("not authorized")
}

/// A byte limit as SQLite's `int` (ours are all far below `i32::MAX`).
fn as_limit(bytes: usize) -> i32 {
    i32::try_from(bytes).unwrap_or(i32::MAX)
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
}

/// SQLite integers are signed; counters past i64::MAX (never seen in practice) saturate.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn load_error(table: &'static str, err: &rusqlite::Error) -> SandboxError {
    SandboxError::Load {
        table,
        reason: err.to_string(),
    }
}

fn clear(tx: &rusqlite::Transaction<'_>, table: &'static str) -> Result<(), SandboxError> {
    tx.execute(&format!("DELETE FROM {table}"), [])
        .map(drop)
        .map_err(|err| load_error(table, &err))
}

fn insert_processes(
    tx: &rusqlite::Transaction<'_>,
    table: &'static str,
    records: &[ProcessRecord],
) -> Result<(), SandboxError> {
    clear(tx, table)?;
    // `processes` holds one scan, so a pid is unique there; a repeated pid (a hostile or
    // buggy collector) keeps its first record rather than failing the whole scan.
    let verb = if table == "processes" {
        "INSERT OR IGNORE"
    } else {
        "INSERT"
    };
    let sql = format!(
        "{verb} INTO {table} VALUES (?{})",
        ", ?".repeat(schema::PROCESS_COLUMNS.len() - 1)
    );
    let mut insert = tx.prepare(&sql).map_err(|err| load_error(table, &err))?;
    for record in records {
        bind_record(&mut insert, 1, record)
            .and_then(|()| insert.raw_execute())
            .map_err(|err| load_error(table, &err))?;
    }
    Ok(())
}

/// Binds `r`'s columns, in `schema::PROCESS_COLUMNS` order, from parameter `first` on. Binding
/// by reference avoids copying every string of a 10,000-process scan.
fn bind_record(
    statement: &mut rusqlite::Statement<'_>,
    first: usize,
    r: &ProcessRecord,
) -> rusqlite::Result<()> {
    let values: [&dyn rusqlite::ToSql; 32] = [
        &r.pid,
        &r.parent,
        &r.name,
        &r.path,
        &r.cmdline,
        &r.cwd,
        &r.root,
        &r.state,
        &r.uid,
        &r.gid,
        &r.euid,
        &r.egid,
        &r.suid,
        &r.sgid,
        &r.on_disk.as_i8(),
        &r.resident_size.map(clamp),
        &r.total_size.map(clamp),
        &r.user_time.map(clamp),
        &r.system_time.map(clamp),
        &r.disk_bytes_read.map(clamp),
        &r.disk_bytes_written.map(clamp),
        &r.start_time,
        &r.pgroup,
        &r.threads,
        &r.nice,
        &r.cgroup_path,
        &r.exe_sha256,
        &r.exe_dev.map(clamp),
        &r.exe_inode.map(clamp),
        &r.cpu_percent,
        &r.scan_id,
        &r.collected_at,
    ];
    for (offset, value) in values.into_iter().enumerate() {
        statement.raw_bind_parameter(first + offset, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
