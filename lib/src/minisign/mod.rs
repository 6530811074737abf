//! minisign key files and signatures: the one home of the formats bundles are signed with, so
//! that stock `minisign` (0.11 and later) and DaemonEye read each other's files.
//!
//! Pure: this module takes text, bytes and readers and returns values; it opens no file, reads
//! no clock and spawns nothing (the bundler and the agent do the I/O, with bounded reads). It
//! links no HTTP or TLS code. Behind the `minisign` feature, which procmond never enables.
//!
//! [`keys`] holds the public and secret key files, [`signature`] the signature file, streamed
//! signing in minisign's prehashed `ED` form and streamed verification (through the
//! `minisign-verify` crate). The specification follows, byte by byte, as minisign's
//! `src/minisign.h` lays it out; integers are little-endian, base64 is RFC 4648's standard
//! alphabet with padding, every line ends with `\n`.
//!
//! # Public key file (`PREFIX.pub`)
//!
//! ```text
//! line 1: "untrusted comment: " <text>          (we write "minisign public key <KEYID>")
//! line 2: base64 of 42 bytes:
//!   0..2    signature algorithm "Ed" (0x45 0x64)
//!   2..10   key id: 8 random bytes, shown as the upper-case hex of their little-endian u64
//!   10..42  Ed25519 public key
//! ```
//!
//! # Secret key file (`PREFIX.key`)
//!
//! ```text
//! line 1: "untrusted comment: " <text>
//! line 2: base64 of 158 bytes:
//!   0..2     signature algorithm "Ed"
//!   2..4     KDF algorithm: "Sc" (scrypt, password-protected) or 0x00 0x00 (unencrypted, -W)
//!   4..6     checksum algorithm "B2" (BLAKE2b)
//!   6..38    KDF salt (32 bytes; zero when unencrypted)
//!   38..46   KDF opslimit, u64 (zero when unencrypted)
//!   46..54   KDF memlimit, u64 (zero when unencrypted)
//!   54..62   key id                        \
//!   62..126  Ed25519 secret key:            | the 104-byte "keynum_sk", XORed with the
//!            32-byte seed || public key     | scrypt keystream when "Sc", stored as is
//!   126..158 checksum                      /  when unencrypted
//! ```
//!
//! The checksum is BLAKE2b with a 32-byte output (libsodium's `crypto_generichash`) of
//! `"Ed" || key id || 64-byte secret key`, computed before encryption. Stock `minisign -G -W`
//! (0.11) leaves it all zeros and never checks it for an unencrypted key; we accept an all-zero
//! checksum on an unencrypted key only, check any other, and in both cases check that the
//! public half of the secret key is the one its seed derives. We write the real checksum: stock
//! minisign ignores it for unencrypted keys and checks it for encrypted ones.
//!
//! The keystream of an `Sc` key is libsodium's `crypto_pwhash_scryptsalsa208sha256`: scrypt
//! with `r = 8` and `N`, `p` picked from opslimit and memlimit by libsodium's `pickparams`
//! ([`keys::scrypt_params`]), 104 bytes long, over the password (the bytes of one line, its
//! `\n` or `\r\n` removed, at most 1024 bytes) and the salt. Stock minisign writes opslimit
//! 33554432 and memlimit 1 GiB (`N = 2^20`, `p = 1`: 1 GiB of memory); we write the same by
//! default and refuse a file asking for more than 1 GiB or `N > 2^20` (the bound rust-minisign
//! also keeps), so a hostile key file cannot make the signer allocate without limit.
//!
//! # Signature file (`FILE.minisig`)
//!
//! ```text
//! line 1: "untrusted comment: " <text>          (not signed; at most 1024 bytes with its \n)
//! line 2: base64 of 74 bytes:
//!   0..2    algorithm: "ED" (0x45 0x44) prehashed, or "Ed" legacy
//!   2..10   key id of the signing key
//!   10..74  Ed25519 signature of BLAKE2b-512(file) ("ED") or of the file itself ("Ed")
//! line 3: "trusted comment: " <comment>         (printable: no control character but tab)
//! line 4: base64 of 64 bytes: Ed25519 signature of (the 64 signature bytes || comment)
//! ```
//!
//! Deliberate deviations from stock minisign, all stricter: a legacy `Ed` signature is refused
//! ([`MinisignError::LegacySignature`], as `minisign -V -H` does; bundles must be prehashed so
//! that a verifier never holds a whole file); text after line 4, a missing final newline on a
//! key file's base64 line aside, is refused; the trusted comment is at most
//! [`MAX_TRUSTED_COMMENT_BYTES`].

pub mod keys;
pub mod signature;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub use keys::{KdfParams, KeyId, Protection, PublicKey, SecretKey, SecretKeyFile};
pub use signature::{PrehashSigner, SignatureFile, VerifiedSignature, sign_reader, verify_reader};

/// The first bytes of every comment line.
pub const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
/// The first bytes of a signature's trusted comment line.
pub const TRUSTED_PREFIX: &str = "trusted comment: ";
/// The longest untrusted comment line, its prefix and `\n` included (minisign's
/// `COMMENTMAXBYTES` less its NUL).
pub const MAX_UNTRUSTED_LINE_BYTES: usize = 1023;
/// The longest trusted comment, without its prefix: what stock minisign can read back
/// (`TRUSTEDCOMMENTMAXBYTES` 8192 less the prefix, the `\n` and the NUL).
pub const MAX_TRUSTED_COMMENT_BYTES: usize = 8173;
/// The longest key file we read (a secret key file is under 1.3 KiB with a long comment).
pub const MAX_KEY_FILE_BYTES: usize = 4096;
/// The longest signature file we read.
pub const MAX_SIGNATURE_FILE_BYTES: usize = 10 * 1024;
/// The longest password, as minisign's `PASSWORDMAXBYTES`.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Signature algorithm of keys and legacy signatures.
pub(crate) const ALG_ED: [u8; 2] = *b"Ed";
/// Signature algorithm of prehashed signatures.
pub(crate) const ALG_PREHASHED: [u8; 2] = *b"ED";

