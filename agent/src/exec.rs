//! The agent's end of real-time exec events: procmond pushes batches (every few milliseconds);
//! this task checks them, gathers them into micro-batches of at most [`GATHER`] (so that an
//! alert follows an exec within a second, and a storm costs one evaluation per micro-batch,
//! not one per event) and hands them to the pipeline, which stores them with the scans and
//! runs the rules that run on exec events.
//!
//! Every pushed batch is checked as hostile input: too many events in one batch refuses the
//! batch, an inconsistent event is refused alone, and a gap in the batches' sequence numbers
//! (the link's queue overflowed while the agent was busy) is counted. What the agent refused
//! or missed, and procmond's own counts, make the `exec events` health component.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use daemoneye_lib::ipc::convert::{self, MAX_EXEC_EVENTS_PER_BATCH};
use daemoneye_lib::ipc::proto::{self, Status as Level};
use daemoneye_lib::models::ProcessEvent;
use tokio::sync::mpsc;

use crate::pipeline::PipelineHandle;

/// How long the first batch of a micro-batch waits for more.
pub const GATHER: Duration = Duration::from_millis(50);
/// The most events in one micro-batch.
pub const MICRO_BATCH_MAX: usize = 2048;
/// How long a drop keeps the component degraded.
pub const DROP_MEMORY_MS: i64 = 5 * 60 * 1000;

/// What the agent did with pushed exec events.
#[derive(Debug, Default)]
pub struct ExecStatus {
    /// Events stored (and evaluated).
    pub stored: AtomicU64,
    /// Events refused as malformed.
    pub refused: AtomicU64,
    /// Pushed batches missed (gaps in the sequence numbers).
    pub missed_batches: AtomicU64,
    /// Unix ms of the newest refusal or miss (0: none).
    pub last_problem_at: AtomicI64,
    /// What the newest refusal or miss was.
    pub last_problem: Mutex<String>,
    /// Micro-batches the pipeline failed to store.
    pub failed: AtomicU64,
}

impl ExecStatus {
    fn problem(&self, what: String) {
        self.last_problem_at
            .store(crate::run::now_ms(), Ordering::Relaxed);
        tracing::warn!(problem = %what, "exec events");
        *crate::lock(&self.last_problem) = what;
    }
}

/// Consumes procmond's pushes until the channel closes.
pub async fn consume(
    mut pushes: mpsc::Receiver<proto::CollectorPush>,
    pipeline: PipelineHandle,
    status: std::sync::Arc<ExecStatus>,
) {
    let mut last_sequence = 0u64;
    while let Some(first) = pushes.recv().await {
        let mut events = Vec::new();
        take(first, &mut last_sequence, &mut events, &status);
        let deadline = tokio::time::Instant::now() + GATHER;
        while events.len() < MICRO_BATCH_MAX {
            match tokio::time::timeout_at(deadline, pushes.recv()).await {
                Ok(Some(push)) => take(push, &mut last_sequence, &mut events, &status),
                Ok(None) | Err(_) => break,
            }
        }
        if events.is_empty() {
            continue;
        }
        let count = events.len() as u64;
        match pipeline.process_exec(events, crate::run::now_ms()).await {
            Ok(outcome) => {
                status.stored.fetch_add(count, Ordering::Relaxed);
                if !outcome.raised.is_empty() {
                    tracing::info!(
                        alerts = outcome.raised.len(),
                        events = count,
                        "exec events raised alerts"
                    );
                }
            }
            Err(err) => {
                status.failed.fetch_add(1, Ordering::Relaxed);
                status.problem(format!("storing {count} exec events failed: {err:#}"));
            }
        }
    }
}

