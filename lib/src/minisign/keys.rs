//! minisign public and secret key files (layouts in the parent module's doc): parsing, writing,
//! generating, and the scrypt encryption of password-protected secret keys.

use std::fmt;

use blake2::{Blake2b256, Digest as _};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::{
    ALG_ED, FileKind, MAX_KEY_FILE_BYTES, MAX_PASSWORD_BYTES, MinisignError, UNTRUSTED_PREFIX,
    check_untrusted_comment, decode_exact, encode, show_alg, split_line,
};

/// KDF algorithm of a password-protected secret key (scrypt).
const KDF_SCRYPT: [u8; 2] = *b"Sc";
/// KDF algorithm of an unencrypted secret key.
const KDF_NONE: [u8; 2] = [0, 0];
/// Checksum algorithm (BLAKE2b-256).
const CHK_BLAKE2B: [u8; 2] = *b"B2";
/// Length of the decoded public key line.
const PUBLIC_KEY_BYTES: usize = 42;
/// Length of the decoded secret key line.
const SECRET_KEY_BYTES: usize = 158;
/// Length of the encrypted part: key id, 64-byte secret key, checksum.
const KEYNUM_SK_BYTES: usize = 104;
/// The most memory a secret key's scrypt may ask for (minisign's sensitive setting).
const MEMLIMIT_MAX: u64 = 1 << 30;
/// The largest scrypt `log2(N)` accepted (rust-minisign's bound: `N = 2^20` is 1 GiB at r = 8).
const N_LOG2_MAX: u8 = 20;
/// The most scrypt work (`N * p`) a secret key may ask for: 4 times stock minisign's.
const MAX_WORK: u64 = 4 << 20;

/// A key id: 8 bytes, shown as minisign shows it (upper-case hex of their little-endian u64).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id's bytes as they sit in the files.
    pub fn bytes(&self) -> [u8; 8] {
        self.0
    }
}

impl From<[u8; 8]> for KeyId {
    fn from(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A minisign public key: its id and its Ed25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id)
    }
}

/// The base64 line of a key file: the untrusted comment line, the key line, an optional final
/// newline and nothing else, in at most [`MAX_KEY_FILE_BYTES`].
fn key_line(text: &str, file: FileKind) -> Result<&str, MinisignError> {
    let malformed = |reason| MinisignError::Malformed { file, reason };
    if text.len() > MAX_KEY_FILE_BYTES {
        return Err(malformed("the file is too long"));
    }
    let (comment, rest) = split_line(text).ok_or(malformed("no comment line"))?;
    if !comment.starts_with(UNTRUSTED_PREFIX) {
        return Err(malformed("the first line is not an untrusted comment"));
    }
    match split_line(rest) {
        Some((line, "")) => Ok(line),
        None => Ok(rest),
        Some(_) => Err(malformed("text after the key line")),
    }
}

impl PublicKey {
    /// Parses a public key file: the comment line, the base64 line, an optional final newline
    /// and nothing else.
    pub fn parse(text: &str) -> Result<Self, MinisignError> {
        Self::from_base64(key_line(text, FileKind::PublicKey)?)
    }

    /// Parses the base64 key line alone (what `minisign -P` takes).
    pub fn from_base64(line: &str) -> Result<Self, MinisignError> {
        let file = FileKind::PublicKey;
        let bytes: [u8; PUBLIC_KEY_BYTES] =
            decode_exact(line, file, "the key line is not base64 of 42 bytes")?;
        let alg = [bytes[0], bytes[1]];
        if alg != ALG_ED {
            return Err(MinisignError::UnsupportedAlgorithm {
                file,
                found: show_alg(alg),
            });
        }
        let key_id = KeyId(sub(&bytes, 2));
        let key =
            VerifyingKey::from_bytes(&sub(&bytes, 10)).map_err(|_| MinisignError::Malformed {
                file,
                reason: "not an Ed25519 public key",
            })?;
        Ok(Self { key_id, key })
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The Ed25519 key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The base64 key line (without a newline).
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_BYTES);
        bytes.extend_from_slice(&ALG_ED);
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(self.key.as_bytes());
        encode(&bytes)
    }

    /// The public key file, with minisign's comment `minisign public key <KEYID>`.
    pub fn to_file_text(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.key_id,
            self.to_base64()
        )
    }
}

