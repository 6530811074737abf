//! `bundles/store/NAME/VERSION/` and `bundles/staging/`: writing a verified bundle's files so
//! that they are whole on disk before `state.json` names them, reading them back with their
//! hashes checked, and removing what `state.json` no longer names.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use daemoneye_lib::bundle::manifest::MAX_MANIFEST_BYTES;
use daemoneye_lib::bundle::{Bundle, Manifest, Verified};
use daemoneye_lib::fsutil;

use super::state::State;

/// The manifest's name in a stored version.
pub const MANIFEST: &str = "manifest.toml";
/// The original bundle file in a stored version.
pub const BUNDLE: &str = "bundle";
/// The original signature file in a stored version.
pub const SIGNATURE: &str = "bundle.minisig";

/// Distinguishes staging directories made by one process.
static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates `dir` with mode 0700 if it does not exist (its parent must).
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                fsutil::fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(err) => Err(err).with_context(|| format!("creating {}", dir.display())),
    }
}

/// The directory of `name` at `version` in the store.
pub fn version_dir(bundles: &Path, name: &str, version: u64) -> PathBuf {
    bundles.join("store").join(name).join(version.to_string())
}

/// Writes `verified` (its files, its manifest, the original bundle and signature bytes) into
/// a fresh staging directory, every file and directory synced, then renames it to
/// `store/NAME/VERSION` (replacing a leftover of an interrupted apply, which `state.json`
/// cannot name: its version is above every accepted one) and syncs the parents. On an error
/// the staging directory is removed and the store is as it was.
pub fn put(
    bundles: &Path,
    verified: &Verified<Bundle>,
    bundle_bytes: &[u8],
    signature_bytes: &[u8],
) -> anyhow::Result<()> {
    let bundle = verified.get();
    let header = &bundle.manifest.header;
    let name = header.name.as_str();
    let staging = bundles.join("staging").join(format!(
        "{name}-{}-{}-{}",
        header.version,
        std::process::id(),
        STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_staging(&staging, verified, bundle_bytes, signature_bytes)
        .and_then(|()| promote(bundles, &staging, name, header.version));
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn write_staging(
    staging: &Path,
    verified: &Verified<Bundle>,
    bundle_bytes: &[u8],
    signature_bytes: &[u8],
) -> anyhow::Result<()> {
    let bundle = verified.get();
    let manifest = bundle.manifest.to_toml().context("encoding the manifest")?;
    DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .with_context(|| format!("creating {}", staging.display()))?;
    write_new(&staging.join(MANIFEST), manifest.as_bytes())?;
    write_new(&staging.join(BUNDLE), bundle_bytes)?;
    write_new(&staging.join(SIGNATURE), signature_bytes)?;
    let mut dirs = vec![staging.to_path_buf()];
    for (path, bytes) in &bundle.files {
        // The lib checked the path (`check_path`: relative, no `..`, plain components);
        // create_new and O_NOFOLLOW below keep a write inside the fresh directory anyway.
        let target = staging.join(path);
        let mut parent = staging.to_path_buf();
        let parts: Vec<&str> = path.split('/').collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            parent.push(part);
            if !dirs.contains(&parent) {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
                dirs.push(parent.clone());
            }
        }
        write_new(&target, bytes)?;
    }
    // Deepest first, so that each directory's entries are durable before its parent's.
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    for dir in &dirs {
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

/// Creates `path` (never an existing file, never through a link) with mode 0600, writes
/// `bytes` and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn promote(bundles: &Path, staging: &Path, name: &str, version: u64) -> anyhow::Result<()> {
    let name_dir = bundles.join("store").join(name);
    ensure_dir(&name_dir)?;
    let target = name_dir.join(version.to_string());
    if fs::symlink_metadata(&target).is_ok() {
        fs::remove_dir_all(&target)
            .with_context(|| format!("removing the leftover {}", target.display()))?;
    }
    fs::rename(staging, &target)
        .with_context(|| format!("renaming {} to {}", staging.display(), target.display()))?;
    fsutil::fsync_dir(&name_dir)?;
    if let Some(parent) = staging.parent() {
        fsutil::fsync_dir(parent)?;
    }
    Ok(())
}

/// A stored version read back: its manifest and its files, each checked against the
/// manifest's size and BLAKE3.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The manifest written at apply time.
    pub manifest: Manifest,
    /// The files, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads `store/NAME/VERSION` back; `Err` is one line saying what is damaged.
pub fn read(
    bundles: &Path,
    name: &str,
    version: u64,
    max_file_bytes: u64,
) -> Result<Stored, String> {
    let dir = version_dir(bundles, name, version);
    let manifest_bytes = fsutil::read_regular_bounded(&dir.join(MANIFEST), MAX_MANIFEST_BYTES)
        .map_err(|err| err.to_string())?;
    let manifest = Manifest::parse(&manifest_bytes)
        .map_err(|err| format!("{}: {err}", dir.join(MANIFEST).display()))?;
    if manifest.header.name.as_str() != name || manifest.header.version != version {
        return Err(format!(
            "{} names {} version {}",
            dir.join(MANIFEST).display(),
            manifest.header.name,
            manifest.header.version
        ));
    }
    let mut files = Vec::with_capacity(manifest.files.len());
    for listed in &manifest.files {
        let path = dir.join(&listed.path);
        // The manifest is the agent's own file, written from a verified bundle; its size
        // stands so that lowering `bundles.max_file_bytes` does not make an applied bundle
        // look damaged. The bound still stops a read past what the file should hold.
        let bytes = fsutil::read_regular_bounded(&path, max_file_bytes.max(listed.size))
            .map_err(|err| err.to_string())?;
        let hash = blake3::hash(&bytes).to_hex();
        if bytes.len() as u64 != listed.size || hash.as_str() != listed.blake3 {
            return Err(format!(
                "{} differs from the manifest (BLAKE3 {hash}, expected {})",
                path.display(),
                listed.blake3
            ));
        }
        files.push((listed.path.clone(), bytes));
    }
    Ok(Stored { manifest, files })
}

/// Removes what an interrupted apply or rollback left: everything in `staging/`, every store
/// directory `state` does not name, and temporary files of `atomic_replace` in `bundles/`.
/// Returns what it removed, for the log.
pub fn prune(bundles: &Path, state: &State) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut remove = |path: PathBuf| -> anyhow::Result<()> {
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("inspecting {}", path.display()))?;
        if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
        removed.push(path);
        Ok(())
    };
    let staging = bundles.join("staging");
    for entry in list(&staging)? {
        remove(staging.join(entry))?;
    }
    let store = bundles.join("store");
    for name in list(&store)? {
        let name_dir = store.join(&name);
        let kept = name
            .to_str()
            .map(|name| state.kept_versions(name))
            .unwrap_or_default();
        if kept.is_empty() || !name_dir.is_dir() {
            remove(name_dir)?;
            continue;
        }
        for version in list(&name_dir)? {
            // Only the canonical spelling of a kept version stays ("07" is not 7).
            let keep = version
                .to_str()
                .and_then(|v| v.parse::<u64>().ok().filter(|n| n.to_string() == v))
                .is_some_and(|v| kept.contains(&v));
            if !keep {
                remove(name_dir.join(version))?;
            }
        }
    }
    for entry in list(bundles)? {
        let leftover = entry
            .to_str()
            .is_some_and(|e| e.starts_with('.') && e.ends_with(".tmp"));
        if leftover {
            remove(bundles.join(entry))?;
        }
    }
    if !removed.is_empty() {
        fsutil::fsync_dir(bundles)?;
        fsutil::fsync_dir(&store)?;
        fsutil::fsync_dir(&staging)?;
    }
    Ok(removed)
}

/// The entries of `dir` (none if it does not exist).
fn list(dir: &Path) -> anyhow::Result<Vec<std::ffi::OsString>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(fsutil::read_dir_bounded(dir, 100_000)?)
}
