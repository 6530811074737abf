//! The ledger's files: round trips, crash recovery, and refusal of damaged or changed files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::ledger::entry::{Body, Entry, Source};
use crate::ledger::frame::ENTRIES_MAGIC;
use crate::ledger::merkle::{self, MemoryTree};

fn settings(hash: HashAlg) -> Settings {
    Settings {
        hash,
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

fn entries(range: Range<u64>) -> Vec<Entry> {
    range.map(entry).collect()
}

fn open(dir: &Path) -> (Ledger, Recovery) {
    Ledger::open(dir, &settings(HashAlg::Blake3)).expect("the ledger opens")
}

/// The root of a tree over the encodings of entries `0..n`, computed without the store.
fn expected_root(n: u64) -> Hash {
    let mut tree = MemoryTree::new(HashAlg::Blake3);
    for i in 0..n {
        tree.push(&entry(i).encode().expect("encodes"));
    }
    tree.root()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).expect("opens");
    file.write_all(bytes).expect("appends");
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("exists").len()
}

#[test]
fn a_new_ledger_has_its_key_and_files_and_grows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, recovery) = open(dir.path());
    assert!(recovery.created);
    assert_eq!(ledger.size(), 0);
    assert_eq!(ledger.root(), HashAlg::Blake3.empty_root());
    assert_eq!(ledger.append(&entries(0..3)).expect("appends"), 0..3);
    assert_eq!(ledger.append(&entries(3..10)).expect("appends"), 3..10);
    assert_eq!(ledger.root(), expected_root(10));
    assert_eq!(
        ledger.entry(4).expect("reads"),
        entry(4).encode().expect("encodes")
    );
    for name in [META, SIGNING_KEY, PUBLIC_KEY, ENTRIES, INDEX, CHECKPOINTS] {
        let mode = fs::metadata(dir.path().join(name))
            .expect("exists")
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o077, 0, "{name} is private");
    }
    assert_eq!(
        read_verifier(dir.path()).expect("public key"),
        ledger.verifier()
    );
}

#[test]
fn reopening_keeps_every_entry_the_key_and_the_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (verifier, root) = {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..5)).expect("appends");
        ledger.checkpoint(1).expect("signs");
        ledger.append(&entries(5..9)).expect("appends");
        (ledger.verifier(), ledger.root())
    };
    let (ledger, recovery) = open(dir.path());
    assert!(!recovery.created);
    assert_eq!(
        recovery.replayed, 4,
        "only the entries after the checkpoint"
    );
    assert_eq!(recovery.checkpoints, 1);
    assert_eq!(ledger.size(), 9);
    assert_eq!(ledger.root(), root);
    assert_eq!(ledger.verifier(), verifier);
    assert_eq!(ledger.latest().expect("checkpoint").checkpoint.size, 5);
}

#[test]
fn proofs_from_the_files_verify_against_the_signed_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, _) = open(dir.path());
    ledger.append(&entries(0..37)).expect("appends");
    let old = ledger.checkpoint(10).expect("signs").note.clone();
    ledger.append(&entries(37..100)).expect("appends");
    ledger.checkpoint(20).expect("signs");
    let verifier = ledger.verifier();
    for index in [0, 1, 36, 63, 64, 99] {
        let proof = ledger.prove(index).expect("proves");
        let cp = Checkpoint::verify_signed(&proof.checkpoint, &verifier).expect("signed");
        assert_eq!(cp.size, 100);
        assert_eq!(proof.entry, entry(index).encode().expect("encodes"));
        merkle::verify_inclusion(
            HashAlg::Blake3,
            index,
            cp.size,
            &HashAlg::Blake3.leaf_hash(&proof.entry),
            &proof.proof,
            &cp.root,
        )
        .expect("verifies");
    }
    let consistency = ledger.consistency(&old).expect("proves");
    assert_eq!(consistency.size1, 37);
    let new = Checkpoint::verify_signed(&consistency.checkpoint, &verifier).expect("signed");
    merkle::verify_consistency(
        HashAlg::Blake3,
        37,
        100,
        &expected_root(37),
        &new.root,
        &consistency.proof,
    )
    .expect("verifies");
}

