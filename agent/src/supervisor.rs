//! Starting, watching and restarting procmond.
//!
//! The supervisor owns one procmond child at a time:
//!
//! 1. It starts procmond with `--socket <data_dir>/run/procmond.sock`, then connects and
//!    handshakes, retrying until [`Settings::startup_timeout`]; a procmond that exits first or
//!    never answers counts as a crash.
//! 2. While procmond runs, it asks for a health report every `collector.health_interval`,
//!    whatever else is in flight: requests share the connection ([`crate::link`]) and a
//!    running scan does not hold it. A failed or late health report, or a request that broke
//!    the connection or outlived its time limit, gets procmond killed.
//! 3. When procmond is gone, for whatever reason, the supervisor waits a capped exponential
//!    backoff with jitter ([`crate::backoff`]), counts a restart, logs why, and starts it again.
//!
//! Meanwhile the agent keeps running: requests fail fast with [`Unavailable`] and health says
//! procmond is restarting. procmond, for its part, exits when the agent is gone (it watches
//! its parent pid), and the child is started with `kill_on_drop`, so neither outlives the other.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemoneye_lib::ipc::proto;
use daemoneye_lib::ipc::transport::PeerPolicy;
use daemoneye_lib::ipc::{IpcError, Limits};
use daemoneye_lib::ledger::entry::{Body, fit_str};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::backoff::{Backoff, STABLE_AFTER};
use crate::link::{ProcmondLink, ReceivedScan};
use crate::lock;

/// How long procmond has to answer an audit request (an append or a checkpoint waits for
/// fsync; a proof reads O(log n) hashes).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Restarts kept for the ledger while no procmond answers.
const MAX_UNRECORDED_RESTARTS: usize = 64;

/// How long procmond has to answer a health request.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long procmond has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How procmond is started and watched.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The procmond executable.
    pub procmond: PathBuf,
    /// Its arguments, `--socket` included.
    pub args: Vec<OsString>,
    /// The socket it serves on.
    pub socket: PathBuf,
    /// Time between health checks.
    pub health_interval: Duration,
    /// Delay before each restart.
    pub backoff: Backoff,
    /// Frame limits of the connection.
    pub limits: Limits,
    /// Who procmond may run as.
    pub policy: PeerPolicy,
    /// Time procmond has to accept the first connection.
    pub startup_timeout: Duration,
    /// Time a scan may take before procmond is considered hung.
    pub scan_timeout: Duration,
    /// Where procmond's pushed exec events go, from every procmond in turn; `None` asks for
    /// none.
    pub pushes: Option<mpsc::Sender<proto::CollectorPush>>,
}

/// Where procmond stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Started, not yet answering.
    Starting,
    /// Answering on its socket.
    Running {
        /// Its pid.
        pid: u32,
        /// When it started answering.
        since: Instant,
    },
    /// Gone; a restart is scheduled.
    Restarting {
        /// When the restart happens.
        at: Instant,
    },
    /// Stopped because the agent is stopping.
    Stopped,
}

/// What the supervisor knows about procmond, for health reports.
#[derive(Debug, Clone)]
pub struct Status {
    /// Where procmond stands.
    pub state: State,
    /// How many times it was restarted.
    pub restarts: u64,
    /// Why it last stopped.
    pub last_exit: Option<String>,
    /// Its last health report.
    pub last_health: Option<proto::CollectorHealth>,
    /// Since when a health check has been waiting for its answer, if one is.
    pub health_pending_since: Option<Instant>,
}

/// A request could not be made because procmond is not available.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// procmond is not running or not yet answering.
    #[error("procmond is not available ({0})")]
    Down(String),
    /// The request failed; procmond will be restarted.
    #[error("procmond request failed: {0}")]
    Failed(#[from] IpcError),
    /// The request took too long; procmond will be restarted.
    #[error("procmond did not answer within {0:?}")]
    TimedOut(Duration),
}

