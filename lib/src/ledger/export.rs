//! The audit export: the directory `daemoneye-cli audit export --out DIR` writes for an auditor
//! and `daemoneye-cli audit verify DIR --key K` reads. Both sides are here: [`ExportWriter`]
//! takes the pieces the CLI fetched from the agent; [`Export`] reads them back for
//! [`super::verify`].
//!
//! # Layout
//!
//! ```text
//! DIR/
//!   ledger.pub                          the verifier key, as `audit key` prints it
//!   checkpoint                          the newest signed checkpoint note
//!   checkpoints/SSSSSSSSSSSS.checkpoint each kept older checkpoint, by tree size
//!   entries.bin                         every entry the newest checkpoint covers (bytes below)
//!   entries.jsonl                       the same entries as JSON lines, to read, not verified
//!   proofs/entry-IIIIIIIIIIII.proof     inclusion proofs of the newest entries
//!   proofs/consistency-SSSSSSSSSSSS.txt consistency proofs from the newest kept checkpoints
//!   README.md                           how to check it, for the auditor
//! ```
//!
//! `SSSSSSSSSSSS` is a tree size and `IIIIIIIIIIII` an entry index, in decimal padded with zeros
//! to 12 digits (more digits for a larger number), so that names sort in numeric order.
//!
//! ## Files
//!
//! - `ledger.pub`: the C2SP verifier key text and a newline (UTF-8), byte for byte as the
//!   ledger gave it ([`super::note::NoteVerifier`]'s text). Written for the auditor to compare
//!   with the key received by another path; the verifier never reads it, the key is always
//!   given to it.
//! - `checkpoint`: the newest signed checkpoint note (C2SP `tlog-checkpoint`, see
//!   [`super::note`]), verbatim. It defines the export: tree size *n*, root, hash function.
//! - `checkpoints/S.checkpoint`: a signed checkpoint note of size `S` ≤ *n*, verbatim, for
//!   each size of which the ledger kept one (the oldest of that size when there are several).
//! - `entries.bin`: for each entry 0 to *n* − 1 in order, and nothing else:
//!
//!   ```text
//!   offset  size  field
//!   0       4     length    u32, big-endian, 1..=16384 (MAX_ENTRY_BYTES)
//!   4       L     entry     the entry's canonical encoding (super::entry), the bytes the
//!                           tree hashes
//!   ```
//!
//!   Unlike the ledger's own `entries.log`, there is no magic and no checksum: the tree and the
//!   signed checkpoints authenticate every byte.
//! - `entries.jsonl`: for each entry in order, one line: [`Entry::to_json`] with an `index`
//!   member added, or `{"error":"…","index":I}` for bytes that do not decode.
//! - `proofs/entry-I.proof`: the C2SP `tlog-proof` file of entry `I` against `checkpoint`.
//! - `proofs/consistency-S.txt`: the consistency proof file from `checkpoints/S.checkpoint`
//!   to `checkpoint` ([`super::note`] has both proof formats).
//! - `README.md`: what the files are and the commands that check them.
//!
//! # Writing
//!
//! The directory must not exist or be empty. Every file is written whole through
//! [`super::atomic`] (a hidden temporary file, synced, renamed into place, the directory
//! synced); `entries.bin` and `entries.jsonl` grow in their temporary files while the CLI
//! fetches entries and appear at [`ExportWriter::finish`], which writes `README.md` last. So an
//! interrupted export holds only whole files, and no `README.md`. The writer checks what it is
//! given: the key parses, every checkpoint verifies with it, stored checkpoints larger than the
//! newest are left out, and `finish` refuses an export whose entry count is not *n*.
//!
//! # Reading
//!
//! [`Export`] reads `checkpoint`, every file in `checkpoints/` and `proofs/` (by name order; a
//! name starting with `.`, a temporary file, is skipped) and `entries.bin`. `ledger.pub`,
//! `entries.jsonl` and `README.md` are not read: they are for people.
//!
//! An export comes from a site and is read by an auditor, so every read is bounded
//! (through [`crate::fsutil`]): each file must be a regular file (a link is followed; a FIFO,
//! a device, a socket or a directory is refused by kind, and never waited on); `checkpoint`
//! and each `checkpoints/` file are at most [`MAX_NOTE_BYTES`], each proof file at most
//! [`MAX_FILE_BYTES`], and they are read one at a time; `checkpoints/` holds at most
//! [`MAX_CHECKPOINT_FILES`] names and `proofs/` at most [`MAX_PROOF_FILES`] (every name
//! counts, hidden ones too); nothing below those two directories is ever listed, so the depth
//! is fixed; `entries.bin` is streamed, one entry of at most `MAX_ENTRY_BYTES` at a time, and
//! the verifier stops at the first entry past what the newest checkpoint covers. The writer
//! refuses to write more files than the reader accepts.

