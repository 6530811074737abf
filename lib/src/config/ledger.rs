//! The `[ledger]` section: the audit ledger's hash function, checkpoint interval and the rate
//! of its background check.

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
    /// The most bytes per second procmond's background check of the whole ledger reads
    /// (default 8 MiB/s; at least 64 KiB/s). See `lib/src/ledger/store/scrub.rs`.
    pub verify_bytes_per_sec: u64,
    /// Time from the end of one background check to the start of the next (default 1 hour;
    /// at least 1s). A check also starts whenever procmond starts.
    pub verify_interval: HumanDuration,
}

/// The lowest `verify_bytes_per_sec`: below it a large ledger would take days to check.
pub const MIN_VERIFY_BYTES_PER_SEC: u64 = 64 * 1024;

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            hash: LedgerHash::Blake3,
            checkpoint_interval: HumanDuration::new(Duration::from_secs(300)),
            verify_bytes_per_sec: 8 * 1024 * 1024,
            verify_interval: HumanDuration::new(Duration::from_secs(3600)),
        }
    }
}

impl LedgerConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if let Some(why) = self
            .checkpoint_interval
            .outside(Duration::from_secs(1), Duration::from_secs(24 * 3600))
        {
            return Some(("checkpoint_interval", why));
        }
        if self.verify_bytes_per_sec < MIN_VERIFY_BYTES_PER_SEC {
            return Some((
                "verify_bytes_per_sec",
                format!("must be at least {MIN_VERIFY_BYTES_PER_SEC}"),
            ));
        }
        if let Some(why) = self
            .verify_interval
            .outside(Duration::from_secs(1), Duration::from_secs(30 * 24 * 3600))
        {
            return Some(("verify_interval", why));
        }
        None
    }
}
