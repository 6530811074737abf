//! Configuration loading: turns the layered configuration sources into one validated [`Config`].
//!
//! Every DaemonEye binary calls [`load`] once at start-up and then works from the returned
//! [`Config`], so that all of them agree on what a setting means and where it came from.
//!
//! # Precedence
//!
//! Layers are merged key by key, from lowest to highest precedence:
//!
//! 1. the embedded defaults ([`DEFAULTS`], compiled into the binary);
//! 2. the system file `/etc/daemoneye/config.toml` (optional: skipped when missing);
//! 3. the user file `$XDG_CONFIG_HOME/daemoneye/config.toml`, or
//!    `~/.config/daemoneye/config.toml` when `$XDG_CONFIG_HOME` is unset (optional);
//! 4. the file named by `--config FILE` (required: a missing file is an error);
//! 5. environment variables `DAEMONEYE_<SECTION>__<KEY>`, for example
//!    `DAEMONEYE_COLLECTION__INTERVAL=5s` (a double underscore separates the section from the
//!    key; variables without one, such as `DAEMONEYE_DATA_DIR`, are not configuration keys and
//!    are ignored here);
//! 6. command-line overrides ([`Overrides`]), as dotted keys such as `collection.interval`.
//!
//! A higher layer replaces single keys, not whole sections: a user file that sets only
//! `collection.interval` keeps `collection.hash_max_bytes` from the system file.
//!
//! # File format
//!
//! Files are TOML with one table per section. Durations are strings with a unit, as accepted
//! by `humantime` (`"500ms"`, `"10s"`, `"5m"`, `"7d"`). The defaults below are the complete
//! list of keys; keys shown commented out have no default:
//!
//! ```toml
//! [site]
//! # id = "plant-7"            # 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-"
//!
//! [collection]
//! interval = "10s"            # time between two process scans; more than zero
//! hash_max_bytes = 536870912  # larger executables are not hashed; more than zero
//! hash_time_budget = "5s"     # time one scan may spend hashing executables; more than zero
//!
//! [collector]
//! # user = "daemoneye"        # user the collector drops privileges to
//! ```
//!
//! Values in environment variables are read the way figment reads them: `10` is a number,
//! `true` a boolean, anything else a string; a value that must stay a string although it looks
//! like a number is quoted, as in `DAEMONEYE_SITE__ID='"7"'`.
//!
//! # Errors
//!
//! Every error is a [`ConfigError`] whose message is a single line naming the source (a file
//! path, an environment variable such as `DAEMONEYE_COLLECTION__INTERVAL`, `command line` or
//! `embedded defaults`), the full dotted key and the reason, so that an operator can fix the
//! right place without guessing.
//!
//! # What this module must never do
//!
//! It never writes, creates or repairs a file, never opens a network connection, never looks up
//! users (an unset `collector.user` is resolved by the collector, not here), never logs or
//! prints, and never panics on bad input. It never accepts a configuration it does not fully
//! understand either: unknown sections and keys, unreadable files and out-of-range values are
//! errors, because a security tool that silently runs with settings other than the ones its
//! operator wrote is worse than one that refuses to start.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The embedded defaults, in the file format itself so that they double as documentation.
///
/// A unit test checks that they load into exactly [`Config::default()`]; when a key is added,
/// both must change together.
pub const DEFAULTS: &str = r#"# DaemonEye built-in defaults. Any configuration layer may override any of these keys.

[site]
# Identifies this installation in reports and alerts. No default.
# id = "plant-7"

[collection]
# Time between two process scans.
interval = "10s"
# Executables larger than this many bytes (512 MiB) are not hashed.
hash_max_bytes = 536870912
# Time one scan may spend hashing executables; the rest wait for the next scan.
hash_time_budget = "5s"

[collector]
# User the collector drops privileges to. Unset means "daemoneye" if that user exists,
# else "nobody".
# user = "daemoneye"
"#;

/// The system-wide configuration file.
pub const SYSTEM_CONFIG_FILE: &str = "/etc/daemoneye/config.toml";

/// The environment variable that chooses the data directory (see [`resolve_data_dir`]).
pub const DATA_DIR_ENV: &str = "DAEMONEYE_DATA_DIR";

/// The data directory of a process running as root.
const SYSTEM_DATA_DIR: &str = "/var/lib/daemoneye";

/// The data directory when nothing better is known; see [`resolve_data_dir`].
const FALLBACK_DATA_DIR: &str = "/tmp/daemoneye-state";

/// Prefix of the environment variables that set configuration keys.
const ENV_PREFIX: &str = "DAEMONEYE_";

/// Separator between the section and the key in an environment variable name. A single
/// underscore cannot be used because key names themselves contain underscores.
const ENV_SEPARATOR: &str = "__";

/// Source names used in error messages for the layers that are not files.
const SOURCE_DEFAULTS: &str = "embedded defaults";
const SOURCE_ENV: &str = "environment";
const SOURCE_COMMAND_LINE: &str = "command line";

/// Why a user name is rejected; shared by the validation and its tests.
const USER_NAME_RULE: &str = "expected 1 to 32 characters: a lowercase letter or \"_\", then \
     lowercase letters, digits, \"_\" or \"-\", optionally ending in \"$\"";

