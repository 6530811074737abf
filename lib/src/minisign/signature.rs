//! minisign signature files (layout in the parent module's doc): strict parsing and writing,
//! streamed signing in the prehashed `ED` form, and streamed verification against a set of
//! trusted keys that refuses legacy `Ed` signatures.
//!
//! Verification, in order, each step its own [`MinisignError`]:
//!
//! 1. the algorithm is `ED` (prehashed); `Ed` is [`MinisignError::LegacySignature`];
//! 2. a trusted key has the signature's key id, else [`MinisignError::UntrustedKey`];
//! 3. the global signature over the signature and the trusted comment verifies (checked first
//!    with ed25519-dalek's strict verification, before a byte of the file is read, so that a
//!    forged comment is told apart from a changed file), else
//!    [`MinisignError::TrustedCommentForged`];
//! 4. the file, streamed through `minisign-verify`'s `StreamVerifier` (BLAKE2b-512, then both
//!    signatures again), matches, else [`MinisignError::FileMismatch`].

use std::io::{ErrorKind, Read};

use blake2::{Blake2b512, Digest as _};
use ed25519_dalek::{Signature, Signer as _};

use super::keys::{KeyId, PublicKey, SecretKey};
use super::{
    ALG_ED, ALG_PREHASHED, FileKind, MAX_SIGNATURE_FILE_BYTES, MAX_TRUSTED_COMMENT_BYTES,
    MAX_UNTRUSTED_LINE_BYTES, MinisignError, TRUSTED_PREFIX, UNTRUSTED_PREFIX,
    check_untrusted_comment, decode_exact, encode, show_alg, split_line,
};

/// The size of the chunks signing and verification read.
const CHUNK_BYTES: usize = 64 * 1024;

/// A parsed signature file. Nothing in it is trusted until [`verify_reader`] says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureFile {
    untrusted_comment: String,
    algorithm: [u8; 2],
    key_id: KeyId,
    signature: [u8; 64],
    trusted_comment: String,
    global_signature: [u8; 64],
}

impl SignatureFile {
    /// Parses a signature file: four lines, the last one's newline optional, nothing after.
    pub fn parse(text: &str) -> Result<Self, MinisignError> {
        let file = FileKind::Signature;
        let malformed = |reason| MinisignError::Malformed { file, reason };
        if text.len() > MAX_SIGNATURE_FILE_BYTES {
            return Err(malformed("the file is too long"));
        }
        let (untrusted, rest) = split_line(text).ok_or(malformed("no untrusted comment line"))?;
        let untrusted_comment = untrusted
            .strip_prefix(UNTRUSTED_PREFIX)
            .ok_or(malformed("the first line is not an untrusted comment"))?;
        if untrusted.len() + 1 > MAX_UNTRUSTED_LINE_BYTES {
            return Err(malformed("the untrusted comment is too long"));
        }
        // A control character (a second `\r` before the line end, say) would not survive
        // being written back, and is no text for a person: refused, as in the signed comment.
        if untrusted_comment
            .chars()
            .any(|c| c.is_control() && c != '\t')
        {
            return Err(malformed(
                "the untrusted comment contains a control character",
            ));
        }
        let (line, rest) = split_line(rest).ok_or(malformed("no signature line"))?;
        let bytes: [u8; 74] =
            decode_exact(line, file, "the signature line is not base64 of 74 bytes")?;
        let algorithm = [bytes[0], bytes[1]];
        if algorithm != ALG_PREHASHED && algorithm != ALG_ED {
            return Err(MinisignError::UnsupportedAlgorithm {
                file,
                found: show_alg(algorithm),
            });
        }
        let (line, rest) = split_line(rest).ok_or(malformed("no trusted comment line"))?;
        let trusted_comment = line
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or(malformed("the third line is not a trusted comment"))?;
        check_trusted_comment(trusted_comment)?;
        let line = match split_line(rest) {
            Some((line, "")) => line,
            None if !rest.is_empty() => rest,
            None => return Err(malformed("no global signature line")),
            Some(_) => return Err(malformed("text after the global signature line")),
        };
        let global_signature: [u8; 64] =
            decode_exact(line, file, "the global signature is not base64 of 64 bytes")?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[10..74]);
        Ok(Self {
            untrusted_comment: untrusted_comment.to_owned(),
            algorithm,
            key_id: KeyId::from(key_id),
            signature,
            trusted_comment: trusted_comment.to_owned(),
            global_signature,
        })
    }

    /// The signature file's text, as minisign writes it.
    pub fn to_text(&self) -> String {
        let mut line = Vec::with_capacity(74);
        line.extend_from_slice(&self.algorithm);
        line.extend_from_slice(&self.key_id.bytes());
        line.extend_from_slice(&self.signature);
        format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n{TRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            encode(&line),
            self.trusted_comment,
            encode(&self.global_signature)
        )
    }

    /// The id of the key that claims to have made the signature (not verified).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Whether the signature is prehashed (`ED`) rather than legacy (`Ed`).
    pub fn is_prehashed(&self) -> bool {
        self.algorithm == ALG_PREHASHED
    }

    /// The trusted comment as the file states it, NOT verified: for display before trust
    /// (`inspect`) only. After verification use [`VerifiedSignature::trusted_comment`].
    pub fn unverified_trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The untrusted comment (never signed by anyone).
    pub fn untrusted_comment(&self) -> &str {
        &self.untrusted_comment
    }
}

