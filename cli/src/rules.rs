//! `daemoneye-cli rules`: `list` asks the agent; `validate` and `test` work offline on files.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use daemoneye_lib::detection::rules::{self, Loaded};
use daemoneye_lib::detection::sandbox::{Limits, Sandbox};
use daemoneye_lib::ipc::{convert, proto};
use daemoneye_lib::text;
use serde_json::{Value, json};

use crate::error::CliError;
use crate::records;
use crate::{Cli, Format, ask_agent, print_or_fail};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// The agent's loaded rules: source, health (ok, degraded, disabled), runs. Exits 1 when
    /// a configured rule did not load (each is named on stderr).
    List,
    /// Parse and check rule files (offline): one line per problem with file, rule id and
    /// reason. Exits 1 when any rule has a problem.
    Validate {
        /// Rule files or directories of *.toml files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run each rule's fixtures (offline) and report pass or fail. Exits 1 when any fixture
    /// fails or any rule does not validate.
    Test {
        /// Rule files or directories of *.toml files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cli: &Cli, command: &RulesCommand) -> Result<(), CliError> {
    match command {
        RulesCommand::List => list(cli),
        RulesCommand::Validate { files } => validate(cli, &load(files)?),
        RulesCommand::Test { files } => test(cli, &load(files)?),
    }
}

fn load(files: &[PathBuf]) -> Result<Loaded, CliError> {
    let sandbox =
        Sandbox::new(Limits::default()).map_err(|err| CliError::Failed(err.to_string()))?;
    Ok(rules::load_paths(files, &sandbox))
}

/// "1 problem", "2 problems".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn validate(cli: &Cli, loaded: &Loaded) -> Result<(), CliError> {
    print_or_fail(|out| match cli.format {
        Format::Json => {
            let problems: Vec<Value> = loaded
                .diagnostics
                .iter()
                .map(|d| json!({"file": d.source, "rule_id": d.rule_id, "reason": d.reason}))
                .collect();
            let report = json!({"valid_rules": loaded.rules.len(), "problems": problems});
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        }
        Format::Csv => {
            let rows: Vec<Vec<Value>> = loaded
                .diagnostics
                .iter()
                .map(|d| {
                    vec![
                        d.source.clone().into(),
                        d.rule_id.clone().into(),
                        d.reason.clone().into(),
                    ]
                })
                .collect();
            records::print(
                &["file".into(), "rule_id".into(), "reason".into()],
                &rows,
                cli.style(),
                out,
            )
        }
        Format::Table => {
            for diagnostic in &loaded.diagnostics {
                // A diagnostic's Display escapes what came from the file.
                writeln!(out, "{diagnostic}")?;
            }
            Ok(())
        }
    })?;
    if !cli.quiet && cli.format == Format::Table {
        eprintln!(
            "{} valid, {}",
            count(loaded.rules.len(), "rule"),
            count(loaded.diagnostics.len(), "problem")
        );
    }
    if loaded.diagnostics.is_empty() {
        Ok(())
    } else {
        Err(CliError::Findings(None))
    }
}

fn test(cli: &Cli, loaded: &Loaded) -> Result<(), CliError> {
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut failed = loaded.diagnostics.len();
    for diagnostic in &loaded.diagnostics {
        rows.push(vec![
            "error".into(),
            diagnostic.rule_id.clone().into(),
            Value::Null,
            Value::Null,
            Value::Null,
            diagnostic.to_string().into(),
        ]);
    }
    for rule in &loaded.rules {
        if rule.tests.is_empty() {
            rows.push(vec![
                "none".into(),
                rule.id.to_string().into(),
                Value::Null,
                Value::Null,
                Value::Null,
                "no fixtures".into(),
            ]);
            continue;
        }
        let outcomes = rules::run_fixtures(rule, Limits::default())
            .map_err(|err| CliError::Failed(err.to_string()))?;
        for outcome in outcomes {
            let passed = outcome.passed();
            if !passed {
                failed += 1;
            }
            let (got, detail) = match &outcome.got {
                Ok(got) => (Value::from(*got), Value::Null),
                Err(reason) => (Value::Null, Value::from(reason.clone())),
            };
            rows.push(vec![
                if passed { "pass" } else { "fail" }.into(),
                rule.id.to_string().into(),
                outcome.label.clone().into(),
                outcome.expected.into(),
                got,
                detail,
            ]);
        }
    }
    let columns: Vec<String> = [
        "result",
        "rule_id",
        "fixture",
        "expected_rows",
        "rows",
        "detail",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    print_or_fail(|out| records::print(&columns, &rows, cli.style(), out))?;
    if !cli.quiet && cli.format == Format::Table {
        let fixtures = rows
            .iter()
            .filter(|row| row[0] == "pass" || row[0] == "fail")
            .count();
        eprintln!(
            "{}, {}, {failed} failed",
            count(loaded.rules.len(), "rule"),
            count(fixtures, "fixture")
        );
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::Findings(None))
    }
}

fn list(cli: &Cli) -> Result<(), CliError> {
    let list = ask_agent(cli, |client| async move {
        client.ask(daemoneye_lib::ipc::proto::RulesRequest {}).await
    })?;
    let columns: Vec<String> = [
        "id",
        "name",
        "severity",
        "mitre",
        "source",
        "status",
        "runs",
        "degraded_runs",
        "last_elapsed_us",
        "last_error",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let rows: Vec<Vec<Value>> = list
        .rules
        .iter()
        .map(|rule| {
            vec![
                rule.id.clone().into(),
                rule.name.clone().into(),
                convert::severity_from_proto(rule.severity)
                    .map_or("unknown", |severity| severity.as_str())
                    .into(),
                rule.mitre.join(",").into(),
                rule.source.clone().into(),
                rule_status(rule.status()).into(),
                rule.runs.into(),
                rule.degraded_runs.into(),
                rule.last_elapsed_us.into(),
                rule.last_error.clone().into(),
            ]
        })
        .collect();
    for problem in &list.problems {
        eprintln!("daemoneye-cli: not loaded: {}", text::escape(problem));
    }
    print_or_fail(|out| records::print(&columns, &rows, cli.style(), out))?;
    // A configured rule that did not load is a rule the site thinks it runs.
    match list.problems.len() {
        0 => Ok(()),
        n => Err(CliError::Findings(Some(format!(
            "{} of the configuration did not load",
            count(n, "rule")
        )))),
    }
}

/// The name the CLI prints for a rule's status.
fn rule_status(status: proto::RuleStatus) -> &'static str {
    match status {
        proto::RuleStatus::Ok => "ok",
        proto::RuleStatus::Degraded => "degraded",
        proto::RuleStatus::Disabled => "disabled",
        proto::RuleStatus::Unspecified => "unknown",
    }
}
