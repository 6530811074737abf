//! Unreadable and invalid configurations, and the errors they produce.

use super::*;

#[test]
fn missing_optional_files_are_skipped() {
    Jail::expect_with(|jail| {
        let dir = jail.directory();
        let sources = ConfigSources {
            bundle_layer: None,
            system_file: Some(dir.join("absent/config.toml")),
            user_file: Some(dir.join("also-absent.toml")),
            explicit_file: None,
            use_env: false,
        };
        assert_eq!(load(&sources, &Overrides::default()), Ok(Config::default()));
        Ok(())
    });
}

#[test]
fn unreadable_files_are_errors() {
    Jail::expect_with(|jail| {
        jail.create_dir("a-directory")?;
        let dir = jail.directory().to_owned();
        // (system file, explicit file, the path and reason expected in the error)
        let cases = [
            (None, Some("missing.toml"), "missing.toml", "no such file"),
            (None, Some("a-directory"), "a-directory", "is a directory"),
            (Some("a-directory"), None, "a-directory", "is a directory"),
        ];
        for (system, explicit, path, reason) in cases {
            let sources = ConfigSources {
                system_file: system.map(|name| dir.join(name)),
                explicit_file: explicit.map(|name| dir.join(name)),
                ..ConfigSources::defaults_only()
            };
            let error = load(&sources, &Overrides::default()).expect_err(path);
            assert_eq!(
                error,
                ConfigError::Unreadable {
                    path: dir.join(path),
                    reason: reason.to_owned()
                }
            );
            let message = error.to_string();
            assert!(message.contains(&dir.join(path).display().to_string()));
            assert!(!message.contains('\n'));
        }
        Ok(())
    });
}

#[test]
fn toml_syntax_error_names_the_file_and_position() {
    Jail::expect_with(|jail| {
        let error = check(
            jail,
            &[(
                "user.toml",
                "[collection]\ninterval = \"10s\nhash_max_bytes = 1\n",
            )],
            &[],
            &Overrides::default(),
        )
        .expect_err("syntax error");
        let ConfigError::Syntax { path, reason } = &error else {
            panic!("expected Syntax, got {error:?}");
        };
        assert_eq!(path, &jail.directory().join("user.toml"));
        assert!(reason.starts_with("line 2, column "), "{reason}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("configuration file {} ", path.display())),
            "{error}"
        );
        Ok(())
    });
}

/// One invalid configuration and the error it must produce.
struct Bad {
    files: &'static [(&'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    overrides: Overrides,
    /// A file name in the jail (ending in `.toml`) or the literal source name.
    source: &'static str,
    key: &'static str,
    /// A part of the reason.
    reason: &'static str,
}

fn bad(
    files: &'static [(&'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    source: &'static str,
    key: &'static str,
    reason: &'static str,
) -> Bad {
    Bad {
        files,
        env,
        overrides: Overrides::default(),
        source,
        key,
        reason,
    }
}

fn bad_override(
    key_set: &str,
    value: impl Into<Value>,
    key: &'static str,
    reason: &'static str,
) -> Bad {
    let mut overrides = Overrides::default();
    overrides.set(key_set, value);
    Bad {
        overrides,
        ..bad(&[], &[], SOURCE_COMMAND_LINE, key, reason)
    }
}

