//! The frame: how one protobuf message crosses a local socket.
//!
//! # Bytes on the wire
//!
//! Every message is one frame: a 16-byte header followed by the payload.
//!
//! | offset | size | field                                                                  |
//! |-------:|-----:|------------------------------------------------------------------------|
//! |      0 |    4 | magic, the ASCII bytes `DEYE` (`44 45 59 45`)                          |
//! |      4 |    1 | frame format version, [`FRAME_VERSION`] (1)                            |
//! |      5 |    1 | message type, a [`MessageType`]                                        |
//! |      6 |    2 | reserved, must be `00 00`                                              |
//! |      8 |    4 | payload length in bytes, unsigned big-endian                           |
//! |     12 |    4 | CRC32C (Castagnoli) of bytes 0..12 followed by the payload, big-endian |
//! |     16 |    n | payload: one protobuf message of the kind the type names               |
//!
//! The checksum covers the header as well as the payload, so a flipped type or length byte is
//! caught even when the payload happens to parse. It protects against torn or corrupted
//! frames, not against an attacker (the peer is authenticated by its socket credentials).
//!
//! The frame format version changes only if this layout changes; the protocol version of the
//! messages themselves is negotiated in the handshake ([`super::PROTOCOL_VERSION`]).
//!
//! # Hostile input
//!
//! The header is checked field by field before a single payload byte is read: a wrong magic or
//! version, reserved bits, an unknown type and a length above the connection's limit are each
//! a [`FrameError`]. The limit is checked before anything is allocated, so a peer that claims a
//! 4 GiB payload costs nothing. Nothing here panics on any input; `decode` is the entry point of
//! the fuzz target (`fuzz/fuzz_targets/frame_decoder.rs`).

/// The bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"DEYE";

/// The version of the frame layout described in the module documentation.
pub const FRAME_VERSION: u8 = 1;

/// The length of the frame header.
pub const HEADER_LEN: usize = 16;

/// The default largest payload a peer may send (16 MiB), `ipc.max_frame_bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// Which message a frame's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `Hello`: the client's first frame.
    Hello = 1,
    /// `Welcome`: the server accepts the client.
    Welcome = 2,
    /// `ProtocolError`: the sender refuses and closes the connection.
    ProtocolError = 3,
    /// `CollectorRequest`: agent to procmond.
    CollectorRequest = 4,
    /// `CollectorResponse`: procmond to agent.
    CollectorResponse = 5,
    /// `AgentRequest`: CLI to agent.
    AgentRequest = 6,
    /// `AgentResponse`: agent to CLI.
    AgentResponse = 7,
    /// `CollectorPush`: procmond to agent, unasked (only with the `events` feature).
    CollectorPush = 8,
}

impl MessageType {
    /// The type for a header byte, if it names one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Hello,
            2 => Self::Welcome,
            3 => Self::ProtocolError,
            4 => Self::CollectorRequest,
            5 => Self::CollectorResponse,
            6 => Self::AgentRequest,
            7 => Self::AgentResponse,
            8 => Self::CollectorPush,
            _ => return None,
        })
    }

    /// The message's name, as in the `.proto` file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "Hello",
            Self::Welcome => "Welcome",
            Self::ProtocolError => "ProtocolError",
            Self::CollectorRequest => "CollectorRequest",
            Self::CollectorResponse => "CollectorResponse",
            Self::AgentRequest => "AgentRequest",
            Self::AgentResponse => "AgentResponse",
            Self::CollectorPush => "CollectorPush",
        }
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a valid frame. After any of these the stream cannot be resynchronised,
/// so the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first four bytes are not `DEYE`: the peer does not speak this protocol at all.
    #[error(
        "bad frame magic {found:02x?}, expected \"DEYE\": the peer does not speak the daemoneye protocol"
    )]
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// The frame layout version is not ours.
    #[error("unsupported frame format version {found}, this build speaks version {FRAME_VERSION}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The reserved bytes are not zero.
    #[error("reserved header bytes are {found:#06x}, must be zero")]
    ReservedBitsSet {
        /// The reserved field as found.
        found: u16,
    },
    /// The type byte names no message.
    #[error("unknown message type {found}")]
    UnknownType {
        /// The type byte found.
        found: u8,
    },
    /// The payload is longer than the receiver accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes (ipc.max_frame_bytes)")]
    TooLarge {
        /// The length the header claims.
        len: u64,
        /// The receiver's limit.
        max: u32,
    },
    /// The checksum does not match the bytes received.
    #[error("frame checksum mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the bytes received.
        actual: u32,
    },
}