/// scrypt cost parameters as minisign stores them (libsodium's opslimit and memlimit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// libsodium's opslimit.
    pub opslimit: u64,
    /// libsodium's memlimit, in bytes.
    pub memlimit: u64,
}

impl KdfParams {
    /// What stock minisign writes (libsodium's `..._SENSITIVE`: `N = 2^20`, 1 GiB).
    pub const MINISIGN: Self = Self {
        opslimit: 33_554_432,
        memlimit: 1 << 30,
    };
}

/// The scrypt parameters libsodium's `pickparams` derives from opslimit and memlimit (r is
/// always 8), bounded: more than 1 GiB or `N > 2^20` is refused.
pub fn scrypt_params(kdf: KdfParams) -> Result<scrypt::Params, MinisignError> {
    let refuse = |reason| MinisignError::KdfParameters { reason };
    if kdf.memlimit > MEMLIMIT_MAX {
        return Err(refuse("memlimit above 1 GiB"));
    }
    let opslimit = kdf.opslimit.max(32_768);
    let r: u32 = 8;
    let first_n_log2_above = |max_n: u64| {
        let mut n_log2: u8 = 1;
        while n_log2 < 63 && (1u64 << n_log2) <= max_n / 2 {
            n_log2 += 1;
        }
        n_log2
    };
    let (n_log2, p) = if opslimit < kdf.memlimit / 32 {
        (first_n_log2_above(opslimit / (u64::from(r) * 4)), 1)
    } else {
        let n_log2 = first_n_log2_above(kdf.memlimit / (u64::from(r) * 128));
        let max_rp = ((opslimit / 4) >> n_log2).min(0x3fff_ffff);
        // max_rp is at most 0x3fff_ffff, so it fits in a u32.
        let p = u32::try_from(max_rp).unwrap_or(0x3fff_ffff) / r;
        (n_log2, p)
    };
    if n_log2 > N_LOG2_MAX {
        return Err(refuse("N above 2^20"));
    }
    if p == 0 {
        return Err(refuse("they give p = 0"));
    }
    // Memory is bounded above; time is N * p. Stock minisign asks for N = 2^20, p = 1.
    if (1u64 << n_log2) * u64::from(p) > MAX_WORK {
        return Err(refuse("they ask for more than 4 times minisign's work"));
    }
    scrypt::Params::new(n_log2, r, p).map_err(|_| refuse("scrypt rejects them"))
}

/// How to write a secret key file.
pub enum Protection<'a> {
    /// Unencrypted, as `minisign -G -W` writes it.
    Unencrypted,
    /// Encrypted with scrypt from a password.
    Password {
        /// The password's bytes (one line, without its newline).
        password: &'a [u8],
        /// The scrypt cost written into the file.
        kdf: KdfParams,
    },
}

/// A minisign secret key, ready to sign. Its `Debug` never shows the secret.
pub struct SecretKey {
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.key_id)
    }
}

