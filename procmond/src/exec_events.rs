//! Real-time exec events from the kernel's process connector (Linux), so that a process that
//! lives for a millisecond between two scans is still seen.
//!
//! # Source
//!
//! A `NETLINK_CONNECTOR` socket bound to the `CN_IDX_PROC` multicast group, after a
//! `PROC_CN_MCAST_LISTEN` message: the kernel then sends a `proc_event` for every fork, exec
//! and exit on the host. Binding to the group and the listen message need `CAP_NET_ADMIN`, so
//! [`subscribe`] runs while procmond is still root, before the privilege drop; the open socket
//! keeps receiving afterwards and procmond keeps no capability for it. The kernel answers the
//! listen message with an acknowledgement carrying an error number: `subscribe` waits for it,
//! so "on" means the kernel accepted. Where it did not (not root, a container without the
//! privilege, a network namespace other than the host's, where the connector does not exist),
//! procmond says why and scans alone.
//!
//! The socket is the `netlink-sys` crate's (rust-netlink, the plumbing under `rtnetlink`): it
//! keeps the `unsafe` system calls out of this crate. No crate parses the connector's
//! messages, so [`parse`] does, with every length checked against the datagram: they are a
//! handful of fixed-layout C structs (`linux/netlink.h`, `linux/connector.h`,
//! `linux/cn_proc.h`) in the host's byte order.
//!
//! # Threads and bounds
//!
//! - The *listener* thread receives datagrams, keeps a bounded map of which process forked
//!   which (so that an exec whose process is gone still names its parent), and reads each
//!   exec'd process (not thread) at once, through the scan's own reader
//!   (`crate::linux::observe_exec`, which reads the command line before anything else: it
//!   goes with the process's memory the moment it exits). No hand-off comes between the kernel's message and
//!   the read: a `/bin/true` lives for well under a millisecond. While it reads, the socket's
//!   buffer holds what arrives; the kernel numbers its messages per CPU, and a gap in a CPU's
//!   numbers is events that buffer overran, counted as dropped. A process that exited before
//!   it could be read yields an event with what the kernel gave (pid, parent, time) marked
//!   lost.
//! - The *pusher* thread takes the read events through a queue of [`QUEUE`] (a full queue
//!   drops the event and counts it), takes each executable's hash from its cache or hashes it
//!   within [`HASH_BUDGET`] (only while the queue is short: under a storm the hash is left to
//!   the next scan), and pushes the events to the agent in batches: every [`BATCH_WAIT`] or
//!   [`BATCH_MAX`] events.
//! - Drops are counted in health at once and written to the audit ledger (`exec_events_dropped`)
//!   at most once every [`LEDGER_EVERY`] while they go on.
//!
//! Nothing is pushed while no agent has subscribed; events of that time are not counted as
//! drops (procmond has just started), but those lost after an agent went away are.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemoneye_lib::ipc::convert;
use daemoneye_lib::ipc::proto;
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::models::{EventKind, ProcessEvent, ProcessRecord};
use tokio::sync::mpsc;

use crate::audit::AuditLog;
use crate::collector::{CollectorOptions, ExeRef, epoch_millis};
use crate::hasher::{FileKey, HashCache, HashOutcome, hash_file};

/// Read exec events waiting for the pusher.
pub const QUEUE: usize = 2048;
/// The most events in one pushed batch.
pub const BATCH_MAX: usize = 256;
/// How long the first event of a batch waits for others.
pub const BATCH_WAIT: Duration = Duration::from_millis(5);
/// Time the reader may spend hashing one executable it has not seen.
pub const HASH_BUDGET: Duration = Duration::from_millis(50);
/// The reader hashes only while fewer events than this wait behind it.
const HASH_WHEN_QUEUE_BELOW: u64 = 64;
/// Executables whose hash the reader keeps.
const HASH_CACHE: usize = 4096;
/// Batches queued for the agent's connection before new ones are dropped.
pub const PUSH_QUEUE: usize = 64;
/// At most one ledger entry per this much time while events are being dropped.
pub const LEDGER_EVERY: Duration = Duration::from_secs(60);
/// Processes whose parent the listener remembers (from their fork).
const FORKS_REMEMBERED: usize = 65_536;
/// The socket's receive buffer: room for about 40,000 events while the listener is busy.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// How long [`subscribe`] waits for the kernel's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(2);

