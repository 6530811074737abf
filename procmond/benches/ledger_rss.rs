//! Scenario: procmond's memory with a 10,000,000-entry audit ledger.
//!
//! ```text
//! cargo bench -p procmond --bench ledger_rss
//! LEDGER_RSS_ENTRIES=1000000 cargo bench -p procmond --bench ledger_rss
//! ```
//!
//! 1. Takes the ledger in `target/ledger-bench/procmond-N/data/ledger/` (N = 10,000,000 or
//!    `LEDGER_RSS_ENTRIES`), or builds it when it is missing or smaller: opened with the
//!    settings procmond computes from the default configuration
//!    ([`procmond::audit::settings`]), a `ledger_created` entry, then scan and alert entries of
//!    about 100 bytes in batches of 100,000, and one signed checkpoint. About 1.7 GB. Each run
//!    adds a few hundred entries and a checkpoint or two to it, and later runs reuse it.
//! 2. Starts the release `procmond` binary (the one cargo builds for this bench) as
//!    `procmond --socket <tmp>/procmond.sock` without a ledger, connects as the agent
//!    (handshake, one health request) and reads its `VmRSS` and `VmHWM`: the baseline.
//! 3. Starts it again with `--data-dir` set to the data directory above, connects as the
//!    agent (this bench is its parent, as the agent would be) and reads `/proc/PID/status`:
//!    after opening the ledger, after asking for a checkpoint and 1,000 inclusion proofs of
//!    random entries, after 300 `AppendAudit` requests (`agent_started`, one fsync each), and
//!    after 100 consistency proofs from the first checkpoint. One proof of each kind is
//!    verified. The round-trip time of each request, as the agent sees it, is printed too.
//! 4. Stops procmond with SIGTERM (it records its stop and signs a checkpoint), waits for it
//!    while reading its `VmHWM` every millisecond, and prints a table. Target: procmond under
//!    30 MB resident with the 10M-entry ledger. (Not `getrusage(RUSAGE_CHILDREN)`: a child
//!    spawned with `vfork` semantics is charged this bench's own peak before its `exec`.)
//!
//! Run as root (the normal case), procmond drops its privileges to `daemoneye` or a uid of its
//! own and hands the ledger directory to that user itself. The ledger is read with `pread`, so
//! the page cache that holds its files is not counted in procmond's resident size.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use daemoneye_lib::config::Config;
use daemoneye_lib::ipc::proto::{self, Role, audit_request, collector_request, collector_response};
use daemoneye_lib::ipc::transport::{self, LocalStream, PeerPolicy};
use daemoneye_lib::ipc::{Connection, Limits, MessageType};
use daemoneye_lib::ledger::entry::{Body, Entry, Source};
use daemoneye_lib::ledger::note::NoteVerifier;
use daemoneye_lib::ledger::store::Ledger;
use daemoneye_lib::ledger::verify::{self, Verified};
use nix::sys::signal::{Signal, kill};

#[path = "../../lib/benches/support/ledger_entries.rs"]
mod ledger_entries;
use ledger_entries::{Rng, T0, entry};
use nix::unistd::Pid;

const DEFAULT_ENTRIES: u64 = 10_000_000;
const BUILD_BATCH: u64 = 100_000;
const PROOFS: usize = 1_000;
const APPENDS: usize = 300;
const CONSISTENCY: usize = 100;
/// The issue's target for procmond's resident size.
const TARGET_KB: u64 = 30 * 1000;

fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Median, 90th and 99th percentile and maximum of `samples`.
fn latencies(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {}, p90 {}, p99 {}, max {}",
        human(at(0.5)),
        human(at(0.9)),
        human(at(0.99)),
        human(at(1.0))
    )
}

/// The ledger of at least `n` entries in `<data_dir>/ledger`, built now if needed.
fn prepare(data_dir: &Path, n: u64) {
    let dir = data_dir.join("ledger");
    let settings = procmond::audit::settings(&Config::default());
    if dir.join("meta").exists()
        && let Ok((ledger, recovery)) = Ledger::open(&dir, &settings)
        && ledger.size() >= n
        && ledger.latest().is_some()
    {
        println!(
            "ledger: reusing {} ({} entries, {} checkpoints, {} replayed on open)",
            dir.display(),
            ledger.size(),
            ledger.checkpoint_count(),
            recovery.replayed
        );
        return;
    }
    if data_dir.exists() {
        fs::remove_dir_all(data_dir).expect("the old bench ledger is removed");
    }
    fs::create_dir_all(data_dir).expect("the data directory");
    println!("ledger: building {n} entries in {}", dir.display());
    let started = Instant::now();
    let (mut ledger, _) = Ledger::open(&dir, &settings).expect("the ledger is created");
    let created = Entry {
        source: Source::Procmond,
        time_ms: T0,
        body: Body::LedgerCreated {
            hash_alg: ledger.hash().name().to_owned(),
            verifier_key: ledger.verifier().to_string(),
        },
    };
    ledger.append(&[created]).expect("append");
    let mut next = 1;
    while next < n {
        let end = n.min(next + BUILD_BATCH);
        let batch: Vec<Entry> = (next..end).map(entry).collect();
        ledger.append(&batch).expect("append");
        next = end;
    }
    ledger
        .checkpoint(T0 + n as i64 * 10)
        .expect("the ledger is checkpointed");
    println!(
        "ledger: built in {} (origin {}, {})",
        human(started.elapsed()),
        ledger.origin(),
        ledger.hash()
    );
}

