//! From rule rows to alerts: grouping by the dedup key, stable ids, folding repeats.
//!
//! - The **dedup key** of a row is the JSON array of its values in the rule's `dedup.key`
//!   columns (every column when the rule names none), e.g. `[4242,"/tmp/x"]`. Rows of one scan
//!   with the same key make one alert.
//! - The **id** is the first 16 bytes of BLAKE3(rule id ‖ 0x00 ‖ host ‖ 0x00 ‖ dedup key), in
//!   lowercase hex: the same rule, host and key always give the same id, on any machine, so a
//!   SIEM can tell a repeat from a new finding.
//! - **Folding**: within the window after an alert was raised, a repeat (a later scan matching
//!   with the same key) is not raised again; it increments the stored alert's `suppressed`.
//!   After the window, the next match raises the alert anew with `suppressed` back at 0.

use std::time::Duration;

use super::rules::Rule;
use super::sandbox::QueryResult;
use crate::alert::{Alert, Severity, StoredAlert};
use crate::ids::AlertId;
use crate::text::format_time_ms;

/// Rows kept in one alert; the summary says how many more matched.
pub const MAX_ROWS_PER_ALERT: usize = 100;
/// The id of the agent's own alert about a rule that was stopped or failed.
pub const DEGRADED_RULE_ID: &str = "DE-AGENT-0001";

/// Where and when the rows were found.
#[derive(Debug, Clone, Copy)]
pub struct AlertContext<'a> {
    /// Host name.
    pub host: &'a str,
    /// `site.id`.
    pub site: Option<&'a str>,
    /// The scan evaluated.
    pub scan_id: i64,
    /// Now, in milliseconds since the epoch.
    pub now_ms: i64,
}

/// The stable id of an alert.
pub fn alert_id(rule_id: &str, host: &str, dedup_key: &str) -> AlertId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(rule_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(host.as_bytes());
    hasher.update(&[0]);
    hasher.update(dedup_key.as_bytes());
    let mut first = [0; 16];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    AlertId::from_bytes(first)
}

