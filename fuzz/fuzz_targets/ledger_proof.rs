//! Fuzzes the proof files and their offline verification (`lib/src/ledger/note.rs`,
//! `lib/src/ledger/verify.rs`, `lib/src/ledger/merkle.rs`): what `audit verify FILE --key K`
//! reads, with the fixed key and tree of `ledger_fixture.rs` (13 entries, a checkpoint of
//! every size signed by the fixed key).
//!
//! The input, if `text_from_bytes` accepts it, is parsed with `NoteFile::parse` and verified
//! with `verify::verify_text`; a consistency proof gets, as its older checkpoint, the fixture's
//! checkpoint of the size it names (as an export's verifier picks it), else the empty tree's.
//! Invariants:
//!
//! - a proof file `NoteFile::parse` accepts is written back byte for byte by `to_text`;
//! - what verifies is true of the fixture's tree: a verified inclusion proof proves the
//!   fixture's entry at that index against one of the fixture's checkpoints, a verified
//!   consistency proof goes between two of them, smaller to larger. The fuzzer cannot forge a
//!   signature, so anything else verifying would be a hole in the Merkle verification.

#![no_main]

use std::sync::LazyLock;

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::note::{self, Checkpoint, NoteFile};
use daemoneye_lib::ledger::verify::{self, Verified};
use libfuzzer_sys::fuzz_target;

#[path = "ledger_fixture.rs"]
mod ledger_fixture;

static FIXTURE: LazyLock<ledger_fixture::Fixture> =
    LazyLock::new(|| ledger_fixture::Fixture::new(HashAlg::Blake3));

fn signed(cp: &Checkpoint) -> bool {
    FIXTURE
        .checkpoints
        .get(cp.size as usize)
        .is_some_and(|note| Checkpoint::verify_signed(note, &FIXTURE.verifier).as_ref() == Ok(cp))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = note::text_from_bytes(data) else {
        return;
    };
    let parsed = NoteFile::parse(text);
    let old = match &parsed {
        Ok(NoteFile::Inclusion(file)) => {
            assert_eq!(file.to_text(), text, "parse then to_text changed the file");
            None
        }
        Ok(NoteFile::Consistency(file)) => {
            assert_eq!(file.to_text(), text, "parse then to_text changed the file");
            let old = usize::try_from(file.size1)
                .ok()
                .and_then(|size| FIXTURE.checkpoints.get(size));
            Some(old.unwrap_or(&FIXTURE.checkpoints[0]).as_str())
        }
        _ => None,
    };
    match verify::verify_text(text, &FIXTURE.verifier, old) {
        Ok(Verified::Checkpoint(cp)) => assert!(signed(&cp), "{cp:?}"),
        Ok(Verified::Inclusion {
            checkpoint,
            index,
            entry,
        }) => {
            assert!(signed(&checkpoint), "{checkpoint:?}");
            assert!(index < checkpoint.size, "entry {index} of {checkpoint:?}");
            let Ok(NoteFile::Inclusion(file)) = &parsed else {
                panic!("an inclusion proof verified that did not parse as one");
            };
            assert_eq!(
                Some(&file.entry),
                FIXTURE.entries.get(index as usize),
                "a proof of entry {index} verified with other bytes"
            );
            assert_eq!(entry.encode().as_ref(), Ok(&file.entry));
        }
        Ok(Verified::Consistency { old, new }) => {
            assert!(signed(&old) && signed(&new), "{old:?} {new:?}");
            assert!(old.size <= new.size, "{old:?} {new:?}");
        }
        Ok(Verified::Directory(_)) => panic!("verify_text read a directory"),
        Err(failure) => {
            let reason = failure.to_string();
            assert!(
                !reason.contains('\n'),
                "a refusal is not one line: {reason:?}"
            );
        }
    }
});
