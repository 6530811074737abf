//! The agent's side of the CLI link (`<data_dir>/run/agent.sock`): one dispatcher, one module
//! per area.
//!
//! The CLI connects as `ROLE_CLI`; each connection is checked (peer uid), handshaken, then
//! served by [`rpc::serve`]: several requests of one connection may run at once, each
//! answered by its id. [`dispatch`] sends each request to its area:
//!
//! | request | module | reads |
//! | --- | --- | --- |
//! | health | [`health`] | the supervisor's status, the scan statistics, how the store opened |
//! | query | [`query`] | the store, in a sandbox of the query's own |
//! | alerts, ack | [`alerts`] | the store |
//! | rules | [`rules`] | the rule set the pipeline published |
//! | audit | [`ledger`] | procmond's ledger, through the procmond link |
//! | alerts export | [`export`] | the outbox, and procmond's ledger (it appends one entry) |
//! | outbox status, send-test | [`outbox`] | the store's outbox and the sinks' live state |
//!
//! Nothing here takes the pipeline's lock or waits for a scan: the pipeline runs on its own
//! thread and publishes what the CLI may read.

pub mod alerts;
pub mod bundles;
pub mod export;
pub mod health;
pub mod ledger;
pub mod outbox;
pub mod query;
pub mod rules;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use daemoneye_lib::detection::sandbox;
use daemoneye_lib::ipc::proto::{self, ErrorCode, Role, agent_request, agent_response};
use daemoneye_lib::ipc::rpc::{self, AgentLink, Responder};
use daemoneye_lib::ipc::transport::{LocalStream, SocketListener};
use daemoneye_lib::ipc::{Connection, IpcError, Limits};
use daemoneye_lib::storage::Store;
use tokio::sync::Semaphore;

use crate::bundle_service::BundleService;
use crate::outbox::deliver::Outbox;
use crate::pipeline::PipelineHandle;
use crate::supervisor::Supervisor;

/// The most CLI connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// The most requests of one CLI connection served at once.
const MAX_IN_FLIGHT: usize = 4;
/// The most CLI queries running at once (each has a sandbox and its rows in memory).
const MAX_QUERIES: usize = 2;

/// What the agent knows of its scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Scans received from procmond.
    pub completed: u64,
    /// Unix milliseconds when the last scan ended.
    pub last_at: Option<i64>,
    /// Processes in the last scan.
    pub last_processes: Option<u64>,
    /// Why the last attempt failed, if it did (cleared by the next success).
    pub last_error: Option<String>,
}

/// What the CLI server shares with the rest of the agent.
pub struct AgentState {
    started: Instant,
    supervisor: Supervisor,
    limits: Limits,
    store: Arc<Store>,
    /// How the store was opened, for health.
    store_health: health::StoreHealth,
    pipeline: PipelineHandle,
    query_limits: sandbox::Limits,
    queries: Semaphore,
    /// Time between scans, against which health judges the last scan's age.
    interval: std::time::Duration,
    /// Updated by the scan loop.
    scans: Mutex<ScanStats>,
    /// Signed bundles: install, status, history, rollback; license and config layer.
    pub bundles: Arc<BundleService>,
    /// The alert outbox and its sinks' loops.
    pub outbox: Arc<Outbox>,
    /// `site.id`, for test alerts.
    pub site: Option<String>,
    /// What became of procmond's exec events.
    pub exec: Arc<crate::exec::ExecStatus>,
}

/// What [`AgentState::new`] is made of.
pub struct Parts {
    /// Owns procmond and the link to it.
    pub supervisor: Supervisor,
    /// The IPC bounds of the control socket.
    pub limits: Limits,
    /// The event store.
    pub store: Arc<Store>,
    /// How the store was opened.
    pub store_health: health::StoreHealth,
    /// Runs the rules.
    pub pipeline: PipelineHandle,
    /// The sandbox bounds of CLI queries.
    pub query_limits: sandbox::Limits,
    /// Time between scans.
    pub interval: std::time::Duration,
    /// Signed bundles.
    pub bundles: Arc<BundleService>,
    /// The alert outbox.
    pub outbox: Arc<Outbox>,
    /// `site.id`.
    pub site: Option<String>,
    /// What became of procmond's exec events.
    pub exec: Arc<crate::exec::ExecStatus>,
}

