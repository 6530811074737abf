//! `<data_dir>/agent.pid`: which agent holds the data directory.
//!
//! The file holds the running agent's process id in decimal and a newline (`4242\n`), written
//! with [`fsutil::atomic_replace`] once the agent holds the event store's lock, and removed
//! when it stops (an agent killed with SIGKILL leaves it behind; the next agent to get the
//! lock replaces it). The lock, not this file, decides who runs: the file only lets a second
//! agent, refused by the lock, name the first one's pid in its message. It is never read to
//! signal or kill anything.

use std::path::{Path, PathBuf};

use daemoneye_lib::fsutil;

/// The file's name in the data directory.
pub const FILE: &str = "agent.pid";

/// The pid file of this agent, removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `<data_dir>/agent.pid`. Call it only while holding the
    /// event store's lock.
    pub fn write(data_dir: &Path) -> Result<Self, fsutil::FsError> {
        let pid = std::process::id();
        let path = data_dir.join(FILE);
        fsutil::atomic_replace(&path, format!("{pid}\n").as_bytes())?;
        Ok(Self { path, pid })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: should the file name another agent (it cannot, while we hold the
        // lock, but a person may have edited it), it stays.
        if read(self.path.parent().unwrap_or_else(|| Path::new("."))) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pid in `<data_dir>/agent.pid`, if the file exists and holds one.
pub fn read(data_dir: &Path) -> Option<u32> {
    parse(&std::fs::read(data_dir.join(FILE)).ok()?)
}

/// The pid in the file's bytes: decimal digits, optionally followed by a newline, nothing
/// else; 0 is not a pid.
fn parse(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .filter(|pid| *pid != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_decimal_pid_and_a_newline_is_read() {
        let cases: [(&[u8], Option<u32>); 9] = [
            (b"4242\n", Some(4242)),
            (b"4242", Some(4242)),
            (b"1\n", Some(1)),
            (b"0\n", None),
            (b"", None),
            (b"\n", None),
            (b"-1\n", None),
            (b"42 \n", None),
            (b"99999999999\n", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn the_file_names_this_process_and_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = PidFile::write(dir.path()).unwrap();
        assert_eq!(read(dir.path()), Some(std::process::id()));
        drop(file);
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(read(dir.path()), None);
    }
}
