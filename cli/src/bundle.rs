//! `daemoneye-cli bundle`: install, status, history, rollback. Every command asks the agent,
//! which verifies and applies; the CLI never writes the agent's data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use daemoneye_lib::ipc::proto;
use daemoneye_lib::text;
use serde_json::{Value, json};

use crate::error::CliError;
use crate::records;
use crate::{Cli, Format, ask_agent, print_or_fail};

/// Entries asked for per history page.
const HISTORY_PAGE: u32 = 500;
/// The most history entries printed.
const HISTORY_MAX: usize = 10_000;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Verify and apply a bundle; its signature is FILE.minisig. The agent reads both files
    /// and runs the same checks as for a bundle dropped into <data_dir>/inbox/. Exits 3 when
    /// the bundle is refused (the reason is printed and kept in `bundle history`).
    Install {
        /// The bundle, NAME-VERSION.bundle.
        file: PathBuf,
    },
    /// What is active: each bundle and its version, the trusted keys, the license. Exits 1
    /// when a trusted key file could not be read or an active bundle is damaged.
    Status,
    /// Every bundle applied, refused (and why) or rolled back, newest first.
    History,
    /// Go back one version of NAME (default: the bundle applied last).
    Rollback {
        /// The bundle name.
        name: Option<String>,
    },
}

pub fn run(cli: &Cli, command: &BundleCommand) -> Result<(), CliError> {
    match command {
        BundleCommand::Install { file } => install(cli, file),
        BundleCommand::Status => status(cli),
        BundleCommand::History => history(cli),
        BundleCommand::Rollback { name } => rollback(cli, name.as_deref()),
    }
}

fn install(cli: &Cli, file: &Path) -> Result<(), CliError> {
    let path = std::path::absolute(file).map_err(|err| {
        CliError::Usage(format!(
            "{}: {err}",
            text::quoted(&file.display().to_string())
        ))
    })?;
    let path = path
        .to_str()
        .ok_or_else(|| CliError::Usage("the bundle's path is not UTF-8".to_owned()))?
        .to_owned();
    let decision = ask_agent(cli, |client| async move {
        client.ask(proto::BundleInstallRequest { path }).await
    })?;
    print_decision(cli, &decision)?;
    if decision.action() == proto::BundleAction::Applied {
        return Ok(());
    }
    let message = format!("bundle refused: {}", text::escape(&decision.reason));
    // The file could not be read: the operator named it wrong (2). The agent could not write
    // its store: a runtime failure (1). Every other step is the bundle failing a check (3).
    Err(match decision.step.as_str() {
        "read" => CliError::Usage(message),
        "apply" | "internal" | "state" => CliError::Failed(message),
        _ => CliError::Verification(message),
    })
}

fn rollback(cli: &Cli, name: Option<&str>) -> Result<(), CliError> {
    let name = name.unwrap_or_default().to_owned();
    let decision = ask_agent(cli, |client| async move {
        client.ask(proto::BundleRollbackRequest { name }).await
    })?;
    if decision.action() == proto::BundleAction::RolledBack {
        return print_decision(cli, &decision);
    }
    Err(CliError::Failed(format!(
        "no rollback: {}",
        text::escape(&decision.reason)
    )))
}

/// The name the CLI prints for an action.
fn action_name(action: proto::BundleAction) -> &'static str {
    match action {
        proto::BundleAction::Applied => "applied",
        proto::BundleAction::Refused => "refused",
        proto::BundleAction::RolledBack => "rolled back",
        proto::BundleAction::Unspecified => "unknown",
    }
}

fn decision_json(decision: &proto::BundleDecision) -> Value {
    json!({
        "action": action_name(decision.action()).replace(' ', "_"),
        "name": decision.name,
        "version": decision.version,
        "from_version": decision.from_version,
        "kind": decision.kind,
        "sha256": decision.sha256,
        "reason": decision.reason,
        "step": decision.step,
        "source": decision.source,
        "at": text::format_time_ms(decision.at_ms),
        "signer": decision.signer,
        "restart_needed": decision.restart_needed,
    })
}

/// "core-rules 3", "core-rules 2 → 3", or "(unreadable bundle)".
fn naming(decision: &proto::BundleDecision) -> String {
    let name = if decision.name.is_empty() {
        "(unreadable bundle)".to_owned()
    } else {
        text::escape(&decision.name).into_owned()
    };
    match (decision.from_version, decision.version) {
        (Some(from), Some(to)) => format!("{name} version {from} -> {to}"),
        (None, Some(version)) => format!("{name} version {version}"),
        _ => name,
    }
}

fn print_decision(cli: &Cli, decision: &proto::BundleDecision) -> Result<(), CliError> {
    print_or_fail(|out| match cli.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &decision_json(decision))?;
            writeln!(out)
        }
        Format::Csv | Format::Table => {
            let mut line = format!("{}: {}", action_name(decision.action()), naming(decision));
            if !decision.kind.is_empty() {
                line.push_str(&format!(" ({})", text::escape(&decision.kind)));
            }
            if !decision.reason.is_empty() {
                line.push_str(&format!(": {}", text::escape(&decision.reason)));
            }
            writeln!(out, "{line}")?;
            if !decision.restart_needed.is_empty() {
                writeln!(
                    out,
                    "restart the agent for these settings to take effect: {}",
                    text::escape(&decision.restart_needed.join(", "))
                )?;
            }
            Ok(())
        }
    })
}

