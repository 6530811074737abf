//! The one HTTP client of the HTTP sinks ([`super::webhook`], [`super::splunk_hec`],
//! [`super::elasticsearch`]): how a sink's `url`, `timeout` and TLS keys become a blocking
//! ureq agent, how a request is sent with every read bounded, and how a failure becomes a
//! [`SinkError`]. Each sink decides only what the receiver's answers mean.
//!
//! # The client
//!
//! One `ureq` 3 agent per sink, built once from the configuration:
//!
//! - `http://` and `https://` URLs only, with a host and without credentials in them (those
//!   go in the sinks' `*_file` keys, so that they never reach a log line); checked when the
//!   sink is built.
//! - TLS is rustls with the ring provider ([`super::tls::provider`]), trusting `ca_file` (or
//!   the system bundle) and presenting `client_cert` and `client_key` for mTLS. An `http://`
//!   URL with TLS keys is refused: the keys would be silently ignored.
//! - `timeout` (default 10 s) bounds each phase of an exchange: connecting (with the TLS
//!   handshake), sending the request, sending its body, receiving the status and headers,
//!   receiving the body; a whole exchange is bounded by five times it. A receiver that
//!   accepts and never answers costs one timeout, then [`SinkError::Retry`]. (One global
//!   deadline per exchange, ureq's `timeout_global`, was measured to cost about a third of
//!   the sink's throughput on loopback: `cargo bench -p daemoneye-agent --bench outbox`.)
//! - HTTP statuses are not errors (`http_status_as_error(false)`): the sinks read them.
//! - No redirects are followed (a redirected POST is a configuration to fix, see
//!   [`common_status`]) and no proxy is taken from the environment (`HTTPS_PROXY` and
//!   friends): the agent talks to the address configured and nothing else.
//! - Response headers are bounded by ureq (64 KiB) and bodies by the reader: at most
//!   [`MAX_BODY`] bytes (more for a bulk response, which the sink says), and the rest is never
//!   read: the connection is dropped instead. A receiver answering megabytes of garbage costs
//!   64 KiB of memory.
//!
//! # Classification
//!
//! [`transport_error`]: every failure before a status arrived (connection refused, DNS, a
//! failed TLS handshake, a timeout, bytes that are not HTTP) is [`SinkError::Retry`] with a
//! reason naming the cause; a TLS failure's reason starts with "TLS", an answer that is not
//! HTTP with "invalid response". [`common_status`] holds the rules the three sinks share for
//! statuses; each sink applies its own first.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use daemoneye_lib::alert::Alert;
use daemoneye_lib::config::{HumanDuration, SinkConfig};
use daemoneye_lib::{fsutil, text};
use ureq::http::Uri;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use super::build::BuildError;
use super::tls::{TlsFiles, TlsMaterial};
use super::{BatchError, Delivery, SinkError};

/// The most bytes of a response body read (error bodies, Splunk's answers).
pub const MAX_BODY: u64 = 64 * 1024;

/// The timeout when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of a secret file (`*_file` keys).
const MAX_SECRET: u64 = 64 * 1024;

/// How much of an error body a reason quotes.
pub const REASON_BODY_CHARS: usize = 200;

/// A secret read from a file: kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of these bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, when it is one line of visible ASCII (a token for a header).
    pub fn header_text(&self) -> Option<&str> {
        let text = std::str::from_utf8(&self.0).ok()?;
        text.bytes().all(|b| b.is_ascii_graphic()).then_some(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The content of the secret file `path` (key `key` of `sink`): a regular file of at most
/// 64 KiB, without the white space around it (an editor's final newline), not empty.
pub fn read_secret(sink: &SinkConfig, key: &str, path: &Path) -> Result<Secret, BuildError> {
    let bytes = fsutil::read_regular_bounded(path, MAX_SECRET)
        .map_err(|err| BuildError::new(sink, format!("{key}: {err}")))?;
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(BuildError::new(
            sink,
            format!("{key}: {} is empty", path.display()),
        ));
    }
    Ok(Secret(trimmed.to_vec()))
}

/// A checked `url`: `http://` or `https://`, a host, no user information.
pub fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|err| format!("url: not a URL ({err})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("url: must start with http:// or https://".to_owned()),
    }
    let Some(authority) = uri.authority() else {
        return Err("url: has no host".to_owned());
    };
    if authority.as_str().contains('@') {
        return Err(
            "url: must not hold credentials (use the sink's *_file keys instead)".to_owned(),
        );
    }
    if authority.host().is_empty() {
        return Err("url: has no host".to_owned());
    }
    Ok(uri)
}

