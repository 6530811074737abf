//! The audit ledger on disk: append throughput, proof generation and reopening, on ledgers of
//! 1,000,000 and 10,000,000 entries.
//!
//! ```text
//! cargo bench -p daemoneye-lib --features ledger --bench ledger
//! LEDGER_BENCH_MAX=1000000 cargo bench -p daemoneye-lib --features ledger --bench ledger
//! ```
//!
//! Entries are a mix like procmond's: every other one a procmond `scan` (75 bytes), the others
//! agent `alert_raised` entries (about 120 bytes), so about 100 bytes each; BLAKE3 ledgers.
//!
//! - `ledger/append/batch/1000`: batches of 1,000 entries into a fresh ledger in a temporary
//!   directory on disk, each batch one `fdatasync` of `entries.log` (what an acknowledged
//!   append costs). Reported in entries per second. Target: at least 100,000 entries/s. The
//!   ledger grows during the measurement (to millions of entries, deleted afterwards), so
//!   the number covers appends at every size up to that.
//! - `ledger/append/batch/1`: one entry per append, so one `fdatasync` per entry (procmond's
//!   `AppendAudit` path), for information.
//! - `ledger/prove/N` and `ledger/consistency/N/{from_half,from_recent}`: an inclusion proof
//!   of a random entry, and a consistency proof from an older signed checkpoint (`from_half`:
//!   of N/2 + N/7 ≈ 0.64·N entries; `from_recent`: of N − 1,000 entries) to the newest one,
//!   on a ledger of N entries. Both include what procmond pays per request: reading the
//!   entry, checking the old note's signature and its root against the stored tree.
//!   Target: under 1 ms. These numbers are **warm-cache**: every file of the ledger is read
//!   once before, so every page a proof reads (a few tree nodes per level, one index slot,
//!   one entry) is in the page cache (the machine this was written on holds the whole ledger
//!   in memory).
//! - `ledger/open/N/clean` and `ledger/open/N/replay_10000`: [`Ledger::open`] of the ledger
//!   with nothing to replay, and with 10,000 entries appended after its newest checkpoint
//!   (each open cuts the derived files back to the checkpoint and replays those entries).
//! - `ledger/cold/N` (printed, not a criterion benchmark): an open, a `prove` of a random
//!   entry on an open ledger, a second one right after it, and a `consistency` from
//!   `from_half`, each timed once right after `sync; echo 3 > /proc/sys/vm/drop_caches`, in
//!   5 rounds: median and range. Needs root (skipped otherwise, with
//!   `LEDGER_BENCH_COLD=0`, or with a filter that does not match `ledger/cold`).
//!
//! - `ledger/scrub/N` (printed, not a criterion benchmark): one background-check pass
//!   ([`scrub`]) over the whole ledger with no rate limit, warm (after reading every file
//!   once) and, as root, cold (after `sync; echo 3 > /proc/sys/vm/drop_caches`): time, bytes
//!   read, entries/s and MiB/s, and how long a pass takes at the default
//!   `ledger.verify_bytes_per_sec` (8 MiB/s). Skipped with a filter that does not match
//!   `ledger/scrub`.
//!
//! The ledgers of 1,000,000 and 10,000,000 entries are built once (the build is timed and
//! printed) under `target/ledger-bench/lib-N/` and reused by later runs when they have the
//! expected size and checkpoints. The 10,000,000-entry ledger takes about 1.7 GB (1.05 GB of
//! entries, 80 MB of index, 640 MB of tree files). `LEDGER_BENCH_MAX=N` skips the sizes above
//! N; `LEDGER_BENCH_DIR` moves the directory. Each built ledger has three signed
//! checkpoints, at about 0.64·N, N − 1,000 and N entries. The 10,000 entries `open/replay`
//! appends are cut off `entries.log` again afterwards (or by the next run, if this one was
//! interrupted). With `--test` or `--list`, a 20,000-entry ledger stands in for both.
//!
//! The set-up (building or checking the ledgers) runs whatever the benchmark filter is. A
//! `sync` runs before each benchmark that `fdatasync`s, so that it does not wait behind the
//! writeback of what the set-up or an earlier benchmark wrote.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::Entry;
use daemoneye_lib::ledger::store::{Clock, Ledger, Pacer, ScrubOutcome, Settings, scrub};
use daemoneye_lib::ledger::verify::{self, Verified};

#[path = "support/ledger_entries.rs"]
mod ledger_entries;
use ledger_entries::{Rng, T0, entry};

/// Entries per `append` while a big ledger is built.
const BUILD_BATCH: u64 = 100_000;
/// Entries appended after the newest checkpoint for `open/replay`.
const REPLAY: u64 = 10_000;
/// Rounds of the cold-cache measurement.
const COLD_ROUNDS: usize = 5;

