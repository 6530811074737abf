//! `bundles/store/NAME/VERSION/` and `bundles/staging/`: writing a verified bundle's files so
//! that they are whole on disk before `state.json` names them, reading them back with their
//! hashes checked, and removing what `state.json` no longer names.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use daemoneye_lib::bundle::{self, Bundle, Manifest, Verified};
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
        Err(err)
            if err.kind() == std::io::ErrorKind::AlreadyExists
                && fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir()) =>
        {
            Ok(())
        }
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
    // The verified bundle file itself is what is kept (its files are read back out of it,
    // every hash checked): three files to sync, however many the bundle carries. The
    // manifest beside it is for people reading the store.
    write_new(&staging.join(BUNDLE), bundle_bytes)?;
    write_new(&staging.join(SIGNATURE), signature_bytes)?;
    write_new(&staging.join(MANIFEST), manifest.as_bytes())?;
    fsutil::fsync_dir(staging)?;
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

/// Reads `store/NAME/VERSION` back: the stored bundle file, whose SHA-256 must be `sha256`
/// (what `state.json` recorded when it was applied), unpacked with every entry checked against
/// its manifest (lib's `unpack_checked`), which must name `name` and `version`. `Err` is one
/// line saying what is damaged.
pub fn read(
    bundles: &Path,
    name: &str,
    version: u64,
    sha256: &str,
    limits: &bundle::Limits,
) -> Result<Stored, String> {
    let dir = version_dir(bundles, name, version);
    let path = dir.join(BUNDLE);
    // The stored file is the agent's own, verified when applied: a lowered
    // `bundles.max_bundle_bytes` must not make it look damaged, so the bound is generous.
    let bytes =
        fsutil::read_regular_bounded(&path, limits.max_bundle_bytes.max(STORED_BUNDLE_BYTES))
            .map_err(|err| err.to_string())?;
    let actual = daemoneye_lib::text::hex(&bundle::open::sha256(&bytes));
    if actual != sha256 {
        return Err(format!(
            "{} has SHA-256 {actual}, the state recorded {sha256}",
            path.display()
        ));
    }
    let unpack_limits = bundle::Limits {
        max_bundle_bytes: u64::MAX,
        max_expanded_bytes: limits.max_expanded_bytes.max(STORED_EXPANDED_BYTES),
        max_files: limits.max_files.max(STORED_FILES),
        max_file_bytes: limits.max_file_bytes.max(STORED_FILE_BYTES),
    };
    let (manifest, files) = bundle::open::unpack_checked(&bytes, &unpack_limits, |manifest| {
        if manifest.header.name.as_str() == name && manifest.header.version == version {
            Ok(())
        } else {
            Err(bundle::BundleError::BadManifest {
                reason: format!(
                    "it names {} version {}",
                    manifest.header.name, manifest.header.version
                ),
            })
        }
    })
    .map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(Stored { manifest, files })
}

/// Bounds of reading a stored bundle back, whatever the configuration says now (the largest
/// values `[bundles]` accepts).
const STORED_BUNDLE_BYTES: u64 = 4 << 30;
const STORED_EXPANDED_BYTES: u64 = 16 << 30;
const STORED_FILES: u64 = 1_000_000;
const STORED_FILE_BYTES: u64 = 16 << 30;

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
        // A link is removed as a link, never followed: nothing outside the store is touched.
        let real_dir = fs::symlink_metadata(&name_dir).is_ok_and(|meta| meta.is_dir());
        if kept.is_empty() || !real_dir {
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
