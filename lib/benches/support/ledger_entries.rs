//! The entries of the ledger benchmarks (`lib/benches/ledger.rs` and
//! `procmond/benches/ledger_rss.rs`, which includes this file by path): about 100 bytes each,
//! a mix like procmond's, the same on every run.

use daemoneye_lib::ledger::entry::{Body, Entry, Source};

/// 2025-11-21T10:00:00Z, the first entry's time.
pub const T0: i64 = 1_763_719_200_000;

/// SplitMix64: a small, fixed pseudo-random sequence.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Entry `i` of the benchmark ledgers: a procmond scan for even `i`, an agent alert for odd.
pub fn entry(i: u64) -> Entry {
    let time_ms = T0 + i as i64 * 10;
    let mut rng = Rng(i);
    if i.is_multiple_of(2) {
        let mut records_hash = [0u8; 32];
        for chunk in records_hash.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_be_bytes());
        }
        Entry {
            source: Source::Procmond,
            time_ms,
            body: Body::Scan {
                scan_id: (i / 2) as i64,
                started_ms: time_ms - 850,
                finished_ms: time_ms,
                process_count: 300 + i % 97,
                records_hash,
            },
        }
    } else {
        let (a, b) = (rng.next(), rng.next());
        Entry {
            source: Source::Agent,
            time_ms,
            body: Body::AlertRaised {
                // A UUID-shaped id, 36 characters.
                alert_id: format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    b >> 52,
                    b & 0xffff_ffff_ffff
                ),
                rule_id: format!("linux.process.suspicious-shell-{:02}", i % 40),
                severity: SEVERITIES[(i / 2 % 4) as usize].to_owned(),
                host: "web-07.plant-7.example.net".to_owned(),
            },
        }
    }
}
