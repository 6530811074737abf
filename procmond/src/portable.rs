//! Platforms other than Linux: `sysinfo` alone.
//!
//! What `sysinfo` cannot see on these platforms stays unknown (`None`): saved ids, state
//! letter, process group, threads, nice, separate user and system CPU time, cgroup path,
//! executable device and inode, and `on_disk` (always `-1`). [`UNSEEN_COLUMNS`] lists them so
//! that `procmond` can say so at start-up.

use std::path::PathBuf;

use daemoneye_lib::models::{ProcessRecord, ScanErrors};

use crate::collector::{CollectorOptions, ExeRef, Observed};
use crate::hasher::FileKey;

/// Columns this platform leaves unknown.
pub const UNSEEN_COLUMNS: &[&str] = &[
    "suid",
    "sgid",
    "state",
    "pgroup",
    "threads",
    "nice",
    "user_time",
    "system_time",
    "cgroup_path",
    "exe_dev",
    "exe_inode",
    "on_disk",
];

/// Reads one process from what `sysinfo` collected.
pub(crate) fn observe(process: &sysinfo::Process, options: &CollectorOptions) -> Observed {
    let cmdline = process
        .cmd()
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmdline = cmdline;
    let max = usize::try_from(options.cmdline_max_bytes).unwrap_or(usize::MAX);
    if cmdline.len() > max {
        let mut end = max;
        while !cmdline.is_char_boundary(end) {
            end -= 1;
        }
        cmdline.truncate(end);
    }
    let usage = process.disk_usage();
    let record = ProcessRecord {
        pid: process.pid().as_u32(),
        parent: process.parent().map(|p| p.as_u32()),
        name: Some(process.name().to_string_lossy().into_owned()),
        path: process.exe().map(|p| p.to_string_lossy().into_owned()),
        cmdline: (!cmdline.is_empty()).then_some(cmdline),
        cwd: process.cwd().map(|p| p.to_string_lossy().into_owned()),
        root: process.root().map(|p| p.to_string_lossy().into_owned()),
        uid: process.user_id().map(|u| **u),
        euid: process.effective_user_id().map(|u| **u),
        gid: process.group_id().map(|g| *g),
        egid: process.effective_group_id().map(|g| *g),
        resident_size: Some(process.memory()),
        total_size: Some(process.virtual_memory()),
        disk_bytes_read: Some(usage.total_read_bytes),
        disk_bytes_written: Some(usage.total_written_bytes),
        start_time: i64::try_from(process.start_time()).ok(),
        cpu_percent: Some(f64::from(process.cpu_usage())),
        ..ProcessRecord::default()
    };
    let exe = process.exe().and_then(|path| {
        let meta = std::fs::metadata(path).ok()?;
        Some(ExeRef {
            open_path: PathBuf::from(path),
            key: FileKey::of(&meta),
        })
    });
    Observed {
        record,
        exe,
        start_ticks: Some(process.start_time()),
        cpu_ticks: None,
        errors: ScanErrors::default(),
    }
}