/// Which file a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A public key file.
    PublicKey,
    /// A secret key file.
    SecretKey,
    /// A signature file.
    Signature,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PublicKey => "minisign public key",
            Self::SecretKey => "minisign secret key",
            Self::Signature => "minisign signature",
        })
    }
}

/// What went wrong with a key or a signature. Each refusal a verifier can meet has its own
/// variant, so that callers and tests can tell them apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinisignError {
    /// The file does not have the layout above.
    #[error("malformed {file}: {reason}")]
    Malformed {
        /// Which file.
        file: FileKind,
        /// What is wrong, in a few words.
        reason: &'static str,
    },
    /// A key or signature algorithm this code does not know.
    #[error("{file} uses unsupported algorithm {found}")]
    UnsupportedAlgorithm {
        /// Which file.
        file: FileKind,
        /// The two algorithm bytes, escaped.
        found: String,
    },
    /// A legacy, non-prehashed (`Ed`) signature: refused for bundles.
    #[error(
        "legacy non-prehashed minisign signature (algorithm Ed) refused: sign with prehashing (minisign -S without -l)"
    )]
    LegacySignature,
    /// No trusted key has the signature's key id.
    #[error("signed by key {key_id}, which is not a trusted key")]
    UntrustedKey {
        /// The signature's key id.
        key_id: KeyId,
    },
    /// The global signature over the signature and the trusted comment does not verify.
    #[error(
        "the trusted comment's signature does not verify with key {key_id}: the comment or the signature was altered"
    )]
    TrustedCommentForged {
        /// The key that was tried.
        key_id: KeyId,
    },
    /// The signature does not match the file's contents.
    #[error(
        "the file does not match its signature by key {key_id}: the file was altered or the signature is for another file"
    )]
    FileMismatch {
        /// The key that was tried.
        key_id: KeyId,
    },
    /// The trusted comment cannot be written or read back by minisign.
    #[error("bad trusted comment: {reason}")]
    BadTrustedComment {
        /// Why.
        reason: &'static str,
    },
    /// The untrusted comment cannot be written.
    #[error("bad untrusted comment: {reason}")]
    BadUntrustedComment {
        /// Why.
        reason: &'static str,
    },
    /// The secret key is password-protected and no password was given.
    #[error("the minisign secret key is password-protected: a password is needed")]
    PasswordNeeded,
    /// The password does not decrypt the secret key.
    #[error("wrong password for the minisign secret key")]
    WrongPassword,
    /// The password is empty or longer than minisign allows.
    #[error("bad password: {reason}")]
    BadPassword {
        /// Why.
        reason: &'static str,
    },
    /// An unencrypted secret key whose checksum or public half does not match its seed.
    #[error("damaged minisign secret key: {reason}")]
    DamagedSecretKey {
        /// Which check failed.
        reason: &'static str,
    },
    /// The scrypt parameters of a secret key are out of bounds or invalid.
    #[error("the secret key's scrypt parameters are refused: {reason}")]
    KdfParameters {
        /// Why.
        reason: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(getrandom::Error),
    /// Reading the signed or verified data failed.
    #[error("reading the data: {0}")]
    Read(#[source] std::io::Error),
}

/// The text of one line of `text` with its `\n` (and a `\r` before it) removed, and the rest.
/// `None` when there is no `\n`.
pub(crate) fn split_line(text: &str) -> Option<(&str, &str)> {
    let end = text.find('\n')?;
    let line = &text[..end];
    let line = line.strip_suffix('\r').unwrap_or(line);
    Some((line, &text[end + 1..]))
}

/// Decodes one base64 line that must hold exactly `N` bytes.
pub(crate) fn decode_exact<const N: usize>(
    line: &str,
    file: FileKind,
    reason: &'static str,
) -> Result<[u8; N], MinisignError> {
    let bytes = BASE64
        .decode(line.as_bytes())
        .map_err(|_| MinisignError::Malformed { file, reason })?;
    bytes
        .try_into()
        .map_err(|_| MinisignError::Malformed { file, reason })
}

/// Base64 of `bytes` (standard alphabet, padded).
pub(crate) fn encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Checks an untrusted comment (without its prefix) that we are about to write.
pub(crate) fn check_untrusted_comment(comment: &str) -> Result<(), MinisignError> {
    if comment.contains(['\n', '\r']) {
        return Err(MinisignError::BadUntrustedComment {
            reason: "it contains a line break",
        });
    }
    if UNTRUSTED_PREFIX.len() + comment.len() + 1 > MAX_UNTRUSTED_LINE_BYTES {
        return Err(MinisignError::BadUntrustedComment {
            reason: "it is longer than minisign reads",
        });
    }
    Ok(())
}

/// The two algorithm bytes for a message, escaped.
pub(crate) fn show_alg(alg: [u8; 2]) -> String {
    crate::text::escape(&String::from_utf8_lossy(&alg)).into_owned()
}
