//! The CLI's requests that read the store or run SQL: `query`, `alerts list`, `alerts ack`,
//! `rules list`. Each runs on a blocking thread, because the store and SQLite are synchronous.

use std::sync::{Arc, Mutex, PoisonError};

use daemoneye_lib::alert::Severity;
use daemoneye_lib::detection::precheck;
use daemoneye_lib::detection::sandbox::Cell;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_request, agent_response};
use daemoneye_lib::storage::RuleStatus;

use crate::pipeline::Pipeline;
use crate::run::now_ms;

/// Alerts returned by one `alerts list` at most.
const MAX_ALERTS: usize = 10_000;

/// Answers `request` (anything but health).
pub async fn answer(
    pipeline: Arc<Mutex<Pipeline>>,
    request: agent_request::Kind,
) -> agent_response::Kind {
    let answered = tokio::task::spawn_blocking(move || {
        let mut pipeline = pipeline.lock().unwrap_or_else(PoisonError::into_inner);
        answer_now(&mut pipeline, request)
    })
    .await;
    answered.unwrap_or_else(|err| error(ErrorCode::Internal, format!("the request failed: {err}")))
}

fn error(code: ErrorCode, message: impl Into<String>) -> agent_response::Kind {
    agent_response::Kind::Error(proto::RequestError {
        code: code as i32,
        message: message.into(),
    })
}

/// Answers `request` with the pipeline locked.
pub fn answer_now(pipeline: &mut Pipeline, request: agent_request::Kind) -> agent_response::Kind {
    match request {
        agent_request::Kind::Health(_) | agent_request::Kind::Audit(_) => {
            error(ErrorCode::Unsupported, "answered elsewhere (control.rs)")
        }
        agent_request::Kind::Query(query) => run_query(pipeline, &query.sql),
        agent_request::Kind::Alerts(filter) => list_alerts(pipeline, &filter),
        agent_request::Kind::Ack(ack) => match pipeline.store().ack_alert(&ack.id, now_ms()) {
            Ok(found) => agent_response::Kind::Ack(proto::AckResult { found }),
            Err(err) => error(
                ErrorCode::Internal,
                format!("acknowledging the alert: {err}"),
            ),
        },
        agent_request::Kind::Rules(_) => list_rules(pipeline),
    }
}

fn run_query(pipeline: &mut Pipeline, sql: &str) -> agent_response::Kind {
    let checked = match precheck::check(sql) {
        Ok(checked) => checked,
        Err(refusal) => return error(ErrorCode::BadRequest, format!("query refused: {refusal}")),
    };
    match pipeline.query(&checked) {
        Ok(result) => agent_response::Kind::Query(proto::QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| proto::Row {
                    cells: row.into_iter().map(cell_to_proto).collect(),
                })
                .collect(),
            truncated: result.truncated,
            elapsed_us: u64::try_from(result.elapsed.as_micros()).unwrap_or(u64::MAX),
        }),
        // Refused, denied, stopped or failed: all are about the query, not the agent.
        Err(err) => error(ErrorCode::BadRequest, format!("query {err}")),
    }
}

/// A result cell on the wire.
pub fn cell_to_proto(cell: Cell) -> proto::Cell {
    use proto::cell::Value;
    let value = match cell {
        Cell::Null => Value::Null(true),
        Cell::Integer(value) => Value::Integer(value),
        Cell::Real(value) => Value::Real(value),
        Cell::Text(value) => Value::Text(value),
        Cell::Blob(value) => Value::Blob(value),
    };
    proto::Cell { value: Some(value) }
}

fn list_alerts(pipeline: &Pipeline, filter: &proto::AlertsRequest) -> agent_response::Kind {
    let min_severity = match filter.min_severity.as_deref().map(str::parse::<Severity>) {
        None => None,
        Some(Ok(severity)) => Some(severity),
        Some(Err(reason)) => return error(ErrorCode::BadRequest, reason),
    };
    let stored = match pipeline.store().alerts() {
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

fn list_rules(pipeline: &Pipeline) -> agent_response::Kind {
    let states = pipeline.rule_states();
    let rules = pipeline
        .engine()
        .rules()
        .iter()
        .map(|rule| {
            let state = states
                .iter()
                .find(|state| state.rule_id == rule.id.as_str());
            proto::RuleInfo {
                id: rule.id.to_string(),
                name: rule.name.clone(),
                severity: rule.severity.to_string(),
                mitre: rule.mitre.clone(),
                source: rule.source.clone(),
                status: match state.map(|state| &state.status) {
                    Some(RuleStatus::Degraded) => "degraded",
                    Some(RuleStatus::Disabled) => "disabled",
                    Some(RuleStatus::Ok) | None => "ok",
                }
                .to_owned(),
                last_error: state.and_then(|state| state.last_error.clone()),
                runs: state.map_or(0, |state| state.runs),
                degraded_runs: state.map_or(0, |state| state.degraded_runs),
                last_elapsed_us: state.map_or(0, |state| state.last_elapsed_us),
            }
        })
        .collect();
    let problems = pipeline
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect();
    agent_response::Kind::Rules(proto::RuleList { rules, problems })
}
