//! Ledger entries: what one record of the audit ledger says, and its canonical byte encoding.
//!
//! The bytes of an entry are what the Merkle tree hashes (leaf hash = H(0x00 ‖ entry bytes),
//! see [`super::HashAlg::leaf_hash`]) and what an auditor receives, base64-encoded, on the
//! `extra` line of a `tlog-proof` file. The encoding is *canonical*: one entry has exactly one
//! byte string and [`Entry::decode`] accepts nothing else, so for every byte string `b` it
//! accepts, `encode(decode(b)) == b`. Two ledgers that say the same thing hash the same.
//!
//! # Encoding, version 1
//!
//! All integers are big-endian and fixed-width; there is no padding, alignment or optional
//! trailer. An entry is at most [`MAX_ENTRY_BYTES`] (16384) bytes in total.
//!
//! ```text
//! offset  size  field
//! 0       1     version   always 1 (VERSION); any other value is refused
//! 1       1     kind      1..=18, see the table below
//! 2       1     source    1 = procmond, 2 = agent (who asked for the entry)
//! 3       8     time_ms   i64: milliseconds since 1970-01-01T00:00:00Z (UTC, no leap seconds)
//! 11      ...   body      the kind's fields, in the order of the table, nothing after them
//! ```
//!
//! Each field of the body is one of:
//!
//! ```text
//! u32       4 bytes, big-endian, unsigned
//! u64       8 bytes, big-endian, unsigned
//! i64       8 bytes, big-endian, two's complement
//! str       u16 length L (big-endian), then L bytes of UTF-8; L <= 4096 (MAX_STR)
//! hash      32 raw bytes
//! opt<str>  one tag byte: 0 = absent (nothing follows), 1 = present (a str follows);
//!           any other tag is refused
//! ```
//!
//! The kinds, with their fields in encoding order:
//!
//! ```text
//! kind  name                 fields                                              source
//!  1    ledger_created       hash_alg: str ("blake3" | "sha256"),                procmond
//!                            verifier_key: str (C2SP signed-note verifier key)
//!  2    procmond_started     version: str, pid: u32                              procmond
//!  3    procmond_stopped     reason: str                                         procmond
//!  4    privileges_dropped   user: str, uid: u32, gid: u32, effective_caps: u64  procmond
//!  5    scan                 scan_id: i64, started_ms: i64, finished_ms: i64,    procmond
//!                            process_count: u64, records_hash: hash
//!  6    agent_started        version: str, pid: u32                              either
//!  7    agent_stopped        reason: str                                         either
//!  8    alert_raised         alert_id: str, rule_id: str, severity: str,         either
//!                            host: str
//!  9    alert_delivered      alert_id: str, sink: str                            either
//! 10    bundle_accepted      name: str, version: str, sha256: hash               either
//! 11    bundle_refused       name: opt<str>, version: opt<str>, sha256: hash,    either
//!                            reason: str
//! 12    bundle_rolled_back   name: str, from_version: str, to_version: str       either
//! 13    config_changed       source: str, config_hash: hash                      either
//! 14    store_recovered      path: str, moved_to: str, reason: str               either
//! 15    procmond_restarted   pid: u32 (0: not known), reason: str                agent
//! 16    alerts_dropped       sink: str, count: u64, reason: str,                 agent
//!                            first_alert_id: str, last_alert_id: str
//! 17    alert_recorded       alert_id: str, rule_id: str, severity: str,         agent
//!                            host: str, alert_hash: hash
//! 18    alerts_exported      count: u64, first_index: u64, last_index: u64,      agent
//!                            alerts_hash: hash
//! 19    exec_events_dropped  count: u64, total: u64, reason: str                 procmond
//! ```
//!
//! `store_recovered` says that the agent found its event store damaged at start-up, moved
//! the file at `path` to `moved_to` (kept, never deleted) and created a new store; `reason`
//! is why the old one could not be opened. `procmond_restarted` says that the agent replaced
//! procmond (it stalled, stopped answering or exited), with the replaced one's pid; it is
//! written through the new procmond. `alerts_dropped` says that the outbox dropped `count`
//! deliveries for `sink` unsent (`reason`: `full`, `too_large`, `dead_letter_overflow`,
//! `sink_removed`), the first and last of them naming their alerts. Kinds 14 to 18 were added
//! after the first release of version 1: a reader that knows only kinds 1 to 13 refuses such
//! an entry as an unknown kind rather than misreading it.
//!
//! `alert_recorded` replaces `alert_raised` for every alert the agent raises: the same fields
//! and `alert_hash`, the ledger's hash function over the alert's canonical bytes
//! (`Alert::canonical_bytes`, exactly the bytes the outbox holds and the sinks receive), so
//! that an alert carried out by hand proves itself against the ledger
//! ([`super::alert_export`]). A new kind rather than a new entry version: the version byte
//! versions the whole encoding, a kind its body, and old ledgers' `alert_raised` entries stay
//! readable as they are. `alerts_exported` records an `alerts export`: `count` alerts carried,
//! the ledger indexes of the first and last of their `alert_recorded` entries, and
//! `alerts_hash`, the digest of what was carried (specified in [`super::alert_export`]). It is
//! appended before the checkpoint the export proves against, so the export's range and its
//! content are signed.
//!
//! A `scan`'s `records_hash` is [`records_hash`] of the scan's records: the ledger's hash
//! function over their canonical encoding, specified byte by byte in `entry/records.rs`.
//!
//! `exec_events_dropped`: procmond lost `count` exec events since the previous such entry
//! (`total` since it started; `reason`: the newest loss's cause), at most one a minute.
//!
//! Kinds 1 to 5 and 19 record what procmond itself did: an entry of those kinds with source 2
//! (agent) is refused by both [`Entry::encode`] and [`Entry::decode`], and procmond refuses
//! them in an `AppendAudit` request ([`Body::agent_may_append`]).
//!
//! Decoding is strict: it refuses an entry longer than [`MAX_ENTRY_BYTES`], a version other
//! than 1, an unknown kind or source, a string longer than [`MAX_STR`], a string that is not
//! UTF-8, an option tag other than 0 or 1, an entry that ends inside a field and any byte after
//! the last field. Nothing else is checked: the strings' contents (such as `hash_alg`) are the
//! business of whoever reads them.
//!
//! ## Example
//!
//! An `alert_delivered` entry from the agent at 2025-11-21T10:00:00.123Z, alert `a1`, sink
//! `siem` (21 bytes):
//!
//! ```text
//! 01                        version 1
//! 09                        kind 9, alert_delivered
//! 02                        source 2, agent
//! 00 00 01 9a a5 db 3d 7b   time_ms 1763719200123
//! 00 02 61 31               alert_id "a1"
//! 00 04 73 69 65 6d         sink "siem"
//! ```
//!
//! # The agent's side
//!
//! The agent sends only a kind name and a body ([`Body::encode`], the fields without the
//! 11-byte header) in `AppendAudit`; procmond decodes it with [`Body::decode`], checks
//! [`Body::agent_may_append`], and adds the header itself (source `agent`, its own clock). A
//! body [`Body::decode`] accepts always makes an entry [`Entry::encode`] accepts.
//!
//! # Text forms
//!
//! [`Entry::to_json`] gives `{"version":1,"kind":…,"source":…,"time_ms":…,"time":…,
//! "fields":{…}}` and [`Entry`]'s `Display` one line `TIME SOURCE KIND name=value …`; both
//! write hashes as lowercase hex. Neither is hashed or signed: only the bytes are.

