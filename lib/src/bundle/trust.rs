//! Trusted keys: the keys the configuration names, the keys keys bundles added and revoked,
//! and `keys/keys.toml`, what a keys bundle carries.
//!
//! ```toml
//! [[add]]
//! role = "bundles"                     # "bundles" (sign rules, config and keys bundles) or
//!                                      # "licenses" (sign license bundles)
//! public_key = "RWTK8M8/v9D+YgyC…"     # the base64 line of a minisign public key file
//! comment = "2027 bundle signing key"  # optional, for operators
//!
//! [[revoke]]
//! key_id = "62FED0BF3FCFF0CA"          # minisign's key id, as its files show it
//! ```
//!
//! A revoked key stays revoked: no later keys bundle and no configuration file can trust it
//! again. A keys bundle may revoke the key that signed it (that is how a key is rotated).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifest::one_line;
use crate::minisign::{KeyId, PublicKey};

/// The path of the key list inside a keys bundle.
pub const KEYS_PATH: &str = "keys/keys.toml";
/// The most keys one keys bundle adds or revokes, and the most a key state holds.
pub const MAX_KEYS: usize = 256;

/// What a key may sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Rules, config and keys bundles.
    Bundles,
    /// License bundles.
    Licenses,
}

impl Role {
    /// The role's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bundles => "bundles",
            Self::Licenses => "licenses",
        }
    }
}

/// One key added by `keys.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedKey {
    /// What it may sign.
    pub role: Role,
    /// The base64 line of its public key file.
    pub public_key: String,
    /// For operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One key revoked by `keys.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedKey {
    /// Its key id, upper-case hex as minisign prints it.
    pub key_id: String,
}

/// `keys/keys.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChanges {
    /// Keys to trust.
    #[serde(default)]
    pub add: Vec<AddedKey>,
    /// Keys to trust no more.
    #[serde(default)]
    pub revoke: Vec<RevokedKey>,
}

impl KeyChanges {
    /// Parses and checks `keys.toml`: every key readable, no key both added and revoked, no
    /// key twice, something to do.
    pub fn parse(text: &str) -> Result<Self, String> {
        let changes: Self = toml::from_str(text).map_err(|err| one_line(&err.to_string()))?;
        if changes.add.is_empty() && changes.revoke.is_empty() {
            return Err("it adds and revokes no key".to_owned());
        }
        if changes.add.len() + changes.revoke.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        let mut seen = Vec::new();
        for added in &changes.add {
            let key =
                PublicKey::from_base64(&added.public_key).map_err(|err| format!("add: {err}"))?;
            if let Some(comment) = &added.comment
                && (comment.len() > 256 || comment.chars().any(crate::text::needs_escape))
            {
                return Err("add: comment: at most 256 bytes of printable text".to_owned());
            }
            seen.push(key.key_id());
        }
        for revoked in &changes.revoke {
            seen.push(parse_key_id(&revoked.key_id).map_err(|err| format!("revoke: {err}"))?);
        }
        for (index, id) in seen.iter().enumerate() {
            if seen.get(..index).is_some_and(|before| before.contains(id)) {
                return Err(format!("key {id} is named twice"));
            }
        }
        Ok(changes)
    }
}

/// Parses a key id as minisign prints it (16 upper- or lower-case hex digits).
pub fn parse_key_id(text: &str) -> Result<KeyId, String> {
    let valid = text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let value = valid
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .ok_or_else(|| {
            format!(
                "{} is not a key id of 16 hex digits",
                crate::text::quoted(&text.chars().take(24).collect::<String>())
            )
        })?;
    Ok(KeyId::from(value.to_le_bytes()))
}

/// A key trusted through a keys bundle, as the key state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// What it may sign.
    pub role: Role,
    /// Its base64 line.
    pub public_key: String,
    /// For operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The keys bundle that added it (`NAME-VERSION`).
    pub added_by: String,
}

