//! The ledger on disk: append-only files, crash recovery, the signing key and checkpoints.
//!
//! # Files (all in one directory, `<data_dir>/ledger/`, mode 0700, files 0600)
//!
//! | file | what | role |
//! | --- | --- | --- |
//! | `meta` | exactly three UTF-8 lines, each ending in `\n`: `daemoneye-ledger 1`, `hash blake3` or `hash sha256`, `origin <origin>` (non-empty) | written once, at creation |
//! | `signing.key` | the Ed25519 checkpoint key ([`NoteSigner::secret_key_text`]) | secret, created once |
//! | `ledger.pub` | the verifier key an auditor needs ([`NoteVerifier`]'s text) and `\n` | public |
//! | `entries.log` | magic `DEYELOG1`, then one frame per entry | **the source of truth** |
//! | `entries.idx` | the frame offset of entry *i* at byte 8·*i*, big-endian u64 | derived |
//! | `tree-LL.hash` | hash of complete subtree *j* of level LL (2^LL leaves) at byte 32·*j* | derived |
//! | `checkpoints.log` | magic `DEYECKP1`, then one frame per signed checkpoint note | history |
//!
//! The framed files (magic, then frames of `length: u32 BE`, `crc32c(payload): u32 BE`,
//! `payload`) are specified byte by byte in [`super::frame`], with the rule that tells a torn
//! tail from damage. In `entries.log` the payload is the entry's canonical encoding
//! ([`Entry::encode`]): the bytes the tree hashes. `meta`, `signing.key` and `ledger.pub` are
//! written whole through [`super::atomic`] (a synced temporary file renamed into place, then the
//! directory synced).
//!
//! The code: this file holds the writer (append, checkpoint); `store/open.rs` creation and
//! crash recovery, `store/read.rs` the read side (entries, stored checkpoints, proofs),
//! `store/levels.rs` the `tree-LL.hash` files, `store/files.rs` the small files and the
//! opening of the framed ones, and `store/scrub.rs` the background check of the whole ledger.
//!
//! Because the hashes of every complete subtree are on disk, a proof reads O(log n) of them
//! ([`super::merkle::inclusion_proof`] over [`super::merkle::NodeSource`]); the writer keeps
//! only the tree's right edge in memory ([`Frontier`], at most 64 hashes), whatever the
//! ledger's size.
//!
//! # Write order (what a crash at any point leaves)
//!
//! 1. An append writes the batch's frames to `entries.log` and `fdatasync`s it. Only then is
//!    the append acknowledged: an acknowledged entry survives a crash of the process or the
//!    machine.
//! 2. It then writes the derived files (`entries.idx`, `tree-*.hash`) without syncing them.
//! 3. A checkpoint first `fdatasync`s every derived file, then appends the signed note to
//!    `checkpoints.log` and `fdatasync`s that. So the derived files are durable up to the size
//!    of the newest checkpoint, whatever happened after it.
//!
//! # Opening after a crash
//!
//! 1. `checkpoints.log` is read; a torn last frame is cut; every note must parse and sizes
//!    must not shrink, and the newest must verify with the ledger's key (the older ones are
//!    checked by `audit verify`, not at every start). The newest gives the size *c* up to
//!    which the derived files are durable.
//! 2. The derived files are cut back to the largest size *p* ≤ *c* they all hold, and the root
//!    of the stored tree at *c* must equal the signed root (else the ledger refuses to open:
//!    the files were changed).
//! 3. Entry *p* − 1, the newest the derived files hold, is read whole: its checksum must match
//!    and its leaf hash must be the one in `tree-00.hash` (its frame's end is where the replay
//!    starts). Every frame of `entries.log` after entry *p* − 1 is read again, checked,
//!    decoded, hashed and added to the derived files. A torn tail (a frame that runs past the end of the file,
//!    a bad last frame, or a tail of zeros) is cut and synced away: it was never
//!    acknowledged. A bad frame with data after it is damage, never a tail, and the ledger
//!    refuses to open rather than drop acknowledged entries.
//!
//! So the ledger opens to the last complete entry, the work is bounded by what was appended
//! since the newest checkpoint, and a change to any other entry covered by a checkpoint is
//! found by the background check ([`scrub`], which procmond runs at a bounded rate from every
//! start) or by a full verification (`daemoneye-cli audit verify <dir>`), both of which
//! recompute the tree.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::entry::{Entry, EntryError};
use super::frame::push_frame;
use super::merkle::Frontier;
use super::note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use super::{Hash, HashAlg};