use serde_json::{Map, Value, json};

use super::Hash;

mod decode;
mod error;
mod records;
mod source;
mod text;

pub use error::EntryError;
pub use source::Source;

use decode::{Reader, decode_fields};

pub use records::{RECORDS_MAGIC, encode_records, records_hash};

/// The encoding version this module writes, and the only one it reads.
pub const VERSION: u8 = 1;

/// The largest encoded entry, header included, in bytes.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// The longest string field, in bytes of UTF-8.
pub const MAX_STR: usize = 4096;

/// `text` cut to the longest string field an entry holds ([`MAX_STR`] bytes), at a character
/// boundary: for a reason or a path that came from elsewhere and must not make an entry fail.
pub fn fit_str(text: &str) -> String {
    let mut end = text.len().min(MAX_STR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The size of the header before the body: version, kind, source, `time_ms`.
pub const HEADER_BYTES: usize = 11;

/// The largest body ([`Body::encode`]), so that header and body fit in [`MAX_ENTRY_BYTES`].
pub const MAX_BODY_BYTES: usize = MAX_ENTRY_BYTES - HEADER_BYTES;

/// The kind names, indexed by kind number minus one.
pub const KIND_NAMES: [&str; 19] = [
    "ledger_created",
    "procmond_started",
    "procmond_stopped",
    "privileges_dropped",
    "scan",
    "agent_started",
    "agent_stopped",
    "alert_raised",
    "alert_delivered",
    "bundle_accepted",
    "bundle_refused",
    "bundle_rolled_back",
    "config_changed",
    "store_recovered",
    "procmond_restarted",
    "alerts_dropped",
    "alert_recorded",
    "alerts_exported",
    "exec_events_dropped",
];

/// What an entry says: one variant per kind, with the kind's fields in encoding order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Kind 1: the ledger was created (its first entry). Procmond only.
    LedgerCreated {
        /// The ledger's hash function: `blake3` or `sha256`.
        hash_alg: String,
        /// The checkpoint signer's C2SP signed-note verifier key.
        verifier_key: String,
    },
    /// Kind 2: procmond started. Procmond only.
    ProcmondStarted {
        /// Procmond's version.
        version: String,
        /// Its process id.
        pid: u32,
    },
    /// Kind 3: procmond stopped. Procmond only.
    ProcmondStopped {
        /// Why.
        reason: String,
    },
    /// Kind 4: procmond dropped its privileges. Procmond only.
    PrivilegesDropped {
        /// The user it switched to.
        user: String,
        /// That user's id.
        uid: u32,
        /// That user's group id.
        gid: u32,
        /// The effective capabilities it kept (the `CapEff` bit mask).
        effective_caps: u64,
    },
    /// Kind 5: one scan of the process table. Procmond only.
    Scan {
        /// The scan's id.
        scan_id: i64,
        /// When it started, in milliseconds since the epoch.
        started_ms: i64,
        /// When it finished, in milliseconds since the epoch.
        finished_ms: i64,
        /// How many processes it saw.
        process_count: u64,
        /// [`records_hash`] of the scan's records, in scan order.
        records_hash: Hash,
    },
    /// Kind 6: the agent started.
    AgentStarted {
        /// The agent's version.
        version: String,
        /// Its process id.
        pid: u32,
    },
    /// Kind 7: the agent stopped.
    AgentStopped {
        /// Why.
        reason: String,
    },
    /// Kind 8: a rule raised an alert (written before `alert_recorded` existed; still read).
    AlertRaised {
        /// The alert's id.
        alert_id: String,
        /// The rule that raised it.
        rule_id: String,
        /// Its severity (`info` … `critical`).
        severity: String,
        /// The host it is about.
        host: String,
    },
    /// Kind 9: an alert reached a sink.
    AlertDelivered {
        /// The alert's id.
        alert_id: String,
        /// The sink's name.
        sink: String,
    },
    /// Kind 10: a bundle was verified and applied.
    BundleAccepted {
        /// The bundle's name.
        name: String,
        /// Its version.
        version: String,
        /// The SHA-256 of the bundle file.
        sha256: Hash,
    },
    /// Kind 11: a bundle was refused.
    BundleRefused {
        /// The bundle's name, when it could be read.
        name: Option<String>,
        /// Its version, when it could be read.
        version: Option<String>,
        /// The SHA-256 of the bundle file.
        sha256: Hash,
        /// Why it was refused.
        reason: String,
    },
    /// Kind 12: a bundle was rolled back to an earlier version.
    BundleRolledBack {
        /// The bundle's name.
        name: String,
        /// The version that was active.
        from_version: String,
        /// The version now active.
        to_version: String,
    },
    /// Kind 13: the configuration changed.
    ConfigChanged {
        /// Where the new configuration came from (a file, a bundle…).
        source: String,
        /// The hash of the new configuration.
        config_hash: Hash,
    },
    /// Kind 14: the agent moved a damaged event store aside and created a new one.
    StoreRecovered {
        /// The store file.
        path: String,
        /// Where the damaged file was moved.
        moved_to: String,
        /// Why it could not be opened.
        reason: String,
    },
    /// Kind 15: the agent stopped procmond (it stalled, stopped answering or exited) and
    /// started a new one; recorded through the new one.
    ProcmondRestarted {
        /// The procmond that was stopped (0 when it never reported its pid).
        pid: u32,
        /// Why.
        reason: String,
    },
    /// Kind 16: the outbox dropped deliveries of one sink unsent (never silently).
    AlertsDropped {
        /// The sink they were for.
        sink: String,
        /// How many.
        count: u64,
        /// Why: `full`, `too_large`, `dead_letter_overflow` or `sink_removed`.
        reason: String,
        /// The alert of the first one dropped.
        first_alert_id: String,
        /// The alert of the last one dropped.
        last_alert_id: String,
    },
    /// Kind 17: a rule raised an alert, with the hash of its canonical bytes.
    AlertRecorded {
        /// The alert's id.
        alert_id: String,
        /// The rule that raised it.
        rule_id: String,
        /// Its severity (`info` … `critical`).
        severity: String,
        /// The host it is about.
        host: String,
        /// The ledger's hash function over `Alert::canonical_bytes` at raise time.
        alert_hash: Hash,
    },
    /// Kind 18: undelivered alerts were exported for carrying out by hand (they stay pending).
    AlertsExported {
        /// How many alerts the export carries.
        count: u64,
        /// The index of the first carried alert's `alert_recorded` entry: the export's range
        /// starts there.
        first_index: u64,
        /// The index of the last carried alert's `alert_recorded` entry.
        last_index: u64,
        /// The digest of what was carried (see `ledger::alert_export`).
        alerts_hash: Hash,
    },
    /// Kind 19: procmond lost exec events (`count` since the last such entry, `total` since
    /// it started, `reason` of the newest loss). Procmond only.
    #[allow(missing_docs)]
    ExecEventsDropped {
        count: u64,
        total: u64,
        reason: String,
    },
}

/// One record of the audit ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who asked for it.
    pub source: Source,
    /// When procmond appended it, in milliseconds since the epoch (UTC).
    pub time_ms: i64,
    /// What it says.
    pub body: Body,
}

