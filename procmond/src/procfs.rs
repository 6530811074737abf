//! Linux `/proc` readers for what `sysinfo` does not expose.
//!
//! Everything read here is hostile input: a process chooses its own `comm` (which may hold
//! spaces, parentheses and invalid UTF-8), its command line (up to the kernel's argument limit),
//! and can exit or be replaced by another process with the same PID between two reads. Every
//! read is therefore bounded in size, every parser returns `None` rather than guessing, and
//! the callers tie the values they read to a process identity (PID plus start time in clock
//! ticks), never to a PID alone.
//!
//! The parsers are pure functions over bytes so that they can be table-tested and fuzzed; the
//! thin `read_*` wrappers do the I/O.

use std::io::{self, Read};

/// The most we read of `/proc/PID/stat` or `/proc/PID/status`; both are a few hundred bytes to
/// a few KiB, so anything longer is not a real procfs file.
pub const SMALL_FILE_MAX: u64 = 64 * 1024;

/// Fields of `/proc/PID/stat` (proc(5)) that the collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `comm`, lossily decoded.
    pub comm: String,
    /// State letter (field 3).
    pub state: char,
    /// Parent PID (field 4).
    pub ppid: u32,
    /// Process group (field 5).
    pub pgrp: u32,
    /// User-mode CPU time in clock ticks (field 14).
    pub utime: u64,
    /// Kernel-mode CPU time in clock ticks (field 15).
    pub stime: u64,
    /// Nice value (field 19).
    pub nice: i32,
    /// Number of threads (field 20).
    pub num_threads: u32,
    /// Start time in clock ticks after boot (field 22).
    pub starttime: u64,
    /// Virtual memory size in bytes (field 23).
    pub vsize: u64,
    /// Resident set size in pages (field 24).
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`.
///
/// `comm` sits in parentheses and may itself contain `)` and spaces, so the fields after it are
/// found from the *last* `)` in the line, as procps does.
pub fn parse_stat(data: &[u8]) -> Option<Stat> {
    let open = data.iter().position(|&b| b == b'(')?;
    let close = data.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&data[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(data.get(close + 1..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `fields[0]` is field 3 of proc(5); field N is `fields[N - 3]`.
    let field = |n: usize| fields.get(n - 3).copied();
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(Stat {
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        nice: field(19)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
        vsize: field(23)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

/// User and group ids from `/proc/PID/status`: real, effective, saved (the filesystem id is
/// not part of the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    /// Real, effective and saved user id.
    pub uid: [u32; 3],
    /// Real, effective and saved group id.
    pub gid: [u32; 3],
}

/// Parses the `Uid:` and `Gid:` lines of `/proc/PID/status`.
///
/// The file is taken as bytes, not text: its `Name:` line carries the process's own `comm`,
/// which may hold any byte, and must not make the ids unreadable.
pub fn parse_status_ids(data: &[u8]) -> Option<Ids> {
    let mut uid = None;
    let mut gid = None;
    for line in data.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"Uid:") {
            uid = Some(parse_id_triple(std::str::from_utf8(rest).ok()?)?);
        } else if let Some(rest) = line.strip_prefix(b"Gid:") {
            gid = Some(parse_id_triple(std::str::from_utf8(rest).ok()?)?);
        }
        if uid.is_some() && gid.is_some() {
            break;
        }
    }
    Some(Ids {
        uid: uid?,
        gid: gid?,
    })
}

fn parse_id_triple(rest: &str) -> Option<[u32; 3]> {
    let mut values = rest.split_ascii_whitespace().map(str::parse::<u32>);
    Some([
        values.next()?.ok()?,
        values.next()?.ok()?,
        values.next()?.ok()?,
    ])
}

/// Turns the NUL-separated `/proc/PID/cmdline` into one line with arguments separated by
/// spaces, as osquery and `ps -o args` show it. A process that rewrote its arguments may leave
/// no NULs at all; that is kept as it is. Empty (kernel threads, zombies) gives `None`.
pub fn parse_cmdline(data: &[u8]) -> Option<String> {
    let trimmed = data.strip_suffix(b"\0").unwrap_or(data);
    if trimmed.is_empty() {
        return None;
    }
    let joined: Vec<u8> = trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    Some(String::from_utf8_lossy(&joined).into_owned())
}

/// Picks the control group path from `/proc/PID/cgroup`: the cgroup v2 unified entry
/// (`0::/path`) when present, else the v1 `name=systemd` hierarchy, else the first entry.
pub fn parse_cgroup(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut first = None;
    let mut systemd = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            return Some(path.to_owned());
        }
        if systemd.is_none() && controllers.split(',').any(|c| c == "name=systemd") {
            systemd = Some(path.to_owned());
        }
        if first.is_none() {
            first = Some(path.to_owned());
        }
    }
    systemd.or(first)
}

/// Bytes read from and written to storage, from `/proc/PID/io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    /// `read_bytes`.
    pub read_bytes: u64,
    /// `write_bytes`.
    pub write_bytes: u64,
}