mod files;
mod levels;
mod open;
mod read;
mod scrub;

pub use files::read_verifier;
use levels::Levels;
pub use scrub::{Clock, Damage, Pacer, ScrubOutcome, ScrubStats, ScrubTarget, Stopped, scrub};

const META: &str = "meta";
const SIGNING_KEY: &str = "signing.key";
const PUBLIC_KEY: &str = "ledger.pub";
const ENTRIES: &str = "entries.log";
const INDEX: &str = "entries.idx";
const CHECKPOINTS: &str = "checkpoints.log";
const META_VERSION: &str = "daemoneye-ledger 1";
/// Levels of the tree kept on disk: 2^63 leaves is more than a u64 index reaches in practice.
const MAX_LEVELS: u32 = 63;

/// What went wrong with the ledger; every message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file holds something it must not: the ledger refuses to go on.
    #[error("{} is damaged at byte {offset}: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The ledger was created with another hash function than the configured one.
    #[error(
        "the ledger in {} uses {stored}, but ledger.hash is {configured}; a ledger keeps its hash function (move the directory aside to start a new ledger)",
        dir.display()
    )]
    HashChanged {
        /// The ledger directory.
        dir: PathBuf,
        /// The hash function in `meta`.
        stored: HashAlg,
        /// `ledger.hash`.
        configured: HashAlg,
    },
    /// The stored tree does not give the root a signed checkpoint has.
    #[error(
        "the ledger in {} does not match its signed checkpoint at size {size}: entries or tree files were changed",
        dir.display()
    )]
    CheckpointMismatch {
        /// The ledger directory.
        dir: PathBuf,
        /// The checkpoint's tree size.
        size: u64,
    },
    /// An entry that does not encode or decode.
    #[error("entry {index}: {source}")]
    Entry {
        /// The entry's index.
        index: u64,
        /// Why.
        source: EntryError,
    },
    /// A signed note (checkpoint, key) that does not parse or verify.
    #[error("{what}: {source}")]
    Note {
        /// Which note.
        what: String,
        /// Why.
        source: NoteError,
    },
    /// A request for something the ledger does not hold.
    #[error("{0}")]
    OutOfRange(String),
    /// An earlier write failed; the ledger must be reopened (which recovers it).
    #[error("the ledger stopped after a failed write ({0}); it recovers when reopened")]
    Broken(String),
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LedgerError + 'a {
    move |source| LedgerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How a ledger is created (an existing ledger keeps what it was created with).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The tree's hash function (`ledger.hash`).
    pub hash: HashAlg,
    /// The log's origin line and key name, e.g. `daemoneye.local/plant-7/host-1`.
    pub origin: String,
}

/// A signed checkpoint: the note as signed, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The whole signed note text.
    pub note: String,
    /// Its parsed body.
    pub checkpoint: Checkpoint,
}

/// What opening the ledger found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The ledger was created now.
    pub created: bool,
    /// Entries re-read from `entries.log` after the newest checkpoint.
    pub replayed: u64,
    /// Bytes of a torn tail cut from `entries.log`.
    pub entries_cut: u64,
    /// Bytes of a torn tail cut from `checkpoints.log`.
    pub checkpoints_cut: u64,
    /// Checkpoints in `checkpoints.log`.
    pub checkpoints: u64,
}

/// The writer's view of an open ledger. Only procmond opens one.
pub struct Ledger {
    dir: PathBuf,
    alg: HashAlg,
    origin: String,
    signer: NoteSigner,
    entries: File,
    entries_len: u64,
    index: File,
    index_len: u64,
    /// `entries.idx` changed since its last sync.
    index_dirty: bool,
    levels: Levels,
    frontier: Frontier,
    checkpoints: File,
    checkpoints_len: u64,
    checkpoint_count: u64,
    latest: Option<SignedCheckpoint>,
    broken: Option<String>,
}

impl Ledger {
    /// Entries in the ledger.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The tree's hash function.
    pub fn hash(&self) -> HashAlg {
        self.alg
    }

    /// The origin line of the checkpoints (also the key's name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root of the whole tree now.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The public key an auditor verifies checkpoints with.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The newest signed checkpoint, if one was made.
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// Signed checkpoints in `checkpoints.log`.
    pub fn checkpoint_count(&self) -> u64 {
        self.checkpoint_count
    }