/// One field of a body, borrowed, for the encoder and the text forms.
enum Field<'a> {
    Str(&'a str),
    OptStr(Option<&'a str>),
    U32(u32),
    U64(u64),
    I64(i64),
    Hash(&'a Hash),
}

impl Body {
    /// The kind's number (1 to 18), the second byte of the entry.
    pub const fn kind_code(&self) -> u8 {
        match self {
            Self::LedgerCreated { .. } => 1,
            Self::ProcmondStarted { .. } => 2,
            Self::ProcmondStopped { .. } => 3,
            Self::PrivilegesDropped { .. } => 4,
            Self::Scan { .. } => 5,
            Self::AgentStarted { .. } => 6,
            Self::AgentStopped { .. } => 7,
            Self::AlertRaised { .. } => 8,
            Self::AlertDelivered { .. } => 9,
            Self::BundleAccepted { .. } => 10,
            Self::BundleRefused { .. } => 11,
            Self::BundleRolledBack { .. } => 12,
            Self::ConfigChanged { .. } => 13,
            Self::StoreRecovered { .. } => 14,
            Self::ProcmondRestarted { .. } => 15,
            Self::AlertsDropped { .. } => 16,
            Self::AlertRecorded { .. } => 17,
            Self::AlertsExported { .. } => 18,
            Self::ExecEventsDropped { .. } => 19,
        }
    }

    /// The kind's `snake_case` name, as in `AppendAudit.kind` and the text forms.
    pub const fn kind(&self) -> &'static str {
        KIND_NAMES[self.kind_code() as usize - 1]
    }

    /// Whether the agent may ask for this entry: false for kinds 1 to 5 and 19, which record
    /// what procmond itself did.
    pub const fn agent_may_append(&self) -> bool {
        self.kind_code() > 5 && self.kind_code() != 19
    }

    /// The body's encoding: its fields only, without the entry header. This is what the agent
    /// sends in `AppendAudit.payload`.
    ///
    /// # Errors
    ///
    /// [`EntryError::StringTooLong`] for a string over [`MAX_STR`] bytes,
    /// [`EntryError::BodyTooLarge`] for a body over [`MAX_BODY_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        if out.len() > MAX_BODY_BYTES {
            return Err(EntryError::BodyTooLarge {
                len: out.len(),
                limit: MAX_BODY_BYTES,
            });
        }
        Ok(out)
    }

    /// Decode a body of the kind called `kind` (such as `scan`), strictly: every field present
    /// and in bounds, nothing after the last one, at most [`MAX_BODY_BYTES`] in all.
    ///
    /// The body bytes do not name their kind, so bytes of one kind may decode as another kind
    /// whose fields have the same shape (`procmond_started` and `agent_started` do).
    ///
    /// # Errors
    ///
    /// [`EntryError::UnknownKindName`], [`EntryError::BodyTooLarge`] and the field errors.
    pub fn decode(kind: &str, bytes: &[u8]) -> Result<Body, EntryError> {
        let Some(code) = kind_code_of(kind) else {
            let shown: String = kind.chars().take(64).flat_map(char::escape_debug).collect();
            return Err(EntryError::UnknownKindName(shown));
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(EntryError::BodyTooLarge {
                len: bytes.len(),
                limit: MAX_BODY_BYTES,
            });
        }
        let mut reader = Reader::new(bytes);
        let body = decode_fields(code, &mut reader)?;
        reader.finish()?;
        Ok(body)
    }

    /// The fields, in encoding order, with their names.
    fn fields(&self) -> Vec<(&'static str, Field<'_>)> {
        use Field::{Hash as H, I64, OptStr, Str, U32, U64};
        match self {
            Self::LedgerCreated {
                hash_alg,
                verifier_key,
            } => vec![
                ("hash_alg", Str(hash_alg)),
                ("verifier_key", Str(verifier_key)),
            ],
            Self::ProcmondStarted { version, pid } | Self::AgentStarted { version, pid } => {
                vec![("version", Str(version)), ("pid", U32(*pid))]
            }
            Self::ProcmondStopped { reason } | Self::AgentStopped { reason } => {
                vec![("reason", Str(reason))]
            }
            Self::PrivilegesDropped {
                user,
                uid,
                gid,
                effective_caps,
            } => vec![
                ("user", Str(user)),
                ("uid", U32(*uid)),
                ("gid", U32(*gid)),
                ("effective_caps", U64(*effective_caps)),
            ],
            Self::Scan {
                scan_id,
                started_ms,
                finished_ms,
                process_count,
                records_hash,
            } => vec![
                ("scan_id", I64(*scan_id)),
                ("started_ms", I64(*started_ms)),
                ("finished_ms", I64(*finished_ms)),
                ("process_count", U64(*process_count)),
                ("records_hash", H(records_hash)),
            ],
            Self::AlertRaised {
                alert_id,
                rule_id,
                severity,
                host,
            } => vec![
                ("alert_id", Str(alert_id)),
                ("rule_id", Str(rule_id)),
                ("severity", Str(severity)),
                ("host", Str(host)),
            ],
            Self::AlertDelivered { alert_id, sink } => {
                vec![("alert_id", Str(alert_id)), ("sink", Str(sink))]
            }
            Self::BundleAccepted {
                name,
                version,
                sha256,
            } => vec![
                ("name", Str(name)),
                ("version", Str(version)),
                ("sha256", H(sha256)),
            ],
            Self::BundleRefused {
                name,
                version,
                sha256,
                reason,
            } => vec![
                ("name", OptStr(name.as_deref())),
                ("version", OptStr(version.as_deref())),
                ("sha256", H(sha256)),
                ("reason", Str(reason)),
            ],
            Self::BundleRolledBack {
                name,
                from_version,
                to_version,
            } => vec![
                ("name", Str(name)),
                ("from_version", Str(from_version)),
                ("to_version", Str(to_version)),
            ],
            Self::ConfigChanged {
                source,
                config_hash,
            } => vec![("source", Str(source)), ("config_hash", H(config_hash))],
            Self::StoreRecovered {
                path,
                moved_to,
                reason,
            } => vec![
                ("path", Str(path)),
                ("moved_to", Str(moved_to)),
                ("reason", Str(reason)),
            ],
            Self::ProcmondRestarted { pid, reason } => {
                vec![("pid", U32(*pid)), ("reason", Str(reason))]
            }
            Self::AlertsDropped {
                sink,
                count,
                reason,
                first_alert_id,
                last_alert_id,
            } => vec![
                ("sink", Str(sink)),
                ("count", U64(*count)),
                ("reason", Str(reason)),
                ("first_alert_id", Str(first_alert_id)),
                ("last_alert_id", Str(last_alert_id)),
            ],
            Self::AlertRecorded {
                alert_id,
                rule_id,
                severity,
                host,
                alert_hash,
            } => vec![
                ("alert_id", Str(alert_id)),
                ("rule_id", Str(rule_id)),
                ("severity", Str(severity)),
                ("host", Str(host)),
                ("alert_hash", H(alert_hash)),
            ],
            Self::AlertsExported {
                count,
                first_index,
                last_index,
                alerts_hash,
            } => vec![
                ("count", U64(*count)),
                ("first_index", U64(*first_index)),
                ("last_index", U64(*last_index)),
                ("alerts_hash", H(alerts_hash)),
            ],
            Self::ExecEventsDropped {
                count,
                total,
                reason,
            } => vec![
                ("count", U64(*count)),
                ("total", U64(*total)),
                ("reason", Str(reason)),
            ],
        }
    }

    /// Append the fields to `out`, checking only the string lengths.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EntryError> {
        for (name, field) in self.fields() {
            match field {
                Field::Str(s) => put_str(out, name, s)?,
                Field::OptStr(None) => out.push(0),
                Field::OptStr(Some(s)) => {
                    out.push(1);
                    put_str(out, name, s)?;
                }
                Field::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
                Field::U64(v) => out.extend_from_slice(&v.to_be_bytes()),
                Field::I64(v) => out.extend_from_slice(&v.to_be_bytes()),
                Field::Hash(h) => out.extend_from_slice(h),
            }
        }
        Ok(())
    }
}

