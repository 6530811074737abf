//! `outbox status` and `alerts send-test`: the outbox as the operator sees it, and a test
//! alert through it.
//!
//! Status joins two sources: the store's per-sink counters and queue (persisted, so they
//! survive restarts) and each loop's live state (running, unlicensed or stopped; the breaker,
//! which is not persisted). A sink the store knows but the configuration no longer names is
//! listed as `not configured`, with its counters; the deliveries it still held were dropped
//! (counted, logged, ledgered) when the agent started without it
//! ([`crate::outbox::deliver::forget_removed`]).

use std::sync::Arc;
use std::time::Duration;

use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::ids::AlertId;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};
use daemoneye_lib::storage::{SinkOutbox, Store};
use daemoneye_lib::text;

use super::{AgentState, blocking, error};
use crate::outbox::deliver::{Live, Outbox, RunState};
use crate::outbox::retry::BreakerState;
use crate::run::now_ms;

/// The rule id of test alerts: no rule has it, so a receiver can filter them out.
pub const TEST_RULE_ID: &str = "DE-TEST-0000";
/// The longest `send-test` waits for its deliveries.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// How often it looks while waiting.
const POLL: Duration = Duration::from_millis(50);

/// One sink's row of `outbox status`.
pub fn sink_status(
    name: &str,
    stored: Option<&SinkOutbox>,
    live: Option<&Live>,
) -> proto::SinkStatus {
    let (kind, state, reason, breaker, until) = match live {
        Some(live) => {
            let until = match live.breaker {
                BreakerState::Open { until_ms } => Some(until_ms),
                _ => None,
            };
            (
                live.kind.as_str().to_owned(),
                live.state.as_str().to_owned(),
                live.state.reason().unwrap_or_default().to_owned(),
                live.breaker.as_str().to_owned(),
                until,
            )
        }
        None => (
            String::new(),
            "not configured".to_owned(),
            "the configuration no longer names this sink".to_owned(),
            "closed".to_owned(),
            None,
        ),
    };
    let mut row = proto::SinkStatus {
        name: name.to_owned(),
        kind,
        state,
        state_reason: reason,
        breaker,
        breaker_until_ms: until,
        ..proto::SinkStatus::default()
    };
    if let Some(stored) = stored {
        row.pending = stored.pending;
        row.pending_bytes = stored.pending_bytes;
        row.oldest_pending_ms = stored.oldest_pending_ms;
        row.head_attempts = stored.head_attempts;
        row.next_attempt_ms = stored.next_attempt_ms.filter(|_| stored.waiting);
        row.last_error = stored.last_error.clone();
        row.last_delivered_ms = stored.last_delivered_ms;
        row.enqueued = stored.enqueued;
        row.delivered = stored.delivered;
        row.retried = stored.retried;
        row.dropped = stored.dropped;
        row.dead_lettered = stored.dead_lettered;
        row.dead_letters = stored.dead_letters;
    }
    if let Some(live) = live {
        row.dropped_since_start = live.dropped;
        row.delivered_since_start = live.delivered;
    }
    if row.last_error.is_none()
        && let Some(failure) = live.and_then(|live| live.last_failure.clone())
    {
        row.last_error = Some(failure);
    }
    row
}

/// Every sink: the configured ones in configuration order, then those only the store knows.
pub fn status_of(store: &Store, outbox: &Outbox, now: i64) -> Result<proto::OutboxStatus, String> {
    let stored = store.outbox_status(now).map_err(|err| err.to_string())?;
    let live = outbox.live();
    let mut sinks: Vec<proto::SinkStatus> = outbox
        .sink_names()
        .into_iter()
        .map(|name| {
            sink_status(
                name,
                stored.iter().find(|sink| sink.sink == name),
                live.get(name),
            )
        })
        .collect();
    for other in &stored {
        if !sinks.iter().any(|sink| sink.name == other.sink) {
            sinks.push(sink_status(&other.sink, Some(other), None));
        }
    }
    Ok(proto::OutboxStatus { sinks, now_ms: now })
}

