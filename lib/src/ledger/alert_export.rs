//! Alerts that prove themselves: the file `daemoneye-cli alerts export` writes, so that alerts
//! carried out by hand are as trustworthy as the ledger, and its offline verification
//! (`daemoneye-cli audit verify FILE --key KEY`). `docs/airgap/alert-export.md` is the
//! auditor's guide; this doc is the specification.
//!
//! Every alert the agent raises is recorded in the ledger as an `alert_recorded` entry holding
//! `alert_hash = H(Alert::canonical_bytes())`, H the ledger's hash function. An export carries a
//! contiguous range of the ledger, `[first, size)`: `first` the entry of the oldest alert
//! carried, `size` the tree size of a checkpoint signed for the export. Each entry of the range
//! comes with its inclusion proof against that checkpoint, and each carried alert sits beside
//! its own `alert_recorded` entry. Before the checkpoint is signed, the agent appends an
//! `alerts_exported` entry naming `first`, the last carried alert's entry, the count and
//! [`carried_digest`] of what is carried, so that the range and the set of alerts are signed
//! too: an export cut short at either end, or missing or gaining an alert, does not verify.
//!
//! # The file, version 1
//!
//! UTF-8 JSON lines: every line one compact JSON object (as `serde_json` writes it, keys in
//! the order below) ending in `\n`; no blank line, no carriage return. Hashes and byte
//! strings are standard base64 with padding.
//!
//! Line 1, the header:
//!
//! ```text
//! {"format":"daemoneye/alert-export@v1",   FORMAT, the only one read
//!  "hash":"blake3",                         the ledger's hash function: blake3 | sha256
//!  "first":F,                               the range's first entry index
//!  "size":N,                                the checkpoint's tree size: the range ends before it
//!  "export_entry":E,                        the index of the export's alerts_exported entry
//!  "alerts":[[I,"ID"],...],                 each carried alert: its entry index and its id
//!                                           (for naming what is missing; checked, not trusted)
//!  "checkpoint":"..."}                      the signed checkpoint note (C2SP signed note,
//!                                           verbatim, newlines as \n)
//! ```
//!
//! Then one line per entry of the range, `N - F` lines, in index order:
//!
//! ```text
//! {"index":I,                               the entry's index, F .. N-1
//!  "entry":"...",                           base64 of the entry's canonical bytes (ledger::entry)
//!  "proof":["...",...],                     its RFC 9162 inclusion proof in the tree of size N,
//!                                           deepest sibling first, base64 of 32 bytes each
//!  "alert":"..."}                           only beside a carried alert's alert_recorded entry:
//!                                           base64 of the alert's canonical bytes
//! ```
//!
//! The `alerts_hash` of the `alerts_exported` entry is [`carried_digest`]:
//!
//! ```text
//! H( "DEYEALX1"                             8 bytes: the digest's format and version
//!  ‖ count                                  u64 big-endian: the alerts carried
//!  ‖ for each carried alert, in index order:
//!      index ‖ alert_hash                   u64 big-endian, then the 32 bytes of its entry )
//! ```
//!
//! # Verification ([`verify_alert_export`]), in order; the first failure is reported
//!
//! 1. The file is at most [`MAX_EXPORT_BYTES`], each line at most [`MAX_LINE_BYTES`]; the
//!    header parses (no unknown or repeated key) and names this format.
//! 2. The checkpoint's signature verifies with the auditor's key; its hash function and size
//!    are the header's; `first < size` and `first <= export_entry < size`.
//! 3. Each record, in turn: its index is the next one expected (a higher index names the
//!    missing entry, a lower or repeated one an added record); its entry decodes strictly; the
//!    entry's leaf hash leads through the proof to the signed root (RFC 9162 §2.1.3.2). A
//!    carried alert must sit beside an `alert_recorded` entry, and H(alert bytes) must be that
//!    entry's `alert_hash`.
//! 4. The records reach `size - 1` (none missing at the end) and nothing follows them.
//! 5. Entry `export_entry` is the last `alerts_exported` entry of the range (an older export's
//!    entry would vouch for an older set of alerts), and its `first_index`, `last_index`,
//!    `count` and `alerts_hash` are those of the alerts carried; the header's list of alerts
//!    is exactly the carried alerts and their ids.
//!
//! The report lists the alerts verified and, not as an error, the `alert_recorded` entries of
//! the range whose alert is not carried: delivered to a sink before the export (or pending
//! for none), for the receiving site to look for in its SIEM.
//!
//! What an export does not prove: that no alert was raised after the checkpoint, and the
//! contents of alerts older than `first` (their entries are outside the range).

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::entry::{Body, Entry};
use super::merkle::{self, MemoryTree};
use super::note::{Checkpoint, NoteVerifier};
use super::verify::VerifyFailure;
use super::{Hash, HashAlg};