impl Entry {
    /// The entry's canonical bytes: header, then body.
    ///
    /// # Errors
    ///
    /// [`EntryError::SourceNotAllowed`] for a procmond-only kind from the agent,
    /// [`EntryError::StringTooLong`] for a string over [`MAX_STR`] bytes and
    /// [`EntryError::TooLarge`] for an entry over [`MAX_ENTRY_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        check_source(&self.body, self.source)?;
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.push(self.body.kind_code());
        out.push(self.source.code());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        self.body.encode_into(&mut out)?;
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                len: out.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        Ok(out)
    }

    /// Decode an entry, strictly (see the module documentation): exactly the bytes
    /// [`Entry::encode`] would write for it, or an error.
    ///
    /// # Errors
    ///
    /// The first thing wrong, in byte order, after the total size.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        let mut reader = Reader::new(bytes);
        let version = reader.u8("version")?;
        if version != VERSION {
            return Err(EntryError::UnknownVersion(version));
        }
        let kind = reader.u8("kind")?;
        if !(1..=KIND_NAMES.len() as u8).contains(&kind) {
            return Err(EntryError::UnknownKind(kind));
        }
        let source_code = reader.u8("source")?;
        let source =
            Source::from_code(source_code).ok_or(EntryError::UnknownSource(source_code))?;
        if source == Source::Agent && (kind <= 5 || kind == 19) {
            return Err(EntryError::SourceNotAllowed {
                kind: KIND_NAMES[usize::from(kind) - 1],
                claimed: source,
            });
        }
        let time_ms = reader.i64("time_ms")?;
        let body = decode_fields(kind, &mut reader)?;
        reader.finish()?;
        Ok(Entry {
            source,
            time_ms,
            body,
        })
    }

    /// The entry as JSON: `version`, `kind`, `source`, `time_ms`, `time` (RFC 3339, UTC,
    /// milliseconds) and `fields` (an object with the kind's fields: strings, numbers, `null`
    /// for an absent optional string, hashes as lowercase hex).
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        for (name, field) in self.body.fields() {
            let value = match field {
                Field::Str(s) => Value::from(s),
                Field::OptStr(s) => s.map_or(Value::Null, Value::from),
                Field::U32(v) => Value::from(v),
                Field::U64(v) => Value::from(v),
                Field::I64(v) => Value::from(v),
                Field::Hash(h) => Value::from(hex(h)),
            };
            fields.insert(name.to_owned(), value);
        }
        json!({
            "version": VERSION,
            "kind": self.body.kind(),
            "source": self.source.name(),
            "time_ms": self.time_ms,
            "time": format_time_ms(self.time_ms),
            "fields": fields,
        })
    }
}

/// The kind number of the kind called `name`.
fn kind_code_of(name: &str) -> Option<u8> {
    let index = KIND_NAMES.iter().position(|known| *known == name)?;
    u8::try_from(index + 1).ok()
}

/// Kinds 1 to 5 and 19 come from procmond only.
fn check_source(body: &Body, source: Source) -> Result<(), EntryError> {
    if source == Source::Agent && !body.agent_may_append() {
        return Err(EntryError::SourceNotAllowed {
            kind: body.kind(),
            claimed: source,
        });
    }
    Ok(())
}

/// Append a `str` field: u16 length, then the bytes.
fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EntryError> {
    let len = s.len();
    let too_long = || EntryError::StringTooLong {
        field,
        len,
        limit: MAX_STR,
    };
    if len > MAX_STR {
        return Err(too_long());
    }
    let prefix = u16::try_from(len).map_err(|_| too_long())?;
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

// Hex and times are written by `crate::text`, their one home; they stay reachable here, where
// callers have always found them.
pub use crate::text::{format_time_ms, hex};

#[cfg(test)]
mod tests;
