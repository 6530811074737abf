//! The email sink against a real SMTP server: aiosmtpd, started by the test on a loopback
//! port with a small handler script the test writes. The handler stores each mail it accepts
//! as JSON, after taking it apart with Python's own MIME parser (`email.policy.default`):
//! headers, the parts with their decoded text, the envelope, whether the session was
//! encrypted. The handler refuses a mail holding `REFUSE-THIS-MAIL` with `554 5.6.0`.
//! Variants of the script answer `550` to a recipient, refuse every login with
//! `535`, or require STARTTLS with a certificate the test made (rcgen) and, for mTLS, a
//! client certificate.

// Test code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_agent::outbox::email::EmailSink;
use daemoneye_agent::outbox::{BatchError, Delivery, Sink, SinkError};
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The longest any wait of this test lasts: generous, for a busy machine.
const WAIT: Duration = Duration::from_secs(90);

const SERVER: &str = r#"
import asyncio, json, os, ssl, sys
from email import message_from_bytes, policy
from aiosmtpd.smtp import SMTP, AuthResult

out_dir, port_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
count = 0

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        raw = envelope.original_content
        if b"REFUSE-THIS-MAIL" in raw:
            return "554 5.6.0 message content refused"
        mail = message_from_bytes(raw, policy=policy.default)
        parts = []
        for part in mail.walk():
            if not part.is_multipart():
                parts.append({"type": part.get_content_type(), "text": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "peer_cert": bool(session.ssl and session.ssl.get("peercert")),
            "type": mail.get_content_type(),
            "headers": [[k, str(v)] for k, v in mail.items()],
            "parts": parts,
            "raw": raw.decode("utf-8", "replace"),
        }
        tmp = os.path.join(out_dir, "%03d.tmp" % count)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out_dir, "%03d.json" % count))
        return "250 Message accepted for delivery"

def refuse_everyone(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)

async def main():
    kwargs = {"hostname": "mx.test"}
    if mode == "auth-fail":
        kwargs.update(authenticator=refuse_everyone, auth_require_tls=False)
    if mode in ("tls", "mtls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
        if mode == "mtls":
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(sys.argv[6])
        kwargs.update(tls_context=context, require_starttls=True)
    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)
    await server.serve_forever()

asyncio.run(main())
"#;

/// An aiosmtpd of the test's own, stopped when dropped.
struct Smtp {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Smtp {
    fn start(mode: &str, tls_args: &[PathBuf]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER).unwrap();
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir(&mail_dir).unwrap();
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&mail_dir)
            .arg(&port_file)
            .arg(mode)
            .args(tls_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the SMTP server exited with {status} (CI installs aiosmtpd): {}",
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap()
                );
            }
            assert!(
                start.elapsed() < WAIT,
                "gave up waiting for the SMTP server"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, dir, port }
    }

    /// The mails received so far, oldest first.
    fn mails(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink(options: serde_json::Value) -> EmailSink {
    EmailSink::from_config(&SinkConfig {
        name: "mail".into(),
        kind: SinkKind::Email,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    })
    .unwrap()
}

fn plain(port: u16) -> serde_json::Value {
    serde_json::json!({
        "host": "127.0.0.1", "port": port, "tls": "none", "timeout": "30s",
        "from": "DaemonEye <agent@example.org>",
        "to": ["soc@example.org", "oncall@example.org"],
    })
}

fn alert(n: usize) -> Alert {
    Alert {
        id: AlertId::parse(&format!("{n:032x}")).unwrap(),
        rule_id: format!("DE-LNX-{n:04}"),
        rule_name: "Deleted binary".into(),
        severity: Severity::ALL[n % 5],
        mitre: vec!["T1070.004".into()],
        host: "web-1".into(),
        site: Some("plant-7".into()),
        scan_id: 3,
        detected_at: "2026-11-21T10:00:00.000Z".into(),
        dedup_key: format!("[{n}]"),
        suppressed: 0,
        rows: vec![],
        summary: format!("<script>alert({n})</script> & pid={n} ünï"),
    }
}

fn deliver(sink: &mut EmailSink, alerts: &[Alert]) -> Result<(), BatchError> {
    let payloads: Vec<Vec<u8>> = alerts.iter().map(Alert::canonical_bytes).collect();
    let batch: Vec<Delivery<'_>> = alerts
        .iter()
        .zip(&payloads)
        .map(|(alert, payload)| Delivery {
            alert_id: &alert.id,
            payload,
        })
        .collect();
    sink.deliver(&batch)
}

fn header<'a>(mail: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    mail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

fn part<'a>(mail: &'a serde_json::Value, content_type: &str) -> &'a str {
    let parts = mail["parts"].as_array().unwrap();
    let found: Vec<&str> = parts
        .iter()
        .filter(|part| part["type"] == content_type)
        .map(|part| part["text"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "one {content_type} part in {mail}");
    found[0]
}

