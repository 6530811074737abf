//! What procmond does for a `DetectionTask`, apart from the scan itself: filtering a scan,
//! cutting it into frames, and hashing one executable on request.
//!
//! Everything in a task came from the agent, which is trusted, but is still checked as if it
//! were not: a path must be absolute and lead to a regular executable file, an expected hash
//! must be 64 lowercase hex digits, and what is read is bounded by `collection.hash_max_bytes`
//! and the hashing time budget. procmond never returns file contents, only hashes.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use daemoneye_lib::ipc::proto::{self, ErrorCode};
use daemoneye_lib::models::ProcessRecord;
use prost::Message;

use crate::collector::CollectorOptions;
use crate::hasher::{FileKey, HashOutcome, hash_file};

/// A task that cannot be carried out, with the code the agent receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// `BAD_REQUEST` for a task that is wrong in itself, `INTERNAL` for one that failed.
    pub code: ErrorCode,
    /// One line for the operator.
    pub message: String,
}

impl TaskError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: message.into(),
        }
    }
}

/// Keeps the records `filter` selects, and for a tree the descendants of its root.
pub fn filter_records(
    records: Vec<ProcessRecord>,
    filter: &proto::ProcessFilter,
) -> Vec<ProcessRecord> {
    let tree = filter.root_pid.map(|root| descendants(&records, root));
    let pids: HashSet<u32> = filter.pids.iter().copied().collect();
    records
        .into_iter()
        .filter(|record| pids.is_empty() || pids.contains(&record.pid))
        .filter(|record| tree.as_ref().is_none_or(|tree| tree.contains(&record.pid)))
        .filter(|record| {
            filter
                .name
                .as_ref()
                .is_none_or(|name| record.name.as_ref() == Some(name))
        })
        .collect()
}

/// `root` and every process below it, following `parent` links.
fn descendants(records: &[ProcessRecord], root: u32) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for record in records {
        // A process cannot be its own parent; pid 0's "children" (init, kthreadd) are the
        // only exception, and following that loop would never end.
        if let Some(parent) = record.parent.filter(|parent| *parent != record.pid) {
            children.entry(parent).or_default().push(record.pid);
        }
    }
    let mut found = HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                queue.push(*child);
            }
        }
    }
    found
}

/// Cuts `records` into `DetectionResult` parts of at most `limit` encoded bytes each (as
/// `CollectorResponse` payloads), all but the last marked `more`; the last carries `scan`.
pub fn split_result(
    request_id: u64,
    task_id: &str,
    records: &[ProcessRecord],
    scan: proto::ScanSummary,
    limit: u32,
) -> Result<Vec<proto::CollectorResponse>, TaskError> {
    // Room for the response's own fields (request id, task id, summary) around the records.
    let overhead = 1024 + task_id.len() + scan.encoded_len();
    let budget = (limit as usize).saturating_sub(overhead);
    let mut parts = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for record in records {
        let wire = proto::ProcessRecord::from(record);
        let len = wire.encoded_len();
        let framed = 1 + prost::length_delimiter_len(len) + len;
        if framed > budget {
            return Err(TaskError::failed(format!(
                "process {} alone needs {framed} bytes, more than a frame of {limit} bytes \
                 (raise ipc.max_frame_bytes)",
                record.pid
            )));
        }
        if size + framed > budget {
            parts.push(std::mem::take(&mut current));
            size = 0;
        }
        size += framed;
        current.push(wire);
    }
    parts.push(current);
    let last = parts.len() - 1;
    let mut scan = Some(scan);
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(index, processes)| {
            let more = index != last;
            result(
                request_id,
                proto::DetectionResult {
                    task_id: task_id.to_owned(),
                    success: true,
                    processes,
                    scan: if more { None } else { scan.take() },
                    more,
                    ..proto::DetectionResult::default()
                },
            )
        })
        .collect())
}

/// A `CollectorResponse` holding `result`.
pub fn result(request_id: u64, result: proto::DetectionResult) -> proto::CollectorResponse {
    proto::CollectorResponse {
        request_id,
        kind: Some(proto::collector_response::Kind::Result(result)),
    }
}

