//! The ledger directory's small files and the opening of its framed files: `meta`, the keys,
//! and `entries.log` / `checkpoints.log` checked for their magic and read frame by frame with
//! a torn tail cut (formats in [`super`] and [`crate::ledger::frame`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{LedgerError, META, META_VERSION, PUBLIC_KEY, SIGNING_KEY, Settings, io_error};
use crate::ledger::HashAlg;
use crate::ledger::atomic;
use crate::ledger::frame::{Frame, FrameFault, FrameReader};
use crate::ledger::note::{NoteSigner, NoteVerifier};

/// Opens `path` for reading and writing, creating it (mode 0600) when `create`.
pub(super) fn open_rw(path: &Path, create: bool) -> Result<File, LedgerError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .open(path)
        .map_err(io_error("opening", path))
}

/// Opens a framed file (creating it with its magic when `create`), checks the magic and
/// returns it with its length.
pub(super) fn open_framed(
    path: &Path,
    magic: &[u8; 8],
    create: bool,
) -> Result<(File, u64), LedgerError> {
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
pub(super) fn frames_at(
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
pub(super) fn read_frames(
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

/// Writes a whole file of the ledger directory atomically ([`atomic::write`]).
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), LedgerError> {
    atomic::write(path, contents).map_err(io_error("writing", path))
}

pub(super) fn create(dir: &Path, settings: &Settings) -> Result<(), LedgerError> {
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

pub(super) fn read_meta(path: &Path) -> Result<(HashAlg, String), LedgerError> {
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

pub(super) fn read_signer(dir: &Path) -> Result<NoteSigner, LedgerError> {
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
