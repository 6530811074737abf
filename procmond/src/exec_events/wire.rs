//! The process connector's messages, byte by byte (`linux/netlink.h`, `linux/connector.h`,
//! `linux/cn_proc.h`), in the host's byte order.

// linux/netlink.h, linux/connector.h, linux/cn_proc.h
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
pub(super) const CN_MSG_LEN: usize = 20;
pub(super) const CN_IDX_PROC: u32 = 1;
pub(super) const CN_VAL_PROC: u32 = 1;
pub(super) const PROC_CN_MCAST_LISTEN: u32 = 1;
pub(super) const PROC_EVENT_NONE: u32 = 0;
pub(super) const PROC_EVENT_FORK: u32 = 1;
pub(super) const PROC_EVENT_EXEC: u32 = 2;
pub(super) const PROC_EVENT_EXIT: u32 = 0x8000_0000;
pub(super) const PROC_EVENT_UID: u32 = 0x4;
pub(super) const PROC_EVENT_GID: u32 = 0x40;
/// `what`, `cpu`, `timestamp_ns`: the header of every `proc_event`.
pub(super) const PROC_EVENT_HEADER: usize = 16;

/// What one connector message says, as far as procmond cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The acknowledgement of a listen message, with its error number (0: accepted).
    Ack { err: u32 },
    /// `parent` forked `child` (thread-group ids, and whether the child is a thread).
    Fork {
        parent: u32,
        child: u32,
        thread: bool,
    },
    /// `pid` executed a program (thread-group id; a thread's exec is reported as its group's).
    Exec { pid: u32, at_ns: u64 },
    /// A process (not a thread) exited.
    Exit { pid: u32 },
    /// A process changed its user or group ids (thread-group id).
    Ids { pid: u32 },
    /// Anything else (sid, comm, ptrace, coredump changes; thread exits).
    Other,
}

/// One parsed message with the kernel's per-CPU sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub cpu: u32,
    pub seq: u32,
    pub event: Event,
}

/// Parses one datagram into its connector messages. A message that is not the process
/// connector's, or is cut short, is skipped; the rest of the datagram is still read when its
/// length can be trusted.
pub fn parse(datagram: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32_at(rest, 0).map_or(0, |len| len as usize);
        let kind = u16_at(rest, 4).unwrap_or(0);
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        let body = &rest[NLMSG_HDRLEN..len];
        if kind == NLMSG_DONE
            && let Some(message) = parse_cn(body)
        {
            out.push(message);
        }
        let aligned = len.div_ceil(4) * 4;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    out
}

pub(super) fn parse_cn(body: &[u8]) -> Option<Message> {
    let (idx, val, seq) = (u32_at(body, 0)?, u32_at(body, 4)?, u32_at(body, 8)?);
    let data_len = usize::from(u16_at(body, 16)?);
    if idx != CN_IDX_PROC || val != CN_VAL_PROC {
        return None;
    }
    let data = body.get(CN_MSG_LEN..CN_MSG_LEN.checked_add(data_len)?)?;
    let what = u32_at(data, 0)?;
    let cpu = u32_at(data, 4)?;
    let at_ns = u64_at(data, 8)?;
    let field = |n: usize| u32_at(data, PROC_EVENT_HEADER + 4 * n);
    let event = match what {
        PROC_EVENT_NONE => Event::Ack { err: field(0)? },
        PROC_EVENT_FORK => {
            let (parent_tgid, child_pid, child_tgid) = (field(1)?, field(2)?, field(3)?);
            Event::Fork {
                parent: parent_tgid,
                child: child_tgid,
                thread: child_pid != child_tgid,
            }
        }
        PROC_EVENT_EXEC => Event::Exec {
            pid: field(1)?,
            at_ns,
        },
        PROC_EVENT_EXIT => {
            let (pid, tgid) = (field(0)?, field(1)?);
            if pid == tgid {
                Event::Exit { pid: tgid }
            } else {
                Event::Other
            }
        }
        PROC_EVENT_UID | PROC_EVENT_GID => Event::Ids { pid: field(1)? },
        _ => Event::Other,
    };
    Some(Message { cpu, seq, event })
}

pub(super) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The listen message: a netlink header, a connector header and the operation.
pub(super) fn listen_message(port: u32) -> Vec<u8> {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes()); // flags
    out.extend_from_slice(&0u32.to_ne_bytes()); // seq
    out.extend_from_slice(&port.to_ne_bytes());
    out.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // seq
    out.extend_from_slice(&0u32.to_ne_bytes()); // ack
    out.extend_from_slice(&4u16.to_ne_bytes()); // len
    out.extend_from_slice(&0u16.to_ne_bytes()); // flags
    out.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    out
}
