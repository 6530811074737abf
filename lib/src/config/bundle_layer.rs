//! The bundle layer: the configuration a config bundle carries (`config/config.toml` inside
//! it), merged right above the embedded defaults and below every local file, environment
//! variable and command-line override, so that the operator of a host always has the last word.
//!
//! A bundle layer may not set `[bundles]`, `[license]` or `[site]`. The first two say which
//! keys and licenses the agent trusts, and a config bundle signed by a trusted key must not be able to
//! widen that trust. Keys change only through keys bundles, licenses only through license
//! bundles. The site id binds licenses and site-restricted bundles, so only the host's own
//! configuration names it.
//!
//! This module reads no file: the caller (the bundler when it builds a config bundle, the agent
//! when it verifies or applies one) hands over the text it has already bounded and verified.

use figment::value::Value;
use figment::{Figment, Metadata, Source};

use super::{
    Config, ConfigError, ConfigSources, DEFAULTS, HostProblem, Layer, Overrides, SOURCE_DEFAULTS,
    dotted_key, from_figment, invalid, layers, parse_toml, source_name, validate,
};

/// The largest bundle layer accepted, in bytes: a configuration is a few kilobytes, and the
/// text is parsed in memory whole.
pub const MAX_BUNDLE_LAYER_BYTES: usize = 1024 * 1024;

/// The `Source::Custom` mark of the bundle layer's metadata, which tells its values apart from
/// those of a layer that happens to carry the same name.
const BUNDLE_MARK: &str = "daemoneye config bundle";

/// The sections a bundle layer may not set, and why.
const REFUSED_SECTIONS: [(&str, &str); 3] = [
    (
        "bundles",
        "a config bundle may not set [bundles]: trust changes only through keys bundles",
    ),
    (
        "license",
        "a config bundle may not set [license]: licenses change only through license bundles",
    ),
    (
        "site",
        "a config bundle may not set [site]: the site id binds licenses and site-restricted \
         bundles, so only the host's own configuration names it",
    ),
];

/// The configuration carried by a config bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLayer {
    /// The name of the layer in messages, such as `bundle site-config v3`; it takes the place
    /// a file layer's path has.
    pub source: String,
    /// The TOML text of the bundle's `config/config.toml`.
    pub text: String,
}

impl BundleLayer {
    /// The layer, checked as [`checked_layer`] does.
    pub(super) fn to_layer(&self) -> Result<Layer, ConfigError> {
        checked_layer(&self.source, &self.text)
    }
}

/// The bundle layer named `source`, checked: at most [`MAX_BUNDLE_LAYER_BYTES`], valid TOML,
/// and setting neither `[bundles]` nor `[license]`. Its values are checked later, with the
/// merged configuration.
fn checked_layer(source: &str, text: &str) -> Result<Layer, ConfigError> {
    if text.len() > MAX_BUNDLE_LAYER_BYTES {
        return Err(invalid(
            source,
            "(whole file)",
            format!(
                "{} bytes, more than the {MAX_BUNDLE_LAYER_BYTES} a config bundle's \
                 configuration may have",
                text.len()
            ),
        ));
    }
    let dict = parse_toml(text)
        .map_err(|reason| invalid(source, "(whole file)", format!("not valid TOML: {reason}")))?;
    for (section, reason) in REFUSED_SECTIONS {
        if let Some(value) = dict.get(section) {
            // The first key it sets, or the section itself when it sets none.
            let mut keys = Vec::new();
            leaf_keys(section, value, &mut keys);
            keys.sort();
            let key = keys
                .into_iter()
                .next()
                .unwrap_or_else(|| section.to_owned());
            return Err(invalid(source, &key, reason));
        }
    }
    Ok(Layer {
        metadata: Metadata::from(source.to_owned(), Source::Custom(BUNDLE_MARK.to_owned()))
            .interpolater(dotted_key),
        dict,
    })
}

/// What [`load_report`](super::load_report) found besides the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Every key the bundle layer sets whose value a higher layer replaced, sorted by key;
    /// empty when there is no bundle layer. An agent shows these so that an operator knows
    /// which of the site's settings this host does not follow.
    pub bundle_keys_overridden: Vec<Overridden>,
}