/// The header's `format`: the file's format and version.
pub const FORMAT: &str = "daemoneye/alert-export@v1";

/// How many bytes [`is_alert_export`] looks at.
pub const SNIFF_BYTES: usize = 1;

/// The largest export read or written, in bytes.
pub const MAX_EXPORT_BYTES: usize = 64 << 20;

/// The longest line read, in bytes: an entry, its proof and an alert.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// The first bytes hashed by [`carried_digest`].
pub const DIGEST_MAGIC: &[u8; 8] = b"DEYEALX1";

/// The longest inclusion proof: one hash per level of a tree of 2^64 leaves.
const MAX_PROOF_HASHES: usize = 64;

/// The hash an `alert_recorded` entry holds: `alg` over the alert's canonical bytes.
pub fn alert_hash(alg: HashAlg, canonical: &[u8]) -> Hash {
    alg.digest(&[canonical])
}

/// The `alerts_hash` of an `alerts_exported` entry: see the module doc. `carried` is each
/// carried alert's entry index and `alert_hash`, in index order.
pub fn carried_digest(alg: HashAlg, carried: &[(u64, Hash)]) -> Hash {
    let mut bytes = Vec::with_capacity(16 + carried.len() * 40);
    bytes.extend_from_slice(DIGEST_MAGIC);
    bytes.extend_from_slice(&(carried.len() as u64).to_be_bytes());
    for (index, hash) in carried {
        bytes.extend_from_slice(&index.to_be_bytes());
        bytes.extend_from_slice(hash);
    }
    alg.digest(&[&bytes])
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    hash: String,
    first: u64,
    size: u64,
    export_entry: u64,
    alerts: Vec<(u64, String)>,
    checkpoint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    index: u64,
    entry: String,
    proof: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
}

/// Why an export could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertExportError {
    /// An entry of the ledger does not decode.
    #[error("ledger entry {index} does not decode: {reason}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// No pending alert is recorded in the ledger.
    #[error("none of the {pending} undelivered alerts has an alert_recorded entry in the ledger")]
    NothingRecorded {
        /// Distinct pending alerts.
        pending: usize,
    },
    /// The checkpoint does not verify or does not match the entries read.
    #[error("the checkpoint {0}")]
    Checkpoint(String),
    /// The export would be over [`MAX_EXPORT_BYTES`] or the caller's bound.
    #[error("the export would be {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Another export's entry landed between this one's and the checkpoint.
    #[error("another export was recorded at the same time (entry {other}): run it again")]
    Concurrent {
        /// The other export's entry.
        other: u64,
    },
    /// Used out of order.
    #[error("{0}")]
    Usage(&'static str),
}

/// What an export carries, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Alerts carried.
    pub alerts: u64,
    /// The range's first entry.
    pub first: u64,
    /// The checkpoint's tree size: the range ends before it.
    pub size: u64,
    /// The `alerts_exported` entry.
    pub export_entry: u64,
    /// Distinct pending alerts given that no `alert_recorded` entry matches (raised before
    /// the ledger recorded hashes, or their entry was not written): not in the export.
    pub unrecorded: u64,
}

