//! Replacing a whole file so that a crash leaves the old contents or the new, never a mix
//! nor an empty file.
//!
//! [`atomic_replace`], step by step:
//! 1. create a temporary file in the target's directory (a rename is atomic only within one
//!    file system) named `.NAME.PID.N.tmp`, with `O_CREAT | O_EXCL`, so that it never opens a
//!    file or follows a link somebody put there first (another name is tried if one exists);
//! 2. write the bytes and `fsync` the file: its data is on disk before any name points to it;
//! 3. `rename` it over the target: readers see the old file or the new one, whole;
//! 4. `fsync` the directory, so that the rename itself survives a crash.
//!
//! On a failure before the rename the temporary file is removed, and the target is untouched.
//! A crash between steps 1 and 3 can leave a `.NAME.*.tmp` behind; nothing reads those.
//!
//! This module does I/O (it is the one place that does this dance); it reads no clock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::text;

/// The mode [`atomic_replace`] gives a new file: the owner's only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Names tried for the temporary file before giving up.
const TEMP_ATTEMPTS: u64 = 64;

/// A step of [`atomic_replace`] or [`fsync_dir`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", text::quoted(&.path.display().to_string()))]
pub struct FsError {
    /// What was being done: `creating`, `writing`, `syncing`, `renaming into place`,
    /// `syncing the directory`.
    pub step: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The system's error.
    pub source: io::Error,
}

impl FsError {
    fn at(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| Self {
            step,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Replaces `path` with a file holding `bytes`, atomically and durably (see the module doc),
/// with mode 0600.
pub fn atomic_replace(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    atomic_replace_with_mode(path, bytes, PRIVATE_MODE)
}

/// [`atomic_replace`] with the new file's `mode` (before the umask).
pub fn atomic_replace_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let dir = parent_dir(path);
    let (tmp, mut file) = create_temp(path, dir, mode)?;
    let written = file
        .write_all(bytes)
        .map_err(FsError::at("writing", &tmp))
        .and_then(|()| file.sync_all().map_err(FsError::at("syncing", &tmp)))
        .and_then(|()| fs::rename(&tmp, path).map_err(FsError::at("renaming into place", path)));
    if let Err(err) = written {
        // The temporary file is ours and useless now; a failure to remove it changes nothing
        // for the caller, whose error is the one above.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    fsync_dir(dir)
}

/// `fsync`s the directory `dir`, so that the names created, renamed or removed in it survive
/// a crash.
pub fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::at("syncing the directory", dir))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates a fresh temporary file next to `path`, never opening an existing one.
fn create_temp(path: &Path, dir: &Path, mode: u32) -> Result<(PathBuf, File), FsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last = Some((tmp, err)),
            Err(err) => return Err(FsError::at("creating", &tmp)(err)),
        }
    }
    let (tmp, err) =
        last.unwrap_or_else(|| (dir.to_path_buf(), io::ErrorKind::AlreadyExists.into()));
    Err(FsError::at("creating", &tmp)(err))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let check = |bytes: &[u8]| {
            atomic_replace(&path, bytes).unwrap();
            assert_eq!(fs::read(&path).unwrap(), bytes);
            assert_eq!(names(dir.path()), ["state"]);
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, PRIVATE_MODE);
        };
        check(b"first");
        check(b"");
        check(&[7; 100_000]);
    }

    #[test]
    fn replacing_a_link_replaces_the_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        atomic_replace(&link, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn a_failed_replace_leaves_the_target_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails after the temporary file exists.
        let path = dir.path().join("busy");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        let err = atomic_replace(&path, b"new").unwrap_err();
        assert_eq!(err.step, "renaming into place");
        assert_eq!(err.path, path);
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(names(dir.path()), ["busy"]);
    }

    #[test]
    fn errors_name_the_step_and_the_path_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no\nsuch").join("file");
        let err = atomic_replace(&missing, b"x").unwrap_err();
        assert_eq!(err.step, "creating");
        let message = err.to_string();
        assert!(message.starts_with("creating \""), "{message}");
        assert!(message.contains("no\\nsuch"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        let err = fsync_dir(&dir.path().join("absent")).unwrap_err();
        assert_eq!(err.step, "syncing the directory");
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("state")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/state")), Path::new("/"));
        assert_eq!(parent_dir(Path::new("a/state")), Path::new("a"));
    }
}
