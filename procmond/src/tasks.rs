//! What procmond does with a scan before it crosses the link: cutting it into frames that fit
//! the agent's limit, and the error a request that cannot be carried out gets.
//!
//! Protocol version 1 also had tasks that hashed one executable by pid or by path and scanned
//! one process tree. Nothing in production asked for them, and privileged code without a
//! caller is attack surface without a purpose, so version 2 removed them: a scan hashes every
//! running executable already (through `/proc/PID/exe`, with the same capabilities).

use daemoneye_lib::ipc::proto::{self, ErrorCode};
use daemoneye_lib::models::ProcessRecord;
use prost::Message;

/// A request that cannot be carried out, with the code the agent receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// `BAD_REQUEST` for a request that is wrong in itself, `INTERNAL` for one that failed.
    pub code: ErrorCode,
    /// One line for the operator.
    pub message: String,
}

impl TaskError {
    /// A request that is wrong in itself.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    /// A request that failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: message.into(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, parent: u32, name: &str) -> ProcessRecord {
        ProcessRecord {
            pid,
            parent: Some(parent),
            name: Some(name.to_owned()),
            ..ProcessRecord::default()
        }
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
}
