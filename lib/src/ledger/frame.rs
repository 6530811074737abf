//! The framed files of the ledger: `entries.log` and `checkpoints.log`.
//!
//! Pure: the reader takes any [`Read`] and the writer appends to a `Vec`; opening, cutting and
//! syncing the files is [`super::store`]'s business, reading them offline
//! [`super::verify`]'s.
//!
//! # File
//!
//! ```text
//! offset  size  field
//! 0       8     magic     b"DEYELOG1" (ENTRIES_MAGIC) in entries.log,
//!                         b"DEYECKP1" (CHECKPOINTS_MAGIC) in checkpoints.log
//! 8       ...   frames    zero or more, back to back, nothing between or after them
//! ```
//!
//! A file shorter than its magic was never written to (a crash while it was created): the
//! store writes the magic again. Any other first eight bytes are refused.
//!
//! # Frame
//!
//! ```text
//! offset  size  field
//! 0       4     length    u32, big-endian: the payload's length, 1..=max (never 0)
//! 4       4     checksum  u32, big-endian: CRC-32C (Castagnoli, as iSCSI and ext4 use it)
//!                         of the payload alone
//! 8       L     payload   `length` bytes
//! ```
//!
//! The payload of an `entries.log` frame is one entry's canonical encoding
//! ([`super::entry::Entry::encode`], at most [`MAX_ENTRY_BYTES`]); of a `checkpoints.log`
//! frame, one signed checkpoint note in UTF-8 ([`super::note`], at most
//! [`MAX_CHECKPOINT_BYTES`]). The checksum only finds torn and damaged frames; tampering is
//! found by the Merkle tree, whose roots are signed.
//!
//! ## Example
//!
//! The frame of the 9-byte payload `123456789` (whose CRC-32C is the algorithm's check value):
//!
//! ```text
//! 00 00 00 09                   length 9
//! e3 06 92 83                   crc32c("123456789") = 0xe3069283
//! 31 32 33 34 35 36 37 38 39    payload
//! ```
//!
//! # Reading: a torn tail or damage
//!
//! [`FrameReader`] reads frames from an offset to the end of the file and stops at the first
//! bad one, saying which of two things it is:
//!
//! - [`FrameFault::Torn`]: the last write did not finish. The frame's header or payload runs
//!   past the end of the file, or the frame is bad (a length of 0 or over the limit, a checksum
//!   mismatch) and nothing but zero bytes follows the end it claims (a file system that
//!   extended the file before the data reached the disk). Such a frame was never acknowledged:
//!   the store cuts it, the offline verifier stops before it.
//! - [`FrameFault::Damaged`]: a bad frame with any non-zero byte after it. Acknowledged data
//!   may follow it, so it is never cut: the ledger refuses to open and the verifier fails.
//!
//! A frame is read only once its length is within the limit: a length field cannot make the
//! reader allocate more than the limit.

use std::io::Read;

/// Magic at the start of `entries.log`.
pub const ENTRIES_MAGIC: &[u8; 8] = b"DEYELOG1";
/// Magic at the start of `checkpoints.log`.
pub const CHECKPOINTS_MAGIC: &[u8; 8] = b"DEYECKP1";
/// Bytes before a frame's payload: length and checksum.
pub const FRAME_HEADER: u64 = 8;
/// The largest payload of a `checkpoints.log` frame: one signed checkpoint note.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
/// The largest payload of an `entries.log` frame: one encoded entry.
pub use super::entry::MAX_ENTRY_BYTES;

/// One frame as read from a framed file.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Where the frame starts.
    pub offset: u64,
    /// Its payload (checksum verified).
    pub payload: Vec<u8>,
}

/// Why reading frames stopped early.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameFault {
    /// An incomplete or unfinished last frame: cut it at `offset`.
    Torn {
        /// Where the torn frame starts.
        offset: u64,
    },
    /// A bad frame followed by more data: damage, not a crash.
    Damaged {
        /// Where the bad frame starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// A frame's first eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload's length.
    pub len: u32,
    /// The payload's CRC-32C.
    pub crc: u32,
}

impl FrameHeader {
    /// The header in `bytes`, whatever its values.
    pub fn parse(bytes: [u8; FRAME_HEADER as usize]) -> Self {
        let [l0, l1, l2, l3, c0, c1, c2, c3] = bytes;
        Self {
            len: u32::from_be_bytes([l0, l1, l2, l3]),
            crc: u32::from_be_bytes([c0, c1, c2, c3]),
        }
    }

    /// Why the length cannot be a frame's, if it cannot: 0 or over `max_payload`.
    pub fn check_len(self, max_payload: usize) -> Result<(), String> {
        if self.len == 0 || self.len as usize > max_payload {
            return Err(format!("frame length {} is out of range", self.len));
        }
        Ok(())
    }

    /// Whether `payload` has the checksum the header states.
    pub fn matches(self, payload: &[u8]) -> bool {
        crc32c::crc32c(payload) == self.crc
    }
}

/// Reads frames from `offset` to the end of a file of `file_len` bytes, telling a torn tail
/// from damage (see the module doc).
pub struct FrameReader<R> {
    reader: R,
    offset: u64,
    file_len: u64,
    max_payload: usize,
    done: bool,
}

