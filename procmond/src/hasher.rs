//! SHA-256 of executables, with a cache so that an unchanged file is hashed once.
//!
//! The cache key is what `stat` says about the file: device, inode, size, modification time and
//! change time. Rewriting a file in place changes its mtime and ctime; replacing it changes the
//! inode; so a key that matches names the same bytes unless someone forged timestamps *and*
//! kept the size, which needs root and `utimensat` on the very inode (and still moves ctime).
//!
//! A hash is trusted only when the file's key is the same before and after the read and the
//! number of bytes read equals the size: a file that changes while it is read is reported as
//! such, never hashed into the cache. Every read is bounded by a size limit and by the scan's
//! deadline.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use daemoneye_lib::text;
use sha2::{Digest, Sha256};

/// Identity and version of a file, from `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// `st_ctime` seconds and nanoseconds.
    pub ctime: (i64, i64),
}

impl FileKey {
    /// The key of a file from a raw `stat`.
    #[allow(
        clippy::unnecessary_cast,
        reason = "the widths of the libc stat fields differ between targets"
    )]
    pub fn from_stat(stat: &nix::sys::stat::FileStat) -> Self {
        // The casts widen or reinterpret the kernel's own types; a negative size or device
        // number does not occur for a file that `stat` succeeded on.
        Self {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
            size: stat.st_size as u64,
            mtime: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            ctime: (stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        }
    }

    /// The key of a file from its metadata.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What hashing one executable gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOutcome {
    /// The lowercase hex SHA-256 of the whole file.
    Hashed(String),
    /// The file is larger than the configured limit.
    TooLarge,
    /// The file changed between the first `stat` and the end of the read.
    ChangedDuringRead,
    /// The scan's hashing deadline passed before the file was read to the end.
    BudgetExhausted,
    /// The file could not be opened or read.
    Unreadable(io::ErrorKind),
}

/// Hashes the executable at `path` (for a process, `/proc/PID/exe`, which opens the file the
/// process runs even when it was deleted), trusting the result only if the file still has the
/// key `expected` once read.
pub fn hash_file(path: &Path, expected: FileKey, max_bytes: u64, deadline: Instant) -> HashOutcome {
    if expected.size > max_bytes {
        return HashOutcome::TooLarge;
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) => return HashOutcome::Unreadable(err.kind()),
    };
    let before = match file.metadata() {
        Ok(meta) => FileKey::of(&meta),
        Err(err) => return HashOutcome::Unreadable(err.kind()),
    };
    // The file we opened is not the one we were asked about: the path now leads elsewhere, or
    // the file changed between the caller's `stat` and our `open`.
    if before != expected {
        return HashOutcome::ChangedDuringRead;
    }
    let after = || file.metadata().map(|meta| FileKey::of(&meta));
    hash_reader(&file, before, after, deadline)
}

/// The checked read at the heart of [`hash_file`], over any reader, so that a change during the
/// read can be tested without racing a real writer.
pub fn hash_reader<R: Read>(
    mut reader: R,
    before: FileKey,
    after: impl FnOnce() -> io::Result<FileKey>,
    deadline: Instant,
) -> HashOutcome {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    // Read one byte past the size we were told, so that a file that grew is noticed.
    let mut limited = (&mut reader).take(before.size.saturating_add(1));
    loop {
        if Instant::now() >= deadline {
            return HashOutcome::BudgetExhausted;
        }
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return HashOutcome::Unreadable(err.kind()),
        }
    }
    match after() {
        Ok(key) if key == before && total == before.size => {
            HashOutcome::Hashed(text::hex(&hasher.finalize()))
        }
        Ok(_) => HashOutcome::ChangedDuringRead,
        Err(err) => HashOutcome::Unreadable(err.kind()),
    }
}

/// Hashes of files seen so far, by [`FileKey`].
#[derive(Debug, Default)]
pub struct HashCache {
    entries: HashMap<FileKey, String>,
}

impl HashCache {
    /// The cached hash of a file, if this exact version was hashed before.
    pub fn get(&self, key: &FileKey) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Remembers a trusted hash.
    pub fn insert(&mut self, key: FileKey, hash: String) {
        self.entries.insert(key, hash);
    }

    /// Forgets every file not in `live`, so that the cache holds only executables that some
    /// process still runs and cannot grow without bound.
    pub fn retain(&mut self, live: &HashSet<FileKey>) {
        self.entries.retain(|key, _| live.contains(key));
    }

    /// Number of cached hashes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn key_of(path: &Path) -> FileKey {
        FileKey::of(&std::fs::metadata(path).unwrap())
    }

    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_a_file_and_matches_the_fips_vector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let outcome = hash_file(&path, key_of(&path), 1024, later());
        assert_eq!(outcome, HashOutcome::Hashed(ABC.into()));
    }

    #[test]
    fn refuses_a_file_over_the_limit_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![0u8; 2048]).unwrap();
        assert_eq!(
            hash_file(&path, key_of(&path), 2047, later()),
            HashOutcome::TooLarge
        );
        assert!(matches!(
            hash_file(&path, key_of(&path), 2048, later()),
            HashOutcome::Hashed(_)
        ));
    }

    #[test]
    fn a_file_changed_since_its_stat_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let stale = key_of(&path);
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(
            hash_file(&path, stale, 1024, later()),
            HashOutcome::ChangedDuringRead
        );
    }

    #[test]
    fn a_change_during_the_read_is_reported() {
        let before = FileKey {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (10, 0),
            ctime: (10, 0),
        };
        let touched = FileKey {
            mtime: (11, 0),
            ..before
        };
        let check = |data: &[u8], after: FileKey, want: HashOutcome| {
            let got = hash_reader(data, before, || Ok(after), later());
            assert_eq!(got, want, "{data:?}");
        };
        check(b"abc", before, HashOutcome::Hashed(ABC.into()));
        check(b"abc", touched, HashOutcome::ChangedDuringRead);
        // Same metadata but the bytes ran short or long: truncated or appended mid-read.
        check(b"ab", before, HashOutcome::ChangedDuringRead);
        check(b"abcd", before, HashOutcome::ChangedDuringRead);
    }

    #[test]
    fn a_passed_deadline_stops_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let outcome = hash_file(&path, key_of(&path), 1024, Instant::now());
        assert_eq!(outcome, HashOutcome::BudgetExhausted);
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let key = FileKey {
            dev: 0,
            ino: 0,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
        };
        let outcome = hash_file(Path::new("/nonexistent/daemoneye"), key, 1024, later());
        assert_eq!(outcome, HashOutcome::Unreadable(io::ErrorKind::NotFound));
    }

    #[test]
    fn cache_keeps_only_live_files() {
        let a = FileKey {
            dev: 1,
            ino: 1,
            size: 1,
            mtime: (0, 0),
            ctime: (0, 0),
        };
        let b = FileKey { ino: 2, ..a };
        let mut cache = HashCache::default();
        cache.insert(a, "aa".into());
        cache.insert(b, "bb".into());
        cache.retain(&HashSet::from([b]));
        assert_eq!(cache.get(&a), None);
        assert_eq!(cache.get(&b), Some("bb"));
        assert_eq!(cache.len(), 1);
    }
}
