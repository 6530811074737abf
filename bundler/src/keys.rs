//! Loading the key files a command names: a secret key to sign with (asking for its password
//! when it has one) and a public key to trust. Both are read bounded, as minisign's files are
//! small; the formats live in `daemoneye_lib::minisign`.

use std::path::Path;

use anyhow::Context as _;
use daemoneye_lib::fsutil;
use daemoneye_lib::minisign::{
    MAX_KEY_FILE_BYTES, MinisignError, PublicKey, SecretKey, SecretKeyFile,
};

use crate::{UsageError, password};

const KEY_FILE_LIMIT: u64 = MAX_KEY_FILE_BYTES as u64;

/// Reads and parses the secret key file `path`, still locked.
pub fn read_secret(path: &Path) -> anyhow::Result<SecretKeyFile> {
    let bytes = fsutil::read_regular_bounded(path, KEY_FILE_LIMIT)?;
    let text = String::from_utf8(bytes).map_err(|_| not_a_key(path, "secret", "not UTF-8"))?;
    SecretKeyFile::parse(&text).map_err(|err| not_a_key(path, "secret", &err.to_string()))
}

/// Unlocks `file` (from `path`), asking for its password when it has one.
pub fn unlock(file: &SecretKeyFile, path: &Path) -> anyhow::Result<SecretKey> {
    if !file.is_encrypted() {
        return file
            .unlock(None)
            .with_context(|| format!("loading the secret key {}", path.display()));
    }
    let password = password::read_existing("Password: ")?;
    eprint!("Deriving a key from the password and decrypting the secret key... ");
    let key = file.unlock(Some(password.bytes()));
    eprintln!("{}", if key.is_ok() { "done" } else { "failed" });
    match key {
        Err(MinisignError::WrongPassword) => Err(UsageError(format!(
            "wrong password for the secret key {}",
            path.display()
        ))
        .into()),
        other => other.with_context(|| format!("loading the secret key {}", path.display())),
    }
}

/// Reads and parses the public key file `path`.
pub fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let bytes = fsutil::read_regular_bounded(path, KEY_FILE_LIMIT)?;
    let text = String::from_utf8(bytes).map_err(|_| not_a_key(path, "public", "not UTF-8"))?;
    PublicKey::parse(&text).map_err(|err| not_a_key(path, "public", &err.to_string()))
}

/// A key file that is not one: the operator named the wrong file (exit 2).
fn not_a_key(path: &Path, which: &str, reason: &str) -> anyhow::Error {
    UsageError(format!(
        "{} is not a minisign {which} key file: {reason}",
        daemoneye_lib::text::quoted(&path.display().to_string())
    ))
    .into()
}
