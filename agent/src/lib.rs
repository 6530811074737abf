//! `daemoneye-agent`: DaemonEye's detection orchestrator.
//!
//! The agent starts and supervises procmond ([`supervisor`]), asks it for a scan every
//! `collection.interval`, passes each scan through the [`pipeline`] (event store, SQL rules,
//! alert folding), prints raised alerts on stdout ([`output`]), and answers the CLI on
//! `<data_dir>/run/agent.sock` ([`control`]). It records its start, stop, configuration and
//! alerts in procmond's audit ledger ([`audit`]) and forwards the CLI's ledger requests there. Delivery to other sinks arrives in a later issue.
//!
//! The agent runs unprivileged work only: it never reads `/proc` of other users itself (that is
//! procmond's job) and never links code that procmond must not link into procmond.

pub mod audit;
pub mod backoff;
pub mod collector_client;
pub mod control;
pub mod output;
pub mod pipeline;
pub mod requests;
pub mod run;
pub mod supervisor;
