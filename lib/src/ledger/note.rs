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
//! # Keys
//!
//! The verifier key (public, printed by `audit key`), as in C2SP `signed-note` and Go's
//! `golang.org/x/mod/sumdb/note`:
//!
//! ```text
//! <key name> "+" <key id: 8 lowercase hex digits> "+" base64(0x01 || 32-byte public key)
//! ```
//!
//! The secret key file, in the format of Go's `note.NewSigner` so that Go tools can use it:
//!
//! ```text
//! "PRIVATE+KEY+" <key name> "+" <key id: 8 lowercase hex digits> "+" base64(0x01 || 32-byte seed)
//! ```
//!
//! Both are parsed strictly: no surrounding whitespace or newline, lowercase hex only, the key id
//! must be the id of the key (for the secret key, of the public key derived from the seed), and
//! the public key must be a canonical encoding of a point that is not of small order.
//!
//! # Checkpoints (C2SP `tlog-checkpoint`)
//!
//! The signed text of a checkpoint has exactly five lines; the last two are extension lines:
//!
//! ```text
//! <origin>                      key-name rules: non-empty, no space, no "+", no control character
//! <tree size>                   decimal, no sign, no leading zero (the empty tree is "0")
//! base64(root hash)             exactly 32 bytes
//! "hash " ("blake3"|"sha256")   the tree's hash function
//! "time " <unix milliseconds>   decimal i64, no "+", no leading zero, no "-0"
//! ```
//!
//! # Inclusion proof file (C2SP `tlog-proof`)
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry's canonical bytes>
//! index <zero-based entry index, decimal, no leading zero>
//! <base64 proof hash>           zero or more, the leaf's sibling first, up to the root's child
//! <blank line>
//! <the signed checkpoint note, verbatim>
//! ```
//!
//! The spec makes the `extra` line optional; DaemonEye always writes it (it carries the entry)
//! and requires it when parsing. An empty entry is written `extra ` (empty base64).
//!
//! # Consistency proof file (DaemonEye's own, shaped like `tlog-proof`)
//!
//! ```text
//! daemoneye/tlog-consistency@v1
//! size1 <the older tree size, decimal, no leading zero>
//! <base64 proof hash>           zero or more, in RFC 9162 §2.1.4 order
//! <blank line>
//! <the signed checkpoint note of the newer tree, verbatim>
//! ```
//!
//! Parsing a proof file checks the form of the embedded checkpoint but not its signature:
//! [`InclusionProofFile::verify_checkpoint`] and [`ConsistencyProofFile::verify_checkpoint`] do
//! that, and the Merkle proof itself is checked by [`super::merkle`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{Hash, HashAlg};

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

/// A key that signs notes: a key name and an Ed25519 key. Its `Debug` never shows the secret.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl NoteSigner {
    /// A new key named `name`, its seed from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(NoteError::Random)?;
        let signer = Self::from_seed(name, seed);
        // Best effort: the copy in `signer` is zeroed on drop by ed25519-dalek, this one here.
        seed.fill(0);
        std::hint::black_box(&seed);
        signer
    }

    /// The key named `name` with this Ed25519 seed (the RFC 8032 32-byte secret key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The Ed25519 seed: secret.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first four bytes of SHA-256(name || "\n" || 0x01 || public key).
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier key, to give to auditors.
    pub fn verifier(&self) -> NoteVerifier {
        let key = self.key.verifying_key();
        NoteVerifier {
            name: self.name.clone(),
            public: key.to_bytes(),
            key,
            key_id: self.key_id,
        }
    }

    /// The signed note of `text`: `text`, a blank line and one signature line by this key.
    ///
    /// `text` must be non-empty, end in a newline and hold no control character other than
    /// newline; the signed note must fit in [`MAX_NOTE_BYTES`].
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() {
            return Err(NoteError::InvalidText { reason: "is empty" });
        }
        if !text.ends_with('\n') {
            return Err(NoteError::InvalidText {
                reason: "does not end in a newline",
            });
        }
        check_control_characters(text)?;
        let len = text.len()
            + 1
            + SIGNATURE_PREFIX.len()
            + self.name.len()
            + 1
            + SIGNATURE_BASE64_LEN
            + 1;
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                what: "signed note",
                len,
                max: MAX_NOTE_BYTES,
            });
        }
        let signature = self
            .key
            .try_sign(text.as_bytes())
            .map_err(|_| NoteError::SigningFailed)?;
        let mut blob = [0u8; ED25519_SIGNATURE_BLOB];
        blob[..4].copy_from_slice(&self.key_id);
        blob[4..].copy_from_slice(&signature.to_bytes());
        let note = format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        );
        debug_assert_eq!(note.len(), len);
        Ok(note)
    }

    /// The secret key text, `PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)`: secret.
    pub fn secret_key_text(&self) -> String {
        let mut blob = [0u8; 33];
        blob[0] = ALG_ED25519;
        blob[1..].copy_from_slice(self.key.as_bytes());
        let text = format!(
            "{SECRET_KEY_PREFIX}{}+{}+{}",
            self.name,
            hex_id(self.key_id),
            BASE64.encode(blob)
        );
        blob.fill(0);
        std::hint::black_box(&blob);
        text
    }

    /// The key in a secret key text written by [`NoteSigner::secret_key_text`] (or by Go's
    /// `note.GenerateKey`). Strict: exactly the text, no surrounding whitespace.
    pub fn parse_secret(text: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "secret key";
        let (name, key_id, key) = split_key_text(text, WHAT, Some(SECRET_KEY_PREFIX))?;
        let seed: [u8; 32] = decode_key_bytes(key, WHAT)?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != key_id {
            return Err(NoteError::KeyIdMismatch {
                what: WHAT,
                stated: hex_id(key_id),
                computed: hex_id(signer.key_id),
            });
        }
        Ok(signer)
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex_id(self.key_id))
            .finish_non_exhaustive()
    }
}