struct Shared {
    status: Mutex<Status>,
    /// The link to the running procmond; requests clone it out and never hold this lock
    /// while they wait.
    link: Mutex<Option<ProcmondLink>>,
}

impl Shared {
    fn link(&self) -> Option<ProcmondLink> {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_link(&self, link: Option<ProcmondLink>) {
        *self
            .link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = link;
    }

    /// Forgets `failed` (if it is still the current link): the next health check then
    /// restarts procmond.
    fn drop_link(&self, failed: &ProcmondLink) {
        let mut link = self
            .link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if link.as_ref().is_some_and(|current| current.same(failed)) {
            *link = None;
        }
    }
}

/// A handle on the supervisor task.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
    scan_timeout: Duration,
}

impl Supervisor {
    /// Starts supervising procmond until `shutdown` turns true (or its sender is dropped).
    pub fn start(
        settings: Settings,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                state: State::Starting,
                restarts: 0,
                last_exit: None,
                last_health: None,
                health_pending_since: None,
            }),
            link: Mutex::new(None),
        });
        let handle = Self {
            shared: Arc::clone(&shared),
            scan_timeout: settings.scan_timeout,
        };
        let task = tokio::spawn(supervise(shared, settings, shutdown));
        (handle, task)
    }

    /// A snapshot of procmond's status.
    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Waits until procmond answers, or `timeout` passes; whether it answers.
    pub async fn wait_until_running(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(self.status().state, State::Running { .. }) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks procmond for a scan of every process.
    pub async fn enumerate(&self) -> Result<ReceivedScan, Unavailable> {
        self.with_link(self.scan_timeout, async |link| link.scan().await)
            .await
    }

    /// Asks procmond to append these audit entries with one `fdatasync`; returns their
    /// indexes.
    pub async fn append_audit(&self, bodies: &[Body]) -> Result<std::ops::Range<u64>, Unavailable> {
        self.with_link(AUDIT_TIMEOUT, async |link| link.append_audit(bodies).await)
            .await
    }

    /// Forwards a request of the ledger's read side to procmond.
    pub async fn audit(
        &self,
        request: proto::AuditRequest,
    ) -> Result<proto::AuditResponse, Unavailable> {
        self.with_link(AUDIT_TIMEOUT, async |link| link.audit(request).await)
            .await
    }

    /// Runs `operation` on the link to procmond, within `timeout`. Other requests run beside
    /// it on the same connection.
    async fn with_link<T>(
        &self,
        timeout: Duration,
        operation: impl AsyncFnOnce(&ProcmondLink) -> Result<T, IpcError>,
    ) -> Result<T, Unavailable> {
        let Some(link) = self.shared.link() else {
            return Err(Unavailable::Down(describe_state(&self.status().state)));
        };
        match tokio::time::timeout(timeout, operation(&link)).await {
            Ok(Ok(answer)) => Ok(answer),
            // procmond answered with a reason: the connection is still in step.
            Ok(Err(err @ IpcError::Refused { .. })) => Err(Unavailable::Failed(err)),
            Ok(Err(err)) => {
                // The connection is broken or procmond is hostile; forgetting the link makes
                // the next health check restart procmond.
                self.shared.drop_link(&link);
                Err(Unavailable::Failed(err))
            }
            Err(_) => {
                self.shared.drop_link(&link);
                Err(Unavailable::TimedOut(timeout))
            }
        }
    }
}

fn describe_state(state: &State) -> String {
    match state {
        State::Starting => "starting".to_owned(),
        State::Running { .. } => "its connection was lost; restarting".to_owned(),
        State::Restarting { at } => format!(
            "restarting in {} ms",
            at.saturating_duration_since(Instant::now()).as_millis()
        ),
        State::Stopped => "stopped".to_owned(),
    }
}

