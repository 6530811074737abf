//! Fuzzes the key parsers (`lib/src/ledger/note.rs`): the verifier key an auditor passes to
//! `audit verify --key` (text or file) and the secret key text procmond reads from
//! `signing.key`.
//!
//! Invariants:
//!
//! - a verifier key `NoteVerifier::parse` accepts is written back byte for byte by its
//!   `Display`; it verifies the fixture's checkpoint if and only if it is the fixture's key
//!   (another key may share the name and, by a 2^-32 chance, the key id, but then its signature
//!   check fails);
//! - a secret key `NoteSigner::parse_secret` accepts is written back byte for byte by
//!   `secret_key_text`, its verifier key parses back to itself, and a note it signs verifies
//!   with that verifier key.

#![no_main]

use std::sync::LazyLock;

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::note::{NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

#[path = "ledger_fixture.rs"]
mod ledger_fixture;

static FIXTURE: LazyLock<ledger_fixture::Fixture> =
    LazyLock::new(|| ledger_fixture::Fixture::new(HashAlg::Blake3));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = NoteVerifier::parse(text) {
        assert_eq!(key.to_string(), text, "parse then Display changed the key");
        let newest = &FIXTURE.checkpoints[FIXTURE.checkpoints.len() - 1];
        let verifies = key.verify(newest).is_ok();
        assert_eq!(
            verifies,
            key == FIXTURE.verifier,
            "key {key} and the fixture's checkpoint"
        );
    }
    if let Ok(signer) = NoteSigner::parse_secret(text) {
        assert_eq!(
            signer.secret_key_text(),
            text,
            "parse then write changed the key"
        );
        let verifier = signer.verifier();
        assert_eq!(
            NoteVerifier::parse(&verifier.to_string()).as_ref(),
            Ok(&verifier)
        );
        match signer.sign("fuzz\n") {
            Ok(note) => assert_eq!(verifier.verify(&note).as_deref(), Ok("fuzz\n")),
            Err(err) => panic!("a parsed secret key does not sign: {err}"),
        }
    }
});
