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
//! and requires it when parsing. An empty entry is written `extra ` (empty base64). The spec
//! speaks of SHA-256 hashes: here the hashes are those of the checkpoint's `hash` line, so the
//! proof file of a BLAKE3 ledger has the `tlog-proof` shape but not its hash function.
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
mod tests;
