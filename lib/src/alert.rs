//! The alert: what a rule match becomes, in the JSON shape of INTERFACE.md.
//!
//! This module only holds the data; `detection::alerts` builds alerts from rule rows and folds
//! repeats, and the store keeps them. It is always compiled (no SQL engine behind it) so that
//! the CLI can print what the agent sends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::AlertId;

/// How bad a match is, in rising order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no action expected.
    Info,
    /// Probably benign; look when there is time.
    Low,
    /// Suspicious; look today.
    Medium,
    /// Likely malicious; look now.
    High,
    /// An intrusion in progress.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Self::Info,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// The name used in rule files, JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str() == text)
            .ok_or_else(|| {
                format!("unknown severity {text:?}: expected info, low, medium, high or critical")
            })
    }
}

/// One alert, as printed to stdout, kept in the store and handed to the sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable for the same rule, host and dedup key: 32 lowercase hex digits of a BLAKE3 hash.
    pub id: AlertId,
    /// The rule that matched.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The rule's severity.
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    /// The host the agent runs on.
    pub host: String,
    /// `site.id`, when configured.
    pub site: Option<String>,
    /// The scan in which the rule matched.
    pub scan_id: i64,
    /// When the alert was raised, RFC 3339 in UTC.
    pub detected_at: String,
    /// The values of the rule's dedup key columns, joined (see `detection::alerts`).
    pub dedup_key: String,
    /// How many repeats the dedup window folded into the previous raise of this alert.
    pub suppressed: u64,
    /// The matching rows, column name to value.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// For a human: the rule's name and the first rows' process columns, as the rows hold
    /// them (a display escapes it, see `crate::text`).
    pub summary: String,
}

impl Alert {
    /// The alert's canonical bytes: its JSON object, fields in the order of this struct,
    /// compact, as `serde_json` writes it. These exact bytes are what the outbox holds and
    /// every sink receives, and what the `alert_raised` ledger entry hashes, so that an alert
    /// carried out by hand can be checked against the ledger.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising plain data (strings, numbers, maps with string keys) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An alert as the store keeps it: the alert last raised and the state of its dedup window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// The alert as last raised; its `suppressed` counts the repeats folded into it since.
    pub alert: Alert,
    /// When it was last raised, in milliseconds since the epoch.
    pub raised_at_ms: i64,
    /// Until when repeats are folded into it.
    pub window_until_ms: i64,
    /// When a rule last matched with this key.
    pub last_seen_ms: i64,
    /// Repeats folded since the last raise (equal to `alert.suppressed`).
    pub pending_suppressed: u64,
    /// When an operator acknowledged it, if one did.
    pub acked_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_print_and_order() {
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>(), Ok(severity));
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{severity}\"")
            );
        }
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        let err = "severe".parse::<Severity>().unwrap_err();
        assert!(err.contains("unknown severity \"severe\""), "{err}");
    }
}
