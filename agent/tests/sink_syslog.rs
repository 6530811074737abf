//! The syslog sink against a real rsyslogd: the test starts `rsyslogd -n` on a configuration
//! of its own (imudp and imtcp on loopback ports, imuxsock on a socket in a temporary
//! directory, everything written to a file in RFC 5424 with `RSYSLOG_SyslogProtocol23Format`),
//! delivers batches of alerts over each protocol, and reads every line back with a strict
//! RFC 5424 parser. The negative tests use plain sockets of the test's own: a port with
//! nothing listening, a server that accepts and never reads, a path that is a regular file.

// Test code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_agent::outbox::syslog::SyslogSink;
use daemoneye_agent::outbox::{Delivery, Sink, SinkError};
use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{SinkConfig, SinkKind};
use daemoneye_lib::ids::AlertId;

/// The longest any wait of this test lasts: generous, for a busy machine.
const WAIT: Duration = Duration::from_secs(90);

fn sink(options: serde_json::Value) -> SyslogSink {
    SyslogSink::from_config(&SinkConfig {
        name: "siem".into(),
        kind: SinkKind::Syslog,
        options: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(options).unwrap(),
    })
    .unwrap()
}

/// Alert `n` of a series: ids differ per series and number, severities rotate, and the
/// values hold what RFC 5424 makes a sender escape.
fn alert(series: u8, n: usize) -> Alert {
    let summary = match n % 4 {
        0 => format!("Deleted binary: pid={n}"),
        1 => format!("Löschung pid={n} \u{202e}txt.exe"),
        2 => format!("long {n} {}", "x".repeat(20_000)),
        _ => format!("line\nbreak {n}"),
    };
    Alert {
        id: AlertId::parse(&format!("{series:02x}{n:030x}")).unwrap(),
        rule_id: format!("DE-LNX-{n:04}"),
        rule_name: "quote \" backslash \\ bracket ] end".into(),
        severity: Severity::ALL[n % 5],
        mitre: vec!["T1070.004".into(), "T1036".into()],
        host: "web-1.example".into(),
        site: n.is_multiple_of(2).then(|| "plant-7".to_owned()),
        scan_id: i64::try_from(n).unwrap(),
        detected_at: format!("2026-11-21T10:{:02}:{:02}.{:03}Z", n / 60 % 60, n % 60, n),
        dedup_key: format!("[{n}]\nnext"),
        suppressed: 2,
        rows: vec![serde_json::Map::from_iter([("pid".to_owned(), n.into())])],
        summary,
    }
}

fn deliver(
    sink: &mut SyslogSink,
    alerts: &[Alert],
) -> Result<(), daemoneye_agent::outbox::BatchError> {
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

/// A free loopback port (bound, read, released: the daemon binds it next).
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// Whether `/proc/net/{udp,tcp}` shows 127.0.0.1:`port` bound (and listening, for TCP).
fn bound(table: &str, port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string(format!("/proc/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&want.as_str())
                && (table == "udp" || fields.get(3) == Some(&"0A"))
        })
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An rsyslogd of the test's own, stopped when dropped.
struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let (udp, tcp) = (free_port(true), free_port(false));
        let root = dir.path().display().to_string();
        let conf = format!(
            r#"global(workDirectory="{root}/work" maxMessageSize="64k")
main_queue(queue.type="Direct")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{root}/log.sock" UseSpecialParser="off" ParseHostname="on"
      IgnoreTimestamp="off" RateLimit.Interval="0" CreatePath="off")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
action(type="omfile" file="{root}/out.log" template="RSYSLOG_SyslogProtocol23Format")
"#
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let child = Self::spawn(dir.path());
        let mut daemon = Self {
            child,
            dir,
            udp,
            tcp,
        };
        daemon.wait_ready();
        daemon
    }

    fn spawn(dir: &Path) -> Child {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("rsyslogd.log"))
            .unwrap();
        Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rsyslogd runs (CI installs rsyslog)")
    }

    fn wait_ready(&mut self) {
        wait_for("rsyslogd to bind its inputs", || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "rsyslogd exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap()
                );
            }
            bound("udp", self.udp) && bound("tcp", self.tcp) && self.socket().exists()
        });
    }

    /// Stops the daemon (SIGTERM: it closes its connections and removes its socket) and
    /// starts a new one on the same ports, socket and output file.
    fn restart(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap();
        wait_for("the old socket to go", || !self.socket().exists());
        self.child = Self::spawn(self.dir.path());
        self.wait_ready();
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One RFC 5424 message, as a strict reader takes it apart.
#[derive(Debug)]
struct Message {
    pri: u8,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd_id: String,
    params: Vec<(String, String)>,
    /// The MSG, without the BOM.
    msg: String,
    bom: bool,
}

/// A field of the header: 1 to `max` printable US-ASCII characters, then a space.
fn field<'a>(rest: &mut &'a str, max: usize, what: &str) -> Result<&'a str, String> {
    let (value, tail) = rest
        .split_once(' ')
        .ok_or_else(|| format!("no {what} field"))?;
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(format!("bad {what} {value:?}"));
    }
    *rest = tail;
    Ok(value)
}

