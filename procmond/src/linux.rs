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
//! Each process is read from its own `/proc/PID` directory in a fixed order: `stat` first
//! (which gives the start time, the process's identity together with the PID), then the other
//! files. Values remembered from an earlier scan (cgroup path, root directory) are reused only
//! for the same PID *and* start time, so that a reused PID never inherits another process's
//! facts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use daemoneye_lib::models::{OnDisk, ProcessRecord, ScanErrors};
use nix::unistd::{SysconfVar, sysconf};

use crate::collector::{CollectorOptions, ExeLink, ExeRef, Observed, Previous};
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
struct Problems(Vec<Problem>);

impl Problems {
    fn note(&mut self, problem: Problem) {
        if !self.0.contains(&problem) {
            self.0.push(problem);
        }
    }

    /// Reads and parses one file, noting why it failed.
    fn read<T>(&mut self, path: &Path, parse: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        match procfs::read_small(path) {
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
        let mut errors = ScanErrors::default();
        for problem in self.0 {
            match problem {
                Problem::Vanished => errors.vanished = 1,
                Problem::Denied => errors.permission_denied = 1,
                Problem::Malformed => errors.malformed = 1,
                Problem::Unreadable => errors.unreadable = 1,
            }
        }
        errors
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
pub(crate) fn observe(
    pid: u32,
    previous: &HashMap<u32, Previous>,
    options: &CollectorOptions,
    clock: &Clock,
) -> Observed {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let mut problems = Problems::default();
    let mut record = ProcessRecord {
        pid,
        ..ProcessRecord::default()
    };

    let stat = problems.read(&dir.join("stat"), procfs::parse_stat);
    let Some(stat) = stat else {
        // The process is gone, or its stat is unreadable: a record with only its PID.
        return Observed {
            record,
            exe: None,
            exe_link: None,
            start_ticks: None,
            cpu_ticks: None,
            errors: problems.into_errors(),
        };
    };
    let start_ticks = stat.starttime;
    let same_as_before = previous.get(&pid).filter(|p| p.start_ticks == start_ticks);
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
    let start_epoch = clock.start_epoch(start_ticks);
    record.start_time = i64::try_from(start_epoch).ok();

    record.cwd = read_link_lossy(&dir.join("cwd"), &mut problems);
    record.root = match same_as_before {
        Some(before) if before.root.is_some() => before.root.clone(),
        _ => read_link_lossy(&dir.join("root"), &mut problems),
    };

    if let Some(ids) = problems.read(&dir.join("status"), procfs::parse_status_ids) {
        [record.uid, record.euid, record.suid] = ids.uid.map(Some);
        [record.gid, record.egid, record.sgid] = ids.gid.map(Some);
    }

    match procfs::read_bounded(&dir.join("cmdline"), options.cmdline_max_bytes) {
        Ok(data) => record.cmdline = procfs::parse_cmdline(&data),
        Err(err) => problems.note(classify(&err)),
    }

    if let Some(io) = problems.read(&dir.join("io"), procfs::parse_io) {
        record.disk_bytes_read = Some(io.read_bytes);
        record.disk_bytes_written = Some(io.write_bytes);
    }

    record.cgroup_path = match same_as_before {
        Some(before) if before.cgroup_path.is_some() => before.cgroup_path.clone(),
        _ => problems.read(&dir.join("cgroup"), procfs::parse_cgroup),
    };

    let (exe, exe_link) = read_exe(&dir, &mut record, &mut problems);

    Observed {
        record,
        exe,
        exe_link,
        start_ticks: Some(start_ticks),
        cpu_ticks: Some(stat.utime.saturating_add(stat.stime)),
        errors: problems.into_errors(),
    }
}

/// Reads a link such as `cwd` or `root`, noting why it failed.
fn read_link_lossy(path: &Path, problems: &mut Problems) -> Option<String> {
    match std::fs::read_link(path) {
        Ok(target) => Some(target.to_string_lossy().into_owned()),
        Err(err) => {
            problems.note(classify(&err));
            None
        }
    }
}

/// Reads the executable link and the file it leads to. Kernel threads and zombies have no
/// executable; that is not an error.
fn read_exe(
    dir: &Path,
    record: &mut ProcessRecord,
    problems: &mut Problems,
) -> (Option<ExeRef>, Option<ExeLink>) {
    let link_path = dir.join("exe");
    let raw = match std::fs::read_link(&link_path) {
        Ok(raw) => raw,
        Err(err) => {
            let problem = classify(&err);
            if problem != Problem::Vanished {
                problems.note(problem);
            }
            return (None, None);
        }
    };
    let bytes = raw.as_os_str().as_bytes();
    let deleted_marker = bytes.ends_with(DELETED_MARKER);
    let shown = if deleted_marker {
        &bytes[..bytes.len() - DELETED_MARKER.len()]
    } else {
        bytes
    };
    record.path = Some(OsStr::from_bytes(shown).to_string_lossy().into_owned());
    let link = ExeLink {
        raw,
        deleted_marker,
    };
    // `stat` through the magic link reaches the file the process runs, even when deleted.
    match std::fs::metadata(&link_path) {
        Ok(meta) => {
            record.exe_dev = Some(meta.dev());
            record.exe_inode = Some(meta.ino());
            let exe = ExeRef {
                open_path: link_path,
                key: FileKey::of(&meta),
            };
            (Some(exe), Some(link))
        }
        Err(err) => {
            problems.note(classify(&err));
            (None, Some(link))
        }
    }
}

/// Root directory, raw executable link, device and inode: what makes two verdicts the same.
type JudgedKey = (Option<String>, PathBuf, u64, u64);

/// Sets `on_disk` for every record, as osquery defines it and one step stricter: `1` when the
/// executable's path (seen from the process's own root, so that containers are judged by their
/// own filesystem) leads to the very file the process runs, `0` when it leads nowhere or to
/// another file (deleted, or replaced under the same name), `-1` when that cannot be told.
///
/// Processes that share a root, a path and a file are judged once.
pub(crate) fn settle_on_disk(observed: &mut [Observed]) {
    let mut judged: HashMap<JudgedKey, (OnDisk, Option<String>)> = HashMap::new();
    for o in observed.iter_mut() {
        let (Some(link), Some(exe)) = (&o.exe_link, &o.exe) else {
            continue;
        };
        let key = (
            o.record.root.clone(),
            link.raw.clone(),
            exe.key.dev,
            exe.key.ino,
        );
        let pid = o.record.pid;
        let path = o.record.path.clone();
        let (on_disk, shown) = judged
            .entry(key)
            .or_insert_with(|| judge(pid, link, path, exe.key))
            .clone();
        o.record.on_disk = on_disk;
        o.record.path = shown;
    }
}

fn judge(pid: u32, link: &ExeLink, path: Option<String>, key: FileKey) -> (OnDisk, Option<String>) {
    let under_root = |candidate: &Path| {
        let mut full = PathBuf::from(format!("/proc/{pid}/root"));
        full.push(candidate.strip_prefix("/").unwrap_or(candidate));
        std::fs::metadata(full)
    };
    let same_file = |meta: &std::fs::Metadata| meta.dev() == key.dev && meta.ino() == key.ino;
    // A file whose real name ends in " (deleted)" is not deleted: check the name as given first.
    if link.deleted_marker
        && let Ok(meta) = under_root(&link.raw)
        && same_file(&meta)
    {
        return (
            OnDisk::Present,
            Some(link.raw.to_string_lossy().into_owned()),
        );
    }
    let Some(shown) = path else {
        return (OnDisk::Unknown, None);
    };
    let on_disk = match under_root(Path::new(&shown)) {
        Ok(meta) if same_file(&meta) => OnDisk::Present,
        Ok(_) => OnDisk::Gone,
        Err(err)
            if err.kind() == io::ErrorKind::NotFound
                || err.raw_os_error() == Some(nix::libc::ENOTDIR) =>
        {
            // "Not found" also comes from a process that exited, whose root is gone with it:
            // only a root that is still there makes the missing file a verdict.
            if std::fs::metadata(format!("/proc/{pid}/root")).is_ok() {
                OnDisk::Gone
            } else {
                OnDisk::Unknown
            }
        }
        Err(_) => OnDisk::Unknown,
    };
    (on_disk, Some(shown))
}