#[test]
fn invalid_values_name_source_key_and_reason() {
    let unknown_collection_key =
        "unknown key (expected one of interval, hash_max_bytes, hash_time_budget, exec_events)";
    let bad_duration = "invalid duration \"ten\": expected a number and a unit such as \
                        \"500ms\", \"10s\", \"5m\" or \"7d\"";
    let cases = [
        bad(
            &[("user.toml", "[collection]\ncolour = 1\n")],
            &[],
            "user.toml",
            "collection.colour",
            unknown_collection_key,
        ),
        bad(
            &[("system.toml", "[colour]\nred = 1\n")],
            &[],
            "system.toml",
            "colour",
            "unknown section (expected one of site, collection, collector, ipc, detection, storage, \
             ledger, bundles, license, outbox, sinks)",
        ),
        bad(
            &[("system.toml", "[site]\nname = \"x\"\n")],
            &[],
            "system.toml",
            "site.name",
            "unknown key (expected id)",
        ),
        bad(
            &[("explicit.toml", "[collection]\n\"co\\nlour\" = 1\n")],
            &[],
            "explicit.toml",
            "collection.co\\nlour",
            "unknown key",
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLLECTION__INTERVL", "5s")],
            "DAEMONEYE_COLLECTION__INTERVL",
            "collection.intervl",
            unknown_collection_key,
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLOUR__RED", "1")],
            "DAEMONEYE_COLOUR__RED",
            "colour",
            "unknown section",
        ),
        bad(
            &[("explicit.toml", "[collection]\ninterval = \"ten\"\n")],
            &[],
            "explicit.toml",
            "collection.interval",
            bad_duration,
        ),
        bad(
            &[("user.toml", "[collection]\ninterval = 10\n")],
            &[],
            "user.toml",
            "collection.interval",
            "expected a duration such as \"500ms\", \"10s\", \"5m\" or \"7d\", found \
             signed int `10`",
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "ten")],
            "DAEMONEYE_COLLECTION__HASH_TIME_BUDGET",
            "collection.hash_time_budget",
            bad_duration,
        ),
        bad(
            &[
                ("system.toml", "[collection]\ninterval = \"5s\"\n"),
                ("user.toml", "[collection]\ninterval = \"0s\"\n"),
            ],
            &[],
            "user.toml",
            "collection.interval",
            "must be between 100ms and 1day, not 0s",
        ),
        bad(
            &[("system.toml", "[collection]\ninterval = \"0s\"\n")],
            &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "0ms")],
            "system.toml",
            "collection.interval",
            "must be between 100ms and 1day, not 0s",
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLLECTION__HASH_TIME_BUDGET", "0ms")],
            "DAEMONEYE_COLLECTION__HASH_TIME_BUDGET",
            "collection.hash_time_budget",
            "must be between 1ms and 1h, not 0s",
        ),
        bad(
            &[("system.toml", "[collection]\nhash_max_bytes = 0\n")],
            &[],
            "system.toml",
            "collection.hash_max_bytes",
            "must be greater than zero",
        ),
        bad(
            &[("system.toml", "[collection]\nhash_max_bytes = -1\n")],
            &[],
            "system.toml",
            "collection.hash_max_bytes",
            "expected a non-negative integer, found signed int `-1`",
        ),
        bad(
            &[("system.toml", "collection = 5\n")],
            &[],
            "system.toml",
            "collection",
            "expected a table, found signed int `5`",
        ),
        bad(
            &[("user.toml", "[site]\nid = \"plant 7\"\n")],
            &[],
            "user.toml",
            "site.id",
            "invalid site id \"plant 7\": expected 1 to 64 letters, digits",
        ),
        bad(
            &[(
                "user.toml",
                "[site]\nid = \"a123456789a123456789a123456789a123456789a123456789a12345678\
                 9abcde\"\n",
            )],
            &[],
            "user.toml",
            "site.id",
            "invalid site id",
        ),
        bad(
            &[],
            &[("DAEMONEYE_SITE__ID", "7")],
            "DAEMONEYE_SITE__ID",
            "site.id",
            "(an id made only of digits must be quoted), found unsigned int `7`",
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLLECTOR__USER", "Root")],
            "DAEMONEYE_COLLECTOR__USER",
            "collector.user",
            "invalid user name \"Root\": expected 1 to 32 characters",
        ),
        bad(
            &[("system.toml", "[collector]\nuser = \"root\"\n")],
            &[],
            "system.toml",
            "collector.user",
            "\"root\" is refused: the collector must drop to an unprivileged user",
        ),
        bad_override(
            "collection.interval",
            "0s",
            "collection.interval",
            "must be between 100ms and 1day",
        ),
        // Parses, but no interval is that long.
        bad(
            &[("system.toml", "[collection]\ninterval = \"99999999999d\"\n")],
            &[],
            "system.toml",
            "collection.interval",
            "must be between 100ms and 1day, not ",
        ),
        bad(
            &[("user.toml", "[detection]\ndedup_window = \"400d\"\n")],
            &[],
            "user.toml",
            "detection.dedup_window",
            "must be between 1s and 1year",
        ),
        bad(
            &[("user.toml", "[ledger]\ncheckpoint_interval = \"2d\"\n")],
            &[],
            "user.toml",
            "ledger.checkpoint_interval",
            "must be between 1s and 1day, not 2days",
        ),
        bad(
            &[("user.toml", "[collector]\nrestart_backoff_max = \"30d\"\n")],
            &[],
            "user.toml",
            "collector.restart_backoff_max",
            "must be between 1ms and 1day",
        ),
        bad(
            &[(
                "user.toml",
                "[collector]\nrestart_backoff_min = \"1m\"\nrestart_backoff_max = \"10s\"\n",
            )],
            &[],
            "user.toml",
            "collector.restart_backoff_max",
            "must be at least collector.restart_backoff_min (1m)",
        ),
        bad(
            &[],
            &[("DAEMONEYE_COLLECTOR__HEALTH_INTERVAL", "0ms")],
            "DAEMONEYE_COLLECTOR__HEALTH_INTERVAL",
            "collector.health_interval",
            "must be between 10ms and 1h, not 0s",
        ),
        bad(
            &[],
            &[("DAEMONEYE_IPC__MAX_FRAME_BYTES", "1024")],
            "DAEMONEYE_IPC__MAX_FRAME_BYTES",
            "ipc.max_frame_bytes",
            "must be between 1048576 and 1073741824",
        ),
        bad(
            &[("explicit.toml", "[ipc]\nmax_frame_bytes = \"big\"\n")],
            &[],
            "explicit.toml",
            "ipc.max_frame_bytes",
            "found string \"big\"",
        ),
        bad_override(
            "collection.colour",
            "red",
            "collection.colour",
            unknown_collection_key,
        ),
        bad_override(
            "collection..interval",
            "5s",
            "collection..interval",
            "a key must be a dotted path such as collection.interval",
        ),
    ];
    for case in cases {
        Jail::expect_with(|jail| {
            let result = check(jail, case.files, case.env, &case.overrides);
            let source = if case.source.ends_with(".toml") {
                jail.directory().join(case.source).display().to_string()
            } else {
                case.source.to_owned()
            };
            match result {
                Err(ConfigError::Invalid {
                    source_name,
                    key,
                    reason,
                }) => {
                    assert_eq!((source_name.as_str(), key.as_str()), (&*source, case.key));
                    assert!(
                        reason.contains(case.reason),
                        "{key}: {reason:?} lacks {:?}",
                        case.reason
                    );
                }
                other => panic!("{}: expected Invalid, got {other:?}", case.key),
            }
            Ok(())
        });
    }
}

