//! The syslog sink (`[[sinks]] type = "syslog"`): each alert as one RFC 5424 message
//! ([`format::syslog`]: structured data element `daemoneye@32473`, the summary as MSG) sent to a
//! syslog daemon over UDP, TCP or a local Unix socket.
//!
//! # Keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `address` | (required) | `host:port` (an IPv6 address in brackets, `[::1]:514`) for `udp` and `tcp`; the absolute path of the socket for `unix` |
//! | `protocol` | `"tcp"` | `"udp"`, `"tcp"` or `"unix"` |
//! | `facility` | `"local0"` | `user`, `mail`, `daemon`, `auth` (`security` is its old synonym), `syslog`, `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `local0` to `local7` |
//! | `app_name` | `"daemoneye-agent"` | the APP-NAME field: 1 to 48 printable US-ASCII characters |
//! | `timeout` | `"10s"` | bound of every connect, of each datagram's send, and of writing a batch's frames on a stream (100ms to 10m) |
//!
//! The TLS keys of the other network sinks (`ca_file`, `client_cert`, `client_key`) are
//! refused as unknown: this sink has no syslog-over-TLS (RFC 5425) transport. A site that
//! needs one forwards from the local daemon (`unix` or loopback `tcp`), which has it.
//!
//! # On the wire
//!
//! - **UDP** (RFC 5426): one datagram per alert, the message alone. No answer comes back, so
//!   acknowledged means handed to the kernel; a datagram lost on the way is lost, and a port
//!   with nothing listening shows up (as `ECONNREFUSED`, from the ICMP answer) only at a later
//!   send, which then retries.
//! - **TCP** (RFC 6587 §3.4.1 octet counting): `LEN SP MSG` per alert, `LEN` the message's
//!   length in bytes in decimal, on one persistent connection; a batch is one buffer written
//!   in as few `write` calls as the kernel allows. TCP syslog has no application-level
//!   acknowledgement: acknowledged means written into the connection (`flush` is a no-op on a
//!   socket). A receiver or network that fails after that loses at most what the kernel had
//!   buffered and not yet delivered; an agent crash loses nothing that was not acknowledged.
//!   Before each batch the sink checks, without blocking, that the receiver has not closed the
//!   connection (a restarted daemon), and reconnects when it has; after any error the
//!   connection is dropped and the next batch connects anew.
//! - **Unix**: a datagram socket (`SOCK_DGRAM`, as `/dev/log` and rsyslog's imuxsock), one
//!   datagram per alert as over UDP, but the kernel makes the send wait while the receiver's
//!   queue is full, so a datagram is not dropped silently; when the socket is a stream socket
//!   (`EPROTOTYPE` at connect) the sink uses `SOCK_STREAM` with octet counting, as over TCP.
//!   The path may be a symbolic link (systemd's `/dev/log` is one).
//!
//! A message is at most [`MAX_MESSAGE`] bytes (65,000) whatever the transport: alerts are kept
//! whole (a cut message would lose the end of its structured data or summary), one limit for
//! every protocol means switching protocol never changes which alerts get through, and 65,000
//! fits one UDP datagram over IPv4 and IPv6 (RFC 5426 §3.2 allows up to 65,535 less the
//! headers; receivers must take 480 bytes, and should take 2048: rsyslog's default
//! `maxMessageSize` is 8 KiB, so a site with long summaries raises it). A larger message is
//! [`SinkError::Reject`]. The messages of this sink carry no matching rows (those are in
//! the JSON encodings), so in practice they stay well under 2048 bytes.
//!
//! # Errors
//!
//! | what | class |
//! |---|---|
//! | connection refused, host or network unreachable, a name that does not resolve, a connect or send that passes `timeout` (a receiver that accepts and never reads), a connection reset, a Unix socket path that does not exist yet | [`SinkError::Retry`] |
//! | a payload that is not an alert; a message over [`MAX_MESSAGE`] or refused by the kernel as too long (`EMSGSIZE`) | [`SinkError::Reject`] |
//! | a Unix socket path that exists and is not a socket | [`SinkError::GiveUp`] |
//!
//! A batch is rendered first; the first payload that is not an alert ends it there, and the
//! messages before it are sent. A failure during a send reports the messages sent before it
//! as acknowledged. When a connection kept from an earlier batch fails before anything of this
//! batch went out, the sink connects once more at once (a daemon that restarted) before it
//! reports a retry.
//!
//! Name resolution uses the system resolver (`getaddrinfo`), which has no timeout of its own:
//! give an IP address, or a name in `/etc/hosts`, where a slow DNS must not hold the sink.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemoneye_lib::config::{HumanDuration, SinkConfig};
use nix::libc;
use serde::Deserialize;

