//! procmond's side of the agent link: accept connections on the socket, answer requests.
//!
//! One task per connection, at most [`MAX_CONNECTIONS`] at a time (more are refused with
//! `BUSY`). Each connection is checked before a byte is read (peer uid), then handshaken
//! (version, role: only an agent may connect), then serves requests one at a time until the
//! peer closes it or sends something invalid, which closes it with a `ProtocolError` naming the
//! reason. A bad peer never stops the server: errors end the connection, not the process.
//!
//! Scans run on a blocking thread (the collector uses rayon), one at a time: a second agent
//! request waits for the first scan rather than running a second one beside it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use daemoneye_lib::ipc::proto::{self, ErrorCode, Role, collector_request, collector_response};
use daemoneye_lib::ipc::transport::{LocalStream, SocketListener};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, MessageType, convert};

use crate::audit::AuditLog;
use crate::collector::{Collector, CollectorOptions, Scan, epoch_millis};
use crate::privilege::{self, PrivilegeOutcome};
use crate::tasks::{self, TaskError};

/// The most connections served at once; procmond normally has exactly one, its agent.
pub const MAX_CONNECTIONS: usize = 4;

/// What the server shares between connections.
pub struct ServerState {
    collector: Mutex<Collector>,
    options: CollectorOptions,
    limits: Limits,
    started: Instant,
    privileges: PrivilegeOutcome,
    scans_completed: AtomicU64,
    /// Unix milliseconds of the last scan's end; 0 before the first.
    last_scan_at: AtomicI64,
    /// The audit ledger, where every scan is recorded.
    audit: Arc<AuditLog>,
}

impl ServerState {
    /// The state of a server that has dropped its privileges as `privileges` says.
    pub fn new(
        collector: Collector,
        options: CollectorOptions,
        limits: Limits,
        privileges: PrivilegeOutcome,
        audit: Arc<AuditLog>,
    ) -> Self {
        Self {
            audit,
            collector: Mutex::new(collector),
            options,
            limits,
            started: Instant::now(),
            privileges,
            scans_completed: AtomicU64::new(0),
            last_scan_at: AtomicI64::new(0),
        }
    }

