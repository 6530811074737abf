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
//! 2. the bundle layer ([`BundleLayer`]): the configuration of the active config bundle, which
//!    may not set `[bundles]`, `[license]` or `[site]` (see [`validate_bundle_layer`] and [`load_report`],
//!    which lists the bundle's keys that a higher layer replaced);
//! 3. the system file `/etc/daemoneye/config.toml` (optional: skipped when missing);
//! 4. the user file `$XDG_CONFIG_HOME/daemoneye/config.toml`, or
//!    `~/.config/daemoneye/config.toml` when `$XDG_CONFIG_HOME` is unset (optional);
//! 5. the file named by `--config FILE` (required: a missing file is an error);
//! 6. environment variables `DAEMONEYE_<SECTION>__<KEY>`, for example
//!    `DAEMONEYE_COLLECTION__INTERVAL=5s` (a double underscore separates the section from the
//!    key; variables without one, such as `DAEMONEYE_DATA_DIR`, are not configuration keys and
//!    are ignored here);
//! 7. command-line overrides ([`Overrides`]), as dotted keys such as `collection.interval`.
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
//! interval = "10s"            # time between two process scans; 100ms to 1d
//! hash_max_bytes = 536870912  # larger executables are not hashed; more than zero
//! hash_time_budget = "5s"     # time one scan may spend hashing executables; 1ms to 1h
//! exec_events = true          # hear the kernel's exec events as they happen (Linux, as root)
//!
//! [collector]
//! # user = "daemoneye"        # user the collector drops privileges to; never "root"
//! health_interval = "5s"      # how often the agent checks procmond's health; 10ms to 1h
//! restart_backoff_min = "250ms" # first delay before restarting a crashed procmond; 1ms to 1h
//! restart_backoff_max = "30s" # the delay doubles per crash up to this; the minimum to 1d
//!
//! [ipc]
//! max_frame_bytes = 16777216  # largest IPC frame accepted; 1048576 to 1073741824
//!
//! [ledger]
//! hash = "blake3"             # the audit ledger's tree hash: "blake3" or "sha256"
//! checkpoint_interval = "5m"  # time between two signed checkpoints; 1s to 1d
//! verify_bytes_per_sec = 8388608 # read rate of the background check; at least 65536
//! verify_interval = "1h"      # from the end of one background check to the next; 1s to 30d
//!
//! [bundles]                   # never set by a config bundle
//! trusted_keys = ["/etc/daemoneye/keys/bundle.pub"]  # minisign keys of bundles; absolute, <= 64
//! license_keys = ["/etc/daemoneye/keys/license.pub"] # minisign keys of licenses; the same
//! max_clock_skew = "24h"      # how far a bundle's created may be ahead; 0s to 30d
//! max_bundle_bytes = 67108864 # largest bundle file, compressed; 1024 to 4294967296
//! max_expanded_bytes = 268435456 # largest expanded total; 1024 to 17179869184
//! max_files = 10000           # most files in one bundle; 1 to 1000000
//! max_file_bytes = 16777216   # largest file in a bundle; 1 to max_expanded_bytes
//! inbox_interval = "2s"       # how often <data_dir>/inbox/ is checked; 100ms to 1h
//!
//! [license]                   # never set by a config bundle
//! grace = "14d"               # an expired license's features last this long; 0s to 365d
//!
//! [outbox]                    # bounds per sink; full: the oldest dropped, counted, ledgered
//! max_alerts = 100000         # pending deliveries per sink; 1 to 100000000
//! max_bytes = 268435456       # pending payload bytes per sink; 1 MiB to 1 TiB
//! max_dead_letters = 1000     # rejected deliveries kept per sink; 0 to 1000000
//! batch = 256                 # deliveries handed to a sink at once; 1 to 10000
//! retry_min = "1s"            # first wait after a failure, doubling; 10ms to 1h
//! retry_max = "5m"            # the longest wait; retry_min to 1d
//! breaker_failures = 5        # failed batches in a row that open the breaker; 1 to 1000
//! breaker_cooldown = "30s"    # then one probe after this; 10ms to 1d
//!
//! # [[sinks]]                 # zero to 32; none means alerts go to stdout
//! # name = "siem"             # unique; 1 to 64 characters of a-z, 0-9, '_', '-'
//! # type = "syslog"           # stdout | file | syslog | webhook | email | splunk_hec |
//! #                           # elasticsearch | postgres; the other keys are the type's
//! ```
//!
//! Values in environment variables are read the way figment reads them: `10` is a number,
//! `true` a boolean, anything else a string; a value that must stay a string although it looks
//! like a number is quoted, as in `DAEMONEYE_SITE__ID='"7"'`.
//!
//! # Errors
//!
//! Every error is a [`ConfigError`] whose message is a single line naming the source (a file
//! path, an environment variable such as `DAEMONEYE_COLLECTION__INTERVAL`, `command line`,
//! `embedded defaults` or a bundle layer's source), the full dotted key and the reason, so that an operator can fix the
//! right place without guessing.
//!
//! # What this module must never do
//!
//! It never writes, creates or repairs a file, never opens a network connection, never looks up
//! users (an unset `collector.user` is resolved by the collector, and a caller that can look
//! users up passes its check to [`load_checked`]), never logs or prints, and never panics on bad input. It never accepts a configuration it does not fully
//! understand either: unknown sections and keys, unreadable files and out-of-range values are
//! errors, because a security tool that silently runs with settings other than the ones its
//! operator wrote is worse than one that refuses to start.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::text;

