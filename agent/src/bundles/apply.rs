//! Installing a bundle (read, verify, apply atomically, record) and rolling one back: the
//! steps the parent module's documentation describes.

use std::path::Path;

use daemoneye_lib::bundle::content::Content;
use daemoneye_lib::bundle::{self, Bundle, Kind, Policy, SiteCheck, Verified};
use daemoneye_lib::fsutil;
use daemoneye_lib::ipc::proto::{BundleAction, BundleDecision};
use daemoneye_lib::ledger::entry::{Body, fit_str};
use daemoneye_lib::minisign;
use daemoneye_lib::text;

use super::state::{Applied, Entry, State, Unrecorded};
use super::{Bundles, Decision, HISTORY, STATE, history, store, summary};

impl Bundles {
    /// Reads `path` and `path.minisig` (bounded), verifies them and applies the bundle
    /// atomically; records the decision in the history and returns it. `source` is `cli` or
    /// `inbox`; `now_ms` the clock. A refusal changes nothing but the history.
    pub fn install_file(&mut self, path: &Path, source: &str, now_ms: i64) -> Decision {
        self.reload_keys();
        let base = BundleDecision {
            source: source.to_owned(),
            at_ms: now_ms,
            ..BundleDecision::default()
        };
        if let Some(broken) = &self.broken {
            let reason = format!(
                "the bundle state is damaged, so no bundle can be applied until it is repaired: \
                 {broken}"
            );
            return self.refuse(base, None, [0; 32], "state", reason);
        }
        let file_name = text::quoted(
            &path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
        .to_string();
        let limits = self.settings.limits;
        let bytes = match fsutil::read_regular_bounded(path, limits.max_bundle_bytes) {
            Ok(bytes) => bytes,
            Err(err) => {
                let step = match err {
                    fsutil::BoundedReadError::TooLarge { .. } => "size",
                    _ => "read",
                };
                return self.refuse(base, None, [0; 32], step, err.to_string());
            }
        };
        let sha256 = bundle::open::sha256(&bytes);
        let mut sig_path = path.as_os_str().to_owned();
        sig_path.push(".minisig");
        let signature = match fsutil::read_regular_bounded(
            Path::new(&sig_path),
            minisign::MAX_SIGNATURE_FILE_BYTES as u64,
        ) {
            Ok(signature) => signature,
            Err(err) => {
                return self.refuse(
                    base,
                    None,
                    sha256,
                    "signature",
                    format!("{file_name}: {err}"),
                );
            }
        };
        let policy = Policy {
            trust: &self.trust,
            limits,
            now: now_ms.div_euclid(1000),
            newest_signed: self.state.newest_signed,
            max_clock_skew: self.settings.max_clock_skew.as_secs(),
            site: SiteCheck::Host(self.settings.site.as_ref()),
            agent_version: Some(self.settings.agent_version),
            highest: &self.state.highest,
            sandbox: self.settings.sandbox,
        };
        match bundle::verify(&bytes, &signature, &policy) {
            Ok(verified) => self.apply(&verified, &bytes, &signature, base),
            Err(err) => {
                // Before the signature verified, the bytes are nobody's: nothing of them is
                // decompressed to name the bundle (the file's name stands for it). After, the
                // manifest is authentic and names it.
                let named = match err.step() {
                    "size" | "signature" => None,
                    _ => bundle::open::read_manifest(&bytes, &limits).manifest.ok(),
                };
                let reason = if named.is_some() {
                    err.to_string()
                } else {
                    format!("{file_name}: {err}")
                };
                let header = named.map(|manifest| manifest.header);
                self.refuse(base, header.as_ref(), sha256, err.step(), reason)
            }
        }
    }

    /// Rolls `name` (or, with `None`, the bundle that changed most recently among those with a
    /// previous version, keys bundles aside) back to
    /// its previous version. `Err` (nothing changed, no history line) when there is none, when
    /// it is a keys bundle, or when the previous version's stored files are damaged.
    pub fn rollback(&mut self, name: Option<&str>, now_ms: i64) -> Result<Decision, String> {
        if let Some(broken) = &self.broken {
            return Err(format!("the bundle state is damaged: {broken}"));
        }
        let name = match name {
            Some(name) => name.to_owned(),
            // The bundle changed last among those that can go back one version.
            None => self
                .state
                .active
                .iter()
                .filter(|(_, entry)| entry.kind != Kind::Keys && entry.previous.is_some())
                .max_by_key(|(name, entry)| (entry.current.applied_at_ms, (*name).clone()))
                .map(|(name, _)| name.clone())
                .ok_or_else(|| {
                    "no active bundle has a previous version: there is nothing to roll back"
                        .to_owned()
                })?,
        };
        let shown = text::quoted(&name).to_string();
        let entry = self
            .state
            .active
            .get(&name)
            .ok_or_else(|| format!("no bundle named {shown} is active"))?;
        let from = entry.current.version;
        if entry.kind == Kind::Keys {
            return Err(format!(
                "{shown} is a keys bundle: key changes are not rolled back (a revoked key stays \
                 revoked); undo them with a keys bundle of a higher version"
            ));
        }
        let previous = entry.previous.clone().ok_or_else(|| {
            format!("{shown} version {from} has no previous version to roll back to")
        })?;
        if let Some(by) = self.state.keys.revoked.get(&previous.signer) {
            return Err(format!(
                "{shown} version {} is signed by key {}, which keys bundle {by} revoked: it is not restored",
                previous.version, previous.signer
            ));
        }
        let stored = store::read(
            &self.dir,
            &name,
            previous.version,
            &previous.sha256,
            &self.settings.limits,
        )
        .map_err(|reason| {
            format!(
                "{shown} version {} cannot be restored, its stored copy is damaged: {reason}",
                previous.version
            )
        })?;
        let kind = entry.kind;
        let mut next = self.state.clone();
        let restored = Applied {
            applied_at_ms: now_ms,
            ..previous
        };
        let change = Unrecorded {
            action: "rolled_back".to_owned(),
            name: name.clone(),
            kind,
            version: restored.version,
            from_version: Some(from),
            sha256: String::new(),
            signer: restored.signer.clone(),
            at_ms: now_ms,
            source: "cli".to_owned(),
            reason: String::new(),
        };
        next.unrecorded.push(change.clone());
        next.active.insert(
            name.clone(),
            Entry {
                kind,
                current: restored.clone(),
                previous: None,
            },
        );
        self.commit(next).map_err(|err| format!("{err:#}"))?;
        self.loaded.insert(name.clone(), Ok(stored.files));
        Ok(self.changed(&change))
    }

    /// Applies a verified bundle (see the module doc); a failure is a refusal that changed
    /// nothing.
    fn apply(
        &mut self,
        verified: &Verified<Bundle>,
        bytes: &[u8],
        signature: &[u8],
        base: BundleDecision,
    ) -> Decision {
        let bundle = verified.get();
        let header = &bundle.manifest.header;
        let name = header.name.as_str().to_owned();
        let kind = header.kind;
        if let Some(entry) = self.state.active.get(&name)
            && entry.kind != kind
        {
            let reason = format!(
                "{name} is active as a {} bundle; a bundle of that name cannot become a {kind} bundle",
                entry.kind
            );
            return self.refuse(base, Some(header), bundle.sha256, "kind", reason);
        }
        let mut next = self.state.clone();
        let mut notes = vec![summary(&bundle.content, bundle.files.len())];
        if let Content::Keys(changes) = &bundle.content {
            match next
                .keys
                .apply(changes, &format!("{name}-{}", header.version))
            {
                Ok(keys) => next.keys = keys,
                Err(reason) => {
                    return self.refuse(
                        base,
                        Some(header),
                        bundle.sha256,
                        "content",
                        format!("keys/keys.toml: {reason}"),
                    );
                }
            }
        }
        if matches!(kind, Kind::Config | Kind::License) {
            let others: Vec<String> = next
                .active
                .iter()
                .filter(|(other, entry)| entry.kind == kind && **other != name)
                .map(|(other, _)| other.clone())
                .collect();
            for other in others {
                if let Some(entry) = next.active.remove(&other) {
                    notes.push(format!(
                        "replaces {kind} bundle {other} version {}",
                        entry.current.version
                    ));
                }
            }
        }
        let applied = Applied {
            version: header.version,
            signer: bundle.signer.to_string(),
            applied_at_ms: base.at_ms,
            sha256: text::hex(&bundle.sha256),
            created: header.created.0,
            expires: header.expires.0,
            requires_license: header.requires_license.clone(),
            summary: notes.first().cloned().unwrap_or_default(),
        };
        let previous = next.active.remove(&name).map(|entry| entry.current);
        next.active.insert(
            name.clone(),
            Entry {
                kind,
                current: applied.clone(),
                previous,
            },
        );
        next.highest.insert(name.clone(), header.version);
        next.newest_signed = next.newest_signed.max(header.created.0);
        let change = Unrecorded {
            action: "applied".to_owned(),
            name: name.clone(),
            kind,
            version: header.version,
            from_version: None,
            sha256: applied.sha256.clone(),
            signer: applied.signer.clone(),
            at_ms: base.at_ms,
            source: base.source.clone(),
            reason: notes.join("; "),
        };
        next.unrecorded.push(change.clone());

        let written =
            store::put(&self.dir, verified, bytes, signature).and_then(|()| self.commit(next));
        if let Err(err) = written {
            let reason = format!("{err:#}");
            // Kept for health until an apply succeeds: a host that cannot write its bundle
            // store cannot take the next bundle either.
            self.apply_error = Some(format!(
                "the last bundle could not be applied ({name} version {}): {reason}",
                header.version
            ));
            return self.refuse(base, Some(header), bundle.sha256, "apply", reason);
        }
        self.apply_error = None;
        self.loaded
            .retain(|other, _| self.state.active.contains_key(other));
        self.loaded.insert(name.clone(), Ok(bundle.files.clone()));
        self.changed(&change)
    }

    /// The decision of a change just made: its history line written, its ledger entry to
    /// record (both as [`Unrecorded`] describes them, so a recovered record is the same).
    fn changed(&self, change: &Unrecorded) -> Decision {
        let proto = decision_of(change);
        self.record(&proto);
        Decision {
            proto,
            changed: Some(change.kind),
            ledger: ledger_body(change),
        }
    }

    /// Makes `next` the state: `state.json` replaced (the switch), then what it no longer
    /// names removed. On an error the state is the old one, on disk and here, and what was
    /// staged for `next` is removed.
    fn commit(&mut self, next: State) -> anyhow::Result<()> {
        let path = self.dir.join(STATE);
        if let Err(err) = next.save(&path) {
            // The rename may have happened before a later step (the directory's sync)
            // failed: then the new state is on disk, and is the state.
            if State::load(&path).ok().as_ref() != Some(&next) {
                if let Err(prune) = store::prune(&self.dir, &self.state) {
                    tracing::warn!("removing a staged bundle: {prune:#}");
                }
                return Err(err);
            }
            tracing::warn!("bundle state written, but: {err:#}");
        }
        self.state = next;
        self.trust = self.make_trust();
        if let Err(err) = store::prune(&self.dir, &self.state) {
            tracing::warn!("removing bundle versions no longer kept: {err:#}");
        }
        Ok(())
    }

    /// A refusal: recorded in the history, nothing else changed.
    fn refuse(
        &self,
        base: BundleDecision,
        header: Option<&bundle::Header>,
        sha256: [u8; 32],
        step: &str,
        reason: String,
    ) -> Decision {
        // Lib's messages and ours quote what they name already; escaping again would double
        // the backslashes, so only text that still holds a control character is escaped.
        let reason = if reason.chars().any(text::needs_escape) {
            fit_str(&text::escape(&reason))
        } else {
            fit_str(&reason)
        };
        let proto = BundleDecision {
            action: BundleAction::Refused as i32,
            name: header.map(|h| h.name.to_string()).unwrap_or_default(),
            version: header.map(|h| h.version),
            kind: header
                .map(|h| h.kind.as_str().to_owned())
                .unwrap_or_default(),
            sha256: if sha256 == [0; 32] {
                String::new()
            } else {
                text::hex(&sha256)
            },
            reason: reason.clone(),
            step: step.to_owned(),
            ..base
        };
        self.record(&proto);
        Decision {
            ledger: Body::BundleRefused {
                name: header.map(|h| h.name.to_string()),
                version: header.map(|h| h.version.to_string()),
                sha256,
                reason,
            },
            proto,
            changed: None,
        }
    }

    /// The changes whose ledger entry is not recorded yet, oldest first: (name, time, the
    /// entry). See the `unrecorded` list of `state.json` in the module doc.
    pub fn unrecorded(&self) -> Vec<(String, i64, Body)> {
        self.state
            .unrecorded
            .iter()
            .map(|change| (change.name.clone(), change.at_ms, ledger_body(change)))
            .collect()
    }

    /// Whether the change of `name` at `at_ms` still waits for its ledger entry.
    pub fn is_unrecorded(&self, name: &str, at_ms: i64) -> bool {
        self.state
            .unrecorded
            .iter()
            .any(|change| change.name == name && change.at_ms == at_ms)
    }

    /// The ledger recorded the change of `name` at `at_ms`: it is dropped from the state file
    /// (replaced atomically, like every change of it).
    pub fn mark_recorded(&mut self, name: &str, at_ms: i64) -> anyhow::Result<()> {
        if self.broken.is_some() || !self.is_unrecorded(name, at_ms) {
            return Ok(());
        }
        let mut next = self.state.clone();
        next.unrecorded
            .retain(|change| !(change.name == name && change.at_ms == at_ms));
        next.save(&self.dir.join(STATE))?;
        self.state = next;
        Ok(())
    }

    /// After a crash between a switch and its history line: the lines of the unrecorded
    /// changes that the history lacks are added.
    pub(super) fn recover_history(&self) {
        if self.state.unrecorded.is_empty() {
            return;
        }
        let known = history::read(&self.dir.join(HISTORY)).unwrap_or_default();
        for change in &self.state.unrecorded {
            let decision = decision_of(change);
            let present = known.iter().any(|line| {
                line.name == decision.name
                    && line.at_ms == decision.at_ms
                    && line.version == decision.version
                    && line.action() == decision.action()
            });
            if present {
                continue;
            }
            tracing::warn!(
                bundle = %change.name,
                version = change.version,
                "the agent stopped before recording this bundle change: recorded now"
            );
            self.record(&decision);
        }
    }

    /// Appends a history line; a failure is logged (the decision stands, and the ledger
    /// records it too).
    fn record(&self, decision: &BundleDecision) {
        if let Err(err) = history::append(&self.dir.join(HISTORY), decision) {
            tracing::warn!("bundle history: {err:#}");
        }
    }
}

/// The history line and answer of a change.
fn decision_of(change: &Unrecorded) -> BundleDecision {
    let action = match change.action.as_str() {
        "rolled_back" => BundleAction::RolledBack,
        _ => BundleAction::Applied,
    };
    BundleDecision {
        action: action as i32,
        name: change.name.clone(),
        version: Some(change.version),
        from_version: change.from_version,
        kind: change.kind.as_str().to_owned(),
        sha256: change.sha256.clone(),
        reason: change.reason.clone(),
        source: change.source.clone(),
        at_ms: change.at_ms,
        signer: change.signer.clone(),
        ..BundleDecision::default()
    }
}

/// The ledger entry of a change.
fn ledger_body(change: &Unrecorded) -> Body {
    if change.action == "rolled_back" {
        return Body::BundleRolledBack {
            name: change.name.clone(),
            from_version: change.from_version.unwrap_or_default().to_string(),
            to_version: change.version.to_string(),
        };
    }
    let mut sha256 = [0u8; 32];
    if let Ok(bytes) = text::decode_hex(&change.sha256)
        && let Ok(array) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        sha256 = array;
    }
    Body::BundleAccepted {
        name: change.name.clone(),
        version: change.version.to_string(),
        sha256,
    }
}
