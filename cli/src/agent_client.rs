//! The CLI's end of the agent link (`<data_dir>/run/agent.sock`), over the typed request
//! helper both links share ([`rpc`]).

use std::path::Path;

use daemoneye_lib::ipc::proto::{self, Role, agent_request, agent_response};
use daemoneye_lib::ipc::rpc::{self, AgentLink};
use daemoneye_lib::ipc::transport::{self, PeerPolicy};
use daemoneye_lib::ipc::{Connection, IpcError, Limits, MessageType};

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

    /// The agent's health report.
    pub async fn health(&mut self) -> Result<proto::AgentHealth, ClientError> {
        match self
            .request(agent_request::Kind::Health(proto::HealthRequest {}))
            .await?
        {
            agent_response::Kind::Health(health) => Ok(health),
            _ => Err(unexpected("a health report")),
        }
    }

    /// Runs a query in the agent's sandbox.
    pub async fn query(
        &mut self,
        query: proto::QueryRequest,
    ) -> Result<proto::QueryResult, ClientError> {
        match self.request(agent_request::Kind::Query(query)).await? {
            agent_response::Kind::Query(result) => Ok(result),
            _ => Err(unexpected("a query result")),
        }
    }

    /// Stored alerts, newest first.
    pub async fn alerts(
        &mut self,
        filter: proto::AlertsRequest,
    ) -> Result<proto::AlertList, ClientError> {
        match self.request(agent_request::Kind::Alerts(filter)).await? {
            agent_response::Kind::Alerts(list) => Ok(list),
            _ => Err(unexpected("a list of alerts")),
        }
    }

    /// Acknowledges an alert; false if the agent knows no alert of this id.
    pub async fn ack(&mut self, id: String) -> Result<bool, ClientError> {
        match self
            .request(agent_request::Kind::Ack(proto::AckRequest { id }))
            .await?
        {
            agent_response::Kind::Ack(result) => Ok(result.found),
            _ => Err(unexpected("an acknowledgement")),
        }
    }

    /// The loaded rules and the problems of those that did not load.
    pub async fn rules(&mut self) -> Result<proto::RuleList, ClientError> {
        match self
            .request(agent_request::Kind::Rules(proto::RulesRequest {}))
            .await?
        {
            agent_response::Kind::Rules(list) => Ok(list),
            _ => Err(unexpected("a list of rules")),
        }
    }

    /// A request of the audit ledger's read side (the agent forwards it to procmond).
    pub async fn audit(
        &mut self,
        request: proto::audit_request::Kind,
    ) -> Result<proto::AuditResponse, ClientError> {
        let request = proto::AuditRequest {
            kind: Some(request),
        };
        match self.request(agent_request::Kind::Audit(request)).await? {
            agent_response::Kind::Audit(response) => Ok(response),
            _ => Err(unexpected("an audit answer")),
        }
    }

    async fn request(
        &mut self,
        kind: agent_request::Kind,
    ) -> Result<agent_response::Kind, IpcError> {
        let request = proto::AgentRequest {
            request_id: 0,
            kind: Some(kind),
        };
        let response = self.client.call(request).await?;
        match response.kind {
            Some(agent_response::Kind::Error(err)) => Err(IpcError::Refused {
                code: err.code(),
                message: err.message,
            }),
            Some(kind) => Ok(kind),
            None => Err(IpcError::Decode {
                kind: MessageType::AgentResponse,
                reason: "an empty response".into(),
            }),
        }
    }
}

fn unexpected(what: &str) -> ClientError {
    ClientError::Failed(IpcError::Decode {
        kind: MessageType::AgentResponse,
        reason: format!("the response is not {what}"),
    })
}

/// A result cell as JSON (blobs as lowercase hex, as the agent's alerts show them).
pub fn cell_to_json(cell: &proto::Cell) -> serde_json::Value {
    use proto::cell::Value;
    match &cell.value {
        None | Some(Value::Null(_)) => serde_json::Value::Null,
        Some(Value::Integer(value)) => (*value).into(),
        Some(Value::Real(value)) => serde_json::Number::from_f64(*value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Value::Text(value)) => value.clone().into(),
        Some(Value::Blob(bytes)) => daemoneye_lib::text::hex(bytes).into(),
    }
}