use super::build::{BuildError, options};
use super::format::{self, Facility};
use super::{BatchError, Delivery, Sink, SinkError};

/// The longest message the sink sends, in bytes (see the module documentation).
pub const MAX_MESSAGE: usize = 65_000;

/// The APP-NAME when `app_name` is not set.
pub const DEFAULT_APP_NAME: &str = "daemoneye-agent";

/// The bound of every connect and send when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Datagrams to `host:port`.
    Udp(String),
    /// Octet-counted frames on a connection to `host:port`.
    Tcp(String),
    /// Datagrams (or octet-counted frames, for a stream socket) to a socket path.
    Unix(PathBuf),
}

/// A syslog sink's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Where messages go.
    pub transport: Transport,
    /// The facility of every message.
    pub facility: Facility,
    /// The APP-NAME field.
    pub app_name: String,
    /// Bound of every connect and send.
    pub timeout: Duration,
}

impl SyslogConfig {
    /// `transport` with the defaults: `local0`, `daemoneye-agent`, 10 s.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            facility: Facility::LOCAL0,
            app_name: DEFAULT_APP_NAME.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The syslog sink's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogOptions {
    address: String,
    #[serde(default)]
    protocol: Protocol,
    facility: Option<String>,
    app_name: Option<String>,
    timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    Udp,
    #[default]
    Tcp,
    Unix,
}

/// The facility a `facility` key names (see the module documentation for the list). `kern`
/// is refused: it is the kernel's, and a message claiming it from a process is a forgery.
pub fn facility_by_name(name: &str) -> Option<Facility> {
    let code = match name {
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Facility::new(code)
}

/// Why `address` is not `host:port`, if it is not.
fn host_port_problem(address: &str) -> Option<&'static str> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Some("an IPv6 address is written [ADDRESS]:PORT");
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Some("not an IPv6 address between the brackets");
        }
        (host, port)
    } else {
        let Some((host, port)) = address.rsplit_once(':') else {
            return Some("expected host:port");
        };
        if host.contains(':') {
            return Some("an IPv6 address is written [ADDRESS]:PORT");
        }
        (host, port)
    };
    if host.is_empty() || host.len() > 253 || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Some("the host must be 1 to 253 printable ASCII characters");
    }
    match port.parse::<u16>() {
        Ok(1..) => None,
        _ => Some("the port must be a number from 1 to 65535"),
    }
}

