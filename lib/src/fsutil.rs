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
//! # Reading untrusted files
//!
//! [`read_regular_bounded`] and [`open_regular`] are the one way in for a file somebody else
//! made (an export an auditor received, a bundle from a site). Step by step:
//! 1. `stat` the path (following links): anything but a regular file (a FIFO, a device such
//!    as `/dev/zero`, a socket, a directory) is refused before it is opened, because opening
//!    some devices has effects and opening a FIFO waits for a writer;
//! 2. open it with `O_NONBLOCK | O_NOCTTY`, so that a FIFO swapped in after step 1 cannot make
//!    the open wait, and a terminal does not become ours;
//! 3. `fstat` the handle and refuse it unless it is a regular file: this is the check that
//!    counts, steps 1 and 2 only keep the open harmless (`O_NONBLOCK` also turns a read that
//!    would block, as on `/proc/kmsg`, into an error rather than a hang);
//! 4. refuse a file whose size is over the limit without reading it, and read at most the
//!    limit plus one byte in any case (a file can grow after the `fstat`).
//!
//! [`read_dir_bounded`] lists a directory up to a number of entries, and says so when there
//! are more, so that a directory of a million names is a refusal rather than a long wait.
//!
//! This module does I/O (it is the one place that does these dances); it reads no clock.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
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

/// What a path is, as `stat` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (only seen when links are not followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device, such as `/dev/zero` or a terminal.
    CharDevice,
    /// A block device, such as a disk.
    BlockDevice,
    /// A Unix socket.
    Socket,
    /// Something else.
    Other,
}

impl FileKind {
    /// The kind of `file_type`.
    pub fn of(file_type: fs::FileType) -> Self {
        if file_type.is_file() {
            Self::Regular
        } else if file_type.is_dir() {
            Self::Directory
        } else if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_char_device() {
            Self::CharDevice
        } else if file_type.is_block_device() {
            Self::BlockDevice
        } else if file_type.is_socket() {
            Self::Socket
        } else {
            Self::Other
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Regular => "a regular file",
            Self::Directory => "a directory",
            Self::Symlink => "a symbolic link",
            Self::Fifo => "a FIFO",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
            Self::Socket => "a socket",
            Self::Other => "not a file of a known kind",
        })
    }
}

/// Why an untrusted file or directory was not read; one line, naming the path (escaped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoundedReadError {
    /// The path is something other than a regular file.
    #[error("{} is {kind}, not a regular file", text::quoted(&.path.display().to_string()))]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// The file is larger than the limit.
    #[error("{} is larger than the limit of {limit} bytes", text::quoted(&.path.display().to_string()))]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The directory holds more entries than the limit.
    #[error("{} holds more than {limit} entries", text::quoted(&.path.display().to_string()))]
    TooManyEntries {
        /// The directory.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// The system refused (no such file, no permission, an I/O error).
    #[error("reading {}: {source}", text::quoted(&.path.display().to_string()))]
    Io {
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl BoundedReadError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotRegular { path, .. }
            | Self::TooLarge { path, .. }
            | Self::TooManyEntries { path, .. }
            | Self::Io { path, .. } => path,
        }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn unless_regular(path: &Path, file_type: fs::FileType) -> Result<(), Self> {
        match FileKind::of(file_type) {
            FileKind::Regular => Ok(()),
            kind => Err(Self::NotRegular {
                path: path.to_path_buf(),
                kind,
            }),
        }
    }
}

/// Opens `path` for reading if it is a regular file (a link is followed), without ever
/// waiting on a FIFO or opening a device (see the module doc); returns the file and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64), BoundedReadError> {
    let before = fs::metadata(path).map_err(BoundedReadError::io(path))?;
    BoundedReadError::unless_regular(path, before.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(BoundedReadError::io(path))?;
    // What was opened, which may not be what was stat'ed a moment ago.
    let meta = file.metadata().map_err(BoundedReadError::io(path))?;
    BoundedReadError::unless_regular(path, meta.file_type())?;
    Ok((file, meta.len()))
}

/// The bytes of the regular file `path`, if there are at most `limit` of them; reads at most
/// `limit + 1` bytes whatever the file claims.
pub fn read_regular_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let too_large = || BoundedReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let (file, len) = open_regular(path)?;
    if len > limit {
        return Err(too_large());
    }
    // The size is a hint (the file may change); the take() is the bound.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::io(path))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The names in directory `dir` (`.` and `..` excepted), unsorted, if there are at most
