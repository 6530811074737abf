//! The background check of a whole ledger (a *scrub*, as file systems call it): every byte that
//! an open does not read, read again at a bounded rate while the writer goes on appending.
//!
//! Opening a ledger reads O(log n) of it plus what was appended since the newest checkpoint
//! ([`super`]'s module doc); damage in the middle of `entries.log` is invisible to it. A scrub
//! walks the files of a [`ScrubTarget`] (a snapshot of the ledger's extent, taken under the
//! writer's lock by [`Ledger::scrub_target`]) from their start, with read-only handles of its
//! own, so it never blocks an append: the writer only ever writes past the snapshot.
//!
//! # What a pass checks, in order
//!
//! 1. `checkpoints.log`, up to the snapshot: every frame's length and CRC-32C, every note's
//!    Ed25519 signature with the ledger's key, origin and hash function, and sizes that never
//!    shrink (an open checks only the newest signature).
//! 2. `entries.log`, frame by frame, up to the snapshot's length: length and CRC-32C (a bad
//!    frame anywhere before the end is damage: the snapshot ends at an acknowledged entry, so
//!    there is no torn tail to forgive), and the entry's strict decoding.
//! 3. `entries.idx`: entry *i*'s slot holds the offset where its frame was found.
//! 4. Every `tree-LL.hash` node: the leaf hash of each entry, and each complete subtree
//!    recomputed from the entries ([`Frontier`]), equals the stored node. Proofs are built from
//!    these nodes, so a damaged node is found here before a proof fails on it.
//! 5. At the size of every stored checkpoint, the root recomputed from the entries equals the
//!    signed root: this catches what 2–4 cannot, an entry changed together with its checksum
//!    and every tree node above it.
//!
//! The first failed check ends the pass with a [`Damage`]: the file, the byte offset (of the
//! bad frame, index slot or node), the entry index where one is known, and why. For 2–4 that
//! is the exact entry; for 5, the checkpoint whose root differs (the changed entry lies after
//! the previous checkpoint's size).
//!
//! # Rate
//!
//! Every byte read is charged to a [`Pacer`] (about 180 bytes per entry of ~100 bytes: the
//! frame, 8 of index, ~64 of tree nodes), which sleeps so that the bytes read never run ahead
//! of `bytes_per_sec` times the time since the pass began. The pacer reads time through a
//! [`Clock`] it is given (procmond's reads the monotonic clock; tests pass one that only moves
//! when slept), so this module reads no clock itself; a clock's `sleep` returning `false`
//! stops the pass.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::levels::Levels;
use super::{CHECKPOINTS, ENTRIES, INDEX, Ledger, LedgerError, io_error};
use crate::ledger::entry::{Entry, MAX_ENTRY_BYTES};
use crate::ledger::frame::{
    CHECKPOINTS_MAGIC, ENTRIES_MAGIC, FrameFault, FrameReader, MAX_CHECKPOINT_BYTES,
};
use crate::ledger::merkle::Frontier;
use crate::ledger::note::{Checkpoint, NoteVerifier};
use crate::ledger::{Hash, HashAlg};

/// Bytes read from a file at a time (and so the most a read runs ahead of its charge).
const READ_BUFFER: usize = 64 * 1024;

/// What one pass checks: the ledger's extent when the pass began.
#[derive(Clone)]
pub struct ScrubTarget {
    /// The ledger directory.
    pub dir: PathBuf,
    /// The tree's hash function.
    pub alg: HashAlg,
    /// The checkpoints' origin line.
    pub origin: String,
    /// The key every checkpoint must verify with.
    pub verifier: NoteVerifier,
    /// Entries to check (all of them were acknowledged).
    pub entries: u64,
    /// The length of `entries.log` that holds them.
    pub entries_len: u64,
    /// The length of `checkpoints.log` then.
    pub checkpoints_len: u64,
}

impl Ledger {
    /// The ledger's extent now, for a [`scrub`] on another thread; `None` after a failed
    /// write (the derived files may lack what the log holds until the ledger is reopened).
    pub fn scrub_target(&self) -> Option<ScrubTarget> {
        self.broken.is_none().then(|| ScrubTarget {
            dir: self.dir.clone(),
            alg: self.alg,
            origin: self.origin.clone(),
            verifier: self.verifier(),
            entries: self.size(),
            entries_len: self.entries_len,
            checkpoints_len: self.checkpoints_len,
        })
    }
}

