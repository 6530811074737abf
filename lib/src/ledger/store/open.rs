//! Opening the ledger: creation on first use and crash recovery, in the steps of [`super`]'s
//! module doc.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::files::{create, open_framed, open_rw, read_frames, read_meta, read_signer};
use super::levels::Levels;
use super::{
    CHECKPOINTS, ENTRIES, INDEX, Ledger, LedgerError, MAX_LEVELS, META, Pending, Recovery,
    Settings, SignedCheckpoint, io_error,
};
use crate::ledger::entry::{Entry, MAX_ENTRY_BYTES};
use crate::ledger::frame::{CHECKPOINTS_MAGIC, ENTRIES_MAGIC, FRAME_HEADER, MAX_CHECKPOINT_BYTES};
use crate::ledger::merkle::{self, Frontier, NodeSource};
use crate::ledger::note::{Checkpoint, NoteError};

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
            MAX_CHECKPOINT_BYTES,
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
            ledger.check_last_stored(start - 1)?
        };
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

    /// Checks the newest entry the derived files hold, whose frame's end is where the replay
    /// starts: the frame reads whole, its checksum matches and it gives the leaf hash stored
    /// in `tree-00.hash`. A constant number of reads; the rest of `entries.log` is the
    /// background check's ([`super::scrub`]). Returns the offset after the frame.
    fn check_last_stored(&self, index: u64) -> Result<u64, LedgerError> {
        let offset = self.index_offset(index)?;
        let header = self.frame_header(offset)?;
        let end = offset + FRAME_HEADER + u64::from(header.len);
        if end > self.entries_len {
            return Err(LedgerError::Damaged {
                path: self.dir.join(ENTRIES),
                offset: end,
                reason: format!(
                    "entries.idx points past the end of the file ({} bytes)",
                    self.entries_len
                ),
            });
        }
        let payload = self.entry(index)?;
        if self.alg.leaf_hash(&payload) != self.levels.node(0, index)? {
            return Err(LedgerError::Damaged {
                path: self.dir.join(ENTRIES),
                offset,
                reason: format!(
                    "entry {index} does not give the leaf hash stored in tree-00.hash: the entry or the tree was changed"
                ),
            });
        }
        Ok(end)
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
}