/// Checks a trusted comment as stock minisign reads it back: printable (no control character
/// but tab), and not longer than [`MAX_TRUSTED_COMMENT_BYTES`].
pub fn check_trusted_comment(comment: &str) -> Result<(), MinisignError> {
    if comment.len() > MAX_TRUSTED_COMMENT_BYTES {
        return Err(MinisignError::BadTrustedComment {
            reason: "longer than minisign reads",
        });
    }
    if comment.chars().any(|c| c != '\t' && c.is_control()) {
        return Err(MinisignError::BadTrustedComment {
            reason: "it contains a control character",
        });
    }
    Ok(())
}

/// Signs a stream in minisign's prehashed form: BLAKE2b-512 of the data as it goes by, then
/// the two Ed25519 signatures. Deterministic: the same key, data and comments give the same
/// signature file.
pub struct PrehashSigner<'k> {
    key: &'k SecretKey,
    hasher: Blake2b512,
}

impl<'k> PrehashSigner<'k> {
    /// A signer with `key` and nothing hashed yet.
    pub fn new(key: &'k SecretKey) -> Self {
        Self {
            key,
            hasher: Blake2b512::new(),
        }
    }

    /// Hashes the next bytes of the data.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The signature file for the data hashed so far. `trusted_comment` and
    /// `untrusted_comment` go without their prefixes.
    pub fn finish(
        self,
        trusted_comment: &str,
        untrusted_comment: &str,
    ) -> Result<SignatureFile, MinisignError> {
        check_trusted_comment(trusted_comment)?;
        check_untrusted_comment(untrusted_comment)?;
        let digest: [u8; 64] = self.hasher.finalize().into();
        let signing = self.key.signing_key();
        let signature = signing.sign(&digest).to_bytes();
        let mut global = Vec::with_capacity(64 + trusted_comment.len());
        global.extend_from_slice(&signature);
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_signature = signing.sign(&global).to_bytes();
        Ok(SignatureFile {
            untrusted_comment: untrusted_comment.to_owned(),
            algorithm: ALG_PREHASHED,
            key_id: self.key.key_id(),
            signature,
            trusted_comment: trusted_comment.to_owned(),
            global_signature,
        })
    }
}

/// Signs everything `reader` yields, read in chunks (never the whole data in memory).
pub fn sign_reader(
    key: &SecretKey,
    mut reader: impl Read,
    trusted_comment: &str,
    untrusted_comment: &str,
) -> Result<SignatureFile, MinisignError> {
    check_trusted_comment(trusted_comment)?;
    check_untrusted_comment(untrusted_comment)?;
    let mut signer = PrehashSigner::new(key);
    read_chunks(&mut reader, |chunk| signer.update(chunk))?;
    signer.finish(trusted_comment, untrusted_comment)
}

/// What a verified signature vouches for. Only [`verify_reader`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    key_id: KeyId,
    trusted_comment: String,
}

impl VerifiedSignature {
    /// The trusted key that made the signature.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The trusted comment, verified.
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }
}