fn settings() -> Settings {
    Settings {
        hash: HashAlg::Blake3,
        origin: "daemoneye.ledger/bench/host-1".to_owned(),
    }
}

fn entries(range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(entry).collect()
}

fn bench_root() -> PathBuf {
    std::env::var_os("LEDGER_BENCH_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target/tmp has a parent")
                .join("ledger-bench")
        },
        PathBuf::from,
    )
}

/// Whether criterion only lists or smoke-tests the benchmarks (`--list`, `--test`).
fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--list" || a == "--test")
}

/// The ledger sizes to benchmark.
fn sizes() -> Vec<u64> {
    if quick_mode() {
        return vec![20_000];
    }
    let max = std::env::var("LEDGER_BENCH_MAX")
        .ok()
        .and_then(|v| v.replace('_', "").parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    [1_000_000, 10_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect()
}

/// The sizes of the three checkpoints of a ledger of `n` entries.
fn checkpoint_sizes(n: u64) -> [u64; 3] {
    [n / 2 + n / 7, n - 1_000, n]
}

fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, &settings()).expect("the ledger opens").0
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Prints what the ledger's files take on disk.
fn print_sizes(dir: &Path) {
    let (mut entries, mut index, mut tree, mut checkpoints, mut levels) = (0, 0, 0, 0, 0);
    for file in fs::read_dir(dir).expect("the ledger directory lists") {
        let file = file.expect("a directory entry");
        let len = file.metadata().expect("a file's size").len();
        let name = file.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "entries.log" => entries = len,
            "entries.idx" => index = len,
            "checkpoints.log" => checkpoints = len,
            _ if name.starts_with("tree-") => {
                tree += len;
                levels += 1;
            }
            _ => {}
        }
    }
    println!(
        "  on disk: entries.log {}, entries.idx {}, tree-*.hash {} ({levels} files), \
         checkpoints.log {checkpoints} B, total {}",
        mib(entries),
        mib(index),
        mib(tree),
        mib(entries + index + tree + checkpoints),
    );
}

/// Cuts `entries.log` back to the newest checkpoint when entries were appended after it (by
/// `open/replay`, possibly interrupted), so that the ledger is again exactly its checkpoints.
fn trim_to_checkpoint(dir: &Path) {
    let ledger = open(dir);
    let covered = ledger.latest().map_or(0, |c| c.checkpoint.size);
    let extra = ledger.size() - covered;
    if extra == 0 {
        return;
    }
    let frames: u64 = ledger
        .entries(covered, extra, usize::MAX)
        .expect("the entries after the checkpoint read")
        .iter()
        .map(|e| 8 + e.len() as u64)
        .sum();
    drop(ledger);
    let log = OpenOptions::new()
        .write(true)
        .open(dir.join("entries.log"))
        .expect("entries.log opens");
    let len = log.metadata().expect("entries.log's size").len();
    log.set_len(len - frames).expect("entries.log is cut");
    log.sync_all().expect("entries.log syncs");
}

/// Whether `dir` holds the benchmark ledger of `n` entries (after a trim of a replay tail).
fn is_ready(dir: &Path, n: u64) -> bool {
    if !dir.join("meta").exists() {
        return false;
    }
    let Ok((ledger, _)) = Ledger::open(dir, &settings()) else {
        return false;
    };
    let ok = ledger.checkpoint_count() == 3
        && ledger.latest().map(|c| c.checkpoint.size) == Some(n)
        && ledger.size() >= n;
    drop(ledger);
    if ok {
        trim_to_checkpoint(dir);
    }
    ok
}

/// The ledger of `n` entries under the bench directory, built now if needed.
fn prepare(n: u64) -> PathBuf {
    let dir = bench_root().join(format!("lib-{n}"));
    if is_ready(&dir, n) {
        println!("ledger of {n} entries: reusing {}", dir.display());
        print_sizes(&dir);
        return dir;
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("the old bench ledger is removed");
    }
    println!("ledger of {n} entries: building {}", dir.display());
    let started = Instant::now();
    let mut ledger = open(&dir);
    let mut next = 0;
    let mut bytes = 0u64;
    for (i, size) in checkpoint_sizes(n).into_iter().enumerate() {
        while next < size {
            let end = size.min(next + BUILD_BATCH);
            let batch = entries(next..end);
            bytes += batch
                .iter()
                .map(|e| e.encode().expect("encodes").len() as u64)
                .sum::<u64>();
            ledger.append(&batch).expect("append");
            next = end;
        }
        ledger
            .checkpoint(T0 + size as i64 * 10 + i as i64)
            .expect("checkpoint");
    }
    drop(ledger);
    let took = started.elapsed();
    println!(
        "  built in {} ({:.0} entries/s, batches of {BUILD_BATCH}, generation included); \
         mean entry {:.1} bytes",
        human(took),
        n as f64 / took.as_secs_f64(),
        bytes as f64 / n as f64
    );
    print_sizes(&dir);
    dir
}

