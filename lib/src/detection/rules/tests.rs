//! Tests of rule-file parsing, checks and fixtures.

use super::*;

fn sandbox() -> Sandbox {
    Sandbox::new(Limits::default()).unwrap()
}

const GOOD: &str = r#"
[[rule]]
id = "DE-LNX-0001"
name = "Process running from a deleted executable"
severity = "high"
mitre = ["T1070.004"]
description = "x"
sql = "SELECT pid, name, path FROM processes WHERE on_disk = 0"
dedup = { key = ["pid", "path"], window = "1h" }

[[rule.test]]
name = "deleted"
processes = [{ pid = 10, name = "x", path = "/tmp/x", on_disk = 0 }]
expect_rows = 1

[[rule.test]]
processes = [{ pid = 10, name = "x", path = "/tmp/x", on_disk = 1 }]
expect_rows = 0
"#;

fn reasons(text: &str) -> Vec<String> {
    parse("f.toml", text, &sandbox())
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// One rule with `field` replaced; the expected single diagnostic.
fn check_bad(replace: (&str, &str), expected: &str) {
    let text = GOOD.replacen(replace.0, replace.1, 1);
    assert_ne!(text, GOOD, "the replacement must apply: {replace:?}");
    let loaded = parse("f.toml", &text, &sandbox());
    assert!(loaded.rules.is_empty(), "{replace:?} should be refused");
    let got: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(got, vec![expected.to_owned()], "{replace:?}");
}

#[test]
fn a_good_rule_loads_with_its_fixtures_and_columns() {
    let loaded = parse("f.toml", GOOD, &sandbox());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let rule = &loaded.rules[0];
    assert_eq!(rule.id.as_str(), "DE-LNX-0001");
    assert_eq!(rule.columns, ["pid", "name", "path"]);
    assert_eq!(rule.dedup.window, Some(Duration::from_secs(3600)));
    assert_eq!(rule.tests.len(), 2);
    let outcomes = run_fixtures(rule, Limits::default()).unwrap();
    assert!(outcomes.iter().all(FixtureOutcome::passed), "{outcomes:?}");
    assert_eq!(outcomes[0].label, "deleted");
    assert_eq!(outcomes[1].label, "fixture 2");
}

#[test]
fn each_bad_field_is_named() {
    let prefix = "f.toml: DE-LNX-0001: ";
    for (replace, reason) in [
        (
            ("severity = \"high\"", "severity = \"severe\""),
            "unknown severity \"severe\": expected info, low, medium, high or critical",
        ),
        (
            ("mitre = [\"T1070.004\"]", "mitre = [\"1070\"]"),
            "invalid MITRE ATT&CK id \"1070\": expected Tnnnn or Tnnnn.nnn",
        ),
        (
            ("FROM processes WHERE", "FROM nowhere WHERE"),
            "sql refused: unknown table \"nowhere\"",
        ),
        (
            ("SELECT pid, name, path", "SELECT pid, name, nosuch"),
            "sql: no such column: nosuch at offset 18",
        ),
        (
            ("SELECT pid, name, path", "SELECT pid, name, path, pid"),
            "the result has two columns named \"pid\"; alias one of them",
        ),
        (
            ("key = [\"pid\", \"path\"]", "key = [\"uid\"]"),
            "dedup key \"uid\" is not a column of the result (pid, name, path)",
        ),
        (
            ("window = \"1h\"", "window = \"soon\""),
            "invalid dedup window \"soon\": expected number at 0",
        ),
        (
            ("window = \"1h\"", "window = \"0s\""),
            "dedup window must be greater than zero",
        ),
        (
            ("expect_rows = 0", "expect_rows = -1"),
            "test #2: expect_rows must not be negative, not -1",
        ),
        (
            (
                "processes = [{ pid = 10, name = \"x\", path = \"/tmp/x\", on_disk = 1 }]\n",
                "procs = []\n",
            ),
            "test #2: unknown key \"procs\": expected name, expect_rows or a table (processes, process_snapshots, process_events, scans, alerts, users)",
        ),
        (
            ("on_disk = 1 }", "on_disk = true }"),
            "test #2: processes.on_disk: values are integers, floats or strings (write 0 or 1 for a flag)",
        ),
        (
            ("on_disk = 1 }", "ondisk = 1 }"),
            "test #2: processes has no column \"ondisk\"",
        ),
        (
            ("description = \"x\"", "descripton = \"x\""),
            "unknown field `descripton`, expected one of `id`, `name`, `severity`, `mitre`, `description`, `sql`, `dedup`, `on`, `test`",
        ),
    ] {
        check_bad(replace, &format!("{prefix}{reason}"));
    }
    check_bad(
        ("id = \"DE-LNX-0001\"", "id = \"../etc\""),
        "f.toml: ../etc: invalid rule id \"../etc\": expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
}

#[test]
fn a_bad_rule_never_stops_the_others() {
    let text = format!(
        "{GOOD}\n[[rule]]\nid = \"BAD-1\"\nname = \"x\"\nseverity = \"low\"\nsql = \"DELETE FROM alerts\"\n\
         \n[[rule]]\nid = \"DE-LNX-0001\"\nname = \"again\"\nseverity = \"low\"\nsql = \"SELECT 1 AS one\"\n\
         \n[[rule]]\nid = \"OK-2\"\nname = \"fine\"\nseverity = \"info\"\nsql = \"SELECT pid FROM processes\"\n"
    );
    let loaded = parse("f.toml", &text, &sandbox());
    let ids: Vec<&str> = loaded.rules.iter().map(|rule| rule.id.as_str()).collect();
    assert_eq!(ids, ["DE-LNX-0001", "OK-2"], "{:?}", loaded.diagnostics);
    let got: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "f.toml: BAD-1: sql refused: only SELECT is allowed, not DELETE",
            "f.toml: DE-LNX-0001: duplicate rule id in this file; the first one is kept",
        ]
    );
}

