//! The loader's tests, by topic, and the helpers they share.

use super::*;
use figment::Jail;
use figment::value::Value;
pub(super) use std::time::Duration;

mod bundles;
mod errors;
mod layers;
mod paths;

/// Loads with every layer in place: `system.toml`, `user.toml` and `explicit.toml` in the
/// jail directory (the first two skipped when not written; the third only named when
/// written), the environment, and `overrides`.
///
/// The environment is cleared first so that a `DAEMONEYE_*` variable in the developer's
/// shell cannot change the outcome.
fn check(
    jail: &mut Jail,
    files: &[(&str, &str)],
    env: &[(&str, &str)],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    check_report(jail, None, files, env, overrides).map(|(config, _)| config)
}

/// [`check`] with a bundle layer, and the report.
fn check_report(
    jail: &mut Jail,
    bundle_layer: Option<BundleLayer>,
    files: &[(&str, &str)],
    env: &[(&str, &str)],
    overrides: &Overrides,
) -> Result<(Config, LoadReport), ConfigError> {
    jail.clear_env();
    for (name, contents) in files {
        jail.create_file(name, contents)
            .expect("the jail can hold files");
    }
    for (name, value) in env {
        jail.set_env(name, value);
    }
    let dir = jail.directory();
    let sources = ConfigSources {
        bundle_layer,
        system_file: Some(dir.join("system.toml")),
        user_file: Some(dir.join("user.toml")),
        explicit_file: files
            .iter()
            .any(|(name, _)| *name == "explicit.toml")
            .then(|| dir.join("explicit.toml")),
        use_env: true,
    };
    let result = load_report(&sources, overrides, |_| None);
    if let Err(error) = &result {
        assert!(!error.to_string().contains('\n'), "not one line: {error}");
    }
    result
}

fn interval(secs: u64) -> HumanDuration {
    HumanDuration::new(Duration::from_secs(secs))
}

fn interval_file(secs: u64) -> String {
    format!("[collection]\ninterval = \"{secs}s\"\n")
}
