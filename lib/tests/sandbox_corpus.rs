//! The hostile-query corpus (`tests/data/hostile-queries.toml`) against both walls of the SQL
//! sandbox: each query must end in the category its entry names (refused by the parser's
//! checks, denied by SQLite's authorizer, stopped by the time budget, failed on a SQLite limit,
//! truncated at the row limit, or ok), for the reason it names, and leave the sandbox usable and
//! its tables unchanged. A second test runs the queries the budget stops as rules of one
//! `Engine` evaluation beside a normal rule, which must still return its rows. Test threads
//! have 2 MiB stacks, as the agent's blocking threads that answer `query` do.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use daemoneye_lib::detection::engine::Engine;
use daemoneye_lib::detection::precheck;
use daemoneye_lib::detection::rules;
use daemoneye_lib::detection::sandbox::{Cell, Dataset, Limits, QueryError, QueryResult, Sandbox};
use daemoneye_lib::models::{OnDisk, ProcessRecord};
use serde::Deserialize;

const LIMITS: Limits = Limits {
    timeout: Duration::from_millis(250),
    max_rows: 1000,
    max_memory: 64 * 1024 * 1024,
};

const PROCESS_COUNT: usize = 10_000;

/// SQLite's heap limit is process-wide, so a corpus query that fills the heap would make a
/// query of the other test, running at the same time on another thread, fail for want of
/// memory. The two tests take turns.
static SQLITE_HEAP: Mutex<()> = Mutex::new(());

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    query: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// What the attack (or the edge case) is.
    name: String,
    /// The query; `{{NAME}}` stands for the expansion of `repeat.NAME`, `{{TMPDIR}}` for an
    /// empty directory that must still be empty at the end.
    sql: String,
    expect: Category,
    /// For errors, a substring of the error's Display (for "refused", of the `Refusal`'s);
    /// for "ok" and "truncated", a substring of "N rows, first: A|B|...": the row count and
    /// the first row's cells.
    reason: String,
    /// Text too long or too repetitive to write out: `text` repeated `count` times, joined by
    /// `separator`, with `{i}` in `text` replaced by the repetition's index (from 0).
    #[serde(default)]
    repeat: BTreeMap<String, Repeat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    text: String,
    count: usize,
    #[serde(default)]
    separator: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Category {
    /// `precheck::check` returned a `Refusal`.
    Refused,
    /// `QueryError::Denied`: SQLite's authorizer.
    Denied,
    /// `QueryError::Stopped`: the time budget.
    Stopped,
    /// `QueryError::Failed`: a SQLite limit or error.
    Failed,
    /// Rows, cut at a limit.
    Truncated,
    /// Rows, all of them.
    Ok,
}

impl Category {
    const ALL: [Category; 6] = [
        Self::Refused,
        Self::Denied,
        Self::Stopped,
        Self::Failed,
        Self::Truncated,
        Self::Ok,
    ];
}

/// What a query did, with the text its entry's `reason` is looked for in.
#[derive(Debug)]
enum Outcome {
    Is(Category, String),
    /// Something no entry may expect: no rows at all, or a `Refused` out of `Sandbox::run`.
    Unexpected(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Is(category, text) => {
                let text: String = text.chars().take(300).collect();
                write!(f, "{category:?}: {text}")
            }
            Self::Unexpected(text) => write!(f, "unexpected: {text}"),
        }
    }
}

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile-queries.toml")
}

/// The entries.
fn load_corpus() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus_path()).unwrap();
    toml::from_str::<Corpus>(&text).unwrap().query
}

/// The entry's SQL with its placeholders expanded.
fn expand(entry: &Entry, tmpdir: &Path) -> String {
    let mut sql = entry.sql.replace("{{TMPDIR}}", tmpdir.to_str().unwrap());
    for (name, repeat) in &entry.repeat {
        let placeholder = format!("{{{{{name}}}}}");
        assert!(
            sql.contains(&placeholder),
            "{}: repeat.{name} is not used",
            entry.name
        );
        let text = (0..repeat.count)
            .map(|i| repeat.text.replace("{i}", &i.to_string()))
            .collect::<Vec<_>>()
            .join(&repeat.separator);
        sql = sql.replace(&placeholder, &text);
    }
    assert!(
        !sql.contains("{{"),
        "{}: a placeholder has no repeat",
        entry.name
    );
    sql
}