/// A trusted public key that verifies signed notes, parsed from its verifier key text.
#[derive(Clone)]
pub struct NoteVerifier {
    name: String,
    public: [u8; 32],
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl NoteVerifier {
    /// The verifier key in `text`: `<name>+<8 lowercase hex digits>+base64(0x01 || public key)`.
    /// Strict: exactly the text, no surrounding whitespace or newline.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "verifier key";
        let (name, stated_id, key) = split_key_text(text, WHAT, None)?;
        let public: [u8; 32] = decode_key_bytes(key, WHAT)?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey {
            reason: "not a point on the curve",
        })?;
        if key.to_bytes() != public {
            return Err(NoteError::InvalidPublicKey {
                reason: "not the canonical encoding of its point",
            });
        }
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey {
                reason: "a point of small order",
            });
        }
        let computed = key_id(name, &public);
        if computed != stated_id {
            return Err(NoteError::KeyIdMismatch {
                what: WHAT,
                stated: hex_id(stated_id),
                computed: hex_id(computed),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            public,
            key,
            key_id: computed,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The text of the signed note `note` if this key signed it; see the module doc for the rules.
    pub fn verify(&self, note: &str) -> Result<String, NoteError> {
        let parsed = SignedNote::parse(note)?;
        let mut ours = 0usize;
        for line in &parsed.signatures {
            if line.name != self.name || line.key_id != self.key_id {
                // C2SP signed-note: "Verifiers MUST ignore signatures from unknown keys, even if
                // they share a name or ID (but not both) with a known key."
                continue;
            }
            ours += 1;
            // "If the key name and ID match a known key, verifiers MUST verify the signature."
            // "If a signature from a known key fails to verify, clients SHOULD reject the whole
            // note": we do.
            let signature = <&[u8; 64]>::try_from(line.signature.as_slice())
                .map_err(|_| self.bad_signature())?;
            self.key
                .verify_strict(parsed.text.as_bytes(), &Signature::from_bytes(signature))
                .map_err(|_| self.bad_signature())?;
        }
        if ours == 0 {
            // "If no signature from a known key verifies successfully, clients MUST reject."
            return Err(NoteError::NoSignature {
                name: self.name.clone(),
                key_id: hex_id(self.key_id),
            });
        }
        Ok(parsed.text.to_owned())
    }

    fn bad_signature(&self) -> NoteError {
        NoteError::BadSignature {
            name: self.name.clone(),
            key_id: hex_id(self.key_id),
        }
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = [0u8; 33];
        blob[0] = ALG_ED25519;
        blob[1..].copy_from_slice(&self.public);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex_id(self.key_id),
            BASE64.encode(blob)
        )
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl PartialEq for NoteVerifier {
    fn eq(&self, other: &Self) -> bool {
        // The key id is a function of these two.
        self.name == other.name && self.public == other.public
    }
}

impl Eq for NoteVerifier {}

/// A log's signed tree head: the signed text of a C2SP `tlog-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, by convention the key name of its signer.
    pub origin: String,
    /// The number of entries in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
    /// The tree's hash function.
    pub hash: HashAlg,
    /// When the checkpoint was made, in Unix milliseconds.
    pub time_ms: i64,
}

impl Checkpoint {
    /// The checkpoint's note text (see the module doc).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\nhash {}\ntime {}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root),
            self.hash.name(),
            self.time_ms
        )
    }

    /// The checkpoint whose text is `text`, exactly as [`Checkpoint::body`] writes it.
    ///
    /// This reads an unverified text: use [`Checkpoint::verify_signed`] on anything received.
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        check_size(text, "checkpoint", MAX_NOTE_BYTES)?;
        check_control_characters(text)?;
        let mut lines = Lines::new(text, 1);

        let (_, origin) = lines.require("checkpoint origin")?;
        check_name_rules(origin).map_err(|reason| NoteError::InvalidOrigin { reason })?;

        let (line, size) = lines.require("checkpoint tree size")?;
        let size = parse_u64(size).ok_or(NoteError::BadNumber {
            line,
            what: "checkpoint tree size",
        })?;

        let (line, root) = lines.require("checkpoint root hash")?;
        let root = decode_hash(root, line, "checkpoint root hash")?;

        let (line, hash) = lines.require("checkpoint \"hash\" line")?;
        let name = keyword_value(hash, line, "hash")?;
        let hash = HashAlg::from_name(name).ok_or_else(|| NoteError::UnknownHash {
            line,
            name: shorten(name),
        })?;

        let (line, time) = lines.require("checkpoint \"time\" line")?;
        let time_ms =
            parse_i64(keyword_value(time, line, "time")?).ok_or(NoteError::BadNumber {
                line,
                what: "checkpoint time",
            })?;

        if let Some((line, _)) = lines.next_line()? {
            return Err(NoteError::TrailingData {
                line,
                after: "checkpoint \"time\" line",
            });
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            hash,
            time_ms,
        })
    }

    /// The signed checkpoint note. Refuses a checkpoint whose text would not parse back (an
    /// origin that is empty or holds a space, a `+` or a control character).
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        let body = self.body();
        // Never sign what a verifier would refuse: the body must parse back to this checkpoint.
        // Given a valid origin, every field writes exactly one line that parses back to itself.
        Self::parse_body(&body)?;
        signer.sign(&body)
    }

    /// The checkpoint in the signed note `note`, if `verifier` signed it. The signature is
    /// checked before the text is read, as the signed-note spec requires.
    pub fn verify_signed(note: &str, verifier: &NoteVerifier) -> Result<Self, NoteError> {
        let text = verifier.verify(note)?;
        Self::parse_body(&text)
    }
}

/// An inclusion proof file (C2SP `tlog-proof`): an entry, its index, its inclusion proof and the
/// signed checkpoint the proof leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProofFile {
    /// The entry's canonical bytes (the `extra` line).
    pub entry: Vec<u8>,
    /// The entry's zero-based index.
    pub index: u64,
    /// The inclusion proof, the leaf's sibling first.
    pub proof: Vec<Hash>,
    /// The whole signed checkpoint note.
    pub checkpoint: String,
}

impl InclusionProofFile {
    /// The file's text (see the module doc).
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{TLOG_PROOF_HEADER}\nextra {}\nindex {}\n",
            BASE64.encode(&self.entry),
            self.index
        );
        push_proof(&mut text, &self.proof, &self.checkpoint);
        text
    }

    /// The proof file in `text`, exactly as [`InclusionProofFile::to_text`] writes it. Checks the
    /// form of the checkpoint, not its signature nor the proof.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = proof_file_lines(text, TLOG_PROOF_HEADER)?;

        let (line, extra) = lines.require("\"extra\" line with the entry bytes")?;
        let entry = BASE64
            .decode(keyword_value(extra, line, "extra")?)
            .map_err(|_| NoteError::BadBase64 {
                line,
                what: "entry bytes",
            })?;

        let (line, index) = lines.require("\"index\" line")?;
        let index =
            parse_u64(keyword_value(index, line, "index")?).ok_or(NoteError::BadNumber {
                line,
                what: "index",
            })?;

        let (proof, checkpoint) = parse_proof_and_checkpoint(lines)?;
        Ok(Self {
            entry,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The checkpoint, if `verifier` signed it.
    pub fn verify_checkpoint(&self, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        // Header, extra, index, the hashes and the blank line come before the checkpoint.
        let first_line = self.proof.len().saturating_add(5);
        Checkpoint::verify_signed(&self.checkpoint, verifier)
            .map_err(|e| in_checkpoint(first_line, e))
    }
}

/// A consistency proof file: the older tree size, the RFC 9162 consistency proof from it and the
/// signed checkpoint of the newer tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProofFile {
    /// The older tree size.
    pub size1: u64,
    /// The consistency proof, in RFC 9162 order.
    pub proof: Vec<Hash>,
    /// The whole signed checkpoint note of the newer tree.
    pub checkpoint: String,
}

impl ConsistencyProofFile {
    /// The file's text (see the module doc).
    pub fn to_text(&self) -> String {
        let mut text = format!("{CONSISTENCY_HEADER}\nsize1 {}\n", self.size1);
        push_proof(&mut text, &self.proof, &self.checkpoint);
        text
    }

    /// The proof file in `text`, exactly as [`ConsistencyProofFile::to_text`] writes it. Checks
    /// the form of the checkpoint, not its signature nor the proof.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = proof_file_lines(text, CONSISTENCY_HEADER)?;
        let (line, size1) = lines.require("\"size1\" line")?;
        let size1 =
            parse_u64(keyword_value(size1, line, "size1")?).ok_or(NoteError::BadNumber {
                line,
                what: "size1",
            })?;
        let (proof, checkpoint) = parse_proof_and_checkpoint(lines)?;
        Ok(Self {
            size1,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The newer checkpoint, if `verifier` signed it.
    pub fn verify_checkpoint(&self, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        // Header, size1, the hashes and the blank line come before the checkpoint.
        let first_line = self.proof.len().saturating_add(4);
        Checkpoint::verify_signed(&self.checkpoint, verifier)
            .map_err(|e| in_checkpoint(first_line, e))
    }
}

/// Any file `audit verify` accepts, told apart by its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteFile {
    /// A signed checkpoint note (its form checked, its signature not yet).
    Checkpoint(String),
    /// An inclusion proof file.
    Inclusion(InclusionProofFile),
    /// A consistency proof file.
    Consistency(ConsistencyProofFile),
}

impl NoteFile {
    /// The file in `text`: a proof file if its first line is one of the two headers, otherwise
    /// a signed checkpoint (whose first line is its origin).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let first = text.split_once('\n').map_or(text, |(first, _)| first);
        match first {
            TLOG_PROOF_HEADER => InclusionProofFile::parse(text).map(Self::Inclusion),
            CONSISTENCY_HEADER => ConsistencyProofFile::parse(text).map(Self::Consistency),
            _ => {
                check_checkpoint_form(text)?;
                Ok(Self::Checkpoint(text.to_owned()))
            }
        }
    }

