//! `daemoneye-cli alerts list | ack`.

use std::process::ExitCode;

use std::io::Write as _;

use clap::Subcommand;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::ids::{AlertId, RuleId};
use daemoneye_lib::ipc::proto;
use serde_json::Value;

use crate::records;
use crate::{Cli, Format, ask_agent, print_or_fail};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        /// Only alerts raised within this long ("1h", "7d").
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only alerts of this severity or higher.
        #[arg(long, value_name = "S", value_parser = parse_severity)]
        severity: Option<Severity>,
        /// Only alerts of this rule.
        #[arg(long, value_name = "ID", value_parser = RuleId::parse)]
        rule: Option<RuleId>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Acknowledge an alert.
    Ack {
        /// The alert's id (32 lowercase hex digits).
        #[arg(value_parser = AlertId::parse)]
        id: AlertId,
    },
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse()
}

pub fn run(cli: &Cli, command: &AlertsCommand) -> ExitCode {
    match command {
        AlertsCommand::List {
            since,
            severity,
            rule,
            limit,
        } => {
            let since_ms = since.map(|since| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                i64::try_from(now.saturating_sub(since).as_millis()).unwrap_or(i64::MAX)
            });
            let filter = proto::AlertsRequest {
                since_ms,
                min_severity: severity.map(|severity| severity.as_str().to_owned()),
                rule_id: rule.as_ref().map(RuleId::to_string),
                limit: *limit,
            };
            match ask_agent(cli, |mut client| async move { client.alerts(filter).await }) {
                Ok(list) => print_alerts(cli, &list),
                Err(code) => code,
            }
        }
        AlertsCommand::Ack { id } => {
            // A checked id needs no escaping to be shown.
            let shown = id.clone();
            let id = id.to_string();
            match ask_agent(cli, |mut client| async move { client.ack(id).await }) {
                Ok(true) => {
                    if !cli.quiet {
                        println!("acknowledged {shown}");
                    }
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!("daemoneye-cli: no alert has the id {shown}");
                    ExitCode::from(1)
                }
                Err(code) => code,
            }
        }
    }
}

fn print_alerts(cli: &Cli, list: &proto::AlertList) -> ExitCode {
    let mut alerts = Vec::with_capacity(list.alerts.len());
    for info in &list.alerts {
        match serde_json::from_str::<Alert>(&info.alert_json) {
            Ok(alert) => alerts.push((alert, info.acked_at_ms)),
            Err(err) => {
                eprintln!("daemoneye-cli: the agent sent an unreadable alert: {err}");
                return ExitCode::from(1);
            }
        }
    }
    if list.truncated {
        eprintln!("daemoneye-cli: more alerts match; raise --limit or narrow the filter");
    }
    let printed = print_or_fail(|out| {
        if cli.format == Format::Json {
            // The alerts in the JSON shape of INTERFACE.md, plus whether they were acknowledged.
            let values: Vec<Value> = alerts
                .iter()
                .map(|(alert, acked)| {
                    let mut value = serde_json::to_value(alert).unwrap_or_default();
                    if let Value::Object(fields) = &mut value {
                        fields.insert("acked".into(), acked.is_some().into());
                    }
                    value
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &values)?;
            return writeln!(out);
        }
        let columns: Vec<String> = [
            "detected_at",
            "severity",
            "rule_id",
            "suppressed",
            "acked",
            "id",
            "summary",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let rows: Vec<Vec<Value>> = alerts
            .iter()
            .map(|(alert, acked)| {
                vec![
                    alert.detected_at.clone().into(),
                    alert.severity.as_str().into(),
                    alert.rule_id.clone().into(),
                    alert.suppressed.into(),
                    if acked.is_some() { "yes" } else { "no" }.into(),
                    alert.id.as_str().into(),
                    alert.summary.clone().into(),
                ]
            })
            .collect();
        records::print(&columns, &rows, cli.format, out)
    });
    printed.err().unwrap_or(ExitCode::SUCCESS)
}