async fn supervise(shared: Arc<Shared>, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    let mut crashes_in_a_row = 0_u32;
    // Restarts not yet in the ledger: the next procmond records them once it answers.
    let mut unrecorded: Vec<Body> = Vec::new();
    loop {
        lock(&shared.status).state = State::Starting;
        let started = Instant::now();
        let mut pid = 0;
        let Some(reason) =
            run_child(&shared, &settings, &mut shutdown, &mut unrecorded, &mut pid).await
        else {
            lock(&shared.status).state = State::Stopped;
            return;
        };
        shared.set_link(None);
        // The report belonged to the procmond that is gone.
        {
            let mut status = lock(&shared.status);
            status.last_health = None;
            status.health_pending_since = None;
        }
        if started.elapsed() >= STABLE_AFTER {
            crashes_in_a_row = 0;
        }
        crashes_in_a_row = crashes_in_a_row.saturating_add(1);
        let delay = settings.backoff.delay(crashes_in_a_row, fastrand::f64());
        let restarts = {
            let mut status = lock(&shared.status);
            status.restarts += 1;
            status.last_exit = Some(reason.clone());
            status.state = State::Restarting {
                at: Instant::now() + delay,
            };
            status.restarts
        };
        tracing::warn!(
            reason = %reason,
            restart = restarts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "procmond stopped; restarting it"
        );
        // Bounded: a procmond that never answers records nothing, and the oldest restarts
        // give way (the log has them all).
        if unrecorded.len() >= MAX_UNRECORDED_RESTARTS {
            unrecorded.remove(0);
        }
        unrecorded.push(Body::ProcmondRestarted {
            pid,
            reason: fit_str(&reason),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {
                lock(&shared.status).state = State::Stopped;
                return;
            }
        }
    }
}

/// Runs one procmond until it stops (returning why; its pid, 0 if it never had one, is left in
/// `started_pid`) or the agent stops (returning `None`). Once it answers, it records
/// `unrecorded` first.
async fn run_child(
    shared: &Shared,
    settings: &Settings,
    shutdown: &mut watch::Receiver<bool>,
    unrecorded: &mut Vec<Body>,
    started_pid: &mut u32,
) -> Option<String> {
    if *shutdown.borrow() {
        return None;
    }
    let mut child = match Command::new(&settings.procmond)
        .args(&settings.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its own process group: a Ctrl-C at the agent's terminal is the agent's to handle
        // (it then stops procmond itself), not a crash to restart procmond for.
        .process_group(0)
        // glibc's adaptive mmap threshold lets each freed multi-megabyte scan buffer raise it,
        // after which later scans' buffers come from heap and arenas that fragmentation never
        // returns: measured over 40 minutes with 10,000 processes, procmond grew from 15 to
        // 137 MiB; with a fixed 128 KiB threshold it stayed at 13 MiB (agent/benches/rss.rs).
        // mallopt would need `unsafe`; the environment variable is read at procmond's start.
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            return Some(format!(
                "cannot start {}: {err}",
                settings.procmond.display()
            ));
        }
    };
    let pid = child.id().unwrap_or(0);
    *started_pid = pid;
    tracing::info!(pid, procmond = %settings.procmond.display(), "started procmond");

    let deadline = Instant::now() + settings.startup_timeout;
    let link = loop {
        tokio::select! {
            status = child.wait() => return Some(format!("{} before it answered", describe_exit(status))),
            _ = shutdown.changed() => {
                let _ = stop(&mut child).await;
                return None;
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let events = settings.pushes.is_some();
        match ProcmondLink::connect_with(
            &settings.socket,
            settings.limits,
            &settings.policy,
            events,
        )
        .await
        {
            Ok((link, pushes)) => {
                if let (Some(pushes), Some(to)) = (pushes, settings.pushes.clone()) {
                    tokio::spawn(forward_pushes(pushes, to));
                }
                break link;
            }
            Err(err) if Instant::now() >= deadline => {
                let ended = stop(&mut child).await;
                return Some(format!(
                    "did not answer on {} within {:?} ({err}); procmond {ended}",
                    settings.socket.display(),
                    settings.startup_timeout
                ));
            }
            Err(_) => {}
        }
    };
    if link.server_pid() != Some(pid) {
        // Another process answered on our socket: not the procmond we started.
        let _ = stop(&mut child).await;
        return Some(format!(
            "the socket was answered by pid {:?}, not by the procmond started (pid {pid})",
            link.server_pid()
        ));
    }
    if !unrecorded.is_empty() {
        match tokio::time::timeout(AUDIT_TIMEOUT, link.append_audit(unrecorded)).await {
            Ok(Ok(_)) => unrecorded.clear(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "procmond's restart not recorded in the audit ledger");
            }
            Err(_) => {
                tracing::warn!("procmond's restart not recorded in the audit ledger: no answer")
            }
        }
    }
    shared.set_link(Some(link));
    lock(&shared.status).state = State::Running {
        pid,
        since: Instant::now(),
    };
    tracing::info!(pid, "procmond is answering");

    let mut tick = tokio::time::interval(settings.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            status = child.wait() => return Some(describe_exit(status)),
            _ = shutdown.changed() => {
                let _ = stop(&mut child).await;
                return None;
            }
            _ = tick.tick() => {
                if let Err(reason) = check_health(shared).await {
                    // procmond may have died on its own just before (a lost connection is
                    // often the first sign); how it ended is part of the reason.
                    let ended = stop(&mut child).await;
                    return Some(format!("{reason}; procmond {ended}"));
                }
            }
        }
    }
}

