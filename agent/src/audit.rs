//! What the agent records in procmond's audit ledger: its start and stop, a changed
//! configuration, a damaged event store it replaced, and every alert it raises. A ledger that cannot take an entry is logged and
//! does not stop detection.

use std::path::Path;

use daemoneye_lib::config::Config;
use daemoneye_lib::fsutil;
use daemoneye_lib::ipc::proto;
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::alert_export;
use daemoneye_lib::ledger::entry::{Body, fit_str};
use daemoneye_lib::text;

use crate::supervisor::Supervisor;

/// Where the hash of the configuration last recorded is kept, in the data directory.
const CONFIG_HASH_FILE: &str = "config.audit";

/// Entries per `AppendAudit` request; procmond accepts up to 512.
const BATCH: usize = 256;

/// Asks procmond to record `body`; a failure is logged.
pub async fn record(supervisor: &Supervisor, body: Body) -> bool {
    record_batch(supervisor, std::slice::from_ref(&body)).await
}

/// Asks procmond to record `bodies` in order with one `fdatasync` (in batches of at most
/// the size procmond accepts); a failure is logged.
pub async fn record_batch(supervisor: &Supervisor, bodies: &[Body]) -> bool {
    let mut all = true;
    for batch in bodies.chunks(BATCH) {
        let kind = batch.first().map_or("", Body::kind);
        match supervisor.append_audit(batch).await {
            Ok(indexes) => {
                tracing::debug!(
                    kind,
                    entries = batch.len(),
                    first = indexes.start,
                    "recorded in the audit ledger"
                );
            }
            Err(err) => {
                tracing::warn!(kind, entries = batch.len(), error = %err, "not recorded in the audit ledger");
                all = false;
            }
        }
    }
    all
}

/// Records the agent's start, and the configuration when it differs from the one recorded last
/// (on the first start too): its BLAKE3 hash over its JSON form.
pub async fn record_start(supervisor: &Supervisor, config: &Config, data_dir: &Path) {
    record(
        supervisor,
        Body::AgentStarted {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
        },
    )
    .await;
    let Ok(json) = serde_json::to_vec(config) else {
        return;
    };
    let hash = HashAlg::Blake3.digest(&[&json]);
    let hex = text::hex(&hash);
    let file = data_dir.join(CONFIG_HASH_FILE);
    if std::fs::read_to_string(&file).is_ok_and(|stored| stored.trim() == hex) {
        return;
    }
    let body = Body::ConfigChanged {
        source: "the agent's configuration at start-up".to_owned(),
        config_hash: hash,
    };
    if record(supervisor, body).await
        && let Err(err) = fsutil::atomic_replace(&file, format!("{hex}\n").as_bytes())
    {
        // Without the file, the next start records the configuration again: harmless.
        tracing::warn!(error = %err, "cannot keep the configuration hash");
    }
}

/// The ledger's hash function, asked of procmond once: it is fixed when the ledger is created,
/// and a restarted procmond opens the same ledger.
static LEDGER_HASH: std::sync::OnceLock<HashAlg> = std::sync::OnceLock::new();

async fn ledger_hash(supervisor: &Supervisor) -> Option<HashAlg> {
    if let Some(alg) = LEDGER_HASH.get() {
        return Some(*alg);
    }
    let request = proto::AuditRequest {
        kind: Some(proto::audit_request::Kind::Key(proto::AuditKey {})),
    };
    match supervisor.audit(request).await {
        Ok(answer) => {
            let alg = HashAlg::from_name(&answer.hash)?;
            Some(*LEDGER_HASH.get_or_init(|| alg))
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot learn the audit ledger's hash function");
            None
        }
    }
}

/// Records each alert raised by a scan, in one batch: an `alert_recorded` entry with the
/// ledger's hash of the alert's canonical bytes (what the outbox holds and the sinks receive),
/// so that an alert carried out by hand (`alerts export`) proves itself.
pub async fn record_alerts(supervisor: &Supervisor, alerts: &[daemoneye_lib::alert::Alert]) {
    if alerts.is_empty() {
        return;
    }
    let Some(alg) = ledger_hash(supervisor).await else {
        tracing::warn!(
            alerts = alerts.len(),
            "alerts not recorded in the audit ledger"
        );
        return;
    };
    let bodies: Vec<Body> = alerts
        .iter()
        .map(|alert| Body::AlertRecorded {
            alert_id: alert.id.to_string(),
            rule_id: alert.rule_id.clone(),
            severity: alert.severity.to_string(),
            host: alert.host.clone(),
            alert_hash: alert_export::alert_hash(alg, &alert.canonical_bytes()),
        })
        .collect();
    record_batch(supervisor, &bodies).await;
}

