//! Signed bundles: how rules, configuration, licenses and key changes reach an air-gapped host.
//!
//! A bundle is `NAME-VERSION.bundle`, a zstd-compressed tar whose first entry is
//! `manifest.toml` ([`manifest`]), then the files of its kind, sorted, under `rules/`,
//! `config/`, `license/` or `keys/`; beside it `NAME-VERSION.bundle.minisig`, a minisign
//! prehashed signature over the whole file. `docs/airgap/bundle-format.md` gives the format
//! byte by byte.
//!
//! - [`pack`] builds a bundle from a source directory, deterministically (sorted entries,
//!   mtime 0, uid and gid 0, mode 0644, zstd level [`pack::ZSTD_LEVEL`], the trusted comment
//!   made from the manifest), after [`content`] validated every file and ran every rule's
//!   fixtures.
//! - [`open`] is the verification: a pure function of the bundle's bytes, its signature, the
//!   trusted keys ([`trust`]), what is active and `now`, whose success is a [`Verified`]
//!   that nothing else can make.
//! - [`license`] is the site license and the question every gate asks.
//!
//! Pure: nothing here opens a file (but [`pack::read_source`], which reads the author's
//! source directory), reads the clock or spawns anything. Behind the `bundle` feature, which
//! procmond never enables.

pub mod content;
pub mod license;
pub mod manifest;
pub mod open;
pub mod pack;
pub mod trust;

pub use license::{License, LicenseState, Standing};
pub use manifest::{AgentVersion, FileEntry, Header, Kind, Manifest, Sites, Timestamp};
pub use open::{Bundle, Policy, SiteCheck, Verified, verify};
pub use trust::{KeyChanges, KeyState, Role, Trust};

use crate::minisign::{KeyId, MinisignError};

/// The longest path inside a bundle, in bytes (fits a ustar name field, no extension needed).
pub const MAX_PATH_BYTES: usize = 100;
/// The most components a path inside a bundle has (`rules/linux/x.toml` has three).
pub const MAX_PATH_DEPTH: usize = 4;

/// The bounds of one bundle (`[bundles]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest bundle file (compressed).
    pub max_bundle_bytes: u64,
    /// The most bytes the tar stream expands to (headers included).
    pub max_expanded_bytes: u64,
    /// The most files, `manifest.toml` included.
    pub max_files: u64,
    /// The largest single file.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bundle_bytes: 64 * 1024 * 1024,
            max_expanded_bytes: 256 * 1024 * 1024,
            max_files: 10_000,
            max_file_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why a bundle was refused (or could not be built): one variant per verification step, in
/// the order [`open::verify`] takes them. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Step 1: the file or its signature is too large (or empty).
    #[error("the {what} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// `bundle file`, `signature file`.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// Step 2: the signature does not verify with a trusted key (or is malformed, legacy,
    /// from a revoked key).
    #[error("signature: {0}")]
    Signature(MinisignError),
    /// Step 2: signed by a key that keys bundles revoked.
    #[error("signature: signed by key {key_id}, which was revoked by {by}")]
    RevokedKey {
        /// The key.
        key_id: KeyId,
        /// The keys bundle that revoked it.
        by: String,
    },
    /// Step 3 (and the source check of a build): the manifest is missing, too big or bad.
    #[error("manifest: {reason}")]
    BadManifest {
        /// What is wrong.
        reason: String,
    },
    /// Step 3: the trusted comment names another bundle or version.
    #[error("the signature's trusted comment {comment} does not name this bundle ({expected})")]
    CommentMismatch {
        /// The comment, quoted and escaped.
        comment: String,
        /// What the manifest says.
        expected: String,
    },
    /// Step 3: a license bundle signed by a bundle key, or the other way round.
    #[error("signature: key {key_id} may not sign a {kind} bundle (it is trusted for {role} only)")]
    WrongRole {
        /// The key.
        key_id: KeyId,
        /// The bundle's kind.
        kind: Kind,
        /// What the key may sign.
        role: &'static str,
    },
    /// Step 4: the compressed stream or the tar inside it is damaged or exceeds a bound.
    #[error("archive: {reason}")]
    Archive {
        /// What is wrong.
        reason: String,
    },
    /// Step 5: an entry that is not a plain file at a plain path.
    #[error("entry {path}: {reason}")]
    BadEntry {
        /// The entry's path, quoted and escaped.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Step 6: a file's size or hash differs from the manifest, or the manifest and the files
    /// do not list the same paths.
    #[error("file {path}: {reason}")]
    Mismatch {
        /// The path, quoted and escaped.
        path: String,
        /// What differs.
        reason: String,
    },
    /// Step 7: not above every accepted version of its name.
    #[error(
        "{name} version {version} is not above version {highest}, the newest ever accepted (a rollback or a replay)"
    )]
    NotNewer {
        /// The bundle name.
        name: String,
        /// Its version.
        version: u64,
        /// The newest accepted.
        highest: u64,
    },
    /// Step 8: expired.
    #[error("expired at {expires} (now is {now})")]
    Expired {
        /// When it expired.
        expires: Timestamp,
        /// The time it was judged at.
        now: Timestamp,
    },
    /// Step 8: created beyond the allowed clock skew in the future.
    #[error("not yet valid: created {created}, more than {skew_secs} s after now ({now})")]
    NotYetValid {
        /// When it says it was made.
        created: Timestamp,
        /// The time it was judged at.
        now: Timestamp,
        /// `bundles.max_clock_skew`.
        skew_secs: u64,
    },
    /// Step 9: for other sites.
    #[error("for {sites}, not for this host's site ({site})")]
    WrongSite {
        /// What the manifest names.
        sites: String,
        /// This host's `site.id`, or `none set`.
        site: String,
    },
    /// Step 10: needs a newer agent.
    #[error("needs agent version {needed} or later; this agent is {have}")]
    AgentTooOld {
        /// `min_agent_version`.
        needed: String,
        /// This agent.
        have: String,
    },
    /// Step 11: a rule, config, license or key file does not validate.
    #[error("content: {reason}")]
    Content {
        /// What is wrong, with the file.
        reason: String,
    },
    /// Building: the source directory cannot be read or holds something a bundle may not.
    #[error("source: {reason}")]
    Source {
        /// What is wrong.
        reason: String,
    },
}

