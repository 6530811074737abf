//! The PostgreSQL sink against a real PostgreSQL 15 ([`TempPostgres`]): the documented table,
//! one row per alert whatever is sent twice or by two agents at once, a server killed and
//! started again under delivery, TLS with the right and a wrong CA, credentials refused, and
//! a row the server refuses rejected alone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use daemoneye_agent::outbox::postgres::PostgresSink;
use daemoneye_agent::outbox::{BatchError, Delivery, Sink, SinkError};
use daemoneye_e2e::postgres::{
    PASSWORD, PASSWORD_ROLE, StopMode, TempPostgres, write_unrelated_ca,
};
use daemoneye_e2e::wait_for;
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;

/// One alert as the outbox holds it: its id and its canonical bytes.
struct Queued {
    id: AlertId,
    payload: Vec<u8>,
}

/// Alert `n` of host `host` (index `h`): distinct ids and times per host and number.
fn queued(h: u64, n: u64, severity: Severity) -> Queued {
    queued_at(
        h,
        n,
        severity,
        1_796_000_000_000 + i64::try_from(n).unwrap() * 1000,
    )
}

/// [`queued`] detected at `time_ms`.
fn queued_at(h: u64, n: u64, severity: Severity, time_ms: i64) -> Queued {
    let id = AlertId::parse(&format!("{h:016x}{n:016x}")).unwrap();
    let alert = Alert {
        id: id.clone(),
        rule_id: format!("DE-LNX-{:04}", n % 7),
        rule_name: "Deleted binary".into(),
        severity,
        mitre: vec!["T1070.004".into()],
        host: format!("host-{h}"),
        site: h.is_multiple_of(2).then(|| "plant-7".to_owned()),
        scan_id: i64::try_from(n).unwrap(),
        detected_at: daemoneye_lib::text::format_time_ms(time_ms),
        dedup_key: format!("[{n}]"),
        suppressed: 0,
        rows: vec![serde_json::Map::from_iter([("pid".to_owned(), n.into())])],
        summary: format!("Deleted binary: pid={n}"),
    };
    Queued {
        id,
        payload: alert.canonical_bytes(),
    }
}

fn host_alerts(h: u64, count: u64) -> Vec<Queued> {
    (0..count)
        .map(|n| queued(h, n, Severity::ALL[usize::try_from(n % 5).unwrap()]))
        .collect()
}

fn sink(name: &str, options: serde_json::Value) -> PostgresSink {
    PostgresSink::from_config(&SinkConfig {
        name: name.into(),
        kind: SinkKind::Postgres,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    })
    .unwrap()
}

fn plain_sink(server: &TempPostgres, name: &str) -> PostgresSink {
    sink(
        name,
        serde_json::json!({"url": server.sink_url(), "tls": "disable", "timeout": "30s"}),
    )
}

fn deliver(sink: &mut PostgresSink, alerts: &[Queued]) -> Result<(), BatchError> {
    let batch: Vec<Delivery<'_>> = alerts
        .iter()
        .map(|q| Delivery {
            alert_id: &q.id,
            payload: &q.payload,
        })
        .collect();
    sink.deliver(&batch)
}

