//! Requests and answers over a handshaken [`Connection`]: the one request/response helper of
//! both links (CLI → agent, agent → procmond).
//!
//! # The exchange
//!
//! - Every request carries an id, unique on its connection (1, 2, 3, … per [`Client`]); every
//!   response carries the id of its request. Several requests may be in flight at once and
//!   their answers may arrive in any order: a health answer overtakes a scan that runs for a
//!   minute. A request gets one response, or several when [`Link::more`] says more follow (a
//!   large scan in parts).
//! - A server may push messages nobody asked for ([`Link::PUSH`]), only when the handshake
//!   agreed on a feature that allows it; the client hands them to a bounded queue and counts
//!   what did not fit rather than stop reading.
//!
//! # Hostile peers
//!
//! The client treats the server as hostile, as the server treats the client: a response is
//! checked by [`Link::precheck_response`] before it is decoded (the procmond link counts scan
//! records on the wire: one costs a few bytes there and hundreds decoded), a response to an id
//! that was never issued ends the connection, and a late answer to a request whose waiter gave
//! up is dropped. The server serves at most `max_in_flight` requests of one connection at a
//! time and stops reading while that many run, so a peer that floods requests holds a bounded
//! amount of memory.
//!
//! # Tasks
//!
//! A [`Client`] owns a reader task that routes responses to their waiters; writes take a lock
//! for the length of one frame. The reader decodes only a response's head (its id, and
//! whether more parts follow: [`Link::response_head`]) and hands the waiter the bytes; the
//! waiter decodes them in its own task and checks that the whole says what the head said
//! (a response whose two readings differ ends the connection). So the reader is free for the
//! next frame while a large scan part is decoded, and the records are allocated by the task
//! that uses and frees them. [`serve`] runs a reader loop that spawns one task per request
//! and a writer task that sends what handlers and the push queue hand it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::conn::{self, FrameReader, FrameWriter};
use super::proto::{self, ErrorCode};
use super::{Connection, IpcError, MessageType, Negotiated};

/// Parts of one answer buffered for a waiter before the reader waits for it to catch up.
const PARTS_BUFFERED: usize = 4;

/// One link's messages: what the client sends, what the server answers, what it may push.
pub trait Link: Send + Sync + 'static {
    /// The request message.
    type Request: Message + Default + Send + 'static;
    /// The response message.
    type Response: Message + Default + Send + 'static;
    /// The message a server pushes unasked (`()` when the link has none).
    type Push: Message + Default + Send + 'static;
    /// The frame type of requests.
    const REQUEST: MessageType;
    /// The frame type of responses.
    const RESPONSE: MessageType;
    /// The frame type of pushes, if the link has them.
    const PUSH: Option<MessageType>;

    /// Sets the id of a request.
    fn set_request_id(request: &mut Self::Request, id: u64);
    /// The id of a request.
    fn request_id(request: &Self::Request) -> u64;
    /// The id of the request a response answers.
    fn response_id(response: &Self::Response) -> u64;
    /// Whether more responses to the same request follow this one.
    fn more(_response: &Self::Response) -> bool {
        false
    }
    /// Checks a response's bytes before they are decoded.
    fn precheck_response(_payload: &[u8]) -> Result<(), IpcError> {
        Ok(())
    }
    /// The id and [`more`](Link::more) of a response, read from its bytes without decoding
    /// the rest: the client's reader routes by them, and the waiter decodes the whole and
    /// checks that it says the same.
    fn response_head(payload: &[u8]) -> Result<(u64, bool), IpcError>;
    /// The response that refuses request `id` (the connection stays open).
    fn error_response(id: u64, code: ErrorCode, message: String) -> Self::Response;
}

/// agent → procmond.
#[derive(Debug)]
pub enum CollectorLink {}

/// The most process records one response frame may hold (2^18). Far above any real host's
/// scan part; a hostile collector's frame, decoded, stays near 100 MiB.
pub const MAX_RECORDS_PER_FRAME: usize = 256 * 1024;

impl Link for CollectorLink {
    type Request = proto::CollectorRequest;
    type Response = proto::CollectorResponse;
    type Push = proto::CollectorPush;
    const REQUEST: MessageType = MessageType::CollectorRequest;
    const RESPONSE: MessageType = MessageType::CollectorResponse;
    const PUSH: Option<MessageType> = Some(MessageType::CollectorPush);