/// What `/proc/PID/status` says about memory, in kB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

fn memory(pid: u32) -> Memory {
    // Empty once the process is gone: every field then reads 0.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        threads: field("Threads:"),
    }
}

/// A procmond this bench started; killed when dropped, if still running.
struct Procmond {
    child: Child,
}

impl Procmond {
    fn start(socket: &Path, data_dir: Option<&Path>, log: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_procmond"));
        command.arg("--socket").arg(socket).arg("-v");
        if let Some(dir) = data_dir {
            command.arg("--data-dir").arg(dir);
        }
        let log = fs::File::create(log).expect("the log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("procmond starts");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (at most 60 s), reading procmond's memory every millisecond
    /// meanwhile; returns how it exited, the last `VmHWM` seen (the peak up to then: it only
    /// grows) and the time it took to stop.
    fn stop(mut self) -> (ExitStatus, u64, Duration) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits in i32"));
        let started = Instant::now();
        kill(pid, Signal::SIGTERM).expect("SIGTERM is sent");
        let mut hwm = 0;
        loop {
            // A zombie's status has no Vm lines, so this keeps the last real value.
            hwm = hwm.max(memory(self.pid()).hwm);
            if let Some(status) = self.child.try_wait().expect("waiting for procmond") {
                return (status, hwm, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "procmond did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Procmond {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The agent's end of the link, as `agent/src/collector_client.rs` speaks it.
struct Agent {
    conn: Connection<LocalStream>,
    next_id: u64,
}

impl Agent {
    /// Connects (retrying while procmond starts) and handshakes as the agent.
    async fn connect(socket: &Path) -> Self {
        let policy = PeerPolicy::for_current_user();
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match transport::connect(socket, &policy).await {
                Ok((stream, _)) => break stream,
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot connect to procmond: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let limits = Limits {
            handshake_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let conn = Connection::client_handshake(stream, limits, Role::Agent, Role::Collector, &[])
            .await
            .expect("the handshake with procmond");
        Self { conn, next_id: 1 }
    }

    async fn request(&mut self, kind: collector_request::Kind) -> collector_response::Kind {
        let request_id = self.next_id;
        self.next_id += 1;
        let request = proto::CollectorRequest {
            request_id,
            kind: Some(kind),
        };
        self.conn
            .send(MessageType::CollectorRequest, &request)
            .await
            .expect("a request is sent");
        let response: proto::CollectorResponse = self
            .conn
            .recv(MessageType::CollectorResponse)
            .await
            .expect("procmond answers");
        assert_eq!(response.request_id, request_id);
        match response.kind {
            Some(collector_response::Kind::Error(err)) => {
                panic!("procmond refused request {request_id}: {}", err.message)
            }
            Some(kind) => kind,
            None => panic!("an empty answer"),
        }
    }

    async fn audit(&mut self, kind: audit_request::Kind) -> proto::AuditResponse {
        let request = proto::AuditRequest { kind: Some(kind) };
        match self.request(collector_request::Kind::Audit(request)).await {
            collector_response::Kind::Audit(response) => response,
            other => panic!("not an audit answer: {other:?}"),
        }
    }

    async fn append(&mut self, body: &Body) -> u64 {
        let append = proto::AppendAudit {
            entries: vec![proto::AuditEntryBody {
                kind: body.kind().to_owned(),
                payload: body.encode().expect("the body encodes"),
            }],
        };
        match self
            .request(collector_request::Kind::AppendAudit(append))
            .await
        {
            collector_response::Kind::AppendAudit(result) => result.first_index,
            other => panic!("not an append answer: {other:?}"),
        }
    }
}

/// Steps, their memory and a note.
type Rows = Vec<(String, Memory, String)>;

/// procmond without a ledger: the handshake and one health request.
async fn baseline(socket: &Path, log: &Path, rows: &mut Rows) -> ExitStatus {
    let procmond = Procmond::start(socket, None, log);
    let mut agent = Agent::connect(socket).await;
    match agent
        .request(collector_request::Kind::Health(proto::HealthRequest {}))
        .await
    {
        collector_response::Kind::Health(_) => {}
        other => panic!("not a health answer: {other:?}"),
    }
    rows.push((
        "no ledger (baseline)".to_owned(),
        memory(procmond.pid()),
        "handshake + health".to_owned(),
    ));
    drop(agent);
    procmond.stop().0
}

/// procmond with the big ledger: open, proofs, appends, consistency proofs.
async fn with_ledger(socket: &Path, data_dir: &Path, log: &Path, rows: &mut Rows) -> ExitStatus {
    let started = Instant::now();
    let procmond = Procmond::start(socket, Some(data_dir), log);
    let pid = procmond.pid();
    let mut agent = Agent::connect(socket).await;
    let key = agent
        .audit(audit_request::Kind::Key(proto::AuditKey {}))
        .await;
    let ready = started.elapsed();
    let key = NoteVerifier::parse(key.text.trim_end()).expect("the verifier key parses");
    rows.push((
        "ledger open".to_owned(),
        memory(pid),
        format!("start to first answer {}", human(ready)),
    ));

    let started = Instant::now();
    let checkpoint = agent
        .audit(audit_request::Kind::Checkpoint(proto::AuditCheckpoint {}))
        .await;
    let signing = started.elapsed();
    let size = checkpoint.size;
    let old = checkpoint.text;
    let mut rng = Rng(size);
    let mut times = Vec::with_capacity(PROOFS);
    for i in 0..PROOFS {
        let index = rng.below(size);
        let started = Instant::now();
        let proof = agent
            .audit(audit_request::Kind::Prove(proto::AuditProve { index }))
            .await;
        times.push(started.elapsed());
        if i == 0 {
            assert!(matches!(
                verify::verify_text(&proof.text, &key, None),
                Ok(Verified::Inclusion { .. })
            ));
        }
    }
    rows.push((
        format!("+ checkpoint, {PROOFS} proofs"),
        memory(pid),
        format!(
            "{size} entries; checkpoint {}; prove {}",
            human(signing),
            latencies(&mut times)
        ),
    ));

    let mut times = Vec::with_capacity(APPENDS);
    let body = Body::AgentStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
    };
    for _ in 0..APPENDS {
        let started = Instant::now();
        agent.append(&body).await;
        times.push(started.elapsed());
    }
    rows.push((
        format!("+ {APPENDS} appends"),
        memory(pid),
        format!("append {}", latencies(&mut times)),
    ));

    let mut times = Vec::with_capacity(CONSISTENCY);
    for i in 0..CONSISTENCY {
        let started = Instant::now();
        let proof = agent
            .audit(audit_request::Kind::Consistency(proto::AuditConsistency {
                old_checkpoint: old.clone(),
            }))
            .await;
        times.push(started.elapsed());
        if i == 0 {
            assert!(matches!(
                verify::verify_text(&proof.text, &key, Some(&old)),
                Ok(Verified::Consistency { .. })
            ));
        }
    }
    rows.push((
        format!("+ {CONSISTENCY} consistency proofs"),
        memory(pid),
        format!(
            "consistency {} (the first signs a checkpoint)",
            latencies(&mut times)
        ),
    ));
    drop(agent);
    let (status, hwm, took) = procmond.stop();
    rows.push((
        "+ SIGTERM (stop entry, checkpoint)".to_owned(),
        Memory {
            hwm,
            ..Memory::default()
        },
        format!("VmHWM last seen while stopping; stopped in {}", human(took)),
    ));
    status
}

fn main() {
    let n = std::env::var("LEDGER_RSS_ENTRIES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_ENTRIES);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("ledger-bench")
        .join(format!("procmond-{n}"));
    let data_dir: PathBuf = root.join("data");
    prepare(&data_dir, n);
    // Let the writes of a build reach the disk before procmond's fsyncs are timed.
    let _ = Command::new("sync").status();

    let run = tempfile::tempdir().expect("a temporary directory");
    let socket = run.path().join("procmond.sock");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Rows::new();
    let log = root.join("procmond-baseline.log");
    let status = runtime.block_on(baseline(&socket, &log, &mut rows));
    assert!(
        status.success(),
        "procmond (baseline) exited with {status}; see {}",
        log.display()
    );
    let log = root.join("procmond-ledger.log");
    let status = runtime.block_on(with_ledger(&socket, &data_dir, &log, &mut rows));
    assert!(
        status.success(),
        "procmond exited with {status}; see {}",
        log.display()
    );

    println!();
    println!(
        "procmond ({}), uid {}",
        env!("CARGO_BIN_EXE_procmond"),
        nix::unistd::getuid()
    );
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>9} {:>7}  note",
        "step", "VmRSS kB", "VmHWM kB", "anon kB", "file kB", "threads"
    );
    // 0 is "not read" (the process was gone).
    let cell = |value: u64| {
        if value == 0 {
            "-".to_owned()
        } else {
            value.to_string()
        }
    };
    for (step, m, note) in &rows {
        println!(
            "{step:<32} {:>9} {:>9} {:>9} {:>9} {:>7}  {note}",
            cell(m.rss),
            cell(m.hwm),
            cell(m.anon),
            cell(m.file),
            cell(m.threads)
        );
    }
    let worst = rows.iter().map(|(_, m, _)| m.hwm).max().unwrap_or(0);
    println!(
        "target: under {TARGET_KB} kB (30 MB) with {n} entries: {}",
        if worst < TARGET_KB { "met" } else { "NOT met" }
    );
    println!("procmond's logs: {}", root.display());
}
