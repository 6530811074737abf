//! How a manifest is shown to a person, the same for `verify` and `inspect`: one `key: value`
//! line per manifest field, then one line per file. Every string from the bundle goes through
//! `daemoneye_lib::text::escape`, verified or not, so a hostile name cannot drive the terminal.

use std::fmt::Write as _;

use daemoneye_lib::bundle::Manifest;
use daemoneye_lib::text::escape;

/// The manifest as lines of text, each ending in `\n`.
pub fn manifest(manifest: &Manifest) -> String {
    let header = &manifest.header;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "name: {}", escape(header.name.as_str()));
    let _ = writeln!(out, "kind: {}", header.kind);
    let _ = writeln!(out, "version: {}", header.version);
    let _ = writeln!(out, "created: {}", header.created);
    let _ = writeln!(out, "expires: {}", header.expires);
    let _ = writeln!(out, "sites: {}", escape(&header.sites.to_string()));
    let _ = writeln!(
        out,
        "min_agent_version: {}",
        escape(&header.min_agent_version)
    );
    let _ = writeln!(
        out,
        "requires_license: {}",
        header
            .requires_license
            .as_deref()
            .map_or("none".into(), escape)
    );
    if let Some(description) = &header.description {
        let _ = writeln!(out, "description: {}", escape(description));
    }
    let _ = writeln!(out, "files: {}", manifest.files.len());
    for file in &manifest.files {
        let _ = writeln!(
            out,
            "  {:>10}  {}  {}",
            file.size,
            escape(&file.blake3),
            escape(&file.path)
        );
    }
    out
}
