//! The delivery loop: one thread per configured sink, driving its [`Sink`] over the store's
//! outbox as the state tables of [`super`] say, and the shared [`Outbox`] handle the rest of
//! the agent uses (the pipeline to enqueue and wake, the control server for `outbox status`,
//! `alerts send-test` and health).
//!
//! One sink's loop, repeated until the agent stops:
//!
//! 1. a sink that may not run (its license feature is missing, or it gave up) waits, and
//!    looks again every [`GATE_RECHECK`] (a license bundle can arrive at any time);
//! 2. the sink's pace ([`Sink::pace`], the email interval) is kept;
//! 3. the breaker is asked ([`Breaker::allow`]); open, it waits out the cooldown;
//! 4. `Store::outbox_due` gives the head batch; empty (nothing pending, or the head waits
//!    for its retry time), the loop sleeps until woken by an enqueue, the head's retry time or
//!    [`IDLE_POLL`], whichever comes first;
//! 5. [`Sink::deliver`], then the store is answered: delivered, retry with backoff, reject to
//!    the dead letters, or nothing (give up);
//! 6. deliveries and drops go to the ledger task, which records them in batches.
//!
//! The loop never holds a lock of the scan path: it reads and answers the store in
//! transactions of its own, so a sink that hangs (until its own timeout) delays only itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daemoneye_lib::config::{Config, SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;
use daemoneye_lib::storage::{Dropped, OutboxLimits, Store};

use super::build::{self, BuildError, Context};
use super::retry::{self, Backoff, Breaker, BreakerConfig, BreakerState, Permit};
use super::{Delivery, Sink, SinkError};
use crate::lock;

/// The longest a loop sleeps without looking at the store (a missed wake-up costs this much).
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often a sink waiting for its license looks again.
pub const GATE_RECHECK: Duration = Duration::from_secs(2);
/// How long the agent's stop waits for the sinks' loops to finish their batch.
pub const STOP_WAIT: Duration = Duration::from_secs(5);
/// How long a loop waits after the store itself failed.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The name of the sink the agent runs when the configuration names none.
pub const DEFAULT_SINK: &str = "stdout";

/// Configured sinks, built: each table with its sink.
pub type Built = Vec<(SinkConfig, Box<dyn Sink>)>;

/// Whether a licensed feature may run now: `Err(why not)`.
pub type LicenseGate = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What the loop tells the rest of the agent, for the ledger and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// These alerts reached `sink`.
    Delivered {
        /// The sink.
        sink: String,
        /// The alerts, in delivery order.
        alerts: Vec<AlertId>,
    },
    /// Deliveries were dropped unsent.
    Dropped(Vec<Dropped>),
    /// A delivery was dead-lettered.
    Rejected {
        /// The sink.
        sink: String,
        /// The alert.
        alert: AlertId,
        /// The sink's reason.
        reason: String,
    },
}

/// Where a sink's loop stands, beside the store's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Delivering (or waiting for work).
    Running,
    /// Not started: its license feature is missing; its alerts are kept (under the bounds).
    Unlicensed(String),
    /// Stopped: the sink cannot work as configured ([`SinkError::GiveUp`]).
    GaveUp(String),
}

impl RunState {
    /// `running`, `unlicensed` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Unlicensed(_) => "unlicensed",
            Self::GaveUp(_) => "stopped",
        }
    }

    /// Why it does not run, if it does not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Running => None,
            Self::Unlicensed(why) | Self::GaveUp(why) => Some(why),
        }
    }
}

/// One sink's live state, read by `outbox status` and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The sink's kind.
    pub kind: SinkKind,
    /// See [`RunState`].
    pub state: RunState,
    /// Its breaker.
    pub breaker: BreakerState,
    /// The last batch attempted, when.
    pub last_attempt_ms: Option<i64>,
    /// The last attempt's failure (cleared by a success).
    pub last_failure: Option<String>,
    /// Deliveries acknowledged since the agent started.
    pub delivered: u64,
    /// Deliveries dropped unsent since the agent started.
    pub dropped: u64,
}

struct Handle {
    name: String,
    live: Arc<Mutex<Live>>,
    wake: SyncSender<()>,
}