use std::fmt;
use std::fs;
use std::io::{self, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

use super::atomic::{self, AtomicFile};
use super::entry::{Entry, MAX_ENTRY_BYTES, format_time_ms};
use super::note::{Checkpoint, MAX_FILE_BYTES, MAX_NOTE_BYTES, NoteVerifier};
use crate::fsutil::{self, BoundedReadError};

/// The file that tells an export directory: `entries.bin`.
pub const ENTRIES_BIN: &str = "entries.bin";
/// The readable copy of the entries.
pub const ENTRIES_JSONL: &str = "entries.jsonl";
/// The newest checkpoint.
pub const CHECKPOINT: &str = "checkpoint";
/// The verifier key.
pub const KEY: &str = "ledger.pub";
/// The directory of older checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The directory of proof files.
pub const PROOFS_DIR: &str = "proofs";
/// The auditor's instructions.
pub const README: &str = "README.md";

/// The most names `checkpoints/` may hold: one checkpoint every five minutes for almost ten
/// years.
pub const MAX_CHECKPOINT_FILES: usize = 1 << 20;
/// The most names `proofs/` may hold: `audit export --proofs` is at most half of it.
pub const MAX_PROOF_FILES: usize = 1 << 16;

/// `checkpoints/S.checkpoint`.
pub fn checkpoint_name(size: u64) -> String {
    format!("{CHECKPOINTS_DIR}/{size:012}.checkpoint")
}

/// `proofs/entry-I.proof`.
pub fn inclusion_proof_name(index: u64) -> String {
    format!("{PROOFS_DIR}/entry-{index:012}.proof")
}

/// `proofs/consistency-S.txt`.
pub fn consistency_proof_name(size1: u64) -> String {
    format!("{PROOFS_DIR}/consistency-{size1:012}.txt")
}

/// What went wrong writing or reading an export; one line, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The target directory holds something already.
    #[error("{}: exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// A file or directory could not be written or read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// `writing`, `reading`, …
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file or directory that is not a regular file, too large or holds too many names.
    #[error(transparent)]
    Refused(#[from] BoundedReadError),
    /// A text file that is not UTF-8.
    #[error("reading {}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The ledger's key given to the writer does not parse.
    #[error("the ledger's key does not parse: {0}")]
    Key(String),
    /// A checkpoint given to the writer does not verify with the key.
    #[error("{which} checkpoint does not verify: {reason}")]
    Checkpoint {
        /// `the new` or `a stored`.
        which: &'static str,
        /// Why.
        reason: String,
    },
    /// The writer was given pieces out of order or too many or too few entries.
    #[error("{0}")]
    Sequence(String),
    /// `entries.bin` is not a sequence of length-prefixed entries.
    #[error("{ENTRIES_BIN}{reason} at byte {offset}")]
    Entries {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong, as the message's middle (`: entry length 0 is out of range`, ` ends
        /// inside a length`).
        reason: String,
    },
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What an export holds, as the CLI reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The directory.
    pub dir: PathBuf,
    /// Entries exported (the newest checkpoint's size).
    pub entries: u64,
    /// Checkpoints: the newest and the kept older ones.
    pub checkpoints: u64,
    /// Inclusion proof files.
    pub inclusion_proofs: u64,
    /// Consistency proof files.
    pub consistency_proofs: u64,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exported {} entries, {} checkpoints, {} inclusion and {} consistency proofs to {}",
            self.entries,
            self.checkpoints,
            self.inclusion_proofs,
            self.consistency_proofs,
            self.dir.display()
        )
    }
}