/// Checks one pushed batch and adds its events to `events`.
fn take(
    push: proto::CollectorPush,
    last_sequence: &mut u64,
    events: &mut Vec<ProcessEvent>,
    status: &ExecStatus,
) {
    // A new connection (procmond restarted) numbers from 1 again.
    if push.sequence != 1 && *last_sequence != 0 && push.sequence > *last_sequence + 1 {
        let missed = push.sequence - *last_sequence - 1;
        status.missed_batches.fetch_add(missed, Ordering::Relaxed);
        status.problem(format!(
            "{missed} batches of exec events missed: the agent fell behind"
        ));
    }
    *last_sequence = push.sequence;
    let Some(proto::collector_push::Kind::ExecEvents(batch)) = push.kind else {
        return;
    };
    if batch.events.len() > MAX_EXEC_EVENTS_PER_BATCH {
        status
            .refused
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        status.problem(format!(
            "a batch of {} exec events refused: more than the {MAX_EXEC_EVENTS_PER_BATCH} allowed",
            batch.events.len()
        ));
        return;
    }
    for event in batch.events {
        match convert::exec_event_from_proto(event) {
            Ok(event) => events.push(event),
            Err(err) => {
                status.refused.fetch_add(1, Ordering::Relaxed);
                status.problem(format!("an exec event refused: {err}"));
            }
        }
    }
}

