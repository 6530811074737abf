//! Listing and reading processes from `/proc`, and deciding `on_disk` the way osquery defines
//! it.
//!
//! Why not `sysinfo` here: its process refresh reads `/proc/PID/stat` and keeps its own copy of
//! every process, and it does not give what the schema needs beside it (saved ids, state
//! letter, threads, nice, separate CPU times, the raw executable link with its ` (deleted)`
//! marker, which `sysinfo` strips). Reading both made a warm scan of 10,000 processes spend
//! 140 to 200 ms in `sysinfo` alone, a third of the scan, and pushed `procmond --once` over
//! 40 MiB. On Linux `sysinfo` therefore only provides the boot time; on other platforms it is
//! the whole collector (see `portable.rs`).
//!
//! Each process is read through one open handle on its `/proc/PID` directory, `stat` first
//! (which gives the start time, the process's identity together with the PID). Files opened
//! relative to that handle belong to the process the handle was opened for: once it exits,
//! they fail with `ESRCH` even if a new process has taken its PID, so one record never mixes
//! two processes. An `exec` in the middle of the reads keeps PID and start time; the record
//! then holds facts from both images of the same process, as any snapshot of `/proc` would.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use daemoneye_lib::models::{OnDisk, ProcessRecord, ScanErrors};
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, fstatat};
use nix::unistd::{SysconfVar, sysconf};

use crate::collector::{CollectorOptions, ExeRef, Observed};
use crate::hasher::FileKey;
use crate::procfs;

/// What the kernel appends to `/proc/PID/exe` when the file was unlinked.
const DELETED_MARKER: &[u8] = b" (deleted)";

/// Constants needed to turn `/proc` units into the schema's.
#[derive(Debug, Clone)]
pub struct Clock {
    /// `sysconf(_SC_CLK_TCK)`.
    pub ticks_per_second: u64,
    /// `sysconf(_SC_PAGESIZE)`.
    pub page_size: u64,
    /// Boot time in seconds since the epoch.
    pub boot_time: u64,
    /// procmond's own mount namespace (`mnt:[N]`), to tell which processes share its view of
    /// the filesystem.
    pub mount_ns: Option<OsString>,
}

impl Clock {
    /// Reads the constants from the running system.
    pub fn read() -> anyhow::Result<Self> {
        let positive = |var: SysconfVar, name: &str| -> anyhow::Result<u64> {
            match sysconf(var) {
                Ok(Some(v)) if v > 0 => Ok(v as u64),
                other => anyhow::bail!("sysconf({name}) gave {other:?}"),
            }
        };
        Ok(Self {
            ticks_per_second: positive(SysconfVar::CLK_TCK, "_SC_CLK_TCK")?,
            page_size: positive(SysconfVar::PAGE_SIZE, "_SC_PAGESIZE")?,
            boot_time: sysinfo::System::boot_time()
                .map_err(|err| anyhow::anyhow!("boot time: {err:?}"))?,
            mount_ns: std::fs::read_link("/proc/self/ns/mnt")
                .ok()
                .map(PathBuf::into_os_string),
        })
    }

    /// Epoch seconds of a start time given in ticks after boot.
    fn start_epoch(&self, start_ticks: u64) -> u64 {
        self.boot_time + start_ticks / self.ticks_per_second
    }

    fn ticks_to_millis(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1000) / self.ticks_per_second
    }
}

/// Which kind of problem a failed read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Vanished,
    Denied,
    Malformed,
    Unreadable,
}

fn classify(err: &io::Error) -> Problem {
    // ESRCH comes from files of a process that exited after its directory was opened.
    if err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(nix::libc::ESRCH) {
        Problem::Vanished
    } else if err.kind() == io::ErrorKind::PermissionDenied {
        Problem::Denied
    } else {
        Problem::Unreadable
    }
}

/// Problems of one process; each kind is counted once per process.
#[derive(Default)]
struct Problems(ScanErrors);

