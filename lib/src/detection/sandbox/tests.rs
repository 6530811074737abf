//! Tests of the SQL sandbox: loading, limits, the authorizer and column order.

use std::collections::BTreeSet;

use super::*;
use crate::detection::precheck::check;

fn sandbox() -> Sandbox {
    Sandbox::new(Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .unwrap()
}

fn record(pid: u32, parent: u32, name: &str, path: &str) -> ProcessRecord {
    ProcessRecord {
        pid,
        parent: Some(parent),
        name: Some(name.into()),
        path: Some(path.into()),
        cmdline: Some(format!("{path} --flag")),
        uid: Some(1000),
        scan_id: 7,
        ..ProcessRecord::default()
    }
}

fn run(sandbox: &Sandbox, sql: &str) -> Result<QueryResult, QueryError> {
    sandbox.run(&check(sql)?)
}

#[test]
fn loaded_processes_and_the_sigma_view_are_queryable() {
    let mut sandbox = sandbox();
    let records = [
        record(1, 0, "systemd", "/usr/lib/systemd/systemd"),
        record(100, 1, "nginx", "/usr/sbin/nginx"),
        record(200, 100, "sh", "/usr/bin/dash"),
    ];
    let users = [(1000, "alice".to_owned())];
    sandbox
        .load(&Dataset {
            processes: Some(&records),
            users: Some(&users),
            ..Dataset::default()
        })
        .unwrap();
    let result = run(
        &sandbox,
        "SELECT ProcessId, Image, User, ParentImage, LogonId FROM process_creation \
         WHERE ParentImage LIKE '%/nginx' ESCAPE '\\'",
    )
    .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            Cell::Integer(200),
            Cell::Text("/usr/bin/dash".into()),
            Cell::Text("alice".into()),
            Cell::Text("/usr/sbin/nginx".into()),
            Cell::Null,
        ]]
    );
    // Loading again replaces, never appends.
    sandbox
        .load(&Dataset {
            processes: Some(&records[..1]),
            ..Dataset::default()
        })
        .unwrap();
    let count = run(&sandbox, "SELECT count(*) FROM processes").unwrap();
    assert_eq!(count.rows, vec![vec![Cell::Integer(1)]]);
}

#[test]
fn the_authorizer_denies_what_the_parser_would_refuse() {
    // The parser's checks are bypassed on purpose (these go to the connection directly): the
    // authorizer alone must stop them.
    let sandbox = sandbox();
    for sql in [
        "DELETE FROM processes",
        "INSERT INTO alerts (id) VALUES ('x')",
        "UPDATE scans SET scan_id = 1",
        "DROP TABLE processes",
        "CREATE TABLE x (a)",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA table_info(processes)",
        "SELECT * FROM sqlite_master",
        "SELECT randomblob(10)",
        "SELECT load_extension('/tmp/x')",
        "SELECT * FROM pragma_table_info('processes')",
    ] {
        let err = sandbox.conn.prepare(sql).map(drop).unwrap_err();
        assert!(is_denial(&err), "{sql}: {err}");
    }
}

#[test]
fn a_runaway_query_is_stopped_within_its_budget() {
    let sandbox = sandbox();
    let started = Instant::now();
    let err = run(
        &sandbox,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
         SELECT count(*) FROM n",
    )
    .unwrap_err();
    assert!(matches!(err, QueryError::Stopped { .. }), "{err}");
    // Generous: the point is that it ends, not how fast (CI machines are slow).
    assert!(started.elapsed() < Duration::from_secs(20));
    // The sandbox still works afterwards.
    assert_eq!(
        run(&sandbox, "SELECT 1").unwrap().rows,
        vec![vec![Cell::Integer(1)]]
    );
}