#[test]
fn error_messages_have_the_documented_shape() {
    let error = invalid(
        "/etc/daemoneye/config.toml",
        "collection.interval",
        "must be greater than zero",
    );
    assert_eq!(
        error.to_string(),
        "invalid configuration in /etc/daemoneye/config.toml: collection.interval: must be \
         greater than zero"
    );
    let error = ConfigError::Unreadable {
        path: PathBuf::from("/tmp/odd\nname.toml"),
        reason: "no such file".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "configuration file /tmp/odd\\nname.toml cannot be read: no such file"
    );
    assert_eq!(
        "ten".parse::<HumanDuration>().map_err(|e| e.to_string()),
        Err(
            "invalid duration \"ten\": expected a number and a unit such as \"500ms\", \
             \"10s\", \"5m\" or \"7d\""
                .to_owned()
        )
    );
}

#[test]
fn a_host_check_names_the_layer_that_set_the_key() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("user.toml", "[collector]\nuser = \"ghost\"\n")?;
        let sources = ConfigSources {
            user_file: Some(jail.directory().join("user.toml")),
            ..ConfigSources::defaults_only()
        };
        let seen = std::cell::RefCell::new(None);
        let no_such_user = |config: &Config| {
            seen.replace(config.collector.user.clone());
            Some((
                "collector.user",
                "no user \"ghost\" on this host".to_owned(),
            ))
        };
        let error = load_checked(&sources, &Overrides::default(), no_such_user)
            .expect_err("the check's problem");
        assert_eq!(seen.into_inner().as_deref(), Some("ghost"));
        assert_eq!(
            error.to_string(),
            format!(
                "invalid configuration in {}: collector.user: no user \"ghost\" on this host",
                jail.directory().join("user.toml").display()
            )
        );
        // A passing check changes nothing; an invalid configuration never reaches the check.
        let config = load_checked(&sources, &Overrides::default(), |_| None);
        assert_eq!(
            config.map(|c| c.collector.user),
            Ok(Some("ghost".to_owned()))
        );
        jail.create_file("user.toml", "[collector]\nuser = \"root\"\n")?;
        let error = load_checked(&sources, &Overrides::default(), |_| {
            panic!("the check ran on an invalid configuration")
        })
        .expect_err("root is refused by validation");
        assert!(
            error
                .to_string()
                .contains("collector.user: \"root\" is refused"),
            "{error}"
        );
        Ok(())
    });
}
