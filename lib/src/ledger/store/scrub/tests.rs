//! The background check: a clean ledger passes with every byte accounted for, each kind of
//! damage is found at its file, offset and entry, the pacer keeps the rate on a clock that
//! moves only when slept (no wall-clock time is asserted), and a stop ends a pass.

use std::cell::Cell;
use std::fs;
use std::path::Path;

use super::*;
use crate::ledger::entry::{Body, Source};
use crate::ledger::store::Settings;

fn settings() -> Settings {
    Settings {
        hash: HashAlg::Blake3,
        origin: "daemoneye.ledger/test/host".to_owned(),
    }
}

fn entry(n: u64) -> Entry {
    Entry {
        source: Source::Agent,
        time_ms: 1_700_000_000_000 + n as i64,
        body: Body::AlertRaised {
            alert_id: format!("alert-{n}"),
            rule_id: "DE-LNX-0002".to_owned(),
            severity: "high".to_owned(),
            host: "host".to_owned(),
        },
    }
}

/// A clock that moves only when slept: time is what the pacer asked for, nothing else.
#[derive(Default)]
struct TestClock {
    now: Cell<Duration>,
    sleeps: Cell<u64>,
    /// Sleeps allowed before `sleep` asks the pass to stop.
    stop_after: Option<u64>,
}

impl Clock for &TestClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn sleep(&self, duration: Duration) -> bool {
        self.now.set(self.now.get() + duration);
        self.sleeps.set(self.sleeps.get() + 1);
        self.stop_after.is_none_or(|n| self.sleeps.get() < n)
    }
}

/// A ledger of `n` entries with checkpoints at 100, 1000 and `n`; and the offset of each frame.
fn ledger(dir: &Path, n: u64) -> (Ledger, Vec<u64>) {
    let (mut ledger, _) = Ledger::open(dir, &settings()).expect("opens");
    for (start, end) in [(0, 100), (100, 1000), (1000, n)] {
        let (start, end) = (start.min(n), end.min(n));
        let batch: Vec<Entry> = (start..end).map(entry).collect();
        ledger.append(&batch).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    let offsets = (0..n)
        .map(|i| ledger.index_offset(i).expect("indexed"))
        .collect();
    (ledger, offsets)
}

fn run(ledger: &Ledger, bytes_per_sec: u64) -> (ScrubOutcome, Duration) {
    let clock = TestClock::default();
    let mut pacer = Pacer::new(&clock, bytes_per_sec);
    let target = ledger.scrub_target().expect("not broken");
    let outcome = scrub(&target, &mut pacer, |_| {}).expect("the files read");
    (outcome, clock.now.get())
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).expect("reads");
    change(&mut bytes);
    fs::write(path, bytes).expect("writes");
}

fn damaged(file: &str, offset: u64, entry: Option<u64>) -> (String, u64, Option<u64>) {
    (file.to_owned(), offset, entry)
}

#[test]
fn a_clean_ledger_passes_and_every_byte_is_charged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path(), 5000);
    let (outcome, _) = run(&ledger, u64::MAX);
    let ScrubOutcome::Clean(stats) = outcome else {
        panic!("not clean: {outcome:?}");
    };
    assert_eq!(stats.entries, 5000);
    assert_eq!(stats.checkpoints, 3);
    // Every byte of every file a pass reads, once: entries.log, entries.idx, checkpoints.log
    // and each tree level.
    let mut files = vec![ENTRIES.to_owned(), INDEX.to_owned(), CHECKPOINTS.to_owned()];
    files.extend((0..13).map(|level| format!("tree-{level:02}.hash")));
    let on_disk: u64 = files
        .iter()
        .map(|name| fs::metadata(dir.path().join(name)).expect("exists").len())
        .sum();
    assert_eq!(stats.bytes, on_disk);
}

#[test]
fn an_empty_ledger_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = Ledger::open(dir.path(), &settings()).expect("opens");
    let (outcome, _) = run(&ledger, 1000);
    assert!(matches!(
        outcome,
        ScrubOutcome::Clean(ScrubStats { entries: 0, .. })
    ));
}

