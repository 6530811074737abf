//! Tests of the email sink's keys and of the mail it writes; tests/sink_email.rs sends it to
//! a real SMTP server.

use std::collections::BTreeMap;

use daemoneye_lib::config::SinkKind;
use daemoneye_lib::ids::AlertId;

use super::*;
use crate::outbox::format::tests::alert;

fn table(options: serde_json::Value) -> SinkConfig {
    SinkConfig {
        name: "mail".into(),
        kind: SinkKind::Email,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    }
}

fn base() -> serde_json::Value {
    serde_json::json!({
        "host": "127.0.0.1", "tls": "none", "from": "agent@example.org",
        "to": ["soc@example.org"],
    })
}

fn with(changes: serde_json::Value) -> serde_json::Value {
    let mut options = base();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            options.as_object_mut().unwrap().remove(key);
        } else {
            options[key] = value.clone();
        }
    }
    options
}

fn refused(options: serde_json::Value, want: &str) {
    let err = EmailSink::from_config(&table(options.clone())).unwrap_err();
    assert!(
        err.to_string().starts_with("sinks.mail: ") && err.to_string().contains(want),
        "{options}: want {want:?}, got {err}"
    );
}

#[test]
fn keys_have_their_defaults_and_bad_values_are_refused() {
    let sink = EmailSink::from_config(&table(base())).unwrap();
    assert_eq!(sink.target, "smtp 127.0.0.1:25");
    assert_eq!(sink.pace(), Duration::from_secs(60));
    assert_eq!(sink.max_batch(), Some(100));
    assert_eq!(sink.subject_prefix, "[DaemonEye]");
    // STARTTLS is the default, on 587, with the system CA bundle.
    let sink = EmailSink::from_config(&table(with(
        serde_json::json!({"host": "smtp.example.org", "tls": null, "interval": "5m",
                           "max_alerts_per_mail": 7}),
    )))
    .unwrap();
    assert_eq!(sink.target, "smtp smtp.example.org:587");
    assert_eq!(sink.pace(), Duration::from_secs(300));
    assert_eq!(sink.max_batch(), Some(7));

    // Plain SMTP leaves this machine only when asked for in so many words.
    refused(
        with(serde_json::json!({"host": "smtp.example.org"})),
        "tls = \"none\" sends alerts (and any password) in clear text to smtp.example.org",
    );
    assert!(
        EmailSink::from_config(&table(with(
            serde_json::json!({"host": "smtp.example.org", "allow_plaintext": true})
        )))
        .is_ok()
    );
    for (host, target) in [
        ("localhost", "localhost"),
        ("127.0.0.2", "127.0.0.2"),
        ("::1", "::1"),
        ("[::1]", "::1"),
    ] {
        let sink = EmailSink::from_config(&table(with(serde_json::json!({"host": host}))));
        assert_eq!(sink.unwrap().target, format!("smtp {target}:25"));
    }
    refused(
        with(serde_json::json!({"host": "[::2]"})),
        "clear text to ::2",
    );
    refused(
        with(serde_json::json!({"ca_file": "/x.pem"})),
        "need tls = \"starttls\"",
    );
    refused(
        with(serde_json::json!({"tls": null, "ca_file": "/nonexistent/ca.pem"})),
        "ca_file /nonexistent/ca.pem",
    );
    refused(
        with(serde_json::json!({"tls": "ssl"})),
        "unknown variant `ssl`",
    );
    refused(
        with(serde_json::json!({"to": []})),
        "to: 1 to 50 addresses, not 0",
    );
    let many: Vec<String> = (0..51).map(|n| format!("u{n}@example.org")).collect();
    refused(
        with(serde_json::json!({"to": many})),
        "to: 1 to 50 addresses, not 51",
    );
    refused(
        with(serde_json::json!({"to": ["soc"]})),
        "to: \"soc\" is not a mail address",
    );
    refused(with(serde_json::json!({"from": "a@b\nBcc: x@y"})), "from: ");
    refused(
        with(serde_json::json!({"username": "u"})),
        "username and password_file go together",
    );
    refused(
        with(serde_json::json!({"max_alerts_per_mail": 0})),
        "max_alerts_per_mail",
    );
    refused(
        with(serde_json::json!({"interval": "2d"})),
        "interval: must be",
    );
    refused(
        with(serde_json::json!({"timeout": "0s"})),
        "timeout: must be",
    );
    refused(with(serde_json::json!({"port": 0})), "port");
    refused(
        with(serde_json::json!({"subject_prefix": "a\u{202e}b"})),
        "subject_prefix",
    );
    refused(
        with(serde_json::json!({"colour": "red"})),
        "unknown field `colour`",
    );
}