impl Problems {
    fn note(&mut self, problem: Problem) {
        let count = match problem {
            Problem::Vanished => &mut self.0.vanished,
            Problem::Denied => &mut self.0.permission_denied,
            Problem::Malformed => &mut self.0.malformed,
            Problem::Unreadable => &mut self.0.unreadable,
        };
        *count = 1;
    }

    /// Reads and parses one small file of the process, noting why it failed.
    fn read<T>(
        &mut self,
        dir: &ProcDir,
        name: &str,
        parse: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<T> {
        match dir.read(name, procfs::SMALL_FILE_MAX) {
            Ok(data) => {
                let parsed = parse(&data);
                if parsed.is_none() && !data.is_empty() {
                    self.note(Problem::Malformed);
                }
                parsed
            }
            Err(err) => {
                self.note(classify(&err));
                None
            }
        }
    }

    fn into_errors(self) -> ScanErrors {
        self.0
    }
}

/// An open `/proc/PID` directory: everything about one process is read relative to it.
struct ProcDir(OwnedFd);

impl ProcDir {
    fn open(pid: u32) -> io::Result<Self> {
        File::open(format!("/proc/{pid}")).map(|dir| Self(OwnedFd::from(dir)))
    }

    /// Reads at most `max` bytes of one file of the process.
    fn read(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        let fd = openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        procfs::read_to_bound(File::from(fd), max)
    }

    fn read_link(&self, name: &str) -> io::Result<OsString> {
        Ok(readlinkat(&self.0, name)?)
    }

    /// `stat` of what a link of the process leads to (`exe`: the file it runs, even deleted).
    fn stat_target(&self, name: &str) -> io::Result<FileStat> {
        Ok(fstatat(&self.0, name, nix::fcntl::AtFlags::empty())?)
    }

    /// Opens the process's root directory, to look paths up as the process sees them.
    fn open_root(&self) -> io::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        Ok(openat(&self.0, "root", flags, Mode::empty())?)
    }
}

/// The PIDs in `/proc` (processes only: threads live under `/proc/PID/task`).
pub(crate) fn list_pids() -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Reads one process. Never fails: what cannot be read stays `None` and is counted.
pub(crate) fn observe(pid: u32, options: &CollectorOptions, clock: &Clock) -> Observed {
    observe_from(pid, options, clock, false)
}

/// Reads a process the kernel just reported executed: as [`observe`], but the command line
/// comes before everything else, even `stat`, since it goes with the process's memory the
/// moment it exits. A record with a command line but no start time (`start_ticks` `None`) is
/// a process that exited during the read.
pub(crate) fn observe_exec(pid: u32, options: &CollectorOptions, clock: &Clock) -> Observed {
    observe_from(pid, options, clock, true)
}

fn observe_from(pid: u32, options: &CollectorOptions, clock: &Clock, exec: bool) -> Observed {
    let mut problems = Problems::default();
    let mut record = ProcessRecord {
        pid,
        ..ProcessRecord::default()
    };
    let dir = ProcDir::open(pid).map_err(|err| problems.note(classify(&err)));
    let early_cmdline = match (&dir, exec) {
        (Ok(dir), true) => match dir.read("cmdline", options.cmdline_max_bytes) {
            Ok(data) => procfs::parse_cmdline(&data),
            Err(err) => {
                problems.note(classify(&err));
                None
            }
        },
        _ => None,
    };
    let stat = dir
        .as_ref()
        .ok()
        .and_then(|dir| problems.read(dir, "stat", procfs::parse_stat));
    let (Ok(dir), Some(stat)) = (dir, stat) else {
        // The process is gone, or its stat is unreadable: a record with only its PID (and
        // the command line read before, for an exec).
        record.cmdline = early_cmdline;
        return Observed {
            record,
            exe: None,
            start_ticks: None,
            cpu_ticks: None,
            errors: problems.into_errors(),
        };
    };
    let start_ticks = stat.starttime;
    let cpu_ticks = stat.utime.saturating_add(stat.stime);
    apply_stat(&mut record, stat, clock);

    // What a process loses first when it exits (its memory, so its command line, and its
    // executable link) is read first: an exec event reads a process that may live for a
    // millisecond.
    if exec {
        record.cmdline = early_cmdline;
    } else {
        match dir.read("cmdline", options.cmdline_max_bytes) {
            Ok(data) => record.cmdline = procfs::parse_cmdline(&data),
            Err(err) => problems.note(classify(&err)),
        }
    }
    let exe = read_exe(&dir, pid, &mut record, &mut problems, clock);

    record.cwd = read_link_lossy(&dir, "cwd", &mut problems);
    record.root = read_link_lossy(&dir, "root", &mut problems);

    if let Some(ids) = problems.read(&dir, "status", procfs::parse_status_ids) {
        [record.uid, record.euid, record.suid] = ids.uid.map(Some);
        [record.gid, record.egid, record.sgid] = ids.gid.map(Some);
    }

    if let Some(io) = problems.read(&dir, "io", procfs::parse_io) {
        record.disk_bytes_read = Some(io.read_bytes);
        record.disk_bytes_written = Some(io.write_bytes);
    }

    record.cgroup_path = problems.read(&dir, "cgroup", procfs::parse_cgroup);

    Observed {
        record,
        exe,
        start_ticks: Some(start_ticks),
        cpu_ticks: Some(cpu_ticks),
        errors: problems.into_errors(),
    }
}

