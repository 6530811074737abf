//! Fuzzes the two readers of ledger files that `audit verify DIR` runs over untrusted bytes:
//! the frame reader of `entries.log` / `checkpoints.log` (`lib/src/ledger/frame.rs`) and the
//! entry reader of an export's `entries.bin` (`lib/src/ledger/export.rs`).
//!
//! The first input byte picks the frame reader's payload limit (1 to 256 bytes, so that both
//! limits and lengths are within reach); the rest is the file after its magic. Invariants:
//!
//! - the frames read, written again with `push_frame`, are exactly the bytes from the start to
//!   `offset()`, and each frame starts where the previous one ended; reading stops at the first
//!   fault, which starts there too; a `Torn` fault is reported only if no byte after the bad
//!   frame's claimed end is non-zero, a `Damaged` one only if one is;
//! - the entries `EntryReader` reads, each written again as a 4-byte big-endian length and the
//!   bytes, are a prefix of the input, and the whole input when no error was reported.

#![no_main]

use std::io::Cursor;

use daemoneye_lib::ledger::export::EntryReader;
use daemoneye_lib::ledger::frame::{FRAME_HEADER, FrameFault, FrameReader, push_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, file)) = data.split_first() else {
        return;
    };
    let max_payload = usize::from(limit) + 1;
    let mut reader = FrameReader::new(Cursor::new(file), 0, file.len() as u64, max_payload);
    let mut rewritten = Vec::new();
    let mut fault = None;
    for frame in reader.by_ref() {
        match frame {
            Ok(frame) => {
                assert_eq!(frame.offset, rewritten.len() as u64);
                assert!(!frame.payload.is_empty() && frame.payload.len() <= max_payload);
                push_frame(&mut rewritten, &frame.payload);
            }
            Err(err) => {
                assert!(fault.is_none(), "a second fault");
                fault = Some(err);
            }
        }
    }
    assert_eq!(reader.offset(), rewritten.len() as u64);
    assert_eq!(&file[..rewritten.len()], rewritten.as_slice());
    match fault {
        None => assert_eq!(rewritten.len(), file.len(), "stopped early without a fault"),
        Some(FrameFault::Torn { offset } | FrameFault::Damaged { offset, .. })
            if offset != rewritten.len() as u64 =>
        {
            panic!("a fault at {offset}, not where the frames stopped")
        }
        Some(FrameFault::Torn { offset }) => {
            // Whatever follows the bad frame's claimed end is zeros, or it claimed past the end.
            let start = offset as usize;
            if let Some(header) = file.get(start..start + FRAME_HEADER as usize) {
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let end = start + FRAME_HEADER as usize + len as usize;
                if let Some(rest) = file.get(end..) {
                    assert!(rest.iter().all(|&b| b == 0), "torn, yet data follows");
                }
            }
        }
        Some(FrameFault::Damaged { offset, .. }) => {
            let start = offset as usize;
            let rest = file.get(start + FRAME_HEADER as usize..).unwrap_or(&[]);
            assert!(
                rest.iter().any(|&b| b != 0),
                "damaged, yet only zeros follow"
            );
        }
    }

    let mut entries = Vec::new();
    let mut failed = false;
    for entry in EntryReader::new(Cursor::new(data)) {
        match entry {
            Ok(bytes) => {
                entries.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                entries.extend_from_slice(&bytes);
            }
            Err(_) => failed = true,
        }
    }
    assert_eq!(&data[..entries.len()], entries.as_slice());
    if !failed {
        assert_eq!(entries.len(), data.len());
    }
});
