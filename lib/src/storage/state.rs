//! Rule states and alerts: small tables the agent rewrites as rules run and alerts fold.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::codec::{self, name};
use super::{Store, StoreError};

/// How a rule fared in its last runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleStatus {
    /// The last run finished within its limits.
    Ok,
    /// The last run hit a limit or failed; the rule still runs.
    Degraded,
    /// The rule no longer runs.
    Disabled,
}

/// The run-time state of one rule, kept across agent restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// The rule's id.
    pub rule_id: String,
    /// How it fared.
    pub status: RuleStatus,
    /// The last scan it ran on.
    pub last_scan_id: Option<i64>,
    /// The last error, if its last run failed.
    pub last_error: Option<String>,
    /// How long its last run took, in microseconds.
    pub last_elapsed_us: u64,
    /// Runs so far.
    pub runs: u64,
    /// Runs that ended degraded.
    pub degraded_runs: u64,
}

/// Alerts are defined beside the alert type, so that detection can fold them without the store.
pub use crate::alert::StoredAlert;

impl Store {
    /// Runs `work` in one write transaction: everything it writes is committed together,
    /// or, when it returns an error, nothing is. The unit of one scan's decisions (alerts,
    /// rule states, and the rows that hand alerts on for delivery).
    pub fn write<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Writer<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(self.db_err(operation))?;
        let mut writer = Writer {
            store: self,
            txn: &txn,
            operation,
        };
        let value = work(&mut writer)?;
        txn.commit().map_err(self.db_err(operation))?;
        Ok(value)
    }

    /// Stores the states of these rules (replacing earlier states of the same rules), in one
    /// transaction.
    pub fn put_rule_states(&self, states: &[RuleState]) -> Result<(), StoreError> {
        self.write("write rule states", |w| w.put_rule_states(states))
    }

    /// Every stored rule state, by rule id.
    pub fn rule_states(&self) -> Result<Vec<RuleState>, StoreError> {
        const OPERATION: &str = "read rule states";
        let txn = self.read(OPERATION)?;
        let table = txn
            .open_table(codec::RULE_STATE)
            .map_err(self.db_err(OPERATION))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(self.db_err(OPERATION))? {
            let (_, value) = entry.map_err(self.db_err(OPERATION))?;
            out.push(
                codec::decode_postcard(value.value()).map_err(self.value_err(name::RULE_STATE))?,
            );
        }
        Ok(out)
    }

    /// One alert, if it is stored.
    pub fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError> {
        const OPERATION: &str = "read an alert";
        let txn = self.read(OPERATION)?;
        let table = txn
            .open_table(codec::ALERTS)
            .map_err(self.db_err(OPERATION))?;
        let value = table.get(id).map_err(self.db_err(OPERATION))?;
        value
            .map(|value| codec::decode_json(value.value()))
            .transpose()
            .map_err(self.value_err(name::ALERTS))
    }

    /// Stores these alerts under their ids (replacing earlier versions), in one transaction.
    pub fn put_alerts(&self, alerts: &[StoredAlert]) -> Result<(), StoreError> {
        self.write("write alerts", |w| w.put_alerts(alerts))
    }

    /// Every stored alert, newest `raised_at_ms` first (ties by id).
    pub fn alerts(&self) -> Result<Vec<StoredAlert>, StoreError> {
        const OPERATION: &str = "read alerts";
        let txn = self.read(OPERATION)?;
        let table = txn
            .open_table(codec::ALERTS)
            .map_err(self.db_err(OPERATION))?;
        let mut out: Vec<StoredAlert> = Vec::new();
        for entry in table.iter().map_err(self.db_err(OPERATION))? {
            let (_, value) = entry.map_err(self.db_err(OPERATION))?;
            out.push(codec::decode_json(value.value()).map_err(self.value_err(name::ALERTS))?);
        }
        // The table is in id order and the sort is stable, so ties stay in id order.
        out.sort_by_key(|alert| std::cmp::Reverse(alert.raised_at_ms));
        Ok(out)
    }

    /// Marks an alert acknowledged at `now_ms`; `Ok(false)` if no alert has this id. An alert
    /// acknowledged before keeps its first acknowledgement time.
    pub fn ack_alert(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        const OPERATION: &str = "acknowledge an alert";
        let txn = self.db.begin_write().map_err(self.db_err(OPERATION))?;
        {
            let mut table = txn
                .open_table(codec::ALERTS)
                .map_err(self.db_err(OPERATION))?;
            let mut alert: StoredAlert = match table.get(id).map_err(self.db_err(OPERATION))? {
                None => return Ok(false),
                Some(stored) => {
                    codec::decode_json(stored.value()).map_err(self.value_err(name::ALERTS))?
                }
            };
            if alert.acked_at_ms.is_some() {
                return Ok(true);
            }
            alert.acked_at_ms = Some(now_ms);
            let bytes = codec::encode_json(&alert).map_err(self.encode_err(name::ALERTS))?;
            table
                .insert(id, bytes.as_slice())
                .map_err(self.db_err(OPERATION))?;
        }
        txn.commit().map_err(self.db_err(OPERATION))?;
        Ok(true)
    }
}

/// One open write transaction of [`Store::write`].
pub struct Writer<'a> {
    pub(super) store: &'a Store,
    pub(super) txn: &'a redb::WriteTransaction,
    pub(super) operation: &'static str,
}

impl Writer<'_> {
    /// Stores these rule states (replacing earlier states of the same rules).
    pub fn put_rule_states(&mut self, states: &[RuleState]) -> Result<(), StoreError> {
        let store = self.store;
        let mut table = self
            .txn
            .open_table(codec::RULE_STATE)
            .map_err(store.db_err(self.operation))?;
        let mut buf = Vec::new();
        for state in states {
            buf = codec::encode_postcard(state, buf).map_err(store.encode_err(name::RULE_STATE))?;
            table
                .insert(state.rule_id.as_str(), buf.as_slice())
                .map_err(store.db_err(self.operation))?;
        }
        Ok(())
    }

    /// Stores these alerts under their ids (replacing earlier versions).
    pub fn put_alerts(&mut self, alerts: &[StoredAlert]) -> Result<(), StoreError> {
        let store = self.store;
        let mut table = self
            .txn
            .open_table(codec::ALERTS)
            .map_err(store.db_err(self.operation))?;
        for alert in alerts {
            let bytes = codec::encode_json(alert).map_err(store.encode_err(name::ALERTS))?;
            table
                .insert(alert.alert.id.as_str(), bytes.as_slice())
                .map_err(store.db_err(self.operation))?;
        }
        Ok(())
    }
}