mod wire;
use wire::*;
pub use wire::{Event, Message, parse};

/// A subscription the kernel accepted.
pub struct Subscription {
    socket: netlink_sys::Socket,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// Subscribes to the kernel's process events. Must run before the privilege drop.
pub fn subscribe() -> Result<Subscription, String> {
    use nix::sys::socket::{setsockopt, sockopt};
    let explain = |step: &str, err: io::Error| -> String {
        let hint = match err.raw_os_error() {
            Some(nix::libc::EPERM) | Some(nix::libc::EACCES) => {
                " (the kernel's process connector needs CAP_NET_ADMIN: run procmond as root)"
            }
            Some(nix::libc::ECONNREFUSED) | Some(nix::libc::EPROTONOSUPPORT) => {
                " (no process connector here: another network namespace, or a kernel without \
                 CONFIG_PROC_EVENTS)"
            }
            _ => "",
        };
        format!("{step}: {err}{hint}")
    };
    let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_CONNECTOR)
        .map_err(|err| explain("opening a netlink connector socket", err))?;
    let port = std::process::id();
    socket
        .bind(&netlink_sys::SocketAddr::new(port, CN_IDX_PROC))
        .map_err(|err| explain("joining the process events group", err))?;
    // Root may raise the buffer beyond rmem_max; if not, the default buffer still works.
    if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER);
    }
    setsockopt(
        &socket,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .map_err(|err| explain("setting a receive timeout", err.into()))?;
    socket
        .send(&listen_message(port), 0)
        .map_err(|err| explain("asking for process events", err))?;
    let deadline = Instant::now() + ACK_WAIT;
    let mut buf = Vec::with_capacity(64 * 1024);
    while Instant::now() < deadline {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(explain("waiting for the kernel's answer", err)),
        }
        if u16_at(&buf, 4) == Some(NLMSG_ERROR) {
            let errno = u32_at(&buf, NLMSG_HDRLEN).map_or(0, |e| (e as i32).unsigned_abs());
            return Err(explain(
                "asking for process events",
                io::Error::from_raw_os_error(errno as i32),
            ));
        }
        for message in parse(&buf) {
            if let Event::Ack { err } = message.event {
                return if err == 0 {
                    Ok(Subscription { socket })
                } else {
                    Err(explain(
                        "asking for process events",
                        io::Error::from_raw_os_error(err as i32),
                    ))
                };
            }
        }
    }
    Err(format!(
        "the kernel did not acknowledge the subscription to process events within {ACK_WAIT:?}"
    ))
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What the kernel's events say changed since the last scan, for the scan to read whole: the
/// processes that executed a program or changed their ids. Bounded: past [`MAX_CHANGED`] pids,
/// or when events were lost, or once events stop, the next scan reads everything.
#[derive(Debug)]
pub struct Changes {
    inner: Mutex<ChangedPids>,
    live: AtomicBool,
}

#[derive(Debug, Default)]
struct ChangedPids {
    pids: std::collections::HashSet<u32>,
    /// Something may have changed that `pids` does not name.
    everything: bool,
}

/// Changed pids remembered between two scans before the next scan simply reads everything.
pub const MAX_CHANGED: usize = 65_536;

