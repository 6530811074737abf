//! Unit tests of the PostgreSQL sink that need no server: the keys checked at build, the
//! error classes, and the deadline on a peer that accepts and never answers. The tests
//! against a real PostgreSQL are in `tests/tests/sink_postgres.rs`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use daemoneye_lib::config::SinkKind;
use daemoneye_lib::ids::AlertId;

use super::schema::{create_sql, insert_sql};
use super::*;

fn sink_config(options: serde_json::Value) -> SinkConfig {
    SinkConfig {
        name: "central".into(),
        kind: SinkKind::Postgres,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    }
}

fn build_error(options: serde_json::Value) -> String {
    PostgresSink::from_config(&sink_config(options))
        .expect_err("the build should fail")
        .to_string()
}

#[test]
fn table_names_are_lowercase_identifiers_of_at_most_63_characters() {
    for good in ["daemoneye_alerts", "_x", "a", "a1_2", &"a".repeat(63)] {
        assert!(valid_table(good), "{good}");
    }
    for bad in [
        "",
        "1a",
        "Alerts",
        "a-b",
        "a b",
        "a\"b",
        "public.alerts",
        "é",
        &"a".repeat(64),
    ] {
        assert!(!valid_table(bad), "{bad}");
    }
}

#[test]
fn the_keys_are_checked_at_build_with_one_line_errors() {
    let check = |options: serde_json::Value, want: &str| {
        let err = build_error(options);
        assert!(err.starts_with("sinks.central: "), "{err}");
        assert!(err.contains(want), "{err} should contain {want:?}");
        assert!(!err.contains('\n'), "{err}");
    };
    check(
        serde_json::json!({"url": "postgresql://u:hunter2@db/x", "tls": "disable"}),
        "password_file",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x?password=hunter2", "tls": "disable"}),
        "password",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x?sslmode=disable", "tls": "disable"}),
        "sslmode",
    );
    check(
        serde_json::json!({"url": "host=db user=u", "tls": "disable"}),
        "postgresql:// URL",
    );
    check(
        serde_json::json!({"url": "postgresql://db/x", "tls": "disable"}),
        "names no user",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "table": "Robert\"; DROP TABLE x; --"}),
        "table:",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "table": "daemoneye_schema"}),
        "table:",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "timeout": "1ms"}),
        "timeout:",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "sometimes"}),
        "sometimes",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "ca_file": "/x.pem"}),
        "tls = ",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "require", "ca_file": "/nonexistent/ca.pem"}),
        "ca_file",
    );
    check(
        serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "colour": "red"}),
        "colour",
    );
}

#[test]
fn the_password_file_is_one_bounded_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    let options = |path: &std::path::Path| serde_json::json!({"url": "postgresql://u@db/x", "tls": "disable", "password_file": path});
    std::fs::write(&file, "s3cret\n").unwrap();
    let sink = PostgresSink::from_config(&sink_config(options(&file))).unwrap();
    assert_eq!(sink.config.get_password(), Some(&b"s3cret"[..]));
    std::fs::write(&file, "s3cret\r\n").unwrap();
    let sink = PostgresSink::from_config(&sink_config(options(&file))).unwrap();
    assert_eq!(sink.config.get_password(), Some(&b"s3cret"[..]));
    for (content, want) in [
        ("\n", "one non-empty line"),
        ("a\nb\n", "one non-empty line"),
        (&"x".repeat(5000), "longer than 4096"),
    ] {
        std::fs::write(&file, content).unwrap();
        let err = build_error(options(&file));
        assert!(err.contains("password_file") && err.contains(want), "{err}");
    }
    let err = build_error(options(dir.path()));
    assert!(err.contains("not a regular file"), "{err}");
    let err = build_error(options(&dir.path().join("missing")));
    assert!(err.contains("password_file"), "{err}");
}

#[test]
fn a_good_table_builds_without_connecting() {
    // Nothing listens on port 1: building must not notice.
    let sink = PostgresSink::from_config(&sink_config(serde_json::json!({
        "url": "postgresql://daemoneye@127.0.0.1:1/alerts",
        "tls": "disable",
        "table": "site_alerts",
        "timeout": "2s",
    })))
    .unwrap();
    assert_eq!(sink.name(), "central");
    assert_eq!(sink.table(), "site_alerts");
    assert_eq!(sink.max_batch(), Some(MAX_BATCH));
    assert_eq!(sink.server, "127.0.0.1:1/alerts");
    assert!(MAX_BATCH * COLUMNS.len() < 65_535);
}

