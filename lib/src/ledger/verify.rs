//! Offline verification, as an auditor runs it with `daemoneye-cli audit verify`: nothing but
//! the files and the ledger's public key, no agent, no trust in the host.
//!
//! - A checkpoint: its signature.
//! - An inclusion proof file: the checkpoint's signature, then the entry's leaf hash through
//!   the proof hashes to the signed root (RFC 9162 §2.1.3.2), then the entry's encoding.
//! - A consistency proof file: the new checkpoint's signature, the old checkpoint's (given
//!   beside it), then the proof from the old root to the new (RFC 9162 §2.1.4.2).
//! - A directory, either an export (`entries.bin`, read through [`super::export`]) or a ledger
//!   (`entries.log`, read through [`super::frame`]): every entry is decoded and hashed again,
//!   the tree's root is recomputed at the size of every checkpoint and compared with the
//!   signed one, and in an export every proof file is checked too. So a change to any entry a
//!   checkpoint covers is found.
//!
//! What is verified comes from a site and may be hostile: every file is opened through
//! [`crate::fsutil`] (a regular file or a refusal naming what it is; never a wait on a FIFO),
//! the framed and `entries.bin` files are streamed one bounded record at a time, an export's
//! directories are listed with a bound and read one file at a time (see [`super::export`]),
//! and an export's entries are read only as far as its newest checkpoint covers, plus one.
//! The caller reads single files with the same helper, bounded by [`super::note::MAX_FILE_BYTES`].

use std::fs;
use std::io::{BufReader, Read};
use std::path::Path;

use super::entry::{Entry, MAX_ENTRY_BYTES};
use super::export::{CHECKPOINT, ENTRIES_BIN, Export, ExportError};
use super::frame::{
    CHECKPOINTS_MAGIC, ENTRIES_MAGIC, FrameFault, FrameReader, MAX_CHECKPOINT_BYTES,
};
use super::merkle::{self, Frontier};
use super::note::{Checkpoint, NoteFile, NoteVerifier};
use super::{Hash, HashAlg};
use crate::fsutil::{self, BoundedReadError};

/// Why something does not verify: one line for the auditor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyFailure(pub String);

impl From<ExportError> for VerifyFailure {
    fn from(err: ExportError) -> Self {
        Self(err.to_string())
    }
}

impl From<BoundedReadError> for VerifyFailure {
    fn from(err: BoundedReadError) -> Self {
        Self(err.to_string())
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, VerifyFailure> {
    Err(VerifyFailure(reason.into()))
}

/// What verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
    /// Entry `index` is in the tree of `checkpoint`.
    Inclusion {
        /// The signed checkpoint the proof leads to.
        checkpoint: Checkpoint,
        /// The entry's index.
        index: u64,
        /// The entry, decoded.
        entry: Entry,
    },
    /// The tree of `new` extends the tree of `old`.
    Consistency {
        /// The older checkpoint.
        old: Checkpoint,
        /// The newer checkpoint.
        new: Checkpoint,
    },
    /// A whole export or ledger directory.
    Directory(DirectoryReport),
}

/// What a directory verification checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryReport {
    /// Entries decoded and hashed.
    pub entries: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Inclusion proof files checked.
    pub inclusion_proofs: u64,
    /// Consistency proof files checked.
    pub consistency_proofs: u64,
    /// Entries after the newest checkpoint (in a live ledger): decoded, but no signed root
    /// covers them yet.
    pub uncovered: u64,
    /// The hash function.
    pub hash: Option<HashAlg>,
}

/// Verifies one file's text: a checkpoint, an inclusion proof or a consistency proof (which
/// needs the older checkpoint, `old`).
pub fn verify_text(
    text: &str,
    key: &NoteVerifier,
    old: Option<&str>,
) -> Result<Verified, VerifyFailure> {
    let file = NoteFile::parse(text).map_err(|err| VerifyFailure(err.to_string()))?;
    match file {
        NoteFile::Checkpoint(note) => Ok(Verified::Checkpoint(checkpoint(&note, key, "the")?)),
        NoteFile::Inclusion(proof) => {
            let cp = checkpoint(&proof.checkpoint, key, "the proof's")?;
            let leaf = cp.hash.leaf_hash(&proof.entry);
            merkle::verify_inclusion(cp.hash, proof.index, cp.size, &leaf, &proof.proof, &cp.root)
                .map_err(|err| {
                    VerifyFailure(format!(
                        "entry {} is not proven in the checkpoint of size {}: {err}",
                        proof.index, cp.size
                    ))
                })?;
            let entry = Entry::decode(&proof.entry)
                .map_err(|err| VerifyFailure(format!("the entry's bytes do not decode: {err}")))?;
            Ok(Verified::Inclusion {
                checkpoint: cp,
                index: proof.index,
                entry,
            })
        }
        NoteFile::Consistency(proof) => {
            let new = checkpoint(&proof.checkpoint, key, "the new")?;
            let Some(old) = old else {
                return fail(
                    "a consistency proof needs the older checkpoint it starts from (--old FILE)",
                );
            };
            let old = older_checkpoint(old, key)?;
            if old.origin != new.origin || old.hash != new.hash {
                return fail(format!(
                    "the checkpoints are of different ledgers: {} ({}) and {} ({})",
                    old.origin, old.hash, new.origin, new.hash
                ));
            }
            if old.size != proof.size1 {
                return fail(format!(
                    "the proof starts at size {}, the older checkpoint has size {}",
                    proof.size1, old.size
                ));
            }
            merkle::verify_consistency(
                new.hash,
                old.size,
                new.size,
                &old.root,
                &new.root,
                &proof.proof,
            )
            .map_err(|err| {
                VerifyFailure(format!(
                    "the tree of size {} does not extend the tree of size {}: {err}",
                    new.size, old.size
                ))
            })?;
            Ok(Verified::Consistency { old, new })
        }
    }
}