    fn set_request_id(request: &mut Self::Request, id: u64) {
        request.request_id = id;
    }
    fn request_id(request: &Self::Request) -> u64 {
        request.request_id
    }
    fn response_id(response: &Self::Response) -> u64 {
        response.request_id
    }
    fn more(response: &Self::Response) -> bool {
        matches!(
            &response.kind,
            Some(proto::collector_response::Kind::Result(result)) if result.more
        )
    }
    fn response_head(payload: &[u8]) -> Result<(u64, bool), IpcError> {
        let head: CollectorResponseHead = conn::decode(Self::RESPONSE, payload)?;
        Ok((
            head.request_id,
            head.result.is_some_and(|result| result.more),
        ))
    }
    fn precheck_response(payload: &[u8]) -> Result<(), IpcError> {
        let count = super::convert::scan_records_in(payload)?;
        if count > MAX_RECORDS_PER_FRAME {
            return Err(IpcError::Decode {
                kind: MessageType::CollectorResponse,
                reason: format!(
                    "{count} process records in one frame, more than the {MAX_RECORDS_PER_FRAME} \
                     allowed"
                ),
            });
        }
        Ok(())
    }
    fn error_response(id: u64, code: ErrorCode, message: String) -> Self::Response {
        proto::CollectorResponse {
            request_id: id,
            kind: Some(proto::collector_response::Kind::Error(
                proto::RequestError {
                    code: code as i32,
                    message,
                },
            )),
        }
    }
}

/// CLI → agent.
#[derive(Debug)]
pub enum AgentLink {}

impl Link for AgentLink {
    type Request = proto::AgentRequest;
    type Response = proto::AgentResponse;
    type Push = ();
    const REQUEST: MessageType = MessageType::AgentRequest;
    const RESPONSE: MessageType = MessageType::AgentResponse;
    const PUSH: Option<MessageType> = None;

    fn set_request_id(request: &mut Self::Request, id: u64) {
        request.request_id = id;
    }
    fn request_id(request: &Self::Request) -> u64 {
        request.request_id
    }
    fn response_id(response: &Self::Response) -> u64 {
        response.request_id
    }
    fn response_head(payload: &[u8]) -> Result<(u64, bool), IpcError> {
        let head: AgentResponseHead = conn::decode(Self::RESPONSE, payload)?;
        Ok((head.request_id, false))
    }
    fn error_response(id: u64, code: ErrorCode, message: String) -> Self::Response {
        proto::AgentResponse {
            request_id: id,
            kind: Some(proto::agent_response::Kind::Error(proto::RequestError {
                code: code as i32,
                message,
            })),
        }
    }
}

/// The fields of a `CollectorResponse` (`ipc.proto`) that route it: prost skips every other
/// field without decoding it (a scan's records are skipped, not allocated).
#[derive(Clone, PartialEq, prost::Message)]
struct CollectorResponseHead {
    #[prost(uint64, tag = "1")]
    request_id: u64,
    /// `kind.result`; the other variants of `kind` say nothing about routing.
    #[prost(message, optional, tag = "2")]
    result: Option<DetectionResultHead>,
}

/// The field of a `DetectionResult` that routes it.
#[derive(Clone, PartialEq, prost::Message)]
struct DetectionResultHead {
    #[prost(bool, tag = "7")]
    more: bool,
}

/// The field of an `AgentResponse` that routes it.
#[derive(Clone, PartialEq, prost::Message)]
struct AgentResponseHead {
    #[prost(uint64, tag = "1")]
    request_id: u64,
}

type BoxedWriter = FrameWriter<Pin<Box<dyn AsyncWrite + Send>>>;
/// Where the reader hands a waiter the parts of its answer.
type Waiter = mpsc::Sender<Result<Part, IpcError>>;

/// One part of an answer as the reader routed it, not yet decoded.
struct Part {
    payload: Vec<u8>,
    /// What the part's head said: more parts follow.
    more: bool,
}