/// A checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the payload holds.
    pub kind: MessageType,
    /// The payload length, already checked against the limit.
    pub len: u32,
    /// The checksum the payload must complete.
    pub crc: u32,
    /// The CRC32C of header bytes 0..12, the start of the checksum over the whole frame.
    partial_crc: u32,
}

impl FrameHeader {
    /// Checks every header field against the layout and `max_payload`: magic, versions,
    /// reserved bytes, type, then length.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: u32) -> Result<Self, FrameError> {
        let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if found != MAGIC {
            return Err(FrameError::BadMagic { found });
        }
        if bytes[4] != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion { found: bytes[4] });
        }
        let reserved = u16::from_be_bytes([bytes[6], bytes[7]]);
        if reserved != 0 {
            return Err(FrameError::ReservedBitsSet { found: reserved });
        }
        let kind =
            MessageType::from_byte(bytes[5]).ok_or(FrameError::UnknownType { found: bytes[5] })?;
        let len = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if len > max_payload {
            return Err(FrameError::TooLarge {
                len: u64::from(len),
                max: max_payload,
            });
        }
        let crc = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        Ok(Self {
            kind,
            len,
            crc,
            partial_crc: crc32c::crc32c(&bytes[..12]),
        })
    }

    /// Checks that `payload`, of exactly [`Self::len`] bytes, completes the checksum.
    pub fn check_payload(&self, payload: &[u8]) -> Result<(), FrameError> {
        let actual = crc32c::crc32c_append(self.partial_crc, payload);
        if actual != self.crc || payload.len() != self.len as usize {
            return Err(FrameError::ChecksumMismatch {
                expected: self.crc,
                actual,
            });
        }
        Ok(())
    }
}

/// Starts a frame of type `kind` in `buf`: a header with length and checksum left blank, to be
/// completed by [`finish_frame`] once the payload has been appended.
///
/// Writing the payload straight after the header avoids copying a large scan result.
pub fn start_frame(buf: &mut Vec<u8>, kind: MessageType) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&MAGIC);
    buf.push(FRAME_VERSION);
    buf.push(kind as u8);
    buf.extend_from_slice(&[0; 10]);
    start
}

/// Completes the frame started at `start` by [`start_frame`]: fills in the length and the
/// checksum of everything appended since.
pub fn finish_frame(buf: &mut [u8], start: usize, max_payload: u32) -> Result<(), FrameError> {
    let payload_len = buf.len() - start - HEADER_LEN;
    let len = u32::try_from(payload_len)
        .ok()
        .filter(|len| *len <= max_payload)
        .ok_or(FrameError::TooLarge {
            len: payload_len as u64,
            max: max_payload,
        })?;
    let frame = &mut buf[start..];
    frame[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[..12]), &frame[HEADER_LEN..]);
    frame[12..16].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// One whole frame: `kind` and `payload` encoded with its header.
pub fn encode(kind: MessageType, payload: &[u8], max_payload: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    let start = start_frame(&mut buf, kind);
    buf.extend_from_slice(payload);
    finish_frame(&mut buf, start, max_payload)?;
    Ok(buf)
}

/// A frame found in a buffer: its type, its payload, and how many bytes it took.
pub type Decoded<'a> = (MessageType, &'a [u8], usize);

