//! The generator of the bundle attack fixtures under `tests/fixtures/` (the TEST keys and one
//! folder per attack on bundle verification), shared through `#[path]` by the example
//! `make_bundle_fixtures`, which writes them, and the test `bundle_attacks`, which checks that
//! the committed files are exactly what this code makes.
//!
//! Deterministic: fixed key seeds and ids, fixed times in the manifests, fixed trusted
//! comments, zstd at a fixed level, Ed25519 (deterministic by construction). Bundles that the
//! bundler would refuse to build are packed here by hand with the `tar` crate's `Header`, the
//! hostile bytes written straight into the header's name field where `set_path` would refuse.
//!
//! Each case's expected refusal (`[expect]` in `case.toml`) is written here by hand from the
//! specification (INTERFACE.md "Bundles" and the verification steps of `bundle::open`), not
//! copied from what the verifier prints.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use daemoneye_lib::bundle::manifest::{FileEntry, Header, Manifest};
use daemoneye_lib::bundle::pack::{self, MANIFEST_PATH, Source};
use daemoneye_lib::minisign::{KeyId, PrehashSigner, Protection, SecretKey};
use ed25519_dalek::Signer as _;

mod bundle_fixture_cases;
use bundle_fixture_cases::cases;

/// The key id of the TEST bundle-signing key (`keys/test-bundle.*`).
pub const BUNDLE_KEY_ID: u64 = 0x7E57_B0D1_E500_0001;
/// Its Ed25519 seed. Published: the key signs nothing but fixtures.
pub const BUNDLE_KEY_SEED: [u8; 32] = *b"DaemonEye TEST bundle key PUBLIC";
/// The key id of the TEST untrusted key (`keys/test-other.*`).
pub const OTHER_KEY_ID: u64 = 0x7E57_0DD0_0000_0002;
/// Its Ed25519 seed.
pub const OTHER_KEY_SEED: [u8; 32] = *b"DaemonEye TEST other key, PUBLIC";

/// The bundle every case is built around, and what the sites and agents look like.
const NAME: &str = "attack-rules";
const VERSION: u64 = 4;
const CREATED: &str = "2027-01-01T00:00:00Z";
const EXPIRES: &str = "2028-01-01T00:00:00Z";
const NOW: &str = "2027-06-01T00:00:00Z";
const SITE: &str = "plant-7";
const AGENT: &str = "0.1.0";
const SKEW: u64 = 86_400;
const UNTRUSTED_COMMENT: &str = "signature from daemoneye-bundler";

/// The TEST bundle-signing key.
pub fn bundle_key() -> SecretKey {
    SecretKey::from_seed(KeyId::from(BUNDLE_KEY_ID.to_le_bytes()), &BUNDLE_KEY_SEED)
}

/// The TEST untrusted key.
pub fn other_key() -> SecretKey {
    SecretKey::from_seed(KeyId::from(OTHER_KEY_ID.to_le_bytes()), &OTHER_KEY_SEED)
}

/// The folder names, in the order they are generated.
pub const ATTACKS: &[&str] = &[
    "bad-signature",
    "untrusted-key",
    "revoked-key",
    "legacy-signature",
    "comment-other-bundle",
    "signature-of-other-bundle",
    "truncated",
    "zstd-bomb",
    "path-dotdot",
    "path-absolute",
    "symlink",
    "hardlink",
    "device",
    "fifo",
    "duplicate-path",
    "file-not-in-manifest",
    "hash-mismatch",
    "rollback",
    "replay",
    "expired",
    "not-yet-valid",
    "wrong-site",
    "agent-too-old",
    "failing-fixture",
    "oversized-manifest",
];

/// What the verifier is given besides the bytes.
struct Context {
    trusted_bundle_keys: Vec<&'static str>,
    revoked_key_ids: Vec<String>,
    max_expanded_bytes: Option<u64>,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            trusted_bundle_keys: vec!["test-bundle"],
            revoked_key_ids: Vec::new(),
            max_expanded_bytes: None,
        }
    }
}

