//! The email sink (`[[sinks]] type = "email"`): the alerts of an interval as one mail, sent
//! over SMTP with lettre's blocking transport (rustls with ring for STARTTLS).
//!
//! # Keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | (required) | the SMTP server (relay or submission server); an IPv6 address with or without brackets |
//! | `port` | 587 with STARTTLS, 25 without | its port |
//! | `tls` | `"starttls"` | `"starttls"`: STARTTLS is required and the server's certificate checked against `ca_file` (or the system CA bundle) for `host`; `"none"`: plain SMTP, accepted only for a loopback `host` (`localhost`, `127.0.0.0/8`, `::1`) unless `allow_plaintext = true` |
//! | `allow_plaintext` | `false` | lets `tls = "none"` reach a host that is not loopback |
//! | `from` | (required) | the sender, `name@domain` or `Name <name@domain>` |
//! | `to` | (required) | 1 to 50 recipients, the same forms |
//! | `username`, `password_file` | none | SMTP AUTH (PLAIN or LOGIN); the password is the file's content with surrounding whitespace trimmed, read when the configuration is loaded; both or neither |
//! | `subject_prefix` | `"[DaemonEye]"` | the start of every subject |
//! | `interval` | `"60s"` | the least time between two mails ([`Sink::pace`]): one mail carries what an interval raised (0s to 1d) |
//! | `max_alerts_per_mail` | 100 | the most alerts one mail carries ([`Sink::max_batch`]; 1 to 1000) |
//! | `timeout` | `"10s"` | bound of the connect and of each read and write on the connection (100ms to 10m) |
//! | `ca_file`, `client_cert`, `client_key` | system bundle, none | TLS material ([`super::tls`]); only with `tls = "starttls"` |
//!
//! # The mail
//!
//! One mail per batch (a longer batch is cut into mails of `max_alerts_per_mail`),
//! `multipart/alternative` with a `text/plain` part and a `text/html` part carrying the same
//! fields per alert: severity, rule name and id, alert id, host, site, time, scan, MITRE
//! ATT&CK techniques, repeats folded in, dedup key and the summary. Every value is an
//! untrusted string: it goes through the one escaping policy for people
//! (`daemoneye_lib::text::escape`: control, bidi and zero-width characters made visible), and
//! in the HTML part then through HTML escaping (`&`, `<`, `>`, `"`, `'`), so a summary
//! holding `<script>` shows as text. The subject is `PREFIX SEVERITY: RULE on HOST` for one
//! alert and `PREFIX N alerts, highest SEVERITY: RULE on HOST and N-1 more` for more, on one
//! line: characters the escaping policy names are removed (no header can be forged through
//! it), and it is cut at 200 characters. Headers of note:
//!
//! - `Message-ID: <FIRST_ALERT_ID.HASH@DOMAIN>`: the first alert's id, 16 hex digits of the
//!   BLAKE3 hash of every id of the mail, and the domain of `from`. The same batch sent again
//!   (after a failure that was not one) has the same Message-ID, so a mail store can drop the
//!   duplicate; a batch that starts with the same alert but carries others gets another one.
//! - `X-DaemonEye-Alert-Ids`: the ids of the mail, in order, separated by `, ` (folded as
//!   RFC 5322 allows).
//! - `Auto-Submitted: auto-generated` (RFC 3834), so that vacation responders stay quiet.
//!
//! # Acknowledged, and errors
//!
//! A mail is acknowledged when the server accepted its DATA (`250` after the final `.`): all
//! its alerts or none. Without a connection pool, each mail is one SMTP session (connect,
//! EHLO, STARTTLS, AUTH, MAIL, RCPT per recipient, DATA, QUIT).
//!
//! | what | class |
//! |---|---|
//! | connection refused or reset, a timeout (`timed out after 10s (…)`), a TLS failure (a certificate that does not verify, no STARTTLS offered), a 4xx reply, any other client error | [`SinkError::Retry`] |
//! | a 5xx reply to the message (`552` too large, `554` refused, a `550` without an addressing code) | [`SinkError::Reject`] of the mail's first alert (the loop dead-letters it and sends the rest again) |
//! | a 5xx about an address: `551`, `553`, or an enhanced status `5.1.x` (`550 5.1.1` no such user) | [`SinkError::GiveUp`]: a wrong `from` or `to` refuses every mail alike; dead-lettering one alert per attempt would empty the queue into the bounded dead letters, so the sink stops, says why, and keeps its alerts until the address is fixed |
//! | `530`, `534`, `535` or `538` (authentication required, too weak, refused, needs encryption) | [`SinkError::GiveUp`]: the credentials cannot work as configured |
//! | a payload that is not an alert | [`SinkError::Reject`], after the alerts before it were mailed |
//!
//!
//! # A quirk of lettre 0.11
//!
//! lettre's rustls `Identity::from_pem(cert, key)` reads the key as PEM but stores `cert`'s
//! bytes as one DER certificate; the sink hands it the DER of the leaf certificate of
//! `client_cert`, so intermediates in that file are not sent (the server must know them).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use daemoneye_lib::alert::{Alert, Severity};
use daemoneye_lib::config::{HumanDuration, SinkConfig};
use daemoneye_lib::text;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters,
};
use lettre::{Message, SmtpTransport, Transport};
use serde::Deserialize;