#[test]
fn whole_file_problems_are_one_line_with_a_position() {
    assert_eq!(
        reasons("[[rule]]\nid = \n"),
        [
            "f.toml: invalid TOML at line 2, column 6: string values must be quoted, expected literal string"
        ]
    );
    assert_eq!(
        reasons("x = 1\n"),
        [
            "f.toml: unknown top-level key \"x\": rule files hold [[rule]] tables",
            "f.toml: no [[rule]] table in the file",
        ]
    );
    assert_eq!(
        reasons("rule = 5\n"),
        ["f.toml: \"rule\" must be an array of tables: write [[rule]]",]
    );
}

#[test]
fn a_failing_fixture_reports_what_it_got() {
    let text = GOOD.replacen("expect_rows = 1", "expect_rows = 3", 1);
    let rule = parse("f.toml", &text, &sandbox()).rules.remove(0);
    let outcomes = run_fixtures(&rule, Limits::default()).unwrap();
    assert_eq!(outcomes[0].got, Ok(1));
    assert!(!outcomes[0].passed());
    assert!(outcomes[1].passed());
}

#[test]
fn attack_ids() {
    for (id, ok) in [
        ("T1059", true),
        ("T1059.004", true),
        ("T105", false),
        ("T1059.04", false),
        ("t1059", false),
        ("T1059.", false),
        ("TA0001", false),
    ] {
        assert_eq!(is_attack_id(id), ok, "{id}");
    }
}

#[test]
fn fixtures_in_a_reused_sandbox_see_only_their_own_rows() {
    // The first fixture loads a matching process; the second loads nothing, and must see an
    // empty table, not the first one's rows; then a second rule in the same sandbox.
    const TWO: &str = r#"
[[rule]]
id = "T-1"
name = "n"
severity = "low"
mitre = []
description = "d"
sql = "SELECT pid FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "nc" }]
expect_rows = 1

[[rule.test]]
expect_rows = 0

[[rule]]
id = "T-2"
name = "n"
severity = "low"
mitre = []
description = "d"
sql = "SELECT pid FROM processes"

[[rule.test]]
expect_rows = 0
"#;
    let loaded = parse("two.toml", TWO, &sandbox());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let mut shared = sandbox();
    for rule in &loaded.rules {
        let fresh = run_fixtures(rule, Limits::default()).unwrap();
        let reused = run_fixtures_in(rule, &mut shared);
        assert_eq!(reused, fresh, "{}", rule.id);
        assert!(reused.iter().all(FixtureOutcome::passed), "{reused:?}");
    }
}