/// Health's view of the outbox: one `outbox` component (the store's outbox readable; sinks
/// no longer configured that still hold deliveries) and one `sink NAME` component per
/// configured sink: failed when it stopped (it can never deliver as configured), degraded
/// when it is unlicensed, its breaker is open, its head is failing, or it dropped alerts since
/// the agent started; ok otherwise.
pub fn health(status: Result<&proto::OutboxStatus, &str>) -> Vec<proto::ComponentHealth> {
    use super::health::component;
    use proto::Status as Level;
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            return vec![component(
                "outbox",
                Level::Failed,
                format!("cannot read the outbox: {err}"),
            )];
        }
    };
    let now = status.now_ms;
    let orphans: Vec<String> = status
        .sinks
        .iter()
        .filter(|sink| sink.kind.is_empty() && sink.pending > 0)
        .map(|sink| format!("{} ({} pending)", sink.name, sink.pending))
        .collect();
    let pending: u64 = status.sinks.iter().map(|sink| sink.pending).sum();
    let mut out = vec![if orphans.is_empty() {
        component("outbox", Level::Ok, format!("{pending} deliveries pending"))
    } else {
        component(
            "outbox",
            Level::Degraded,
            format!(
                "sinks no longer configured hold deliveries: {}; they are dropped at the next start (carry them out first with alerts export)",
                orphans.join(", ")
            ),
        )
    }];
    for sink in status.sinks.iter().filter(|sink| !sink.kind.is_empty()) {
        let queue = match sink.oldest_pending_ms {
            Some(oldest) if sink.pending > 0 => format!(
                "{} pending, oldest {}s",
                sink.pending,
                (now - oldest).max(0) / 1000
            ),
            _ => "nothing pending".to_owned(),
        };
        let error = sink.last_error.clone().unwrap_or_default();
        let (level, detail) = if sink.state == "stopped" {
            (
                Level::Failed,
                format!("stopped: {}; {queue}", sink.state_reason),
            )
        } else if sink.state == "unlicensed" {
            (
                Level::Degraded,
                format!("not started: {}; {queue} (kept)", sink.state_reason),
            )
        } else if sink.breaker == "open" {
            (
                Level::Degraded,
                format!("circuit open after repeated failures: {error}; {queue}"),
            )
        } else if sink.head_attempts > 0 {
            (
                Level::Degraded,
                format!(
                    "failing ({} attempts): {error}; {queue}",
                    sink.head_attempts
                ),
            )
        } else if sink.dropped_since_start > 0 {
            (
                Level::Degraded,
                format!(
                    "{} alerts dropped since start (outbox full); {queue}",
                    sink.dropped_since_start
                ),
            )
        } else {
            (
                Level::Ok,
                format!(
                    "{}: {} delivered since start; {queue}",
                    sink.kind, sink.delivered_since_start
                ),
            )
        };
        out.push(component(&format!("sink {}", sink.name), level, detail));
    }
    out
}

/// `outbox status`.
pub async fn status(state: &AgentState) -> agent_response::Kind {
    let store = Arc::clone(&state.store);
    let outbox = Arc::clone(&state.outbox);
    blocking(move || match status_of(&store, &outbox, now_ms()) {
        Ok(status) => agent_response::Kind::OutboxStatus(status),
        Err(err) => error(ErrorCode::Internal, format!("reading the outbox: {err}")),
    })
    .await
}

/// A test alert: a fresh id, severity info, the rule id [`TEST_RULE_ID`].
pub fn test_alert(host: &str, site: Option<&str>, now: i64) -> Alert {
    let mut bytes = [0u8; 16];
    bytes.iter_mut().for_each(|byte| *byte = fastrand::u8(..));
    Alert {
        id: AlertId::from_bytes(bytes),
        rule_id: TEST_RULE_ID.to_owned(),
        rule_name: "DaemonEye test alert".to_owned(),
        severity: Severity::Info,
        mitre: Vec::new(),
        host: host.to_owned(),
        site: site.map(ToOwned::to_owned),
        scan_id: 0,
        detected_at: text::format_time_ms(now),
        dedup_key: String::new(),
        suppressed: 0,
        rows: Vec::new(),
        summary: "DaemonEye test alert (daemoneye-cli alerts send-test): delivery works".to_owned(),
    }
}