/// Damage a scrub (or an open) found: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The file's name in the ledger directory (`entries.log`, `tree-00.hash`, ...).
    pub file: String,
    /// The byte offset in it: of the bad frame, index slot or tree node.
    pub offset: u64,
    /// The entry concerned, when one is known.
    pub entry: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.file, self.offset)?;
        if let Some(entry) = self.entry {
            write!(f, " (entry {entry})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl Damage {
    /// The damage an open refused, when the error names a place in a file.
    pub fn of_error(err: &LedgerError) -> Option<Self> {
        match err {
            LedgerError::Damaged {
                path,
                offset,
                reason,
            } => Some(Self {
                file: file_name(path),
                offset: *offset,
                entry: None,
                reason: reason.clone(),
            }),
            LedgerError::CheckpointMismatch { size, .. } => Some(Self {
                file: CHECKPOINTS.to_owned(),
                offset: 0,
                entry: None,
                reason: format!(
                    "the stored tree does not give the newest signed checkpoint's root (size {size})"
                ),
            }),
            _ => None,
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Time as a pacer sees it.
pub trait Clock {
    /// Time since an origin of the clock's choosing; never goes back.
    fn now(&self) -> Duration;
    /// Waits about `duration`; `false` asks the pass to stop.
    fn sleep(&self, duration: Duration) -> bool;
}

/// Keeps the bytes a pass reads within `bytes_per_sec` times the time since it began.
pub struct Pacer<C> {
    clock: C,
    bytes_per_sec: u64,
    began: Duration,
    charged: u64,
}

/// A pass was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl<C: Clock> Pacer<C> {
    /// A pacer allowing `bytes_per_sec` (at least 1) from now.
    pub fn new(clock: C, bytes_per_sec: u64) -> Self {
        let began = clock.now();
        Self {
            clock,
            bytes_per_sec: bytes_per_sec.max(1),
            began,
            charged: 0,
        }
    }

    /// Bytes charged so far.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Counts `bytes` as read, then sleeps until the rate allows them.
    pub fn charge(&mut self, bytes: u64) -> Result<(), Stopped> {
        self.charged = self.charged.saturating_add(bytes);
        let due = Duration::from_secs_f64(self.charged as f64 / self.bytes_per_sec as f64);
        let elapsed = self.clock.now().saturating_sub(self.began);
        if due > elapsed && !self.clock.sleep(due - elapsed) {
            return Err(Stopped);
        }
        Ok(())
    }
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubOutcome {
    /// Everything checked out.
    Clean(ScrubStats),
    /// The first damage found.
    Damaged(Damage),
    /// The clock asked the pass to stop.
    Stopped,
}

/// What a clean pass checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubStats {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Why a pass ended early: damage, a stop, or a file it could not read.
enum PassError {
    Damage(Damage),
    Stopped,
    Io(LedgerError),
}

impl From<Stopped> for PassError {
    fn from(_: Stopped) -> Self {
        Self::Stopped
    }
}

impl From<LedgerError> for PassError {
    fn from(err: LedgerError) -> Self {
        Self::Io(err)
    }
}

fn damage(file: &str, offset: u64, entry: Option<u64>, reason: impl Into<String>) -> PassError {
    PassError::Damage(Damage {
        file: file.to_owned(),
        offset,
        entry,
        reason: reason.into(),
    })
}

/// Checks the files of `target` as the module doc says, at `pacer`'s rate; `progress` is told
/// the entries checked so far every 4,096 entries. An I/O error (a file that cannot be opened
/// or read) is an error, not damage: the pass could not look.
pub fn scrub<C: Clock>(
    target: &ScrubTarget,
    pacer: &mut Pacer<C>,
    mut progress: impl FnMut(u64),
) -> Result<ScrubOutcome, LedgerError> {
    let pass = read_checkpoints(target, pacer)
        .and_then(|checkpoints| walk_entries(target, pacer, &checkpoints, &mut progress));
    let outcome = match pass {
        Ok(stats) => ScrubOutcome::Clean(stats),
        Err(PassError::Damage(found)) => ScrubOutcome::Damaged(found),
        Err(PassError::Stopped) => ScrubOutcome::Stopped,
        Err(PassError::Io(err)) => return Err(err),
    };
    Ok(outcome)
}

/// One stored tree level, read front to back as the recomputed nodes complete.
struct LevelReader {
    name: String,
    path: PathBuf,
    reader: BufReader<File>,
}

/// The derived files of one pass, read front to back beside `entries.log`.
struct Derived {
    index: BufReader<File>,
    index_path: PathBuf,
    levels: Vec<LevelReader>,
}

fn open_read(path: &Path) -> Result<BufReader<File>, LedgerError> {
    let file = File::open(path).map_err(io_error("opening", path))?;
    Ok(BufReader::with_capacity(READ_BUFFER, file))
}

impl Derived {
    fn open(target: &ScrubTarget) -> Result<Self, LedgerError> {
        let mut levels = Vec::new();
        for level in 0..64 {
            if target.entries >> level == 0 {
                break;
            }
            let path = Levels::path(&target.dir, level);
            levels.push(LevelReader {
                name: file_name(&path),
                reader: open_read(&path)?,
                path,
            });
        }
        let index_path = target.dir.join(INDEX);
        Ok(Self {
            index: open_read(&index_path)?,
            index_path,
            levels,
        })
    }

    /// Step 3 for entry `index`: its slot must hold `offset`.
    fn check_slot(&mut self, index: u64, offset: u64) -> Result<(), PassError> {
        let mut slot = [0u8; 8];
        read_exact(&mut self.index, &mut slot, &self.index_path, index * 8)?;
        let stored = u64::from_be_bytes(slot);
        if stored != offset {
            return Err(damage(
                INDEX,
                index * 8,
                Some(index),
                format!("holds offset {stored}, but the entry's frame is at byte {offset}"),
            ));
        }
        Ok(())
    }

    /// Step 4 for one recomputed node: node `node` of `level` must be the stored one.
    fn check_node(
        &mut self,
        level: u32,
        node: u64,
        hash: &Hash,
        frame_offset: u64,
    ) -> Result<(), PassError> {
        let Some(stored) = self.levels.get_mut(level as usize) else {
            return Ok(());
        };
        let mut found = [0u8; 32];
        read_exact(&mut stored.reader, &mut found, &stored.path, node * 32)?;
        if &found == hash {
            return Ok(());
        }
        let first = node << level;
        let reason = if level == 0 {
            format!(
                "not the hash of entry {node} (entries.log byte {frame_offset}, whose checksum is right): the tree file or the entry was changed"
            )
        } else {
            format!(
                "not the hash of entries {first}..{} recomputed from entries.log",
                first + (1 << level)
            )
        };
        Err(damage(&stored.name, node * 32, Some(first), reason))
    }
}

/// Checks that `reader` starts with `magic`.
fn check_magic<C: Clock>(
    reader: &mut impl Read,
    name: &str,
    magic: &[u8; 8],
    pacer: &mut Pacer<C>,
) -> Result<(), PassError> {
    let mut found = [0u8; 8];
    if reader.read_exact(&mut found).is_err() || &found != magic {
        return Err(damage(name, 0, None, "not a ledger file (bad magic)"));
    }
    pacer.charge(8)?;
    Ok(())
}

/// Step 1: every stored checkpoint (frame offset, checkpoint), oldest first.
fn read_checkpoints<C: Clock>(
    target: &ScrubTarget,
    pacer: &mut Pacer<C>,
) -> Result<Vec<(u64, Checkpoint)>, PassError> {
    let mut reader = open_read(&target.dir.join(CHECKPOINTS))?;
    check_magic(&mut reader, CHECKPOINTS, CHECKPOINTS_MAGIC, pacer)?;
    let mut out: Vec<(u64, Checkpoint)> = Vec::new();
    let frames = FrameReader::new(
        reader,
        CHECKPOINTS_MAGIC.len() as u64,
        target.checkpoints_len,
        MAX_CHECKPOINT_BYTES,
    );
    for frame in frames {
        let frame = frame.map_err(|fault| frame_damage(CHECKPOINTS, None, fault))?;
        pacer.charge(frame.payload.len() as u64 + 8)?;
        let bad = |reason: String| damage(CHECKPOINTS, frame.offset, None, reason);
        let note = std::str::from_utf8(&frame.payload)
            .map_err(|_| bad("the checkpoint is not UTF-8".to_owned()))?;
        let cp = Checkpoint::verify_signed(note, &target.verifier)
            .map_err(|err| bad(format!("the checkpoint does not verify: {err}")))?;
        if cp.origin != target.origin || cp.hash != target.alg {
            return Err(bad(format!(
                "a checkpoint of another ledger ({}, {})",
                cp.origin, cp.hash
            )));
        }
        if out.last().is_some_and(|(_, prev)| prev.size > cp.size) {
            return Err(bad("a checkpoint smaller than the one before it".to_owned()));
        }
        if cp.size > target.entries {
            return Err(bad(format!(
                "the checkpoint covers {} entries, but the ledger holds {}",
                cp.size, target.entries
            )));
        }
        out.push((frame.offset, cp));
    }
    Ok(out)
}

/// Steps 2 to 5: the entries, their index slots, the tree nodes and the signed roots.
fn walk_entries<C: Clock>(
    target: &ScrubTarget,
    pacer: &mut Pacer<C>,
    checkpoints: &[(u64, Checkpoint)],
    progress: &mut impl FnMut(u64),
) -> Result<ScrubStats, PassError> {
    let mut derived = Derived::open(target)?;
    let mut reader = open_read(&target.dir.join(ENTRIES))?;
    check_magic(&mut reader, ENTRIES, ENTRIES_MAGIC, pacer)?;
    let mut frontier = Frontier::new(target.alg);
    let mut roots = Roots {
        checkpoints,
        next: 0,
        checked: 0,
    };
    roots.check(&frontier)?;
    let frames = FrameReader::new(
        reader,
        ENTRIES_MAGIC.len() as u64,
        target.entries_len,
        MAX_ENTRY_BYTES,
    );
    for frame in frames {
        let index = frontier.size();
        let frame = frame.map_err(|fault| frame_damage(ENTRIES, Some(index), fault))?;
        let at = |reason: String| damage(ENTRIES, frame.offset, Some(index), reason);
        if index >= target.entries {
            return Err(at(format!(
                "a frame after the {} acknowledged entries",
                target.entries
            )));
        }
        Entry::decode(&frame.payload)
            .map_err(|err| at(format!("the entry does not decode: {err}")))?;
        derived.check_slot(index, frame.offset)?;
        // The frame, its index slot, and each tree node read.
        let mut read = frame.payload.len() as u64 + 16;
        for (level, node, hash) in frontier.push(target.alg.leaf_hash(&frame.payload)) {
            read += 32;
            derived.check_node(level, node, &hash, frame.offset)?;
        }
        pacer.charge(read)?;
        if frontier.size().is_multiple_of(4096) {
            progress(frontier.size());
        }
        roots.check(&frontier)?;
    }
    if frontier.size() < target.entries {
        return Err(damage(
            ENTRIES,
            target.entries_len,
            Some(frontier.size()),
            format!(
                "holds {} entries before byte {}, but {} were acknowledged",
                frontier.size(),
                target.entries_len,
                target.entries
            ),
        ));
    }
    progress(frontier.size());
    Ok(ScrubStats {
        entries: frontier.size(),
        checkpoints: roots.checked,
        bytes: pacer.charged(),
    })
}

/// Step 5: the stored checkpoints, met in the order of their sizes.
struct Roots<'a> {
    checkpoints: &'a [(u64, Checkpoint)],
    next: usize,
    checked: u64,
}

impl Roots<'_> {
    /// The recomputed root against every checkpoint of the frontier's size.
    fn check(&mut self, frontier: &Frontier) -> Result<(), PassError> {
        while let Some((offset, cp)) = self.checkpoints.get(self.next) {
            if cp.size != frontier.size() {
                break;
            }
            if frontier.root() != cp.root {
                return Err(damage(
                    CHECKPOINTS,
                    *offset,
                    None,
                    format!(
                        "the entries give another root at size {} than this signed checkpoint: an entry before it was changed",
                        cp.size
                    ),
                ));
            }
            self.checked += 1;
            self.next += 1;
        }
        Ok(())
    }
}

fn read_exact(
    reader: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    offset: u64,
) -> Result<(), PassError> {
    reader.read_exact(buf).map_err(|err| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            damage(
                &file_name(path),
                offset,
                None,
                "shorter than the entries it must cover",
            )
        } else {
            PassError::Io(LedgerError::Io {
                what: "reading",
                path: path.to_path_buf(),
                source: err,
            })
        }
    })
}

/// A frame that does not read is damage wherever it is: the pass ends at an acknowledged
/// entry, so a frame that runs past that end is not a torn tail.
fn frame_damage(file: &str, entry: Option<u64>, fault: FrameFault) -> PassError {
    match fault {
        FrameFault::Torn { offset } => damage(
            file,
            offset,
            entry,
            "the frame runs past what was acknowledged, or is cut short",
        ),
        FrameFault::Damaged { offset, reason } => damage(file, offset, entry, reason),
    }
}

#[cfg(test)]
mod tests;
