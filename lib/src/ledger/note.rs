//! The text formats an auditor receives: C2SP signed notes, checkpoints, the verifier key,
//! `tlog-proof` files and consistency files.
//!
//! Everything here is a pure function of its input: no I/O, no clock. Every parser is strict: it
//! accepts exactly the text its writer produces, so that parsing then writing gives back the same
//! bytes, and it bounds what it reads ([`MAX_NOTE_BYTES`], [`MAX_SIGNATURE_LINES`],
//! [`MAX_FILE_BYTES`], [`MAX_KEY_TEXT_BYTES`]). "base64" below is always the standard alphabet of
//! RFC 4648 §4 with padding, decoded canonically (no missing or extra padding, no non-zero
//! trailing bits, no whitespace), so that each value has exactly one spelling.
//!
//! # Where each format lives
//!
//! This file: the signed-note format and its parser, the errors and the shared line and number
//! rules. `note/keys.rs`: the verifier key and the secret key ([`NoteSigner`],
//! [`NoteVerifier`]), each specified there byte by byte. `note/tlog.rs`: the checkpoint text,
//! the `tlog-proof` file and the consistency proof file ([`Checkpoint`],
//! [`InclusionProofFile`], [`ConsistencyProofFile`], [`NoteFile`]).
//!
//! # Signed notes (C2SP `signed-note`)
//!
//! A signed note is the note text, a blank line, and one or more signature lines:
//!
//! ```text
//! <text: one or more lines, each ending in "\n"; blank lines allowed>
//! "\n"
//! "— " <key name> " " base64(key id (4 bytes) || Ed25519 signature of the text (64 bytes)) "\n"
//! ```
//!
//! The dash is U+2014 (bytes `E2 80 94`), followed by one space. The whole note is UTF-8 with no
//! ASCII control character other than newline. As the spec says, the text ends at the *last*
//! blank line of the note: signature lines never contain a blank line, so this split is
//! unambiguous and the text itself may contain blank lines. A key name is non-empty and holds no
//! Unicode space, no `+` and (a tightening: the spec only bars characters below U+0020, note-wide)
//! no control character. The key id is
//! `SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[..4]`, 0x01 being the
//! signed-note type byte of Ed25519.
//!
//! Verification with one trusted key ([`NoteVerifier::verify`]): every signature line must be
//! well formed (else the note is malformed); lines whose name or key id differ from the trusted
//! key's are ignored, as the spec requires (witness cosignatures, other logs); at least one line
//! must carry the trusted name and key id, and every such line must verify (`verify_strict`,
//! which refuses small-order keys and non-canonical signatures). Deliberate deviation from Go's
//! `note.Open`: Go skips repeated lines by a known key after the first, this module verifies
//! every one of them.
//!

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::Hash;

mod keys;
mod tlog;

pub use keys::{NoteSigner, NoteVerifier};
pub use tlog::{Checkpoint, ConsistencyProofFile, InclusionProofFile, NoteFile};

/// The largest signed note (checkpoint) accepted or produced, in bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// The most signature lines a note may carry (the spec asks for at least 16; Go allows 100).
pub const MAX_SIGNATURE_LINES: usize = 100;
/// The largest proof file accepted, in bytes: the entry bytes, the hashes and the checkpoint.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// The largest verifier or secret key text accepted, in bytes.
pub const MAX_KEY_TEXT_BYTES: usize = 4096;
/// The first line of an inclusion proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The first line of a consistency proof file.
pub const CONSISTENCY_HEADER: &str = "daemoneye/tlog-consistency@v1";

/// The C2SP signed-note signature type byte of Ed25519.
const ALG_ED25519: u8 = 0x01;
/// An em dash (U+2014) and a space start every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Go's `note` package starts secret keys with this.
const SECRET_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Key id (4 bytes) and Ed25519 signature (64 bytes).
const ED25519_SIGNATURE_BLOB: usize = 4 + 64;
/// The base64 length of those 68 bytes: 23 groups of 4 characters, the last one padded.
const SIGNATURE_BASE64_LEN: usize = 92;

