//! The `[ipc]` section: limits of the local sockets (see `crate::ipc`, behind the
//! `ipc` feature; the section itself is always parsed so that every binary accepts the same
//! files).

use serde::{Deserialize, Serialize};

use super::Problem;

/// The smallest `ipc.max_frame_bytes` accepted: the largest single process record must fit (a
/// 128 KiB command line can triple when invalid UTF-8 is replaced, plus paths and cgroup).
pub const MIN_FRAME_BYTES: u32 = 1024 * 1024;

/// The largest `ipc.max_frame_bytes` accepted: a frame is held in memory whole.
const MAX_FRAME_BYTES: u32 = 1024 * 1024 * 1024;

/// The `[ipc]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcConfig {
    /// Largest frame payload accepted on a socket (default 16 MiB).
    pub max_frame_bytes: u32,
}

impl Default for IpcConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024 * 1024,
        }
    }
}

impl IpcConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        (!(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes)).then(|| {
            (
                "max_frame_bytes",
                format!("must be between {MIN_FRAME_BYTES} and {MAX_FRAME_BYTES}"),
            )
        })
    }
}