/// A key of the bundle layer whose value came from a higher layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overridden {
    /// The dotted key, such as `collection.interval`.
    pub key: String,
    /// The layer whose value won, named as in error messages: a file path, an environment
    /// variable such as `DAEMONEYE_COLLECTION__INTERVAL`, or `command line`.
    pub by: String,
}

/// The keys of `bundle` whose final value in `figment` came from another layer, sorted.
pub(super) fn overridden(figment: &Figment, bundle: &Layer) -> Vec<Overridden> {
    let mut keys = Vec::new();
    for (name, value) in &bundle.dict {
        leaf_keys(name, value, &mut keys);
    }
    keys.sort();
    keys.into_iter()
        .filter_map(|key| {
            // Every key here passed extraction, so it is a known key without dots of its own,
            // and figment's dotted lookup finds it; a miss would only hide a report line.
            let metadata = figment.find_metadata(&key)?;
            (*metadata != bundle.metadata).then(|| {
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                Overridden {
                    by: source_name(Some(metadata), &path),
                    key,
                }
            })
        })
        .collect()
}

/// The dotted keys of the values (not tables) at and below `value`, named from `prefix`. An
/// array is one value, as a higher layer replaces it whole.
fn leaf_keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Dict(_, dict) => {
            for (name, inner) in dict {
                leaf_keys(&format!("{prefix}.{name}"), inner, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// [`load_checked`](super::load_checked), also reporting the keys of the bundle layer that a
/// higher layer replaced.
///
/// The bundle layer (`sources.bundle_layer`) is checked first: a layer that is too large, not
/// TOML, or sets `[bundles]`, `[license]` or `[site]` is a [`ConfigError::Invalid`] naming its `source`.
/// Its values are then checked with the merged configuration, like every layer's, so that a
/// bad value a local file replaces is no error.
pub fn load_report(
    sources: &ConfigSources,
    overrides: &Overrides,
    check: impl FnOnce(&Config) -> HostProblem,
) -> Result<(Config, LoadReport), ConfigError> {
    let bundle = sources
        .bundle_layer
        .as_ref()
        .map(BundleLayer::to_layer)
        .transpose()?;
    let figment = layers(sources, overrides, bundle.as_ref())?;
    let config: Config = figment.extract().map_err(from_figment)?;
    validate(&config, &figment)?;
    if let Some((dotted, reason)) = check(&config) {
        let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
        let source = source_name(figment.find_metadata(dotted), &path);
        return Err(invalid(source, dotted, reason));
    }
    let bundle_keys_overridden = bundle
        .map(|bundle| overridden(&figment, &bundle))
        .unwrap_or_default();
    Ok((
        config,
        LoadReport {
            bundle_keys_overridden,
        },
    ))
}

/// The embedded defaults, with the bundle layer (already checked) above them.
pub(super) fn base(bundle: Option<&Layer>) -> Result<Figment, ConfigError> {
    // A unit test parses the defaults, so this error only exists for a broken build; it is
    // still returned rather than unwrapped because a panic would hide which layer was at fault.
    let defaults =
        parse_toml(DEFAULTS).map_err(|reason| invalid(SOURCE_DEFAULTS, "(whole file)", reason))?;
    let figment = Figment::from(Layer::named(SOURCE_DEFAULTS, defaults));
    Ok(match bundle {
        Some(bundle) => figment.merge(bundle),
        None => figment,
    })
}

/// Checks a config bundle's configuration on its own: the layer over the embedded defaults
/// only, with no file, environment or command line, fully validated. The bundler calls it
/// before it signs a config bundle, the agent before it applies one, so that a bundle that
/// would not load is refused whole rather than found out at the next start.
pub fn validate_bundle_layer(source: &str, text: &str) -> Result<Config, ConfigError> {
    let layer = checked_layer(source, text)?;
    let figment = base(Some(&layer))?;
    let config: Config = figment.extract().map_err(from_figment)?;
    validate(&config, &figment)?;
    Ok(config)
}
