//! Strict decoding of entry fields, as [`super`]'s module doc specifies: every field present
//! and in bounds, strings UTF-8 and at most `MAX_STR` bytes, option tags 0 or 1.

use super::{Body, EntryError, MAX_STR};
use crate::ledger::Hash;

/// The fields of kind `code`, read in encoding order. Struct expressions evaluate their
/// fields in the order written, which is the encoding order.
pub(super) fn decode_fields(code: u8, r: &mut Reader<'_>) -> Result<Body, EntryError> {
    Ok(match code {
        1 => Body::LedgerCreated {
            hash_alg: r.str("hash_alg")?,
            verifier_key: r.str("verifier_key")?,
        },
        2 => Body::ProcmondStarted {
            version: r.str("version")?,
            pid: r.u32("pid")?,
        },
        3 => Body::ProcmondStopped {
            reason: r.str("reason")?,
        },
        4 => Body::PrivilegesDropped {
            user: r.str("user")?,
            uid: r.u32("uid")?,
            gid: r.u32("gid")?,
            effective_caps: r.u64("effective_caps")?,
        },
        5 => Body::Scan {
            scan_id: r.i64("scan_id")?,
            started_ms: r.i64("started_ms")?,
            finished_ms: r.i64("finished_ms")?,
            process_count: r.u64("process_count")?,
            records_hash: r.hash("records_hash")?,
        },
        6 => Body::AgentStarted {
            version: r.str("version")?,
            pid: r.u32("pid")?,
        },
        7 => Body::AgentStopped {
            reason: r.str("reason")?,
        },
        8 => Body::AlertRaised {
            alert_id: r.str("alert_id")?,
            rule_id: r.str("rule_id")?,
            severity: r.str("severity")?,
            host: r.str("host")?,
        },
        9 => Body::AlertDelivered {
            alert_id: r.str("alert_id")?,
            sink: r.str("sink")?,
        },
        10 => Body::BundleAccepted {
            name: r.str("name")?,
            version: r.str("version")?,
            sha256: r.hash("sha256")?,
        },
        11 => Body::BundleRefused {
            name: r.opt_str("name")?,
            version: r.opt_str("version")?,
            sha256: r.hash("sha256")?,
            reason: r.str("reason")?,
        },
        12 => Body::BundleRolledBack {
            name: r.str("name")?,
            from_version: r.str("from_version")?,
            to_version: r.str("to_version")?,
        },
        13 => Body::ConfigChanged {
            source: r.str("source")?,
            config_hash: r.hash("config_hash")?,
        },
        14 => Body::StoreRecovered {
            path: r.str("path")?,
            moved_to: r.str("moved_to")?,
            reason: r.str("reason")?,
        },
        15 => Body::ProcmondRestarted {
            pid: r.u32("pid")?,
            reason: r.str("reason")?,
        },
        16 => Body::AlertsDropped {
            sink: r.str("sink")?,
            count: r.u64("count")?,
            reason: r.str("reason")?,
            first_alert_id: r.str("first_alert_id")?,
            last_alert_id: r.str("last_alert_id")?,
        },
        17 => Body::AlertRecorded {
            alert_id: r.str("alert_id")?,
            rule_id: r.str("rule_id")?,
            severity: r.str("severity")?,
            host: r.str("host")?,
            alert_hash: r.hash("alert_hash")?,
        },
        18 => Body::AlertsExported {
            count: r.u64("count")?,
            first_index: r.u64("first_index")?,
            last_index: r.u64("last_index")?,
            alerts_hash: r.hash("alerts_hash")?,
        },
        19 => Body::ExecEventsDropped {
            count: r.u64("count")?,
            total: r.u64("total")?,
            reason: r.str("reason")?,
        },
        _ => return Err(EntryError::UnknownKind(code)),
    })
}

/// A strict cursor over entry bytes.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The next `n` bytes of `field`, which started at `start`.
    fn take(
        &mut self,
        n: usize,
        field: &'static str,
        start: usize,
    ) -> Result<&'a [u8], EntryError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(EntryError::Truncated {
                field,
                offset: start,
            })?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    /// The next `N` bytes of a fixed-width field.
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EntryError> {
        let start = self.pos;
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field, start)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, EntryError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EntryError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, EntryError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(super) fn i64(&mut self, field: &'static str) -> Result<i64, EntryError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash, EntryError> {
        self.array(field)
    }

    /// A `str` whose length starts at `start` (the tag's offset for an optional string).
    fn str_from(&mut self, field: &'static str, start: usize) -> Result<String, EntryError> {
        let prefix = self.take(2, field, start)?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len > MAX_STR {
            return Err(EntryError::StringTooLong {
                field,
                len,
                limit: MAX_STR,
            });
        }
        let raw = self.take(len, field, start)?;
        let text = std::str::from_utf8(raw).map_err(|_| EntryError::InvalidUtf8 {
            field,
            offset: start,
        })?;
        Ok(text.to_owned())
    }

    fn str(&mut self, field: &'static str) -> Result<String, EntryError> {
        let start = self.pos;
        self.str_from(field, start)
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, EntryError> {
        let start = self.pos;
        match self.u8(field)? {
            0 => Ok(None),
            1 => self.str_from(field, start).map(Some),
            tag => Err(EntryError::BadOptionTag {
                field,
                offset: start,
                tag,
            }),
        }
    }

    /// Nothing may follow the last field.
    pub(super) fn finish(&self) -> Result<(), EntryError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            rest => Err(EntryError::TrailingBytes(rest)),
        }
    }
}