pub use crate::ids::SiteId;
use bundle_layer::base;
pub use bundle_layer::{
    BundleLayer, LoadReport, MAX_BUNDLE_LAYER_BYTES, Overridden, load_report, validate_bundle_layer,
};
pub use bundles::{BundlesConfig, LicenseConfig, MAX_KEY_FILES};
pub use collection::{CollectionConfig, CollectorConfig};
pub use data_dir::{DATA_DIR_ENV, DataDirInputs, resolve_data_dir};
pub use detection::{DetectionConfig, StorageConfig};
pub use ipc::{IpcConfig, MIN_FRAME_BYTES};
pub use ledger::{LedgerConfig, LedgerHash};
pub use outbox::{MAX_SINKS, OutboxConfig, SinkConfig, SinkKind};
pub use overrides::Overrides;
pub use values::HumanDuration;
use values::{USER_NAME_RULE, is_valid_user_name};

mod bundle_layer;
mod bundles;
mod collection;
mod data_dir;
mod detection;
mod ipc;
mod ledger;
mod outbox;
mod overrides;
mod values;

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
# Hear the kernel's exec events as they happen (Linux's process connector: procmond subscribes
# while it is still root). Off, or where the host does not provide them, scans alone see
# processes, and health-check says so.
exec_events = true

[collector]
# User the collector drops privileges to (never root). Unset means "daemoneye" if that user
# exists, else a uid of the collector's own that no account or other process uses.
# user = "daemoneye"
# How often the agent asks procmond whether it is healthy.
health_interval = "5s"
# A crashed procmond is restarted after a delay that starts here, doubles with each crash in a
# row (with random jitter of up to a quarter), and never exceeds the maximum.
restart_backoff_min = "250ms"
restart_backoff_max = "30s"

[ipc]
# Largest frame (one message) accepted on the local sockets, in bytes (16 MiB).
max_frame_bytes = 16777216

[detection]
# Time one rule may run on one scan; a rule over budget is stopped, marked degraded and
# reported in an alert, and the other rules still run.
rule_timeout = "1s"
# Rows one rule may return per scan.
max_rows = 10000
# Heap the SQL engine may use, in bytes (128 MiB).
max_memory = 134217728
# Repeats of an alert within this window are folded into it (unless the rule names a window).
dedup_window = "1h"
# Load the built-in rule pack.
builtin_rules = true
# More rule files or directories of *.toml rule files.
# rules = ["/etc/daemoneye/rules"]