/// Everything that can go wrong while loading the configuration.
///
/// Every message is a single line, even when a file name or a key contains control characters,
/// so that it can go into a log line or a systemd status without being cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file exists (or was named explicitly) but cannot be read.
    #[error("configuration file {} cannot be read: {reason}", display_path(.path))]
    Unreadable {
        /// The file, as it was named.
        path: PathBuf,
        /// Why it cannot be read, for example `no such file`.
        reason: String,
    },
    /// A configuration file is not valid TOML.
    #[error("configuration file {} is not valid TOML: {reason}", display_path(.path))]
    Syntax {
        /// The file, as it was named.
        path: PathBuf,
        /// Line, column and what the parser expected.
        reason: String,
    },
    /// A key is unknown, has the wrong type or is out of range.
    #[error("invalid configuration in {source_name}: {key}: {reason}")]
    Invalid {
        /// Where the offending value came from: a file path, an environment variable name,
        /// `command line` or `embedded defaults`.
        source_name: String,
        /// The full dotted key, for example `collection.interval`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string is not a duration (see [`HumanDuration`]).
    #[error(
        "invalid duration {value:?}: expected a number and a unit such as \"500ms\", \"10s\", \
         \"5m\" or \"7d\""
    )]
    InvalidDuration {
        /// The rejected text.
        value: String,
    },
    /// A string is not a site id (see [`SiteId`]).
    #[error(
        "invalid site id {value:?}: expected 1 to 64 characters from A-Z, a-z, 0-9, \".\", \"_\" \
         and \"-\""
    )]
    InvalidSiteId {
        /// The rejected text.
        value: String,
    },
}

/// The whole configuration, as merged from every layer and validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[site]`: what this installation is.
    pub site: SiteConfig,
    /// `[collection]`: how processes are scanned.
    pub collection: CollectionConfig,
    /// `[collector]`: how the privileged collector runs.
    pub collector: CollectorConfig,
}

/// The `[site]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Identifies this installation in reports and alerts; no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<SiteId>,
}

/// The `[collection]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Time between two process scans (default 10 s).
    pub interval: HumanDuration,
    /// Executables larger than this are not hashed (default 512 MiB).
    pub hash_max_bytes: u64,
    /// Time one scan may spend hashing executables (default 5 s).
    pub hash_time_budget: HumanDuration,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration::new(Duration::from_secs(10)),
            hash_max_bytes: 512 * 1024 * 1024,
            hash_time_budget: HumanDuration::new(Duration::from_secs(5)),
        }
    }
}

/// The `[collector]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// User the collector drops privileges to. `None` leaves the choice to the collector
    /// (`daemoneye` if that user exists, else `nobody`); this module never looks users up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A value that deserialized but is out of range: its key within its section, and why.
type Problem = (&'static str, String);

impl CollectionConfig {
    /// The first out-of-range value of this section, if any.
    fn problem(&self) -> Option<Problem> {
        let must_be_positive = [
            ("interval", self.interval.get().is_zero()),
            ("hash_max_bytes", self.hash_max_bytes == 0),
            ("hash_time_budget", self.hash_time_budget.get().is_zero()),
        ];
        must_be_positive
            .into_iter()
            .find(|(_, is_zero)| *is_zero)
            .map(|(key, _)| (key, "must be greater than zero".to_owned()))
    }
}

impl CollectorConfig {
    /// The first out-of-range value of this section, if any.
    fn problem(&self) -> Option<Problem> {
        let user = self.user.as_deref()?;
        (!is_valid_user_name(user)).then(|| {
            (
                "user",
                format!("invalid user name {user:?}: {USER_NAME_RULE}"),
            )
        })
    }
}

/// Whether `name` is a plausible Unix user name: `[a-z_][a-z0-9_-]*[$]?`, at most 32 characters.
///
/// This is the portable subset that `useradd` accepts by default; anything else in a
/// configuration file is far more likely a typo than a real account.
fn is_valid_user_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 32
        && (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A site identifier: 1 to 64 characters from `A-Z`, `a-z`, `0-9`, `.`, `_` and `-`.
///
/// The field is private so that every `SiteId` in the program has been validated; the id ends
/// up in file names and report headers, where spaces, slashes or control characters would do
/// harm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(String);

impl SiteId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SiteId {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(ConfigError::InvalidSiteId {
                value: value.to_owned(),
            })
        }
    }
}

impl Serialize for SiteId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SiteId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SiteIdVisitor;

        impl Visitor<'_> for SiteIdVisitor {
            type Value = SiteId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Numbers are refused rather than converted, because "007" read as a number
                // would silently become the different id "7".
                f.write_str("a site id string (an id made only of digits must be quoted)")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SiteId, E> {
                value.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(SiteIdVisitor)
    }
}

/// A duration written the human way: `"500ms"`, `"10s"`, `"5m"`, `"7d"`, `"1h 30m"`.
///
/// It serializes back to the same form, so that a configuration written out by the program
/// reads like one written by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// Wraps a duration.
    pub const fn new(duration: Duration) -> Self {
        Self(duration)
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(duration: Duration) -> Self {
        Self(duration)
    }
}

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_duration(self.0), f)
    }
}

impl FromStr for HumanDuration {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        // humantime's own messages ("time unit needed, for example 10sec or 10ms") mention
        // spellings we do not document, so one message of ours replaces all of them.
        humantime::parse_duration(value)
            .map(Self)
            .map_err(|_| ConfigError::InvalidDuration {
                value: value.to_owned(),
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HumanDurationVisitor;

        impl Visitor<'_> for HumanDurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"10s\", \"5m\" or \"7d\"")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
                value.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HumanDurationVisitor)
    }
}

/// Which configuration sources [`load`] reads, besides the embedded defaults and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The system file; skipped when it does not exist.
    pub system_file: Option<PathBuf>,
    /// The user file; skipped when it does not exist.
    pub user_file: Option<PathBuf>,
    /// The file named by `--config`; an error when it does not exist.
    pub explicit_file: Option<PathBuf>,
    /// Whether `DAEMONEYE_<SECTION>__<KEY>` environment variables are read.
    pub use_env: bool,
}

impl ConfigSources {
    /// The standard places, reading `$XDG_CONFIG_HOME` / `$HOME` from the process environment.
    pub fn standard(explicit_file: Option<PathBuf>) -> Self {
        Self {
            system_file: Some(PathBuf::from(SYSTEM_CONFIG_FILE)),
            user_file: user_config_file(
                std::env::var_os("XDG_CONFIG_HOME"),
                std::env::var_os("HOME"),
            ),
            explicit_file,
            use_env: true,
        }
    }

    /// Only embedded defaults (no files, no environment): for tests and `--no-config`-like uses.
    pub fn defaults_only() -> Self {
        Self::default()
    }
}