/// `base` with `path` appended (one `/` between them) and `query`, checked again.
pub fn join_url(base: &Uri, path: &str, query: Option<&str>) -> Result<Uri, String> {
    let text = base.to_string();
    let base = text.split(['?', '#']).next().unwrap_or_default();
    let mut url = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    check_url(&url)
}

/// The blocking HTTP client of one sink (see the module documentation).
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    timeout: Duration,
    /// Whether the connections are TLS (an `https://` URL), for the reasons.
    tls: bool,
}

/// An answer with a status: the status and up to the limit of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, cut at the limit the request gave.
    pub body: Vec<u8>,
    /// Whether the body went on past the limit (the rest was not read) or broke off.
    pub truncated: bool,
}

impl Reply {
    /// `HTTP 503 Service Unavailable` and the start of the body, escaped, for a reason.
    pub fn describe(&self) -> String {
        let phrase = ureq::http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .map(|phrase| format!(" {phrase}"))
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&self.body);
        let body = body.trim();
        if body.is_empty() {
            return format!("HTTP {}{phrase}", self.status);
        }
        let mut snippet: String = body.chars().take(REASON_BODY_CHARS).collect();
        if body.chars().nth(REASON_BODY_CHARS).is_some() || self.truncated {
            snippet.push('…');
        }
        format!("HTTP {}{phrase}: {}", self.status, text::escape(&snippet))
    }
}

