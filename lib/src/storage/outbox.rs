//! The persistent alert outbox: per sink, an ordered queue of deliveries, kept in the event
//! store so that an alert committed is an alert that will be delivered (or counted as lost).
//!
//! This is storage only: no network, no clock (every time is a parameter `now_ms`), no
//! threads. The agent's delivery tasks drive it: [`Store::outbox_due`] hands them the head of a
//! sink's queue, and they answer with [`Store::outbox_delivered`], [`Store::outbox_retry`] or
//! [`Store::outbox_reject`]. Deliveries are added by [`Writer::enqueue`](super::Writer::enqueue) inside the write unit
//! that records the alert ([`Store::write`]), so an alert is never committed without its
//! deliveries, nor a delivery without its alert.
//!
//! A sink is named by its configured name: 1 to 64 characters of `a-z0-9_-`
//! ([`is_valid_sink_name`]); any other name is [`StoreError::InvalidSinkName`].
//!
//! # States of a delivery
//!
//! | state | where it is | what puts it there |
//! |---|---|---|
//! | pending | a row of `outbox`; the oldest of a sink is its *head* | [`Writer::enqueue`](super::Writer::enqueue) |
//! | in flight | not persisted: the agent holds what [`Store::outbox_due`] returned; the row stays pending | [`Store::outbox_due`] |
//! | retry-wait | the head, while its sink's `next_attempt_ms` is after `now_ms` ([`Store::outbox_due`] returns nothing) | [`Store::outbox_retry`] |
//! | delivered | gone from `outbox`, counted in `delivered` | [`Store::outbox_delivered`] |
//! | dead-lettered | moved from `outbox` to `outbox_dead`, counted in `dead_lettered` | [`Store::outbox_reject`] |
//! | dropped | gone, counted in `dropped` and returned as [`Dropped`] for the agent's log and ledger | see below |
//!
//! | from | to | call | when |
//! |---|---|---|---|
//! | (new) | pending | [`Writer::enqueue`](super::Writer::enqueue) | always, unless it alone exceeds the bounds |
//! | (new) | dropped ([`DropReason::TooLarge`]) | [`Writer::enqueue`](super::Writer::enqueue) | its payload is larger than `max_bytes`, or `max_alerts` is 0 |
//! | pending | dropped ([`DropReason::Full`]) | [`Writer::enqueue`](super::Writer::enqueue) of a newer delivery | the sink's queue is full: the oldest go first |
//! | pending | dropped ([`DropReason::SinkRemoved`]) | [`Store::outbox_forget_sink`] | the sink left the configuration |
//! | pending (head) | in flight | [`Store::outbox_due`] | its sink's `next_attempt_ms` is not after `now_ms` |
//! | in flight | delivered | [`Store::outbox_delivered`] | the sink acknowledged it |
//! | in flight | retry-wait | [`Store::outbox_retry`] | a transient failure: attempts + 1 |
//! | retry-wait | in flight | [`Store::outbox_due`] | `now_ms` reached `next_attempt_ms` |
//! | in flight | dead-lettered | [`Store::outbox_reject`] | the sink rejected it as malformed |
//! | dead-lettered | dropped ([`DropReason::DeadLetterOverflow`]) | [`Store::outbox_reject`] of a newer one | more than `max_dead_letters` are kept |
//! | in flight | pending | (a crash, or the agent giving up the batch) | nothing to do: the row never left |
//!
//! Delivery is at least once: a delivery sent but not yet acknowledged when the agent dies is
//! sent again after the restart, so duplicates are bounded by the in-flight batch; receivers
//! deduplicate by the alert id every delivery carries.
//!
//! Order per sink is kept: only the head is ever answered, so a head in retry-wait holds back
//! the whole queue of its sink (and only of its sink). The answers refuse a delivery that is
//! not the head with [`StoreError::NotOutboxHead`] and change nothing. A delivery that a newer
//! enqueue dropped while it was in flight is not an error: it is already counted, so
//! `outbox_delivered` skips it, and `outbox_retry` and `outbox_reject` say they did nothing.
//!
//! # Full policy: drop the oldest
//!
//! Each sink's queue is bounded by [`OutboxLimits::max_alerts`] deliveries and
//! [`OutboxLimits::max_bytes`] payload bytes. When a new delivery would exceed either, the
//! oldest pending deliveries of that sink are dropped until it fits. Enqueueing runs inside the
//! scan's write unit, so it must never block (there is no one to wait for inside a
//! transaction) and never fail for being full (that would lose the scan's alerts and rule
//! states with it). Of the two things to lose, the newest alerts describe what is happening now
//! and the oldest have waited longest for a sink that is not taking them; an operator can still
//! carry the oldest out by hand beforehand (`alerts export`). A delivery that alone exceeds
//! the bounds is dropped itself rather than emptying the queue for nothing. Every drop is
//! counted in `dropped` and returned to the caller to log and write to the ledger: never silent.
//!
//! # Tables, byte by byte
//!
//! | table | key | value after the format byte (`VALUE_FORMAT`, 1) |
//! |---|---|---|
//! | `outbox` | 0..64 sink name, zero-padded; 64..72 `seq`, big-endian `u64` | postcard of `(alert_id: str, enqueued_ms: i64, payload: bytes)` |
//! | `outbox_dead` | as `outbox` (the `seq` the delivery had) | postcard of `(alert_id: str, enqueued_ms: i64, attempts: u32, reason: str, dead_at_ms: i64, payload: bytes)` |
//! | `outbox_sinks` | UTF-8 sink name | postcard of the sink meta, below |
//!
//! A sink name holds no zero byte, so the zero padding makes one sink's deliveries one
//! contiguous key range in `seq` order. The sink meta is, in postcard order: `next_seq` (the
//! `seq` of the next delivery), `head_attempts` (`u32`, failed attempts of the current head),
//! `next_attempt_ms` (`Option<i64>`, no attempt before it), `last_error` (`Option<str>`),
//! `last_delivered_ms` (`Option<i64>`), the counters `enqueued`, `delivered`, `retried`,
//! `dropped`, `dead_lettered` (`u64` each), `pending` and `pending_bytes` (kept up to date by
//! every call, never recounted), `dead_letters` (how many `outbox_dead` holds for the sink) and
//! `max_dead_letters` (the bound given by the last enqueue). The counters satisfy
//! `enqueued = pending + delivered + dead_letters + dropped`: every delivery is pending,
//! delivered, kept as a dead letter, or dropped. A `seq` is never reused, not even after
//! [`Store::outbox_forget_sink`]; a delivery dropped on arrival takes one too, so `seq`s in
//! the queue are increasing but may have gaps. `pending_bytes` and `max_bytes` count payload
//! bytes only. Reasons are cut to [`MAX_REASON_BYTES`].

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::codec::{self, OUTBOX_KEY, name};
use super::{Store, StoreError};
use crate::ids::AlertId;