    /// Appends `entries` as one batch; returns their indexes. When this returns, the entries
    /// are on disk (`fdatasync`); on an error nothing of the batch is acknowledged.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Range<u64>, LedgerError> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let index = self.size() + i as u64;
            encoded.push(
                entry
                    .encode()
                    .map_err(|source| LedgerError::Entry { index, source })?,
            );
        }
        self.append_encoded(&encoded)
    }

    /// Appends entries already in their canonical encoding (each must decode).
    pub fn append_encoded(&mut self, entries: &[Vec<u8>]) -> Result<Range<u64>, LedgerError> {
        if let Some(why) = &self.broken {
            return Err(LedgerError::Broken(why.clone()));
        }
        let first = self.size();
        let mut frames = Vec::with_capacity(entries.iter().map(|e| e.len() + 8).sum());
        let mut batch = Pending::default();
        let mut frontier = self.frontier.clone();
        for (i, entry) in entries.iter().enumerate() {
            let index = first + i as u64;
            Entry::decode(entry).map_err(|source| LedgerError::Entry { index, source })?;
            let offset = self.entries_len + frames.len() as u64;
            push_frame(&mut frames, entry);
            batch.add(&mut frontier, self.alg, offset, entry);
        }
        let path = self.dir.join(ENTRIES);
        let written = self
            .entries
            .write_all_at(&frames, self.entries_len)
            .and_then(|()| self.entries.sync_data());
        if let Err(source) = written {
            // Best effort: take the partial batch back so the next open does not replay it.
            let _ = self.entries.set_len(self.entries_len);
            let err = LedgerError::Io {
                what: "appending to",
                path,
                source,
            };
            self.broken = Some(err.to_string());
            return Err(err);
        }
        self.entries_len += frames.len() as u64;
        self.frontier = frontier;
        if let Err(err) = self.write_derived(&mut batch) {
            self.broken = Some(err.to_string());
            return Err(err);
        }
        Ok(first..self.size())
    }

    /// Writes the pending index offsets and tree nodes (not synced: see the module doc).
    fn write_derived(&mut self, batch: &mut Pending) -> Result<(), LedgerError> {
        if batch.entries == 0 {
            return Ok(());
        }
        let path = self.dir.join(INDEX);
        self.index
            .write_all_at(&batch.index, self.index_len)
            .map_err(io_error("writing", &path))?;
        self.index_len += batch.index.len() as u64;
        self.index_dirty = true;
        for (level, hashes) in batch.levels.iter().enumerate() {
            if !hashes.is_empty() {
                self.levels.append(level as u32, hashes)?;
            }
        }
        *batch = Pending::default();
        Ok(())
    }

    /// Syncs the derived files that changed since their last sync.
    fn sync_derived(&mut self) -> Result<(), LedgerError> {
        if self.index_dirty {
            self.index
                .sync_data()
                .map_err(io_error("syncing", &self.dir.join(INDEX)))?;
            self.index_dirty = false;
        }
        self.levels.sync()
    }

    /// Signs a checkpoint of the tree as it is now and keeps it: the derived files are synced
    /// first, so they are durable up to its size.
    pub fn checkpoint(&mut self, time_ms: i64) -> Result<&SignedCheckpoint, LedgerError> {
        if let Some(why) = &self.broken {
            return Err(LedgerError::Broken(why.clone()));
        }
        self.sync_derived()?;
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.size(),
            root: self.root(),
            hash: self.alg,
            time_ms,
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|source| LedgerError::Note {
                what: "signing a checkpoint".to_owned(),
                source,
            })?;
        let mut frame = Vec::with_capacity(note.len() + 8);
        push_frame(&mut frame, note.as_bytes());
        let path = self.dir.join(CHECKPOINTS);
        self.checkpoints
            .write_all_at(&frame, self.checkpoints_len)
            .and_then(|()| self.checkpoints.sync_data())
            .map_err(io_error("appending to", &path))?;
        self.checkpoints_len += frame.len() as u64;
        self.checkpoint_count += 1;
        Ok(self.latest.insert(SignedCheckpoint { note, checkpoint }))
    }
}

impl From<std::convert::Infallible> for LedgerError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Index offsets and tree nodes computed but not yet written.
#[derive(Default)]
struct Pending {
    entries: u64,
    index: Vec<u8>,
    levels: Vec<Vec<u8>>,
}

impl Pending {
    fn add(&mut self, frontier: &mut Frontier, alg: HashAlg, offset: u64, entry: &[u8]) {
        self.entries += 1;
        self.index.extend_from_slice(&offset.to_be_bytes());
        for (level, _, hash) in frontier.push(alg.leaf_hash(entry)) {
            let level = level as usize;
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            self.levels[level].extend_from_slice(&hash);
        }
    }
}

#[cfg(test)]
mod tests;