impl SyslogSink {
    /// The sink a `[[sinks]] type = "syslog"` table describes. Checks the values; connects to
    /// nothing.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: SyslogOptions = options(sink)?;
        let transport = match options.protocol {
            Protocol::Udp | Protocol::Tcp => {
                if let Some(why) = host_port_problem(&options.address) {
                    return Err(BuildError::new(
                        sink,
                        format!("address {:?}: {why}", options.address),
                    ));
                }
                if matches!(options.protocol, Protocol::Udp) {
                    Transport::Udp(options.address)
                } else {
                    Transport::Tcp(options.address)
                }
            }
            Protocol::Unix => {
                let path = PathBuf::from(&options.address);
                if !path.is_absolute() {
                    return Err(BuildError::new(
                        sink,
                        "address: the socket path of protocol \"unix\" must be absolute",
                    ));
                }
                Transport::Unix(path)
            }
        };
        let mut config = SyslogConfig::new(transport);
        if let Some(name) = &options.facility {
            config.facility = facility_by_name(name).ok_or_else(|| {
                BuildError::new(
                    sink,
                    format!(
                        "facility {name:?}: expected user, mail, daemon, auth, security, syslog, \
                         lpr, news, uucp, cron, authpriv, ftp or local0 to local7"
                    ),
                )
            })?;
        }
        if let Some(app_name) = options.app_name {
            // RFC 5424 §6: APP-NAME = 1*48PRINTUSASCII.
            if !(1..=48).contains(&app_name.len())
                || !app_name.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(BuildError::new(
                    sink,
                    "app_name: 1 to 48 printable ASCII characters without spaces (RFC 5424)",
                ));
            }
            config.app_name = app_name;
        }
        if let Some(timeout) = options.timeout {
            if let Some(why) = timeout.outside(Duration::from_millis(100), Duration::from_secs(600))
            {
                return Err(BuildError::new(sink, format!("timeout: {why}")));
            }
            config.timeout = timeout.get();
        }
        Ok(Self::new(sink.name.clone(), config))
    }

    /// A sink named `name`; it connects at the first delivery.
    pub fn new(name: impl Into<String>, config: SyslogConfig) -> Self {
        Self {
            name: name.into(),
            config,
            conn: None,
            procid: std::process::id(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SyslogConfig {
        &self.config
    }

    /// The payload as the message this sink sends, or [`SinkError::Reject`].
    pub fn render(&self, payload: &[u8]) -> Result<String, SinkError> {
        let alert = format::parse_alert(payload)?;
        let message = with_app_name(
            format::syslog(&alert, self.config.facility, Some(self.procid)),
            &self.config.app_name,
        );
        if message.len() > MAX_MESSAGE {
            return Err(SinkError::reject(format!(
                "syslog message of {} bytes is over the sink's limit of {MAX_MESSAGE}",
                message.len()
            )));
        }
        Ok(message)
    }

    fn target(&self) -> String {
        match &self.config.transport {
            Transport::Udp(address) => format!("udp {address}"),
            Transport::Tcp(address) => format!("tcp {address}"),
            Transport::Unix(path) => format!("unix socket {}", path.display()),
        }
    }

    fn timed_out(&self, doing: &str) -> SinkError {
        SinkError::retry(format!(
            "{}: timed out after {} {doing}",
            self.target(),
            humanize(self.config.timeout)
        ))
    }

    /// The class of an I/O error while `doing`.
    fn io_error(&self, err: &io::Error, doing: &str) -> SinkError {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timed_out(doing),
            _ => SinkError::retry(format!("{}: {doing}: {err}", self.target())),
        }
    }

    fn resolve(&self, address: &str) -> Result<Vec<SocketAddr>, SinkError> {
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|err| SinkError::retry(format!("{}: cannot resolve: {err}", self.target())))?
            .collect();
        if addrs.is_empty() {
            return Err(SinkError::retry(format!(
                "{}: the name resolves to no address",
                self.target()
            )));
        }
        Ok(addrs)
    }

    fn connect(&self) -> Result<Conn, SinkError> {
        let timeout = Some(self.config.timeout);
        match &self.config.transport {
            Transport::Udp(address) => {
                let addr = self.resolve(address)?[0];
                let local: IpAddr = if addr.is_ipv4() {
                    Ipv4Addr::UNSPECIFIED.into()
                } else {
                    Ipv6Addr::UNSPECIFIED.into()
                };
                let socket = UdpSocket::bind((local, 0))
                    .map_err(|err| self.io_error(&err, "binding a UDP socket"))?;
                socket
                    .connect(addr)
                    .map_err(|err| self.io_error(&err, "connecting"))?;
                socket
                    .set_write_timeout(timeout)
                    .map_err(|err| self.io_error(&err, "setting the send timeout"))?;
                Ok(Conn::Udp(socket))
            }
            Transport::Tcp(address) => {
                let mut last = None;
                for addr in self.resolve(address)? {
                    match TcpStream::connect_timeout(&addr, self.config.timeout) {
                        Ok(stream) => {
                            stream
                                .set_write_timeout(timeout)
                                .map_err(|err| self.io_error(&err, "setting the send timeout"))?;
                            return Ok(Conn::TcpStream(stream));
                        }
                        Err(err) => last = Some(self.io_error(&err, "connecting")),
                    }
                }
                Err(last.unwrap_or_else(|| self.timed_out("connecting")))
            }
            Transport::Unix(path) => {
                // stat, not lstat: /dev/log is a symbolic link to the journal's socket on
                // systemd hosts. What must be refused is a path that is no socket at all.
                match std::fs::metadata(path) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        return Err(SinkError::retry(format!(
                            "{}: no such socket (is the syslog daemon running?)",
                            self.target()
                        )));
                    }
                    Err(err) => return Err(self.io_error(&err, "checking the path")),
                    Ok(meta) if !meta.file_type().is_socket() => {
                        return Err(SinkError::give_up(format!(
                            "{} is not a socket",
                            path.display()
                        )));
                    }
                    Ok(_) => {}
                }
                let socket = UnixDatagram::unbound()
                    .map_err(|err| self.io_error(&err, "creating a socket"))?;
                match socket.connect(path) {
                    Ok(()) => {
                        socket
                            .set_write_timeout(timeout)
                            .map_err(|err| self.io_error(&err, "setting the send timeout"))?;
                        Ok(Conn::UnixDatagram(socket))
                    }
                    Err(err) if err.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        let stream = connect_stream(path)
                            .map_err(|err| self.io_error(&err, "connecting"))?;
                        stream
                            .set_write_timeout(timeout)
                            .map_err(|err| self.io_error(&err, "setting the send timeout"))?;
                        Ok(Conn::UnixStream(stream))
                    }
                    Err(err) => Err(self.io_error(&err, "connecting")),
                }
            }
        }
    }

    /// Sends `messages` on the connection, connecting first if there is none (or the kept one
    /// was closed by the receiver).
    fn send_all(&mut self, messages: &[String]) -> Result<(), BatchError> {
        if messages.is_empty() {
            return Ok(());
        }
        // A UDP socket is not tried twice: the error it reports belongs to an earlier
        // datagram, and a fresh socket would only hide that nothing listens.
        let reused = match self.conn.as_ref() {
            Some(conn) if conn.peer_closed() => {
                self.conn = None;
                false
            }
            Some(Conn::Udp(_)) | None => false,
            Some(_) => true,
        };
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let mut result = self.write(&mut conn, messages);
        if reused && matches!(result, Err((0, 0, _))) {
            // A connection kept from an earlier batch failed before anything of this batch
            // went out: the receiver restarted, most likely. One fresh try.
            conn = self.connect()?;
            result = self.write(&mut conn, messages);
        }
        match result {
            Ok(()) => {
                self.conn = Some(conn);
                Ok(())
            }
            Err((acknowledged, _, error)) => Err(BatchError {
                acknowledged,
                error,
            }),
        }
    }

    /// Writes the messages; on failure, how many went out whole, how many bytes went out, and
    /// the error.
    fn write(&self, conn: &mut Conn, messages: &[String]) -> Result<(), (usize, usize, SinkError)> {
        match conn {
            Conn::Udp(socket) => self.write_datagrams(messages, |bytes| socket.send(bytes)),
            Conn::UnixDatagram(socket) => {
                self.write_datagrams(messages, |bytes| socket.send(bytes))
            }
            Conn::TcpStream(stream) => self.write_frames(stream, messages),
            Conn::UnixStream(stream) => self.write_frames(stream, messages),
        }
    }

    fn write_datagrams(
        &self,
        messages: &[String],
        mut send: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> Result<(), (usize, usize, SinkError)> {
        let mut bytes = 0;
        for (sent, message) in messages.iter().enumerate() {
            match send(message.as_bytes()) {
                Ok(n) if n == message.len() => bytes += n,
                Ok(n) => {
                    return Err((
                        sent,
                        bytes + n,
                        SinkError::retry(format!(
                            "{}: the kernel sent {n} of a {}-byte datagram",
                            self.target(),
                            message.len()
                        )),
                    ));
                }
                Err(err) if err.raw_os_error() == Some(libc::EMSGSIZE) => {
                    return Err((
                        sent,
                        bytes,
                        SinkError::reject(format!(
                            "{}: a datagram of {} bytes is too long for this receiver",
                            self.target(),
                            message.len()
                        )),
                    ));
                }
                Err(err) => return Err((sent, bytes, self.io_error(&err, "sending"))),
            }
        }
        Ok(())
    }

    /// RFC 6587 §3.4.1 octet counting, the whole batch as one buffer, within one `timeout`.
    fn write_frames(
        &self,
        stream: &mut impl TimedWrite,
        messages: &[String],
    ) -> Result<(), (usize, usize, SinkError)> {
        let mut buffer = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
        let mut ends = Vec::with_capacity(messages.len());
        for message in messages {
            buffer.extend_from_slice(message.len().to_string().as_bytes());
            buffer.push(b' ');
            buffer.extend_from_slice(message.as_bytes());
            ends.push(buffer.len());
        }
        let whole = |written: usize| ends.iter().take_while(|&&end| end <= written).count();
        let deadline = Instant::now() + self.config.timeout;
        let mut written = 0;
        while written < buffer.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((whole(written), written, self.timed_out("sending")));
            }
            if let Err(err) = stream.set_timeout(left) {
                return Err((
                    whole(written),
                    written,
                    self.io_error(&err, "setting the send timeout"),
                ));
            }
            match stream.write(&buffer[written..]) {
                Ok(0) => {
                    return Err((
                        whole(written),
                        written,
                        SinkError::retry(format!(
                            "{}: the connection takes no more data",
                            self.target()
                        )),
                    ));
                }
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err((whole(written), written, self.io_error(&err, "sending"))),
            }
        }
        if let Err(err) = stream.flush() {
            return Err((whole(written), written, self.io_error(&err, "flushing")));
        }
        Ok(())
    }
}

