//! `daemoneye-cli bundle …`: install, status, history, rollback, answered by the agent's
//! [`BundleService`](crate::bundle_service::BundleService).

use std::path::PathBuf;

use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};

use super::{AgentState, error};

/// The longest path accepted in an install request.
const MAX_PATH_BYTES: usize = 4096;

/// Verifies and applies the bundle at the request's path.
pub async fn install(
    state: &AgentState,
    request: proto::BundleInstallRequest,
) -> agent_response::Kind {
    let path = PathBuf::from(&request.path);
    if request.path.len() > MAX_PATH_BYTES || !path.is_absolute() || request.path.contains('\0') {
        return error(
            ErrorCode::BadRequest,
            "the bundle's path must be absolute, at most 4096 bytes",
        );
    }
    agent_response::Kind::BundleInstall(state.bundles.install(path, "cli").await)
}

/// What is active.
pub async fn status(state: &AgentState) -> agent_response::Kind {
    agent_response::Kind::BundleStatus(state.bundles.status().await)
}

/// What was applied, refused or rolled back.
pub async fn history(
    state: &AgentState,
    request: proto::BundleHistoryRequest,
) -> agent_response::Kind {
    match state
        .bundles
        .history(request.page.unwrap_or_default())
        .await
    {
        Ok(history) => agent_response::Kind::BundleHistory(history),
        Err(reason) => error(ErrorCode::BadRequest, reason),
    }
}

/// One version back.
pub async fn rollback(
    state: &AgentState,
    request: proto::BundleRollbackRequest,
) -> agent_response::Kind {
    let name = (!request.name.is_empty()).then(|| request.name.clone());
    match state.bundles.rollback(name).await {
        Ok(decision) => agent_response::Kind::BundleRollback(decision),
        // Nothing to go back to, or no such bundle: a refusal the operator reads, not a
        // malformed request.
        Err(reason) => agent_response::Kind::BundleRollback(proto::BundleDecision {
            action: proto::BundleAction::Refused as i32,
            name: request.name,
            reason,
            step: "rollback".to_owned(),
            source: "cli".to_owned(),
            at_ms: crate::run::now_ms(),
            ..proto::BundleDecision::default()
        }),
    }
}
