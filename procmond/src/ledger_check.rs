//! procmond's background check of the audit ledger: a thread that walks the whole ledger from
//! its first byte at a bounded rate ([`daemoneye_lib::ledger::store::scrub`], whose module doc
//! lists what a pass checks), once when procmond starts and again `ledger.verify_interval`
//! after each clean pass, and reports damage to [`AuditLog`] (health and one log line).
//!
//! The pass reads through handles of its own and takes the writer's lock only for a moment
//! at its start (for the ledger's extent), so appends, checkpoints and proofs never wait for
//! it. Its rate is `ledger.verify_bytes_per_sec` (8 MiB/s by default: a ledger of 10 million
//! entries, about 1.8 GB with its index and tree files, in under 4 minutes). After damage the
//! thread ends: the first damage is what health reports, and every later pass would end
//! there again.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daemoneye_lib::ledger::store::{Clock, Pacer, ScrubOutcome, scrub};

use crate::audit::AuditLog;

/// How fast and how often the ledger is checked.
#[derive(Debug, Clone, Copy)]
pub struct CheckSettings {
    /// The most bytes read per second.
    pub bytes_per_sec: u64,
    /// From the end of a clean pass to the start of the next.
    pub interval: Duration,
}

/// A stop request that wakes a sleeping thread.
#[derive(Default)]
struct StopFlag {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopFlag {
    fn stop(&self) {
        *self
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Sleeps up to `duration`; `false` when a stop was asked for.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if *stopped {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            stopped = match self.wake.wait_timeout(stopped, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// The monotonic clock, whose sleeps end early on a stop.
struct SteadyClock {
    origin: Instant,
    stop: Arc<StopFlag>,
}

impl Clock for SteadyClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> bool {
        self.stop.sleep(duration)
    }
}

/// The running check; stopped (and joined) by [`Checker::stop`] or when dropped.
pub struct Checker {
    stop: Arc<StopFlag>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts checking the ledger of `audit`; does nothing when it is not open.
    pub fn start(audit: Arc<AuditLog>, settings: CheckSettings) -> Self {
        let stop = Arc::new(StopFlag::default());
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ledger-check".to_owned())
            .spawn(move || run(&audit, settings, flag));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(err) => {
                tracing::error!(error = %err, "cannot start the ledger's background check");
                None
            }
        };
        Self { stop, thread }
    }

    /// Stops the check and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(audit: &AuditLog, settings: CheckSettings, stop: Arc<StopFlag>) {
    loop {
        let Some(target) = audit.scrub_target() else {
            return;
        };
        let began = Instant::now();
        audit.check_started(target.entries);
        // A pacer per pass: the time between passes is no credit for a burst.
        let clock = SteadyClock {
            origin: began,
            stop: Arc::clone(&stop),
        };
        let mut pacer = Pacer::new(clock, settings.bytes_per_sec);
        match scrub(&target, &mut pacer, |done| audit.check_progress(done)) {
            Ok(ScrubOutcome::Clean(stats)) => {
                audit.check_ended(Some(stats));
                tracing::info!(
                    entries = stats.entries,
                    checkpoints = stats.checkpoints,
                    bytes = stats.bytes,
                    elapsed_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "background check of the audit ledger passed"
                );
            }
            Ok(ScrubOutcome::Damaged(damage)) => {
                audit.check_ended(None);
                audit.report_damage(damage);
                return;
            }
            Ok(ScrubOutcome::Stopped) => {
                audit.check_ended(None);
                return;
            }
            Err(err) => {
                audit.check_ended(None);
                tracing::warn!(error = %err, "the background check of the audit ledger could not read it; trying again later");
            }
        }
        if !stop.sleep(settings.interval) {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
