//! `daemoneye-cli audit …` through the agent: the ledger belongs to procmond, so the request
//! goes there unchanged and procmond's answer (or refusal) comes back.

use daemoneye_lib::ipc::IpcError;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};

use super::{AgentState, error};
use crate::supervisor::Unavailable;

/// Forwards `request` to procmond.
pub async fn forward(state: &AgentState, request: proto::AuditRequest) -> agent_response::Kind {
    match state.supervisor.audit(request).await {
        Ok(response) => agent_response::Kind::Audit(response),
        Err(Unavailable::Failed(IpcError::Refused { code, message })) => error(code, message),
        Err(other) => error(ErrorCode::Unsupported, other.to_string()),
    }
}
