//! The agent's end of the procmond link: typed requests over [`rpc::Client`], and a scan put
//! back together from its parts.
//!
//! Several requests may be in flight at once (a scan, health checks, ledger appends, the
//! CLI's ledger reads); each answer reaches its own waiter, so none waits behind a scan.
//! Every answer is checked as if procmond were hostile (it is the privileged side, and a
//! compromised collector must not be able to crash the agent): [`rpc`] checks ids and counts
//! records on the wire before a frame is decoded, a scan holds at most [`MAX_SCAN_RECORDS`]
//! records in all, and every record must convert.

use std::ops::Range;
use std::path::Path;

use daemoneye_lib::ipc::proto::{
    self, Role, collector_request, collector_response::Kind as ResponseKind,
};
use daemoneye_lib::ipc::rpc::{self, CollectorLink};
use daemoneye_lib::ipc::transport::{self, PeerPolicy};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, MessageType, convert, features};
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::models::{ProcessRecord, ScanErrors, ScanSummary};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The most records one scan may have (2^18). Far above any real host (a 10,000-process host
/// is busy), and low enough that a hostile collector's scan, decoded, stays near 100 MiB.
pub const MAX_SCAN_RECORDS: usize = 256 * 1024;

/// Pushed batches of exec events the link holds before it counts the next ones as dropped:
/// at one batch every few milliseconds, about a second of events.
pub const PUSH_QUEUE: usize = 256;

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

/// A handshaken link to procmond; clones share the connection.
#[derive(Debug, Clone)]
pub struct ProcmondLink {
    client: rpc::Client<CollectorLink>,
    /// The server's pid as the kernel reported it (`SO_PEERCRED`), or as it said itself.
    server_pid: Option<u32>,
}

impl ProcmondLink {
    /// Connects to procmond's socket as the agent, asking for no pushed events.
    pub async fn connect(
        path: &Path,
        limits: Limits,
        policy: &PeerPolicy,
    ) -> Result<Self, IpcError> {
        Ok(Self::connect_with(path, limits, policy, false).await?.0)
    }

    /// Connects to procmond's socket as the agent; with `events`, offers the `events` feature
    /// and returns the queue of what procmond pushes when it agreed (`None` when it did not:
    /// its exec events are off, and its health says why).
    pub async fn connect_with(
        path: &Path,
        limits: Limits,
        policy: &PeerPolicy,
        events: bool,
    ) -> Result<(Self, Option<mpsc::Receiver<proto::CollectorPush>>), IpcError> {
        let (stream, server) = transport::connect(path, policy).await?;
        let (mut link, pushes) = Self::handshake_with(stream, limits, events).await?;
        // The kernel's word, not the peer's: the supervisor uses it to tell that the process
        // answering is the one it started.
        link.server_pid = server.pid;
        Ok((link, pushes))
    }

    /// Handshakes as the agent over an already connected stream, asking for no events.
    pub async fn handshake<S>(stream: S, limits: Limits) -> Result<Self, IpcError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Ok(Self::handshake_with(stream, limits, false).await?.0)
    }

    /// Handshakes as the agent, offering the `events` feature when `events` is set.
    pub async fn handshake_with<S>(
        stream: S,
        limits: Limits,
        events: bool,
    ) -> Result<(Self, Option<mpsc::Receiver<proto::CollectorPush>>), IpcError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let offered: &[&str] = if events { &[features::EVENTS] } else { &[] };
        let conn =
            Connection::client_handshake(stream, limits, Role::Agent, Role::Collector, offered)
                .await?;
        let server_pid = conn.negotiated().peer_pid;
        let agreed = conn.negotiated().has(features::EVENTS);
        // Without the feature nothing is pushed; a queue of one holds nothing.
        let (client, pushes) = rpc::Client::new(conn, if agreed { PUSH_QUEUE } else { 1 });
        Ok((Self { client, server_pid }, agreed.then_some(pushes)))
    }

    /// Pushed batches that arrived while the queue was full (the agent fell behind).
    pub fn pushes_dropped(&self) -> u64 {
        self.client.pushes_dropped()
    }

    /// procmond's pid, from the kernel when connected over a socket.
    pub fn server_pid(&self) -> Option<u32> {
        self.server_pid
    }

    /// Why the connection ended, once it has.
    pub fn ended(&self) -> Option<String> {
        self.client.ended()
    }

    /// Whether `other` is a clone of this link (the same connection).
    pub fn same(&self, other: &Self) -> bool {
        self.client.same_connection(&other.client)
    }

    /// Asks procmond how it is.
    pub async fn health(&self) -> Result<proto::CollectorHealth, IpcError> {
        self.client.ask(proto::HealthRequest {}).await
    }

    /// Asks procmond to append these entries, in order, with one `fdatasync`; returns their
    /// indexes.
    pub async fn append_audit(&self, bodies: &[Body]) -> Result<Range<u64>, IpcError> {
        let mut entries = Vec::with_capacity(bodies.len());
        for body in bodies {
            let payload = body.encode().map_err(|err| IpcError::Decode {
                kind: MessageType::CollectorRequest,
                reason: format!("audit entry: {err}"),
            })?;
            entries.push(proto::AuditEntryBody {
                kind: body.kind().to_owned(),
                payload,
            });
        }
        let result = self.client.ask(proto::AppendAudit { entries }).await?;
        if result.count as usize != bodies.len() {
            return Err(unexpected("AppendAuditResult for the whole batch"));
        }
        Ok(result.first_index..result.first_index + u64::from(result.count))
    }

    /// Sends a request of the ledger's read side (the CLI's, forwarded).
    pub async fn audit(
        &self,
        request: proto::AuditRequest,
    ) -> Result<proto::AuditResponse, IpcError> {
        self.client.ask(request).await
    }

    /// Asks procmond for a scan of every process and puts its parts back together.
    pub async fn scan(&self) -> Result<ReceivedScan, IpcError> {
        let task = proto::DetectionTask {
            task_id: "scan".to_owned(),
            task_type: proto::TaskType::EnumerateProcesses as i32,
            ..proto::DetectionTask::default()
        };
        let mut answer = self
            .client
            .start(request(collector_request::Kind::Task(task)))
            .await?;
        let mut records = Vec::new();
        while let Some(part) = answer.next().await {
            let ResponseKind::Result(part) = kind_of(part?)? else {
                return Err(unexpected("DetectionResult"));
            };
            let room = MAX_SCAN_RECORDS - records.len();
            if part.processes.len() > room {
                return Err(IpcError::Decode {
                    kind: MessageType::CollectorResponse,
                    reason: format!(
                        "{} process records where at most {room} more fit (a scan has at most \
                         {MAX_SCAN_RECORDS})",
                        part.processes.len()
                    ),
                });
            }
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
        Err(IpcError::Lost {
            reason: "the scan ended without its last part".to_owned(),
        })
    }
}