/// What the reader task and the handles share.
struct Shared<L: Link> {
    /// Requests waiting for (more of) their answer.
    pending: Mutex<HashMap<u64, Waiter>>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<String>>,
    /// The next request id; ids below it were issued.
    next_id: AtomicU64,
    /// Pushes that did not fit in the queue.
    pushes_dropped: AtomicU64,
    /// The link whose responses `pending` carries (undecoded).
    link: PhantomData<fn() -> L>,
}

impl<L: Link> Shared<L> {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        // Plain map operations cannot leave it half-changed: a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ended(&self) -> Option<String> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the connection ended and tells every waiter why.
    fn end(&self, reason: String) {
        {
            let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
            if ended.is_none() {
                *ended = Some(reason.clone());
            }
        }
        for (_, waiter) in self.pending().drain() {
            let _ = waiter.try_send(Err(IpcError::Lost {
                reason: reason.clone(),
            }));
        }
    }
}

struct Inner<L: Link> {
    shared: Arc<Shared<L>>,
    writer: tokio::sync::Mutex<BoxedWriter>,
    negotiated: Negotiated,
    /// Dropped with the last handle: the reader task then stops.
    _stop: oneshot::Sender<()>,
}

/// The client end of a link: cheap to clone, usable from many tasks at once.
pub struct Client<L: Link> {
    inner: Arc<Inner<L>>,
}

impl<L: Link> Clone for Client<L> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L: Link> std::fmt::Debug for Client<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("negotiated", &self.inner.negotiated)
            .field("ended", &self.inner.shared.ended())
            .finish_non_exhaustive()
    }
}

/// The answers to one request, part by part.
pub struct Answer<L: Link> {
    id: u64,
    parts: mpsc::Receiver<Result<Part, IpcError>>,
    shared: Arc<Shared<L>>,
    done: bool,
}

impl<L: Link> Answer<L> {
    /// The next part; `None` after the last one.
    pub async fn next(&mut self) -> Option<Result<L::Response, IpcError>> {
        if self.done {
            return None;
        }
        let part = self
            .parts
            .recv()
            .await
            .unwrap_or_else(|| {
                Err(IpcError::Lost {
                    reason: self
                        .shared
                        .ended()
                        .unwrap_or_else(|| "the reader stopped".to_owned()),
                })
            })
            .and_then(|part| self.decode(&part));
        self.done = match &part {
            Ok(response) => !L::more(response),
            Err(_) => true,
        };
        Some(part)
    }
}

impl<L: Link> Answer<L> {
    /// Decodes a part here, in the waiter's task, rather than in the reader: the reader is
    /// free for the next frame (a health answer does not wait behind a scan's decoding), and
    /// the decoded records are allocated by the task that uses and frees them.
    fn decode(&self, part: &Part) -> Result<L::Response, IpcError> {
        let response: L::Response = conn::decode(L::RESPONSE, &part.payload)?;
        // The reader routed the part by its head; a peer whose message says otherwise when
        // decoded whole (fields repeated to confuse the two) has broken the protocol.
        let (id, more) = (L::response_id(&response), L::more(&response));
        if id != self.id || more != part.more {
            let reason = format!(
                "a response routed to request {} decodes as request {id} (more: {more})",
                self.id
            );
            self.shared.end(reason.clone());
            return Err(IpcError::Decode {
                kind: L::RESPONSE,
                reason,
            });
        }
        Ok(response)
    }
}

impl<L: Link> Drop for Answer<L> {
    fn drop(&mut self) {
        // A waiter that gives up (a timeout) leaves no entry behind; a late answer is dropped.
        self.shared.pending().remove(&self.id);
    }
}

impl<L: Link> Client<L> {
    /// Takes over a handshaken connection. Pushes, if the link has them, go to the returned
    /// queue of `push_capacity` (what does not fit is counted in [`Client::pushes_dropped`]).
    pub fn new<S>(conn: Connection<S>, push_capacity: usize) -> (Self, mpsc::Receiver<L::Push>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (negotiated, reader, writer) = conn.into_split();
        let writer: BoxedWriter = writer.boxed();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            next_id: AtomicU64::new(1),
            pushes_dropped: AtomicU64::new(0),
            link: PhantomData,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (push_tx, push_rx) = mpsc::channel(push_capacity.max(1));
        tokio::spawn(read_responses(
            reader,
            Arc::clone(&shared),
            push_tx,
            stop_rx,
        ));
        let client = Self {
            inner: Arc::new(Inner {
                shared,
                writer: tokio::sync::Mutex::new(writer),
                negotiated,
                _stop: stop_tx,
            }),
        };
        (client, push_rx)
    }

