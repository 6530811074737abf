//! The ledger on disk: append-only files, crash recovery, the signing key and checkpoints.
//!
//! # Files (all in one directory, `<data_dir>/ledger/`, mode 0700, files 0600)
//!
//! | file | what | role |
//! | --- | --- | --- |
//! | `meta` | `daemoneye-ledger 1`, `hash <alg>`, `origin <origin>` lines | written once, at creation |
//! | `signing.key` | the Ed25519 checkpoint key ([`NoteSigner::secret_key_text`]) | secret, created once |
//! | `ledger.pub` | the verifier key an auditor needs ([`NoteVerifier`]'s text) | public |
//! | `entries.log` | magic `DEYELOG1`, then one frame per entry | **the source of truth** |
//! | `entries.idx` | the frame offset of entry *i* at byte 8·*i*, big-endian u64 | derived |
//! | `tree-LL.hash` | hash of complete subtree *j* of level LL (2^LL leaves) at byte 32·*j* | derived |
//! | `checkpoints.log` | magic `DEYECKP1`, then one frame per signed checkpoint note | history |
//!
//! A frame is `length: u32 BE`, `crc32c(payload): u32 BE`, `payload`. In `entries.log` the
//! payload is the entry's canonical encoding ([`Entry::encode`]): the bytes the tree hashes.
//! The checksum only finds torn and damaged frames; tampering is found by the tree, whose
//! roots are signed.
//!
//! Because the hashes of every complete subtree are on disk, a proof reads O(log n) of them
//! ([`merkle::inclusion_proof`] over [`NodeSource`]); the writer keeps only the tree's right
//! edge in memory ([`Frontier`], at most 64 hashes), whatever the ledger's size.
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
//! 3. Every frame of `entries.log` after entry *p* is read again, checked, decoded, hashed
//!    and added to the derived files. A torn tail (a frame that runs past the end of the file,
//!    a bad last frame, or a tail of zeros) is cut and synced away: it was never
//!    acknowledged. A bad frame with data after it is damage, never a tail, and the ledger
//!    refuses to open rather than drop acknowledged entries.
//!
//! So the ledger opens to the last complete entry, the work is bounded by what was appended
//! since the newest checkpoint, and a change to any entry covered by a checkpoint is found by
//! a full verification (`daemoneye-cli audit verify <dir>`), which recomputes the tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::entry::{Entry, EntryError, MAX_ENTRY_BYTES};
use super::merkle::{self, Frontier, NodeSource, ProofError};
use super::note::{
    Checkpoint, ConsistencyProofFile, InclusionProofFile, NoteError, NoteSigner, NoteVerifier,
};
use super::{Hash, HashAlg};

/// Magic at the start of `entries.log`.
pub const ENTRIES_MAGIC: &[u8; 8] = b"DEYELOG1";
/// Magic at the start of `checkpoints.log`.
pub const CHECKPOINTS_MAGIC: &[u8; 8] = b"DEYECKP1";
/// Bytes before a frame's payload: length and checksum.
pub const FRAME_HEADER: u64 = 8;
/// The largest signed checkpoint note kept in `checkpoints.log`.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

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

/// The per-level hash files: hashes of complete subtrees, read with `pread`.
struct Levels {
    dir: PathBuf,
    files: Vec<(File, u64)>,
    /// Bit `l` set: level `l` changed since it was last synced.
    dirty: u64,
}

impl Levels {
    fn path(dir: &Path, level: u32) -> PathBuf {
        dir.join(format!("tree-{level:02}.hash"))
    }