/// Delivers `alerts` as the outbox loop would: a retry sends the same batch again, after a
/// pause; every retry's reason is kept. Panics on anything but a retry, or after a bound.
fn deliver_until_done(sink: &mut PostgresSink, alerts: &[Queued], reasons: &Mutex<Vec<String>>) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match deliver(sink, alerts) {
            Ok(()) => return,
            Err(BatchError {
                acknowledged: 0,
                error: SinkError::Retry { reason },
            }) => reasons.lock().unwrap().push(reason),
            Err(other) => panic!("want success or a retry, got {other:?}"),
        }
        assert!(Instant::now() < deadline, "the batch never got through");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(server: &TempPostgres, sql: &str) -> i64 {
    server.client().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn batches_land_in_the_documented_table_and_a_batch_sent_twice_is_one_row_each() {
    let server = TempPostgres::start();
    let mut sink = plain_sink(&server, "central");
    let alerts = host_alerts(1, 1501);
    deliver(&mut sink, &alerts[..1000]).unwrap();
    deliver(&mut sink, &alerts[1000..1500]).unwrap();
    deliver(&mut sink, &alerts[1500..]).unwrap();
    assert_eq!(
        count(&server, "SELECT count(*) FROM daemoneye_alerts"),
        1501
    );

    // The same batches again, and a batch holding one alert twice: no new row.
    deliver(&mut sink, &alerts[..1000]).unwrap();
    deliver(&mut sink, &alerts[1000..]).unwrap();
    deliver(
        &mut sink,
        &[queued(1, 3, Severity::Low), queued(1, 3, Severity::Low)],
    )
    .unwrap();
    assert_eq!(
        count(&server, "SELECT count(*) FROM daemoneye_alerts"),
        1501
    );

    let mut client = server.client();
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns WHERE table_name = 'daemoneye_alerts' \
             ORDER BY ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let want = [
        ("id", "text", "NO"),
        ("detected_at", "timestamp with time zone", "NO"),
        ("host", "text", "NO"),
        ("site", "text", "YES"),
        ("rule_id", "text", "NO"),
        ("severity", "text", "NO"),
        ("alert", "jsonb", "NO"),
        ("received_at", "timestamp with time zone", "NO"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(columns, want);
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'daemoneye_alerts' ORDER BY indexdef",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for want in [
        "UNIQUE INDEX",
        "btree (detected_at)",
        "btree (host, detected_at)",
        "btree (id, detected_at)",
    ] {
        assert!(
            indexes.iter().any(|index| index.contains(want)),
            "no index with {want:?} in {indexes:#?}"
        );
    }
    let version: i32 = client
        .query_one(
            "SELECT version FROM daemoneye_schema WHERE component = 'daemoneye_alerts'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, 1);

    // One row read back: the columns are the alert's, the jsonb the whole alert.
    let row = client
        .query_one(
            "SELECT host, site, rule_id, severity, \
                    to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                    alert->>'summary', alert::text \
             FROM daemoneye_alerts WHERE id = $1",
            &[&alerts[42].id.as_str()],
        )
        .unwrap();
    let alert: Alert = serde_json::from_slice(&alerts[42].payload).unwrap();
    assert_eq!(row.get::<_, String>(0), alert.host);
    assert_eq!(row.get::<_, Option<String>>(1), alert.site);
    assert_eq!(row.get::<_, String>(2), alert.rule_id);
    assert_eq!(row.get::<_, String>(3), alert.severity.as_str());
    assert_eq!(row.get::<_, String>(4), alert.detected_at);
    assert_eq!(row.get::<_, String>(5), alert.summary);
    let stored: Alert = serde_json::from_str(&row.get::<_, String>(6)).unwrap();
    assert_eq!(stored, alert);
}

#[test]
fn two_agents_delivering_at_once_write_every_alert_exactly_once() {
    let server = TempPostgres::start();
    // Each agent sends its own host's alerts and, interleaved, a set both send (the worst
    // case for the unique key), starting together on a database without the table.
    let shared = Arc::new(host_alerts(9, 600));
    let start = Arc::new(Barrier::new(2));
    let agents: Vec<_> = [1_u64, 2]
        .into_iter()
        .map(|h| {
            let mut sink = plain_sink(&server, &format!("agent{h}"));
            let shared = Arc::clone(&shared);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let own = host_alerts(h, 1500);
                let reasons = Mutex::new(Vec::new());
                start.wait();
                for (i, chunk) in own.chunks(250).enumerate() {
                    deliver_until_done(&mut sink, chunk, &reasons);
                    let shared_chunk = if h == 1 {
                        &shared[i * 100..(i + 1) * 100]
                    } else {
                        &shared[(5 - i) * 100..(6 - i) * 100]
                    };
                    deliver_until_done(&mut sink, shared_chunk, &reasons);
                }
            })
        })
        .collect();
    for agent in agents {
        agent.join().unwrap();
    }
    assert_eq!(
        count(&server, "SELECT count(*) FROM daemoneye_alerts"),
        1500 + 1500 + 600
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM (SELECT DISTINCT id, detected_at FROM daemoneye_alerts) d"
        ),
        3600
    );
    for (host, want) in [("host-1", 1500), ("host-2", 1500), ("host-9", 600)] {
        let got: i64 = server
            .client()
            .query_one(
                "SELECT count(*) FROM daemoneye_alerts WHERE host = $1",
                &[&host],
            )
            .unwrap()
            .get(0);
        assert_eq!(got, want, "{host}");
    }
}

