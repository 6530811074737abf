//! `daemoneye-cli health-check`: the agent's health report, as a table, JSON or CSV.

use std::io::{self, Write};

use daemoneye_lib::ipc::proto::{self, Status};
use serde_json::{Value, json};

use crate::Format;
use crate::error::CliError;
use daemoneye_lib::text;

use crate::records::csv_cell;

/// The name the CLI prints for a status.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Degraded => "degraded",
        Status::Failed | Status::Unspecified => "failed",
    }
}

/// The report as JSON: the components, then the details grouped by component.
pub fn to_json(health: &proto::AgentHealth) -> Value {
    let collector = health.collector.clone().unwrap_or_default();
    let privileges = collector.privileges.unwrap_or_default();
    json!({
        "overall": status_name(health.overall()),
        "components": health.components.iter().map(|c| json!({
            "name": c.name,
            "status": status_name(c.status()),
            "detail": c.detail,
        })).collect::<Vec<_>>(),
        "agent": {
            "pid": health.agent_pid,
            "version": health.software_version,
            "uptime_ms": health.uptime_ms,
        },
        "procmond": {
            "pid": health.collector_pid,
            "restarts": health.collector_restarts,
            "last_exit": health.collector_last_exit,
            "version": health.collector.as_ref().map(|c| c.software_version.clone()),
            "uptime_ms": health.collector.as_ref().map(|c| c.uptime_ms),
            "scans_completed": health.collector.as_ref().map(|c| c.scans_completed),
            "privileges_dropped": privileges.dropped,
            "uid": health.collector.as_ref().map(|_| privileges.uid),
            "euid": health.collector.as_ref().map(|_| privileges.euid),
            "effective_caps": health.collector.as_ref().map(|_| format!("{:#018x}", privileges.effective_caps)),
            "no_new_privs": privileges.no_new_privs,
        },
        "scans": {
            "completed": health.scans_completed,
            "last_at": health.last_scan_at,
            "last_processes": health.last_scan_processes,
        },
        "exec_events": collector.exec_events.as_ref().map(|e| json!({
            "on": e.on,
            "detail": e.detail,
            "received": e.received,
            "pushed": e.pushed,
            "lost": e.lost,
            "dropped": e.dropped,
            "last_drop_at": e.last_drop_at,
            "last_drop_reason": e.last_drop_reason,
        })),
    })
}

/// The JSON a monitoring script gets when there is no report: the overall status `failed`,
/// the exit code the CLI ends with, and why.
pub fn print_failure(err: &CliError, out: &mut impl Write) -> io::Result<()> {
    let reachable = !matches!(err, CliError::Unreachable(_));
    let value = json!({
        "overall": "failed",
        "agent_reachable": reachable,
        "exit_code": err.exit_code(),
        "error": err.message(),
        "components": [],
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// Prints the report in `format`; `verbose` adds the details to the table.
pub fn print(
    health: &proto::AgentHealth,
    format: Format,
    verbose: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &to_json(health))?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "component,status,detail")?;
            for c in &health.components {
                writeln!(
                    out,
                    "{},{},{}",
                    csv_cell(&c.name),
                    status_name(c.status()),
                    csv_cell(&c.detail)
                )?;
            }
            Ok(())
        }
        Format::Table => {
            let names: Vec<_> = health
                .components
                .iter()
                .map(|c| text::escape(&c.name))
                .collect();
            let width = names
                .iter()
                .map(|name| name.chars().count())
                .max()
                .unwrap_or(0)
                .max(9);
            writeln!(out, "{:width$}  {:8}  DETAIL", "COMPONENT", "STATUS")?;
            for (c, name) in health.components.iter().zip(&names) {
                writeln!(
                    out,
                    "{name:width$}  {:8}  {}",
                    status_name(c.status()),
                    text::escape(&c.detail)
                )?;
            }
            writeln!(out, "overall: {}", status_name(health.overall()))?;
            if verbose {
                let details = to_json(health);
                for section in ["agent", "procmond", "scans"] {
                    if let Some(Value::Object(fields)) = details.get(section) {
                        for (key, value) in fields {
                            let value = value.to_string();
                            writeln!(
                                out,
                                "{section}.{} = {}",
                                text::escape(key),
                                text::escape(&value)
                            )?;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> proto::AgentHealth {
        proto::AgentHealth {
            overall: Status::Degraded as i32,
            components: vec![
                proto::ComponentHealth {
                    name: "agent".into(),
                    status: Status::Ok as i32,
                    detail: "pid 1".into(),
                },
                proto::ComponentHealth {
                    name: "procmond".into(),
                    status: Status::Degraded as i32,
                    detail: "down, \"restarting\"\n\x1b[2J".into(),
                },
            ],
            ..Default::default()
        }
    }

    fn printed(format: Format) -> String {
        let mut out = Vec::new();
        print(&report(), format, false, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_escapes_what_the_agent_sent() {
        let table = printed(Format::Table);
        assert!(
            table.contains("procmond   degraded  down, \"restarting\"\\n\\u{1b}[2J"),
            "{table}"
        );
        assert!(table.ends_with("overall: degraded\n"), "{table}");
    }

    #[test]
    fn csv_quotes_fields() {
        assert_eq!(
            printed(Format::Csv),
            "component,status,detail\nagent,ok,pid 1\nprocmond,degraded,\"down, \"\"restarting\"\"\\n\\u{1b}[2J\"\n"
        );
    }

    #[test]
    fn json_names_statuses_and_unknowns() {
        let value: Value = serde_json::from_str(&printed(Format::Json)).unwrap();
        assert_eq!(value["overall"], "degraded");
        assert_eq!(value["components"][1]["status"], "degraded");
        assert!(value["procmond"]["pid"].is_null());
        assert!(value["procmond"]["uid"].is_null());
    }
}
