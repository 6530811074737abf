//! `keygen --out PREFIX [--unencrypted]`: a new minisign key pair, `PREFIX.key` (mode 0600)
//! and `PREFIX.pub`. Neither file may exist: a signing key is never overwritten. The secret
//! key is written first and synced, so that a public key never exists without its secret key.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use daemoneye_lib::fsutil;
use daemoneye_lib::minisign::{KdfParams, Protection, SecretKey};

use crate::password;

/// Writes the key pair for `prefix`.
pub fn run(prefix: &Path, unencrypted: bool) -> anyhow::Result<()> {
    let secret_path = with_suffix(prefix, "key");
    let public_path = with_suffix(prefix, "pub");
    for path in [&secret_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            anyhow::bail!(
                "{} already exists: a key is never overwritten (move it away first)",
                path.display()
            );
        }
    }
    let key = SecretKey::generate().context("generating the key")?;
    let public = key.public_key();
    let comment = format!("daemoneye-bundler secret key {}", key.key_id());
    let text = if unencrypted {
        key.to_file_text(&comment, &Protection::Unencrypted)?
    } else {
        let password = password::read_new()?;
        eprint!("Deriving a key from the password in order to encrypt the secret key... ");
        let text = key.to_file_text(
            &comment,
            &Protection::Password {
                password: password.bytes(),
                kdf: KdfParams::MINISIGN,
            },
        )?;
        eprintln!("done");
        text
    };
    create_new(&secret_path, text.as_bytes(), 0o600)?;
    create_new(&public_path, public.to_file_text().as_bytes(), 0o644)?;
    if let Some(dir) = secret_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::fsync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    let mut stdout = io::stdout().lock();
    let printed = writeln!(
        stdout,
        "The secret key was saved as {} - keep it secret and offline.\n\
         The public key was saved as {} - it goes into bundles.trusted_keys.\n\
         Key id {}; public key {}",
        secret_path.display(),
        public_path.display(),
        public.key_id(),
        public.to_base64()
    );
    match printed {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

/// `PREFIX.suffix` (the suffix added, never replacing an extension of the prefix).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` (it must not exist) with `bytes` and `mode`, synced.
fn create_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
