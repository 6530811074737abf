//! The `[bundles]` and `[license]` sections: which minisign keys the agent trusts to sign
//! bundles and licenses, the bounds it puts on every bundle it reads, and how long a license's
//! features outlive its expiry.
//!
//! These two sections are the trust anchors of bundle verification, so a config bundle may not
//! set them (see `bundle_layer.rs`): keys change only through keys bundles, and licenses only
//! through license bundles.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Problem};
use crate::text;

/// The most key files one list may name: more is a mistake, not a key rotation.
pub const MAX_KEY_FILES: usize = 64;

const KIB: u64 = 1024;
const GIB: u64 = 1024 * 1024 * 1024;
/// Bounds of `bundles.max_bundle_bytes`.
const BUNDLE_BYTES: (u64, u64) = (KIB, 4 * GIB);
/// Bounds of `bundles.max_expanded_bytes`.
const EXPANDED_BYTES: (u64, u64) = (KIB, 16 * GIB);
/// The largest `bundles.max_files`.
const MAX_FILES_LIMIT: u64 = 1_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The `[bundles]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlesConfig {
    /// Minisign public key files trusted to sign bundles (default
    /// `/etc/daemoneye/keys/bundle.pub`); absolute paths, at most [`MAX_KEY_FILES`]. An empty
    /// list trusts no bundle.
    pub trusted_keys: Vec<PathBuf>,
    /// Minisign public key files trusted to sign license bundles (default
    /// `/etc/daemoneye/keys/license.pub`); the same rules.
    pub license_keys: Vec<PathBuf>,
    /// How far a bundle's `created` may lie in the future, for hosts whose clocks drift
    /// (default 24 h; 0s to 30d). An expired bundle is refused at once: the clock it is
    /// judged by never goes back behind the newest signed time ever accepted.
    pub max_clock_skew: HumanDuration,
    /// Largest bundle file accepted, compressed, in bytes (default 64 MiB; 1 KiB to 4 GiB).
    pub max_bundle_bytes: u64,
    /// Largest size of a bundle's tar stream once decompressed, headers included (default
    /// 256 MiB; 1 KiB to 16 GiB).
    pub max_expanded_bytes: u64,
    /// Most files in one bundle (default 10,000; 1 to 1,000,000).
    pub max_files: u64,
    /// Largest single file inside a bundle (default 16 MiB; 1 to `max_expanded_bytes`).
    pub max_file_bytes: u64,
    /// How often `<data_dir>/inbox/` is checked for dropped bundles (default 2 s; 100ms to
    /// 1h).
    pub inbox_interval: HumanDuration,
}

impl Default for BundlesConfig {
    fn default() -> Self {
        Self {
            trusted_keys: vec![PathBuf::from("/etc/daemoneye/keys/bundle.pub")],
            license_keys: vec![PathBuf::from("/etc/daemoneye/keys/license.pub")],
            max_clock_skew: HumanDuration::new(DAY),
            max_bundle_bytes: 64 * 1024 * 1024,
            max_expanded_bytes: 256 * 1024 * 1024,
            max_files: 10_000,
            max_file_bytes: 16 * 1024 * 1024,
            inbox_interval: HumanDuration::new(Duration::from_secs(2)),
        }
    }
}

impl BundlesConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if let Some(why) = key_files_problem(&self.trusted_keys) {
            return Some(("trusted_keys", why));
        }
        if let Some(why) = key_files_problem(&self.license_keys) {
            return Some(("license_keys", why));
        }
        if let Some(why) = self.max_clock_skew.outside(Duration::ZERO, 30 * DAY) {
            return Some(("max_clock_skew", why));
        }
        if let Some(why) = outside(self.max_bundle_bytes, BUNDLE_BYTES) {
            return Some(("max_bundle_bytes", why));
        }
        if let Some(why) = outside(self.max_expanded_bytes, EXPANDED_BYTES) {
            return Some(("max_expanded_bytes", why));
        }
        if let Some(why) = outside(self.max_files, (1, MAX_FILES_LIMIT)) {
            return Some(("max_files", why));
        }
        if !(1..=self.max_expanded_bytes).contains(&self.max_file_bytes) {
            return Some((
                "max_file_bytes",
                format!(
                    "must be between 1 and bundles.max_expanded_bytes ({})",
                    self.max_expanded_bytes
                ),
            ));
        }
        self.inbox_interval
            .outside(Duration::from_millis(100), Duration::from_secs(3600))
            .map(|why| ("inbox_interval", why))
    }
}

/// Why `value` is not within `min..=max`, if it is not.
fn outside(value: u64, (min, max): (u64, u64)) -> Option<String> {
    (!(min..=max).contains(&value)).then(|| format!("must be between {min} and {max}"))
}

/// Why a list of key files is refused, if it is: too long, or a path that is not absolute
/// (a relative path would make the trusted key depend on the agent's current directory).
fn key_files_problem(paths: &[PathBuf]) -> Option<String> {
    if paths.len() > MAX_KEY_FILES {
        return Some(format!(
            "at most {MAX_KEY_FILES} key files, not {}",
            paths.len()
        ));
    }
    paths.iter().find(|path| !path.is_absolute()).map(|path| {
        format!(
            "must be absolute paths, not {}",
            text::quoted(&path.display().to_string())
        )
    })
}

/// The longest `license.grace`.
const MAX_GRACE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The `[license]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseConfig {
    /// After a license expires, its features keep working this long (default 14 days; 0s to
    /// 365d); then the agent falls back to the free tier. Core monitoring never stops.
    pub grace: HumanDuration,
}

impl Default for LicenseConfig {
    fn default() -> Self {
        Self {
            grace: HumanDuration::new(14 * DAY),
        }
    }
}

impl LicenseConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        // Not `HumanDuration::outside`: humantime prints 365 days as "11months 30days 3h 50m
        // 24s" (its year and month are averages), which reads like a bug in the message.
        (self.grace.get() > MAX_GRACE).then(|| {
            (
                "grace",
                format!("must be between 0s and 365days, not {}", self.grace),
            )
        })
    }
}