    /// What the handshake settled.
    pub fn negotiated(&self) -> &Negotiated {
        &self.inner.negotiated
    }

    /// Why the connection ended, once it has.
    pub fn ended(&self) -> Option<String> {
        self.inner.shared.ended()
    }

    /// Whether `other` is a handle on the same connection.
    pub fn same_connection(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Pushes that arrived while the queue was full.
    pub fn pushes_dropped(&self) -> u64 {
        self.inner.shared.pushes_dropped.load(Ordering::Relaxed)
    }

    /// Sends `request` (its id is set here) and returns its answers as they come.
    pub async fn start(&self, mut request: L::Request) -> Result<Answer<L>, IpcError> {
        let shared = &self.inner.shared;
        if let Some(reason) = shared.ended() {
            return Err(IpcError::Lost { reason });
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        L::set_request_id(&mut request, id);
        let (tx, rx) = mpsc::channel(PARTS_BUFFERED);
        shared.pending().insert(id, tx);
        let answer = Answer {
            id,
            parts: rx,
            shared: Arc::clone(shared),
            done: false,
        };
        // The connection may have ended between the check and the insert; `end` drained the
        // map before this entry existed, so look again.
        if let Some(reason) = shared.ended() {
            return Err(IpcError::Lost { reason });
        }
        let sent = self
            .inner
            .writer
            .lock()
            .await
            .send(L::REQUEST, &request)
            .await;
        if let Err(err) = sent {
            // A frame half-written leaves the stream unusable for everyone.
            shared.end(format!("sending a request failed: {err}"));
            return Err(err);
        }
        Ok(answer)
    }

    /// Sends `request` and waits for its single answer.
    pub async fn call(&self, request: L::Request) -> Result<L::Response, IpcError> {
        let mut answer = self.start(request).await?;
        answer.next().await.unwrap_or_else(|| {
            Err(IpcError::Lost {
                reason: "no answer".to_owned(),
            })
        })
    }
}

/// Routes every frame from the server to its waiter until the connection ends or the last
/// client handle is dropped.
async fn read_responses<L: Link, R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    shared: Arc<Shared<L>>,
    pushes: mpsc::Sender<L::Push>,
    mut stop: oneshot::Receiver<()>,
) {
    let reason = loop {
        let frame = tokio::select! {
            frame = reader.read_frame() => frame,
            _ = &mut stop => break "the client was dropped".to_owned(),
        };
        let (kind, payload) = match frame {
            Ok(frame) => frame,
            Err(err) => break err.to_string(),
        };
        if Some(kind) == L::PUSH {
            match conn::decode::<L::Push>(kind, &payload) {
                Ok(push) => {
                    if pushes.try_send(push).is_err() {
                        shared.pushes_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Err(err) => break err.to_string(),
            }
        }
        // A refusal (`ProtocolError`) or a frame of another type ends the connection.
        if kind != L::RESPONSE
            && let Err(err) = conn::expect::<L::Response>(L::RESPONSE, kind, &payload)
        {
            break err.to_string();
        }
        if let Err(err) = L::precheck_response(&payload) {
            break err.to_string();
        }
        // Only the head is decoded here; the waiter decodes the rest in its own task.
        let (id, more) = match L::response_head(&payload) {
            Ok(head) => head,
            Err(err) => break err.to_string(),
        };
        if id == 0 || id >= shared.next_id.load(Ordering::Relaxed) {
            break format!("the peer answered request {id}, which was never sent");
        }
        let waiter = {
            let mut pending = shared.pending();
            if more {
                pending.get(&id).cloned()
            } else {
                pending.remove(&id)
            }
        };
        // No waiter: it gave up (a timeout) and the late answer is dropped. A waiter that
        // is gone by now did the same.
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(Part { payload, more })).await;
        }
    };
    shared.end(reason);
}

/// What a server's writer task sends.
enum Outgoing<L: Link> {
    Response(L::Response),
    Push(L::Push),
    Refuse(ErrorCode, String),
}

/// Where a request handler sends its response (or its several parts).
pub struct Responder<L: Link> {
    id: u64,
    out: mpsc::Sender<Outgoing<L>>,
    send_limit: u32,
}

impl<L: Link> Responder<L> {
    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The largest response payload the client accepts.
    pub fn send_limit(&self) -> u32 {
        self.send_limit
    }

