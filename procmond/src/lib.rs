//! `procmond`: DaemonEye's privileged process collector.
//!
//! It enumerates every process, reads what the kernel says about each (through `sysinfo` and,
//! on Linux, `/proc`), hears every exec from the kernel as it happens (Linux's process
//! connector, `exec_events`), and hashes every executable with SHA-256. It is the only
//! DaemonEye component that may run with privileges, so it must stay small: it never opens an
//! internet socket (`AF_INET`/`AF_INET6`; its sockets are the agent's Unix socket and, on
//! Linux, one netlink socket for process events), never parses SQL, and links no HTTP, SMTP,
//! TLS or database crate (the workspace's `daemoneye-e2e` tests check `cargo tree -p procmond`
//! for that, and what a running procmond has open).

pub mod audit;
pub mod collector;
#[cfg(target_os = "linux")]
pub mod exec_events;
/// Elsewhere exec events are off: scans alone see processes.
#[cfg(not(target_os = "linux"))]
#[path = "exec_events_off.rs"]
pub mod exec_events;
pub mod hasher;
pub mod ledger_check;
#[cfg(target_os = "linux")]
mod linux;
pub mod output;
#[cfg(not(target_os = "linux"))]
mod portable;
pub mod privilege;
pub mod procfs;
pub mod server;
pub mod tasks;

pub use collector::{Collector, CollectorOptions, Scan};

/// Columns this platform cannot see and leaves unknown (`NULL`).
#[cfg(target_os = "linux")]
pub const UNSEEN_COLUMNS: &[&str] = &[];
#[cfg(not(target_os = "linux"))]
pub use portable::UNSEEN_COLUMNS;