impl BundleError {
    /// A short stable name of the step that refused, for `bundle history` and tests.
    pub fn step(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "size",
            Self::Signature(_) | Self::RevokedKey { .. } | Self::WrongRole { .. } => "signature",
            Self::BadManifest { .. } => "manifest",
            Self::CommentMismatch { .. } => "trusted-comment",
            Self::Archive { .. } => "archive",
            Self::BadEntry { .. } => "entry",
            Self::Mismatch { .. } => "hash",
            Self::NotNewer { .. } => "version",
            Self::Expired { .. } | Self::NotYetValid { .. } => "time",
            Self::WrongSite { .. } => "site",
            Self::AgentTooOld { .. } => "agent-version",
            Self::Content { .. } => "content",
            Self::Source { .. } => "source",
        }
    }
}

/// Checks a path inside a bundle of `kind`: relative, under the kind's directory, at most
/// [`MAX_PATH_DEPTH`] components of `A-Z a-z 0-9 . _ -` not starting with a dot, at most
/// [`MAX_PATH_BYTES`] bytes. `manifest.toml` is checked by its callers, not here.
pub fn check_path(path: &str, kind: Kind) -> Result<(), String> {
    let shown = || crate::text::quoted(&path.chars().take(120).collect::<String>()).to_string();
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "path {} is longer than {MAX_PATH_BYTES} bytes",
            shown()
        ));
    }
    if path.starts_with('/') {
        return Err(format!("path {} is absolute", shown()));
    }
    let parts: Vec<&str> = path.split('/').collect();
    // `.` and `..` first: `rules/../../etc/x` must be named as leaving the bundle, not as
    // merely too deep.
    if parts.iter().any(|part| *part == ".." || *part == ".") {
        return Err(format!("path {} leaves the bundle", shown()));
    }
    if parts.len() > MAX_PATH_DEPTH {
        return Err(format!(
            "path {} is deeper than {MAX_PATH_DEPTH} components",
            shown()
        ));
    }
    for part in &parts {
        let ok = !part.is_empty()
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!(
                "path {} has a component that is empty, hidden or not of A-Z, a-z, 0-9, '.', '_' and '-'",
                shown()
            ));
        }
    }
    if parts.len() < 2 || parts.first() != Some(&kind.dir()) {
        return Err(format!(
            "path {} is not under {}/, where a {kind} bundle keeps its files",
            shown(),
            kind.dir()
        ));
    }
    Ok(())
}

/// Checks a signature's trusted comment against the manifest. Two forms name a bundle:
/// ours, `bundle:NAME<TAB>version:N<TAB>…`, whose `bundle` and `version` must both match;
/// and stock `minisign -S`'s default, `timestamp:T<TAB>file:NAME-VERSION.bundle<TAB>hashed`,
/// whose `file` must be the bundle's file name. Every `bundle`, `version` and `file` field
/// present must match; `bundle` and `version` together, or `file`, must be present.
pub fn check_trusted_comment(comment: &str, header: &Header) -> Result<(), BundleError> {
    let mut fields = std::collections::BTreeMap::new();
    for field in comment.split('\t') {
        if let Some((key, value)) = field.split_once(':')
            && matches!(key, "bundle" | "version" | "file")
        {
            // A field given twice must match both times.
            fields.entry(key).or_insert_with(Vec::new).push(value);
        }
    }
    let matches = |key: &str, expected: &str| {
        fields
            .get(key)
            .is_none_or(|values| values.iter().all(|value| *value == expected))
    };
    let ours = fields.contains_key("bundle") && fields.contains_key("version");
    let stock = fields.contains_key("file");
    if (ours || stock)
        && matches("bundle", header.name.as_str())
        && matches("version", &header.version.to_string())
        && matches("file", &header.file_name())
    {
        return Ok(());
    }
    Err(BundleError::CommentMismatch {
        comment: crate::text::quoted(&comment.chars().take(200).collect::<String>()).to_string(),
        expected: format!("bundle:{} version:{}", header.name, header.version),
    })
}

#[cfg(test)]
mod tests;