impl AgentState {
    /// The state of an agent made of `parts`.
    pub fn new(parts: Parts) -> Self {
        let Parts {
            supervisor,
            limits,
            store,
            store_health,
            pipeline,
            query_limits,
            interval,
            bundles,
            outbox,
            site,
            exec,
        } = parts;
        Self {
            started: Instant::now(),
            supervisor,
            limits,
            store,
            store_health,
            pipeline,
            query_limits,
            queries: Semaphore::new(MAX_QUERIES),
            interval,
            scans: Mutex::new(ScanStats::default()),
            bundles,
            outbox,
            site,
            exec,
        }
    }

    /// The scan statistics, even if a panic poisoned their lock (they are plain counters).
    pub fn scans(&self) -> std::sync::MutexGuard<'_, ScanStats> {
        self.scans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The health report the CLI shows.
    pub fn health(&self) -> proto::AgentHealth {
        health::report(self)
    }
}

/// A refusal of one request; the connection stays open.
pub fn error(code: ErrorCode, message: impl Into<String>) -> agent_response::Kind {
    agent_response::Kind::Error(proto::RequestError {
        code: code as i32,
        message: message.into(),
    })
}

/// Serves CLI connections until `until` completes.
pub async fn serve(
    listener: SocketListener,
    state: Arc<AgentState>,
    until: impl Future<Output = ()>,
) {
    let limits = state.limits;
    listener
        .serve(limits, MAX_CONNECTIONS, until, move |stream, _peer| {
            let state = Arc::clone(&state);
            async move {
                match serve_connection(stream, state).await {
                    Ok(()) | Err(IpcError::Closed) => {}
                    Err(err) => tracing::warn!(error = %err, "CLI connection closed"),
                }
            }
        })
        .await;
}

async fn serve_connection(stream: LocalStream, state: Arc<AgentState>) -> Result<(), IpcError> {
    let conn =
        Connection::server_handshake(stream, state.limits, Role::Agent, &[Role::Cli], &[]).await?;
    rpc::serve::<AgentLink, _, _, _>(conn, MAX_IN_FLIGHT, None, move |request, responder| {
        let state = Arc::clone(&state);
        async move { respond(&state, request, responder).await }
    })
    .await
}

async fn respond(
    state: &AgentState,
    request: proto::AgentRequest,
    responder: Responder<AgentLink>,
) {
    let kind = match request.kind {
        Some(kind) => dispatch(state, kind).await,
        None => error(ErrorCode::BadRequest, "the request names no operation"),
    };
    responder
        .send(proto::AgentResponse {
            request_id: responder.id(),
            kind: Some(kind),
        })
        .await;
}

/// Sends one request to its area.
pub async fn dispatch(state: &AgentState, request: agent_request::Kind) -> agent_response::Kind {
    match request {
        agent_request::Kind::Health(_) => agent_response::Kind::Health(state.health()),
        agent_request::Kind::Query(query) => query::answer(state, query).await,
        agent_request::Kind::Alerts(filter) => alerts::list(state, filter).await,
        agent_request::Kind::Ack(ack) => alerts::ack(state, ack).await,
        agent_request::Kind::Rules(_) => rules::list(state),
        agent_request::Kind::Audit(audit) => ledger::forward(state, audit).await,
        agent_request::Kind::BundleInstall(request) => bundles::install(state, request).await,
        agent_request::Kind::BundleStatus(_) => bundles::status(state).await,
        agent_request::Kind::BundleHistory(request) => bundles::history(state, request).await,
        agent_request::Kind::BundleRollback(request) => bundles::rollback(state, request).await,
        agent_request::Kind::AlertsExport(request) => export::export(state, request).await,
        agent_request::Kind::OutboxStatus(_) => outbox::status(state).await,
        agent_request::Kind::SendTest(request) => outbox::send_test(state, request).await,
    }
}

/// Runs `work` on a blocking thread (the store and SQLite are synchronous); a panic becomes
/// an `INTERNAL` refusal.
async fn blocking(
    work: impl FnOnce() -> agent_response::Kind + Send + 'static,
) -> agent_response::Kind {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| error(ErrorCode::Internal, format!("the request failed: {err}")))
}
