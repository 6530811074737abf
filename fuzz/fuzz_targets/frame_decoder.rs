//! Fuzzes the IPC frame decoder the way a peer's bytes reach it: as a stream of frames.
//!
//! The input is treated as everything a peer sent on one connection. Frames are taken from the
//! front with `frame::decode`, as a stream reader would, until the decoder asks for more bytes
//! or refuses the rest. Each frame's payload is then decoded as the protobuf message its type
//! names, and the records of a scan result are converted to the shared model, so the fuzzer
//! also reaches prost and `ipc::convert` with payloads that passed the frame checks.
//!
//! It must never do anything but return: any panic, in the decoder, in prost or in the
//! conversions, is a finding. The assertions below state what the stream reader relies on.

#![no_main]

use daemoneye_lib::ipc::frame::{self, FrameHeader, HEADER_LEN, MessageType};
use libfuzzer_sys::fuzz_target;

#[path = "payload.rs"]
mod payload;
use payload::decode_payload;

/// A receiver's payload limit, far below the 16 MiB default: a header length above it is the
/// `TooLarge` refusal, one below it but beyond the input is the `Ok(None)` wait, and the
/// fuzzer's mutations of the length field land on both sides.
const MAX_PAYLOAD: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match frame::decode(rest, MAX_PAYLOAD) {
            Ok(Some((kind, payload, used))) => {
                check_frame(rest, kind, payload, used);
                decode_payload(kind, payload);
                rest = &rest[used..];
            }
            Ok(None) => {
                check_incomplete(rest);
                break;
            }
            // After a bad frame the stream cannot be resynchronised: the reader closes it.
            Err(_) => break,
        }
    }
});

/// What must hold of a frame `decode` returned from the front of `buf`.
fn check_frame(buf: &[u8], kind: MessageType, payload: &[u8], used: usize) {
    assert_eq!(
        used,
        HEADER_LEN + payload.len(),
        "used length is not header + payload"
    );
    assert!(
        used <= buf.len(),
        "used {used} bytes of a {}-byte buffer",
        buf.len()
    );
    assert!(
        payload.len() <= MAX_PAYLOAD as usize,
        "payload over the limit was accepted"
    );
    // Re-encoding gives back exactly the bytes consumed: the decoder accepts only the one
    // canonical encoding of a frame (reserved bytes zero, checksum over header and payload), and
    // the payload it returns is the slice right after the header.
    let again = match frame::encode(kind, payload, MAX_PAYLOAD) {
        Ok(again) => again,
        Err(err) => panic!("a decoded {kind} frame does not encode again: {err}"),
    };
    assert_eq!(
        again,
        &buf[..used],
        "re-encoded {kind} frame differs from the input"
    );
}

/// `Ok(None)` must mean "a valid frame has begun, more bytes are needed": a stream reader that
/// got it for a complete frame would wait forever for bytes the peer never sends.
fn check_incomplete(buf: &[u8]) {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return;
    };
    match FrameHeader::parse(header, MAX_PAYLOAD) {
        Ok(header) => assert!(
            buf.len() < HEADER_LEN + header.len as usize,
            "Ok(None) for a {}-byte buffer holding a whole {}-byte frame",
            buf.len(),
            HEADER_LEN + header.len as usize
        ),
        Err(err) => panic!("Ok(None) for a buffer whose header is invalid: {err}"),
    }
}
