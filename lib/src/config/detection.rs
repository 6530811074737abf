//! The `[detection]` and `[storage]` sections: how rules run and how long scans are kept.
//! Parsed in every binary (so that all accept the same files); used by the agent and the CLI.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Problem};

/// The largest `detection.max_rows`: a rule's rows are held in memory and become alerts.
const MAX_ROWS_LIMIT: u64 = 1_000_000;
/// The smallest `detection.max_memory`: the newest scan of a large host must fit.
const MIN_MEMORY: u64 = 8 * 1024 * 1024;

/// The `[detection]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// Time one rule may run on one scan before it is stopped and marked degraded (default 1 s).
    pub rule_timeout: HumanDuration,
    /// Rows one rule may return per scan; the rest are dropped and the alert says so (10,000).
    pub max_rows: u64,
    /// Heap the SQL engine may use, in bytes (default 128 MiB); a query that needs more fails.
    pub max_memory: u64,
    /// Window of rules that do not name one in their `dedup` (default 1 h).
    pub dedup_window: HumanDuration,
    /// Whether the built-in rule pack is loaded (default true).
    pub builtin_rules: bool,
    /// More rule files, or directories of `*.toml` rule files, loaded beside the built-in pack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PathBuf>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            rule_timeout: HumanDuration::new(Duration::from_secs(1)),
            max_rows: 10_000,
            max_memory: 128 * 1024 * 1024,
            dedup_window: HumanDuration::new(Duration::from_secs(3600)),
            builtin_rules: true,
            rules: Vec::new(),
        }
    }
}

impl DetectionConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if let Some(why) = self
            .rule_timeout
            .outside(Duration::from_millis(1), Duration::from_secs(600))
        {
            return Some(("rule_timeout", why));
        }
        if !(1..=MAX_ROWS_LIMIT).contains(&self.max_rows) {
            return Some((
                "max_rows",
                format!("must be between 1 and {MAX_ROWS_LIMIT}"),
            ));
        }
        if self.max_memory < MIN_MEMORY {
            return Some(("max_memory", format!("must be at least {MIN_MEMORY}")));
        }
        if let Some(why) = self
            .dedup_window
            .outside(Duration::from_secs(1), Duration::from_secs(366 * 24 * 3600))
        {
            return Some(("dedup_window", why));
        }
        None
    }
}

/// The `[storage]` section: retention of the event store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Scans kept; older ones are deleted with their snapshots and events (default 1,000).
    pub retention_scans: u64,
    /// Age after which a scan is deleted (default 7 days).
    pub retention_age: HumanDuration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            retention_scans: 1000,
            retention_age: HumanDuration::new(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

impl StorageConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if self.retention_scans < 2 {
            // Process events are the difference between two scans.
            return Some(("retention_scans", "must be at least 2".to_owned()));
        }
        if let Some(why) = self.retention_age.outside(
            Duration::from_secs(60),
            Duration::from_secs(3660 * 24 * 3600),
        ) {
            return Some(("retention_age", why));
        }
        None
    }
}
