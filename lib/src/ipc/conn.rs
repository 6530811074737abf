//! A framed connection: reads and writes whole messages with limits and timeouts, and performs
//! the version handshake.
//!
//! # Handshake
//!
//! 1. The client sends `Hello` with the range of protocol versions it speaks, its role and the
//!    largest frame it accepts.
//! 2. The server checks the role and picks the highest version both speak. If there is none, or
//!    the role is not one it serves, it sends `ProtocolError` naming the reason and closes.
//!    Otherwise it answers `Welcome` with the chosen version and its own frame limit.
//! 3. The client checks that the chosen version is in its range and the server's role is the
//!    one it meant to reach.
//!
//! The whole handshake must finish within [`Limits::handshake_timeout`]. Afterwards each side
//! sends frames no larger than the smaller of the two limits.
//!
//! # Timeouts
//!
//! Waiting for the first byte of a frame has no time limit (the agent's connection to procmond
//! is idle between scans), but once a frame has started, the rest must arrive within
//! [`Limits::frame_timeout`], so that a peer that sends a header and then stalls cannot hold a
//! connection and its buffer forever.

use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::frame::{self, FrameHeader, HEADER_LEN, MessageType};
use super::proto::{self, ErrorCode, Role};
use super::{IpcError, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Bounds on what a peer may make this end wait for or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame payload accepted (`ipc.max_frame_bytes`).
    pub max_frame_bytes: u32,
    /// Time allowed for the whole handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for the rest of a frame once its first byte has arrived.
    pub frame_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
        }
    }
}

/// What the handshake settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version both ends speak.
    pub version: u32,
    /// The peer's role.
    pub peer_role: Role,
    /// The peer's software version, for logs and health reports.
    pub peer_software_version: String,
    /// The server's pid (known to the client only).
    pub peer_pid: Option<u32>,
    /// The largest frame payload this end may send: the smaller of both limits.
    pub send_limit: u32,
    /// The optional features both ends agreed on (see [`features`](super::features)).
    pub features: Vec<String>,
}