[storage]
# Scans kept in the event store, and their longest age; the older are deleted.
retention_scans = 1000
retention_age = "7d"

[ledger]
# Hash function of the audit ledger's Merkle tree: "blake3" or "sha256". Fixed when the
# ledger is created.
hash = "blake3"
# Time between two signed checkpoints of the ledger (more are made on demand).
checkpoint_interval = "5m"
# The background check of the whole ledger (every entry, index slot, tree node and signed
# checkpoint) reads at most this many bytes per second (8 MiB/s) ...
verify_bytes_per_sec = 8388608
# ... and starts when procmond starts, then this long after the previous check ended.
verify_interval = "1h"

[bundles]
# Only local files, the environment and the command line set this section: a config bundle
# may not (keys change through keys bundles). Minisign public key files (absolute paths, at
# most 64) trusted to sign bundles, and license bundles.
trusted_keys = ["/etc/daemoneye/keys/bundle.pub"]
license_keys = ["/etc/daemoneye/keys/license.pub"]
# How far a bundle's creation time may lie ahead of this host's clock (an expired bundle is
# refused at once).
max_clock_skew = "24h"
# Bounds of one bundle: its file (compressed, 64 MiB), its decompressed tar stream (256 MiB),
# their number, and the largest of them (16 MiB; at most max_expanded_bytes).
max_bundle_bytes = 67108864
max_expanded_bytes = 268435456
max_files = 10000
max_file_bytes = 16777216
# How often <data_dir>/inbox/ is checked for dropped bundles.
inbox_interval = "2s"

[license]
# Not settable by a config bundle either. After a license expires, its features keep working
# this long; then the agent falls back to the free tier. Core monitoring never stops.
grace = "14d"

[outbox]
# Every alert is kept for every sink until the sink acknowledged it. Per sink at most this
# many deliveries and payload bytes (256 MiB) wait; when full, the oldest are dropped, counted,
# shown by `outbox status` and written to the audit ledger (scanning is never held up).
max_alerts = 100000
max_bytes = 268435456
# Deliveries a sink refused as malformed are kept aside, at most this many per sink.
max_dead_letters = 1000
# Deliveries handed to a sink at once.
batch = 256
# A failed delivery waits retry_min, doubling (with jitter) per failure up to retry_max.
retry_min = "1s"
retry_max = "5m"
# After breaker_failures failed batches in a row a sink is left alone for breaker_cooldown,
# then one probe batch goes.
breaker_failures = 5
breaker_cooldown = "30s"

# [[sinks]] tables name where alerts go (stdout, file, syslog, webhook, email, splunk_hec,
# elasticsearch, postgres); with none, alerts go to stdout. See docs/sinks.md.
"#;

/// The system-wide configuration file.
pub const SYSTEM_CONFIG_FILE: &str = "/etc/daemoneye/config.toml";

/// Prefix of the environment variables that set configuration keys.
const ENV_PREFIX: &str = "DAEMONEYE_";

/// Separator between the section and the key in an environment variable name. A single
/// underscore cannot be used because key names themselves contain underscores.
const ENV_SEPARATOR: &str = "__";

/// Source names used in error messages for the layers that are not files.
const SOURCE_DEFAULTS: &str = "embedded defaults";
const SOURCE_ENV: &str = "environment";
const SOURCE_COMMAND_LINE: &str = "command line";

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
        /// `command line`, `embedded defaults` or a bundle layer's source.
        source_name: String,
        /// The full dotted key, for example `collection.interval`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string is not a duration (see [`HumanDuration`]).
    #[error(
        "invalid duration {}: expected a number and a unit such as \"500ms\", \"10s\", \
         \"5m\" or \"7d\"",
        text::quoted(.value)
    )]
    InvalidDuration {
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
    /// `[ipc]`: the local sockets.
    pub ipc: IpcConfig,
    /// `[detection]`: how rules run.
    pub detection: DetectionConfig,
    /// `[storage]`: how long scans are kept.
    pub storage: StorageConfig,
    /// `[ledger]`: the audit ledger.
    pub ledger: LedgerConfig,
    /// `[bundles]`: the keys trusted to sign bundles, and the bounds of a bundle.
    pub bundles: BundlesConfig,
    /// `[license]`: what happens when a license expires.
    pub license: LicenseConfig,
    /// `[outbox]`: the bounds and retry timing of the persistent alert outbox.
    pub outbox: OutboxConfig,
    /// `[[sinks]]`: where alerts go; none means a stdout sink.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkConfig>,
}

