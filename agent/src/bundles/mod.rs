//! The agent's bundles: installing a verified bundle atomically, rolling one back, the inbox,
//! the history, and what the rest of the agent asks of them (the active rule packs, the config
//! layer, the license). Verification itself is lib's pure [`bundle::verify`]; this module does
//! the file I/O around it, synchronously (the caller runs it on a blocking thread).
//!
//! # On disk
//!
//! ```text
//! <data_dir>/bundles/                      0700
//!   state.json                             what is active (the one switch, see below)
//!   history.jsonl                          one JSON object per decision, newest last
//!   store/NAME/VERSION/                    a verified version, kept while active or previous
//!     bundle, bundle.minisig               the original bytes, as received (0600)
//!     manifest.toml                        its manifest, for people reading the store
//!   staging/NAME-VERSION-PID-N/            a version being written; never read
//! <data_dir>/inbox/                        0700: X.bundle + X.bundle.minisig dropped here
//!   applied/MS-X.bundle(.minisig)          the newest 20 pairs applied (MS: decision time)
//!   refused/MS-X.bundle(.minisig)          the newest 20 pairs refused
//! ```
//!
//! `state.json` (format 1, pretty JSON, written with [`fsutil::atomic_replace`]): `format`;
//! `active`, per name `{kind, current, previous}` where `current` and `previous` are
//! `{version, signer, applied_at_ms, sha256, created, expires, requires_license, summary}`
//! (`created` and `expires` in epoch seconds, `sha256` of the bundle file in hex, `signer` the
//! minisign key id); `highest`, per name the highest version ever accepted, never lowered, a
//! rollback included (so re-installing a rolled-back version is refused as a replay);
//! `newest_signed`, the newest `created` ever accepted (the clock is never judged earlier);
//! `keys`, lib's [`KeyState`]; `unrecorded`, the changes (applied, rolled back) whose ledger
//! entry the agent has not recorded yet: written by the same replacement that makes the
//! change, so a crash between the switch and the ledger loses no record (the history line
//! is added back at open if it is missing, the ledger entry at the next inbox look). A state
//! file that is damaged, unreadable or of another format stops bundles, not the agent:
//! [`Bundles::open`] keeps the reason ([`Bundles::broken`]), applies nothing, refuses every
//! install and rollback, writes nothing but history lines and touches neither the file nor
//! the store (starting over would forget the replay protection).
//!
//! # Apply, and why a crash leaves the old set or the new one
//!
//! 1. the verified bundle file, its signature and its manifest are written under `staging/`,
//!    each file created new (no link followed) and synced, the directory synced (the bundle's
//!    files are read back out of the stored bundle, every hash checked, and the file's SHA-256
//!    must be the one `state.json` recorded: three files to sync however many it carries);
//! 2. the staging directory is renamed to `store/NAME/VERSION` (a leftover of that version from
//!    an interrupted apply is removed first: `state.json` cannot name it, as the version is
//!    above every accepted one) and the parents are synced;
//! 3. `state.json` is replaced atomically: this is the switch;
//! 4. store versions that are neither active nor previous are removed.
//!
//! A crash before 3 leaves `state.json` naming the old set, whose files are untouched; after 3
//! it names the new set, whose files were durable before it. [`Bundles::open`] removes what
//! the crash left: everything in `staging/`, store versions `state.json` does not name, and
//! `atomic_replace`'s temporary files.
//!
//! A rollback makes `previous` current (its stored files re-checked first; refused when its
//! signing key was revoked since) and forgets
//! `previous`, in one replacement of `state.json`; `highest` stays. Keys bundles are not rolled
//! back: a revocation is permanent (a revoked key can never be trusted again), so undoing a
//! keys bundle is done by a newer keys bundle. Config and license bundles are one of a kind:
//! applying one replaces the active bundle of that kind under another name, and there is no
//! rollback across names (the replaced one is gone from the store).