#[test]
fn requests_outside_the_ledger_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, _) = open(dir.path());
    assert!(matches!(ledger.prove(0), Err(LedgerError::OutOfRange(_))));
    ledger.append(&entries(0..4)).expect("appends");
    ledger.checkpoint(1).expect("signs");
    ledger.append(&entries(4..6)).expect("appends");
    let err = ledger.prove(4).expect_err("not covered yet");
    assert!(err.to_string().contains("not covered"), "{err}");
    assert!(matches!(ledger.entry(6), Err(LedgerError::OutOfRange(_))));
    // A checkpoint of another ledger (another key) is refused.
    let other = tempfile::tempdir().expect("temp dir");
    let (mut stranger, _) = open(other.path());
    stranger.append(&entries(0..2)).expect("appends");
    let foreign = stranger.checkpoint(1).expect("signs").note.clone();
    assert!(matches!(
        ledger.consistency(&foreign),
        Err(LedgerError::Note { .. })
    ));
    assert!(matches!(
        ledger.consistency("not a checkpoint"),
        Err(LedgerError::Note { .. })
    ));
}

#[test]
fn a_torn_tail_is_cut_and_the_entries_before_it_kept() {
    for tail in [
        &[0u8, 0, 0][..],                                   // part of a length
        &[0, 0, 0, 40, 1, 2, 3, 4, 9, 9][..],               // a frame shorter than it says
        &[0u8; 300][..],                                    // zeros a file system left
        &[0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3][..], // a whole last frame, bad checksum
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let (mut ledger, _) = open(dir.path());
            ledger.append(&entries(0..6)).expect("appends");
        }
        let log = dir.path().join(ENTRIES);
        let good = file_len(&log);
        append_bytes(&log, tail);
        let (mut ledger, recovery) = open(dir.path());
        assert_eq!(recovery.entries_cut, tail.len() as u64, "tail {tail:?}");
        assert_eq!(file_len(&log), good, "the tail is gone from the file");
        assert_eq!(ledger.size(), 6);
        assert_eq!(ledger.root(), expected_root(6));
        ledger
            .append(&entries(6..8))
            .expect("appends after the cut");
        drop(ledger);
        let (ledger, recovery) = open(dir.path());
        assert_eq!(recovery.entries_cut, 0);
        assert_eq!(ledger.root(), expected_root(8));
    }
}

#[test]
fn a_torn_checkpoint_is_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..3)).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    append_bytes(&dir.path().join(CHECKPOINTS), &[0, 0, 1, 0, 7, 7]);
    let (ledger, recovery) = open(dir.path());
    assert_eq!(recovery.checkpoints_cut, 6);
    assert_eq!(recovery.checkpoints, 1);
    assert_eq!(ledger.size(), 3);
}

#[test]
fn derived_files_lost_after_the_checkpoint_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..20)).expect("appends");
        ledger.checkpoint(1).expect("signs");
        ledger.append(&entries(20..45)).expect("appends");
    }
    // A crash before the unsynced derived files reached the disk: they end anywhere after the
    // checkpoint's size, or are half written.
    let index = dir.path().join(INDEX);
    OpenOptions::new()
        .write(true)
        .open(&index)
        .expect("opens")
        .set_len(20 * 8 + 3)
        .expect("cuts");
    fs::remove_file(Levels::path(dir.path(), 5)).ok();
    OpenOptions::new()
        .write(true)
        .open(Levels::path(dir.path(), 0))
        .expect("opens")
        .set_len(25 * 32 + 7)
        .expect("cuts");
    let (ledger, recovery) = open(dir.path());
    assert_eq!(recovery.replayed, 25);
    assert_eq!(ledger.size(), 45);
    assert_eq!(ledger.root(), expected_root(45));
    ledger
        .prove(10)
        .expect("the stored tree serves proofs again");
}

#[test]
fn derived_files_shorter_than_the_checkpoint_are_rebuilt_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..30)).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    for level in 0..8 {
        fs::remove_file(Levels::path(dir.path(), level)).ok();
    }
    fs::remove_file(dir.path().join(INDEX)).expect("removes");
    let (ledger, recovery) = open(dir.path());
    assert_eq!(recovery.replayed, 30);
    assert_eq!(ledger.root(), expected_root(30));
}

/// Rewrites the payload of entry `index` in entries.log with `change`, fixing its checksum so
/// that only the tree can notice.
fn rewrite_entry(dir: &Path, index: u64, change: impl FnOnce(&mut Vec<u8>)) {
    let log = dir.join(ENTRIES);
    let mut bytes = fs::read(&log).expect("reads");
    let mut offset = ENTRIES_MAGIC.len();
    for _ in 0..index {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        offset += 8 + len as usize;
    }
    let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    let mut payload = bytes[offset + 8..offset + 8 + len].to_vec();
    change(&mut payload);
    assert_eq!(payload.len(), len, "same length");
    bytes[offset + 4..offset + 8].copy_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    bytes[offset + 8..offset + 8 + len].copy_from_slice(&payload);
    fs::write(&log, bytes).expect("writes");
}