/// The newest checkpoint and the key, once [`ExportWriter::start`] checked them.
struct Started {
    key_text: String,
    verifier: NoteVerifier,
    newest: Checkpoint,
}

/// Writes an export directory from the pieces fetched from the ledger, in this order:
/// [`create`](Self::create), [`start`](Self::start), any [`stored_checkpoint`](Self::stored_checkpoint),
/// every [`entry`](Self::entry), any proofs, [`finish`](Self::finish).
pub struct ExportWriter {
    dir: PathBuf,
    started: Option<Started>,
    /// Kept older checkpoints: size and note, by increasing size.
    stored: Vec<(u64, String)>,
    bin: AtomicFile,
    jsonl: AtomicFile,
    entries: u64,
    inclusion_proofs: u64,
    consistency_proofs: u64,
}

impl ExportWriter {
    /// Makes `dir` (which must not exist or be empty) with its `checkpoints/` and `proofs/`.
    pub fn create(dir: &Path) -> Result<Self, ExportError> {
        if dir.exists()
            && fs::read_dir(dir)
                .map_err(io_error("reading", dir))?
                .next()
                .is_some()
        {
            return Err(ExportError::NotEmpty(dir.to_path_buf()));
        }
        for sub in [CHECKPOINTS_DIR, PROOFS_DIR] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_error("creating", &path))?;
        }
        let bin_path = dir.join(ENTRIES_BIN);
        let jsonl_path = dir.join(ENTRIES_JSONL);
        Ok(Self {
            dir: dir.to_path_buf(),
            started: None,
            stored: Vec::new(),
            bin: AtomicFile::create(&bin_path).map_err(io_error("creating", &bin_path))?,
            jsonl: AtomicFile::create(&jsonl_path).map_err(io_error("creating", &jsonl_path))?,
            entries: 0,
            inclusion_proofs: 0,
            consistency_proofs: 0,
        })
    }

    fn write(&self, name: &str, text: &str) -> Result<(), ExportError> {
        let path = self.dir.join(name);
        atomic::write(&path, text.as_bytes()).map_err(io_error("writing", &path))
    }

    fn started(&self) -> Result<&Started, ExportError> {
        self.started.as_ref().ok_or_else(|| {
            ExportError::Sequence("the export has no key and checkpoint yet".to_owned())
        })
    }

    /// Writes `ledger.pub` and `checkpoint`, once the key parses and the checkpoint verifies
    /// with it; returns the checkpoint, whose size is the number of entries to export.
    pub fn start(&mut self, key_text: &str, newest: &str) -> Result<Checkpoint, ExportError> {
        let verifier = NoteVerifier::parse(key_text.trim())
            .map_err(|err| ExportError::Key(err.to_string()))?;
        let checkpoint = Checkpoint::verify_signed(newest, &verifier).map_err(|err| {
            ExportError::Checkpoint {
                which: "the new",
                reason: err.to_string(),
            }
        })?;
        self.write(KEY, key_text)?;
        self.write(CHECKPOINT, newest)?;
        self.started = Some(Started {
            key_text: key_text.to_owned(),
            verifier,
            newest: checkpoint.clone(),
        });
        Ok(checkpoint)
    }

    /// Offers a stored checkpoint note (oldest first, as the ledger lists them): it must
    /// verify; it is kept, as `checkpoints/S.checkpoint`, when its size is at most the newest
    /// checkpoint's and no checkpoint of that size was kept yet. Returns whether it was kept.
    /// More than [`MAX_CHECKPOINT_FILES`] kept is refused: the reader would refuse them.
    pub fn stored_checkpoint(&mut self, note: &str) -> Result<bool, ExportError> {
        let started = self.started()?;
        if self.stored.len() >= MAX_CHECKPOINT_FILES {
            return Err(ExportError::Sequence(format!(
                "more than {MAX_CHECKPOINT_FILES} stored checkpoints: a reader would refuse the export"
            )));
        }
        let cp = Checkpoint::verify_signed(note, &started.verifier).map_err(|err| {
            ExportError::Checkpoint {
                which: "a stored",
                reason: err.to_string(),
            }
        })?;
        if cp.size > started.newest.size || self.stored.iter().any(|(size, _)| *size == cp.size) {
            return Ok(false);
        }
        self.write(&checkpoint_name(cp.size), note)?;
        self.stored.push((cp.size, note.to_owned()));
        Ok(true)
    }

    /// The kept older checkpoints, `(size, note)`, in the order they were kept.
    pub fn stored(&self) -> &[(u64, String)] {
        &self.stored
    }

    /// The number of entries written so far: the index of the next one.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Appends the next entry's canonical bytes to `entries.bin` and its JSON to
    /// `entries.jsonl`.
    pub fn entry(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        let size = self.started()?.newest.size;
        if self.entries >= size {
            return Err(ExportError::Sequence(format!(
                "the newest checkpoint covers {size} entries; entry {} is one too many",
                self.entries
            )));
        }
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| (1..=MAX_ENTRY_BYTES).contains(&(*len as usize)))
            .ok_or_else(|| {
                ExportError::Sequence(format!(
                    "entry {} is {} bytes, not 1 to {MAX_ENTRY_BYTES}",
                    self.entries,
                    bytes.len()
                ))
            })?;
        let bin_path = self.dir.join(ENTRIES_BIN);
        self.bin
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.bin.write_all(bytes))
            .map_err(io_error("writing", &bin_path))?;
        let mut json = match Entry::decode(bytes) {
            Ok(entry) => entry.to_json(),
            Err(err) => serde_json::json!({ "error": err.to_string() }),
        };
        if let Some(object) = json.as_object_mut() {
            object.insert("index".to_owned(), self.entries.into());
        }
        let jsonl_path = self.dir.join(ENTRIES_JSONL);
        writeln!(self.jsonl, "{json}").map_err(io_error("writing", &jsonl_path))?;
        self.entries += 1;
        Ok(())
    }

    /// Writes `proofs/entry-I.proof`.
    pub fn inclusion_proof(&mut self, index: u64, text: &str) -> Result<(), ExportError> {
        self.room_for_a_proof()?;
        self.write(&inclusion_proof_name(index), text)?;
        self.inclusion_proofs += 1;
        Ok(())
    }

    /// Refuses a proof past [`MAX_PROOF_FILES`]: the reader would refuse the export.
    fn room_for_a_proof(&self) -> Result<(), ExportError> {
        if self.inclusion_proofs + self.consistency_proofs >= MAX_PROOF_FILES as u64 {
            return Err(ExportError::Sequence(format!(
                "more than {MAX_PROOF_FILES} proof files: a reader would refuse the export"
            )));
        }
        Ok(())
    }

    /// Writes `proofs/consistency-S.txt`.
    pub fn consistency_proof(&mut self, size1: u64, text: &str) -> Result<(), ExportError> {
        self.room_for_a_proof()?;
        self.write(&consistency_proof_name(size1), text)?;
        self.consistency_proofs += 1;
        Ok(())
    }

    /// Puts `entries.bin` and `entries.jsonl` in place, writes `README.md` and syncs the
    /// directories. Refused when fewer entries than the newest checkpoint covers were given.
    pub fn finish(self) -> Result<ExportSummary, ExportError> {
        let started = self.started()?;
        let size = started.newest.size;
        if self.entries != size {
            return Err(ExportError::Sequence(format!(
                "the newest checkpoint covers {size} entries, the export has {}",
                self.entries
            )));
        }
        let readme = readme(&started.newest, &started.key_text);
        let checkpoints = self.stored.len() as u64 + 1;
        for file in [self.bin, self.jsonl] {
            let path = file.path().to_path_buf();
            file.commit().map_err(io_error("writing", &path))?;
        }
        let path = self.dir.join(README);
        atomic::write(&path, readme.as_bytes()).map_err(io_error("writing", &path))?;
        for sub in [CHECKPOINTS_DIR, PROOFS_DIR] {
            let path = self.dir.join(sub);
            atomic::sync_dir(&path).map_err(io_error("syncing", &path))?;
        }
        Ok(ExportSummary {
            dir: self.dir,
            entries: size,
            checkpoints,
            inclusion_proofs: self.inclusion_proofs,
            consistency_proofs: self.consistency_proofs,
        })
    }
}

