//! What happens to a scan once procmond delivered it: store, detect, fold, keep, hand on.
//!
//! 1. [`Store::ingest`] writes the scan in one transaction and computes its process events;
//! 2. the tables the rules read are loaded into the [`Detector`]'s sandbox and every rule runs;
//! 3. each rule's rows become alert candidates, folded against the stored alerts with the
//!    same id (a repeat within the window is counted, not raised);
//! 4. alerts, their deliveries for every sink (the persistent outbox) and rule states are
//!    written in one transaction ([`Store::write`]): an alert committed is an alert queued
//!    for delivery; then the sinks' loops are woken ([`Outbox::wake`]);
//! 5. retention deletes old scans in small transactions of their own;
//! 6. the raised alerts are handed on through a channel ([`Raised`]) to be recorded in the
//!    audit ledger.
//!
//! The pipeline runs on a thread of its own (redb and SQLite are synchronous) and owns its
//! detector and rule states; the rest of the agent talks to it through a [`PipelineHandle`].
//! A replaced detector takes effect between two scans, so a scan runs entirely on the old or
//! entirely on the new rule set, and rule states carry over by rule id. The CLI never goes
//! through the pipeline: it reads the shared [`Store`] and the [`RulesView`] published after
//! every scan and every replacement.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::Config;
use daemoneye_lib::detection::alerts::{self, AlertContext, Folded};
use daemoneye_lib::detection::engine::RuleRun;
use daemoneye_lib::detection::schema::Table;
use daemoneye_lib::models::{EventKind, ProcessEvent, ProcessRecord, ScanSummary};
use daemoneye_lib::storage::{Retention, RuleState, RuleStatus, Store};
use tokio::sync::{mpsc, oneshot, watch};

use crate::detector::Detector;
use crate::outbox::deliver::Outbox;
use crate::tables::Tables;

/// Scans deleted per retention transaction.
const RETENTION_BATCH: usize = 4;
/// redb's page cache. Measured over 300 ingests of 10,000 records: 25.5 MiB of anonymous
/// memory with a 16 MiB cache, 13.4 MiB with 4 MiB, and no slower ingest.
pub const STORE_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Commands queued for the pipeline thread.
const QUEUE: usize = 4;

/// What one scan produced.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// The store's id of the scan.
    pub scan_id: i64,
    /// Alerts raised (handed on for delivery as well).
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
    /// The rule set the scan ran on (1 for the first, one more per replacement).
    pub generation: u64,
    /// The ids of the rules that ran, in order.
    pub rules_run: Vec<String>,
}

/// Alerts one scan raised, handed on for delivery.
#[derive(Debug, Clone)]
pub struct Raised {
    /// The store's id of the scan.
    pub scan_id: i64,
    /// The alerts, in rule order.
    pub alerts: Vec<Alert>,
}

/// One loaded rule as the CLI sees it.
#[derive(Debug, Clone)]
pub struct RuleView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its alerts' severity.
    pub severity: Severity,
    /// ATT&CK ids.
    pub mitre: Vec<String>,
    /// Its file, or `builtin:<file>`.
    pub source: String,
    /// How it fared.
    pub state: RuleState,
}

/// The rule set as the CLI sees it: published by the pipeline, read without its lock.
#[derive(Debug, Clone, Default)]
pub struct RulesView {
    /// The loaded rules, in evaluation order.
    pub rules: Vec<RuleView>,
    /// Rules that did not load: "file: id: reason".
    pub problems: Vec<String>,
    /// Where the set came from.
    pub origin: String,
    /// See [`ScanOutcome::generation`].
    pub generation: u64,
}

