//! The outbox's throughput and latency, as the agent drives it: alerts enqueued in the
//! store's write units (as scans enqueue them), one delivery loop per sink, each batch
//! answered in its own transaction.
//!
//! `cargo bench -p daemoneye-agent --bench outbox` (a bench binary with two scenarios, not
//! criterion: what is measured is a stream, not one call):
//!
//! - **throughput**: 20,000 alerts of about 1 KiB (a real alert's shape: a rule's rows with
//!   process columns) enqueued in write units of 100 (a scan that raised 100 alerts) while
//!   the sink's loop delivers; the time from the first enqueue to the last delivery
//!   acknowledged gives alerts per second. Sinks: `file` (JSON lines, fdatasync per batch of
//!   256) and `webhook` (one POST per alert, HMAC-signed, to a loopback HTTP/1.1 server in
//!   this binary that reads each request and answers `200` on a kept-alive connection).
//! - **latency**: 2,000 alerts enqueued one per write unit, 500 per second; for each, the
//!   time from the enqueue's commit to its sink acknowledging it: p50, p99, max.
//!
//! Each scenario runs in a fresh store in a temporary directory (on the same disk as the
//! target directory).

// Benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemoneye_agent::outbox::deliver::{Loops, Outbox, Timing};
use daemoneye_agent::outbox::file::{FileConfig, FileSink};
use daemoneye_agent::outbox::format::Encoding;
use daemoneye_agent::outbox::retry::{Backoff, BreakerConfig};
use daemoneye_agent::outbox::webhook::WebhookSink;
use daemoneye_agent::outbox::{BatchError, Delivery, Sink};
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;
use daemoneye_lib::storage::{OutboxLimits, Store};

/// Wraps a sink and notes when each alert was acknowledged.
struct Timed<S> {
    inner: S,
    acked: Arc<Mutex<HashMap<String, Instant>>>,
}

impl<S: Sink> Sink for Timed<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let result = self.inner.deliver(batch);
        let done = Instant::now();
        let acknowledged = match &result {
            Ok(()) => batch.len(),
            Err(err) => err.acknowledged,
        };
        let mut acked = self.acked.lock().unwrap();
        for delivery in &batch[..acknowledged] {
            acked.insert(delivery.alert_id.to_string(), done);
        }
        result
    }

    fn max_batch(&self) -> Option<usize> {
        self.inner.max_batch()
    }
}

fn alert(n: u64) -> Alert {
    let rows = (0..3)
        .map(|row| {
            let mut map = serde_json::Map::new();
            map.insert("pid".into(), (10_000 + n * 3 + row).into());
            map.insert("name".into(), "python3".into());
            map.insert(
                "cmdline".into(),
                format!("python3 -c import socket,subprocess,os; s=socket.socket() # {n}").into(),
            );
            map.insert("path".into(), "/tmp/.x/python3".into());
            map.insert("uid".into(), 1000.into());
            map
        })
        .collect();
    Alert {
        id: AlertId::parse(&format!("{n:032x}")).unwrap(),
        rule_id: "DE-LNX-0002".into(),
        rule_name: "Interpreter with a reverse-shell command line".into(),
        severity: Severity::High,
        mitre: vec!["T1059.006".into()],
        host: "bench-host".into(),
        site: Some("plant-7".into()),
        scan_id: i64::try_from(n / 100).unwrap(),
        detected_at: "2026-12-03T10:00:00.000Z".into(),
        dedup_key: format!("[{n}]"),
        suppressed: 0,
        rows,
        summary: format!("Interpreter with a reverse-shell command line: pid={n}"),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    outbox: Outbox,
    acked: Arc<Mutex<HashMap<String, Instant>>>,
}

fn rig(kind: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("events.redb"), 4 << 20).unwrap());
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let sink: Box<dyn Sink> = match kind {
        "file" => Box::new(Timed {
            inner: FileSink::new(
                "bench",
                FileConfig::new(dir.path().join("alerts.jsonl"), Encoding::Json),
            ),
            acked: Arc::clone(&acked),
        }),
        "webhook" => {
            let port = loopback_http_server();
            let secret = dir.path().join("secret");
            std::fs::write(&secret, "a webhook signing key of 32 byte").unwrap();
            let spec = SinkConfig {
                name: "bench".into(),
                kind: SinkKind::Webhook,
                options: serde_json::from_value(serde_json::json!({
                    "url": format!("http://127.0.0.1:{port}/alerts"),
                    "hmac_secret_file": secret,
                }))
                .unwrap(),
            };
            Box::new(Timed {
                inner: WebhookSink::from_config(&spec).unwrap(),
                acked: Arc::clone(&acked),
            })
        }
        other => panic!("unknown sink {other}"),
    };
    let (notes, mut notes_rx) = tokio::sync::mpsc::unbounded_channel();
    // The ledger task's part: notes are drained, as the agent's task would.
    std::thread::spawn(move || while notes_rx.blocking_recv().is_some() {});
    let outbox = Outbox::new(vec!["bench".into()], OutboxLimits::default(), notes);
    let loops = Loops {
        store: Arc::clone(&store),
        timing: Timing {
            batch: 256,
            backoff: Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            breaker: BreakerConfig::default(),
        },
        gate: Arc::new(|_: &str| Ok(())),
    };
    let spec = SinkConfig {
        name: "bench".into(),
        kind: if kind == "webhook" {
            SinkKind::Webhook
        } else {
            SinkKind::File
        },
        options: BTreeMap::new(),
    };
    outbox.start(vec![(spec, sink)], &loops).unwrap();
    Rig {
        _dir: dir,
        store,
        outbox,
        acked,
    }
}