impl SecretKey {
    /// A new key pair: a random key id and a random Ed25519 seed, from the operating system.
    pub fn generate() -> Result<Self, MinisignError> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(MinisignError::Random)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(MinisignError::Random)?;
        let key = Self::from_seed(KeyId(id), &seed);
        // Best effort: ed25519-dalek zeroes its copy on drop; this one is ours.
        seed.fill(0);
        std::hint::black_box(&seed);
        Ok(key)
    }

    /// The key with this id and Ed25519 seed.
    pub fn from_seed(key_id: KeyId, seed: &[u8; 32]) -> Self {
        Self {
            key_id,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The secret key file. `comment` is the untrusted comment (without its prefix). With a
    /// password the salt is drawn from the operating system and scrypt runs at `kdf`'s cost.
    pub fn to_file_text(
        &self,
        comment: &str,
        protection: &Protection<'_>,
    ) -> Result<String, MinisignError> {
        check_untrusted_comment(comment)?;
        let mut keynum_sk = [0u8; KEYNUM_SK_BYTES];
        keynum_sk[..8].copy_from_slice(&self.key_id.0);
        keynum_sk[8..40].copy_from_slice(self.key.as_bytes());
        keynum_sk[40..72].copy_from_slice(self.key.verifying_key().as_bytes());
        let checksum = checksum(&self.key_id, &keynum_sk[8..72]);
        keynum_sk[72..].copy_from_slice(&checksum);
        let mut bytes = Vec::with_capacity(SECRET_KEY_BYTES);
        bytes.extend_from_slice(&ALG_ED);
        match protection {
            Protection::Unencrypted => {
                bytes.extend_from_slice(&KDF_NONE);
                bytes.extend_from_slice(&CHK_BLAKE2B);
                bytes.extend_from_slice(&[0u8; 48]);
            }
            Protection::Password { password, kdf } => {
                check_password(password)?;
                let mut salt = [0u8; 32];
                getrandom::fill(&mut salt).map_err(MinisignError::Random)?;
                xor_keystream(&mut keynum_sk, password, &salt, *kdf)?;
                bytes.extend_from_slice(&KDF_SCRYPT);
                bytes.extend_from_slice(&CHK_BLAKE2B);
                bytes.extend_from_slice(&salt);
                bytes.extend_from_slice(&kdf.opslimit.to_le_bytes());
                bytes.extend_from_slice(&kdf.memlimit.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&keynum_sk);
        keynum_sk.fill(0);
        std::hint::black_box(&keynum_sk);
        let text = format!("{UNTRUSTED_PREFIX}{comment}\n{}\n", encode(&bytes));
        bytes.fill(0);
        std::hint::black_box(&bytes);
        Ok(text)
    }
}

/// A parsed secret key file, still locked when it is password-protected.
pub struct SecretKeyFile {
    kdf_alg: [u8; 2],
    salt: [u8; 32],
    kdf: KdfParams,
    keynum_sk: [u8; KEYNUM_SK_BYTES],
}

impl fmt::Debug for SecretKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKeyFile(encrypted: {})", self.is_encrypted())
    }
}

impl Drop for SecretKeyFile {
    fn drop(&mut self) {
        self.keynum_sk.fill(0);
        std::hint::black_box(&self.keynum_sk);
    }
}

impl SecretKeyFile {
    /// Parses a secret key file: the comment line, the base64 line, an optional final
    /// newline and nothing else.
    pub fn parse(text: &str) -> Result<Self, MinisignError> {
        let file = FileKind::SecretKey;
        let line = key_line(text, file)?;
        let bytes: [u8; SECRET_KEY_BYTES] =
            decode_exact(line, file, "the key line is not base64 of 158 bytes")?;
        let alg = [bytes[0], bytes[1]];
        let kdf_alg = [bytes[2], bytes[3]];
        let chk_alg = [bytes[4], bytes[5]];
        let known = [
            (alg, alg == ALG_ED),
            (kdf_alg, kdf_alg == KDF_SCRYPT || kdf_alg == KDF_NONE),
            (chk_alg, chk_alg == CHK_BLAKE2B),
        ];
        if let Some((found, _)) = known.into_iter().find(|(_, ok)| !ok) {
            return Err(MinisignError::UnsupportedAlgorithm {
                file,
                found: show_alg(found),
            });
        }
        Ok(Self {
            kdf_alg,
            salt: sub(&bytes, 6),
            kdf: KdfParams {
                opslimit: u64::from_le_bytes(sub(&bytes, 38)),
                memlimit: u64::from_le_bytes(sub(&bytes, 46)),
            },
            keynum_sk: sub(&bytes, 54),
        })
    }

    /// Whether a password is needed.
    pub fn is_encrypted(&self) -> bool {
        self.kdf_alg == KDF_SCRYPT
    }

    /// The key, decrypted with `password` when the file is password-protected (a password
    /// given for an unencrypted key is ignored, as minisign does).
    pub fn unlock(&self, password: Option<&[u8]>) -> Result<SecretKey, MinisignError> {
        let mut keynum_sk = self.keynum_sk;
        let result = self.unlock_into(&mut keynum_sk, password);
        keynum_sk.fill(0);
        std::hint::black_box(&keynum_sk);
        result
    }

    fn unlock_into(
        &self,
        keynum_sk: &mut [u8; KEYNUM_SK_BYTES],
        password: Option<&[u8]>,
    ) -> Result<SecretKey, MinisignError> {
        let encrypted = self.is_encrypted();
        if encrypted {
            let password = password.ok_or(MinisignError::PasswordNeeded)?;
            check_password(password)?;
            xor_keystream(keynum_sk, password, &self.salt, self.kdf)?;
        }
        let key_id = KeyId(sub(keynum_sk, 0));
        let stored: [u8; 32] = sub(keynum_sk, 72);
        let computed = checksum(&key_id, &keynum_sk[8..72]);
        // Stock `minisign -G -W` leaves the checksum of an unencrypted key all zeros.
        let unchecked = !encrypted && stored == [0u8; 32];
        if !unchecked && computed != stored {
            return Err(if encrypted {
                MinisignError::WrongPassword
            } else {
                MinisignError::DamagedSecretKey {
                    reason: "its checksum does not match",
                }
            });
        }
        let key = SecretKey::from_seed(key_id, &sub(keynum_sk, 8));
        let public: [u8; 32] = sub(keynum_sk, 40);
        if key.key.verifying_key().as_bytes() != &public {
            return Err(MinisignError::DamagedSecretKey {
                reason: "its public half is not the one its seed derives",
            });
        }
        Ok(key)
    }
}

/// minisign's checksum: BLAKE2b-256 of `"Ed" || key id || 64-byte secret key`.
fn checksum(key_id: &KeyId, secret: &[u8]) -> [u8; 32] {
    let mut hasher = Blake2b256::new();
    hasher.update(ALG_ED);
    hasher.update(key_id.0);
    hasher.update(secret);
    hasher.finalize().into()
}

fn check_password(password: &[u8]) -> Result<(), MinisignError> {
    if password.is_empty() {
        return Err(MinisignError::BadPassword {
            reason: "it is empty",
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(MinisignError::BadPassword {
            reason: "it is longer than 1024 bytes",
        });
    }
    Ok(())
}

/// XORs `keynum_sk` with the scrypt keystream of `password` and `salt` at cost `kdf`.
fn xor_keystream(
    keynum_sk: &mut [u8; KEYNUM_SK_BYTES],
    password: &[u8],
    salt: &[u8; 32],
    kdf: KdfParams,
) -> Result<(), MinisignError> {
    let params = scrypt_params(kdf)?;
    let mut stream = [0u8; KEYNUM_SK_BYTES];
    scrypt::scrypt(password, salt, &params, &mut stream).map_err(|_| {
        MinisignError::KdfParameters {
            reason: "scrypt refused the output length",
        }
    })?;
    for (byte, key) in keynum_sk.iter_mut().zip(stream.iter()) {
        *byte ^= key;
    }
    stream.fill(0);
    std::hint::black_box(&stream);
    Ok(())
}

/// `N` bytes of `bytes` from `start`; the callers' offsets are constants inside the arrays.
fn sub<const N: usize>(bytes: &[u8], start: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(slice) = bytes.get(start..start + N) {
        out.copy_from_slice(slice);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap scrypt cost for tests (N = 2^10).
    const CHEAP: KdfParams = KdfParams {
        opslimit: 32_768,
        memlimit: 1 << 20,
    };

    /// A key made by stock `minisign 0.11 -G -W`: its checksum is all zeros.
    const STOCK_W_KEY: &str = "untrusted comment: minisign encrypted secret key\nRWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAyvDPP7/Q/mKXApnLxxHJfXDZWsShVCDhJ5Ko0pZN6kQGPw+GzeUD+QyCYeEhjXb6IeqLfZ2jbj3BHUfi2rKG0l/ZLL3gzmvUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    const STOCK_W_PUB: &str = "untrusted comment: minisign public key 62FED0BF3FCFF0CA\nRWTK8M8/v9D+YgyCYeEhjXb6IeqLfZ2jbj3BHUfi2rKG0l/ZLL3gzmvU\n";

    #[test]
    fn stock_unencrypted_key_with_zero_checksum_loads() {
        let file = SecretKeyFile::parse(STOCK_W_KEY).unwrap();
        assert!(!file.is_encrypted());
        let key = file.unlock(None).unwrap();
        let public = PublicKey::parse(STOCK_W_PUB).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(public.key_id().to_string(), "62FED0BF3FCFF0CA");
        assert_eq!(public.to_file_text(), STOCK_W_PUB);
    }

    #[test]
    fn written_keys_round_trip() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_file_text("test", &Protection::Unencrypted).unwrap();
        let back = SecretKeyFile::parse(&text).unwrap().unlock(None).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let password = Protection::Password {
            password: b"hunter2",
            kdf: CHEAP,
        };
        let text = key.to_file_text("test", &password).unwrap();
        let file = SecretKeyFile::parse(&text).unwrap();
        assert!(file.is_encrypted());
        assert!(matches!(
            file.unlock(None),
            Err(MinisignError::PasswordNeeded)
        ));
        assert!(matches!(
            file.unlock(Some(b"hunter3")),
            Err(MinisignError::WrongPassword)
        ));
        let back = file.unlock(Some(b"hunter2")).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let public = PublicKey::parse(&key.public_key().to_file_text()).unwrap();
        assert_eq!(public, key.public_key());
    }

    #[test]
    fn damaged_unencrypted_keys_are_refused() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_file_text("test", &Protection::Unencrypted).unwrap();
        let (comment, line) = text.split_once('\n').unwrap();
        let mut bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, line.trim_end())
                .unwrap();
        // A flipped bit in the seed, with the real checksum kept: the checksum catches it.
        bytes[62] ^= 1;
        let damaged = format!("{comment}\n{}\n", encode(&bytes));
        assert!(matches!(
            SecretKeyFile::parse(&damaged).unwrap().unlock(None),
            Err(MinisignError::DamagedSecretKey { .. })
        ));
        // The same with the checksum zeroed, as stock minisign writes: the public half catches it.
        bytes[126..].fill(0);
        let damaged = format!("{comment}\n{}\n", encode(&bytes));
        assert!(matches!(
            SecretKeyFile::parse(&damaged).unwrap().unlock(None),
            Err(MinisignError::DamagedSecretKey { .. })
        ));
    }

    fn check_malformed(text: &str, file: FileKind) {
        let err = match file {
            FileKind::PublicKey => PublicKey::parse(text).map(|_| ()).unwrap_err(),
            _ => SecretKeyFile::parse(text).map(|_| ()).unwrap_err(),
        };
        assert!(
            matches!(err, MinisignError::Malformed { file: f, .. } if f == file),
            "{text:?}: {err:?}"
        );
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let public_line = STOCK_W_PUB.lines().nth(1).unwrap();
        for text in [
            "",
            "untrusted comment: x",
            &format!("comment: x\n{public_line}\n"),
            &format!("untrusted comment: x\n{public_line}\nmore\n"),
            &format!("untrusted comment: x\n{}\n", &public_line[..40]),
        ] {
            check_malformed(text, FileKind::PublicKey);
        }
        let secret_line = STOCK_W_KEY.lines().nth(1).unwrap();
        for text in [
            "untrusted comment: x\n",
            &format!("untrusted comment: x\n{}\n", &secret_line[..100]),
            &format!("untrusted comment: x\n{public_line}\n"),
        ] {
            check_malformed(text, FileKind::SecretKey);
        }
    }

    #[test]
    fn scrypt_parameters_follow_libsodium() {
        let params = scrypt_params(KdfParams::MINISIGN).unwrap();
        assert_eq!((params.log_n(), params.r(), params.p()), (20, 8, 1));
        // rust-minisign's interactive setting.
        let params = scrypt_params(KdfParams {
            opslimit: 1_048_576,
            memlimit: 33_554_432,
        })
        .unwrap();
        assert_eq!((params.log_n(), params.r(), params.p()), (15, 8, 1));
        for (opslimit, memlimit) in [(1 << 40, 1 << 31), (1 << 40, 1 << 30)] {
            assert!(matches!(
                scrypt_params(KdfParams { opslimit, memlimit }),
                Err(MinisignError::KdfParameters { .. })
            ));
        }
    }
}
