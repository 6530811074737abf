//! The read side of an open ledger: entries, stored checkpoints and proofs, for the agent's
//! `audit` requests.

use std::os::unix::fs::FileExt;

use super::files::frames_at;
use super::{CHECKPOINTS, ENTRIES, INDEX, Ledger, LedgerError, SignedCheckpoint, io_error};
use crate::ledger::frame::{
    CHECKPOINTS_MAGIC, FRAME_HEADER, FrameFault, FrameHeader, MAX_CHECKPOINT_BYTES, MAX_ENTRY_BYTES,
};
use crate::ledger::merkle::{self, ProofError};
use crate::ledger::note::{Checkpoint, ConsistencyProofFile, InclusionProofFile};

impl Ledger {
    /// The frame offset of entry `index`, from `entries.idx`.
    pub(super) fn index_offset(&self, index: u64) -> Result<u64, LedgerError> {
        let path = self.dir.join(INDEX);
        let mut bytes = [0u8; 8];
        self.index
            .read_exact_at(&mut bytes, index * 8)
            .map_err(io_error("reading", &path))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// The header of the frame at `offset` of `entries.log`, its length within the limit.
    pub(super) fn frame_header(&self, offset: u64) -> Result<FrameHeader, LedgerError> {
        let path = self.dir.join(ENTRIES);
        let mut bytes = [0u8; FRAME_HEADER as usize];
        self.entries
            .read_exact_at(&mut bytes, offset)
            .map_err(io_error("reading", &path))?;
        let header = FrameHeader::parse(bytes);
        header
            .check_len(MAX_ENTRY_BYTES)
            .map_err(|reason| LedgerError::Damaged {
                path,
                offset,
                reason,
            })?;
        Ok(header)
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
        let header = self.frame_header(offset)?;
        let path = self.dir.join(ENTRIES);
        let mut payload = vec![0u8; header.len as usize];
        self.entries
            .read_exact_at(&mut payload, offset + FRAME_HEADER)
            .map_err(io_error("reading", &path))?;
        if !header.matches(&payload) {
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
            MAX_CHECKPOINT_BYTES,
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
