//! [`EntryError`]: why an entry or a body does not encode or decode.

use super::Source;

/// Why an entry or a body could not be encoded or decoded. Offsets count from the first byte
/// of the entry ([`Entry::decode`](super::Entry::decode)) or of the body ([`Body::decode`](super::Body::decode)) and point at the start
/// of the field (for a string, at its length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The version byte is not [`VERSION`](super::VERSION).
    #[error("unknown entry version {0}")]
    UnknownVersion(u8),
    /// The kind byte is not 1 to 18.
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
    /// The kind name is not one of ours (escaped and cut to 64 characters).
    #[error("unknown entry kind `{0}`")]
    UnknownKindName(String),
    /// The source byte is not 1 or 2.
    #[error("unknown entry source {0}")]
    UnknownSource(u8),
    /// An entry of a procmond-only kind (1 to 5) claims to come from the agent.
    #[error("entry kind `{kind}` cannot come from the {claimed}")]
    SourceNotAllowed {
        /// The kind's name.
        kind: &'static str,
        /// The source it claims.
        claimed: Source,
    },
    /// The bytes end inside a field.
    #[error("entry ends inside field `{field}` at byte {offset}")]
    Truncated {
        /// The field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// A string field is not UTF-8.
    #[error("field `{field}` at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
    },
    /// A string field is longer than [`MAX_STR`](super::MAX_STR).
    #[error("field `{field}` is {len} bytes, the limit is {limit}")]
    StringTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_STR`](super::MAX_STR).
        limit: usize,
    },
    /// An optional field's tag is neither 0 (absent) nor 1 (present).
    #[error("field `{field}` at byte {offset} has option tag {tag}, expected 0 or 1")]
    BadOptionTag {
        /// The field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
        /// The tag found.
        tag: u8,
    },
    /// Bytes follow the last field.
    #[error("{0} trailing bytes after the entry")]
    TrailingBytes(usize),
    /// The whole entry is longer than [`MAX_ENTRY_BYTES`](super::MAX_ENTRY_BYTES).
    #[error("entry is {len} bytes, the limit is {limit}")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_ENTRY_BYTES`](super::MAX_ENTRY_BYTES).
        limit: usize,
    },
    /// A body is longer than [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
    #[error("entry body is {len} bytes, the limit is {limit}")]
    BodyTooLarge {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
        limit: usize,
    },
}