fn append(c: &mut Criterion) {
    let root = bench_root();
    fs::create_dir_all(&root).expect("the bench directory");
    let mut group = c.benchmark_group("ledger/append");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for batch_len in [1_000u64, 1] {
        let dir = tempfile::tempdir_in(&root).expect("a temporary directory");
        let mut ledger = open(dir.path());
        // Two batches appended in turn, so that single appends alternate scans and alerts.
        let batches = [entries(0..batch_len), entries(batch_len..2 * batch_len)];
        let mean = batches
            .iter()
            .flatten()
            .map(|e| e.encode().expect("encodes").len())
            .sum::<usize>() as f64
            / (2 * batch_len) as f64;
        println!("ledger/append/batch/{batch_len}: mean entry {mean:.1} bytes");
        group.throughput(Throughput::Elements(batch_len));
        settle();
        let mut turn = 0;
        group.bench_function(BenchmarkId::new("batch", batch_len), |b| {
            b.iter(|| {
                turn ^= 1;
                ledger.append(black_box(&batches[turn])).expect("append")
            });
        });
        println!(
            "ledger/append/batch/{batch_len}: the ledger holds {} entries",
            ledger.size()
        );
    }
    group.finish();
}

fn proofs(c: &mut Criterion) {
    for n in sizes() {
        let dir = prepare(n);
        let ledger = open(&dir);
        let notes = ledger
            .checkpoint_notes(0, usize::MAX)
            .expect("the checkpoints read");
        assert_eq!(notes.len(), 3);
        let key = ledger.verifier();

        // One proof of each kind checked, so the benchmarks time working proofs.
        let mut rng = Rng(n);
        let proof = ledger.prove(rng.below(n)).expect("prove");
        assert!(matches!(
            verify::verify_text(&proof.to_text(), &key, None),
            Ok(Verified::Inclusion { .. })
        ));
        for old in &notes[..2] {
            let proof = ledger.consistency(old).expect("consistency");
            assert!(matches!(
                verify::verify_text(&proof.to_text(), &key, Some(old)),
                Ok(Verified::Consistency { .. })
            ));
        }

        warm(&dir);
        settle();
        let mut group = c.benchmark_group("ledger");
        group.bench_function(BenchmarkId::new("prove", n), |b| {
            b.iter(|| ledger.prove(rng.below(n)).expect("prove"));
        });
        for (name, old) in [("from_half", &notes[0]), ("from_recent", &notes[1])] {
            group.bench_function(BenchmarkId::new(format!("consistency/{n}"), name), |b| {
                b.iter(|| ledger.consistency(black_box(old)).expect("consistency"));
            });
        }
        drop(ledger);

        let (_, recovery) = Ledger::open(&dir, &settings()).expect("the ledger opens");
        assert_eq!(recovery.replayed, 0);
        settle();
        group.sample_size(30);
        group.bench_function(BenchmarkId::new(format!("open/{n}"), "clean"), |b| {
            b.iter(|| Ledger::open(black_box(&dir), &settings()).expect("the ledger opens"));
        });

        let mut ledger = open(&dir);
        ledger.append(&entries(n..n + REPLAY)).expect("append");
        drop(ledger);
        let (_, recovery) = Ledger::open(&dir, &settings()).expect("the ledger opens");
        assert_eq!(recovery.replayed, REPLAY);
        settle();
        group.bench_function(
            BenchmarkId::new(format!("open/{n}"), format!("replay_{REPLAY}")),
            |b| {
                b.iter(|| Ledger::open(black_box(&dir), &settings()).expect("the ledger opens"));
            },
        );
        group.finish();
        trim_to_checkpoint(&dir);
    }
}

/// Reads every file of the ledger once, so that the "warm" benchmarks are warm from their
/// first iteration (a cache dropped by an earlier run's cold measurement would otherwise be
/// refilled by random reads during the measurement).
fn warm(dir: &Path) {
    let started = Instant::now();
    let mut bytes = 0;
    for file in fs::read_dir(dir).expect("the ledger directory lists") {
        let mut file = fs::File::open(file.expect("a directory entry").path()).expect("opens");
        bytes += std::io::copy(&mut file, &mut std::io::sink()).expect("reads");
    }
    println!(
        "  page cache warmed: read {} in {}",
        mib(bytes),
        human(started.elapsed())
    );
}