/// `limit`; stops listing at the first name past it.
pub fn read_dir_bounded(dir: &Path, limit: usize) -> Result<Vec<OsString>, BoundedReadError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(BoundedReadError::io(dir))? {
        if names.len() == limit {
            return Err(BoundedReadError::TooManyEntries {
                path: dir.to_path_buf(),
                limit,
            });
        }
        names.push(entry.map_err(BoundedReadError::io(dir))?.file_name());
    }
    Ok(names)
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

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {}", path.display());
    }

    #[test]
    fn bounded_reads_take_regular_files_within_the_limit_only() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        fs::write(at("small"), b"four").unwrap();
        fs::write(at("empty"), b"").unwrap();
        fs::write(at("big"), vec![b'a'; 5000]).unwrap();
        File::create(at("sparse"))
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
        mkfifo(&at("fifo"));
        std::os::unix::fs::symlink(at("fifo"), at("link-to-fifo")).unwrap();
        std::os::unix::fs::symlink(at("small"), at("link-to-small")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", at("link-to-zero")).unwrap();
        fs::create_dir(at("dir")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(at("socket")).unwrap();

        /// What reading gives: the bytes, or the error's kind and message.
        fn check(path: &Path, limit: u64, want: Result<&[u8], (&str, &str)>) {
            let got = read_regular_bounded(path, limit);
            match (&got, want) {
                (Ok(bytes), Ok(want)) => assert_eq!(bytes, want, "{}", path.display()),
                (Err(err), Err((variant, message))) => {
                    let name = match err {
                        BoundedReadError::NotRegular { .. } => "not regular",
                        BoundedReadError::TooLarge { .. } => "too large",
                        BoundedReadError::TooManyEntries { .. } => "too many",
                        BoundedReadError::Io { .. } => "io",
                    };
                    assert_eq!(name, variant, "{}: {err}", path.display());
                    let text = err.to_string();
                    assert!(text.contains(message), "{text:?} lacks {message:?}");
                    assert!(!text.contains('\n'), "{text:?}");
                    assert_eq!(err.path(), path);
                }
                _ => panic!("{}: {got:?}", path.display()),
            }
        }
        check(&at("small"), 4, Ok(b"four"));
        check(&at("small"), 100, Ok(b"four"));
        check(&at("empty"), 0, Ok(b""));
        check(&at("link-to-small"), 4, Ok(b"four"));
        check(
            &at("small"),
            3,
            Err(("too large", "larger than the limit of 3 bytes")),
        );
        check(&at("big"), 4999, Err(("too large", "limit of 4999 bytes")));
        check(
            &at("sparse"),
            1 << 20,
            Err(("too large", "limit of 1048576 bytes")),
        );
        check(
            &at("fifo"),
            100,
            Err(("not regular", "is a FIFO, not a regular file")),
        );
        check(&at("link-to-fifo"), 100, Err(("not regular", "a FIFO")));
        check(
            &at("link-to-zero"),
            100,
            Err(("not regular", "a character device")),
        );
        check(
            Path::new("/dev/null"),
            100,
            Err(("not regular", "a character device")),
        );
        check(
            Path::new("/dev/zero"),
            100,
            Err(("not regular", "a character device")),
        );
        check(&at("dir"), 100, Err(("not regular", "is a directory, not")));
        check(&at("socket"), 100, Err(("not regular", "a socket")));
        check(&at("missing"), 100, Err(("io", "reading \"")));
    }

    #[test]
    fn a_regular_file_opens_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        let (mut file, len) = open_regular(&path).unwrap();
        assert_eq!(len, 5);
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }

    #[test]
    fn directory_listings_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..10 {
            fs::write(dir.path().join(format!("f{n}")), b"").unwrap();
        }
        assert_eq!(read_dir_bounded(dir.path(), 10).unwrap().len(), 10);
        let err = read_dir_bounded(dir.path(), 9).unwrap_err();
        assert!(
            matches!(err, BoundedReadError::TooManyEntries { limit: 9, .. }),
            "{err}"
        );
        assert!(
            err.to_string().ends_with("holds more than 9 entries"),
            "{err}"
        );
        let err = read_dir_bounded(&dir.path().join("f0"), 9).unwrap_err();
        assert!(matches!(err, BoundedReadError::Io { .. }), "{err}");
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("state")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/state")), Path::new("/"));
        assert_eq!(parent_dir(Path::new("a/state")), Path::new("a"));
    }
}