    /// The signed checkpoint note the file carries.
    pub fn checkpoint_note(&self) -> &str {
        match self {
            Self::Checkpoint(note) => note,
            Self::Inclusion(file) => &file.checkpoint,
            Self::Consistency(file) => &file.checkpoint,
        }
    }
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

/// The lines of a proof file after its header, once the size, the characters and the header
/// are checked.
fn proof_file_lines<'a>(text: &'a str, header: &'static str) -> Result<Lines<'a>, NoteError> {
    check_size(text, "proof file", MAX_FILE_BYTES)?;
    check_control_characters(text)?;
    let mut lines = Lines::new(text, 1);
    match lines.next_line() {
        Ok(Some((_, first))) if first == header => Ok(lines),
        _ => Err(NoteError::BadHeader { expected: header }),
    }
}

/// The proof hashes up to the blank line, and the checkpoint note after it.
fn parse_proof_and_checkpoint(mut lines: Lines<'_>) -> Result<(Vec<Hash>, &str), NoteError> {
    let mut proof = Vec::new();
    let blank_line = loop {
        let (line, content) = lines
            .next_line()?
            .ok_or(NoteError::MissingCheckpointSeparator)?;
        if content.is_empty() {
            break line;
        }
        proof.push(decode_hash(content, line, "proof hash")?);
    };
    let checkpoint = lines.rest;
    if checkpoint.is_empty() {
        return Err(NoteError::MissingCheckpoint { line: blank_line });
    }
    if checkpoint.starts_with('\n') {
        return Err(NoteError::DuplicateBlankLine {
            line: blank_line + 1,
        });
    }
    check_checkpoint_form(checkpoint).map_err(|e| in_checkpoint(blank_line + 1, e))?;
    Ok((proof, checkpoint))
}

fn push_proof(text: &mut String, proof: &[Hash], checkpoint: &str) {
    for hash in proof {
        BASE64.encode_string(hash, text);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(checkpoint);
}

/// A well-formed signed note whose text is a well-formed checkpoint (nothing verified).
fn check_checkpoint_form(note: &str) -> Result<(), NoteError> {
    let parsed = SignedNote::parse(note)?;
    Checkpoint::parse_body(parsed.text)?;
    Ok(())
}

fn in_checkpoint(first_line: usize, error: NoteError) -> NoteError {
    NoteError::InCheckpoint {
        first_line,
        source: Box::new(error),
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

/// C2SP signed-note §Ed25519 signatures: SHA-256(key name || 0x0A || 0x01 || public key)[:4].
fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex_id(key_id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(key_id))
}

/// Eight lowercase hex digits.
fn parse_hex_id(text: &str) -> Option<[u8; 4]> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok().map(u32::to_be_bytes)
}

/// `[prefix] <name> "+" <hex key id> "+" <base64>`: the name, the key id and the base64 text.
fn split_key_text<'a>(
    text: &'a str,
    what: &'static str,
    prefix: Option<&'static str>,
) -> Result<(&'a str, [u8; 4], &'a str), NoteError> {
    let malformed = |reason| NoteError::MalformedKey { what, reason };
    check_size(text, what, MAX_KEY_TEXT_BYTES)?;
    let text = match prefix {
        Some(prefix) => text
            .strip_prefix(prefix)
            .ok_or(malformed("does not start with \"PRIVATE+KEY+\""))?,
        None => text,
    };
    // The name holds no '+', the base64 may: split at the first two.
    let (name, rest) = text
        .split_once('+')
        .ok_or(malformed("expected <name>+<key id>+<key>"))?;
    let (id, key) = rest
        .split_once('+')
        .ok_or(malformed("expected <name>+<key id>+<key>"))?;
    check_key_name(name)?;
    let id = parse_hex_id(id).ok_or(malformed("key id is not 8 lowercase hex digits"))?;
    Ok((name, id, key))
}

/// base64(0x01 || 32 bytes) to the 32 bytes.
fn decode_key_bytes(encoded: &str, what: &'static str) -> Result<[u8; 32], NoteError> {
    let raw = BASE64
        .decode(encoded)
        .map_err(|_| NoteError::MalformedKey {
            what,
            reason: "key is not canonical padded base64",
        })?;
    let (&alg, key) = raw.split_first().ok_or(NoteError::MalformedKey {
        what,
        reason: "key is empty",
    })?;
    if alg != ALG_ED25519 {
        return Err(NoteError::UnknownAlgorithm { what, alg });
    }
    <[u8; 32]>::try_from(key).map_err(|_| NoteError::KeyLength {
        what,
        len: key.len(),
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
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier, TestNewSigner, TestSign,
    // TestOpen) and the package documentation: the reference implementation's own vectors.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).expect("Go's verifier key parses")
    }

    fn enoch() -> NoteVerifier {
        NoteVerifier::parse(ENOCH_VKEY).expect("Go's verifier key parses")
    }

    fn go_note() -> String {
        format!("{GO_TEXT}\n{PETER_SIG}")
    }

    fn test_signer() -> NoteSigner {
        NoteSigner::from_seed("daemoneye.test/host-1", [7; 32]).expect("valid name")
    }

    fn test_checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "daemoneye.test/host-1".to_owned(),
            size: 7,
            root: [0xa5; 32],
            hash: HashAlg::Sha256,
            time_ms: 1_700_000_000_123,
        }
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    /// Asserts `result` is the error `expected`, exactly.
    #[track_caller]
    fn check<T: fmt::Debug>(what: &str, result: Result<T, NoteError>, expected: &NoteError) {
        match result {
            Ok(value) => panic!("{what}: accepted, got {value:?}, expected error {expected}"),
            Err(error) => assert_eq!(&error, expected, "{what}: wrong error ({error})"),
        }
    }

    // ---- Negative tests: keys --------------------------------------------------------------

    #[test]
    fn verifier_key_rejects_every_substring_and_every_incremented_byte() {
        // As Go's TestNewVerifier: every proper substring, every byte plus one.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let text = std::str::from_utf8(&b[i..j]).expect("ASCII");
                assert!(NoteVerifier::parse(text).is_err(), "accepted {text:?}");
            }
        }
        for i in 0..b.len() {
            let mut mangled = b.to_vec();
            mangled[i] += 1;
            let text = std::str::from_utf8(&mangled).expect("ASCII");
            assert!(NoteVerifier::parse(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn verifier_key_rejects_each_fault_with_its_own_error() {
        const WHAT: &str = "verifier key";
        let cases: &[(&str, &str, NoteError)] = &[
            // Go's two extra cases: the key id adjusted so that only the defect remains.
            (
                "wrong length key",
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                NoteError::KeyLength {
                    what: WHAT,
                    len: 38,
                },
            ),
            (
                "unknown algorithm",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::UnknownAlgorithm {
                    what: WHAT,
                    alg: 0x65,
                },
            ),
            (
                "uppercase key id",
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::MalformedKey {
                    what: WHAT,
                    reason: "key id is not 8 lowercase hex digits",
                },
            ),
            (
                "wrong key id",
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::KeyIdMismatch {
                    what: WHAT,
                    stated: "c74f20a4".to_owned(),
                    computed: "c74f20a3".to_owned(),
                },
            ),
            (
                "wrong name",
                "PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::KeyIdMismatch {
                    what: WHAT,
                    stated: "c74f20a3".to_owned(),
                    computed: hex_id(key_id("PeterNeumanm", &peter().public_key())),
                },
            ),
            (
                "trailing newline",
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
                NoteError::MalformedKey {
                    what: WHAT,
                    reason: "key is not canonical padded base64",
                },
            ),
            (
                "leading space",
                " PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::InvalidKeyName {
                    name: "\" PeterNeumann\"".to_owned(),
                    reason: "contains a space",
                },
            ),
            (
                "empty name",
                "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                NoteError::InvalidKeyName {
                    name: "\"\"".to_owned(),
                    reason: "is empty",
                },
            ),
            (
                "no key",
                "PeterNeumann+c74f20a3",
                NoteError::MalformedKey {
                    what: WHAT,
                    reason: "expected <name>+<key id>+<key>",
                },
            ),
            (
                "empty key",
                "PeterNeumann+c74f20a3+",
                NoteError::MalformedKey {
                    what: WHAT,
                    reason: "key is empty",
                },
            ),
            (
                "unpadded base64",
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
                NoteError::MalformedKey {
                    what: WHAT,
                    reason: "key is not canonical padded base64",
                },
            ),
        ];
        for (what, text, expected) in cases {
            check(what, NoteVerifier::parse(text), expected);
        }
        let long = format!("{}+00000000+AA==", "n".repeat(MAX_KEY_TEXT_BYTES));
        check(
            "too long",
            NoteVerifier::parse(&long),
            &NoteError::TooLarge {
                what: WHAT,
                len: long.len(),
                max: MAX_KEY_TEXT_BYTES,
            },
        );
    }

