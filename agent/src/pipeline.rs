//! What happens to a scan once procmond delivered it: store, detect, fold, keep.
//!
//! 1. [`Store::ingest`] writes the scan in one transaction and computes its process events;
//! 2. the tables the rules read are loaded into the engine's sandbox and every rule runs;
//! 3. each rule's rows become alert candidates, folded against the stored alerts with the
//!    same id (a repeat within the window is counted, not raised);
//! 4. alerts and rule states are written in one transaction;
//! 5. retention deletes old scans in small transactions of their own.
//!
//! The pipeline is synchronous (redb and SQLite are); the agent runs it on a blocking thread.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use daemoneye_lib::alert::Alert;
use daemoneye_lib::config::Config;
use daemoneye_lib::detection::alerts::{self, AlertContext, Folded};
use daemoneye_lib::detection::engine::{Engine, RuleRun};
use daemoneye_lib::detection::precheck::CheckedSql;
use daemoneye_lib::detection::rules::{self, Diagnostic, Loaded};
use daemoneye_lib::detection::sandbox::{Dataset, Limits, QueryError, QueryResult, Sandbox};
use daemoneye_lib::detection::schema::Table;
use daemoneye_lib::models::{ProcessRecord, ScanSummary};
use daemoneye_lib::storage::{Retention, RuleState, RuleStatus, Store};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Records of retained scans loaded for a query or rule that reads `process_snapshots`.
const MAX_SNAPSHOT_ROWS: usize = 1_000_000;
/// Events loaded for a query that reads `process_events` across scans.
const MAX_EVENT_ROWS: usize = 1_000_000;
/// Scans deleted per retention transaction.
const RETENTION_BATCH: usize = 4;
/// redb's page cache. Measured over 300 ingests of 10,000 records: 25.5 MiB of anonymous
/// memory with a 16 MiB cache, 13.4 MiB with 4 MiB, and no slower ingest.
const STORE_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// The largest /etc/passwd read.
const MAX_PASSWD_BYTES: u64 = 16 * 1024 * 1024;

/// Loads the built-in pack (unless disabled) and the configured rule files.
pub fn load_rules(config: &Config, limits: Limits) -> anyhow::Result<Loaded> {
    let sandbox = Sandbox::new(limits).context("setting up the SQL sandbox")?;
    let mut loaded = Loaded::default();
    if config.detection.builtin_rules {
        for (name, text) in BUILTIN_RULE_FILES {
            loaded.extend(rules::parse(&format!("builtin:{name}"), text, &sandbox));
        }
    }
    loaded.extend(rules::load_paths(&config.detection.rules, &sandbox));
    Ok(loaded)
}

/// The limits of the SQL sandbox, from `[detection]`.
pub fn limits(config: &Config) -> Limits {
    Limits {
        timeout: config.detection.rule_timeout.get(),
        max_rows: usize::try_from(config.detection.max_rows).unwrap_or(usize::MAX),
        max_memory: config.detection.max_memory,
    }
}

/// What one scan produced.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// The store's id of the scan.
    pub scan_id: i64,
    /// Alerts raised (to deliver).
    pub raised: Vec<Alert>,
    /// Repeats folded into earlier alerts.
    pub suppressed: u64,
    /// Rules that did not finish, with why.
    pub degraded: Vec<(String, String)>,
    /// Process starts and exits since the previous scan.
    pub started: u64,
    /// See `started`.
    pub exited: u64,
    /// Time the rules took, all together.
    pub detection_time: Duration,
    /// Scans deleted by retention.
    pub expired_scans: u64,
}