/// `CHECK_PROCESS_HASH`: the SHA-256 of the executable process `pid` runs now, read through
/// `/proc/PID/exe` (so a deleted executable still hashes).
pub fn check_process_hash(
    pid: u32,
    options: &CollectorOptions,
) -> Result<proto::HashResult, TaskError> {
    if pid == 0 {
        return Err(TaskError::bad("hash_check.pid must be a process id, not 0"));
    }
    let exe = Path::new("/proc").join(pid.to_string()).join("exe");
    let meta = std::fs::metadata(&exe).map_err(|err| {
        TaskError::failed(format!("process {pid}: cannot stat its executable: {err}"))
    })?;
    let shown = std::fs::read_link(&exe)
        .ok()
        .map(|path| path.to_string_lossy().into_owned());
    hash_checked(&exe, FileKey::of(&meta), shown, None, options)
}

/// `VERIFY_EXECUTABLE`: the SHA-256 of the regular, executable file at `path`, compared with
/// `expected` when given.
pub fn verify_executable(
    path: &str,
    expected: Option<&str>,
    options: &CollectorOptions,
) -> Result<proto::HashResult, TaskError> {
    let file = Path::new(path);
    if !file.is_absolute() {
        return Err(TaskError::bad(format!(
            "hash_check.path {path:?} must be absolute"
        )));
    }
    if let Some(expected) = expected
        && !is_sha256_hex(expected)
    {
        return Err(TaskError::bad(format!(
            "hash_check.expected_sha256 {expected:?} is not 64 lowercase hex digits"
        )));
    }
    let meta = std::fs::metadata(file).map_err(|err| TaskError::bad(format!("{path}: {err}")))?;
    // Only executables: procmond can read any file, and hashing arbitrary ones on request
    // would make it an oracle for files such as /etc/shadow.
    if !meta.is_file() {
        return Err(TaskError::bad(format!("{path} is not a regular file")));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(TaskError::bad(format!(
            "{path} is not executable by anyone"
        )));
    }
    hash_checked(
        file,
        FileKey::of(&meta),
        Some(path.to_owned()),
        expected,
        options,
    )
}