/// One attack: the files and the refusal expected.
struct Case {
    folder: &'static str,
    about: &'static str,
    file_name: String,
    bundle: Vec<u8>,
    signature: String,
    context: Context,
    step: &'static str,
    message: String,
}

/// One tar entry, as raw as a hostile author makes it.
struct Raw {
    path: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<&'static str>,
    device: Option<(u32, u32)>,
}

impl Raw {
    fn file(path: &str, data: &[u8]) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            link: None,
            device: None,
        }
    }

    fn special(path: &str, kind: tar::EntryType) -> Self {
        Self {
            kind,
            ..Self::file(path, b"")
        }
    }
}

fn header_text(name: &str, version: u64, created: &str, expires: &str, sites: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"rules\"\nversion = {version}\n\
         created = \"{created}\"\nexpires = \"{expires}\"\n\
         sites = {sites}\nmin_agent_version = \"0.1.0\"\n"
    )
}

fn header(text: &str) -> Result<Header, String> {
    Header::parse_source(text)
}

fn source(header: Header, files: &[(&str, &str)]) -> Source {
    Source {
        header,
        files: files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), text.as_bytes().to_vec()))
            .collect(),
    }
}

fn sandbox() -> daemoneye_lib::detection::sandbox::Limits {
    daemoneye_lib::detection::sandbox::Limits {
        timeout: std::time::Duration::from_secs(5),
        max_rows: 1000,
        max_memory: 64 << 20,
    }
}

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// A valid bundle made by the bundler itself: bytes and manifest.
fn packed(src: &Source) -> Result<(Vec<u8>, Manifest), String> {
    let (bytes, manifest, _) = pack::pack(src, sandbox(), |_, _| {}).map_err(|e| e.to_string())?;
    Ok((bytes, manifest))
}

/// Packs `entries` as the bundler would (mtime 0, uid and gid 0, mode 0644, zstd level 10 with
/// its checksum) but without a single check.
fn raw_bundle(entries: &[Raw]) -> Result<Vec<u8>, String> {
    let mut tar_bytes = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut tar_bytes);
        for entry in entries {
            let mut header = tar::Header::new_ustar();
            let Some(ustar) = header.as_ustar_mut() else {
                return Err("not a ustar header".to_owned());
            };
            if entry.path.len() > ustar.name.len() {
                return Err("a path longer than a ustar name".to_owned());
            }
            ustar.name[..entry.path.len()].copy_from_slice(&entry.path);
            if let Some(link) = entry.link {
                ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_size(entry.data.len() as u64);
            header.set_mode(pack::ENTRY_MODE);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(entry.kind);
            if let Some((major, minor)) = entry.device {
                header.set_device_major(major).map_err(err("device"))?;
                header.set_device_minor(minor).map_err(err("device"))?;
            }
            header.set_cksum();
            tar.append(&header, entry.data.as_slice())
                .map_err(err("tar"))?;
        }
        tar.finish().map_err(err("tar"))?;
    }
    let mut encoder =
        zstd::stream::Encoder::new(Vec::new(), pack::ZSTD_LEVEL).map_err(err("zstd"))?;
    encoder.include_checksum(true).map_err(err("zstd"))?;
    encoder.write_all(&tar_bytes).map_err(err("zstd"))?;
    encoder.finish().map_err(err("zstd"))
}

/// The manifest's text as the first raw entry.
fn manifest_entry(manifest: &Manifest) -> Result<Raw, String> {
    let text = manifest.to_toml().map_err(|e| e.to_string())?;
    Ok(Raw::file(MANIFEST_PATH, text.as_bytes()))
}

/// A prehashed signature by `key` with `comment` as its trusted comment.
fn sign_with_comment(bytes: &[u8], key: &SecretKey, comment: &str) -> Result<String, String> {
    let mut signer = PrehashSigner::new(key);
    signer.update(bytes);
    signer
        .finish(comment, UNTRUSTED_COMMENT)
        .map(|sig| sig.to_text())
        .map_err(|e| e.to_string())
}