/// What is wrong with a note, key or proof file. Line numbers count from 1.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first byte that is not part of a UTF-8 character.
        offset: usize,
    },
    /// The input is over its size limit.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control character other than newline (a carriage return, a tab…).
    #[error("line {line} contains an ASCII control character other than newline")]
    ControlCharacter {
        /// The line.
        line: usize,
    },
    /// The last line has no newline.
    #[error("line {line} does not end in a newline")]
    UnterminatedLine {
        /// The line.
        line: usize,
    },
    /// The text given to sign is not a note text.
    #[error("cannot sign: the note text {reason}")]
    InvalidText {
        /// Why.
        reason: &'static str,
    },
    /// A key name breaks the signed-note rules.
    #[error("invalid key name {name}: it {reason}")]
    InvalidKeyName {
        /// The name, quoted and shortened.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// No blank line separates the text from the signatures.
    #[error("missing blank line before the signature lines")]
    MissingSignatureSeparator,
    /// The blank line is the end of the note.
    #[error("no signature lines after the blank line")]
    NoSignatureLines,
    /// More signature lines than [`MAX_SIGNATURE_LINES`].
    #[error("more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A line of the signature block is not `— <name> <base64>`.
    #[error("signature line {line} {reason}")]
    MalformedSignatureLine {
        /// The line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature line by the trusted key does not verify.
    #[error("signature by key {name} ({key_id}) does not verify")]
    BadSignature {
        /// The trusted key's name.
        name: String,
        /// Its key id, in hex.
        key_id: String,
    },
    /// No signature line carries the trusted key's name and id.
    #[error("no signature by key {name} ({key_id})")]
    NoSignature {
        /// The trusted key's name.
        name: String,
        /// Its key id, in hex.
        key_id: String,
    },
    /// A verifier or secret key text is not `name+keyid+base64`.
    #[error("malformed {what}: {reason}")]
    MalformedKey {
        /// `verifier key` or `secret key`.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key is not an Ed25519 key.
    #[error("{what} has signature type 0x{alg:02x}, only 0x01 (Ed25519) is supported")]
    UnknownAlgorithm {
        /// `verifier key` or `secret key`.
        what: &'static str,
        /// The type byte found.
        alg: u8,
    },
    /// The key bytes have the wrong length.
    #[error("{what} holds {len} key bytes, expected 32")]
    KeyLength {
        /// `verifier key` or `secret key`.
        what: &'static str,
        /// The length found, without the type byte.
        len: usize,
    },
    /// The key id written in the key text is not the id of the key.
    #[error("{what} states key id {stated} but the key's id is {computed}")]
    KeyIdMismatch {
        /// `verifier key` or `secret key`.
        what: &'static str,
        /// The id in the text.
        stated: String,
        /// The id of the key.
        computed: String,
    },
    /// The public key is not usable.
    #[error("verifier key holds an invalid Ed25519 public key: {reason}")]
    InvalidPublicKey {
        /// Why.
        reason: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("cannot get random bytes for a new key: {0}")]
    Random(getrandom::Error),
    /// Ed25519 signing failed (it does not, but the API says it may).
    #[error("Ed25519 signing failed")]
    SigningFailed,
    /// The input ends before a required line.
    #[error("missing line {line}: expected the {what}")]
    MissingLine {
        /// The line that is missing.
        line: usize,
        /// What it should have been.
        what: &'static str,
    },
    /// The checkpoint origin breaks the rules.
    #[error("checkpoint origin on line 1 {reason}")]
    InvalidOrigin {
        /// Why.
        reason: &'static str,
    },
    /// A number is not canonical decimal.
    #[error("{what} on line {line} is not a canonical decimal number")]
    BadNumber {
        /// The line.
        line: usize,
        /// What the number is.
        what: &'static str,
    },
    /// Not canonical padded standard base64.
    #[error("{what} on line {line} is not canonical padded base64")]
    BadBase64 {
        /// The line.
        line: usize,
        /// What the value is.
        what: &'static str,
    },
    /// A hash that is not 32 bytes.
    #[error("{what} on line {line} is {len} bytes, expected 32")]
    BadHashLength {
        /// The line.
        line: usize,
        /// What the hash is.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A line does not start with its keyword and one space.
    #[error("line {line} does not start with \"{keyword} \"")]
    ExpectedKeyword {
        /// The line.
        line: usize,
        /// The keyword.
        keyword: &'static str,
    },
    /// The checkpoint names a hash function this build does not know.
    #[error("unknown hash function {name} on line {line}, expected blake3 or sha256")]
    UnknownHash {
        /// The line.
        line: usize,
        /// The name, quoted and shortened.
        name: String,
    },
    /// A line after the last line of a fixed-length text.
    #[error("trailing data on line {line} after the {after}")]
    TrailingData {
        /// The line.
        line: usize,
        /// The last line the format has.
        after: &'static str,
    },
    /// A proof file does not start with its header line.
    #[error("first line is not \"{expected}\"")]
    BadHeader {
        /// The header expected.
        expected: &'static str,
    },
    /// A proof file ends before the blank line.
    #[error("missing blank line before the checkpoint")]
    MissingCheckpointSeparator,
    /// A proof file ends right after the blank line.
    #[error("no checkpoint after the blank line on line {line}")]
    MissingCheckpoint {
        /// The blank line.
        line: usize,
    },
    /// Two blank lines before a proof file's checkpoint.
    #[error("line {line} is a second blank line before the checkpoint")]
    DuplicateBlankLine {
        /// The second blank line.
        line: usize,
    },
    /// The checkpoint inside a proof file is wrong.
    #[error("checkpoint starting on line {first_line}: {source}")]
    InCheckpoint {
        /// The checkpoint's first line in the file.
        first_line: usize,
        /// What is wrong with it, its line numbers counted within the checkpoint.
        source: Box<NoteError>,
    },
}

/// The text of `bytes`, if they are UTF-8 and at most [`MAX_FILE_BYTES`] long: the way in for a
/// file read from disk before [`NoteFile::parse`] or [`NoteVerifier::verify`].
pub fn text_from_bytes(bytes: &[u8]) -> Result<&str, NoteError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(NoteError::TooLarge {
            what: "file",
            len: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8 {
        offset: e.valid_up_to(),
    })
}

/// A signed note split into its text and its well-formed signature lines, nothing verified.
struct SignedNote<'a> {
    text: &'a str,
    signatures: Vec<SignatureLine<'a>>,
}

struct SignatureLine<'a> {
    name: &'a str,
    key_id: [u8; 4],
    signature: Vec<u8>,
}

impl<'a> SignedNote<'a> {
    /// C2SP signed-note §Format, step by step.
    fn parse(note: &'a str) -> Result<Self, NoteError> {
        check_size(note, "signed note", MAX_NOTE_BYTES)?;
        // "Signed notes MUST be valid UTF-8 [a &str is] and MUST NOT contain any ASCII control
        // characters (those below U+0020) other than newline."
        check_control_characters(note)?;
        // "The note text MAY contain empty lines; the text is separated from the signatures by the
        // last empty line in the note." The text includes its final newline.
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::MissingSignatureSeparator)?;
        let text = &note[..split + 1];
        let block = &note[split + 2..];
        if block.is_empty() {
            return Err(NoteError::NoSignatureLines);
        }
        let first_line = text.bytes().filter(|&b| b == b'\n').count() + 2;
        let mut lines = Lines::new(block, first_line);
        let mut signatures = Vec::new();
        while let Some((line, content)) = lines.next_line()? {
            if signatures.len() == MAX_SIGNATURE_LINES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURE_LINES,
                });
            }
            let signature = parse_signature_line(content)
                .map_err(|reason| NoteError::MalformedSignatureLine { line, reason })?;
            signatures.push(signature);
        }
        Ok(Self { text, signatures })
    }
}