impl HttpClient {
    /// The client for a sink's `timeout` and, for an `https://` URL, its TLS material.
    pub fn new(timeout: Duration, tls: Option<&TlsMaterial>) -> Result<Self, String> {
        let mut tls_config = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(super::tls::provider());
        if let Some(material) = tls {
            let roots: Vec<Certificate<'static>> = material
                .roots
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            tls_config = tls_config.root_certs(RootCerts::Specific(Arc::new(roots)));
            if let Some(identity) = &material.client {
                let chain: Vec<Certificate<'static>> = identity
                    .chain
                    .iter()
                    .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                    .collect();
                let key = PrivateKey::from_pem(&identity.key_pem)
                    .map_err(|err| format!("client_key: {err}"))?;
                tls_config = tls_config.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            // Checks that the material makes a rustls configuration (the key matches the
            // certificate) now rather than at the first delivery.
            material.client_config()?;
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls_config.build())
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            // Each phase bounded by the timeout (connect, send, the answer's head, its body):
            // measured cheaper per request than one global deadline.
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_send_body(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .user_agent(concat!("daemoneye-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            timeout,
            tls: tls.is_some(),
        })
    }

    /// The client a sink's `url`, `timeout` and TLS keys describe, and the checked URL.
    pub fn from_keys(
        sink: &SinkConfig,
        url: &str,
        timeout: Option<HumanDuration>,
        tls: &TlsFiles,
    ) -> Result<(Self, Uri), BuildError> {
        let uri = check_url(url).map_err(|reason| BuildError::new(sink, reason))?;
        let timeout = timeout.map_or(DEFAULT_TIMEOUT, HumanDuration::get);
        if let Some(why) = HumanDuration::new(timeout)
            .outside(Duration::from_millis(100), Duration::from_secs(600))
        {
            return Err(BuildError::new(sink, format!("timeout: {why}")));
        }
        let material = if uri.scheme_str() == Some("https") {
            Some(tls.load().map_err(|reason| BuildError::new(sink, reason))?)
        } else {
            if *tls != TlsFiles::default() {
                return Err(BuildError::new(
                    sink,
                    "ca_file, client_cert and client_key apply to https:// URLs only",
                ));
            }
            None
        };
        let client = Self::new(timeout, material.as_ref())
            .map_err(|reason| BuildError::new(sink, reason))?;
        Ok((client, uri))
    }

    /// POSTs `body` to `url` with `headers`; reads at most `body_limit` bytes of the answer.
    /// Any failure before a whole status line and headers arrived is a [`SinkError::Retry`]
    /// ([`transport_error`]); a body that breaks off after them is a [`Reply`] marked
    /// `truncated`.
    pub fn post(
        &self,
        url: &Uri,
        headers: &[(&str, &str)],
        body: &[u8],
        body_limit: u64,
    ) -> Result<Reply, SinkError> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request
            .send(body)
            .map_err(|err| transport_error(&err, self.timeout, self.tls))?;
        let status = response.status().as_u16();
        let mut read = Vec::new();
        // The status is the receiver's answer: a body that breaks off afterwards (a reset, the
        // timeout) leaves what was read, marked as cut, for the sink to judge (a webhook's 2xx
        // needs no body; a bulk answer does).
        let complete = response
            .body_mut()
            .as_reader()
            .take(body_limit.saturating_add(1))
            .read_to_end(&mut read)
            .is_ok();
        let truncated = !complete || read.len() as u64 > body_limit;
        read.truncate(usize::try_from(body_limit).unwrap_or(usize::MAX));
        // Dropping the response without reading the rest closes the connection: the rest of
        // an over-long body is never read.
        Ok(Reply {
            status,
            body: read,
            truncated,
        })
    }
}

/// A failure before (or while) an answer arrived, as a [`SinkError::Retry`] naming the
/// cause: they are all transient from here (a receiver down, a network cut, a certificate
/// the operator will replace); configuration errors were refused at build. `tls`: the
/// connection was TLS, which a close by the receiver's side may be about (a receiver that
/// requires a client certificate and got none closes the connection right after the
/// handshake, and the client may see only the close).
pub fn transport_error(err: &ureq::Error, timeout: Duration, tls: bool) -> SinkError {
    use ureq::Error as E;
    let reason = match err {
        E::Timeout(_) => format!(
            "timed out after {} waiting for the receiver",
            HumanDuration::new(timeout)
        ),
        E::HostNotFound => "host not found (DNS)".to_owned(),
        E::ConnectionFailed => "connection failed".to_owned(),
        E::Io(io) => io_reason(io, tls),
        E::Tls(what) => format!("TLS failure: {what}"),
        E::Pem(err) => format!("TLS failure: {err}"),
        E::Rustls(err) => tls_reason(err),
        E::Protocol(err) => format!("invalid response (not HTTP/1.1): {err}"),
        E::LargeResponseHeader(..) => "invalid response: headers past the 64 KiB limit".to_owned(),
        E::BodyExceedsLimit(_) => "invalid response: body too large".to_owned(),
        other => format!("request failed: {other}"),
    };
    SinkError::retry(reason)
}

fn tls_reason(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(why) => {
            format!("TLS handshake failed: the receiver's certificate is not trusted ({why:?})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("TLS handshake failed: the receiver refused it ({alert:?})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

fn io_reason(io: &std::io::Error, tls: bool) -> String {
    use std::io::ErrorKind as K;
    // rustls reports handshake failures through the socket's I/O error.
    if let Some(tls) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_reason(tls);
    }
    match io.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof if tls => {
            format!(
                "TLS connection closed by the receiver (if it requires a client certificate, \
                 check client_cert and client_key): {io}"
            )
        }
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            format!("connection closed by the receiver: {io}")
        }
        K::TimedOut | K::WouldBlock => "timed out waiting for the receiver".to_owned(),
        K::InvalidData => format!("invalid response: {io}"),
        _ => format!("network error: {io}"),
    }
}

/// The rules for a status the three sinks share, applied after a sink's own:
///
/// | status | class | why |
/// |---|---|---|
/// | 2xx | `None` (delivered) | |
/// | 3xx | GiveUp | a redirect is not followed: the `url` should be the final address |
/// | 401, 403 | GiveUp | the credential is refused: every alert would be |
/// | 404, 405, 410 | GiveUp | no such endpoint: the `url` is wrong |
/// | 408, 429, 5xx but 501 | Retry | the receiver is busy, slow or failing |
/// | 501, other 4xx | Reject | the receiver refuses this request |
/// | anything else | Retry | not a final answer |
pub fn common_status(reply: &Reply) -> Option<SinkError> {
    let status = reply.status;
    let what = reply.describe();
    Some(match status {
        200..=299 => return None,
        300..=399 => SinkError::give_up(format!(
            "{what}: redirects are not followed; set url to the final address"
        )),
        401 | 403 => SinkError::give_up(format!("credential refused: {what}")),
        404 | 405 | 410 => SinkError::give_up(format!("no such endpoint, check url: {what}")),
        408 | 429 => SinkError::retry(format!("receiver busy: {what}")),
        501 => SinkError::reject(format!("receiver refuses the request: {what}")),
        500..=599 => SinkError::retry(format!("receiver failed: {what}")),
        400..=499 => SinkError::reject(format!("receiver refuses the request: {what}")),
        _ => SinkError::retry(format!("unexpected answer: {what}")),
    })
}

/// The id of one raise of an alert: `{alert id}-{detected_at in ms since the epoch}`. The
/// alert id alone names the alert, which is raised again (same id, a later `detected_at`)
/// when its dedup window ends: a receiver deduplicating by the alert id alone would drop the
/// new raise. This id is the same for every resend of one raise, and differs between raises.
pub fn event_id(alert: &Alert) -> String {
    let ms = text::parse_time_ms(&alert.detected_at).unwrap_or_default();
    format!("{}-{ms}", alert.id)
}

/// Delivers `batch` one item at a time with `send`, stopping at the first failure: the
/// deliveries before it are acknowledged.
pub fn deliver_each(
    batch: &[Delivery<'_>],
    mut send: impl FnMut(&Delivery<'_>) -> Result<(), SinkError>,
) -> Result<(), BatchError> {
    for (index, delivery) in batch.iter().enumerate() {
        send(delivery).map_err(|error| BatchError {
            acknowledged: index,
            error,
        })?;
    }
    Ok(())
}

/// Encodes each delivery with `encode` up to the first that fails: the encoded prefix, and
/// the error of the one that failed (a payload that is not an alert: [`SinkError::Reject`]).
pub fn encode_prefix<T>(
    batch: &[Delivery<'_>],
    mut encode: impl FnMut(&Delivery<'_>) -> Result<T, SinkError>,
) -> (Vec<T>, Option<SinkError>) {
    let mut encoded = Vec::with_capacity(batch.len());
    for delivery in batch {
        match encode(delivery) {
            Ok(item) => encoded.push(item),
            Err(err) => return (encoded, Some(err)),
        }
    }
    (encoded, None)
}

/// The result of a batch whose first `sent` deliveries went with `result`, when encoding
/// stopped at delivery `sent` with `stopped` (if it did).
pub fn after_prefix(
    result: Result<(), BatchError>,
    sent: usize,
    stopped: Option<SinkError>,
) -> Result<(), BatchError> {
    result?;
    match stopped {
        None => Ok(()),
        Some(error) => Err(BatchError {
            acknowledged: sent,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_and_no_credentials_pass() {
        let check = |url: &str, ok: bool| {
            assert_eq!(check_url(url).is_ok(), ok, "{url}: {:?}", check_url(url));
        };
        check("http://127.0.0.1:8080/hook", true);
        check("https://siem.example:8088", true);
        check("ftp://example.com/", false);
        check("file:///etc/passwd", false);
        check("example.com/hook", false);
        check("https://user:pw@example.com/", false);
        check("https:///nohost", false);
        check("", false);
    }

    #[test]
    fn joined_urls_have_one_slash_and_no_old_query() {
        let base = check_url("https://es.example:9200/").unwrap();
        assert_eq!(
            join_url(&base, "/_bulk", Some("filter_path=items")).unwrap(),
            "https://es.example:9200/_bulk?filter_path=items"
        );
        let base = check_url("http://h/prefix?x=1").unwrap();
        assert_eq!(
            join_url(&base, "services/collector/event", None).unwrap(),
            "http://h/prefix/services/collector/event"
        );
    }

    #[test]
    fn statuses_fall_into_the_documented_classes() {
        let class = |status: u16| match common_status(&reply(status, "")) {
            None => "ok",
            Some(SinkError::Retry { .. }) => "retry",
            Some(SinkError::Reject { .. }) => "reject",
            Some(SinkError::GiveUp { .. }) => "give up",
        };
        for (status, expected) in [
            (200, "ok"),
            (204, "ok"),
            (301, "give up"),
            (400, "reject"),
            (401, "give up"),
            (403, "give up"),
            (404, "give up"),
            (408, "retry"),
            (422, "reject"),
            (429, "retry"),
            (500, "retry"),
            (501, "reject"),
            (503, "retry"),
            (599, "retry"),
            (101, "retry"),
        ] {
            assert_eq!(class(status), expected, "HTTP {status}");
        }
    }

    #[test]
    fn a_reason_quotes_a_bounded_escaped_body() {
        let long = format!("\u{1b}[31m{}", "x".repeat(1000));
        let described = reply(500, &long).describe();
        assert!(described.starts_with("HTTP 500 Internal Server Error: "));
        assert!(!described.contains('\u{1b}'), "{described}");
        assert!(described.chars().count() < 300, "{described}");
        assert_eq!(reply(502, "").describe(), "HTTP 502 Bad Gateway");
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_headers_take_visible_ascii_only() {
        let secret = Secret(b"hunter2".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(secret.header_text(), Some("hunter2"));
        assert_eq!(Secret(b"a b".to_vec()).header_text(), None);
        assert_eq!(Secret(b"a\r\nX: y".to_vec()).header_text(), None);
    }
}
