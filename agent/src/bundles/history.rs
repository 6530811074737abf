//! `bundles/history.jsonl`: one JSON object per decision, appended and synced, kept under
//! [`MAX_BYTES`] by rewriting it (atomically) with its newest half.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use daemoneye_lib::fsutil;
use daemoneye_lib::ipc::proto::{BundleAction, BundleDecision};
use serde::{Deserialize, Serialize};

/// Past this size the file is cut to its newest half.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// The largest file read: the bound plus one line (a line is at most a few KiB, but a
/// reason may be long).
const READ_LIMIT: u64 = 2 * MAX_BYTES;

/// One line of the file: the fields of a [`BundleDecision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    action: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_version: Option<u64>,
    kind: String,
    sha256: String,
    reason: String,
    step: String,
    source: String,
    at_ms: i64,
    signer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    restart_needed: Vec<String>,
}

fn action_name(action: i32) -> &'static str {
    match BundleAction::try_from(action) {
        Ok(BundleAction::Applied) => "applied",
        Ok(BundleAction::Refused) => "refused",
        Ok(BundleAction::RolledBack) => "rolled_back",
        _ => "unspecified",
    }
}

fn action_of(name: &str) -> BundleAction {
    match name {
        "applied" => BundleAction::Applied,
        "refused" => BundleAction::Refused,
        "rolled_back" => BundleAction::RolledBack,
        _ => BundleAction::Unspecified,
    }
}

impl From<&BundleDecision> for Line {
    fn from(d: &BundleDecision) -> Self {
        Self {
            action: action_name(d.action).to_owned(),
            name: d.name.clone(),
            version: d.version,
            from_version: d.from_version,
            kind: d.kind.clone(),
            sha256: d.sha256.clone(),
            reason: d.reason.clone(),
            step: d.step.clone(),
            source: d.source.clone(),
            at_ms: d.at_ms,
            signer: d.signer.clone(),
            restart_needed: d.restart_needed.clone(),
        }
    }
}

impl From<Line> for BundleDecision {
    fn from(line: Line) -> Self {
        Self {
            action: action_of(&line.action) as i32,
            name: line.name,
            version: line.version,
            from_version: line.from_version,
            kind: line.kind,
            sha256: line.sha256,
            reason: line.reason,
            step: line.step,
            source: line.source,
            at_ms: line.at_ms,
            signer: line.signer,
            restart_needed: line.restart_needed,
        }
    }
}

/// Appends `decision` to the history file `path` and syncs it; cuts the file to its newest
/// half once it passes [`MAX_BYTES`].
pub fn append(path: &Path, decision: &BundleDecision) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(&Line::from(decision)).context("encoding a history line")?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A crash may have cut the last line short: end it first, so that this line is whole
    // (the torn one is skipped by `read`).
    let len = file
        .metadata()
        .with_context(|| format!("inspecting {}", path.display()))?
        .len();
    let mut last = [b'\n'];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if last != [b'\n'] {
        line.insert(0, b'\n');
    }
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("appending to {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("inspecting {}", path.display()))?
        .len();
    if size > MAX_BYTES {
        let bytes = fsutil::read_regular_bounded(path, READ_LIMIT)?;
        let half = bytes.len() / 2;
        // The first whole line after the middle.
        let start = bytes
            .get(half..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map_or(bytes.len(), |pos| half + pos + 1);
        fsutil::atomic_replace(path, bytes.get(start..).unwrap_or_default())?;
    }
    Ok(())
}

/// Every decision in the file, oldest first; a missing file is an empty history, and a line
/// that does not parse (the torn end of a write a crash interrupted) is skipped.
pub fn read(path: &Path) -> Result<Vec<BundleDecision>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = fsutil::read_regular_bounded(path, READ_LIMIT).map_err(|err| err.to_string())?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Line>(line).ok())
        .map(BundleDecision::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_its_newest_half_past_the_bound_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        assert_eq!(read(&path).unwrap(), Vec::new());
        let decision = |at_ms: i64| BundleDecision {
            action: BundleAction::Refused as i32,
            name: "base".to_owned(),
            version: Some(7),
            reason: "x".repeat(1000),
            step: "version".to_owned(),
            source: "inbox".to_owned(),
            at_ms,
            ..BundleDecision::default()
        };
        let count = 1500;
        for at_ms in 0..count {
            append(&path, &decision(at_ms)).unwrap();
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= MAX_BYTES, "{size}");
        let kept = read(&path).unwrap();
        assert!(kept.len() > 400 && kept.len() < 1100, "{}", kept.len());
        assert_eq!(kept.last(), Some(&decision(count - 1)));
        let first = kept.first().unwrap().at_ms;
        assert!(kept.iter().zip(first..).all(|(d, at)| d.at_ms == at));

        // A write a crash cut short leaves a torn last line: it is skipped.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"action\":\"appl").unwrap();
        assert_eq!(read(&path).unwrap().len(), kept.len());
        append(&path, &decision(count)).unwrap();
        let after = read(&path).unwrap();
        assert_eq!(after.len(), kept.len() + 1);
        assert_eq!(after.last(), Some(&decision(count)));
    }
}
