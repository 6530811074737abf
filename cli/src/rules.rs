//! `daemoneye-cli rules`: `list` asks the agent; `validate` and `test` work offline on files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use daemoneye_lib::detection::rules::{self, Loaded};
use daemoneye_lib::detection::sandbox::{Limits, Sandbox};
use daemoneye_lib::text;
use serde_json::{Value, json};

use crate::records;
use crate::{Cli, Format, ask_agent, print_or_fail};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// The agent's loaded rules: source, health (ok, degraded, disabled), runs.
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

pub fn run(cli: &Cli, command: &RulesCommand) -> ExitCode {
    match command {
        RulesCommand::List => list(cli),
        RulesCommand::Validate { files } => match load(files) {
            Ok(loaded) => validate(cli, &loaded),
            Err(code) => code,
        },
        RulesCommand::Test { files } => match load(files) {
            Ok(loaded) => test(cli, &loaded),
            Err(code) => code,
        },
    }
}

fn load(files: &[PathBuf]) -> Result<Loaded, ExitCode> {
    let sandbox = Sandbox::new(Limits::default()).map_err(|err| {
        eprintln!("daemoneye-cli: {err}");
        ExitCode::from(1)
    })?;
    Ok(rules::load_paths(files, &sandbox))
}

fn validate(cli: &Cli, loaded: &Loaded) -> ExitCode {
    let printed = print_or_fail(|out| match cli.format {
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
                Format::Csv,
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
    });
    if let Err(code) = printed {
        return code;
    }
    if !cli.quiet && cli.format == Format::Table {
        eprintln!(
            "{} rules valid, {} problems",
            loaded.rules.len(),
            loaded.diagnostics.len()
        );
    }
    if loaded.diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn test(cli: &Cli, loaded: &Loaded) -> ExitCode {
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
        let outcomes = match rules::run_fixtures(rule, Limits::default()) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                eprintln!("daemoneye-cli: {err}");
                return ExitCode::from(1);
            }
        };
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
    if let Err(code) = print_or_fail(|out| records::print(&columns, &rows, cli.format, out)) {
        return code;
    }
    if !cli.quiet && cli.format == Format::Table {
        let fixtures = rows
            .iter()
            .filter(|row| row[0] == "pass" || row[0] == "fail")
            .count();
        eprintln!(
            "{} rules, {fixtures} fixtures, {failed} failed",
            loaded.rules.len()
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn list(cli: &Cli) -> ExitCode {
    let list = match ask_agent(cli, |mut client| async move { client.rules().await }) {
        Ok(list) => list,
        Err(code) => return code,
    };
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
                rule.severity.clone().into(),
                rule.mitre.join(",").into(),
                rule.source.clone().into(),
                rule.status.clone().into(),
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
    print_or_fail(|out| records::print(&columns, &rows, cli.format, out))
        .err()
        .unwrap_or(ExitCode::SUCCESS)
}