mod apply;
mod history;
mod inbox;
mod report;
mod state;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemoneye_lib::bundle::content::{CONFIG_PATH, Content};
use daemoneye_lib::bundle::license::LICENSE_PATH;
use daemoneye_lib::bundle::{
    self, AgentVersion, KeyState, Kind, License, LicenseState, Role, Trust,
};
use daemoneye_lib::config::{BundleLayer, Config};
use daemoneye_lib::detection::sandbox;
use daemoneye_lib::fsutil;
use daemoneye_lib::ids::SiteId;
use daemoneye_lib::ipc::proto::{BundleAction, BundleDecision};
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::minisign::PublicKey;
use daemoneye_lib::text;

use state::{Entry, State};

/// A bundle's files: (bundle path, bytes), sorted by path.
type Files = Vec<(String, Vec<u8>)>;

/// The bundles directory's name in the data directory.
pub const DIR: &str = "bundles";
/// The inbox's name in the data directory.
pub const INBOX: &str = "inbox";
const STATE: &str = "state.json";
const HISTORY: &str = "history.jsonl";
/// The largest trusted key file read (a minisign public key file is two short lines).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// What the bundles need from the configuration.
#[derive(Debug, Clone)]
pub struct BundleSettings {
    /// `bundles.trusted_keys`: key files trusted to sign rules, config and keys bundles.
    pub trusted_keys: Vec<PathBuf>,
    /// `bundles.license_keys`: key files trusted to sign license bundles.
    pub license_keys: Vec<PathBuf>,
    /// The bounds of one bundle.
    pub limits: bundle::Limits,
    /// `bundles.max_clock_skew`.
    pub max_clock_skew: Duration,
    /// `site.id`.
    pub site: Option<SiteId>,
    /// `license.grace`.
    pub grace: Duration,
    /// The sandbox a rules bundle's fixtures run in.
    pub sandbox: sandbox::Limits,
    /// This agent's version, for `min_agent_version`.
    pub agent_version: AgentVersion,
}

impl BundleSettings {
    /// The settings of `config`.
    pub fn from_config(config: &Config) -> Self {
        let bundles = &config.bundles;
        Self {
            trusted_keys: bundles.trusted_keys.clone(),
            license_keys: bundles.license_keys.clone(),
            limits: bundle::Limits {
                max_bundle_bytes: bundles.max_bundle_bytes,
                max_expanded_bytes: bundles.max_expanded_bytes,
                max_files: bundles.max_files,
                max_file_bytes: bundles.max_file_bytes,
            },
            max_clock_skew: bundles.max_clock_skew.get(),
            site: config.site.id.clone(),
            grace: config.license.grace.get(),
            sandbox: crate::detector::limits(config),
            agent_version: agent_version(),
        }
    }
}

/// This agent's version. Cargo versions are always `major.minor.patch` (a unit test checks
/// this one parses), so the fallback is never taken.
pub fn agent_version() -> AgentVersion {
    AgentVersion::parse(env!("CARGO_PKG_VERSION")).unwrap_or(AgentVersion(0, 0, 0))
}

/// An active rules bundle's files, for the agent to parse into its rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRules {
    /// The bundle's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The license feature it needs to be in force.
    pub requires_license: Option<String>,
    /// Its files (bundle path, text), sorted by path.
    pub files: Vec<(String, String)>,
}

/// What [`Bundles::install_file`] decided or [`Bundles::rollback`] did.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The decision as the control socket answers it (and the history keeps it).
    pub proto: BundleDecision,
    /// The kind whose active set changed: the caller rebuilds the rules, reloads the
    /// configuration or re-evaluates the license gate. `None` for a refusal.
    pub changed: Option<Kind>,
    /// The audit ledger entry to record.
    pub ledger: Body,
}

impl Decision {
    /// Whether the bundle was applied.
    pub fn applied(&self) -> bool {
        self.proto.action == BundleAction::Applied as i32
    }
}

/// A configured trusted key file, read.
#[derive(Debug, Clone)]
struct ConfiguredKey {
    path: PathBuf,
    role: Role,
    key: PublicKey,
}