impl Changes {
    /// Nothing noted yet; the first [`Changes::take`] asks for every process.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(ChangedPids {
                pids: std::collections::HashSet::new(),
                // The first scan reads everything.
                everything: true,
            }),
            live: AtomicBool::new(true),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChangedPids> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `pid` executed a program or changed its ids.
    pub fn note(&self, pid: u32) {
        let mut inner = self.lock();
        if inner.pids.len() >= MAX_CHANGED {
            inner.everything = true;
        } else {
            inner.pids.insert(pid);
        }
    }

    fn note_everything(&self) {
        self.lock().everything = true;
    }

    /// Takes what changed since the last call: `None` when the scan must read every process.
    pub fn take(&self) -> Option<std::collections::HashSet<u32>> {
        let mut inner = self.lock();
        let taken = std::mem::take(&mut *inner);
        (self.live.load(Ordering::Relaxed) && !taken.everything).then_some(taken.pids)
    }
}

/// Counts and state shared with health and the connections.
#[derive(Debug, Default)]
pub struct Stats {
    on: AtomicBool,
    detail: Mutex<String>,
    received: AtomicU64,
    pushed: AtomicU64,
    lost: AtomicU64,
    dropped: AtomicU64,
    last_drop_at: AtomicI64,
    last_drop_reason: Mutex<String>,
    queued: AtomicU64,
}

impl Stats {
    fn drop_events(&self, count: u64, reason: &str) {
        if count == 0 {
            return;
        }
        self.dropped.fetch_add(count, Ordering::Relaxed);
        self.last_drop_at.store(epoch_millis(), Ordering::Relaxed);
        let mut last = self
            .last_drop_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.as_str() != reason {
            reason.clone_into(&mut last);
        }
    }

    /// Health's view.
    pub fn health(&self) -> proto::ExecEventsHealth {
        let last = self.last_drop_at.load(Ordering::Relaxed);
        proto::ExecEventsHealth {
            on: self.on.load(Ordering::Relaxed),
            detail: self
                .detail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            received: self.received.load(Ordering::Relaxed),
            pushed: self.pushed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_drop_at: (last != 0).then_some(last),
            last_drop_reason: self
                .last_drop_reason
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The connection exec events are pushed on, with its next sequence number.
#[derive(Debug, Default)]
struct Subscriber {
    sender: Option<mpsc::Sender<proto::CollectorPush>>,
    next_sequence: u64,
    /// Whether an agent ever subscribed (before that, nothing is counted as dropped).
    ever: bool,
}

/// procmond's exec events: off with a reason, or on with threads running.
#[derive(Debug)]
pub struct ExecEvents {
    stats: Arc<Stats>,
    subscriber: Arc<Mutex<Subscriber>>,
    changes: Option<Arc<Changes>>,
}

impl ExecEvents {
    /// Exec events that are off, and why.
    pub fn off(detail: impl Into<String>) -> Self {
        let stats = Stats::default();
        *stats
            .detail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = detail.into();
        Self {
            stats: Arc::new(stats),
            subscriber: Arc::default(),
            changes: None,
        }
    }

    /// Starts the listener and the reader over an accepted subscription (after the privilege
    /// drop: the threads must not hold root's capabilities).
    pub fn start(
        subscription: Subscription,
        options: CollectorOptions,
        audit: Arc<AuditLog>,
    ) -> anyhow::Result<Self> {
        let clock = crate::linux::Clock::read()?;
        let stats = Arc::new(Stats::default());
        stats.on.store(true, Ordering::Relaxed);
        let subscriber: Arc<Mutex<Subscriber>> = Arc::default();
        let (queue_tx, queue_rx) = sync_channel::<Read>(QUEUE);
        let changes = Arc::new(Changes::new());
        {
            let stats = Arc::clone(&stats);
            let subscriber = Arc::clone(&subscriber);
            let options = options.clone();
            let changes = Arc::clone(&changes);
            std::thread::Builder::new()
                .name("exec-listen".to_owned())
                .spawn(move || {
                    let listener = Listener {
                        options: &options,
                        clock: &clock,
                        queue: &queue_tx,
                        stats: &stats,
                        subscriber: &subscriber,
                        changes: &changes,
                    };
                    listener.run(&subscription);
                    // Events have stopped: from now on every scan reads everything.
                    changes.live.store(false, Ordering::Relaxed);
                })?;
        }
        {
            let stats = Arc::clone(&stats);
            let subscriber = Arc::clone(&subscriber);
            std::thread::Builder::new()
                .name("exec-push".to_owned())
                .spawn(move || {
                    let mut reader = Pusher {
                        options,
                        hashes: HashCache::default(),
                        too_slow: std::collections::HashSet::new(),
                        stats,
                        subscriber,
                        audit,
                        ledgered_total: 0,
                        ledgered_at: None,
                    };
                    reader.run(&queue_rx);
                })?;
        }
        Ok(Self {
            stats,
            subscriber,
            changes: Some(changes),
        })
    }

    /// What changed since the last scan, while events flow (`None`: they are off).
    pub fn changes(&self) -> Option<Arc<Changes>> {
        self.changes.clone()
    }

    /// Whether events flow.
    pub fn is_on(&self) -> bool {
        self.stats.on.load(Ordering::Relaxed)
    }

    /// Health's view.
    pub fn health(&self) -> proto::ExecEventsHealth {
        self.stats.health()
    }

    /// Makes a connection the one events are pushed to (replacing any other): returns the
    /// queue its writer sends from.
    pub fn subscribe_connection(&self) -> mpsc::Receiver<proto::CollectorPush> {
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        let mut subscriber = self
            .subscriber
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscriber.sender = Some(tx);
        subscriber.next_sequence = 1;
        subscriber.ever = true;
        rx
    }
}

/// An exec read, waiting for its hash and its batch.
#[derive(Debug)]
struct Read {
    event: ProcessEvent,
    exe: Option<ExeRef>,
}

/// Turns the kernel's monotonic nanoseconds into Unix milliseconds.
struct Clock {
    /// Unix ms minus monotonic ms, measured at start.
    offset_ms: i64,
}

impl Clock {
    fn now() -> Self {
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000)
            .unwrap_or(0);
        Self {
            offset_ms: epoch_millis() - mono,
        }
    }

    fn to_epoch_ms(&self, ns: u64) -> i64 {
        self.offset_ms + i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX / 2)
    }
}

struct Listener<'a> {
    options: &'a CollectorOptions,
    clock: &'a crate::linux::Clock,
    queue: &'a SyncSender<Read>,
    stats: &'a Stats,
    subscriber: &'a Mutex<Subscriber>,
    changes: &'a Changes,
}

