//! The `[collection]` and `[collector]` sections: how often and how much procmond scans, and
//! how the agent starts, watches and restarts it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Problem, USER_NAME_RULE, is_valid_user_name};

/// The `[collection]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Time between two process scans (default 10 s).
    pub interval: HumanDuration,
    /// Executables larger than this are not hashed (default 512 MiB).
    pub hash_max_bytes: u64,
    /// Time one scan may spend hashing executables (default 5 s).
    pub hash_time_budget: HumanDuration,
    /// Hear the kernel's exec events as they happen (Linux's process connector; default
    /// true). Off, or where the host does not provide them, scans alone see processes.
    pub exec_events: bool,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration::new(Duration::from_secs(10)),
            hash_max_bytes: 512 * 1024 * 1024,
            hash_time_budget: HumanDuration::new(Duration::from_secs(5)),
            exec_events: true,
        }
    }
}

/// The `[collector]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// User the collector drops privileges to; never `root`. `None` leaves the choice to the
    /// collector (`daemoneye` if that user exists, else a uid of its own that no account or
    /// other process uses); this module never looks users up (the agent checks that the user
    /// exists through [`load_checked`](super::load_checked)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How often the agent checks procmond's health (default 5 s).
    pub health_interval: HumanDuration,
    /// The first delay before restarting a crashed procmond (default 250 ms).
    pub restart_backoff_min: HumanDuration,
    /// The longest delay before restarting a crashed procmond (default 30 s).
    pub restart_backoff_max: HumanDuration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            user: None,
            health_interval: HumanDuration::new(Duration::from_secs(5)),
            restart_backoff_min: HumanDuration::new(Duration::from_millis(250)),
            restart_backoff_max: HumanDuration::new(Duration::from_secs(30)),
        }
    }
}

impl CollectionConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if let Some(why) = self.interval.outside(Duration::from_millis(100), DAY) {
            return Some(("interval", why));
        }
        if self.hash_max_bytes == 0 {
            return Some(("hash_max_bytes", "must be greater than zero".to_owned()));
        }
        self.hash_time_budget
            .outside(Duration::from_millis(1), HOUR)
            .map(|why| ("hash_time_budget", why))
    }
}

/// An hour and a day, the upper bounds of the intervals.
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Why `collector.user = "root"` is refused.
const ROOT_REFUSED: &str = "\"root\" is refused: the collector must drop to an unprivileged \
    user (leave the key unset for a dedicated daemoneye user, else a uid of its own)";

impl CollectorConfig {
    /// The first out-of-range value of this section, if any.
    pub(super) fn problem(&self) -> Option<Problem> {
        if let Some(user) = self.user.as_deref()
            && !is_valid_user_name(user)
        {
            return Some((
                "user",
                format!("invalid user name {user:?}: {USER_NAME_RULE}"),
            ));
        }
        if self.user.as_deref() == Some("root") {
            return Some(("user", ROOT_REFUSED.to_owned()));
        }
        if let Some(why) = self
            .health_interval
            .outside(Duration::from_millis(10), HOUR)
        {
            return Some(("health_interval", why));
        }
        if let Some(why) = self
            .restart_backoff_min
            .outside(Duration::from_millis(1), HOUR)
        {
            return Some(("restart_backoff_min", why));
        }
        if let Some(why) = self
            .restart_backoff_max
            .outside(Duration::from_millis(1), DAY)
        {
            return Some(("restart_backoff_max", why));
        }
        if self.restart_backoff_max.get() < self.restart_backoff_min.get() {
            return Some((
                "restart_backoff_max",
                format!(
                    "must be at least collector.restart_backoff_min ({})",
                    self.restart_backoff_min
                ),
            ));
        }
        None
    }
}