/// RFC 5424 §6 strictly, for one element of structured data.
fn parse(line: &str) -> Result<Message, String> {
    let rest = line.strip_prefix('<').ok_or("no PRI")?;
    let (pri, mut rest) = rest.split_once('>').ok_or("unterminated PRI")?;
    if pri.is_empty()
        || pri.len() > 3
        || !pri.bytes().all(|b| b.is_ascii_digit())
        || (pri.len() > 1 && pri.starts_with('0'))
    {
        return Err(format!("bad PRI {pri:?}"));
    }
    let pri: u8 = pri.parse().map_err(|_| "PRI over 255")?;
    if pri > 191 {
        return Err(format!("PRI {pri} over 191"));
    }
    if field(&mut rest, 2, "VERSION")? != "1" {
        return Err("VERSION is not 1".into());
    }
    let timestamp = field(&mut rest, 32, "TIMESTAMP")?.to_owned();
    if timestamp != "-" && daemoneye_lib::text::parse_time_ms(&timestamp).is_err() {
        return Err(format!("bad TIMESTAMP {timestamp:?}"));
    }
    let hostname = field(&mut rest, 255, "HOSTNAME")?.to_owned();
    let app_name = field(&mut rest, 48, "APP-NAME")?.to_owned();
    let procid = field(&mut rest, 128, "PROCID")?.to_owned();
    let msgid = field(&mut rest, 32, "MSGID")?.to_owned();
    let mut chars = rest
        .strip_prefix('[')
        .ok_or("no structured data element")?
        .chars();
    let sd_id: String = chars.by_ref().take_while(|&c| c != ' ').collect();
    let mut params = Vec::new();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if name.is_empty() || name.len() > 32 || name.contains([' ', ']', '"']) {
            return Err(format!("bad PARAM-NAME {name:?}"));
        }
        if chars.next() != Some('"') {
            return Err(format!("no opening quote for {name}"));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or("unterminated PARAM-VALUE")? {
                // §6.3.3: `\"`, `\\` and `\]` are escapes; a backslash before anything
                // else is a backslash.
                '\\' => match chars.clone().next() {
                    Some(c @ ('"' | '\\' | ']')) => {
                        chars.next();
                        value.push(c);
                    }
                    _ => value.push('\\'),
                },
                '"' => break,
                ']' => return Err(format!("unescaped ] in {name}")),
                c => value.push(c),
            }
        }
        params.push((name, value));
        match chars.next() {
            Some(' ') => {}
            Some(']') => break,
            other => {
                return Err(format!(
                    "expected a space or ] after a value, got {other:?}"
                ));
            }
        }
    }
    let rest: String = chars.collect();
    let msg = rest.strip_prefix(' ').ok_or("no space before MSG")?;
    let (msg, bom) = match msg.strip_prefix('\u{feff}') {
        Some(msg) => (msg, true),
        None => (msg, false),
    };
    Ok(Message {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id,
        params,
        msg: msg.to_owned(),
        bom,
    })
}

/// A value as a conforming reader gets it back: CR and LF, which RFC 5424 cannot escape, are
/// sent as `\r` and `\n` (format.rs), which a reader takes as a backslash and a letter.
fn as_read(value: &str) -> String {
    value.replace('\r', "\\r").replace('\n', "\\n")
}

