//! Building a bundle: the source directory read, validated ([`super::content`]), packed
//! deterministically and signed.
//!
//! A source directory holds `bundle.toml` (a [`Header`]) and the directory of its kind
//! (`rules/`, `config/`, `license/` or `keys/`); a `README.md` beside them is for authors and
//! is not packed. Anything else, a link or a special file anywhere, is refused.

use std::fs;
use std::path::Path;

use super::content::{self, Content};
use super::manifest::{FORMAT, FileEntry, Header, Manifest};
use super::{BundleError, Limits, check_path};
use crate::detection::sandbox::Limits as SandboxLimits;
use crate::fsutil;
use crate::minisign::{PrehashSigner, SecretKey, SignatureFile};

/// The zstd level every bundle is compressed with: part of what makes a build deterministic.
pub const ZSTD_LEVEL: i32 = 10;
/// The mode every entry has.
pub const ENTRY_MODE: u32 = 0o644;
/// The source's description of the bundle.
pub const SOURCE_HEADER: &str = "bundle.toml";
/// The manifest's path, the bundle's first entry.
pub const MANIFEST_PATH: &str = "manifest.toml";

/// A source directory, read.
#[derive(Debug, Clone)]
pub struct Source {
    /// `bundle.toml`.
    pub header: Header,
    /// Every file to pack, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads the source directory `dir`, within `limits`.
pub fn read_source(dir: &Path, limits: &Limits) -> Result<Source, BundleError> {
    let bad = |reason: String| BundleError::Source { reason };
    let shown = |path: &Path| crate::text::quoted(&path.display().to_string()).to_string();
    let header_path = dir.join(SOURCE_HEADER);
    let header_bytes = fsutil::read_regular_bounded(&header_path, 64 * 1024)
        .map_err(|err| bad(err.to_string()))?;
    let header_text = String::from_utf8(header_bytes)
        .map_err(|_| bad(format!("{}: not UTF-8", shown(&header_path))))?;
    let header = Header::parse_source(&header_text)
        .map_err(|reason| bad(format!("{}: {reason}", shown(&header_path))))?;
    let top = read_dir_sorted(dir, limits).map_err(bad)?;
    for (name, kind) in &top {
        let allowed = match name.as_str() {
            SOURCE_HEADER | "README.md" => *kind == EntryKind::File,
            other => other == header.kind.dir() && *kind == EntryKind::Dir,
        };
        if !allowed {
            return Err(bad(format!(
                "{} does not belong in the source of a {} bundle (only {SOURCE_HEADER}, README.md and {}/)",
                shown(&dir.join(name)),
                header.kind,
                header.kind.dir()
            )));
        }
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    walk(dir, header.kind.dir(), limits, &mut files, &mut total).map_err(bad)?;
    for (path, _) in &files {
        check_path(path, header.kind).map_err(bad)?;
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        return Err(bad(format!(
            "{} holds no file",
            shown(&dir.join(header.kind.dir()))
        )));
    }
    Ok(Source { header, files })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Dir,
}

/// The entries of `dir`, sorted, each a regular file or a directory (anything else refused).
fn read_dir_sorted(dir: &Path, limits: &Limits) -> Result<Vec<(String, EntryKind)>, String> {
    let names =
        fsutil::read_dir_bounded(dir, usize::try_from(limits.max_files).unwrap_or(usize::MAX))
            .map_err(|err| err.to_string())?;
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let shown = crate::text::quoted(&path.display().to_string()).to_string();
        let name = name
            .into_string()
            .map_err(|_| format!("{shown}: the name is not UTF-8"))?;
        let meta = fs::symlink_metadata(&path).map_err(|err| format!("{shown}: {err}"))?;
        let kind = if meta.file_type().is_file() {
            EntryKind::File
        } else if meta.file_type().is_dir() {
            EntryKind::Dir
        } else {
            return Err(format!(
                "{shown} is a {}: a bundle holds regular files only",
                fsutil::FileKind::of(meta.file_type())
            ));
        };
        entries.push((name, kind));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn walk(
    root: &Path,
    relative: &str,
    limits: &Limits,
    files: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), String> {
    let dir = root.join(relative);
    for (name, kind) in read_dir_sorted(&dir, limits)? {
        let path = format!("{relative}/{name}");
        match kind {
            EntryKind::Dir => {
                if path.split('/').count() >= super::MAX_PATH_DEPTH {
                    return Err(format!(
                        "{} is deeper than a bundle may go",
                        crate::text::quoted(&path)
                    ));
                }
                walk(root, &path, limits, files, total)?;
            }
            EntryKind::File => {
                let bytes = fsutil::read_regular_bounded(&root.join(&path), limits.max_file_bytes)
                    .map_err(|err| err.to_string())?;
                *total = total.saturating_add(bytes.len() as u64);
                if *total > limits.max_expanded_bytes {
                    return Err(format!(
                        "the files add up to more than {} bytes",
                        limits.max_expanded_bytes
                    ));
                }
                files.push((path, bytes));
                if files.len() as u64 >= limits.max_files {
                    return Err(format!("more than {} files", limits.max_files - 1));
                }
            }
        }
    }
    Ok(())
}

/// The manifest of `source`.
pub fn manifest_of(source: &Source) -> Manifest {
    Manifest {
        format: FORMAT,
        header: source.header.clone(),
        files: source
            .files
            .iter()
            .map(|(path, bytes)| FileEntry {
                path: path.clone(),
                size: bytes.len() as u64,
                blake3: blake3::hash(bytes).to_hex().to_string(),
            })
            .collect(),
    }
}

/// Validates `source` (every file; every rule's fixtures), then packs it: the bundle's bytes
/// and its manifest. `progress` is told each file packed (index, count).
pub fn pack(
    source: &Source,
    sandbox: SandboxLimits,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<u8>, Manifest, Content), BundleError> {
    let content = content::validate(&source.header, &source.files, sandbox)?;
    let manifest = manifest_of(source);
    let manifest_text = manifest.to_toml()?;
    // Checked as the agent will check it, so a bundle that builds is one that parses.
    Manifest::parse(manifest_text.as_bytes())?;
    let archive_error = |err: std::io::Error| BundleError::Archive {
        reason: err.to_string(),
    };
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(archive_error)?;
    // The frame records the content size only when told; leave it out, and the checksum in,
    // the same way every time.
    encoder.include_checksum(true).map_err(archive_error)?;
    {
        let mut tar = tar::Builder::new(&mut encoder);
        tar.mode(tar::HeaderMode::Deterministic);
        append(&mut tar, MANIFEST_PATH, manifest_text.as_bytes()).map_err(archive_error)?;
        let count = source.files.len();
        for (index, (path, bytes)) in source.files.iter().enumerate() {
            append(&mut tar, path, bytes).map_err(archive_error)?;
            progress(index + 1, count);
        }
        tar.finish().map_err(archive_error)?;
    }
    let bytes = encoder.finish().map_err(archive_error)?;
    Ok((bytes, manifest, content))
}

/// One entry: a ustar header with the path, size, mode 0644, mtime 0, uid and gid 0, no
/// user or group names.
fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(bytes.len() as u64);
    header.set_mode(ENTRY_MODE);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, bytes)
}

/// Signs a bundle's bytes with `key`: a prehashed signature whose trusted comment is made
/// from the manifest (never the clock).
pub fn sign(
    bytes: &[u8],
    manifest: &Manifest,
    key: &SecretKey,
) -> Result<SignatureFile, BundleError> {
    let mut signer = PrehashSigner::new(key);
    signer.update(bytes);
    signer
        .finish(
            &manifest.header.trusted_comment(),
            "signature from daemoneye-bundler",
        )
        .map_err(BundleError::Signature)
}

/// Writes `bytes` to `out` and the signature to `out.minisig`, each atomically.
pub fn write(out: &Path, bytes: &[u8], signature: &SignatureFile) -> Result<(), BundleError> {
    let io = |err: fsutil::FsError| BundleError::Source {
        reason: err.to_string(),
    };
    let mut sig_path = out.as_os_str().to_owned();
    sig_path.push(".minisig");
    fsutil::atomic_replace_with_mode(out, bytes, 0o644).map_err(io)?;
    fsutil::atomic_replace_with_mode(Path::new(&sig_path), signature.to_text().as_bytes(), 0o644)
        .map_err(io)?;
    Ok(())
}
