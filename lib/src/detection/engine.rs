//! One evaluation: load a scan into the sandbox once, run every rule over it.
//!
//! Each rule runs under its own time budget; a rule that is stopped or fails is reported (the
//! caller marks it degraded and raises [`alerts::degraded`]) and the next rule runs as if
//! nothing happened.

use std::collections::BTreeSet;
use std::time::Duration;

use super::alerts::{self, AlertContext};
use super::precheck::CheckedSql;
use super::rules::Rule;
use super::sandbox::{Dataset, Limits, QueryError, QueryResult, Sandbox, SandboxError};
use super::schema::Table;
use crate::alert::Alert;

/// What one rule did on one scan.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRun {
    /// Index into [`Engine::rules`].
    pub rule: usize,
    /// Its rows, or why there are none.
    pub outcome: Result<QueryResult, QueryError>,
    /// Time it took.
    pub elapsed: Duration,
}

/// The rules and the sandbox they run in.
#[derive(Debug)]
pub struct Engine {
    sandbox: Sandbox,
    rules: Vec<Rule>,
}

impl Engine {
    /// An engine for `rules`.
    pub fn new(rules: Vec<Rule>, limits: Limits) -> Result<Self, SandboxError> {
        Ok(Self {
            sandbox: Sandbox::new(limits)?,
            rules,
        })
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The tables the rules that run on scans read: the caller loads only these.
    pub fn tables_needed(&self) -> BTreeSet<Table> {
        self.tables_read_by(|rule| rule.on.scans())
    }

    /// The tables the rules that run on exec events read.
    pub fn exec_tables_needed(&self) -> BTreeSet<Table> {
        self.tables_read_by(|rule| rule.on.exec())
    }

    fn tables_read_by(&self, runs: impl Fn(&Rule) -> bool) -> BTreeSet<Table> {
        self.rules
            .iter()
            .filter(|rule| runs(rule))
            .flat_map(|rule| rule.sql.tables().iter().copied())
            .collect()
    }

    /// Whether any rule runs on exec events.
    pub fn runs_on_exec(&self) -> bool {
        self.rules.iter().any(|rule| rule.on.exec())
    }

    /// Loads `data` (a scan), then runs every rule that runs on scans.
    pub fn evaluate(&mut self, data: &Dataset<'_>) -> Result<Vec<RuleRun>, SandboxError> {
        self.evaluate_where(data, |rule| rule.on.scans())
    }

    /// Loads `data` (a micro-batch of exec events), then runs every rule that runs on them.
    pub fn evaluate_exec(&mut self, data: &Dataset<'_>) -> Result<Vec<RuleRun>, SandboxError> {
        self.evaluate_where(data, |rule| rule.on.exec())
    }

    fn evaluate_where(
        &mut self,
        data: &Dataset<'_>,
        runs: impl Fn(&Rule) -> bool,
    ) -> Result<Vec<RuleRun>, SandboxError> {
        self.sandbox.load(data)?;
        Ok(self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| runs(rule))
            .map(|(index, rule)| {
                let started = std::time::Instant::now();
                let outcome = self.sandbox.run(&rule.sql);
                RuleRun {
                    rule: index,
                    outcome,
                    elapsed: started.elapsed(),
                }
            })
            .collect())
    }

    /// Runs an ad-hoc query over the data last loaded.
    pub fn query(&self, sql: &CheckedSql) -> Result<QueryResult, QueryError> {
        self.sandbox.run(sql)
    }

    /// Loads `data` (for an ad-hoc query).
    pub fn load(&mut self, data: &Dataset<'_>) -> Result<(), SandboxError> {
        self.sandbox.load(data)
    }

    /// The alert candidates of `runs`: the rules' matches, and one degraded-rule alert per rule
    /// that did not finish.
    pub fn alerts(&self, runs: &[RuleRun], ctx: &AlertContext<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        for run in runs {
            let Some(rule) = self.rules.get(run.rule) else {
                continue;
            };
            match &run.outcome {
                Ok(result) => out.extend(alerts::candidates(rule, result, ctx)),
                Err(err) => out.push(alerts::degraded(rule, &err.to_string(), ctx)),
            }
        }
        out
    }
}