/// The store, the rules and what the agent knows about the host.
pub struct Pipeline {
    store: Store,
    engine: Engine,
    states: HashMap<String, RuleState>,
    diagnostics: Vec<Diagnostic>,
    host: String,
    site: Option<String>,
    default_window: Duration,
    retention: Retention,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("rules", &self.engine.rules().len())
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens the store in `data_dir` and loads the rules.
    pub fn open(config: &Config, data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("events.redb");
        let store = Store::open(&path, STORE_CACHE_BYTES)
            .with_context(|| format!("opening the event store {}", path.display()))?;
        let limits = limits(config);
        let loaded = load_rules(config, limits)?;
        for diagnostic in &loaded.diagnostics {
            tracing::warn!(problem = %diagnostic, "rule not loaded");
        }
        let mut states: HashMap<String, RuleState> = store
            .rule_states()
            .context("reading rule states")?
            .into_iter()
            .map(|state| (state.rule_id.clone(), state))
            .collect();
        for rule in &loaded.rules {
            states
                .entry(rule.id.to_string())
                .or_insert_with(|| RuleState {
                    rule_id: rule.id.to_string(),
                    status: RuleStatus::Ok,
                    last_scan_id: None,
                    last_error: None,
                    last_elapsed_us: 0,
                    runs: 0,
                    degraded_runs: 0,
                });
        }
        tracing::info!(
            rules = loaded.rules.len(),
            problems = loaded.diagnostics.len(),
            store = %path.display(),
            "detection ready"
        );
        let engine = Engine::new(loaded.rules, limits).context("setting up the SQL sandbox")?;
        Ok(Self {
            store,
            engine,
            states,
            diagnostics: loaded.diagnostics,
            host: host_name(),
            site: config.site.id.as_ref().map(ToString::to_string),
            default_window: config.detection.dedup_window.get(),
            retention: Retention {
                max_scans: config.storage.retention_scans,
                max_age: config.storage.retention_age.get(),
                scans_per_transaction: RETENTION_BATCH,
            },
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine (rules and sandbox).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Problems found while loading rules.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The state of every loaded rule, in evaluation order.
    pub fn rule_states(&self) -> Vec<RuleState> {
        self.engine
            .rules()
            .iter()
            .filter_map(|rule| self.states.get(rule.id.as_str()).cloned())
            .collect()
    }

    /// Stores `records`, runs the rules over them, and keeps the alerts.
    pub fn process(
        &mut self,
        summary: &ScanSummary,
        mut records: Vec<ProcessRecord>,
        now_ms: i64,
    ) -> anyhow::Result<ScanOutcome> {
        let ingested = self
            .store
            .ingest(summary, &records)
            .context("storing the scan")?;
        for record in &mut records {
            record.scan_id = ingested.scan_id;
        }
        let mut outcome = ScanOutcome {
            scan_id: ingested.scan_id,
            started: ingested.started,
            exited: ingested.exited,
            ..ScanOutcome::default()
        };
        let needed = self.engine.tables_needed();
        let tables = self.load_tables(&needed, Some(ingested.scan_id))?;
        let dataset = tables.dataset(&records);
        let runs = self
            .engine
            .evaluate(&dataset)
            .context("loading the scan into the SQL sandbox")?;
        outcome.detection_time = runs.iter().map(|run| run.elapsed).sum();
        self.record_runs(&runs, ingested.scan_id, &mut outcome);

        let ctx = AlertContext {
            host: &self.host,
            site: self.site.as_deref(),
            scan_id: ingested.scan_id,
            now_ms,
        };
        let candidates = self.engine.alerts(&runs, &ctx);
        let windows: HashMap<&str, Duration> = self
            .engine
            .rules()
            .iter()
            .map(|rule| {
                (
                    rule.id.as_str(),
                    rule.dedup.window.unwrap_or(self.default_window),
                )
            })
            .collect();
        let mut states = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let window = windows
                .get(candidate.rule_id.as_str())
                .copied()
                .unwrap_or(self.default_window);
            let existing = self
                .store
                .alert(candidate.id.as_str())
                .context("reading a stored alert")?;
            match alerts::fold(existing.as_ref(), candidate, now_ms, window) {
                Folded::Raised(state) => {
                    outcome.raised.push(state.alert.clone());
                    states.push(state);
                }
                Folded::Suppressed(state) => {
                    outcome.suppressed += 1;
                    states.push(state);
                }
            }
        }
        self.store
            .put_alerts(&states)
            .context("storing the alerts")?;
        let rule_states = self.rule_states();
        self.store
            .put_rule_states(&rule_states)
            .context("storing rule states")?;
        let expired = self
            .store
            .enforce_retention(&self.retention, now_ms)
            .context("deleting old scans")?;
        outcome.expired_scans = expired.scans;
        Ok(outcome)
    }

    fn record_runs(&mut self, runs: &[RuleRun], scan_id: i64, outcome: &mut ScanOutcome) {
        for run in runs {
            let Some(rule) = self.engine.rules().get(run.rule) else {
                continue;
            };
            let Some(state) = self.states.get_mut(rule.id.as_str()) else {
                continue;
            };
            state.runs += 1;
            state.last_scan_id = Some(scan_id);
            state.last_elapsed_us = u64::try_from(run.elapsed.as_micros()).unwrap_or(u64::MAX);
            match &run.outcome {
                Ok(_) => {
                    state.status = RuleStatus::Ok;
                    state.last_error = None;
                }
                Err(err) => {
                    state.status = RuleStatus::Degraded;
                    state.degraded_runs += 1;
                    state.last_error = Some(err.to_string());
                    tracing::warn!(rule = %rule.id, error = %err, "rule degraded");
                    outcome
                        .degraded
                        .push((rule.id.to_string(), err.to_string()));
                }
            }
        }
    }

    /// Runs an operator's query over the newest scan (and whatever else it reads).
    pub fn query(&mut self, sql: &CheckedSql) -> Result<QueryResult, QueryError> {
        let latest = self
            .store
            .latest_scan()
            .map_err(|err| QueryError::Failed(format!("reading the store: {err}")))?;
        let records = match &latest {
            Some(scan) => self
                .store
                .snapshot(scan.scan_id)
                .map_err(|err| QueryError::Failed(format!("reading the store: {err}")))?,
            None => Vec::new(),
        };
        // Outside a rule, process_events means every retained event, not one scan's.
        let tables = self
            .load_tables(sql.tables(), None)
            .map_err(|err| QueryError::Failed(format!("{err:#}")))?;
        self.engine
            .load(&tables.dataset(&records))
            .map_err(|err| QueryError::Failed(err.to_string()))?;
        self.engine.query(sql)
    }

    /// Reads what `needed` names from the store (and /etc/passwd). `events_of`: the scan
    /// whose events `process_events` holds, or `None` for every retained event.
    fn load_tables(
        &self,
        needed: &BTreeSet<Table>,
        events_of: Option<i64>,
    ) -> anyhow::Result<Tables> {
        let mut tables = Tables::default();
        if needed.contains(&Table::ProcessSnapshots) {
            let limited = self
                .store
                .snapshots(MAX_SNAPSHOT_ROWS)
                .context("reading snapshots")?;
            if limited.truncated {
                tracing::warn!(
                    rows = MAX_SNAPSHOT_ROWS,
                    "process_snapshots holds only the newest scans' records"
                );
            }
            tables.snapshots = Some(limited.items);
        }
        if needed.contains(&Table::ProcessEvents) {
            tables.events = Some(match events_of {
                Some(scan_id) => self.store.events(scan_id).context("reading events")?,
                None => {
                    self.store
                        .all_events(MAX_EVENT_ROWS)
                        .context("reading events")?
                        .items
                }
            });
        }
        if needed.contains(&Table::Scans) {
            tables.scans = Some(self.store.scans().context("reading scans")?);
        }
        if needed.contains(&Table::Alerts) {
            tables.alerts = Some(
                self.store
                    .alerts()
                    .context("reading alerts")?
                    .into_iter()
                    .map(|stored| (stored.alert, stored.acked_at_ms.is_some()))
                    .collect(),
            );
        }
        if needed.contains(&Table::Users) {
            tables.users = Some(read_users(Path::new("/etc/passwd")));
        }
        tables.processes = needed.contains(&Table::Processes);
        Ok(tables)
    }
}

/// Rows read for one evaluation.
#[derive(Default)]
struct Tables {
    processes: bool,
    snapshots: Option<Vec<ProcessRecord>>,
    events: Option<Vec<daemoneye_lib::models::ProcessEvent>>,
    scans: Option<Vec<ScanSummary>>,
    alerts: Option<Vec<(Alert, bool)>>,
    users: Option<Vec<(u32, String)>>,
}

impl Tables {
    fn dataset<'a>(&'a self, records: &'a [ProcessRecord]) -> Dataset<'a> {
        Dataset {
            processes: self.processes.then_some(records),
            snapshots: self.snapshots.as_deref(),
            events: self.events.as_deref(),
            scans: self.scans.as_deref(),
            alerts: self.alerts.as_deref(),
            users: self.users.as_deref(),
        }
    }
}

/// uid and name of every account in `passwd` (a missing or unreadable file gives none: the
/// `User` field then shows the uid).
pub fn read_users(passwd: &Path) -> Vec<(u32, String)> {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(passwd)
        .and_then(|file| file.take(MAX_PASSWD_BYTES).read_to_string(&mut text));
    if let Err(err) = read {
        tracing::debug!(error = %err, file = %passwd.display(), "no user names");
        return Vec::new();
    }
    parse_passwd(&text)
}

fn parse_passwd(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            (!name.is_empty()).then(|| (uid, name.to_owned()))
        })
        .collect()
}

