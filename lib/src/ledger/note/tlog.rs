//! The transparency-log texts: checkpoints, `tlog-proof` files and consistency proof files.
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
//! that, and the Merkle proof itself is checked by [`crate::ledger::merkle`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    CONSISTENCY_HEADER, Lines, MAX_FILE_BYTES, MAX_NOTE_BYTES, NoteError, NoteSigner, NoteVerifier,
    SignedNote, TLOG_PROOF_HEADER, check_control_characters, check_name_rules, check_size,
    decode_hash, keyword_value, parse_i64, parse_u64, shorten,
};
use crate::ledger::{Hash, HashAlg};

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

/// The lines of a proof file after its header, once the size, the characters and the header
/// are checked.
pub(super) fn proof_file_lines<'a>(
    text: &'a str,
    header: &'static str,
) -> Result<Lines<'a>, NoteError> {
    check_size(text, "proof file", MAX_FILE_BYTES)?;
    check_control_characters(text)?;
    let mut lines = Lines::new(text, 1);
    match lines.next_line() {
        Ok(Some((_, first))) if first == header => Ok(lines),
        _ => Err(NoteError::BadHeader { expected: header }),
    }
}

/// The proof hashes up to the blank line, and the checkpoint note after it.
pub(super) fn parse_proof_and_checkpoint(
    mut lines: Lines<'_>,
) -> Result<(Vec<Hash>, &str), NoteError> {
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

pub(super) fn push_proof(text: &mut String, proof: &[Hash], checkpoint: &str) {
    for hash in proof {
        BASE64.encode_string(hash, text);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(checkpoint);
}

/// A well-formed signed note whose text is a well-formed checkpoint (nothing verified).
pub(super) fn check_checkpoint_form(note: &str) -> Result<(), NoteError> {
    let parsed = SignedNote::parse(note)?;
    Checkpoint::parse_body(parsed.text)?;
    Ok(())
}

pub(super) fn in_checkpoint(first_line: usize, error: NoteError) -> NoteError {
    NoteError::InCheckpoint {
        first_line,
        source: Box::new(error),
    }
}