    #[test]
    fn verifier_key_rejects_small_order_and_non_canonical_points() {
        let with_id = |name: &str, public: [u8; 32]| {
            let mut blob = vec![ALG_ED25519];
            blob.extend_from_slice(&public);
            format!("{name}+{}+{}", hex_id(key_id(name, &public)), b64(&blob))
        };
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        check(
            "identity point",
            NoteVerifier::parse(&with_id("weak", identity)),
            &NoteError::InvalidPublicKey {
                reason: "a point of small order",
            },
        );
        // y = p + 1 (p = 2^255 - 19) is a non-canonical spelling of the identity.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        let result = NoteVerifier::parse(&with_id("odd", non_canonical));
        assert!(
            matches!(result, Err(NoteError::InvalidPublicKey { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn secret_key_rejects_every_substring_and_every_incremented_byte() {
        let b = PETER_SKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let text = std::str::from_utf8(&b[i..j]).expect("ASCII");
                assert!(NoteSigner::parse_secret(text).is_err(), "accepted {text:?}");
            }
        }
        for i in 0..b.len() {
            let mut mangled = b.to_vec();
            mangled[i] += 1;
            let text = std::str::from_utf8(&mangled).expect("ASCII");
            assert!(NoteSigner::parse_secret(text).is_err(), "accepted {text:?}");
        }
        check(
            "verifier key as secret key",
            NoteSigner::parse_secret(PETER_VKEY),
            &NoteError::MalformedKey {
                what: "secret key",
                reason: "does not start with \"PRIVATE+KEY+\"",
            },
        );
        check(
            "secret key for another name",
            NoteSigner::parse_secret(
                "PRIVATE+KEY+EnochRoot+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            ),
            &NoteError::KeyIdMismatch {
                what: "secret key",
                stated: "c74f20a3".to_owned(),
                computed: hex_id(key_id("EnochRoot", &peter().public_key())),
            },
        );
    }

    #[test]
    fn key_names_follow_the_spec() {
        for (name, reason) in [
            ("", "is empty"),
            ("a b", "contains a space"),
            ("a\tb", "contains a space"),
            ("a\u{a0}b", "contains a space"),
            ("a\u{3000}b", "contains a space"),
            ("a\u{2028}b", "contains a space"),
            ("a+b", "contains '+'"),
            ("a\u{1}b", "contains a control character"),
            ("a\u{7f}b", "contains a control character"),
        ] {
            check(
                name,
                NoteSigner::from_seed(name, [1; 32]),
                &NoteError::InvalidKeyName {
                    name: format!("{name:?}"),
                    reason,
                },
            );
        }
        for name in ["a", "example.com/log42", "PeterNeumann", "é/ü-π"] {
            assert!(NoteSigner::from_seed(name, [1; 32]).is_ok(), "{name}");
        }
        let long = "x".repeat(100);
        let error = NoteSigner::from_seed(&format!("{long} "), [1; 32]).unwrap_err();
        assert!(error.to_string().contains("…"), "{error}");
    }

    // ---- Negative tests: signing and verifying notes ------------------------------------------

    #[test]
    fn sign_refuses_texts_a_verifier_would_refuse() {
        let signer = test_signer();
        check(
            "empty",
            signer.sign(""),
            &NoteError::InvalidText { reason: "is empty" },
        );
        check(
            "no final newline",
            signer.sign("abc"),
            &NoteError::InvalidText {
                reason: "does not end in a newline",
            },
        );
        check(
            "carriage return",
            signer.sign("a\r\nb\r\n"),
            &NoteError::ControlCharacter { line: 1 },
        );
        check(
            "tab on line 2",
            signer.sign("a\nb\tc\n"),
            &NoteError::ControlCharacter { line: 2 },
        );
        let huge = "a".repeat(MAX_NOTE_BYTES) + "\n";
        assert!(matches!(
            signer.sign(&huge),
            Err(NoteError::TooLarge {
                what: "signed note",
                ..
            })
        ));
    }

    #[test]
    fn verify_rejects_malformed_and_forged_notes() {
        let note = go_note();
        let bad_sig = NoteError::BadSignature {
            name: "PeterNeumann".to_owned(),
            key_id: "c74f20a3".to_owned(),
        };
        let no_sig = NoteError::NoSignature {
            name: "PeterNeumann".to_owned(),
            key_id: "c74f20a3".to_owned(),
        };
        let malformed = |line, reason| NoteError::MalformedSignatureLine { line, reason };
        let invalid_base64 = "has a signature that is not canonical padded base64";
        let cases = [
            (
                "one letter changed in the text",
                note.replace("cryptography", "cryptographY"),
                bad_sig.clone(),
            ),
            (
                // Go's "Invalid signature" case: four more base64 characters in the signature.
                "four characters inserted in the signature",
                format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]),
                bad_sig.clone(),
            ),
            (
                "one signature character changed",
                note.replace("x08go/ZJ", "x08go/ZK"),
                bad_sig.clone(),
            ),
            (
                "a good and a bad signature by the trusted key",
                format!(
                    "{GO_TEXT}\n{PETER_SIG}{}",
                    PETER_SIG.replace("x08go/ZJ", "x08go/ZK")
                ),
                bad_sig.clone(),
            ),
            (
                "signed by another key only",
                format!("{GO_TEXT}\n{ENOCH_SIG}"),
                no_sig.clone(),
            ),
            (
                "right name, other key id",
                note.replace("x08g", "AAAA"),
                no_sig.clone(),
            ),
            (
                "no blank line and no signature",
                GO_TEXT.to_owned(),
                NoteError::MissingSignatureSeparator,
            ),
            (
                "blank line but no signature line",
                format!("{GO_TEXT}\n"),
                NoteError::NoSignatureLines,
            ),
            (
                "truncated: no final newline",
                note[..note.len() - 1].to_owned(),
                NoteError::UnterminatedLine { line: 4 },
            ),
            (
                "truncated in the signature",
                note[..note.len() - 10].to_owned(),
                NoteError::UnterminatedLine { line: 4 },
            ),
            (
                "truncated in the text",
                GO_TEXT[..20].to_owned(),
                NoteError::MissingSignatureSeparator,
            ),
            (
                "CRLF line endings",
                note.replace('\n', "\r\n"),
                NoteError::ControlCharacter { line: 1 },
            ),
            (
                "control character before the text",
                format!("\u{1}{note}"),
                NoteError::ControlCharacter { line: 1 },
            ),
            (
                "duplicate blank line",
                format!("{GO_TEXT}\n\n{PETER_SIG}"),
                bad_sig.clone(),
            ),
            (
                "space on the blank line",
                format!("{GO_TEXT} \n{PETER_SIG}"),
                NoteError::MissingSignatureSeparator,
            ),
            (
                "two spaces after the name",
                note.replace("PeterNeumann ", "PeterNeumann  "),
                malformed(4, invalid_base64),
            ),
            (
                "space after the signature",
                note.replace("AM=\n", "AM= \n"),
                malformed(4, invalid_base64),
            ),
            (
                "space before the em dash",
                note.replace("\n—", "\n —"),
                malformed(4, "does not start with an em dash (U+2014) and a space"),
            ),
            (
                "hyphen for the em dash",
                note.replace('—', "-"),
                malformed(4, "does not start with an em dash (U+2014) and a space"),
            ),
            (
                "no space after the em dash",
                note.replace("— ", "—"),
                malformed(4, "does not start with an em dash (U+2014) and a space"),
            ),
            (
                "name only",
                format!("{GO_TEXT}\n— PeterNeumann\n"),
                malformed(4, "has no space between the key name and the signature"),
            ),
            (
                "Go's bad name case",
                format!(
                    "{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
                ),
                malformed(4, invalid_base64),
            ),
            (
                "name with a plus",
                format!("{GO_TEXT}\n— Peter+Neumann AAAAAAA=\n"),
                malformed(4, "has an invalid key name"),
            ),
            (
                "bad base64",
                format!("{GO_TEXT}\n— PeterNeumann x08go/ZJ!!!=\n"),
                malformed(4, invalid_base64),
            ),
            (
                "base64 missing its padding",
                note.replace("AM=\n", "AM\n"),
                malformed(4, invalid_base64),
            ),
            (
                "base64 with non-zero trailing bits",
                note.replace("AM=\n", "AN=\n"),
                malformed(4, invalid_base64),
            ),
            (
                "signature of four bytes",
                format!("{GO_TEXT}\n— PeterNeumann x08gow==\n"),
                malformed(4, "has a signature shorter than 5 bytes"),
            ),
            (
                "empty signature",
                format!("{GO_TEXT}\n— PeterNeumann \n"),
                malformed(4, "has a signature shorter than 5 bytes"),
            ),
            (
                "trailing garbage after the signature",
                format!("{note}Unexpected line.\n"),
                malformed(5, "does not start with an em dash (U+2014) and a space"),
            ),
            (
                "an unknown key's malformed line",
                format!("{note}— EnochRoot !!!!\n"),
                malformed(5, invalid_base64),
            ),
            (
                "101 signature lines",
                format!("{GO_TEXT}\n{}", PETER_SIG.repeat(101)),
                NoteError::TooManySignatures { max: 100 },
            ),
        ];
        for (what, text, expected) in cases {
            check(what, peter().verify(&text), &expected);
        }
        let huge = format!("{}\n\n{PETER_SIG}", "a".repeat(MAX_NOTE_BYTES));
        check(
            "over the size limit",
            peter().verify(&huge),
            &NoteError::TooLarge {
                what: "signed note",
                len: huge.len(),
                max: MAX_NOTE_BYTES,
            },
        );
        check(
            "not UTF-8",
            text_from_bytes(b"abc\n\xff\n"),
            &NoteError::NotUtf8 { offset: 4 },
        );
    }

    // ---- Negative tests: checkpoints ------------------------------------------------------------

    #[test]
    fn checkpoint_body_rejects_every_deviation() {
        let root = b64(&[0xa5; 32]);
        let good = format!("o\n7\n{root}\nhash sha256\ntime 5\n");
        assert!(Checkpoint::parse_body(&good).is_ok());
        let number = |line, what| NoteError::BadNumber { line, what };
        let size = "checkpoint tree size";
        let time = "checkpoint time";
        let cases = [
            (
                "empty",
                String::new(),
                NoteError::MissingLine {
                    line: 1,
                    what: "checkpoint origin",
                },
            ),
            (
                "empty origin",
                format!("\n7\n{root}\nhash sha256\ntime 5\n"),
                NoteError::InvalidOrigin { reason: "is empty" },
            ),
            (
                "origin with a space",
                format!("o x\n7\n{root}\nhash sha256\ntime 5\n"),
                NoteError::InvalidOrigin {
                    reason: "contains a space",
                },
            ),
            (
                "origin with a trailing space",
                format!("o \n7\n{root}\nhash sha256\ntime 5\n"),
                NoteError::InvalidOrigin {
                    reason: "contains a space",
                },
            ),
            (
                "origin with a plus",
                format!("o+x\n7\n{root}\nhash sha256\ntime 5\n"),
                NoteError::InvalidOrigin {
                    reason: "contains '+'",
                },
            ),
            (
                "size with a leading zero",
                good.replace("\n7\n", "\n07\n"),
                number(2, size),
            ),
            ("size 00", good.replace("\n7\n", "\n00\n"), number(2, size)),
            (
                "size with a plus",
                good.replace("\n7\n", "\n+7\n"),
                number(2, size),
            ),
            (
                "negative size",
                good.replace("\n7\n", "\n-7\n"),
                number(2, size),
            ),
            (
                "size with a space",
                good.replace("\n7\n", "\n 7\n"),
                number(2, size),
            ),
            ("empty size", good.replace("\n7\n", "\n\n"), number(2, size)),
            (
                "size over u64",
                good.replace("\n7\n", "\n18446744073709551616\n"),
                number(2, size),
            ),
            (
                "root of 31 bytes",
                good.replace(&root, &b64(&[0xa5; 31])),
                NoteError::BadHashLength {
                    line: 3,
                    what: "checkpoint root hash",
                    len: 31,
                },
            ),
            (
                "root of 33 bytes",
                good.replace(&root, &b64(&[0xa5; 33])),
                NoteError::BadHashLength {
                    line: 3,
                    what: "checkpoint root hash",
                    len: 33,
                },
            ),
            (
                "root without padding",
                good.replace(&root, root.trim_end_matches('=')),
                NoteError::BadBase64 {
                    line: 3,
                    what: "checkpoint root hash",
                },
            ),
            (
                "root in hex",
                good.replace(&root, &"a5".repeat(32)),
                NoteError::BadBase64 {
                    line: 3,
                    what: "checkpoint root hash",
                },
            ),
            (
                "root in URL-safe base64",
                good.replace(&root, &b64(&[0xfb; 32]).replace('+', "-").replace('/', "_")),
                NoteError::BadBase64 {
                    line: 3,
                    what: "checkpoint root hash",
                },
            ),
            (
                "unknown hash",
                good.replace("hash sha256", "hash md5"),
                NoteError::UnknownHash {
                    line: 4,
                    name: "\"md5\"".to_owned(),
                },
            ),
            (
                "hash in capitals",
                good.replace("hash sha256", "hash SHA256"),
                NoteError::UnknownHash {
                    line: 4,
                    name: "\"SHA256\"".to_owned(),
                },
            ),
            (
                "two spaces after hash",
                good.replace("hash sha256", "hash  sha256"),
                NoteError::UnknownHash {
                    line: 4,
                    name: "\" sha256\"".to_owned(),
                },
            ),
            (
                "Hash keyword capitalised",
                good.replace("hash sha256", "Hash sha256"),
                NoteError::ExpectedKeyword {
                    line: 4,
                    keyword: "hash",
                },
            ),
            (
                "time before hash",
                format!("o\n7\n{root}\ntime 5\nhash sha256\n"),
                NoteError::ExpectedKeyword {
                    line: 4,
                    keyword: "hash",
                },
            ),
            (
                "no time line",
                format!("o\n7\n{root}\nhash sha256\n"),
                NoteError::MissingLine {
                    line: 5,
                    what: "checkpoint \"time\" line",
                },
            ),
            (
                "time with a leading zero",
                good.replace("time 5", "time 05"),
                number(5, time),
            ),
            (
                "time -0",
                good.replace("time 5", "time -0"),
                number(5, time),
            ),
            (
                "time with a plus",
                good.replace("time 5", "time +5"),
                number(5, time),
            ),
            (
                "time over i64",
                good.replace("time 5", "time 9223372036854775808"),
                number(5, time),
            ),
            (
                "time under i64",
                good.replace("time 5", "time -9223372036854775809"),
                number(5, time),
            ),
            (
                "an extension line too many",
                format!("{good}extra\n"),
                NoteError::TrailingData {
                    line: 6,
                    after: "checkpoint \"time\" line",
                },
            ),
            (
                "a blank line at the end",
                format!("{good}\n"),
                NoteError::TrailingData {
                    line: 6,
                    after: "checkpoint \"time\" line",
                },
            ),
            (
                "no final newline",
                good.trim_end().to_owned(),
                NoteError::UnterminatedLine { line: 5 },
            ),
            (
                "CRLF",
                good.replace('\n', "\r\n"),
                NoteError::ControlCharacter { line: 1 },
            ),
        ];
        for (what, text, expected) in cases {
            check(what, Checkpoint::parse_body(&text), &expected);
        }
    }

    #[test]
    fn checkpoint_sign_refuses_an_origin_that_would_not_parse_back() {
        let signer = test_signer();
        for (origin, reason) in [
            ("", "is empty"),
            ("two words", "contains a space"),
            ("a+b", "contains '+'"),
        ] {
            let checkpoint = Checkpoint {
                origin: origin.to_owned(),
                ..test_checkpoint()
            };
            check(
                origin,
                checkpoint.sign(&signer),
                &NoteError::InvalidOrigin { reason },
            );
        }
        let checkpoint = Checkpoint {
            origin: "a\nb".to_owned(),
            ..test_checkpoint()
        };
        assert!(checkpoint.sign(&signer).is_err());
    }

    #[test]
    fn verify_signed_rejects_a_checkpoint_signed_by_another_key() {
        let note = test_checkpoint().sign(&test_signer()).expect("signs");
        let other = NoteSigner::from_seed("daemoneye.test/host-1", [8; 32]).expect("valid");
        let verifier = other.verifier();
        check(
            "same name, other key",
            Checkpoint::verify_signed(&note, &verifier),
            &NoteError::NoSignature {
                name: "daemoneye.test/host-1".to_owned(),
                key_id: hex_id(other.key_id()),
            },
        );
        // A note that verifies but is not a checkpoint.
        let note = test_signer().sign("hello\n").expect("signs");
        check(
            "not a checkpoint",
            Checkpoint::verify_signed(&note, &test_signer().verifier()),
            &NoteError::MissingLine {
                line: 2,
                what: "checkpoint tree size",
            },
        );
    }

    // ---- Negative tests: proof files --------------------------------------------------------

    fn signed_checkpoint() -> String {
        test_checkpoint().sign(&test_signer()).expect("signs")
    }

    fn inclusion_file() -> InclusionProofFile {
        InclusionProofFile {
            entry: b"entry bytes".to_vec(),
            index: 5,
            proof: vec![[1; 32], [2; 32], [3; 32]],
            checkpoint: signed_checkpoint(),
        }
    }

    #[test]
    fn inclusion_file_rejects_every_deviation() {
        let checkpoint = signed_checkpoint();
        let h1 = b64(&[1; 32]);
        let entry = b64(b"entry bytes");
        let good = inclusion_file().to_text();
        assert_eq!(
            good,
            format!(
                "c2sp.org/tlog-proof@v1\nextra {entry}\nindex 5\n{h1}\n{}\n{}\n\n{checkpoint}",
                b64(&[2; 32]),
                b64(&[3; 32])
            )
        );
        let header = NoteError::BadHeader {
            expected: TLOG_PROOF_HEADER,
        };
        let cases = [
            ("empty", String::new(), header.clone()),
            (
                "wrong header",
                good.replace("tlog-proof@v1", "tlog-proof@v2"),
                header.clone(),
            ),
            (
                "header with a trailing space",
                good.replacen("@v1\n", "@v1 \n", 1),
                header.clone(),
            ),
            (
                "no extra line",
                good.replace(&format!("extra {entry}\n"), ""),
                NoteError::ExpectedKeyword {
                    line: 2,
                    keyword: "extra",
                },
            ),
            (
                "extra not base64",
                good.replace(&entry, "not base64!"),
                NoteError::BadBase64 {
                    line: 2,
                    what: "entry bytes",
                },
            ),
            (
                "extra without its padding",
                good.replace(&entry, entry.trim_end_matches('=')),
                NoteError::BadBase64 {
                    line: 2,
                    what: "entry bytes",
                },
            ),
            (
                "index with a leading zero",
                good.replace("index 5", "index 05"),
                NoteError::BadNumber {
                    line: 3,
                    what: "index",
                },
            ),
            (
                "index with two spaces",
                good.replace("index 5", "index  5"),
                NoteError::BadNumber {
                    line: 3,
                    what: "index",
                },
            ),
            (
                "index missing",
                format!("c2sp.org/tlog-proof@v1\nextra {entry}\n"),
                NoteError::MissingLine {
                    line: 3,
                    what: "\"index\" line",
                },
            ),
            (
                "a proof hash of 31 bytes",
                good.replace(&h1, &b64(&[1; 31])),
                NoteError::BadHashLength {
                    line: 4,
                    what: "proof hash",
                    len: 31,
                },
            ),
            (
                "a proof hash of 33 bytes",
                good.replace(&h1, &b64(&[1; 33])),
                NoteError::BadHashLength {
                    line: 4,
                    what: "proof hash",
                    len: 33,
                },
            ),
            (
                "a proof hash without padding",
                good.replace(&h1, h1.trim_end_matches('=')),
                NoteError::BadBase64 {
                    line: 4,
                    what: "proof hash",
                },
            ),
            (
                "a proof hash with a trailing space",
                good.replace(&h1, &format!("{h1} ")),
                NoteError::BadBase64 {
                    line: 4,
                    what: "proof hash",
                },
            ),
            (
                "no blank line before the checkpoint",
                good.replace("\n\n", "\n"),
                NoteError::BadBase64 {
                    line: 7,
                    what: "proof hash",
                },
            ),
            (
                "ends before the blank line",
                good[..good.find("\n\n").expect("blank line") + 1].to_owned(),
                NoteError::MissingCheckpointSeparator,
            ),
            (
                "no checkpoint",
                good[..good.find("\n\n").expect("blank line") + 2].to_owned(),
                NoteError::MissingCheckpoint { line: 7 },
            ),
            (
                "duplicate blank line",
                good.replacen("\n\n", "\n\n\n", 1),
                NoteError::DuplicateBlankLine { line: 8 },
            ),
            (
                "CRLF",
                good.replace('\n', "\r\n"),
                NoteError::ControlCharacter { line: 1 },
            ),
            (
                "trailing garbage after the checkpoint",
                format!("{good}garbage\n"),
                in_checkpoint(
                    8,
                    NoteError::MalformedSignatureLine {
                        line: 8,
                        reason: "does not start with an em dash (U+2014) and a space",
                    },
                ),
            ),
            (
                "trailing bytes without a newline",
                format!("{good}x"),
                in_checkpoint(8, NoteError::UnterminatedLine { line: 8 }),
            ),
            (
                "checkpoint without signature",
                good.replace(&checkpoint, &test_checkpoint().body()),
                in_checkpoint(8, NoteError::MissingSignatureSeparator),
            ),
            (
                "checkpoint with an extension line too many",
                good.replace("\n\n— ", "\nx\n\n— "),
                in_checkpoint(
                    8,
                    NoteError::TrailingData {
                        line: 6,
                        after: "checkpoint \"time\" line",
                    },
                ),
            ),
        ];
        for (what, text, expected) in cases {
            check(what, InclusionProofFile::parse(&text), &expected);
        }
    }

    #[test]
    fn consistency_file_rejects_every_deviation() {
        let file = ConsistencyProofFile {
            size1: 3,
            proof: vec![[9; 32]],
            checkpoint: signed_checkpoint(),
        };
        let good = file.to_text();
        let h = b64(&[9; 32]);
        assert_eq!(
            good,
            format!(
                "daemoneye/tlog-consistency@v1\nsize1 3\n{h}\n\n{}",
                file.checkpoint
            )
        );
        let cases = [
            (
                "inclusion header",
                good.replace(CONSISTENCY_HEADER, TLOG_PROOF_HEADER),
                NoteError::BadHeader {
                    expected: CONSISTENCY_HEADER,
                },
            ),
            (
                "size1 with a leading zero",
                good.replace("size1 3", "size1 03"),
                NoteError::BadNumber {
                    line: 2,
                    what: "size1",
                },
            ),
            (
                "size1 negative",
                good.replace("size1 3", "size1 -3"),
                NoteError::BadNumber {
                    line: 2,
                    what: "size1",
                },
            ),
            (
                "no size1 line",
                good.replace("size1 3\n", ""),
                NoteError::ExpectedKeyword {
                    line: 2,
                    keyword: "size1",
                },
            ),
            (
                "hash of 31 bytes",
                good.replace(&h, &b64(&[9; 31])),
                NoteError::BadHashLength {
                    line: 3,
                    what: "proof hash",
                    len: 31,
                },
            ),
            (
                "duplicate blank line",
                good.replacen("\n\n", "\n\n\n", 1),
                NoteError::DuplicateBlankLine { line: 5 },
            ),
            (
                "trailing garbage",
                format!("{good}\n"),
                in_checkpoint(5, NoteError::NoSignatureLines),
            ),
        ];
        for (what, text, expected) in cases {
            check(what, ConsistencyProofFile::parse(&text), &expected);
        }
    }

    // ---- Known answers: Go's golang.org/x/mod/sumdb/note vectors -------------------------------

    #[test]
    fn go_reference_vectors_match_byte_for_byte() {
        let verifier = peter();
        assert_eq!(verifier.name(), "PeterNeumann");
        assert_eq!(verifier.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(verifier.to_string(), PETER_VKEY);

        let signer = NoteSigner::parse_secret(PETER_SKEY).expect("Go's secret key parses");
        assert_eq!(signer.secret_key_text(), PETER_SKEY);
        assert_eq!(signer.verifier(), verifier);
        assert_eq!(signer.verifier().to_string(), PETER_VKEY);
        // Ed25519 is deterministic: signing Go's text must give Go's note.
        assert_eq!(signer.sign(GO_TEXT).expect("signs"), go_note());
        assert_eq!(verifier.verify(&go_note()).expect("verifies"), GO_TEXT);

        // Go's TestOpen: two signatures; each key verifies its own and ignores the other.
        let both = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(verifier.verify(&both).expect("Peter"), GO_TEXT);
        assert_eq!(enoch().verify(&both).expect("Enoch"), GO_TEXT);
        assert_eq!(enoch().key_id(), [0xaf, 0x0c, 0xfe, 0x78]);
        // Repeated lines by the trusted key all verify; repeated unknown lines are ignored.
        let repeated = format!(
            "{GO_TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{}ABCD{}",
            &ENOCH_SIG[..60],
            &ENOCH_SIG[60..]
        );
        assert_eq!(verifier.verify(&repeated).expect("Peter"), GO_TEXT);
        // Exactly 100 lines are accepted.
        let hundred = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(100));
        assert_eq!(verifier.verify(&hundred).expect("100 lines"), GO_TEXT);
    }

    #[test]
    fn c2sp_spec_checkpoint_example_is_well_formed() {
        // The example in c2sp.org/tlog-checkpoint: three lines, so not one of ours, but its
        // signed-note framing parses and its (unknown) signature is ignored, not rejected.
        let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        check(
            "spec example against Peter's key",
            peter().verify(note),
            &NoteError::NoSignature {
                name: "PeterNeumann".to_owned(),
                key_id: "c74f20a3".to_owned(),
            },
        );
        check(
            "spec example as our checkpoint",
            NoteFile::parse(note),
            &NoteError::MissingLine {
                line: 4,
                what: "checkpoint \"hash\" line",
            },
        );
    }

    // ---- Round trips ----------------------------------------------------------------------

    #[test]
    fn keys_round_trip() {
        let signer = NoteSigner::generate("daemoneye.test/generated").expect("generates");
        let again = NoteSigner::parse_secret(&signer.secret_key_text()).expect("parses");
        assert_eq!(again.seed(), signer.seed());
        assert_eq!(again.name(), signer.name());
        assert_eq!(again.key_id(), signer.key_id());
        let verifier = signer.verifier();
        assert_eq!(
            NoteVerifier::parse(&verifier.to_string()),
            Ok(verifier.clone())
        );
        let from_seed = NoteSigner::from_seed(signer.name(), signer.seed()).expect("valid");
        assert_eq!(from_seed.verifier(), verifier);
        assert_ne!(
            NoteSigner::generate("daemoneye.test/generated")
                .expect("generates")
                .seed(),
            signer.seed()
        );
        let debug = format!("{signer:?}");
        assert!(!debug.contains(&b64(&signer.seed())), "{debug}");
        check(
            "generate with a bad name",
            NoteSigner::generate("bad name"),
            &NoteError::InvalidKeyName {
                name: "\"bad name\"".to_owned(),
                reason: "contains a space",
            },
        );
    }

    #[test]
    fn notes_with_blank_lines_and_unicode_round_trip() {
        let signer = test_signer();
        for text in ["\n", "a\n\nb\n", "a\n\n", "ed è subito sera.\n", "— x y\n"] {
            let note = signer.sign(text).expect("signs");
            assert_eq!(signer.verifier().verify(&note).expect("verifies"), text);
        }
    }

    #[test]
    fn checkpoints_round_trip() {
        let signer = test_signer();
        for checkpoint in [
            test_checkpoint(),
            Checkpoint {
                size: 0,
                root: HashAlg::Blake3.empty_root(),
                hash: HashAlg::Blake3,
                time_ms: 0,
                ..test_checkpoint()
            },
            Checkpoint {
                size: u64::MAX,
                time_ms: i64::MIN,
                ..test_checkpoint()
            },
            Checkpoint {
                time_ms: i64::MAX,
                ..test_checkpoint()
            },
        ] {
            let body = checkpoint.body();
            assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint.clone()));
            let note = checkpoint.sign(&signer).expect("signs");
            assert_eq!(note, signer.sign(&body).expect("signs"));
            assert_eq!(
                Checkpoint::verify_signed(&note, &signer.verifier()),
                Ok(checkpoint.clone())
            );
            assert_eq!(
                NoteFile::parse(&note),
                Ok(NoteFile::Checkpoint(note.clone()))
            );
        }
        assert_eq!(
            test_checkpoint().body(),
            format!(
                "daemoneye.test/host-1\n7\n{}\nhash sha256\ntime 1700000000123\n",
                b64(&[0xa5; 32])
            )
        );
    }

