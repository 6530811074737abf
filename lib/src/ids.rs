//! Checked identifiers: names that come from files, the command line or another process and
//! end up in file names, report headers, SQL rows and terminals, so they are checked once, at
//! the edge, and carried as types that cannot hold anything else.
//!
//! | type | where it comes from | allowed |
//! | --- | --- | --- |
//! | [`RuleId`] | a rule file's `id` | 1 to 64 of `A-Z a-z 0-9 . _ -`, the first a letter or digit |
//! | [`SiteId`] | `site.id` in the configuration | the same as a rule id |
//! | [`BundleName`] | a bundle's manifest and file name (`NAME-VERSION.bundle`) | 1 to 64 of `a-z 0-9 _ -`, the first a letter or digit |
//! | [`AlertId`] | the agent (see `detection::alerts::alert_id`), the operator's `alerts ack` | exactly 32 of `0-9 a-f` |
//!
//! Every set is ASCII without spaces, slashes, control characters or a leading dot or dash, so
//! an id is safe as a path component (never `.`, `..` or hidden), as a command-line argument
//! (never an option) and on a terminal. A bundle name has no dot at all, so that
//! `NAME-VERSION.bundle` splits one way only; it is lowercase, so that two bundles never
//! differ only by case on a case-insensitive file system.
//!
//! A value is made only by `parse` (which `FromStr`, `TryFrom<&str>` and serde's
//! `Deserialize` call; `Deserialize` refuses numbers rather than turn `007` into `7`), or, for
//! an alert id, by `AlertId::from_bytes` from the hash it is the hex of. It is read by
//! `as_str` or `Display`; there is no `Deref<Target = str>`, so a checked id is never mistaken
//! for a plain string nor a plain string for a checked id.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text;

/// The longest id, in bytes (all ids are ASCII, so also in characters).
pub const MAX_ID_LEN: usize = 64;

/// Characters of a rejected value kept in the error message.
const SHOWN_CHARS: usize = 72;

/// A string that is not a valid id of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value}: expected {rule}")]
pub struct IdError {
    /// What it should have been: `rule id`, `site id`, `bundle name`, `alert id`.
    pub kind: &'static str,
    /// The rejected text, quoted and escaped, its first 72 characters.
    pub value: String,
    /// What is allowed.
    pub rule: &'static str,
}

fn starts_with_alphanumeric(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_rule_id(text: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len())
        && starts_with_alphanumeric(text)
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_bundle_name(text: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len())
        && starts_with_alphanumeric(text)
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

fn is_alert_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Declares a checked id type: its docs, its name, the name of its kind in messages, the
/// check, and the rule stated in messages.
macro_rules! checked_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:path, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// What is allowed, as error messages say it.
            pub const RULE: &'static str = $rule;

            /// Checks `text`.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                if $check(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(IdError {
                        kind: $kind,
                        value: shown(text),
                        rule: $rule,
                    })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor {
                    expecting: concat!(
                        "a ",
                        $kind,
                        " string (an id made only of digits must be quoted)"
                    ),
                    parse: Self::parse,
                })
            }
        }
    };
}

checked_id!(
    /// A rule's id, as a rule file gives it (`DE-LNX-0001`); stable and unique among loaded
    /// rules.
    RuleId,
    "rule id",
    is_rule_id,
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
);

checked_id!(
    /// A site identifier (`plant-7`): it binds licences and site-restricted bundles and ends
    /// up in file names and report headers.
    SiteId,
    "site id",
    is_rule_id,
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
);

checked_id!(
    /// A bundle's name (`core-rules`), as its manifest and its file name give it.
    BundleName,
    "bundle name",
    is_bundle_name,
    "1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
);

checked_id!(
    /// An alert's id: the first 16 bytes of a BLAKE3 hash in lowercase hex (see
    /// `detection::alerts`).
    AlertId,
    "alert id",
    is_alert_id,
    "32 lowercase hex digits"
);

impl AlertId {
    /// The id of 16 bytes of hash: their lowercase hex is an alert id whatever they are, so
    /// this is the one way besides `parse` to make one.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(text::hex(&bytes))
    }
}

/// The rejected text for a message: quoted, escaped and cut, so that a huge or hostile value
/// makes a short, one-line, harmless message.
fn shown(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("{}{more}", text::quoted(&head))
}

/// Deserializes an id from a string, and only from a string, through its `parse`.
struct IdVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
}

impl<T> Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests;