mod write;

/// The longest reason (`last_error`, a dead letter's reason) kept, in bytes; a longer one is
/// cut at a character boundary, so that a receiver answering with megabytes of garbage
/// cannot grow the store.
pub const MAX_REASON_BYTES: usize = 1024;

/// Bounds of each sink's queue (the `[outbox]` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Pending deliveries per sink; beyond it the oldest are dropped.
    pub max_alerts: u64,
    /// Pending payload bytes per sink; beyond it the oldest are dropped.
    pub max_bytes: u64,
    /// Dead letters kept per sink; beyond it the oldest are dropped.
    pub max_dead_letters: u64,
}

impl Default for OutboxLimits {
    /// 100,000 deliveries, 256 MiB of payload and 1,000 dead letters per sink: days of alerts
    /// at any plausible alert rate, in a fraction of a small disk.
    fn default() -> Self {
        Self {
            max_alerts: 100_000,
            max_bytes: 256 << 20,
            max_dead_letters: 1000,
        }
    }
}

/// A pending delivery, as [`Store::outbox_due`] and [`Store::outbox_pending`] return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its place in its sink's queue.
    pub seq: u64,
    /// The alert it carries, for the receiver to deduplicate.
    pub alert_id: AlertId,
    /// The bytes to send.
    pub payload: Vec<u8>,
    /// When it was enqueued.
    pub enqueued_ms: i64,
    /// Failed attempts so far (0 for all but the head).
    pub attempts: u32,
}

/// Why a delivery was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The sink's queue was full and this was the oldest delivery.
    Full,
    /// Its payload alone is larger than `max_bytes` (or `max_alerts` is 0).
    TooLarge,
    /// More than `max_dead_letters` dead letters, and this was the oldest.
    DeadLetterOverflow,
    /// Its sink was removed from the configuration.
    SinkRemoved,
}