    #[test]
    fn proof_files_round_trip() {
        let verifier = test_signer().verifier();
        for file in [
            inclusion_file(),
            InclusionProofFile {
                entry: Vec::new(),
                index: 0,
                proof: Vec::new(),
                checkpoint: signed_checkpoint(),
            },
        ] {
            let text = file.to_text();
            assert_eq!(InclusionProofFile::parse(&text), Ok(file.clone()));
            assert_eq!(
                NoteFile::parse(&text),
                Ok(NoteFile::Inclusion(file.clone()))
            );
            assert_eq!(file.verify_checkpoint(&verifier), Ok(test_checkpoint()));
        }
        let file = ConsistencyProofFile {
            size1: 0,
            proof: Vec::new(),
            checkpoint: signed_checkpoint(),
        };
        let text = file.to_text();
        assert_eq!(ConsistencyProofFile::parse(&text), Ok(file.clone()));
        let parsed = NoteFile::parse(&text).expect("parses");
        assert_eq!(parsed.checkpoint_note(), file.checkpoint);
        assert_eq!(parsed, NoteFile::Consistency(file.clone()));
        assert_eq!(file.verify_checkpoint(&verifier), Ok(test_checkpoint()));

        // A checkpoint signed by someone else is reported with its place in the file.
        let other = NoteSigner::from_seed("other", [3; 32])
            .expect("valid")
            .verifier();
        check(
            "wrong key",
            inclusion_file().verify_checkpoint(&other),
            &in_checkpoint(
                8,
                NoteError::NoSignature {
                    name: "other".to_owned(),
                    key_id: hex_id(other.key_id()),
                },
            ),
        );
    }

