//! The file sink: alerts appended to a file as JSON lines or CEF ([`Encoding`]), one line
//! each, exactly as [`super::format`] renders them, with rotation by size.
//!
//! # Writing
//!
//! Each batch is rendered first; a payload that is not an alert stops the batch there, and the
//! lines before it are written (the loop then dead-letters it, [`SinkError::Reject`]). The
//! lines are written with one `write` per file touched and `sync_data` before the batch is
//! acknowledged: an acknowledged alert is on disk. The file is opened with
//! `O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, created with mode `0640` (and
//! its directory synced once, so that its name survives a crash too); `O_APPEND` keeps every
//! write at the end even if something else writes the file, and `O_NONBLOCK` keeps a FIFO
//! swapped in for the file from making the open wait.
//!
//! # What is refused
//!
//! The path must be a regular file or not exist yet. A symbolic link (checked with `lstat`,
//! and again by `O_NOFOLLOW` at the open, which closes the race between the two), a directory,
//! a FIFO or a device is [`SinkError::GiveUp`]: the sink cannot work as configured, and
//! following a link planted in a log directory is how an agent gets made to append to
//! `/etc/passwd`. Any I/O error (a full disk, a directory that is gone, a permission taken
//! away) is [`SinkError::Retry`]: an operator can fix it and the alerts wait. After a failed
//! write the file is cut back to its size before the write (best effort), so that a retry does
//! not leave half a line in front of the whole one.
//!
//! # Rotation
//!
//! With `max_bytes` above 0, a line that would take a non-empty file past `max_bytes` first
//! rotates it: `PATH.{keep-1}` becomes `PATH.{keep}` (replacing it), and so on down to `PATH`
//! becoming `PATH.1`; then a new `PATH` is created and the directory synced. So `PATH` never
//! holds more than `max_bytes` unless one line alone is longer (it then has a file of its
//! own), at most `keep` rotated files are kept, and `PATH.1` is the newest of them. With
//! `keep` 0 the full file is removed instead. The lines before a rotation are synced before
//! it, so a failed rotation acknowledges them and retries the rest.
//!
//! The sink checks before each batch that `PATH` is still the file it holds open (same device
//! and inode); when an outside tool (logrotate) moved it away, the sink opens the new one.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use daemoneye_lib::fsutil;
use daemoneye_lib::text;
use nix::libc;

use super::format::Encoding;
use super::{BatchError, Delivery, Sink, SinkError};