use super::build::{BuildError, options};
use super::format::parse_alert;
use super::tls::TlsFiles;
use super::{BatchError, Delivery, Sink, SinkError};

/// The most recipients of one sink.
pub const MAX_RECIPIENTS: usize = 50;

/// The longest subject, in characters.
pub const MAX_SUBJECT: usize = 200;

/// The header listing the alert ids of a mail.
pub const ALERT_IDS_HEADER: &str = "X-DaemonEye-Alert-Ids";

/// The email sink's keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailOptions {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    #[serde(default)]
    allow_plaintext: bool,
    from: String,
    to: Vec<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    subject_prefix: Option<String>,
    interval: Option<HumanDuration>,
    max_alerts_per_mail: Option<usize>,
    timeout: Option<HumanDuration>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// `tls`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS required, the certificate checked.
    #[default]
    Starttls,
    /// Plain SMTP.
    None,
}

/// Alerts mailed (see the module documentation).
pub struct EmailSink {
    name: String,
    target: String,
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    interval: Duration,
    max_alerts_per_mail: usize,
    timeout: Duration,
}

impl fmt::Debug for EmailSink {
    /// Without the transport, which holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("subject_prefix", &self.subject_prefix)
            .field("interval", &self.interval)
            .field("max_alerts_per_mail", &self.max_alerts_per_mail)
            .finish_non_exhaustive()
    }
}

/// Whether `host` is this machine's loopback: plain SMTP there never crosses a network.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The password file's content, trimmed: a regular file of at most 4 KiB.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    let what = |err: &dyn fmt::Display| format!("password_file {}: {err}", path.display());
    let meta = std::fs::metadata(path).map_err(|err| what(&err))?;
    if !meta.is_file() {
        return Err(what(&"not a regular file"));
    }
    if meta.len() > 4096 {
        return Err(what(&"larger than 4 KiB"));
    }
    let text = std::fs::read_to_string(path).map_err(|err| what(&err))?;
    let password = text.trim();
    if password.is_empty() {
        return Err(what(&"empty"));
    }
    Ok(password.to_owned())
}

fn mailbox(text: &str, key: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>()
        .map_err(|err| format!("{key}: {} is not a mail address: {err}", text::quoted(text)))
}