    // ---- Every byte flipped ---------------------------------------------------------------

    const FLIPS: [u8; 5] = [0x01, 0x02, 0x20, 0x80, 0xff];

    /// Every single-byte change of `original`, as bytes.
    fn flips(original: &str) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
        (0..original.len()).flat_map(move |i| {
            FLIPS.iter().map(move |&pattern| {
                let mut bytes = original.as_bytes().to_vec();
                bytes[i] ^= pattern;
                (i, pattern, bytes)
            })
        })
    }

    #[test]
    fn every_flipped_byte_of_a_signed_checkpoint_fails() {
        // One signature line: no part of the note may change without failing.
        let note = signed_checkpoint();
        let verifier = test_signer().verifier();
        assert_eq!(
            Checkpoint::verify_signed(&note, &verifier),
            Ok(test_checkpoint())
        );
        let mut tried = 0;
        for (i, pattern, bytes) in flips(&note) {
            let result =
                text_from_bytes(&bytes).and_then(|text| Checkpoint::verify_signed(text, &verifier));
            assert!(
                result.is_err(),
                "byte {i} ^ {pattern:#04x} accepted: {result:?}"
            );
            tried += 1;
        }
        assert_eq!(tried, note.len() * FLIPS.len());
    }

    #[test]
    fn flips_in_a_cosignature_by_another_key_are_the_only_ones_ignored() {
        // The only part of a note a verifier ignores is a signature line by another key (a
        // witness cosignature, say): changing it may leave the note verifying, but then it must
        // give exactly the same checkpoint. Everything else must fail.
        let witness = NoteSigner::from_seed("witness.example", [5; 32]).expect("valid");
        let note = signed_checkpoint();
        let body = test_checkpoint().body();
        let cosignature = &witness.sign(&body).expect("signs")[body.len() + 1..];
        let cosigned = format!("{note}{cosignature}");
        let foreign = note.len()..cosigned.len();
        let verifier = test_signer().verifier();
        let mut ignored = 0;
        for (i, pattern, bytes) in flips(&cosigned) {
            let result =
                text_from_bytes(&bytes).and_then(|text| Checkpoint::verify_signed(text, &verifier));
            match result {
                Err(_) => {}
                Ok(checkpoint) => {
                    assert!(foreign.contains(&i), "byte {i} ^ {pattern:#04x} accepted");
                    // The last byte is the newline: changing it must fail.
                    assert_ne!(i, cosigned.len() - 1);
                    assert_eq!(checkpoint, test_checkpoint());
                    ignored += 1;
                }
            }
        }
        assert!(ignored > 0, "some cosignature changes stay well formed");
    }

    /// RFC 9162 §2.1.1 MTH, for the tests only (the ledger's own tree is in `merkle`).
    fn tree_root(alg: HashAlg, leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => alg.empty_root(),
            1 => alg.leaf_hash(&leaves[0]),
            n => {
                let k = split_point(n);
                alg.node_hash(&tree_root(alg, &leaves[..k]), &tree_root(alg, &leaves[k..]))
            }
        }
    }

    /// The largest power of two smaller than `n` (n > 1).
    fn split_point(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 9162 §2.1.3.1 PATH(m, D[n]), for the tests only.
    fn inclusion_path(alg: HashAlg, m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = split_point(leaves.len());
        let (mut path, sibling) = if m < k {
            (
                inclusion_path(alg, m, &leaves[..k]),
                tree_root(alg, &leaves[k..]),
            )
        } else {
            (
                inclusion_path(alg, m - k, &leaves[k..]),
                tree_root(alg, &leaves[..k]),
            )
        };
        path.push(sibling);
        path
    }

    /// RFC 9162 §2.1.3.2, step by step, for the tests only.
    fn inclusion_verifies(alg: HashAlg, file: &InclusionProofFile, size: u64, root: &Hash) -> bool {
        if file.index >= size {
            return false;
        }
        let (mut f, mut s) = (file.index, size - 1);
        let mut r = alg.leaf_hash(&file.entry);
        for p in &file.proof {
            if s == 0 {
                return false;
            }
            if f & 1 == 1 || f == s {
                r = alg.node_hash(p, &r);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                r = alg.node_hash(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        s == 0 && r == *root
    }

    #[test]
    fn every_flipped_byte_of_an_inclusion_proof_file_fails() {
        // Parse, verify the checkpoint, then the inclusion proof: the whole path an auditor's
        // `audit verify` takes. Nothing in the file is ignorable.
        let alg = HashAlg::Sha256;
        let leaves: Vec<Vec<u8>> = (0..7u8).map(|i| vec![b'e', i]).collect();
        let index = 5;
        let signer = test_signer();
        let checkpoint = Checkpoint {
            size: leaves.len() as u64,
            root: tree_root(alg, &leaves),
            hash: alg,
            ..test_checkpoint()
        };
        let file = InclusionProofFile {
            entry: leaves[index].clone(),
            index: index as u64,
            proof: inclusion_path(alg, index, &leaves),
            checkpoint: checkpoint.sign(&signer).expect("signs"),
        };
        let verifier = signer.verifier();
        let audit = |text: &str| -> Result<(), String> {
            let file = InclusionProofFile::parse(text).map_err(|e| e.to_string())?;
            // Strict parsing: whatever parses writes back to the same text.
            assert_eq!(file.to_text(), text);
            let checkpoint = file
                .verify_checkpoint(&verifier)
                .map_err(|e| e.to_string())?;
            if inclusion_verifies(checkpoint.hash, &file, checkpoint.size, &checkpoint.root) {
                Ok(())
            } else {
                Err("inclusion proof does not verify".to_owned())
            }
        };
        let text = file.to_text();
        assert_eq!(audit(&text), Ok(()));
        for (i, pattern, bytes) in flips(&text) {
            let result = text_from_bytes(&bytes)
                .map_err(|e| e.to_string())
                .and_then(&audit);
            assert!(result.is_err(), "byte {i} ^ {pattern:#04x} accepted");
        }
    }

    #[test]
    fn every_flipped_byte_of_a_consistency_file_fails_or_changes_what_it_says() {
        // Without the Merkle check (in `merkle`), a flip may only survive parsing and the
        // checkpoint signature by changing size1 or a proof hash, values the consistency check
        // then tests; and it must write back to exactly the flipped text.
        let file = ConsistencyProofFile {
            size1: 3,
            proof: vec![[9; 32], [10; 32]],
            checkpoint: signed_checkpoint(),
        };
        let text = file.to_text();
        let checkpoint_start = text.len() - file.checkpoint.len();
        let verifier = test_signer().verifier();
        for (i, pattern, bytes) in flips(&text) {
            let Ok(flipped) = text_from_bytes(&bytes) else {
                continue;
            };
            let Ok(parsed) = ConsistencyProofFile::parse(flipped) else {
                continue;
            };
            assert_eq!(parsed.to_text(), flipped);
            if parsed.verify_checkpoint(&verifier).is_err() {
                continue;
            }
            assert!(
                i < checkpoint_start,
                "byte {i} ^ {pattern:#04x} in the checkpoint accepted"
            );
            assert!(
                parsed.size1 != file.size1 || parsed.proof != file.proof,
                "byte {i} ^ {pattern:#04x} accepted with nothing changed"
            );
        }
    }

    #[test]
    fn note_file_tells_the_formats_apart() {
        check(
            "garbage",
            NoteFile::parse("garbage"),
            &NoteError::MissingSignatureSeparator,
        );
        check(
            "empty",
            NoteFile::parse(""),
            &NoteError::MissingSignatureSeparator,
        );
        check(
            "proof header alone",
            NoteFile::parse("c2sp.org/tlog-proof@v1"),
            &NoteError::BadHeader {
                expected: TLOG_PROOF_HEADER,
            },
        );
        let text = inclusion_file().to_text();
        assert!(matches!(NoteFile::parse(&text), Ok(NoteFile::Inclusion(_))));
    }
}