fn render(row: &[Cell]) -> String {
    row.iter()
        .map(|cell| match cell {
            Cell::Null => "NULL".to_owned(),
            Cell::Integer(value) => value.to_string(),
            Cell::Real(value) => value.to_string(),
            Cell::Text(text) => text.clone(),
            Cell::Blob(_) => cell.to_json().as_str().unwrap_or_default().to_owned(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn outcome(sandbox: &Sandbox, sql: &str) -> Outcome {
    let checked = match precheck::check(sql) {
        Ok(checked) => checked,
        Err(refusal) => return Outcome::Is(Category::Refused, refusal.to_string()),
    };
    match sandbox.run(&checked) {
        Ok(QueryResult {
            rows, truncated, ..
        }) => match rows.first() {
            None => Outcome::Unexpected("no rows".to_owned()),
            Some(first) if truncated => Outcome::Is(
                Category::Truncated,
                format!("{} rows, first: {}", rows.len(), render(first)),
            ),
            Some(first) => Outcome::Is(
                Category::Ok,
                format!("{} rows, first: {}", rows.len(), render(first)),
            ),
        },
        Err(err @ QueryError::Denied(_)) => Outcome::Is(Category::Denied, err.to_string()),
        Err(err @ QueryError::Stopped { .. }) => Outcome::Is(Category::Stopped, err.to_string()),
        Err(err @ QueryError::Failed(_)) => Outcome::Is(Category::Failed, err.to_string()),
        Err(err) => Outcome::Unexpected(err.to_string()),
    }
}

/// A deterministic scan of `count` processes that looks like a busy Linux server: a tree under
/// systemd of daemons, shells, interpreters, containers and kernel threads, with realistic
/// paths and command lines.
fn processes(count: usize) -> Vec<ProcessRecord> {
    const PROGRAMS: &[(&str, &str, &str)] = &[
        ("sshd", "/usr/sbin/sshd", "sshd: alice@pts/{n}"),
        ("bash", "/usr/bin/bash", "-bash"),
        ("nginx", "/usr/sbin/nginx", "nginx: worker process"),
        (
            "postgres",
            "/usr/lib/postgresql/16/bin/postgres",
            "postgres: 16/main: app appdb 10.0.{n}.7(51234) idle",
        ),
        (
            "python3",
            "/usr/bin/python3.12",
            "/usr/bin/python3 /opt/app/worker.py --queue jobs-{n} --concurrency 4",
        ),
        (
            "java",
            "/usr/lib/jvm/java-21-openjdk-amd64/bin/java",
            "java -Xmx2g -Dlog4j2.formatMsgNoLookups=true -jar /opt/svc/svc-{n}.jar",
        ),
        (
            "node",
            "/usr/bin/node",
            "node /srv/web/server.js --port 30{n}",
        ),
        (
            "containerd-shim",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/containerd-shim-runc-v2 -namespace moby -id 4f{n}c2 -address /run/containerd/containerd.sock",
        ),
        ("cron", "/usr/sbin/cron", "/usr/sbin/cron -f -P"),
        ("sleep", "/usr/bin/sleep", "sleep {n}"),
        (
            "curl",
            "/usr/bin/curl",
            "curl -fsSL https://mirror.example.org/pkg/{n}.tar.gz -o /tmp/pkg-{n}.tar.gz",
        ),
        ("kworker/3:1", "", ""),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // A 64-bit LCG (Knuth's MMIX constants): enough variety, and the same every run.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (0..count)
        .map(|index| {
            let pid = u32::try_from(index).unwrap() + 1;
            if pid == 1 {
                return ProcessRecord {
                    pid,
                    parent: Some(0),
                    name: Some("systemd".to_owned()),
                    path: Some("/usr/lib/systemd/systemd".to_owned()),
                    cmdline: Some("/sbin/init splash".to_owned()),
                    cwd: Some("/".to_owned()),
                    root: Some("/".to_owned()),
                    state: Some("S".to_owned()),
                    uid: Some(0),
                    on_disk: OnDisk::Present,
                    scan_id: 1,
                    collected_at: 1_700_000_000_000,
                    ..ProcessRecord::default()
                };
            }
            let (name, path, cmdline) = PROGRAMS[usize::try_from(next()).unwrap() % PROGRAMS.len()];
            let n = next() % 100;
            let kernel = path.is_empty();
            let parent = if kernel {
                2
            } else {
                u32::try_from(next() % u64::from(pid - 1)).unwrap() + 1
            };
            let uid = if kernel || name == "sshd" || name == "cron" {
                0
            } else {
                1000 + u32::try_from(next() % 5).unwrap()
            };
            let text = |value: &str| (!kernel).then(|| value.replace("{n}", &n.to_string()));
            ProcessRecord {
                pid,
                parent: Some(parent),
                name: Some(name.to_owned()),
                path: text(path),
                cmdline: text(cmdline),
                cwd: text("/home/alice"),
                root: Some("/".to_owned()),
                state: Some(if n % 7 == 0 { "R" } else { "S" }.to_owned()),
                uid: Some(uid),
                gid: Some(uid),
                euid: Some(uid),
                egid: Some(uid),
                on_disk: if kernel {
                    OnDisk::Unknown
                } else {
                    OnDisk::Present
                },
                resident_size: Some(next() * 4096 % (1 << 30)),
                start_time: Some(1_700_000_000 + i64::from(pid)),
                threads: Some(1 + u32::try_from(next() % 32).unwrap()),
                cgroup_path: Some(format!("/system.slice/{name}.service")),
                exe_sha256: (!kernel).then(|| format!("{:064x}", next())),
                scan_id: 1,
                collected_at: 1_700_000_000_000,
                ..ProcessRecord::default()
            }
        })
        .collect()
}

/// A summary of the `processes` table that any change to it would alter.
const FINGERPRINT_SQL: &str = "SELECT count(*), sum(pid), sum(parent), sum(uid), \
     sum(length(name)), sum(length(path)), sum(length(cmdline)), sum(resident_size), \
     sum(threads), sum(length(exe_sha256)) FROM processes";

fn expected_fingerprint(records: &[ProcessRecord]) -> Vec<Cell> {
    fn length(text: &Option<String>) -> Option<i64> {
        text.as_ref().map(|text| i64::try_from(text.len()).unwrap())
    }
    let sum = |value: fn(&ProcessRecord) -> Option<i64>| {
        Cell::Integer(records.iter().filter_map(value).sum())
    };
    vec![
        Cell::Integer(i64::try_from(records.len()).unwrap()),
        sum(|r| Some(i64::from(r.pid))),
        sum(|r| r.parent.map(i64::from)),
        sum(|r| r.uid.map(i64::from)),
        sum(|r| length(&r.name)),
        sum(|r| length(&r.path)),
        sum(|r| length(&r.cmdline)),
        sum(|r| r.resident_size.map(|size| i64::try_from(size).unwrap())),
        sum(|r| r.threads.map(i64::from)),
        sum(|r| length(&r.exe_sha256)),
    ]
}

fn run_ok(sandbox: &Sandbox, sql: &str) -> QueryResult {
    sandbox
        .run(&precheck::check(sql).unwrap())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// A sandbox with the synthetic scan loaded, and that scan.
fn loaded_sandbox() -> (Sandbox, Vec<ProcessRecord>) {
    let records = processes(PROCESS_COUNT);
    let mut sandbox = Sandbox::new(LIMITS).unwrap();
    sandbox
        .load(&Dataset {
            processes: Some(&records),
            ..Dataset::default()
        })
        .unwrap();
    (sandbox, records)
}

/// Runs `entries`, and describes each one that did not end as it says.
fn mismatches(sandbox: &Sandbox, entries: &[Entry], tmpdir: &Path) -> Vec<String> {
    let mut mismatches = Vec::new();
    for entry in entries {
        let sql = expand(entry, tmpdir);
        let outcome = outcome(sandbox, &sql);
        let matched = matches!(
            &outcome,
            Outcome::Is(category, text) if *category == entry.expect && text.contains(&entry.reason)
        );
        if !matched {
            mismatches.push(format!(
                "{}: expected {:?} containing {:?}, got {outcome}",
                entry.name, entry.expect, entry.reason
            ));
        }
    }
    mismatches
}

#[test]
fn every_hostile_query_ends_as_its_entry_says() {
    let _heap = SQLITE_HEAP.lock().unwrap_or_else(PoisonError::into_inner);
    let corpus = load_corpus();
    assert!(corpus.len() >= 50, "only {} queries", corpus.len());
    let mut per_category: BTreeMap<Category, usize> = BTreeMap::new();
    for entry in &corpus {
        *per_category.entry(entry.expect).or_default() += 1;
    }
    for category in Category::ALL {
        assert!(
            per_category.contains_key(&category),
            "no query expects {category:?}"
        );
    }
    println!("{} queries: {per_category:?}", corpus.len());

    let tmpdir = tempfile::tempdir().unwrap();
    let (sandbox, records) = loaded_sandbox();
    let fingerprint = expected_fingerprint(&records);
    assert_eq!(
        run_ok(&sandbox, FINGERPRINT_SQL).rows,
        vec![fingerprint.clone()]
    );

    let mismatches = mismatches(&sandbox, &corpus, tmpdir.path());
    assert!(
        mismatches.is_empty(),
        "{} of {} queries did not end as expected:\n{}",
        mismatches.len(),
        corpus.len(),
        mismatches.join("\n")
    );

    // Still usable, and nothing was written: not the table, not the disk.
    assert_eq!(
        run_ok(&sandbox, "SELECT count(*) FROM processes").rows,
        vec![vec![Cell::Integer(i64::try_from(PROCESS_COUNT).unwrap())]]
    );
    assert_eq!(run_ok(&sandbox, FINGERPRINT_SQL).rows, vec![fingerprint]);
    let written: Vec<_> = std::fs::read_dir(tmpdir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(written.is_empty(), "files written: {written:?}");
}

#[test]
fn stopped_queries_as_rules_do_not_stop_the_other_rules() {
    let _heap = SQLITE_HEAP.lock().unwrap_or_else(PoisonError::into_inner);
    let tmpdir = tempfile::tempdir().unwrap();
    let hostile: Vec<String> = load_corpus()
        .iter()
        .filter(|entry| entry.expect == Category::Stopped)
        .map(|entry| expand(entry, tmpdir.path()))
        .collect();
    assert!(!hostile.is_empty());
    let normal =
        "SELECT pid, cmdline FROM processes WHERE name = 'curl' AND cmdline LIKE '%/tmp/%'";
    // The normal rule runs in the middle, after half the hostile ones.
    let half = hostile.len() / 2;
    let mut sqls: Vec<&str> = hostile.iter().map(String::as_str).collect();
    sqls.insert(half, normal);
    let file: String = sqls
        .iter()
        .enumerate()
        .map(|(index, sql)| {
            format!(
                "[[rule]]\nid = \"CORPUS-{index}\"\nname = \"corpus rule {index}\"\n\
                 severity = \"low\"\nsql = {}\n\n",
                toml::Value::String((*sql).to_owned())
            )
        })
        .collect();
    let loaded = rules::parse("corpus", &file, &Sandbox::new(LIMITS).unwrap());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.rules.len(), sqls.len());

    let records = processes(PROCESS_COUNT);
    let expected_pids: Vec<Cell> = records
        .iter()
        .filter(|r| {
            r.name.as_deref() == Some("curl")
                && r.cmdline
                    .as_deref()
                    .is_some_and(|cmd| cmd.contains("/tmp/"))
        })
        .map(|r| Cell::Integer(i64::from(r.pid)))
        .collect();
    assert!(!expected_pids.is_empty());
    let mut engine = Engine::new(loaded.rules, LIMITS).unwrap();
    let runs = engine
        .evaluate(&Dataset {
            processes: Some(&records),
            ..Dataset::default()
        })
        .unwrap();
    assert_eq!(runs.len(), sqls.len());
    for (index, run) in runs.iter().enumerate() {
        assert_eq!(run.rule, index);
        if index == half {
            let result = run.outcome.as_ref().unwrap();
            let mut pids: Vec<Cell> = result.rows.iter().map(|row| row[0].clone()).collect();
            pids.sort_by_key(|pid| match pid {
                Cell::Integer(pid) => *pid,
                _ => i64::MIN,
            });
            assert_eq!(pids, expected_pids);
            assert!(!result.truncated);
        } else {
            assert!(
                matches!(
                    run.outcome,
                    Err(QueryError::Stopped { budget, .. }) if budget == LIMITS.timeout
                ),
                "{}: {:?}",
                sqls[index],
                run.outcome
            );
        }
    }
}