impl Negotiated {
    /// Whether both ends agreed on `feature`.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// A connection that carries whole messages.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    limits: Limits,
    negotiated: Negotiated,
    write_buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Connects as a client: sends `Hello` as `role` offering `features`, expects `Welcome`
    /// from `server_role`.
    pub async fn client_handshake(
        stream: S,
        limits: Limits,
        role: Role,
        server_role: Role,
        features: &[&str],
    ) -> Result<Self, IpcError> {
        let mut conn = Self::unnegotiated(stream, limits);
        let hello = proto::Hello {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            role: role as i32,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_frame_bytes: u64::from(limits.max_frame_bytes),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        };
        let welcome = with_timeout(limits.handshake_timeout, "the handshake", async {
            conn.send(MessageType::Hello, &hello).await?;
            conn.recv::<proto::Welcome>(MessageType::Welcome).await
        })
        .await?;
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&welcome.version) {
            return Err(IpcError::IncompatibleVersion {
                peer_min: welcome.version,
                peer_max: welcome.version,
            });
        }
        check_peer_limit(limits, welcome.max_frame_bytes)?;
        let peer_role = welcome.role();
        if peer_role != server_role {
            return Err(IpcError::WrongRole {
                expected: vec![server_role],
                got: peer_role,
            });
        }
        // The server may only accept what was offered: anything else is a confused or hostile
        // peer, and acting on a feature this end never asked for would misread its frames.
        if let Some(extra) = welcome
            .features
            .iter()
            .find(|f| !features.contains(&f.as_str()))
        {
            return Err(IpcError::Decode {
                kind: MessageType::Welcome,
                reason: format!("the server accepted feature {extra:?}, which was not offered"),
            });
        }
        conn.negotiated = Negotiated {
            version: welcome.version,
            peer_role,
            peer_software_version: welcome.software_version,
            peer_pid: Some(welcome.pid),
            send_limit: send_limit(limits.max_frame_bytes, welcome.max_frame_bytes),
            features: welcome.features,
        };
        Ok(conn)
    }

    /// Accepts a client as `role`, serving clients whose role is one of `accepted`, and
    /// agreeing to those of the client's offered features that are in `supported`.
    ///
    /// On failure the client has been sent a `ProtocolError` saying why (as far as the
    /// connection still works) and the returned error says the same.
    pub async fn server_handshake(
        stream: S,
        limits: Limits,
        role: Role,
        accepted: &[Role],
        supported: &[&str],
    ) -> Result<Self, IpcError> {
        let mut conn = Self::unnegotiated(stream, limits);
        let result = with_timeout(limits.handshake_timeout, "the handshake", async {
            let hello = conn.recv::<proto::Hello>(MessageType::Hello).await?;
            let peer_role = hello.role();
            if !accepted.contains(&peer_role) {
                return Err(IpcError::WrongRole {
                    expected: accepted.to_vec(),
                    got: peer_role,
                });
            }
            check_peer_limit(limits, hello.max_frame_bytes)?;
            let version = PROTOCOL_VERSION.min(hello.max_version);
            if version < MIN_PROTOCOL_VERSION.max(hello.min_version) {
                return Err(IpcError::IncompatibleVersion {
                    peer_min: hello.min_version,
                    peer_max: hello.max_version,
                });
            }
            // Unknown features are ignored, not refused: a newer client may offer more.
            let mut features: Vec<String> = hello
                .features
                .iter()
                .filter(|f| supported.contains(&f.as_str()))
                .cloned()
                .collect();
            features.sort_unstable();
            features.dedup();
            let welcome = proto::Welcome {
                version,
                role: role as i32,
                software_version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                max_frame_bytes: u64::from(limits.max_frame_bytes),
                features: features.clone(),
            };
            conn.send(MessageType::Welcome, &welcome).await?;
            Ok(Negotiated {
                version,
                peer_role,
                peer_software_version: hello.software_version,
                peer_pid: None,
                send_limit: send_limit(limits.max_frame_bytes, hello.max_frame_bytes),
                features,
            })
        })
        .await;
        match result {
            Ok(negotiated) => {
                conn.negotiated = negotiated;
                Ok(conn)
            }
            Err(err) => {
                // A client that left says nothing more; anyone else hears why.
                if !matches!(err, IpcError::Closed) {
                    conn.refuse(&err).await;
                }
                Err(err)
            }
        }
    }

    /// Tells a client that was not even handshaken why it is refused (its uid, or too many
    /// connections), then closes the connection.
    pub async fn refuse_unaccepted(stream: S, limits: Limits, code: ErrorCode, message: &str) {
        Self::unnegotiated(stream, limits)
            .refuse_with(code, message)
            .await;
    }

    fn unnegotiated(stream: S, limits: Limits) -> Self {
        Self {
            stream,
            limits,
            negotiated: Negotiated {
                version: 0,
                peer_role: Role::Unspecified,
                peer_software_version: String::new(),
                peer_pid: None,
                // Until the peer has said otherwise, the handshake messages (a few dozen bytes)
                // are all that is sent.
                send_limit: limits.max_frame_bytes,
                features: Vec::new(),
            },
            write_buf: Vec::new(),
        }
    }

    /// Splits the connection into a reading and a writing half, so that one task can wait
    /// for frames while others send (requests in flight at once, answers out of order).
    pub fn into_split(
        self,
    ) -> (
        Negotiated,
        FrameReader<ReadHalf<S>>,
        FrameWriter<WriteHalf<S>>,
    ) {
        let (read, write) = tokio::io::split(self.stream);
        let reader = FrameReader {
            stream: read,
            limits: self.limits,
        };
        let writer = FrameWriter {
            stream: write,
            limits: self.limits,
            send_limit: self.negotiated.send_limit,
            write_buf: self.write_buf,
        };
        (self.negotiated, reader, writer)
    }

    /// What the handshake settled.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Reads one whole frame and checks its checksum.
    ///
    /// Returns [`IpcError::Closed`] when the peer closed the connection cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<(MessageType, Vec<u8>), IpcError> {
        read_frame(&mut self.stream, self.limits).await
    }

    /// Reads one frame that must hold a `kind` message, and decodes it.
    ///
    /// A `ProtocolError` from the peer becomes [`IpcError::Refused`]; any other type is
    /// [`IpcError::Unexpected`].
    pub async fn recv<M: Message + Default>(&mut self, kind: MessageType) -> Result<M, IpcError> {
        let (got, payload) = self.read_frame().await?;
        expect(kind, got, &payload)
    }

    /// Encodes `message` into one frame of type `kind` and sends it.
    pub async fn send<M: Message>(
        &mut self,
        kind: MessageType,
        message: &M,
    ) -> Result<(), IpcError> {
        let limit = self.negotiated.send_limit;
        send(
            &mut self.stream,
            self.limits,
            limit,
            &mut self.write_buf,
            kind,
            message,
        )
        .await
    }

    /// Tells the peer why this end is closing (best effort: the connection may already be
    /// broken), then shuts the connection down.
    pub async fn refuse(&mut self, err: &IpcError) {
        self.refuse_with(err.code(), &err.to_string()).await;
    }

    /// Sends `ProtocolError { code, message }` (best effort) and shuts the connection down.
    pub async fn refuse_with(&mut self, code: ErrorCode, message: &str) {
        let limit = self.negotiated.send_limit;
        refuse(
            &mut self.stream,
            self.limits,
            limit,
            &mut self.write_buf,
            code,
            message,
        )
        .await;
    }
}