/// The store, the detector and what the agent knows about the host.
pub struct Pipeline {
    store: Arc<Store>,
    detector: Detector,
    generation: u64,
    states: HashMap<String, RuleState>,
    host: String,
    site: Option<String>,
    default_window: Duration,
    retention: Retention,
    outbox: Option<Arc<Outbox>>,
    /// The newest stored scan: exec events are stored with it, parents looked up in it.
    latest_scan: Option<i64>,
    /// Exec events that arrived before the first scan was stored (at most
    /// [`MAX_WAITING_EXEC`]).
    waiting_exec: Vec<ProcessEvent>,
    /// Processes recently exec'd, by pid: the parents of the next ones, before a scan sees
    /// them (at most [`MAX_RECENT_EXEC`]).
    recent_exec: HashMap<u32, ProcessRecord>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("rules", &self.detector.rules().len())
            .field("generation", &self.generation)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Exec events kept in memory while no scan is stored yet.
const MAX_WAITING_EXEC: usize = 10_000;
/// Recently exec'd processes remembered as parents.
const MAX_RECENT_EXEC: usize = 4096;

fn store_latest(store: &Store) -> anyhow::Result<Option<i64>> {
    Ok(store
        .latest_scan()
        .context("reading the newest scan")?
        .map(|scan| scan.scan_id))
}

/// Splits exec events into rounds in which no pid appears twice (`processes` holds a pid
/// once): a process that executes twice in one batch is evaluated once per program.
fn rounds(events: Vec<ProcessEvent>) -> Vec<Vec<ProcessEvent>> {
    let mut rounds: Vec<(std::collections::HashSet<u32>, Vec<ProcessEvent>)> = Vec::new();
    for event in events {
        let pid = event.record.pid;
        match rounds.iter_mut().find(|(pids, _)| !pids.contains(&pid)) {
            Some((pids, round)) => {
                pids.insert(pid);
                round.push(event);
            }
            None => rounds.push(([pid].into(), vec![event])),
        }
    }
    rounds.into_iter().map(|(_, round)| round).collect()
}

/// Opens the event store `data_dir/events.redb`.
pub fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    let path = data_dir.join("events.redb");
    Store::open(&path, STORE_CACHE_BYTES)
        .with_context(|| format!("opening the event store {}", path.display()))
}

impl Pipeline {
    /// A pipeline over `store` running `detector`.
    pub fn new(config: &Config, store: Arc<Store>, detector: Detector) -> anyhow::Result<Self> {
        let latest_scan = store_latest(&store)?;
        let states: HashMap<String, RuleState> = store
            .rule_states()
            .context("reading rule states")?
            .into_iter()
            .map(|state| (state.rule_id.clone(), state))
            .collect();
        let mut pipeline = Self {
            store,
            detector,
            generation: 1,
            states,
            host: host_name(),
            site: config.site.id.as_ref().map(ToString::to_string),
            default_window: config.detection.dedup_window.get(),
            retention: Retention {
                max_scans: config.storage.retention_scans,
                max_age: config.storage.retention_age.get(),
                scans_per_transaction: RETENTION_BATCH,
            },
            outbox: None,
            latest_scan,
            waiting_exec: Vec::new(),
            recent_exec: HashMap::new(),
        };
        pipeline.adopt_rules();
        Ok(pipeline)
    }

    /// Every alert raised from now on is enqueued in `outbox` with the scan's write.
    pub fn set_outbox(&mut self, outbox: Arc<Outbox>) {
        self.outbox = Some(outbox);
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Replaces the rule set; states of rules that stay (by id) carry over.
    pub fn replace_detector(&mut self, detector: Detector) {
        self.detector = detector;
        self.generation += 1;
        self.adopt_rules();
    }

    /// Logs the rule set and gives every new rule a state.
    fn adopt_rules(&mut self) {
        for diagnostic in self.detector.diagnostics() {
            tracing::warn!(problem = %diagnostic, "rule not loaded");
        }
        for rule in self.detector.rules() {
            self.states
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
            rules = self.detector.rules().len(),
            problems = self.detector.diagnostics().len(),
            origin = self.detector.origin(),
            generation = self.generation,
            "detection ready"
        );
    }

    /// The state of every loaded rule, in evaluation order.
    pub fn rule_states(&self) -> Vec<RuleState> {
        self.detector
            .rules()
            .iter()
            .filter_map(|rule| self.states.get(rule.id.as_str()).cloned())
            .collect()
    }

    /// The rule set as the CLI sees it now.
    pub fn view(&self) -> RulesView {
        RulesView {
            rules: self
                .detector
                .rules()
                .iter()
                .filter_map(|rule| {
                    Some(RuleView {
                        id: rule.id.to_string(),
                        name: rule.name.clone(),
                        severity: rule.severity,
                        mitre: rule.mitre.clone(),
                        source: rule.source.clone(),
                        state: self.states.get(rule.id.as_str())?.clone(),
                    })
                })
                .collect(),
            problems: self
                .detector
                .diagnostics()
                .iter()
                .map(ToString::to_string)
                .collect(),
            origin: self.detector.origin().to_owned(),
            generation: self.generation,
        }
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
            generation: self.generation,
            ..ScanOutcome::default()
        };
        let needed = self.detector.tables_needed();
        let tables = Tables::load(&self.store, &needed, Some(ingested.scan_id))?;
        let dataset = tables.dataset(&records);
        let runs = self
            .detector
            .evaluate(&dataset)
            .context("loading the scan into the SQL sandbox")?;
        outcome.detection_time = runs.iter().map(|run| run.elapsed).sum();
        self.keep(&runs, ingested.scan_id, now_ms, &mut outcome, true)?;
        self.latest_scan = Some(ingested.scan_id);
        if !self.waiting_exec.is_empty() {
            let waiting = std::mem::take(&mut self.waiting_exec);
            self.store_exec(&waiting)?;
        }
        let expired = self
            .store
            .enforce_retention(&self.retention, now_ms)
            .context("deleting old scans")?;
        outcome.expired_scans = expired.scans;
        Ok(outcome)
    }

