//! The CLI's end of the agent link (`<data_dir>/run/agent.sock`), over the typed calls both
//! links share (`daemoneye_lib::ipc::calls`).

use std::path::Path;

use daemoneye_lib::ipc::calls::Call;
use daemoneye_lib::ipc::proto::{self, Role};
use daemoneye_lib::ipc::rpc::{self, AgentLink};
use daemoneye_lib::ipc::transport::{self, PeerPolicy};
use daemoneye_lib::ipc::{Connection, IpcError, Limits};

/// Why a command that needs the agent could not reach it (exit code 4), or failed after.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No agent answers on the socket.
    #[error("the agent is not reachable on {path}: {source}")]
    Unreachable {
        /// The socket tried.
        path: String,
        /// Why.
        source: IpcError,
    },
    /// The agent accepted the connection but did not answer in time.
    #[error("the agent did not answer within {0:?}")]
    Silent(std::time::Duration),
    /// The agent answered, then the exchange failed.
    #[error("talking to the agent: {0}")]
    Failed(#[from] IpcError),
    /// Something on this side failed (writing an export file, checking an answer).
    #[error("{0}")]
    Local(String),
}

/// A handshaken connection to the agent.
pub struct AgentClient {
    client: rpc::Client<AgentLink>,
}

impl AgentClient {
    /// Connects to the agent of `data_dir`.
    pub async fn connect(
        data_dir: &Path,
        limits: Limits,
        policy: &PeerPolicy,
    ) -> Result<Self, ClientError> {
        let path = transport::agent_socket(data_dir);
        let unreachable = |source| ClientError::Unreachable {
            path: path.display().to_string(),
            source,
        };
        let (stream, _) = transport::connect(&path, policy)
            .await
            .map_err(unreachable)?;
        let conn = Connection::client_handshake(stream, limits, Role::Cli, Role::Agent, &[])
            .await
            .map_err(unreachable)?;
        // The agent pushes nothing on this link.
        let (client, _pushes) = rpc::Client::new(conn, 1);
        Ok(Self { client })
    }

    /// Sends one request and waits for its typed answer (see `daemoneye_lib::ipc::calls` for
    /// the requests and their answers).
    pub async fn ask<C: Call<AgentLink>>(&self, call: C) -> Result<C::Reply, ClientError> {
        Ok(self.client.ask(call).await?)
    }

    /// A request of the audit ledger's read side (the agent forwards it to procmond).
    pub async fn audit(
        &self,
        request: proto::audit_request::Kind,
    ) -> Result<proto::AuditResponse, ClientError> {
        self.ask(proto::AuditRequest {
            kind: Some(request),
        })
        .await
    }
}