/// The agent's bundles (see the module doc).
#[derive(Debug)]
pub struct Bundles {
    dir: PathBuf,
    inbox: PathBuf,
    settings: BundleSettings,
    state: State,
    configured: Vec<ConfiguredKey>,
    key_problems: Vec<String>,
    trust: Trust,
    /// The files of each active bundle (current version), or why they are not used.
    loaded: BTreeMap<String, Result<Files, String>>,
    /// The inbox pairs of the previous poll.
    inbox_seen: BTreeMap<String, inbox::Pair>,
    /// Inbox pairs decided but not moved away (an I/O error): not taken again until they
    /// change.
    inbox_stuck: BTreeMap<String, inbox::Pair>,
    /// The latest time (seconds) this agent has seen, never lower than the newest signed
    /// time ever accepted: licenses are judged against it, so setting the clock back does not
    /// bring a lapsed license back.
    clock_mark: std::sync::atomic::AtomicI64,
    /// Why the last apply failed to write the store, until one succeeds.
    apply_error: Option<String>,
    /// Why `state.json` could not be read: then nothing is applied, rolled back or written.
    broken: Option<String>,
    /// Damage [`Bundles::recheck`] found in stored versions while the agent runs, by name.
    /// The content in force stays what was read at start (it is in memory, and was whole).
    store_damage: BTreeMap<String, String>,
}

impl Bundles {
    /// Opens the bundles of `data_dir` (see the module doc): creates `bundles/` and `inbox/`
    /// (0700) if missing, loads `state.json` (an error when it is damaged or unreadable),
    /// removes what an interrupted apply left, reads the configured key files (one that cannot
    /// be read is a problem in [`Bundles::status`], not an error) and re-checks every active
    /// bundle's files against its manifest (a damaged bundle is not used, and is a problem).
    pub fn open(data_dir: &Path, settings: BundleSettings) -> anyhow::Result<Self> {
        let dir = data_dir.join(DIR);
        let inbox = data_dir.join(INBOX);
        for path in [
            dir.clone(),
            dir.join("store"),
            dir.join("staging"),
            inbox.clone(),
        ] {
            store::ensure_dir(&path)?;
        }
        // A state file that cannot be read stops bundles, not the agent: detection goes on
        // with the built-in and local rules, every install is refused (the replay protection
        // is in that file), health says so, and nothing in the store is touched.
        let (state, broken) = match State::load(&dir.join(STATE)) {
            Ok(state) => (state, None),
            Err(err) => {
                let reason = format!("{err:#}");
                tracing::error!(reason = %reason, "bundles are off until the bundle state is repaired");
                (State::default(), Some(reason))
            }
        };
        if broken.is_none() {
            for path in store::prune(&dir, &state)? {
                tracing::warn!(
                    path = %path.display(),
                    "removed what an interrupted bundle apply left behind"
                );
            }
        }
        let mut key_problems = Vec::new();
        let mut configured = read_keys(&settings.trusted_keys, Role::Bundles, &mut key_problems);
        configured.extend(read_keys(
            &settings.license_keys,
            Role::Licenses,
            &mut key_problems,
        ));
        let mut loaded = BTreeMap::new();
        for (name, entry) in &state.active {
            let files = store::read(
                &dir,
                name,
                entry.current.version,
                &entry.current.sha256,
                &settings.limits,
            )
            .and_then(|stored| {
                if stored.manifest.header.kind == entry.kind {
                    Ok(stored.files)
                } else {
                    Err(format!(
                        "its manifest says {}, the state {}",
                        stored.manifest.header.kind, entry.kind
                    ))
                }
            });
            if let Err(reason) = &files {
                tracing::error!(
                    bundle = %name,
                    version = entry.current.version,
                    %reason,
                    "stored bundle damaged: its content is not used"
                );
            }
            loaded.insert(name.clone(), files);
        }
        let mut bundles = Self {
            dir,
            inbox,
            settings,
            state,
            configured,
            key_problems,
            trust: Trust::default(),
            loaded,
            inbox_seen: BTreeMap::new(),
            inbox_stuck: BTreeMap::new(),
            clock_mark: std::sync::atomic::AtomicI64::new(0),
            apply_error: None,
            broken,
            store_damage: BTreeMap::new(),
        };
        bundles.trust = bundles.make_trust();
        bundles.recover_history();
        Ok(bundles)
    }

