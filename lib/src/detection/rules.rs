//! Rule files: TOML with one or more `[[rule]]` tables (INTERFACE.md, "Rules").
//!
//! Loading never stops at a bad rule: [`parse`] returns the good rules and one [`Diagnostic`]
//! per problem (file, rule id, reason), and the agent runs the good ones. A rule is good when
//! its fields are well formed, its SQL passes the parser's checks *and* prepares in the sandbox
//! (so an unknown column is caught at load time, not at the first scan), its dedup key names
//! columns of its result, and its fixtures name real tables and columns.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::precheck::{self, CheckedSql};
use super::sandbox::{Cell, Limits, QueryError, Row, Sandbox, SandboxError};
use super::schema::Table;
use crate::alert::Severity;
pub use crate::ids::RuleId;
use crate::text;

mod files;
pub use files::load_paths;

/// The largest rule file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Rules in one file.
pub const MAX_RULES_PER_FILE: usize = 1000;
/// Fixture rows in one fixture, all tables together.
pub const MAX_FIXTURE_ROWS: usize = 10_000;

/// How repeats of a rule's alert are folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// Result columns whose values identify "the same" alert; empty means every column.
    pub key: Vec<String>,
    /// How long repeats are folded; `None` means `detection.dedup_window`.
    pub window: Option<Duration>,
}

/// What a rule runs on: every scan, the kernel's exec events as they arrive, or both.
///
/// On exec events `processes` (and the `process_creation` view) holds only the processes that
/// just executed, in micro-batches: a rule that looks at one process at a time (its path, its
/// command line, its parent's) means the same on both, while a rule that compares processes
/// with each other, counts them or looks for one that is absent means something else on a
/// micro-batch. So the default is `scan`, and a rule says `on = "both"` (or `"exec"`) when it
/// judges each process on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunsOn {
    /// Every scan (the default).
    #[default]
    Scan,
    /// Exec events only.
    Exec,
    /// Scans and exec events.
    Both,
}

impl RunsOn {
    /// Whether the rule runs on scans.
    pub fn scans(self) -> bool {
        matches!(self, Self::Scan | Self::Both)
    }

    /// Whether the rule runs on exec events.
    pub fn exec(self) -> bool {
        matches!(self, Self::Exec | Self::Both)
    }

    /// The value as rule files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Exec => "exec",
            Self::Both => "both",
        }
    }
}

impl std::str::FromStr for RunsOn {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "scan" => Ok(Self::Scan),
            "exec" => Ok(Self::Exec),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "invalid on {}: expected scan, exec or both",
                text::quoted(other)
            )),
        }
    }
}

/// A fixture: rows to load, and how many rows the rule must return over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    /// What the fixture exercises, if the author said.
    pub name: Option<String>,
    /// Rows per table.
    pub tables: Vec<(Table, Vec<Row>)>,
    /// Rows the rule must return.
    pub expect_rows: u64,
}

impl Fixture {
    /// The fixture's name, or its position.
    pub fn label(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("fixture {}", index + 1))
    }
}

/// A rule that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Stable, unique id.
    pub id: RuleId,
    /// Name for humans.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    /// What it detects and why.
    pub description: String,
    /// The query.
    pub sql: CheckedSql,
    /// The query's result columns.
    pub columns: Vec<String>,
    /// How repeats are folded.
    pub dedup: Dedup,
    /// Whether it runs on scans, on exec events or both.
    pub on: RunsOn,
    /// Fixtures.
    pub tests: Vec<Fixture>,
    /// Where it came from (a file path, or `builtin:<file>`).
    pub source: String,
}

/// A problem with one rule, or with a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or `builtin:<file>`), as named.
    pub source: String,
    /// The rule's id as the file gives it (perhaps not a valid id), when it got that far.
    pub rule_id: Option<String>,
    /// What is wrong, on one line, with what it quotes from the file escaped.
    pub reason: String,
}