#[test]
fn a_database_killed_during_delivery_is_retried_and_every_alert_lands_once() {
    let mut server = TempPostgres::start();
    let port = server.port();
    let mut sink = sink(
        "central",
        serde_json::json!({"url": server.sink_url(), "tls": "disable", "timeout": "5s"}),
    );
    // Batches go one after another until five more went after the restart: the server is
    // killed while deliveries are under way, whatever the machine's speed.
    let delivered = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let reasons = Arc::new(Mutex::new(Vec::<String>::new()));
    let delivering = {
        let delivered = Arc::clone(&delivered);
        let restarted = Arc::clone(&restarted);
        let reasons = Arc::clone(&reasons);
        std::thread::spawn(move || {
            let mut after_restart = 0;
            for batch in 0_u64.. {
                let alerts: Vec<Queued> = (batch * 200..(batch + 1) * 200)
                    .map(|n| queued(1, n, Severity::High))
                    .collect();
                deliver_until_done(&mut sink, &alerts, &reasons);
                delivered.fetch_add(1, Ordering::SeqCst);
                if restarted.load(Ordering::SeqCst) {
                    after_restart += 1;
                    if after_restart == 5 {
                        break;
                    }
                }
            }
        })
    };
    wait_for("some batches delivered", Duration::from_secs(120), || {
        (delivered.load(Ordering::SeqCst) >= 3).then_some(())
    });
    server.stop(StopMode::Immediate);
    wait_for("the sink to retry", Duration::from_secs(120), || {
        (!reasons.lock().unwrap().is_empty()).then_some(())
    });
    let while_down = reasons.lock().unwrap().len();
    wait_for(
        "a retry that found the server down",
        Duration::from_secs(120),
        || (reasons.lock().unwrap().len() > while_down).then_some(()),
    );
    server.restart();
    restarted.store(true, Ordering::SeqCst);
    delivering.join().unwrap();
    let total = i64::try_from(delivered.load(Ordering::SeqCst) * 200).unwrap();
    let reasons = reasons.lock().unwrap();
    for reason in reasons.iter() {
        assert!(
            reason.starts_with(&format!("postgresql 127.0.0.1:{port}/daemoneye: ")),
            "{reason}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("cannot connect") && reason.contains("refused")),
        "no retry says the connection was refused: {reasons:#?}"
    );
    assert_eq!(
        count(&server, "SELECT count(*) FROM daemoneye_alerts"),
        total
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM (SELECT DISTINCT id, detected_at FROM daemoneye_alerts) d"
        ),
        total
    );
}

#[test]
fn a_server_restarted_between_batches_costs_no_retry() {
    let mut server = TempPostgres::start();
    let mut sink = plain_sink(&server, "central");
    let alerts = host_alerts(1, 30);
    deliver(&mut sink, &alerts[..10]).unwrap();
    // The sink still holds the connection of the first batch: the server ended it.
    server.stop(StopMode::Fast);
    server.restart();
    deliver(&mut sink, &alerts[10..20]).unwrap();
    server.stop(StopMode::Immediate);
    server.restart();
    deliver(&mut sink, &alerts[20..]).unwrap();
    assert_eq!(count(&server, "SELECT count(*) FROM daemoneye_alerts"), 30);
}

