//! The encodings sinks write an alert in: JSON lines, CEF and RFC 5424 syslog. Pure: bytes in,
//! a line out, no I/O and no clock (the time written is the alert's own `detected_at`).
//!
//! Every encoder starts from the payload the outbox holds, which must be the alert object of
//! INTERFACE.md "Alerts"; anything else ([`parse_alert`]) is [`SinkError::Reject`]: sending it
//! again cannot make it an alert. Every encoder writes exactly one line, whatever the fields
//! hold: no raw CR or LF ever reaches a file or a socket, so one alert can never forge another.
//!
//! # JSON lines
//!
//! [`json_line`] is the payload itself, compacted: the whitespace between tokens is removed and
//! nothing else changes (key order, number spelling and string escapes stay as enqueued). A JSON
//! string cannot hold a raw control character, so the compacted text is one line. The file
//! sink adds the `\n`.
//!
//! # CEF
//!
//! [`cef`] writes ArcSight's Common Event Format, revision 25 of its specification:
//!
//! ```text
//! CEF:0|DaemonEye|daemoneye-agent|VERSION|RULE_ID|RULE_NAME|SEVERITY|EXTENSION
//! ```
//!
//! Header fields escape `\` as `\\` and `|` as `\|`, as the specification says. It allows no
//! line break in the header; a rule name with one is written with `\n` and `\r` as in the
//! extension (a deliberate deviation: the alternative is to change the text or to break the
//! line). Extension values escape `\` as `\\`, `=` as `\=`, LF as `\n` and CR as `\r`; `|`
//! is not escaped there (the specification says it need not be). Other characters go as they
//! are, UTF-8. The extension keys, in this order:
//!
//! | key | value |
//! |---|---|
//! | `rt` | `detected_at` in milliseconds since the epoch |
//! | `dvchost` | `host` |
//! | `cnt` | `1 + suppressed`: the raises this alert stands for |
//! | `cs1Label`, `cs1` | `rule_id`, the rule id |
//! | `cs2Label`, `cs2` | `alert_id`, the alert id (receivers deduplicate on it) |
//! | `cs3Label`, `cs3` | `site`, `site` (both left out when no site is configured) |
//! | `cs4Label`, `cs4` | `mitre`, the technique ids joined with `,` |
//! | `cs5Label`, `cs5` | `dedup_key`, `dedup_key` |
//! | `cn1Label`, `cn1` | `scan_id`, `scan_id` |
//! | `msg` | `summary` |
//!
//! CEF severity (0 to 10; 0-3 low, 4-6 medium, 7-8 high, 9-10 very high in the
//! specification's bands): info 1, low 3, medium 5, high 8, critical 10. Info sits in the low
//! band below low, and critical at the top of the very-high band.
//!
//! The matching rows are in neither CEF nor syslog (the summary names the first rows'
//! processes); receivers that need them take JSON.
//!
//! # RFC 5424 syslog
//!
//! [`syslog`] writes one RFC 5424 message without framing (the syslog sink adds RFC 6587
//! octet counting over TCP):
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME daemoneye-agent PROCID alert [daemoneye@32473 …] MSG
//! ```
//!
//! - PRI is `facility * 8 + severity`. The facility is the caller's ([`Facility`]), `local0`
//!   (16) by default: the local facilities are the ones a site's rsyslog routes as it likes,
//!   and `auth`/`authpriv` belong to the system's own login records. Severity: critical 2
//!   (crit), high 3 (err), medium 4 (warning), low 5 (notice), info 6 (informational);
//!   emergency and alert (0, 1) mean the system is unusable, which an alert does not say.
//! - TIMESTAMP is `detected_at` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; a year past 9999 is the
//!   NILVALUE `-` (RFC 5424 has four-digit years only).
//! - HOSTNAME is `host` when it is 1 to 255 printable US-ASCII characters, else `-`.
//! - PROCID is the caller's (the agent's pid), or `-`.
//! - The structured data element `daemoneye@32473` (32473 is the private enterprise number
//!   RFC 5612 reserves for documentation; a registered one replaces it when the project has
//!   it) has the parameters `id`, `rule_id`, `rule_name`, `severity`, `host`, `site` (left out
//!   when none), `scan_id`, `detected_at`, `suppressed`, `mitre` (joined with `,`) and
//!   `dedup_key`, the exact values. PARAM-VALUE escapes `"`, `\` and `]` with a backslash
//!   (§6.3.3). The RFC has no escape for a line break; CR and LF are written as `\r` and `\n`
//!   (a deliberate deviation: a conforming parser reads a backslash and a letter, visible and
//!   on one line, and since every real backslash is doubled, the text reads back exactly).
//! - MSG is the summary for a person, through the one escaping policy
//!   (`daemoneye_lib::text::escape`: control characters, bidi overrides, zero-width
//!   characters); it starts with a BOM when it is not ASCII, as §6.4 requires of UTF-8.

use std::fmt::Write as _;

use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::text;

use super::SinkError;

/// The agent's version, as CEF's device version.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The SD-ID of the structured data element.
pub const SD_ID: &str = "daemoneye@32473";

/// The encodings of the file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// One JSON object per line ([`json_line`]).
    #[default]
    Json,
    /// One CEF event per line ([`cef`]).
    Cef,
}

impl Encoding {
    /// The payload as one line in this encoding, without the line end.
    pub fn encode(self, payload: &[u8]) -> Result<String, SinkError> {
        match self {
            Self::Json => json_line(payload),
            Self::Cef => Ok(cef(&parse_alert(payload)?)),
        }
    }
}