/// "em dash (U+2014), space (U+0020), key name, space, base64-encoded signature"; the signature
/// is "the base64 encoding of 4+n bytes", the key id then the signature proper.
fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, &'static str> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or("does not start with an em dash (U+2014) and a space")?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or("has no space between the key name and the signature")?;
    check_name_rules(name).map_err(|_| "has an invalid key name")?;
    let raw = BASE64
        .decode(encoded)
        .map_err(|_| "has a signature that is not canonical padded base64")?;
    let (key_id, signature) = raw
        .split_first_chunk::<4>()
        .filter(|(_, signature)| !signature.is_empty())
        .ok_or("has a signature shorter than 5 bytes")?;
    Ok(SignatureLine {
        name,
        key_id: *key_id,
        signature: signature.to_vec(),
    })
}

/// Newline-terminated lines of a text, numbered.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, first_line: usize) -> Self {
        Self {
            rest: text,
            number: first_line.saturating_sub(1),
        }
    }

    /// The next line without its newline, `None` at the end of the text.
    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, NoteError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        self.number += 1;
        let (line, rest) = self
            .rest
            .split_once('\n')
            .ok_or(NoteError::UnterminatedLine { line: self.number })?;
        self.rest = rest;
        Ok(Some((self.number, line)))
    }

    /// The next line, which must be there.
    fn require(&mut self, what: &'static str) -> Result<(usize, &'a str), NoteError> {
        let missing = NoteError::MissingLine {
            line: self.number + 1,
            what,
        };
        self.next_line()?.ok_or(missing)
    }
}