/// An export directory, for reading.
pub struct Export {
    dir: PathBuf,
}

impl Export {
    /// The export in `dir`, if `dir` holds something named `entries.bin` (whether it is a
    /// regular file is checked when it is read, so that the refusal names it).
    pub fn open(dir: &Path) -> Option<Self> {
        fs::symlink_metadata(dir.join(ENTRIES_BIN))
            .is_ok()
            .then(|| Self {
                dir: dir.to_path_buf(),
            })
    }

    /// The text of `checkpoint`.
    pub fn newest_checkpoint(&self) -> Result<String, ExportError> {
        read_text(&self.dir.join(CHECKPOINT), MAX_NOTE_BYTES)
    }

    /// Gives each file of `checkpoints/` to `each`, in name order: `(name relative to the
    /// export, text)`.
    pub fn stored_checkpoints<E: From<ExportError>>(
        &self,
        each: impl FnMut(String, String) -> Result<(), E>,
    ) -> Result<(), E> {
        self.texts(CHECKPOINTS_DIR, MAX_CHECKPOINT_FILES, MAX_NOTE_BYTES, each)
    }

    /// Gives each file of `proofs/` to `each`, in name order: `(name relative to the export,
    /// text)`.
    pub fn proofs<E: From<ExportError>>(
        &self,
        each: impl FnMut(String, String) -> Result<(), E>,
    ) -> Result<(), E> {
        self.texts(PROOFS_DIR, MAX_PROOF_FILES, MAX_FILE_BYTES, each)
    }