/// The outbox as the agent holds it: the sinks every alert is enqueued for, their bounds,
/// and their loops.
pub struct Outbox {
    names: Vec<String>,
    limits: OutboxLimits,
    handles: Mutex<Vec<Handle>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    notes: tokio::sync::mpsc::UnboundedSender<Note>,
}

/// What the loops need besides their sinks.
#[derive(Clone)]
pub struct Loops {
    /// The store whose outbox they drive.
    pub store: Arc<Store>,
    /// Their timing.
    pub timing: Timing,
    /// Whether a licensed sink may run.
    pub gate: LicenseGate,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("sinks", &self.names)
            .finish_non_exhaustive()
    }
}

/// The sinks of `config`: its `[[sinks]]`, or one stdout sink when it names none.
pub fn configured(config: &Config) -> Vec<SinkConfig> {
    if config.sinks.is_empty() {
        vec![SinkConfig {
            name: DEFAULT_SINK.to_owned(),
            kind: SinkKind::Stdout,
            options: std::collections::BTreeMap::new(),
        }]
    } else {
        config.sinks.clone()
    }
}

/// Builds every sink of `config` without starting anything: the check of each sink's keys
/// that makes a bad `[[sinks]]` table a configuration error at start-up.
pub fn build_all(config: &Config, context: &Context) -> Result<Built, BuildError> {
    configured(config)
        .into_iter()
        .map(|spec| {
            let sink = build::build(&spec, context)?;
            Ok((spec, sink))
        })
        .collect()
}

/// At start-up: the deliveries still pending for sinks the configuration no longer names are
/// dropped (reason `sink_removed`), so that they neither wait for ever nor fill the store;
/// returned for the log and the ledger. Carry them out first with `alerts export` if they
/// matter. The sinks' counters stay, for `outbox status`.
pub fn forget_removed(
    store: &Store,
    configured: &[String],
    now_ms: i64,
) -> Result<Vec<Dropped>, daemoneye_lib::storage::StoreError> {
    let mut dropped = Vec::new();
    for sink in store.outbox_status(now_ms)? {
        if sink.pending > 0 && !configured.contains(&sink.sink) {
            tracing::warn!(
                sink = %sink.sink,
                pending = sink.pending,
                "a sink no longer configured held deliveries: dropped (see the audit ledger)"
            );
            dropped.extend(store.outbox_forget_sink(&sink.sink)?);
        }
    }
    Ok(dropped)
}

/// The outbox's bounds from `[outbox]`.
pub fn limits(config: &Config) -> OutboxLimits {
    OutboxLimits {
        max_alerts: config.outbox.max_alerts,
        max_bytes: config.outbox.max_bytes,
        max_dead_letters: config.outbox.max_dead_letters,
    }
}

/// Timing of every loop, from `[outbox]`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Deliveries handed over at once.
    pub batch: usize,
    /// Backoff of a failing head.
    pub backoff: Backoff,
    /// The breaker.
    pub breaker: BreakerConfig,
}

impl Timing {
    /// From `[outbox]`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            batch: usize::try_from(config.outbox.batch).unwrap_or(256),
            backoff: Backoff {
                min: config.outbox.retry_min.get(),
                max: config.outbox.retry_max.get(),
            },
            breaker: BreakerConfig {
                failures: config.outbox.breaker_failures,
                cooldown: config.outbox.breaker_cooldown.get(),
            },
        }
    }
}

impl Outbox {
    /// The outbox for the sinks named `names`, with its bounds; deliveries and drops are
    /// reported on `notes`. No loop runs until [`Outbox::start`] or [`Outbox::run_once`].
    pub fn new(
        names: Vec<String>,
        limits: OutboxLimits,
        notes: tokio::sync::mpsc::UnboundedSender<Note>,
    ) -> Self {
        Self {
            names,
            limits,
            handles: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
            notes,
        }
    }

    /// Starts one loop per sink of `sinks`; they run until [`Outbox::stop`].
    pub fn start(&self, sinks: Built, loops: &Loops) -> anyhow::Result<()> {
        self.spawn(sinks, loops, false)
    }

    /// `--once`: one delivery attempt per sink (batches until its queue is empty or a batch
    /// fails), all sinks at once, and returns when every one is done.
    pub fn run_once(&self, sinks: Built, loops: &Loops) -> anyhow::Result<()> {
        self.spawn(sinks, loops, true)?;
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
        Ok(())
    }