    /// Returns once no scan is running (a scan holds the collector until it is recorded).
    pub fn wait_for_scan(&self) {
        drop(
            self.collector
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    }

    fn health(&self) -> proto::CollectorHealth {
        let state = privilege::current_state();
        let last = self.last_scan_at.load(Ordering::Relaxed);
        proto::CollectorHealth {
            pid: std::process::id(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            scans_completed: self.scans_completed.load(Ordering::Relaxed),
            last_scan_at: (last != 0).then_some(last),
            privileges: Some(proto::Privileges {
                dropped: matches!(self.privileges, PrivilegeOutcome::Dropped { .. }),
                uid: state.uid,
                euid: state.euid,
                effective_caps: state.effective_caps,
                no_new_privs: state.no_new_privs,
            }),
            ledger_available: self.audit.available(),
            ledger_detail: self.audit.describe(),
        }
    }
}

/// Serves connections from `listener` until `until` completes.
pub async fn serve(
    listener: SocketListener,
    state: Arc<ServerState>,
    until: impl Future<Output = ()>,
) {
    let limits = state.limits;
    listener
        .serve(limits, MAX_CONNECTIONS, until, move |stream, peer| {
            let state = Arc::clone(&state);
            async move {
                match serve_connection(stream, &state).await {
                    Ok(()) | Err(IpcError::Closed) => {
                        tracing::info!(peer_uid = peer.uid, peer_pid = ?peer.pid, "agent disconnected");
                    }
                    Err(err) => {
                        tracing::warn!(peer_uid = peer.uid, peer_pid = ?peer.pid, error = %err, "connection closed");
                    }
                }
            }
        })
        .await;
}

async fn serve_connection(stream: LocalStream, state: &Arc<ServerState>) -> Result<(), IpcError> {
    let mut conn =
        Connection::server_handshake(stream, state.limits, Role::Collector, &[Role::Agent]).await?;
    tracing::info!(
        version = conn.negotiated().version,
        agent_version = %conn.negotiated().peer_software_version,
        "agent connected"
    );
    loop {
        let request = match conn
            .recv::<proto::CollectorRequest>(MessageType::CollectorRequest)
            .await
        {
            Ok(request) => request,
            Err(IpcError::Closed) => return Ok(()),
            Err(err) => {
                conn.refuse(&err).await;
                return Err(err);
            }
        };
        let send_limit = conn.negotiated().send_limit;
        for response in answer(request, state, send_limit).await {
            conn.send(MessageType::CollectorResponse, &response).await?;
        }
    }
}

/// The responses to one request: one, or several parts of a large scan.
async fn answer(
    request: proto::CollectorRequest,
    state: &Arc<ServerState>,
    send_limit: u32,
) -> Vec<proto::CollectorResponse> {
    let id = request.request_id;
    let reply = |kind| {
        vec![proto::CollectorResponse {
            request_id: id,
            kind: Some(kind),
        }]
    };
    let outcome = match request.kind {
        Some(collector_request::Kind::Health(_)) => {
            return reply(collector_response::Kind::Health(state.health()));
        }
        Some(collector_request::Kind::AppendAudit(append)) => {
            audit_blocking(state, move |audit| audit.append_from_agent(&append))
                .await
                .map(|index| {
                    reply(collector_response::Kind::AppendAudit(
                        proto::AppendAuditResult { index },
                    ))
                })
        }
        Some(collector_request::Kind::Audit(request)) => {
            audit_blocking(state, move |audit| audit.answer(request))
                .await
                .map(|response| reply(collector_response::Kind::Audit(response)))
        }
        Some(collector_request::Kind::Task(task)) => run_task(id, task, state, send_limit).await,
        None => Err(TaskError {
            code: ErrorCode::BadRequest,
            message: "the request names no operation".to_owned(),
        }),
    };
    outcome.unwrap_or_else(|err| {
        reply(collector_response::Kind::Error(proto::RequestError {
            code: err.code as i32,
            message: err.message,
        }))
    })
}

/// Runs a ledger operation on a blocking thread: appends and checkpoints wait for fsync.
async fn audit_blocking<T: Send + 'static>(
    state: &Arc<ServerState>,
    operation: impl FnOnce(&AuditLog) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    let audit = Arc::clone(&state.audit);
    tokio::task::spawn_blocking(move || operation(&audit))
        .await
        .map_err(|err| TaskError {
            code: ErrorCode::Internal,
            message: format!("the ledger operation failed: {err}"),
        })?
}

async fn run_task(
    id: u64,
    task: proto::DetectionTask,
    state: &Arc<ServerState>,
    send_limit: u32,
) -> Result<Vec<proto::CollectorResponse>, TaskError> {
    let kind = proto::TaskType::try_from(task.task_type).map_err(|_| TaskError {
        code: ErrorCode::Unsupported,
        message: format!("unknown task type {}", task.task_type),
    })?;
    let state = Arc::clone(state);
    let blocking = tokio::task::spawn_blocking(move || match kind {
        proto::TaskType::EnumerateProcesses | proto::TaskType::MonitorProcessTree => {
            let filter = task.process_filter.unwrap_or_default();
            if kind == proto::TaskType::MonitorProcessTree && filter.root_pid.is_none() {
                return Err(TaskError {
                    code: ErrorCode::BadRequest,
                    message: "MONITOR_PROCESS_TREE needs process_filter.root_pid".to_owned(),
                });
            }
            let scan = scan(&state);
            let summary = convert::scan_summary_to_proto(
                &scan.summary,
                &scan.errors,
                scan.hashed_files,
                scan.cached_files,
            );
            let records = tasks::filter_records(scan.records, &filter);
            tasks::split_result(id, &task.task_id, &records, summary, send_limit)
        }
        proto::TaskType::CheckProcessHash => {
            let check = task.hash_check.unwrap_or_default();
            let pid = check.pid.ok_or_else(|| TaskError {
                code: ErrorCode::BadRequest,
                message: "CHECK_PROCESS_HASH needs hash_check.pid".to_owned(),
            })?;
            let found = tasks::check_process_hash(pid, &state.options)?;
            Ok(vec![hash_result(id, task.task_id, found)])
        }
        proto::TaskType::VerifyExecutable => {
            let check = task.hash_check.unwrap_or_default();
            let path = check.path.ok_or_else(|| TaskError {
                code: ErrorCode::BadRequest,
                message: "VERIFY_EXECUTABLE needs hash_check.path".to_owned(),
            })?;
            let found =
                tasks::verify_executable(&path, check.expected_sha256.as_deref(), &state.options)?;
            Ok(vec![hash_result(id, task.task_id, found)])
        }
    });
    blocking.await.map_err(|err| TaskError {
        code: ErrorCode::Internal,
        message: format!("the task failed: {err}"),
    })?
}

fn hash_result(id: u64, task_id: String, found: proto::HashResult) -> proto::CollectorResponse {
    tasks::result(
        id,
        proto::DetectionResult {
            task_id,
            success: true,
            hash_result: Some(found),
            ..proto::DetectionResult::default()
        },
    )
}

fn scan(state: &ServerState) -> Scan {
    // A panic in an earlier scan poisons the lock but leaves the collector usable: its caches
    // are only ever replaced whole.
    let mut collector = state
        .collector
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scan = collector.scan();
    state.scans_completed.fetch_add(1, Ordering::Relaxed);
    state.last_scan_at.store(epoch_millis(), Ordering::Relaxed);
    tracing::info!(
        scan_id = scan.summary.scan_id,
        processes = scan.summary.process_count,
        errors = scan.summary.error_count,
        hashed_files = scan.hashed_files,
        "scan complete"
    );
    state.audit.record_scan(&scan);
    scan
}
