//! Opening the event store at start-up, and what the operator is told when it does not open.
//!
//! | the store | the agent |
//! | --- | --- |
//! | opens | runs |
//! | damaged ([`StoreError::is_damage`]) | moves it aside, creates a new one, logs one error line, runs with a degraded `store` in health and a `store_recovered` ledger entry |
//! | written by another version of the agent | refuses to start ([`UsageError`], exit 2), leaves the file untouched |
//! | locked by another agent | refuses to start (exit 1), naming that agent's pid from [`crate::pidfile`] |
//! | any other failure | refuses to start (exit 1) with the store's error |

use std::path::{Path, PathBuf};

use daemoneye_lib::storage::{Recovered, Store, StoreError};

use crate::pidfile;
use crate::pipeline::STORE_CACHE_BYTES;

/// The store's file name in the data directory.
pub const FILE: &str = "events.redb";

/// A problem the operator must solve before the agent can start: `main` exits with 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The store the agent opened, and what it did to open it.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: Store,
    /// Its path.
    pub path: PathBuf,
    /// Set when the file was damaged and replaced by a new store.
    pub recovered: Option<Recovered>,
}

/// Opens (or, when damaged, replaces) `<data_dir>/events.redb`; `now_ms` names a moved-aside
/// file. The errors are one line each, as the module documentation describes.
pub fn open(data_dir: &Path, now_ms: i64) -> anyhow::Result<Opened> {
    let path = data_dir.join(FILE);
    match Store::open_or_recover(&path, STORE_CACHE_BYTES, now_ms) {
        Ok((store, recovered)) => {
            if let Some(recovered) = &recovered {
                tracing::error!(
                    path = %path.display(),
                    moved_to = %recovered.moved_to.display(),
                    reason = %recovered.reason,
                    "event store damaged: moved aside, a new store was created"
                );
            }
            Ok(Opened {
                store,
                path,
                recovered,
            })
        }
        Err(err) => Err(refusal(err, data_dir)),
    }
}

/// The error the agent stops with when the store does not open.
fn refusal(err: StoreError, data_dir: &Path) -> anyhow::Error {
    match err {
        StoreError::SchemaVersion {
            path,
            found,
            expected,
        } => {
            let whose = if found > expected {
                "a newer"
            } else {
                "an older"
            };
            UsageError(format!(
                "event store {} has schema version {found}, this agent reads version {expected}: \
                 it was written by {whose} agent and is left untouched (run that agent, or move \
                 the file away to start with an empty store)",
                path.display()
            ))
            .into()
        }
        StoreError::UnknownValueFormat { .. } => UsageError(format!(
            "{err}: it was written by a newer agent and is left untouched (run that agent, or \
             move the file away to start with an empty store)"
        ))
        .into(),
        StoreError::InUse { path } => {
            let dir = data_dir.display();
            // The pid file is written only by an agent holding the lock, so its pid is the
            // holder's, unless that agent was killed and something else holds the file now.
            match pidfile::read(data_dir).filter(|pid| *pid != std::process::id()) {
                Some(pid) => anyhow::anyhow!(
                    "another agent (pid {pid}) uses this data directory {dir}: its event store \
                     {} is locked",
                    path.display()
                ),
                None => anyhow::anyhow!(
                    "another agent uses this data directory {dir} (no {} names its pid): its \
                     event store {} is locked",
                    pidfile::FILE,
                    path.display()
                ),
            }
        }
        other => anyhow::Error::new(other),
    }
}

/// The exit code for an error `run` returned: 2 for a [`UsageError`], else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_message_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let newer = refusal(
            StoreError::SchemaVersion {
                path: path.clone(),
                found: 2,
                expected: 1,
            },
            dir.path(),
        );
        assert_eq!(exit_code(&newer), 2);
        let line = format!("{newer:#}");
        assert!(
            line.contains(&path.display().to_string())
                && line.contains("schema version 2, this agent reads version 1")
                && line.contains("a newer agent")
                && !line.contains('\n'),
            "{line}"
        );

        let in_use = || StoreError::InUse { path: path.clone() };
        let unnamed = refusal(in_use(), dir.path());
        assert_eq!(exit_code(&unnamed), 1);
        assert!(
            format!("{unnamed:#}").starts_with(&format!(
                "another agent uses this data directory {} (no agent.pid",
                dir.path().display()
            )),
            "{unnamed:#}"
        );
        std::fs::write(dir.path().join(pidfile::FILE), "4242\n").unwrap();
        let named = refusal(in_use(), dir.path());
        assert_eq!(exit_code(&named), 1);
        assert!(
            format!("{named:#}").starts_with(&format!(
                "another agent (pid 4242) uses this data directory {}",
                dir.path().display()
            )),
            "{named:#}"
        );

        let io = refusal(
            StoreError::Io {
                path,
                operation: "open or create",
                source: std::io::ErrorKind::PermissionDenied.into(),
            },
            dir.path(),
        );
        assert_eq!(exit_code(&io), 1);
    }
}