/// The fields `stat` gives, in the schema's units.
fn apply_stat(record: &mut ProcessRecord, stat: procfs::Stat, clock: &Clock) {
    record.name = Some(stat.comm);
    record.state = Some(stat.state.to_string());
    record.parent = Some(stat.ppid);
    record.pgroup = Some(stat.pgrp);
    record.user_time = Some(clock.ticks_to_millis(stat.utime));
    record.system_time = Some(clock.ticks_to_millis(stat.stime));
    record.nice = Some(stat.nice);
    record.threads = Some(stat.num_threads);
    record.total_size = Some(stat.vsize);
    record.resident_size = Some(stat.rss_pages.saturating_mul(clock.page_size));
    record.start_time = i64::try_from(clock.start_epoch(stat.starttime)).ok();
}

/// Reads again only what changes without an event (`stat`: state, parent, CPU, memory,
/// threads) of a process read whole before (`full`), when it is still the same process
/// (same start time) and still runs the same file from the same path (its `exe` link, which
/// the kernel marks ` (deleted)` once the file is gone, matches the path read before).
/// `None` when anything else must be read again: the caller then reads the process whole.
pub(crate) fn observe_light(pid: u32, full: &Observed, clock: &Clock) -> Option<Observed> {
    // One open, one read to the end, one close: not `fs::read`, whose size probe costs a
    // `statx` and small reads for a file that says it is empty.
    let stat = File::open(format!("/proc/{pid}/stat"))
        .and_then(|file| procfs::read_to_bound(file, 4096))
        .ok()
        .and_then(|data| procfs::parse_stat(&data))?;
    if Some(stat.starttime) != full.start_ticks {
        return None;
    }
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let same_file = match (&link, &full.record.path) {
        (Some(link), Some(path)) => link.as_os_str().as_bytes() == path.as_bytes(),
        (None, None) => true,
        _ => false,
    };
    if !same_file {
        return None;
    }
    let cpu_ticks = stat.utime.saturating_add(stat.stime);
    let mut record = full.record.clone();
    apply_stat(&mut record, stat, clock);
    Some(Observed {
        record,
        exe: full.exe.clone(),
        start_ticks: full.start_ticks,
        cpu_ticks: Some(cpu_ticks),
        errors: ScanErrors::default(),
    })
}

/// Reads a link such as `cwd` or `root`, noting why it failed.
fn read_link_lossy(dir: &ProcDir, name: &str, problems: &mut Problems) -> Option<String> {
    match dir.read_link(name) {
        Ok(target) => Some(target.to_string_lossy().into_owned()),
        Err(err) => {
            problems.note(classify(&err));
            None
        }
    }
}