/// A delivery that was dropped, for the agent to log and to write to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The sink it was for.
    pub sink: String,
    /// Its place in that sink's queue.
    pub seq: u64,
    /// The alert it carried.
    pub alert_id: AlertId,
    /// When it was enqueued.
    pub enqueued_ms: i64,
    /// Its payload's length.
    pub bytes: u64,
    /// Why.
    pub reason: DropReason,
}

/// A delivery its sink rejected as malformed, kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The place it had in its sink's queue.
    pub seq: u64,
    /// The alert it carried.
    pub alert_id: AlertId,
    /// The bytes that were rejected.
    pub payload: Vec<u8>,
    /// When it was enqueued.
    pub enqueued_ms: i64,
    /// Failed attempts before the rejection.
    pub attempts: u32,
    /// The sink's reason.
    pub reason: String,
    /// When it was rejected.
    pub dead_at_ms: i64,
}

/// The state of one sink's outbox, as [`Store::outbox_status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOutbox {
    /// The sink's name.
    pub sink: String,
    /// Deliveries pending.
    pub pending: u64,
    /// Their payload bytes.
    pub pending_bytes: u64,
    /// When the head was enqueued, if any delivery is pending.
    pub oldest_pending_ms: Option<i64>,
    /// How long before `now_ms` that was (0 if in the future).
    pub oldest_pending_age_ms: Option<i64>,
    /// Failed attempts of the head.
    pub head_attempts: u32,
    /// No attempt before this time.
    pub next_attempt_ms: Option<i64>,
    /// Whether the head is in retry-wait at `now_ms`.
    pub waiting: bool,
    /// The last failure or rejection, until a delivery succeeds.
    pub last_error: Option<String>,
    /// When a delivery last succeeded.
    pub last_delivered_ms: Option<i64>,
    /// Deliveries enqueued, ever.
    pub enqueued: u64,
    /// Deliveries acknowledged by the sink.
    pub delivered: u64,
    /// Transient failures.
    pub retried: u64,
    /// Deliveries dropped (full queue, too large, sink removed, dead letters past the bound).
    pub dropped: u64,
    /// Deliveries rejected by the sink.
    pub dead_lettered: u64,
    /// Dead letters kept now.
    pub dead_letters: u64,
}

/// Whether `name` can name a sink: 1 to 64 characters of `a-z0-9_-`.
pub fn is_valid_sink_name(name: &str) -> bool {
    sink_name_problem(name).is_none()
}

fn sink_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > codec::SINK_NAME_MAX {
        Some("it is longer than 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("only a-z, 0-9, _ and - are allowed")
    } else {
        None
    }
}

/// The per-sink state kept in `outbox_sinks` (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SinkMeta {
    next_seq: u64,
    head_attempts: u32,
    next_attempt_ms: Option<i64>,
    last_error: Option<String>,
    last_delivered_ms: Option<i64>,
    enqueued: u64,
    delivered: u64,
    retried: u64,
    dropped: u64,
    dead_lettered: u64,
    pending: u64,
    pending_bytes: u64,
    dead_letters: u64,
    max_dead_letters: u64,
}

/// An `outbox` value, borrowed for encoding.
#[derive(Serialize)]
struct DeliveryRef<'a> {
    alert_id: &'a str,
    enqueued_ms: i64,
    payload: &'a [u8],
}

/// An `outbox` value, decoded.
#[derive(Deserialize)]
struct Delivery {
    alert_id: String,
    enqueued_ms: i64,
    payload: Vec<u8>,
}

/// An `outbox_dead` value.
#[derive(Serialize, Deserialize)]
struct DeadValue {
    alert_id: String,
    enqueued_ms: i64,
    attempts: u32,
    reason: String,
    dead_at_ms: i64,
    payload: Vec<u8>,
}

/// `reason` cut to at most [`MAX_REASON_BYTES`] at a character boundary.
fn bounded(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// The first and last possible keys of an `outbox` (or `outbox_dead`) entry of `sink`.
fn sink_bounds(sink: &str) -> ([u8; OUTBOX_KEY], [u8; OUTBOX_KEY]) {
    (
        codec::outbox_key(sink, 0),
        codec::outbox_key(sink, u64::MAX),
    )
}

/// The outbox tables, open in one write transaction.
struct Tables<'txn> {
    queue: Table<'txn, &'static [u8; OUTBOX_KEY], &'static [u8]>,
    sinks: Table<'txn, &'static str, &'static [u8]>,
    dead: Table<'txn, &'static [u8; OUTBOX_KEY], &'static [u8]>,
}

