//! Whole files written so that a crash leaves each one absent or whole, never half written.
//!
//! A file is written to `.<name>.tmp` in its own directory, synced (`fsync`), renamed over
//! `<name>` (`rename(2)` replaces atomically within one file system), and then the directory
//! is synced so that the rename itself survives a crash of the machine. The temporary name
//! starts with a dot, so a crash before the rename leaves nothing that looks like a ledger or
//! export file; the next write of the same file replaces it.
//!
//! This is the ledger's own helper for now (its `meta`, keys and exports use it); it is meant
//! to become part of a library-wide file-system module.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file beside `path`: `.<name>.tmp`.
fn temporary(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs a directory, so that the names created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file being written; it appears under its name, whole, only at [`AtomicFile::commit`].
/// Dropped without a commit, it leaves only its temporary file.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl AtomicFile {
    /// Starts writing `path` (mode 0600), replacing any earlier temporary file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let tmp = temporary(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::new(file),
        })
    }

    /// The file's final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data, renames the file into place and syncs its directory.
    pub fn commit(self) -> io::Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(parent(&self.path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `contents` to `path` atomically (see the module doc): the file is either absent,
/// as it was, or whole with `contents`.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(contents)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_whole_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        write(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"two").unwrap();
        file.flush().unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"one",
            "not replaced before commit"
        );
        file.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["meta"], "no temporary file is left");
    }

    #[test]
    fn temporary_names_are_hidden_siblings() {
        for (path, tmp) in [
            ("dir/signing.key", "dir/.signing.key.tmp"),
            ("meta", ".meta.tmp"),
            (
                "a/proofs/entry-000000000001.proof",
                "a/proofs/.entry-000000000001.proof.tmp",
            ),
        ] {
            assert_eq!(temporary(Path::new(path)), Path::new(tmp), "{path}");
        }
        assert_eq!(parent(Path::new("meta")), Path::new("."));
    }
}