fn status(cli: &Cli) -> Result<(), CliError> {
    let status = ask_agent(cli, |client| async move {
        client.ask(proto::BundleStatusRequest {}).await
    })?;
    let columns: Vec<String> = [
        "name",
        "kind",
        "version",
        "previous",
        "in_force",
        "applied_at",
        "signer",
        "expires",
        "note",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let rows: Vec<Vec<Value>> = status
        .bundles
        .iter()
        .map(|bundle| {
            vec![
                bundle.name.clone().into(),
                bundle.kind.clone().into(),
                bundle.version.into(),
                bundle.previous.into(),
                bundle.in_force.into(),
                text::format_time_ms(bundle.applied_at_ms).into(),
                bundle.signer.clone().into(),
                bundle.expires.clone().into(),
                bundle.note.clone().into(),
            ]
        })
        .collect();
    let license = status.license.clone().unwrap_or_default();
    print_or_fail(|out| match cli.format {
        Format::Json => {
            let bundles: Vec<Value> = rows
                .iter()
                .map(|row| {
                    Value::Object(columns.iter().cloned().zip(row.iter().cloned()).collect())
                })
                .collect();
            let keys: Vec<Value> = status
                .keys
                .iter()
                .map(|key| json!({"key_id": key.key_id, "role": key.role, "source": key.source}))
                .collect();
            let report = json!({
                "bundles": bundles,
                "keys": keys,
                "revoked": status.revoked,
                "problems": status.problems,
                "license": {
                    "standing": license.standing,
                    "in_force": license.in_force,
                    "tier": license.tier,
                    "site": license.site,
                    "features": license.features,
                    "expires": license.expires,
                },
                "restart_needed": status.restart_needed,
                "pending": status.pending,
            });
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        }
        Format::Csv => records::print(&columns, &rows, cli.style(), out),
        Format::Table => {
            if rows.is_empty() {
                writeln!(
                    out,
                    "no bundle applied: the agent runs its built-in rules and local configuration"
                )?;
            } else {
                records::print(&columns, &rows, cli.style(), out)?;
            }
            writeln!(out)?;
            writeln!(out, "license: {}", text::escape(&license.standing))?;
            if !license.features.is_empty() {
                writeln!(
                    out,
                    "  tier {}, features: {}",
                    text::escape(&license.tier),
                    text::escape(&license.features.join(", "))
                )?;
            }
            if status.keys.is_empty() {
                writeln!(out, "trusted keys: none (every bundle will be refused)")?;
            } else {
                writeln!(out, "trusted keys:")?;
                for key in &status.keys {
                    writeln!(
                        out,
                        "  {} {} ({})",
                        text::escape(&key.key_id),
                        text::escape(&key.role),
                        text::escape(&key.source)
                    )?;
                }
            }
            if !status.revoked.is_empty() {
                writeln!(
                    out,
                    "revoked keys: {}",
                    text::escape(&status.revoked.join(", "))
                )?;
            }
            for pending in &status.pending {
                writeln!(out, "waiting in the inbox: {}", text::escape(pending))?;
            }
            if !status.restart_needed.is_empty() {
                writeln!(
                    out,
                    "restart the agent for these settings to take effect: {}",
                    text::escape(&status.restart_needed.join(", "))
                )?;
            }
            Ok(())
        }
    })?;
    for problem in &status.problems {
        eprintln!("daemoneye-cli: {}", text::escape(problem));
    }
    match status.problems.len() {
        0 => Ok(()),
        n => Err(CliError::Findings(Some(format!(
            "{n} bundle problem{}",
            if n == 1 { "" } else { "s" }
        )))),
    }
}

fn history(cli: &Cli) -> Result<(), CliError> {
    let mut entries: Vec<proto::BundleDecision> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = proto::Page {
            cursor: cursor.clone(),
            max: HISTORY_PAGE,
        };
        let answer = ask_agent(cli, |client| async move {
            client
                .ask(proto::BundleHistoryRequest { page: Some(page) })
                .await
        })?;
        entries.extend(answer.entries);
        if answer.next_cursor.is_empty() || entries.len() >= HISTORY_MAX {
            break;
        }
        cursor = answer.next_cursor;
    }
    entries.truncate(HISTORY_MAX);
    let columns: Vec<String> = [
        "at", "action", "name", "version", "kind", "source", "step", "reason", "sha256",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    print_or_fail(|out| match cli.format {
        Format::Json => {
            let all: Vec<Value> = entries.iter().map(decision_json).collect();
            serde_json::to_writer_pretty(&mut *out, &all)?;
            writeln!(out)
        }
        Format::Csv | Format::Table => {
            let rows: Vec<Vec<Value>> = entries
                .iter()
                .map(|entry| {
                    let version = match (entry.from_version, entry.version) {
                        (Some(from), Some(to)) => Value::from(format!("{from} -> {to}")),
                        (None, Some(version)) => version.into(),
                        _ => Value::Null,
                    };
                    vec![
                        text::format_time_ms(entry.at_ms).into(),
                        action_name(entry.action()).into(),
                        entry.name.clone().into(),
                        version,
                        entry.kind.clone().into(),
                        entry.source.clone().into(),
                        entry.step.clone().into(),
                        entry.reason.clone().into(),
                        entry.sha256.clone().into(),
                    ]
                })
                .collect();
            records::print(&columns, &rows, cli.style(), out)
        }
    })
}
