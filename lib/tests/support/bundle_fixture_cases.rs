//! The attacks themselves: one [`Case`] each, built with the helpers of the parent module, its
//! expected refusal written out by hand from the specification.

use super::*;

/// A rule whose two fixtures pass.
const RULE: &str = r#"[[rule]]
id = "T-1"
name = "netcat running"
severity = "high"
mitre = ["T1059"]
description = "a test rule of the attack fixtures"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "nc" }]
expect_rows = 1

[[rule.test]]
processes = [{ pid = 1, name = "sh" }]
expect_rows = 0
"#;

/// A second valid rule, for a file the manifest does not list.
const OTHER_RULE: &str = r#"[[rule]]
id = "T-2"
name = "socat running"
severity = "high"
mitre = ["T1059"]
description = "a test rule of the attack fixtures"
sql = "SELECT pid, name FROM processes WHERE name = 'socat'"

[[rule.test]]
processes = [{ pid = 1, name = "socat" }]
expect_rows = 1
"#;

/// A rule whose only fixture expects a row it cannot get: the bundler refuses to pack it.
const FAILING_RULE: &str = r#"[[rule]]
id = "T-1"
name = "netcat running"
severity = "high"
mitre = ["T1059"]
description = "a test rule whose fixture fails"
sql = "SELECT pid, name FROM processes WHERE name = 'nc'"

[[rule.test]]
processes = [{ pid = 1, name = "sh" }]
expect_rows = 1
"#;

/// The largest manifest the verifier reads (`bundle::manifest::MAX_MANIFEST_BYTES`), restated
/// so that a change of the bound shows here.
const MAX_MANIFEST_BYTES: usize = 2 * 1024 * 1024;