    /// The text of `checkpoints/S.checkpoint`, the older checkpoint of a consistency proof
    /// from size `S`.
    pub fn checkpoint_of_size(&self, size: u64) -> Result<String, ExportError> {
        read_text(&self.dir.join(checkpoint_name(size)), MAX_NOTE_BYTES)
    }

    /// Reads `entries.bin`, giving each entry's bytes to `each` in order; `each` may stop the
    /// reading with an error.
    pub fn entries<E: From<ExportError>>(
        &self,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = self.dir.join(ENTRIES_BIN);
        let (file, _) = fsutil::open_regular(&path).map_err(ExportError::from)?;
        for entry in EntryReader::new(BufReader::new(file)) {
            each(&entry?)?;
        }
        Ok(())
    }

    /// Reads the files of `sub` one at a time, in name order: at most `max_files` names, each
    /// file at most `max_bytes`.
    fn texts<E: From<ExportError>>(
        &self,
        sub: &str,
        max_files: usize,
        max_bytes: usize,
        mut each: impl FnMut(String, String) -> Result<(), E>,
    ) -> Result<(), E> {
        let dir = self.dir.join(sub);
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(());
        }
        let mut names = fsutil::read_dir_bounded(&dir, max_files).map_err(ExportError::from)?;
        names.retain(|name| !name.as_encoded_bytes().starts_with(b"."));
        names.sort();
        for name in names {
            let text = read_text(&dir.join(&name), max_bytes)?;
            each(format!("{sub}/{}", name.to_string_lossy()), text)?;
        }
        Ok(())
    }
}

/// A text file of an export: a regular file of at most `max` bytes, UTF-8.
fn read_text(path: &Path, max: usize) -> Result<String, ExportError> {
    let bytes = fsutil::read_regular_bounded(path, max as u64)?;
    String::from_utf8(bytes).map_err(|_| ExportError::BadFile {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".to_owned(),
    })
}

