//! The `[bundles]` and `[license]` sections, and the bundle layer: its place among the layers,
//! what it may not set, its check on its own, and the report of its keys a higher layer
//! replaced.

use super::*;

/// The name the tests give the bundle layer.
const BUNDLE: &str = "bundle site-config v3";

fn bundle(text: &str) -> Option<BundleLayer> {
    Some(BundleLayer {
        source: BUNDLE.to_owned(),
        text: text.to_owned(),
    })
}

/// Asserts that `result` is a [`ConfigError::Invalid`] from `source` at `key`, whose reason
/// contains `reason`.
fn assert_invalid<T: std::fmt::Debug>(
    result: Result<T, ConfigError>,
    source: &str,
    key: &str,
    reason: &str,
) {
    match result {
        Err(ConfigError::Invalid {
            source_name,
            key: found_key,
            reason: found_reason,
        }) => {
            assert_eq!((source_name.as_str(), found_key.as_str()), (source, key));
            assert!(
                found_reason.contains(reason),
                "{key}: {found_reason:?} lacks {reason:?}"
            );
        }
        other => panic!("{key}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn out_of_range_bundle_and_license_values_are_refused() {
    let many_keys = format!(
        "[bundles]\ntrusted_keys = [{}]\n",
        vec!["\"/k.pub\""; MAX_KEY_FILES + 1].join(", ")
    );
    // (the user file, the key, a part of the reason)
    let cases: Vec<(String, &str, &str)> = vec![
        (
            many_keys,
            "bundles.trusted_keys",
            "at most 64 key files, not 65",
        ),
        (
            "[bundles]\nmax_clock_skew = \"31d\"\n".into(),
            "bundles.max_clock_skew",
            "must be between 0s and 30days, not 1month",
        ),
        (
            "[bundles]\nmax_bundle_bytes = 1023\n".into(),
            "bundles.max_bundle_bytes",
            "must be between 1024 and 4294967296",
        ),
        (
            "[bundles]\nmax_bundle_bytes = 4294967297\n".into(),
            "bundles.max_bundle_bytes",
            "must be between 1024 and 4294967296",
        ),
        (
            "[bundles]\nmax_expanded_bytes = 1023\nmax_file_bytes = 1\n".into(),
            "bundles.max_expanded_bytes",
            "must be between 1024 and 17179869184",
        ),
        (
            "[bundles]\nmax_expanded_bytes = 17179869185\n".into(),
            "bundles.max_expanded_bytes",
            "must be between 1024 and 17179869184",
        ),
        (
            "[bundles]\nmax_files = 0\n".into(),
            "bundles.max_files",
            "must be between 1 and 1000000",
        ),
        (
            "[bundles]\nmax_files = 1000001\n".into(),
            "bundles.max_files",
            "must be between 1 and 1000000",
        ),
        (
            "[bundles]\nmax_file_bytes = 0\n".into(),
            "bundles.max_file_bytes",
            "must be between 1 and bundles.max_expanded_bytes (268435456)",
        ),
        (
            "[bundles]\nmax_expanded_bytes = 4096\nmax_file_bytes = 4097\n".into(),
            "bundles.max_file_bytes",
            "must be between 1 and bundles.max_expanded_bytes (4096)",
        ),
        (
            "[bundles]\ninbox_interval = \"99ms\"\n".into(),
            "bundles.inbox_interval",
            "must be between 100ms and 1h, not 99ms",
        ),
        (
            "[bundles]\ninbox_interval = \"2h\"\n".into(),
            "bundles.inbox_interval",
            "must be between 100ms and 1h, not 2h",
        ),
        (
            "[bundles]\nmax_files = -1\n".into(),
            "bundles.max_files",
            "expected a non-negative integer",
        ),
        (
            "[bundles]\ntrusted_keys = \"/k.pub\"\n".into(),
            "bundles.trusted_keys",
            "expected a sequence",
        ),
        (
            "[bundles]\ncolour = 1\n".into(),
            "bundles.colour",
            "unknown key",
        ),
        (
            "[license]\ngrace = \"366d\"\n".into(),
            "license.grace",
            "must be between 0s and 365days, not 1year",
        ),
        (
            "[license]\ngrace = \"forever\"\n".into(),
            "license.grace",
            "invalid duration \"forever\"",
        ),
        (
            "[license]\ntier = \"gold\"\n".into(),
            "license.tier",
            "unknown key (expected grace)",
        ),
    ];
    for (file, key, reason) in cases {
        Jail::expect_with(|jail| {
            let result = check(jail, &[("user.toml", &file)], &[], &Overrides::default());
            let source = jail.directory().join("user.toml").display().to_string();
            assert_invalid(result, &source, key, reason);
            Ok(())
        });
    }
}

#[test]
fn relative_key_paths_are_refused() {
    let cases = [
        (
            "trusted_keys = [\"keys/bundle.pub\"]",
            "bundles.trusted_keys",
            "\"keys/bundle.pub\"",
        ),
        (
            "license_keys = [\"/etc/daemoneye/keys/license.pub\", \"license.pub\"]",
            "bundles.license_keys",
            "\"license.pub\"",
        ),
        ("trusted_keys = [\"\"]", "bundles.trusted_keys", "\"\""),
    ];
    for (line, key, path) in cases {
        Jail::expect_with(|jail| {
            let mut overrides = Overrides::default();
            let file = format!("[bundles]\n{line}\n");
            let result = check(jail, &[("explicit.toml", &file)], &[], &overrides);
            let source = jail.directory().join("explicit.toml").display().to_string();
            assert_invalid(
                result,
                &source,
                key,
                &format!("must be absolute paths, not {path}"),
            );
            // The same from the command line.
            let value: Vec<String> = vec![path.trim_matches('"').to_owned()];
            overrides.set(key, value);
            let result = check(jail, &[], &[], &overrides);
            assert_invalid(result, SOURCE_COMMAND_LINE, key, "must be absolute paths");
            Ok(())
        });
    }
}

#[test]
fn a_bundle_layer_may_not_set_bundles_or_license() {
    let keys_reason = "a config bundle may not set [bundles]: trust changes only through keys \
                       bundles";
    let license_reason = "a config bundle may not set [license]: licenses change only through \
                          license bundles";
    let cases = [
        (
            "[bundles]\ntrusted_keys = [\"/tmp/evil.pub\"]\n",
            "bundles.trusted_keys",
            keys_reason,
        ),
        (
            "[collection]\ninterval = \"5s\"\n[bundles]\nmax_files = 5\nlicense_keys = []\n",
            "bundles.license_keys",
            keys_reason,
        ),
        ("[bundles]\n", "bundles", keys_reason),
        ("bundles = 1\n", "bundles", keys_reason),
        (
            "[license]\ngrace = \"365d\"\n",
            "license.grace",
            license_reason,
        ),
        (
            "[site]\nid = \"plant-8\"\n",
            "site.id",
            "a config bundle may not set [site]: the site id binds licenses and \
             site-restricted bundles, so only the host's own configuration names it",
        ),
    ];
    for (text, key, reason) in cases {
        assert_invalid(validate_bundle_layer(BUNDLE, text), BUNDLE, key, reason);
        Jail::expect_with(|jail| {
            let result = check_report(jail, bundle(text), &[], &[], &Overrides::default());
            assert_invalid(result, BUNDLE, key, reason);
            Ok(())
        });
    }
}

#[test]
fn bad_bundle_layers_are_refused_naming_the_bundle() {
    let too_big = format!("# {}\n", "x".repeat(MAX_BUNDLE_LAYER_BYTES));
    let cases = [
        (
            "[collection]\ncolour = 1\n".to_owned(),
            "collection.colour",
            "unknown key (expected one of interval, hash_max_bytes, hash_time_budget, exec_events)",
        ),
        ("[colour]\n".to_owned(), "colour", "unknown section"),
        (
            "[collection]\ninterval = \"ten\"\n".to_owned(),
            "collection.interval",
            "invalid duration \"ten\"",
        ),
        (
            "[collection]\ninterval = \"0s\"\n".to_owned(),
            "collection.interval",
            "must be between 100ms and 1day, not 0s",
        ),
        (
            "[collection]\ninterval = \"10s\n".to_owned(),
            "(whole file)",
            "not valid TOML: line 2, column ",
        ),
        (
            too_big,
            "(whole file)",
            "1048579 bytes, more than the 1048576 a config bundle's configuration may have",
        ),
    ];
    for (text, key, reason) in cases {
        assert_invalid(validate_bundle_layer(BUNDLE, &text), BUNDLE, key, reason);
        Jail::expect_with(|jail| {
            let result = check_report(jail, bundle(&text), &[], &[], &Overrides::default());
            assert_invalid(result, BUNDLE, key, reason);
            Ok(())
        });
    }
}

#[test]
fn a_bundle_value_fixed_by_a_higher_layer_is_no_error() {
    // The bundle's interval is out of range, but the system file replaces it: only the merged
    // configuration is validated, as with every other layer.
    Jail::expect_with(|jail| {
        let (config, report) = check_report(
            jail,
            bundle("[collection]\ninterval = \"0s\"\n"),
            &[("system.toml", &interval_file(1))],
            &[],
            &Overrides::default(),
        )
        .expect("the system file wins");
        assert_eq!(config.collection.interval, interval(1));
        assert_eq!(report.bundle_keys_overridden.len(), 1);
        Ok(())
    });
}

#[test]
fn bundle_and_license_defaults() {
    let config = Config::default();
    assert_eq!(
        config.bundles,
        BundlesConfig {
            trusted_keys: vec![PathBuf::from("/etc/daemoneye/keys/bundle.pub")],
            license_keys: vec![PathBuf::from("/etc/daemoneye/keys/license.pub")],
            max_clock_skew: interval(24 * 3600),
            max_bundle_bytes: 64 * 1024 * 1024,
            max_expanded_bytes: 256 * 1024 * 1024,
            max_files: 10_000,
            max_file_bytes: 16 * 1024 * 1024,
            inbox_interval: interval(2),
        }
    );
    assert_eq!(config.license.grace, interval(14 * 24 * 3600));
    let loaded = load(&ConfigSources::defaults_only(), &Overrides::default());
    assert_eq!(loaded, Ok(config));
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    let file = "[bundles]\ntrusted_keys = []\nmax_clock_skew = \"0s\"\nmax_bundle_bytes = \
                4294967296\nmax_expanded_bytes = 1024\nmax_files = 1000000\nmax_file_bytes = \
                1024\ninbox_interval = \"100ms\"\n[license]\ngrace = \"0s\"\n";
    let file_high = "[bundles]\nmax_clock_skew = \"30d\"\nmax_bundle_bytes = 1024\n\
                     max_expanded_bytes = 17179869184\nmax_files = 1\nmax_file_bytes = 1\n\
                     inbox_interval = \"1h\"\n[license]\ngrace = \"365d\"\n";
    Jail::expect_with(|jail| {
        let low =
            check(jail, &[("user.toml", file)], &[], &Overrides::default()).expect("the low edges");
        assert!(low.bundles.trusted_keys.is_empty());
        assert_eq!(low.bundles.max_clock_skew, interval(0));
        assert_eq!(low.license.grace, interval(0));
        let many = format!(
            "[bundles]\nlicense_keys = [{}]\n",
            vec!["\"/k.pub\""; MAX_KEY_FILES].join(", ")
        );
        let high = check(
            jail,
            &[("user.toml", file_high), ("explicit.toml", &many)],
            &[],
            &Overrides::default(),
        )
        .expect("the high edges");
        assert_eq!(high.bundles.max_expanded_bytes, 16 * 1024 * 1024 * 1024);
        assert_eq!(high.bundles.license_keys.len(), MAX_KEY_FILES);
        assert_eq!(high.license.grace, interval(365 * 24 * 3600));
        Ok(())
    });
}

#[test]
fn bundle_layer_overrides_the_defaults() {
    Jail::expect_with(|jail| {
        let (config, report) = check_report(
            jail,
            bundle("[collection]\ninterval = \"3s\"\n[detection]\nmax_rows = 7\n"),
            &[],
            &[],
            &Overrides::default(),
        )
        .expect("a valid bundle layer");
        assert_eq!(config.collection.interval, interval(3));
        assert_eq!(config.detection.max_rows, 7);
        assert_eq!(config.collection.hash_time_budget, interval(5));
        assert_eq!(report, LoadReport::default());
        Ok(())
    });
}

#[test]
fn every_local_layer_overrides_the_bundle_layer() {
    // (files, environment, command line, the interval expected)
    let env: &[(&str, &str)] = &[("DAEMONEYE_COLLECTION__INTERVAL", "4s")];
    let mut command_line = Overrides::default();
    command_line.set("collection.interval", "5s");
    let cases = [
        ("system.toml", &[][..], Overrides::default(), 1),
        ("user.toml", &[][..], Overrides::default(), 2),
        ("explicit.toml", &[][..], Overrides::default(), 3),
        ("none.toml", env, Overrides::default(), 4),
        ("none.toml", &[][..], command_line, 5),
    ];
    for (name, env, overrides, expected) in cases {
        Jail::expect_with(|jail| {
            let contents = interval_file(expected);
            let files: &[(&str, &str)] = if name == "none.toml" {
                &[]
            } else {
                &[(name, contents.as_str())]
            };
            let (config, _) = check_report(
                jail,
                bundle("[collection]\ninterval = \"9s\"\n"),
                files,
                env,
                &overrides,
            )
            .expect("valid layers");
            assert_eq!(config.collection.interval, interval(expected), "{name}");
            Ok(())
        });
    }
}

#[test]
fn local_layers_may_still_set_bundles_and_license() {
    Jail::expect_with(|jail| {
        let (config, _) = check_report(
            jail,
            bundle("[collection]\ninterval = \"9s\"\n"),
            &[(
                "system.toml",
                "[bundles]\nmax_files = 5\n[license]\ngrace = \"1d\"\n",
            )],
            &[("DAEMONEYE_BUNDLES__INBOX_INTERVAL", "1s")],
            &Overrides::default(),
        )
        .expect("local layers own the trust sections");
        assert_eq!(config.bundles.max_files, 5);
        assert_eq!(config.bundles.inbox_interval, interval(1));
        assert_eq!(config.license.grace, interval(24 * 3600));
        Ok(())
    });
}

#[test]
fn overridden_bundle_keys_name_the_winning_layer() {
    Jail::expect_with(|jail| {
        let mut overrides = Overrides::default();
        overrides.set("storage.retention_age", "2d");
        let (config, report) = check_report(
            jail,
            bundle(
                "[storage]\nretention_age = \"3d\"\n[collection]\ninterval = \"9s\"\nhash_max_bytes = 9\n\
                 [detection]\nmax_rows = 9\nrules = [\"/bundle/rules\"]\n",
            ),
            &[
                ("system.toml", &interval_file(1)),
                ("user.toml", "[detection]\nrules = [\"/local/rules\"]\n"),
            ],
            &[("DAEMONEYE_DETECTION__MAX_ROWS", "8")],
            &overrides,
        )
        .expect("valid layers");
        assert_eq!(config.collection.hash_max_bytes, 9);
        assert_eq!(config.detection.rules, [PathBuf::from("/local/rules")]);
        let dir = jail.directory();
        let expected = [
            (
                "collection.interval",
                dir.join("system.toml").display().to_string(),
            ),
            (
                "detection.max_rows",
                "DAEMONEYE_DETECTION__MAX_ROWS".to_owned(),
            ),
            (
                "detection.rules",
                dir.join("user.toml").display().to_string(),
            ),
            ("storage.retention_age", SOURCE_COMMAND_LINE.to_owned()),
        ]
        .map(|(key, by)| Overridden {
            key: key.to_owned(),
            by,
        });
        assert_eq!(report.bundle_keys_overridden, expected);
        Ok(())
    });
}

#[test]
fn no_bundle_layer_means_an_empty_report() {
    Jail::expect_with(|jail| {
        let (_, report) = check_report(
            jail,
            None,
            &[("system.toml", &interval_file(1))],
            &[("DAEMONEYE_DETECTION__MAX_ROWS", "8")],
            &Overrides::default(),
        )
        .expect("valid layers");
        assert_eq!(report, LoadReport::default());
        Ok(())
    });
}

#[test]
fn validate_bundle_layer_reads_only_the_defaults_and_the_text() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("DAEMONEYE_COLLECTION__INTERVAL", "1s");
        jail.set_env("DAEMONEYE_BOGUS__KEY", "1");
        let config = validate_bundle_layer(
            BUNDLE,
            "[collection]\ninterval = \"3s\"\n[storage]\nretention_scans = 50\n",
        )
        .expect("a valid bundle layer");
        let mut expected = Config::default();
        expected.collection.interval = interval(3);
        expected.storage.retention_scans = 50;
        assert_eq!(config, expected);
        assert_eq!(validate_bundle_layer(BUNDLE, ""), Ok(Config::default()));
        let largest = format!("#{}", "x".repeat(MAX_BUNDLE_LAYER_BYTES - 1));
        assert_eq!(
            validate_bundle_layer(BUNDLE, &largest),
            Ok(Config::default())
        );
        Ok(())
    });
}

#[test]
fn bundle_layer_messages_are_one_line() {
    let source = "bundle odd\nname v1";
    let error = validate_bundle_layer(source, "[bundles]\n").expect_err("refused");
    assert_eq!(
        error.to_string(),
        "invalid configuration in bundle odd\\nname v1: bundles: a config bundle may not set \
         [bundles]: trust changes only through keys bundles"
    );
}
