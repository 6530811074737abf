//! Ingest into the event store, in records per second.
//!
//! `cargo bench -p daemoneye-lib --features storage --bench store`
//!
//! - `store/ingest`: one 10,000-record scan into a store that holds one earlier scan, so that
//!   the process events are computed (1 % of the processes exit and as many start between two
//!   scans). Each iteration gets a fresh store, prepared outside the timing.
//! - `store/ingest+retention`: the agent's steady state. One store keeps 100 scans; each
//!   iteration ingests the next scan and then enforces retention, which deletes the oldest.
//!
//! Records are realistic in size: paths, command lines of about 100 bytes, cgroup paths,
//! SHA-256 hex digests. Both use the store's default durability (an fsync per commit).

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use daemoneye_lib::models::{OnDisk, ProcessRecord, ScanSummary};
use daemoneye_lib::storage::{Retention, Store};

const PROCESSES: u32 = 10_000;
/// Processes replaced between two consecutive scans.
const CHURN: u32 = 100;
const CACHE_BYTES: usize = 16 << 20;

/// Scan number `scan`: pids `1 + scan * CHURN ..` so that each scan drops the `CHURN` lowest
/// pids of the previous one and adds as many new ones.
fn scan(scan: u32) -> (ScanSummary, Vec<ProcessRecord>) {
    let finished_at = 1_700_000_000_000 + i64::from(scan) * 10_000;
    let first = 1 + scan * CHURN;
    let records = (first..first + PROCESSES)
        .map(|pid| {
            let app = pid % 37;
            ProcessRecord {
                pid,
                parent: Some(pid / 7 + 1),
                name: Some(format!("worker-{app}")),
                path: Some(format!("/opt/vendor/app-{app}/bin/worker-{app}")),
                cmdline: Some(format!(
                    "/opt/vendor/app-{app}/bin/worker-{app} --config /etc/app-{app}/worker.toml \
                     --listen 127.0.0.1:{} --log-level info",
                    8000 + pid % 1000
                )),
                cwd: Some(format!("/var/lib/app-{app}")),
                root: Some("/".to_owned()),
                state: Some("S".to_owned()),
                uid: Some(1000 + app),
                gid: Some(1000 + app),
                euid: Some(1000 + app),
                egid: Some(1000 + app),
                suid: Some(1000 + app),
                sgid: Some(1000 + app),
                on_disk: OnDisk::Present,
                resident_size: Some(50_000_000 + u64::from(pid) * 4096),
                total_size: Some(1_500_000_000 + u64::from(pid) * 4096),
                user_time: Some(u64::from(scan) * 13 + u64::from(pid)),
                system_time: Some(u64::from(scan) * 3 + u64::from(pid)),
                disk_bytes_read: Some(u64::from(pid) * 1_000),
                disk_bytes_written: Some(u64::from(scan) * 100),
                start_time: Some(1_699_000_000 + i64::from(pid)),
                pgroup: Some(pid),
                threads: Some(1 + pid % 64),
                nice: Some(0),
                cgroup_path: Some(format!("/system.slice/app-{app}.service")),
                exe_sha256: Some(format!("{:064x}", u64::from(app) * 0x9e37_79b9_7f4a_7c15)),
                exe_dev: Some(2049),
                exe_inode: Some(100_000 + u64::from(app)),
                cpu_percent: Some(f64::from(pid % 100) / 10.0),
                scan_id: i64::from(scan),
                collected_at: finished_at - 500,
            }
        })
        .collect();
    let summary = ScanSummary {
        scan_id: i64::from(scan),
        started_at: finished_at - 1_000,
        finished_at,
        process_count: u64::from(PROCESSES),
        error_count: 0,
    };
    (summary, records)
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("store.redb"), CACHE_BYTES).expect("the store opens")
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(PROCESSES)));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));

    let (first_summary, first) = scan(0);
    let (next_summary, next) = scan(1);
    group.bench_function("ingest", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = open(dir.path());
                store.ingest(&first_summary, &first).expect("ingest");
                (dir, store)
            },
            |(dir, store)| {
                store.ingest(&next_summary, &next).expect("ingest");
                (dir, store)
            },
            BatchSize::PerIteration,
        );
    });

    const KEPT: u64 = 100;
    let policy = Retention {
        max_scans: KEPT,
        max_age: Duration::from_secs(365 * 24 * 3600),
        scans_per_transaction: 8,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    let mut number = 0;
    while number < KEPT as u32 {
        let (summary, records) = scan(number);
        store.ingest(&summary, &records).expect("ingest");
        number += 1;
    }
    group.bench_function("ingest+retention", |b| {
        b.iter_batched(
            || {
                number += 1;
                scan(number)
            },
            |(summary, records)| {
                store.ingest(&summary, &records).expect("ingest");
                let report = store
                    .enforce_retention(&policy, summary.finished_at)
                    .expect("retention");
                assert_eq!(report.scans, 1);
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
