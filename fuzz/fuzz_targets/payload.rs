//! Shared by the fuzz targets: decoding a frame's payload as the message its type names, and
//! converting what is converted further, exactly as a connection does.

use daemoneye_lib::ipc::frame::MessageType;
use daemoneye_lib::ipc::{conn, convert, proto};
use daemoneye_lib::models::ProcessRecord;
use prost::Message;

/// Decodes `payload` as the message `kind` names, through the same function a connection uses,
/// and goes on into the parts of the message that are converted further.
pub fn decode_payload(kind: MessageType, payload: &[u8]) {
    match kind {
        MessageType::Hello => {
            check_message::<proto::Hello>(kind, payload);
        }
        MessageType::Welcome => {
            check_message::<proto::Welcome>(kind, payload);
        }
        MessageType::ProtocolError => {
            check_message::<proto::ProtocolError>(kind, payload);
        }
        MessageType::CollectorRequest => {
            check_message::<proto::CollectorRequest>(kind, payload);
        }
        MessageType::CollectorPush => {
            let Some(push) = check_message::<proto::CollectorPush>(kind, payload) else {
                return;
            };
            if let Some(proto::collector_push::Kind::ExecEvents(batch)) = push.kind {
                for event in batch.events {
                    if let Some(record) = event.process
                        && let Err(err) = ProcessRecord::try_from(record)
                    {
                        let _ = err.to_string();
                    }
                }
            }
        }
        MessageType::CollectorResponse => {
            let Some(response) = check_message::<proto::CollectorResponse>(kind, payload) else {
                return;
            };
            if let Some(proto::collector_response::Kind::Result(result)) = response.kind {
                for record in result.processes {
                    // A record with an impossible `on_disk` is refused, not a panic.
                    if let Err(err) = ProcessRecord::try_from(record) {
                        let _ = err.to_string();
                    }
                }
                if let Some(scan) = result.scan {
                    let _ = convert::scan_summary_from_proto(scan);
                }
            }
        }
        MessageType::AgentRequest => {
            check_message::<proto::AgentRequest>(kind, payload);
        }
        MessageType::AgentResponse => {
            check_message::<proto::AgentResponse>(kind, payload);
        }
    }
}

/// Decodes one message; a malformed one is an error (whose message is built, as the
/// connection does when it refuses the peer), never a panic.
fn check_message<M: Message + Default>(kind: MessageType, payload: &[u8]) -> Option<M> {
    match conn::decode::<M>(kind, payload) {
        Ok(message) => {
            // `Connection::send` checks the limit against `encoded_len` before encoding; the
            // two must agree for any message, including one a peer made up.
            let encoded = message.encode_to_vec();
            assert_eq!(
                message.encoded_len(),
                encoded.len(),
                "{kind}: encoded_len is wrong"
            );
            Some(message)
        }
        Err(err) => {
            let _ = err.to_string();
            None
        }
    }
}