/// The `[site]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Identifies this installation in reports and alerts; no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<SiteId>,
}

/// A value that deserialized but is out of range: its key within its section, and why.
pub(crate) type Problem = (&'static str, String);

/// Which configuration sources [`load`] reads, besides the embedded defaults and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The configuration of the active config bundle, merged right above the embedded defaults.
    pub bundle_layer: Option<BundleLayer>,
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
            bundle_layer: None,
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
pub(super) fn absolute(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|path| path.is_absolute())
}

/// Loads, merges and validates the configuration.
///
/// See the [module documentation](self) for the order of the layers.
pub fn load(sources: &ConfigSources, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_checked(sources, overrides, |_| None)
}

/// What a check of the configuration against the host found (see [`load_checked`]): the
/// dotted key at fault, such as `collector.user`, and why; `None` when all is well.
pub type HostProblem = Option<(&'static str, String)>;

/// [`load`], then `check` on the valid configuration: a check against the host, which this
/// module never reads itself (a user lookup, for instance). Its problem becomes a
/// [`ConfigError::Invalid`] that names the layer which supplied the key, like every other.
pub fn load_checked(
    sources: &ConfigSources,
    overrides: &Overrides,
    check: impl FnOnce(&Config) -> HostProblem,
) -> Result<Config, ConfigError> {
    load_report(sources, overrides, check).map(|(config, _)| config)
}

/// Builds the figment from every layer, lowest precedence first.
fn layers(
    sources: &ConfigSources,
    overrides: &Overrides,
    bundle: Option<&Layer>,
) -> Result<Figment, ConfigError> {
    let mut figment = base(bundle)?;

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
        _ => text::escape(&error.to_string()).into_owned(),
    }
}

/// Parses TOML text into a table, with a reason on failure (on one line once escaped).
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
            reason: text::escape(&reason).into_owned(),
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

/// Where the value at `path` came from, for an error message (not escaped yet: [`invalid`]
/// does it).
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
        return file.display().to_string();
    }
    if metadata.name == SOURCE_ENV {
        // For the environment layer, the key "as written in the source" is the variable name.
        return metadata.interpolate(&Profile::Default, path);
    }
    metadata.name.to_string()
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
        ("ipc", config.ipc.problem()),
        ("detection", config.detection.problem()),
        ("storage", config.storage.problem()),
        ("ledger", config.ledger.problem()),
        ("bundles", config.bundles.problem()),
        ("license", config.license.problem()),
        ("outbox", config.outbox.problem()),
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
    if let Some((index, key, reason)) = outbox::sinks_problem(&config.sinks) {
        let source = source_name(figment.find_metadata("sinks"), &["sinks".to_owned()]);
        let dotted = format!("sinks[{index}].{key}");
        return Err(invalid(source, &dotted, reason));
    }
    Ok(())
}

/// A [`ConfigError::Invalid`], with every part made safe for one line.
fn invalid(source: impl AsRef<str>, key: &str, reason: impl AsRef<str>) -> ConfigError {
    ConfigError::Invalid {
        source_name: text::escape(source.as_ref()).into_owned(),
        key: text::escape(key).into_owned(),
        reason: text::escape(reason.as_ref()).into_owned(),
    }
}

/// A path for a one-line message.
fn display_path(path: &Path) -> String {
    text::escape(&path.display().to_string()).into_owned()
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's return type to figment::Result"
)]
mod tests;
