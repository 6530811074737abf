//! Hostile peers on both sockets: random bytes, truncated frames, oversized lengths, wrong
//! checksums, unknown types, a wrong protocol version, a wrong role. Each gets a clear
//! `ProtocolError` or a closed connection; neither procmond nor the agent crashes, restarts or
//! grows without bound, and both still work afterwards.
//!
//! Runs as root (the agent starts a privileged procmond); CI runs it as root.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use daemoneye_e2e::{Agent, rss_kib};
use daemoneye_lib::ipc::frame::{self, HEADER_LEN, MessageType};
use daemoneye_lib::ipc::proto::{self, ErrorCode, Role};
use daemoneye_lib::ipc::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use prost::Message;

const RANDOM_FRAMES: usize = 10_000;
const MAX: u32 = 16 * 1024 * 1024;

/// What the server did with what we sent.
#[derive(Debug)]
enum Reply {
    /// A `ProtocolError` frame, then the connection was closed.
    Refused(proto::ProtocolError),
    /// The connection was closed (or reset) without a word.
    Closed,
    /// A `Welcome`: the handshake succeeded.
    Welcome(proto::Welcome),
}

/// Sends `bytes` on a fresh connection, closes our sending side, and reads what comes back.
fn send(socket: &Path, bytes: &[u8]) -> Reply {
    let mut stream = UnixStream::connect(socket).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may close before reading everything; a failed write is part of the answer.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        reply.len() <= 64 * 1024,
        "a refusal is short, got {} bytes",
        reply.len()
    );
    match frame::decode(&reply, MAX) {
        Ok(Some((MessageType::ProtocolError, payload, _))) => {
            Reply::Refused(proto::ProtocolError::decode(payload).expect("a valid ProtocolError"))
        }
        Ok(Some((MessageType::Welcome, payload, _))) => {
            Reply::Welcome(proto::Welcome::decode(payload).expect("a valid Welcome"))
        }
        Ok(None) if reply.is_empty() => Reply::Closed,
        other => panic!("the server answered something unexpected: {other:?}"),
    }
}

fn hello(min: u32, max: u32, role: Role) -> Vec<u8> {
    let hello = proto::Hello {
        min_version: min,
        max_version: max,
        role: role as i32,
        software_version: "hostile".into(),
        max_frame_bytes: u64::from(MAX),
        features: vec!["no-such-feature".into()],
    };
    frame::encode(MessageType::Hello, &hello.encode_to_vec(), MAX).unwrap()
}

fn refused(reply: Reply, code: ErrorCode, text: &str) {
    match reply {
        Reply::Refused(err) => {
            assert_eq!(err.code(), code, "{}", err.message);
            assert!(
                err.message.contains(text),
                "{:?} lacks {text:?}",
                err.message
            );
        }
        other => panic!("expected a refusal with {text:?}, got {other:?}"),
    }
}

/// Every named hostile input, against a server that expects `role`.
fn named_cases(socket: &Path, role: Role, other_role: Role) {
    let good = hello(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, role);

    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0x55;
    refused(
        send(socket, &bad_crc),
        ErrorCode::BadFrame,
        "checksum mismatch",
    );

    let mut unknown = good.clone();
    unknown[5] = 0xee;
    refused(
        send(socket, &unknown),
        ErrorCode::BadFrame,
        "unknown message type 238",
    );

    let mut oversized = good.clone();
    oversized[8..12].copy_from_slice(&(MAX + 1).to_be_bytes());
    refused(
        send(socket, &oversized),
        ErrorCode::BadFrame,
        "exceeds the limit of 16777216 bytes",
    );
    oversized[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    refused(
        send(socket, &oversized),
        ErrorCode::BadFrame,
        "exceeds the limit",
    );

    let mut frame_version = good.clone();
    frame_version[4] = 9;
    refused(
        send(socket, &frame_version),
        ErrorCode::BadFrame,
        "unsupported frame format version 9",
    );

    refused(
        send(
            socket,
            &hello(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 5, role),
        ),
        ErrorCode::IncompatibleVersion,
        "incompatible protocol",
    );
    refused(
        send(
            socket,
            &hello(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, other_role),
        ),
        ErrorCode::UnexpectedMessage,
        "is not accepted here",
    );
    refused(
        send(socket, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ErrorCode::BadFrame,
        "bad frame magic",
    );
    for cut in [1, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
        refused(
            send(socket, &good[..cut]),
            ErrorCode::BadFrame,
            "closed the connection after",
        );
    }
    // Nothing at all: the client just goes away.
    assert!(matches!(send(socket, &[]), Reply::Closed));

    // A good handshake followed by garbage: welcomed, then closed with a reason.
    let mut then_garbage = good.clone();
    then_garbage.extend_from_slice(&[0xff; 40]);
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&then_garbage).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let (kind, _, used) = frame::decode(&reply, MAX).unwrap().unwrap();
    assert_eq!(kind, MessageType::Welcome);
    let (kind, payload, _) = frame::decode(&reply[used..], MAX).unwrap().unwrap();
    assert_eq!(kind, MessageType::ProtocolError);
    let err = proto::ProtocolError::decode(payload).unwrap();
    assert!(err.message.contains("bad frame magic"), "{}", err.message);

    // A well-formed request of the wrong kind after the handshake.
    let mut wrong_kind = good.clone();
    wrong_kind.extend(frame::encode(MessageType::Welcome, &[], MAX).unwrap());
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&wrong_kind).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let (_, _, used) = frame::decode(&reply, MAX).unwrap().unwrap();
    let (kind, payload, _) = frame::decode(&reply[used..], MAX).unwrap().unwrap();
    assert_eq!(kind, MessageType::ProtocolError);
    let err = proto::ProtocolError::decode(payload).unwrap();
    assert!(
        err.message.contains("unexpected Welcome message"),
        "{}",
        err.message
    );
}