#[test]
fn a_slow_like_match_is_stopped_at_the_budget() {
    // One LIKE call of ~1.6e10 steps: the progress handler cannot see inside a function call,
    // so the matcher looks at the deadline itself.
    let sandbox = sandbox();
    let err = run(
        &sandbox,
        "SELECT printf('%.*c', 4000000, 'a') LIKE '%' || printf('%.*c', 4000, 'a') || 'b'",
    )
    .unwrap_err();
    assert!(matches!(err, QueryError::Stopped { .. }), "{err}");
    assert_eq!(
        run(&sandbox, "SELECT 'abc' LIKE 'a%'").unwrap().rows,
        vec![vec![Cell::Integer(1)]]
    );
}

#[test]
fn rows_beyond_the_limit_are_dropped_and_marked() {
    let sandbox = Sandbox::new(Limits {
        max_rows: 5,
        ..Limits::default()
    })
    .unwrap();
    let result = run(
        &sandbox,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
         SELECT i FROM n",
    )
    .unwrap();
    assert_eq!(result.rows.len(), 5);
    assert!(result.truncated);
}

#[test]
fn oversized_values_fail_instead_of_eating_memory() {
    let sandbox = sandbox();
    for sql in [
        "SELECT printf('%.*c', 100000000, 'x')",
        "SELECT replace(printf('%.*c', 1000000, 'x'), 'x', 'xxxxxxxxxx')",
    ] {
        let err = run(&sandbox, sql).unwrap_err();
        assert!(
            matches!(&err, QueryError::Failed(reason) if reason.contains("too big")),
            "{sql}: {err}"
        );
    }
    let pattern = "%".repeat(5000);
    let err = run(&sandbox, &format!("SELECT 'a' LIKE '{pattern}'")).unwrap_err();
    assert!(
        matches!(&err, QueryError::Failed(reason) if reason.contains("LIKE or GLOB pattern too complex")),
        "{err}"
    );
}

#[test]
fn fixture_rows_are_checked_against_the_table() {
    let mut sandbox = sandbox();
    let mut row = Row::new();
    row.insert("pid".into(), Cell::Integer(5));
    row.insert("nope".into(), Cell::Integer(1));
    assert_eq!(
        sandbox.load_rows(Table::Processes, &[row]),
        Err("processes has no column \"nope\"".to_owned())
    );
    assert_eq!(
        sandbox.load_rows(Table::ProcessCreation, &[]),
        Err("process_creation is a view; load processes instead".to_owned())
    );
}

#[test]
fn events_load_with_every_column_in_place() {
    use crate::models::{EventKind, OnDisk};
    let mut sandbox = sandbox();
    let mut record = record(42, 1, "auditd", "/sbin/auditd");
    record.on_disk = OnDisk::Gone;
    record.collected_at = 1234;
    record.cpu_percent = Some(12.5);
    let events = [ProcessEvent {
        event: EventKind::Exit,
        record,
        observed_at: 5678,
    }];
    sandbox
        .load(&Dataset {
            events: Some(&events),
            ..Dataset::default()
        })
        .unwrap();
    let result = run(
        &sandbox,
        "SELECT event, pid, parent, name, on_disk, cpu_percent, scan_id, collected_at, \
         observed_at FROM process_events",
    )
    .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            Cell::Text("exit".into()),
            Cell::Integer(42),
            Cell::Integer(1),
            Cell::Text("auditd".into()),
            Cell::Integer(0),
            Cell::Real(12.5),
            Cell::Integer(7),
            Cell::Integer(1234),
            Cell::Integer(5678),
        ]]
    );
}

