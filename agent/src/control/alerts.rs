//! `daemoneye-cli alerts list` and `alerts ack`: read and mark alerts in the store.
//!
//! Alerts cross as protobuf messages ([`proto::Alert`]) and page as every list does
//! ([`daemoneye_lib::ipc::calls`]), with a cursor of this module's own.

use std::sync::Arc;

use daemoneye_lib::alert::StoredAlert;
use daemoneye_lib::ids::AlertId;
use daemoneye_lib::ipc::convert;
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};
use daemoneye_lib::storage::Store;

use super::{AgentState, blocking, error};
use crate::run::now_ms;

/// Alerts in one page at most.
const MAX_ALERTS: usize = 10_000;

/// Alerts matching `filter`, newest first.
pub async fn list(state: &AgentState, filter: proto::AlertsRequest) -> agent_response::Kind {
    let store = Arc::clone(&state.store);
    blocking(move || list_now(&store, &filter)).await
}

/// Marks an alert acknowledged.
pub async fn ack(state: &AgentState, ack: proto::AckRequest) -> agent_response::Kind {
    let store = Arc::clone(&state.store);
    blocking(move || match store.ack_alert(&ack.id, now_ms()) {
        Ok(found) => agent_response::Kind::Ack(proto::AckResult { found }),
        Err(err) => error(
            ErrorCode::Internal,
            format!("acknowledging the alert: {err}"),
        ),
    })
    .await
}

fn list_now(store: &Store, filter: &proto::AlertsRequest) -> agent_response::Kind {
    let min_severity = match filter.min_severity {
        None => None,
        Some(value) => match convert::severity_from_proto(value) {
            Some(severity) => Some(severity),
            None => return error(ErrorCode::BadRequest, format!("unknown severity {value}")),
        },
    };
    let page = filter.page.clone().unwrap_or_default();
    let after = match Cursor::parse(&page.cursor) {
        Ok(after) => after,
        Err(reason) => return error(ErrorCode::BadRequest, reason),
    };
    let stored = match store.alerts() {
        Ok(stored) => stored,
        Err(err) => return error(ErrorCode::Internal, format!("reading alerts: {err}")),
    };
    let max = match usize::try_from(page.max) {
        Ok(0) | Err(_) => MAX_ALERTS,
        Ok(max) => max.min(MAX_ALERTS),
    };
    let mut matching = stored.into_iter().filter(|stored| {
        after.as_ref().is_none_or(|after| after.precedes(stored))
            && filter
                .since_ms
                .is_none_or(|since| stored.raised_at_ms >= since)
            && min_severity.is_none_or(|min| stored.alert.severity >= min)
            && filter
                .rule_id
                .as_deref()
                .is_none_or(|rule| stored.alert.rule_id == rule)
    });
    let page: Vec<StoredAlert> = matching.by_ref().take(max).collect();
    let next_cursor = match (matching.next(), page.last()) {
        (Some(_), Some(last)) => Cursor::after(last),
        _ => String::new(),
    };
    let alerts = page
        .iter()
        .map(|stored| proto::StoredAlertInfo {
            alert: Some(proto::Alert::from(&stored.alert)),
            raised_at_ms: stored.raised_at_ms,
            acked_at_ms: stored.acked_at_ms,
            last_seen_ms: stored.last_seen_ms,
            window_until_ms: stored.window_until_ms,
        })
        .collect();
    agent_response::Kind::Alerts(proto::AlertList {
        alerts,
        next_cursor,
    })
}

/// Where a page of alerts ended, in the store's order (newest `raised_at_ms` first, ties in
/// id order): `<raised_at_ms>.<alert id>` of the page's last alert. An alert raised again
/// after the page moves to the front and is not repeated.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    raised_at_ms: i64,
    id: AlertId,
}

impl Cursor {
    fn after(last: &StoredAlert) -> String {
        format!("{}.{}", last.raised_at_ms, last.alert.id)
    }