#[test]
fn tls_with_the_servers_ca_delivers_encrypted_and_a_wrong_ca_is_a_retry_naming_tls() {
    let server = TempPostgres::start_tls();
    let mut good = sink(
        "central",
        serde_json::json!({
            "url": server.sink_url(),
            "tls": "require",
            "ca_file": server.ca_file(),
        }),
    );
    deliver(&mut good, &host_alerts(1, 10)).unwrap();
    assert_eq!(count(&server, "SELECT count(*) FROM daemoneye_alerts"), 10);
    // The sink keeps its session open: the server says it is encrypted.
    let ssl: Vec<bool> = server
        .client()
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'daemoneye-agent/central'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ssl, [true]);

    // "prefer" with the right CA takes TLS too.
    let mut prefer = sink(
        "preferring",
        serde_json::json!({"url": server.sink_url(), "ca_file": server.ca_file()}),
    );
    deliver(&mut prefer, &host_alerts(2, 10)).unwrap();
    let ssl: bool = server
        .client()
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'daemoneye-agent/preferring'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ssl);

    let wrong_ca = server.dir().join("wrong-ca.pem");
    write_unrelated_ca(&wrong_ca);
    for mode in ["require", "prefer"] {
        let mut wrong = sink(
            "wrong",
            serde_json::json!({"url": server.sink_url(), "tls": mode, "ca_file": &wrong_ca}),
        );
        let err = deliver(&mut wrong, &host_alerts(3, 10)).unwrap_err();
        assert_eq!(err.acknowledged, 0);
        match err.error {
            SinkError::Retry { reason } => {
                assert!(reason.contains("TLS handshake failed"), "{reason}");
                assert!(reason.contains("UnknownIssuer"), "{reason}");
            }
            other => panic!("want a retry, got {other:?}"),
        }
    }
    assert_eq!(count(&server, "SELECT count(*) FROM daemoneye_alerts"), 20);
}

#[test]
fn refused_credentials_and_a_missing_database_give_up_and_the_right_password_delivers() {
    let server = TempPostgres::start();
    let password_file = server.dir().join("password");
    let with_password = |password: &str, database: &str| {
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        sink(
            "central",
            serde_json::json!({
                "url": server.url(PASSWORD_ROLE, database),
                "tls": "disable",
                "password_file": &password_file,
            }),
        )
    };
    let give_up = |mut sink: PostgresSink, code: &str| {
        let err = deliver(&mut sink, &host_alerts(1, 3)).unwrap_err();
        assert_eq!(err.acknowledged, 0);
        match err.error {
            SinkError::GiveUp { reason } => assert!(reason.contains(code), "{reason}"),
            other => panic!("want to give up with {code}, got {other:?}"),
        }
    };
    give_up(with_password("wrong", "daemoneye"), "28P01");
    give_up(with_password(PASSWORD, "no_such_database"), "3D000");
    let mut right = with_password(PASSWORD, "daemoneye");
    deliver(&mut right, &host_alerts(1, 3)).unwrap();
    assert_eq!(count(&server, "SELECT count(*) FROM daemoneye_alerts"), 3);
}

