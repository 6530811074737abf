//! `procmond`: DaemonEye's privileged process collector.
//!
//! It enumerates every process, reads what the kernel says about each (through `sysinfo` and,
//! on Linux, `/proc`), and hashes every executable with SHA-256. It is the only DaemonEye
//! component that may run with privileges, so it must stay small: it never opens a network
//! socket, never parses SQL, and links no HTTP, SMTP, TLS or database crate (the workspace's
//! `daemoneye-e2e` tests check `cargo tree -p procmond` for that).

pub mod audit;
pub mod collector;
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