/// A record with every field set, each to a value no other field has, so that two columns
/// bound in each other's place cannot go unnoticed.
fn distinct_record() -> ProcessRecord {
    use crate::models::OnDisk;
    ProcessRecord {
        pid: 101,
        parent: Some(102),
        name: Some("name-103".into()),
        path: Some("/path/104".into()),
        cmdline: Some("cmdline 105".into()),
        cwd: Some("/cwd/106".into()),
        root: Some("/root/107".into()),
        state: Some("S108".into()),
        uid: Some(109),
        gid: Some(110),
        euid: Some(111),
        egid: Some(112),
        suid: Some(113),
        sgid: Some(114),
        // The only field whose values are fixed (1, 0, -1): no other field is 0.
        on_disk: OnDisk::Gone,
        resident_size: Some(115),
        total_size: Some(116),
        user_time: Some(117),
        system_time: Some(118),
        disk_bytes_read: Some(119),
        disk_bytes_written: Some(120),
        start_time: Some(121),
        pgroup: Some(122),
        threads: Some(123),
        nice: Some(124),
        cgroup_path: Some("/cgroup/125".into()),
        exe_sha256: Some("sha-126".into()),
        exe_dev: Some(127),
        exe_inode: Some(128),
        cpu_percent: Some(129.5),
        scan_id: 130,
        collected_at: 131,
    }
}

/// `record`'s fields by name, as serde names them (the field names, which are the column
/// names), checked to cover exactly the schema's columns with distinct, non-null values.
fn fields_by_name(record: &ProcessRecord) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(fields) = serde_json::to_value(record).unwrap() else {
        panic!("a record serializes as an object");
    };
    let names: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
    let columns: BTreeSet<&str> = schema::PROCESS_COLUMNS.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        names, columns,
        "ProcessRecord's fields are the processes columns"
    );
    let values: Vec<String> = fields.values().map(ToString::to_string).collect();
    let distinct: BTreeSet<&String> = values.iter().collect();
    assert_eq!(
        distinct.len(),
        values.len(),
        "every field differs: {fields:?}"
    );
    assert!(fields.values().all(|value| !value.is_null()), "{fields:?}");
    fields
}

/// Compares every column of `result`'s only row with the field of the same name.
fn check_columns_by_name(
    table: &str,
    result: &QueryResult,
    expected: &serde_json::Map<String, serde_json::Value>,
) {
    assert_eq!(result.rows.len(), 1, "{table}");
    assert_eq!(result.columns.len(), result.rows[0].len(), "{table}");
    for (column, cell) in result.columns.iter().zip(&result.rows[0]) {
        assert_eq!(
            Some(&cell.to_json()),
            expected.get(column),
            "{table}.{column} does not hold the record's field {column}"
        );
    }
}

#[test]
fn every_process_column_holds_the_field_of_its_name() {
    use crate::models::EventKind;
    let record = distinct_record();
    let mut fields = fields_by_name(&record);
    let process_columns: Vec<String> = schema::PROCESS_COLUMNS
        .iter()
        .map(|(column, _)| (*column).to_owned())
        .collect();
    let mut sandbox = sandbox();
    let events = [ProcessEvent {
        event: EventKind::Start,
        record: record.clone(),
        observed_at: 132,
    }];
    sandbox
        .load(&Dataset {
            processes: Some(std::slice::from_ref(&record)),
            snapshots: Some(std::slice::from_ref(&record)),
            events: Some(&events),
            ..Dataset::default()
        })
        .unwrap();
    for table in ["processes", "process_snapshots"] {
        let result = run(&sandbox, &format!("SELECT * FROM {table}")).unwrap();
        assert_eq!(result.columns, process_columns, "{table}");
        check_columns_by_name(table, &result, &fields);
    }
    fields.insert("event".into(), "start".into());
    fields.insert("observed_at".into(), 132.into());
    fields.insert("lost".into(), serde_json::Value::Null);
    let result = run(&sandbox, "SELECT * FROM process_events").unwrap();
    let columns: BTreeSet<&str> = result.columns.iter().map(String::as_str).collect();
    assert_eq!(columns.len(), process_columns.len() + 3);
    assert_eq!(result.columns.first().map(String::as_str), Some("event"));
    assert_eq!(
        result.columns[result.columns.len() - 2..],
        ["observed_at", "lost"]
    );
    // A start from a scan says nothing of `lost`: NULL.
    assert_eq!(result.rows[0].last(), Some(&Cell::Null));
    check_columns_by_name("process_events", &result, &fields);
}
