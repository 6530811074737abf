//! `verify FILE.bundle --pub PREFIX.pub` and `inspect FILE.bundle`.
//!
//! `verify` is the agent's verification (`daemoneye_lib::bundle::verify`, every step) with
//! what only a host knows left out: the given key is trusted for both roles, no site is
//! judged, no agent version is compared, no version was accepted before. Time is judged by
//! the system clock with the default 24 h of skew, so an expired bundle fails here as it
//! would on site. `inspect` reads the manifest and the entry list without checking anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use daemoneye_lib::bundle::open::read_manifest;
use daemoneye_lib::bundle::{Limits, Policy, SiteCheck, Trust, verify};
use daemoneye_lib::detection::sandbox::Limits as SandboxLimits;
use daemoneye_lib::fsutil::{self, BoundedReadError};
use daemoneye_lib::minisign::{MAX_SIGNATURE_FILE_BYTES, SignatureFile};
use daemoneye_lib::text::{escape, quoted};

use crate::{VerifyFailed, keys, show};

/// `bundles.max_clock_skew`'s default.
const MAX_CLOCK_SKEW_SECS: u64 = 24 * 60 * 60;

/// Verifies `bundle` with the key at `public` and prints its manifest.
pub fn run(bundle: &Path, public: &Path) -> anyhow::Result<()> {
    let key = keys::read_public(public)?;
    let limits = Limits::default();
    let bytes = read_bounded(bundle, limits.max_bundle_bytes, "bundle file")?;
    let sig_path = signature_path(bundle);
    let signature = read_bounded(&sig_path, MAX_SIGNATURE_FILE_BYTES as u64, "signature file")?;
    let trust = Trust {
        bundles: vec![key.clone()],
        licenses: vec![key],
        revoked: Vec::new(),
    };
    let highest = BTreeMap::new();
    let policy = Policy {
        trust: &trust,
        limits,
        now: now_secs()?,
        newest_signed: 0,
        max_clock_skew: MAX_CLOCK_SKEW_SECS,
        site: SiteCheck::Skip,
        agent_version: None,
        highest: &highest,
        sandbox: SandboxLimits::default(),
    };
    let verified =
        verify(&bytes, &signature, &policy).map_err(|err| VerifyFailed(err.to_string()))?;
    let bundle_ok = verified.get();
    let mut out = format!(
        "verified {}: signed by key {}\n",
        escape(&bundle.display().to_string()),
        bundle_ok.signer
    );
    out.push_str(&show::manifest(&bundle_ok.manifest));
    let _ = writeln!(
        out,
        "sha256: {}",
        daemoneye_lib::text::hex(&bundle_ok.sha256)
    );
    crate::print(&out)
}

/// Prints what `bundle` says about itself, trusting none of it.
pub fn inspect(bundle: &Path) -> anyhow::Result<()> {
    let limits = Limits::default();
    let bytes = fsutil::read_regular_bounded(bundle, limits.max_bundle_bytes)?;
    let found = read_manifest(&bytes, &limits);
    let mut out = format!(
        "NOT VERIFIED: {} as it describes itself; only `daemoneye-bundler verify` checks it\n",
        escape(&bundle.display().to_string())
    );
    match &found.manifest {
        Ok(manifest) => out.push_str(&show::manifest(manifest)),
        Err(reason) => {
            let _ = writeln!(out, "manifest: unreadable: {}", escape(reason));
        }
    }
    let sig_path = signature_path(bundle);
    match fsutil::read_regular_bounded(&sig_path, MAX_SIGNATURE_FILE_BYTES as u64) {
        Ok(sig) => match std::str::from_utf8(&sig)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|text| SignatureFile::parse(text).map_err(|err| err.to_string()))
        {
            Ok(sig) => {
                let _ = writeln!(
                    out,
                    "signature: key {}, trusted comment {} (neither checked)",
                    sig.key_id(),
                    quoted(sig.unverified_trusted_comment())
                );
            }
            Err(reason) => {
                let _ = writeln!(out, "signature: unreadable: {}", escape(&reason));
            }
        },
        Err(BoundedReadError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let _ = writeln!(out, "signature: none beside it");
        }
        Err(err) => {
            let _ = writeln!(out, "signature: unreadable: {}", escape(&err.to_string()));
        }
    }
    let _ = writeln!(out, "entries: {}", found.entries.len());
    for (path, size, kind) in &found.entries {
        let _ = writeln!(out, "  {size:>10}  {:<8}  {}", escape(kind), escape(path));
    }
    crate::print(&out)?;
    match found.manifest {
        Ok(_) => Ok(()),
        Err(reason) => Err(anyhow::anyhow!(
            "{}: no readable manifest: {reason}",
            bundle.display()
        )),
    }
}

/// `FILE.minisig`.
fn signature_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// The file at `path`, at most `limit` bytes: a file over the bound, or a signature that is
/// missing, fails verification (exit 3); a bundle that cannot be read at all is an I/O error.
fn read_bounded(path: &Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    match fsutil::read_regular_bounded(path, limit) {
        Ok(bytes) => Ok(bytes),
        Err(BoundedReadError::TooLarge { .. }) => Err(VerifyFailed(format!(
            "the {what} {} is larger than the {limit} bytes allowed",
            quoted(&path.display().to_string())
        ))
        .into()),
        Err(err) if what == "signature file" => {
            Err(VerifyFailed(format!("no signature: {err}")).into())
        }
        Err(err) => Err(err.into()),
    }
}

/// The system clock, in seconds since the epoch.
pub fn now_secs() -> anyhow::Result<i64> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    i64::try_from(secs).context("the system clock is out of range")
}