/// Verifies `signature` over everything `reader` yields, against `trusted` keys, in the order
/// of the module doc. The data is streamed in chunks; the caller bounds its size.
pub fn verify_reader(
    trusted: &[PublicKey],
    signature: &SignatureFile,
    mut reader: impl Read,
) -> Result<VerifiedSignature, MinisignError> {
    // Step 1: prehashed only.
    if !signature.is_prehashed() {
        return Err(MinisignError::LegacySignature);
    }
    // Step 2: a trusted key with the signature's id.
    let key_id = signature.key_id;
    let key = trusted
        .iter()
        .find(|key| key.key_id() == key_id)
        .ok_or(MinisignError::UntrustedKey { key_id })?;
    // Step 3: the global signature, before any byte of the data is read.
    let mut global = Vec::with_capacity(64 + signature.trusted_comment.len());
    global.extend_from_slice(&signature.signature);
    global.extend_from_slice(signature.trusted_comment.as_bytes());
    key.verifying_key()
        .verify_strict(&global, &Signature::from_bytes(&signature.global_signature))
        .map_err(|_| MinisignError::TrustedCommentForged { key_id })?;
    // Step 4: the data, through minisign-verify (which checks both signatures again).
    let malformed = |reason| MinisignError::Malformed {
        file: FileKind::Signature,
        reason,
    };
    let their_key = minisign_verify::PublicKey::from_base64(&key.to_base64())
        .map_err(|_| malformed("minisign-verify does not read the key"))?;
    let their_signature = minisign_verify::Signature::decode(&signature.to_text())
        .map_err(|_| malformed("minisign-verify does not read the signature"))?;
    let mut verifier = their_key
        .verify_stream(&their_signature)
        .map_err(|error| match error {
            minisign_verify::Error::UnsupportedLegacyMode => MinisignError::LegacySignature,
            minisign_verify::Error::UnexpectedKeyId => MinisignError::UntrustedKey { key_id },
            _ => malformed("minisign-verify refuses the signature"),
        })?;
    read_chunks(&mut reader, |chunk| verifier.update(chunk))?;
    verifier
        .finalize()
        .map_err(|_| MinisignError::FileMismatch { key_id })?;
    Ok(VerifiedSignature {
        key_id,
        trusted_comment: signature.trusted_comment.clone(),
    })
}

