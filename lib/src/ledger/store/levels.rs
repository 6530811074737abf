//! The per-level tree files `tree-LL.hash`: the hash of complete subtree *j* of level LL
//! (2^LL leaves) at byte 32·*j*, written as subtrees complete and read with `pread`, so that a
//! proof reads O(log n) hashes whatever the ledger's size (see [`super`] for their place in the
//! write order).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::files::open_rw;
use super::{LedgerError, MAX_LEVELS, io_error};
use crate::ledger::Hash;
use crate::ledger::merkle::NodeSource;

/// The per-level hash files: hashes of complete subtrees, read with `pread`.
pub(super) struct Levels {
    dir: PathBuf,
    files: Vec<(File, u64)>,
    /// Bit `l` set: level `l` changed since it was last synced.
    dirty: u64,
}

impl Levels {
    pub(super) fn path(dir: &Path, level: u32) -> PathBuf {
        dir.join(format!("tree-{level:02}.hash"))
    }

    /// Opens every level file that exists (level 0 upwards, stopping at the first missing).
    pub(super) fn open(dir: &Path) -> Result<Self, LedgerError> {
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
    pub(super) fn count(&self, level: u32) -> u64 {
        self.files
            .get(level as usize)
            .map_or(0, |(_, len)| len / HASH_LEN)
    }

    /// Cuts every level to the nodes a tree of `size` leaves completes.
    pub(super) fn truncate(&mut self, size: u64) -> Result<(), LedgerError> {
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
    pub(super) fn append(&mut self, level: u32, hashes: &[u8]) -> Result<(), LedgerError> {
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
    pub(super) fn sync(&mut self) -> Result<(), LedgerError> {
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
