//! Fuzzes the decoding of ledger entries (`lib/src/ledger/entry.rs`): the bytes of an
//! `entries.log` frame, of an export's `entries.bin`, of a proof file's `extra` line, and the
//! body of an agent's `AppendAudit` request.
//!
//! The whole input is decoded as an entry; the first byte also picks a kind name (one of the 15,
//! or an unknown one) under which the rest is decoded as a body. Invariants (a failure is a
//! crash, like any panic):
//!
//! - an entry `Entry::decode` accepts encodes back to exactly the input (`encode(decode(b)) ==
//!   b`: one byte string per entry), and its `Display` is one line;
//! - a body `Body::decode` accepts is of the kind it was asked for and encodes back to exactly
//!   the input; a body the agent may append makes an entry that encodes and decodes back to it.

#![no_main]

use daemoneye_lib::ledger::entry::{Body, Entry, KIND_NAMES, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        match entry.encode() {
            Ok(bytes) => assert_eq!(bytes, data, "decode then encode changed the bytes"),
            Err(err) => panic!("a decoded entry does not encode: {err}"),
        }
        let line = entry.to_string();
        assert!(
            !line.contains(['\n', '\r']),
            "Display is not one line: {line:?}"
        );
        let _ = entry.to_json().to_string();
    }

    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    // The 13 kind names, and one that is not.
    let kind = KIND_NAMES
        .get(usize::from(pick) % (KIND_NAMES.len() + 1))
        .copied()
        .unwrap_or("no_such_kind");
    if let Ok(decoded) = Body::decode(kind, body) {
        assert_eq!(decoded.kind(), kind);
        match decoded.encode() {
            Ok(bytes) => assert_eq!(bytes, body, "decode then encode changed the body"),
            Err(err) => panic!("a decoded body does not encode: {err}"),
        }
        if decoded.agent_may_append() {
            let entry = Entry {
                source: Source::Agent,
                time_ms: i64::from(pick) - 128,
                body: decoded,
            };
            let bytes = match entry.encode() {
                Ok(bytes) => bytes,
                Err(err) => panic!("an accepted agent body makes no entry: {err}"),
            };
            assert_eq!(Entry::decode(&bytes).as_ref(), Ok(&entry));
        }
    }
});