/// Feeds `reader` to `each` in chunks until its end.
fn read_chunks(reader: &mut impl Read, mut each: impl FnMut(&[u8])) -> Result<(), MinisignError> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => each(buffer.get(..n).unwrap_or_default()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(MinisignError::Read(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by stock minisign 0.11 with the unencrypted key of `keys.rs`'s tests, over "hi\n".
    const STOCK_SIG: &str = "untrusted comment: signature from minisign secret key\nRUTK8M8/v9D+Yo5f5dcxg5LDzM4/5UT3DWpwQ7Nfd8ZHLgkXVre3OIlOVypgObjjacXvtNb22JG6SzU1/58dDTQa7Xd/0gmcBwo=\ntrusted comment: timestamp:1796267880\tfile:f\thashed\n716xAnWuHS6mvuhJFpTkwmMBnApTITs7MnyVaTiZVb9DqfAVFCjnfIXDQLT+ycevk/SWN5bBrVqyGadCjKUfBg==\n";
    /// The same key and file, `minisign -S -l` (legacy).
    const STOCK_LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key\nRWTK8M8/v9D+YqkZIuWsrrc3+Ot2wg3R1yE+Nb4KGzsbLUJbpFf5Sj6U3I+Jvx/7+cMWWnW8bikiw2VCjMweYYGv7gptyXzf9wk=\ntrusted comment: timestamp:1796267889\tfile:f\nNlhFE8O0Aeyt2n8jBlzvcsn+VUBmDEMZNPetFXE4GTJ172EyoMkXOh7hhtbhSQsLsoOt9u5JBf5Z9PySuanTAQ==\n";
    const STOCK_PUB: &str = "untrusted comment: minisign public key 62FED0BF3FCFF0CA\nRWTK8M8/v9D+YgyCYeEhjXb6IeqLfZ2jbj3BHUfi2rKG0l/ZLL3gzmvU\n";

    fn stock_key() -> PublicKey {
        PublicKey::parse(STOCK_PUB).unwrap()
    }

    fn verify(sig: &str, data: &[u8]) -> Result<VerifiedSignature, MinisignError> {
        verify_reader(&[stock_key()], &SignatureFile::parse(sig)?, data)
    }

    #[test]
    fn a_legacy_signature_is_refused() {
        assert!(matches!(
            verify(STOCK_LEGACY_SIG, b"hi\n"),
            Err(MinisignError::LegacySignature)
        ));
    }

    #[test]
    fn an_untrusted_key_is_refused() {
        let other = SecretKey::generate().unwrap().public_key();
        let sig = SignatureFile::parse(STOCK_SIG).unwrap();
        assert!(matches!(
            verify_reader(&[other], &sig, &b"hi\n"[..]),
            Err(MinisignError::UntrustedKey { .. })
        ));
    }

    #[test]
    fn a_changed_file_or_comment_is_refused() {
        assert!(matches!(
            verify(STOCK_SIG, b"hi!"),
            Err(MinisignError::FileMismatch { .. })
        ));
        let forged = STOCK_SIG.replace("file:f", "file:g");
        assert!(matches!(
            verify(&forged, b"hi\n"),
            Err(MinisignError::TrustedCommentForged { .. })
        ));
    }

    #[test]
    fn a_stock_signature_verifies() {
        let verified = verify(STOCK_SIG, b"hi\n").unwrap();
        assert_eq!(
            verified.trusted_comment(),
            "timestamp:1796267880\tfile:f\thashed"
        );
        assert_eq!(verified.key_id(), stock_key().key_id());
        assert_eq!(
            SignatureFile::parse(STOCK_SIG).unwrap().to_text(),
            STOCK_SIG
        );
    }

    #[test]
    fn truncated_or_padded_signature_files_are_malformed() {
        let mut texts: Vec<String> = (0..STOCK_SIG.len() - 1)
            .filter(|n| STOCK_SIG.is_char_boundary(*n))
            .map(|n| STOCK_SIG[..n].to_owned())
            .collect();
        texts.push(format!("{STOCK_SIG}extra\n"));
        for text in texts {
            let err = SignatureFile::parse(&text).unwrap_err();
            assert!(
                matches!(
                    err,
                    MinisignError::Malformed {
                        file: FileKind::Signature,
                        ..
                    } | MinisignError::BadTrustedComment { .. }
                ),
                "{text:?}: {err:?}"
            );
        }
        // The whole file without its final newline is still the signature.
        assert!(SignatureFile::parse(&STOCK_SIG[..STOCK_SIG.len() - 1]).is_ok());
    }

    #[test]
    fn our_signatures_verify_and_are_deterministic() {
        let key = SecretKey::generate().unwrap();
        let data = vec![7u8; 200_000];
        let one = sign_reader(&key, &data[..], "bundle core-rules 3", "test").unwrap();
        let two = sign_reader(&key, &data[..], "bundle core-rules 3", "test").unwrap();
        assert_eq!(one, two);
        let back = SignatureFile::parse(&one.to_text()).unwrap();
        let verified = verify_reader(&[key.public_key()], &back, &data[..]).unwrap();
        assert_eq!(verified.trusted_comment(), "bundle core-rules 3");
    }

    #[test]
    fn comments_minisign_cannot_read_are_not_written() {
        let key = SecretKey::generate().unwrap();
        for (trusted, untrusted) in [("a\nb", "x"), ("a\u{1b}b", "x"), ("ok", "a\rb")] {
            let err = sign_reader(&key, &b""[..], trusted, untrusted).unwrap_err();
            assert!(
                matches!(
                    err,
                    MinisignError::BadTrustedComment { .. }
                        | MinisignError::BadUntrustedComment { .. }
                ),
                "{err:?}"
            );
        }
        let long = "x".repeat(MAX_TRUSTED_COMMENT_BYTES + 1);
        assert!(sign_reader(&key, &b""[..], &long, "x").is_err());
    }

    #[test]
    fn an_untrusted_comment_with_a_control_character_is_refused() {
        // Found by the minisign_files fuzz target: "x\r\r\n" parsed as "x\r", which wrote
        // back as a different file each time. (One `\r` before the line end is a CRLF file's
        // line end, and is dropped.)
        let good = SignatureFile::parse(STOCK_SIG).unwrap();
        for comment in ["x\r\r", "a\u{1b}[31mred", "bell\u{7}"] {
            let text = good
                .to_text()
                .replacen(good.untrusted_comment(), comment, 1);
            let err = SignatureFile::parse(&text).unwrap_err();
            assert!(
                err.to_string().contains("control character"),
                "{comment:?}: {err}"
            );
        }
        let tab = good.to_text().replacen(good.untrusted_comment(), "a\tb", 1);
        assert!(SignatureFile::parse(&tab).is_ok());
    }
}