fn check(message: &Message, alert: &Alert, facility: u8) {
    let severity = match alert.severity {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    };
    assert_eq!(message.pri, facility * 8 + severity, "{message:?}");
    assert_eq!(message.timestamp, alert.detected_at);
    assert_eq!(message.hostname, alert.host);
    assert_eq!(message.procid, std::process::id().to_string());
    assert_eq!(message.msgid, "alert");
    assert_eq!(message.sd_id, "daemoneye@32473");
    let mut want = vec![
        ("id", alert.id.as_str().to_owned()),
        ("rule_id", alert.rule_id.clone()),
        ("rule_name", alert.rule_name.clone()),
        ("severity", alert.severity.as_str().to_owned()),
        ("host", alert.host.clone()),
    ];
    if let Some(site) = &alert.site {
        want.push(("site", site.clone()));
    }
    want.extend([
        ("scan_id", alert.scan_id.to_string()),
        ("detected_at", alert.detected_at.clone()),
        ("suppressed", alert.suppressed.to_string()),
        ("mitre", alert.mitre.join(",")),
        ("dedup_key", alert.dedup_key.clone()),
    ]);
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(name, value)| (name.to_owned(), as_read(&value)))
        .collect();
    assert_eq!(message.params, want);
    let summary = daemoneye_lib::text::escape(&alert.summary);
    assert_eq!(message.msg, summary);
    assert_eq!(
        message.bom,
        !summary.is_ascii(),
        "a BOM exactly when MSG is not ASCII"
    );
}

#[test]
fn batches_over_udp_tcp_and_a_unix_socket_arrive_whole_and_in_order() {
    let daemon = Rsyslog::start();
    // One series per protocol, each with its own APP-NAME and facility.
    let runs = [
        (
            1_u8,
            serde_json::json!({"protocol": "udp", "address": format!("127.0.0.1:{}", daemon.udp),
                               "facility": "user", "app_name": "de-udp"}),
            1_u8,
        ),
        (
            2,
            serde_json::json!({"address": format!("127.0.0.1:{}", daemon.tcp),
                               "app_name": "de-tcp"}),
            16,
        ),
        (
            3,
            serde_json::json!({"protocol": "unix", "address": daemon.socket(),
                               "facility": "local7", "app_name": "de-unix"}),
            23,
        ),
    ];
    let mut sent = Vec::new();
    for (series, options, facility) in runs {
        let app = options["app_name"].as_str().unwrap().to_owned();
        let mut sink = sink(options);
        let alerts: Vec<Alert> = (0..60).map(|n| alert(series, n)).collect();
        for batch in alerts.chunks(20) {
            deliver(&mut sink, batch).unwrap();
        }
        sent.push((app, facility, alerts));
    }
    let total: usize = sent.iter().map(|(_, _, alerts)| alerts.len()).sum();
    wait_for("every message in rsyslogd's output", || {
        daemon
            .output()
            .lines()
            .filter(|line| line.contains(" de-"))
            .count()
            >= total
    });
    let output = daemon.output();
    let messages: Vec<Message> = output
        .lines()
        .map(|line| parse(line).unwrap_or_else(|err| panic!("{err}: {line:?}")))
        .collect();
    for (app, facility, alerts) in &sent {
        let got: Vec<&Message> = messages.iter().filter(|m| &m.app_name == app).collect();
        let ids: Vec<&str> = got.iter().map(|m| m.params[0].1.as_str()).collect();
        let want: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, want, "{app}: every alert once, in order");
        for (message, alert) in got.iter().zip(alerts) {
            check(message, alert, *facility);
        }
    }
    // Nothing else but rsyslogd's own notices.
    for message in &messages {
        assert!(
            message.app_name.starts_with("de-") || message.app_name == "rsyslogd",
            "{message:?}"
        );
    }
}

fn retry_reason(result: Result<(), daemoneye_agent::outbox::BatchError>) -> (usize, String) {
    match result {
        Err(err) => match err.error {
            SinkError::Retry { reason } => (err.acknowledged, reason),
            other => panic!("want a retry, got {other:?}"),
        },
        Ok(()) => panic!("want a retry, got success"),
    }
}