/// The user configuration file for the given `$XDG_CONFIG_HOME` and `$HOME`.
///
/// Relative values are ignored, as the XDG base directory specification requires, because they
/// would make the file depend on the current directory.
fn user_config_file(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if let Some(config_home) = absolute(xdg_config_home.map(PathBuf::from)) {
        return Some(config_home.join("daemoneye/config.toml"));
    }
    absolute(home.map(PathBuf::from)).map(|home| home.join(".config/daemoneye/config.toml"))
}

/// `path` if it is absolute (which also rules out the empty path).
fn absolute(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|path| path.is_absolute())
}

/// Command-line overrides: dotted key paths with values, merged last.
///
/// ```
/// # use daemoneye_lib::config::Overrides;
/// let mut overrides = Overrides::default();
/// overrides.set("collection.interval", "5s").set("collection.hash_max_bytes", 1024_u64);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// In the order they were set, so that a later setting of the same key wins.
    entries: Vec<(String, Value)>,
}

impl Overrides {
    /// Sets `key` (a dotted path such as `collection.interval`) to `value`.
    ///
    /// The key is checked by [`load`], which reports a malformed or unknown key as an error
    /// from the `command line` source.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.entries.push((key.to_owned(), value.into()));
        self
    }

    /// Whether no override was set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The overrides as one nested table.
    fn to_dict(&self) -> Result<Dict, ConfigError> {
        let mut dict = Dict::new();
        for (key, value) in &self.entries {
            let segments: Vec<&str> = key.split('.').collect();
            if segments.iter().any(|segment| segment.is_empty()) {
                return Err(invalid(
                    SOURCE_COMMAND_LINE,
                    key,
                    "a key must be a dotted path such as collection.interval",
                ));
            }
            insert_path(&mut dict, &segments, value.clone());
        }
        Ok(dict)
    }
}

/// Inserts `value` at the nested position named by `segments`, creating tables on the way.
fn insert_path(dict: &mut Dict, segments: &[&str], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        dict.insert((*first).to_owned(), value);
        return;
    }
    let slot = dict
        .entry((*first).to_owned())
        .or_insert_with(|| Value::from(Dict::new()));
    // A deeper key set after a plain value at the same place replaces it, as the later
    // setting wins everywhere else too.
    if !matches!(slot, Value::Dict(..)) {
        *slot = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = slot {
        insert_path(inner, rest, value);
    }
}

/// Loads, merges and validates the configuration.
///
/// See the [module documentation](self) for the order of the layers.
pub fn load(sources: &ConfigSources, overrides: &Overrides) -> Result<Config, ConfigError> {
    let figment = layers(sources, overrides)?;
    let config: Config = figment.extract().map_err(from_figment)?;
    validate(&config, &figment)?;
    Ok(config)
}

/// Builds the figment from every layer, lowest precedence first.
fn layers(sources: &ConfigSources, overrides: &Overrides) -> Result<Figment, ConfigError> {
    // A unit test parses the defaults, so this error only exists for a broken build; it is
    // still returned rather than unwrapped because a panic would hide which layer was at fault.
    let defaults =
        parse_toml(DEFAULTS).map_err(|reason| invalid(SOURCE_DEFAULTS, "(whole file)", reason))?;
    let mut figment = Figment::from(Layer::named(SOURCE_DEFAULTS, defaults));

    let files = [
        (&sources.system_file, false),
        (&sources.user_file, false),
        (&sources.explicit_file, true),
    ];
    for (path, required) in files {
        let Some(path) = path else { continue };
        if let Some(contents) = read_file(path, required)? {
            figment = figment.merge(Layer::file(path, &contents)?);
        }
    }

    if sources.use_env {
        figment = figment.merge(EnvLayer::new());
    }

    if !overrides.is_empty() {
        figment = figment.merge(Layer::named(SOURCE_COMMAND_LINE, overrides.to_dict()?));
    }
    Ok(figment)
}

/// Reads a configuration file; `None` when an optional file does not exist.
///
/// An optional file that exists but cannot be read is still an error: skipping it would run
/// with settings other than the ones the operator wrote.
fn read_file(path: &Path, required: bool) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(contents) => Ok(Some(contents)),
        Err(error)
            if !required
                && matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
        {
            Ok(None)
        }
        Err(error) => Err(ConfigError::Unreadable {
            path: path.to_owned(),
            reason: io_reason(&error),
        }),
    }
}

/// A short lowercase reason for an I/O error.
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        io::ErrorKind::InvalidData => "not valid UTF-8 text".to_owned(),
        _ => one_line(&error.to_string()),
    }
}

/// Parses TOML text into a table, with a one-line reason on failure.
fn parse_toml(text: &str) -> Result<Dict, String> {
    Toml::from_str::<Dict>(text).map_err(|error| {
        // The toml crate's own Display draws the offending line with a caret under it over
        // several lines; only the position and the message are kept.
        let message = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let message = one_line(&message);
        match error.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        }
    })
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

