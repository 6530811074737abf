//! `daemoneye-lib`: the types and loaders every DaemonEye binary shares.
//!
//! What is here is deliberately light, because the privileged collector (`procmond`) links it:
//! models, configuration and, behind the `ipc` feature, the local-socket protocol. Heavier
//! modules (storage, detection, alerting) arrive behind cargo features that `procmond` never
//! enables, so that the collector links no SQL engine, HTTP, SMTP or TLS code. This crate must
//! never open a network socket or spawn a process.
//!
//! Behind the `minisign` feature (the bundler; the agent when it installs bundles): the
//! minisign key and signature formats bundles are signed with, and their signing and
//! verification.
//!
//! Always compiled, because every binary needs them: [`text`] (the one escaping policy for
//! untrusted text on a terminal, hex, RFC 3339 times), [`ids`] (checked identifiers) and
//! [`fsutil`] (atomic, durable file replacement; bounded reads of untrusted files).

pub mod accounts;
pub mod alert;
#[cfg(feature = "bundle")]
pub mod bundle;
pub mod config;
#[cfg(feature = "detection")]
pub mod detection;
pub mod fsutil;
pub mod ids;
#[cfg(feature = "ipc")]
pub mod ipc;
#[cfg(feature = "ledger")]
pub mod ledger;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "minisign")]
pub mod minisign;
pub mod models;
#[cfg(feature = "storage")]
pub mod storage;
pub mod text;