/// The reading half of a split [`Connection`].
#[derive(Debug)]
pub struct FrameReader<R> {
    stream: R,
    limits: Limits,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads one whole frame and checks its checksum (as [`Connection::read_frame`]).
    pub async fn read_frame(&mut self) -> Result<(MessageType, Vec<u8>), IpcError> {
        read_frame(&mut self.stream, self.limits).await
    }
}

/// The writing half of a split [`Connection`].
#[derive(Debug)]
pub struct FrameWriter<W> {
    stream: W,
    limits: Limits,
    send_limit: u32,
    write_buf: Vec<u8>,
}

impl<W: AsyncWrite + Send + 'static> FrameWriter<W> {
    /// The same writer over a boxed stream, so that its type does not name the socket's.
    pub fn boxed(self) -> FrameWriter<std::pin::Pin<Box<dyn AsyncWrite + Send>>> {
        FrameWriter {
            stream: Box::pin(self.stream),
            limits: self.limits,
            send_limit: self.send_limit,
            write_buf: self.write_buf,
        }
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Encodes `message` into one frame of type `kind` and sends it (as [`Connection::send`]).
    pub async fn send<M: Message>(
        &mut self,
        kind: MessageType,
        message: &M,
    ) -> Result<(), IpcError> {
        send(
            &mut self.stream,
            self.limits,
            self.send_limit,
            &mut self.write_buf,
            kind,
            message,
        )
        .await
    }

    /// The largest payload this end may send.
    pub fn send_limit(&self) -> u32 {
        self.send_limit
    }

    /// Sends `ProtocolError { code, message }` (best effort) and shuts the writing side down.
    pub async fn refuse_with(&mut self, code: ErrorCode, message: &str) {
        refuse(
            &mut self.stream,
            self.limits,
            self.send_limit,
            &mut self.write_buf,
            code,
            message,
        )
        .await;
    }
}

