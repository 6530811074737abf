//! Writes the seed corpus of the `frame_decoder` fuzz target: valid frames of every message
//! type, built with the same `frame::encode` and prost messages the binaries use.
//!
//! Usage, from `fuzz/`: `cargo run --example make_seeds -- seeds/frame_decoder`
//!
//! The output is deterministic (no clock, no pid), so running it again rewrites the same files.

use std::path::{Path, PathBuf};

use daemoneye_lib::ipc::frame::{self, MessageType};
use daemoneye_lib::ipc::proto::{self, ErrorCode, Role, Status, TaskType};
use daemoneye_lib::models::{OnDisk, ProcessRecord};
use prost::Message;

/// The fuzz target's payload limit; every seed must fit it.
const MAX_PAYLOAD: u32 = 64 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("seeds/frame_decoder"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let mut stream = Vec::new();
    for (name, kind, payload) in seeds() {
        let bytes = frame::encode(kind, &payload, MAX_PAYLOAD)?;
        write(&dir, name, &bytes)?;
        // One seed is a whole conversation, so the fuzzer starts out reading several frames.
        if name.starts_with("stream-") {
            stream.extend_from_slice(&bytes);
        }
    }
    write(&dir, "conversation", &stream)?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.bin"));
    std::fs::write(&path, bytes)?;
    println!("{} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

/// `(file name, type, payload)` of every seed; names starting with `stream-` also go, in this
/// order, into the `conversation` seed.
fn seeds() -> Vec<(&'static str, MessageType, Vec<u8>)> {
    use MessageType as T;
    use proto::agent_request::Kind as AgentRequestKind;
    use proto::agent_response::Kind as AgentResponseKind;
    use proto::collector_request::Kind as CollectorRequestKind;
    use proto::collector_response::Kind as CollectorResponseKind;

    let health = proto::CollectorHealth {
        pid: 4242,
        software_version: "0.1.0".to_owned(),
        uptime_ms: 86_400_000,
        scans_completed: 17,
        last_scan_at: Some(1_700_000_000_000),
        privileges: Some(proto::Privileges {
            dropped: true,
            uid: 998,
            euid: 998,
            effective_caps: 0x0000_0000_0000_0004,
            no_new_privs: true,
        }),
        ledger_available: true,
        ledger_detail: "12 entries (blake3), newest checkpoint at size 10".to_owned(),
    };
    let scan = proto::DetectionResult {
        task_id: "scan-1".to_owned(),
        success: true,
        error_message: None,
        processes: vec![
            proto::ProcessRecord::from(&full_record()),
            proto::ProcessRecord::from(&ProcessRecord {
                pid: 2,
                name: Some("kthreadd".to_owned()),
                on_disk: OnDisk::Unknown,
                scan_id: 1,
                collected_at: 1_700_000_000_000,
                ..ProcessRecord::default()
            }),
        ],
        scan: Some(proto::ScanSummary {
            scan_id: 1,
            started_at: 1_699_999_999_000,
            finished_at: 1_700_000_000_000,
            process_count: 2,
            error_count: 1,
            errors: Some(proto::ScanErrors {
                vanished: 1,
                ..proto::ScanErrors::default()
            }),
            hashed_files: 1,
            cached_files: 0,
        }),
        more: false,
    };

    vec![
        (
            "stream-hello-agent",
            T::Hello,
            proto::Hello {
                min_version: 2,
                max_version: 2,
                role: Role::Agent as i32,
                software_version: "0.1.0".to_owned(),
                max_frame_bytes: u64::from(frame::DEFAULT_MAX_FRAME_BYTES),
                features: vec!["events".to_owned()],
            }
            .encode_to_vec(),
        ),
        (
            "hello-cli-future-versions",
            T::Hello,
            proto::Hello {
                min_version: 2,
                max_version: 9,
                role: Role::Cli as i32,
                software_version: "9.0.0".to_owned(),
                max_frame_bytes: u64::MAX,
                features: Vec::new(),
            }
            .encode_to_vec(),
        ),
        (
            "stream-welcome-collector",
            T::Welcome,
            proto::Welcome {
                version: 2,
                role: Role::Collector as i32,
                software_version: "0.1.0".to_owned(),
                pid: 4242,
                max_frame_bytes: u64::from(frame::DEFAULT_MAX_FRAME_BYTES),
                features: vec!["events".to_owned()],
            }
            .encode_to_vec(),
        ),
        // Every field at its default: the payload is empty.
        ("welcome-empty", T::Welcome, Vec::new()),
        (
            "protocol-error-incompatible",
            T::ProtocolError,
            proto::ProtocolError {
                code: ErrorCode::IncompatibleVersion as i32,
                message: "incompatible protocol: the peer speaks versions 2..=9".to_owned(),
            }
            .encode_to_vec(),
        ),
        (
            "protocol-error-bad-frame",
            T::ProtocolError,
            proto::ProtocolError {
                code: ErrorCode::BadFrame as i32,
                message: "bad frame from peer: frame checksum mismatch".to_owned(),
            }
            .encode_to_vec(),
        ),
        (
            "stream-collector-request-enumerate",
            T::CollectorRequest,
            proto::CollectorRequest {
                request_id: 1,
                kind: Some(CollectorRequestKind::Task(proto::DetectionTask {
                    task_id: "scan-1".to_owned(),
                    task_type: TaskType::EnumerateProcesses as i32,
                    metadata: Some("{\"reason\":\"schedule\"}".to_owned()),
                })),
            }
            .encode_to_vec(),
        ),
        (
            "collector-request-health",
            T::CollectorRequest,
            proto::CollectorRequest {
                request_id: 3,
                kind: Some(CollectorRequestKind::Health(proto::HealthRequest {})),
            }
            .encode_to_vec(),
        ),
        (
            "collector-request-append-audit",
            T::CollectorRequest,
            proto::CollectorRequest {
                request_id: 4,
                kind: Some(CollectorRequestKind::AppendAudit(proto::AppendAudit {
                    entries: vec![
                        proto::AuditEntryBody {
                            kind: "scan".to_owned(),
                            payload: vec![0, 1, 2, 3, 0xff],
                        },
                        proto::AuditEntryBody {
                            kind: "agent_started".to_owned(),
                            payload: vec![0, 1, b'1', 0, 0, 0, 9],
                        },
                    ],
                })),
            }
            .encode_to_vec(),
        ),
        (
            "stream-collector-response-scan",
            T::CollectorResponse,
            proto::CollectorResponse {
                request_id: 1,
                kind: Some(CollectorResponseKind::Result(scan)),
            }
            .encode_to_vec(),
        ),
        (
            "collector-response-health",
            T::CollectorResponse,
            proto::CollectorResponse {
                request_id: 3,
                kind: Some(CollectorResponseKind::Health(health.clone())),
            }
            .encode_to_vec(),
        ),
        (
            "collector-response-append-audit",
            T::CollectorResponse,
            proto::CollectorResponse {
                request_id: 4,
                kind: Some(CollectorResponseKind::AppendAudit(
                    proto::AppendAuditResult {
                        first_index: 41,
                        count: 2,
                    },
                )),
            }
            .encode_to_vec(),
        ),
        (
            "collector-response-error",
            T::CollectorResponse,
            proto::CollectorResponse {
                request_id: 5,
                kind: Some(CollectorResponseKind::Error(proto::RequestError {
                    code: ErrorCode::Unsupported as i32,
                    message: "task type 9 is not supported".to_owned(),
                })),
            }
            .encode_to_vec(),
        ),
        (
            "agent-request-health",
            T::AgentRequest,
            proto::AgentRequest {
                request_id: 1,
                kind: Some(AgentRequestKind::Health(proto::HealthRequest {})),
            }
            .encode_to_vec(),
        ),
        (
            "agent-request-empty",
            T::AgentRequest,
            proto::AgentRequest {
                request_id: 2,
                kind: None,
            }
            .encode_to_vec(),
        ),
        (
            "agent-response-health",
            T::AgentResponse,
            proto::AgentResponse {
                request_id: 1,
                kind: Some(AgentResponseKind::Health(proto::AgentHealth {
                    overall: Status::Degraded as i32,
                    components: vec![
                        proto::ComponentHealth {
                            name: "agent".to_owned(),
                            status: Status::Ok as i32,
                            detail: "running".to_owned(),
                        },
                        proto::ComponentHealth {
                            name: "procmond".to_owned(),
                            status: Status::Degraded as i32,
                            detail: "restarted 2 times".to_owned(),
                        },
                    ],
                    agent_pid: 4241,
                    software_version: "0.1.0".to_owned(),
                    uptime_ms: 86_400_000,
                    collector_pid: Some(4242),
                    collector_restarts: 2,
                    collector_last_exit: Some("killed by signal 9".to_owned()),
                    collector: Some(health),
                    scans_completed: 17,
                    last_scan_at: Some(1_700_000_000_000),
                    last_scan_processes: Some(312),
                })),
            }
            .encode_to_vec(),
        ),
        (
            "agent-response-error",
            T::AgentResponse,
            proto::AgentResponse {
                request_id: 2,
                kind: Some(AgentResponseKind::Error(proto::RequestError {
                    code: ErrorCode::BadRequest as i32,
                    message: "the request names no operation".to_owned(),
                })),
            }
            .encode_to_vec(),
        ),
    ]
}

/// A process with every field known, so the seed carries every `ProcessRecord` field number.
fn full_record() -> ProcessRecord {
    ProcessRecord {
        pid: 4242,
        parent: Some(1),
        name: Some("sshd".to_owned()),
        path: Some("/usr/sbin/sshd".to_owned()),
        cmdline: Some("/usr/sbin/sshd -D".to_owned()),
        cwd: Some("/".to_owned()),
        root: Some("/".to_owned()),
        state: Some("S".to_owned()),
        uid: Some(0),
        gid: Some(0),
        euid: Some(0),
        egid: Some(0),
        suid: Some(0),
        sgid: Some(0),
        on_disk: OnDisk::Present,
        resident_size: Some(8_388_608),
        total_size: Some(16_777_216),
        user_time: Some(120),
        system_time: Some(40),
        disk_bytes_read: Some(4096),
        disk_bytes_written: Some(0),
        start_time: Some(1_699_990_000),
        pgroup: Some(4242),
        threads: Some(1),
        nice: Some(-5),
        cgroup_path: Some("/system.slice/ssh.service".to_owned()),
        exe_sha256: Some("ef".repeat(32)),
        exe_dev: Some(2049),
        exe_inode: Some(131_072),
        cpu_percent: Some(0.5),
        scan_id: 1,
        collected_at: 1_700_000_000_000,
    }
}
