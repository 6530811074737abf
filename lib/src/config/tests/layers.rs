//! Precedence and merging of the layers, and what each layer reads.

use super::*;

/// Sets `collection.interval` in the lowest `layers` layers above the defaults, to 1 s in
/// the system file, 2 s in the user file and so on, and checks that the highest one wins.
fn assert_top_layer_wins(layers: u64) {
    Jail::expect_with(|jail| {
        let names = ["system.toml", "user.toml", "explicit.toml"];
        let contents: Vec<String> = (1..=3).map(interval_file).collect();
        let files: Vec<(&str, &str)> = names
            .iter()
            .zip(&contents)
            .take(usize::try_from(layers.min(3)).expect("small"))
            .map(|(name, contents)| (*name, contents.as_str()))
            .collect();
        let env: &[(&str, &str)] = if layers >= 4 {
            &[("DAEMONEYE_COLLECTION__INTERVAL", "4s")]
        } else {
            &[]
        };
        let mut overrides = Overrides::default();
        if layers >= 5 {
            overrides.set("collection.interval", "5s");
        }
        let config = check(jail, &files, env, &overrides).expect("valid layers");
        let expected = if layers == 0 { 10 } else { layers };
        assert_eq!(config.collection.interval, interval(expected));
        Ok(())
    });
}

#[test]
fn embedded_defaults_alone_give_the_defaults() {
    assert_top_layer_wins(0);
}

#[test]
fn system_file_overrides_embedded_defaults() {
    assert_top_layer_wins(1);
}

#[test]
fn user_file_overrides_system_file() {
    assert_top_layer_wins(2);
}

#[test]
fn explicit_file_overrides_user_file() {
    assert_top_layer_wins(3);
}

#[test]
fn environment_overrides_explicit_file() {
    assert_top_layer_wins(4);
}

#[test]
fn command_line_overrides_environment() {
    assert_top_layer_wins(5);
}

#[test]
fn layers_merge_key_by_key() {
    Jail::expect_with(|jail| {
        let config = check(
            jail,
            &[
                (
                    "system.toml",
                    "[collection]\ninterval = \"1s\"\nhash_max_bytes = 1\n[site]\nid = \"a\"",
                ),
                ("user.toml", "[collection]\ninterval = \"2s\"\n"),
            ],
            &[("DAEMONEYE_COLLECTOR__USER", "svc_daemoneye")],
            &Overrides::default(),
        )
        .expect("valid layers");
        assert_eq!(config.collection.interval, interval(2));
        assert_eq!(config.collection.hash_max_bytes, 1);
        assert_eq!(config.collection.hash_time_budget, interval(5));
        assert_eq!(config.site.id.as_ref().map(SiteId::as_str), Some("a"));
        assert_eq!(config.collector.user.as_deref(), Some("svc_daemoneye"));
        Ok(())
    });
}

#[test]
fn later_override_of_the_same_key_wins() {
    Jail::expect_with(|jail| {
        let mut overrides = Overrides::default();
        overrides
            .set("collection.interval", "1s")
            .set("collection.hash_max_bytes", 7_u64)
            .set("collection.interval", "2s");
        let config = check(jail, &[], &[], &overrides).expect("valid overrides");
        assert_eq!(config.collection.interval, interval(2));
        assert_eq!(config.collection.hash_max_bytes, 7);
        Ok(())
    });
}

#[test]
fn embedded_defaults_are_the_documented_defaults() {
    let config = load(&ConfigSources::defaults_only(), &Overrides::default())
        .expect("the embedded defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.site.id, None);
    assert_eq!(config.collection.interval.get(), Duration::from_secs(10));
    assert_eq!(config.collection.hash_max_bytes, 536_870_912);
    assert_eq!(
        config.collection.hash_time_budget.get(),
        Duration::from_secs(5)
    );
    assert_eq!(config.collector.user, None);
}

#[test]
fn defaults_only_reads_no_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("DAEMONEYE_COLLECTION__INTERVAL", "1s");
        jail.set_env("DAEMONEYE_COLLECTION__BOGUS", "1");
        let config = load(&ConfigSources::defaults_only(), &Overrides::default())
            .expect("environment ignored");
        assert_eq!(config, Config::default());
        Ok(())
    });
}

#[test]
fn other_daemoneye_variables_are_not_keys() {
    Jail::expect_with(|jail| {
        let config = check(
            jail,
            &[],
            &[
                ("DAEMONEYE_DATA_DIR", "/srv/daemoneye"),
                ("DAEMONEYE_LOG", "debug"),
                ("DAEMONEYE_COLLECTION__HASH_MAX_BYTES", "1024"),
            ],
            &Overrides::default(),
        )
        .expect("DAEMONEYE_DATA_DIR and DAEMONEYE_LOG are ignored");
        assert_eq!(config.collection.hash_max_bytes, 1024);
        Ok(())
    });
}

#[test]
fn a_quoted_numeric_site_id_from_the_environment_is_a_string() {
    Jail::expect_with(|jail| {
        let config = check(
            jail,
            &[],
            &[("DAEMONEYE_SITE__ID", "\"007\"")],
            &Overrides::default(),
        )
        .expect("quoted id");
        assert_eq!(config.site.id.as_ref().map(SiteId::as_str), Some("007"));
        Ok(())
    });
}

#[test]
fn serialized_config_reads_back_as_itself() {
    Jail::expect_with(|jail| {
        let mut config = Config::default();
        config.site.id = Some("plant-7".parse().expect("valid id"));
        config.collection.interval = HumanDuration::new(Duration::from_millis(1500));
        config.collector.user = Some("daemoneye".to_owned());
        let text = toml::to_string(&config).expect("serializes to TOML");
        assert!(text.contains("interval = \"1s 500ms\""), "{text}");
        let loaded = check(
            jail,
            &[("explicit.toml", &text)],
            &[],
            &Overrides::default(),
        )
        .expect("reads back");
        assert_eq!(loaded, config);
        Ok(())
    });
}