fn hash_checked(
    open: &Path,
    key: FileKey,
    shown: Option<String>,
    expected: Option<&str>,
    options: &CollectorOptions,
) -> Result<proto::HashResult, TaskError> {
    let name = shown.clone().unwrap_or_else(|| open.display().to_string());
    let deadline = Instant::now() + options.hash_time_budget;
    match hash_file(open, key, options.hash_max_bytes, deadline) {
        HashOutcome::Hashed(sha256) => Ok(proto::HashResult {
            path: shown,
            matches: expected.map(|expected| expected == sha256),
            sha256: Some(sha256),
            size: Some(key.size),
        }),
        HashOutcome::TooLarge => Err(TaskError::failed(format!(
            "{name}: {} bytes is more than collection.hash_max_bytes ({})",
            key.size, options.hash_max_bytes
        ))),
        HashOutcome::ChangedDuringRead => Err(TaskError::failed(format!(
            "{name}: the file changed while it was read"
        ))),
        HashOutcome::BudgetExhausted => Err(TaskError::failed(format!(
            "{name}: not read within collection.hash_time_budget"
        ))),
        HashOutcome::Unreadable(kind) => Err(TaskError::failed(format!(
            "{name}: cannot be read ({kind})"
        ))),
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(pid: u32, parent: u32, name: &str) -> ProcessRecord {
        ProcessRecord {
            pid,
            parent: Some(parent),
            name: Some(name.to_owned()),
            ..ProcessRecord::default()
        }
    }

    fn table() -> Vec<ProcessRecord> {
        vec![
            record(1, 0, "init"),
            record(2, 0, "kthreadd"),
            record(10, 1, "sshd"),
            record(11, 10, "bash"),
            record(12, 11, "sleep"),
            record(13, 1, "sleep"),
        ]
    }

    fn check(filter: proto::ProcessFilter, want: &[u32]) {
        let got: Vec<u32> = filter_records(table(), &filter)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(got, want, "{filter:?}");
    }

    #[test]
    fn filters_select_by_pid_tree_and_name() {
        check(proto::ProcessFilter::default(), &[1, 2, 10, 11, 12, 13]);
        check(
            proto::ProcessFilter {
                pids: vec![13, 2, 99],
                ..Default::default()
            },
            &[2, 13],
        );
        check(
            proto::ProcessFilter {
                root_pid: Some(10),
                ..Default::default()
            },
            &[10, 11, 12],
        );
        check(
            proto::ProcessFilter {
                root_pid: Some(1),
                name: Some("sleep".into()),
                ..Default::default()
            },
            &[12, 13],
        );
        check(
            proto::ProcessFilter {
                root_pid: Some(4242),
                ..Default::default()
            },
            &[],
        );
    }

    #[test]
    fn a_parent_loop_does_not_hang_the_tree_walk() {
        let records = vec![record(5, 6, "a"), record(6, 5, "b"), record(7, 7, "c")];
        let filter = proto::ProcessFilter {
            root_pid: Some(5),
            ..Default::default()
        };
        let got: Vec<u32> = filter_records(records, &filter)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(got, [5, 6]);
    }

    #[test]
    fn a_large_scan_is_split_into_frames_that_fit() {
        let records: Vec<ProcessRecord> = (1..=5000)
            .map(|pid| ProcessRecord {
                cmdline: Some("x".repeat(200)),
                ..record(pid, 1, "worker")
            })
            .collect();
        let limit = 128 * 1024;
        let parts = split_result(9, "t", &records, proto::ScanSummary::default(), limit).unwrap();
        assert!(parts.len() > 5, "{} parts", parts.len());
        let mut pids = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            assert!(part.encoded_len() <= limit as usize);
            assert_eq!(part.request_id, 9);
            let Some(proto::collector_response::Kind::Result(result)) = &part.kind else {
                panic!("not a result");
            };
            let last = index == parts.len() - 1;
            assert_eq!(result.more, !last);
            assert_eq!(result.scan.is_some(), last);
            pids.extend(result.processes.iter().map(|p| p.pid));
        }
        assert_eq!(pids, (1..=5000).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_scan_is_one_final_part() {
        let parts = split_result(1, "t", &[], proto::ScanSummary::default(), 65536).unwrap();
        assert_eq!(parts.len(), 1);
    }

    #[test]
    fn verify_executable_refuses_what_is_not_an_executable_file() {
        let options = CollectorOptions::default();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("secret");
        std::fs::write(&plain, b"not for hashing").unwrap();
        let cases = [
            ("relative/path", None, "must be absolute"),
            (dir.path().to_str().unwrap(), None, "is not a regular file"),
            (plain.to_str().unwrap(), None, "is not executable by anyone"),
            ("/nonexistent/daemoneye", None, "No such file"),
            ("/bin/sh", Some("ABC"), "is not 64 lowercase hex digits"),
        ];
        for (path, expected, want) in cases {
            let err = verify_executable(path, expected, &options).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{path}");
            assert!(err.message.contains(want), "{path}: {}", err.message);
        }
    }

    #[test]
    fn verify_executable_hashes_and_compares() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        let mut file = std::fs::File::create(&tool).unwrap();
        file.write_all(b"abc").unwrap();
        drop(file);
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let options = CollectorOptions::default();
        let path = tool.to_str().unwrap();
        let found = verify_executable(path, Some(abc), &options).unwrap();
        assert_eq!(found.sha256.as_deref(), Some(abc));
        assert_eq!(found.matches, Some(true));
        assert_eq!(found.size, Some(3));
        let other = "0".repeat(64);
        assert_eq!(
            verify_executable(path, Some(&other), &options)
                .unwrap()
                .matches,
            Some(false)
        );
        let small = CollectorOptions {
            hash_max_bytes: 2,
            ..CollectorOptions::default()
        };
        let err = verify_executable(path, None, &small).unwrap_err();
        assert!(
            err.message.contains("more than collection.hash_max_bytes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn check_process_hash_reads_a_running_executable() {
        let found = check_process_hash(std::process::id(), &CollectorOptions::default()).unwrap();
        let me = std::env::current_exe().unwrap();
        assert_eq!(found.path.as_deref(), me.to_str());
        assert_eq!(found.size, Some(std::fs::metadata(&me).unwrap().len()));
        let reference = std::process::Command::new("sha256sum")
            .arg(&me)
            .output()
            .unwrap();
        let reference = String::from_utf8(reference.stdout).unwrap();
        assert_eq!(found.sha256.as_deref(), reference.split_whitespace().next());
        assert_eq!(
            check_process_hash(0, &CollectorOptions::default())
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }
}