#[test]
fn the_password_file_is_read_trimmed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "  s3cret \n").unwrap();
    assert_eq!(read_password(&file).unwrap(), "s3cret");
    let options = with(serde_json::json!({"username": "agent", "password_file": file}));
    let sink = EmailSink::from_config(&table(options)).unwrap();
    assert!(
        !format!("{sink:?}").contains("s3cret"),
        "Debug never shows the password"
    );
    std::fs::write(&file, "\n").unwrap();
    assert!(read_password(&file).unwrap_err().ends_with(": empty"));
    std::fs::write(&file, "x".repeat(5000)).unwrap();
    assert!(
        read_password(&file)
            .unwrap_err()
            .ends_with(": larger than 4 KiB")
    );
    assert!(
        read_password(dir.path())
            .unwrap_err()
            .ends_with(": not a regular file")
    );
    refused(
        with(serde_json::json!({"username": "agent", "password_file": dir.path().join("none")})),
        "password_file ",
    );
}

fn hostile() -> Alert {
    Alert {
        rule_name: "Evil\r\nBcc: victim@example.org\u{202e}".into(),
        summary: "<script>alert('x')</script> & \"q\"\n".into(),
        host: "h<1>".into(),
        ..alert()
    }
}

#[test]
fn subjects_are_one_line_and_name_the_highest_severity() {
    assert_eq!(
        subject("[DaemonEye]", &[alert()]),
        "[DaemonEye] high: Deleted binary on web-1"
    );
    let low = Alert {
        severity: Severity::Low,
        ..alert()
    };
    let critical = Alert {
        severity: Severity::Critical,
        ..alert()
    };
    assert_eq!(
        subject("[DE]", &[low.clone(), critical, low]),
        "[DE] 3 alerts, highest critical: Deleted binary on web-1 and 2 more"
    );
    assert_eq!(
        subject("[DE]", &[hostile()]),
        "[DE] high: EvilBcc: victim@example.org on h<1>"
    );
    let long = Alert {
        rule_name: "é".repeat(500),
        ..alert()
    };
    assert_eq!(subject("[DE]", &[long]).chars().count(), MAX_SUBJECT);
}

#[test]
fn bodies_escape_every_value() {
    let html = html_body("s <b>", &[hostile()]);
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\n"),
        "{html}"
    );
    assert!(html.contains("<title>s &lt;b&gt;</title>"), "{html}");
    assert!(html.contains("h&lt;1&gt;"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains('\u{202e}'),
        "{html}"
    );
    assert!(
        html.contains("Evil\\r\\nBcc: victim@example.org\\u{202e}"),
        "{html}"
    );
    let plain = plain_body(&[hostile(), alert()]);
    assert!(
        plain.starts_with("DaemonEye raised 2 alerts.\n\n[high] Evil\\r\\nBcc"),
        "{plain}"
    );
    assert!(
        plain.contains("  summary:           <script>alert('x')</script> & \"q\"\\n\n"),
        "{plain}"
    );
    assert!(
        plain.contains("  alert id:          0123456789abcdef0123456789abcdef\n"),
        "{plain}"
    );
    assert!(
        !plain.contains('\r') && !plain.contains('\u{202e}'),
        "{plain}"
    );
}

#[test]
fn the_message_id_follows_the_ids_of_the_mail() {
    let a = "0123456789abcdef0123456789abcdef";
    let b = "fedcba9876543210fedcba9876543210";
    let one = message_id(&[a, b], "example.org");
    assert!(
        one.starts_with(&format!("<{a}.")) && one.ends_with("@example.org>"),
        "{one}"
    );
    assert_eq!(
        one,
        message_id(&[a, b], "example.org"),
        "the same batch, the same id"
    );
    assert_ne!(one, message_id(&[a], "example.org"));
    assert_ne!(one, message_id(&[b, a], "example.org"));
}

#[test]
fn a_mail_carries_the_ids_header_and_both_parts() {
    let sink = EmailSink::from_config(&table(with(
        serde_json::json!({"to": ["soc@example.org", "Night Shift <night@example.org>"]}),
    )))
    .unwrap();
    let second = Alert {
        id: AlertId::parse("fedcba9876543210fedcba9876543210").unwrap(),
        ..alert()
    };
    let mail = String::from_utf8(sink.message(&[alert(), second]).unwrap().formatted()).unwrap();
    assert!(
        mail.contains(
            "X-DaemonEye-Alert-Ids: 0123456789abcdef0123456789abcdef,\r\n fedcba9876543210fedcba9876543210\r\n"
        ) || mail.contains(
            "X-DaemonEye-Alert-Ids: 0123456789abcdef0123456789abcdef, fedcba9876543210fedcba9876543210\r\n"
        ),
        "{mail}"
    );
    assert!(
        mail.contains("Message-ID: <0123456789abcdef0123456789abcdef."),
        "{mail}"
    );
    assert!(
        mail.contains("Auto-Submitted: auto-generated\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("Content-Type: multipart/alternative;"),
        "{mail}"
    );
    assert!(
        mail.contains("Content-Type: text/plain; charset=utf-8"),
        "{mail}"
    );
    assert!(
        mail.contains("Content-Type: text/html; charset=utf-8"),
        "{mail}"
    );
    assert!(
        mail.contains("To: soc@example.org, \"Night Shift\" <night@example.org>"),
        "{mail}"
    );
}