/// Builds an export from the ledger's entries, read in order from entry 0, and the pending
/// alerts' canonical bytes. Pure: the agent feeds it what procmond and the store answer.
///
/// 1. [`ExportBuilder::push`] every entry the ledger has now;
/// 2. [`ExportBuilder::freeze`]: the `alerts_exported` body to append (matching stops);
/// 3. append it, have a checkpoint signed, [`ExportBuilder::push`] the entries up to the
///    checkpoint's size;
/// 4. [`ExportBuilder::finish`] with the checkpoint note and the export entry's index.
pub struct ExportBuilder {
    alg: HashAlg,
    tree: MemoryTree,
    /// The pending alerts' canonical bytes, by `alert_hash`.
    pending: HashMap<Hash, Vec<u8>>,
    /// The `alert_hash`es an `alert_recorded` entry matched.
    matched: HashSet<Hash>,
    /// The alerts carried: entry index to alert id and `alert_hash`.
    carried: BTreeMap<u64, (String, Hash)>,
    /// The bytes of every entry from the first carried one on.
    retained: Vec<Vec<u8>>,
    frozen: bool,
}

impl ExportBuilder {
    /// A builder for a ledger hashing with `alg`, carrying these pending alerts (canonical
    /// bytes; repeats count once).
    pub fn new(alg: HashAlg, pending: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let pending = pending
            .into_iter()
            .map(|bytes| (alert_hash(alg, &bytes), bytes))
            .collect();
        Self {
            alg,
            tree: MemoryTree::new(alg),
            pending,
            matched: HashSet::new(),
            carried: BTreeMap::new(),
            retained: Vec::new(),
            frozen: false,
        }
    }

    /// Entries pushed so far: the index of the next one.
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// Adds the next entry of the ledger.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), AlertExportError> {
        let index = self.tree.len();
        let entry = Entry::decode(bytes).map_err(|err| AlertExportError::BadEntry {
            index,
            reason: err.to_string(),
        })?;
        self.tree.push(bytes);
        if !self.frozen
            && let Body::AlertRecorded {
                alert_id,
                alert_hash,
                ..
            } = &entry.body
            && self.pending.contains_key(alert_hash)
        {
            self.matched.insert(*alert_hash);
            self.carried.insert(index, (alert_id.clone(), *alert_hash));
        }
        if !self.carried.is_empty() {
            self.retained.push(bytes.to_vec());
        }
        Ok(())
    }

    /// The `alerts_exported` body recording this export; entries pushed after this are not
    /// matched any more (a newer alert is not in this export).
    pub fn freeze(&mut self) -> Result<Body, AlertExportError> {
        let (Some((&first_index, _)), Some((&last_index, _))) = (
            self.carried.first_key_value(),
            self.carried.last_key_value(),
        ) else {
            return Err(AlertExportError::NothingRecorded {
                pending: self.pending.len(),
            });
        };
        self.frozen = true;
        Ok(Body::AlertsExported {
            count: self.carried.len() as u64,
            first_index,
            last_index,
            alerts_hash: carried_digest(self.alg, &self.carried_hashes()),
        })
    }

    fn carried_hashes(&self) -> Vec<(u64, Hash)> {
        self.carried
            .iter()
            .map(|(index, (_, hash))| (*index, *hash))
            .collect()
    }

    /// The export's text, once every entry up to the checkpoint's size is pushed: the
    /// checkpoint must verify with `key` and its root be that of the entries pushed. At most
    /// `max_bytes` (and [`MAX_EXPORT_BYTES`]).
    pub fn finish(
        self,
        checkpoint_note: &str,
        key: &NoteVerifier,
        export_entry: u64,
        max_bytes: usize,
    ) -> Result<(String, ExportSummary), AlertExportError> {
        if !self.frozen {
            return Err(AlertExportError::Usage("finish before freeze"));
        }
        let cp = Checkpoint::verify_signed(checkpoint_note, key)
            .map_err(|err| AlertExportError::Checkpoint(format!("does not verify: {err}")))?;
        let size = self.tree.len();
        if cp.size != size || cp.hash != self.alg || cp.root != self.tree.root() {
            return Err(AlertExportError::Checkpoint(format!(
                "of size {} is not the tree of the {size} entries read",
                cp.size
            )));
        }
        let first = self
            .carried
            .first_key_value()
            .map_or(0, |(index, _)| *index);
        if export_entry < first || export_entry >= size {
            return Err(AlertExportError::Usage(
                "the export entry is outside the range",
            ));
        }
        let max = max_bytes.min(MAX_EXPORT_BYTES);
        let header = Header {
            format: FORMAT.to_owned(),
            hash: self.alg.name().to_owned(),
            first,
            size,
            export_entry,
            alerts: self
                .carried
                .iter()
                .map(|(index, (id, _))| (*index, id.clone()))
                .collect(),
            checkpoint: checkpoint_note.to_owned(),
        };
        let mut text = json_line(&header);
        if text.len() > MAX_LINE_BYTES {
            return Err(AlertExportError::TooLarge {
                len: text.len(),
                max: MAX_LINE_BYTES,
            });
        }
        for (offset, bytes) in self.retained.iter().enumerate() {
            let index = first + offset as u64;
            if index > export_entry
                && matches!(
                    Entry::decode(bytes).map(|entry| entry.body),
                    Ok(Body::AlertsExported { .. })
                )
            {
                // The verifier takes the last export entry of the range as the file's: another
                // export ran at the same time.
                return Err(AlertExportError::Concurrent { other: index });
            }
            let proof = match merkle::inclusion_proof(self.alg, &self.tree, index, size) {
                Ok(proof) => proof,
                Err(never) => {
                    return Err(AlertExportError::Checkpoint(format!(
                        "cannot prove entry {index}: {never}"
                    )));
                }
            };
            let alert = self
                .carried
                .get(&index)
                .and_then(|(_, hash)| self.pending.get(hash))
                .map(|bytes| BASE64.encode(bytes));
            let record = Record {
                index,
                entry: BASE64.encode(bytes),
                proof: proof.iter().map(|hash| BASE64.encode(hash)).collect(),
                alert,
            };
            let line = json_line(&record);
            if line.len() > MAX_LINE_BYTES {
                return Err(AlertExportError::TooLarge {
                    len: line.len(),
                    max: MAX_LINE_BYTES,
                });
            }
            text.push_str(&line);
            if text.len() > max {
                return Err(AlertExportError::TooLarge {
                    len: text.len(),
                    max,
                });
            }
        }
        let summary = ExportSummary {
            alerts: self.carried.len() as u64,
            first,
            size,
            export_entry,
            unrecorded: self.pending.len().saturating_sub(self.matched.len()) as u64,
        };
        Ok((text, summary))
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    // Strings, numbers and arrays of them always serialise.
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// What an alert export proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertExportReport {
    /// The signed checkpoint the proofs lead to.
    pub checkpoint: Checkpoint,
    /// The range's first entry; it ends before `checkpoint.size`.
    pub first: u64,
    /// The `alerts_exported` entry.
    pub export_entry: u64,
    /// Each alert carried and verified: its entry index and id.
    pub verified: Vec<(u64, String)>,
    /// Each `alert_recorded` entry of the range whose alert is not carried: index and id.
    pub not_carried: Vec<(u64, String)>,
}

