//! `license issue --site SITE --tier TIER [--features a,b] --expires DATE --out DIR`: a
//! license source directory, ready for `build` with a license-issuing key.
//!
//! It writes `DIR/bundle.toml` (name `license-SITE`, kind `license`, version and created the
//! issue time, expires the license's expiry, for SITE alone) and `DIR/license/license.toml`
//! (`daemoneye_lib::bundle::License`). The version is the issue time in Unix seconds, so a
//! license issued later for the same site always replaces an earlier one and never the other
//! way round. Both files are checked as `build` will check them before anything is written.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use daemoneye_lib::bundle::content::validate;
use daemoneye_lib::bundle::license::{LICENSE_PATH, check_feature};
use daemoneye_lib::bundle::pack::SOURCE_HEADER;
use daemoneye_lib::bundle::{Header, Kind, License, Sites, Timestamp};
use daemoneye_lib::detection::sandbox::Limits as SandboxLimits;
use daemoneye_lib::ids::{BundleName, SiteId};
use daemoneye_lib::text::quoted;

use crate::UsageError;

/// The oldest agent a license bundle is written for.
const MIN_AGENT_VERSION: &str = "0.1.0";

/// Writes the license source directory `out`.
pub fn issue(
    site: &str,
    tier: &str,
    features: &[String],
    expires: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let usage = |text: String| anyhow::Error::from(UsageError(text));
    let site = SiteId::parse(site).map_err(|err| usage(format!("--site: {err}")))?;
    check_feature(tier).map_err(|reason| usage(format!("--tier: {reason}")))?;
    let features: Vec<String> = features
        .iter()
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    for feature in &features {
        check_feature(feature).map_err(|reason| usage(format!("--features: {reason}")))?;
    }
    let expires = parse_date(expires).map_err(|reason| usage(format!("--expires: {reason}")))?;
    let now = crate::verify::now_secs()?;
    if expires.0 <= now {
        return Err(usage(format!("--expires: {expires} is not in the future")));
    }
    let name = BundleName::parse(&format!("license-{site}")).map_err(|err| {
        usage(format!(
            "--site: {site} cannot name a license bundle (license-{site}): {err}"
        ))
    })?;
    check_out(out)?;

    let issued = Timestamp(now);
    let license = License {
        site: site.clone(),
        tier: tier.to_owned(),
        features,
        issued,
        expires,
        licensee: None,
    };
    let header = Header {
        name,
        kind: Kind::License,
        version: u64::try_from(now).context("the system clock is before 1970")?,
        created: issued,
        expires,
        sites: Sites::Only(vec![site.clone()]),
        min_agent_version: MIN_AGENT_VERSION.to_owned(),
        requires_license: None,
        description: Some(format!("license for site {site}, tier {tier}")),
    };
    let header_text = format!(
        "# A license source written by `daemoneye-bundler license issue`. Build and sign it with\n\
         # a license-issuing key:\n\
         #   daemoneye-bundler build {} --key LICENSE-KEY.key --out OUT_DIR\n{}",
        daemoneye_lib::text::escape(&out.display().to_string()),
        toml::to_string(&header).context("writing bundle.toml")?
    );
    let license_text = license.to_toml();
    // Checked as `build` will check them, so that what this writes builds.
    let parsed = Header::parse_source(&header_text)
        .map_err(|reason| anyhow::anyhow!("the bundle.toml written does not parse: {reason}"))?;
    validate(
        &parsed,
        &[(LICENSE_PATH.to_owned(), license_text.clone().into_bytes())],
        SandboxLimits::default(),
    )
    .context("the license written does not validate")?;

    let license_dir = out.join(LICENSE_PATH).parent().map(Path::to_path_buf);
    let license_dir = license_dir.context("the license path has a directory")?;
    fs::create_dir_all(&license_dir)
        .with_context(|| format!("creating {}", license_dir.display()))?;
    for (path, text) in [
        (out.join(SOURCE_HEADER), header_text),
        (out.join(LICENSE_PATH), license_text),
    ] {
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    crate::print(&format!(
        "wrote {}: license-{site} version {} for site {site}, tier {tier}, expires {expires}\n",
        out.display(),
        header.version
    ))
}

/// `--out` must not exist or be an empty directory: a license source is never written over
/// another.
fn check_out(out: &Path) -> anyhow::Result<()> {
    let shown = quoted(&out.display().to_string()).to_string();
    match fs::symlink_metadata(out) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("reading {shown}")),
        Ok(meta) if !meta.is_dir() => {
            Err(UsageError(format!("--out {shown} exists and is not a directory")).into())
        }
        Ok(_) => {
            let mut entries = fs::read_dir(out).with_context(|| format!("reading {shown}"))?;
            if entries.next().is_some() {
                return Err(UsageError(format!(
                    "--out {shown} is not empty: a license source is written into a new directory"
                ))
                .into());
            }
            Ok(())
        }
    }
}

/// RFC 3339 in UTC, or `YYYY-MM-DD` (midnight UTC).
fn parse_date(text: &str) -> Result<Timestamp, String> {
    let is_date = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if is_date {
        return Timestamp::parse(&format!("{text}T00:00:00Z"))
            .map_err(|_| format!("{} is not a date such as 2027-12-03", quoted(text)));
    }
    Timestamp::parse(text).map_err(|reason| format!("{reason}, or a date such as 2027-12-03"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse() {
        for (text, expected) in [
            ("2027-12-03", Some(1_827_792_000)),
            ("2027-12-03T00:00:00Z", Some(1_827_792_000)),
            ("2027-12-03T01:00:00Z", Some(1_827_795_600)),
            ("2027-13-03", None),
            ("2027-12-3", None),
            ("tomorrow", None),
            ("", None),
        ] {
            assert_eq!(parse_date(text).ok().map(|t| t.0), expected, "{text}");
        }
    }
}
