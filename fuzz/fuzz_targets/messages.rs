//! Fuzzes the message decoders directly. The frame checksum covers the payload, so mutations of
//! whole frames (the `frame_decoder` target) seldom reach prost with a new payload; here the
//! first input byte picks the message type and the rest is the payload, framed with a correct
//! checksum by `frame::encode` and then taken apart by `frame::decode` as a peer's bytes are.
//!
//! Any panic is a finding.

#![no_main]

use daemoneye_lib::ipc::frame::{self, MessageType};
use libfuzzer_sys::fuzz_target;

#[path = "payload.rs"]
mod payload;

const MAX_PAYLOAD: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&type_byte, body)) = data.split_first() else {
        return;
    };
    // Seven types: map every byte onto one so that no input is wasted.
    let Some(kind) = MessageType::from_byte(type_byte % 7 + 1) else {
        return;
    };
    let Ok(bytes) = frame::encode(kind, body, MAX_PAYLOAD) else {
        return;
    };
    match frame::decode(&bytes, MAX_PAYLOAD) {
        Ok(Some((got, payload, used))) => {
            assert_eq!((got, payload, used), (kind, body, bytes.len()));
            payload::decode_payload(kind, payload);
        }
        other => panic!("a frame from encode does not decode: {other:?}"),
    }
});