fn fail<T>(reason: impl Into<String>) -> Result<T, VerifyFailure> {
    Err(VerifyFailure(reason.into()))
}

/// Whether `text` is meant as an alert export, for `audit verify`: it starts with `{` (a JSON
/// object), which no checkpoint or proof file does (their first line is an origin of
/// DaemonEye's or a header). Whether it is one is for [`verify_alert_export`] to say.
pub fn is_alert_export(text: &[u8]) -> bool {
    text.first() == Some(&b'{')
}

/// An untrusted string shown in a failure: escaped and cut.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    crate::text::escape(&cut).into_owned()
}

/// The `id` an unverified alert's JSON claims, for naming an added alert.
fn claimed_id(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| value.get("id").and_then(|id| id.as_str()).map(shown))
        .unwrap_or_else(|| "without a readable id".to_owned())
}

fn decode_b64(text: &str, what: &str) -> Result<Vec<u8>, VerifyFailure> {
    BASE64
        .decode(text)
        .map_err(|_| VerifyFailure(format!("{what} is not base64")))
}

/// Verifies an alert export offline with the ledger's verifier key (see the module doc for
/// the steps). The error names the first thing that does not verify: the entry, the alert.
pub fn verify_alert_export(
    text: &str,
    key: &NoteVerifier,
) -> Result<AlertExportReport, VerifyFailure> {
    // Step 1: bounds and the header.
    if text.len() > MAX_EXPORT_BYTES {
        return fail(format!(
            "the export is {} bytes, more than the {MAX_EXPORT_BYTES} allowed",
            text.len()
        ));
    }
    if text.contains('\r') {
        return fail("the export holds a carriage return");
    }
    let Some(body) = text.strip_suffix('\n') else {
        return fail("the export does not end in a newline");
    };
    let mut lines = body.split('\n').enumerate().map(|(n, line)| (n + 1, line));
    let Some((_, header)) = lines.next() else {
        return fail("the export is empty");
    };
    let header: Header = parse_line(header, 1, "header")?;
    if header.format != FORMAT {
        return fail(format!(
            "the export's format is {}, not {FORMAT}",
            shown(&header.format)
        ));
    }
    let Some(alg) = HashAlg::from_name(&header.hash) else {
        return fail(format!("unknown hash function {}", shown(&header.hash)));
    };

    // Step 2: the checkpoint and the range.
    let cp = Checkpoint::verify_signed(&header.checkpoint, key)
        .map_err(|err| VerifyFailure(format!("the export's checkpoint does not verify: {err}")))?;
    if cp.hash != alg || cp.size != header.size {
        return fail(format!(
            "the header says {} and size {}, its checkpoint {} and size {}",
            alg, header.size, cp.hash, cp.size
        ));
    }
    let (first, size) = (header.first, header.size);
    if first >= size || header.export_entry < first || header.export_entry >= size {
        return fail(format!(
            "the range [{first}, {size}) or its export entry {} is impossible",
            header.export_entry
        ));
    }
    let listed: BTreeMap<u64, &str> = header
        .alerts
        .iter()
        .map(|(index, id)| (*index, id.as_str()))
        .collect();
    let named = |index: u64| {
        listed.get(&index).map_or_else(String::new, |id| {
            format!(" (alert {} by the header)", shown(id))
        })
    };

    // Step 3: the records.
    let mut next = first;
    let mut carried: Vec<(u64, String, Hash)> = Vec::new();
    let mut not_carried = Vec::new();
    let mut export = None;
    let mut last_export = first;
    for (line, raw) in lines {
        if raw.len() > MAX_LINE_BYTES {
            return fail(format!(
                "line {line} is {} bytes, more than the {MAX_LINE_BYTES} allowed",
                raw.len()
            ));
        }
        let record: Record = parse_line(raw, line, "record")?;
        let index = record.index;
        let added = |what: &str| {
            let alert = record.alert.as_deref().map_or_else(String::new, |alert| {
                let bytes = BASE64.decode(alert).unwrap_or_default();
                format!(" carrying alert {}", claimed_id(&bytes))
            });
            VerifyFailure(format!(
                "line {line}: a record for entry {index}{alert} {what}: a record was added"
            ))
        };
        if index >= size {
            return Err(added(&format!("is beyond the checkpoint's size {size}")));
        }
        if index < next {
            return Err(added("repeats an entry or is out of order"));
        }
        if index > next {
            return fail(format!(
                "entry {next}{} is missing from the export (line {line} is entry {index}): a record was removed",
                named(next)
            ));
        }
        next += 1;
        let bytes = decode_b64(&record.entry, &format!("entry {index}"))?;
        if record.proof.len() > MAX_PROOF_HASHES {
            return fail(format!("entry {index}'s proof has too many hashes"));
        }
        let proof = record
            .proof
            .iter()
            .map(|hash| {
                decode_b64(hash, &format!("a proof hash of entry {index}")).and_then(|bytes| {
                    Hash::try_from(bytes.as_slice()).map_err(|_| {
                        VerifyFailure(format!("a proof hash of entry {index} is not 32 bytes"))
                    })
                })
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        let leaf = alg.leaf_hash(&bytes);
        merkle::verify_inclusion(alg, index, size, &leaf, &proof, &cp.root).map_err(|err| {
            VerifyFailure(format!(
                "entry {index}{} is not the entry the checkpoint of size {size} signed: {err}",
                named(index)
            ))
        })?;
        let entry = Entry::decode(&bytes)
            .map_err(|err| VerifyFailure(format!("entry {index} does not decode: {err}")))?;
        match (&entry.body, record.alert.as_deref()) {
            (
                Body::AlertRecorded {
                    alert_id,
                    alert_hash: recorded,
                    ..
                },
                Some(alert),
            ) => {
                let alert =
                    decode_b64(alert, &format!("alert {} (entry {index})", shown(alert_id)))?;
                if alert_hash(alg, &alert) != *recorded {
                    return fail(format!(
                        "alert {} (entry {index}) is not the alert the host recorded: its bytes were changed",
                        shown(alert_id)
                    ));
                }
                carried.push((index, alert_id.clone(), *recorded));
            }
            (Body::AlertRecorded { alert_id, .. }, None) => {
                not_carried.push((index, alert_id.clone()));
            }
            (body, Some(alert)) => {
                let bytes = BASE64.decode(alert).unwrap_or_default();
                return fail(format!(
                    "entry {index} is a {} entry, yet alert {} sits beside it: an alert was added",
                    body.kind(),
                    claimed_id(&bytes)
                ));
            }
            (_, None) => {}
        }
        if matches!(entry.body, Body::AlertsExported { .. }) {
            last_export = index;
        }
        if index == header.export_entry {
            export = Some(entry.body);
        }
    }

    // Step 4: nothing missing at the end.
    if next < size {
        return fail(format!(
            "entry {next}{} is missing from the export, which ends there: records were removed",
            named(next)
        ));
    }

    // Step 5: the export's own entry signs the range and the set of alerts. It is the last
    // export entry of the range: an older export's entry would vouch for an older set.
    if last_export != header.export_entry {
        return fail(format!(
            "the header names entry {} as the export's, but entry {last_export} records a later export: the header was changed",
            header.export_entry
        ));
    }
    let Some(Body::AlertsExported {
        count,
        first_index,
        last_index,
        alerts_hash,
    }) = export
    else {
        return fail(format!(
            "entry {} is not an alerts_exported entry",
            header.export_entry
        ));
    };
    let hashes: Vec<(u64, Hash)> = carried.iter().map(|(i, _, h)| (*i, *h)).collect();
    let (got_first, got_last) = (carried.first().map(|c| c.0), carried.last().map(|c| c.0));
    if count != carried.len() as u64 {
        return fail(format!(
            "the export's entry {} records {count} alerts exported, the file carries {}: {}",
            header.export_entry,
            carried.len(),
            if count > carried.len() as u64 {
                "alerts were removed"
            } else {
                "alerts were added"
            }
        ));
    }
    if got_first != Some(first_index) || first != first_index || got_last != Some(last_index) {
        return fail(format!(
            "the export's entry {} records the alerts of entries {first_index} to {last_index}, the file starts at entry {first} and carries {} to {}: the range was changed",
            header.export_entry,
            got_first.map_or("none".to_owned(), |i| i.to_string()),
            got_last.map_or("none".to_owned(), |i| i.to_string()),
        ));
    }
    if carried_digest(alg, &hashes) != alerts_hash {
        return fail(format!(
            "the alerts carried are not those the export's entry {} records: an alert was swapped",
            header.export_entry
        ));
    }
    let verified: Vec<(u64, String)> = carried.into_iter().map(|(i, id, _)| (i, id)).collect();
    if header.alerts != verified {
        return fail("the header's list of alerts is not the alerts carried");
    }
    Ok(AlertExportReport {
        checkpoint: cp,
        first,
        export_entry: header.export_entry,
        verified,
        not_carried,
    })
}

fn parse_line<'a, T: Deserialize<'a>>(
    line: &'a str,
    number: usize,
    what: &str,
) -> Result<T, VerifyFailure> {
    if line.len() > MAX_LINE_BYTES {
        return fail(format!(
            "line {number} is {} bytes, more than the {MAX_LINE_BYTES} allowed",
            line.len()
        ));
    }
    serde_json::from_str(line).map_err(|err| {
        VerifyFailure(format!(
            "line {number} is not an alert export {what}: {}",
            shown(&err.to_string())
        ))
    })
}

#[cfg(test)]
mod tests;