#[test]
fn on_says_whether_a_rule_runs_on_scans_exec_events_or_both() {
    let loaded = parse("f.toml", GOOD, &sandbox());
    assert_eq!(loaded.rules[0].on, RunsOn::Scan, "the default");
    for (text, want) in [
        ("scan", RunsOn::Scan),
        ("exec", RunsOn::Exec),
        ("both", RunsOn::Both),
    ] {
        let with = GOOD.replacen(
            "severity = \"high\"",
            &format!("severity = \"high\"\non = \"{text}\""),
            1,
        );
        let loaded = parse("f.toml", &with, &sandbox());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.rules[0].on, want);
        assert_eq!(want.as_str(), text);
    }
    assert!(RunsOn::Both.scans() && RunsOn::Both.exec());
    assert!(RunsOn::Scan.scans() && !RunsOn::Scan.exec());
    assert!(!RunsOn::Exec.scans() && RunsOn::Exec.exec());
    check_bad(
        (
            "severity = \"high\"",
            "severity = \"high\"\non = \"always\"",
        ),
        "f.toml: DE-LNX-0001: invalid on \"always\": expected scan, exec or both",
    );
}

/// The ids of the rules `runs` ran, in order.
fn ran<'a>(
    engine: &'a crate::detection::engine::Engine,
    runs: &[crate::detection::engine::RuleRun],
) -> Vec<&'a str> {
    runs.iter()
        .map(|run| engine.rules()[run.rule].id.as_str())
        .collect()
}

#[test]
fn exec_rules_alone_run_on_exec_events_and_see_parents_outside_the_batch() {
    use crate::detection::engine::Engine;
    use crate::detection::sandbox::Dataset;
    use crate::models::ProcessRecord;
    let text = r#"
[[rule]]
id = "T-SCAN"
name = "scan only"
severity = "low"
sql = "SELECT pid FROM processes"

[[rule]]
id = "T-EXEC"
name = "shell from a web server"
severity = "high"
on = "exec"
sql = "SELECT ProcessId AS pid, ParentImage FROM process_creation WHERE ParentImage LIKE '%/nginx'"

[[rule]]
id = "T-BOTH"
name = "both"
severity = "low"
on = "both"
sql = "SELECT pid FROM processes WHERE cmdline LIKE 'sh -c%'"
"#;
    let loaded = parse("f.toml", text, &sandbox());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let mut engine = Engine::new(loaded.rules, Limits::default()).unwrap();
    assert!(engine.runs_on_exec());
    let batch = [ProcessRecord {
        pid: 20,
        parent: Some(10),
        path: Some("/usr/bin/dash".into()),
        cmdline: Some("sh -c id".into()),
        ..ProcessRecord::default()
    }];
    let parents = [ProcessRecord {
        pid: 10,
        path: Some("/usr/sbin/nginx".into()),
        cmdline: Some("nginx: worker process".into()),
        ..ProcessRecord::default()
    }];
    let runs = engine
        .evaluate_exec(&Dataset {
            processes: Some(&batch),
            parents: Some(&parents),
            users: Some(&[]),
            ..Dataset::default()
        })
        .unwrap();
    assert_eq!(ran(&engine, &runs), ["T-EXEC", "T-BOTH"]);
    let exec = runs[0].outcome.as_ref().unwrap();
    assert_eq!(exec.rows.len(), 1, "the parent is found outside the batch");
    // On a scan, the exec-only rule does not run, and no parent is left over.
    let runs = engine
        .evaluate(&Dataset {
            processes: Some(&batch),
            parents: Some(&[]),
            ..Dataset::default()
        })
        .unwrap();
    assert_eq!(ran(&engine, &runs), ["T-SCAN", "T-BOTH"]);
}