    /// The configuration layer of the active config bundle, read before the agent's
    /// configuration exists (it is part of it). `None` when no config bundle is active, or when
    /// its stored file is damaged (logged; [`Bundles::open`] reports it too). A damaged
    /// `state.json` is an error, as in [`Bundles::open`].
    pub fn config_layer(data_dir: &Path) -> anyhow::Result<Option<BundleLayer>> {
        let dir = data_dir.join(DIR);
        let state = match State::load(&dir.join(STATE)) {
            Ok(state) => state,
            Err(err) => {
                // `open` reports it; the agent starts on its local configuration.
                tracing::error!(reason = %format!("{err:#}"), "the config bundle is not used");
                return Ok(None);
            }
        };
        let Some((name, entry)) = state.active.iter().find(|(_, e)| e.kind == Kind::Config) else {
            return Ok(None);
        };
        let version = entry.current.version;
        match store::read(
            &dir,
            name,
            version,
            &entry.current.sha256,
            &bundle::Limits::default(),
        ) {
            Ok(stored) => Ok(layer_of(name, version, &stored.files)),
            Err(reason) => {
                tracing::error!(
                    bundle = %name,
                    version,
                    %reason,
                    "stored config bundle damaged: its configuration is not used"
                );
                Ok(None)
            }
        }
    }

    /// The configuration layer of the active config bundle, as applied now.
    pub fn config_layer_now(&self) -> Option<BundleLayer> {
        let (name, entry) = self.active_of(Kind::Config)?;
        let files = self.loaded.get(name)?.as_ref().ok()?;
        layer_of(name, entry.current.version, files)
    }

    /// The active rules bundles whose files are intact: name and the license feature each
    /// needs (what [`Bundles::active_rules`] gives, without the files).
    pub fn rule_packs(&self) -> Vec<(String, Option<String>)> {
        self.state
            .active
            .iter()
            .filter(|(name, entry)| {
                entry.kind == Kind::Rules && self.loaded.get(*name).is_some_and(Result::is_ok)
            })
            .map(|(name, entry)| (name.clone(), entry.current.requires_license.clone()))
            .collect()
    }