/// The entries of `entries.bin`, read from any [`Read`]: each item one entry's bytes, or the
/// first problem (after which the iterator ends).
pub struct EntryReader<R> {
    reader: R,
    offset: u64,
    done: bool,
}

impl<R: Read> EntryReader<R> {
    /// Reads from the start of `entries.bin`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            done: false,
        }
    }

    fn fail(&mut self, reason: String) -> Option<Result<Vec<u8>, ExportError>> {
        self.done = true;
        Some(Err(ExportError::Entries {
            offset: self.offset,
            reason,
        }))
    }
}

impl<R: Read> Iterator for EntryReader<R> {
    type Item = Result<Vec<u8>, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < header.len() {
            match self.reader.read(&mut header[got..]) {
                Ok(0) if got == 0 => {
                    self.done = true;
                    return None;
                }
                Ok(0) => return self.fail(" ends inside a length".to_owned()),
                Ok(n) => got += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.fail(format!(": {err}")),
            }
        }
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 || len > MAX_ENTRY_BYTES {
            return self.fail(format!(": entry length {len} is out of range"));
        }
        let mut bytes = vec![0u8; len];
        if self.reader.read_exact(&mut bytes).is_err() {
            return self.fail(" ends inside the entry".to_owned());
        }
        self.offset += 4 + len as u64;
        Some(Ok(bytes))
    }
}

/// The `README.md` of an export.
fn readme(newest: &Checkpoint, key: &str) -> String {
    format!(
        r#"# DaemonEye audit ledger export

Ledger `{origin}`, {size} entries, hash function {hash}, exported with checkpoint signed at {time}.

## Check it (offline; needs only `daemoneye-cli` and this directory)

1. Compare the key in `ledger.pub` with the one you received from the site by another path
   (for example printed at installation):

       {key}
2. Verify everything at once — every checkpoint's signature, every entry re-hashed into the
   Merkle tree and compared with each signed root, every proof file:

       daemoneye-cli audit verify . --key ledger.pub

   Exit status 0 means all of it verified; 3 means something did not, and the line on stderr
   says what (a changed, added or removed entry, a bad signature, a bad proof).
3. Check one proof on its own, e.g. the newest entry:

       daemoneye-cli audit verify proofs/entry-NNNNNNNNNNNN.proof --key ledger.pub

   It prints the entry it proved.
4. Check that the ledger only grew since a checkpoint you kept from an earlier visit:

       daemoneye-cli audit verify proofs/consistency-NNNNNNNNNNNN.txt --key ledger.pub --old YOUR-OLD-CHECKPOINT

   or ask the site for `daemoneye-cli audit consistency --from YOUR-OLD-CHECKPOINT`.

## Files

| file | what |
| --- | --- |
| `ledger.pub` | the C2SP signed-note verifier key of the ledger (Ed25519) |
| `checkpoint` | the newest checkpoint, a C2SP tlog-checkpoint signed note |
| `checkpoints/SIZE.checkpoint` | every earlier checkpoint the ledger kept, by tree size |
| `entries.bin` | every entry the newest checkpoint covers: for each, its length (4 bytes, big-endian) and its canonical encoding |
| `entries.jsonl` | the same entries decoded, one JSON object per line, for reading (not what is verified) |
| `proofs/entry-INDEX.proof` | C2SP tlog-proof files (the entry, its index, the proof hashes, the checkpoint) |
| `proofs/consistency-SIZE.txt` | a proof that the tree of size SIZE is a prefix of the newest tree |

The tree is RFC 9162's: leaf hash = H(0x00 ‖ entry), node hash = H(0x01 ‖ left ‖ right), with
H = {hash} as the `hash` line of every checkpoint says. The entry encoding is documented in
DaemonEye's `lib/src/ledger/entry.rs` and INTERFACE.md.
"#,
        origin = newest.origin,
        size = newest.size,
        hash = newest.hash,
        time = format_time_ms(newest.time_ms),
        key = key.trim(),
    )
}

#[cfg(test)]
mod tests;
