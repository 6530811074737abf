//! `manifest.toml`, the first entry of every bundle, and `bundle.toml`, the part of it an
//! author writes in a bundle's source directory (everything but the file list).
//!
//! Both are parsed strictly: unknown keys, a missing key, a name or site that is not a checked
//! id, a time that is not RFC 3339 in UTC, a version of zero are errors. The manifest is
//! written by [`Manifest::to_toml`] with its keys in one fixed order, so that the same source
//! gives the same bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::BundleError;
use crate::ids::{BundleName, SiteId};

/// The manifest format this code writes and reads.
pub const FORMAT: u32 = 1;
/// The largest `manifest.toml` read (1 MiB: a manifest of 10,000 files is about 1.5 MiB…
/// so file lists are bounded by `bundles.max_files` too; see [`super::Limits`]).
pub const MAX_MANIFEST_BYTES: u64 = 2 * 1024 * 1024;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// The most sites one bundle names.
pub const MAX_SITES: usize = 1024;

/// What a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Detection rules under `rules/`.
    Rules,
    /// `config/config.toml`, a configuration layer right above the embedded defaults.
    Config,
    /// `license/license.toml`, a site license.
    License,
    /// `keys/keys.toml`, trusted keys added and revoked.
    Keys,
}

impl Kind {
    /// The kind's name, as in the manifest.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Config => "config",
            Self::License => "license",
            Self::Keys => "keys",
        }
    }

    /// The one top-level directory a bundle of this kind carries its files in.
    pub const fn dir(self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `major.minor.patch` version, for `min_agent_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentVersion(pub u64, pub u64, pub u64);

impl AgentVersion {
    /// Parses `1.2.3` (a pre-release or build suffix after `-` or `+` is ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let core = text.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<&str> = core.split('.').collect();
        let number = |part: &str| {
            (!part.is_empty() && part.len() <= 9 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        };
        match parts.as_slice() {
            [major, minor, patch] => match (number(major), number(minor), number(patch)) {
                (Some(a), Some(b), Some(c)) => Ok(Self(a, b, c)),
                _ => Err(bad_version(text)),
            },
            _ => Err(bad_version(text)),
        }
    }
}

fn bad_version(text: &str) -> String {
    format!(
        "{} is not a version such as \"0.1.0\"",
        crate::text::quoted(&text.chars().take(32).collect::<String>())
    )
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Seconds since the Unix epoch, read and written as RFC 3339 in UTC (`2026-12-03T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339 in UTC, whole seconds or with a fraction (which is dropped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = || crate::text::quoted(&text.chars().take(40).collect::<String>()).to_string();
        let time = humantime::parse_rfc3339(text).map_err(|_| {
            format!(
                "{} is not a time in RFC 3339 form such as \"2026-12-03T00:00:00Z\"",
                shown()
            )
        })?;
        let secs = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{} is before 1970", shown()))?
            .as_secs();
        i64::try_from(secs)
            .map(Self)
            .map_err(|_| format!("{} is too far ahead", shown()))
    }

    /// The time as `2026-12-03T00:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = u64::try_from(self.0).unwrap_or(0);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The sites a bundle is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sites {
    /// Every site (`sites = ["*"]`).
    All,
    /// These sites only.
    Only(Vec<SiteId>),
}

impl Sites {
    /// Whether a host of `site` may apply the bundle.
    pub fn admits(&self, site: Option<&SiteId>) -> bool {
        match self {
            Self::All => true,
            Self::Only(sites) => site.is_some_and(|site| sites.contains(site)),
        }
    }
}