impl Listener<'_> {
    fn counting(&self) -> bool {
        self.subscriber
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ever
    }

    fn run(&self, subscription: &Subscription) {
        let stats = self.stats;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut forks: HashMap<u32, u32> = HashMap::new();
        let mut last_seq: HashMap<u32, u32> = HashMap::new();
        let mut clock = Clock::now();
        let mut clock_at = Instant::now();
        loop {
            buf.clear();
            match subscription.socket.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(err) if err.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    // The sequence numbers say how many; this only notes the cause.
                    tracing::warn!("the kernel's process event buffer overran");
                    self.changes.note_everything();
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "process events: receive failed; events are off");
                    stats.on.store(false, Ordering::Relaxed);
                    *stats
                        .detail
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        format!("receiving process events failed: {err}");
                    return;
                }
            }
            if clock_at.elapsed() > Duration::from_secs(60) {
                // Wall clock and monotonic clock drift apart (NTP, suspend): measure again.
                clock = Clock::now();
                clock_at = Instant::now();
            }
            for message in parse(&buf) {
                if let Some(previous) = last_seq.insert(message.cpu, message.seq) {
                    let gap = message.seq.wrapping_sub(previous).wrapping_sub(1);
                    // A huge gap is a counter reset (a CPU brought back online): not counted.
                    if gap > 0 {
                        // Whatever was lost may have been an exec: the next scan reads all.
                        self.changes.note_everything();
                    }
                    if gap > 0 && gap < 1 << 24 && self.counting() {
                        stats.drop_events(u64::from(gap), "the kernel's event buffer overran");
                    }
                }
                match message.event {
                    Event::Fork {
                        parent,
                        child,
                        thread: false,
                    } => {
                        if forks.len() >= FORKS_REMEMBERED {
                            forks.clear();
                        }
                        forks.insert(child, parent);
                    }
                    Event::Exit { pid } => {
                        forks.remove(&pid);
                    }
                    Event::Ids { pid } => self.changes.note(pid),
                    Event::Exec { pid, at_ns } => {
                        self.changes.note(pid);
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        let read =
                            self.read(pid, forks.get(&pid).copied(), clock.to_epoch_ms(at_ns));
                        // Counted before it is sent, so that the pusher never takes one
                        // that is not counted yet.
                        stats.queued.fetch_add(1, Ordering::Relaxed);
                        match self.queue.try_send(read) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                stats.queued.fetch_sub(1, Ordering::Relaxed);
                                if self.counting() {
                                    stats.drop_events(1, "procmond could not keep up with them");
                                }
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                    Event::Fork { .. } | Event::Ack { .. } | Event::Other => {}
                }
            }
        }
    }

    /// Reads one exec'd process; lost when it is gone (or a zombie whose command line went
    /// with its memory) before it could be read.
    fn read(&self, pid: u32, parent: Option<u32>, observed_at: i64) -> Read {
        let observed = crate::linux::observe_exec(pid, self.options, self.clock);
        // The command line is what an exec event is for: without it (the process exited, and
        // was perhaps reaped, before it could be read) the event is lost.
        let gone = observed.record.cmdline.is_none();
        let collected_at = epoch_millis();
        if gone {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            return Read {
                event: ProcessEvent {
                    event: EventKind::ExecLost,
                    record: ProcessRecord {
                        pid,
                        parent: observed.record.parent.or(parent),
                        collected_at,
                        ..ProcessRecord::default()
                    },
                    observed_at,
                },
                exe: None,
            };
        }
        Read {
            event: ProcessEvent {
                event: EventKind::Exec,
                record: ProcessRecord {
                    collected_at,
                    ..observed.record
                },
                observed_at,
            },
            exe: observed.exe,
        }
    }
}