impl<R: Read> FrameReader<R> {
    /// A reader positioned at `offset` (the caller has seeked `reader` there).
    pub fn new(reader: R, offset: u64, file_len: u64, max_payload: usize) -> Self {
        Self {
            reader,
            offset,
            file_len,
            max_payload,
            done: false,
        }
    }

    /// The offset after the last frame returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A bad frame at the current offset is a torn tail when nothing but zeros, or less than
    /// the frame claims, follows it; anything else is damage.
    fn fault(&mut self, claimed_end: u64, reason: String) -> FrameFault {
        let offset = self.offset;
        if claimed_end >= self.file_len {
            return FrameFault::Torn { offset };
        }
        // Something follows the bad frame: only a tail of zeros (a file system that extended
        // the file before the data reached the disk) is still a torn write.
        let mut rest = [0u8; 8192];
        loop {
            match self.reader.read(&mut rest) {
                Ok(0) => return FrameFault::Torn { offset },
                Ok(n) if rest[..n].iter().all(|&b| b == 0) => {}
                Ok(_) | Err(_) => return FrameFault::Damaged { offset, reason },
            }
        }
    }
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = Result<Frame, FrameFault>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.file_len {
            return None;
        }
        self.done = true; // cleared again on success
        let torn = FrameFault::Torn {
            offset: self.offset,
        };
        let mut bytes = [0u8; FRAME_HEADER as usize];
        if self.file_len - self.offset < FRAME_HEADER || self.reader.read_exact(&mut bytes).is_err()
        {
            return Some(Err(torn));
        }
        let header = FrameHeader::parse(bytes);
        let end = self.offset + FRAME_HEADER + u64::from(header.len);
        if let Err(reason) = header.check_len(self.max_payload) {
            return Some(Err(self.fault(end, reason)));
        }
        if end > self.file_len {
            return Some(Err(torn));
        }
        let mut payload = vec![0u8; header.len as usize];
        if self.reader.read_exact(&mut payload).is_err() {
            return Some(Err(torn));
        }
        if !header.matches(&payload) {
            return Some(Err(self.fault(end, "checksum mismatch".to_owned())));
        }
        let frame = Frame {
            offset: self.offset,
            payload,
        };
        self.offset = end;
        self.done = false;
        Some(Ok(frame))
    }
}

/// Appends one frame for `payload` to `out`. The caller keeps `payload` within the limit of
/// its file (an entry is checked by [`super::entry::Entry::encode`], a note by its size).
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    type Read = Vec<Result<Frame, FrameFault>>;

    /// Reads `file` (magic included) from byte 8 with a 16-byte limit.
    fn read(file: &[u8]) -> Read {
        FrameReader::new(Cursor::new(&file[8..]), 8, file.len() as u64, 16).collect()
    }

    fn file(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = ENTRIES_MAGIC.to_vec();
        for payload in frames {
            push_frame(&mut out, payload);
        }
        out
    }

    fn ok(offset: u64, payload: &[u8]) -> Result<Frame, FrameFault> {
        Ok(Frame {
            offset,
            payload: payload.to_vec(),
        })
    }

    #[test]
    fn the_example_frame_is_as_documented() {
        let mut out = Vec::new();
        push_frame(&mut out, b"123456789");
        let expected = [
            0x00, 0x00, 0x00, 0x09, 0xe3, 0x06, 0x92, 0x83, b'1', b'2', b'3', b'4', b'5', b'6',
            b'7', b'8', b'9',
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn torn_tails_and_damage_are_told_apart() {
        let good = file(&[b"one", b"two"]);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            f(&mut bytes);
            bytes
        };
        let second = 8 + 8 + 3; // magic, then the first frame
        let damaged = |reason: &str| {
            Err(FrameFault::Damaged {
                offset: 8,
                reason: reason.to_owned(),
            })
        };
        let torn = |offset| Err(FrameFault::Torn { offset });
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<u8>, Read)> = vec![
            ("two good frames", good.clone(), vec![ok(8, b"one"), ok(second, b"two")]),
            ("magic only", file(&[]), vec![]),
            ("half a header", with(&|b| b.truncate(second as usize + 5)),
                vec![ok(8, b"one"), torn(second)]),
            ("half a payload", with(&|b| b.truncate(b.len() - 1)),
                vec![ok(8, b"one"), torn(second)]),
            ("a bad last checksum", with(&|b| *b.last_mut().unwrap() ^= 1),
                vec![ok(8, b"one"), torn(second)]),
            ("a bad checksum, then zeros", with(&|b| { b[16] ^= 1; b.truncate(second as usize); b.extend([0; 40]) }),
                vec![torn(8)]),
            ("a bad checksum, then a frame", with(&|b| b[16] ^= 1),
                vec![damaged("checksum mismatch")]),
            ("a zero length, then a frame", with(&|b| b[8..12].fill(0)),
                vec![damaged("frame length 0 is out of range")]),
            ("a length over the limit, then data", with(&|b| { b[11] = 17; b.extend([1; 40]) }),
                vec![damaged("frame length 17 is out of range")]),
            ("a length past the end", with(&|b| b[8..12].copy_from_slice(&u32::MAX.to_be_bytes())),
                vec![torn(8)]),
            ("a zero tail", with(&|b| b.extend([0; 12])), vec![ok(8, b"one"), ok(second, b"two"), torn(second + 11)]),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(read(&bytes), expected, "{name}");
        }
    }
}
