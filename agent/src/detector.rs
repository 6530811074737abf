//! The rule set the agent runs: the rules, the sandbox they run in, and the problems found
//! loading them. A [`Detector`] is replaced whole (a rule bundle applied at run time): the
//! pipeline swaps it between two scans, so a scan runs entirely on one set.

use anyhow::Context;
use daemoneye_lib::config::Config;
use daemoneye_lib::detection::engine::{Engine, RuleRun};
use daemoneye_lib::detection::rules::{self, Diagnostic, Loaded, Rule};
use daemoneye_lib::detection::sandbox::{Dataset, Limits, Sandbox, SandboxError};
use daemoneye_lib::detection::schema::Table;

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The limits of the SQL sandbox, from `[detection]`.
pub fn limits(config: &Config) -> Limits {
    Limits {
        timeout: config.detection.rule_timeout.get(),
        max_rows: usize::try_from(config.detection.max_rows).unwrap_or(usize::MAX),
        max_memory: config.detection.max_memory,
    }
}

/// Loads the built-in pack (unless disabled) and the configured rule files.
pub fn load_rules(config: &Config, limits: Limits) -> anyhow::Result<Loaded> {
    let sandbox = Sandbox::new(limits).context("setting up the SQL sandbox")?;
    let mut loaded = Loaded::default();
    if config.detection.builtin_rules {
        for (name, text) in BUILTIN_RULE_FILES {
            loaded.extend(rules::parse(&format!("builtin:{name}"), text, &sandbox));
        }
    }
    loaded.extend(rules::load_paths(&config.detection.rules, &sandbox));
    Ok(loaded)
}

/// A rule set and its sandbox.
#[derive(Debug)]
pub struct Detector {
    engine: Engine,
    diagnostics: Vec<Diagnostic>,
    /// Where the set came from, for logs and `rules list` ("configuration", a bundle name).
    origin: String,
}

impl Detector {
    /// The rules `config` names (built-in pack and rule files).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let limits = limits(config);
        Self::new(load_rules(config, limits)?, limits, "configuration")
    }

    /// A detector for rules already loaded.
    pub fn new(loaded: Loaded, limits: Limits, origin: &str) -> anyhow::Result<Self> {
        let engine = Engine::new(loaded.rules, limits).context("setting up the SQL sandbox")?;
        Ok(Self {
            engine,
            diagnostics: loaded.diagnostics,
            origin: origin.to_owned(),
        })
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        self.engine.rules()
    }

    /// Problems found loading the rules.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Where the set came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tables some rule reads.
    pub fn tables_needed(&self) -> std::collections::BTreeSet<Table> {
        self.engine.tables_needed()
    }

    /// Loads `data` and runs every rule over it.
    pub fn evaluate(&mut self, data: &Dataset<'_>) -> Result<Vec<RuleRun>, SandboxError> {
        self.engine.evaluate(data)
    }

    /// The engine, for turning runs into alerts.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_rule_loads_and_its_fixtures_pass() {
        let config = Config::default();
        let loaded = load_rules(&config, limits(&config)).unwrap();
        assert!(
            loaded.diagnostics.is_empty(),
            "{:?}",
            loaded
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        assert!(loaded.rules.len() >= 15, "{} rules", loaded.rules.len());
        for rule in &loaded.rules {
            assert!(!rule.mitre.is_empty(), "{}: no ATT&CK id", rule.id);
            let outcomes = rules::run_fixtures(rule, limits(&config)).unwrap();
            let matching = rule
                .tests
                .iter()
                .filter(|test| test.expect_rows > 0)
                .count();
            assert!(matching >= 1, "{}: no fixture that must match", rule.id);
            assert!(
                rule.tests.len() > matching,
                "{}: no fixture that must not match",
                rule.id
            );
            for outcome in outcomes {
                assert!(outcome.passed(), "{}: {outcome:?}", rule.id);
            }
        }
    }
}
