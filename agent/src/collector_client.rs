//! The agent's end of the procmond link: requests, and the answers put back together.
//!
//! Every answer is checked as if procmond were hostile (it is the privileged side, and a
//! compromised collector must not be able to crash the agent): the request id must match,
//! a scan arrives in at most [`MAX_SCAN_RECORDS`] records (counted on the wire before a frame is
//! decoded, since a record costs a few bytes on the wire and hundreds in memory), and every
//! record must convert.

use std::path::Path;

use daemoneye_lib::ipc::proto::{
    self, Role, collector_request, collector_response::Kind as ResponseKind,
};
use daemoneye_lib::ipc::transport::{self, LocalStream, PeerPolicy};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, MessageType, conn, convert};
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::models::{ProcessRecord, ScanErrors, ScanSummary};
use tokio::io::{AsyncRead, AsyncWrite};

/// The most records one scan may have (2^18). Far above any real host (a 10,000-process host
/// is busy), and low enough that a hostile collector's scan, decoded, stays near 100 MiB.
pub const MAX_SCAN_RECORDS: usize = 256 * 1024;

/// A scan received from procmond.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedScan {
    /// Totals.
    pub summary: ScanSummary,
    /// Problems by kind.
    pub errors: ScanErrors,
    /// Executables procmond read for this scan.
    pub hashed_files: u64,
    /// Executables whose hash came from procmond's cache.
    pub cached_files: u64,
    /// One record per process.
    pub records: Vec<ProcessRecord>,
}

/// A handshaken connection to procmond (over its socket, or any stream in tests).
#[derive(Debug)]
pub struct CollectorClient<S = LocalStream> {
    conn: Connection<S>,
    next_id: u64,
    /// The server's pid as the kernel reported it (`SO_PEERCRED`), or as it said itself.
    server_pid: Option<u32>,
}

