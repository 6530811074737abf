//! Site licenses: `license/license.toml` in a license bundle, and the one question every gate
//! asks, [`LicenseState::allows`]: "does the active license allow FEATURE now".
//!
//! ```toml
//! site = "plant-7"                      # the site.id it is for
//! tier = "business"                     # what was bought
//! features = ["splunk_hec", "elasticsearch", "curated-rules"]
//! issued = "2026-12-03T00:00:00Z"
//! expires = "2027-12-03T00:00:00Z"
//! licensee = "Plant 7 security team"    # optional
//! ```
//!
//! A license allows its features on its site until it expires, then for the grace period
//! (`license.grace`), then no more: the agent falls back to the free tier, which is every core
//! feature (collection, detection with unlicensed rules, the ledger, the free sinks). Nothing
//! here stops core monitoring.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::manifest::{Timestamp, one_line};
use crate::ids::SiteId;

/// The path of the license inside a license bundle.
pub const LICENSE_PATH: &str = "license/license.toml";
/// The longest feature or tier name.
pub const MAX_NAME: usize = 64;
/// The most features one license names.
pub const MAX_FEATURES: usize = 256;
/// The tier every host has without a license.
pub const FREE_TIER: &str = "free";

/// Checks a feature or tier name: 1 to 64 of `a-z 0-9 _ -`, the first a letter.
pub fn check_feature(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a name of 1 to {MAX_NAME} of a-z, 0-9, _ and -, the first a letter",
            crate::text::quoted(&name.chars().take(72).collect::<String>())
        ))
    }
}

/// `license/license.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// The site it is for.
    pub site: SiteId,
    /// The tier bought.
    pub tier: String,
    /// The features it allows.
    #[serde(default)]
    pub features: Vec<String>,
    /// When it was issued.
    pub issued: Timestamp,
    /// When it expires (the grace period follows).
    pub expires: Timestamp,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensee: Option<String>,
}

impl License {
    /// Parses and checks `license.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let license: Self = toml::from_str(text).map_err(|err| one_line(&err.to_string()))?;
        check_feature(&license.tier).map_err(|reason| format!("tier: {reason}"))?;
        if license.features.len() > MAX_FEATURES {
            return Err(format!("features: more than {MAX_FEATURES}"));
        }
        for (index, feature) in license.features.iter().enumerate() {
            check_feature(feature).map_err(|reason| format!("features: {reason}"))?;
            if license
                .features
                .get(..index)
                .is_some_and(|before| before.contains(feature))
            {
                return Err(format!("features: {feature} named twice"));
            }
        }
        if license.expires <= license.issued {
            return Err("expires: not after issued".to_owned());
        }
        if let Some(licensee) = &license.licensee
            && (licensee.len() > 256 || licensee.chars().any(crate::text::needs_escape))
        {
            return Err("licensee: at most 256 bytes of printable text".to_owned());
        }
        Ok(license)
    }

    /// The license as TOML.
    pub fn to_toml(&self) -> String {
        // Every field is a string, a list of strings or a time; serialization cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

/// Where the active license stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No license bundle was applied: the free tier.
    None,
    /// A license for another site (the host's `site.id` changed after it was applied, or the
    /// host has none): the free tier.
    OtherSite {
        /// The license's site.
        site: SiteId,
    },
    /// Valid until `expires`.
    Valid {
        /// When it expires.
        expires: Timestamp,
    },
    /// Expired, still honoured until `until`.
    Grace {
        /// When it expired.
        expired: Timestamp,
        /// When the grace period ends.
        until: Timestamp,
    },
    /// Expired and past the grace period: the free tier.
    Lapsed {
        /// When it expired.
        expired: Timestamp,
    },
}

impl Standing {
    /// `ok`, `degraded` or `failed`-free wording for health: whether the license's features
    /// are in force.
    pub fn in_force(&self) -> bool {
        matches!(self, Self::Valid { .. } | Self::Grace { .. })
    }
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(f, "no license: free tier"),
            Self::OtherSite { site } => {
                write!(f, "the license is for site {site}, not this one: free tier")
            }
            Self::Valid { expires } => write!(f, "valid until {expires}"),
            Self::Grace { expired, until } => write!(
                f,
                "expired {expired}; its features stay on until the grace period ends {until}"
            ),
            Self::Lapsed { expired } => write!(
                f,
                "expired {expired} and the grace period is over: free tier"
            ),
        }
    }
}

/// The active license (if any), this host's site and the grace period: all a gate needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseState {
    /// The license of the active license bundle.
    pub license: Option<License>,
    /// This host's `site.id`.
    pub site: Option<SiteId>,
    /// `license.grace`, in seconds.
    pub grace_secs: i64,
}

