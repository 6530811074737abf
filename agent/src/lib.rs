//! `daemoneye-agent`: DaemonEye's detection orchestrator.
//!
//! The agent is a few tasks joined by channels ([`run`] wires them):
//!
//! - [`supervisor`] starts, watches and restarts procmond and owns the [`link`] to it, on
//!   which several requests run at once (a scan does not hold up a health check);
//! - [`pipeline`] runs on a thread of its own: it stores each scan, runs the [`detector`]'s
//!   rules over it (the rule set can be replaced whole between two scans), folds and keeps
//!   alerts in one store transaction, and hands raised alerts on through a channel;
//! - the delivery task prints them on stdout ([`output`]; other sinks arrive with the outbox)
//!   and records them in procmond's audit ledger ([`audit`]);
//! - [`store`] opens the event store at start-up (a damaged one is moved aside and replaced;
//!   a newer agent's is refused) and [`pidfile`] names the agent holding the data directory;
//! - [`bundles`] applies verified bundles atomically (rules, config, license, keys), rolls them
//!   back and watches `<data_dir>/inbox/`;
//! - [`control`] answers the CLI on `<data_dir>/run/agent.sock` from the shared store, the
//!   rule set the pipeline publishes and the supervisor's status; CLI queries run in a
//!   sandbox of their own ([`tables`] reads the store for both).
//!
//! The agent runs unprivileged work only: it never reads `/proc` of other users itself (that is
//! procmond's job) and never links code that procmond must not link into procmond.

pub mod audit;
pub mod backoff;
pub mod bundle_service;
pub mod bundles;
pub mod control;
pub mod detector;
pub mod exec;
pub mod link;
pub mod outbox;
pub mod output;
pub mod pidfile;
pub mod pipeline;
pub mod run;
pub mod store;
pub mod supervisor;
pub mod tables;

/// Locks `mutex`, even if a panic poisoned it: what the agent keeps behind its mutexes (live
/// states, caches, counters) stays usable after a panicked holder.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