impl fmt::Display for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all sites"),
            Self::Only(sites) => {
                let names: Vec<&str> = sites.iter().map(SiteId::as_str).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

impl Serialize for Sites {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => ["*"].serialize(serializer),
            Self::Only(sites) => sites.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Sites {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        if names.iter().any(|name| name == "*") {
            return if names.len() == 1 {
                Ok(Self::All)
            } else {
                Err(serde::de::Error::custom(
                    "\"*\" (all sites) must stand alone",
                ))
            };
        }
        if names.is_empty() {
            return Err(serde::de::Error::custom(
                "no site: name sites, or [\"*\"] for all",
            ));
        }
        if names.len() > MAX_SITES {
            return Err(serde::de::Error::custom(format!(
                "more than {MAX_SITES} sites"
            )));
        }
        let mut sites = Vec::with_capacity(names.len());
        for name in names {
            let site = SiteId::parse(&name).map_err(serde::de::Error::custom)?;
            if sites.contains(&site) {
                return Err(serde::de::Error::custom(format!("site {site} named twice")));
            }
            sites.push(site);
        }
        Ok(Self::Only(sites))
    }
}

/// What an author writes in `bundle.toml` and the manifest repeats: everything but the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The bundle's name; with the version it makes the file name `NAME-VERSION.bundle`.
    pub name: BundleName,
    /// What it carries.
    pub kind: Kind,
    /// Above every version of this name the agent ever accepted.
    pub version: u64,
    /// When it was made (from the source, never the clock: the build is deterministic).
    pub created: Timestamp,
    /// After this the agent refuses to apply it.
    pub expires: Timestamp,
    /// The sites it is for.
    pub sites: Sites,
    /// The oldest agent that may apply it.
    pub min_agent_version: String,
    /// A license feature this rule pack needs to be active (rules bundles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_license: Option<String>,
    /// What it is, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Header {
    /// The checks serde cannot make.
    pub fn check(&self) -> Result<(), String> {
        if self.version == 0 {
            return Err("version: must be 1 or more".to_owned());
        }
        if self.expires <= self.created {
            return Err(format!(
                "expires: {} is not after created ({})",
                self.expires, self.created
            ));
        }
        AgentVersion::parse(&self.min_agent_version)
            .map_err(|reason| format!("min_agent_version: {reason}"))?;
        if let Some(feature) = &self.requires_license {
            if self.kind != Kind::Rules {
                return Err("requires_license: only a rules bundle may need a license".to_owned());
            }
            super::license::check_feature(feature)
                .map_err(|reason| format!("requires_license: {reason}"))?;
        }
        if let Some(description) = &self.description
            && (description.len() > MAX_DESCRIPTION
                || description.chars().any(crate::text::needs_escape))
        {
            return Err(format!(
                "description: at most {MAX_DESCRIPTION} bytes of printable text on one line"
            ));
        }
        if self.kind == Kind::License && self.sites == Sites::All {
            return Err("sites: a license bundle is for one site, not all".to_owned());
        }
        Ok(())
    }

    /// `NAME-VERSION.bundle`, the file name the bundle goes by.
    pub fn file_name(&self) -> String {
        format!("{}-{}.bundle", self.name, self.version)
    }

    /// The trusted comment of its signature: made from the manifest only (see
    /// [`super::check_trusted_comment`]).
    pub fn trusted_comment(&self) -> String {
        format!(
            "bundle:{}\tversion:{}\tkind:{}\tfile:{}",
            self.name,
            self.version,
            self.kind,
            self.file_name()
        )
    }

    /// Parses `bundle.toml`.
    pub fn parse_source(text: &str) -> Result<Self, String> {
        let header: Self = toml::from_str(text).map_err(|err| one_line(&err.to_string()))?;
        header.check()?;
        Ok(header)
    }
}

/// A file the bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path inside the bundle (see [`super::check_path`]).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The lower-case hex of its BLAKE3 hash.
    pub blake3: String,
}

/// `manifest.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format, [`FORMAT`].
    pub format: u32,
    /// Name, kind, version, times, sites, minimum agent version.
    #[serde(flatten)]
    pub header: Header,
    /// Every file, sorted by path, `manifest.toml` itself excluded.
    #[serde(rename = "file", default)]
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Parses and checks a manifest's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::BadManifest { reason };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8".to_owned()))?;
        // `flatten` and `deny_unknown_fields` do not work together in serde; unknown keys are
        // found by comparing against the keys the manifest may have.
        let table: toml::Table =
            toml::from_str(text).map_err(|err| bad(one_line(&err.to_string())))?;
        for key in table.keys() {
            if !MANIFEST_KEYS.contains(&key.as_str()) {
                return Err(bad(format!("unknown key {}", crate::text::quoted(key))));
            }
        }
        let manifest: Self = toml::from_str(text).map_err(|err| bad(one_line(&err.to_string())))?;
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "format {} is not {FORMAT}, the format this agent reads",
                manifest.format
            )));
        }
        manifest.header.check().map_err(bad)?;
        let mut previous: Option<&str> = None;
        for file in &manifest.files {
            super::check_path(&file.path, manifest.header.kind).map_err(bad)?;
            if previous.is_some_and(|previous| previous >= file.path.as_str()) {
                return Err(bad(format!(
                    "file {} is out of order or named twice",
                    crate::text::quoted(&file.path)
                )));
            }
            previous = Some(&file.path);
            if file.blake3.len() != 64
                || !file
                    .blake3
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(format!(
                    "file {}: blake3 is not 64 lower-case hex digits",
                    crate::text::quoted(&file.path)
                )));
            }
        }
        if manifest.files.is_empty() {
            return Err(bad("it lists no file".to_owned()));
        }
        Ok(manifest)
    }

    /// The manifest as TOML, keys in a fixed order.
    pub fn to_toml(&self) -> Result<String, BundleError> {
        toml::to_string(self).map_err(|err| BundleError::BadManifest {
            reason: one_line(&err.to_string()),
        })
    }
}

/// The keys a manifest may have at its top level.
const MANIFEST_KEYS: &[&str] = &[
    "format",
    "name",
    "kind",
    "version",
    "created",
    "expires",
    "sites",
    "min_agent_version",
    "requires_license",
    "description",
    "file",
];

/// An error message from a parser on one line.
pub(crate) fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    crate::text::escape(&joined.join(" ")).into_owned()
}