/// Rewrites entry `index`'s payload in place with `change` and fixes its checksum.
fn rewrite_entry(dir: &Path, offset: u64, change: impl FnOnce(&mut [u8])) {
    edit(&dir.join(ENTRIES), |bytes| {
        let at = offset as usize;
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        change(&mut bytes[at + 8..at + 8 + len]);
        let crc = crc32c::crc32c(&bytes[at + 8..at + 8 + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
    });
}

#[test]
fn damage_is_found_where_it_is() {
    type Case = (&'static str, fn(&Path, &[u64]), (String, u64, Option<u64>));
    let cases: Vec<Case> = vec![
        (
            "a byte of entry 2 flipped",
            |dir, offsets| edit(&dir.join(ENTRIES), |b| b[offsets[2] as usize + 20] ^= 0x20),
            damaged(ENTRIES, 0, Some(2)),
        ),
        (
            "entry 3's length zeroed",
            |dir, offsets| {
                edit(&dir.join(ENTRIES), |b| {
                    b[offsets[3] as usize..offsets[3] as usize + 4].fill(0);
                });
            },
            damaged(ENTRIES, 0, Some(3)),
        ),
        (
            "entry 700 changed with its checksum",
            |dir, offsets| rewrite_entry(dir, offsets[700], |p| p[p.len() - 1] ^= 1),
            damaged("tree-00.hash", 700 * 32, Some(700)),
        ),
        (
            "a leaf hash flipped",
            |dir, _| edit(&dir.join("tree-00.hash"), |b| b[41 * 32 + 7] ^= 1),
            damaged("tree-00.hash", 41 * 32, Some(41)),
        ),
        (
            "a node of level 3 flipped",
            |dir, _| edit(&dir.join("tree-03.hash"), |b| b[9 * 32] ^= 1),
            damaged("tree-03.hash", 9 * 32, Some(72)),
        ),
        (
            "an index slot changed",
            |dir, _| edit(&dir.join(INDEX), |b| b[5 * 8 + 7] ^= 1),
            damaged(INDEX, 5 * 8, Some(5)),
        ),
        (
            "a checkpoint's signature flipped",
            |dir, _| {
                edit(&dir.join(CHECKPOINTS), |b| {
                    // The first note's last bytes are its signature (base64) and a newline.
                    let first =
                        8 + 8 + u32::from_be_bytes(b[8..12].try_into().expect("4")) as usize;
                    let at = first - 10;
                    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
                    let crc = crc32c::crc32c(&b[16..first]);
                    b[12..16].copy_from_slice(&crc.to_be_bytes());
                });
            },
            damaged(CHECKPOINTS, 8, None),
        ),
    ];
    for (name, change, want) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ledger, offsets) = ledger(dir.path(), 2000);
        drop(ledger);
        change(dir.path(), &offsets);
        let ledger = Ledger::open(dir.path(), &settings()).map(|(l, _)| l);
        let ledger = ledger.unwrap_or_else(|err| panic!("{name}: the open does not see it: {err}"));
        let (outcome, _) = run(&ledger, u64::MAX);
        let ScrubOutcome::Damaged(found) = outcome else {
            panic!("{name}: not found: {outcome:?}");
        };
        let mut want = want;
        if want.0 == ENTRIES {
            want.1 = offsets[want.2.map_or(0, |i| i as usize)];
        }
        assert_eq!(
            (found.file.clone(), found.offset, found.entry),
            want,
            "{name}: {found}"
        );
    }
}

#[test]
fn an_entry_changed_with_every_tree_node_above_it_fails_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, offsets) = ledger(dir.path(), 2000);
    let target = ledger.scrub_target().expect("not broken");
    drop(ledger);
    rewrite_entry(dir.path(), offsets[500], |p| p[p.len() - 1] ^= 1);
    // Rebuild every tree level from the changed log, as a careful forger would.
    let log = fs::read(dir.path().join(ENTRIES)).expect("reads");
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut frontier = Frontier::new(HashAlg::Blake3);
    for (i, &at) in offsets.iter().enumerate() {
        let at = at as usize;
        let len = u32::from_be_bytes(log[at..at + 4].try_into().expect("4")) as usize;
        let payload = &log[at + 8..at + 8 + len];
        for (level, _, hash) in frontier.push(HashAlg::Blake3.leaf_hash(payload)) {
            if levels.len() <= level as usize {
                levels.resize_with(level as usize + 1, Vec::new);
            }
            levels[level as usize].extend_from_slice(&hash);
        }
        assert_eq!(frontier.size(), i as u64 + 1);
    }
    for (level, bytes) in levels.iter().enumerate() {
        fs::write(Levels::path(dir.path(), level as u32), bytes).expect("writes");
    }
    let clock = TestClock::default();
    let mut pacer = Pacer::new(&clock, u64::MAX);
    let outcome = scrub(&target, &mut pacer, |_| {}).expect("reads");
    let ScrubOutcome::Damaged(found) = outcome else {
        panic!("not found: {outcome:?}");
    };
    // Checkpoints at 100, 1000 and 2000: the one at 1000 (the second frame) is the first that
    // covers entry 500.
    let first_frame = 8
        + 8
        + u64::from(u32::from_be_bytes(
            fs::read(dir.path().join(CHECKPOINTS)).expect("reads")[8..12]
                .try_into()
                .expect("4"),
        ));
    assert_eq!(
        (found.file.as_str(), found.offset, found.entry),
        (CHECKPOINTS, first_frame, None),
        "{found}"
    );
    assert!(found.reason.contains("at size 1000"), "{found}");
}