/// Sends `ProtocolError { code, message }` (best effort) and shuts `stream` down.
async fn refuse<W: AsyncWrite + Unpin>(
    stream: &mut W,
    limits: Limits,
    limit: u32,
    write_buf: &mut Vec<u8>,
    code: ErrorCode,
    message: &str,
) {
    let refusal = proto::ProtocolError {
        code: code as i32,
        message: message.to_owned(),
    };
    // Errors are ignored: the peer may be gone or may never read, and either way this end
    // is done with it.
    let _ = send(
        stream,
        limits,
        limit,
        write_buf,
        MessageType::ProtocolError,
        &refusal,
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Decodes `payload`, which arrived as `got`, as the `kind` message that was expected.
pub fn expect<M: Message + Default>(
    kind: MessageType,
    got: MessageType,
    payload: &[u8],
) -> Result<M, IpcError> {
    if got == kind {
        return decode(kind, payload);
    }
    if got == MessageType::ProtocolError {
        let refusal: proto::ProtocolError = decode(got, payload)?;
        return Err(IpcError::Refused {
            code: refusal.code(),
            message: refusal.message,
        });
    }
    Err(IpcError::Unexpected {
        expected: kind.name(),
        got,
    })
}

async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    limits: Limits,
) -> Result<(MessageType, Vec<u8>), IpcError> {
    let mut header = [0_u8; HEADER_LEN];
    // The first byte may take as long as the peer likes: an idle connection is normal.
    match stream.read(&mut header[..1]).await {
        Ok(0) => return Err(IpcError::Closed),
        Ok(_) => {}
        Err(err) => return Err(read_error(err)),
    }
    with_timeout(limits.frame_timeout, "the rest of a frame", async {
        read_exact(stream, &mut header[1..], 1, HEADER_LEN).await?;
        let parsed = FrameHeader::parse(&header, limits.max_frame_bytes)?;
        let len = parsed.len as usize;
        // Grow the buffer as bytes actually arrive rather than trusting the length (a peer
        // that announces 16 MiB and sends nothing costs 64 KiB), doubling so that a large
        // frame is not copied over and over, but never past the length announced.
        let mut payload: Vec<u8> = Vec::new();
        while payload.len() < len {
            let start = payload.len();
            let end = (start * 2).max(64 * 1024).min(len);
            payload.reserve_exact(end - start);
            payload.resize(end, 0);
            read_exact(
                stream,
                &mut payload[start..],
                HEADER_LEN + start,
                HEADER_LEN + len,
            )
            .await?;
        }
        parsed.check_payload(&payload)?;
        Ok((parsed.kind, payload))
    })
    .await
}

async fn send<W: AsyncWrite + Unpin, M: Message>(
    stream: &mut W,
    limits: Limits,
    limit: u32,
    write_buf: &mut Vec<u8>,
    kind: MessageType,
    message: &M,
) -> Result<(), IpcError> {
    let len = message.encoded_len();
    if len > limit as usize {
        return Err(IpcError::MessageTooLarge { len, max: limit });
    }
    let mut buf = std::mem::take(write_buf);
    buf.clear();
    buf.reserve(HEADER_LEN + len);
    let start = frame::start_frame(&mut buf, kind);
    // Encoding into a Vec with enough capacity cannot fail; the error is still mapped
    // rather than unwrapped because it costs nothing.
    message
        .encode(&mut buf)
        .map_err(|_| IpcError::MessageTooLarge { len, max: limit })?;
    frame::finish_frame(&mut buf, start, limit)?;
    let result = with_timeout(limits.frame_timeout, "the peer to accept a frame", async {
        stream
            .write_all(&buf)
            .await
            .map_err(|err| IpcError::io("writing a frame", err))?;
        stream
            .flush()
            .await
            .map_err(|err| IpcError::io("writing a frame", err))
    })
    .await;
    // Keep the buffer for the next message unless it grew for an exceptional one.
    if buf.capacity() <= 1024 * 1024 {
        *write_buf = buf;
    }
    result
}

/// Refuses a peer whose frame limit is too small to carry a process record (or left unset,
/// which proto3 reads as 0): every answer to it would fail to send.
fn check_peer_limit(limits: Limits, announced: u64) -> Result<(), IpcError> {
    let required = crate::config::MIN_FRAME_BYTES.min(limits.max_frame_bytes);
    if announced < u64::from(required) {
        return Err(IpcError::FrameLimitTooSmall {
            announced,
            required,
        });
    }
    Ok(())
}

/// The largest frame this end may send: its own limit or the peer's, whichever is smaller.
fn send_limit(ours: u32, theirs: u64) -> u32 {
    u32::try_from(theirs).map_or(ours, |theirs| ours.min(theirs))
}

/// Decodes a payload as the message `kind` names.
pub fn decode<M: Message + Default>(kind: MessageType, payload: &[u8]) -> Result<M, IpcError> {
    M::decode(payload).map_err(|err| IpcError::Decode {
        kind,
        reason: err.to_string(),
    })
}

async fn with_timeout<T>(
    after: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, IpcError>>,
) -> Result<T, IpcError> {
    tokio::time::timeout(after, work)
        .await
        .unwrap_or(Err(IpcError::Timeout { what, after }))
}

/// Fills `buf`, reporting a close as a truncated frame of `expected` bytes.
async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    already: usize,
    expected: usize,
) -> Result<(), IpcError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) => {
                return Err(IpcError::Truncated {
                    got: already + filled,
                    expected,
                });
            }
            Ok(n) => filled += n,
            Err(err) => return Err(read_error(err)),
        }
    }
    Ok(())
}

