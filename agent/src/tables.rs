//! Reading what a rule or a query needs from the event store (and `/etc/passwd`) into rows
//! for the sandbox: shared by the pipeline (one scan's rules) and the CLI's queries (their
//! own sandbox), which both read the store through `&Store` and never through each other.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use daemoneye_lib::alert::Alert;
use daemoneye_lib::detection::sandbox::Dataset;
use daemoneye_lib::detection::schema::Table;
use daemoneye_lib::models::{ProcessEvent, ProcessRecord, ScanSummary};
use daemoneye_lib::storage::Store;

/// Records of retained scans loaded for a query or rule that reads `process_snapshots`.
const MAX_SNAPSHOT_ROWS: usize = 1_000_000;
/// Events loaded for a query that reads `process_events` across scans.
const MAX_EVENT_ROWS: usize = 1_000_000;
/// The largest /etc/passwd read.
const MAX_PASSWD_BYTES: u64 = 16 * 1024 * 1024;

/// Rows read for one evaluation.
#[derive(Default)]
pub struct Tables {
    processes: bool,
    snapshots: Option<Vec<ProcessRecord>>,
    events: Option<Vec<ProcessEvent>>,
    scans: Option<Vec<ScanSummary>>,
    alerts: Option<Vec<(Alert, bool)>>,
    users: Option<Vec<(u32, String)>>,
}

impl Tables {
    /// Reads what `needed` names. `events_of`: the scan whose events `process_events` holds,
    /// or `None` for every retained event.
    pub fn load(
        store: &Store,
        needed: &BTreeSet<Table>,
        events_of: Option<i64>,
    ) -> anyhow::Result<Self> {
        let mut tables = Self::default();
        if needed.contains(&Table::ProcessSnapshots) {
            let limited = store
                .snapshots(MAX_SNAPSHOT_ROWS)
                .context("reading snapshots")?;
            if limited.truncated {
                tracing::warn!(
                    rows = MAX_SNAPSHOT_ROWS,
                    "process_snapshots holds only the newest scans' records"
                );
            }
            tables.snapshots = Some(limited.items);
        }
        if needed.contains(&Table::ProcessEvents) {
            tables.events = Some(match events_of {
                Some(scan_id) => store.events(scan_id).context("reading events")?,
                None => {
                    store
                        .all_events(MAX_EVENT_ROWS)
                        .context("reading events")?
                        .items
                }
            });
        }
        if needed.contains(&Table::Scans) {
            tables.scans = Some(store.scans().context("reading scans")?);
        }
        if needed.contains(&Table::Alerts) {
            tables.alerts = Some(
                store
                    .alerts()
                    .context("reading alerts")?
                    .into_iter()
                    .map(|stored| (stored.alert, stored.acked_at_ms.is_some()))
                    .collect(),
            );
        }
        if needed.contains(&Table::Users) {
            tables.users = Some(read_users(Path::new("/etc/passwd")));
        }
        tables.processes = needed.contains(&Table::Processes);
        Ok(tables)
    }

    /// The rows as the sandbox loads them, with `records` as `processes`.
    pub fn dataset<'a>(&'a self, records: &'a [ProcessRecord]) -> Dataset<'a> {
        Dataset {
            processes: self.processes.then_some(records),
            // Only an evaluation of exec events has parents outside `processes`.
            parents: self.processes.then_some(&[]),
            snapshots: self.snapshots.as_deref(),
            events: self.events.as_deref(),
            scans: self.scans.as_deref(),
            alerts: self.alerts.as_deref(),
            users: self.users.as_deref(),
        }
    }
}

/// uid and name of every account in `passwd` (a missing or unreadable file gives none: the
/// `User` field then shows the uid).
pub fn read_users(passwd: &Path) -> Vec<(u32, String)> {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(passwd)
        .and_then(|file| file.take(MAX_PASSWD_BYTES).read_to_string(&mut text));
    if let Err(err) = read {
        tracing::debug!(error = %err, file = %passwd.display(), "no user names");
        return Vec::new();
    }
    parse_passwd(&text)
}

fn parse_passwd(text: &str) -> Vec<(u32, String)> {
    daemoneye_lib::accounts::passwd(text)
        .into_iter()
        .map(|account| (account.uid, account.name.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_uid_and_name() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\n:x:5:5::/:/bin/sh\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbad:x:notanumber:1::/:\n";
        assert_eq!(
            parse_passwd(text),
            [(0, "root".to_owned()), (1, "daemon".to_owned())]
        );
    }
}