    /// Sends one response; `false` when the connection is gone (the handler may stop).
    pub async fn send(&self, response: L::Response) -> bool {
        self.out.send(Outgoing::Response(response)).await.is_ok()
    }

    /// Refuses the request with `code` and `message`; the connection stays open.
    pub async fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> bool {
        self.send(L::error_response(self.id, code, message.into()))
            .await
    }
}

/// Serves requests on `conn` until the client closes it (`Ok`) or breaks the protocol
/// (`Err`, after the client was sent a `ProtocolError` saying why).
///
/// `handle` runs as a task of its own per request, at most `max_in_flight` at once; `pushes`,
/// if given, are sent as they come (the link must have a push type and the handshake must
/// have allowed them: the caller decides).
pub async fn serve<L, S, H, F>(
    conn: Connection<S>,
    max_in_flight: usize,
    mut pushes: Option<mpsc::Receiver<L::Push>>,
    handle: H,
) -> Result<(), IpcError>
where
    L: Link,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(L::Request, Responder<L>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (negotiated, mut reader, writer) = conn.into_split();
    let send_limit = negotiated.send_limit;
    let mut writer: BoxedWriter = writer.boxed();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing<L>>(max_in_flight.max(1) * 2);
    let (writer_done_tx, mut writer_done) = oneshot::channel::<IpcError>();
    let writing = tokio::spawn(async move {
        loop {
            let next = match pushes.as_mut() {
                Some(queue) => tokio::select! {
                    out = out_rx.recv() => out,
                    push = queue.recv() => match push {
                        Some(push) => Some(Outgoing::Push(push)),
                        None => { pushes = None; continue; }
                    },
                },
                None => out_rx.recv().await,
            };
            let Some(next) = next else { return };
            let sent = match next {
                Outgoing::Response(response) => writer.send(L::RESPONSE, &response).await,
                Outgoing::Push(push) => match L::PUSH {
                    Some(kind) => writer.send(kind, &push).await,
                    None => Ok(()),
                },
                Outgoing::Refuse(code, message) => {
                    writer.refuse_with(code, &message).await;
                    return;
                }
            };
            if let Err(err) = sent {
                let _ = writer_done_tx.send(err);
                return;
            }
        }
    });
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let result = loop {
        // Stop reading while `max_in_flight` requests run: the client waits, memory does not
        // grow. The semaphore is never closed, so acquiring only fails if it were.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break Ok(());
        };
        let frame = tokio::select! {
            frame = reader.read_frame() => frame,
            err = &mut writer_done => break Err(err.unwrap_or(IpcError::Closed)),
        };
        let request = match frame
            .and_then(|(kind, payload)| conn::expect::<L::Request>(L::REQUEST, kind, &payload))
        {
            Ok(request) => request,
            Err(IpcError::Closed) => break Ok(()),
            Err(err) => {
                let _ = out_tx
                    .send(Outgoing::Refuse(err.code(), err.to_string()))
                    .await;
                break Err(err);
            }
        };
        let responder = Responder {
            id: L::request_id(&request),
            out: out_tx.clone(),
            send_limit,
        };
        let work = handle(request, responder);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    };
    // Handlers still running hold senders; the writer ends when the last is done, or at once
    // after a refusal.
    drop(out_tx);
    let _ = writing.await;
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio::io::{DuplexStream, duplex};

    use super::*;
    use crate::ipc::Limits;
    use crate::ipc::proto::{Role, agent_request, agent_response};