#[test]
fn a_changed_entry_after_the_checkpoint_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..10)).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    // Entries after a checkpoint are replayed; with the derived files gone, so is the rest,
    // and the changed entry gives another root than the signed one.
    rewrite_entry(dir.path(), 3, |payload| {
        let last = payload.len() - 1;
        payload[last] ^= 0x01; // a letter of the host name
    });
    fs::remove_file(dir.path().join(INDEX)).expect("removes");
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(
        matches!(err, LedgerError::CheckpointMismatch { size: 10, .. }),
        "{err}"
    );
}

#[test]
fn a_changed_tree_file_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..16)).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    let level = Levels::path(dir.path(), 4);
    let mut hash = fs::read(&level).expect("reads");
    hash[0] ^= 0x80;
    fs::write(&level, hash).expect("writes");
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(
        matches!(err, LedgerError::CheckpointMismatch { .. }),
        "{err}"
    );
}

#[test]
fn damage_before_the_tail_is_refused_never_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..8)).expect("appends");
    }
    // No checkpoint: every entry is replayed, and a bad checksum with entries after it is
    // damage, which must not be cut away with the acknowledged entries behind it.
    let log = dir.path().join(ENTRIES);
    let mut bytes = fs::read(&log).expect("reads");
    bytes[ENTRIES_MAGIC.len() + 8 + 5] ^= 0xff;
    fs::write(&log, &bytes).expect("writes");
    let before = file_len(&log);
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(
        matches!(err, LedgerError::Damaged { offset: 8, .. }),
        "{err}"
    );
    assert_eq!(file_len(&log), before, "nothing was cut");
}

#[test]
fn entries_removed_under_a_checkpoint_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..12)).expect("appends");
        ledger.checkpoint(1).expect("signs");
    }
    let log = dir.path().join(ENTRIES);
    let bytes = fs::read(&log).expect("reads");
    let mut offset = ENTRIES_MAGIC.len();
    for _ in 0..9 {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        offset += 8 + len as usize;
    }
    fs::write(&log, &bytes[..offset]).expect("cuts three entries");
    fs::remove_file(dir.path().join(INDEX)).expect("removes");
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("entries were removed"), "{err}");
}

#[test]
fn a_ledger_keeps_its_hash_function() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = Ledger::open(dir.path(), &settings(HashAlg::Sha256)).expect("opens");
        ledger.append(&entries(0..2)).expect("appends");
        let cp = ledger.checkpoint(1).expect("signs");
        assert_eq!(cp.checkpoint.hash, HashAlg::Sha256);
        assert!(cp.note.contains("\nhash sha256\n"));
    }
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(matches!(err, LedgerError::HashChanged { .. }), "{err}");
    assert!(err.to_string().contains("uses sha256"), "{err}");
}

#[test]
fn bad_meta_keys_and_magic_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    fs::write(
        dir.path().join(META),
        "daemoneye-ledger 2\nhash blake3\norigin x\n",
    )
    .expect("writes");
    assert!(matches!(
        Ledger::open(dir.path(), &settings(HashAlg::Blake3)),
        Err(LedgerError::Damaged { .. })
    ));

    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    fs::write(dir.path().join(SIGNING_KEY), "PRIVATE+KEY+nonsense").expect("writes");
    assert!(matches!(
        Ledger::open(dir.path(), &settings(HashAlg::Blake3)),
        Err(LedgerError::Note { .. })
    ));

    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    fs::write(dir.path().join(ENTRIES), b"NOTALOG!").expect("writes");
    assert!(matches!(
        Ledger::open(dir.path(), &settings(HashAlg::Blake3)),
        Err(LedgerError::Damaged { offset: 0, .. })
    ));

    // entries.log without meta: never silently start a new ledger over an old one.
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    fs::remove_file(dir.path().join(META)).expect("removes");
    assert!(matches!(
        Ledger::open(dir.path(), &settings(HashAlg::Blake3)),
        Err(LedgerError::Damaged { .. })
    ));
}

#[test]
fn an_entry_that_does_not_decode_is_not_appended() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, _) = open(dir.path());
    ledger.append(&entries(0..2)).expect("appends");
    let before = file_len(&dir.path().join(ENTRIES));
    let mut bad = entry(2).encode().expect("encodes");
    bad.push(0);
    let err = ledger
        .append_encoded(&[entry(2).encode().expect("encodes"), bad])
        .expect_err("refused");
    assert!(matches!(err, LedgerError::Entry { index: 3, .. }), "{err}");
    assert_eq!(
        file_len(&dir.path().join(ENTRIES)),
        before,
        "nothing written"
    );
    assert_eq!(ledger.size(), 2);
}