impl EmailSink {
    /// The sink a `[[sinks]] type = "email"` table describes. Reads the password and TLS
    /// files and checks every value; connects to nothing.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: EmailOptions = options(sink)?;
        let fail = |reason: String| BuildError::new(sink, reason);
        // An IPv6 address may come in brackets, as in a URL; the resolver and the
        // certificate check take it without.
        let host = options.host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        if host.is_empty() || host.len() > 253 || !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail("host: 1 to 253 printable ASCII characters".to_owned()));
        }
        let tls_files = TlsFiles {
            ca_file: options.ca_file,
            client_cert: options.client_cert,
            client_key: options.client_key,
        };
        let tls = match options.tls {
            TlsMode::Starttls => {
                let material = tls_files.load().map_err(&fail)?;
                let mut builder =
                    TlsParameters::builder(host.clone()).certificate_store(CertificateStore::None);
                for root in &material.roots {
                    builder = builder.add_root_certificate(
                        Certificate::from_der(root.to_vec())
                            .map_err(|err| fail(format!("ca_file: {err}")))?,
                    );
                }
                if let Some(client) = &material.client {
                    // See "A quirk of lettre 0.11" in the module documentation.
                    let leaf = client
                        .chain
                        .first()
                        .map(|cert| cert.to_vec())
                        .unwrap_or_default();
                    builder = builder.identify_with(
                        Identity::from_pem(&leaf, &client.key_pem)
                            .map_err(|err| fail(format!("client_key: {err}")))?,
                    );
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|err| fail(format!("TLS set-up: {err}")))?;
                Tls::Required(parameters)
            }
            TlsMode::None => {
                if tls_files != TlsFiles::default() {
                    return Err(fail(
                        "ca_file, client_cert and client_key need tls = \"starttls\"".to_owned(),
                    ));
                }
                if !is_loopback(&host) && !options.allow_plaintext {
                    return Err(fail(format!(
                        "tls = \"none\" sends alerts (and any password) in clear text to {host}: \
                         use starttls, or set allow_plaintext = true"
                    )));
                }
                Tls::None
            }
        };
        let port = options.port.unwrap_or(match options.tls {
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        });
        if port == 0 {
            return Err(fail("port: must be from 1 to 65535".to_owned()));
        }
        let from = mailbox(&options.from, "from").map_err(&fail)?;
        if options.to.is_empty() || options.to.len() > MAX_RECIPIENTS {
            return Err(fail(format!(
                "to: 1 to {MAX_RECIPIENTS} addresses, not {}",
                options.to.len()
            )));
        }
        let to = options
            .to
            .iter()
            .map(|address| mailbox(address, "to"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(&fail)?;
        let credentials = match (options.username, options.password_file) {
            (None, None) => None,
            (Some(username), Some(path)) => Some(Credentials::new(
                username,
                read_password(&path).map_err(&fail)?,
            )),
            _ => return Err(fail("username and password_file go together".to_owned())),
        };
        let subject_prefix = options
            .subject_prefix
            .unwrap_or_else(|| "[DaemonEye]".to_owned());
        if subject_prefix.chars().any(text::needs_escape) || subject_prefix.chars().count() > 64 {
            return Err(fail(
                "subject_prefix: at most 64 characters, no control or invisible ones".to_owned(),
            ));
        }
        let interval = match options.interval {
            None => Duration::from_secs(60),
            Some(interval) => {
                if let Some(why) = interval.outside(Duration::ZERO, Duration::from_secs(86_400)) {
                    return Err(fail(format!("interval: {why}")));
                }
                interval.get()
            }
        };
        let max_alerts_per_mail = options.max_alerts_per_mail.unwrap_or(100);
        if !(1..=1000).contains(&max_alerts_per_mail) {
            return Err(fail(
                "max_alerts_per_mail: must be from 1 to 1000".to_owned(),
            ));
        }
        let timeout = match options.timeout {
            None => Duration::from_secs(10),
            Some(timeout) => {
                if let Some(why) =
                    timeout.outside(Duration::from_millis(100), Duration::from_secs(600))
                {
                    return Err(fail(format!("timeout: {why}")));
                }
                timeout.get()
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Self {
            name: sink.name.clone(),
            target: format!("smtp {host}:{port}"),
            transport: builder.build(),
            from,
            to,
            subject_prefix,
            interval,
            max_alerts_per_mail,
            timeout,
        })
    }

    /// The mail carrying `alerts` (one or more).
    pub fn message(&self, alerts: &[Alert]) -> Result<Message, SinkError> {
        let subject = subject(&self.subject_prefix, alerts);
        let ids: Vec<&str> = alerts.iter().map(|alert| alert.id.as_str()).collect();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject.clone())
            .date_now()
            .message_id(Some(message_id(&ids, self.from.email.domain())))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(ALERT_IDS_HEADER),
                ids.join(", "),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                plain_body(alerts),
                html_body(&subject, alerts),
            ))
            // Only a missing From or envelope fails here, and both are set above.
            .map_err(|err| {
                SinkError::retry(format!("{}: cannot build the mail: {err}", self.target))
            })
    }

    /// Mails `alerts` (one mail).
    fn send(&self, alerts: &[Alert]) -> Result<(), SinkError> {
        let message = self.message(alerts)?;
        self.transport
            .send(&message)
            .map(drop)
            .map_err(|err| classify(&self.target, self.timeout, &err))
    }
}

/// Whether a socket timeout caused `err` (a read or write past the timeout is `EAGAIN`,
/// which lettre's own `is_timeout` does not count).
fn timed_out(err: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        source = cause.source();
    }
    false
}