/// A layer whose table is already known: the embedded defaults, a file or the overrides.
///
/// Files are read and parsed here rather than by figment's `Toml::file`, because that provider
/// searches parent directories for relative paths and reports syntax errors over several lines.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    /// A layer that is not a file, named `name` in error messages.
    fn named(name: &'static str, dict: Dict) -> Self {
        Self {
            metadata: Metadata::named(name).interpolater(dotted_key),
            dict,
        }
    }

    /// A layer read from the TOML file `path`.
    fn file(path: &Path, contents: &str) -> Result<Self, ConfigError> {
        let dict = parse_toml(contents).map_err(|reason| ConfigError::Syntax {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Self {
            metadata: Metadata::from("TOML file", path).interpolater(dotted_key),
            dict,
        })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// How a key is written in a file or on the command line.
fn dotted_key(_: &Profile, keys: &[&str]) -> String {
    keys.join(".")
}

/// The `DAEMONEYE_<SECTION>__<KEY>` environment variables.
///
/// It wraps figment's `Env` provider so that error messages can name the variable itself
/// rather than figment's generic "environment variable(s)".
struct EnvLayer {
    env: Env,
    /// Each variable as a dotted key, with the variable's name, taken when the layer is built.
    names: Vec<(String, String)>,
}

impl EnvLayer {
    fn new() -> Self {
        // Variables without the separator (DAEMONEYE_DATA_DIR, DAEMONEYE_LOG, ...) belong to
        // other parts of the program; treating them as keys would make them unknown-key errors.
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|key| key.as_str().contains(ENV_SEPARATOR))
            .split(ENV_SEPARATOR);
        let names = std::env::vars_os()
            .filter_map(|(name, _)| {
                let name = name.to_string_lossy().trim().to_owned();
                let key = env_key(&name)?;
                Some((key, name))
            })
            .collect();
        Self { env, names }
    }
}

/// The dotted key that the environment variable `name` sets, the way figment's `Env` derives it
/// (prefix matched without regard to case, keys lowercased).
fn env_key(name: &str) -> Option<String> {
    let prefix = name.get(..ENV_PREFIX.len())?;
    let rest = name.get(ENV_PREFIX.len()..)?;
    (prefix.eq_ignore_ascii_case(ENV_PREFIX) && rest.contains(ENV_SEPARATOR))
        .then(|| rest.replace(ENV_SEPARATOR, ".").to_ascii_lowercase())
}

/// The name of the environment variable that set the dotted key `keys` (or a key below it).
fn env_var_name(names: &[(String, String)], keys: &[&str]) -> String {
    let dotted = keys.join(".");
    let exact = names.iter().find(|(key, _)| *key == dotted);
    let below = || {
        names.iter().find(|(key, _)| {
            key.strip_prefix(dotted.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    match exact.or_else(below) {
        Some((_, name)) => name.clone(),
        None => {
            let upper: Vec<String> = keys.iter().map(|key| key.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", upper.join(ENV_SEPARATOR))
        }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let names = self.names.clone();
        Metadata::named(SOURCE_ENV)
            .interpolater(move |_: &Profile, keys: &[&str]| env_var_name(&names, keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// Where the value at `path` came from, for an error message.
fn source_name(metadata: Option<&Metadata>, path: &[String]) -> String {
    let Some(metadata) = metadata else {
        // Only the merged root table has no metadata; no layer can be blamed for it.
        return "merged configuration".to_owned();
    };
    if let Some(file) = metadata
        .source
        .as_ref()
        .and_then(|source| source.file_path())
    {
        return display_path(file);
    }
    if metadata.name == SOURCE_ENV {
        // For the environment layer, the key "as written in the source" is the variable name.
        return one_line(&metadata.interpolate(&Profile::Default, path));
    }
    one_line(&metadata.name)
}

/// Turns a figment extraction error into a one-line [`ConfigError::Invalid`].
fn from_figment(error: figment::Error) -> ConfigError {
    // Figment chains one error per failing provider, but our providers never fail and
    // extraction stops at the first bad value, so the first error is the whole story.
    let mut path = error.path.clone();
    let reason = match &error.kind {
        Kind::UnknownField(_, expected) => {
            let what = if path.len() <= 1 { "section" } else { "key" };
            match expected {
                [] => format!("unknown {what}"),
                [only] => format!("unknown {what} (expected {only})"),
                _ => format!("unknown {what} (expected one of {})", expected.join(", ")),
            }
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "missing key".to_owned()
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {}, found {actual}", describe_expected(expected))
        }
        Kind::Message(message) => message.clone(),
        other => other.to_string(),
    };
    let source = source_name(error.metadata.as_ref(), &path);
    invalid(source, &path.join("."), reason)
}

/// Serde's description of an expected type, in configuration words.
fn describe_expected(expected: &str) -> &str {
    if expected.starts_with("struct ") {
        "a table"
    } else if matches!(expected, "u8" | "u16" | "u32" | "u64") {
        "a non-negative integer"
    } else {
        expected
    }
}

/// Checks the values that deserialized but may still be out of range.
fn validate(config: &Config, figment: &Figment) -> Result<(), ConfigError> {
    // New sections add their line here.
    let problems = [
        ("collection", config.collection.problem()),
        ("collector", config.collector.problem()),
    ];
    for (section, problem) in problems {
        if let Some((key, reason)) = problem {
            let path = [section.to_owned(), key.to_owned()];
            let dotted = path.join(".");
            // The merged value no longer knows its origin, so the figment is asked which layer
            // supplied the key: that is the place the operator has to fix.
            let source = source_name(figment.find_metadata(&dotted), &path);
            return Err(invalid(source, &dotted, reason));
        }
    }
    Ok(())
}

/// A [`ConfigError::Invalid`], with every part made safe for one line.
fn invalid(source: impl AsRef<str>, key: &str, reason: impl AsRef<str>) -> ConfigError {
    ConfigError::Invalid {
        source_name: one_line(source.as_ref()),
        key: one_line(key),
        reason: one_line(reason.as_ref()),
    }
}

/// A path for a one-line message.
fn display_path(path: &Path) -> String {
    one_line(&path.display().to_string())
}

/// `text` with control characters (newlines above all) escaped, so that it fits on one line.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything [`resolve_data_dir`] looks at, gathered so that the rule itself stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDirInputs {
    /// `--data-dir`, if given.
    pub flag: Option<PathBuf>,
    /// `$DAEMONEYE_DATA_DIR`.
    pub env: Option<PathBuf>,
    /// Whether the process runs as root.
    pub is_root: bool,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl DataDirInputs {
    /// Gathers the inputs from the process environment.
    pub fn from_env(flag: Option<PathBuf>, is_root: bool) -> Self {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        Self {
            flag,
            env: var(DATA_DIR_ENV),
            is_root,
            xdg_state_home: var("XDG_STATE_HOME"),
            home: var("HOME"),
        }
    }
}

/// Chooses the data directory; pure, so that the rule can be tested without touching the
/// environment.
///
/// The first that applies wins: the flag; `$DAEMONEYE_DATA_DIR`; `/var/lib/daemoneye` for root;
/// `$XDG_STATE_HOME/daemoneye`; `$HOME/.local/state/daemoneye`; `/tmp/daemoneye-state`.
/// Empty values count as unset, and `$XDG_STATE_HOME` and `$HOME` only count when absolute, so
/// that the directory never depends on the current directory by accident. The last resort is
/// shared with every user of the machine: whoever creates it must refuse a directory that
/// already exists and is owned by someone else.
pub fn resolve_data_dir(inputs: &DataDirInputs) -> PathBuf {
    let given = |path: &Option<PathBuf>| {
        path.as_ref()
            .filter(|path| !path.as_os_str().is_empty())
            .cloned()
    };
    if let Some(flag) = given(&inputs.flag) {
        return flag;
    }
    if let Some(env) = given(&inputs.env) {
        return env;
    }
    if inputs.is_root {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    if let Some(state_home) = absolute(inputs.xdg_state_home.clone()) {
        return state_home.join("daemoneye");
    }
    if let Some(home) = absolute(inputs.home.clone()) {
        return home.join(".local/state/daemoneye");
    }
    PathBuf::from(FALLBACK_DATA_DIR)
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's return type to figment::Result"
)]
mod tests {
    use super::*;
    use figment::Jail;

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
            system_file: Some(dir.join("system.toml")),
            user_file: Some(dir.join("user.toml")),
            explicit_file: files
                .iter()
                .any(|(name, _)| *name == "explicit.toml")
                .then(|| dir.join("explicit.toml")),
            use_env: true,
        };
        let result = load(&sources, overrides);
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

    /// Sets `collection.interval` in the lowest `layers` layers above the defaults, to 1 s in
    /// the system file, 2 s in the user file and so on, and checks that the highest one wins.
    fn assert_top_layer_wins(layers: u64) {
        Jail::expect_with(|jail| {
            let names = ["system.toml", "user.toml", "explicit.toml"];
            let contents: Vec<String> = (1..=3).map(interval_file).collect();
            let files: Vec<(&str, &str)> = names
                .iter()
                .zip(&contents)
                .take(usize::try_from(layers.min(3)).expect("small"))
                .map(|(name, contents)| (*name, contents.as_str()))
                .collect();
            let env: &[(&str, &str)] = if layers >= 4 {
                &[("DAEMONEYE_COLLECTION__INTERVAL", "4s")]
            } else {
                &[]
            };
            let mut overrides = Overrides::default();
            if layers >= 5 {
                overrides.set("collection.interval", "5s");
            }
            let config = check(jail, &files, env, &overrides).expect("valid layers");
            let expected = if layers == 0 { 10 } else { layers };
            assert_eq!(config.collection.interval, interval(expected));
            Ok(())
        });
    }

    #[test]
    fn embedded_defaults_alone_give_the_defaults() {
        assert_top_layer_wins(0);
    }

    #[test]
    fn system_file_overrides_embedded_defaults() {
        assert_top_layer_wins(1);
    }

    #[test]
    fn user_file_overrides_system_file() {
        assert_top_layer_wins(2);
    }

    #[test]
    fn explicit_file_overrides_user_file() {
        assert_top_layer_wins(3);
    }

    #[test]
    fn environment_overrides_explicit_file() {
        assert_top_layer_wins(4);
    }

    #[test]
    fn command_line_overrides_environment() {
        assert_top_layer_wins(5);
    }

    #[test]
    fn layers_merge_key_by_key() {
        Jail::expect_with(|jail| {
            let config = check(
                jail,
                &[
                    (
                        "system.toml",
                        "[collection]\ninterval = \"1s\"\nhash_max_bytes = 1\n[site]\nid = \"a\"",
                    ),
                    ("user.toml", "[collection]\ninterval = \"2s\"\n"),
                ],
                &[("DAEMONEYE_COLLECTOR__USER", "svc_daemoneye")],
                &Overrides::default(),
            )
            .expect("valid layers");
            assert_eq!(config.collection.interval, interval(2));
            assert_eq!(config.collection.hash_max_bytes, 1);
            assert_eq!(config.collection.hash_time_budget, interval(5));
            assert_eq!(config.site.id.as_ref().map(SiteId::as_str), Some("a"));
            assert_eq!(config.collector.user.as_deref(), Some("svc_daemoneye"));
            Ok(())
        });
    }

    #[test]
    fn later_override_of_the_same_key_wins() {
        Jail::expect_with(|jail| {
            let mut overrides = Overrides::default();
            overrides
                .set("collection.interval", "1s")
                .set("collection.hash_max_bytes", 7_u64)
                .set("collection.interval", "2s");
            let config = check(jail, &[], &[], &overrides).expect("valid overrides");
            assert_eq!(config.collection.interval, interval(2));
            assert_eq!(config.collection.hash_max_bytes, 7);
            Ok(())
        });
    }

    #[test]
    fn embedded_defaults_are_the_documented_defaults() {
        let config = load(&ConfigSources::defaults_only(), &Overrides::default())
            .expect("the embedded defaults are valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.site.id, None);
        assert_eq!(config.collection.interval.get(), Duration::from_secs(10));
        assert_eq!(config.collection.hash_max_bytes, 536_870_912);
        assert_eq!(
            config.collection.hash_time_budget.get(),
            Duration::from_secs(5)
        );
        assert_eq!(config.collector.user, None);
    }

    #[test]
    fn defaults_only_reads_no_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("DAEMONEYE_COLLECTION__INTERVAL", "1s");
            jail.set_env("DAEMONEYE_COLLECTION__BOGUS", "1");
            let config = load(&ConfigSources::defaults_only(), &Overrides::default())
                .expect("environment ignored");
            assert_eq!(config, Config::default());
            Ok(())
        });
    }

    #[test]
    fn missing_optional_files_are_skipped() {
        Jail::expect_with(|jail| {
            let dir = jail.directory();
            let sources = ConfigSources {
                system_file: Some(dir.join("absent/config.toml")),
                user_file: Some(dir.join("also-absent.toml")),
                explicit_file: None,
                use_env: false,
            };
            assert_eq!(load(&sources, &Overrides::default()), Ok(Config::default()));
            Ok(())
        });
    }

    #[test]
    fn unreadable_files_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_dir("a-directory")?;
            let dir = jail.directory().to_owned();
            // (system file, explicit file, the path and reason expected in the error)
            let cases = [
                (None, Some("missing.toml"), "missing.toml", "no such file"),
                (None, Some("a-directory"), "a-directory", "is a directory"),
                (Some("a-directory"), None, "a-directory", "is a directory"),
            ];
            for (system, explicit, path, reason) in cases {
                let sources = ConfigSources {
                    system_file: system.map(|name| dir.join(name)),
                    explicit_file: explicit.map(|name| dir.join(name)),
                    ..ConfigSources::defaults_only()
                };
                let error = load(&sources, &Overrides::default()).expect_err(path);
                assert_eq!(
                    error,
                    ConfigError::Unreadable {
                        path: dir.join(path),
                        reason: reason.to_owned()
                    }
                );
                let message = error.to_string();
                assert!(message.contains(&dir.join(path).display().to_string()));
                assert!(!message.contains('\n'));
            }
            Ok(())
        });
    }

    #[test]
    fn toml_syntax_error_names_the_file_and_position() {
        Jail::expect_with(|jail| {
            let error = check(
                jail,
                &[(
                    "user.toml",
                    "[collection]\ninterval = \"10s\nhash_max_bytes = 1\n",
                )],
                &[],
                &Overrides::default(),
            )
            .expect_err("syntax error");
            let ConfigError::Syntax { path, reason } = &error else {
                panic!("expected Syntax, got {error:?}");
            };
            assert_eq!(path, &jail.directory().join("user.toml"));
            assert!(reason.starts_with("line 2, column "), "{reason}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("configuration file {} ", path.display())),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn other_daemoneye_variables_are_not_keys() {
        Jail::expect_with(|jail| {
            let config = check(
                jail,
                &[],
                &[
                    ("DAEMONEYE_DATA_DIR", "/srv/daemoneye"),
                    ("DAEMONEYE_LOG", "debug"),
                    ("DAEMONEYE_COLLECTION__HASH_MAX_BYTES", "1024"),
                ],
                &Overrides::default(),
            )
            .expect("DAEMONEYE_DATA_DIR and DAEMONEYE_LOG are ignored");
            assert_eq!(config.collection.hash_max_bytes, 1024);
            Ok(())
        });
    }

    #[test]
    fn a_quoted_numeric_site_id_from_the_environment_is_a_string() {
        Jail::expect_with(|jail| {
            let config = check(
                jail,
                &[],
                &[("DAEMONEYE_SITE__ID", "\"007\"")],
                &Overrides::default(),
            )
            .expect("quoted id");
            assert_eq!(config.site.id.as_ref().map(SiteId::as_str), Some("007"));
            Ok(())
        });
    }

    /// One invalid configuration and the error it must produce.
    struct Bad {
        files: &'static [(&'static str, &'static str)],
        env: &'static [(&'static str, &'static str)],
        overrides: Overrides,
        /// A file name in the jail (ending in `.toml`) or the literal source name.
        source: &'static str,
        key: &'static str,
        /// A part of the reason.
        reason: &'static str,
    }

    fn bad(
        files: &'static [(&'static str, &'static str)],
        env: &'static [(&'static str, &'static str)],
        source: &'static str,
        key: &'static str,
        reason: &'static str,
    ) -> Bad {
        Bad {
            files,
            env,
            overrides: Overrides::default(),
            source,
            key,
            reason,
        }
    }

    fn bad_override(
        key_set: &str,
        value: impl Into<Value>,
        key: &'static str,
        reason: &'static str,
    ) -> Bad {
        let mut overrides = Overrides::default();
        overrides.set(key_set, value);
        Bad {
            overrides,
            ..bad(&[], &[], SOURCE_COMMAND_LINE, key, reason)
        }
    }

    #[test]
    fn invalid_values_name_source_key_and_reason() {
        let unknown_collection_key =
            "unknown key (expected one of interval, hash_max_bytes, hash_time_budget)";
        let bad_duration = "invalid duration \"ten\": expected a number and a unit such as \
                            \"500ms\", \"10s\", \"5m\" or \"7d\"";
        let cases = [
            bad(
                &[("user.toml", "[collection]\ncolour = 1\n")],
                &[],
                "user.toml",
                "collection.colour",
                unknown_collection_key,
            ),
            bad(
                &[("system.toml", "[colour]\nred = 1\n")],
                &[],
                "system.toml",
                "colour",
                "unknown section (expected one of site, collection, collector)",
            ),
            bad(
                &[("system.toml", "[site]\nname = \"x\"\n")],
                &[],
                "system.toml",
                "site.name",
                "unknown key (expected id)",
            ),
            bad(
                &[("explicit.toml", "[collection]\n\"co\\nlour\" = 1\n")],
                &[],
                "explicit.toml",
                "collection.co\\nlour",
                "unknown key",
            ),
            bad(
                &[],
                &[("DAEMONEYE_COLLECTION__INTERVL", "5s")],
                "DAEMONEYE_COLLECTION__INTERVL",
                "collection.intervl",
                unknown_collection_key,
            ),
            bad(
                &[],
                &[("DAEMONEYE_COLOUR__RED", "1")],
                "DAEMONEYE_COLOUR__RED",
                "colour",
                "unknown section",
            ),
            bad(
                &[("explicit.toml", "[collection]\ninterval = \"ten\"\n")],
                &[],
                "explicit.toml",
                "collection.interval",
                bad_duration,
            ),
            bad(
                &[("user.toml", "[collection]\ninterval = 10\n")],
                &[],
                "user.toml",
                "collection.interval",
                "expected a duration such as \"500ms\", \"10s\", \"5m\" or \"7d\", found \
                 signed int `10`",
            ),
            bad(
                &[],
                &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "ten")],
                "DAEMONEYE_COLLECTION__HASH_TIME_BUDGET",
                "collection.hash_time_budget",
                bad_duration,
            ),
            bad(
                &[
                    ("system.toml", "[collection]\ninterval = \"5s\"\n"),
                    ("user.toml", "[collection]\ninterval = \"0s\"\n"),
                ],
                &[],
                "user.toml",
                "collection.interval",
                "must be greater than zero",
            ),
            bad(
                &[("system.toml", "[collection]\ninterval = \"0s\"\n")],
                &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "0ms")],
                "system.toml",
                "collection.interval",
                "must be greater than zero",
            ),
            bad(
                &[],
                &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "0ms")],
                "DAEMONEYE_COLLECTION__HASH_TIME_BUDGET",
                "collection.hash_time_budget",
                "must be greater than zero",
            ),
            bad(
                &[("system.toml", "[collection]\nhash_max_bytes = 0\n")],
                &[],
                "system.toml",
                "collection.hash_max_bytes",
                "must be greater than zero",
            ),
            bad(
                &[("system.toml", "[collection]\nhash_max_bytes = -1\n")],
                &[],
                "system.toml",
                "collection.hash_max_bytes",
                "expected a non-negative integer, found signed int `-1`",
            ),
            bad(
                &[("system.toml", "collection = 5\n")],
                &[],
                "system.toml",
                "collection",
                "expected a table, found signed int `5`",
            ),
            bad(
                &[("user.toml", "[site]\nid = \"plant 7\"\n")],
                &[],
                "user.toml",
                "site.id",
                "invalid site id \"plant 7\": expected 1 to 64 characters",
            ),
            bad(
                &[(
                    "user.toml",
                    "[site]\nid = \"a123456789a123456789a123456789a123456789a123456789a12345678\
                     9abcde\"\n",
                )],
                &[],
                "user.toml",
                "site.id",
                "invalid site id",
            ),
            bad(
                &[],
                &[("DAEMONEYE_SITE__ID", "7")],
                "DAEMONEYE_SITE__ID",
                "site.id",
                "(an id made only of digits must be quoted), found unsigned int `7`",
            ),
            bad(
                &[],
                &[("DAEMONEYE_COLLECTOR__USER", "Root")],
                "DAEMONEYE_COLLECTOR__USER",
                "collector.user",
                "invalid user name \"Root\": expected 1 to 32 characters",
            ),
            bad_override(
                "collection.interval",
                "0s",
                "collection.interval",
                "must be greater than zero",
            ),
            bad_override(
                "collection.colour",
                "red",
                "collection.colour",
                unknown_collection_key,
            ),
            bad_override(
                "collection..interval",
                "5s",
                "collection..interval",
                "a key must be a dotted path such as collection.interval",
            ),
        ];
        for case in cases {
            Jail::expect_with(|jail| {
                let result = check(jail, case.files, case.env, &case.overrides);
                let source = if case.source.ends_with(".toml") {
                    jail.directory().join(case.source).display().to_string()
                } else {
                    case.source.to_owned()
                };
                match result {
                    Err(ConfigError::Invalid {
                        source_name,
                        key,
                        reason,
                    }) => {
                        assert_eq!((source_name.as_str(), key.as_str()), (&*source, case.key));
                        assert!(
                            reason.contains(case.reason),
                            "{key}: {reason:?} lacks {:?}",
                            case.reason
                        );
                    }
                    other => panic!("{}: expected Invalid, got {other:?}", case.key),
                }
                Ok(())
            });
        }
    }

    #[test]
    fn error_messages_have_the_documented_shape() {
        let error = invalid(
            "/etc/daemoneye/config.toml",
            "collection.interval",
            "must be greater than zero",
        );
        assert_eq!(
            error.to_string(),
            "invalid configuration in /etc/daemoneye/config.toml: collection.interval: must be \
             greater than zero"
        );
        let error = ConfigError::Unreadable {
            path: PathBuf::from("/tmp/odd\nname.toml"),
            reason: "no such file".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "configuration file /tmp/odd\\nname.toml cannot be read: no such file"
        );
        assert_eq!(
            "ten".parse::<HumanDuration>().map_err(|e| e.to_string()),
            Err(
                "invalid duration \"ten\": expected a number and a unit such as \"500ms\", \
                 \"10s\", \"5m\" or \"7d\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn durations_parse_and_print_the_human_way() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500)), "500ms"),
            ("10s", Some(Duration::from_secs(10)), "10s"),
            ("5m", Some(Duration::from_secs(300)), "5m"),
            ("7d", Some(Duration::from_secs(7 * 86_400)), "7days"),
            ("1h 30m", Some(Duration::from_secs(5400)), "1h 30m"),
            ("0s", Some(Duration::ZERO), "0s"),
            ("ten", None, ""),
            ("10", None, ""),
            ("", None, ""),
        ];
        for (text, expected, printed) in cases {
            let parsed = text.parse::<HumanDuration>();
            assert_eq!(parsed.as_ref().ok().map(|d| d.get()), expected, "{text:?}");
            if let Ok(duration) = parsed {
                assert_eq!(duration.to_string(), printed);
                assert_eq!(
                    serde_json::to_string(&duration).expect("serializes"),
                    format!("\"{printed}\"")
                );
                assert_eq!(printed.parse::<HumanDuration>(), Ok(duration));
            }
        }
    }

    #[test]
    fn site_ids_are_validated() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases = [
            ("plant-7", true),
            ("Plant_7.eu-west", true),
            ("0", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("plant 7", false),
            ("plant/7", false),
            ("plänt", false),
            ("a\nb", false),
        ];
        for (text, valid) in cases {
            match text.parse::<SiteId>() {
                Ok(id) => {
                    assert!(valid, "{text:?} accepted");
                    assert_eq!(id.as_str(), text);
                    assert_eq!(id.to_string(), text);
                }
                Err(error) => {
                    assert!(!valid, "{text:?} rejected");
                    assert_eq!(
                        error,
                        ConfigError::InvalidSiteId {
                            value: text.to_owned()
                        }
                    );
                    assert!(!error.to_string().contains('\n'));
                }
            }
        }
    }

    #[test]
    fn user_names_are_validated() {
        let longest = format!("a{}", "b".repeat(31));
        let too_long = format!("a{}", "b".repeat(32));
        let cases = [
            ("daemoneye", true),
            ("_svc", true),
            ("svc-2_x", true),
            ("machine$", true),
            (longest.as_str(), true),
            ("", false),
            ("$", false),
            ("Root", false),
            ("2svc", false),
            ("-svc", false),
            ("a$b", false),
            ("svc user", false),
            (too_long.as_str(), false),
        ];
        for (name, valid) in cases {
            assert_eq!(is_valid_user_name(name), valid, "{name:?}");
        }
    }

    #[test]
    fn serialized_config_reads_back_as_itself() {
        Jail::expect_with(|jail| {
            let mut config = Config::default();
            config.site.id = Some("plant-7".parse().expect("valid id"));
            config.collection.interval = HumanDuration::new(Duration::from_millis(1500));
            config.collector.user = Some("daemoneye".to_owned());
            let text = toml::to_string(&config).expect("serializes to TOML");
            assert!(text.contains("interval = \"1s 500ms\""), "{text}");
            let loaded = check(
                jail,
                &[("explicit.toml", &text)],
                &[],
                &Overrides::default(),
            )
            .expect("reads back");
            assert_eq!(loaded, config);
            Ok(())
        });
    }

    #[test]
    fn user_config_file_follows_xdg() {
        let os = |text: &str| Some(OsString::from(text));
        let cases = [
            (
                os("/xdg"),
                os("/home/u"),
                Some("/xdg/daemoneye/config.toml"),
            ),
            (
                None,
                os("/home/u"),
                Some("/home/u/.config/daemoneye/config.toml"),
            ),
            (
                os(""),
                os("/home/u"),
                Some("/home/u/.config/daemoneye/config.toml"),
            ),
            (
                os("relative"),
                os("/home/u"),
                Some("/home/u/.config/daemoneye/config.toml"),
            ),
            (None, None, None),
            (None, os(""), None),
        ];
        for (xdg, home, expected) in cases {
            assert_eq!(
                user_config_file(xdg.clone(), home.clone()),
                expected.map(PathBuf::from),
                "{xdg:?} {home:?}"
            );
        }
    }

    #[test]
    fn standard_sources_read_the_process_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("XDG_CONFIG_HOME", "/xdg");
            jail.set_env("HOME", "/home/u");
            let sources = ConfigSources::standard(Some(PathBuf::from("site.toml")));
            assert_eq!(
                sources,
                ConfigSources {
                    system_file: Some(PathBuf::from("/etc/daemoneye/config.toml")),
                    user_file: Some(PathBuf::from("/xdg/daemoneye/config.toml")),
                    explicit_file: Some(PathBuf::from("site.toml")),
                    use_env: true,
                }
            );
            Ok(())
        });
    }

    #[test]
    fn data_dir_rules_apply_in_order() {
        let path = |text: &str| Some(PathBuf::from(text));
        let all = DataDirInputs {
            flag: path("/flag"),
            env: path("/env"),
            is_root: true,
            xdg_state_home: path("/state"),
            home: path("/home/u"),
        };
        let cases = [
            ("flag wins", all.clone(), "/flag"),
            (
                "then the environment",
                DataDirInputs {
                    flag: None,
                    ..all.clone()
                },
                "/env",
            ),
            (
                "an empty flag and environment count as unset",
                DataDirInputs {
                    flag: path(""),
                    env: path(""),
                    ..all.clone()
                },
                "/var/lib/daemoneye",
            ),
            (
                "then root",
                DataDirInputs {
                    flag: None,
                    env: None,
                    ..all.clone()
                },
                "/var/lib/daemoneye",
            ),
            (
                "then XDG_STATE_HOME",
                DataDirInputs {
                    xdg_state_home: path("/state"),
                    home: path("/home/u"),
                    ..DataDirInputs::default()
                },
                "/state/daemoneye",
            ),
            (
                "a relative XDG_STATE_HOME is ignored",
                DataDirInputs {
                    xdg_state_home: path("state"),
                    home: path("/home/u"),
                    ..DataDirInputs::default()
                },
                "/home/u/.local/state/daemoneye",
            ),
            (
                "then HOME",
                DataDirInputs {
                    home: path("/home/u"),
                    ..DataDirInputs::default()
                },
                "/home/u/.local/state/daemoneye",
            ),
            (
                "an empty HOME is ignored",
                DataDirInputs {
                    home: path(""),
                    ..DataDirInputs::default()
                },
                "/tmp/daemoneye-state",
            ),
            (
                "last resort",
                DataDirInputs::default(),
                "/tmp/daemoneye-state",
            ),
        ];
        for (rule, inputs, expected) in cases {
            assert_eq!(resolve_data_dir(&inputs), PathBuf::from(expected), "{rule}");
        }
    }

    #[test]
    fn data_dir_inputs_come_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DAEMONEYE_DATA_DIR", "/srv/daemoneye");
            jail.set_env("XDG_STATE_HOME", "/state");
            jail.set_env("HOME", "/home/u");
            let inputs = DataDirInputs::from_env(Some(PathBuf::from("/flag")), false);
            assert_eq!(
                inputs,
                DataDirInputs {
                    flag: Some(PathBuf::from("/flag")),
                    env: Some(PathBuf::from("/srv/daemoneye")),
                    is_root: false,
                    xdg_state_home: Some(PathBuf::from("/state")),
                    home: Some(PathBuf::from("/home/u")),
                }
            );
            Ok(())
        });
    }
}