#[allow(clippy::too_many_lines)]
pub(super) fn cases() -> Result<Vec<Case>, String> {
    let key = bundle_key();
    let all = "[\"*\"]";
    let good_header = header(&header_text(NAME, VERSION, CREATED, EXPIRES, all))?;
    let good_src = source(good_header.clone(), &[("rules/t.toml", RULE)]);
    let (good, good_manifest) = packed(&good_src)?;
    let file_name = good_header.file_name();
    let bundle_id = key.key_id().to_string();
    let other_id = other_key().key_id().to_string();
    let mut cases = Vec::new();
    let mut push = |folder, about, bundle: Vec<u8>, signature: String, step, message: String| {
        cases.push(Case {
            folder,
            about,
            file_name: file_name.clone(),
            bundle,
            signature,
            context: Context::default(),
            step,
            message,
        });
    };

    // Step 2: the signature.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    push(
        "bad-signature",
        "one byte of the bundle flipped after it was signed",
        flipped,
        sign(&good, &good_manifest, &key)?,
        "signature",
        format!(
            "signature: the file does not match its signature by key {bundle_id}: the file was altered or the signature is for another file"
        ),
    );
    push(
        "untrusted-key",
        "a valid bundle signed by a key the host does not trust",
        good.clone(),
        sign(&good, &good_manifest, &other_key())?,
        "signature",
        format!("signature: signed by key {other_id}, which is not a trusted key"),
    );
    push(
        "revoked-key",
        "signed by the bundle key after a keys bundle revoked it",
        good.clone(),
        sign(&good, &good_manifest, &key)?,
        "signature",
        format!("signature: signed by key {bundle_id}, which was revoked by a keys bundle"),
    );
    push(
        "legacy-signature",
        "a legacy (non-prehashed, `Ed`) minisign signature by the trusted key",
        good.clone(),
        legacy_signature(&good, &good_manifest.header.trusted_comment()),
        "signature",
        "signature: legacy non-prehashed minisign signature (algorithm Ed) refused: sign with prehashing (minisign -S without -l)".to_owned(),
    );
    let old_comment = format!("bundle:{NAME}\tversion:3\tkind:rules\tfile:{NAME}-3.bundle");
    push(
        "comment-other-bundle",
        "validly signed, but the trusted comment names version 3 of the bundle",
        good.clone(),
        sign_with_comment(&good, &key, &old_comment)?,
        "trusted-comment",
        format!(
            "the signature's trusted comment \"bundle:{NAME}\\tversion:3\\tkind:rules\\tfile:{NAME}-3.bundle\" does not name this bundle (bundle:{NAME} version:{VERSION})"
        ),
    );
    let other_header = header(&header_text("other-rules", VERSION, CREATED, EXPIRES, all))?;
    let (other, other_manifest) = packed(&source(other_header, &[("rules/t.toml", RULE)]))?;
    push(
        "signature-of-other-bundle",
        "the valid signature of another bundle (other-rules-4) beside this one",
        good.clone(),
        sign(&other, &other_manifest, &key)?,
        "signature",
        format!(
            "signature: the file does not match its signature by key {bundle_id}: the file was altered or the signature is for another file"
        ),
    );

    // Steps 3 to 6: the archive, its entries, the files against the manifest.
    let half = good.get(..good.len() / 2).unwrap_or_default().to_vec();
    push(
        "truncated",
        "the bundle cut in half, the half validly signed",
        half.clone(),
        sign(&half, &good_manifest, &key)?,
        "archive",
        "archive: the bundle is truncated or damaged: the compressed stream ends early".to_owned(),
    );
    let zeros = vec![0u8; 1 << 20];
    let bomb_src = Source {
        header: good_header.clone(),
        files: vec![("rules/bomb.toml".to_owned(), zeros.clone())],
    };
    let bomb_manifest = pack::manifest_of(&bomb_src);
    let bomb = raw_bundle(&[
        manifest_entry(&bomb_manifest)?,
        Raw::file("rules/bomb.toml", &zeros),
    ])?;
    let bomb_sig = sign(&bomb, &bomb_manifest, &key)?;
    push(
        "zstd-bomb",
        "1 MiB of zeros, a few hundred bytes compressed, against max_expanded_bytes = 65536",
        bomb,
        bomb_sig,
        "archive",
        "archive: it expands to more than 65536 bytes (bundles.max_expanded_bytes)".to_owned(),
    );

    // A hostile entry after the manifest and before the one listed file.
    let hostile = |entry: Raw| -> Result<(Vec<u8>, String), String> {
        let bytes = raw_bundle(&[
            manifest_entry(&good_manifest)?,
            entry,
            Raw::file("rules/t.toml", RULE.as_bytes()),
        ])?;
        let sig = sign(&bytes, &good_manifest, &key)?;
        Ok((bytes, sig))
    };
    let only_regular = |path: &str, what: &str| {
        format!("entry \"{path}\": {what}: a bundle holds regular files only")
    };
    let (bytes, sig) = hostile(Raw::file("rules/../../etc/x.toml", RULE.as_bytes()))?;
    push(
        "path-dotdot",
        "an entry rules/../../etc/x.toml, which leaves the bundle",
        bytes,
        sig,
        "entry",
        "entry \"rules/../../etc/x.toml\": path \"rules/../../etc/x.toml\" leaves the bundle"
            .to_owned(),
    );
    let (bytes, sig) = hostile(Raw::file("/etc/x.toml", RULE.as_bytes()))?;
    push(
        "path-absolute",
        "an entry with the absolute path /etc/x.toml",
        bytes,
        sig,
        "entry",
        "entry \"/etc/x.toml\": path \"/etc/x.toml\" is absolute".to_owned(),
    );
    let (bytes, sig) = hostile(Raw {
        link: Some("/etc/shadow"),
        ..Raw::special("rules/x.toml", tar::EntryType::Symlink)
    })?;
    push(
        "symlink",
        "an entry rules/x.toml that is a symbolic link to /etc/shadow",
        bytes,
        sig,
        "entry",
        only_regular("rules/x.toml", "a symbolic link"),
    );
    let (bytes, sig) = hostile(Raw {
        link: Some("rules/t.toml"),
        ..Raw::special("rules/x.toml", tar::EntryType::Link)
    })?;
    push(
        "hardlink",
        "an entry rules/x.toml that is a hard link to rules/t.toml",
        bytes,
        sig,
        "entry",
        only_regular("rules/x.toml", "a hard link"),
    );
    let (bytes, sig) = hostile(Raw {
        device: Some((1, 3)),
        ..Raw::special("rules/x.toml", tar::EntryType::Char)
    })?;
    push(
        "device",
        "an entry rules/x.toml that is a character device (1, 3: /dev/null)",
        bytes,
        sig,
        "entry",
        only_regular("rules/x.toml", "a character device"),
    );
    let (bytes, sig) = hostile(Raw::special("rules/x.toml", tar::EntryType::Fifo))?;
    push(
        "fifo",
        "an entry rules/x.toml that is a fifo",
        bytes,
        sig,
        "entry",
        only_regular("rules/x.toml", "a fifo"),
    );
    let dup = raw_bundle(&[
        manifest_entry(&good_manifest)?,
        Raw::file("rules/t.toml", RULE.as_bytes()),
        Raw::file("rules/t.toml", RULE.as_bytes()),
    ])?;
    let dup_sig = sign(&dup, &good_manifest, &key)?;
    push(
        "duplicate-path",
        "rules/t.toml twice in the tar (the manifest lists it once)",
        dup,
        dup_sig,
        "entry",
        "entry \"rules/t.toml\": the path appears twice".to_owned(),
    );
    let extra = raw_bundle(&[
        manifest_entry(&good_manifest)?,
        Raw::file("rules/t.toml", RULE.as_bytes()),
        Raw::file("rules/u.toml", OTHER_RULE.as_bytes()),
    ])?;
    let extra_sig = sign(&extra, &good_manifest, &key)?;
    push(
        "file-not-in-manifest",
        "a valid rule file rules/u.toml that the manifest does not list",
        extra,
        extra_sig,
        "hash",
        "file \"rules/u.toml\": the file is not in the manifest".to_owned(),
    );
    // The file swapped for one of the same size after the manifest was written.
    let swapped = RULE.replace("name = 'nc'", "name = 'xx'");
    let mut swapped_manifest = good_manifest.clone();
    swapped_manifest.files = vec![FileEntry {
        path: "rules/t.toml".to_owned(),
        size: RULE.len() as u64,
        blake3: blake3::hash(RULE.as_bytes()).to_hex().to_string(),
    }];
    let swap = raw_bundle(&[
        manifest_entry(&swapped_manifest)?,
        Raw::file("rules/t.toml", swapped.as_bytes()),
    ])?;
    let swap_sig = sign(&swap, &swapped_manifest, &key)?;
    push(
        "hash-mismatch",
        "rules/t.toml changed (same size) after the manifest recorded its BLAKE3",
        swap,
        swap_sig,
        "hash",
        format!(
            "file \"rules/t.toml\": BLAKE3 {}, the manifest says {}",
            blake3::hash(swapped.as_bytes()).to_hex(),
            blake3::hash(RULE.as_bytes()).to_hex()
        ),
    );

    // Steps 7 to 11: validly signed, well-formed bundles the host must still refuse. Each
    // has its own file name (its own version) where that is the point.
    let mut valid = |folder: &'static str,
                     about: &'static str,
                     header_toml: String,
                     files: &[(&str, &str)],
                     by_hand: bool,
                     step: &'static str,
                     message: String|
     -> Result<(), String> {
        let header = header(&header_toml)?;
        let src = source(header.clone(), files);
        let (bytes, manifest) = if by_hand {
            let manifest = pack::manifest_of(&src);
            let mut entries = vec![manifest_entry(&manifest)?];
            for (path, bytes) in &src.files {
                entries.push(Raw::file(path, bytes));
            }
            (raw_bundle(&entries)?, manifest)
        } else {
            packed(&src)?
        };
        let signature = sign(&bytes, &manifest, &key)?;
        cases.push(Case {
            folder,
            about,
            file_name: header.file_name(),
            bundle: bytes,
            signature,
            context: Context::default(),
            step,
            message,
        });
        Ok(())
    };
    let rule = [("rules/t.toml", RULE)];
    valid(
        "rollback",
        "version 2 when version 3 was accepted",
        header_text(NAME, 2, CREATED, EXPIRES, all),
        &rule,
        false,
        "version",
        format!(
            "{NAME} version 2 is not above version 3, the newest ever accepted (a rollback or a replay)"
        ),
    )?;
    valid(
        "replay",
        "version 3 again when version 3 is active",
        header_text(NAME, 3, CREATED, EXPIRES, all),
        &rule,
        false,
        "version",
        format!(
            "{NAME} version 3 is not above version 3, the newest ever accepted (a rollback or a replay)"
        ),
    )?;
    valid(
        "expired",
        "expired on 2027-03-01, judged on 2027-06-01",
        header_text(NAME, VERSION, CREATED, "2027-03-01T00:00:00Z", all),
        &rule,
        false,
        "time",
        format!("expired at 2027-03-01T00:00:00Z (now is {NOW})"),
    )?;
    valid(
        "not-yet-valid",
        "created two days ahead of now, the allowed skew is one day",
        header_text(NAME, VERSION, "2027-06-03T00:00:00Z", EXPIRES, all),
        &rule,
        false,
        "time",
        format!(
            "not yet valid: created 2027-06-03T00:00:00Z, more than {SKEW} s after now ({NOW})"
        ),
    )?;
    valid(
        "wrong-site",
        "a bundle for site plant-9 on a host of site plant-7",
        header_text(NAME, VERSION, CREATED, EXPIRES, "[\"plant-9\"]"),
        &rule,
        false,
        "site",
        format!("for plant-9, not for this host's site ({SITE})"),
    )?;
    valid(
        "agent-too-old",
        "min_agent_version 99.0.0 on agent 0.1.0",
        header_text(NAME, VERSION, CREATED, EXPIRES, all).replace(
            "min_agent_version = \"0.1.0\"",
            "min_agent_version = \"99.0.0\"",
        ),
        &rule,
        false,
        "agent-version",
        format!("needs agent version 99.0.0 or later; this agent is {AGENT}"),
    )?;
    valid(
        "failing-fixture",
        "a rule whose fixture expects 1 row and gets 0 (packed by hand: the bundler refuses it)",
        header_text(NAME, VERSION, CREATED, EXPIRES, all),
        &[("rules/t.toml", FAILING_RULE)],
        true,
        "content",
        format!(
            "content: bundle:{NAME}/rules/t.toml: T-1: fixture \"fixture 1\" failed: expected 1 rows, got 0 rows"
        ),
    )?;

    // A manifest one byte over the bound, padded with a TOML comment, validly signed.
    let mut big = good_manifest.to_toml().map_err(|e| e.to_string())?;
    big.push('#');
    while big.len() < MAX_MANIFEST_BYTES {
        big.push(' ');
    }
    big.push('\n');
    let oversized = raw_bundle(&[
        Raw::file(MANIFEST_PATH, big.as_bytes()),
        Raw::file("rules/t.toml", RULE.as_bytes()),
    ])?;
    let oversized_sig = sign(&oversized, &good_manifest, &key)?;
    cases.push(Case {
        folder: "oversized-manifest",
        about: "manifest.toml one byte over the 2 MiB bound (a padded comment)",
        file_name: file_name.clone(),
        bundle: oversized,
        signature: oversized_sig,
        context: Context::default(),
        step: "manifest",
        message: format!(
            "manifest: it is {} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
            MAX_MANIFEST_BYTES + 1
        ),
    });

    for case in &mut cases {
        match case.folder {
            "revoked-key" => case.context.revoked_key_ids = vec![bundle_id.clone()],
            "zstd-bomb" => case.context.max_expanded_bytes = Some(65_536),
            _ => {}
        }
    }
    // The generated order is the list's order.
    cases.sort_by_key(|case| ATTACKS.iter().position(|name| *name == case.folder));
    Ok(cases)
}
