//! The checked value types of the configuration: [`HumanDuration`] and the user-name check,
//! each parsed and validated once so that the rest of the program can trust them. (`SiteId`
//! lives with the other checked ids in `crate::ids`; `config` re-exports it.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

/// Why a user name is rejected; shared by the validation and its tests.
pub(super) const USER_NAME_RULE: &str = "expected 1 to 32 characters: a lowercase letter or \
     \"_\", then lowercase letters, digits, \"_\" or \"-\", optionally ending in \"$\"";

/// Whether `name` is a plausible Unix user name: `[a-z_][a-z0-9_-]*[$]?`, at most 32 characters.
///
/// This is the portable subset that `useradd` accepts by default; anything else in a
/// configuration file is far more likely a typo than a real account.
pub(super) fn is_valid_user_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 32
        && (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A duration written the human way: `"500ms"`, `"10s"`, `"5m"`, `"7d"`, `"1h 30m"`.
///
/// It serializes back to the same form, so that a configuration written out by the program
/// reads like one written by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// Wraps a duration.
    pub const fn new(duration: Duration) -> Self {
        Self(duration)
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Why the duration is not within `min..=max`, if it is not: every duration of the
    /// configuration has a sane range (`"99999999999d"` parses, but no interval is that).
    pub fn outside(self, min: Duration, max: Duration) -> Option<String> {
        (self.0 < min || self.0 > max).then(|| {
            format!(
                "must be between {} and {}, not {self}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            )
        })
    }
}

impl From<Duration> for HumanDuration {
    fn from(duration: Duration) -> Self {
        Self(duration)
    }
}

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_duration(self.0), f)
    }
}

impl FromStr for HumanDuration {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        // humantime's own messages ("time unit needed, for example 10sec or 10ms") mention
        // spellings we do not document, so one message of ours replaces all of them.
        humantime::parse_duration(value)
            .map(Self)
            .map_err(|_| ConfigError::InvalidDuration {
                value: value.to_owned(),
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_str_only(
            deserializer,
            "a duration such as \"500ms\", \"10s\", \"5m\" or \"7d\"",
        )
    }
}

/// Deserializes a checked value from a string, and only from a string, through its `FromStr`,
/// so that the configuration and the command line share one parser and one error message.
fn from_str_only<'de, T, D>(deserializer: D, expecting: &'static str) -> Result<T, D::Error>
where
    T: FromStr<Err = ConfigError>,
    D: Deserializer<'de>,
{
    struct StrVisitor<T> {
        expecting: &'static str,
        value: std::marker::PhantomData<T>,
    }

    impl<T: FromStr<Err = ConfigError>> Visitor<'_> for StrVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            value.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(StrVisitor {
        expecting,
        value: std::marker::PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_the_human_way() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500)), "500ms"),
            ("10s", Some(Duration::from_secs(10)), "10s"),
            ("5m", Some(Duration::from_secs(300)), "5m"),
            ("7d", Some(Duration::from_secs(7 * 86_400)), "7days"),
            ("1h 30m", Some(Duration::from_secs(5400)), "1h 30m"),
            ("0s", Some(Duration::ZERO), "0s"),
            ("ten", None, ""),
            ("10", None, ""),
            ("", None, ""),
        ];
        for (text, expected, printed) in cases {
            let parsed = text.parse::<HumanDuration>();
            assert_eq!(parsed.as_ref().ok().map(|d| d.get()), expected, "{text:?}");
            if let Ok(duration) = parsed {
                assert_eq!(duration.to_string(), printed);
                assert_eq!(
                    serde_json::to_string(&duration).expect("serializes"),
                    format!("\"{printed}\"")
                );
                assert_eq!(printed.parse::<HumanDuration>(), Ok(duration));
            }
        }
    }

    #[test]
    fn user_names_are_validated() {
        let longest = format!("a{}", "b".repeat(31));
        let too_long = format!("a{}", "b".repeat(32));
        let cases = [
            ("daemoneye", true),
            ("_svc", true),
            ("svc-2_x", true),
            ("machine$", true),
            (longest.as_str(), true),
            ("", false),
            ("$", false),
            ("Root", false),
            ("2svc", false),
            ("-svc", false),
            ("a$b", false),
            ("svc user", false),
            (too_long.as_str(), false),
        ];
        for (name, valid) in cases {
            assert_eq!(is_valid_user_name(name), valid, "{name:?}");
        }
    }
}