/// One health check; `Err` says why procmond must be restarted. It runs beside whatever
/// else is in flight, a scan included.
async fn check_health(shared: &Shared) -> Result<(), String> {
    let Some(link) = shared.link() else {
        return Err("its connection was lost".to_owned());
    };
    lock(&shared.status).health_pending_since = Some(Instant::now());
    let answered = tokio::time::timeout(HEALTH_TIMEOUT, link.health()).await;
    lock(&shared.status).health_pending_since = None;
    match answered {
        Ok(Ok(health)) => {
            lock(&shared.status).last_health = Some(health);
            Ok(())
        }
        Ok(Err(err)) => {
            shared.drop_link(&link);
            Err(format!("health check failed: {err}"))
        }
        Err(_) => {
            shared.drop_link(&link);
            Err(format!(
                "no answer to a health check within {HEALTH_TIMEOUT:?}"
            ))
        }
    }
}

/// Asks procmond to stop (SIGTERM), kills it if it has not within [`STOP_GRACE`], and says
/// how it ended.
async fn stop(child: &mut Child) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        return describe_exit(Ok(status));
    }
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => describe_exit(status),
        Err(_) => {
            // SIGKILL cannot be ignored; only a process stuck in the kernel (a hung mount)
            // outlives it, and then the agent stops waiting rather than hang with it.
            let _ = child.start_kill();
            match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                Ok(status) => describe_exit(status),
                Err(_) => format!("did not exit within {:?} of SIGKILL", STOP_GRACE * 2),
            }
        }
    }
}

/// "exited with status 3", "killed by signal 9 (SIGKILL)".
pub fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Err(err) => format!("could not be waited for: {err}"),
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => format!("killed by signal {signal} ({name})"),
                Err(_) => format!("killed by signal {signal}"),
            },
            (None, None) => "stopped for an unknown reason".to_owned(),
        },
    }
}

/// Hands one connection's pushed batches on to the agent's consumer, in order, until the
/// connection ends. When the consumer falls behind, the link's own queue fills and it counts
/// what it drops (the consumer sees the gap in the sequence numbers).
async fn forward_pushes(
    mut pushes: mpsc::Receiver<proto::CollectorPush>,
    to: mpsc::Sender<proto::CollectorPush>,
) {
    while let Some(push) = pushes.recv().await {
        if to.send(push).await.is_err() {
            return;
        }
    }
}
