//! Alert sinks: the one narrow trait the outbox's delivery loop drives, the errors every sink
//! classifies its failures into, and the pieces the sinks share (retry timing and the circuit
//! breaker in [`retry`], the encodings in [`format`](mod@format)). Each sink lives in a module of its own
//! with its configuration, its encoder and its error classification: [`stdout`] and [`file`](mod@file)
//! here; syslog, webhook, email, Splunk HEC, Elasticsearch and PostgreSQL follow. Network code
//! lives in the agent, never in `daemoneye-lib` (procmond links lib).
//!
//! Nothing here is wired into the agent yet: the delivery loop that reads
//! `daemoneye_lib::storage` and drives a [`Sink`] is built apart.
//!
//! # Why the trait is synchronous
//!
//! [`Sink::deliver`] blocks until the sink acknowledged the batch or failed. Each sink runs on
//! a thread of its own (a `std::thread` or `tokio::task::spawn_blocking`), for these reasons:
//! the outbox store (redb) is synchronous, so the loop blocks on it between deliveries anyway;
//! files and stdout are blocking I/O, and the clients the later sinks need (lettre's SMTP
//! transport, PostgreSQL, std sockets for syslog) all have blocking forms whose timeouts are
//! set on the socket; a sink that hangs then occupies its own thread and never a worker of
//! the async runtime that scans, so one slow receiver cannot slow the scan loop or another
//! sink. A synchronous trait is also object safe without boxed futures: the loop holds a
//! `Box<dyn Sink>`.
//!
//! # States of a delivery and who moves it
//!
//! The outbox itself is `daemoneye_lib::storage::outbox`: a delivery is a row of a sink's
//! queue, its head the oldest. The loop for one sink repeats: ask the breaker, take the head
//! batch, call [`Sink::deliver`], answer the store according to the result.
//!
//! | state | meaning | storage call that makes it |
//! |---|---|---|
//! | pending | a row of the sink's queue, waiting its turn | `Writer::enqueue`, in the write unit that records the alert |
//! | in flight | handed to [`Sink::deliver`]; the row is still pending in the store | `Store::outbox_due` (read-only) |
//! | delivered | acknowledged by the sink; the row is gone, counted | `Store::outbox_delivered` |
//! | retry-wait | the head failed transiently; nothing of this sink goes before `next_attempt_ms` | `Store::outbox_retry` |
//! | dead-lettered | the sink refused it as malformed; moved aside, the next goes at once | `Store::outbox_reject` |
//! | dropped | removed unsent by the full policy or the sink's removal; counted and returned | `Writer::enqueue` (full, too large), `Store::outbox_reject` (dead letters past the bound), `Store::outbox_forget_sink` |
//!
//! | from | to | on | the loop then calls |
//! |---|---|---|---|
//! | pending (head) | in flight | the breaker allows, `outbox_due` returns the batch | [`Sink::deliver`] |
//! | in flight | delivered | `Ok(())` | `outbox_delivered` with every `seq` of the batch; breaker success |
//! | in flight | delivered, then the rest as below | `Err(BatchError)` with `acknowledged = k > 0` | `outbox_delivered` with the first `k` `seq`s |
//! | in flight | retry-wait | [`SinkError::Retry`] for delivery `k` | `outbox_retry(seq_k, reason, retry::next_attempt_ms(..))`; breaker failure |
//! | in flight | dead-lettered | [`SinkError::Reject`] for delivery `k` | `outbox_reject(seq_k, reason, now)`; breaker success (the sink answered) |
//! | in flight | pending | [`SinkError::GiveUp`] | nothing: the rows never left; the loop stops this sink and reports why (the queue keeps filling under the full policy until the configuration changes) |
//! | in flight | pending | a crash or a kill | nothing: sent again after the restart (at least once; receivers deduplicate by alert id) |
//! | retry-wait | in flight | `now_ms` reaches `next_attempt_ms` | `outbox_due` returns the head again |
//! | pending | dropped | a newer enqueue finds the queue full | (none: the writer counts it and returns it for the log and the ledger) |
//!
//! # Where the breaker sits
//!
//! Between the loop and the store, in memory, one [`retry::Breaker`] per sink. Backoff
//! ([`retry::next_attempt_ms`]) is persisted with the head (`next_attempt_ms`), so it survives a
//! restart and spaces the attempts of one head; the breaker counts consecutive failed batches
//! across heads and, once open, keeps the loop from calling `outbox_due` and [`Sink::deliver`]
//! at all until its cooldown ends, then lets exactly one probe batch through. An open breaker
//! changes nothing in the store: the deliveries stay pending, and `outbox status` shows the
//! breaker's state next to the store's counters. It is not persisted: after a restart every
//! sink starts closed, and the persisted backoff still spaces the first attempts.

pub mod build;
pub mod deliver;
pub mod elasticsearch;
pub mod email;
pub mod file;
pub mod format;
pub mod http;
pub mod postgres;
pub mod retry;
pub mod splunk_hec;
pub mod stdout;
pub mod syslog;
pub mod tls;
pub mod webhook;

use daemoneye_lib::ids::AlertId;
use daemoneye_lib::storage::Pending;

/// One delivery handed to a sink: the alert's id, for the receiver to deduplicate, and the
/// payload bytes the outbox holds (the alert's JSON object, INTERFACE.md "Alerts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The alert carried.
    pub alert_id: &'a AlertId,
    /// The alert's JSON bytes, as enqueued.
    pub payload: &'a [u8],
}