#[test]
fn a_restarted_daemon_gets_the_next_batch_on_a_new_connection() {
    let mut daemon = Rsyslog::start();
    let mut tcp = sink(
        serde_json::json!({"address": format!("127.0.0.1:{}", daemon.tcp),
                                          "app_name": "de-tcp"}),
    );
    let mut unix = sink(
        serde_json::json!({"protocol": "unix", "address": daemon.socket(),
                                           "app_name": "de-unix"}),
    );
    deliver(&mut tcp, &[alert(7, 0)]).unwrap();
    deliver(&mut unix, &[alert(8, 0)]).unwrap();
    wait_for("the first two messages", || {
        daemon
            .output()
            .lines()
            .filter(|line| line.contains(" de-"))
            .count()
            >= 2
    });
    daemon.restart();
    // Both sinks hold a connection to the daemon that is gone: the TCP one sees it closed
    // before writing, the datagram one is refused and connects once more, at once.
    deliver(&mut tcp, &[alert(7, 1)]).unwrap();
    deliver(&mut unix, &[alert(8, 1)]).unwrap();
    wait_for("the messages after the restart", || {
        daemon
            .output()
            .lines()
            .filter(|line| line.contains(" de-"))
            .count()
            >= 4
    });
    let ids: Vec<String> = daemon
        .output()
        .lines()
        .map(|line| parse(line).unwrap())
        .filter(|message| message.app_name.starts_with("de-"))
        .map(|message| message.params[0].1.clone())
        .collect();
    let mut want: Vec<String> = [alert(7, 0), alert(8, 0), alert(7, 1), alert(8, 1)]
        .iter()
        .map(|alert| alert.id.as_str().to_owned())
        .collect();
    let mut got = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "each once: {ids:?}");
}

#[test]
fn nothing_listening_is_a_retry_that_says_so() {
    let port = free_port(false);
    let mut tcp = sink(serde_json::json!({"address": format!("127.0.0.1:{port}")}));
    let (acknowledged, reason) = retry_reason(deliver(&mut tcp, &[alert(4, 0)]));
    assert_eq!(acknowledged, 0);
    assert!(
        reason.starts_with(&format!("tcp 127.0.0.1:{port}: connecting: "))
            && reason.contains("refused"),
        "{reason}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut unix =
        sink(serde_json::json!({"protocol": "unix", "address": dir.path().join("log.sock")}));
    let (_, reason) = retry_reason(deliver(&mut unix, &[alert(4, 0)]));
    assert!(
        reason.ends_with("no such socket (is the syslog daemon running?)"),
        "{reason}"
    );
}

#[test]
fn a_receiver_that_never_reads_ends_in_a_retry_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, then holds the connection open without reading until the test ends.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let _ = done_rx.recv();
        drop(stream);
    });
    let mut tcp =
        sink(serde_json::json!({"address": format!("127.0.0.1:{port}"), "timeout": "1s"}));
    // 100 messages of ~60 kB a batch: the socket buffers (a few MB on loopback) fill within
    // a few batches; the bound only keeps a broken sink from looping for ever.
    let big: Vec<Alert> = (0..100)
        .map(|n| Alert {
            summary: "y".repeat(60_000),
            ..alert(5, n)
        })
        .collect();
    let mut outcome = None;
    for _ in 0..200 {
        if let Err(err) = deliver(&mut tcp, &big) {
            outcome = Some(err);
            break;
        }
    }
    let err = outcome.expect("the buffers filled and a send timed out");
    assert!(err.acknowledged < big.len(), "{err}");
    assert_eq!(
        err.error,
        SinkError::retry(format!("tcp 127.0.0.1:{port}: timed out after 1s sending"))
    );
    done_tx.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn a_path_that_is_a_regular_file_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("log");
    std::fs::write(path, "").unwrap();
    let mut unix = sink(serde_json::json!({"protocol": "unix", "address": path}));
    let err = deliver(&mut unix, &[alert(6, 0)]).unwrap_err();
    assert_eq!(err.acknowledged, 0);
    assert_eq!(
        err.error,
        SinkError::give_up(format!("{} is not a socket", path.display()))
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        b"",
        "nothing written into the file"
    );
}
