//! The keys of signed notes: the verifier key an auditor is given and the secret key
//! procmond signs checkpoints with.
//!
//! The verifier key (public, printed by `audit key`), as in C2SP `signed-note` and Go's
//! `golang.org/x/mod/sumdb/note`:
//!
//! ```text
//! <key name> "+" <key id: 8 lowercase hex digits> "+" base64(0x01 || 32-byte public key)
//! ```
//!
//! The secret key file, in the format of Go's `note.NewSigner` so that Go tools can use it:
//!
//! ```text
//! "PRIVATE+KEY+" <key name> "+" <key id: 8 lowercase hex digits> "+" base64(0x01 || 32-byte seed)
//! ```
//!
//! Both are parsed strictly: no surrounding whitespace or newline, lowercase hex only, the key id
//! must be the id of the key (for the secret key, of the public key derived from the seed), and
//! the public key must be a canonical encoding of a point that is not of small order.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{
    ALG_ED25519, ED25519_SIGNATURE_BLOB, MAX_KEY_TEXT_BYTES, MAX_NOTE_BYTES, NoteError,
    SECRET_KEY_PREFIX, SIGNATURE_BASE64_LEN, SIGNATURE_PREFIX, SignedNote,
    check_control_characters, check_key_name, check_size,
};

/// A key that signs notes: a key name and an Ed25519 key. Its `Debug` never shows the secret.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl NoteSigner {
    /// A new key named `name`, its seed from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(NoteError::Random)?;
        let signer = Self::from_seed(name, seed);
        // Best effort: the copy in `signer` is zeroed on drop by ed25519-dalek, this one here.
        seed.fill(0);
        std::hint::black_box(&seed);
        signer
    }

    /// The key named `name` with this Ed25519 seed (the RFC 8032 32-byte secret key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The Ed25519 seed: secret.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first four bytes of SHA-256(name || "\n" || 0x01 || public key).
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier key, to give to auditors.
    pub fn verifier(&self) -> NoteVerifier {
        let key = self.key.verifying_key();
        NoteVerifier {
            name: self.name.clone(),
            public: key.to_bytes(),
            key,
            key_id: self.key_id,
        }
    }

    /// The signed note of `text`: `text`, a blank line and one signature line by this key.
    ///
    /// `text` must be non-empty, end in a newline and hold no control character other than
    /// newline; the signed note must fit in [`MAX_NOTE_BYTES`].
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() {
            return Err(NoteError::InvalidText { reason: "is empty" });
        }
        if !text.ends_with('\n') {
            return Err(NoteError::InvalidText {
                reason: "does not end in a newline",
            });
        }
        check_control_characters(text)?;
        let len = text.len()
            + 1
            + SIGNATURE_PREFIX.len()
            + self.name.len()
            + 1
            + SIGNATURE_BASE64_LEN
            + 1;
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                what: "signed note",
                len,
                max: MAX_NOTE_BYTES,
            });
        }
        let signature = self
            .key
            .try_sign(text.as_bytes())
            .map_err(|_| NoteError::SigningFailed)?;
        let mut blob = [0u8; ED25519_SIGNATURE_BLOB];
        blob[..4].copy_from_slice(&self.key_id);
        blob[4..].copy_from_slice(&signature.to_bytes());
        let note = format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        );
        debug_assert_eq!(note.len(), len);
        Ok(note)
    }

    /// The secret key text, `PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)`: secret.
    pub fn secret_key_text(&self) -> String {
        let mut blob = [0u8; 33];
        blob[0] = ALG_ED25519;
        blob[1..].copy_from_slice(self.key.as_bytes());
        let text = format!(
            "{SECRET_KEY_PREFIX}{}+{}+{}",
            self.name,
            hex_id(self.key_id),
            BASE64.encode(blob)
        );
        blob.fill(0);
        std::hint::black_box(&blob);
        text
    }

    /// The key in a secret key text written by [`NoteSigner::secret_key_text`] (or by Go's
    /// `note.GenerateKey`). Strict: exactly the text, no surrounding whitespace.
    pub fn parse_secret(text: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "secret key";
        let (name, key_id, key) = split_key_text(text, WHAT, Some(SECRET_KEY_PREFIX))?;
        let seed: [u8; 32] = decode_key_bytes(key, WHAT)?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != key_id {
            return Err(NoteError::KeyIdMismatch {
                what: WHAT,
                stated: hex_id(key_id),
                computed: hex_id(signer.key_id),
            });
        }
        Ok(signer)
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex_id(self.key_id))
            .finish_non_exhaustive()
    }
}