/// The `exec events` health component, from procmond's report (`None`: no report yet, or
/// procmond is not answering) and what the agent refused or missed.
pub fn health(
    collector: Option<&proto::CollectorHealth>,
    status: &ExecStatus,
    now_ms: i64,
) -> proto::ComponentHealth {
    let component = |level: Level, detail: String| proto::ComponentHealth {
        name: "exec events".to_owned(),
        status: level as i32,
        detail,
    };
    let Some(collector) = collector else {
        return component(
            Level::Degraded,
            "unknown: procmond has not reported yet".to_owned(),
        );
    };
    let Some(exec) = collector.exec_events.as_ref() else {
        return component(
            Level::Degraded,
            "off: this procmond does not report exec events".to_owned(),
        );
    };
    if !exec.on {
        return component(
            Level::Degraded,
            format!(
                "off: {}; scans alone see processes (a process that lives between two scans \
                 is missed)",
                exec.detail
            ),
        );
    }
    let counts = format!(
        "received {}, pushed {}, lost {} (exited before they could be read), stored {}",
        exec.received,
        exec.pushed,
        exec.lost,
        status.stored.load(Ordering::Relaxed)
    );
    if let Some(at) = exec.last_drop_at
        && now_ms - at < DROP_MEMORY_MS
    {
        return component(
            Level::Degraded,
            format!(
                "on, but {} events dropped since procmond started, the newest {} s ago ({}); {counts}",
                exec.dropped,
                (now_ms - at).max(0) / 1000,
                exec.last_drop_reason
            ),
        );
    }
    let problem_at = status.last_problem_at.load(Ordering::Relaxed);
    if problem_at != 0 && now_ms - problem_at < DROP_MEMORY_MS {
        return component(
            Level::Degraded,
            format!(
                "on, but the agent refused {} events and missed {} batches, the newest {} s \
                 ago: {}; {counts}",
                status.refused.load(Ordering::Relaxed),
                status.missed_batches.load(Ordering::Relaxed),
                (now_ms - problem_at).max(0) / 1000,
                crate::lock(&status.last_problem)
            ),
        );
    }
    component(Level::Ok, format!("on: {counts}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemoneye_lib::models::{EventKind, ProcessRecord};

    fn collector(exec: Option<proto::ExecEventsHealth>) -> proto::CollectorHealth {
        proto::CollectorHealth {
            exec_events: exec,
            ..proto::CollectorHealth::default()
        }
    }

    fn on() -> proto::ExecEventsHealth {
        proto::ExecEventsHealth {
            on: true,
            received: 10,
            pushed: 10,
            ..proto::ExecEventsHealth::default()
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn health_is_ok_only_while_events_flow_without_recent_losses() {
        let status = ExecStatus::default();
        let level = |c: proto::ComponentHealth| (c.status(), c.detail);

        let (l, d) = level(health(Some(&collector(Some(on()))), &status, NOW));
        assert_eq!(l, Level::Ok, "{d}");
        assert!(d.starts_with("on: received 10, pushed 10"), "{d}");

        let (l, d) = level(health(None, &status, NOW));
        assert_eq!(
            (l, d.as_str()),
            (Level::Degraded, "unknown: procmond has not reported yet")
        );

        let (l, d) = level(health(Some(&collector(None)), &status, NOW));
        assert_eq!(l, Level::Degraded, "{d}");

        let off = proto::ExecEventsHealth {
            on: false,
            detail: "joining the process events group: Operation not permitted".into(),
            ..proto::ExecEventsHealth::default()
        };
        let (l, d) = level(health(Some(&collector(Some(off))), &status, NOW));
        assert_eq!(l, Level::Degraded);
        assert!(
            d.starts_with("off: joining the process events group: Operation not permitted"),
            "{d}"
        );

        let mut dropped = on();
        dropped.dropped = 40;
        dropped.last_drop_at = Some(NOW - 30_000);
        dropped.last_drop_reason = "the kernel's event buffer overran".into();
        let (l, d) = level(health(
            Some(&collector(Some(dropped.clone()))),
            &status,
            NOW,
        ));
        assert_eq!(l, Level::Degraded);
        assert!(d.contains("40 events dropped"), "{d}");
        assert!(
            d.contains("30 s ago (the kernel's event buffer overran)"),
            "{d}"
        );
        // Old drops no longer degrade it.
        dropped.last_drop_at = Some(NOW - DROP_MEMORY_MS - 1);
        let (l, _) = level(health(Some(&collector(Some(dropped))), &status, NOW));
        assert_eq!(l, Level::Ok);

        status.refused.store(3, Ordering::Relaxed);
        status.last_problem_at.store(NOW - 1_000, Ordering::Relaxed);
        *crate::lock(&status.last_problem) = "an exec event refused: x".into();
        let (l, d) = level(health(Some(&collector(Some(on()))), &status, NOW));
        assert_eq!(l, Level::Degraded);
        assert!(d.contains("refused 3 events"), "{d}");
    }

    fn push(sequence: u64, events: Vec<proto::ExecEvent>) -> proto::CollectorPush {
        proto::CollectorPush {
            sequence,
            kind: Some(proto::collector_push::Kind::ExecEvents(
                proto::ExecEventBatch { events, dropped: 0 },
            )),
        }
    }

    fn event(pid: u32) -> proto::ExecEvent {
        convert::exec_event_to_proto(&ProcessEvent {
            event: EventKind::Exec,
            record: ProcessRecord {
                pid,
                ..ProcessRecord::default()
            },
            observed_at: NOW,
        })
    }

    #[test]
    fn gaps_oversized_batches_and_bad_events_are_counted_and_the_rest_kept() {
        let status = ExecStatus::default();
        let mut last = 0;
        let mut events = Vec::new();
        take(push(1, vec![event(1)]), &mut last, &mut events, &status);
        take(push(2, vec![event(2)]), &mut last, &mut events, &status);
        take(push(5, vec![event(5)]), &mut last, &mut events, &status);
        assert_eq!(status.missed_batches.load(Ordering::Relaxed), 2);
        // A reconnect numbers from 1: no gap.
        take(push(1, vec![event(6)]), &mut last, &mut events, &status);
        assert_eq!(status.missed_batches.load(Ordering::Relaxed), 2);

        let mut bad = event(7);
        bad.pid = 8;
        take(
            push(2, vec![bad, event(9)]),
            &mut last,
            &mut events,
            &status,
        );
        assert_eq!(status.refused.load(Ordering::Relaxed), 1);

        let flood = (0..=MAX_EXEC_EVENTS_PER_BATCH as u32).map(event).collect();
        take(push(3, flood), &mut last, &mut events, &status);
        assert_eq!(
            status.refused.load(Ordering::Relaxed),
            1 + MAX_EXEC_EVENTS_PER_BATCH as u64 + 1
        );
        let pids: Vec<u32> = events.iter().map(|e| e.record.pid).collect();
        assert_eq!(pids, [1, 2, 5, 6, 9]);
    }
}