#[test]
fn sqlstates_are_classified() {
    let check = |code: &str, want: Class| assert_eq!(class_of(code), want, "{code}");
    for code in [
        "08000", "08006", "08001", "57P01", "57P02", "57P03", "57014", "53300", "53100", "40001",
        "40P01", "55P03", "58030", "XX000", "25006", "42P01",
    ] {
        check(code, Class::Retry);
    }
    for code in [
        "22007", "22008", "22P02", "22P05", "22021", "23502", "23514",
    ] {
        check(code, Class::Row);
    }
    for code in [
        "28000", "28P01", "3D000", "42501", "42703", "42P10", "42601", "0A000", "3F000",
    ] {
        check(code, Class::GiveUp);
    }
}

#[test]
fn the_sql_quotes_the_table_and_keys_on_id_and_detected_at() {
    let ddl = create_sql("site_alerts");
    assert!(ddl.starts_with("CREATE TABLE \"site_alerts\" ("), "{ddl}");
    assert!(ddl.contains("UNIQUE (id, detected_at)"), "{ddl}");
    let insert = insert_sql("site_alerts");
    assert!(
        insert.starts_with("INSERT INTO \"site_alerts\" "),
        "{insert}"
    );
    assert!(
        insert.ends_with("ON CONFLICT (id, detected_at) DO NOTHING"),
        "{insert}"
    );
    for column in COLUMNS {
        assert!(ddl.contains(&format!("    {column} ")), "{column}");
    }
}

fn payload() -> Vec<u8> {
    crate::outbox::format::tests::alert().canonical_bytes()
}

#[test]
fn a_payload_that_is_not_an_alert_is_rejected_without_connecting() {
    let mut sink = PostgresSink::from_config(&sink_config(serde_json::json!({
        "url": "postgresql://daemoneye@127.0.0.1:1/alerts",
        "tls": "disable",
    })))
    .unwrap();
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let err = sink
        .deliver(&[Delivery {
            alert_id: &id,
            payload: b"[]",
        }])
        .unwrap_err();
    assert_eq!(err.acknowledged, 0);
    assert!(matches!(err.error, SinkError::Reject { .. }), "{err:?}");
    assert_eq!(sink.deliver(&[]), Ok(()));
}

/// Delivers one alert on another thread; its result, or a panic after a generous bound.
fn deliver_elsewhere(mut sink: PostgresSink) -> Result<(), BatchError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let payload = payload();
        let result = sink.deliver(&[Delivery {
            alert_id: &id,
            payload: &payload,
        }]);
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the delivery ends by its own timeout")
}

#[test]
fn a_peer_that_accepts_and_never_answers_is_a_retry_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    for tls in ["disable", "prefer"] {
        let sink = PostgresSink::from_config(&sink_config(serde_json::json!({
            "url": format!("postgresql://daemoneye@127.0.0.1:{port}/alerts"),
            "tls": tls,
            "timeout": "500ms",
            "ca_file": (tls != "disable").then(|| write_any_ca(dir.path())),
        })))
        .unwrap();
        let err = deliver_elsewhere(sink).unwrap_err();
        assert_eq!(err.acknowledged, 0);
        match err.error {
            SinkError::Retry { reason } => {
                assert!(reason.contains("no answer within 500 ms"), "{reason}");
                assert!(
                    reason.contains(&format!("127.0.0.1:{port}/alerts")),
                    "{reason}"
                );
            }
            other => panic!("want a retry, got {other:?}"),
        }
    }
}

/// A CA certificate file, for a sink that needs one to build.
fn write_any_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

#[test]
fn nothing_listening_is_a_retry_naming_the_server() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = PostgresSink::from_config(&sink_config(serde_json::json!({
        "url": format!("postgresql://daemoneye@127.0.0.1:{port}/alerts"),
        "tls": "disable",
    })))
    .unwrap();
    match deliver_elsewhere(sink).unwrap_err().error {
        SinkError::Retry { reason } => {
            assert!(
                reason.starts_with(&format!(
                    "postgresql 127.0.0.1:{port}/alerts: cannot connect: "
                )),
                "{reason}"
            );
        }
        other => panic!("want a retry, got {other:?}"),
    }
}

#[test]
fn the_documentation_shows_the_ddl_and_the_insert_the_code_runs() {
    let doc = include_str!("../../../../docs/sinks/postgres.md");
    assert!(
        doc.contains(&create_sql(DEFAULT_TABLE)),
        "the alerts table DDL"
    );
    assert!(
        doc.contains(&super::schema::create_schema_table_sql()),
        "the version table DDL"
    );
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(doc).contains(&words(&insert_sql(DEFAULT_TABLE))),
        "the insert"
    );
    assert!(doc.contains(&format!("pg_advisory_xact_lock({SCHEMA_LOCK})")));
}