/// The class of an SMTP failure (see the module documentation).
fn classify(target: &str, timeout: Duration, err: &lettre::transport::smtp::Error) -> SinkError {
    // The server's words are untrusted: one line, escaped.
    let chain = text::escape(&text::error_chain(err)).into_owned();
    if timed_out(err) {
        return SinkError::retry(format!(
            "{target}: timed out after {} ({chain})",
            HumanDuration::new(timeout)
        ));
    }
    let reason = format!("{target}: {chain}");
    match err.status().map(|code| code.to_string()) {
        Some(code) if err.is_permanent() => match code.as_str() {
            "530" | "534" | "535" | "538" | "551" | "553" => SinkError::give_up(reason),
            _ if chain.contains(" 5.1.") => SinkError::give_up(reason),
            _ => SinkError::reject(reason),
        },
        _ => SinkError::retry(reason),
    }
}

/// `<FIRST_ID.HASH@DOMAIN>` (see the module documentation).
fn message_id(ids: &[&str], domain: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    let hash = text::hex(&hasher.finalize().as_bytes()[..8]);
    let first = ids.first().copied().unwrap_or("none");
    format!("<{first}.{hash}@{domain}>")
}

/// `text` with every character the escaping policy names removed: for the subject line.
fn one_line(text: &str) -> String {
    text.chars().filter(|&c| !text::needs_escape(c)).collect()
}

/// The subject (see the module documentation).
pub fn subject(prefix: &str, alerts: &[Alert]) -> String {
    let highest = alerts
        .iter()
        .map(|alert| alert.severity)
        .max()
        .unwrap_or(Severity::Info);
    let subject = match alerts {
        [] => format!("{prefix} no alerts"),
        [alert] => format!(
            "{prefix} {}: {} on {}",
            alert.severity, alert.rule_name, alert.host
        ),
        [first, rest @ ..] => format!(
            "{prefix} {} alerts, highest {highest}: {} on {} and {} more",
            alerts.len(),
            first.rule_name,
            first.host,
            rest.len()
        ),
    };
    one_line(&subject).chars().take(MAX_SUBJECT).collect()
}

/// The fields of an alert as a person reads them, every value escaped for a person.
fn fields(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("alert id", alert.id.as_str().to_owned()),
        ("host", text::escape(&alert.host).into_owned()),
    ];
    if let Some(site) = &alert.site {
        fields.push(("site", text::escape(site).into_owned()));
    }
    fields.extend([
        ("detected at", text::escape(&alert.detected_at).into_owned()),
        ("scan", alert.scan_id.to_string()),
        (
            "MITRE ATT&CK",
            text::escape(&alert.mitre.join(", ")).into_owned(),
        ),
        ("repeats folded in", alert.suppressed.to_string()),
        ("dedup key", text::escape(&alert.dedup_key).into_owned()),
        ("summary", text::escape(&alert.summary).into_owned()),
    ]);
    fields
}

fn heading(alert: &Alert) -> String {
    format!(
        "[{}] {} ({})",
        alert.severity,
        text::escape(&alert.rule_name),
        text::escape(&alert.rule_id)
    )
}

fn intro(alerts: &[Alert]) -> String {
    match alerts.len() {
        1 => "DaemonEye raised 1 alert.".to_owned(),
        n => format!("DaemonEye raised {n} alerts."),
    }
}

/// The `text/plain` part.
pub fn plain_body(alerts: &[Alert]) -> String {
    let mut out = intro(alerts);
    out.push_str("\n\n");
    for alert in alerts {
        out.push_str(&heading(alert));
        out.push('\n');
        for (name, value) in fields(alert) {
            out.push_str(&format!("  {:<18} {value}\n", format!("{name}:")));
        }
        out.push('\n');
    }
    out
}

/// `text` with `&`, `<`, `>`, `"` and `'` as entities.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `text/html` part.
pub fn html_body(subject: &str, alerts: &[Alert]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<p>{}</p>\n",
        html_escape(subject),
        html_escape(&intro(alerts))
    );
    for alert in alerts {
        out.push_str(&format!(
            "<h3>{}</h3>\n<table>\n",
            html_escape(&heading(alert))
        ));
        for (name, value) in fields(alert) {
            out.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                html_escape(name),
                html_escape(&value)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

impl Sink for EmailSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let mut alerts = Vec::with_capacity(batch.len());
        let mut refused = None;
        for delivery in batch {
            match parse_alert(delivery.payload) {
                Ok(alert) => alerts.push(alert),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for mail in alerts.chunks(self.max_alerts_per_mail) {
            self.send(mail).map_err(|error| BatchError {
                acknowledged,
                error,
            })?;
            acknowledged += mail.len();
        }
        match refused {
            None => Ok(()),
            Some(error) => Err(BatchError {
                acknowledged,
                error,
            }),
        }
    }

    fn max_batch(&self) -> Option<usize> {
        Some(self.max_alerts_per_mail)
    }

    fn pace(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests;
