//! The agent's side of bundles at run time: one place that installs (from the CLI or the
//! inbox, one code path: [`Bundles::install_file`]), rolls back, and then makes the decision
//! take effect — the ledger entry, the rule set rebuilt and swapped into the pipeline between
//! two scans, a config bundle's layer reloaded (or named as needing a restart), the license
//! gate re-evaluated.
//!
//! [`Bundles`] is synchronous and guarded by a mutex; every call runs on a blocking thread.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use daemoneye_lib::bundle::{Kind, LicenseState};
use daemoneye_lib::config::{self, BundleLayer, Config, ConfigSources, Overridden, Overrides};
use daemoneye_lib::ipc::proto;
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::Body;

use crate::audit;
use crate::bundles::{Bundles, Decision};
use crate::control::health::BundlesView;
use crate::detector::{self, Detector, PackGate};
use crate::lock;
use crate::pipeline::PipelineHandle;
use crate::run::now_ms;
use crate::supervisor::Supervisor;

/// Settings whose new value a config bundle applies without a restart: they only shape the
/// rule set, which is rebuilt and swapped.
const HOT_KEYS: &[&str] = &[
    "detection.rule_timeout",
    "detection.max_rows",
    "detection.max_memory",
    "detection.builtin_rules",
    "detection.rules",
];

/// How often the stored bundles are read back and their hashes checked while the agent runs
/// (they are also checked at start and before a rollback): a 10 MB bundle costs tens of
/// milliseconds of one core.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// How the agent loaded its configuration, to load it again over a new config bundle.
#[derive(Debug, Clone)]
pub struct ConfigBase {
    /// The sources, without a bundle layer.
    pub sources: ConfigSources,
    /// The command-line overrides.
    pub overrides: Overrides,
}

impl ConfigBase {
    /// The configuration over `layer`, and the keys of the layer a local layer overrides.
    pub fn load(
        &self,
        layer: Option<BundleLayer>,
    ) -> Result<(Config, Vec<Overridden>), config::ConfigError> {
        let mut sources = self.sources.clone();
        sources.bundle_layer = layer;
        let (config, report) = config::load_report(&sources, &self.overrides, |_| None)?;
        Ok((config, report.bundle_keys_overridden))
    }
}

/// What the configuration layer of the active config bundle did.
#[derive(Debug, Clone, Default)]
pub struct ConfigState {
    /// The keys a config bundle changed that take effect only after a restart.
    pub restart_needed: Vec<String>,
    /// Keys of the config bundle a local file, the environment or the command line
    /// overrides, with the layer that wins.
    pub overridden: Vec<Overridden>,
    /// Why the active config bundle is not in use, if it is not.
    pub problem: Option<String>,
}

/// Bundles, and what applying them touches.
pub struct BundleService {
    bundles: Mutex<Bundles>,
    base: ConfigBase,
    /// The configuration the agent started with.
    started: Config,
    /// The configuration the agent runs (the one it started with, with hot keys updated).
    running: Mutex<Config>,
    config_state: Mutex<ConfigState>,
    /// The gates of the rule packs in the rule set now running.
    gates: Mutex<Vec<PackGate>>,
    pipeline: PipelineHandle,
    supervisor: Supervisor,
    /// The status and license last read, for health while an install holds the lock.
    cached: Mutex<Option<(proto::BundleStatus, LicenseState, i64)>>,
    /// Held while a change's ledger entry is recorded.
    recording: tokio::sync::Mutex<()>,
    /// Held while the rule set is rebuilt and swapped in.
    rebuilding: tokio::sync::Mutex<()>,
    /// When the stored bundles were last re-read.
    last_recheck: Mutex<Option<std::time::Instant>>,
}

impl BundleService {
    /// The service over `bundles`, for an agent that runs `config` (loaded from `base` and
    /// the active config bundle, as `config_state` says).
    pub fn new(
        bundles: Bundles,
        base: ConfigBase,
        config: Config,
        config_state: ConfigState,
        gates: Vec<PackGate>,
        pipeline: PipelineHandle,
        supervisor: Supervisor,
    ) -> Self {
        Self {
            bundles: Mutex::new(bundles),
            base,
            started: config.clone(),
            running: Mutex::new(config),
            config_state: Mutex::new(config_state),
            gates: Mutex::new(gates),
            pipeline,
            supervisor,
            cached: Mutex::new(None),
            recording: tokio::sync::Mutex::new(()),
            rebuilding: tokio::sync::Mutex::new(()),
            last_recheck: Mutex::new(Some(std::time::Instant::now())),
        }
    }

