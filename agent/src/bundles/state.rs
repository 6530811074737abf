//! `bundles/state.json`: what is active, what may be rolled back to, and what may never be
//! installed again. See the parent module's documentation for the format.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use anyhow::Context as _;
use daemoneye_lib::bundle::{KeyState, Kind};
use daemoneye_lib::fsutil;
use serde::{Deserialize, Serialize};

/// The state format this code writes, and the only one it reads.
pub const FORMAT: u32 = 1;
/// The largest state file read: a few hundred bytes per bundle name, so far more than any site
/// has; a larger file is damage, not a state.
pub const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// One applied version of a bundle, as `state.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    /// The version (also its directory under `store/NAME/`).
    pub version: u64,
    /// The key that signed it (minisign's upper-case hex key id).
    pub signer: String,
    /// When it became active (applied, or restored by a rollback), ms since the epoch.
    pub applied_at_ms: i64,
    /// Lower-case hex SHA-256 of the bundle file.
    pub sha256: String,
    /// The manifest's `created`, seconds since the epoch.
    pub created: i64,
    /// The manifest's `expires`, seconds since the epoch.
    pub expires: i64,
    /// The license feature a rules bundle needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_license: Option<String>,
    /// What it carries, for `bundle status` ("12 rules in 3 files").
    pub summary: String,
}

/// A bundle name's entry: the version in force and the one a rollback returns to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The kind every version of this name has.
    pub kind: Kind,
    /// The version in force.
    pub current: Applied,
    /// The version before it, kept on disk for one rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Applied>,
}

/// A change of what is active whose ledger entry is not recorded yet. It is written into
/// `state.json` by the same atomic replacement that makes the change, so that a crash between
/// the switch and the ledger (or the history) cannot lose the record: the agent records it
/// (and adds the history line if it is missing) at its next look, and then drops it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unrecorded {
    /// `applied` or `rolled_back`.
    pub action: String,
    /// The bundle's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The version now active.
    pub version: u64,
    /// A rollback's version before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u64>,
    /// Lower-case hex SHA-256 of the bundle file (empty for a rollback).
    pub sha256: String,
    /// The signing key's id.
    pub signer: String,
    /// When it happened (also the entry's `applied_at_ms`).
    pub at_ms: i64,
    /// `cli` or `inbox`.
    pub source: String,
    /// The decision's notes.
    pub reason: String,
}

/// The whole of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`FORMAT`].
    pub format: u32,
    /// The active bundles by name.
    #[serde(default)]
    pub active: BTreeMap<String, Entry>,
    /// The highest version ever accepted per name, never lowered (a rollback included).
    #[serde(default)]
    pub highest: BTreeMap<String, u64>,
    /// The newest `created` ever accepted, seconds since the epoch.
    #[serde(default)]
    pub newest_signed: i64,
    /// The keys keys bundles added and revoked.
    #[serde(default)]
    pub keys: KeyState,
    /// Changes not recorded in the ledger yet, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecorded: Vec<Unrecorded>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            format: FORMAT,
            active: BTreeMap::new(),
            highest: BTreeMap::new(),
            newest_signed: 0,
            keys: KeyState::default(),
            unrecorded: Vec::new(),
        }
    }
}

impl State {
    /// Reads `path`; a missing file is the empty state. A file that cannot be read, is not
    /// a state of [`FORMAT`] or is damaged is an error naming it: the agent never starts over
    /// silently, because that would forget which versions it must refuse.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => {
                return Err(err).with_context(|| format!("bundle state {}", path.display()));
            }
            Ok(_) => {}
        }
        let bytes = fsutil::read_regular_bounded(path, MAX_STATE_BYTES)
            .with_context(|| format!("bundle state {}", path.display()))?;
        Self::parse(&bytes).map_err(|reason| {
            anyhow::anyhow!(
                "bundle state {} is damaged: {reason}; it is left untouched (restore it from a \
                 backup, or move it away to start with no bundle applied)",
                path.display()
            )
        })
    }

    /// Parses the bytes of a state file.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|err| format!("not JSON: {err}"))?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(format!(
                "format {}, this agent reads format {FORMAT} only",
                format.map_or_else(|| "missing".to_owned(), |f| f.to_string())
            ));
        }
        let state: Self = serde_json::from_value(value).map_err(|err| err.to_string())?;
        for (name, entry) in &state.active {
            let highest = state.highest.get(name).copied().unwrap_or(0);
            if entry.current.version > highest
                || entry
                    .previous
                    .as_ref()
                    .is_some_and(|p| p.version >= entry.current.version)
            {
                return Err(format!("{name}: the versions do not add up"));
            }
        }
        Ok(state)
    }

    /// Replaces `path` with this state, atomically and durably: the one step that switches
    /// what is active.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).context("encoding the bundle state")?;
        bytes.push(b'\n');
        fsutil::atomic_replace(path, &bytes)
            .with_context(|| format!("writing bundle state {}", path.display()))
    }

    /// The versions of `name` that must stay in the store.
    pub fn kept_versions(&self, name: &str) -> Vec<u64> {
        self.active.get(name).map_or_else(Vec::new, |entry| {
            std::iter::once(entry.current.version)
                .chain(entry.previous.as_ref().map(|p| p.version))
                .collect()
        })
    }
}
