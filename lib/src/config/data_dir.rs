//! The data directory rule of INTERFACE.md: `--data-dir`, else `$DAEMONEYE_DATA_DIR`, else
//! `/var/lib/daemoneye` for root, else the user's state directory. The rule is a pure function
//! of [`DataDirInputs`] so that it is tested without touching the environment.

use std::path::PathBuf;

use super::absolute;

/// The environment variable that chooses the data directory (see [`resolve_data_dir`]).
pub const DATA_DIR_ENV: &str = "DAEMONEYE_DATA_DIR";

/// The data directory of a process running as root.
const SYSTEM_DATA_DIR: &str = "/var/lib/daemoneye";

/// The data directory when nothing better is known; see [`resolve_data_dir`].
const FALLBACK_DATA_DIR: &str = "/tmp/daemoneye-state";

/// Everything [`resolve_data_dir`] looks at, gathered so that the rule itself stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDirInputs {
    /// `--data-dir`, if given.
    pub flag: Option<PathBuf>,
    /// `$DAEMONEYE_DATA_DIR`.
    pub env: Option<PathBuf>,
    /// Whether the process runs as root.
    pub is_root: bool,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl DataDirInputs {
    /// Gathers the inputs from the process environment.
    pub fn from_env(flag: Option<PathBuf>, is_root: bool) -> Self {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        Self {
            flag,
            env: var(DATA_DIR_ENV),
            is_root,
            xdg_state_home: var("XDG_STATE_HOME"),
            home: var("HOME"),
        }
    }
}

/// Chooses the data directory; pure, so that the rule can be tested without touching the
/// environment.
///
/// The first that applies wins: the flag; `$DAEMONEYE_DATA_DIR`; `/var/lib/daemoneye` for root;
/// `$XDG_STATE_HOME/daemoneye`; `$HOME/.local/state/daemoneye`; `/tmp/daemoneye-state`.
/// Empty values count as unset, and `$XDG_STATE_HOME` and `$HOME` only count when absolute, so
/// that the directory never depends on the current directory by accident. The last resort is
/// shared with every user of the machine: whoever creates it must refuse a directory that
/// already exists and is owned by someone else.
pub fn resolve_data_dir(inputs: &DataDirInputs) -> PathBuf {
    let given = |path: &Option<PathBuf>| {
        path.as_ref()
            .filter(|path| !path.as_os_str().is_empty())
            .cloned()
    };
    if let Some(flag) = given(&inputs.flag) {
        return flag;
    }
    if let Some(env) = given(&inputs.env) {
        return env;
    }
    if inputs.is_root {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    if let Some(state_home) = absolute(inputs.xdg_state_home.clone()) {
        return state_home.join("daemoneye");
    }
    if let Some(home) = absolute(inputs.home.clone()) {
        return home.join(".local/state/daemoneye");
    }
    PathBuf::from(FALLBACK_DATA_DIR)
}