fn read_error(err: std::io::Error) -> IpcError {
    match err.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => IpcError::Closed,
        _ => IpcError::io("reading a frame", err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, duplex};

    fn limits() -> Limits {
        Limits {
            max_frame_bytes: 4096,
            handshake_timeout: Duration::from_millis(500),
            frame_timeout: Duration::from_millis(300),
        }
    }

    async fn pair() -> (Connection<DuplexStream>, Connection<DuplexStream>) {
        let (a, b) = duplex(64 * 1024);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            limits(),
            Role::Collector,
            &[Role::Agent],
            &[],
        ));
        let client = Connection::client_handshake(a, limits(), Role::Agent, Role::Collector, &[])
            .await
            .unwrap();
        (client, server.await.unwrap().unwrap())
    }

    /// Sends raw bytes to a server in handshake and returns the server's error and what it
    /// sent back.
    async fn server_sees(bytes: Vec<u8>) -> (IpcError, Vec<u8>) {
        let (mut a, b) = duplex(64 * 1024);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            limits(),
            Role::Collector,
            &[Role::Agent],
            &[],
        ));
        a.write_all(&bytes).await.unwrap();
        // End of our side: a truncated frame is then truncated, not merely slow.
        a.shutdown().await.unwrap();
        let err = server.await.unwrap().unwrap_err();
        let mut reply = Vec::new();
        a.read_to_end(&mut reply).await.unwrap();
        (err, reply)
    }

    fn refusal_in(reply: &[u8]) -> proto::ProtocolError {
        let (kind, payload, _) = frame::decode(reply, 4096).unwrap().unwrap();
        assert_eq!(kind, MessageType::ProtocolError);
        decode(kind, payload).unwrap()
    }

    fn hello(min: u32, max: u32, role: Role) -> Vec<u8> {
        let hello = proto::Hello {
            min_version: min,
            max_version: max,
            role: role as i32,
            software_version: "test".into(),
            max_frame_bytes: 4096,
            features: Vec::new(),
        };
        frame::encode(MessageType::Hello, &hello.encode_to_vec(), 4096).unwrap()
    }

    #[tokio::test]
    async fn handshake_settles_version_and_limits() {
        let (mut client, mut server) = pair().await;
        assert_eq!(client.negotiated().version, PROTOCOL_VERSION);
        assert_eq!(client.negotiated().peer_role, Role::Collector);
        assert_eq!(client.negotiated().peer_pid, Some(std::process::id()));
        assert_eq!(server.negotiated().peer_role, Role::Agent);
        let request = proto::CollectorRequest {
            request_id: 7,
            kind: Some(proto::collector_request::Kind::Health(
                proto::HealthRequest {},
            )),
        };
        client
            .send(MessageType::CollectorRequest, &request)
            .await
            .unwrap();
        let got: proto::CollectorRequest =
            server.recv(MessageType::CollectorRequest).await.unwrap();
        assert_eq!(got, request);
    }

    #[tokio::test]
    async fn a_newer_peer_is_refused_with_a_clear_error() {
        let (err, reply) = server_sees(hello(3, 4, Role::Agent)).await;
        assert!(
            matches!(
                err,
                IpcError::IncompatibleVersion {
                    peer_min: 3,
                    peer_max: 4
                }
            ),
            "{err}"
        );
        let refusal = refusal_in(&reply);
        assert_eq!(refusal.code(), ErrorCode::IncompatibleVersion);
        assert!(
            refusal.message.contains("the peer speaks versions 3..=4"),
            "{}",
            refusal.message
        );
    }

    #[tokio::test]
    async fn a_version_1_peer_is_refused_with_a_clear_error() {
        let (err, reply) = server_sees(hello(1, 1, Role::Agent)).await;
        assert!(
            matches!(
                err,
                IpcError::IncompatibleVersion {
                    peer_min: 1,
                    peer_max: 1
                }
            ),
            "{err}"
        );
        assert!(
            refusal_in(&reply)
                .message
                .contains("this build speaks 2..=2"),
            "{reply:?}"
        );
    }

    #[tokio::test]
    async fn features_are_what_both_ends_name() {
        let check = |offered: &'static [&'static str],
                     supported: &'static [&'static str],
                     want: &'static [&'static str]| async move {
            let (a, b) = duplex(64 * 1024);
            let server = tokio::spawn(Connection::server_handshake(
                b,
                limits(),
                Role::Collector,
                &[Role::Agent],
                supported,
            ));
            let client =
                Connection::client_handshake(a, limits(), Role::Agent, Role::Collector, offered)
                    .await
                    .unwrap();
            let server = server.await.unwrap().unwrap();
            assert_eq!(
                client.negotiated().features,
                want,
                "{offered:?} {supported:?}"
            );
            assert_eq!(
                server.negotiated().features,
                want,
                "{offered:?} {supported:?}"
            );
            for feature in ["events", "other"] {
                assert_eq!(client.negotiated().has(feature), want.contains(&feature));
            }
        };
        check(&["events"], &["events"], &["events"]).await;
        check(&["events"], &[], &[]).await;
        check(&[], &["events"], &[]).await;
        check(&["other", "events", "events"], &["events"], &["events"]).await;
    }

    #[tokio::test]
    async fn a_server_that_grants_what_was_not_offered_is_refused() {
        let (a, mut b) = duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut header = vec![0; 4096];
            let _ = b.read(&mut header).await;
            let welcome = proto::Welcome {
                version: PROTOCOL_VERSION,
                role: Role::Collector as i32,
                software_version: "hostile".into(),
                pid: 1,
                max_frame_bytes: 4096,
                features: vec!["events".into()],
            };
            let bytes =
                frame::encode(MessageType::Welcome, &welcome.encode_to_vec(), 4096).unwrap();
            b.write_all(&bytes).await.unwrap();
            b
        });
        let err = Connection::client_handshake(a, limits(), Role::Agent, Role::Collector, &[])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("feature \"events\", which was not offered"),
            "{err}"
        );
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn an_overlapping_range_picks_the_highest_shared_version() {
        let (mut a, b) = duplex(4096);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            limits(),
            Role::Collector,
            &[Role::Agent],
            &[],
        ));
        a.write_all(&hello(1, 9, Role::Agent)).await.unwrap();
        let server = server.await.unwrap().unwrap();
        assert_eq!(server.negotiated().version, PROTOCOL_VERSION);
    }

    #[tokio::test]
    async fn a_peer_with_a_tiny_frame_limit_is_refused() {
        let hello = proto::Hello {
            min_version: 1,
            max_version: 1,
            role: Role::Agent as i32,
            software_version: "test".into(),
            max_frame_bytes: 0,
            features: Vec::new(),
        };
        let bytes = frame::encode(MessageType::Hello, &hello.encode_to_vec(), 4096).unwrap();
        let (err, reply) = server_sees(bytes).await;
        assert!(
            matches!(
                err,
                IpcError::FrameLimitTooSmall {
                    announced: 0,
                    required: 4096
                }
            ),
            "{err}"
        );
        assert_eq!(refusal_in(&reply).code(), ErrorCode::BadRequest);
    }

    #[tokio::test]
    async fn a_wrong_role_is_refused() {
        let (err, reply) = server_sees(hello(PROTOCOL_VERSION, PROTOCOL_VERSION, Role::Cli)).await;
        assert!(
            matches!(err, IpcError::WrongRole { got: Role::Cli, .. }),
            "{err}"
        );
        assert_eq!(refusal_in(&reply).code(), ErrorCode::UnexpectedMessage);
    }

    #[tokio::test]
    async fn bad_frames_are_refused_and_named() {
        let good = hello(PROTOCOL_VERSION, PROTOCOL_VERSION, Role::Agent);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 0xff;
        let mut unknown = good.clone();
        unknown[5] = 99;
        let mut oversized = good.clone();
        oversized[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        let not_hello = frame::encode(MessageType::AgentRequest, &[], 4096).unwrap();
        let garbage = frame::encode(MessageType::Hello, &[0xff; 7], 4096).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (bad_crc, "checksum mismatch"),
            (unknown, "unknown message type 99"),
            (oversized, "exceeds the limit of 4096 bytes"),
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "bad frame magic"),
            (not_hello, "unexpected AgentRequest message"),
            (garbage, "malformed Hello message"),
            (
                good[..10].to_vec(),
                "closed the connection after 10 of 16 bytes",
            ),
        ];
        for (bytes, want) in cases {
            let (err, reply) = server_sees(bytes).await;
            assert!(
                err.to_string().contains(want),
                "{err} should contain {want:?}"
            );
            let refusal = refusal_in(&reply);
            assert!(refusal.message.contains(want), "{}", refusal.message);
        }
    }

    #[tokio::test]
    async fn a_stalled_frame_times_out() {
        let (mut a, b) = duplex(4096);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            limits(),
            Role::Collector,
            &[Role::Agent],
            &[],
        ));
        // Half a header, then nothing, with the connection held open.
        a.write_all(&hello(PROTOCOL_VERSION, PROTOCOL_VERSION, Role::Agent)[..6])
            .await
            .unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(matches!(err, IpcError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn sending_more_than_the_peer_accepts_is_refused_before_writing() {
        let (mut client, _server) = pair().await;
        let big = proto::AppendAudit {
            entries: vec![proto::AuditEntryBody {
                kind: "x".into(),
                payload: vec![0; 5000],
            }],
        };
        let err = client
            .send(
                MessageType::CollectorRequest,
                &proto::CollectorRequest {
                    request_id: 1,
                    kind: Some(proto::collector_request::Kind::AppendAudit(big)),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, IpcError::MessageTooLarge { max: 4096, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refusal_reaches_the_client_as_refused() {
        let (mut client, mut server) = pair().await;
        server
            .refuse_with(ErrorCode::Busy, "too many connections")
            .await;
        let err = client
            .recv::<proto::CollectorResponse>(MessageType::CollectorResponse)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IpcError::Refused {
                    code: ErrorCode::Busy,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(client.read_frame().await, Err(IpcError::Closed)));
    }
}