    /// Folds the alert candidates of `runs` against the stored alerts and writes alerts, their
    /// deliveries and the rule states in one transaction. With `always_write` false (exec
    /// micro-batches, many a second) nothing is written when no rule matched and none failed:
    /// the rule states are kept in memory and written with the next scan's.
    fn keep(
        &mut self,
        runs: &[RuleRun],
        scan_id: i64,
        now_ms: i64,
        outcome: &mut ScanOutcome,
        always_write: bool,
    ) -> anyhow::Result<()> {
        self.record_runs(runs, scan_id, outcome);
        let quiet = runs.iter().all(|run| {
            run.outcome
                .as_ref()
                .is_ok_and(|result| result.rows.is_empty())
        });
        if !always_write && quiet {
            return Ok(());
        }

        let ctx = AlertContext {
            host: &self.host,
            site: self.site.as_deref(),
            scan_id,
            now_ms,
        };
        let candidates = self.detector.engine().alerts(runs, &ctx);
        let windows: HashMap<&str, Duration> = self
            .detector
            .rules()
            .iter()
            .map(|rule| {
                (
                    rule.id.as_str(),
                    rule.dedup.window.unwrap_or(self.default_window),
                )
            })
            .collect();
        let mut folded = Vec::with_capacity(candidates.len());
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
                    folded.push(state);
                }
                Folded::Suppressed(state) => {
                    outcome.suppressed += 1;
                    folded.push(state);
                }
            }
        }
        let rule_states = self.rule_states();
        // Everything this scan decided, in one transaction: a crash leaves all of it or none,
        // and never an alert without its deliveries.
        let outbox = self.outbox.as_deref();
        let raised = &outcome.raised;
        let dropped = self
            .store
            .write("store a scan's alerts, deliveries and rule states", |w| {
                w.put_alerts(&folded)?;
                let mut dropped = Vec::new();
                if let Some(outbox) = outbox {
                    let sinks = outbox.sink_names();
                    for alert in raised {
                        dropped.extend(w.enqueue(
                            &sinks,
                            &alert.id,
                            &alert.canonical_bytes(),
                            now_ms,
                            outbox.limits(),
                        )?);
                    }
                }
                w.put_rule_states(&rule_states)?;
                Ok(dropped)
            })
            .context("storing the alerts and rule states")?;
        if let Some(outbox) = outbox {
            if !raised.is_empty() {
                outbox.wake();
            }
            outbox.note_dropped(dropped);
        }
        Ok(())
    }

    /// Stores a micro-batch of exec events with the newest scan, runs the rules that run on
    /// exec events over it, and keeps their alerts. Before the first scan the events wait in
    /// memory (at most [`MAX_WAITING_EXEC`]) and are stored with it, not evaluated: the first
    /// scan itself is, and sees every process still running.
    pub fn process_exec(
        &mut self,
        events: Vec<ProcessEvent>,
        now_ms: i64,
    ) -> anyhow::Result<ScanOutcome> {
        let Some(scan_id) = self.store_exec(&events)? else {
            let room = MAX_WAITING_EXEC.saturating_sub(self.waiting_exec.len());
            if events.len() > room {
                tracing::warn!(
                    dropped = events.len() - room,
                    "exec events before the first scan: the oldest are not kept"
                );
            }
            self.waiting_exec.extend(events.into_iter().take(room));
            return Ok(ScanOutcome::default());
        };
        let mut outcome = ScanOutcome {
            scan_id,
            generation: self.generation,
            ..ScanOutcome::default()
        };
        if !self.detector.engine().runs_on_exec() {
            self.remember_exec(&events);
            return Ok(outcome);
        }
        let mut needed = self.detector.engine().exec_tables_needed();
        // `processes` and `process_events` hold the batch itself, never a scan.
        needed.remove(&Table::Processes);
        needed.remove(&Table::ProcessEvents);
        let tables = Tables::load(&self.store, &needed, None)?;
        for batch in rounds(events) {
            let records: Vec<ProcessRecord> = batch
                .iter()
                .map(|event| ProcessRecord {
                    scan_id,
                    ..event.record.clone()
                })
                .collect();
            // Each parent once, and none that is in the round itself.
            let mut seen: std::collections::HashSet<u32> =
                records.iter().map(|record| record.pid).collect();
            let mut parents = Vec::new();
            for parent in records.iter().filter_map(|record| record.parent) {
                if seen.insert(parent)
                    && let Some(found) = self.parent(parent)?
                {
                    parents.push(found);
                }
            }
            let mut dataset = tables.dataset(&records);
            dataset.processes = Some(&records);
            dataset.parents = Some(&parents);
            dataset.events = Some(&batch);
            let runs = self
                .detector
                .engine_mut()
                .evaluate_exec(&dataset)
                .context("loading exec events into the SQL sandbox")?;
            outcome.detection_time += runs.iter().map(|run| run.elapsed).sum::<Duration>();
            self.keep(&runs, scan_id, now_ms, &mut outcome, false)?;
            self.remember_exec(&batch);
        }
        Ok(outcome)
    }

    /// Stores exec events with the newest scan; `None` while there is none.
    fn store_exec(&mut self, events: &[ProcessEvent]) -> anyhow::Result<Option<i64>> {
        if events.is_empty() {
            return Ok(self.latest_scan);
        }
        let stored = self
            .store
            .append_exec_events(events)
            .context("storing exec events")?;
        if stored.is_some() {
            self.latest_scan = stored;
        }
        Ok(stored)
    }

    /// The parent `pid` as last seen: exec'd since the newest scan, or in it.
    fn parent(&self, pid: u32) -> anyhow::Result<Option<ProcessRecord>> {
        if let Some(record) = self.recent_exec.get(&pid) {
            return Ok(Some(record.clone()));
        }
        let Some(scan_id) = self.latest_scan else {
            return Ok(None);
        };
        self.store
            .snapshot_record(scan_id, pid)
            .context("reading a parent process")
    }

    fn remember_exec(&mut self, events: &[ProcessEvent]) {
        for event in events.iter().filter(|event| event.event == EventKind::Exec) {
            if self.recent_exec.len() >= MAX_RECENT_EXEC {
                self.recent_exec.clear();
            }
            self.recent_exec
                .insert(event.record.pid, event.record.clone());
        }
    }

    fn record_runs(&mut self, runs: &[RuleRun], scan_id: i64, outcome: &mut ScanOutcome) {
        for run in runs {
            let Some(rule) = self.detector.rules().get(run.rule) else {
                continue;
            };
            outcome.rules_run.push(rule.id.to_string());
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
}

/// What the pipeline thread is asked to do.
enum Command {
    Scan {
        summary: ScanSummary,
        records: Vec<ProcessRecord>,
        now_ms: i64,
        reply: oneshot::Sender<anyhow::Result<ScanOutcome>>,
    },
    Exec {
        events: Vec<ProcessEvent>,
        now_ms: i64,
        reply: oneshot::Sender<anyhow::Result<ScanOutcome>>,
    },
    Replace {
        detector: Box<Detector>,
        reply: oneshot::Sender<u64>,
    },
    Stop,
}

/// Runs one scan's or micro-batch's `work`: a panic in it leaves the store as its
/// transactions left it, and the next starts afresh.
fn guarded(
    what: &str,
    work: impl FnOnce() -> anyhow::Result<ScanOutcome>,
) -> anyhow::Result<ScanOutcome> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("{what} panicked")))
}