    /// Opens every level file that exists (level 0 upwards, stopping at the first missing).
    fn open(dir: &Path) -> Result<Self, LedgerError> {
        let mut files = Vec::new();
        for level in 0..=MAX_LEVELS {
            let path = Self::path(dir, level);
            match open_rw(&path, false) {
                Ok(file) => {
                    let len = file
                        .metadata()
                        .map_err(io_error("reading the size of", &path))?
                        .len();
                    files.push((file, len));
                }
                Err(LedgerError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            dirty: 0,
        })
    }

    /// Complete nodes stored at `level`.
    fn count(&self, level: u32) -> u64 {
        self.files
            .get(level as usize)
            .map_or(0, |(_, len)| len / HASH_LEN)
    }

    /// Cuts every level to the nodes a tree of `size` leaves completes.
    fn truncate(&mut self, size: u64) -> Result<(), LedgerError> {
        for (level, (file, len)) in self.files.iter_mut().enumerate() {
            let keep = (size >> level) * HASH_LEN;
            if *len != keep {
                let path = Self::path(&self.dir, level as u32);
                file.set_len(keep).map_err(io_error("cutting", &path))?;
                *len = keep;
                self.dirty |= 1 << level;
            }
        }
        Ok(())
    }

    /// Appends `hashes` (consecutive nodes) to `level`, creating its file if needed.
    fn append(&mut self, level: u32, hashes: &[u8]) -> Result<(), LedgerError> {
        while self.files.len() <= level as usize {
            let path = Self::path(&self.dir, self.files.len() as u32);
            let file = open_rw(&path, true)?;
            self.files.push((file, 0));
        }
        let (file, len) = &mut self.files[level as usize];
        let path = Self::path(&self.dir, level);
        file.write_all_at(hashes, *len)
            .map_err(io_error("writing", &path))?;
        *len += hashes.len() as u64;
        self.dirty |= 1 << level;
        Ok(())
    }

    /// Syncs the levels that changed since their last sync (most upper levels change
    /// rarely, and a checkpoint should not wait for files it did not touch).
    fn sync(&mut self) -> Result<(), LedgerError> {
        for (level, (file, _)) in self.files.iter().enumerate() {
            if self.dirty & (1 << level) != 0 {
                file.sync_data()
                    .map_err(io_error("syncing", &Self::path(&self.dir, level as u32)))?;
            }
        }
        self.dirty = 0;
        Ok(())
    }
}

const HASH_LEN: u64 = 32;

impl NodeSource for Levels {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let path = Self::path(&self.dir, level);
        let Some((file, len)) = self.files.get(level as usize) else {
            return Err(LedgerError::Damaged {
                path,
                offset: 0,
                reason: "missing tree level".to_owned(),
            });
        };
        let offset = index
            .checked_mul(HASH_LEN)
            .filter(|offset| offset + HASH_LEN <= *len)
            .ok_or_else(|| LedgerError::Damaged {
                path: path.clone(),
                offset: *len,
                reason: format!("no node {index} at level {level}"),
            })?;
        let mut hash = [0u8; 32];
        file.read_exact_at(&mut hash, offset)
            .map_err(io_error("reading", &path))?;
        Ok(hash)
    }
}

fn open_rw(path: &Path, create: bool) -> Result<File, LedgerError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .open(path)
        .map_err(io_error("opening", path))
}

/// Writes `contents` to `path` through a synced temporary file and a rename, then syncs the
/// directory: the file is either absent or whole.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), LedgerError> {
    let tmp = path.with_extension("tmp");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error("creating", &tmp))?;
    file.write_all_at(contents, 0)
        .map_err(io_error("writing", &tmp))?;
    file.sync_all().map_err(io_error("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_error("renaming into place", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing the directory", dir))
}

/// One frame as read from a framed file.
#[derive(Debug)]
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