struct Pusher {
    options: CollectorOptions,
    hashes: HashCache,
    /// Executables that could not be hashed within the budget.
    too_slow: std::collections::HashSet<FileKey>,
    stats: Arc<Stats>,
    subscriber: Arc<Mutex<Subscriber>>,
    audit: Arc<AuditLog>,
    ledgered_total: u64,
    ledgered_at: Option<Instant>,
}

impl Pusher {
    fn run(&mut self, queue: &Receiver<Read>) {
        let mut batch: Vec<ProcessEvent> = Vec::with_capacity(BATCH_MAX);
        let mut batch_started: Option<Instant> = None;
        let mut dropped_reported = 0u64;
        loop {
            #[cfg(debug_assertions)]
            hold_at_test_gate();
            let wait = batch_started.map_or(Duration::from_secs(1), |started| {
                BATCH_WAIT.saturating_sub(started.elapsed())
            });
            match queue.recv_timeout(wait) {
                Ok(read) => {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    let mut event = read.event;
                    if let Some(exe) = &read.exe {
                        // A process that has exited since leaves no /proc/PID/exe: the path
                        // it ran is checked against the same identity instead.
                        let by_path = event.record.path.as_deref().map(std::path::Path::new);
                        event.record.exe_sha256 =
                            self.hash(&exe.open_path, exe.key).or_else(|| {
                                let gone = !exe.open_path.exists();
                                by_path
                                    .filter(|_| gone)
                                    .and_then(|path| self.hash(path, exe.key))
                            });
                    }
                    batch.push(event);
                    batch_started.get_or_insert_with(Instant::now);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let due = batch.len() >= BATCH_MAX
                || batch_started.is_some_and(|started| started.elapsed() >= BATCH_WAIT);
            if due {
                let dropped = self.stats.dropped.load(Ordering::Relaxed);
                self.push(std::mem::take(&mut batch), dropped - dropped_reported);
                dropped_reported = dropped;
                batch_started = None;
            }
            self.ledger_drops();
        }
    }

    /// The executable's hash: from the cache, or read within [`HASH_BUDGET`]. A file that
    /// could not be hashed in time (too large, or the budget ran out) is not tried again by
    /// exec events, so that one large program run often cannot spend the pusher's time over
    /// and over: the scans, with their own budget, hash it.
    fn hash(&mut self, path: &std::path::Path, key: FileKey) -> Option<String> {
        if let Some(hash) = self.hashes.get(&key) {
            return Some(hash.to_owned());
        }
        if self.too_slow.contains(&key)
            || self.stats.queued.load(Ordering::Relaxed) >= HASH_WHEN_QUEUE_BELOW
        {
            return None;
        }
        match hash_file(
            path,
            key,
            self.options.hash_max_bytes,
            Instant::now() + HASH_BUDGET,
        ) {
            HashOutcome::Hashed(hex) => {
                if self.hashes.len() >= HASH_CACHE {
                    self.hashes = HashCache::default();
                }
                self.hashes.insert(key, hex.clone());
                Some(hex)
            }
            HashOutcome::TooLarge | HashOutcome::BudgetExhausted => {
                if self.too_slow.len() >= HASH_CACHE {
                    self.too_slow.clear();
                }
                self.too_slow.insert(key);
                None
            }
            HashOutcome::ChangedDuringRead | HashOutcome::Unreadable(_) => None,
        }
    }

    fn push(&mut self, batch: Vec<ProcessEvent>, dropped: u64) {
        if batch.is_empty() && dropped == 0 {
            return;
        }
        let count = batch.len() as u64;
        let mut subscriber = self
            .subscriber
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sender) = subscriber.sender.clone() else {
            if subscriber.ever {
                self.stats.drop_events(count, "no agent was listening");
            }
            return;
        };
        let push = proto::CollectorPush {
            sequence: subscriber.next_sequence,
            kind: Some(proto::collector_push::Kind::ExecEvents(
                proto::ExecEventBatch {
                    events: batch.iter().map(convert::exec_event_to_proto).collect(),
                    dropped,
                },
            )),
        };
        match sender.try_send(push) {
            Ok(()) => {
                subscriber.next_sequence += 1;
                self.stats.pushed.fetch_add(count, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                drop(subscriber);
                self.stats
                    .drop_events(count, "the agent did not take them fast enough");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                subscriber.sender = None;
                drop(subscriber);
                self.stats.drop_events(count, "no agent was listening");
            }
        }
    }

    /// Writes an `exec_events_dropped` entry when events were dropped since the last one and
    /// the last one is at least [`LEDGER_EVERY`] old.
    fn ledger_drops(&mut self) {
        let total = self.stats.dropped.load(Ordering::Relaxed);
        if total == self.ledgered_total
            || self
                .ledgered_at
                .is_some_and(|at| at.elapsed() < LEDGER_EVERY)
        {
            return;
        }
        let reason = self
            .stats
            .last_drop_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        tracing::warn!(
            dropped = total - self.ledgered_total,
            total,
            reason,
            "exec events dropped"
        );
        self.audit.record(Body::ExecEventsDropped {
            count: total - self.ledgered_total,
            total,
            reason,
        });
        self.ledgered_total = total;
        self.ledgered_at = Some(Instant::now());
    }
}

/// Debug builds only: while the file `DAEMONEYE_TEST_EXEC_GATE` names exists, the pusher
/// takes nothing from its queue (five minutes at most), so that an end-to-end test can make
/// procmond fall behind a storm of execs on any machine, however fast. Release builds contain
/// none of this.
#[cfg(debug_assertions)]
fn hold_at_test_gate() {
    let Some(gate) = std::env::var_os("DAEMONEYE_TEST_EXEC_GATE").map(std::path::PathBuf::from)
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while gate.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(what: u32, cpu: u32, seq: u32, fields: &[u32]) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&what.to_ne_bytes());
        data.extend_from_slice(&cpu.to_ne_bytes());
        data.extend_from_slice(&123_000_000u64.to_ne_bytes());
        for field in fields {
            data.extend_from_slice(&field.to_ne_bytes());
        }
        let mut cn = Vec::new();
        cn.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        cn.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        cn.extend_from_slice(&seq.to_ne_bytes());
        cn.extend_from_slice(&0u32.to_ne_bytes());
        cn.extend_from_slice(&(data.len() as u16).to_ne_bytes());
        cn.extend_from_slice(&0u16.to_ne_bytes());
        cn.extend_from_slice(&data);
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HDRLEN + cn.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&cn);
        out
    }

    #[test]
    fn fork_exec_exit_and_ack_are_read_from_their_kernel_layouts() {
        let mut datagram = message(PROC_EVENT_FORK, 1, 7, &[100, 100, 200, 200]);
        datagram.extend(message(PROC_EVENT_EXEC, 1, 8, &[200, 200]));
        datagram.extend(message(PROC_EVENT_EXIT, 0, 3, &[200, 200, 0, 17, 100, 100]));
        datagram.extend(message(PROC_EVENT_EXIT, 0, 4, &[201, 200, 0, 17, 100, 100]));
        datagram.extend(message(PROC_EVENT_FORK, 0, 5, &[100, 100, 202, 100]));
        datagram.extend(message(PROC_EVENT_NONE, 0, 6, &[1]));
        let events: Vec<(u32, u32, Event)> = parse(&datagram)
            .into_iter()
            .map(|m| (m.cpu, m.seq, m.event))
            .collect();
        assert_eq!(
            events,
            [
                (
                    1,
                    7,
                    Event::Fork {
                        parent: 100,
                        child: 200,
                        thread: false
                    }
                ),
                (
                    1,
                    8,
                    Event::Exec {
                        pid: 200,
                        at_ns: 123_000_000
                    }
                ),
                (0, 3, Event::Exit { pid: 200 }),
                (0, 4, Event::Other),
                (
                    0,
                    5,
                    Event::Fork {
                        parent: 100,
                        child: 100,
                        thread: true
                    }
                ),
                (0, 6, Event::Ack { err: 1 }),
            ]
        );
    }

    #[test]
    fn short_lying_or_foreign_messages_are_skipped_without_panicking() {
        let good = message(PROC_EVENT_EXEC, 0, 1, &[9, 9]);
        // Cut anywhere: never a panic, never a made-up event.
        for cut in 0..good.len() {
            let events = parse(&good[..cut]);
            assert!(events.is_empty(), "cut at {cut}: {events:?}");
        }
        // A netlink length beyond the datagram ends the parse.
        let mut lying = good.clone();
        lying[..4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(parse(&lying).is_empty());
        // A connector length beyond the message skips that message only.
        let mut long_cn = good.clone();
        long_cn[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&500u16.to_ne_bytes());
        long_cn.extend(message(PROC_EVENT_EXEC, 0, 2, &[10, 10]));
        assert_eq!(parse(&long_cn).len(), 1);
        // Another connector's message is not the process connector's.
        let mut foreign = good.clone();
        foreign[NLMSG_HDRLEN..NLMSG_HDRLEN + 4].copy_from_slice(&7u32.to_ne_bytes());
        assert!(parse(&foreign).is_empty());
        // Not NLMSG_DONE: skipped.
        let mut other_type = good;
        other_type[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse(&other_type).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn the_listen_message_has_the_kernels_layout() {
        let message = listen_message(42);
        assert_eq!(message.len(), 40);
        assert_eq!(u32_at(&message, 0), Some(40));
        assert_eq!(u16_at(&message, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&message, 12), Some(42));
        assert_eq!(u32_at(&message, 16), Some(CN_IDX_PROC));
        assert_eq!(u16_at(&message, 32), Some(4));
        assert_eq!(u32_at(&message, 36), Some(PROC_CN_MCAST_LISTEN));
    }
}