    /// The active rules bundles whose files are intact, with what they need to be in force.
    pub fn active_rules(&self) -> Vec<ActiveRules> {
        self.state
            .active
            .iter()
            .filter(|(_, entry)| entry.kind == Kind::Rules)
            .filter_map(|(name, entry)| {
                let files = self.loaded.get(name)?.as_ref().ok()?;
                Some(ActiveRules {
                    name: name.clone(),
                    version: entry.current.version,
                    requires_license: entry.current.requires_license.clone(),
                    files: files
                        .iter()
                        .filter_map(|(path, bytes)| {
                            Some((path.clone(), String::from_utf8(bytes.clone()).ok()?))
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// The license every gate asks: the active license bundle's, this host's site, the grace.
    pub fn license_state(&self) -> LicenseState {
        LicenseState {
            license: self.active_license(),
            site: self.settings.site.clone(),
            grace_secs: i64::try_from(self.settings.grace.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The key state keys bundles made.
    pub fn key_state(&self) -> &KeyState {
        &self.state.keys
    }

    fn active_license(&self) -> Option<License> {
        let (name, _) = self.active_of(Kind::License)?;
        let files = self.loaded.get(name)?.as_ref().ok()?;
        let (_, bytes) = files.iter().find(|(path, _)| path == LICENSE_PATH)?;
        License::parse(std::str::from_utf8(bytes).ok()?).ok()
    }

    fn active_of(&self, kind: Kind) -> Option<(&String, &Entry)> {
        self.state.active.iter().find(|(_, e)| e.kind == kind)
    }

    /// The time (seconds since the epoch) licenses and rule packs are judged at for the
    /// system clock `now_ms`: never earlier than a time this agent has judged at before, nor
    /// than the newest signed time it ever accepted.
    pub fn judged_now(&self, now_ms: i64) -> i64 {
        use std::sync::atomic::Ordering;
        let now = now_ms.div_euclid(1000).max(self.state.newest_signed);
        self.clock_mark.fetch_max(now, Ordering::Relaxed).max(now)
    }

    /// Reads every stored version the state names (current and previous) back, hashes
    /// checked, and keeps what is damaged as a problem: a disk that rots under the store, or
    /// hands that change it, show in health before a restart or a rollback needs the copy.
    /// The agent calls it now and then, on a blocking thread.
    pub fn recheck(&mut self) {
        let mut damage = BTreeMap::new();
        for (name, entry) in &self.state.active {
            for applied in std::iter::once(&entry.current).chain(entry.previous.as_ref()) {
                if let Err(reason) = store::read(
                    &self.dir,
                    name,
                    applied.version,
                    &applied.sha256,
                    &self.settings.limits,
                ) {
                    tracing::error!(bundle = %name, version = applied.version, %reason, "stored bundle damaged");
                    damage.insert(format!("{name} version {}", applied.version), reason);
                }
            }
        }
        self.store_damage = damage;
    }

    /// Why the bundle state cannot be read, when it cannot: no bundle is applied then.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Reads the configured key files again (an operator installs a key file and then a
    /// bundle, without restarting the agent) and rebuilds the trust.
    pub fn reload_keys(&mut self) {
        let mut problems = Vec::new();
        let mut configured = read_keys(&self.settings.trusted_keys, Role::Bundles, &mut problems);
        configured.extend(read_keys(
            &self.settings.license_keys,
            Role::Licenses,
            &mut problems,
        ));
        self.configured = configured;
        self.key_problems = problems;
        self.trust = self.make_trust();
    }

    fn make_trust(&self) -> Trust {
        let of = |role: Role| -> Vec<PublicKey> {
            self.configured
                .iter()
                .filter(|key| key.role == role)
                .map(|key| key.key.clone())
                .collect()
        };
        Trust::new(&of(Role::Bundles), &of(Role::Licenses), &self.state.keys)
    }
}

/// Reads the key files `paths` of `role`; each that cannot be read or parsed is a problem line.
///
/// A file that does not exist is no problem: a host that takes no bundles (the default
/// `/etc/daemoneye/keys/*.pub` never installed) is not degraded; it trusts no key, which
/// `bundle status` and health say, and every bundle is refused as signed by an untrusted key.
fn read_keys(paths: &[PathBuf], role: Role, problems: &mut Vec<String>) -> Vec<ConfiguredKey> {
    let mut keys = Vec::new();
    for path in paths {
        if std::fs::symlink_metadata(path)
            .is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound)
        {
            continue;
        }
        let key = fsutil::read_regular_bounded(path, MAX_KEY_FILE_BYTES)
            .map_err(|err| err.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned()))
            .and_then(|text| PublicKey::parse(&text).map_err(|err| err.to_string()));
        match key {
            Ok(key) => keys.push(ConfiguredKey {
                path: path.clone(),
                role,
                key,
            }),
            Err(reason) => {
                let line = format!(
                    "trusted {} key file {}: {reason}",
                    role.as_str(),
                    text::quoted(&path.display().to_string())
                );
                tracing::warn!("{line}");
                problems.push(line);
            }
        }
    }
    keys
}

/// The configuration layer of a config bundle's files.
fn layer_of(name: &str, version: u64, files: &[(String, Vec<u8>)]) -> Option<BundleLayer> {
    let (_, bytes) = files.iter().find(|(path, _)| path == CONFIG_PATH)?;
    Some(BundleLayer {
        source: format!("bundle {name} version {version}"),
        text: String::from_utf8(bytes.clone()).ok()?,
    })
}

/// What a bundle carries, in a few words.
fn summary(content: &Content, files: usize) -> String {
    match content {
        Content::Rules(rules) => format!("{} rules in {files} files", rules.len()),
        Content::Config(_) => "a configuration layer".to_owned(),
        Content::License(license) => format!(
            "a license for site {}, tier {}, {} features",
            license.site,
            license.tier,
            license.features.len()
        ),
        Content::Keys(changes) => format!(
            "adds {} keys, revokes {}",
            changes.add.len(),
            changes.revoke.len()
        ),
    }
}