    fn spawn(&self, sinks: Built, loops: &Loops, once: bool) -> anyhow::Result<()> {
        for (spec, sink) in sinks {
            let (wake, woken) = std::sync::mpsc::sync_channel(1);
            let live = Arc::new(Mutex::new(Live {
                kind: spec.kind,
                state: RunState::Running,
                breaker: BreakerState::Closed { failures: 0 },
                last_attempt_ms: None,
                last_failure: None,
                delivered: 0,
                dropped: 0,
            }));
            let mut runner = Runner {
                name: spec.name.clone(),
                feature: spec.kind.license_feature(),
                sink,
                store: Arc::clone(&loops.store),
                live: Arc::clone(&live),
                woken,
                stop: Arc::clone(&self.stop),
                timing: loops.timing,
                breaker: Breaker::new(loops.timing.breaker),
                gate: Arc::clone(&loops.gate),
                notes: self.notes.clone(),
                last_call_ms: None,
                once,
            };
            let thread = std::thread::Builder::new()
                .name(format!("sink-{}", spec.name))
                .spawn(move || {
                    // A sink that panics stops, and says so in health, rather than leave a
                    // loop that looks alive and delivers nothing. Its deliveries stay pending.
                    let live = Arc::clone(&runner.live);
                    let name = runner.name.clone();
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run()))
                        .is_err()
                    {
                        tracing::error!(sink = %name, "sink panicked: stopped");
                        lock(&live).state = RunState::GaveUp(
                            "the sink panicked (a bug); restart the agent".to_owned(),
                        );
                    }
                })?;
            lock(&self.threads).push(thread);
            lock(&self.handles).push(Handle {
                name: spec.name,
                live,
                wake,
            });
        }
        Ok(())
    }

    /// Reports `dropped` deliveries (the pipeline's enqueue returned them) for the ledger.
    pub fn note_dropped(&self, dropped: Vec<Dropped>) {
        if dropped.is_empty() {
            return;
        }
        for handle in lock(&self.handles).iter() {
            let count = dropped
                .iter()
                .filter(|gone| gone.sink == handle.name)
                .count();
            if count > 0 {
                lock(&handle.live).dropped += count as u64;
            }
        }
        let _ = self.notes.send(Note::Dropped(dropped));
    }

    /// The sinks every alert is enqueued for.
    pub fn sink_names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// The bounds enqueueing keeps.
    pub fn limits(&self) -> &OutboxLimits {
        &self.limits
    }

    /// Wakes every loop (after an enqueue was committed).
    pub fn wake(&self) {
        for handle in lock(&self.handles).iter() {
            // Full: a wake-up is already waiting; disconnected: the loop has ended.
            match handle.wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(()) | TrySendError::Disconnected(())) => {}
            }
        }
    }

    /// Each sink's live state, by name.
    pub fn live(&self) -> HashMap<String, Live> {
        lock(&self.handles)
            .iter()
            .map(|handle| (handle.name.clone(), lock(&handle.live).clone()))
            .collect()
    }

    /// Stops every loop after the batch it is delivering, and waits for them at most
    /// [`STOP_WAIT`]: a sink blocked on a receiver that does not answer (until its own
    /// timeout) must not hold up the agent's stop. What it was sending stays pending and goes
    /// again after the restart (at least once).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let deadline = std::time::Instant::now() + STOP_WAIT;
        for thread in threads {
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    thread = thread.thread().name().unwrap_or("sink"),
                    "a sink is still delivering; its batch stays pending and goes again after the restart"
                );
            }
        }
    }
}

struct Runner {
    name: String,
    feature: Option<&'static str>,
    sink: Box<dyn Sink>,
    store: Arc<Store>,
    live: Arc<Mutex<Live>>,
    woken: Receiver<()>,
    stop: Arc<AtomicBool>,
    timing: Timing,
    breaker: Breaker,
    gate: LicenseGate,
    notes: tokio::sync::mpsc::UnboundedSender<Note>,
    last_call_ms: Option<i64>,
    /// `--once`: end at the first turn that would sleep.
    once: bool,
}