/// The keys keys bundles added and revoked: persisted by the agent, applied over the
/// configured keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Added keys by key id (upper-case hex).
    #[serde(default)]
    pub added: BTreeMap<String, StoredKey>,
    /// Revoked key ids (upper-case hex), and the keys bundle that revoked each.
    #[serde(default)]
    pub revoked: BTreeMap<String, String>,
}

impl KeyState {
    /// The state after a keys bundle `by` (`NAME-VERSION`) made `changes`; `Err` when it would
    /// trust a revoked key again or hold too many keys.
    pub fn apply(&self, changes: &KeyChanges, by: &str) -> Result<Self, String> {
        let mut next = self.clone();
        for revoked in &changes.revoke {
            let id = parse_key_id(&revoked.key_id)?.to_string();
            next.added.remove(&id);
            next.revoked.insert(id, by.to_owned());
        }
        for added in &changes.add {
            let key = PublicKey::from_base64(&added.public_key).map_err(|err| err.to_string())?;
            let id = key.key_id().to_string();
            if self.revoked.contains_key(&id) {
                return Err(format!("key {id} was revoked and cannot be trusted again"));
            }
            next.added.insert(
                id,
                StoredKey {
                    role: added.role,
                    public_key: added.public_key.clone(),
                    comment: added.comment.clone(),
                    added_by: by.to_owned(),
                },
            );
        }
        if next.added.len() > MAX_KEYS || next.revoked.len() > 16 * MAX_KEYS {
            return Err(format!(
                "the key state would hold more than {MAX_KEYS} keys"
            ));
        }
        Ok(next)
    }

    /// Whether `id` was revoked.
    pub fn is_revoked(&self, id: KeyId) -> bool {
        self.revoked.contains_key(&id.to_string())
    }
}

/// The keys trusted now, per role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Keys that sign rules, config and keys bundles.
    pub bundles: Vec<PublicKey>,
    /// Keys that sign license bundles.
    pub licenses: Vec<PublicKey>,
    /// Key ids revoked (kept to name them in a refusal).
    pub revoked: Vec<KeyId>,
}

impl Trust {
    /// The configured keys plus the added ones, less the revoked ones.
    pub fn new(
        configured_bundles: &[PublicKey],
        configured_licenses: &[PublicKey],
        state: &KeyState,
    ) -> Self {
        let mut trust = Self::default();
        let push = |list: &mut Vec<PublicKey>, key: &PublicKey| {
            if !state.is_revoked(key.key_id()) && !list.iter().any(|k| k.key_id() == key.key_id()) {
                list.push(key.clone());
            }
        };
        for key in configured_bundles {
            push(&mut trust.bundles, key);
        }
        for key in configured_licenses {
            push(&mut trust.licenses, key);
        }
        for stored in state.added.values() {
            if let Ok(key) = PublicKey::from_base64(&stored.public_key) {
                match stored.role {
                    Role::Bundles => push(&mut trust.bundles, &key),
                    Role::Licenses => push(&mut trust.licenses, &key),
                }
            }
        }
        trust.revoked = state
            .revoked
            .keys()
            .filter_map(|id| parse_key_id(id).ok())
            .collect();
        trust
    }

    /// Every trusted key, either role.
    pub fn all(&self) -> Vec<PublicKey> {
        let mut all = self.bundles.clone();
        for key in &self.licenses {
            if !all.iter().any(|k| k.key_id() == key.key_id()) {
                all.push(key.clone());
            }
        }
        all
    }

    /// The role `id` has, bundles first.
    pub fn role_of(&self, id: KeyId) -> Option<Role> {
        if self.bundles.iter().any(|key| key.key_id() == id) {
            Some(Role::Bundles)
        } else if self.licenses.iter().any(|key| key.key_id() == id) {
            Some(Role::Licenses)
        } else {
            None
        }
    }

    /// Whether `id` may sign a bundle for `role`.
    pub fn may_sign(&self, id: KeyId, role: Role) -> bool {
        let keys = match role {
            Role::Bundles => &self.bundles,
            Role::Licenses => &self.licenses,
        };
        keys.iter().any(|key| key.key_id() == id)
    }
}
