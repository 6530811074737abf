//! `daemoneye-cli alerts export`: the undelivered alerts, each beside its `alert_recorded`
//! ledger entry and that entry's inclusion proof, so that a site can carry them out by hand and
//! the receiver can check them offline (`daemoneye_lib::ledger::alert_export` specifies the
//! file and does the work; this module only feeds it).
//!
//! What it does, in order: reads every pending delivery of every sink from the outbox (they
//! stay pending: the sinks still deliver them when they can, and receivers deduplicate by
//! alert id); reads the ledger from entry 0 through procmond, matching pending alerts to their
//! `alert_recorded` entries by hash; appends an `alerts_exported` entry recording what is
//! carried; has procmond sign a checkpoint; reads the entries up to it; and answers with the
//! file's text. The CLI writes the file. Reading the whole ledger costs one pass over it per
//! export (and memory for its node hashes, 64 bytes an entry): an export is a rare, manual act.

use std::sync::Arc;

use daemoneye_lib::ipc::calls;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response, audit_request::Kind};
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::alert_export::{AlertExportError, ExportBuilder, MAX_EXPORT_BYTES};
use daemoneye_lib::ledger::note::NoteVerifier;

use super::{AgentState, error};
use crate::supervisor::Unavailable;

/// The most pending deliveries read (every sink's queue together).
const MAX_PENDING: usize = 200_000;
/// Entries asked of procmond per request.
const PAGE: u32 = 5000;
/// Room in the answer's frame for everything but the file's text.
const FRAME_HEADROOM: usize = 64 * 1024;

/// Answers an `alerts export` request.
pub async fn export(
    state: &AgentState,
    request: proto::AlertsExportRequest,
) -> agent_response::Kind {
    match build(state, &request).await {
        Ok(answer) => agent_response::Kind::AlertsExport(answer),
        Err(refusal) => refusal,
    }
}

async fn build(
    state: &AgentState,
    request: &proto::AlertsExportRequest,
) -> Result<proto::AlertsExport, agent_response::Kind> {
    let store = Arc::clone(&state.store);
    let pending = tokio::task::spawn_blocking(move || store.outbox_pending(None, MAX_PENDING))
        .await
        .map_err(|err| {
            error(
                ErrorCode::Internal,
                format!("reading the outbox failed: {err}"),
            )
        })?
        .map_err(|err| error(ErrorCode::Internal, format!("reading the outbox: {err}")))?;
    if pending.is_empty() {
        return Err(error(
            ErrorCode::BadRequest,
            "nothing to export: no alert is waiting for a sink",
        ));
    }

    let key = audit(state, Kind::Key(proto::AuditKey {})).await?;
    let alg = HashAlg::from_name(&key.hash).ok_or_else(|| {
        error(
            ErrorCode::Internal,
            "procmond named no hash function for its ledger",
        )
    })?;
    let verifier = NoteVerifier::parse(key.text.trim()).map_err(|err| {
        error(
            ErrorCode::Internal,
            format!("procmond's verifier key does not parse: {err}"),
        )
    })?;

    let mut builder = ExportBuilder::new(alg, pending.into_iter().map(|(_, p)| p.payload));
    read_entries(state, &mut builder, key.size).await?;
    let body = builder.freeze().map_err(refused)?;
    let export_entry = state
        .supervisor
        .append_audit(std::slice::from_ref(&body))
        .await
        .map_err(unavailable)?
        .start;
    let checkpoint = audit(state, Kind::Checkpoint(proto::AuditCheckpoint {})).await?;
    let size = daemoneye_lib::ledger::note::Checkpoint::verify_signed(&checkpoint.text, &verifier)
        .map_err(|err| {
            error(
                ErrorCode::Internal,
                format!("procmond's checkpoint does not verify: {err}"),
            )
        })?
        .size;
    read_entries(state, &mut builder, size).await?;

    let frame = usize::try_from(state.limits.max_frame_bytes)
        .unwrap_or(usize::MAX)
        .saturating_sub(FRAME_HEADROOM);
    let max = match request.max_bytes {
        0 => frame,
        asked => usize::try_from(asked).unwrap_or(usize::MAX).min(frame),
    }
    .min(MAX_EXPORT_BYTES);
    let (text, summary) = builder
        .finish(&checkpoint.text, &verifier, export_entry, max)
        .map_err(refused)?;
    tracing::info!(
        alerts = summary.alerts,
        first = summary.first,
        size = summary.size,
        unrecorded = summary.unrecorded,
        "alerts exported for carrying out by hand"
    );
    Ok(proto::AlertsExport {
        text,
        alerts: summary.alerts,
        first_index: summary.first,
        size: summary.size,
        export_entry: summary.export_entry,
        unrecorded: summary.unrecorded,
    })
}

/// Feeds `builder` the ledger's entries from where it stands up to `size`.
async fn read_entries(
    state: &AgentState,
    builder: &mut ExportBuilder,
    size: u64,
) -> Result<(), agent_response::Kind> {
    while builder.size() < size {
        let index = builder.size();
        let want = u32::try_from((size - index).min(u64::from(PAGE))).unwrap_or(PAGE);
        let page = audit(
            state,
            Kind::Entries(proto::AuditEntries {
                page: Some(proto::Page {
                    cursor: calls::index_cursor(index),
                    max: want,
                }),
            }),
        )
        .await?;
        if page.entries.is_empty() {
            return Err(error(
                ErrorCode::Internal,
                format!("the ledger returned no entry {index}"),
            ));
        }
        let take = usize::try_from(size - index).unwrap_or(usize::MAX);
        for bytes in page.entries.iter().take(take) {
            builder.push(bytes).map_err(refused)?;
        }
    }
    Ok(())
}

async fn audit(
    state: &AgentState,
    kind: Kind,
) -> Result<proto::AuditResponse, agent_response::Kind> {
    state
        .supervisor
        .audit(proto::AuditRequest { kind: Some(kind) })
        .await
        .map_err(unavailable)
}

fn unavailable(err: Unavailable) -> agent_response::Kind {
    match err {
        Unavailable::Failed(daemoneye_lib::ipc::IpcError::Refused { code, message }) => {
            error(code, message)
        }
        other => error(
            ErrorCode::Unsupported,
            format!("the audit ledger is not reachable: {other}"),
        ),
    }
}

fn refused(err: AlertExportError) -> agent_response::Kind {
    let code = match err {
        AlertExportError::NothingRecorded { .. }
        | AlertExportError::TooLarge { .. }
        | AlertExportError::Concurrent { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    error(code, format!("alerts export: {err}"))
}
