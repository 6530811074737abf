//! Typed calls over [`rpc::Client`]: each request of a link paired with the one answer it
//! expects, so a caller writes `client.ask(proto::HealthRequest {})` and gets the health
//! report or an error, never a response of the wrong kind.
//!
//! Adding a request to a link is one line in the table of that link below, the messages in
//! `ipc.proto`, and the server's handler (the agent's dispatcher has one module per area).
//!
//! # Paging
//!
//! Every list of either link pages the same way ([`proto::Page`]): the first request has an
//! empty cursor; each answer carries `next_cursor`, empty on the last page, which the next
//! request sends back unchanged. A cursor is opaque to the client; the server parses it as
//! hostile input ([`index_cursor`] and [`parse_index_cursor`] for lists indexed by position,
//! such as the ledger's entries).

use super::proto::{self, agent_request, agent_response, collector_request, collector_response};
use super::rpc::{AgentLink, Client, CollectorLink, Link};
use super::{IpcError, MessageType};

/// A request of link `L` and the answer it expects.
pub trait Call<L: Link>: Sized {
    /// What the answer carries.
    type Reply;
    /// The request message (its id is set when it is sent).
    fn into_request(self) -> L::Request;
    /// The answer, or why the response is not one: a refusal, or a response of another kind.
    fn reply(response: L::Response) -> Result<Self::Reply, IpcError>;
}

impl<L: Link> Client<L> {
    /// Sends `call` and waits for its typed answer.
    pub async fn ask<C: Call<L>>(&self, call: C) -> Result<C::Reply, IpcError> {
        C::reply(self.call(call.into_request()).await?)
    }
}

fn refused(err: proto::RequestError) -> IpcError {
    IpcError::Refused {
        code: err.code(),
        message: err.message,
    }
}

fn unexpected(kind: MessageType, wanted: &str) -> IpcError {
    IpcError::Decode {
        kind,
        reason: format!("the response is not the answer to a {wanted} request"),
    }
}

/// `request message => oneof variant (answer message)` for one link; the request's and the
/// answer's oneof variants share their name.
macro_rules! calls {
    (
        $link:ty, $request_msg:ident, $request_kind:path, $response_msg:ident,
        $response_kind:path, $frame:expr;
        $($request:ident => $variant:ident($reply:ty)),* $(,)?
    ) => {$(
        impl Call<$link> for proto::$request {
            type Reply = $reply;
            fn into_request(self) -> proto::$request_msg {
                use $request_kind as Kind;
                proto::$request_msg {
                    request_id: 0,
                    kind: Some(Kind::$variant(self)),
                }
            }
            fn reply(response: proto::$response_msg) -> Result<$reply, IpcError> {
                use $response_kind as Kind;
                match response.kind {
                    Some(Kind::$variant(reply)) => Ok(reply),
                    Some(Kind::Error(err)) => Err(refused(err)),
                    _ => Err(unexpected($frame, stringify!($variant))),
                }
            }
        }
    )*};
}

// CLI → agent.
calls! {
    AgentLink, AgentRequest, agent_request::Kind, AgentResponse, agent_response::Kind,
    MessageType::AgentResponse;
    HealthRequest => Health(proto::AgentHealth),
    QueryRequest => Query(proto::QueryResult),
    AlertsRequest => Alerts(proto::AlertList),
    AckRequest => Ack(proto::AckResult),
    RulesRequest => Rules(proto::RuleList),
    AuditRequest => Audit(proto::AuditResponse),
    BundleInstallRequest => BundleInstall(proto::BundleDecision),
    BundleStatusRequest => BundleStatus(proto::BundleStatus),
    BundleHistoryRequest => BundleHistory(proto::BundleHistory),
    BundleRollbackRequest => BundleRollback(proto::BundleDecision),
    AlertsExportRequest => AlertsExport(proto::AlertsExport),
    OutboxStatusRequest => OutboxStatus(proto::OutboxStatus),
    SendTestRequest => SendTest(proto::SendTestResult),
}

// agent → procmond (a scan, answered in parts, is not a single call: the agent's link reads
// it with [`Client::start`]).
calls! {
    CollectorLink, CollectorRequest, collector_request::Kind, CollectorResponse,
    collector_response::Kind, MessageType::CollectorResponse;
    HealthRequest => Health(proto::CollectorHealth),
    AppendAudit => AppendAudit(proto::AppendAuditResult),
    AuditRequest => Audit(proto::AuditResponse),
}

/// The cursor of a list indexed by position: the index in decimal.
pub fn index_cursor(index: u64) -> String {
    index.to_string()
}

/// The index a cursor of [`index_cursor`] names; empty is the start.
pub fn parse_index_cursor(cursor: &str) -> Result<u64, String> {
    if cursor.is_empty() {
        return Ok(0);
    }
    if cursor.len() > 20 || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the page cursor is not one this server issued".to_owned());
    }
    cursor
        .parse()
        .map_err(|_| "the page cursor is not one this server issued".to_owned())
}

/// The cursor after a page that ended at `next` of `total` (empty when nothing is left).
pub fn next_index_cursor(next: u64, total: u64) -> String {
    if next >= total {
        String::new()
    } else {
        index_cursor(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_cursors_round_trip_and_refuse_what_was_not_issued() {
        for index in [0, 1, 4999, u64::MAX] {
            assert_eq!(parse_index_cursor(&index_cursor(index)), Ok(index));
        }
        assert_eq!(parse_index_cursor(""), Ok(0));
        for bad in ["-1", "1e3", " 1", "18446744073709551616", "x", "0x10"] {
            assert!(parse_index_cursor(bad).is_err(), "{bad:?}");
        }
        assert_eq!(next_index_cursor(10, 10), "");
        assert_eq!(next_index_cursor(5, 10), "5");
    }

    #[test]
    fn a_refusal_and_a_wrong_answer_are_errors() {
        let refusal = proto::AgentResponse {
            request_id: 1,
            kind: Some(agent_response::Kind::Error(proto::RequestError {
                code: proto::ErrorCode::BadRequest as i32,
                message: "no".to_owned(),
            })),
        };
        match <proto::HealthRequest as Call<AgentLink>>::reply(refusal) {
            Err(IpcError::Refused { code, message }) => {
                assert_eq!(code, proto::ErrorCode::BadRequest);
                assert_eq!(message, "no");
            }
            other => panic!("not a refusal: {other:?}"),
        }
        let wrong = proto::AgentResponse {
            request_id: 1,
            kind: Some(agent_response::Kind::Ack(proto::AckResult { found: true })),
        };
        assert!(matches!(
            <proto::HealthRequest as Call<AgentLink>>::reply(wrong),
            Err(IpcError::Decode { .. })
        ));
        let empty = proto::CollectorResponse::default();
        assert!(matches!(
            <proto::AuditRequest as Call<CollectorLink>>::reply(empty),
            Err(IpcError::Decode { .. })
        ));
    }
}
