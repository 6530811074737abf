//! Tests of the syslog sink's keys and of its sockets against receivers made here (Unix
//! datagram and stream sockets); tests/sink_syslog.rs runs it against rsyslogd.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::net::UnixListener;

use daemoneye_lib::config::SinkKind;
use daemoneye_lib::ids::AlertId;

use super::*;
use crate::outbox::format::tests::alert;

fn table(options: serde_json::Value) -> SinkConfig {
    SinkConfig {
        name: "siem".into(),
        kind: SinkKind::Syslog,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    }
}

fn refused(options: serde_json::Value, want: &str) {
    let err = SyslogSink::from_config(&table(options.clone())).unwrap_err();
    assert!(
        err.to_string().starts_with("sinks.siem: ") && err.to_string().contains(want),
        "{options}: want {want:?}, got {err}"
    );
}

#[test]
fn keys_have_their_defaults_and_bad_values_are_refused() {
    let sink =
        SyslogSink::from_config(&table(serde_json::json!({"address": "127.0.0.1:514"}))).unwrap();
    assert_eq!(
        sink.config(),
        &SyslogConfig {
            transport: Transport::Tcp("127.0.0.1:514".into()),
            facility: Facility::LOCAL0,
            app_name: "daemoneye-agent".into(),
            timeout: Duration::from_secs(10),
        }
    );
    let sink = SyslogSink::from_config(&table(serde_json::json!({
        "address": "[::1]:5514", "protocol": "udp", "facility": "security",
        "app_name": "de", "timeout": "500ms",
    })))
    .unwrap();
    assert_eq!(sink.config().transport, Transport::Udp("[::1]:5514".into()));
    assert_eq!(sink.config().facility.code(), 4);
    assert_eq!(sink.config().app_name, "de");
    assert_eq!(sink.config().timeout, Duration::from_millis(500));
    let sink = SyslogSink::from_config(&table(
        serde_json::json!({"address": "/dev/log", "protocol": "unix", "facility": "local7"}),
    ))
    .unwrap();
    assert_eq!(sink.config().transport, Transport::Unix("/dev/log".into()));
    assert_eq!(sink.config().facility.code(), 23);

    // TLS is not a syslog key: refused by name, not silently ignored.
    refused(
        serde_json::json!({"address": "h:6514", "ca_file": "/etc/ca.pem"}),
        "unknown field `ca_file`",
    );
    refused(
        serde_json::json!({"address": "h:514", "protocol": "tls"}),
        "tls",
    );
    refused(
        serde_json::json!({"address": "h:514", "facility": "kern"}),
        "facility \"kern\"",
    );
    refused(
        serde_json::json!({"address": "h:514", "app_name": "a b"}),
        "app_name",
    );
    refused(
        serde_json::json!({"address": "h:514", "app_name": "a".repeat(49)}),
        "app_name",
    );
    refused(
        serde_json::json!({"address": "h:514", "timeout": "1ms"}),
        "timeout: must be",
    );
    refused(
        serde_json::json!({"address": "dev/log", "protocol": "unix"}),
        "absolute",
    );
    for (address, want) in [
        ("h", "expected host:port"),
        ("h:0", "port"),
        ("h:65536", "port"),
        ("h:", "port"),
        (":514", "host"),
        ("::1:514", "IPv6"),
        ("[::1]514", "IPv6"),
        ("[nope]:514", "IPv6"),
        ("a b:514", "host"),
    ] {
        refused(serde_json::json!({"address": address}), want);
    }
}

#[test]
fn the_app_name_replaces_the_fourth_header_field() {
    let message = format::syslog(&alert(), Facility::LOCAL0, Some(7));
    assert_eq!(with_app_name(message.clone(), DEFAULT_APP_NAME), message);
    let renamed = with_app_name(message.clone(), "edr");
    assert_eq!(
        renamed,
        message.replacen(" daemoneye-agent 7 ", " edr 7 ", 1),
        "{renamed}"
    );
    assert!(renamed.starts_with("<131>1 2026-11-21T10:00:00.000Z web-1 edr 7 alert ["));
}