/// One alert per distinct dedup key among `result`'s rows, in the order keys first appear.
pub fn candidates(rule: &Rule, result: &QueryResult, ctx: &AlertContext<'_>) -> Vec<Alert> {
    let key_columns: Vec<usize> = if rule.dedup.key.is_empty() {
        (0..result.columns.len()).collect()
    } else {
        rule.dedup
            .key
            .iter()
            .filter_map(|key| result.columns.iter().position(|column| column == key))
            .collect()
    };
    let mut groups: Vec<(String, Vec<&Vec<super::sandbox::Cell>>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for row in &result.rows {
        let key: Vec<serde_json::Value> = key_columns.iter().map(|i| row[*i].to_json()).collect();
        let key = serde_json::Value::Array(key).to_string();
        match index.get(&key) {
            Some(at) => groups[*at].1.push(row),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![row]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(dedup_key, rows)| {
            let matched = rows.len();
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = rows
                .into_iter()
                .take(MAX_ROWS_PER_ALERT)
                .map(|row| {
                    result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(column, cell)| (column.clone(), cell.to_json()))
                        .collect()
                })
                .collect();
            // The evidence first: in a table cut to the terminal's width it is what shows.
            let mut summary = describe(&rows);
            if matched > rows.len() {
                summary.push_str(&format!(" (+{} more rows)", matched - rows.len()));
            }
            if result.truncated {
                summary.push_str(" (the rule's result was cut at the row limit)");
            }
            summary.push_str(&format!(" [{}]", rule.name));
            Alert {
                id: alert_id(rule.id.as_str(), ctx.host, &dedup_key),
                rule_id: rule.id.to_string(),
                rule_name: rule.name.clone(),
                severity: rule.severity,
                mitre: rule.mitre.clone(),
                host: ctx.host.to_owned(),
                site: ctx.site.map(str::to_owned),
                scan_id: ctx.scan_id,
                detected_at: format_time_ms(ctx.now_ms),
                dedup_key,
                suppressed: 0,
                rows,
                summary,
            }
        })
        .collect()
}

/// The agent's alert that `rule` did not run to the end on this scan.
pub fn degraded(rule: &Rule, reason: &str, ctx: &AlertContext<'_>) -> Alert {
    let dedup_key = serde_json::Value::Array(vec![rule.id.as_str().into()]).to_string();
    let mut row = serde_json::Map::new();
    row.insert("rule_id".into(), rule.id.as_str().into());
    row.insert("reason".into(), reason.into());
    Alert {
        id: alert_id(DEGRADED_RULE_ID, ctx.host, &dedup_key),
        rule_id: DEGRADED_RULE_ID.to_owned(),
        rule_name: "Detection rule degraded".to_owned(),
        severity: Severity::Medium,
        mitre: Vec::new(),
        host: ctx.host.to_owned(),
        site: ctx.site.map(str::to_owned),
        scan_id: ctx.scan_id,
        detected_at: format_time_ms(ctx.now_ms),
        dedup_key,
        suppressed: 0,
        rows: vec![row],
        summary: format!(
            "rule {} ({}) did not finish on scan {}: {reason}; its matches for this scan are \
             missing",
            rule.id, rule.name, ctx.scan_id
        ),
    }
}

/// A short description of the rows: the process columns when there are any.
fn describe(rows: &[serde_json::Map<String, serde_json::Value>]) -> String {
    const LIMIT: usize = 240;
    let mut parts = Vec::new();
    for row in rows.iter().take(3) {
        let mut fields = Vec::new();
        for column in [
            "pid",
            "ProcessId",
            "name",
            "path",
            "Image",
            "cmdline",
            "CommandLine",
        ] {
            if let Some(value) = row.get(column).filter(|value| !value.is_null()) {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                fields.push(format!("{column}={text}"));
            }
        }
        if fields.is_empty() {
            fields = row
                .iter()
                .take(3)
                .map(|(column, value)| format!("{column}={value}"))
                .collect();
        }
        parts.push(fields.join(" "));
    }
    let mut text = parts.join("; ");
    if rows.len() > 3 {
        text.push_str(&format!("; and {} more", rows.len() - 3));
    }
    if text.len() > LIMIT {
        let mut cut = LIMIT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    // The values stay as the rows hold them, as in the alert's JSON; whatever shows the
    // summary to a person escapes it (`crate::text`).
    text
}

/// What folding a candidate into the stored state decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    /// Raise it: store the state, deliver the alert.
    Raised(StoredAlert),
    /// A repeat within the window: store the state, deliver nothing.
    Suppressed(StoredAlert),
}

impl Folded {
    /// The state to store.
    pub fn state(&self) -> &StoredAlert {
        match self {
            Self::Raised(state) | Self::Suppressed(state) => state,
        }
    }
}

/// Folds `candidate` into `existing` (the stored alert with the same id, if any).
pub fn fold(
    existing: Option<&StoredAlert>,
    candidate: Alert,
    now_ms: i64,
    window: Duration,
) -> Folded {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    match existing {
        Some(stored) if now_ms < stored.window_until_ms => {
            let mut state = stored.clone();
            state.pending_suppressed += 1;
            state.alert.suppressed = state.pending_suppressed;
            state.last_seen_ms = now_ms;
            Folded::Suppressed(state)
        }
        _ => Folded::Raised(StoredAlert {
            alert: candidate,
            raised_at_ms: now_ms,
            window_until_ms: now_ms.saturating_add(window_ms),
            last_seen_ms: now_ms,
            pending_suppressed: 0,
            acked_at_ms: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::precheck;
    use crate::detection::rules::{Dedup, RuleId};
    use crate::detection::sandbox::Cell;

    fn rule(key: &[&str]) -> Rule {
        Rule {
            id: RuleId::parse("DE-TEST-1").unwrap(),
            name: "Test rule".into(),
            severity: Severity::High,
            mitre: vec!["T1070.004".into()],
            description: String::new(),
            sql: precheck::check("SELECT pid, path FROM processes").unwrap(),
            columns: vec!["pid".into(), "path".into()],
            dedup: Dedup {
                key: key.iter().map(|k| (*k).to_owned()).collect(),
                window: None,
            },
            on: super::super::rules::RunsOn::Scan,
            tests: Vec::new(),
            source: "test".into(),
        }
    }

    fn result(rows: &[(i64, &str)]) -> QueryResult {
        QueryResult {
            columns: vec!["pid".into(), "path".into()],
            rows: rows
                .iter()
                .map(|(pid, path)| vec![Cell::Integer(*pid), Cell::Text((*path).into())])
                .collect(),
            truncated: false,
            elapsed: Duration::ZERO,
        }
    }

    const CTX: AlertContext<'static> = AlertContext {
        host: "host-a",
        site: Some("plant-7"),
        scan_id: 9,
        now_ms: 1_700_000_000_123,
    };

    #[test]
    fn rows_group_by_the_dedup_key() {
        let rows = result(&[(1, "/tmp/a"), (2, "/tmp/a"), (3, "/tmp/b")]);
        let by_path = candidates(&rule(&["path"]), &rows, &CTX);
        assert_eq!(by_path.len(), 2);
        assert_eq!(by_path[0].dedup_key, r#"["/tmp/a"]"#);
        assert_eq!(by_path[0].rows.len(), 2);
        assert_eq!(by_path[1].rows[0]["pid"], 3);
        let every_column = candidates(&rule(&[]), &rows, &CTX);
        assert_eq!(every_column.len(), 3);
        assert_eq!(every_column[0].dedup_key, r#"[1,"/tmp/a"]"#);
        let alert = &by_path[0];
        assert_eq!(alert.detected_at, "2023-11-14T22:13:20.123Z");
        assert_eq!(
            (alert.rule_id.as_str(), alert.scan_id, alert.site.as_deref()),
            ("DE-TEST-1", 9, Some("plant-7"))
        );
        assert!(
            alert.summary.starts_with("pid=1 path=/tmp/a")
                && alert.summary.ends_with(" [Test rule]"),
            "{}",
            alert.summary
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let id = alert_id("DE-TEST-1", "host-a", "[1]");
        assert_eq!(id.as_str().len(), 32);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(id, alert_id("DE-TEST-1", "host-a", "[1]"));
        for other in [
            alert_id("DE-TEST-2", "host-a", "[1]"),
            alert_id("DE-TEST-1", "host-b", "[1]"),
            alert_id("DE-TEST-1", "host-a", "[2]"),
            // The separators keep "a"+"b\0c" apart from "a\0b"+"c".
            alert_id("DE-TEST-1host-a", "", "[1]"),
        ] {
            assert_ne!(id, other);
        }
        // A known answer, so that a change of the id scheme is a deliberate one.
        let expected = blake3::hash(b"DE-TEST-1\0host-a\0[1]").to_hex()[..32].to_owned();
        assert_eq!(id.as_str(), expected);
    }

    #[test]
    fn summaries_keep_the_values_as_the_rows_hold_them() {
        // Escaping is for terminals, at display time; the alert (JSON for programs) keeps the
        // exact text.
        let hostile = "/tmp/\u{202e}fdp.sh\n\u{1b}[2J\u{200b}";
        let alert = candidates(&rule(&[]), &result(&[(1, hostile)]), &CTX).remove(0);
        assert_eq!(alert.summary, format!("pid=1 path={hostile} [Test rule]"));
        assert_eq!(alert.rows[0]["path"], hostile);
    }

    #[test]
    fn repeats_within_the_window_are_folded_then_raised_again() {
        let window = Duration::from_secs(60);
        let alert = candidates(&rule(&["pid"]), &result(&[(1, "/x")]), &CTX).remove(0);
        let Folded::Raised(first) = fold(None, alert.clone(), 1_000, window) else {
            panic!("the first match raises");
        };
        assert_eq!(first.window_until_ms, 61_000);
        let Folded::Suppressed(second) = fold(Some(&first), alert.clone(), 11_000, window) else {
            panic!("a repeat within the window is folded");
        };
        let Folded::Suppressed(third) = fold(Some(&second), alert.clone(), 21_000, window) else {
            panic!("a repeat within the window is folded");
        };
        assert_eq!((third.alert.suppressed, third.last_seen_ms), (2, 21_000));
        assert_eq!(third.raised_at_ms, 1_000);
        let Folded::Raised(again) = fold(Some(&third), alert, 61_000, window) else {
            panic!("after the window the alert is raised again");
        };
        assert_eq!((again.alert.suppressed, again.raised_at_ms), (0, 61_000));
    }
}
