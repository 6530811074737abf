//! Where the configuration files and the data directory are looked for.

use super::*;

#[test]
fn user_config_file_follows_xdg() {
    let os = |text: &str| Some(OsString::from(text));
    let cases = [
        (
            os("/xdg"),
            os("/home/u"),
            Some("/xdg/daemoneye/config.toml"),
        ),
        (
            None,
            os("/home/u"),
            Some("/home/u/.config/daemoneye/config.toml"),
        ),
        (
            os(""),
            os("/home/u"),
            Some("/home/u/.config/daemoneye/config.toml"),
        ),
        (
            os("relative"),
            os("/home/u"),
            Some("/home/u/.config/daemoneye/config.toml"),
        ),
        (None, None, None),
        (None, os(""), None),
    ];
    for (xdg, home, expected) in cases {
        assert_eq!(
            user_config_file(xdg.clone(), home.clone()),
            expected.map(PathBuf::from),
            "{xdg:?} {home:?}"
        );
    }
}

#[test]
fn standard_sources_read_the_process_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", "/xdg");
        jail.set_env("HOME", "/home/u");
        let sources = ConfigSources::standard(Some(PathBuf::from("site.toml")));
        assert_eq!(
            sources,
            ConfigSources {
                bundle_layer: None,
                system_file: Some(PathBuf::from("/etc/daemoneye/config.toml")),
                user_file: Some(PathBuf::from("/xdg/daemoneye/config.toml")),
                explicit_file: Some(PathBuf::from("site.toml")),
                use_env: true,
            }
        );
        Ok(())
    });
}

#[test]
fn data_dir_rules_apply_in_order() {
    let path = |text: &str| Some(PathBuf::from(text));
    let all = DataDirInputs {
        flag: path("/flag"),
        env: path("/env"),
        is_root: true,
        xdg_state_home: path("/state"),
        home: path("/home/u"),
    };
    let cases = [
        ("flag wins", all.clone(), "/flag"),
        (
            "then the environment",
            DataDirInputs {
                flag: None,
                ..all.clone()
            },
            "/env",
        ),
        (
            "an empty flag and environment count as unset",
            DataDirInputs {
                flag: path(""),
                env: path(""),
                ..all.clone()
            },
            "/var/lib/daemoneye",
        ),
        (
            "then root",
            DataDirInputs {
                flag: None,
                env: None,
                ..all.clone()
            },
            "/var/lib/daemoneye",
        ),
        (
            "then XDG_STATE_HOME",
            DataDirInputs {
                xdg_state_home: path("/state"),
                home: path("/home/u"),
                ..DataDirInputs::default()
            },
            "/state/daemoneye",
        ),
        (
            "a relative XDG_STATE_HOME is ignored",
            DataDirInputs {
                xdg_state_home: path("state"),
                home: path("/home/u"),
                ..DataDirInputs::default()
            },
            "/home/u/.local/state/daemoneye",
        ),
        (
            "then HOME",
            DataDirInputs {
                home: path("/home/u"),
                ..DataDirInputs::default()
            },
            "/home/u/.local/state/daemoneye",
        ),
        (
            "an empty HOME is ignored",
            DataDirInputs {
                home: path(""),
                ..DataDirInputs::default()
            },
            "/tmp/daemoneye-state",
        ),
        (
            "last resort",
            DataDirInputs::default(),
            "/tmp/daemoneye-state",
        ),
    ];
    for (rule, inputs, expected) in cases {
        assert_eq!(resolve_data_dir(&inputs), PathBuf::from(expected), "{rule}");
    }
}

#[test]
fn data_dir_inputs_come_from_the_environment() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("DAEMONEYE_DATA_DIR", "/srv/daemoneye");
        jail.set_env("XDG_STATE_HOME", "/state");
        jail.set_env("HOME", "/home/u");
        let inputs = DataDirInputs::from_env(Some(PathBuf::from("/flag")), false);
        assert_eq!(
            inputs,
            DataDirInputs {
                flag: Some(PathBuf::from("/flag")),
                env: Some(PathBuf::from("/srv/daemoneye")),
                is_root: false,
                xdg_state_home: Some(PathBuf::from("/state")),
                home: Some(PathBuf::from("/home/u")),
            }
        );
        Ok(())
    });
}