/// The older checkpoint for a consistency proof: a checkpoint file, or any proof file whose
/// checkpoint is meant.
fn older_checkpoint(text: &str, key: &NoteVerifier) -> Result<Checkpoint, VerifyFailure> {
    let note = match NoteFile::parse(text)
        .map_err(|err| VerifyFailure(format!("the older checkpoint: {err}")))?
    {
        NoteFile::Checkpoint(note) => note,
        NoteFile::Inclusion(proof) => proof.checkpoint,
        NoteFile::Consistency(proof) => proof.checkpoint,
    };
    checkpoint(&note, key, "the older")
}

fn checkpoint(note: &str, key: &NoteVerifier, which: &str) -> Result<Checkpoint, VerifyFailure> {
    Checkpoint::verify_signed(note, key)
        .map_err(|err| VerifyFailure(format!("{which} checkpoint does not verify: {err}")))
}

/// Verifies an export directory (`entries.bin`) or a ledger directory (`entries.log`).
pub fn verify_dir(dir: &Path, key: &NoteVerifier) -> Result<Verified, VerifyFailure> {
    // Anything of that name decides the kind; whether it is a regular file is checked when it
    // is opened, so that the refusal names it.
    let report = if fs::symlink_metadata(dir.join("entries.log")).is_ok() {
        verify_ledger_dir(dir, key)?
    } else if let Some(export) = Export::open(dir) {
        verify_export_dir(&export, key)?
    } else {
        return fail(format!(
            "{} holds neither entries.bin (an export) nor entries.log (a ledger)",
            dir.display()
        ));
    };
    Ok(Verified::Directory(report))
}

/// Recomputes the tree over `entries`, checking each checkpoint (sorted by size) at its size.
struct Replay {
    frontier: Option<Frontier>,
    hash: Option<HashAlg>,
    checkpoints: Vec<(String, Checkpoint)>,
    next: usize,
    report: DirectoryReport,
}

impl Replay {
    fn new(mut checkpoints: Vec<(String, Checkpoint)>) -> Result<Self, VerifyFailure> {
        checkpoints.sort_by_key(|(_, cp)| cp.size);
        let hash = checkpoints.first().map(|(_, cp)| cp.hash);
        if let Some((name, cp)) = checkpoints
            .iter()
            .find(|(_, cp)| Some(cp.hash) != hash || cp.origin != checkpoints[0].1.origin)
        {
            return fail(format!(
                "{name} is of another ledger ({}, {})",
                cp.origin, cp.hash
            ));
        }
        let mut replay = Self {
            frontier: hash.map(Frontier::new),
            hash,
            checkpoints,
            next: 0,
            report: DirectoryReport {
                hash,
                ..DirectoryReport::default()
            },
        };
        replay.check_roots()?;
        Ok(replay)
    }

    fn size(&self) -> u64 {
        self.report.entries
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), VerifyFailure> {
        let index = self.size();
        Entry::decode(bytes)
            .map_err(|err| VerifyFailure(format!("entry {index} does not decode: {err}")))?;
        if let (Some(frontier), Some(hash)) = (&mut self.frontier, self.hash) {
            frontier.push(hash.leaf_hash(bytes));
        }
        self.report.entries += 1;
        self.check_roots()
    }