    fn parse(text: &str) -> Result<Option<Self>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || "the page cursor is not one this agent issued".to_owned();
        let (raised, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Some(Self {
            raised_at_ms: raised.parse().map_err(|_| bad())?,
            id: AlertId::parse(id).map_err(|_| bad())?,
        }))
    }

    /// Whether `alert` comes after the cursor's alert in the store's order.
    fn precedes(&self, alert: &StoredAlert) -> bool {
        alert.raised_at_ms < self.raised_at_ms
            || (alert.raised_at_ms == self.raised_at_ms
                && alert.alert.id.as_str() > self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemoneye_lib::alert::{Alert, Severity};

    fn stored(n: u8, raised_at_ms: i64, severity: Severity) -> StoredAlert {
        StoredAlert {
            alert: Alert {
                id: AlertId::parse(&format!("{n:032x}")).expect("an id"),
                rule_id: format!("R-{}", n % 2),
                rule_name: "r".to_owned(),
                severity,
                mitre: Vec::new(),
                host: "h".to_owned(),
                site: None,
                scan_id: 1,
                detected_at: "2026-12-03T00:00:00Z".to_owned(),
                dedup_key: n.to_string(),
                suppressed: 0,
                rows: Vec::new(),
                summary: String::new(),
            },
            raised_at_ms,
            window_until_ms: raised_at_ms,
            last_seen_ms: raised_at_ms,
            acked_at_ms: None,
            pending_suppressed: 0,
        }
    }

    /// Every page of `filter`, `max` at a time: the ids in order, and the pages.
    fn pages(store: &Store, mut filter: proto::AlertsRequest, max: u32) -> (Vec<String>, usize) {
        let (mut ids, mut pages) = (Vec::new(), 0);
        let mut cursor = String::new();
        loop {
            filter.page = Some(proto::Page { cursor, max });
            let agent_response::Kind::Alerts(list) = list_now(store, &filter) else {
                panic!("not a list");
            };
            pages += 1;
            assert!(list.alerts.len() <= max as usize);
            ids.extend(
                list.alerts
                    .into_iter()
                    .map(|a| a.alert.expect("an alert").id),
            );
            if list.next_cursor.is_empty() {
                return (ids, pages);
            }
            cursor = list.next_cursor;
        }
    }

    #[test]
    fn pages_return_every_match_once_in_the_stores_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("events.redb"), 1 << 20).expect("a store");
        // Ties in raised_at_ms are ordered by id, across page boundaries too.
        let alerts: Vec<StoredAlert> = (1..=9u8)
            .map(|n| {
                let severity = if n % 3 == 0 {
                    Severity::Critical
                } else {
                    Severity::Low
                };
                stored(n, i64::from(n / 2), severity)
            })
            .collect();
        store.put_alerts(&alerts).expect("stored");
        let expected: Vec<String> = store
            .alerts()
            .expect("read")
            .iter()
            .map(|a| a.alert.id.to_string())
            .collect();
        assert_eq!(expected.len(), 9);
        for max in [1, 2, 4, 9, 100] {
            let (ids, pages) = pages(&store, proto::AlertsRequest::default(), max);
            assert_eq!(ids, expected, "pages of {max}");
            assert_eq!(
                pages,
                9usize.div_ceil(max as usize).max(1),
                "pages of {max}"
            );
        }
        let critical = proto::AlertsRequest {
            min_severity: Some(proto::Severity::Critical as i32),
            ..proto::AlertsRequest::default()
        };
        let (ids, _) = pages(&store, critical, 1);
        assert_eq!(ids.len(), 3, "{ids:?}");
        let bad = proto::AlertsRequest {
            page: Some(proto::Page {
                cursor: "not-a-cursor".to_owned(),
                max: 1,
            }),
            ..proto::AlertsRequest::default()
        };
        assert!(matches!(
            list_now(&store, &bad),
            agent_response::Kind::Error(err) if err.code() == ErrorCode::BadRequest
        ));
        let unknown = proto::AlertsRequest {
            min_severity: Some(42),
            ..proto::AlertsRequest::default()
        };
        assert!(matches!(
            list_now(&store, &unknown),
            agent_response::Kind::Error(err) if err.code() == ErrorCode::BadRequest
        ));
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_the_agent_did_not_issue() {
        let id = "0123456789abcdef0123456789abcdef";
        let parsed = Cursor::parse(&format!("-5.{id}")).expect("parses");
        assert_eq!(
            parsed,
            Some(Cursor {
                raised_at_ms: -5,
                id: AlertId::parse(id).expect("an id")
            })
        );
        assert_eq!(Cursor::parse(""), Ok(None));
        for bad in [
            "5",
            "x.{id}",
            "5.xyz",
            "5.",
            ".",
            "5.0123456789abcdef0123456789abcdeF",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