/// `sync`: writes left by set-up (a build, an earlier benchmark's unsynced tree files) reach
/// the disk before a benchmark whose `fdatasync`s would otherwise wait behind them.
fn settle() -> bool {
    Command::new("sync").status().is_ok_and(|s| s.success())
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`; false when that is not allowed.
fn drop_caches() -> bool {
    settle() && fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "median {:>9}  (min {}, max {})",
        human(samples[samples.len() / 2]),
        human(samples[0]),
        human(samples[samples.len() - 1])
    )
}

/// Cold-cache timings, one operation at a time after dropping the page cache.
fn cold(_: &mut Criterion) {
    let skipped = quick_mode()
        || std::env::var("LEDGER_BENCH_COLD").is_ok_and(|v| v == "0")
        || std::env::args()
            .skip(1)
            .any(|a| !a.starts_with('-') && !"ledger/cold".contains(a.as_str()));
    if skipped {
        return;
    }
    for n in sizes() {
        let dir = prepare(n);
        let notes = open(&dir)
            .checkpoint_notes(0, usize::MAX)
            .expect("the checkpoints read");
        let mut rng = Rng(n ^ 0xc01d);
        let (mut opens, mut proves, mut seconds, mut consistencies) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..COLD_ROUNDS {
            if !drop_caches() {
                println!("ledger/cold/{n}: skipped (dropping the page cache needs root)");
                return;
            }
            let started = Instant::now();
            let ledger = open(&dir);
            opens.push(started.elapsed());

            // The realistic case: a ledger open for long, whose pages were evicted.
            assert!(drop_caches());
            let index = rng.below(n);
            let started = Instant::now();
            black_box(ledger.prove(index).expect("prove"));
            proves.push(started.elapsed());
            let index = rng.below(n);
            let started = Instant::now();
            black_box(ledger.prove(index).expect("prove"));
            seconds.push(started.elapsed());

            assert!(drop_caches());
            let started = Instant::now();
            black_box(ledger.consistency(&notes[0]).expect("consistency"));
            consistencies.push(started.elapsed());
        }
        println!("ledger/cold/{n} ({COLD_ROUNDS} rounds, each after sync + drop_caches):");
        println!(
            "  open (nothing to replay)          {}",
            summary(&mut opens)
        );
        println!(
            "  prove(random), open ledger        {}",
            summary(&mut proves)
        );
        println!(
            "  a second prove(random) right after {}",
            summary(&mut seconds)
        );
        println!(
            "  consistency(from_half)            {}",
            summary(&mut consistencies)
        );
    }
}

/// The default `ledger.verify_bytes_per_sec`.
const DEFAULT_VERIFY_RATE: u64 = 8 * 1024 * 1024;

/// The real clock; its sleeps are never asked for by an unlimited pacer.
struct Steady(Instant);

impl Clock for Steady {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&self, duration: Duration) -> bool {
        std::thread::sleep(duration);
        true
    }
}

/// One unthrottled pass over the ledger in `dir`: its time and bytes read.
fn scrub_once(dir: &Path, n: u64) -> (Duration, u64) {
    let ledger = open(dir);
    let target = ledger.scrub_target().expect("not broken");
    let started = Instant::now();
    let mut pacer = Pacer::new(Steady(Instant::now()), u64::MAX);
    let outcome = scrub(&target, &mut pacer, |_| {}).expect("the files read");
    let took = started.elapsed();
    let ScrubOutcome::Clean(stats) = outcome else {
        panic!("the bench ledger is damaged: {outcome:?}");
    };
    assert_eq!(stats.entries, n);
    (took, stats.bytes)
}

/// The background check's speed with no rate limit, warm and cold, and a pass's length at the
/// default rate.
fn scrubs(_: &mut Criterion) {
    let skipped = quick_mode()
        || std::env::args()
            .skip(1)
            .any(|a| !a.starts_with('-') && !"ledger/scrub".contains(a.as_str()));
    if skipped {
        return;
    }
    for n in sizes() {
        let dir = prepare(n);
        let report = |what: &str, (took, bytes): (Duration, u64)| {
            println!(
                "  {what}: {} for {} ({:.0} entries/s, {:.0} MiB/s); at the default {} /s a pass takes {:.0} s",
                human(took),
                mib(bytes),
                n as f64 / took.as_secs_f64(),
                bytes as f64 / f64::from(1 << 20) / took.as_secs_f64(),
                mib(DEFAULT_VERIFY_RATE),
                bytes as f64 / DEFAULT_VERIFY_RATE as f64,
            );
        };
        println!("ledger/scrub/{n} (one unthrottled pass of the background check):");
        warm(&dir);
        report("warm", scrub_once(&dir, n));
        if drop_caches() {
            report("cold", scrub_once(&dir, n));
        } else {
            println!("  cold: skipped (dropping the page cache needs root)");
        }
    }
}

criterion_group!(benches, append, proofs, cold, scrubs);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