/// Reads frames `length u32 BE, crc32c u32 BE, payload` from `offset` to the end of a file of
/// `file_len` bytes, telling a torn tail from damage.
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
        let mut header = [0u8; FRAME_HEADER as usize];
        if self.file_len - self.offset < FRAME_HEADER
            || self.reader.read_exact(&mut header).is_err()
        {
            return Some(Err(FrameFault::Torn {
                offset: self.offset,
            }));
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let end = self.offset + FRAME_HEADER + u64::from(len);
        if len == 0 || len as usize > self.max_payload {
            let reason = format!("frame length {len} is out of range");
            return Some(Err(self.fault(end.max(self.offset + FRAME_HEADER), reason)));
        }
        if end > self.file_len {
            return Some(Err(FrameFault::Torn {
                offset: self.offset,
            }));
        }
        let mut payload = vec![0u8; len as usize];
        if self.reader.read_exact(&mut payload).is_err() {
            return Some(Err(FrameFault::Torn {
                offset: self.offset,
            }));
        }
        if crc32c::crc32c(&payload) != crc {
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

/// Appends one frame for `payload` to `out`.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Opens a framed file (creating it with its magic when `create`), checks the magic and
/// returns it with its length.
fn open_framed(path: &Path, magic: &[u8; 8], create: bool) -> Result<(File, u64), LedgerError> {
    let file = open_rw(path, create)?;
    let mut len = file
        .metadata()
        .map_err(io_error("reading the size of", path))?
        .len();
    if len < magic.len() as u64 {
        // Created now, or a crash while it was being created: nothing was ever in it.
        file.set_len(0).map_err(io_error("cutting", path))?;
        file.write_all_at(magic, 0)
            .map_err(io_error("writing", path))?;
        file.sync_all().map_err(io_error("syncing", path))?;
        len = magic.len() as u64;
    }
    let mut found = [0u8; 8];
    file.read_exact_at(&mut found, 0)
        .map_err(io_error("reading", path))?;
    if &found != magic {
        return Err(LedgerError::Damaged {
            path: path.to_path_buf(),
            offset: 0,
            reason: "not a ledger file (bad magic)".to_owned(),
        });
    }
    Ok((file, len))
}

/// A buffered [`FrameReader`] over `file` (a second handle: reads never move the writer's
/// position, which `pwrite` does not use anyway) from `offset` to `len`.
fn frames_at(
    path: &Path,
    file: &File,
    offset: u64,
    len: u64,
    max_payload: usize,
) -> Result<FrameReader<BufReader<File>>, LedgerError> {
    let mut reader = file.try_clone().map_err(io_error("opening", path))?;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(offset)).map_err(io_error("reading", path))?;
    Ok(FrameReader::new(
        BufReader::new(reader),
        offset,
        len,
        max_payload,
    ))
}

/// Reads every frame of a framed file from `offset`; a torn tail is cut (and synced),
/// damage is an error. Returns the frames and the bytes cut.
fn read_frames(
    path: &Path,
    file: &File,
    offset: u64,
    len: u64,
    max_payload: usize,
    mut each: impl FnMut(Frame) -> Result<(), LedgerError>,
) -> Result<(u64, u64), LedgerError> {
    let mut frames = frames_at(path, file, offset, len, max_payload)?;
    for frame in frames.by_ref() {
        match frame {
            Ok(frame) => each(frame)?,
            Err(FrameFault::Torn { offset }) => {
                file.set_len(offset)
                    .map_err(io_error("cutting a torn tail from", path))?;
                file.sync_all().map_err(io_error("syncing", path))?;
                return Ok((offset, len - offset));
            }
            Err(FrameFault::Damaged { offset, reason }) => {
                return Err(LedgerError::Damaged {
                    path: path.to_path_buf(),
                    offset,
                    reason,
                });
            }
        }
    }
    Ok((frames.offset(), 0))
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
    /// Opens the ledger in `dir`, creating it (and its signing key) on first use, and
    /// recovers from a crash as the module documentation says.
    pub fn open(dir: &Path, settings: &Settings) -> Result<(Self, Recovery), LedgerError> {
        let mut recovery = Recovery::default();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("creating", dir))?;
        let meta_path = dir.join(META);
        let (alg, origin) = if meta_path.exists() {
            read_meta(&meta_path)?
        } else {
            if dir.join(ENTRIES).exists() {
                return Err(LedgerError::Damaged {
                    path: meta_path,
                    offset: 0,
                    reason: "missing, but entries.log exists".to_owned(),
                });
            }
            create(dir, settings)?;
            recovery.created = true;
            (settings.hash, settings.origin.clone())
        };
        if alg != settings.hash {
            return Err(LedgerError::HashChanged {
                dir: dir.to_path_buf(),
                stored: alg,
                configured: settings.hash,
            });
        }
        let signer = read_signer(dir)?;
        let verifier = signer.verifier();

        // Step 1: the checkpoints, newest last.
        let checkpoints_path = dir.join(CHECKPOINTS);
        let (checkpoints, checkpoints_len) =
            open_framed(&checkpoints_path, CHECKPOINTS_MAGIC, true)?;
        let mut latest: Option<SignedCheckpoint> = None;
        let mut count = 0u64;
        let (checkpoints_len, cut) = read_frames(
            &checkpoints_path,
            &checkpoints,
            CHECKPOINTS_MAGIC.len() as u64,
            checkpoints_len,
            MAX_NOTE_BYTES,
            |frame| {
                let note = String::from_utf8(frame.payload).map_err(|_| LedgerError::Damaged {
                    path: checkpoints_path.clone(),
                    offset: frame.offset,
                    reason: "checkpoint is not UTF-8".to_owned(),
                })?;
                // The signature of the newest is checked below; the older ones are only read
                // for their sizes here (one Ed25519 check each would make a year of 5-minute
                // checkpoints cost seconds at every start). `audit verify` checks them all.
                let checkpoint = note
                    .rfind("\n\n")
                    .ok_or(NoteError::MissingSignatureSeparator)
                    .and_then(|end| Checkpoint::parse_body(&note[..=end]))
                    .map_err(|source| LedgerError::Note {
                        what: format!("checkpoint at byte {} of {}", frame.offset, CHECKPOINTS),
                        source,
                    })?;
                if latest
                    .as_ref()
                    .is_some_and(|prev| prev.checkpoint.size > checkpoint.size)
                {
                    return Err(LedgerError::Damaged {
                        path: checkpoints_path.clone(),
                        offset: frame.offset,
                        reason: "a checkpoint smaller than the one before it".to_owned(),
                    });
                }
                count += 1;
                latest = Some(SignedCheckpoint { note, checkpoint });
                Ok(())
            },
        )?;
        if let Some(newest) = &latest {
            let signed = Checkpoint::verify_signed(&newest.note, &verifier).map_err(|source| {
                LedgerError::Note {
                    what: format!("the newest checkpoint in {CHECKPOINTS}"),
                    source,
                }
            })?;
            if signed != newest.checkpoint {
                return Err(LedgerError::Damaged {
                    path: checkpoints_path.clone(),
                    offset: 0,
                    reason: "the newest checkpoint does not say what it signs".to_owned(),
                });
            }
        }
        recovery.checkpoints_cut = cut;
        recovery.checkpoints = count;
        let durable = latest.as_ref().map_or(0, |c| c.checkpoint.size);

        // Step 2: the derived files, cut back to what they all hold.
        let entries_path = dir.join(ENTRIES);
        let (entries, entries_len) = open_framed(&entries_path, ENTRIES_MAGIC, true)?;
        let index_path = dir.join(INDEX);
        let index = open_rw(&index_path, true)?;
        let index_len = index
            .metadata()
            .map_err(io_error("reading the size of", &index_path))?
            .len();
        let mut levels = Levels::open(dir)?;
        let mut start = durable.min(index_len / 8);
        loop {
            let mut fits = start;
            for level in 0..MAX_LEVELS {
                if start >> level == 0 {
                    break;
                }
                let have = levels.count(level);
                if have < start >> level {
                    fits = fits.min(have << level);
                }
            }
            if fits == start {
                break;
            }
            start = fits;
        }
        let mut index_dirty = false;
        if index_len != start * 8 {
            index
                .set_len(start * 8)
                .map_err(io_error("cutting", &index_path))?;
            index_dirty = true;
        }
        levels.truncate(start)?;
        let frontier = Frontier::from_source(alg, &levels, start)?;
        let mut ledger = Self {
            dir: dir.to_path_buf(),
            alg,
            origin,
            signer,
            entries,
            entries_len,
            index,
            index_len: start * 8,
            index_dirty,
            levels,
            frontier,
            checkpoints,
            checkpoints_len,
            checkpoint_count: count,
            latest,
            broken: None,
        };
        if start > 0 && start == durable {
            ledger.check_latest()?;
        }

        // Step 3: replay the entries after `start`.
        let offset = if start == 0 {
            ENTRIES_MAGIC.len() as u64
        } else {
            let last = ledger.index_offset(start - 1)?;
            let (len, _) = ledger.frame_header(last)?;
            last + FRAME_HEADER + u64::from(len)
        };
        if offset > entries_len {
            return Err(LedgerError::Damaged {
                path: entries_path,
                offset,
                reason: format!(
                    "entries.idx points past the end of the file ({entries_len} bytes)"
                ),
            });
        }
        let mut batch = Pending::default();
        let mut checked = start == durable;
        let (end, cut) = read_frames(
            &entries_path,
            &ledger
                .entries
                .try_clone()
                .map_err(io_error("opening", &entries_path))?,
            offset,
            entries_len,
            MAX_ENTRY_BYTES,
            |frame| {
                let index = ledger.frontier.size();
                Entry::decode(&frame.payload)
                    .map_err(|source| LedgerError::Entry { index, source })?;
                batch.add(&mut ledger.frontier, alg, frame.offset, &frame.payload);
                if batch.entries >= 4096 {
                    ledger.write_derived(&mut batch)?;
                }
                if ledger.frontier.size() == durable && !checked {
                    ledger.write_derived(&mut batch)?;
                    ledger.check_latest()?;
                    checked = true;
                }
                Ok(())
            },
        )?;
        ledger.write_derived(&mut batch)?;
        ledger.entries_len = end;
        recovery.entries_cut = cut;
        recovery.replayed = ledger.frontier.size() - start;
        if ledger.frontier.size() < durable {
            return Err(LedgerError::Damaged {
                path: ledger.dir.join(ENTRIES),
                offset: end,
                reason: format!(
                    "holds {} entries, but a signed checkpoint covers {durable}: entries were removed",
                    ledger.frontier.size()
                ),
            });
        }
        ledger.sync_derived()?;
        Ok((ledger, recovery))
    }

    /// Checks that the stored tree gives the newest checkpoint's root.
    fn check_latest(&self) -> Result<(), LedgerError> {
        let Some(latest) = &self.latest else {
            return Ok(());
        };
        let size = latest.checkpoint.size;
        let root = merkle::root(self.alg, &self.levels, size)?;
        if root != latest.checkpoint.root {
            return Err(LedgerError::CheckpointMismatch {
                dir: self.dir.clone(),
                size,
            });
        }
        Ok(())
    }

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

    /// The frame offset of entry `index`, from `entries.idx`.
    fn index_offset(&self, index: u64) -> Result<u64, LedgerError> {
        let path = self.dir.join(INDEX);
        let mut bytes = [0u8; 8];
        self.index
            .read_exact_at(&mut bytes, index * 8)
            .map_err(io_error("reading", &path))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// The length and checksum of the frame at `offset` of `entries.log`.
    fn frame_header(&self, offset: u64) -> Result<(u32, u32), LedgerError> {
        let path = self.dir.join(ENTRIES);
        let mut header = [0u8; 8];
        self.entries
            .read_exact_at(&mut header, offset)
            .map_err(io_error("reading", &path))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len as usize > MAX_ENTRY_BYTES {
            return Err(LedgerError::Damaged {
                path,
                offset,
                reason: format!("frame length {len} is out of range"),
            });
        }
        Ok((len, crc))
    }

    /// The canonical bytes of entry `index`, checksum verified.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= self.size() {
            return Err(LedgerError::OutOfRange(format!(
                "there is no entry {index}: the ledger holds {} entries",
                self.size()
            )));
        }
        let offset = self.index_offset(index)?;
        let (len, crc) = self.frame_header(offset)?;
        let path = self.dir.join(ENTRIES);
        let mut payload = vec![0u8; len as usize];
        self.entries
            .read_exact_at(&mut payload, offset + FRAME_HEADER)
            .map_err(io_error("reading", &path))?;
        if crc32c::crc32c(&payload) != crc {
            return Err(LedgerError::Damaged {
                path,
                offset,
                reason: format!("entry {index}: checksum mismatch"),
            });
        }
        Ok(payload)
    }

    /// Up to `max` entries from `start`, stopping before `max_bytes` of payload is exceeded
    /// (at least one entry is returned when there is one).
    pub fn entries(
        &self,
        start: u64,
        max: u64,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, LedgerError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let end = start.saturating_add(max).min(self.size());
        for index in start..end {
            let entry = self.entry(index)?;
            bytes += entry.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Up to `max` signed checkpoint notes from the `start`-th kept (oldest first); the ones
    /// before `start` are read past, not kept in memory.
    pub fn checkpoint_notes(&self, start: u64, max: usize) -> Result<Vec<String>, LedgerError> {
        let path = self.dir.join(CHECKPOINTS);
        let mut notes = Vec::new();
        let frames = frames_at(
            &path,
            &self.checkpoints,
            CHECKPOINTS_MAGIC.len() as u64,
            self.checkpoints_len,
            MAX_NOTE_BYTES,
        )?;
        let wanted = usize::try_from(start).unwrap_or(usize::MAX);
        for frame in frames.skip(wanted).take(max) {
            let frame = frame.map_err(|fault| LedgerError::Damaged {
                path: path.clone(),
                offset: match &fault {
                    FrameFault::Torn { offset } | FrameFault::Damaged { offset, .. } => *offset,
                },
                reason: format!("{fault:?}"),
            })?;
            notes.push(String::from_utf8_lossy(&frame.payload).into_owned());
        }
        Ok(notes)
    }

    fn require_latest(&self) -> Result<&SignedCheckpoint, LedgerError> {
        self.latest.as_ref().ok_or_else(|| {
            LedgerError::OutOfRange("the ledger has no signed checkpoint yet".to_owned())
        })
    }

    /// An inclusion proof of entry `index` against the newest checkpoint.
    pub fn prove(&self, index: u64) -> Result<InclusionProofFile, LedgerError> {
        let latest = self.require_latest()?;
        let size = latest.checkpoint.size;
        if index >= size {
            return Err(LedgerError::OutOfRange(format!(
                "entry {index} is not covered by the newest checkpoint (size {size})"
            )));
        }
        let proof =
            merkle::inclusion_proof(self.alg, &self.levels, index, size).map_err(proof_error)?;
        Ok(InclusionProofFile {
            entry: self.entry(index)?,
            index,
            proof,
            checkpoint: latest.note.clone(),
        })
    }

    /// A consistency proof from `old` (a signed checkpoint note of this ledger) to the newest
    /// checkpoint. Refused when `old` is not signed by this ledger's key, or does not match
    /// this ledger at its size.
    pub fn consistency(&self, old: &str) -> Result<ConsistencyProofFile, LedgerError> {
        let old = Checkpoint::verify_signed(old, &self.verifier()).map_err(|source| {
            LedgerError::Note {
                what: "the old checkpoint".to_owned(),
                source,
            }
        })?;
        let latest = self.require_latest()?;
        if old.origin != self.origin || old.hash != self.alg {
            return Err(LedgerError::OutOfRange(format!(
                "the old checkpoint is for {} ({}), this ledger is {} ({})",
                old.origin, old.hash, self.origin, self.alg
            )));
        }
        let size = latest.checkpoint.size;
        if old.size > size {
            return Err(LedgerError::OutOfRange(format!(
                "the old checkpoint (size {}) is newer than the newest one (size {size})",
                old.size
            )));
        }
        if old.size > 0 && merkle::root(self.alg, &self.levels, old.size)? != old.root {
            return Err(LedgerError::CheckpointMismatch {
                dir: self.dir.clone(),
                size: old.size,
            });
        }
        let proof = merkle::consistency_proof(self.alg, &self.levels, old.size, size)
            .map_err(proof_error)?;
        Ok(ConsistencyProofFile {
            size1: old.size,
            proof,
            checkpoint: latest.note.clone(),
        })
    }
}

fn proof_error(err: ProofError<LedgerError>) -> LedgerError {
    match err {
        ProofError::Source(err) => err,
        other => LedgerError::OutOfRange(other.to_string()),
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

fn create(dir: &Path, settings: &Settings) -> Result<(), LedgerError> {
    let note_error = |source| LedgerError::Note {
        what: "the ledger's signing key".to_owned(),
        source,
    };
    let signer = NoteSigner::generate(&settings.origin).map_err(note_error)?;
    let key_path = dir.join(SIGNING_KEY);
    // A key left by a crash during an earlier creation is replaced: nothing was signed with it.
    write_atomically(&key_path, signer.secret_key_text().as_bytes())?;
    write_atomically(
        &dir.join(PUBLIC_KEY),
        format!("{}\n", signer.verifier()).as_bytes(),
    )?;
    // `meta` last: its presence says the ledger exists.
    let meta = format!(
        "{META_VERSION}\nhash {}\norigin {}\n",
        settings.hash.name(),
        settings.origin
    );
    write_atomically(&dir.join(META), meta.as_bytes())
}

fn read_meta(path: &Path) -> Result<(HashAlg, String), LedgerError> {
    let text = fs::read_to_string(path).map_err(io_error("reading", path))?;
    let damaged = |reason: &str| LedgerError::Damaged {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_owned(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(META_VERSION) {
        return Err(damaged("unknown ledger version"));
    }
    let hash = lines
        .next()
        .and_then(|l| l.strip_prefix("hash "))
        .and_then(HashAlg::from_name)
        .ok_or_else(|| damaged("bad `hash` line"))?;
    let origin = lines
        .next()
        .and_then(|l| l.strip_prefix("origin "))
        .filter(|o| !o.is_empty())
        .ok_or_else(|| damaged("bad `origin` line"))?
        .to_owned();
    if lines.next().is_some() {
        return Err(damaged("unexpected lines"));
    }
    Ok((hash, origin))
}

fn read_signer(dir: &Path) -> Result<NoteSigner, LedgerError> {
    let path = dir.join(SIGNING_KEY);
    let text = fs::read_to_string(&path).map_err(io_error("reading", &path))?;
    NoteSigner::parse_secret(text.trim_end()).map_err(|source| LedgerError::Note {
        what: format!("{}", path.display()),
        source,
    })
}

/// The verifier key of the ledger in `dir`, read from `ledger.pub` (no secret needed).
pub fn read_verifier(dir: &Path) -> Result<NoteVerifier, LedgerError> {
    let path = dir.join(PUBLIC_KEY);
    let text = fs::read_to_string(&path).map_err(io_error("reading", &path))?;
    NoteVerifier::parse(text.trim_end()).map_err(|source| LedgerError::Note {
        what: format!("{}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests;