/// This machine's name, as alerts carry it.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_uid_and_name() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\n:x:5:5::/:/bin/sh\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbad:x:notanumber:1::/:\n";
        assert_eq!(
            parse_passwd(text),
            [(0, "root".to_owned()), (1, "daemon".to_owned())]
        );
    }

    #[test]
    fn every_builtin_rule_loads_and_its_fixtures_pass() {
        let config = Config::default();
        let loaded = load_rules(&config, limits(&config)).unwrap();
        assert!(
            loaded.diagnostics.is_empty(),
            "{:?}",
            loaded
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        assert!(loaded.rules.len() >= 15, "{} rules", loaded.rules.len());
        for rule in &loaded.rules {
            assert!(!rule.mitre.is_empty(), "{}: no ATT&CK id", rule.id);
            let outcomes = rules::run_fixtures(rule, limits(&config)).unwrap();
            let matching = rule
                .tests
                .iter()
                .filter(|test| test.expect_rows > 0)
                .count();
            assert!(matching >= 1, "{}: no fixture that must match", rule.id);
            assert!(
                rule.tests.len() > matching,
                "{}: no fixture that must not match",
                rule.id
            );
            for outcome in outcomes {
                assert!(outcome.passed(), "{}: {outcome:?}", rule.id);
            }
        }
    }
}