fn request(kind: collector_request::Kind) -> proto::CollectorRequest {
    proto::CollectorRequest {
        request_id: 0,
        kind: Some(kind),
    }
}

/// The kind of a response; a `RequestError` becomes [`IpcError::Refused`].
fn kind_of(response: proto::CollectorResponse) -> Result<ResponseKind, IpcError> {
    match response.kind {
        Some(ResponseKind::Error(err)) => Err(IpcError::Refused {
            code: err.code(),
            message: err.message,
        }),
        Some(kind) => Ok(kind),
        None => Err(unexpected("a response")),
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
    /// `id_offset` plus the real one), and what the link made of them.
    async fn answer(parts: Vec<Kind>, id_offset: u64) -> Result<ReceivedScan, IpcError> {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut conn: Connection<DuplexStream> = Connection::server_handshake(
                b,
                Limits::default(),
                Role::Collector,
                &[Role::Agent],
                &[],
            )
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
        let link = ProcmondLink::handshake(a, Limits::default()).await.unwrap();
        let result = link.scan().await;
        drop(link);
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
                "the peer answered request 2, which was never sent",
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
                    processes: vec![
                        proto::ProcessRecord::default();
                        rpc::MAX_RECORDS_PER_FRAME + 1
                    ],
                    ..Default::default()
                })],
                0,
                "262145 process records in one frame",
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

    #[tokio::test]
    async fn a_scan_larger_than_a_scan_may_be_is_refused_part_by_part() {
        let pids: Vec<u32> = (0..200_000).collect();
        let err = answer(vec![part(&pids, true, 1), part(&pids, false, 1)], 0)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("where at most 62144 more fit"),
            "{err}"
        );
    }
}
