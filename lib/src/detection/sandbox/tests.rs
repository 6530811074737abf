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