/// The alert the payload holds, or [`SinkError::Reject`]: it must be one JSON object of the
/// alert's shape, with an RFC 3339 `detected_at`.
pub fn parse_alert(payload: &[u8]) -> Result<Alert, SinkError> {
    // serde accepts a struct written as an array too; only the object is the alert.
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(SinkError::reject(
            "payload is not an alert: not a JSON object",
        ));
    }
    let alert: Alert = serde_json::from_slice(payload)
        .map_err(|err| SinkError::reject(format!("payload is not an alert: {err}")))?;
    text::parse_time_ms(&alert.detected_at)
        .map_err(|err| SinkError::reject(format!("payload is not an alert: {err}")))?;
    Ok(alert)
}

/// The payload compacted into one line (see the module documentation), after checking that it
/// is an alert.
pub fn json_line(payload: &[u8]) -> Result<String, SinkError> {
    parse_alert(payload)?;
    let mut out = Vec::with_capacity(payload.len());
    let mut in_string = false;
    let mut escaped = false;
    for &byte in payload {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if byte == b'"' {
            in_string = true;
        }
        out.push(byte);
    }
    // The payload parsed as JSON, so it is UTF-8, and removing ASCII whitespace keeps it so.
    String::from_utf8(out).map_err(|err| SinkError::reject(format!("payload is not UTF-8: {err}")))
}

/// The CEF severity of an alert's severity (see the module documentation).
pub fn cef_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

fn cef_header(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Appends ` key=value` (the first pair, `rt`, is written without the space).
fn cef_extension(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The alert as one CEF line (see the module documentation), without the line end.
pub fn cef(alert: &Alert) -> String {
    let mut out = String::with_capacity(256 + alert.summary.len());
    out.push_str("CEF:0|DaemonEye|daemoneye-agent|");
    cef_header(&mut out, VERSION);
    out.push('|');
    cef_header(&mut out, &alert.rule_id);
    out.push('|');
    cef_header(&mut out, &alert.rule_name);
    // parse_alert checked the time; an alert built elsewhere with a bad one gets 0. A
    // number needs no escaping.
    let rt = text::parse_time_ms(&alert.detected_at).unwrap_or(0);
    let _ = write!(out, "|{}|rt={rt}", cef_severity(alert.severity));
    cef_extension(&mut out, "dvchost", &alert.host);
    cef_extension(
        &mut out,
        "cnt",
        &alert.suppressed.saturating_add(1).to_string(),
    );
    cef_extension(&mut out, "cs1Label", "rule_id");
    cef_extension(&mut out, "cs1", &alert.rule_id);
    cef_extension(&mut out, "cs2Label", "alert_id");
    cef_extension(&mut out, "cs2", alert.id.as_str());
    if let Some(site) = &alert.site {
        cef_extension(&mut out, "cs3Label", "site");
        cef_extension(&mut out, "cs3", site);
    }
    cef_extension(&mut out, "cs4Label", "mitre");
    cef_extension(&mut out, "cs4", &alert.mitre.join(","));
    cef_extension(&mut out, "cs5Label", "dedup_key");
    cef_extension(&mut out, "cs5", &alert.dedup_key);
    cef_extension(&mut out, "cn1Label", "scan_id");
    cef_extension(&mut out, "cn1", &alert.scan_id.to_string());
    cef_extension(&mut out, "msg", &alert.summary);
    out
}

/// A syslog facility code, 0 to 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// `local0`, the default.
    pub const LOCAL0: Facility = Facility(16);

    /// The facility with this code, if it is one (0 to 23).
    pub fn new(code: u8) -> Option<Self> {
        (code <= 23).then_some(Self(code))
    }

    /// Its code.
    pub fn code(self) -> u8 {
        self.0
    }
}

impl Default for Facility {
    fn default() -> Self {
        Self::LOCAL0
    }
}

/// The syslog severity of an alert's severity (see the module documentation).
pub fn syslog_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

fn sd_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ']' => out.push_str("\\]"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The alert as one RFC 5424 message (see the module documentation), without framing.
pub fn syslog(alert: &Alert, facility: Facility, procid: Option<u32>) -> String {
    let pri = u16::from(facility.code()) * 8 + u16::from(syslog_severity(alert.severity));
    let timestamp = text::parse_time_ms(&alert.detected_at)
        .ok()
        .map(text::format_time_ms)
        .filter(|time| time.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .unwrap_or_else(|| "-".to_owned());
    let host = &alert.host;
    let hostname =
        if (1..=255).contains(&host.len()) && host.bytes().all(|b| (33..=126).contains(&b)) {
            host.as_str()
        } else {
            "-"
        };
    let procid = procid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
    let mut out = String::with_capacity(512 + alert.summary.len());
    let _ = write!(
        out,
        "<{pri}>1 {timestamp} {hostname} daemoneye-agent {procid} alert [{SD_ID}"
    );
    sd_param(&mut out, "id", alert.id.as_str());
    sd_param(&mut out, "rule_id", &alert.rule_id);
    sd_param(&mut out, "rule_name", &alert.rule_name);
    sd_param(&mut out, "severity", alert.severity.as_str());
    sd_param(&mut out, "host", &alert.host);
    if let Some(site) = &alert.site {
        sd_param(&mut out, "site", site);
    }
    sd_param(&mut out, "scan_id", &alert.scan_id.to_string());
    sd_param(&mut out, "detected_at", &alert.detected_at);
    sd_param(&mut out, "suppressed", &alert.suppressed.to_string());
    sd_param(&mut out, "mitre", &alert.mitre.join(","));
    sd_param(&mut out, "dedup_key", &alert.dedup_key);
    out.push_str("] ");
    let msg = text::escape(&alert.summary);
    if !msg.is_ascii() {
        out.push('\u{feff}');
    }
    out.push_str(&msg);
    out
}

#[cfg(test)]
pub(crate) mod tests;