/// A stream with a settable send timeout.
trait TimedWrite: Write {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl TimedWrite for TcpStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(timeout))
    }
}

impl TimedWrite for UnixStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(timeout))
    }
}

/// A duration as the configuration writes it (`10s`, `500ms`).
fn humanize(duration: Duration) -> String {
    HumanDuration::new(duration).to_string()
}

/// `message` (as [`format::syslog`] writes it) with APP-NAME `app`: the fourth field of the
/// header. The three before it (`<PRI>1`, TIMESTAMP, HOSTNAME) never hold a space.
fn with_app_name(message: String, app: &str) -> String {
    if app == DEFAULT_APP_NAME {
        return message;
    }
    let mut spaces = message.match_indices(' ').map(|(at, _)| at);
    match (spaces.nth(2), spaces.next()) {
        (Some(start), Some(end)) => {
            let mut out = String::with_capacity(message.len() + app.len());
            out.push_str(&message[..=start]);
            out.push_str(app);
            out.push_str(&message[end..]);
            out
        }
        _ => message,
    }
}

/// An open socket.
#[derive(Debug)]
enum Conn {
    Udp(UdpSocket),
    TcpStream(TcpStream),
    UnixDatagram(UnixDatagram),
    UnixStream(UnixStream),
}

impl Conn {
    /// Whether the receiver closed a kept stream (it never sends on a syslog connection, so
    /// anything readable is the end or an error). Checked without blocking; datagram sockets
    /// have no connection to lose and answer `false`.
    fn peer_closed(&self) -> bool {
        fn closed(mut stream: impl Read, set_nonblocking: impl Fn(bool) -> io::Result<()>) -> bool {
            if set_nonblocking(true).is_err() {
                return true;
            }
            let mut discard = [0_u8; 64];
            let closed = match stream.read(&mut discard) {
                Ok(0) => true,
                Ok(_) => false,
                Err(err) => err.kind() != io::ErrorKind::WouldBlock,
            };
            set_nonblocking(false).is_err() || closed
        }
        match self {
            Self::Udp(_) | Self::UnixDatagram(_) => false,
            Self::TcpStream(stream) => closed(stream, |on| stream.set_nonblocking(on)),
            Self::UnixStream(stream) => closed(stream, |on| stream.set_nonblocking(on)),
        }
    }
}

/// Alerts sent to a syslog daemon (see the module documentation).
#[derive(Debug)]
pub struct SyslogSink {
    name: String,
    config: SyslogConfig,
    conn: Option<Conn>,
    procid: u32,
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let mut messages = Vec::with_capacity(batch.len());
        let mut refused = None;
        for delivery in batch {
            match self.render(delivery.payload) {
                Ok(message) => messages.push(message),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        if let Err(err) = self.send_all(&messages) {
            self.conn = None;
            return Err(err);
        }
        match refused {
            None => Ok(()),
            Some(error) => Err(BatchError {
                acknowledged: messages.len(),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests;

/// Connects a Unix stream socket without blocking: `UnixStream::connect` blocks while the
/// listener's backlog is full (a wedged syslog daemon), and has no timeout. Non-blocking,
/// a full backlog is `EAGAIN` at once (a retry); the connected stream is then made blocking
/// again, its writes bounded by the send timeout.
fn connect_stream(path: &Path) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = UnixAddr::new(path)?;
    connect(fd.as_raw_fd(), &address)?;
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}