#[test]
fn a_batch_is_one_mail_with_text_and_html_and_every_id() {
    let server = Smtp::start("plain", &[]);
    let mut options = plain(server.port);
    options["max_alerts_per_mail"] = 3.into();
    let mut sink = sink(options);
    assert_eq!(sink.max_batch(), Some(3));
    let alerts: Vec<Alert> = (1..=5).map(alert).collect();
    // The loop hands at most max_batch(); a longer batch is cut into mails all the same.
    deliver(&mut sink, &alerts).unwrap();
    let mails = server.mails();
    assert_eq!(mails.len(), 2, "5 alerts at 3 a mail: {mails:?}");
    for (mail, alerts) in mails.iter().zip(alerts.chunks(3)) {
        assert_eq!(mail["mail_from"], "agent@example.org");
        assert_eq!(
            mail["rcpt_tos"],
            serde_json::json!(["soc@example.org", "oncall@example.org"])
        );
        assert_eq!(mail["tls"], false);
        assert_eq!(mail["type"], "multipart/alternative");
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(header(mail, "X-DaemonEye-Alert-Ids"), [ids.join(", ")]);
        let message_id = header(mail, "Message-ID");
        assert!(
            message_id.len() == 1
                && message_id[0].starts_with(&format!("<{}.", ids[0]))
                && message_id[0].ends_with("@example.org>"),
            "{message_id:?}"
        );
        let subject = header(mail, "Subject");
        assert_eq!(subject.len(), 1);
        assert!(
            subject[0].starts_with(&format!("[DaemonEye] {} alerts, highest ", alerts.len())),
            "{subject:?}"
        );
        let (text, html) = (part(mail, "text/plain"), part(mail, "text/html"));
        for alert in alerts {
            assert!(text.contains(alert.id.as_str()) && html.contains(alert.id.as_str()));
            assert!(
                text.contains(&alert.summary),
                "the plain part as written: {text}"
            );
            let escaped = alert
                .summary
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(html.contains(&escaped), "the HTML part escaped: {html}");
        }
        assert!(!html.contains("<script>"), "{html}");
    }
}

/// A CA, and a server certificate it signed for localhost and 127.0.0.1, as PEM files in `dir`
/// named after `name`; returns (ca, cert, key).
fn make_ca(dir: &Path, name: &str, leaf: Option<Vec<String>>) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let sans = leaf.unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]);
    let params = CertificateParams::new(sans).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn starttls(port: u16, ca: &Path) -> serde_json::Value {
    serde_json::json!({
        "host": "localhost", "port": port, "timeout": "30s", "ca_file": ca,
        "from": "agent@example.org", "to": ["soc@example.org"],
    })
}

