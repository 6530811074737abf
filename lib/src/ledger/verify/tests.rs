//! Offline verification of files and directories made by a real ledger.

use std::fs;

use super::*;
use crate::ledger::entry::{Body, Source};
use crate::ledger::store::{Ledger, Settings};

pub(in crate::ledger) fn entry(n: u64) -> Entry {
    Entry {
        source: Source::Agent,
        time_ms: n as i64,
        body: Body::AgentStopped {
            reason: format!("test {n}"),
        },
    }
}

/// A ledger of 10 entries with checkpoints at 4 and 10 (the older note returned), and 3
/// entries after the newest checkpoint.
pub(in crate::ledger) fn ledger(dir: &Path) -> (Ledger, String) {
    let settings = Settings {
        hash: HashAlg::Sha256,
        origin: "daemoneye.ledger/test/verify".to_owned(),
    };
    let (mut ledger, _) = Ledger::open(dir, &settings).expect("opens");
    ledger
        .append(&(0..4).map(entry).collect::<Vec<_>>())
        .expect("appends");
    let old = ledger.checkpoint(1).expect("signs").note.clone();
    ledger
        .append(&(4..10).map(entry).collect::<Vec<_>>())
        .expect("appends");
    ledger.checkpoint(2).expect("signs");
    ledger
        .append(&(10..13).map(entry).collect::<Vec<_>>())
        .expect("appends");
    (ledger, old)
}

#[test]
fn each_kind_of_file_verifies_and_says_what() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, old) = ledger(dir.path());
    let key = ledger.verifier();
    let proof = ledger.prove(7).expect("proves").to_text();
    match verify_text(&proof, &key, None).expect("verifies") {
        Verified::Inclusion {
            checkpoint,
            index,
            entry: got,
        } => {
            assert_eq!((checkpoint.size, index), (10, 7));
            assert_eq!(got, entry(7));
        }
        other => panic!("{other:?}"),
    }
    let consistency = ledger.consistency(&old).expect("proves").to_text();
    assert!(matches!(
        verify_text(&consistency, &key, Some(&old)),
        Ok(Verified::Consistency { .. })
    ));
    // The older checkpoint may also come as a proof file that carries it.
    assert!(
        verify_text(&consistency, &key, Some(&proof)).is_err(),
        "size 10 is not size 4"
    );
    let err = verify_text(&consistency, &key, None).expect_err("needs --old");
    assert!(err.0.contains("--old"), "{err}");
    let newest = ledger.latest().expect("checkpoint").note.clone();
    assert!(matches!(
        verify_text(&newest, &key, None),
        Ok(Verified::Checkpoint(_))
    ));
}

#[test]
fn a_ledger_directory_verifies_and_counts_what_no_checkpoint_covers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path());
    let key = ledger.verifier();
    drop(ledger);
    let Verified::Directory(report) = verify_dir(dir.path(), &key).expect("verifies") else {
        panic!("not a directory report");
    };
    assert_eq!(
        (report.entries, report.checkpoints, report.uncovered),
        (13, 2, 3)
    );
    assert_eq!(report.hash, Some(HashAlg::Sha256));
}

#[test]
fn a_changed_covered_entry_in_a_ledger_directory_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path());
    let key = ledger.verifier();
    drop(ledger);
    // Entry 2's last byte (a digit of its reason), with the frame checksum fixed up so that
    // only the tree can notice.
    let log = dir.path().join("entries.log");
    let mut bytes = fs::read(&log).expect("reads");
    let mut offset = 8;
    for _ in 0..2 {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        offset += 8 + len as usize;
    }
    let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    bytes[offset + 8 + len - 1] ^= 0x01;
    let crc = crc32c::crc32c(&bytes[offset + 8..offset + 8 + len]);
    bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_be_bytes());
    fs::write(&log, bytes).expect("writes");
    let err = verify_dir(dir.path(), &key).expect_err("changed");
    assert!(err.0.contains("another root at size 4"), "{err}");
}

#[test]
fn another_key_or_a_missing_directory_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = ledger(dir.path());
    let other = tempfile::tempdir().expect("temp dir");
    let (stranger, _) = super::tests::ledger(other.path());
    let err = verify_dir(dir.path(), &stranger.verifier()).expect_err("wrong key");
    assert!(err.0.contains("does not verify"), "{err}");
    let proof = ledger.prove(0).expect("proves").to_text();
    assert!(verify_text(&proof, &stranger.verifier(), None).is_err());
    let empty = tempfile::tempdir().expect("temp dir");
    assert!(verify_dir(empty.path(), &ledger.verifier()).is_err());
}
