//! Fuzzes the signed-note and checkpoint parsers (`lib/src/ledger/note.rs`): what `audit verify`
//! reads from a checkpoint file, what procmond reads back from `checkpoints.log`, and the old
//! checkpoint a `ConsistencyRequest` carries.
//!
//! The input, if `text_from_bytes` accepts it, goes through `Checkpoint::parse_body`,
//! `NoteFile::parse`, `NoteVerifier::verify` and `Checkpoint::verify_signed` with the fixed key
//! of `ledger_fixture.rs`. Invariants:
//!
//! - a body `parse_body` accepts is written back byte for byte by `Checkpoint::body`;
//! - a note `NoteFile::parse` takes for a checkpoint is kept verbatim;
//! - nothing verifies that the fixed key did not sign: the key signed only the fixture's
//!   checkpoints, so a text that verifies is one of their bodies and a checkpoint that verifies
//!   is one of them (the fuzzer cannot forge Ed25519; a verifier that skipped a check could).

#![no_main]

use std::sync::LazyLock;

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::note::{self, Checkpoint, NoteFile};
use libfuzzer_sys::fuzz_target;

#[path = "ledger_fixture.rs"]
mod ledger_fixture;

static FIXTURE: LazyLock<ledger_fixture::Fixture> =
    LazyLock::new(|| ledger_fixture::Fixture::new(HashAlg::Blake3));

/// The bodies and checkpoints the fixed key signed.
static SIGNED: LazyLock<Vec<(String, Checkpoint)>> = LazyLock::new(|| {
    FIXTURE
        .checkpoints
        .iter()
        .map(|note| {
            let text = FIXTURE
                .verifier
                .verify(note)
                .expect("the fixture signed it");
            let cp = Checkpoint::parse_body(&text).expect("the fixture wrote it");
            (text, cp)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = note::text_from_bytes(data) else {
        return;
    };
    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(cp.body(), text, "parse_body then body changed the text");
    }
    if let Ok(NoteFile::Checkpoint(note)) = NoteFile::parse(text) {
        assert_eq!(note, text);
    }
    if let Ok(signed) = FIXTURE.verifier.verify(text) {
        assert!(
            SIGNED.iter().any(|(body, _)| *body == signed),
            "a text the fixed key never signed verifies: {signed:?}"
        );
    }
    if let Ok(cp) = Checkpoint::verify_signed(text, &FIXTURE.verifier) {
        assert!(
            SIGNED.iter().any(|(_, signed)| *signed == cp),
            "a checkpoint the fixed key never signed verifies: {cp:?}"
        );
    }
});