#[test]
fn checkpoint_notes_are_kept_oldest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut ledger, _) = open(dir.path());
    let mut notes = Vec::new();
    for n in 0..4 {
        ledger.append(&entries(n..n + 1)).expect("appends");
        notes.push(ledger.checkpoint(n as i64).expect("signs").note.clone());
    }
    assert_eq!(
        ledger.checkpoint_notes(0, usize::MAX).expect("reads"),
        notes
    );
    assert_eq!(ledger.checkpoint_notes(1, 2).expect("reads"), notes[1..3]);
    assert!(ledger.checkpoint_notes(4, 10).expect("reads").is_empty());
    assert_eq!(ledger.checkpoint_count(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A crash cuts `entries.log` at any byte after some batches (checkpointed or not) and
    /// loses any tail of the derived files: the ledger reopens to a prefix of what was
    /// appended, holding every batch that completed before the cut point, with the right root.
    #[test]
    fn any_cut_reopens_to_a_prefix(
        batches in proptest::collection::vec((1u64..40, any::<bool>()), 1..8),
        cut in 0.0f64..1.0,
        index_cut in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ends = Vec::new();
        let mut checkpointed = 0u64;
        {
            let (mut ledger, _) = open(dir.path());
            let mut next = 0;
            for (len, checkpoint) in &batches {
                ledger.append(&entries(next..next + len)).expect("appends");
                next += len;
                ends.push((next, file_len(&dir.path().join(ENTRIES))));
                if *checkpoint {
                    ledger.checkpoint(1).expect("signs");
                    checkpointed = next;
                }
            }
        }
        let log = dir.path().join(ENTRIES);
        let checkpoint_bytes = ends
            .iter()
            .find(|(n, _)| *n == checkpointed)
            .map_or(ENTRIES_MAGIC.len() as u64, |(_, len)| *len);
        let total = file_len(&log);
        // Cut somewhere after the last checkpoint (a crash never removes synced data).
        let at = checkpoint_bytes + ((total - checkpoint_bytes) as f64 * cut) as u64;
        OpenOptions::new().write(true).open(&log).expect("opens").set_len(at).expect("cuts");
        let index = dir.path().join(INDEX);
        let index_len = file_len(&index);
        let keep = checkpointed * 8 + ((index_len - checkpointed * 8) as f64 * index_cut) as u64;
        OpenOptions::new().write(true).open(&index).expect("opens").set_len(keep).expect("cuts");

        let (ledger, _) = open(dir.path());
        let complete = ends.iter().filter(|(_, len)| *len <= at).map(|(n, _)| *n).max().unwrap_or(0);
        prop_assert!(ledger.size() >= complete.max(checkpointed));
        prop_assert_eq!(ledger.root(), expected_root(ledger.size()));
        for i in 0..ledger.size() {
            prop_assert_eq!(ledger.entry(i).expect("reads"), entry(i).encode().expect("encodes"));
        }
    }
}

#[test]
fn a_newest_checkpoint_that_does_not_verify_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut ledger, _) = open(dir.path());
        ledger.append(&entries(0..3)).expect("appends");
        ledger.checkpoint(1).expect("signs");
        ledger.checkpoint(2).expect("signs");
    }
    // A digit of the newest note's time line, with the frame checksum fixed up.
    let path = dir.path().join(CHECKPOINTS);
    let mut bytes = fs::read(&path).expect("reads");
    let first = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let start = 8 + 8 + first;
    let len = u32::from_be_bytes(bytes[start..start + 4].try_into().expect("4 bytes")) as usize;
    let payload = start + 8..start + 8 + len;
    let text = String::from_utf8(bytes[payload.clone()].to_vec()).expect("UTF-8");
    let digit = start + 8 + text.find("\ntime ").expect("time line") + "\ntime ".len();
    bytes[digit] = if bytes[digit] == b'9' { b'8' } else { b'9' };
    let crc = crc32c::crc32c(&bytes[payload]);
    bytes[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    fs::write(&path, bytes).expect("writes");
    let err = Ledger::open(dir.path(), &settings(HashAlg::Blake3))
        .err()
        .expect("refused");
    assert!(matches!(err, LedgerError::Note { .. }), "{err}");
    assert!(err.to_string().contains("newest checkpoint"), "{err}");
}