    /// `bundle install PATH` (source "cli") or a file of the inbox.
    pub async fn install(
        self: &Arc<Self>,
        path: std::path::PathBuf,
        source: &'static str,
    ) -> proto::BundleDecision {
        let service = Arc::clone(self);
        let decision = tokio::task::spawn_blocking(move || {
            lock(&service.bundles).install_file(&path, source, now_ms())
        })
        .await;
        match decision {
            Ok(decision) => self.take_effect(decision).await,
            Err(err) => refused_internally(&format!("the install failed: {err}")),
        }
    }

    /// `bundle rollback [NAME]`.
    pub async fn rollback(
        self: &Arc<Self>,
        name: Option<String>,
    ) -> Result<proto::BundleDecision, String> {
        let service = Arc::clone(self);
        let decision = tokio::task::spawn_blocking(move || {
            lock(&service.bundles).rollback(name.as_deref(), now_ms())
        })
        .await
        .map_err(|err| format!("the rollback failed: {err}"))??;
        Ok(self.take_effect(decision).await)
    }

    /// Whether the stored bundles are due for a re-read ([`RECHECK_EVERY`]); marks it done.
    fn recheck_due(&self) -> bool {
        let mut last = lock(&self.last_recheck);
        let due = last.is_none_or(|at| at.elapsed() >= RECHECK_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Records the ledger entry of the change of `name` at `at_ms`, unless it was recorded
    /// already, then drops it from the state's unrecorded changes. One at a time, so that the
    /// change just made and the catch-up of [`BundleService::poll`] never record it twice.
    async fn record_change(self: &Arc<Self>, name: String, at_ms: i64, body: Body) {
        let _one = self.recording.lock().await;
        let service = Arc::clone(self);
        let key = name.clone();
        let waiting =
            tokio::task::spawn_blocking(move || lock(&service.bundles).is_unrecorded(&key, at_ms))
                .await
                .unwrap_or(false);
        if !waiting || !audit::record(&self.supervisor, body).await {
            return;
        }
        let service = Arc::clone(self);
        let marked =
            tokio::task::spawn_blocking(move || lock(&service.bundles).mark_recorded(&name, at_ms))
                .await;
        if let Ok(Err(err)) = marked {
            tracing::warn!(error = %err, "the bundle state still lists a recorded change");
        }
    }

    /// Records the changes whose ledger entry is missing: after a crash between a switch and
    /// its record, or while procmond could not take it.
    async fn record_unrecorded(self: &Arc<Self>) {
        let service = Arc::clone(self);
        let waiting = tokio::task::spawn_blocking(move || lock(&service.bundles).unrecorded())
            .await
            .unwrap_or_default();
        for (name, at_ms, body) in waiting {
            self.record_change(name, at_ms, body).await;
        }
    }

    /// One look at the inbox; then the license gate, which time alone can close.
    pub async fn poll(self: &Arc<Self>) {
        self.record_unrecorded().await;
        if self.recheck_due() {
            let service = Arc::clone(self);
            let _ = tokio::task::spawn_blocking(move || lock(&service.bundles).recheck()).await;
        }
        let service = Arc::clone(self);
        let decisions =
            tokio::task::spawn_blocking(move || lock(&service.bundles).poll_inbox(now_ms()))
                .await
                .unwrap_or_default();
        let any = !decisions.is_empty();
        for decision in decisions {
            self.take_effect(decision).await;
        }
        let service = Arc::clone(self);
        let changed = tokio::task::spawn_blocking(move || service.gates_changed())
            .await
            .unwrap_or(false);
        if !any && changed {
            tracing::info!("a rule pack's license gate changed: rebuilding the rule set");
            self.rebuild_rules().await;
        }
    }

    /// Whether a rule pack's license gate would now decide otherwise than when the rule set
    /// was built.
    fn gates_changed(&self) -> bool {
        let bundles = lock(&self.bundles);
        let license = bundles.license_state();
        let now = bundles.judged_now(now_ms());
        let packs = bundles.rule_packs();
        drop(bundles);
        let gates = lock(&self.gates);
        packs.iter().any(|(name, requires)| {
            let open = requires
                .as_ref()
                .is_none_or(|feature| license.allows(feature, now).is_ok());
            let was = gates
                .iter()
                .find(|gate| gate.name == *name)
                .is_some_and(|gate| gate.in_force.is_ok());
            open != was
        })
    }

    /// The ledger entry, then whatever the decision changed.
    async fn take_effect(self: &Arc<Self>, decision: Decision) -> proto::BundleDecision {
        let Decision {
            mut proto,
            changed,
            ledger,
        } = decision;
        match proto.action() {
            proto::BundleAction::Refused => tracing::warn!(
                name = %proto.name,
                reason = %proto.reason,
                source = %proto.source,
                "bundle refused"
            ),
            _ => tracing::info!(
                name = %proto.name,
                version = proto.version.unwrap_or_default(),
                kind = %proto.kind,
                action = ?proto.action(),
                "bundle applied"
            ),
        }
        if proto.action() == proto::BundleAction::Refused {
            audit::record(&self.supervisor, ledger).await;
        } else {
            self.record_change(proto.name.clone(), proto.at_ms, ledger)
                .await;
        }
        match changed {
            Some(Kind::Rules | Kind::License) => self.rebuild_rules().await,
            Some(Kind::Config) => {
                proto.restart_needed = self.reload_config().await;
            }
            Some(Kind::Keys) | None => {}
        }
        proto
    }

    /// Loads the configuration again over the active config bundle: the hot keys take
    /// effect (the rule set is rebuilt), the others are returned as needing a restart.
    async fn reload_config(self: &Arc<Self>) -> Vec<String> {
        // The bundle state's lock and the configuration files: on a blocking thread.
        let service = Arc::clone(self);
        let loaded = tokio::task::spawn_blocking(move || {
            let layer = lock(&service.bundles).config_layer_now();
            let source = layer.as_ref().map_or_else(
                || "local configuration".to_owned(),
                |layer| layer.source.clone(),
            );
            service.base.load(layer).map(|loaded| (source, loaded))
        })
        .await;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                tracing::error!(error = %err, "reloading the configuration failed");
                return Vec::new();
            }
        };
        let (source, (config, overridden)) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                tracing::error!(error = %err, "the config bundle cannot be applied over the local configuration");
                lock(&self.config_state).problem = Some(err.to_string());
                return Vec::new();
            }
        };
        let restart_needed = {
            let mut running = lock(&self.running);
            // The hot keys, one by one: the rest of `running` stays what the agent started
            // with, which is what its other parts still run.
            running.detection.rule_timeout = config.detection.rule_timeout;
            running.detection.max_rows = config.detection.max_rows;
            running.detection.max_memory = config.detection.max_memory;
            running.detection.builtin_rules = config.detection.builtin_rules;
            running.detection.rules.clone_from(&config.detection.rules);
            // A key differing from the configuration the agent started with, and not hot,
            // needs a restart; one that went back to its start value no longer does.
            let cold: Vec<String> = changed_keys(&self.started, &config)
                .into_iter()
                .filter(|key| !HOT_KEYS.contains(&key.as_str()))
                .collect();
            let mut state = lock(&self.config_state);
            state.problem = None;
            state.overridden = overridden;
            state.restart_needed = cold.clone();
            cold
        };
        let json = serde_json::to_vec(&config).unwrap_or_default();
        audit::record(
            &self.supervisor,
            Body::ConfigChanged {
                source,
                config_hash: HashAlg::Blake3.digest(&[&json]),
            },
        )
        .await;
        if !restart_needed.is_empty() {
            tracing::warn!(keys = %restart_needed.join(", "), "restart the agent for these settings to take effect");
        }
        self.rebuild_rules().await;
        restart_needed
    }

    /// Builds the rule set from the running configuration and the active rule packs and
    /// swaps it into the pipeline.
    async fn rebuild_rules(self: &Arc<Self>) {
        // One rebuild at a time, from build to swap: two changes in quick succession must
        // not swap their rule sets in the opposite order.
        let _one = self.rebuilding.lock().await;
        let service = Arc::clone(self);
        let built = tokio::task::spawn_blocking(move || service.build_detector())
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
            .and_then(|built| built);
        match built {
            Ok((detector, gates)) => {
                for gate in &gates {
                    if let Err(why) = &gate.in_force {
                        tracing::warn!(pack = %gate.name, reason = %why, "rule pack not active");
                    }
                }
                *lock(&self.gates) = gates;
                if let Err(err) = self.pipeline.replace(detector).await {
                    tracing::error!(error = %err, "the new rule set was not swapped in");
                }
            }
            Err(err) => tracing::error!(error = %err, "the rule set could not be rebuilt"),
        }
    }

    /// The detector for the running configuration and the active packs.
    fn build_detector(&self) -> anyhow::Result<(Detector, Vec<PackGate>)> {
        let config = lock(&self.running).clone();
        let bundles = lock(&self.bundles);
        build(&config, &bundles)
    }

    /// `bundle status`.
    pub async fn status(self: &Arc<Self>) -> proto::BundleStatus {
        let service = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut status = lock(&service.bundles).status(now_ms());
            let state = lock(&service.config_state);
            status.restart_needed.clone_from(&state.restart_needed);
            if let Some(problem) = &state.problem {
                status
                    .problems
                    .push(format!("config bundle not in use: {problem}"));
            }
            status
        })
        .await
        .unwrap_or_default()
    }

    /// `bundle history`.
    pub async fn history(
        self: &Arc<Self>,
        page: proto::Page,
    ) -> Result<proto::BundleHistory, String> {
        let service = Arc::clone(self);
        tokio::task::spawn_blocking(move || lock(&service.bundles).history(&page))
            .await
            .map_err(|err| format!("reading the history failed: {err}"))?
    }

    /// What health needs: status, license, the config layer, the rule packs' gates.
    /// It never waits for an install in progress (health is answered on the async
    /// threads): while one runs, the view taken before it is shown.
    pub fn health_view(&self) -> BundlesView {
        let read = |bundles: &Bundles| {
            let now = now_ms();
            (
                bundles.status(now),
                bundles.license_state(),
                bundles.judged_now(now),
            )
        };
        let fresh = match self.bundles.try_lock() {
            Ok(bundles) => Some(read(&bundles)),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(read(&poisoned.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let mut cached = lock(&self.cached);
        if let Some(fresh) = fresh {
            *cached = Some(fresh);
        }
        let (status, license, now) = cached.clone().unwrap_or_default();
        BundlesView {
            status,
            license,
            now,
            config: lock(&self.config_state).clone(),
            gates: lock(&self.gates).clone(),
        }
    }
}

/// The detector for `config` and the active rule packs of `bundles`.
pub fn build(config: &Config, bundles: &Bundles) -> anyhow::Result<(Detector, Vec<PackGate>)> {
    let limits = detector::limits(config);
    let packs = bundles.active_rules();
    let (loaded, gates) = detector::load_with_packs(
        config,
        limits,
        &packs,
        &bundles.license_state(),
        bundles.judged_now(now_ms()),
    )?;
    let origin = if packs.is_empty() {
        "configuration".to_owned()
    } else {
        let names: Vec<String> = packs
            .iter()
            .map(|pack| format!("{}-{}", pack.name, pack.version))
            .collect();
        format!("configuration and bundles {}", names.join(", "))
    };
    let detector = Detector::new(loaded, limits, &origin).context("building the rule set")?;
    Ok((detector, gates))
}

/// The dotted keys whose values differ between two configurations.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let mut out = Vec::new();
    diff("", &old, &new, &mut out);
    out.sort();
    out
}

fn diff(prefix: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                diff(
                    &path,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// A refusal made by the agent itself (a failed task), not by verification.
fn refused_internally(reason: &str) -> proto::BundleDecision {
    proto::BundleDecision {
        action: proto::BundleAction::Refused as i32,
        reason: reason.to_owned(),
        step: "internal".to_owned(),
        at_ms: now_ms(),
        ..proto::BundleDecision::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_names_each_leaf_that_differs() {
        let old = Config::default();
        let mut new = Config::default();
        new.detection.max_rows = 5;
        new.collection.interval = config::HumanDuration::new(std::time::Duration::from_secs(3));
        assert_eq!(
            changed_keys(&old, &new),
            vec![
                "collection.interval".to_owned(),
                "detection.max_rows".to_owned()
            ]
        );
        assert!(changed_keys(&old, &old).is_empty());
    }
}