/// What one turn of the loop decided.
enum Turn {
    /// Go round again at once.
    Again,
    /// Sleep at most this long (an enqueue wakes earlier).
    Sleep(Duration),
}

impl Runner {
    fn run(&mut self) {
        tracing::info!(sink = %self.name, "sink started");
        while !self.stop.load(Ordering::SeqCst) {
            match self.turn() {
                Turn::Again => {}
                Turn::Sleep(_) if self.once => return,
                Turn::Sleep(wait) => match self.woken.recv_timeout(wait) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            }
        }
    }

    fn set_state(&self, state: RunState) {
        let mut live = lock(&self.live);
        if live.state != state {
            match &state {
                RunState::Running => tracing::info!(sink = %self.name, "sink running"),
                RunState::Unlicensed(why) => {
                    tracing::warn!(sink = %self.name, reason = %why, "sink not started: unlicensed");
                }
                RunState::GaveUp(why) => {
                    tracing::error!(sink = %self.name, reason = %why, "sink stopped");
                }
            }
            live.state = state;
        }
    }

    fn turn(&mut self) -> Turn {
        if matches!(lock(&self.live).state, RunState::GaveUp(_)) {
            return Turn::Sleep(Duration::from_secs(3600));
        }
        if let Some(feature) = self.feature {
            if let Err(why) = (self.gate)(feature) {
                self.set_state(RunState::Unlicensed(why));
                return Turn::Sleep(GATE_RECHECK);
            }
            self.set_state(RunState::Running);
        }
        let now = crate::run::now_ms();
        let pace = i64::try_from(self.sink.pace().as_millis()).unwrap_or(i64::MAX);
        if let Some(last) = self.last_call_ms
            && pace > 0
            && !self.once
            && now < last.saturating_add(pace)
        {
            return Turn::Sleep(millis(last.saturating_add(pace) - now));
        }
        let permit = self.breaker.allow(now);
        lock(&self.live).breaker = self.breaker.state();
        let max = match permit {
            Permit::Go => self
                .sink
                .max_batch()
                .map_or(self.timing.batch, |own| own.min(self.timing.batch)),
            Permit::Probe => 1,
            Permit::Wait { until_ms } => {
                return Turn::Sleep(until_ms.map_or(IDLE_POLL, |until| millis(until - now)));
            }
        };
        // `--once` makes its one attempt even while the head waits for its retry time (a
        // wait persisted by an earlier run).
        let due_at = if self.once { i64::MAX } else { now };
        let due = match self.store.outbox_due(&self.name, max.max(1), due_at) {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(sink = %self.name, error = %err, "cannot read the outbox");
                self.undo_probe(permit);
                return Turn::Sleep(STORE_RETRY);
            }
        };
        if due.is_empty() {
            self.undo_probe(permit);
            return Turn::Sleep(self.idle_wait(now));
        }
        self.last_call_ms = Some(now);
        lock(&self.live).last_attempt_ms = Some(now);
        let batch: Vec<Delivery<'_>> = due.iter().map(Delivery::from).collect();
        let result = self.sink.deliver(&batch);
        let now = crate::run::now_ms();
        let (acknowledged, error) = match result {
            Ok(()) => (due.len(), None),
            Err(err) => (err.acknowledged.min(due.len()), Some(err.error)),
        };
        if acknowledged > 0 {
            let seqs: Vec<u64> = due[..acknowledged].iter().map(|p| p.seq).collect();
            if let Err(err) = self.store.outbox_delivered(&self.name, &seqs, now) {
                // The deliveries stay pending and go again: at least once. A probe that was
                // answered but not recorded is handed out again with them.
                tracing::warn!(sink = %self.name, error = %err, "cannot record deliveries");
                self.undo_probe(permit);
                return Turn::Sleep(STORE_RETRY);
            }
            let alerts = due[..acknowledged]
                .iter()
                .map(|p| p.alert_id.clone())
                .collect();
            let _ = self.notes.send(Note::Delivered {
                sink: self.name.clone(),
                alerts,
            });
            let mut live = lock(&self.live);
            live.delivered += acknowledged as u64;
            live.last_failure = None;
        }
        match error {
            None => {
                self.breaker.success();
                lock(&self.live).breaker = self.breaker.state();
                Turn::Again
            }
            Some(error) => self.failed(&due, acknowledged, error, now),
        }
    }

    /// A probe that found nothing to deliver was no probe: the next batch is.
    fn undo_probe(&mut self, permit: Permit) {
        if permit == Permit::Probe {
            self.breaker.release_probe();
        }
    }

    /// How long to sleep with nothing due: until the head's retry time, at most [`IDLE_POLL`].
    fn idle_wait(&self, now: i64) -> Duration {
        match self.store.outbox_status(now) {
            Ok(status) => status
                .iter()
                .find(|sink| sink.sink == self.name)
                .and_then(|sink| sink.next_attempt_ms.filter(|_| sink.waiting))
                .map_or(IDLE_POLL, |at| millis(at - now).min(IDLE_POLL)),
            Err(_) => IDLE_POLL,
        }
    }

    fn failed(
        &mut self,
        due: &[daemoneye_lib::storage::Pending],
        acknowledged: usize,
        error: SinkError,
        now: i64,
    ) -> Turn {
        let Some(head) = due.get(acknowledged) else {
            // An error after the whole batch was acknowledged: nothing is left to answer.
            self.breaker.success();
            return Turn::Again;
        };
        lock(&self.live).last_failure = Some(error.reason().to_owned());
        match error {
            SinkError::Retry { reason } => {
                self.breaker.failure(now);
                lock(&self.live).breaker = self.breaker.state();
                let at = retry::next_attempt_ms(
                    &self.timing.backoff,
                    now,
                    head.attempts,
                    fastrand::f64(),
                );
                tracing::warn!(sink = %self.name, reason = %reason, retry_in_ms = at - now, "delivery failed, will retry");
                if let Err(err) = self.store.outbox_retry(&self.name, head.seq, &reason, at) {
                    tracing::warn!(sink = %self.name, error = %err, "cannot record the failure");
                }
                Turn::Sleep(millis(at - now).min(IDLE_POLL))
            }
            SinkError::Reject { reason } => {
                self.breaker.success();
                lock(&self.live).breaker = self.breaker.state();
                tracing::warn!(sink = %self.name, alert = %head.alert_id, reason = %reason, "delivery rejected: dead-lettered");
                match self.store.outbox_reject(&self.name, head.seq, &reason, now) {
                    Ok(Some(dropped)) => {
                        let _ = self.notes.send(Note::Rejected {
                            sink: self.name.clone(),
                            alert: head.alert_id.clone(),
                            reason,
                        });
                        if !dropped.is_empty() {
                            lock(&self.live).dropped += dropped.len() as u64;
                            let _ = self.notes.send(Note::Dropped(dropped));
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(sink = %self.name, error = %err, "cannot record the rejection");
                        return Turn::Sleep(STORE_RETRY);
                    }
                }
                Turn::Again
            }
            SinkError::GiveUp { reason } => {
                self.set_state(RunState::GaveUp(reason));
                Turn::Sleep(Duration::from_secs(3600))
            }
        }
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::time::Instant;

    use daemoneye_lib::storage::Store;

    use crate::outbox::BatchError;

    /// What the fake sink does with each batch, in turn; once the script is used up it
    /// delivers everything.
    #[derive(Debug, Clone)]
    enum Step {
        Deliver,
        /// Acknowledge this many, then fail the next with the error.
        Fail(usize, SinkError),
    }

    #[derive(Default)]
    struct Shared {
        script: VecDeque<Step>,
        received: Vec<String>,
        calls: usize,
    }

    struct Fake {
        name: String,
        shared: Arc<Mutex<Shared>>,
        max: Option<usize>,
    }

    impl Sink for Fake {
        fn name(&self) -> &str {
            &self.name
        }

        fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
            let mut shared = lock(&self.shared);
            shared.calls += 1;
            match shared.script.pop_front().unwrap_or(Step::Deliver) {
                Step::Deliver => {
                    shared
                        .received
                        .extend(batch.iter().map(|d| d.alert_id.to_string()));
                    Ok(())
                }
                Step::Fail(acknowledged, error) => {
                    let acknowledged = acknowledged.min(batch.len());
                    shared
                        .received
                        .extend(batch[..acknowledged].iter().map(|d| d.alert_id.to_string()));
                    Err(BatchError {
                        acknowledged,
                        error,
                    })
                }
            }
        }

        fn max_batch(&self) -> Option<usize> {
            self.max
        }
    }

    fn id(n: u32) -> AlertId {
        AlertId::parse(&format!("{n:032x}")).unwrap()
    }

    struct Rig {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        outbox: Outbox,
        shared: Arc<Mutex<Shared>>,
        notes: tokio::sync::mpsc::UnboundedReceiver<Note>,
    }

    fn timing() -> Timing {
        Timing {
            batch: 4,
            backoff: Backoff {
                min: Duration::from_millis(10),
                max: Duration::from_millis(20),
            },
            breaker: BreakerConfig {
                failures: 3,
                cooldown: Duration::from_millis(50),
            },
        }
    }

    fn rig(script: Vec<Step>, gate: LicenseGate, kind: SinkKind) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb"), 1 << 20).unwrap());
        let (tx, notes) = tokio::sync::mpsc::unbounded_channel();
        let outbox = Outbox::new(vec!["fake".into()], OutboxLimits::default(), tx);
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            ..Shared::default()
        }));
        let spec = SinkConfig {
            name: "fake".into(),
            kind,
            options: std::collections::BTreeMap::new(),
        };
        let sink = Fake {
            name: "fake".into(),
            shared: Arc::clone(&shared),
            max: None,
        };
        let loops = Loops {
            store: Arc::clone(&store),
            timing: timing(),
            gate,
        };
        outbox.start(vec![(spec, Box::new(sink))], &loops).unwrap();
        Rig {
            _dir: dir,
            store,
            outbox,
            shared,
            notes,
        }
    }

    fn open_gate() -> LicenseGate {
        Arc::new(|_: &str| Ok(()))
    }

    impl Rig {
        fn enqueue(&self, range: std::ops::Range<u32>) {
            let limits = self.outbox.limits().clone();
            self.store
                .write("test", |w| {
                    for n in range {
                        w.enqueue(&["fake"], &id(n), b"{}", n.into(), &limits)?;
                    }
                    Ok(())
                })
                .unwrap();
            self.outbox.wake();
        }

        /// Waits (bounded, generously) until `done` holds.
        fn wait(&self, what: &str, done: impl Fn(&Self) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done(self) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        fn received(&self) -> Vec<String> {
            lock(&self.shared).received.clone()
        }

        fn status(&self) -> daemoneye_lib::storage::SinkOutbox {
            self.store
                .outbox_status(i64::MAX / 2)
                .unwrap()
                .into_iter()
                .find(|s| s.sink == "fake")
                .unwrap()
        }
    }

    fn ids(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|n| id(n).to_string()).collect()
    }

    #[test]
    fn every_delivery_arrives_in_order_through_retries_and_partial_batches() {
        let retry = || SinkError::retry("receiver down");
        let mut rig = rig(
            vec![
                Step::Fail(0, retry()),
                Step::Fail(2, retry()),
                Step::Deliver,
                Step::Fail(1, retry()),
                Step::Fail(0, retry()),
            ],
            open_gate(),
            SinkKind::Webhook,
        );
        rig.enqueue(0..10);
        rig.wait("ten deliveries", |rig| rig.status().delivered == 10);
        assert_eq!(rig.received(), ids(0..10), "order kept, nothing twice");
        let status = rig.status();
        assert_eq!((status.pending, status.retried), (0, 4));
        rig.outbox.stop();
        let mut delivered = Vec::new();
        while let Ok(note) = rig.notes.try_recv() {
            if let Note::Delivered { sink, alerts } = note {
                assert_eq!(sink, "fake");
                delivered.extend(alerts.iter().map(ToString::to_string));
            }
        }
        assert_eq!(
            delivered,
            ids(0..10),
            "every delivery is noted for the ledger"
        );
    }

    #[test]
    fn a_rejected_delivery_is_dead_lettered_and_the_next_goes() {
        let rig = rig(
            vec![Step::Fail(1, SinkError::reject("not an alert"))],
            open_gate(),
            SinkKind::Webhook,
        );
        rig.enqueue(0..3);
        rig.wait("two deliveries", |rig| rig.status().delivered == 2);
        assert_eq!(rig.received(), [id(0).to_string(), id(2).to_string()]);
        let status = rig.status();
        assert_eq!((status.dead_lettered, status.pending), (1, 0));
        assert_eq!(
            status.last_error, None,
            "a later success clears the last error"
        );
        let dead = rig.store.outbox_dead_letters("fake", 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].alert_id.clone(), dead[0].reason.as_str()),
            (id(1), "not an alert")
        );
        rig.outbox.stop();
    }

    #[test]
    fn a_sink_that_gives_up_stops_and_keeps_its_deliveries() {
        let rig = rig(
            vec![Step::Fail(0, SinkError::give_up("credentials refused"))],
            open_gate(),
            SinkKind::Webhook,
        );
        rig.enqueue(0..3);
        rig.wait("the sink to stop", |rig| {
            matches!(rig.outbox.live()["fake"].state, RunState::GaveUp(_))
        });
        rig.enqueue(3..5);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            lock(&rig.shared).calls,
            1,
            "a stopped sink is not called again"
        );
        assert_eq!(rig.status().pending, 5, "its deliveries stay pending");
        assert_eq!(
            rig.outbox.live()["fake"].state.reason(),
            Some("credentials refused")
        );
        rig.outbox.stop();
    }

    #[test]
    fn repeated_failures_open_the_breaker_and_one_probe_closes_it() {
        let retry = || SinkError::retry("503");
        let rig = rig(
            vec![
                Step::Fail(0, retry()),
                Step::Fail(0, retry()),
                Step::Fail(0, retry()),
            ],
            open_gate(),
            SinkKind::Webhook,
        );
        rig.enqueue(0..6);
        rig.wait("all six after the breaker closed", |rig| {
            rig.status().delivered == 6
        });
        assert_eq!(rig.received(), ids(0..6));
        assert_eq!(
            rig.outbox.live()["fake"].breaker,
            BreakerState::Closed { failures: 0 }
        );
        rig.outbox.stop();
    }

    #[test]
    fn a_removed_sinks_deliveries_are_dropped_at_start_and_returned() {
        let rig = rig(Vec::new(), open_gate(), SinkKind::Webhook);
        rig.outbox.stop();
        let limits = OutboxLimits::default();
        rig.store
            .write("test", |w| {
                for n in 0..3 {
                    w.enqueue(&["gone"], &id(n), b"{}", 0, &limits)?;
                }
                Ok(())
            })
            .unwrap();
        let kept = ["fake".to_owned()];
        let dropped = forget_removed(&rig.store, &kept, 0).unwrap();
        let got: Vec<String> = dropped.iter().map(|d| d.alert_id.to_string()).collect();
        assert_eq!(got, ids(0..3));
        assert!(dropped.iter().all(
            |d| d.sink == "gone" && d.reason == daemoneye_lib::storage::DropReason::SinkRemoved
        ));
        let gone = rig
            .store
            .outbox_status(0)
            .unwrap()
            .into_iter()
            .find(|s| s.sink == "gone")
            .unwrap();
        assert_eq!((gone.pending, gone.dropped), (0, 3));
        assert!(forget_removed(&rig.store, &kept, 0).unwrap().is_empty());
    }

    #[test]
    fn a_licensed_sink_waits_for_its_license_and_keeps_its_alerts() {
        let licensed = Arc::new(AtomicBool::new(false));
        let gate: LicenseGate = {
            let licensed = Arc::clone(&licensed);
            Arc::new(move |feature: &str| {
                if licensed.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(format!("{feature} needs a license: none installed"))
                }
            })
        };
        let rig = rig(Vec::new(), gate, SinkKind::SplunkHec);
        rig.enqueue(0..3);
        rig.wait("the sink to say it is unlicensed", |rig| {
            matches!(rig.outbox.live()["fake"].state, RunState::Unlicensed(_))
        });
        assert_eq!(
            rig.outbox.live()["fake"].state.reason(),
            Some("splunk_hec needs a license: none installed")
        );
        assert_eq!(lock(&rig.shared).calls, 0);
        licensed.store(true, Ordering::SeqCst);
        rig.wait("the deliveries once licensed", |rig| {
            rig.status().delivered == 3
        });
        assert_eq!(rig.outbox.live()["fake"].state, RunState::Running);
        rig.outbox.stop();
    }
}
