//! What the agent records in procmond's audit ledger: its start and stop, a changed
//! configuration, and every alert it raises. A ledger that cannot take an entry is logged and
//! does not stop detection.

use std::path::Path;

use daemoneye_lib::config::Config;
use daemoneye_lib::fsutil;
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::text;

use crate::supervisor::Supervisor;

/// Where the hash of the configuration last recorded is kept, in the data directory.
const CONFIG_HASH_FILE: &str = "config.audit";

/// Asks procmond to record `body`; a failure is logged.
pub async fn record(supervisor: &Supervisor, body: Body) -> bool {
    let kind = body.kind();
    match supervisor.append_audit(&body).await {
        Ok(index) => {
            tracing::debug!(kind, index, "recorded in the audit ledger");
            true
        }
        Err(err) => {
            tracing::warn!(kind, error = %err, "not recorded in the audit ledger");
            false
        }
    }
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

/// Records each alert raised by a scan.
pub async fn record_alerts(supervisor: &Supervisor, alerts: &[daemoneye_lib::alert::Alert]) {
    for alert in alerts {
        record(
            supervisor,
            Body::AlertRaised {
                alert_id: alert.id.to_string(),
                rule_id: alert.rule_id.clone(),
                severity: alert.severity.to_string(),
                host: alert.host.clone(),
            },
        )
        .await;
    }
}