/// A trusted public key that verifies signed notes, parsed from its verifier key text.
#[derive(Clone)]
pub struct NoteVerifier {
    name: String,
    public: [u8; 32],
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl NoteVerifier {
    /// The verifier key in `text`: `<name>+<8 lowercase hex digits>+base64(0x01 || public key)`.
    /// Strict: exactly the text, no surrounding whitespace or newline.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        const WHAT: &str = "verifier key";
        let (name, stated_id, key) = split_key_text(text, WHAT, None)?;
        let public: [u8; 32] = decode_key_bytes(key, WHAT)?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::InvalidPublicKey {
            reason: "not a point on the curve",
        })?;
        if key.to_bytes() != public {
            return Err(NoteError::InvalidPublicKey {
                reason: "not the canonical encoding of its point",
            });
        }
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey {
                reason: "a point of small order",
            });
        }
        let computed = key_id(name, &public);
        if computed != stated_id {
            return Err(NoteError::KeyIdMismatch {
                what: WHAT,
                stated: hex_id(stated_id),
                computed: hex_id(computed),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            public,
            key,
            key_id: computed,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The text of the signed note `note` if this key signed it; see the module doc for the rules.
    pub fn verify(&self, note: &str) -> Result<String, NoteError> {
        let parsed = SignedNote::parse(note)?;
        let mut ours = 0usize;
        for line in &parsed.signatures {
            if line.name != self.name || line.key_id != self.key_id {
                // C2SP signed-note: "Verifiers MUST ignore signatures from unknown keys, even if
                // they share a name or ID (but not both) with a known key."
                continue;
            }
            ours += 1;
            // "If the key name and ID match a known key, verifiers MUST verify the signature."
            // "If a signature from a known key fails to verify, clients SHOULD reject the whole
            // note": we do.
            let signature = <&[u8; 64]>::try_from(line.signature.as_slice())
                .map_err(|_| self.bad_signature())?;
            self.key
                .verify_strict(parsed.text.as_bytes(), &Signature::from_bytes(signature))
                .map_err(|_| self.bad_signature())?;
        }
        if ours == 0 {
            // "If no signature from a known key verifies successfully, clients MUST reject."
            return Err(NoteError::NoSignature {
                name: self.name.clone(),
                key_id: hex_id(self.key_id),
            });
        }
        Ok(parsed.text.to_owned())
    }

    fn bad_signature(&self) -> NoteError {
        NoteError::BadSignature {
            name: self.name.clone(),
            key_id: hex_id(self.key_id),
        }
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = [0u8; 33];
        blob[0] = ALG_ED25519;
        blob[1..].copy_from_slice(&self.public);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex_id(self.key_id),
            BASE64.encode(blob)
        )
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl PartialEq for NoteVerifier {
    fn eq(&self, other: &Self) -> bool {
        // The key id is a function of these two.
        self.name == other.name && self.public == other.public
    }
}

impl Eq for NoteVerifier {}

/// C2SP signed-note §Ed25519 signatures: SHA-256(key name || 0x0A || 0x01 || public key)[:4].
pub(super) fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

pub(super) fn hex_id(key_id: [u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(key_id))
}

/// Eight lowercase hex digits.
pub(super) fn parse_hex_id(text: &str) -> Option<[u8; 4]> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok().map(u32::to_be_bytes)
}

/// `[prefix] <name> "+" <hex key id> "+" <base64>`: the name, the key id and the base64 text.
pub(super) fn split_key_text<'a>(
    text: &'a str,
    what: &'static str,
    prefix: Option<&'static str>,
) -> Result<(&'a str, [u8; 4], &'a str), NoteError> {
    let malformed = |reason| NoteError::MalformedKey { what, reason };
    check_size(text, what, MAX_KEY_TEXT_BYTES)?;
    let text = match prefix {
        Some(prefix) => text
            .strip_prefix(prefix)
            .ok_or(malformed("does not start with \"PRIVATE+KEY+\""))?,
        None => text,
    };
    // The name holds no '+', the base64 may: split at the first two.
    let (name, rest) = text
        .split_once('+')
        .ok_or(malformed("expected <name>+<key id>+<key>"))?;
    let (id, key) = rest
        .split_once('+')
        .ok_or(malformed("expected <name>+<key id>+<key>"))?;
    check_key_name(name)?;
    let id = parse_hex_id(id).ok_or(malformed("key id is not 8 lowercase hex digits"))?;
    Ok((name, id, key))
}

/// base64(0x01 || 32 bytes) to the 32 bytes.
pub(super) fn decode_key_bytes(encoded: &str, what: &'static str) -> Result<[u8; 32], NoteError> {
    let raw = BASE64
        .decode(encoded)
        .map_err(|_| NoteError::MalformedKey {
            what,
            reason: "key is not canonical padded base64",
        })?;
    let (&alg, key) = raw.split_first().ok_or(NoteError::MalformedKey {
        what,
        reason: "key is empty",
    })?;
    if alg != ALG_ED25519 {
        return Err(NoteError::UnknownAlgorithm { what, alg });
    }
    <[u8; 32]>::try_from(key).map_err(|_| NoteError::KeyLength {
        what,
        len: key.len(),
    })
}
