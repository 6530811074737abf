//! Fuzzes the alert export file and its offline verification
//! (`lib/src/ledger/alert_export.rs`): what `audit verify FILE --key K` reads when FILE starts
//! with `{`, verified with the fixed key of `ledger_fixture.rs`.
//!
//! Invariants: verification never panics and ends in a report or a one-line reason; what
//! verifies is true of the fixture's ledger (the fuzzer cannot forge a signature): the
//! checkpoint is one the fixture signed, and every alert verified and every alert entry listed
//! as not carried is an entry index inside that checkpoint's tree, after the range's start.

#![no_main]

use std::sync::LazyLock;

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::alert_export;
use daemoneye_lib::ledger::note::Checkpoint;
use libfuzzer_sys::fuzz_target;

#[path = "ledger_fixture.rs"]
mod ledger_fixture;

static FIXTURE: LazyLock<ledger_fixture::Fixture> =
    LazyLock::new(|| ledger_fixture::Fixture::new(HashAlg::Blake3));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match alert_export::verify_alert_export(text, &FIXTURE.verifier) {
        Ok(report) => {
            let size = report.checkpoint.size;
            assert!(
                FIXTURE
                    .checkpoints
                    .get(size as usize)
                    .is_some_and(|note| Checkpoint::verify_signed(note, &FIXTURE.verifier)
                        .as_ref()
                        == Ok(&report.checkpoint)),
                "a checkpoint the fixture did not sign verified"
            );
            for (index, _) in report.verified.iter().chain(&report.not_carried) {
                assert!(
                    report.first <= *index && *index < size,
                    "entry {index} outside the range"
                );
            }
        }
        Err(failure) => assert!(!failure.0.contains('\n'), "a reason of more than one line"),
    }
});
