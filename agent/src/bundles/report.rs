//! What the bundles tell an operator: `bundle status` and `bundle history`.

use daemoneye_lib::bundle::manifest::Timestamp;
use daemoneye_lib::bundle::{Kind, Role};
use daemoneye_lib::ipc::calls::{next_index_cursor, parse_index_cursor};
use daemoneye_lib::ipc::proto::{
    self, ActiveBundle, BundleHistory, BundleStatus, LicenseInfo, TrustedKey,
};

use super::{Bundles, HISTORY, history, inbox};

/// The most history entries one page holds.
pub const MAX_HISTORY_PAGE: u32 = 500;

impl Bundles {
    /// The active bundles, the trusted and revoked keys, the problems (key files that could
    /// not be read, damaged bundles), the license and the inbox files waiting, at `now_ms`.
    pub fn status(&self, now_ms: i64) -> BundleStatus {
        let now = self.judged_now(now_ms);
        let license = self.license_state();
        let mut problems = Vec::new();
        if let Some(broken) = &self.broken {
            problems.push(format!(
                "the bundle state is damaged; no bundle applies until it is repaired: {broken}"
            ));
        }
        problems.extend(self.key_problems.iter().cloned());
        for (version, reason) in &self.store_damage {
            problems.push(format!(
                "the stored copy of bundle {version} is damaged: {reason}"
            ));
        }
        problems.extend(self.apply_error.clone());
        for stuck in self.inbox_stuck.keys() {
            problems.push(format!(
                "inbox: {stuck} was decided but cannot be moved out of the inbox (see the log)"
            ));
        }
        let mut bundles = Vec::new();
        for (name, entry) in &self.state.active {
            let current = &entry.current;
            // Content signed by a key revoked since stays in force (a rotation retires keys
            // whose bundles are sound), and says so; a rollback never returns to it. A keys
            // bundle signed by the key it retires is how a key is rotated: nothing to say.
            let revoked_note = self
                .state
                .keys
                .revoked
                .get(&current.signer)
                .filter(|_| entry.kind != Kind::Keys)
                .map(|by| {
                    format!(
                        "signed by key {}, which keys bundle {by} revoked since: re-sign it with \
                         a trusted key",
                        current.signer
                    )
                });
            let (in_force, note) = match self.loaded.get(name) {
                Some(Err(reason)) => {
                    problems.push(format!(
                        "bundle {name} version {} is damaged and not used: {reason}",
                        current.version
                    ));
                    (false, format!("damaged, not used: {reason}"))
                }
                None => (false, "not loaded".to_owned()),
                Some(Ok(_)) => match &current.requires_license {
                    Some(feature) if entry.kind == Kind::Rules => {
                        match license.allows(feature, now) {
                            Ok(()) => (true, current.summary.clone()),
                            Err(reason) => (false, reason),
                        }
                    }
                    _ => (true, current.summary.clone()),
                },
            };
            let note = match revoked_note {
                Some(revoked) => format!("{note}; {revoked}"),
                None => note,
            };
            bundles.push(ActiveBundle {
                name: name.clone(),
                kind: entry.kind.as_str().to_owned(),
                version: current.version,
                previous: entry.previous.as_ref().map(|p| p.version),
                signer: current.signer.clone(),
                applied_at_ms: current.applied_at_ms,
                sha256: current.sha256.clone(),
                created: Timestamp(current.created).to_rfc3339(),
                expires: Timestamp(current.expires).to_rfc3339(),
                in_force,
                note,
            });
        }
        let mut keys = Vec::new();
        let trusted = |id: String, role: Role| {
            let role_keys = match role {
                Role::Bundles => &self.trust.bundles,
                Role::Licenses => &self.trust.licenses,
            };
            role_keys.iter().any(|key| key.key_id().to_string() == id)
        };
        for configured in &self.configured {
            let id = configured.key.key_id().to_string();
            if trusted(id.clone(), configured.role) {
                keys.push(TrustedKey {
                    key_id: id,
                    role: configured.role.as_str().to_owned(),
                    source: configured.path.display().to_string(),
                });
            }
        }
        for (id, stored) in &self.state.keys.added {
            keys.push(TrustedKey {
                key_id: id.clone(),
                role: stored.role.as_str().to_owned(),
                source: format!("keys bundle {}", stored.added_by),
            });
        }
        let standing = license.standing(now);
        let info = LicenseInfo {
            standing: standing.to_string(),
            in_force: standing.in_force(),
            tier: license.tier(now).to_owned(),
            site: license
                .license
                .as_ref()
                .map(|l| l.site.to_string())
                .unwrap_or_default(),
            features: license
                .license
                .as_ref()
                .map(|l| l.features.clone())
                .unwrap_or_default(),
            expires: license
                .license
                .as_ref()
                .map(|l| l.expires.to_rfc3339())
                .unwrap_or_default(),
        };
        let pending = match inbox::scan(&self.inbox) {
            Ok(found) => found.into_iter().map(|(name, _, _)| name).collect(),
            Err(err) => {
                problems.push(format!("bundle inbox: {err:#}"));
                Vec::new()
            }
        };
        BundleStatus {
            bundles,
            keys,
            revoked: self.state.keys.revoked.keys().cloned().collect(),
            problems,
            license: Some(info),
            restart_needed: Vec::new(),
            pending,
            state_error: self.broken.clone().unwrap_or_default(),
        }
    }

    /// A page of the history, newest first; the cursor is an index into that order.
    pub fn history(&self, page: &proto::Page) -> Result<BundleHistory, String> {
        let mut entries = history::read(&self.dir.join(HISTORY))?;
        entries.reverse();
        let total = entries.len() as u64;
        let start = parse_index_cursor(&page.cursor)?;
        let max = match page.max {
            0 => MAX_HISTORY_PAGE,
            max => max.min(MAX_HISTORY_PAGE),
        };
        let end = start.saturating_add(u64::from(max)).min(total);
        let entries = entries
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(end.saturating_sub(start)).unwrap_or(0))
            .collect();
        Ok(BundleHistory {
            entries,
            next_cursor: next_index_cursor(end.max(start), total),
        })
    }
}
