//! The `[ledger]` section: the audit ledger's hash function and checkpoint interval.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Problem};

/// The hash function of the audit ledger's Merkle tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerHash {
    /// BLAKE3 (the default).
    #[default]
    Blake3,
    /// SHA-256.
    Sha256,
}

/// The `[ledger]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The tree's hash function. A ledger keeps the function it was created with; a different
    /// value here later is a start-up error of the ledger, not a silent change.
    pub hash: LedgerHash,
    /// Time between two signed checkpoints (default 5 minutes); more are made on demand.
    pub checkpoint_interval: HumanDuration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            hash: LedgerHash::Blake3,
            checkpoint_interval: HumanDuration::new(Duration::from_secs(300)),
        }
    }
}

impl LedgerConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if self.checkpoint_interval.get() < Duration::from_secs(1) {
            return Some(("checkpoint_interval", "must be at least 1s".to_owned()));
        }
        None
    }
}