/// The bundler's own signature of a bundle described by `manifest`.
fn sign(bytes: &[u8], manifest: &Manifest, key: &SecretKey) -> Result<String, String> {
    sign_with_comment(bytes, key, &manifest.header.trusted_comment())
}

/// A legacy (`Ed`, not prehashed) signature, as `minisign -S -l` makes: the Ed25519
/// signature of the file itself, then the global signature over it and the trusted comment.
fn legacy_signature(bytes: &[u8], comment: &str) -> String {
    let signing = ed25519_dalek::SigningKey::from_bytes(&BUNDLE_KEY_SEED);
    let signature = signing.sign(bytes).to_bytes();
    let mut line = b"Ed".to_vec();
    line.extend_from_slice(&BUNDLE_KEY_ID.to_le_bytes());
    line.extend_from_slice(&signature);
    let mut global = signature.to_vec();
    global.extend_from_slice(comment.as_bytes());
    let global = signing.sign(&global).to_bytes();
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "untrusted comment: signature from minisign secret key\n{}\ntrusted comment: {comment}\n{}\n",
        b64.encode(line),
        b64.encode(global)
    )
}

/// `"text"` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn case_toml(case: &Case) -> String {
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let keys: Vec<String> = case
        .context
        .trusted_bundle_keys
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut text = format!(
        "# {}: {}\n\
         # Written by `cargo run -p daemoneye-lib --features bundle --example make_bundle_fixtures`;\n\
         # checked by lib/tests/bundle_attacks.rs. Do not edit by hand.\n\
         bundle = {}\n\
         signature = {}\n\
         \n\
         [context]\n\
         # Key names are files under tests/fixtures/keys/ (NAME.pub).\n\
         trusted_bundle_keys = {}\n\
         trusted_license_keys = []\n\
         revoked_key_ids = {}\n\
         highest = {{ {NAME} = 3 }}\n\
         now = \"{NOW}\"\n\
         max_clock_skew = {SKEW}\n\
         site = \"{SITE}\"\n\
         agent_version = \"{AGENT}\"\n",
        case.folder,
        case.about,
        toml_string(&case.file_name),
        toml_string(&format!("{}.minisig", case.file_name)),
        list(&keys),
        list(&case.context.revoked_key_ids),
    );
    if let Some(max) = case.context.max_expanded_bytes {
        text.push_str(&format!("max_expanded_bytes = {max}\n"));
    }
    text.push_str(&format!(
        "\n[expect]\nstep = {}\nmessage = {}\n",
        toml_string(case.step),
        toml_string(&case.message)
    ));
    text
}

/// Every generated file: its path under the fixtures root and its bytes.
pub fn generate() -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for (name, key) in [("test-bundle", bundle_key()), ("test-other", other_key())] {
        let comment = format!("TEST KEY {name}, published, NEVER TRUST IT");
        let secret = key
            .to_file_text(&comment, &Protection::Unencrypted)
            .map_err(|e| e.to_string())?;
        out.push((format!("keys/{name}.key"), secret.into_bytes()));
        out.push((
            format!("keys/{name}.pub"),
            key.public_key().to_file_text().into_bytes(),
        ));
    }
    for case in cases()? {
        let dir = format!("bundles/attacks/{}", case.folder);
        out.push((format!("{dir}/case.toml"), case_toml(&case).into_bytes()));
        out.push((format!("{dir}/{}", case.file_name), case.bundle));
        out.push((
            format!("{dir}/{}.minisig", case.file_name),
            case.signature.into_bytes(),
        ));
    }
    Ok(out)
}

/// Writes every generated file under `root` (normally `tests/fixtures`).
pub fn write_all(root: &Path) -> Result<usize, String> {
    let files = generate()?;
    for (path, bytes) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err("creating a folder"))?;
        }
        std::fs::write(&path, bytes).map_err(err("writing a fixture"))?;
    }
    Ok(files.len())
}