    /// Compares the recomputed root with every checkpoint of the current size.
    fn check_roots(&mut self) -> Result<(), VerifyFailure> {
        while let Some((name, cp)) = self.checkpoints.get(self.next) {
            if cp.size != self.size() {
                break;
            }
            let root: Hash = match (&self.frontier, self.hash) {
                (Some(frontier), _) => frontier.root(),
                (None, Some(hash)) => hash.empty_root(),
                (None, None) => break,
            };
            if root != cp.root {
                return fail(format!(
                    "{name}: the entries give another root at size {} than the signed one: an entry was changed, added or removed",
                    cp.size
                ));
            }
            self.report.checkpoints += 1;
            self.next += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<DirectoryReport, VerifyFailure> {
        if let Some((name, cp)) = self.checkpoints.get(self.next) {
            return fail(format!(
                "{name} covers {} entries, but only {} are there: entries were removed",
                cp.size,
                self.size()
            ));
        }
        let covered = self.checkpoints.last().map_or(0, |(_, cp)| cp.size);
        self.report.uncovered = self.size() - covered;
        Ok(self.report)
    }
}

fn open(path: &Path) -> Result<(BufReader<fs::File>, u64), VerifyFailure> {
    let (file, len) = fsutil::open_regular(path)?;
    Ok((BufReader::new(file), len))
}

/// Reads a framed ledger file after its magic; `each` gets every payload. A torn last frame
/// is reported through `torn` (a live ledger may be mid-append); damage fails.
fn frames(
    path: &Path,
    magic: &[u8; 8],
    max: usize,
    mut each: impl FnMut(Vec<u8>) -> Result<(), VerifyFailure>,
) -> Result<(), VerifyFailure> {
    let (mut reader, len) = open(path)?;
    let mut found = [0u8; 8];
    if reader.read_exact(&mut found).is_err() || &found != magic {
        return fail(format!(
            "{} is not a ledger file (bad magic)",
            path.display()
        ));
    }
    for frame in FrameReader::new(reader, magic.len() as u64, len, max) {
        match frame {
            Ok(frame) => each(frame.payload)?,
            // The tail a writer is appending right now: not covered by any checkpoint, so
            // nothing is lost by stopping here (a covered entry missing is caught later).
            Err(FrameFault::Torn { .. }) => break,
            Err(FrameFault::Damaged { offset, reason }) => {
                return fail(format!(
                    "{} is damaged at byte {offset}: {reason}",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

fn verify_ledger_dir(dir: &Path, key: &NoteVerifier) -> Result<DirectoryReport, VerifyFailure> {
    let mut checkpoints = Vec::new();
    frames(
        &dir.join("checkpoints.log"),
        CHECKPOINTS_MAGIC,
        MAX_CHECKPOINT_BYTES,
        |payload| {
            let name = format!("checkpoint {} of checkpoints.log", checkpoints.len() + 1);
            let note = String::from_utf8(payload)
                .map_err(|_| VerifyFailure(format!("{name} is not UTF-8")))?;
            let cp = checkpoint(&note, key, &name)?;
            checkpoints.push((name, cp));
            Ok(())
        },
    )?;
    let mut replay = Replay::new(checkpoints)?;
    frames(
        &dir.join("entries.log"),
        ENTRIES_MAGIC,
        MAX_ENTRY_BYTES,
        |payload| replay.push(&payload),
    )?;
    replay.finish()
}

fn verify_export_dir(
    export: &Export,
    key: &NoteVerifier,
) -> Result<DirectoryReport, VerifyFailure> {
    let newest = checkpoint(&export.newest_checkpoint()?, key, "checkpoint:")?;
    let covered = newest.size;
    let mut checkpoints = vec![(CHECKPOINT.to_owned(), newest)];
    export.stored_checkpoints(|name, text| {
        let cp = checkpoint(&text, key, &format!("{name}:"))?;
        checkpoints.push((name, cp));
        Ok::<(), VerifyFailure>(())
    })?;
    let mut replay = Replay::new(checkpoints)?;
    export.entries(|bytes| {
        if replay.size() >= covered {
            // An export holds only what its newest checkpoint covers: anything after it is
            // unauthenticated, never "not yet covered" as in a live ledger. The rest of the
            // file is not read.
            return fail(format!(
                "{ENTRIES_BIN} holds more entries than the newest checkpoint's {covered}: entries were added"
            ));
        }
        replay.push(bytes)
    })?;
    let mut report = replay.finish()?;
    export.proofs(|name, text| {
        // A consistency proof names the size it starts from; the stored checkpoint of that
        // size is its older checkpoint.
        let old = match NoteFile::parse(&text) {
            Ok(NoteFile::Consistency(proof)) => Some(export.checkpoint_of_size(proof.size1)?),
            _ => None,
        };
        match verify_text(&text, key, old.as_deref())
            .map_err(|err| VerifyFailure(format!("{name}: {err}")))?
        {
            Verified::Inclusion { .. } => report.inclusion_proofs += 1,
            Verified::Consistency { .. } => report.consistency_proofs += 1,
            _ => return fail(format!("{name} is a checkpoint, not a proof")),
        }
        Ok(())
    })?;
    Ok(report)
}

#[cfg(test)]
pub(super) mod tests;