/// Reads the executable link and the file it leads to, and decides `on_disk`. Kernel threads
/// and zombies have no executable; that is not an error.
fn read_exe(
    dir: &ProcDir,
    pid: u32,
    record: &mut ProcessRecord,
    problems: &mut Problems,
    clock: &Clock,
) -> Option<ExeRef> {
    let raw = match dir.read_link("exe") {
        Ok(raw) => raw,
        Err(err) => {
            let problem = classify(&err);
            if problem != Problem::Vanished {
                problems.note(problem);
            }
            return None;
        }
    };
    let bytes = raw.as_bytes();
    let deleted_marker = bytes.ends_with(DELETED_MARKER);
    let shown = if deleted_marker {
        &bytes[..bytes.len() - DELETED_MARKER.len()]
    } else {
        bytes
    };
    let shown = Path::new(OsStr::from_bytes(shown));
    record.path = Some(shown.to_string_lossy().into_owned());
    let stat = match dir.stat_target("exe") {
        Ok(stat) => stat,
        Err(err) => {
            problems.note(classify(&err));
            return None;
        }
    };
    let key = FileKey::from_stat(&stat);
    record.exe_dev = Some(key.dev);
    record.exe_inode = Some(key.ino);
    let (on_disk, path) = judge(dir, Path::new(&raw), deleted_marker, shown, key, clock);
    record.on_disk = on_disk;
    record.path = Some(path.to_string_lossy().into_owned());
    Some(ExeRef {
        open_path: PathBuf::from(format!("/proc/{pid}/exe")),
        key,
    })
}

/// Decides `on_disk` as osquery defines it and one step stricter: `1` when the executable's
/// path leads to the very file the process runs (same device and inode), `0` when it leads
/// nowhere or to another file (deleted, or replaced under the same name), `-1` when that cannot
/// be told. Returns the verdict and the path to show.
///
/// The kernel writes the path as seen from procmond's root when the file is reachable from it
/// (a chrooted daemon in procmond's mount namespace shows `/usr/sbin/sshd`, not a path inside
/// its chroot), and from the process's own mount otherwise (a container shows its own paths).
/// So a process in procmond's mount namespace is judged from procmond's root, and any other
/// from its own root. Deviation: in that second case, absolute symlinks inside the path resolve
/// against procmond's root, not the process's (`openat2` with `RESOLVE_IN_ROOT` would fix it).
fn judge<'a>(
    dir: &ProcDir,
    raw: &'a Path,
    deleted_marker: bool,
    shown: &'a Path,
    key: FileKey,
    clock: &Clock,
) -> (OnDisk, &'a Path) {
    let own_view = clock.mount_ns.is_some()
        && dir.read_link("ns/mnt").ok().as_ref() != clock.mount_ns.as_ref();
    let lookup = |candidate: &Path| -> io::Result<(u64, u64)> {
        if own_view {
            let root = dir.open_root()?;
            let relative = candidate.strip_prefix("/").unwrap_or(candidate);
            let stat = fstatat(&root, relative, nix::fcntl::AtFlags::empty())?;
            Ok((stat.st_dev, stat.st_ino))
        } else {
            let meta = std::fs::metadata(candidate)?;
            Ok((meta.dev(), meta.ino()))
        }
    };
    let same_file = |found: (u64, u64)| found == (key.dev, key.ino);
    // A file whose real name ends in " (deleted)" is not deleted: check the name as given first.
    if deleted_marker && lookup(raw).is_ok_and(same_file) {
        return (OnDisk::Present, raw);
    }
    let on_disk = match lookup(shown) {
        Ok(found) if same_file(found) => OnDisk::Present,
        Ok(_) => OnDisk::Gone,
        Err(err)
            if err.kind() == io::ErrorKind::NotFound
                || err.raw_os_error() == Some(nix::libc::ENOTDIR) =>
        {
            // "Not found" also comes from a process that exited, whose root went with it:
            // only a process that is still there makes the missing file a verdict.
            if dir.read_link("root").is_ok() {
                OnDisk::Gone
            } else {
                OnDisk::Unknown
            }
        }
        Err(_) => OnDisk::Unknown,
    };
    (on_disk, shown)
}
