//! Command-line overrides ([`Overrides`]): dotted keys with values, the highest layer.

use figment::value::{Dict, Value};

use super::{ConfigError, SOURCE_COMMAND_LINE, invalid};

/// Command-line overrides: dotted key paths with values, merged last.
///
/// ```
/// # use daemoneye_lib::config::Overrides;
/// let mut overrides = Overrides::default();
/// overrides.set("collection.interval", "5s").set("collection.hash_max_bytes", 1024_u64);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// In the order they were set, so that a later setting of the same key wins.
    entries: Vec<(String, Value)>,
}

impl Overrides {
    /// Sets `key` (a dotted path such as `collection.interval`) to `value`.
    ///
    /// The key is checked by [`load`], which reports a malformed or unknown key as an error
    /// from the `command line` source.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.entries.push((key.to_owned(), value.into()));
        self
    }

    /// Whether no override was set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The overrides as one nested table.
    pub(super) fn to_dict(&self) -> Result<Dict, ConfigError> {
        let mut dict = Dict::new();
        for (key, value) in &self.entries {
            let segments: Vec<&str> = key.split('.').collect();
            if segments.iter().any(|segment| segment.is_empty()) {
                return Err(invalid(
                    SOURCE_COMMAND_LINE,
                    key,
                    "a key must be a dotted path such as collection.interval",
                ));
            }
            insert_path(&mut dict, &segments, value.clone());
        }
        Ok(dict)
    }
}

/// Inserts `value` at the nested position named by `segments`, creating tables on the way.
fn insert_path(dict: &mut Dict, segments: &[&str], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        dict.insert((*first).to_owned(), value);
        return;
    }
    let slot = dict
        .entry((*first).to_owned())
        .or_insert_with(|| Value::from(Dict::new()));
    // A deeper key set after a plain value at the same place replaces it, as the later
    // setting wins everywhere else too.
    if !matches!(slot, Value::Dict(..)) {
        *slot = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = slot {
        insert_path(inner, rest, value);
    }
}
