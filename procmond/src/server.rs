//! procmond's side of the agent link: accept connections on the socket, answer requests.
//!
//! One task per connection, at most [`MAX_CONNECTIONS`] at a time (more are refused with
//! `BUSY`). Each connection is checked before a byte is read (peer uid), then handshaken
//! (version, role: only an agent may connect), then serves requests through
//! [`rpc::serve`] until the peer closes it or sends something invalid, which closes it with a
//! `ProtocolError` naming the reason. A bad peer never stops the server: errors end the
//! connection, not the process.
//!
//! Up to [`MAX_IN_FLIGHT`] requests of a connection run at once, each answered by its id, so
//! a health check or a ledger request is answered while a scan runs. Scans run on a blocking
//! thread (the collector uses rayon), one at a time: a second scan request waits for the
//! first rather than running beside it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use daemoneye_lib::ipc::proto::{self, ErrorCode, Role, collector_request, collector_response};
use daemoneye_lib::ipc::rpc::{self, CollectorLink, Responder};
use daemoneye_lib::ipc::transport::{LocalStream, SocketListener};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, convert, features};

use crate::audit::AuditLog;
use crate::collector::{Collector, Scan, epoch_millis};
use crate::exec_events::ExecEvents;
use crate::privilege::{self, PrivilegeOutcome};
use crate::tasks::{self, TaskError};

/// The most connections served at once; procmond normally has exactly one, its agent.
pub const MAX_CONNECTIONS: usize = 4;

/// The most requests of one connection served at once (a scan, health checks, ledger
/// appends and the CLI's ledger reads in flight together).
pub const MAX_IN_FLIGHT: usize = 8;

/// What the server shares between connections.
pub struct ServerState {
    collector: Mutex<Collector>,
    limits: Limits,
    started: Instant,
    privileges: PrivilegeOutcome,
    scans_completed: AtomicU64,
    /// Unix milliseconds of the last scan's end; 0 before the first.
    last_scan_at: AtomicI64,
    /// The audit ledger, where every scan is recorded.
    audit: Arc<AuditLog>,
    /// The kernel's exec events, pushed to the agent's connection.
    exec: ExecEvents,
}