#[test]
fn a_row_the_server_refuses_is_the_only_one_rejected() {
    let server = TempPostgres::start();
    let mut sink = plain_sink(&server, "central");
    let mut alerts = host_alerts(1, 5);
    // A valid alert PostgreSQL cannot store: jsonb has no U+0000 in a string.
    let mut bad: Alert = serde_json::from_slice(&alerts[2].payload).unwrap();
    bad.summary = "nul \u{0} inside".into();
    alerts[2].payload = bad.canonical_bytes();
    let err = deliver(&mut sink, &alerts).unwrap_err();
    assert_eq!(err.acknowledged, 2);
    match &err.error {
        SinkError::Reject { reason } => assert!(reason.contains(" 22"), "{reason}"),
        other => panic!("want a rejection, got {other:?}"),
    }
    // The loop dead-letters the bad one and sends the rest.
    deliver(&mut sink, &alerts[3..]).unwrap();
    let ids: Vec<String> = server
        .client()
        .query("SELECT id FROM daemoneye_alerts ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let want: Vec<String> = [0, 1, 3, 4]
        .iter()
        .map(|&i| alerts[i].id.as_str().to_owned())
        .collect();
    assert_eq!(ids, want);
}

/// The `sql` blocks of the documentation's section `## Queries for the SOC`, one statement each.
fn documented_queries() -> Vec<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sinks/postgres.md"),
    )
    .unwrap();
    let section = doc
        .split("## Queries for the SOC")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    section
        .split("```sql\n")
        .skip(1)
        .flat_map(|block| {
            block
                .split("```")
                .next()
                .unwrap()
                .split(";\n")
                .map(str::trim)
                .filter(|statement| !statement.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_documented_soc_queries_run_and_the_first_counts_by_severity_and_host() {
    let server = TempPostgres::start();
    let mut sink = plain_sink(&server, "central");
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    // Hosts 2 and 4 are of the site plant-7, host 3 of none; the last alert of each host
    // is two days old.
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for h in [2_u64, 3, 4] {
        let alerts: Vec<Queued> = (0..20_u64)
            .map(|n| {
                let severity = Severity::ALL[usize::try_from((n + h) % 5).unwrap()];
                let age_ms = if n == 19 {
                    2 * 86_400_000
                } else {
                    i64::try_from(n).unwrap() * 60_000
                };
                if h != 3 && n != 19 {
                    *want
                        .entry((severity.as_str().to_owned(), format!("host-{h}")))
                        .or_default() += 1;
                }
                queued_at(h, n, severity, now_ms - age_ms)
            })
            .collect();
        deliver(&mut sink, &alerts).unwrap();
    }
    let queries = documented_queries();
    assert_eq!(queries.len(), 5, "{queries:#?}");
    let mut client = server.client();
    for query in &queries {
        client
            .query(query.as_str(), &[])
            .unwrap_or_else(|err| panic!("{query}: {err}"));
    }
    let rows = client.query(queries[0].as_str(), &[]).unwrap();
    let got: Vec<(String, String, i64)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let order = |severity: &str| {
        ["critical", "high", "medium", "low", "info"]
            .iter()
            .position(|s| *s == severity)
            .unwrap()
    };
    let mut expected: Vec<(String, String, i64)> = want
        .into_iter()
        .map(|((severity, host), count)| (severity, host, count))
        .collect();
    expected.sort_by(|a, b| {
        order(&a.0)
            .cmp(&order(&b.0))
            .then(b.2.cmp(&a.2))
            .then(a.1.cmp(&b.1))
    });
    assert_eq!(got, expected);
}

#[test]
fn a_table_the_dba_created_needs_only_insert_and_select_on_the_key_and_without_them_the_sink_gives_up()
 {
    use daemoneye_agent::outbox::postgres::schema::{create_schema_table_sql, create_sql};
    let server = TempPostgres::start();
    // The documentation's way without CREATE for the agents: the DBA runs the DDL, writes
    // the version row and grants SELECT on the versions; INSERT (and SELECT on the
    // key's columns, which ON CONFLICT reads) comes later.
    let mut admin = server.client();
    admin
        .batch_execute(&format!(
            "{}\n{}\n\
             INSERT INTO daemoneye_schema (component, version) VALUES ('daemoneye_alerts', 1);\n\
             REVOKE CREATE ON SCHEMA public FROM {PASSWORD_ROLE};\n\
             GRANT SELECT ON daemoneye_schema TO {PASSWORD_ROLE};",
            create_schema_table_sql(),
            create_sql("daemoneye_alerts")
        ))
        .unwrap();
    let password_file = server.dir().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let mut sink = sink(
        "central",
        serde_json::json!({
            "url": server.url(PASSWORD_ROLE, "daemoneye"),
            "tls": "disable",
            "password_file": &password_file,
        }),
    );
    let alerts = host_alerts(1, 3);
    let err = deliver(&mut sink, &alerts).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match err.error {
        SinkError::GiveUp { reason } => assert!(reason.contains("42501"), "{reason}"),
        other => panic!("want to give up with 42501, got {other:?}"),
    }
    admin
        .batch_execute(&format!(
            "GRANT INSERT, SELECT (id, detected_at) ON daemoneye_alerts TO {PASSWORD_ROLE}"
        ))
        .unwrap();
    deliver(&mut sink, &alerts).unwrap();
    deliver(&mut sink, &alerts).unwrap();
    assert_eq!(count(&server, "SELECT count(*) FROM daemoneye_alerts"), 3);
}
