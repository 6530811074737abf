//! Verification: a pure function of a bundle's bytes, its signature's bytes, the trusted keys,
//! what is active and `now`. Its success is a [`Verified<Bundle>`], which only [`verify`] can
//! make; the agent applies nothing else.
//!
//! The steps, in order, each with its own [`BundleError`]:
//!
//! 1. sizes: the bundle within `max_bundle_bytes` and not empty, the signature within
//!    minisign's bound;
//! 2. the signature, over the whole file, with `minisign-verify` against the trusted keys
//!    (a revoked key named as such) — before one byte is decompressed;
//! 3. the manifest, the first entry, within [`MAX_MANIFEST_BYTES`]: parsed, then the trusted
//!    comment must name its bundle and version, and the signing key must have the role the
//!    kind needs (license bundles: a license key; every other kind: a bundle key);
//! 4. decompression bounded: the zstd window (128 MiB at most), the expanded bytes, the file
//!    count, each file's size;
//! 5. every entry a regular file at a checked path ([`super::check_path`]): no `..`, no
//!    absolute path, no link, device, fifo or directory entry, no path twice;
//! 6. every file's size and BLAKE3 equal to the manifest's, and no file missing or extra;
//! 7. the version above every version of the name ever accepted (rollback and replay);
//! 8. not expired and not created beyond `max_clock_skew` in the future, both judged at
//!    `max(now, newest signed time ever accepted)`;
//! 9. the site; 10. the minimum agent version; 11. the content ([`super::content`]).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

use super::content::{self, Content};
use super::manifest::{AgentVersion, MAX_MANIFEST_BYTES, Manifest, Timestamp};
use super::pack::MANIFEST_PATH;
use super::trust::{Role, Trust};
use super::{BundleError, Kind, Limits, check_path, check_trusted_comment};
use crate::detection::sandbox::Limits as SandboxLimits;
use crate::ids::SiteId;
use crate::minisign::{self, KeyId, SignatureFile};

/// The largest zstd window accepted: 2^27 bytes (128 MiB), what `zstd` itself accepts by
/// default; a frame asking for more is refused rather than allocated.
pub const MAX_WINDOW_LOG: u32 = 27;

/// Which site check [`verify`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteCheck<'a> {
    /// The office side (`daemoneye-bundler verify`): no site to judge.
    Skip,
    /// An agent whose `site.id` is this.
    Host(Option<&'a SiteId>),
}

/// Everything besides the bytes that verification depends on.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// The keys trusted now.
    pub trust: &'a Trust,
    /// The bounds.
    pub limits: Limits,
    /// The system clock, in seconds since the epoch.
    pub now: i64,
    /// The newest `created` of every bundle ever accepted (0 if none): the clock never goes
    /// back behind it.
    pub newest_signed: i64,
    /// `bundles.max_clock_skew`, in seconds.
    pub max_clock_skew: u64,
    /// The site check.
    pub site: SiteCheck<'a>,
    /// This agent's version; `None` skips the check (the office side).
    pub agent_version: Option<AgentVersion>,
    /// The newest version ever accepted of each bundle name.
    pub highest: &'a BTreeMap<String, u64>,
    /// The sandbox bounds the rules' fixtures run under.
    pub sandbox: SandboxLimits,
}

/// A bundle whose every check passed.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// The files, sorted by path, as the manifest lists them.
    pub files: Vec<(String, Vec<u8>)>,
    /// The content, parsed.
    pub content: Content,
    /// The key that signed it.
    pub signer: KeyId,
    /// The SHA-256 of the bundle file (what the ledger records).
    pub sha256: [u8; 32],
}

/// A value that [`verify`] vouches for. Its field is private: nothing outside this module can
/// make one, so code that takes a `Verified<Bundle>` takes a bundle that passed every step.
#[derive(Debug, Clone)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    /// The verified value.
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// The SHA-256 of `bytes`, for the ledger's bundle entries (also of refused bundles).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What [`read_manifest`] found before any check of the signature: for
/// `daemoneye-bundler inspect` and for naming a refused bundle in the history.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The manifest, if it could be read and parsed.
    pub manifest: Result<Manifest, String>,
    /// Entries (path, size, entry type) as the tar lists them, as far as they could be read.
    pub entries: Vec<(String, u64, String)>,
}

