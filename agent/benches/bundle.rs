//! Verify and apply a 10 MB rule bundle of 1,000 rules, as `bundle install` does it.
//!
//! `cargo bench -p daemoneye-agent --bench bundle`.
//!
//! The bundle: 1,000 rule files of about 10 KiB each (a long triage note and two fixtures of
//! 20 process rows), packed and signed by lib's bundler code. Each sample is one
//! `Bundles::install_file` into a fresh data directory, with the signing key trusted: reading
//! the two files, the signature check over the whole file, decompression, every hash, every
//! rule parsed and prepared in the sandbox, every fixture run, the files staged, fsynced and
//! switched in. One part is measured on its own: `verify` (lib `bundle::verify`, in
//! memory, no file written), to show how much of the install is verification.
//! The target (issue 13) is under 1 s for `install`.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use daemoneye_agent::bundles::{BundleSettings, Bundles};
use daemoneye_lib::bundle::{self, AgentVersion, Limits, Policy, SiteCheck, Trust, pack};
use daemoneye_lib::config::Config;
use daemoneye_lib::minisign::SecretKey;

const RULES: usize = 1000;

fn rule(index: usize) -> String {
    let mut text = format!(
        "[[rule]]\nid = \"BENCH-{index:04}\"\nname = \"Benchmark rule {index}\"\nseverity = \"medium\"\n\
         mitre = [\"T1059\"]\nsql = \"SELECT pid, name, cmdline FROM processes WHERE name = 'bench{index}' AND uid = 0\"\n\
         description = \"\"\"\n"
    );
    for line in 0..55 {
        let _ = writeln!(
            text,
            "Triage note {line} of rule {index}: check the parent, the command line, the \
             executable's hash and the user before escalating."
        );
    }
    text.push_str("\"\"\"\n");
    for (expect, name) in [(1, format!("bench{index}")), (0, "sshd".to_owned())] {
        text.push_str("\n[[rule.test]]\nprocesses = [\n");
        for row in 0..20 {
            let row_name = if row == 0 { name.as_str() } else { "filler" };
            let _ = writeln!(
                text,
                "  {{ pid = {}, name = \"{row_name}\", cmdline = \"/usr/bin/{row_name} --flag {row}\", uid = 0 }},",
                100 + row
            );
        }
        let _ = writeln!(text, "]\nexpect_rows = {expect}");
    }
    text
}

struct Fixture {
    _dir: tempfile::TempDir,
    bundle: std::path::PathBuf,
    bytes: Vec<u8>,
    signature: Vec<u8>,
    key: SecretKey,
    settings: BundleSettings,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("rules")).unwrap();
    std::fs::write(
        src.join("bundle.toml"),
        "name = \"bench-rules\"\nkind = \"rules\"\nversion = 1\n\
         created = \"2026-01-01T00:00:00Z\"\nexpires = \"2099-01-01T00:00:00Z\"\n\
         sites = [\"*\"]\nmin_agent_version = \"0.1.0\"\n",
    )
    .unwrap();
    for index in 0..RULES {
        std::fs::write(
            src.join(format!("rules/BENCH-{index:04}.toml")),
            rule(index),
        )
        .unwrap();
    }
    let source = pack::read_source(&src, &Limits::default()).unwrap();
    let config = Config::default();
    let sandbox = daemoneye_agent::detector::limits(&config);
    let (bytes, manifest, _) = pack::pack(&source, sandbox, |_, _| {}).unwrap();
    let key = SecretKey::generate().unwrap();
    let signature = pack::sign(&bytes, &manifest, &key)
        .unwrap()
        .to_text()
        .into_bytes();
    let bundle = dir.path().join("bench-rules-1.bundle");
    pack::write(
        &bundle,
        &bytes,
        &pack::sign(&bytes, &manifest, &key).unwrap(),
    )
    .unwrap();
    let public = dir.path().join("bench.pub");
    std::fs::write(&public, key.public_key().to_file_text()).unwrap();
    let mut config = Config::default();
    config.bundles.trusted_keys = vec![public];
    config.bundles.license_keys = Vec::new();
    let settings = BundleSettings::from_config(&config);
    println!(
        "bundle: {} rules, {} bytes expanded, {} bytes compressed",
        RULES,
        source.files.iter().map(|(_, b)| b.len()).sum::<usize>(),
        bytes.len()
    );
    Fixture {
        _dir: dir,
        bundle,
        bytes,
        signature,
        key,
        settings,
    }
}

fn bench(c: &mut Criterion) {
    let fixture = fixture();
    let mut group = c.benchmark_group("bundle_10mb_1000_rules");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("install", |b| {
        b.iter_batched(
            || {
                let data = tempfile::tempdir().unwrap();
                let bundles = Bundles::open(data.path(), fixture.settings.clone()).unwrap();
                (data, bundles)
            },
            |(data, mut bundles)| {
                let decision = bundles.install_file(&fixture.bundle, "cli", 1_790_000_000_000);
                assert!(decision.changed.is_some(), "{:?}", decision.proto);
                black_box(decision);
                drop(data);
            },
            BatchSize::PerIteration,
        );
    });
    let trust = Trust {
        bundles: vec![fixture.key.public_key()],
        ..Trust::default()
    };
    let highest = BTreeMap::new();
    let sandbox = daemoneye_agent::detector::limits(&Config::default());
    group.bench_function("verify", |b| {
        b.iter(|| {
            let policy = Policy {
                trust: &trust,
                limits: Limits::default(),
                now: 1_790_000_000,
                newest_signed: 0,
                max_clock_skew: 86_400,
                site: SiteCheck::Host(None),
                agent_version: Some(AgentVersion(0, 1, 0)),
                highest: &highest,
                sandbox,
            };
            black_box(bundle::verify(&fixture.bytes, &fixture.signature, &policy).unwrap());
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