/// `source: rule_id: reason`, with the source and the id escaped (`crate::text`).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule_id {
            Some(id) => write!(
                f,
                "{}: {}: {}",
                text::escape(&self.source),
                text::escape(id),
                self.reason
            ),
            None => write!(f, "{}: {}", text::escape(&self.source), self.reason),
        }
    }
}

/// Good rules and the problems found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rules that passed every check, in file order.
    pub rules: Vec<Rule>,
    /// One line per problem.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Adds `more`; a rule whose id is already loaded is dropped with a diagnostic.
    pub fn extend(&mut self, more: Loaded) {
        let mut seen: HashSet<RuleId> = self.rules.iter().map(|rule| rule.id.clone()).collect();
        for rule in more.rules {
            if seen.insert(rule.id.clone()) {
                self.rules.push(rule);
            } else {
                self.diagnostics.push(Diagnostic {
                    source: rule.source.clone(),
                    rule_id: Some(rule.id.to_string()),
                    reason: "duplicate rule id; the first one loaded is kept".to_owned(),
                });
            }
        }
        self.diagnostics.extend(more.diagnostics);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    name: String,
    severity: String,
    #[serde(default)]
    mitre: Vec<String>,
    #[serde(default)]
    description: String,
    sql: String,
    dedup: Option<RawDedup>,
    on: Option<String>,
    #[serde(default)]
    test: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedup {
    #[serde(default)]
    key: Vec<String>,
    window: Option<String>,
}

/// Parses and checks the rule file `text`, naming it `source` in diagnostics. `sandbox` is an
/// empty sandbox used to prepare each rule's SQL.
pub fn parse(source: &str, text: &str, sandbox: &Sandbox) -> Loaded {
    let mut loaded = Loaded::default();
    let whole_file = |reason: String| Diagnostic {
        source: source.to_owned(),
        rule_id: None,
        reason,
    };
    let document: toml::Table = match toml::from_str(text) {
        Ok(document) => document,
        Err(err) => {
            loaded.diagnostics.push(whole_file(toml_error(text, &err)));
            return loaded;
        }
    };
    for key in document.keys().filter(|key| key.as_str() != "rule") {
        loaded.diagnostics.push(whole_file(format!(
            "unknown top-level key {}: rule files hold [[rule]] tables",
            text::quoted(key)
        )));
    }
    let entries = match document.get("rule") {
        None => {
            loaded
                .diagnostics
                .push(whole_file("no [[rule]] table in the file".to_owned()));
            return loaded;
        }
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => {
            loaded.diagnostics.push(whole_file(
                "\"rule\" must be an array of tables: write [[rule]]".to_owned(),
            ));
            return loaded;
        }
    };
    if entries.len() > MAX_RULES_PER_FILE {
        loaded.diagnostics.push(whole_file(format!(
            "{} rules in one file, more than the {MAX_RULES_PER_FILE} allowed",
            entries.len()
        )));
        return loaded;
    }
    let mut ids = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let id_hint = entry
            .get("id")
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("rule #{}", index + 1));
        match check_rule(source, entry, sandbox) {
            Ok(rule) if !ids.insert(rule.id.clone()) => loaded.diagnostics.push(Diagnostic {
                source: source.to_owned(),
                rule_id: Some(id_hint),
                reason: "duplicate rule id in this file; the first one is kept".to_owned(),
            }),
            Ok(rule) => loaded.rules.push(rule),
            Err(reason) => loaded.diagnostics.push(Diagnostic {
                source: source.to_owned(),
                rule_id: Some(id_hint),
                reason,
            }),
        }
    }
    loaded
}

/// A toml error as one line with its position.
fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = text::escape(err.message()).into_owned();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
    }
}

