//! Scenario: procmond against `ps` on a machine with many processes.
//!
//! ```text
//! cargo bench -p procmond --bench ps_compare -- [--processes N] [--runs R]
//! ```
//!
//! 1. Starts N idle processes (`sleep`, default 10,000) and records each one's PID and start
//!    time (from `/proc/PID/stat`), because PIDs wrap quickly when thousands are spawned.
//! 2. Times, R times each (default 7), and prints the median:
//!    - `ps -eo pid,ppid,uid,stat,comm,args > /dev/null`;
//!    - `procmond --once --format json > /dev/null` (a fresh process: cold hash cache);
//!    - a warm scan: one in-process collector scanning again after a first scan.
//! 3. Prints the ratios to `ps` and the peak RSS of `procmond --once` (from `getrusage` of the
//!    waited-for children, taken before `ps` runs so that only procmond counts).
//! 4. Kills exactly the processes it started: each is a child of this process, killed and
//!    reaped through its own handle, after checking that its PID still has the recorded
//!    start time.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use procmond::{Collector, CollectorOptions};

struct Idle {
    child: Child,
    start_ticks: Option<u64>,
}

fn start_ticks(pid: u32) -> Option<u64> {
    let data = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    procmond::procfs::parse_stat(&data).map(|s| s.starttime)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_command(program: &str, args: &[&str], runs: usize) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|err| panic!("{program}: {err}"));
            assert!(status.success(), "{program} {args:?} failed");
            started.elapsed()
        })
        .collect();
    median(samples)
}

fn arg_value(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a whole number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches passes nothing useful.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let n = arg_value(&args, "--processes", 10_000);
    let runs = arg_value(&args, "--runs", 7);
    let procmond = env!("CARGO_BIN_EXE_procmond");

    eprintln!("starting {n} idle processes");
    let started = Instant::now();
    let mut idle: Vec<Idle> = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        idle.push(Idle {
            child,
            start_ticks: None,
        });
    }
    for p in &mut idle {
        p.start_ticks = start_ticks(p.child.id());
    }
    eprintln!("started in {:.1?}", started.elapsed());
    let total = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            })
            .count()
        })
        .unwrap_or(0);

    let once = time_command(procmond, &["--once", "--format", "json"], runs);
    let once_rss_kib = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u.max_rss());
    let ps = time_command("ps", &["-eo", "pid,ppid,uid,stat,comm,args"], runs);

    let mut collector = Collector::new(CollectorOptions::default()).expect("collector starts");
    let first = collector.scan();
    let warm = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let scan = collector.scan();
                assert!(scan.records.len() >= n);
                t.elapsed()
            })
            .collect(),
    );

    println!("processes on the machine: {total} ({n} idle started by this bench)");
    println!("ps -eo pid,ppid,uid,stat,comm,args   median of {runs}: {ps:>10.1?}");
    println!(
        "procmond --once --format json       median of {runs}: {once:>10.1?}  ratio {:.2}",
        once.as_secs_f64() / ps.as_secs_f64()
    );
    println!(
        "warm in-process scan                median of {runs}: {warm:>10.1?}  ratio {:.2}",
        warm.as_secs_f64() / ps.as_secs_f64()
    );
    println!(
        "procmond --once peak RSS: {:.1} MiB",
        once_rss_kib as f64 / 1024.0
    );
    println!(
        "first scan hashed {} files; warm scans hashed 0 and reused {}",
        first.hashed_files,
        collector.cached_hashes()
    );

    // An unreaped child's PID cannot be reused, so killing through the handle hits exactly the
    // process started; the start-time check confirms that assumption.
    let mut mismatched = 0;
    for mut p in idle {
        if start_ticks(p.child.id()) != p.start_ticks {
            mismatched += 1;
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    eprintln!("killed {n} idle processes ({mismatched} with an unexpected start time)");
}
