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

/// Loads the built-in pack (unless disabled) and the configured rule files: the rule set of
/// a host with no rules bundle ([`load_with_packs`] with none).
pub fn load_rules(config: &Config, limits: Limits) -> anyhow::Result<Loaded> {
    let none = daemoneye_lib::bundle::LicenseState::default();
    load_with_packs(config, limits, &[], &none, 0).map(|(loaded, _)| loaded)
}

/// A rule pack from an active rules bundle: its name, version, license feature and files.
pub use crate::bundles::ActiveRules as RulePack;

/// Whether a rule pack runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackGate {
    /// The bundle's name.
    pub name: String,
    /// `Ok` when its rules are loaded; `Err` says why not (the license).
    pub in_force: Result<(), String>,
}

/// The name of the rules bundle built from `bundles/core-rules/`: when one is active (and in
/// force), it replaces the built-in pack compiled into the agent, so that a newer core pack
/// can reach an air-gapped host without a new agent.
pub const CORE_RULES: &str = "core-rules";

/// The rules `config` names plus every rule pack whose license gate (`license.allows` at
/// `now`, in seconds) passes; the gate of each pack is returned beside the rules. A pack's
/// rules are named `bundle:NAME-VERSION/PATH`. An active `core-rules` pack takes the place of
/// the built-in pack; any other rule id loaded twice is a problem and the first one runs.
pub fn load_with_packs(
    config: &Config,
    limits: Limits,
    packs: &[RulePack],
    license: &daemoneye_lib::bundle::LicenseState,
    now: i64,
) -> anyhow::Result<(Loaded, Vec<PackGate>)> {
    let sandbox = Sandbox::new(limits).context("setting up the SQL sandbox")?;
    let core_in_force = packs.iter().any(|pack| {
        pack.name == CORE_RULES
            && pack
                .requires_license
                .as_ref()
                .is_none_or(|feature| license.allows(feature, now).is_ok())
    });
    let mut loaded = Loaded::default();
    if config.detection.builtin_rules && !core_in_force {
        for (name, text) in BUILTIN_RULE_FILES {
            loaded.extend(rules::parse(&format!("builtin:{name}"), text, &sandbox));
        }
    }
    loaded.extend(rules::load_paths(&config.detection.rules, &sandbox));
    let mut gates = Vec::with_capacity(packs.len());
    for pack in packs {
        let in_force = match &pack.requires_license {
            Some(feature) => license
                .allows(feature, now)
                .map_err(|why| format!("rule pack {} is not active: {why}", pack.name)),
            None => Ok(()),
        };
        if in_force.is_ok() {
            for (path, text) in &pack.files {
                let source = format!("bundle:{}-{}/{path}", pack.name, pack.version);
                loaded.extend(rules::parse(&source, text, &sandbox));
            }
        }
        gates.push(PackGate {
            name: pack.name.clone(),
            in_force,
        });
    }
    Ok((loaded, gates))
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

    /// The tables the rules that run on scans read.
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

    /// The engine, to evaluate exec events.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
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

    fn pack(name: &str, id: &str, requires: Option<&str>) -> RulePack {
        RulePack {
            name: name.to_owned(),
            version: 2,
            requires_license: requires.map(str::to_owned),
            files: vec![(
                "rules/r.toml".to_owned(),
                format!(
                    "[[rule]]\nid = \"{id}\"\nname = \"n\"\nseverity = \"low\"\nmitre = []\n\
                     description = \"d\"\nsql = \"SELECT pid FROM processes\"\n"
                ),
            )],
        }
    }

    fn ids(loaded: &Loaded) -> Vec<String> {
        loaded
            .rules
            .iter()
            .map(|rule| rule.id.to_string())
            .collect()
    }

    #[test]
    fn a_core_rules_pack_replaces_the_builtin_one_and_a_licensed_pack_waits_for_its_license() {
        let config = Config::default();
        let none = daemoneye_lib::bundle::LicenseState::default();
        let (builtin, _) = load_with_packs(&config, limits(&config), &[], &none, 0).unwrap();
        assert!(ids(&builtin).contains(&"DE-LNX-0001".to_owned()));

        let packs = [
            pack(CORE_RULES, "CORE-NEW-1", None),
            pack("curated", "CUR-1", Some("curated-rules")),
        ];
        let (loaded, gates) = load_with_packs(&config, limits(&config), &packs, &none, 0).unwrap();
        assert_eq!(
            ids(&loaded),
            vec!["CORE-NEW-1".to_owned()],
            "the built-in pack is replaced"
        );
        assert_eq!(loaded.rules[0].source, "bundle:core-rules-2/rules/r.toml");
        assert_eq!(gates[0].in_force, Ok(()));
        let refused = gates[1].in_force.clone().unwrap_err();
        assert_eq!(
            refused,
            "rule pack curated is not active: curated-rules needs a license: no license: free tier"
        );

        // A core-rules pack that is itself waiting for a license does not replace anything.
        let packs = [pack(CORE_RULES, "CORE-NEW-1", Some("curated-rules"))];
        let (loaded, _) = load_with_packs(&config, limits(&config), &packs, &none, 0).unwrap();
        assert!(ids(&loaded).contains(&"DE-LNX-0001".to_owned()));
        assert!(!ids(&loaded).contains(&"CORE-NEW-1".to_owned()));

        // A pack rule whose id another source has is a problem; the first one runs.
        let packs = [pack("site", "DE-LNX-0001", None)];
        let (loaded, _) = load_with_packs(&config, limits(&config), &packs, &none, 0).unwrap();
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.source == "bundle:site-2/rules/r.toml"),
            "{:?}",
            loaded.diagnostics
        );
    }
}
