//! Fuzzes a signed bundle as an agent reads it from removable media (`lib/src/bundle/`): the
//! manifest parser, `read_manifest` (what `daemoneye-bundler inspect` and the history show
//! before anything is trusted) and the whole verification, `verify`.
//!
//! The fuzzer cannot forge a signature, so a target that handed `verify` the input's bytes
//! with a fixed signature would stop at step 2 on every mutation. Here the bundle's bytes are
//! signed at fuzz time with the committed TEST key (`tests/fixtures/keys/test-bundle.*`, made
//! from a published seed; it signs nothing but fixtures and fuzz inputs), and the policy
//! trusts that key: every input reaches decompression, the tar reader, the path checks, the
//! hashes, the version, the times, the site, the agent version and the content validation
//! (rule fixtures run in the SQL sandbox).
//!
//! Input: a flags byte, a 16-bit little-endian length N, N bytes given to `Manifest::parse`,
//! then the rest: a bundle file. Flags (chosen by the fuzzer, so it can reach every branch of
//! the policy):
//!
//! - bits 0-1: the site check: `plant-7` (0 and 3), no site set (1), skipped (2);
//! - bit 2: the key is trusted for licenses instead of bundles;
//! - bit 3: no agent version check (the office side) instead of agent 0.1.0;
//! - bit 4: the bundle's own name and version were already accepted (a replay);
//! - bit 5: the trusted comment is stock `minisign -S`'s (`file:NAME-VERSION.bundle`), not ours.
//!
//! The trusted comment names the bundle as `read_manifest` read it (a fixed name when it
//! could not), as the bundler would.
//!
//! Invariants (a failure is a crash, like any panic):
//!
//! - a manifest `Manifest::parse` accepts is written by `to_toml` and parses back to itself;
//! - a refusal's message is one line;
//! - a `Verified<Bundle>` has exactly the files its manifest lists: the same paths (sorted,
//!   each once), each of the listed size and BLAKE3; its manifest is the one `read_manifest`
//!   reads from the same bytes, whose entry list is `manifest.toml` then those files; its
//!   signer is the TEST key and its SHA-256 that of the bytes.

#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use daemoneye_lib::bundle::open::{read_manifest, sha256};
use daemoneye_lib::bundle::pack::MANIFEST_PATH;
use daemoneye_lib::bundle::{AgentVersion, Limits, Manifest, Policy, SiteCheck, Trust, verify};
use daemoneye_lib::detection::sandbox::Limits as SandboxLimits;
use daemoneye_lib::ids::SiteId;
use daemoneye_lib::minisign::{KeyId, PrehashSigner, PublicKey, SecretKey};
use libfuzzer_sys::fuzz_target;

/// The TEST bundle key's id and seed, as in `lib/tests/support/bundle_fixtures.rs`.
const KEY_ID: u64 = 0x7E57_B0D1_E500_0001;
const KEY_SEED: [u8; 32] = *b"DaemonEye TEST bundle key PUBLIC";

static KEY: LazyLock<SecretKey> = LazyLock::new(|| {
    let key = SecretKey::from_seed(KeyId::from(KEY_ID.to_le_bytes()), &KEY_SEED);
    // The committed public key is this one: the seeds signed with it stay meaningful.
    let committed = PublicKey::parse(include_str!("../../tests/fixtures/keys/test-bundle.pub"))
        .expect("the committed TEST public key parses");
    assert_eq!(
        key.public_key(),
        committed,
        "the TEST key is not the committed one"
    );
    key
});

/// The attack fixtures' site; most seeds are for every site.
static SITE: LazyLock<SiteId> =
    LazyLock::new(|| SiteId::parse("plant-7").expect("a valid site id"));

/// `BUNDLE_FILES_DEBUG=1` prints each input's outcome (to check what the seeds reach).
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("BUNDLE_FILES_DEBUG").is_some());

/// Small bounds, so that a bomb is refused quickly and a run stays within memory.
const LIMITS: Limits = Limits {
    max_bundle_bytes: 1024 * 1024,
    max_expanded_bytes: 1024 * 1024,
    max_files: 64,
    max_file_bytes: 256 * 1024,
};

