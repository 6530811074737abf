//! The outbox's writes inside one write transaction: enqueueing (with the drop-oldest policy)
//! and the answers that change a sink's head. The states, tables and policy they implement are
//! specified in the module documentation of [`super`].

use std::collections::BTreeSet;

use super::{
    DeadValue, DeliveryRef, DropReason, Dropped, OutboxLimits, Place, SinkMeta, Tables, bounded,
    sink_bounds,
};
use crate::ids::AlertId;
use crate::storage::codec::{self, OUTBOX_KEY, name};
use crate::storage::{StoreError, Writer};
use redb::ReadableTable;

impl Writer<'_> {
    /// Enqueues `payload` (the alert's bytes as the sinks will send them) for each sink of
    /// `sinks` (a name given twice is enqueued once), in this write unit: commit it with the
    /// alert. Never blocks and never fails for a full queue: the oldest deliveries are
    /// dropped to make room (the full policy of the outbox module documentation) and returned,
    /// for the agent to log and write to the ledger. Fails only for an invalid sink name or a
    /// store error, and then the whole unit must be dropped.
    pub fn enqueue(
        &mut self,
        sinks: &[&str],
        alert_id: &AlertId,
        payload: &[u8],
        now_ms: i64,
        limits: &OutboxLimits,
    ) -> Result<Vec<Dropped>, StoreError> {
        let store = self.store;
        for sink in sinks {
            store.check_sink(sink)?;
        }
        let value = codec::encode_postcard(
            &DeliveryRef {
                alert_id: alert_id.as_str(),
                enqueued_ms: now_ms,
                payload,
            },
            Vec::new(),
        )
        .map_err(store.encode_err(name::OUTBOX))?;
        let bytes = payload.len() as u64;
        let mut t = self.tables()?;
        let mut dropped = Vec::new();
        for sink in sinks.iter().copied().collect::<BTreeSet<&str>>() {
            let mut meta = self.meta(&t, sink)?;
            let seq = meta.next_seq;
            meta.next_seq += 1;
            meta.enqueued += 1;
            meta.max_dead_letters = limits.max_dead_letters;
            if limits.max_alerts == 0 || bytes > limits.max_bytes {
                meta.dropped += 1;
                dropped.push(Dropped {
                    sink: sink.to_owned(),
                    seq,
                    alert_id: alert_id.clone(),
                    enqueued_ms: now_ms,
                    bytes,
                    reason: DropReason::TooLarge,
                });
            } else {
                while meta.pending >= limits.max_alerts
                    || meta.pending_bytes + bytes > limits.max_bytes
                {
                    let gone = self.pop_head(&mut t, sink, &mut meta, DropReason::Full)?;
                    let gone = gone.ok_or_else(|| {
                        store.corrupt(
                            name::OUTBOX_SINKS,
                            format!("sink {sink} counts pending deliveries its queue lacks"),
                        )
                    })?;
                    dropped.push(gone);
                }
                t.queue
                    .insert(&codec::outbox_key(sink, seq), value.as_slice())
                    .map_err(store.db_err(self.operation))?;
                meta.pending += 1;
                meta.pending_bytes += bytes;
            }
            self.put_meta(&mut t, sink, &meta)?;
        }
        Ok(dropped)
    }

    pub(super) fn tables(&self) -> Result<Tables<'_>, StoreError> {
        let err = self.store.db_err(self.operation);
        Ok(Tables {
            queue: self.txn.open_table(codec::OUTBOX).map_err(&err)?,
            sinks: self.txn.open_table(codec::OUTBOX_SINKS).map_err(&err)?,
            dead: self.txn.open_table(codec::OUTBOX_DEAD).map_err(&err)?,
        })
    }

    /// The `seq` the next delivery enqueued for `sink` in this unit will take (to ask
    /// [`Store::outbox_is_pending`](crate::storage::Store::outbox_is_pending) about it later).
    pub fn outbox_next_seq(&mut self, sink: &str) -> Result<u64, StoreError> {
        self.store.check_sink(sink)?;
        let t = self.tables()?;
        Ok(self.meta(&t, sink)?.next_seq)
    }

    /// The meta of `sink`, or a new sink's.
    pub(super) fn meta(&self, t: &Tables<'_>, sink: &str) -> Result<SinkMeta, StoreError> {
        let store = self.store;
        match t.sinks.get(sink).map_err(store.db_err(self.operation))? {
            Some(bytes) => store.decode_meta(bytes.value()),
            None => Ok(SinkMeta::default()),
        }
    }

    pub(super) fn put_meta(
        &self,
        t: &mut Tables<'_>,
        sink: &str,
        meta: &SinkMeta,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let bytes = codec::encode_postcard(meta, Vec::new())
            .map_err(store.encode_err(name::OUTBOX_SINKS))?;
        t.sinks
            .insert(sink, bytes.as_slice())
            .map_err(store.db_err(self.operation))?;
        Ok(())
    }

    /// The head of `sink`'s queue: its key's `seq` and its value.
    pub(super) fn head(
        &self,
        t: &Tables<'_>,
        sink: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let err = self.store.db_err(self.operation);
        let bounds = sink_bounds(sink);
        match t
            .queue
            .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
            .map_err(&err)?
            .next()
        {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(&err)?;
                Ok(Some((
                    codec::seq_of_outbox_key(key.value()),
                    value.value().to_vec(),
                )))
            }
        }
    }

    /// Where `seq` stands in `sink`'s queue.
    pub(super) fn place(
        &self,
        t: &Tables<'_>,
        sink: &str,
        meta: &SinkMeta,
        seq: u64,
    ) -> Result<Place, StoreError> {
        let head = self.head(t, sink)?.map(|(head, _)| head);
        Ok(match head {
            Some(head) if seq == head => Place::Head,
            Some(head) if seq < head => Place::Gone,
            None if seq < meta.next_seq => Place::Gone,
            head => Place::NotHead(head),
        })
    }

    pub(super) fn not_head(&self, sink: &str, seq: u64, head: Option<u64>) -> StoreError {
        StoreError::NotOutboxHead {
            path: self.store.path.clone(),
            sink: sink.to_owned(),
            seq,
            head,
        }
    }

    /// Removes the head of `sink`'s queue as dropped for `reason`, and returns it; `None`
    /// when the queue is empty. The new head has not been tried: its attempts start at 0. The
    /// wait and last error stay: they are about the sink as much as about the delivery.
    pub(super) fn pop_head(
        &self,
        t: &mut Tables<'_>,
        sink: &str,
        meta: &mut SinkMeta,
        reason: DropReason,
    ) -> Result<Option<Dropped>, StoreError> {
        let store = self.store;
        let Some((seq, value)) = self.head(t, sink)? else {
            return Ok(None);
        };
        t.queue
            .remove(&codec::outbox_key(sink, seq))
            .map_err(store.db_err(self.operation))?;
        let delivery = store.decode_delivery(seq, &value)?;
        let bytes = delivery.payload.len() as u64;
        self.count_removed(sink, meta, bytes)?;
        meta.dropped += 1;
        meta.head_attempts = 0;
        Ok(Some(Dropped {
            sink: sink.to_owned(),
            seq,
            alert_id: delivery.alert_id,
            enqueued_ms: delivery.enqueued_ms,
            bytes,
            reason,
        }))
    }

    /// Takes one delivery of `bytes` off the pending counts, which must hold it.
    pub(super) fn count_removed(
        &self,
        sink: &str,
        meta: &mut SinkMeta,
        bytes: u64,
    ) -> Result<(), StoreError> {
        match (
            meta.pending.checked_sub(1),
            meta.pending_bytes.checked_sub(bytes),
        ) {
            (Some(pending), Some(pending_bytes)) => {
                meta.pending = pending;
                meta.pending_bytes = pending_bytes;
                Ok(())
            }
            _ => Err(self.store.corrupt(
                name::OUTBOX_SINKS,
                format!("sink {sink} counts fewer pending deliveries than its queue holds"),
            )),
        }
    }

    pub(super) fn delivered(
        &self,
        sink: &str,
        seqs: &[u64],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let store = self.store;
        let mut t = self.tables()?;
        let mut meta = self.meta(&t, sink)?;
        // Errors name the head as it was before this call: what it removed is rolled back.
        let first_head = self.head(&t, sink)?.map(|(head, _)| head);
        if let Some(pair) = seqs.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(self.not_head(sink, pair[1], first_head));
        }
        let mut removed = 0;
        for &seq in seqs {
            match self.place(&t, sink, &meta, seq)? {
                Place::Gone => continue,
                Place::NotHead(_) => return Err(self.not_head(sink, seq, first_head)),
                Place::Head => {}
            }
            let value = t
                .queue
                .remove(&codec::outbox_key(sink, seq))
                .map_err(store.db_err(self.operation))?
                .map(|value| value.value().to_vec());
            let Some(value) = value else {
                return Err(self.not_head(sink, seq, first_head));
            };
            let delivery = store.decode_delivery(seq, &value)?;
            self.count_removed(sink, &mut meta, delivery.payload.len() as u64)?;
            meta.delivered += 1;
            removed += 1;
        }
        if removed > 0 {
            meta.head_attempts = 0;
            meta.next_attempt_ms = None;
            meta.last_error = None;
            meta.last_delivered_ms = Some(now_ms);
            self.put_meta(&mut t, sink, &meta)?;
        }
        Ok(removed)
    }

    pub(super) fn reject(
        &self,
        sink: &str,
        seq: u64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<Dropped>>, StoreError> {
        let store = self.store;
        let mut t = self.tables()?;
        let mut meta = self.meta(&t, sink)?;
        match self.place(&t, sink, &meta, seq)? {
            Place::Gone => return Ok(None),
            Place::NotHead(head) => return Err(self.not_head(sink, seq, head)),
            Place::Head => {}
        }
        let key = codec::outbox_key(sink, seq);
        let value = t
            .queue
            .remove(&key)
            .map_err(store.db_err(self.operation))?
            .map(|value| value.value().to_vec());
        let Some(value) = value else {
            return Err(self.not_head(sink, seq, None));
        };
        let delivery = store.decode_delivery(seq, &value)?;
        self.count_removed(sink, &mut meta, delivery.payload.len() as u64)?;
        let reason = bounded(reason);
        let dead = codec::encode_postcard(
            &DeadValue {
                alert_id: delivery.alert_id.as_str().to_owned(),
                enqueued_ms: delivery.enqueued_ms,
                attempts: meta.head_attempts,
                reason: reason.clone(),
                dead_at_ms: now_ms,
                payload: delivery.payload,
            },
            Vec::new(),
        )
        .map_err(store.encode_err(name::OUTBOX_DEAD))?;
        t.dead
            .insert(&key, dead.as_slice())
            .map_err(store.db_err(self.operation))?;
        meta.dead_lettered += 1;
        meta.dead_letters += 1;
        meta.head_attempts = 0;
        meta.next_attempt_ms = None;
        meta.last_error = Some(reason);

        let mut dropped = Vec::new();
        while meta.dead_letters > meta.max_dead_letters {
            let oldest = {
                let bounds = sink_bounds(sink);
                let mut range = t
                    .dead
                    .range::<&[u8; OUTBOX_KEY]>(&bounds.0..=&bounds.1)
                    .map_err(store.db_err(self.operation))?;
                match range.next() {
                    None => None,
                    Some(entry) => {
                        let (key, value) = entry.map_err(store.db_err(self.operation))?;
                        Some((*key.value(), value.value().to_vec()))
                    }
                }
            };
            let Some((key, value)) = oldest else {
                return Err(store.corrupt(
                    name::OUTBOX_SINKS,
                    format!("sink {sink} counts more dead letters than it has"),
                ));
            };
            t.dead.remove(&key).map_err(store.db_err(self.operation))?;
            let value: DeadValue =
                codec::decode_postcard(&value).map_err(store.value_err(name::OUTBOX_DEAD))?;
            meta.dead_letters -= 1;
            meta.dropped += 1;
            dropped.push(Dropped {
                sink: sink.to_owned(),
                seq: codec::seq_of_outbox_key(&key),
                alert_id: store.alert_id(name::OUTBOX_DEAD, &value.alert_id)?,
                enqueued_ms: value.enqueued_ms,
                bytes: value.payload.len() as u64,
                reason: DropReason::DeadLetterOverflow,
            });
        }
        self.put_meta(&mut t, sink, &meta)?;
        Ok(Some(dropped))
    }
}
