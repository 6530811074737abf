//! Fuzzes the minisign parsers (`lib/src/minisign/`): the signature file an agent reads beside
//! a bundle from removable media, and the public and secret key files.
//!
//! Invariants:
//!
//! - a signature file `SignatureFile::parse` accepts parses back to itself from `to_text`, and
//!   verifying it against a fixed key over fixed data returns an error or a value, never panics
//!   (it can only succeed with that key's real signature, which the fuzzer cannot forge);
//! - a public key `PublicKey::parse` accepts is written back and parses to itself;
//! - an unencrypted secret key `SecretKeyFile::parse` accepts either unlocks to a key whose
//!   signature verifies with its own public key, or is refused; a password-protected one is
//!   not unlocked (scrypt at the file's cost is the point of the format, not a finding).

#![no_main]

use std::sync::LazyLock;

use daemoneye_lib::minisign::{
    KeyId, PublicKey, SecretKey, SecretKeyFile, SignatureFile, sign_reader, verify_reader,
};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<SecretKey> = LazyLock::new(|| SecretKey::from_seed(KeyId::from([7; 8]), &[9; 32]));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(signature) = SignatureFile::parse(text) {
        assert_eq!(SignatureFile::parse(&signature.to_text()).as_ref().ok(), Some(&signature));
        let _ = verify_reader(&[KEY.public_key()], &signature, &b"fuzz"[..]);
    }
    if let Ok(key) = PublicKey::parse(text) {
        assert_eq!(PublicKey::parse(&key.to_file_text()).ok(), Some(key));
    }
    if let Ok(file) = SecretKeyFile::parse(text) {
        if !file.is_encrypted() {
            if let Ok(key) = file.unlock(None) {
                let signature = sign_reader(&key, &b"fuzz"[..], "fuzz", "fuzz").unwrap();
                verify_reader(&[key.public_key()], &signature, &b"fuzz"[..]).unwrap();
            }
        }
    }
});