/// A file sink's configuration (`[[sinks]] type = "file"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The file appended to.
    pub path: PathBuf,
    /// JSON lines or CEF.
    pub encoding: Encoding,
    /// Rotate before the file would pass this size; 0 never rotates.
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` … `PATH.keep`).
    pub keep: u32,
}

impl FileConfig {
    /// `path` in `encoding`, rotated at 100 MiB, keeping 5.
    pub fn new(path: impl Into<PathBuf>, encoding: Encoding) -> Self {
        Self {
            path: path.into(),
            encoding,
            max_bytes: 100 << 20,
            keep: 5,
        }
    }
}

/// The file held open, and what it is.
#[derive(Debug)]
struct Open {
    file: File,
    size: u64,
    dev: u64,
    ino: u64,
}

/// Alerts appended to a file (see the module documentation).
#[derive(Debug)]
pub struct FileSink {
    name: String,
    config: FileConfig,
    open: Option<Open>,
}

/// The file sink's keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    /// Absolute path of the file.
    path: PathBuf,
    /// `json` (default) or `cef`.
    #[serde(default)]
    format: FileFormat,
    /// Rotation size in bytes (default 100 MiB; 0 never rotates).
    max_bytes: Option<u64>,
    /// Rotated files kept (default 5).
    keep: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileFormat {
    #[default]
    Json,
    Cef,
}

impl FileSink {
    /// The sink a `[[sinks]] type = "file"` table describes.
    pub fn from_config(
        sink: &daemoneye_lib::config::SinkConfig,
    ) -> Result<Self, super::build::BuildError> {
        let options: FileOptions = super::build::options(sink)?;
        if !options.path.is_absolute() {
            return Err(super::build::BuildError::new(
                sink,
                "path: must be absolute",
            ));
        }
        let encoding = match options.format {
            FileFormat::Json => Encoding::Json,
            FileFormat::Cef => Encoding::Cef,
        };
        let mut config = FileConfig::new(options.path, encoding);
        if let Some(max_bytes) = options.max_bytes {
            config.max_bytes = max_bytes;
        }
        if let Some(keep) = options.keep {
            if keep > 1000 {
                return Err(super::build::BuildError::new(sink, "keep: at most 1000"));
            }
            config.keep = keep;
        }
        Ok(Self::new(sink.name.clone(), config))
    }

    /// A sink named `name`; the file is opened at the first delivery.
    pub fn new(name: impl Into<String>, config: FileConfig) -> Self {
        Self {
            name: name.into(),
            config,
            open: None,
        }
    }

    fn shown(&self) -> String {
        text::quoted(&self.config.path.to_string_lossy()).to_string()
    }

    fn io_error(&self, doing: &str, err: &io::Error) -> SinkError {
        SinkError::retry(format!("cannot {doing} {}: {err}", self.shown()))
    }

    /// `PATH.n`.
    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = OsString::from(self.config.path.as_os_str());
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn sync_dir(&self) -> Result<(), SinkError> {
        let dir = match self.config.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fsutil::fsync_dir(dir).map_err(|err| SinkError::retry(err.to_string()))
    }

    /// The open file, opened (again) when `PATH` is not the file held.
    fn current(&mut self) -> Result<&mut Open, SinkError> {
        let found = match fs::symlink_metadata(&self.config.path) {
            Ok(meta) => Some(meta),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(self.io_error("look at", &err)),
        };
        if let Some(meta) = &found {
            let kind = meta.file_type();
            if !kind.is_file() {
                return Err(self.not_regular(kind));
            }
            if self
                .open
                .as_ref()
                .is_some_and(|open| (open.dev, open.ino) == (meta.dev(), meta.ino()))
            {
                // Just checked to be `Some`; returning the borrow from an `if let` would
                // keep `self.open` borrowed for the reopening below.
                return self
                    .open
                    .as_mut()
                    .ok_or_else(|| SinkError::retry("the file is not open"));
            }
        }
        self.open = None;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.config.path)
            .map_err(|err| {
                if err.raw_os_error() == Some(libc::ELOOP) {
                    SinkError::give_up(format!(
                        "{} is a symbolic link; give the file itself",
                        self.shown()
                    ))
                } else {
                    self.io_error("open", &err)
                }
            })?;
        let meta = file.metadata().map_err(|err| self.io_error("stat", &err))?;
        if !meta.file_type().is_file() {
            return Err(self.not_regular(meta.file_type()));
        }
        if found.is_none() {
            self.sync_dir()?;
        }
        Ok(self.open.insert(Open {
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            file,
        }))
    }

    fn not_regular(&self, kind: fs::FileType) -> SinkError {
        let what = if kind.is_symlink() {
            "a symbolic link; give the file itself"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        SinkError::give_up(format!("{} is {what}, not a regular file", self.shown()))
    }

    /// Appends `bytes` and syncs them; on failure cuts the file back and drops it.
    fn append(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let open = self.current()?;
        let before = open.size;
        let result = open
            .file
            .write_all(bytes)
            .and_then(|()| open.file.sync_data());
        match result {
            Ok(()) => {
                open.size += bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Best effort: a failed cut leaves a partial line, which a reader of JSON
                // lines or CEF skips as one bad line.
                let _ = open.file.set_len(before);
                self.open = None;
                Err(self.io_error("write", &err))
            }
        }
    }

    /// Moves `PATH` to `PATH.1` (and the older ones along), or removes it when `keep` is 0.
    fn rotate(&mut self) -> Result<(), SinkError> {
        self.open = None;
        let result = if self.config.keep == 0 {
            fs::remove_file(&self.config.path)
        } else {
            (1..self.config.keep)
                .rev()
                .try_for_each(|n| match fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                })
                .and_then(|()| fs::rename(&self.config.path, self.rotated(1)))
        };
        result.map_err(|err| self.io_error("rotate", &err))?;
        self.sync_dir()
    }

    /// Writes `lines` (each with its line end), rotating between them as needed. On failure,
    /// how many were written and synced before it.
    fn write_lines(&mut self, lines: &[String]) -> Result<(), (usize, SinkError)> {
        if lines.is_empty() {
            return Ok(());
        }
        let max = self.config.max_bytes;
        let mut size = self.current().map_err(|err| (0, err))?.size;
        let mut chunk: Vec<u8> = Vec::new();
        let mut in_chunk = 0;
        let mut done = 0;
        for line in lines {
            let used = size + chunk.len() as u64;
            if max > 0 && used > 0 && used + line.len() as u64 > max {
                self.append(&chunk).map_err(|err| (done, err))?;
                done += in_chunk;
                chunk.clear();
                in_chunk = 0;
                self.rotate().map_err(|err| (done, err))?;
                size = self.current().map_err(|err| (done, err))?.size;
            }
            chunk.extend_from_slice(line.as_bytes());
            in_chunk += 1;
        }
        self.append(&chunk).map_err(|err| (done, err))
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let mut lines = Vec::with_capacity(batch.len());
        let mut rejected = None;
        for (index, delivery) in batch.iter().enumerate() {
            match self.config.encoding.encode(delivery.payload) {
                Ok(mut line) => {
                    line.push('\n');
                    lines.push(line);
                }
                Err(error) => {
                    rejected = Some(BatchError {
                        acknowledged: index,
                        error,
                    });
                    break;
                }
            }
        }
        self.write_lines(&lines)
            .map_err(|(acknowledged, error)| BatchError {
                acknowledged,
                error,
            })?;
        rejected.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
