//! What a bundle carries, validated: the same checks when the bundler builds it and when the
//! agent verifies it, so a bundle that built is one the agent accepts (keys and time aside).
//!
//! - rules: every `rules/*.toml` parses with no diagnostic, its SQL prepares in the sandbox
//!   and every fixture of every rule passes; rule ids are unique across the bundle; at least
//!   one rule.
//! - config: exactly `config/config.toml`, a valid configuration layer over the embedded
//!   defaults (`config::validate_bundle_layer`), which may not set `[bundles]` or `[license]`.
//! - license: exactly `license/license.toml`, a valid license whose site is the one site the
//!   bundle is for.
//! - keys: exactly `keys/keys.toml`, a valid list of keys added and revoked.

use super::BundleError;
use super::license::{LICENSE_PATH, License};
use super::manifest::{Header, Kind, Sites};
use super::trust::{KEYS_PATH, KeyChanges};
use crate::detection::rules::{self, Rule};
use crate::detection::sandbox::{Limits as SandboxLimits, Sandbox};

/// The path of the configuration inside a config bundle.
pub const CONFIG_PATH: &str = "config/config.toml";

/// A bundle's content, parsed.
#[derive(Debug, Clone)]
pub enum Content {
    /// The rules, in file order.
    Rules(Vec<Rule>),
    /// The configuration layer's text (validated).
    Config(String),
    /// The license.
    License(License),
    /// Keys added and revoked.
    Keys(KeyChanges),
}

/// Validates `files` (path, bytes; sorted by path) of a bundle described by `header`. Rules
/// are named `bundle:NAME/PATH` in their diagnostics and `source`.
pub fn validate(
    header: &Header,
    files: &[(String, Vec<u8>)],
    limits: SandboxLimits,
) -> Result<Content, BundleError> {
    let bad = |reason: String| BundleError::Content { reason };
    let text = |path: &str, bytes: &[u8]| -> Result<String, BundleError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| bad(format!("{}: not UTF-8", crate::text::quoted(path))))
    };
    let only = |expected: &str| -> Result<&[u8], BundleError> {
        match files {
            [(path, bytes)] if path == expected => Ok(bytes),
            _ => Err(bad(format!(
                "a {} bundle carries exactly {expected}",
                header.kind
            ))),
        }
    };
    match header.kind {
        Kind::Rules => {
            let mut sandbox = Sandbox::new(limits).map_err(|err| bad(err.to_string()))?;
            let mut all: Vec<Rule> = Vec::new();
            for (path, bytes) in files {
                if !path.ends_with(".toml") {
                    return Err(bad(format!(
                        "{}: a rules bundle carries *.toml rule files only",
                        crate::text::quoted(path)
                    )));
                }
                let source = format!("bundle:{}/{path}", header.name);
                let loaded = rules::parse(&source, &text(path, bytes)?, &sandbox);
                if let Some(diagnostic) = loaded.diagnostics.first() {
                    return Err(bad(diagnostic.to_string()));
                }
                for rule in loaded.rules {
                    if all.iter().any(|other| other.id == rule.id) {
                        return Err(bad(format!(
                            "{source}: {}: rule id used twice in the bundle",
                            rule.id
                        )));
                    }
                    all.push(rule);
                }
            }
            if all.is_empty() {
                return Err(bad("the bundle carries no rule".to_owned()));
            }
            for rule in &all {
                check_fixtures(rule, &mut sandbox).map_err(bad)?;
            }
            Ok(Content::Rules(all))
        }
        Kind::Config => {
            let bytes = only(CONFIG_PATH)?;
            let config = text(CONFIG_PATH, bytes)?;
            let source = format!("bundle {} version {}", header.name, header.version);
            crate::config::validate_bundle_layer(&source, &config)
                .map_err(|err| bad(err.to_string()))?;
            Ok(Content::Config(config))
        }
        Kind::License => {
            let bytes = only(LICENSE_PATH)?;
            let license = License::parse(&text(LICENSE_PATH, bytes)?)
                .map_err(|reason| bad(format!("{LICENSE_PATH}: {reason}")))?;
            if header.sites != Sites::Only(vec![license.site.clone()]) {
                return Err(bad(format!(
                    "{LICENSE_PATH}: the license is for site {} but the bundle is for {}",
                    license.site, header.sites
                )));
            }
            Ok(Content::License(license))
        }
        Kind::Keys => {
            let bytes = only(KEYS_PATH)?;
            let changes = KeyChanges::parse(&text(KEYS_PATH, bytes)?)
                .map_err(|reason| bad(format!("{KEYS_PATH}: {reason}")))?;
            Ok(Content::Keys(changes))
        }
    }
}

/// Runs `rule`'s fixtures in `sandbox` (reused from rule to rule); `Err` names the first that
/// fails and what it returned.
pub fn check_fixtures(rule: &Rule, sandbox: &mut Sandbox) -> Result<(), String> {
    if rule.tests.is_empty() {
        return Err(format!(
            "{}: {}: no fixture: a bundled rule carries at least one [[rule.test]]",
            crate::text::escape(&rule.source),
            rule.id
        ));
    }
    for outcome in rules::run_fixtures_in(rule, sandbox) {
        if !outcome.passed() {
            let got = match &outcome.got {
                Ok(rows) => format!("{rows} rows"),
                Err(reason) => reason.clone(),
            };
            return Err(format!(
                "{}: {}: fixture {} failed: expected {} rows, got {got}",
                crate::text::escape(&rule.source),
                rule.id,
                crate::text::quoted(&outcome.label),
                outcome.expected
            ));
        }
    }
    Ok(())
}