fn check_size(text: &str, what: &'static str, max: usize) -> Result<(), NoteError> {
    if text.len() > max {
        return Err(NoteError::TooLarge {
            what,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// Refuses bytes below 0x20 other than newline. In UTF-8 those bytes only ever encode themselves.
fn check_control_characters(text: &str) -> Result<(), NoteError> {
    let mut line = 1;
    for byte in text.bytes() {
        if byte == b'\n' {
            line += 1;
        } else if byte < 0x20 {
            return Err(NoteError::ControlCharacter { line });
        }
    }
    Ok(())
}

/// "Key names MUST be non-empty and MUST NOT contain any Unicode spaces or plus (U+002B)
/// characters"; no control character either, as a note may not hold one.
fn check_name_rules(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.chars().any(char::is_whitespace) {
        Err("contains a space")
    } else if name.contains('+') {
        Err("contains '+'")
    } else if name.chars().any(char::is_control) {
        Err("contains a control character")
    } else {
        Ok(())
    }
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    check_name_rules(name).map_err(|reason| NoteError::InvalidKeyName {
        name: shorten(name),
        reason,
    })
}

/// The value after `keyword` and one space.
fn keyword_value<'a>(
    line_text: &'a str,
    line: usize,
    keyword: &'static str,
) -> Result<&'a str, NoteError> {
    line_text
        .strip_prefix(keyword)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(NoteError::ExpectedKeyword { line, keyword })
}

fn decode_hash(text: &str, line: usize, what: &'static str) -> Result<Hash, NoteError> {
    let raw = BASE64
        .decode(text)
        .map_err(|_| NoteError::BadBase64 { line, what })?;
    Hash::try_from(raw.as_slice()).map_err(|_| NoteError::BadHashLength {
        line,
        what,
        len: raw.len(),
    })
}

/// ASCII digits, no sign, no leading zero unless the number is 0.
fn parse_u64(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// [`parse_u64`] with an optional `-`, which "-0" may not use.
fn parse_i64(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some("0") => None,
        Some(magnitude) => 0i64.checked_sub_unsigned(parse_u64(magnitude)?),
        None => i64::try_from(parse_u64(text)?).ok(),
    }
}

/// An untrusted string for an error message: quoted, escaped and at most 64 characters.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests;