#[test]
fn starttls_delivers_with_the_right_ca_and_retries_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(dir.path(), "server", None);
    let (other_ca, _, _) = make_ca(dir.path(), "other", None);
    let server = Smtp::start("tls", &[cert, key]);
    let mut good = sink(starttls(server.port, &ca));
    deliver(&mut good, &[alert(1)]).unwrap();
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["tls"], true, "sent after STARTTLS");
    assert_eq!(
        header(&mails[0], "X-DaemonEye-Alert-Ids"),
        [alert(1).id.as_str()]
    );

    let mut wrong = sink(starttls(server.port, &other_ca));
    let err = deliver(&mut wrong, &[alert(2)]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::Retry { reason } => assert!(
            reason.starts_with(&format!("smtp localhost:{}: ", server.port))
                && reason.contains("invalid peer certificate")
                && reason.contains("UnknownIssuer"),
            "{reason}"
        ),
        other => panic!("want a retry naming the TLS failure, got {other:?}"),
    }
    assert_eq!(
        server.mails().len(),
        1,
        "nothing sent without a verified certificate"
    );
}

#[test]
fn mtls_presents_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(dir.path(), "server", None);
    let (client_ca, client_cert, client_key) =
        make_ca(dir.path(), "client", Some(vec!["agent.example.org".into()]));
    let server = Smtp::start("mtls", &[cert, key, client_ca]);
    let mut options = starttls(server.port, &ca);
    options["client_cert"] = client_cert.to_str().unwrap().into();
    options["client_key"] = client_key.to_str().unwrap().into();
    deliver(&mut sink(options), &[alert(1)]).unwrap();
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0]["peer_cert"], true,
        "the server verified a client certificate"
    );
    // Without one, the server ends the handshake: a retry, nothing sent.
    let err = deliver(&mut sink(starttls(server.port, &ca)), &[alert(2)]).unwrap_err();
    assert!(matches!(err.error, SinkError::Retry { .. }), "{err}");
    assert_eq!(server.mails().len(), 1);
}

#[test]
fn nothing_listening_is_a_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = deliver(&mut sink(plain(port)), &[alert(1)]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::Retry { reason } => assert!(
            reason.starts_with(&format!("smtp 127.0.0.1:{port}: ")) && reason.contains("refused"),
            "{reason}"
        ),
        other => panic!("want a retry, got {other:?}"),
    }
}

#[test]
fn a_server_that_never_greets_is_a_retry_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // Accepts, then says nothing until the test ends.
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let _ = done_rx.recv();
        drop(stream);
    });
    let mut options = plain(port);
    options["timeout"] = "1s".into();
    let err = deliver(&mut sink(options), &[alert(1)]).unwrap_err();
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::Retry { reason } => assert!(
            reason.starts_with(&format!("smtp 127.0.0.1:{port}: timed out after 1s (")),
            "{reason}"
        ),
        other => panic!("want a retry, got {other:?}"),
    }
}

#[test]
fn a_refused_mail_is_a_rejection_and_a_refused_address_or_login_gives_up() {
    let server = Smtp::start("plain", &[]);
    let mut refused = alert(2);
    refused.summary = "REFUSE-THIS-MAIL".into();
    let err = deliver(&mut sink(plain(server.port)), &[refused]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::Reject { reason } => {
            assert!(
                reason.contains("554") && reason.contains("content refused"),
                "{reason}"
            );
        }
        other => panic!("want a rejection, got {other:?}"),
    }

    // A wrong recipient refuses every mail alike: the sink stops rather than dead-letter
    // each alert in turn.
    let mut options = plain(server.port);
    options["to"] = serde_json::json!(["soc@example.org", "bounce@example.org"]);
    let err = deliver(&mut sink(options), &[alert(1), alert(2)]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::GiveUp { reason } => {
            assert!(
                reason.contains("550") && reason.contains("no such user here"),
                "{reason}"
            );
        }
        other => panic!("want give-up, got {other:?}"),
    }
    assert!(server.mails().is_empty());

    let server = Smtp::start("auth-fail", &[]);
    let password = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password.path(), "wrong\n").unwrap();
    let mut options = plain(server.port);
    options["username"] = "agent".into();
    options["password_file"] = password.path().to_str().unwrap().into();
    let err = deliver(&mut sink(options), &[alert(1)]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    match &err.error {
        SinkError::GiveUp { reason } => assert!(reason.contains("535"), "{reason}"),
        other => panic!("want give-up, got {other:?}"),
    }
    assert!(server.mails().is_empty());
}