/// Where a sequence number stands relative to a sink's head.
enum Place {
    /// It is the head.
    Head,
    /// It was in the queue once and is gone (dropped, or answered before).
    Gone,
    /// It is behind the head, or was never issued: an error.
    NotHead(Option<u64>),
}

impl Store {
    fn check_sink(&self, sink: &str) -> Result<(), StoreError> {
        match sink_name_problem(sink) {
            None => Ok(()),
            Some(reason) => {
                let shown: String = sink.chars().take(80).collect();
                Err(StoreError::InvalidSinkName {
                    path: self.path.clone(),
                    name: crate::text::quoted(&shown).to_string(),
                    reason,
                })
            }
        }
    }

    fn decode_meta(&self, bytes: &[u8]) -> Result<SinkMeta, StoreError> {
        codec::decode_postcard(bytes).map_err(self.value_err(name::OUTBOX_SINKS))
    }

    fn decode_delivery(&self, seq: u64, bytes: &[u8]) -> Result<Pending, StoreError> {
        let delivery: Delivery =
            codec::decode_postcard(bytes).map_err(self.value_err(name::OUTBOX))?;
        Ok(Pending {
            seq,
            alert_id: self.alert_id(name::OUTBOX, &delivery.alert_id)?,
            payload: delivery.payload,
            enqueued_ms: delivery.enqueued_ms,
            attempts: 0,
        })
    }

    fn alert_id(&self, table: &'static str, text: &str) -> Result<AlertId, StoreError> {
        AlertId::parse(text).map_err(|err| self.corrupt(table, err.to_string()))
    }

    /// The head batch of `sink`'s queue: at most `max` pending deliveries, oldest first, the
    /// first carrying the head's failed attempts. Empty when nothing is pending, when `max` is
    /// 0, or when the head is in retry-wait (its `next_attempt_ms` is after `now_ms`): order is
    /// kept, so nothing behind it may go first. Read-only: the deliveries stay pending until
    /// answered.
    pub fn outbox_due(
        &self,
        sink: &str,
        max: usize,
        now_ms: i64,
    ) -> Result<Vec<Pending>, StoreError> {
        const OPERATION: &str = "read due deliveries";
        self.check_sink(sink)?;
        let txn = self.read(OPERATION)?;
        let sinks = txn
            .open_table(codec::OUTBOX_SINKS)
            .map_err(self.db_err(OPERATION))?;
        let Some(meta) = sinks.get(sink).map_err(self.db_err(OPERATION))? else {
            return Ok(Vec::new());
        };
        let meta = self.decode_meta(meta.value())?;
        if max == 0 || meta.next_attempt_ms.is_some_and(|at| at > now_ms) {
            return Ok(Vec::new());
        }
        let queue = txn
            .open_table(codec::OUTBOX)
            .map_err(self.db_err(OPERATION))?;
        let mut out = Vec::new();
        let bounds = sink_bounds(sink);
        for entry in queue
            .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
            .map_err(self.db_err(OPERATION))?
            .take(max)
        {
            let (key, value) = entry.map_err(self.db_err(OPERATION))?;
            let mut pending =
                self.decode_delivery(codec::seq_of_outbox_key(key.value()), value.value())?;
            if out.is_empty() {
                pending.attempts = meta.head_attempts;
            }
            out.push(pending);
        }
        Ok(out)
    }

    /// The sink acknowledged these deliveries: removes them and counts them as delivered, in
    /// one transaction, and clears the head's attempts, wait and last error. `seqs` must be
    /// increasing and, once those already gone are skipped (a delivery dropped while in
    /// flight, or acknowledged before), be the head and the deliveries right behind it;
    /// otherwise [`StoreError::NotOutboxHead`] and nothing changes. Returns how many were
    /// removed.
    pub fn outbox_delivered(
        &self,
        sink: &str,
        seqs: &[u64],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.check_sink(sink)?;
        self.write("record deliveries", |w| w.delivered(sink, seqs, now_ms))
    }