/// `alerts send-test [--sink NAME]`: enqueues a test alert for one sink or all, wakes them,
/// and waits (at most `wait_ms`, capped) until each delivered it or the wait ends.
pub async fn send_test(
    state: &AgentState,
    request: proto::SendTestRequest,
) -> agent_response::Kind {
    let names: Vec<String> = state
        .outbox
        .sink_names()
        .into_iter()
        .map(ToOwned::to_owned)
        .collect();
    let targets: Vec<String> = match &request.sink {
        Some(sink) if names.contains(sink) => vec![sink.clone()],
        Some(sink) => {
            return error(
                ErrorCode::BadRequest,
                format!(
                    "no sink named {} (configured: {})",
                    text::quoted(sink),
                    names.join(", ")
                ),
            );
        }
        None => names,
    };
    let now = now_ms();
    let alert = test_alert(&crate::pipeline::host_name(), state.site.as_deref(), now);
    let enqueued = {
        let store = Arc::clone(&state.store);
        let limits = state.outbox.limits().clone();
        let alert = alert.clone();
        let targets = targets.clone();
        tokio::task::spawn_blocking(move || {
            store.write("enqueue a test alert", |w| {
                let mut seqs = Vec::new();
                for sink in &targets {
                    seqs.push(w.outbox_next_seq(sink)?);
                }
                let sinks: Vec<&str> = targets.iter().map(String::as_str).collect();
                let dropped =
                    w.enqueue(&sinks, &alert.id, &alert.canonical_bytes(), now, &limits)?;
                Ok((seqs, dropped))
            })
        })
        .await
    };
    let seqs = match enqueued {
        Ok(Ok((seqs, dropped))) => {
            state.outbox.note_dropped(dropped);
            seqs
        }
        Ok(Err(err)) => return error(ErrorCode::Internal, format!("enqueueing: {err}")),
        Err(err) => return error(ErrorCode::Internal, format!("enqueueing: {err}")),
    };
    tracing::info!(alert = %alert.id, sinks = targets.len(), "test alert enqueued");
    state.outbox.wake();
    // Recorded like every alert the agent sends, so that an export can prove it too.
    crate::audit::record_alerts(&state.supervisor, std::slice::from_ref(&alert)).await;
    let wait = Duration::from_millis(u64::from(request.wait_ms)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let mut pending: Vec<bool> = vec![true; targets.len()];
    loop {
        for (index, sink) in targets.iter().enumerate() {
            if pending[index] {
                pending[index] = state
                    .store
                    .outbox_is_pending(sink, seqs[index])
                    .unwrap_or(true);
            }
        }
        if !pending.contains(&true) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let live = state.outbox.live();
    let stored = state.store.outbox_status(now_ms()).unwrap_or_default();
    let sinks = targets
        .iter()
        .zip(&pending)
        .zip(&seqs)
        .map(|((name, &still), &seq)| {
            // Gone from the queue: delivered, unless the sink dead-lettered it.
            let rejected = (!still)
                .then(|| state.store.outbox_dead_letters(name, usize::MAX).ok())
                .flatten()
                .and_then(|dead| dead.into_iter().find(|letter| letter.seq == seq));
            if let Some(letter) = rejected {
                return proto::SendTestSink {
                    name: name.clone(),
                    delivered: false,
                    detail: format!("rejected by the receiver: {}", letter.reason),
                };
            }
            let detail = if !still {
                String::new()
            } else {
                let live = live.get(name);
                match live.map(|live| &live.state) {
                    Some(RunState::Unlicensed(why) | RunState::GaveUp(why)) => why.clone(),
                    _ => stored
                        .iter()
                        .find(|sink| &sink.sink == name)
                        .and_then(|sink| sink.last_error.clone())
                        .or_else(|| live.and_then(|live| live.last_failure.clone()))
                        .unwrap_or_else(|| "still pending".to_owned()),
                }
            };
            proto::SendTestSink {
                name: name.clone(),
                delivered: !still,
                detail,
            }
        })
        .collect();
    agent_response::Kind::SendTest(proto::SendTestResult {
        alert_id: alert.id.to_string(),
        sinks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemoneye_lib::ipc::proto::Status as Level;

    fn sink(name: &str, edit: impl FnOnce(&mut proto::SinkStatus)) -> proto::SinkStatus {
        let mut row = proto::SinkStatus {
            name: name.into(),
            kind: "webhook".into(),
            state: "running".into(),
            breaker: "closed".into(),
            ..proto::SinkStatus::default()
        };
        edit(&mut row);
        row
    }

    #[test]
    fn each_sink_is_judged_by_what_keeps_it_from_delivering() {
        let status = proto::OutboxStatus {
            now_ms: 100_000,
            sinks: vec![
                sink("fine", |s| s.delivered_since_start = 3),
                sink("stopped", |s| {
                    s.state = "stopped".into();
                    s.state_reason = "credentials refused".into();
                }),
                sink("unlicensed", |s| {
                    s.state = "unlicensed".into();
                    s.state_reason = "splunk_hec needs a license".into();
                }),
                sink("open", |s| {
                    s.breaker = "open".into();
                    s.last_error = Some("connection refused".into());
                }),
                sink("failing", |s| {
                    s.head_attempts = 2;
                    s.pending = 4;
                    s.oldest_pending_ms = Some(40_000);
                    s.last_error = Some("HTTP 503".into());
                }),
                sink("full", |s| s.dropped_since_start = 7),
            ],
        };
        let components = health(Ok(&status));
        let got: Vec<(String, Level, String)> = components
            .iter()
            .map(|c| (c.name.clone(), c.status(), c.detail.clone()))
            .collect();
        let want = [
            ("outbox", Level::Ok, "4 deliveries pending"),
            (
                "sink fine",
                Level::Ok,
                "webhook: 3 delivered since start; nothing pending",
            ),
            (
                "sink stopped",
                Level::Failed,
                "stopped: credentials refused; nothing pending",
            ),
            (
                "sink unlicensed",
                Level::Degraded,
                "not started: splunk_hec needs a license; nothing pending (kept)",
            ),
            (
                "sink open",
                Level::Degraded,
                "circuit open after repeated failures: connection refused; nothing pending",
            ),
            (
                "sink failing",
                Level::Degraded,
                "failing (2 attempts): HTTP 503; 4 pending, oldest 60s",
            ),
            (
                "sink full",
                Level::Degraded,
                "7 alerts dropped since start (outbox full); nothing pending",
            ),
        ];
        assert_eq!(got.len(), want.len());
        for ((name, level, detail), (want_name, want_level, want_detail)) in got.iter().zip(want) {
            assert_eq!(
                (name.as_str(), *level, detail.as_str()),
                (want_name, want_level, want_detail)
            );
        }
    }

    #[test]
    fn an_unreadable_outbox_fails_and_orphaned_deliveries_degrade() {
        let failed = health(Err("redb: corrupted"));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].status(), Level::Failed);
        assert!(failed[0].detail.contains("redb: corrupted"));
        let status = proto::OutboxStatus {
            now_ms: 0,
            sinks: vec![sink("gone", |s| {
                s.kind = String::new();
                s.pending = 2;
            })],
        };
        let components = health(Ok(&status));
        assert_eq!(
            components.len(),
            1,
            "a sink no longer configured has no component"
        );
        assert_eq!(components[0].status(), Level::Degraded);
        assert!(
            components[0].detail.contains("gone (2 pending)"),
            "{}",
            components[0].detail
        );
    }
}