/// Parses the `read_bytes` and `write_bytes` lines of `/proc/PID/io`.
pub fn parse_io(data: &[u8]) -> Option<Io> {
    let text = std::str::from_utf8(data).ok()?;
    let mut read_bytes = None;
    let mut write_bytes = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("read_bytes:") {
            read_bytes = Some(v.trim().parse().ok()?);
        } else if let Some(v) = line.strip_prefix("write_bytes:") {
            write_bytes = Some(v.trim().parse().ok()?);
        }
    }
    Some(Io {
        read_bytes: read_bytes?,
        write_bytes: write_bytes?,
    })
}

/// Reads at most `max` bytes from an open file. `/proc` files report a size of zero, so the
/// size cannot be checked up front; the bound is applied while reading. The buffer starts at
/// a page: `read_to_end` on an empty vector probes with 32 bytes and doubles from there, which
/// costs a `stat` or `status` file six or more `read` calls instead of two (measured: reads of
/// `/proc` were most of a scan's CPU).
pub fn read_to_bound(file: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let first = usize::try_from(max.min(FIRST_READ)).unwrap_or(0);
    let mut data = Vec::with_capacity(first);
    file.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// The buffer of a bounded read's first `read`: `/proc/PID/stat` and `status` fit.
const FIRST_READ: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_SLEEP: &[u8] = b"4242 (sleep) S 1 4242 4242 0 -1 4194304 93 0 0 0 7 3 0 0 20 0 1 0 123456 8654848 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_read_from_their_proc5_positions() {
        let stat = parse_stat(STAT_SLEEP).unwrap();
        assert_eq!(
            stat,
            Stat {
                comm: "sleep".into(),
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                utime: 7,
                stime: 3,
                nice: 0,
                num_threads: 1,
                starttime: 123456,
                vsize: 8654848,
                rss_pages: 224,
            }
        );
    }

    #[test]
    fn stat_comm_with_parentheses_and_spaces_does_not_shift_fields() {
        let data = b"7 (a) b) (c d) R 3 7 7 0 -1 0 0 0 0 0 11 12 0 0 20 -5 4 0 99 1000 10 0\n";
        let stat = parse_stat(data).unwrap();
        assert_eq!(stat.comm, "a) b) (c d");
        assert_eq!(
            (stat.state, stat.ppid, stat.nice, stat.num_threads),
            ('R', 3, -5, 4)
        );
        assert_eq!((stat.utime, stat.stime, stat.starttime), (11, 12, 99));
    }

    #[test]
    fn stat_rejects_truncated_or_garbled_input() {
        let check = |data: &[u8]| assert_eq!(parse_stat(data), None, "{data:?}");
        check(b"");
        check(b"1 (x");
        check(b"1 x) S 1");
        check(b"1 (x) S 1 2 3");
        check(b"1 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7");
        check(b"1 (x) S -1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7");
        check(b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 \xff");
        check(b"1 )x( S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7");
    }

    #[test]
    fn stat_comm_with_invalid_utf8_is_decoded_lossily() {
        let data = b"1 (\xffbad) S 0 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n";
        assert_eq!(parse_stat(data).unwrap().comm, "\u{fffd}bad");
    }

    #[test]
    fn status_ids_give_real_effective_and_saved() {
        let data = b"Name:\tsu\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t50\t100\nGroups:\t100\n";
        assert_eq!(
            parse_status_ids(data),
            Some(Ids {
                uid: [1000, 0, 0],
                gid: [100, 100, 50],
            })
        );
        let hostile_name = b"Name:\t\xff\xfe)\nUid:\t1000\t1000\t1000\t1000\nGid:\t5\t5\t5\t5\n";
        assert_eq!(
            parse_status_ids(hostile_name),
            Some(Ids {
                uid: [1000; 3],
                gid: [5; 3],
            })
        );
        assert_eq!(parse_status_ids(b"Name:\tx\nUid:\t1\t2\n"), None);
        assert_eq!(parse_status_ids(b"Uid:\t1\t2\t3\t4\n"), None);
        assert_eq!(
            parse_status_ids(b"Uid:\tx\t2\t3\t4\nGid:\t1\t2\t3\t4\n"),
            None
        );
    }

    #[test]
    fn cmdline_joins_arguments_with_spaces() {
        let check = |data: &[u8], want: Option<&str>| {
            assert_eq!(parse_cmdline(data).as_deref(), want, "{data:?}");
        };
        check(b"sleep\x00300\x00", Some("sleep 300"));
        check(b"nginx: worker process", Some("nginx: worker process"));
        check(b"a\x00\x00b\x00", Some("a  b"));
        check(b"", None);
        check(b"\x00", None);
        check(b"\xff\x00", Some("\u{fffd}"));
    }

    #[test]
    fn cgroup_prefers_the_unified_hierarchy() {
        let check = |data: &[u8], want: Option<&str>| {
            assert_eq!(parse_cgroup(data).as_deref(), want, "{data:?}");
        };
        check(
            b"0::/system.slice/sshd.service\n",
            Some("/system.slice/sshd.service"),
        );
        check(
            b"12:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n",
            Some("/user.slice/session-1.scope"),
        );
        check(
            b"3:memory:/docker/abc\n1:name=systemd:/x\n0::/init.scope\n",
            Some("/init.scope"),
        );
        check(b"5:pids:/a:b\n", Some("/a:b"));
        check(b"garbage\n", None);
        check(b"", None);
    }

    #[test]
    fn io_gives_storage_bytes() {
        let data = b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(
            parse_io(data),
            Some(Io {
                read_bytes: 4096,
                write_bytes: 8192,
            })
        );
        assert_eq!(parse_io(b"read_bytes: 1\n"), None);
        assert_eq!(parse_io(b"read_bytes: -1\nwrite_bytes: 1\n"), None);
        assert_eq!(parse_io(b""), None);
    }

    proptest::proptest! {
        /// Hostile bytes never panic a parser, and a parsed stat always took its comm from
        /// between the first `(` and the last `)`.
        #[test]
        fn parsers_survive_arbitrary_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Some(stat) = parse_stat(&data) {
                let open = data.iter().position(|&b| b == b'(').unwrap();
                let close = data.iter().rposition(|&b| b == b')').unwrap();
                proptest::prop_assert_eq!(stat.comm, String::from_utf8_lossy(&data[open + 1..close]));
            }
            let _ = parse_status_ids(&data);
            let _ = parse_cmdline(&data);
            let _ = parse_cgroup(&data);
            let _ = parse_io(&data);
        }

        /// Any comm, however hostile, leaves the fields after it where they belong.
        #[test]
        fn any_comm_keeps_the_fields_in_place(comm in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut data = b"77 (".to_vec();
            data.extend_from_slice(&comm);
            data.extend_from_slice(b") S 1 77 77 0 -1 0 0 0 0 0 5 6 0 0 20 3 2 0 900 4096 9\n");
            let stat = parse_stat(&data).unwrap();
            proptest::prop_assert_eq!((stat.ppid, stat.utime, stat.stime, stat.nice), (1, 5, 6, 3));
            proptest::prop_assert_eq!((stat.num_threads, stat.starttime, stat.vsize, stat.rss_pages), (2, 900, 4096, 9));
        }
    }

    #[test]
    fn bounded_read_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
        let read = |max| read_to_bound(std::fs::File::open(&path).unwrap(), max).unwrap();
        assert_eq!(read(100).len(), 100);
        assert_eq!(read(20_000).len(), 10_000);
    }
}
