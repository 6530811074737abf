//! `build SRC_DIR --key PREFIX.key --out FILE.bundle|DIR`: the source read, validated (every
//! rule's fixtures run), packed and signed by `daemoneye_lib::bundle::pack`, then written.
//!
//! Nothing is written unless every check passed and the key unlocked: a source that does not
//! validate leaves `--out` as it was. The bundle and its signature are each replaced
//! atomically. The same source and key give the same bytes: the packing takes no clock, and
//! an Ed25519 signature is a function of the key and the message.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use daemoneye_lib::bundle::{Header, Limits, pack};
use daemoneye_lib::detection::sandbox::Limits as SandboxLimits;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{UsageError, keys};

/// Builds the bundle of `source`, signed with the key at `key_path`, into `out`.
pub fn run(source: &Path, key_path: &Path, out: &Path) -> anyhow::Result<()> {
    // The key file is read first, so that a wrong path fails before the fixtures run; it is
    // unlocked (a password asked for) only once the source validated.
    let key_file = keys::read_secret(key_path)?;
    let limits = Limits::default();
    let src = pack::read_source(source, &limits)
        .with_context(|| format!("building {}", source.display()))?;
    let out = out_path(out, &src.header)?;

    let progress = Progress::new(src.files.len());
    let packed = pack::pack(&src, SandboxLimits::default(), |done, count| {
        progress.packed(done, count);
    });
    progress.finish();
    let (bytes, manifest, _content) =
        packed.with_context(|| format!("building {}", source.display()))?;
    // Checked against the limits the agent applies by default, so what builds installs.
    if bytes.len() as u64 > limits.max_bundle_bytes {
        anyhow::bail!(
            "building {}: the bundle is {} bytes, more than the {} an agent accepts by default",
            source.display(),
            bytes.len(),
            limits.max_bundle_bytes
        );
    }

    let key = keys::unlock(&key_file, key_path)?;
    let signature = pack::sign(&bytes, &manifest, &key).context("signing")?;
    pack::write(&out, &bytes, &signature).with_context(|| format!("writing {}", out.display()))?;
    crate::print(&format!(
        "built {}: {} files, {} bytes, signed by key {}\n",
        out.display(),
        manifest.files.len(),
        bytes.len(),
        key.key_id()
    ))
}

/// Where the bundle goes: `DIR/NAME-VERSION.bundle` for a directory, else `out` itself,
/// which must be named `NAME-VERSION.bundle` (the agent and the trusted comment go by it).
fn out_path(out: &Path, header: &Header) -> anyhow::Result<PathBuf> {
    let expected = header.file_name();
    if out.is_dir() {
        return Ok(out.join(expected));
    }
    let named = out.file_name().and_then(|name| name.to_str());
    if named != Some(expected.as_str()) {
        return Err(UsageError(format!(
            "--out {}: the manifest names this bundle {expected}; give a path ending in \
             {expected} or an existing directory",
            daemoneye_lib::text::quoted(&out.display().to_string())
        ))
        .into());
    }
    Ok(out.to_path_buf())
}

/// A progress bar on stderr, drawn only when stderr is a terminal (hidden otherwise, so that
/// logs and pipes get the one summary line and nothing else).
struct Progress(ProgressBar);

impl Progress {
    fn new(files: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "validating {files} files and running the rules' fixtures"
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    fn packed(&self, done: usize, count: usize) {
        if self.0.is_hidden() {
            return;
        }
        if self.0.length().is_none() {
            self.0.set_length(count as u64);
            if let Ok(style) = ProgressStyle::with_template("packing {bar:30} {pos}/{len} files") {
                self.0.set_style(style);
            }
        }
        self.0.set_position(done as u64);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