/// Decodes the first frame in `buf`.
///
/// Returns `Ok(None)` when `buf` holds only the beginning of a valid frame (more bytes are
/// needed), and otherwise the frame's type, its payload and the number of bytes it took.
pub fn decode(buf: &[u8], max_payload: u32) -> Result<Option<Decoded<'_>>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = FrameHeader::parse(header, max_payload)?;
    let end = HEADER_LEN + header.len as usize;
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    header.check_payload(payload)?;
    Ok(Some((header.kind, payload, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: u32 = 1024;

    /// A valid frame, then `edit` applied to its bytes, decoded.
    fn check(edit: impl FnOnce(&mut Vec<u8>), want: Result<Option<MessageType>, FrameError>) {
        let mut frame = encode(MessageType::AgentRequest, b"payload", MAX).unwrap();
        edit(&mut frame);
        let got = decode(&frame, MAX).map(|found| found.map(|(kind, _, _)| kind));
        assert_eq!(got, want);
    }

    #[test]
    fn header_fields_are_each_checked() {
        check(|_| {}, Ok(Some(MessageType::AgentRequest)));
        check(
            |f| f[0] = b'X',
            Err(FrameError::BadMagic { found: *b"XEYE" }),
        );
        check(
            |f| f[4] = 2,
            Err(FrameError::UnsupportedVersion { found: 2 }),
        );
        check(|f| f[7] = 1, Err(FrameError::ReservedBitsSet { found: 1 }));
        check(|f| f[5] = 0, Err(FrameError::UnknownType { found: 0 }));
        check(|f| f[5] = 200, Err(FrameError::UnknownType { found: 200 }));
        check(
            |f| f[8] = 0xff,
            Err(FrameError::TooLarge {
                len: 0xff00_0007,
                max: MAX,
            }),
        );
        check(|f| f.truncate(HEADER_LEN + 3), Ok(None));
        check(|f| f.truncate(5), Ok(None));
    }

    #[test]
    fn the_checksum_covers_the_header_and_the_payload() {
        let frame = encode(MessageType::Hello, b"abc", MAX).unwrap();
        // The type byte changed to another valid type: only the checksum can notice.
        let mut retyped = frame.clone();
        retyped[5] = MessageType::Welcome as u8;
        assert!(matches!(
            decode(&retyped, MAX),
            Err(FrameError::ChecksumMismatch { .. })
        ));
        let mut flipped = frame.clone();
        flipped[HEADER_LEN + 1] ^= 0x01;
        assert!(matches!(
            decode(&flipped, MAX),
            Err(FrameError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn a_known_frame_has_known_bytes() {
        // Written out by hand from the table in the module documentation; the CRC32C of
        // "123456789" is the standard check value 0xe3069283.
        let frame = encode(MessageType::Welcome, b"", MAX).unwrap();
        assert_eq!(
            &frame[..12],
            &[0x44, 0x45, 0x59, 0x45, 1, 2, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc = crc32c::crc32c(&frame[..12]);
        assert_eq!(&frame[12..], &crc.to_be_bytes());
    }

    #[test]
    fn encoding_refuses_a_payload_over_the_limit() {
        let big = vec![0; MAX as usize + 1];
        assert_eq!(
            encode(MessageType::Hello, &big, MAX),
            Err(FrameError::TooLarge {
                len: u64::from(MAX) + 1,
                max: MAX
            })
        );
        assert!(encode(MessageType::Hello, &big[1..], MAX).is_ok());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, MAX);
        }

        #[test]
        fn frames_round_trip(kind in 1_u8..=7, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let kind = MessageType::from_byte(kind).unwrap();
            let frame = encode(kind, &payload, MAX).unwrap();
            let (got_kind, got_payload, used) = decode(&frame, MAX).unwrap().unwrap();
            prop_assert_eq!(got_kind, kind);
            prop_assert_eq!(got_payload, &payload[..]);
            prop_assert_eq!(used, frame.len());
        }

        #[test]
        fn any_flipped_bit_is_refused(payload in proptest::collection::vec(any::<u8>(), 0..64), bit in any::<prop::sample::Index>()) {
            let mut frame = encode(MessageType::CollectorResponse, &payload, MAX).unwrap();
            let bit = bit.index(frame.len() * 8);
            frame[bit / 8] ^= 1 << (bit % 8);
            // A flipped length bit may make the frame look incomplete; anything else is an error.
            prop_assert!(!matches!(decode(&frame, MAX), Ok(Some(_))));
        }
    }
}
