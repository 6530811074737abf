//! The tamper-evident audit ledger (feature `ledger`), written only by procmond.
//!
//! - [`merkle`]: the RFC 9162 Merkle tree: leaf and node hashes, inclusion and consistency
//!   proofs, and their strict verification.
//! - [`entry`]: what an entry says (a scan, a start, an alert, a bundle decision…) and its
//!   canonical, versioned byte encoding, the bytes the tree hashes.
//! - [`note`]: the text formats an auditor receives: C2SP signed notes, checkpoints, the
//!   verifier key, `tlog-proof` files and consistency files.
//! - [`frame`]: the frames of `entries.log` and `checkpoints.log` (length, CRC-32C, payload),
//!   and the rule that tells a torn tail from damage.
//! - [`store`]: the append-only files on disk, crash recovery and the signing key.
//! - [`atomic`]: whole files written through a synced temporary file and a rename.
//! - [`export`]: the audit export directory an auditor receives, written and read.
//! - [`verify`]: offline verification of checkpoints, proofs, exports and ledger directories.
//! - [`alert_export`]: undelivered alerts carried out by hand, each beside its ledger entry and
//!   inclusion proof, and their offline verification.

pub mod alert_export;
pub mod atomic;
pub mod entry;
pub mod export;
pub mod frame;
pub mod merkle;
pub mod note;
pub mod store;
pub mod verify;

use std::fmt;

/// A tree hash: both hash functions the ledger offers give 32 bytes.
pub type Hash = [u8; 32];

/// The hash function of a ledger, fixed when the ledger is created (`ledger.hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlg {
    /// BLAKE3, the default.
    #[default]
    Blake3,
    /// SHA-256, for auditors whose tools only know it (and RFC 9162's own test vectors).
    Sha256,
}

impl HashAlg {
    /// The name used in configuration and in checkpoints: `blake3` or `sha256`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Blake3 => "blake3",
            Self::Sha256 => "sha256",
        }
    }

    /// The hash function called `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "blake3" => Some(Self::Blake3),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The hash of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Hash {
        match self {
            Self::Blake3 => {
                let mut hasher = blake3::Hasher::new();
                for part in parts {
                    hasher.update(part);
                }
                *hasher.finalize().as_bytes()
            }
            Self::Sha256 => {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                for part in parts {
                    hasher.update(part);
                }
                hasher.finalize().into()
            }
        }
    }

    /// RFC 9162 §2.1.1: the hash of a leaf is HASH(0x00 || entry).
    pub fn leaf_hash(self, entry: &[u8]) -> Hash {
        self.digest(&[&[0x00], entry])
    }

    /// RFC 9162 §2.1.1: the hash of an interior node is HASH(0x01 || left || right).
    pub fn node_hash(self, left: &Hash, right: &Hash) -> Hash {
        self.digest(&[&[0x01], left, right])
    }

    /// RFC 9162 §2.1.1: the hash of an empty tree is the hash of the empty string.
    pub fn empty_root(self) -> Hash {
        self.digest(&[])
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