fn sink_to(path: &std::path::Path) -> SyslogSink {
    let mut config = SyslogConfig::new(Transport::Unix(path.to_owned()));
    config.app_name = "t".into();
    config.timeout = Duration::from_secs(30);
    SyslogSink::new("s", config)
}

#[test]
fn a_batch_stops_at_a_payload_that_is_not_an_alert_after_sending_those_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut sink = sink_to(&path);
    let good = alert().canonical_bytes();
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let batch = [
        Delivery {
            alert_id: &id,
            payload: &good,
        },
        Delivery {
            alert_id: &id,
            payload: b"[1]",
        },
        Delivery {
            alert_id: &id,
            payload: &good,
        },
    ];
    let err = sink.deliver(&batch).unwrap_err();
    assert_eq!(err.acknowledged, 1);
    assert!(matches!(err.error, SinkError::Reject { .. }), "{err}");
    let mut buf = vec![0; 70_000];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        sink.render(&good).unwrap(),
        "one datagram, the message alone"
    );
    // The kept socket carries the next batch.
    sink.deliver(&batch[..1]).unwrap();
    assert_eq!(receiver.recv(&mut buf).unwrap(), n);
}

#[test]
fn a_message_over_the_limit_is_rejected_and_one_at_the_limit_goes_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut sink = sink_to(&path);
    let base = sink.render(&alert().canonical_bytes()).unwrap().len();
    let sized = |len: usize| {
        let mut big = alert();
        big.summary = "x".repeat(big.summary.len() + len - base);
        big.canonical_bytes()
    };
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let (fits, over) = (sized(MAX_MESSAGE), sized(MAX_MESSAGE + 1));
    let err = sink
        .deliver(&[
            Delivery {
                alert_id: &id,
                payload: &fits,
            },
            Delivery {
                alert_id: &id,
                payload: &over,
            },
        ])
        .unwrap_err();
    assert_eq!(err.acknowledged, 1);
    assert_eq!(
        err.error,
        SinkError::reject("syslog message of 65001 bytes is over the sink's limit of 65000")
    );
    let mut buf = vec![0; 70_000];
    assert_eq!(receiver.recv(&mut buf).unwrap(), MAX_MESSAGE);
}

#[test]
fn a_stream_socket_gets_octet_counted_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let mut sink = sink_to(&path);
    let payload = alert().canonical_bytes();
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let delivery = Delivery {
        alert_id: &id,
        payload: &payload,
    };
    sink.deliver(&[delivery, delivery]).unwrap();
    let message = sink.render(&payload).unwrap();
    let want = format!("{} {message}", message.len()).repeat(2);
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = vec![0; want.len()];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want);
    // The receiver goes away: the kept connection is seen closed and a new one is made.
    drop(conn);
    sink.deliver(&[delivery]).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = vec![0; want.len() / 2];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want[..want.len() / 2]);
}

#[test]
fn socket_paths_that_cannot_work_or_do_not_work_yet() {
    let dir = tempfile::tempdir().unwrap();
    let payload = alert().canonical_bytes();
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let batch = [Delivery {
        alert_id: &id,
        payload: &payload,
    }];
    let missing = dir.path().join("gone.sock");
    let err = sink_to(&missing).deliver(&batch).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    assert!(
        matches!(&err.error, SinkError::Retry { reason } if reason.contains("no such socket")),
        "{err}"
    );
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = sink_to(&file).deliver(&batch).unwrap_err();
    assert_eq!(
        err.error,
        SinkError::give_up(format!("{} is not a socket", file.display()))
    );
    // A socket file nobody listens on any more (a daemon that died): refused, retried.
    let stale = dir.path().join("stale.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    let err = sink_to(&stale).deliver(&batch).unwrap_err();
    assert!(
        matches!(&err.error, SinkError::Retry { reason } if reason.contains("refused")),
        "{err}"
    );
}