/// Reads a bundle without trusting it: the manifest and the entry list, within `limits`.
pub fn read_manifest(bytes: &[u8], limits: &Limits) -> Unverified {
    let mut out = Unverified {
        manifest: Err("not read".to_owned()),
        entries: Vec::new(),
    };
    let counter = Rc::new(Cell::new(0u64));
    let result = (|| -> Result<(), BundleError> {
        let reader = bounded_decoder(bytes, limits, &counter)?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|err| archive_error(&err, &counter, limits))?;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|err| archive_error(&err, &counter, limits))?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = format!("{:?}", entry.header().entry_type());
            let size = entry.size();
            if index == 0 && path == MANIFEST_PATH && size <= MAX_MANIFEST_BYTES {
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(|err| archive_error(&err, &counter, limits))?;
                out.manifest = Manifest::parse(&text).map_err(|err| err.to_string());
            }
            out.entries.push((path, size, kind));
            if out.entries.len() as u64 > limits.max_files {
                return Err(BundleError::Archive {
                    reason: format!("more than {} entries", limits.max_files),
                });
            }
        }
        Ok(())
    })();
    if let Err(err) = result
        && out.manifest.is_err()
    {
        out.manifest = Err(err.to_string());
    }
    out
}

/// Verifies a bundle (see the module doc for the steps).
pub fn verify(
    bytes: &[u8],
    signature: &[u8],
    policy: &Policy<'_>,
) -> Result<Verified<Bundle>, BundleError> {
    let limits = &policy.limits;
    // Step 1: sizes.
    let size = bytes.len() as u64;
    if size > limits.max_bundle_bytes {
        return Err(BundleError::TooLarge {
            what: "bundle file",
            size,
            limit: limits.max_bundle_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(BundleError::Archive {
            reason: "the bundle file is empty".to_owned(),
        });
    }
    let sig_limit = minisign::MAX_SIGNATURE_FILE_BYTES as u64;
    if signature.len() as u64 > sig_limit {
        return Err(BundleError::TooLarge {
            what: "signature file",
            size: signature.len() as u64,
            limit: sig_limit,
        });
    }

    // Step 2: the signature, before anything is decompressed.
    let signature_text = std::str::from_utf8(signature).map_err(|_| {
        BundleError::Signature(minisign::MinisignError::Malformed {
            file: minisign::FileKind::Signature,
            reason: "it is not UTF-8",
        })
    })?;
    let signature = SignatureFile::parse(signature_text).map_err(BundleError::Signature)?;
    if policy.trust.revoked.contains(&signature.key_id()) {
        return Err(BundleError::RevokedKey {
            key_id: signature.key_id(),
            by: "a keys bundle".to_owned(),
        });
    }
    let verified = minisign::verify_reader(&policy.trust.all(), &signature, bytes)
        .map_err(BundleError::Signature)?;

    // Steps 3 to 6: the archive, with step 3's checks as soon as the manifest is read.
    let (manifest, files) = unpack_checked(bytes, limits, |manifest| {
        let header = &manifest.header;
        check_trusted_comment(verified.trusted_comment(), header)?;
        let role = if header.kind == Kind::License {
            Role::Licenses
        } else {
            Role::Bundles
        };
        if !policy.trust.may_sign(verified.key_id(), role) {
            return Err(BundleError::WrongRole {
                key_id: verified.key_id(),
                kind: header.kind,
                role: policy
                    .trust
                    .role_of(verified.key_id())
                    .map_or("nothing", Role::as_str),
            });
        }
        Ok(())
    })?;
    let header = &manifest.header;

    // Step 7: rollback and replay.
    if let Some(&highest) = policy.highest.get(header.name.as_str())
        && header.version <= highest
    {
        return Err(BundleError::NotNewer {
            name: header.name.to_string(),
            version: header.version,
            highest,
        });
    }
    // Step 8: time, never behind the newest signed time ever accepted.
    let now = policy.now.max(policy.newest_signed);
    if now >= header.expires.0 {
        return Err(BundleError::Expired {
            expires: header.expires,
            now: Timestamp(now),
        });
    }
    let skew = i64::try_from(policy.max_clock_skew).unwrap_or(i64::MAX);
    if header.created.0 > now.saturating_add(skew) {
        return Err(BundleError::NotYetValid {
            created: header.created,
            now: Timestamp(now),
            skew_secs: policy.max_clock_skew,
        });
    }
    // Step 9: the site.
    if let SiteCheck::Host(site) = policy.site
        && !header.sites.admits(site)
    {
        return Err(BundleError::WrongSite {
            sites: header.sites.to_string(),
            site: site.map_or_else(|| "none set".to_owned(), ToString::to_string),
        });
    }
    // Step 10: the agent's version.
    if let Some(have) = policy.agent_version {
        let needed = AgentVersion::parse(&header.min_agent_version).map_err(|reason| {
            BundleError::BadManifest {
                reason: format!("min_agent_version: {reason}"),
            }
        })?;
        if have < needed {
            return Err(BundleError::AgentTooOld {
                needed: needed.to_string(),
                have: have.to_string(),
            });
        }
    }
    // Step 11: the content.
    let content = content::validate(header, &files, policy.sandbox)?;
    if let Content::Keys(changes) = &content {
        for added in &changes.add {
            if let Ok(key) = minisign::PublicKey::from_base64(&added.public_key)
                && policy.trust.revoked.contains(&key.key_id())
            {
                return Err(BundleError::Content {
                    reason: format!(
                        "keys/keys.toml: key {} was revoked and cannot be trusted again",
                        key.key_id()
                    ),
                });
            }
        }
    }
    Ok(Verified(Bundle {
        manifest,
        files,
        content,
        signer: verified.key_id(),
        sha256: sha256(bytes),
    }))
}

/// A bundle's files: path inside the bundle and bytes, sorted by path.
pub type Files = Vec<(String, Vec<u8>)>;

/// Steps 3 to 6 of [`verify`] on bytes whose signature was checked (or that the agent stored
/// after it verified them): the manifest first, handed to `on_manifest` before anything else
/// is decompressed, then every entry within `limits`, each a plain file at a checked path
/// whose size and BLAKE3 are the manifest's, none missing. The files sorted by path.
pub fn unpack_checked(
    bytes: &[u8],
    limits: &Limits,
    on_manifest: impl FnOnce(&Manifest) -> Result<(), BundleError>,
) -> Result<(Manifest, Files), BundleError> {
    let counter = Rc::new(Cell::new(0u64));
    let reader = bounded_decoder(bytes, limits, &counter)?;
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive
        .entries()
        .map_err(|err| archive_error(&err, &counter, limits))?;
    let manifest = {
        let first = entries.next().ok_or_else(|| BundleError::BadManifest {
            reason: "the bundle is empty".to_owned(),
        })?;
        let mut first = first.map_err(|err| archive_error(&err, &counter, limits))?;
        let path = first.path_bytes().into_owned();
        if path != MANIFEST_PATH.as_bytes() {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "the first entry is {}, not {MANIFEST_PATH}",
                    crate::text::quoted(&String::from_utf8_lossy(&path))
                ),
            });
        }
        check_entry_type(&first, MANIFEST_PATH)?;
        if first.size() > MAX_MANIFEST_BYTES {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "it is {} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                    first.size()
                ),
            });
        }
        let mut text = Vec::new();
        (&mut first)
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|err| archive_error(&err, &counter, limits))?;
        Manifest::parse(&text)?
    };
    on_manifest(&manifest)?;
    let header = &manifest.header;
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(manifest.files.len());
    for entry in entries {
        let mut entry = entry.map_err(|err| archive_error(&err, &counter, limits))?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw).map_err(|err| BundleError::BadEntry {
            path: crate::text::quoted(&String::from_utf8_lossy(err.as_bytes())).to_string(),
            reason: "the path is not UTF-8".to_owned(),
        })?;
        let shown = crate::text::quoted(&path).to_string();
        check_entry_type(&entry, &path)?;
        if path == MANIFEST_PATH {
            return Err(BundleError::BadEntry {
                path: shown,
                reason: "the manifest appears twice".to_owned(),
            });
        }
        check_path(&path, header.kind).map_err(|reason| BundleError::BadEntry {
            path: shown.clone(),
            reason,
        })?;
        if files.iter().any(|(seen, _)| *seen == path) {
            return Err(BundleError::BadEntry {
                path: shown,
                reason: "the path appears twice".to_owned(),
            });
        }
        if files.len() as u64 + 1 >= limits.max_files {
            return Err(BundleError::Archive {
                reason: format!("more than {} files", limits.max_files - 1),
            });
        }
        let Some(listed) = manifest.files.iter().find(|file| file.path == path) else {
            return Err(BundleError::Mismatch {
                path: shown,
                reason: "the file is not in the manifest".to_owned(),
            });
        };
        let size = entry.size();
        if size > limits.max_file_bytes {
            return Err(BundleError::Archive {
                reason: format!(
                    "{shown} is {size} bytes, more than the {} allowed for one file",
                    limits.max_file_bytes
                ),
            });
        }
        if size != listed.size {
            return Err(BundleError::Mismatch {
                path: shown,
                reason: format!("{size} bytes, the manifest says {}", listed.size),
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|err| archive_error(&err, &counter, limits))?;
        let hash = blake3::hash(&data).to_hex();
        if hash.as_str() != listed.blake3 {
            return Err(BundleError::Mismatch {
                path: shown,
                reason: format!("BLAKE3 {hash}, the manifest says {}", listed.blake3),
            });
        }
        files.push((path, data));
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|listed| !files.iter().any(|(path, _)| *path == listed.path))
    {
        return Err(BundleError::Mismatch {
            path: crate::text::quoted(&missing.path).to_string(),
            reason: "listed in the manifest but not in the bundle".to_owned(),
        });
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    Ok((manifest, files))
}

/// Refuses every entry but a regular file, naming what it is.
fn check_entry_type<R: Read>(entry: &tar::Entry<'_, R>, path: &str) -> Result<(), BundleError> {
    use tar::EntryType;
    let what = match entry.header().entry_type() {
        EntryType::Regular => return Ok(()),
        EntryType::Symlink => "a symbolic link",
        EntryType::Link => "a hard link",
        EntryType::Char => "a character device",
        EntryType::Block => "a block device",
        EntryType::Fifo => "a fifo",
        EntryType::Directory => "a directory entry",
        _ => "not a regular file",
    };
    Err(BundleError::BadEntry {
        path: crate::text::quoted(path).to_string(),
        reason: format!("{what}: a bundle holds regular files only"),
    })
}

/// The zstd decoder over `bytes`, its window bounded and its output counted in `counter`
/// and cut at `max_expanded_bytes`.
fn bounded_decoder<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    counter: &Rc<Cell<u64>>,
) -> Result<impl Read + 'a, BundleError> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(bytes).map_err(|err| BundleError::Archive {
            reason: format!("not a zstd stream: {err}"),
        })?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|err| BundleError::Archive {
            reason: err.to_string(),
        })?;
    Ok(Counted {
        inner: decoder,
        count: Rc::clone(counter),
        limit: limits.max_expanded_bytes,
    })
}

/// A reader that stops with an error once more than `limit` bytes went through.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get().saturating_add(n as u64);
        self.count.set(total);
        if total > self.limit {
            return Err(io::Error::other("expansion limit"));
        }
        Ok(n)
    }
}

/// An archive error, named as the expansion bound when that is what stopped it.
fn archive_error(err: &io::Error, counter: &Rc<Cell<u64>>, limits: &Limits) -> BundleError {
    if counter.get() > limits.max_expanded_bytes {
        return BundleError::Archive {
            reason: format!(
                "it expands to more than {} bytes (bundles.max_expanded_bytes)",
                limits.max_expanded_bytes
            ),
        };
    }
    // A file cut short: zstd says only "incomplete frame", which tells an operator nothing.
    if err.kind() == io::ErrorKind::UnexpectedEof {
        return BundleError::Archive {
            reason: "the bundle is truncated or damaged: the compressed stream ends early"
                .to_owned(),
        };
    }
    BundleError::Archive {
        reason: crate::text::escape(&err.to_string()).into_owned(),
    }
}