/// The ledger entries for the outbox's notes: one `alert_delivered` per delivered alert and
/// one `alerts_dropped` per run of drops of one sink for one reason (each drop is also logged).
pub fn outbox_bodies(notes: &[crate::outbox::deliver::Note]) -> Vec<Body> {
    use crate::outbox::deliver::Note;
    let mut bodies = Vec::new();
    for note in notes {
        match note {
            Note::Delivered { sink, alerts } => {
                bodies.extend(alerts.iter().map(|alert| Body::AlertDelivered {
                    alert_id: alert.to_string(),
                    sink: sink.clone(),
                }));
            }
            Note::Dropped(dropped) => {
                for gone in dropped {
                    tracing::warn!(sink = %gone.sink, alert = %gone.alert_id, reason = drop_reason(gone.reason), "delivery dropped unsent");
                }
                for run in dropped.chunk_by(|a, b| a.sink == b.sink && a.reason == b.reason) {
                    if let (Some(first), Some(last)) = (run.first(), run.last()) {
                        bodies.push(Body::AlertsDropped {
                            sink: first.sink.clone(),
                            count: run.len() as u64,
                            reason: drop_reason(first.reason).to_owned(),
                            first_alert_id: first.alert_id.to_string(),
                            last_alert_id: last.alert_id.to_string(),
                        });
                    }
                }
            }
            // Logged by the loop and kept as a dead letter; not a ledger entry.
            Note::Rejected { .. } => {}
        }
    }
    bodies
}

/// How `alerts_dropped` names a reason.
pub fn drop_reason(reason: daemoneye_lib::storage::DropReason) -> &'static str {
    use daemoneye_lib::storage::DropReason;
    match reason {
        DropReason::Full => "full",
        DropReason::TooLarge => "too_large",
        DropReason::DeadLetterOverflow => "dead_letter_overflow",
        DropReason::SinkRemoved => "sink_removed",
    }
}

/// Records that the event store at `path` was damaged, moved aside and replaced.
pub async fn record_store_recovered(
    supervisor: &Supervisor,
    path: &Path,
    recovered: &daemoneye_lib::storage::Recovered,
) {
    record(
        supervisor,
        Body::StoreRecovered {
            path: fit_str(&path.display().to_string()),
            moved_to: fit_str(&recovered.moved_to.display().to_string()),
            reason: fit_str(&recovered.reason),
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::deliver::Note;
    use daemoneye_lib::ids::AlertId;
    use daemoneye_lib::storage::{DropReason, Dropped};

    fn id(n: u32) -> AlertId {
        AlertId::parse(&format!("{n:032x}")).unwrap()
    }

    fn dropped(sink: &str, n: u32, reason: DropReason) -> Dropped {
        Dropped {
            sink: sink.into(),
            seq: u64::from(n),
            alert_id: id(n),
            enqueued_ms: 0,
            bytes: 10,
            reason,
        }
    }

    #[test]
    fn deliveries_are_one_entry_each_and_drops_one_entry_per_run() {
        let notes = [
            Note::Delivered {
                sink: "siem".into(),
                alerts: vec![id(1), id(2)],
            },
            Note::Dropped(vec![
                dropped("siem", 3, DropReason::Full),
                dropped("siem", 4, DropReason::Full),
                dropped("siem", 5, DropReason::TooLarge),
                dropped("archive", 6, DropReason::Full),
            ]),
            Note::Rejected {
                sink: "siem".into(),
                alert: id(7),
                reason: "malformed".into(),
            },
        ];
        let bodies = outbox_bodies(&notes);
        let delivered = |n: u32| Body::AlertDelivered {
            alert_id: id(n).to_string(),
            sink: "siem".into(),
        };
        let run =
            |sink: &str, count: u64, reason: &str, first: u32, last: u32| Body::AlertsDropped {
                sink: sink.into(),
                count,
                reason: reason.into(),
                first_alert_id: id(first).to_string(),
                last_alert_id: id(last).to_string(),
            };
        assert_eq!(
            bodies,
            [
                delivered(1),
                delivered(2),
                run("siem", 2, "full", 3, 4),
                run("siem", 1, "too_large", 5, 5),
                run("archive", 1, "full", 6, 6),
            ]
        );
        assert!(bodies.iter().all(|body| body.encode().is_ok()));
    }
}