/// `RANDOM_FRAMES` random inputs: half pure noise, half a valid magic and version followed by a
/// random type, length, checksum and payload (which gets past the first checks).
fn random_frames(socket: &Path, seed: u64) -> (usize, usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut refusals, mut closes) = (0, 0);
    for i in 0..RANDOM_FRAMES {
        let len = rng.usize(0..512);
        let mut bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
        if i % 2 == 1 && bytes.len() >= HEADER_LEN {
            bytes[..4].copy_from_slice(&frame::MAGIC);
            bytes[4] = frame::FRAME_VERSION;
            bytes[6] = 0;
            bytes[7] = 0;
        }
        match send(socket, &bytes) {
            Reply::Refused(_) => refusals += 1,
            Reply::Closed => closes += 1,
            Reply::Welcome(w) => panic!("random bytes were welcomed: {w:?} after {bytes:02x?}"),
        }
    }
    (refusals, closes)
}

#[test]
fn hostile_peers_are_refused_and_neither_process_suffers() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
    let agent = Agent::start("", 0.5);
    let health = agent.wait_for_procmond();
    let procmond = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    let agent_pid = agent.pid();
    let sockets = [
        (
            daemoneye_lib::ipc::transport::collector_socket(&agent.data_dir),
            Role::Agent,
            Role::Cli,
        ),
        (
            daemoneye_lib::ipc::transport::agent_socket(&agent.data_dir),
            Role::Cli,
            Role::Agent,
        ),
    ];
    // Warm both up with one full round of named cases before measuring memory, so that
    // one-time allocations (buffers, lazily started threads) are not counted as growth.
    for (socket, role, other) in &sockets {
        named_cases(socket, *role, *other);
    }
    let rss_before = [rss_kib(procmond), rss_kib(agent_pid)];

    for (index, (socket, role, other)) in sockets.iter().enumerate() {
        named_cases(socket, *role, *other);
        let (refusals, closes) = random_frames(socket, 0xdae0_e7e0 + index as u64);
        assert_eq!(refusals + closes, RANDOM_FRAMES);
        eprintln!(
            "{}: {refusals} refusals, {closes} silent closes",
            socket.display()
        );
        // Nearly every random input gets a reason; only empty ones and
        // too-short headers that the peer then closes get none.
        assert!(
            refusals > RANDOM_FRAMES * 9 / 10,
            "{refusals} refusals, {closes} silent closes"
        );
    }

    let rss_after = [rss_kib(procmond), rss_kib(agent_pid)];
    eprintln!("RSS before {rss_before:?} KiB, after {rss_after:?} KiB (procmond, agent)");
    for (name, before, after) in [
        ("procmond", rss_before[0], rss_after[0]),
        ("agent", rss_before[1], rss_after[1]),
    ] {
        assert!(
            after < before + 16 * 1024,
            "{name} grew from {before} KiB to {after} KiB over {RANDOM_FRAMES} hostile frames"
        );
    }

    // Both still serve: same procmond (never restarted), scans still arrive.
    let after = daemoneye_e2e::wait_for(
        "a healthy report after the attack",
        Duration::from_secs(120),
        || {
            agent
                .health()
                .filter(|h| h["overall"] == "ok" && h["scans"]["completed"].as_u64() >= Some(1))
        },
    );
    assert_eq!(after["procmond"]["pid"], procmond);
    assert_eq!(after["procmond"]["restarts"], 0);
}