impl CollectorClient<LocalStream> {
    /// Connects to procmond's socket as the agent.
    pub async fn connect(
        path: &Path,
        limits: Limits,
        policy: &PeerPolicy,
    ) -> Result<Self, IpcError> {
        let (stream, server) = transport::connect(path, policy).await?;
        let mut client = Self::handshake(stream, limits).await?;
        // The kernel's word, not the peer's: the supervisor uses it to tell that the process
        // answering is the one it started.
        client.server_pid = server.pid;
        Ok(client)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> CollectorClient<S> {
    /// Handshakes as the agent over an already connected stream.
    pub async fn handshake(stream: S, limits: Limits) -> Result<Self, IpcError> {
        let conn =
            Connection::client_handshake(stream, limits, Role::Agent, Role::Collector).await?;
        let server_pid = conn.negotiated().peer_pid;
        Ok(Self {
            conn,
            next_id: 1,
            server_pid,
        })
    }

    /// procmond's pid, from the kernel when connected over a socket.
    pub fn server_pid(&self) -> Option<u32> {
        self.server_pid
    }

    /// Asks procmond how it is.
    pub async fn health(&mut self) -> Result<proto::CollectorHealth, IpcError> {
        let id = self
            .send(collector_request::Kind::Health(proto::HealthRequest {}))
            .await?;
        match self.recv(id).await? {
            ResponseKind::Health(health) => Ok(health),
            _ => Err(unexpected("CollectorHealth")),
        }
    }

    /// Asks procmond to append an audit entry with this body; returns its index.
    pub async fn append_audit(&mut self, body: &Body) -> Result<u64, IpcError> {
        let payload = body.encode().map_err(|err| IpcError::Decode {
            kind: MessageType::CollectorRequest,
            reason: format!("audit entry: {err}"),
        })?;
        let id = self
            .send(collector_request::Kind::AppendAudit(proto::AppendAudit {
                kind: body.kind().to_owned(),
                payload,
            }))
            .await?;
        match self.recv(id).await? {
            ResponseKind::AppendAudit(result) => Ok(result.index),
            _ => Err(unexpected("AppendAuditResult")),
        }
    }

    /// Sends a request of the ledger's read side (the CLI's, forwarded).
    pub async fn audit(
        &mut self,
        request: proto::AuditRequest,
    ) -> Result<proto::AuditResponse, IpcError> {
        let id = self.send(collector_request::Kind::Audit(request)).await?;
        match self.recv(id).await? {
            ResponseKind::Audit(response) => Ok(response),
            _ => Err(unexpected("AuditResponse")),
        }
    }

    /// Asks procmond for a scan of every process.
    pub async fn enumerate(&mut self) -> Result<ReceivedScan, IpcError> {
        self.scan(proto::TaskType::EnumerateProcesses, None).await
    }

    /// Runs a scan task (`ENUMERATE_PROCESSES` or `MONITOR_PROCESS_TREE`) and reassembles its
    /// parts.
    pub async fn scan(
        &mut self,
        task_type: proto::TaskType,
        filter: Option<proto::ProcessFilter>,
    ) -> Result<ReceivedScan, IpcError> {
        let task = proto::DetectionTask {
            task_id: format!("scan-{}", self.next_id),
            task_type: task_type as i32,
            process_filter: filter,
            ..proto::DetectionTask::default()
        };
        let id = self.send(collector_request::Kind::Task(task)).await?;
        let mut records = Vec::new();
        loop {
            let room = MAX_SCAN_RECORDS - records.len();
            let ResponseKind::Result(part) = self.recv_records(id, room).await? else {
                return Err(unexpected("DetectionResult"));
            };
            // Bounded: the part has already arrived whole, within the frame limit.
            records.reserve(part.processes.len());
            for wire in part.processes {
                records.push(ProcessRecord::try_from(wire)?);
            }
            if !part.more {
                let summary = part.scan.ok_or_else(|| IpcError::Decode {
                    kind: MessageType::CollectorResponse,
                    reason: "the last part of a scan has no summary".into(),
                })?;
                let (hashed_files, cached_files) = (summary.hashed_files, summary.cached_files);
                let (summary, errors) = convert::scan_summary_from_proto(summary);
                return Ok(ReceivedScan {
                    summary,
                    errors,
                    hashed_files,
                    cached_files,
                    records,
                });
            }
        }
    }

    /// Runs a hashing task (`CHECK_PROCESS_HASH` or `VERIFY_EXECUTABLE`).
    pub async fn hash(
        &mut self,
        task_type: proto::TaskType,
        check: proto::HashCheck,
    ) -> Result<proto::HashResult, IpcError> {
        let task = proto::DetectionTask {
            task_id: format!("hash-{}", self.next_id),
            task_type: task_type as i32,
            hash_check: Some(check),
            ..proto::DetectionTask::default()
        };
        let id = self.send(collector_request::Kind::Task(task)).await?;
        match self.recv(id).await? {
            ResponseKind::Result(proto::DetectionResult {
                hash_result: Some(found),
                ..
            }) => Ok(found),
            _ => Err(unexpected("DetectionResult with a hash")),
        }
    }

    async fn send(&mut self, kind: collector_request::Kind) -> Result<u64, IpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = proto::CollectorRequest {
            request_id: id,
            kind: Some(kind),
        };
        self.conn
            .send(MessageType::CollectorRequest, &request)
            .await?;
        Ok(id)
    }

    async fn recv(&mut self, id: u64) -> Result<ResponseKind, IpcError> {
        self.recv_records(id, 0).await
    }

    /// Receives the answer to request `id`, which may hold at most `room` process records.
    async fn recv_records(&mut self, id: u64, room: usize) -> Result<ResponseKind, IpcError> {
        let kind = MessageType::CollectorResponse;
        let (got, payload) = self.conn.read_frame().await?;
        if got != kind {
            // Let the connection name a refusal or an unexpected type as it always does.
            return Err(match got {
                MessageType::ProtocolError => {
                    let refusal: proto::ProtocolError = conn::decode(got, &payload)?;
                    IpcError::Refused {
                        code: refusal.code(),
                        message: refusal.message,
                    }
                }
                _ => IpcError::Unexpected {
                    expected: kind.name(),
                    got,
                },
            });
        }
        let count = convert::scan_records_in(&payload)?;
        if count > room {
            return Err(IpcError::Decode {
                kind,
                reason: format!(
                    "{count} process records where at most {room} more fit (a scan has at most \
                     {MAX_SCAN_RECORDS})"
                ),
            });
        }
        let response: proto::CollectorResponse = conn::decode(kind, &payload)?;
        if response.request_id != id {
            return Err(IpcError::Decode {
                kind: MessageType::CollectorResponse,
                reason: format!(
                    "an answer to request {} while waiting for request {id}",
                    response.request_id
                ),
            });
        }
        match response.kind {
            Some(ResponseKind::Error(err)) => Err(IpcError::Refused {
                code: err.code(),
                message: err.message,
            }),
            Some(kind) => Ok(kind),
            None => Err(unexpected("a response")),
        }
    }
}

fn unexpected(what: &str) -> IpcError {
    IpcError::Decode {
        kind: MessageType::CollectorResponse,
        reason: format!("the response is not {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemoneye_lib::ipc::proto::collector_response::Kind;
    use tokio::io::{DuplexStream, duplex};

    /// A fake procmond that answers the first request with `parts` (request ids rewritten to
    /// `id_offset` plus the real one), and what the client made of them.
    async fn answer(parts: Vec<Kind>, id_offset: u64) -> Result<ReceivedScan, IpcError> {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut conn: Connection<DuplexStream> =
                Connection::server_handshake(b, Limits::default(), Role::Collector, &[Role::Agent])
                    .await
                    .unwrap();
            let request: proto::CollectorRequest =
                conn.recv(MessageType::CollectorRequest).await.unwrap();
            for kind in parts {
                let response = proto::CollectorResponse {
                    request_id: request.request_id + id_offset,
                    kind: Some(kind),
                };
                conn.send(MessageType::CollectorResponse, &response)
                    .await
                    .unwrap();
            }
            // Keep the connection open until the client is done with it.
            let _ = conn.read_frame().await;
        });
        let mut client = CollectorClient::handshake(a, Limits::default())
            .await
            .unwrap();
        let result = client.enumerate().await;
        drop(client);
        server.await.unwrap();
        result
    }

    fn part(pids: &[u32], more: bool, on_disk: i32) -> Kind {
        Kind::Result(proto::DetectionResult {
            processes: pids
                .iter()
                .map(|&pid| proto::ProcessRecord {
                    pid,
                    on_disk,
                    ..Default::default()
                })
                .collect(),
            scan: (!more).then(|| proto::ScanSummary {
                scan_id: 3,
                process_count: 3,
                hashed_files: 2,
                ..Default::default()
            }),
            more,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_scan_in_parts_is_put_back_together() {
        let scan = answer(vec![part(&[1, 2], true, 1), part(&[3], false, -1)], 0)
            .await
            .unwrap();
        let pids: Vec<u32> = scan.records.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [1, 2, 3]);
        assert_eq!((scan.summary.scan_id, scan.hashed_files), (3, 2));
    }

    #[tokio::test]
    async fn a_hostile_collector_cannot_pass_bad_answers() {
        let cases = [
            (
                vec![part(&[1], false, 0)],
                1,
                "an answer to request 2 while waiting for request 1",
            ),
            (
                vec![part(&[1], false, 7)],
                0,
                "process 1: on_disk must be 1, 0 or -1, not 7",
            ),
            (
                vec![Kind::Result(proto::DetectionResult::default())],
                0,
                "the last part of a scan has no summary",
            ),
            (
                vec![Kind::Health(proto::CollectorHealth::default())],
                0,
                "the response is not DetectionResult",
            ),
            (
                vec![Kind::Result(proto::DetectionResult {
                    processes: vec![proto::ProcessRecord::default(); MAX_SCAN_RECORDS + 1],
                    ..Default::default()
                })],
                0,
                "262145 process records where at most 262144 more fit",
            ),
            (
                vec![Kind::Error(proto::RequestError {
                    code: proto::ErrorCode::Internal as i32,
                    message: "disk on fire".into(),
                })],
                0,
                "the peer refused: disk on fire",
            ),
        ];
        for (parts, offset, want) in cases {
            let err = answer(parts, offset).await.unwrap_err();
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
    }
}