/// The rest of the agent's way to the pipeline thread.
#[derive(Clone)]
pub struct PipelineHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<RulesView>>,
}

impl PipelineHandle {
    /// Starts the pipeline on a thread of its own; raised alerts go to `raised`. The thread
    /// ends after [`PipelineHandle::stop`], or when every handle is dropped; `raised` is
    /// closed then.
    pub fn spawn(
        mut pipeline: Pipeline,
        raised: mpsc::Sender<Raised>,
    ) -> anyhow::Result<(Self, std::thread::JoinHandle<()>)> {
        let (commands, mut queue) = mpsc::channel::<Command>(QUEUE);
        let (view_tx, view) = watch::channel(Arc::new(pipeline.view()));
        let thread = std::thread::Builder::new()
            .name("pipeline".to_owned())
            .spawn(move || {
                while let Some(command) = queue.blocking_recv() {
                    // The rule states a scan changes are published after every scan; a
                    // micro-batch of exec events publishes them only when it raised alerts.
                    let (outcome, reply, publish): (anyhow::Result<ScanOutcome>, _, bool) =
                        match command {
                            Command::Scan {
                                summary,
                                records,
                                now_ms,
                                reply,
                            } => {
                                let outcome = guarded("detection", || {
                                    pipeline.process(&summary, records, now_ms)
                                });
                                (outcome, reply, true)
                            }
                            Command::Exec {
                                events,
                                now_ms,
                                reply,
                            } => {
                                let outcome = guarded("detection on exec events", || {
                                    pipeline.process_exec(events, now_ms)
                                });
                                (outcome, reply, false)
                            }
                            Command::Replace { detector, reply } => {
                                pipeline.replace_detector(*detector);
                                view_tx.send_replace(Arc::new(pipeline.view()));
                                let _ = reply.send(pipeline.generation);
                                continue;
                            }
                            Command::Stop => break,
                        };
                    let raised_some = outcome.as_ref().is_ok_and(|o| !o.raised.is_empty());
                    if publish || raised_some {
                        view_tx.send_replace(Arc::new(pipeline.view()));
                    }
                    if let Ok(outcome) = &outcome
                        && raised_some
                    {
                        // The receiver is gone only while the agent stops.
                        let _ = raised.blocking_send(Raised {
                            scan_id: outcome.scan_id,
                            alerts: outcome.raised.clone(),
                        });
                    }
                    let _ = reply.send(outcome);
                }
            })
            .context("starting the pipeline thread")?;
        Ok((Self { commands, view }, thread))
    }