fn check_rule(source: &str, entry: &toml::Value, sandbox: &Sandbox) -> Result<Rule, String> {
    let raw: RawRule = entry
        .clone()
        .try_into()
        .map_err(|err: toml::de::Error| text::escape(err.message()).into_owned())?;
    let id = RuleId::parse(&raw.id).map_err(|err| err.to_string())?;
    let name = raw.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err("name must be 1 to 200 characters".to_owned());
    }
    let severity: Severity = raw.severity.parse()?;
    let on: RunsOn = raw.on.as_deref().map_or(Ok(RunsOn::Scan), str::parse)?;
    for technique in &raw.mitre {
        if !is_attack_id(technique) {
            return Err(format!(
                "invalid MITRE ATT&CK id {}: expected Tnnnn or Tnnnn.nnn",
                text::quoted(technique)
            ));
        }
    }
    let sql = precheck::check(&raw.sql).map_err(|refusal| format!("sql refused: {refusal}"))?;
    let columns = sandbox.columns(&sql).map_err(|err| match err {
        QueryError::Failed(reason) | QueryError::Denied(reason) => format!("sql: {reason}"),
        other => format!("sql: {other}"),
    })?;
    let mut seen = HashSet::new();
    if let Some(duplicate) = columns.iter().find(|column| !seen.insert(column.as_str())) {
        return Err(format!(
            "the result has two columns named {duplicate:?}; alias one of them"
        ));
    }
    let dedup = match raw.dedup {
        None => Dedup {
            key: Vec::new(),
            window: None,
        },
        Some(dedup) => {
            if let Some(missing) = dedup.key.iter().find(|key| !columns.contains(key)) {
                return Err(format!(
                    "dedup key {} is not a column of the result ({})",
                    text::quoted(missing),
                    columns.join(", ")
                ));
            }
            let window = match dedup.window {
                None => None,
                Some(text) => match humantime::parse_duration(&text) {
                    Ok(window) if !window.is_zero() => Some(window),
                    Ok(_) => return Err("dedup window must be greater than zero".to_owned()),
                    Err(err) => {
                        return Err(format!(
                            "invalid dedup window {}: {err}",
                            text::quoted(&text)
                        ));
                    }
                },
            };
            Dedup {
                key: dedup.key,
                window,
            }
        }
    };
    let tests = raw
        .test
        .iter()
        .enumerate()
        .map(|(index, table)| {
            parse_fixture(table).map_err(|reason| format!("test #{}: {reason}", index + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        id,
        name,
        severity,
        mitre: raw.mitre,
        description: raw.description.trim().to_owned(),
        sql,
        columns,
        dedup,
        on,
        tests,
        source: source.to_owned(),
    })
}

/// `Tnnnn` or `Tnnnn.nnn`.
fn is_attack_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('T') else {
        return false;
    };
    let (technique, sub) = match rest.split_once('.') {
        Some((technique, sub)) => (technique, Some(sub)),
        None => (rest, None),
    };
    let digits = |part: &str, n: usize| part.len() == n && part.bytes().all(|b| b.is_ascii_digit());
    digits(technique, 4) && sub.is_none_or(|sub| digits(sub, 3))
}

fn parse_fixture(table: &toml::Table) -> Result<Fixture, String> {
    let mut fixture = Fixture {
        name: None,
        tables: Vec::new(),
        expect_rows: 0,
    };
    let mut expect = None;
    let mut total_rows = 0usize;
    for (key, value) in table {
        match (key.as_str(), value) {
            ("name", toml::Value::String(name)) => {
                fixture.name = Some(text::escape(name).into_owned())
            }
            ("name", _) => return Err("name must be a string".to_owned()),
            ("expect_rows", toml::Value::Integer(count)) => {
                expect = Some(
                    u64::try_from(*count)
                        .map_err(|_| format!("expect_rows must not be negative, not {count}"))?,
                );
            }
            ("expect_rows", _) => return Err("expect_rows must be an integer".to_owned()),
            (name, value) => {
                let table = Table::from_name(name)
                    .filter(|table| table.is_table())
                    .ok_or_else(|| {
                        format!(
                            "unknown key {}: expected name, expect_rows or a table \
                             (processes, process_snapshots, process_events, scans, alerts, users)",
                            text::quoted(name)
                        )
                    })?;
                let toml::Value::Array(rows) = value else {
                    return Err(format!("{name} must be an array of tables"));
                };
                total_rows += rows.len();
                if total_rows > MAX_FIXTURE_ROWS {
                    return Err(format!("more than {MAX_FIXTURE_ROWS} rows in one fixture"));
                }
                let rows = rows
                    .iter()
                    .map(|row| fixture_row(table, row))
                    .collect::<Result<Vec<_>, _>>()?;
                fixture.tables.push((table, rows));
            }
        }
    }
    fixture.expect_rows = expect.ok_or("expect_rows is missing")?;
    Ok(fixture)
}

