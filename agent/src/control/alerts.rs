//! `daemoneye-cli alerts list` and `alerts ack`: read and mark alerts in the store.

use std::sync::Arc;

use daemoneye_lib::alert::Severity;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};
use daemoneye_lib::storage::Store;

use super::{AgentState, blocking, error};
use crate::run::now_ms;

/// Alerts returned by one `alerts list` at most.
const MAX_ALERTS: usize = 10_000;

/// Alerts matching `filter`, newest first.
pub async fn list(state: &AgentState, filter: proto::AlertsRequest) -> agent_response::Kind {
    let store = Arc::clone(&state.store);
    blocking(move || list_now(&store, &filter)).await
}

/// Marks an alert acknowledged.
pub async fn ack(state: &AgentState, ack: proto::AckRequest) -> agent_response::Kind {
    let store = Arc::clone(&state.store);
    blocking(move || match store.ack_alert(&ack.id, now_ms()) {
        Ok(found) => agent_response::Kind::Ack(proto::AckResult { found }),
        Err(err) => error(
            ErrorCode::Internal,
            format!("acknowledging the alert: {err}"),
        ),
    })
    .await
}

fn list_now(store: &Store, filter: &proto::AlertsRequest) -> agent_response::Kind {
    let min_severity = match filter.min_severity.as_deref().map(str::parse::<Severity>) {
        None => None,
        Some(Ok(severity)) => Some(severity),
        Some(Err(reason)) => return error(ErrorCode::BadRequest, reason),
    };
    let stored = match store.alerts() {
        Ok(stored) => stored,
        Err(err) => return error(ErrorCode::Internal, format!("reading alerts: {err}")),
    };
    let limit = match usize::try_from(filter.limit) {
        Ok(0) | Err(_) => MAX_ALERTS,
        Ok(limit) => limit.min(MAX_ALERTS),
    };
    let mut matching = stored.into_iter().filter(|stored| {
        filter
            .since_ms
            .is_none_or(|since| stored.raised_at_ms >= since)
            && min_severity.is_none_or(|min| stored.alert.severity >= min)
            && filter
                .rule_id
                .as_deref()
                .is_none_or(|rule| stored.alert.rule_id == rule)
    });
    let alerts: Vec<proto::StoredAlertInfo> = matching
        .by_ref()
        .take(limit)
        .map(|stored| proto::StoredAlertInfo {
            alert_json: serde_json::to_string(&stored.alert).unwrap_or_default(),
            acked_at_ms: stored.acked_at_ms,
            last_seen_ms: stored.last_seen_ms,
            window_until_ms: stored.window_until_ms,
        })
        .collect();
    let truncated = matching.next().is_some();
    agent_response::Kind::Alerts(proto::AlertList { alerts, truncated })
}