    /// Stores, detects and keeps one scan; returns what it produced.
    pub async fn process(
        &self,
        summary: ScanSummary,
        records: Vec<ProcessRecord>,
        now_ms: i64,
    ) -> anyhow::Result<ScanOutcome> {
        self.ask("the scan", |reply| Command::Scan {
            summary,
            records,
            now_ms,
            reply,
        })
        .await
    }

    /// Sends the command `make` builds around a reply channel and waits for the outcome.
    async fn ask(
        &self,
        what: &str,
        make: impl FnOnce(oneshot::Sender<anyhow::Result<ScanOutcome>>) -> Command,
    ) -> anyhow::Result<ScanOutcome> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the pipeline stopped during {what}"))?
    }

    /// Stores a micro-batch of exec events and runs the exec rules over it.
    pub async fn process_exec(
        &self,
        events: Vec<ProcessEvent>,
        now_ms: i64,
    ) -> anyhow::Result<ScanOutcome> {
        self.ask("exec events", |reply| Command::Exec {
            events,
            now_ms,
            reply,
        })
        .await
    }

    /// Replaces the rule set after the scan in progress, if any; returns its generation.
    pub async fn replace(&self, detector: Detector) -> anyhow::Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Replace {
                detector: Box::new(detector),
                reply,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the pipeline has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the pipeline stopped"))
    }

    /// Stops the pipeline after the commands queued before this one; later ones fail.
    pub async fn stop(&self) {
        // An error means the thread has already ended.
        let _ = self.commands.send(Command::Stop).await;
    }

    /// The rule set as published after the last scan or replacement.
    pub fn rules(&self) -> Arc<RulesView> {
        Arc::clone(&self.view.borrow())
    }
}

/// This machine's name, as alerts carry it.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
