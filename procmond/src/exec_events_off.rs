//! Exec events where the kernel's process connector does not exist (every OS but Linux): off,
//! saying why; scans alone see processes.

use daemoneye_lib::ipc::proto;
use tokio::sync::mpsc;

/// Exec events, always off here.
#[derive(Debug)]
pub struct ExecEvents {
    detail: String,
}

impl ExecEvents {
    /// Exec events that are off, and why.
    pub fn off(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }

    /// Whether events flow: never here.
    pub fn is_on(&self) -> bool {
        false
    }

    /// Health's view.
    pub fn health(&self) -> proto::ExecEventsHealth {
        proto::ExecEventsHealth {
            on: false,
            detail: self.detail.clone(),
            ..proto::ExecEventsHealth::default()
        }
    }

    /// Never called while off (the handshake agrees to no events); a queue nothing sends to.
    pub fn subscribe_connection(&self) -> mpsc::Receiver<proto::CollectorPush> {
        mpsc::channel(1).1
    }
}