impl LicenseState {
    /// Where the license stands at `now` (seconds since the epoch).
    pub fn standing(&self, now: i64) -> Standing {
        let Some(license) = &self.license else {
            return Standing::None;
        };
        if self.site.as_ref() != Some(&license.site) {
            return Standing::OtherSite {
                site: license.site.clone(),
            };
        }
        if now < license.expires.0 {
            return Standing::Valid {
                expires: license.expires,
            };
        }
        let until = Timestamp(license.expires.0.saturating_add(self.grace_secs));
        if now < until.0 {
            Standing::Grace {
                expired: license.expires,
                until,
            }
        } else {
            Standing::Lapsed {
                expired: license.expires,
            }
        }
    }

    /// The tier in force at `now`.
    pub fn tier(&self, now: i64) -> &str {
        match (&self.license, self.standing(now).in_force()) {
            (Some(license), true) => &license.tier,
            _ => FREE_TIER,
        }
    }

    /// Does the active license allow `feature` now? `Err` says why not, on one line, for the
    /// operator ("splunk_hec needs a license: no license: free tier").
    pub fn allows(&self, feature: &str, now: i64) -> Result<(), String> {
        let standing = self.standing(now);
        let named = self
            .license
            .as_ref()
            .is_some_and(|license| license.features.iter().any(|f| f == feature));
        if standing.in_force() && named {
            return Ok(());
        }
        if standing.in_force() {
            return Err(format!(
                "{feature} needs a license that names it; the active license ({}) does not",
                self.license
                    .as_ref()
                    .map_or(FREE_TIER, |license| license.tier.as_str())
            ));
        }
        Err(format!("{feature} needs a license: {standing}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn license() -> License {
        License::parse(
            "site = \"plant-7\"\ntier = \"business\"\nfeatures = [\"splunk_hec\"]\n\
             issued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n",
        )
        .unwrap()
    }

    fn state(site: &str) -> LicenseState {
        LicenseState {
            license: Some(license()),
            site: Some(SiteId::parse(site).unwrap()),
            grace_secs: 10 * 86_400,
        }
    }

    const BEFORE_EXPIRY: i64 = 1_780_000_000; // 2026-05-28
    const EXPIRES: i64 = 1_798_761_600; // 2027-01-01

    #[test]
    fn a_named_feature_is_allowed_on_its_site_until_expiry_and_grace() {
        let state = state("plant-7");
        assert_eq!(state.allows("splunk_hec", BEFORE_EXPIRY), Ok(()));
        assert_eq!(state.tier(BEFORE_EXPIRY), "business");
        assert!(matches!(
            state.standing(EXPIRES + 5),
            Standing::Grace { .. }
        ));
        assert_eq!(state.allows("splunk_hec", EXPIRES + 5), Ok(()));
        let after = EXPIRES + 10 * 86_400;
        assert!(matches!(state.standing(after), Standing::Lapsed { .. }));
        let refused = state.allows("splunk_hec", after).unwrap_err();
        assert!(refused.contains("grace period is over"), "{refused}");
        assert_eq!(state.tier(after), FREE_TIER);
    }

    #[test]
    fn a_feature_not_named_or_another_site_or_no_license_is_refused() {
        let refused = state("plant-7")
            .allows("elasticsearch", BEFORE_EXPIRY)
            .unwrap_err();
        assert!(refused.contains("does not"), "{refused}");
        let refused = state("plant-8")
            .allows("splunk_hec", BEFORE_EXPIRY)
            .unwrap_err();
        assert!(refused.contains("site plant-7, not this one"), "{refused}");
        let none = LicenseState {
            license: None,
            site: None,
            grace_secs: 0,
        };
        let refused = none.allows("splunk_hec", BEFORE_EXPIRY).unwrap_err();
        assert_eq!(refused, "splunk_hec needs a license: no license: free tier");
    }

    #[test]
    fn a_bad_license_file_is_refused() {
        for (text, expected) in [
            (
                "site = \"p\"\ntier = \"Gold\"\nissued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n",
                "tier",
            ),
            (
                "site = \"p\"\ntier = \"gold\"\nfeatures = [\"a\", \"a\"]\nissued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n",
                "twice",
            ),
            (
                "site = \"p\"\ntier = \"gold\"\nissued = \"2026-01-01T00:00:00Z\"\nexpires = \"2025-01-01T00:00:00Z\"\n",
                "not after",
            ),
            (
                "site = \"../p\"\ntier = \"gold\"\nissued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n",
                "site id",
            ),
            (
                "site = \"p\"\ntier = \"gold\"\nissued = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\nextra = 1\n",
                "unknown field",
            ),
        ] {
            let err = License::parse(text).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        assert_eq!(License::parse(&license().to_toml()).unwrap(), license());
    }
}
