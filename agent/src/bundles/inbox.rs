//! `<data_dir>/inbox/`: where an operator drops `X.bundle` and `X.bundle.minisig` (from a USB
//! stick, a file transfer). A pair is taken when both files are unchanged (size and
//! modification time) between two polls, so that a copy in progress is never read half
//! written; after the decision both move to `applied/` or `refused/`, named
//! `MS-X.bundle` (MS: the decision's time in ms), where the newest [`KEEP`] pairs stay.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use anyhow::Context as _;
use daemoneye_lib::fsutil;

use super::store::ensure_dir;
use super::{Bundles, Decision};

/// The pairs kept in `applied/` and in `refused/`.
pub const KEEP: usize = 20;
/// The most entries an inbox listing reads: more is a mistake, refused rather than listed.
const MAX_ENTRIES: usize = 10_000;
/// The suffix of a bundle file.
const BUNDLE_SUFFIX: &str = ".bundle";
/// The suffix of its signature, after the bundle's name.
const SIG_SUFFIX: &str = ".minisig";

/// What a poll remembers of a file: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = fs::symlink_metadata(path).ok()?;
        meta.file_type().is_file().then(|| Self {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

/// A bundle's and its signature's stamps.
pub type Pair = (Stamp, Stamp);

/// The regular `X.bundle` files in `inbox` (sorted; hidden names, such as a copy tool's
/// temporary files, skipped), each with its signature's stamp when there is one.
pub fn scan(inbox: &Path) -> anyhow::Result<Vec<(String, Stamp, Option<Stamp>)>> {
    let mut found = Vec::new();
    for name in fsutil::read_dir_bounded(inbox, MAX_ENTRIES)? {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(BUNDLE_SUFFIX) {
            continue;
        }
        let Some(bundle) = Stamp::of(&inbox.join(name)) else {
            continue;
        };
        let signature = Stamp::of(&inbox.join(format!("{name}{SIG_SUFFIX}")));
        found.push((name.to_owned(), bundle, signature));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The pairs of `scan` complete and unchanged since `seen` (the previous poll's pairs).
pub fn ready(
    found: &[(String, Stamp, Option<Stamp>)],
    seen: &BTreeMap<String, Pair>,
) -> (Vec<String>, BTreeMap<String, Pair>) {
    let mut ready = Vec::new();
    let mut now_seen = BTreeMap::new();
    for (name, bundle, signature) in found {
        let Some(signature) = signature else { continue };
        let pair = (*bundle, *signature);
        if seen.get(name) == Some(&pair) {
            ready.push(name.clone());
        }
        now_seen.insert(name.clone(), pair);
    }
    (ready, now_seen)
}

/// Moves `name` and its signature to `applied/` or `refused/` as `MS-NAME`, then removes
/// all but the newest [`KEEP`] pairs there.
pub fn file_away(inbox: &Path, name: &str, applied: bool, at_ms: i64) -> anyhow::Result<()> {
    let sub = inbox.join(if applied { "applied" } else { "refused" });
    ensure_dir(&sub)?;
    for file in [name.to_owned(), format!("{name}{SIG_SUFFIX}")] {
        let to = sub.join(format!("{at_ms}-{file}"));
        fs::rename(inbox.join(&file), &to).with_context(|| {
            format!("moving {} to {}", inbox.join(&file).display(), to.display())
        })?;
    }
    fsutil::fsync_dir(&sub)?;
    fsutil::fsync_dir(inbox)?;
    let mut kept: Vec<(i64, String)> = fsutil::read_dir_bounded(&sub, MAX_ENTRIES)?
        .into_iter()
        .filter_map(|name| {
            let name = name.into_string().ok()?;
            let (ms, _) = name.split_once('-')?;
            (name.ends_with(BUNDLE_SUFFIX)).then_some((ms.parse().ok()?, name))
        })
        .collect();
    kept.sort();
    let excess = kept.len().saturating_sub(KEEP);
    for (_, old) in kept.iter().take(excess) {
        for file in [old.clone(), format!("{old}{SIG_SUFFIX}")] {
            let path = sub.join(&file);
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                return Err(err).with_context(|| format!("removing {}", path.display()));
            }
        }
    }
    Ok(())
}

impl Bundles {
    /// Looks at the inbox (see this module's documentation): installs each pair that is complete and was
    /// unchanged since the previous poll, then moves it to `applied/` or `refused/`.
    pub fn poll_inbox(&mut self, now_ms: i64) -> Vec<Decision> {
        if self.broken.is_some() {
            // The files wait in the inbox until the state is repaired.
            return Vec::new();
        }
        let found = match scan(&self.inbox) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(inbox = %self.inbox.display(), "bundle inbox: {err:#}");
                return Vec::new();
            }
        };
        let (ready, seen) = ready(&found, &self.inbox_seen);
        self.inbox_seen = seen;
        self.inbox_stuck
            .retain(|name, pair| self.inbox_seen.get(name) == Some(pair));
        let mut decisions = Vec::new();
        for name in ready {
            if self.inbox_stuck.contains_key(&name) {
                continue;
            }
            let decision = self.install_file(&self.inbox.join(&name), "inbox", now_ms);
            if let Err(err) = file_away(&self.inbox, &name, decision.applied(), now_ms) {
                tracing::warn!(file = %name, "bundle inbox: {err:#}");
                if let Some(pair) = self.inbox_seen.get(&name) {
                    self.inbox_stuck.insert(name.clone(), *pair);
                }
            }
            self.inbox_seen.remove(&name);
            decisions.push(decision);
        }
        decisions
    }
}