fn fixture_row(table: Table, value: &toml::Value) -> Result<Row, String> {
    let toml::Value::Table(fields) = value else {
        return Err(format!("{} rows must be tables", table.name()));
    };
    let columns = table.columns();
    let mut row = Row::new();
    for (column, value) in fields {
        if !columns.contains(&column.as_str()) {
            return Err(format!(
                "{} has no column {}",
                table.name(),
                text::quoted(column)
            ));
        }
        let cell = match value {
            toml::Value::Integer(value) => Cell::Integer(*value),
            toml::Value::Float(value) => Cell::Real(*value),
            toml::Value::String(value) => Cell::Text(value.clone()),
            _ => {
                return Err(format!(
                    "{}.{column}: values are integers, floats or strings (write 0 or 1 for a \
                     flag)",
                    table.name()
                ));
            }
        };
        row.insert(column.clone(), cell);
    }
    Ok(row)
}

/// What one fixture did.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureOutcome {
    /// The fixture's label.
    pub label: String,
    /// Rows it had to return.
    pub expected: u64,
    /// Rows it returned, or why it could not run.
    pub got: Result<u64, String>,
}

impl FixtureOutcome {
    /// Whether the rule returned the expected number of rows.
    pub fn passed(&self) -> bool {
        self.got.as_ref().is_ok_and(|got| *got == self.expected)
    }
}

/// Runs each of `rule`'s fixtures in `sandbox`, which is reused: before each fixture every
/// table is emptied and the fixture's rows loaded, so a fixture sees exactly what a fresh
/// sandbox would show it (queries cannot write: the sandbox's authorizer allows reads only).
/// A thousand rules cost a thousand table reloads instead of a thousand SQLite set-ups.
pub fn run_fixtures_in(rule: &Rule, sandbox: &mut Sandbox) -> Vec<FixtureOutcome> {
    rule.tests
        .iter()
        .enumerate()
        .map(|(index, fixture)| run_fixture(rule, index, fixture, sandbox))
        .collect()
}

/// Runs each of `rule`'s fixtures in a fresh sandbox.
pub fn run_fixtures(rule: &Rule, limits: Limits) -> Result<Vec<FixtureOutcome>, SandboxError> {
    let mut outcomes = Vec::with_capacity(rule.tests.len());
    for (index, fixture) in rule.tests.iter().enumerate() {
        let mut sandbox = Sandbox::new(limits)?;
        outcomes.push(run_fixture(rule, index, fixture, &mut sandbox));
    }
    Ok(outcomes)
}

/// One fixture in `sandbox`: the tables it does not name emptied, its rows loaded, the rule run.
fn run_fixture(
    rule: &Rule,
    index: usize,
    fixture: &Fixture,
    sandbox: &mut Sandbox,
) -> FixtureOutcome {
    let loaded = Table::ALL
        .iter()
        .filter(|table| {
            table.is_table() && !fixture.tables.iter().any(|(named, _)| named == *table)
        })
        .try_for_each(|table| sandbox.load_rows(*table, &[]))
        .and_then(|()| {
            fixture
                .tables
                .iter()
                .try_for_each(|(table, rows)| sandbox.load_rows(*table, rows))
        });
    let got = match loaded {
        Err(reason) => Err(format!("loading the fixture: {reason}")),
        Ok(()) => sandbox
            .run(&rule.sql)
            .map(|result| result.rows.len() as u64)
            .map_err(|err| err.to_string()),
    };
    FixtureOutcome {
        label: fixture.label(index),
        expected: fixture.expect_rows,
        got,
    }
}

#[cfg(test)]
mod tests;
