//! Writes the seed corpus of the `frame_decoder` fuzz target: valid frames of every message
//! type, built with the same `frame::encode` and prost messages the binaries use; and, with
//! `ledger`, the seeds of the four ledger targets (`ledger_seeds` below).
//!
//! Usage, from `fuzz/`: `cargo run --example make_seeds -- seeds/frame_decoder` and
//! `cargo run --example make_seeds -- ledger seeds` (writes `seeds/ledger_*/`).
//!
//! The output is deterministic (no clock, no pid), so running it again rewrites the same files.

use std::path::{Path, PathBuf};

use daemoneye_lib::ipc::frame::{self, MessageType};
use daemoneye_lib::ipc::proto::{self, ErrorCode, Role, Status, TaskType};
use daemoneye_lib::models::{OnDisk, ProcessRecord};
use prost::Message;

/// The fuzz target's payload limit; every seed must fit it.
const MAX_PAYLOAD: u32 = 64 * 1024;

#[path = "../fuzz_targets/ledger_fixture.rs"]
mod ledger_fixture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "ledger")
    {
        let base = std::env::args_os()
            .nth(2)
            .map_or_else(|| PathBuf::from("seeds"), PathBuf::from);
        return ledger_seeds(&base);
    }
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
    write_as(dir, &format!("{name}.bin"), bytes)
}

fn write_as(dir: &Path, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(file);
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
        ledger_damage: None,
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

/// The seeds of `ledger_entry`, `ledger_checkpoint`, `ledger_key` and `ledger_proof`, made
/// from the fixture the targets trust (`fuzz_targets/ledger_fixture.rs`): its key, its 13
/// entries and its checkpoints.
fn ledger_seeds(base: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use daemoneye_lib::ledger::HashAlg;
    use daemoneye_lib::ledger::entry::{Body, Entry, Source};
    use daemoneye_lib::ledger::note::{Checkpoint, NoteSigner};

    let fixture = ledger_fixture::Fixture::new(HashAlg::Blake3);
    let dir = |name: &str| -> std::io::Result<PathBuf> {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    };

    // ledger_entry: every kind as a whole entry, and as a kind byte plus a body (the byte
    // picks the kind name, as the target reads it), and one entry at the string limit.
    let entries = dir("ledger_entry")?;
    for entry in ledger_fixture::sample_entries(&fixture.verifier, HashAlg::Blake3) {
        let kind = entry.body.kind();
        write(&entries, &format!("entry-{kind}"), &entry.encode()?)?;
        let mut body = vec![entry.body.kind_code() - 1];
        body.extend(entry.body.encode()?);
        write(&entries, &format!("body-{kind}"), &body)?;
    }
    let long = Entry {
        source: Source::Agent,
        time_ms: -1,
        body: Body::AlertRaised {
            alert_id: "a".repeat(4096),
            rule_id: "\u{202e}\u{200b}\n".to_owned(),
            severity: String::new(),
            host: "h\u{0}".to_owned(),
        },
    };
    write(&entries, "entry-long-and-odd-strings", &long.encode()?)?;

    // ledger_checkpoint: signed checkpoints of the fixture, one with a second signature by
    // another key (which a verifier ignores), bare bodies (for parse_body), a note the
    // fixture's key did not sign.
    let checkpoints = dir("ledger_checkpoint")?;
    let stranger = NoteSigner::from_seed("stranger.example/log", [0x11; 32])?;
    for size in [0, 1, 7, 13] {
        let note = &fixture.checkpoints[size];
        write_as(
            &checkpoints,
            &format!("checkpoint-{size}.txt"),
            note.as_bytes(),
        )?;
        let body = note.rsplit_once("\n\n").map_or("", |(text, _)| text);
        write_as(
            &checkpoints,
            &format!("body-{size}.txt"),
            format!("{body}\n").as_bytes(),
        )?;
    }
    let newest = &fixture.checkpoints[fixture.checkpoints.len() - 1];
    let text = newest.rsplit_once("\n\n").map_or("", |(text, _)| text);
    let cosigned = stranger.sign(&format!("{text}\n"))?;
    let extra_line = cosigned.rsplit_once("\n\n").map_or("", |(_, sig)| sig);
    write_as(
        &checkpoints,
        "cosigned.txt",
        format!("{newest}{extra_line}").as_bytes(),
    )?;
    let foreign = Checkpoint {
        origin: "stranger.example/log".to_owned(),
        size: 2,
        root: [7; 32],
        hash: HashAlg::Sha256,
        time_ms: -5,
    }
    .sign(&stranger)?;
    write_as(&checkpoints, "foreign.txt", foreign.as_bytes())?;

    // ledger_key: the fixture's keys, another key, and the Go sumdb note test vectors.
    let keys = dir("ledger_key")?;
    write_as(
        &keys,
        "fixture.pub",
        fixture.verifier.to_string().as_bytes(),
    )?;
    write_as(
        &keys,
        "fixture.key",
        fixture.signer.secret_key_text().as_bytes(),
    )?;
    write_as(
        &keys,
        "stranger.pub",
        stranger.verifier().to_string().as_bytes(),
    )?;
    write_as(
        &keys,
        "go-peter.pub",
        b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    )?;
    write_as(
        &keys,
        "go-peter.key",
        b"PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    )?;

    // ledger_proof: inclusion and consistency proofs over the fixture that verify, and a
    // checkpoint.
    let proofs = dir("ledger_proof")?;
    for (index, size) in [(0, 1), (0, 13), (5, 13), (12, 13), (3, 7), (6, 7)] {
        let text = fixture.inclusion(index, size).to_text();
        write_as(
            &proofs,
            &format!("entry-{index}-of-{size}.proof"),
            text.as_bytes(),
        )?;
    }
    for (size1, size2) in [(2, 13), (1, 13), (4, 13), (7, 13), (13, 13), (3, 7)] {
        let text = fixture.consistency(size1, size2).to_text();
        write_as(
            &proofs,
            &format!("consistency-{size1}-to-{size2}.txt"),
            text.as_bytes(),
        )?;
    }
    write_as(&proofs, "checkpoint-13.txt", newest.as_bytes())?;

    // ledger_files: a limit byte, then the fixture's entries as entries.log frames after the
    // magic (the target reads from byte 0: the magic is itself read as a bad frame) or as
    // frames alone, and as an export's entries.bin; a torn and a zero-padded tail.
    let files = dir("ledger_files")?;
    let mut frames = vec![255];
    for entry in &fixture.entries {
        daemoneye_lib::ledger::frame::push_frame(&mut frames, entry);
    }
    write(&files, "frames", &frames)?;
    let mut padded = frames.clone();
    padded.extend([0; 24]);
    write(&files, "frames-zero-tail", &padded)?;
    write(&files, "frames-torn", &frames[..frames.len() - 3])?;
    let mut bin = Vec::new();
    for entry in &fixture.entries {
        bin.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        bin.extend_from_slice(entry);
    }
    write(&files, "entries-bin", &bin)?;
    Ok(())
}
