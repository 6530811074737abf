//! A full scan of the machine's processes, with a warm and with a cold hash cache.
//!
//! `cargo bench -p procmond --bench scan`. Warm: one collector scans again and again, so every
//! executable's hash comes from the cache and processes seen before reuse their cgroup path.
//! Cold: every iteration starts a new collector, so every executable is read and hashed.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use procmond::{Collector, CollectorOptions};

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group.sample_size(20);
    let mut warm = Collector::new(CollectorOptions::default()).expect("collector starts");
    warm.scan();
    group.bench_function("warm", |b| b.iter(|| warm.scan()));
    group.bench_function("cold", |b| {
        b.iter_batched(
            || Collector::new(CollectorOptions::default()).expect("collector starts"),
            |mut collector| collector.scan(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
