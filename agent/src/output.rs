//! Alerts on stdout: the agent's built-in sink when no other is configured, and `--once`'s
//! output.

use std::io::Write;

use daemoneye_lib::alert::Alert;
use daemoneye_lib::text;

/// How alerts are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AlertFormat {
    /// One line per alert for a person: time, severity, rule, summary, id.
    #[default]
    Text,
    /// One JSON object per line, in the shape of INTERFACE.md.
    Json,
}

/// Prints `alerts` to stdout. A closed stdout (a pipe to `head`) is not an error: the alerts
/// are kept in the store either way.
pub fn print_alerts(alerts: &[Alert], format: AlertFormat) {
    let mut out = std::io::stdout().lock();
    for alert in alerts {
        let line = render(alert, format);
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// One alert as one line: JSON as the alert holds it, or text for a person, with what the
/// processes chose (in the summary) escaped by `daemoneye_lib::text`.
pub fn render(alert: &Alert, format: AlertFormat) -> String {
    match format {
        // Serialising plain data to a String cannot fail.
        AlertFormat::Json => serde_json::to_string(alert).unwrap_or_default(),
        AlertFormat::Text => format!(
            "{} {:<8} {} {} (alert {}, scan {})",
            alert.detected_at,
            alert.severity.as_str(),
            text::escape(&alert.rule_id),
            text::escape(&alert.summary),
            alert.id,
            alert.scan_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemoneye_lib::alert::Severity;
    use daemoneye_lib::ids::AlertId;

    #[test]
    fn json_lines_have_the_interface_fields_and_text_is_one_line() {
        let alert = Alert {
            id: AlertId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            rule_id: "DE-LNX-0001".into(),
            rule_name: "Deleted".into(),
            severity: Severity::High,
            mitre: vec!["T1070.004".into()],
            host: "h".into(),
            site: None,
            scan_id: 3,
            detected_at: "2026-11-21T10:00:00.000Z".into(),
            dedup_key: "[1]".into(),
            suppressed: 0,
            rows: vec![serde_json::Map::from_iter([("pid".to_owned(), 1.into())])],
            summary: "Deleted: pid=1".into(),
        };
        let json: serde_json::Value =
            serde_json::from_str(&render(&alert, AlertFormat::Json)).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "dedup_key",
                "detected_at",
                "host",
                "id",
                "mitre",
                "rows",
                "rule_id",
                "rule_name",
                "scan_id",
                "severity",
                "site",
                "summary",
                "suppressed"
            ]
        );
        assert_eq!(json["severity"], "high");
        assert_eq!(
            render(&alert, AlertFormat::Text),
            "2026-11-21T10:00:00.000Z high     DE-LNX-0001 Deleted: pid=1 (alert \
             0123456789abcdef0123456789abcdef, scan 3)"
        );
        let hostile = Alert {
            summary: "Deleted: name=gnp.\u{202e}exe\u{200b}\n\u{1b}[2J".into(),
            ..alert
        };
        let line = render(&hostile, AlertFormat::Text);
        assert!(
            line.contains("Deleted: name=gnp.\\u{202e}exe\\u{200b}\\n\\u{1b}[2J (alert"),
            "{line}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&hostile, AlertFormat::Json)).unwrap();
        assert_eq!(json["summary"], hostile.summary.as_str());
    }
}