impl<'a> From<&'a Pending> for Delivery<'a> {
    fn from(pending: &'a Pending) -> Self {
        Self {
            alert_id: &pending.alert_id,
            payload: &pending.payload,
        }
    }
}

/// How a sink failed, which decides what happens to the delivery (see the module table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A transient failure (the receiver is down, a timeout, a full disk): the head waits
    /// with backoff and is sent again.
    #[error("transient failure, will retry: {reason}")]
    Retry {
        /// What went wrong, for `outbox status`.
        reason: String,
    },
    /// This delivery is malformed for the sink, and sending it again cannot help: it is
    /// dead-lettered and the next one goes.
    #[error("delivery rejected: {reason}")]
    Reject {
        /// Why, kept with the dead letter.
        reason: String,
    },
    /// The sink cannot work as configured (a path that is a symlink, a refused credential):
    /// the loop stops it and says why; its deliveries stay pending.
    #[error("sink cannot work as configured: {reason}")]
    GiveUp {
        /// Why, for the operator.
        reason: String,
    },
}

impl SinkError {
    /// A [`SinkError::Retry`].
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
        }
    }

    /// A [`SinkError::Reject`].
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject {
            reason: reason.into(),
        }
    }

    /// A [`SinkError::GiveUp`].
    pub fn give_up(reason: impl Into<String>) -> Self {
        Self::GiveUp {
            reason: reason.into(),
        }
    }

    /// The reason alone, for the store's `last_error` and a dead letter.
    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason } | Self::Reject { reason } | Self::GiveUp { reason } => reason,
        }
    }
}

/// A batch that was not wholly delivered: the first `acknowledged` deliveries were (the loop
/// answers them with `outbox_delivered`), and `error` is about the delivery right after them
/// (for [`SinkError::Retry`] and [`SinkError::Reject`]) or the sink (for
/// [`SinkError::GiveUp`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{acknowledged} deliveries acknowledged, then: {error}")]
pub struct BatchError {
    /// How many deliveries from the start of the batch the sink acknowledged.
    pub acknowledged: usize,
    /// What happened to the next one.
    pub error: SinkError,
}

impl From<SinkError> for BatchError {
    /// Nothing of the batch was acknowledged.
    fn from(error: SinkError) -> Self {
        Self {
            acknowledged: 0,
            error,
        }
    }
}

/// A destination for alerts. `deliver` blocks (see the module documentation) and returns
/// only when the deliveries it reports as acknowledged are as safe as the sink can make them
/// (written and synced, accepted by the receiver): the loop removes them from the outbox
/// right after.
pub trait Sink: Send {
    /// The sink's configured name (`[[sinks]] name`), as the outbox knows it.
    fn name(&self) -> &str;

    /// Delivers `batch` in order. `Ok(())`: all acknowledged. `Err`: the first
    /// [`BatchError::acknowledged`] were, and the error says what happened to the next one.
    /// An empty batch is `Ok(())` and does nothing.
    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError>;

    /// The most deliveries this sink takes in one call, when it has a bound of its own below
    /// `[outbox] batch` (a receiver's request size limit). `None`: the outbox's batch.
    fn max_batch(&self) -> Option<usize> {
        None
    }

    /// The least time between two calls of [`Sink::deliver`] (the email sink's interval, so
    /// that one mail carries the alerts of an interval). Zero: deliver as soon as alerts are
    /// pending.
    fn pace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_error_without_acknowledgements_converts_to_a_batch_error() {
        let err = BatchError::from(SinkError::reject("not an alert"));
        assert_eq!(err.acknowledged, 0);
        assert_eq!(err.error, SinkError::reject("not an alert"));
        assert_eq!(
            err.to_string(),
            "0 deliveries acknowledged, then: delivery rejected: not an alert"
        );
    }

    #[test]
    fn reasons_and_messages_name_the_class() {
        let check = |err: SinkError, reason: &str, message: &str| {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.to_string(), message);
        };
        check(
            SinkError::give_up("x is a symlink"),
            "x is a symlink",
            "sink cannot work as configured: x is a symlink",
        );
        check(SinkError::reject("bad"), "bad", "delivery rejected: bad");
        check(
            SinkError::retry("disk full"),
            "disk full",
            "transient failure, will retry: disk full",
        );
    }

    #[test]
    fn every_sink_can_be_driven_as_a_trait_object_from_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(stdout::StdoutSink::new(
                "console",
                crate::output::AlertFormat::Json,
            )),
            Box::new(file::FileSink::new(
                "archive",
                file::FileConfig::new(dir.path().join("a"), format::Encoding::Cef),
            )),
        ];
        let names = std::thread::spawn(move || {
            sinks
                .iter()
                .map(|sink| sink.name().to_owned())
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        assert_eq!(names, ["console", "archive"]);
    }

    #[test]
    fn a_delivery_borrows_a_pending_row() {
        let pending = Pending {
            seq: 7,
            alert_id: AlertId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            payload: b"{}".to_vec(),
            enqueued_ms: 1,
            attempts: 2,
        };
        let delivery = Delivery::from(&pending);
        assert_eq!(delivery.alert_id, &pending.alert_id);
        assert_eq!(delivery.payload, b"{}");
    }
}
