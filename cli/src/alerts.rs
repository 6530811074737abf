//! `daemoneye-cli alerts list | ack | send-test | export`: alerts arrive as protobuf messages, page by
//! page; an export arrives as the text of its file (`daemoneye_lib::ledger::alert_export`),
//! which this command writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::ids::{AlertId, RuleId};
use daemoneye_lib::ipc::proto;
use serde_json::Value;

use crate::agent_client::{AgentClient, ClientError};
use crate::error::CliError;
use crate::records;
use crate::{Cli, Format, ask_agent, ask_agent_within, print_or_fail};

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
    /// Write undelivered alerts to a file for carrying out by hand, each beside its ledger
    /// entry and inclusion proof (`audit verify FILE --key KEY` checks it offline).
    ///
    /// The alerts stay pending: the sinks still deliver them when they can (receivers
    /// deduplicate by alert id). The export is recorded in the ledger (`alerts_exported`).
    Export {
        /// The file to write (mode 0600, written whole or not at all).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Push a test alert (rule DE-TEST-0000, severity info) through the outbox to every sink,
    /// or to one, and wait for the deliveries. Exits 1 when one did not arrive in time.
    SendTest {
        /// Only this sink.
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
        /// Wait at most this many seconds for the deliveries (at most 120).
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        wait: u32,
    },
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse()
}

/// Alerts asked for per page.
const PAGE: u32 = 500;
/// How long an export may take: the agent reads the whole ledger.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(cli: &Cli, command: &AlertsCommand) -> Result<(), CliError> {
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
                min_severity: severity.map(|severity| proto::Severity::from(severity) as i32),
                rule_id: rule.as_ref().map(RuleId::to_string),
                page: None,
            };
            let limit = *limit;
            let (alerts, more) =
                ask_agent(
                    cli,
                    |client| async move { fetch(&client, filter, limit).await },
                )?;
            if more {
                eprintln!("daemoneye-cli: more alerts match; raise --limit or narrow the filter");
            }
            print_alerts(cli, &alerts)
        }
        AlertsCommand::SendTest { sink, wait } => {
            crate::outbox::send_test(cli, sink.as_deref(), *wait)
        }
        AlertsCommand::Ack { id } => {
            let request = proto::AckRequest { id: id.to_string() };
            let found = ask_agent(cli, |client| async move { client.ask(request).await })?;
            // A checked id needs no escaping to be shown.
            if !found.found {
                return Err(CliError::Failed(format!("no alert has the id {id}")));
            }
            if !cli.quiet {
                println!("acknowledged {id}");
            }
            Ok(())
        }
        AlertsCommand::Export { out, force } => export(cli, out, *force),
    }
}

/// Refuses to overwrite without `--force`. Checked before asking (an export appends to the
/// ledger) and again before writing; a file created between the two is replaced.
fn refuse_existing(out: &Path, force: bool) -> Result<(), CliError> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(CliError::Usage(format!(
            "alerts export: {} exists; --force replaces it",
            out.display()
        )));
    }
    Ok(())
}

fn export(cli: &Cli, out: &Path, force: bool) -> Result<(), CliError> {
    refuse_existing(out, force)?;
    let request = proto::AlertsExportRequest { max_bytes: 0 };
    let export = ask_agent_within(cli, EXPORT_TIMEOUT, |client| async move {
        client.ask(request).await
    })?;
    refuse_existing(out, force)?;
    daemoneye_lib::fsutil::atomic_replace(out, export.text.as_bytes())
        .map_err(|err| CliError::Failed(format!("alerts export: {err}")))?;
    if !cli.quiet {
        println!(
            "exported {} alerts to {} (ledger entries {} to {}, export entry {}); they stay pending for their sinks",
            export.alerts,
            out.display(),
            export.first_index,
            export.size.saturating_sub(1),
            export.export_entry
        );
    }
    if export.unrecorded > 0 {
        eprintln!(
            "daemoneye-cli: {} undelivered alerts have no alert_recorded ledger entry and are not in the export",
            export.unrecorded
        );
    }
    Ok(())
}

/// Up to `limit` alerts matching `filter`, page by page, and whether more match.
async fn fetch(
    client: &AgentClient,
    mut filter: proto::AlertsRequest,
    limit: u32,
) -> Result<(Vec<(Alert, Option<i64>)>, bool), ClientError> {
    let mut alerts = Vec::new();
    let mut cursor = String::new();
    loop {
        let want = limit.saturating_sub(u32::try_from(alerts.len()).unwrap_or(u32::MAX));
        if want == 0 {
            return Ok((alerts, !cursor.is_empty()));
        }
        filter.page = Some(proto::Page {
            cursor: std::mem::take(&mut cursor),
            max: want.min(PAGE),
        });
        let page = client.ask(filter.clone()).await?;
        for info in page.alerts {
            let alert = info
                .alert
                .ok_or_else(|| ClientError::Local("the agent sent an empty alert".to_owned()))
                .and_then(|alert| {
                    Alert::try_from(alert).map_err(|err| {
                        ClientError::Local(format!("the agent sent an unreadable alert: {err}"))
                    })
                })?;
            alerts.push((alert, info.acked_at_ms));
        }
        if page.next_cursor.is_empty() {
            return Ok((alerts, false));
        }
        cursor = page.next_cursor;
    }
}

fn print_alerts(cli: &Cli, alerts: &[(Alert, Option<i64>)]) -> Result<(), CliError> {
    print_or_fail(|out| {
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
        records::print(&columns, &rows, cli.style(), out)
    })
}