/// 2027-06-01T00:00:00Z, the attack fixtures' `now`: within every seed's validity.
const NOW: i64 = 1_811_808_000;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let (manifest_bytes, bundle) =
        rest.split_at(usize::from(u16::from_le_bytes(*len)).min(rest.len()));

    // (a) The manifest parser.
    if let Ok(manifest) = Manifest::parse(manifest_bytes) {
        let text = manifest.to_toml().expect("a parsed manifest is written");
        assert_eq!(
            Manifest::parse(text.as_bytes()).ok().as_ref(),
            Some(&manifest),
            "a manifest does not parse back to itself from {text:?}"
        );
    }

    // (b) The unverified read.
    let unverified = read_manifest(bundle, &LIMITS);

    // (c) Verification, signed by the trusted TEST key.
    let comment = match &unverified.manifest {
        Ok(manifest) if flags & 0x20 != 0 => {
            format!("timestamp:0\tfile:{}\thashed", manifest.header.file_name())
        }
        Ok(manifest) => manifest.header.trusted_comment(),
        Err(_) => "bundle:fuzz\tversion:1".to_owned(),
    };
    let mut signer = PrehashSigner::new(&KEY);
    signer.update(bundle);
    let signature = signer
        .finish(&comment, "fuzz")
        .expect("a comment made from a checked header signs")
        .to_text();

    let trust = if flags & 0x04 != 0 {
        Trust {
            licenses: vec![KEY.public_key()],
            ..Trust::default()
        }
    } else {
        Trust {
            bundles: vec![KEY.public_key()],
            ..Trust::default()
        }
    };
    let mut highest = BTreeMap::new();
    if flags & 0x10 != 0
        && let Ok(manifest) = &unverified.manifest
    {
        highest.insert(manifest.header.name.to_string(), manifest.header.version);
    }
    let policy = Policy {
        trust: &trust,
        limits: LIMITS,
        now: NOW,
        newest_signed: 0,
        max_clock_skew: 86_400,
        site: match flags & 0x03 {
            1 => SiteCheck::Host(None),
            2 => SiteCheck::Skip,
            _ => SiteCheck::Host(Some(&SITE)),
        },
        agent_version: (flags & 0x08 == 0).then_some(AgentVersion(0, 1, 0)),
        highest: &highest,
        sandbox: SandboxLimits {
            timeout: Duration::from_millis(100),
            max_rows: 100,
            max_memory: 64 << 20,
        },
    };
    let outcome = verify(bundle, signature.as_bytes(), &policy);
    if *DEBUG {
        match &outcome {
            Ok(verified) => eprintln!("verified: {}", verified.get().manifest.header.file_name()),
            Err(err) => eprintln!("refused at {}: {err}", err.step()),
        }
    }
    let verified = match outcome {
        Ok(verified) => verified,
        Err(err) => {
            let message = err.to_string();
            assert!(
                !message.contains('\n'),
                "a refusal of more than one line: {message:?}"
            );
            return;
        }
    };

    let got = verified.get();
    let listed = &got.manifest.files;
    assert_eq!(
        got.files.len(),
        listed.len(),
        "files and manifest differ in number"
    );
    assert!(
        got.files.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "the files are not sorted, or a path appears twice"
    );
    for (path, bytes) in &got.files {
        let entry = listed
            .iter()
            .find(|entry| entry.path == *path)
            .unwrap_or_else(|| panic!("{path:?} is not in the manifest"));
        assert_eq!(entry.size, bytes.len() as u64, "{path:?}: size");
        assert_eq!(
            entry.blake3,
            blake3::hash(bytes).to_hex().as_str(),
            "{path:?}: BLAKE3"
        );
    }
    assert_eq!(unverified.manifest.as_ref().ok(), Some(&got.manifest));
    let mut read: Vec<&str> = unverified
        .entries
        .iter()
        .map(|(path, _, _)| path.as_str())
        .collect();
    assert_eq!(
        read.first(),
        Some(&MANIFEST_PATH),
        "the first entry is not the manifest"
    );
    read.remove(0);
    read.sort_unstable();
    let files: Vec<&str> = got.files.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(read, files, "read_manifest lists other entries");
    assert_eq!(got.signer, KEY.key_id());
    assert_eq!(got.sha256, sha256(bundle));
});