    /// The head `seq` failed transiently: counts the attempt and the retry, keeps `reason`
    /// (cut to [`MAX_REASON_BYTES`]) as the last error, and holds the queue until
    /// `next_attempt_ms`. `Ok(false)` when the delivery is already gone (dropped while in
    /// flight); [`StoreError::NotOutboxHead`] when it is not the head.
    pub fn outbox_retry(
        &self,
        sink: &str,
        seq: u64,
        reason: &str,
        next_attempt_ms: i64,
    ) -> Result<bool, StoreError> {
        self.check_sink(sink)?;
        self.write("record a failed delivery", |w| {
            let mut t = w.tables()?;
            let mut meta = w.meta(&t, sink)?;
            match w.place(&t, sink, &meta, seq)? {
                Place::Gone => return Ok(false),
                Place::NotHead(head) => return Err(w.not_head(sink, seq, head)),
                Place::Head => {}
            }
            meta.head_attempts = meta.head_attempts.saturating_add(1);
            meta.retried += 1;
            meta.last_error = Some(bounded(reason));
            meta.next_attempt_ms = Some(next_attempt_ms);
            w.put_meta(&mut t, sink, &meta)?;
            Ok(true)
        })
    }

    /// The sink rejected the head `seq` as malformed: moves it to the sink's dead letters with
    /// `reason` (cut to [`MAX_REASON_BYTES`]), which also becomes the last error, and lets the
    /// next delivery go at once. Dead letters past the bound the last enqueue gave are
    /// dropped, oldest first, and returned. `Ok(None)` when the delivery is already gone;
    /// [`StoreError::NotOutboxHead`] when it is not the head.
    pub fn outbox_reject(
        &self,
        sink: &str,
        seq: u64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<Dropped>>, StoreError> {
        self.check_sink(sink)?;
        self.write("record a rejected delivery", |w| {
            w.reject(sink, seq, reason, now_ms)
        })
    }

    /// Removes every pending delivery of `sink` (a sink removed from the configuration),
    /// counting them as dropped and returning them. The sink's counters and dead letters are
    /// kept, so that status still accounts for every delivery it ever had; should the sink
    /// come back, its queue continues after the last `seq` it had.
    pub fn outbox_forget_sink(&self, sink: &str) -> Result<Vec<Dropped>, StoreError> {
        self.check_sink(sink)?;
        self.write("forget a sink", |w| {
            let mut t = w.tables()?;
            let mut meta = w.meta(&t, sink)?;
            let mut dropped = Vec::new();
            while let Some(gone) = w.pop_head(&mut t, sink, &mut meta, DropReason::SinkRemoved)? {
                dropped.push(gone);
            }
            meta.next_attempt_ms = None;
            if meta != SinkMeta::default() {
                w.put_meta(&mut t, sink, &meta)?;
            }
            Ok(dropped)
        })
    }

    /// Whether the delivery `seq` of `sink` is still pending (neither delivered, dead-lettered
    /// nor dropped).
    pub fn outbox_is_pending(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        const OPERATION: &str = "look up a delivery";
        self.check_sink(sink)?;
        let txn = self.read(OPERATION)?;
        let queue = txn
            .open_table(codec::OUTBOX)
            .map_err(self.db_err(OPERATION))?;
        let key = codec::outbox_key(sink, seq);
        Ok(queue.get(&key).map_err(self.db_err(OPERATION))?.is_some())
    }

    /// Every sink the outbox has seen, by name, with its queue, head and counters at `now_ms`.
    pub fn outbox_status(&self, now_ms: i64) -> Result<Vec<SinkOutbox>, StoreError> {
        const OPERATION: &str = "read outbox status";
        let txn = self.read(OPERATION)?;
        let sinks = txn
            .open_table(codec::OUTBOX_SINKS)
            .map_err(self.db_err(OPERATION))?;
        let queue = txn
            .open_table(codec::OUTBOX)
            .map_err(self.db_err(OPERATION))?;
        let mut out = Vec::new();
        for entry in sinks.iter().map_err(self.db_err(OPERATION))? {
            let (sink, meta) = entry.map_err(self.db_err(OPERATION))?;
            let sink = sink.value();
            let meta = self.decode_meta(meta.value())?;
            let bounds = sink_bounds(sink);
            let head = match queue
                .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
                .map_err(self.db_err(OPERATION))?
                .next()
            {
                None => None,
                Some(entry) => {
                    let (key, value) = entry.map_err(self.db_err(OPERATION))?;
                    Some(
                        self.decode_delivery(codec::seq_of_outbox_key(key.value()), value.value())?,
                    )
                }
            };
            let oldest = head.map(|head| head.enqueued_ms);
            out.push(SinkOutbox {
                sink: sink.to_owned(),
                pending: meta.pending,
                pending_bytes: meta.pending_bytes,
                oldest_pending_ms: oldest,
                oldest_pending_age_ms: oldest.map(|at| now_ms.saturating_sub(at).max(0)),
                head_attempts: meta.head_attempts,
                next_attempt_ms: meta.next_attempt_ms,
                waiting: oldest.is_some() && meta.next_attempt_ms.is_some_and(|at| at > now_ms),
                last_error: meta.last_error,
                last_delivered_ms: meta.last_delivered_ms,
                enqueued: meta.enqueued,
                delivered: meta.delivered,
                retried: meta.retried,
                dropped: meta.dropped,
                dead_lettered: meta.dead_lettered,
                dead_letters: meta.dead_letters,
            });
        }
        Ok(out)
    }

    /// At most `max` pending deliveries, of `sink` or of every sink (by sink name, then
    /// oldest first), with their sinks: what `alerts export` carries out. Read-only: they stay
    /// pending.
    pub fn outbox_pending(
        &self,
        sink: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, Pending)>, StoreError> {
        const OPERATION: &str = "read pending deliveries";
        if let Some(sink) = sink {
            self.check_sink(sink)?;
        }
        let txn = self.read(OPERATION)?;
        let queue = txn
            .open_table(codec::OUTBOX)
            .map_err(self.db_err(OPERATION))?;
        let sinks = txn
            .open_table(codec::OUTBOX_SINKS)
            .map_err(self.db_err(OPERATION))?;
        let bounds = match sink {
            Some(sink) => sink_bounds(sink),
            None => ([0; OUTBOX_KEY], [0xff; OUTBOX_KEY]),
        };
        let mut out: Vec<(String, Pending)> = Vec::new();
        for entry in queue
            .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
            .map_err(self.db_err(OPERATION))?
            .take(max)
        {
            let (key, value) = entry.map_err(self.db_err(OPERATION))?;
            let key = key.value();
            let name = codec::sink_of_outbox_key(key).map_err(self.value_err(name::OUTBOX))?;
            let mut pending = self.decode_delivery(codec::seq_of_outbox_key(key), value.value())?;
            if out.last().is_none_or(|(last, _)| last != name) {
                // The first of a sink is its head.
                let meta = sinks.get(name).map_err(self.db_err(OPERATION))?;
                let meta = meta.ok_or_else(|| {
                    self.corrupt(name::OUTBOX_SINKS, format!("no entry for sink {name}"))
                })?;
                pending.attempts = self.decode_meta(meta.value())?.head_attempts;
            }
            out.push((name.to_owned(), pending));
        }
        Ok(out)
    }

    /// At most `max` of `sink`'s dead letters, oldest first.
    pub fn outbox_dead_letters(
        &self,
        sink: &str,
        max: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        const OPERATION: &str = "read dead letters";
        self.check_sink(sink)?;
        let txn = self.read(OPERATION)?;
        let dead = txn
            .open_table(codec::OUTBOX_DEAD)
            .map_err(self.db_err(OPERATION))?;
        let mut out = Vec::new();
        let bounds = sink_bounds(sink);
        for entry in dead
            .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
            .map_err(self.db_err(OPERATION))?
            .take(max)
        {
            let (key, value) = entry.map_err(self.db_err(OPERATION))?;
            let value: DeadValue =
                codec::decode_postcard(value.value()).map_err(self.value_err(name::OUTBOX_DEAD))?;
            out.push(DeadLetter {
                seq: codec::seq_of_outbox_key(key.value()),
                alert_id: self.alert_id(name::OUTBOX_DEAD, &value.alert_id)?,
                payload: value.payload,
                enqueued_ms: value.enqueued_ms,
                attempts: value.attempts,
                reason: value.reason,
                dead_at_ms: value.dead_at_ms,
            });
        }
        Ok(out)
    }
}
