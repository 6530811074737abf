//! `daemoneye-agent`: DaemonEye's detection orchestrator.
//!
//! In this release the agent starts and supervises procmond ([`supervisor`]), asks it for a
//! scan every `collection.interval`, and answers the CLI on `<data_dir>/run/agent.sock`
//! ([`control`]). The event store, detection rules and alert delivery arrive in later issues.
//!
//! The agent runs unprivileged work only: it never reads `/proc` of other users itself (that is
//! procmond's job) and never links code that procmond must not link into procmond.

pub mod backoff;
pub mod collector_client;
pub mod control;
pub mod run;
pub mod supervisor;
