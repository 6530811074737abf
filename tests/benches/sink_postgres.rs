//! Throughput of the PostgreSQL sink into a real PostgreSQL 15: alerts per second written
//! through `PostgresSink::deliver` in batches of 1000 (the sink's `max_batch`). The target is
//! 20,000 alerts per second.
//!
//! Scenario: a private server started by `daemoneye_e2e::postgres::TempPostgres` (PostgreSQL
//! 15 defaults, `fsync` on, `shared_buffers` 16 MB, loopback TCP, no TLS), one sink (one
//! agent), the table created by a warm-up batch. Each alert is about 600 bytes of JSON (one
//! matching row with a process's columns), distinct ids and times. Three rounds of 50 batches
//! of new alerts (50,000 rows each), then one round sending the last round's batches again
//! (every row a conflict: the cost of a redelivery). The timed part is `deliver` alone: the
//! sink's check of each payload, the statement and the commit; payloads are built before.
//!
//! Run: `cargo bench -p daemoneye-e2e --bench sink_postgres`.

use std::time::Instant;

use daemoneye_agent::outbox::postgres::PostgresSink;
use daemoneye_agent::outbox::{Delivery, Sink};
use daemoneye_e2e::postgres::TempPostgres;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;

const BATCH: u64 = 1000;
const BATCHES: u64 = 50;

fn alert(n: u64) -> (AlertId, Vec<u8>) {
    let id = AlertId::parse(&format!("{:032x}", n)).unwrap();
    let row = serde_json::json!({
        "pid": n % 4_000_000,
        "ppid": 1,
        "name": "kworker-update",
        "exe": "/tmp/.cache/kworker-update (deleted)",
        "cmdline": "/tmp/.cache/kworker-update --daemon --interval 60 --server 203.0.113.7:443",
        "uid": 0,
        "start_time": 1_796_000_000 + n,
    });
    let alert = Alert {
        id: id.clone(),
        rule_id: "DE-LNX-0001".into(),
        rule_name: "Process running from a deleted binary".into(),
        severity: Severity::ALL[usize::try_from(n % 5).unwrap()],
        mitre: vec!["T1070.004".into(), "T1036".into()],
        host: format!("web-{}", n % 50),
        site: Some("plant-7".into()),
        scan_id: i64::try_from(n / 100).unwrap(),
        detected_at: daemoneye_lib::text::format_time_ms(
            1_796_000_000_000 + i64::try_from(n).unwrap(),
        ),
        dedup_key: format!("[{n}]"),
        suppressed: 0,
        rows: vec![row.as_object().unwrap().clone()],
        summary: format!("Process running from a deleted binary: pid={n} name=kworker-update"),
    };
    (id, alert.canonical_bytes())
}

/// Delivers `batches` and returns the rows per second.
fn round(sink: &mut PostgresSink, batches: &[Vec<(AlertId, Vec<u8>)>]) -> f64 {
    let started = Instant::now();
    for batch in batches {
        let deliveries: Vec<Delivery<'_>> = batch
            .iter()
            .map(|(alert_id, payload)| Delivery { alert_id, payload })
            .collect();
        sink.deliver(&deliveries).unwrap();
    }
    let rows = batches.iter().map(Vec::len).sum::<usize>() as f64;
    rows / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: one small round
    // then, to prove it works without spending the time.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let server = TempPostgres::start();
    let mut sink = PostgresSink::from_config(&SinkConfig {
        name: "bench".into(),
        kind: SinkKind::Postgres,
        options: [
            ("url".to_owned(), serde_json::json!(server.sink_url())),
            ("tls".to_owned(), serde_json::json!("disable")),
            ("timeout".to_owned(), serde_json::json!("60s")),
        ]
        .into_iter()
        .collect(),
    })
    .unwrap();
    let batches_per_round = if quick { 2 } else { BATCHES };
    let make = |round: u64| -> Vec<Vec<(AlertId, Vec<u8>)>> {
        (0..batches_per_round)
            .map(|b| {
                let first = (round * batches_per_round + b) * BATCH;
                (first..first + BATCH).map(alert).collect()
            })
            .collect()
    };
    let payload_bytes = alert(0).1.len();
    round(&mut sink, &make(1000)[..1]);
    let mut rates = Vec::new();
    let mut last = Vec::new();
    for r in 0..3 {
        last = make(r);
        rates.push(round(&mut sink, &last));
    }
    let again = round(&mut sink, &last);
    let rows: i64 = server
        .client()
        .query_one("SELECT count(*) FROM daemoneye_alerts", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        rows,
        i64::try_from(3 * batches_per_round * BATCH + BATCH).unwrap()
    );
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "postgres sink: batches of {BATCH}, alerts of {payload_bytes} bytes, {batches_per_round} batches a round"
    );
    for (r, rate) in rates.iter().enumerate() {
        println!("  round {}: {rate:.0} new alerts/s", r + 1);
    }
    println!("  median: {:.0} new alerts/s (target 20000)", sorted[1]);
    println!("  redelivery of a round (all conflicts): {again:.0} alerts/s");
}