impl Rig {
    fn enqueue(&self, alerts: &[Alert]) -> Instant {
        let limits = self.outbox.limits().clone();
        self.store
            .write("bench", |w| {
                for alert in alerts {
                    w.enqueue(&["bench"], &alert.id, &alert.canonical_bytes(), 0, &limits)?;
                }
                Ok(())
            })
            .unwrap();
        let committed = Instant::now();
        self.outbox.wake();
        committed
    }

    fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.acked.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "deliveries did not finish");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A minimal HTTP/1.1 receiver on loopback: each connection on a thread of its own, each
/// request read whole (headers, then `Content-Length` bytes) and answered `200`.
fn loopback_http_server() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    port
}

fn throughput(kind: &str) {
    const ALERTS: u64 = 20_000;
    let rig = rig(kind);
    let alerts: Vec<Alert> = (0..ALERTS).map(alert).collect();
    let bytes: usize = alerts.iter().map(|a| a.canonical_bytes().len()).sum();
    let start = Instant::now();
    for chunk in alerts.chunks(100) {
        rig.enqueue(chunk);
    }
    let enqueued = start.elapsed();
    rig.wait_for(usize::try_from(ALERTS).unwrap());
    let elapsed = start.elapsed();
    println!(
        "outbox/{kind}/throughput: {ALERTS} alerts ({} bytes each on average) in {:.2} s: \
         {:.0} alerts/s delivered (enqueueing alone: {:.0} alerts/s)",
        bytes / alerts.len(),
        elapsed.as_secs_f64(),
        ALERTS as f64 / elapsed.as_secs_f64(),
        ALERTS as f64 / enqueued.as_secs_f64()
    );
    rig.outbox.stop();
}

fn latency(kind: &str) {
    const ALERTS: u64 = 2_000;
    let rig = rig(kind);
    let mut committed = HashMap::new();
    let period = Duration::from_millis(2);
    let start = Instant::now();
    for n in 0..ALERTS {
        let alert = alert(1_000_000 + n);
        let at = rig.enqueue(std::slice::from_ref(&alert));
        committed.insert(alert.id.to_string(), at);
        let next = start + period * u32::try_from(n + 1).unwrap();
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    rig.wait_for(usize::try_from(ALERTS).unwrap());
    let acked = rig.acked.lock().unwrap();
    let mut micros: Vec<u128> = committed
        .iter()
        .map(|(id, at)| acked[id].saturating_duration_since(*at).as_micros())
        .collect();
    micros.sort_unstable();
    let pct = |p: usize| micros[(micros.len() * p / 100).min(micros.len() - 1)] as f64 / 1000.0;
    println!(
        "outbox/{kind}/latency: {ALERTS} alerts at 500/s, commit to acknowledgement: p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        pct(50),
        pct(99),
        *micros.last().unwrap() as f64 / 1000.0
    );
    drop(acked);
    rig.outbox.stop();
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: a quick smoke only.
    let bench = std::env::args().any(|arg| arg == "--bench");
    if !bench {
        return;
    }
    for kind in ["file", "webhook"] {
        throughput(kind);
        latency(kind);
    }
}
