//! `daemoneye-cli outbox status` and `alerts send-test`: the persistent alert outbox, per
//! sink, and a test alert through it.

use std::io::Write as _;

use clap::Subcommand;
use daemoneye_lib::ipc::proto;
use daemoneye_lib::text;
use serde_json::Value;

use crate::error::CliError;
use crate::records;
use crate::{Cli, Format, ask_agent, ask_agent_within, print_or_fail};

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Per sink: state, pending deliveries and the oldest one's age, the last error, the
    /// circuit breaker, and what was delivered, retried, dropped and dead-lettered. Exits 1
    /// when a sink is not running or not configured, its breaker is not closed, its head is
    /// failing, or it dropped alerts since the agent started.
    Status,
}

pub fn run(cli: &Cli, command: &OutboxCommand) -> Result<(), CliError> {
    match command {
        OutboxCommand::Status => status(cli),
    }
}

/// `12m` style age of `ms` milliseconds.
fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn status(cli: &Cli) -> Result<(), CliError> {
    let status = ask_agent(cli, |client| async move {
        client.ask(proto::OutboxStatusRequest {}).await
    })?;
    let now = status.now_ms;
    let columns: Vec<String> = [
        "sink",
        "type",
        "state",
        "breaker",
        "pending",
        "oldest",
        "delivered",
        "retried",
        "dropped",
        "dead_lettered",
        "last_error",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let rows: Vec<Vec<Value>> = status
        .sinks
        .iter()
        .map(|sink| {
            let state = if sink.state_reason.is_empty() {
                sink.state.clone()
            } else {
                format!("{}: {}", sink.state, sink.state_reason)
            };
            let breaker = match sink.breaker_until_ms {
                Some(until) => format!("{} ({} left)", sink.breaker, age(until - now)),
                None => sink.breaker.clone(),
            };
            let mut last_error = sink.last_error.clone().unwrap_or_default();
            if let Some(next) = sink.next_attempt_ms {
                last_error = format!(
                    "{last_error} (attempt {}, next in {})",
                    sink.head_attempts + 1,
                    age(next - now)
                );
            }
            vec![
                sink.name.clone().into(),
                sink.kind.clone().into(),
                state.into(),
                breaker.into(),
                sink.pending.into(),
                sink.oldest_pending_ms
                    .map_or(Value::Null, |oldest| age(now - oldest).into()),
                sink.delivered.into(),
                sink.retried.into(),
                sink.dropped.into(),
                sink.dead_lettered.into(),
                last_error.into(),
            ]
        })
        .collect();
    print_or_fail(|out| match cli.format {
        Format::Json => {
            let sinks: Vec<Value> = status
                .sinks
                .iter()
                .map(|sink| {
                    serde_json::json!({
                        "sink": sink.name,
                        "type": sink.kind,
                        "state": sink.state,
                        "state_reason": sink.state_reason,
                        "breaker": sink.breaker,
                        "breaker_until": sink.breaker_until_ms.map(text::format_time_ms),
                        "pending": sink.pending,
                        "pending_bytes": sink.pending_bytes,
                        "oldest_pending": sink.oldest_pending_ms.map(text::format_time_ms),
                        "oldest_pending_age_ms": sink.oldest_pending_ms.map(|oldest| (now - oldest).max(0)),
                        "head_attempts": sink.head_attempts,
                        "next_attempt": sink.next_attempt_ms.map(text::format_time_ms),
                        "last_error": sink.last_error,
                        "last_delivered": sink.last_delivered_ms.map(text::format_time_ms),
                        "enqueued": sink.enqueued,
                        "delivered": sink.delivered,
                        "retried": sink.retried,
                        "dropped": sink.dropped,
                        "dead_lettered": sink.dead_lettered,
                        "dead_letters": sink.dead_letters,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &sinks)?;
            writeln!(out)
        }
        _ => records::print(&columns, &rows, cli.style(), out),
    })?;
    let troubled: Vec<&str> = status
        .sinks
        .iter()
        .filter(|sink| {
            // A sink no longer configured only counts while it holds deliveries.
            (sink.state != "running" && !(sink.kind.is_empty() && sink.pending == 0))
                || sink.breaker != "closed"
                || sink.head_attempts > 0
                || sink.dropped_since_start > 0
        })
        .map(|sink| sink.name.as_str())
        .collect();
    if troubled.is_empty() {
        Ok(())
    } else {
        Err(CliError::Findings(Some(format!(
            "not every sink delivers: {}",
            troubled.join(", ")
        ))))
    }
}

/// `alerts send-test [--sink NAME] [--wait SECONDS]`: exits 0 when every sink delivered the
/// test alert within the wait, 1 when one did not (its reason printed).
pub fn send_test(cli: &Cli, sink: Option<&str>, wait_secs: u32) -> Result<(), CliError> {
    let request = proto::SendTestRequest {
        sink: sink.map(ToOwned::to_owned),
        wait_ms: wait_secs.saturating_mul(1000),
    };
    // The agent answers once the deliveries are done or the wait is over.
    let within = std::time::Duration::from_secs(u64::from(wait_secs.min(120)) + 30);
    let result = ask_agent_within(
        cli,
        within,
        |client| async move { client.ask(request).await },
    )?;
    print_or_fail(|out| {
        if cli.format == Format::Json {
            let sinks: Vec<Value> = result
                .sinks
                .iter()
                .map(|sink| {
                    serde_json::json!({"sink": sink.name, "delivered": sink.delivered, "detail": sink.detail})
                })
                .collect();
            serde_json::to_writer_pretty(
                &mut *out,
                &serde_json::json!({"alert_id": result.alert_id, "sinks": sinks}),
            )?;
            return writeln!(out);
        }
        writeln!(out, "test alert {}", text::escape(&result.alert_id))?;
        for sink in &result.sinks {
            if sink.delivered {
                writeln!(out, "  {}: delivered", text::escape(&sink.name))?;
            } else {
                writeln!(
                    out,
                    "  {}: not delivered yet: {}",
                    text::escape(&sink.name),
                    text::escape(&sink.detail)
                )?;
            }
        }
        Ok(())
    })?;
    if result.sinks.iter().all(|sink| sink.delivered) {
        Ok(())
    } else {
        Err(CliError::Findings(Some(
            "the test alert did not reach every sink in time".to_owned(),
        )))
    }
}
