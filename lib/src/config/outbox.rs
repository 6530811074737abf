//! The `[outbox]` section and the `[[sinks]]` list: the bounds of the persistent alert outbox,
//! how its deliveries are retried, and where alerts go.
//!
//! This module only checks what every binary must agree on: the bounds and timings, each
//! sink's `name` (unique, 1 to 64 characters of `a-z0-9_-`, the outbox's key) and `type`. A
//! sink's other keys belong to its type and are kept as they were written
//! ([`SinkConfig::options`]); the agent, which holds the sinks' code, checks them when it
//! loads the configuration, with the same one-line errors naming `sinks.NAME.KEY`. Network
//! code never lives in this crate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Problem};

/// The most sinks one configuration may name.
pub const MAX_SINKS: usize = 32;

/// The `[outbox]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Pending deliveries kept per sink; when full the oldest are dropped (and counted).
    pub max_alerts: u64,
    /// Pending payload bytes kept per sink; the same policy.
    pub max_bytes: u64,
    /// Deliveries a sink rejected as malformed, kept per sink for an operator.
    pub max_dead_letters: u64,
    /// Deliveries handed to a sink at once (one file write, one bulk request, one mail).
    pub batch: u64,
    /// First wait after a failed delivery; it doubles per failure of the same delivery.
    pub retry_min: HumanDuration,
    /// The longest wait between two attempts of one delivery.
    pub retry_max: HumanDuration,
    /// Failed batches in a row that open a sink's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps a sink from being tried; then one probe goes.
    pub breaker_cooldown: HumanDuration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_alerts: 100_000,
            max_bytes: 256 << 20,
            max_dead_letters: 1000,
            batch: 256,
            retry_min: HumanDuration::new(Duration::from_secs(1)),
            retry_max: HumanDuration::new(Duration::from_secs(300)),
            breaker_failures: 5,
            breaker_cooldown: HumanDuration::new(Duration::from_secs(30)),
        }
    }
}

impl OutboxConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if !(1..=100_000_000).contains(&self.max_alerts) {
            return Some(("max_alerts", "must be between 1 and 100000000".to_owned()));
        }
        if !(1 << 20..=1 << 40).contains(&self.max_bytes) {
            return Some((
                "max_bytes",
                "must be between 1048576 and 1099511627776".to_owned(),
            ));
        }
        if self.max_dead_letters > 1_000_000 {
            return Some(("max_dead_letters", "must be at most 1000000".to_owned()));
        }
        if !(1..=10_000).contains(&self.batch) {
            return Some(("batch", "must be between 1 and 10000".to_owned()));
        }
        if let Some(why) = self
            .retry_min
            .outside(Duration::from_millis(10), Duration::from_secs(3600))
        {
            return Some(("retry_min", why));
        }
        if let Some(why) = self
            .retry_max
            .outside(self.retry_min.get(), Duration::from_secs(24 * 3600))
        {
            return Some(("retry_max", why));
        }
        if !(1..=1000).contains(&self.breaker_failures) {
            return Some(("breaker_failures", "must be between 1 and 1000".to_owned()));
        }
        if let Some(why) = self
            .breaker_cooldown
            .outside(Duration::from_millis(10), Duration::from_secs(24 * 3600))
        {
            return Some(("breaker_cooldown", why));
        }
        None
    }
}

/// The kinds of sink (`[[sinks]] type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// The agent's standard output.
    Stdout,
    /// A local file: JSON lines or CEF, rotated by size.
    File,
    /// RFC 5424 over UDP, TCP (RFC 6587 octet counting) or a Unix socket.
    Syslog,
    /// HTTP POST of the alert JSON, Standard Webhooks signature.
    Webhook,
    /// SMTP, alerts batched per interval.
    Email,
    /// Splunk's HTTP Event Collector (licensed).
    SplunkHec,
    /// Elasticsearch's bulk API (licensed).
    Elasticsearch,
    /// A site's PostgreSQL (licensed).
    Postgres,
}

impl SinkKind {
    /// The name as written in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::File => "file",
            Self::Syslog => "syslog",
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::SplunkHec => "splunk_hec",
            Self::Elasticsearch => "elasticsearch",
            Self::Postgres => "postgres",
        }
    }

    /// The license feature this kind needs, if any: the SIEM sinks and central aggregation
    /// in PostgreSQL are licensed, each under the feature of its own type name
    /// (`splunk_hec`, `elasticsearch`, `postgres`; INTERFACE.md, "Bundles").
    pub fn license_feature(self) -> Option<&'static str> {
        match self {
            Self::SplunkHec | Self::Elasticsearch | Self::Postgres => Some(self.as_str()),
            _ => None,
        }
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[sinks]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkConfig {
    /// The sink's name: the outbox's key, shown by `outbox status`.
    pub name: String,
    /// What kind of sink it is.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// Every other key of the table, checked by the agent's sink of this kind.
    #[serde(flatten)]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// The first problem of the sink list: `(index, key, reason)`, the key within the sink's table.
pub(super) fn sinks_problem(sinks: &[SinkConfig]) -> Option<(usize, &'static str, String)> {
    if sinks.len() > MAX_SINKS {
        return Some((MAX_SINKS, "name", format!("at most {MAX_SINKS} sinks")));
    }
    for (index, sink) in sinks.iter().enumerate() {
        if let Some(why) = name_problem(&sink.name) {
            return Some((index, "name", why.to_owned()));
        }
        if sinks[..index].iter().any(|other| other.name == sink.name) {
            return Some((
                index,
                "name",
                format!("{:?} names two sinks; names must be unique", sink.name),
            ));
        }
    }
    None
}

/// Why `name` cannot name a sink (the outbox's rule), if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        Some("must be 1 to 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("may hold only a-z, 0-9, '_' and '-'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(name: &str) -> SinkConfig {
        SinkConfig {
            name: name.to_owned(),
            kind: SinkKind::Stdout,
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn names_are_checked_and_unique() {
        assert_eq!(sinks_problem(&[sink("siem"), sink("archive-1")]), None);
        assert_eq!(sinks_problem(&[sink("Siem")]).unwrap().0, 0);
        assert_eq!(sinks_problem(&[sink("a"), sink("")]).unwrap().0, 1);
        let (index, key, why) = sinks_problem(&[sink("a"), sink("b"), sink("a")]).unwrap();
        assert_eq!((index, key), (2, "name"));
        assert!(why.contains("unique"), "{why}");
        let many: Vec<SinkConfig> = (0..=MAX_SINKS).map(|i| sink(&format!("s{i}"))).collect();
        assert!(sinks_problem(&many).is_some());
    }

    #[test]
    fn defaults_are_in_range_and_bad_values_name_their_key() {
        assert_eq!(OutboxConfig::default().problem(), None);
        let bad = OutboxConfig {
            batch: 0,
            ..OutboxConfig::default()
        };
        assert_eq!(bad.problem().unwrap().0, "batch");
        let bad = OutboxConfig {
            retry_max: HumanDuration::new(Duration::from_millis(100)),
            ..OutboxConfig::default()
        };
        assert_eq!(bad.problem().unwrap().0, "retry_max");
    }
}