#[test]
fn the_pass_never_reads_ahead_of_its_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path(), 3000);
    let rate = 64 * 1024;
    let clock = TestClock::default();
    let mut pacer = Pacer::new(&clock, rate);
    let target = ledger.scrub_target().expect("not broken");
    // Every 4,096 entries and at the end, the bytes charged so far are within the rate times
    // the (test) time since the pass began.
    let mut seen = Vec::new();
    let outcome = scrub(&target, &mut pacer, |entries| {
        seen.push(entries);
    })
    .expect("reads");
    let ScrubOutcome::Clean(stats) = outcome else {
        panic!("not clean: {outcome:?}");
    };
    assert_eq!(seen, vec![3000]);
    let elapsed = clock.now.get().as_secs_f64();
    let allowed = rate as f64 * elapsed;
    assert!(
        stats.bytes as f64 <= allowed + 1.0,
        "{} > {allowed}",
        stats.bytes
    );
    // And it did not sleep much longer than the rate needs: one charge's worth at most.
    assert!(
        stats.bytes as f64 > allowed - 1024.0,
        "{} bytes in {elapsed} s",
        stats.bytes
    );
    assert!(
        clock.sleeps.get() > 100,
        "paced in small steps: {}",
        clock.sleeps.get()
    );
}

#[test]
fn the_pacer_keeps_every_charge_within_the_rate() {
    let clock = TestClock::default();
    let mut pacer = Pacer::new(&clock, 1000);
    for (n, bytes) in [10u64, 0, 999, 1, 5000, 3, 3, 3].into_iter().enumerate() {
        pacer.charge(bytes).expect("not stopped");
        let allowed = 1000.0 * clock.now.get().as_secs_f64();
        let charged = pacer.charged() as f64;
        assert!(
            charged <= allowed + 1e-3,
            "charge {n}: {charged} > {allowed}"
        );
        assert!(charged >= allowed - 1e-3, "charge {n}: slept past the rate");
    }
    assert_eq!(pacer.charged(), 6019);
}

#[test]
fn a_stop_ends_the_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path(), 3000);
    let clock = TestClock {
        stop_after: Some(5),
        ..TestClock::default()
    };
    let mut pacer = Pacer::new(&clock, 1024);
    let target = ledger.scrub_target().expect("not broken");
    let outcome = scrub(&target, &mut pacer, |_| {}).expect("reads");
    assert_eq!(outcome, ScrubOutcome::Stopped);
    assert_eq!(clock.sleeps.get(), 5);
}

#[test]
fn entries_appended_after_the_target_was_taken_are_not_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, _) = ledger(dir.path(), 1500);
    let target = ledger.scrub_target().expect("not broken");
    let more: Vec<Entry> = (1500..1600).map(entry).collect();
    ledger.append(&more).expect("appends");
    let clock = TestClock::default();
    let mut pacer = Pacer::new(&clock, u64::MAX);
    let outcome = scrub(&target, &mut pacer, |_| {}).expect("reads");
    assert!(
        matches!(
            outcome,
            ScrubOutcome::Clean(ScrubStats { entries: 1500, .. })
        ),
        "{outcome:?}"
    );
}

#[test]
fn damage_in_the_newest_stored_entry_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, offsets) = ledger(dir.path(), 2000);
    drop(ledger);
    // Entry 1999 is the last the checkpoint covers and the frame the replay starts after: the
    // open reads it whole (no other frame before the tail).
    rewrite_entry(dir.path(), offsets[1999], |p| p[p.len() - 1] ^= 1);
    let err = Ledger::open(dir.path(), &settings())
        .err()
        .expect("refused");
    assert!(
        matches!(&err, LedgerError::Damaged { offset, .. } if *offset == offsets[1999]),
        "{err}"
    );
    let found = Damage::of_error(&err).expect("a place");
    assert_eq!(
        (found.file.as_str(), found.offset),
        (ENTRIES, offsets[1999])
    );
    assert!(found.reason.contains("entry 1999"), "{found}");
}