impl ServerState {
    /// The state of a server that has dropped its privileges as `privileges` says.
    pub fn new(
        collector: Collector,
        limits: Limits,
        privileges: PrivilegeOutcome,
        audit: Arc<AuditLog>,
        exec: ExecEvents,
    ) -> Self {
        Self {
            audit,
            exec,
            collector: Mutex::new(collector),
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
            ledger_damage: self.audit.damage(),
            exec_events: Some(self.exec.health()),
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
    // Exec events are offered only while they flow; the newest connection that asks for them
    // gets them (an agent has one connection; a reconnect replaces the old one).
    let features: &[&str] = if state.exec.is_on() {
        &[features::EVENTS]
    } else {
        &[]
    };
    let conn = Connection::server_handshake(
        stream,
        state.limits,
        Role::Collector,
        &[Role::Agent],
        features,
    )
    .await?;
    let pushes = conn
        .negotiated()
        .has(features::EVENTS)
        .then(|| state.exec.subscribe_connection());
    tracing::info!(
        version = conn.negotiated().version,
        agent_version = %conn.negotiated().peer_software_version,
        "agent connected"
    );
    let state = Arc::clone(state);
    rpc::serve::<CollectorLink, _, _, _>(conn, MAX_IN_FLIGHT, pushes, move |request, responder| {
        let state = Arc::clone(&state);
        async move { answer(request, &state, responder).await }
    })
    .await
}

/// Answers one request: with one response, or several parts of a large scan.
async fn answer(
    request: proto::CollectorRequest,
    state: &Arc<ServerState>,
    responder: Responder<CollectorLink>,
) {
    let id = request.request_id;
    let reply = |kind| {
        vec![proto::CollectorResponse {
            request_id: id,
            kind: Some(kind),
        }]
    };
    let outcome = match request.kind {
        Some(collector_request::Kind::Health(_)) => {
            Ok(reply(collector_response::Kind::Health(state.health())))
        }
        Some(collector_request::Kind::AppendAudit(append)) => {
            audit_blocking(state, move |audit| audit.append_from_agent(&append))
                .await
                .map(|range| {
                    reply(collector_response::Kind::AppendAudit(
                        proto::AppendAuditResult {
                            first_index: range.start,
                            count: u32::try_from(range.end - range.start).unwrap_or(u32::MAX),
                        },
                    ))
                })
        }
        Some(collector_request::Kind::Audit(request)) => {
            audit_blocking(state, move |audit| audit.answer(request))
                .await
                .map(|response| reply(collector_response::Kind::Audit(response)))
        }
        Some(collector_request::Kind::Task(task)) => {
            run_task(id, task, state, responder.send_limit()).await
        }
        None => Err(TaskError::bad("the request names no operation")),
    };
    match outcome {
        Ok(responses) => {
            for response in responses {
                if !responder.send(response).await {
                    return;
                }
            }
        }
        Err(err) => {
            responder.refuse(err.code, err.message).await;
        }
    }
}

/// Runs a ledger operation on a blocking thread: appends and checkpoints wait for fsync.
async fn audit_blocking<T: Send + 'static>(
    state: &Arc<ServerState>,
    operation: impl FnOnce(&AuditLog) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    let audit = Arc::clone(&state.audit);
    tokio::task::spawn_blocking(move || operation(&audit))
        .await
        .map_err(|err| TaskError::failed(format!("the ledger operation failed: {err}")))?
}

async fn run_task(
    id: u64,
    task: proto::DetectionTask,
    state: &Arc<ServerState>,
    send_limit: u32,
) -> Result<Vec<proto::CollectorResponse>, TaskError> {
    match proto::TaskType::try_from(task.task_type) {
        Ok(proto::TaskType::EnumerateProcesses) => {}
        Err(_) => {
            return Err(TaskError {
                code: ErrorCode::Unsupported,
                message: format!("unknown task type {}", task.task_type),
            });
        }
    }
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let scan = scan(&state);
        let summary = convert::scan_summary_to_proto(
            &scan.summary,
            &scan.errors,
            scan.hashed_files,
            scan.cached_files,
        );
        tasks::split_result(id, &task.task_id, &scan.records, summary, send_limit)
    })
    .await
    .map_err(|err| TaskError::failed(format!("the scan failed: {err}")))?
}

/// Debug builds only: while the file `DAEMONEYE_TEST_SCAN_GATE` names exists, a scan waits
/// before it reads anything (five minutes at most), so that end-to-end tests can hold a scan
/// in progress for as long as they need without depending on how fast the machine is.
/// Release builds contain none of this.
#[cfg(debug_assertions)]
fn hold_at_test_gate() {
    use std::time::Duration;
    let Some(gate) = std::env::var_os("DAEMONEYE_TEST_SCAN_GATE").map(std::path::PathBuf::from)
    else {
        return;
    };
    if !gate.exists() {
        return;
    }
    tracing::info!(gate = %gate.display(), "scan held at the test gate");
    let deadline = Instant::now() + Duration::from_secs(300);
    while gate.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scan(state: &ServerState) -> Scan {
    // A panic in an earlier scan poisons the lock but leaves the collector usable: its caches
    // are only ever replaced whole.
    let mut collector = state
        .collector
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    #[cfg(debug_assertions)]
    hold_at_test_gate();
    let scan = collector.scan();
    state.scans_completed.fetch_add(1, Ordering::Relaxed);
    state.last_scan_at.store(epoch_millis(), Ordering::Relaxed);
    tracing::info!(
        scan_id = scan.summary.scan_id,
        processes = scan.summary.process_count,
        errors = scan.summary.error_count,
        hashed_files = scan.hashed_files,
        light_reads = scan.light_reads,
        "scan complete"
    );
    state.audit.record_scan(&scan);
    scan
}