    async fn connected(
        supported: &'static [&'static str],
    ) -> (Connection<DuplexStream>, Connection<DuplexStream>) {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            Limits::default(),
            Role::Agent,
            &[Role::Cli],
            supported,
        ));
        let client =
            Connection::client_handshake(a, Limits::default(), Role::Cli, Role::Agent, &[])
                .await
                .unwrap();
        (client, server.await.unwrap().unwrap())
    }

    fn query(sql: &str) -> proto::AgentRequest {
        proto::AgentRequest {
            request_id: 0,
            kind: Some(agent_request::Kind::Query(proto::QueryRequest {
                sql: sql.to_owned(),
            })),
        }
    }

    fn rows(id: u64, n: usize) -> proto::AgentResponse {
        proto::AgentResponse {
            request_id: id,
            kind: Some(agent_response::Kind::Query(proto::QueryResult {
                rows: vec![proto::Row::default(); n],
                ..Default::default()
            })),
        }
    }

    fn rows_in(response: &proto::AgentResponse) -> usize {
        match &response.kind {
            Some(agent_response::Kind::Query(result)) => result.rows.len(),
            other => panic!("not a query result: {other:?}"),
        }
    }

    #[tokio::test]
    async fn answers_reach_their_waiters_in_any_order() {
        let (client, server) = connected(&[]).await;
        let (release, released) = tokio::sync::watch::channel(false);
        tokio::spawn(serve::<AgentLink, _, _, _>(
            server,
            4,
            None,
            move |request, responder| {
                let mut released = released.clone();
                async move {
                    let Some(agent_request::Kind::Query(query)) = request.kind else {
                        return;
                    };
                    if query.sql == "slow" {
                        let _ = released.wait_for(|go| *go).await;
                    }
                    responder.send(rows(responder.id(), query.sql.len())).await;
                }
            },
        ));
        let (client, _) = Client::<AgentLink>::new(client, 1);
        let slow = tokio::spawn({
            let client = client.clone();
            async move { client.call(query("slow")).await }
        });
        // The fast request is answered while the slow one waits on the server.
        let fast = client.call(query("fast!")).await.unwrap();
        assert_eq!(rows_in(&fast), 5);
        assert!(!slow.is_finished());
        release.send_replace(true);
        assert_eq!(rows_in(&slow.await.unwrap().unwrap()), 4);
    }

    #[tokio::test]
    async fn an_answer_to_a_request_never_sent_ends_the_connection() {
        let (client, mut server) = connected(&[]).await;
        tokio::spawn(async move {
            let _request: proto::AgentRequest =
                server.recv(MessageType::AgentRequest).await.unwrap();
            server
                .send(MessageType::AgentResponse, &rows(99, 1))
                .await
                .unwrap();
            let _ = server.read_frame().await;
        });
        let (client, _) = Client::<AgentLink>::new(client, 1);
        let err = client.call(query("x")).await.unwrap_err();
        assert!(
            err.to_string().contains("request 99, which was never sent"),
            "{err}"
        );
        assert!(client.ended().is_some());
        // Later calls fail at once with the same reason.
        let again = client.call(query("y")).await.unwrap_err();
        assert!(again.to_string().contains("never sent"), "{again}");
    }

    /// A `CollectorResponse` as a hostile collector may write it: `kind` twice, a scan part
    /// that says more parts follow and then an error, which is what a decoder keeps.
    #[derive(Clone, PartialEq, prost::Message)]
    struct TwoKinds {
        #[prost(uint64, tag = "1")]
        request_id: u64,
        #[prost(message, optional, tag = "2")]
        result: Option<proto::DetectionResult>,
        #[prost(message, optional, tag = "5")]
        error: Option<proto::RequestError>,
    }

    #[tokio::test]
    async fn a_response_whose_head_and_whole_disagree_ends_the_connection() {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            Limits::default(),
            Role::Collector,
            &[Role::Agent],
            &[],
        ));
        let client =
            Connection::client_handshake(a, Limits::default(), Role::Agent, Role::Collector, &[])
                .await
                .unwrap();
        let mut server = server.await.unwrap().unwrap();
        tokio::spawn(async move {
            let request: proto::CollectorRequest =
                server.recv(MessageType::CollectorRequest).await.unwrap();
            let confusing = TwoKinds {
                request_id: request.request_id,
                result: Some(proto::DetectionResult {
                    more: true,
                    ..Default::default()
                }),
                error: Some(proto::RequestError::default()),
            };
            server
                .send(MessageType::CollectorResponse, &confusing)
                .await
                .unwrap();
            let _ = server.read_frame().await;
        });
        let (client, _) = Client::<CollectorLink>::new(client, 1);
        let request = proto::CollectorRequest {
            request_id: 0,
            kind: Some(proto::collector_request::Kind::Health(
                proto::HealthRequest {},
            )),
        };
        let err = client.call(request).await.unwrap_err();
        assert!(
            matches!(&err, IpcError::Decode { reason, .. } if reason.contains("decodes as")),
            "{err}"
        );
        assert!(client.ended().is_some());
    }

    #[tokio::test]
    async fn a_late_answer_to_an_abandoned_request_is_dropped() {
        let (client, mut server) = connected(&[]).await;
        tokio::spawn(async move {
            // Answers each request only when the next one arrives: the first waiter has
            // given up by then.
            let first: proto::AgentRequest = server.recv(MessageType::AgentRequest).await.unwrap();
            let second: proto::AgentRequest = server.recv(MessageType::AgentRequest).await.unwrap();
            for id in [first.request_id, second.request_id] {
                server
                    .send(MessageType::AgentResponse, &rows(id, id as usize))
                    .await
                    .unwrap();
            }
            let _ = server.read_frame().await;
        });
        let (client, _) = Client::<AgentLink>::new(client, 1);
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), client.call(query("first"))).await;
        assert!(gave_up.is_err());
        let second = client.call(query("second")).await.unwrap();
        assert_eq!(rows_in(&second), 2, "the second answer, not the first");
        assert!(client.ended().is_none());
    }

    #[tokio::test]
    async fn pushes_are_queued_and_overflow_is_counted() {
        let (a, b) = duplex(1 << 20);
        let server = tokio::spawn(Connection::server_handshake(
            b,
            Limits::default(),
            Role::Collector,
            &[Role::Agent],
            &["events"],
        ));
        let client = Connection::client_handshake(
            a,
            Limits::default(),
            Role::Agent,
            Role::Collector,
            &["events"],
        )
        .await
        .unwrap();
        let server = server.await.unwrap().unwrap();
        assert!(server.negotiated().has("events"));
        let (push_tx, push_rx) = mpsc::channel(8);
        tokio::spawn(serve::<CollectorLink, _, _, _>(
            server,
            2,
            Some(push_rx),
            |_request, _responder| async {},
        ));
        for sequence in 1..=3 {
            push_tx
                .send(proto::CollectorPush {
                    sequence,
                    kind: None,
                })
                .await
                .unwrap();
        }
        let (client, mut pushes) = Client::<CollectorLink>::new(client, 1);
        let first = pushes.recv().await.unwrap();
        assert_eq!(first.sequence, 1);
        // The other two arrive while the queue of one is full: counted, not queued, and the
        // reader goes on (the 10 s limit only guards against a hung test).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.pushes_dropped() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(pushes.try_recv().is_err());
        assert_eq!(client.pushes_dropped(), 2);
    }

    #[tokio::test]
    async fn a_server_runs_at_most_max_in_flight_requests_at_once() {
        let (client, server) = connected(&[]).await;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        tokio::spawn(serve::<AgentLink, _, _, _>(
            server,
            2,
            None,
            move |_request, responder| {
                let (running, most) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    responder.send(rows(responder.id(), 1)).await;
                }
            },
        ));
        let (client, _) = Client::<AgentLink>::new(client, 1);
        let calls: Vec<_> = (0..6)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move { client.call(query(&n.to_string())).await })
            })
            .collect();
        for call in calls {
            assert_eq!(rows_in(&call.await.unwrap().unwrap()), 1);
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_bad_frame_gets_a_protocol_error_and_ends_the_connection() {
        let (mut client, server) = connected(&[]).await;
        let serving = tokio::spawn(serve::<AgentLink, _, _, _>(
            server,
            2,
            None,
            |_request, _responder| async {},
        ));
        // A response where a request belongs.
        client
            .send(MessageType::AgentResponse, &rows(1, 1))
            .await
            .unwrap();
        let err = client
            .recv::<proto::AgentResponse>(MessageType::AgentResponse)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IpcError::Refused {
                    code: ErrorCode::UnexpectedMessage,
                    ..
                }
            ),
            "{err}"
        );
        assert!(serving.await.unwrap().is_err());
    }
}
